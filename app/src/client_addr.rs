//! The address a request comes from, as the server found it (the TCP peer,
//! or what a trusted proxy forwarded): limits per address key on it.

use std::net::{IpAddr, Ipv4Addr};

/// A request's client address. The server puts it in every request's
/// extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

/// The address of the current server-function call's client; `0.0.0.0`
/// when the server did not say (a request made in-process).
pub fn client_addr() -> IpAddr {
    leptos::prelude::use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<ClientAddr>().copied())
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ClientAddr(address)| {
            address
        })
}
