//! The address a request comes from, as the server found it (the TCP peer,
//! or what a trusted proxy forwarded), and the network it belongs to: every
//! limit per address keys on the network, since a host given an IPv6 /64
//! holds 2⁶⁴ addresses of its own; and on its IPv6 block too (a /48, which
//! holds 65,536 /64s), since a site is given a whole block.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A request's client: its address (for logs) and its network (for
/// limits). The server puts it in every request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddr {
    pub address: IpAddr,
    pub network: Network,
}

/// The network an address belongs to, as limits count clients: the address
/// with its host bits cleared, after [`NetworkPrefixes`]. An IPv4 address
/// written as IPv6 (`::ffff:192.0.2.7`) is its IPv4 self.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Network(IpAddr);

impl Network {
    /// The network's first address, which names it.
    pub fn ip(self) -> IpAddr {
        self.0
    }

    /// The IPv6 block (/48) the network is in, which limits count too;
    /// `None` for IPv4, where an address is scarce enough to count alone.
    /// The same block as the hub's caps on visitors' WebSockets.
    pub fn block(self) -> Option<Network> {
        realtime::server::ipv6_block(self.0).map(Network)
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// How many leading bits of an address name its client's network
/// (`NETWORK_PREFIX_V4`, `NETWORK_PREFIX_V6`): 32 and 64 by default, an
/// IPv4 address and an IPv6 subnet, the smallest block a provider gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkPrefixes {
    v4: u8,
    v6: u8,
}

impl Default for NetworkPrefixes {
    fn default() -> Self {
        Self { v4: 32, v6: 64 }
    }
}

impl NetworkPrefixes {
    /// Prefixes of `v4` (at most 32) and `v6` (at most 128) bits.
    pub fn new(v4: u8, v6: u8) -> Result<Self, String> {
        if v4 > 32 {
            return Err(format!("an IPv4 prefix is at most 32 bits, not {v4}"));
        }
        if v6 > 128 {
            return Err(format!("an IPv6 prefix is at most 128 bits, not {v6}"));
        }
        Ok(Self { v4, v6 })
    }

    /// IPv4 bits that name a network.
    pub fn v4(self) -> u8 {
        self.v4
    }

    /// IPv6 bits that name a network.
    pub fn v6(self) -> u8 {
        self.v6
    }

    /// The network `address` belongs to.
    pub fn network_of(self, address: IpAddr) -> Network {
        Network(match address.to_canonical() {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.v4)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from_bits(v4.to_bits() & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.v6)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & mask))
            }
        })
    }
}

/// The current server-function call's client; `0.0.0.0` when the server did
/// not say (a request made in-process).
pub fn client_addr() -> ClientAddr {
    leptos::prelude::use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<ClientAddr>().copied())
        .unwrap_or_else(|| {
            let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
            ClientAddr {
                address: unspecified,
                network: NetworkPrefixes::default().network_of(unspecified),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(prefixes: NetworkPrefixes, address: &str) -> String {
        prefixes
            .network_of(address.parse().expect("an address"))
            .to_string()
    }

    #[test]
    fn an_ipv6_host_is_its_64_and_an_ipv4_host_itself() {
        let default = NetworkPrefixes::default();
        assert_eq!(network(default, "2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::");
        assert_eq!(
            network(default, "2001:db8:1:2:ffff::1"),
            network(default, "2001:db8:1:2::9")
        );
        assert_ne!(
            network(default, "2001:db8:1:3::1"),
            network(default, "2001:db8:1:2::1")
        );
        assert_eq!(network(default, "198.51.100.7"), "198.51.100.7");
        // An IPv4 peer seen through an IPv6 socket is the same client.
        assert_eq!(network(default, "::ffff:198.51.100.7"), "198.51.100.7");
    }

    #[test]
    fn an_ipv6_network_is_counted_in_its_48_too() {
        let block = |address: &str| {
            NetworkPrefixes::default()
                .network_of(address.parse().expect("an address"))
                .block()
                .map(|block| block.to_string())
        };
        assert_eq!(block("2001:db8:1:2::1").as_deref(), Some("2001:db8:1::"));
        assert_eq!(block("2001:db8:1:ffff::1"), block("2001:db8:1:2::1"));
        assert_ne!(block("2001:db8:2::1"), block("2001:db8:1::1"));
        assert_eq!(block("198.51.100.7"), None);
        assert_eq!(block("::ffff:198.51.100.7"), None);
    }

    #[test]
    fn prefixes_may_be_wider_or_narrower() {
        let wide = NetworkPrefixes::new(24, 48).unwrap();
        assert_eq!(network(wide, "198.51.100.7"), "198.51.100.0");
        assert_eq!(network(wide, "2001:db8:1:2::1"), "2001:db8:1::");
        let everything = NetworkPrefixes::new(0, 0).unwrap();
        assert_eq!(network(everything, "198.51.100.7"), "0.0.0.0");
        let exact = NetworkPrefixes::new(32, 128).unwrap();
        assert_eq!(network(exact, "2001:db8::1"), "2001:db8::1");
        assert!(NetworkPrefixes::new(33, 64).is_err());
        assert!(NetworkPrefixes::new(32, 129).is_err());
    }
}
