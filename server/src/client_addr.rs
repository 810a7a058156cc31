//! Which address a request comes from: the TCP peer, or, when the peer is
//! one of the operator's trusted proxies, the client address the proxy
//! forwarded; and which network that address belongs to, on which limits
//! per address (log-ins, sign-ups, visitors' sockets) key.
//!
//! A forwarded header is believed only from a trusted proxy
//! (`TRUSTED_PROXIES`): anyone else could write any address into it.
//! `X-Forwarded-For` lists the client, then each proxy that passed the
//! request on; the client is the rightmost address that is not a trusted
//! proxy. With no proxies configured (the default), the peer is the client.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use app::client_addr::{ClientAddr, NetworkPrefixes};
use axum::{
    extract::{ConnectInfo, Request, State},
    http::HeaderMap,
    middleware::Next,
    response::Response,
};
use ipnet::IpNet;

/// The proxies whose forwarded headers are believed: addresses or networks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    fn contains(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(&address))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// A comma-separated list of addresses (`10.0.0.7`) and networks
    /// (`10.0.0.0/8`, `fd00::/8`).
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        list.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{item:?} is not an IP address or network"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// How the middleware finds a request's client.
#[derive(Clone, Debug, Default)]
pub struct ClientAddrs {
    trusted: TrustedProxies,
    prefixes: NetworkPrefixes,
    /// Whether the operator has been told that requests arrive through a
    /// proxy no one said to trust.
    warned: Arc<AtomicBool>,
}

impl ClientAddrs {
    pub fn new(trusted: TrustedProxies, prefixes: NetworkPrefixes) -> Self {
        Self {
            trusted,
            prefixes,
            warned: Arc::default(),
        }
    }

    /// A request that carries `X-Forwarded-For` while no proxy is trusted
    /// most likely came through one: every client then looks like the
    /// proxy, and shares its limits. Said once, as a warning.
    fn warn_of_an_untrusted_proxy(&self, peer: IpAddr, headers: &HeaderMap) {
        if self.trusted.is_empty()
            && headers.contains_key("x-forwarded-for")
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                %peer,
                "requests carry X-Forwarded-For but TRUSTED_PROXIES is empty: if the \
                 server is behind a proxy, every client counts as the proxy's address \
                 (set TRUSTED_PROXIES to the proxy's address)"
            );
        }
    }
}

/// Axum middleware: puts the request's [`ClientAddr`] in its extensions,
/// where server functions and the WebSocket upgrade find it.
pub async fn find_client_addr(
    State(addrs): State<ClientAddrs>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_canonical());
    if let Some(peer) = peer {
        addrs.warn_of_an_untrusted_proxy(peer, request.headers());
    }
    let address = client_addr(peer, request.headers(), &addrs.trusted);
    request.extensions_mut().insert(ClientAddr {
        address,
        network: addrs.prefixes.network_of(address),
    });
    next.run(request).await
}

/// The client's address. Without a TCP peer (a request made in-process, by
/// a test) it is `0.0.0.0`.
fn client_addr(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let Some(peer) = peer.map(|peer| peer.to_canonical()) else {
        return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    };
    if !trusted.contains(peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match forwarded_address(hop) {
            Some(address) if trusted.contains(address) => client = address,
            Some(address) => return address,
            // `unknown`, or garbage from the client's side of the chain:
            // the last address a trusted proxy vouched for is the client.
            None => return client,
        }
    }
    client
}

/// One entry of `X-Forwarded-For`, in the forms proxies write: `192.0.2.7`,
/// `192.0.2.7:5678`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:443`.
fn forwarded_address(hop: &str) -> Option<IpAddr> {
    let address = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inner| inner.parse().ok())
        })?;
    Some(address.to_canonical())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let none = TrustedProxies::default();
        assert_eq!(
            client_addr(Some(ip("203.0.113.9")), &forwarded("1.2.3.4"), &none),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let trusted: TrustedProxies = "10.0.0.0/8, 192.0.2.1".parse().unwrap();
        // Client, then a second proxy of ours; the peer is the first proxy.
        let headers = forwarded("198.51.100.7, 10.1.2.3");
        assert_eq!(
            client_addr(Some(ip("192.0.2.1")), &headers, &trusted),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn addresses_a_client_wrote_before_the_real_one_are_ignored() {
        let trusted: TrustedProxies = "192.0.2.1".parse().unwrap();
        // The client claims to be 1.1.1.1; our proxy appended its real
        // address.
        let headers = forwarded("1.1.1.1, 198.51.100.7");
        assert_eq!(
            client_addr(Some(ip("192.0.2.1")), &headers, &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_addr(Some(ip("192.0.2.1")), &forwarded("garbage"), &trusted),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn forwarded_entries_with_ports_brackets_or_ipv6_dressing_name_their_client() {
        let trusted: TrustedProxies = "10.0.0.1".parse().unwrap();
        let proxy = Some(ip("10.0.0.1"));
        for (written, client) in [
            ("198.51.100.7:5678", "198.51.100.7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("[2001:db8::7]:443", "2001:db8::7"),
            ("::ffff:198.51.100.7", "198.51.100.7"),
        ] {
            assert_eq!(
                client_addr(proxy, &forwarded(written), &trusted),
                ip(client),
                "{written}"
            );
        }
        // A trusted proxy seen as an IPv4-mapped IPv6 peer is still trusted.
        assert_eq!(
            client_addr(
                Some(ip("::ffff:10.0.0.1")),
                &forwarded("198.51.100.7"),
                &trusted
            ),
            ip("198.51.100.7")
        );
        // A proxy that does not know its client: the proxy is the client.
        assert_eq!(
            client_addr(proxy, &forwarded("unknown"), &trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn bad_proxy_lists_are_refused() {
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("proxy.example".parse::<TrustedProxies>().is_err());
        assert_eq!("".parse::<TrustedProxies>(), Ok(TrustedProxies::default()));
    }
}
