//! Visitors' connections (not logged in), counted in all, per address, and
//! per IPv6 block: the hub is given a visitor's network (an IPv6 /64, say),
//! and one holder of a /48 has 65,536 of those, so the /48 is held to
//! [`BLOCK_SHARE`] addresses' worth as well. Without it, one block could
//! take every visitor's place.

use std::{
    collections::{HashMap, hash_map::Entry},
    net::IpAddr,
};

use super::{super::identity::ipv6_block as block_of, Limits, Refused};

/// How many addresses' worth of connections one IPv6 /48 may hold.
pub(crate) const BLOCK_SHARE: usize = 16;

#[derive(Default)]
pub(super) struct Visitors {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
    per_block: HashMap<IpAddr, usize>,
}

impl Visitors {
    /// Whether one more visitor's connection, from `address` if known,
    /// would be past a limit.
    pub fn check(&self, address: Option<IpAddr>, limits: Limits) -> Result<(), Refused> {
        if self.total >= limits.anonymous {
            return Err(Refused::Full);
        }
        let Some(address) = address else {
            return Ok(());
        };
        let held = |map: &HashMap<IpAddr, usize>, key| map.get(&key).copied().unwrap_or(0);
        if held(&self.per_address, address) >= limits.anonymous_per_address {
            return Err(Refused::TooManyForAddress);
        }
        if let Some(block) = block_of(address)
            && held(&self.per_block, block)
                >= limits.anonymous_per_address.saturating_mul(BLOCK_SHARE)
        {
            return Err(Refused::TooManyForAddress);
        }
        Ok(())
    }

    pub fn add(&mut self, address: Option<IpAddr>) {
        self.total += 1;
        if let Some(address) = address {
            *self.per_address.entry(address).or_default() += 1;
            if let Some(block) = block_of(address) {
                *self.per_block.entry(block).or_default() += 1;
            }
        }
    }

    pub fn remove(&mut self, address: Option<IpAddr>) {
        self.total -= 1;
        if let Some(address) = address {
            uncount(&mut self.per_address, address);
            if let Some(block) = block_of(address) {
                uncount(&mut self.per_block, block);
            }
        }
    }
}

fn uncount(counts: &mut HashMap<IpAddr, usize>, key: IpAddr) {
    if let Entry::Occupied(mut held) = counts.entry(key) {
        *held.get_mut() -= 1;
        if *held.get() == 0 {
            held.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            total: usize::MAX,
            anonymous: usize::MAX,
            per_user: usize::MAX,
            anonymous_per_address: 2,
            rooms_per_connection: usize::MAX,
        }
    }

    fn address(text: &str) -> Option<IpAddr> {
        Some(text.parse().expect("an address"))
    }

    #[test]
    fn an_ipv6_block_holds_its_share_of_addresses_worth() {
        let mut visitors = Visitors::default();
        let mut held = 0;
        for n in 0..1000 {
            let from = address(&format!("2001:db8:1:{n:x}::"));
            if visitors.check(from, limits()).is_ok() {
                visitors.add(from);
                held += 1;
            }
        }
        assert_eq!(held, 2 * BLOCK_SHARE);
        // Another block, and IPv4, are not held to it.
        assert_eq!(visitors.check(address("2001:db8:2::"), limits()), Ok(()));
        assert_eq!(visitors.check(address("192.0.2.1"), limits()), Ok(()));
        // One leaves: one more may come.
        visitors.remove(address("2001:db8:1::"));
        assert_eq!(
            visitors.check(address("2001:db8:1:ffff::"), limits()),
            Ok(())
        );
    }

    #[test]
    fn an_address_holds_its_limit_and_gets_its_places_back() {
        let mut visitors = Visitors::default();
        let from = address("192.0.2.1");
        visitors.add(from);
        visitors.add(from);
        assert_eq!(
            visitors.check(from, limits()),
            Err(Refused::TooManyForAddress)
        );
        visitors.remove(from);
        assert_eq!(visitors.check(from, limits()), Ok(()));
        assert!(visitors.per_address.len() == 1 && visitors.per_block.is_empty());
        visitors.remove(from);
        assert!(visitors.per_address.is_empty());
    }
}
