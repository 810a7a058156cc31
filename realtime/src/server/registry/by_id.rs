//! How the registry hashes connection ids: as they are ([`IdHasher`]),
//! for its maps and sets keyed by them ([`ById`]).

use std::hash::{BuildHasherDefault, Hasher};

/// Hashes a connection id as it is. Ids are random 64-bit numbers made by
/// this process or another of the same deployment, never chosen by a
/// browser, so hashing them again (the standard library's SipHash, made
/// for keys an attacker may choose) would slow every look-up of a
/// connection by its id (a user's connections at each delivery to them,
/// the readers of an event of several streams) and buy nothing.
#[derive(Clone, Copy, Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `ConnectionId` writes one `u64`; anything else is still mixed in.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Maps and sets keyed by connection ids: see [`IdHasher`].
pub(crate) type ById = BuildHasherDefault<IdHasher>;
