//! Who a connection belongs to, as the application decides on the upgrade.

use std::{
    fmt,
    net::{IpAddr, Ipv6Addr},
    sync::Arc,
};

use sha2::{Digest, Sha256};

use crate::{UserId, stream::TabId};

/// Who a connection belongs to, decided by the application from the
/// session on the upgrade request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The logged-in user, or `None` for a visitor.
    pub user: Option<UserId>,
    /// The session the connection was opened with, so ending the session
    /// can close it ([`super::Hub::disconnect_session`]).
    pub session: Option<SessionKey>,
    /// The user's name as other users see it, for [`crate::Presence`].
    pub name: Option<String>,
    /// The client's address, for the limits on a visitor's connections
    /// per address (`None`: not counted). Give the client's network (an
    /// IPv6 /64, say) rather than its exact address, so that a host with
    /// many addresses counts as one.
    pub address: Option<IpAddr>,
}

impl Identity {
    /// A visitor's connection.
    pub fn anonymous() -> Self {
        Self::default()
    }
}

/// The IPv6 block (/48) an address is in, which one site may hold whole
/// (65,536 /64s): limits per address hold a block to a share of its own
/// as well. `None` for IPv4.
pub fn ipv6_block(address: IpAddr) -> Option<IpAddr> {
    const BLOCK_PREFIX: u32 = 48;
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let mask = u128::MAX << (128 - BLOCK_PREFIX);
            Some(IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & mask)))
        }
        IpAddr::V4(_) => None,
    }
}

/// A session, as the hub knows it: a SHA-256 hash of the application's
/// session id, which is all that leaves the process (to other processes,
/// through the backplane) or reaches a log. The id itself stays here, for
/// asking the application whether the session still lives.
#[derive(Clone)]
pub struct SessionKey {
    hash: [u8; 32],
    /// The session id, on the process that opened the connection; `None`
    /// for a key that came from another process.
    id: Option<Arc<str>>,
}

impl SessionKey {
    /// The application's session id, if this key was made from one here.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The key's hash, as 64 hexadecimal digits.
    pub fn hash_hex(&self) -> String {
        self.hash.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 {
            return None;
        }
        let mut hash = [0; 32];
        for (byte, pair) in hash.iter_mut().zip(hex.as_bytes().chunks(2)) {
            *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Some(Self { hash, id: None })
    }
}

impl From<&str> for SessionKey {
    fn from(id: &str) -> Self {
        Self {
            hash: Sha256::digest(id.as_bytes()).into(),
            id: Some(id.into()),
        }
    }
}

impl From<String> for SessionKey {
    fn from(id: String) -> Self {
        Self::from(id.as_str())
    }
}

impl PartialEq for SessionKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
    }
}

impl Eq for SessionKey {}

impl std::hash::Hash for SessionKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.hash.hash(state);
    }
}

// Serialised for the backplane as its hash only: session ids never cross
// Redis.
impl serde::Serialize for SessionKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.hash_hex())
    }
}

impl<'de> serde::Deserialize<'de> for SessionKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let hex = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::from_hex(&hex).ok_or_else(|| serde::de::Error::custom("not a session hash"))
    }
}

impl fmt::Debug for SessionKey {
    // Session ids are secrets: keep them out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(…)")
    }
}

/// A browser tab bound to its session: what an emit "to everyone but the
/// caller" leaves out, and "to the caller" reaches, on every process and in
/// every replay. A hash of the tab's id and its session, so a call that
/// names a tab of another session (or another session's tab id, learnt
/// somehow) names a tab that does not exist: it leaves out nobody, and
/// reaches nobody. Written as 16 hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TabMark(pub u64);

crate::ids::hex_id!(TabMark);

impl TabMark {
    /// The mark of `tab` in `session` (`None`: a visitor, or a hub that
    /// does not know the sessions of calls).
    pub fn of(tab: TabId, session: Option<&SessionKey>) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"realtime tab mark\0");
        hash.update(tab.0.to_le_bytes());
        if let Some(session) = session {
            hash.update(session.hash);
        }
        let digest = hash.finalize();
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        Self(u64::from_le_bytes(first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hash_of_a_session_id_is_written() {
        let key = SessionKey::from("secret-session-id");
        let json = serde_json::to_string(&key).unwrap();
        assert!(!json.contains("secret"), "{json}");
        assert_eq!(json.len(), 64 + 2);
        let back: SessionKey = serde_json::from_str(&json).unwrap();
        assert_eq!(back, key);
        assert_eq!(back.id(), None);
        assert_eq!(key.id(), Some("secret-session-id"));
        assert_ne!(SessionKey::from("another"), key);
        assert!(serde_json::from_str::<SessionKey>("\"secret-session-id\"").is_err());
        assert_eq!(format!("{key:?}"), "SessionKey(…)");
    }

    #[test]
    fn a_tab_mark_binds_the_tab_to_its_session() {
        let (ada, bob) = (SessionKey::from("ada"), SessionKey::from("bob"));
        let tab = TabId(7);
        assert_eq!(TabMark::of(tab, Some(&ada)), TabMark::of(tab, Some(&ada)));
        assert_ne!(TabMark::of(tab, Some(&ada)), TabMark::of(tab, Some(&bob)));
        assert_ne!(TabMark::of(tab, Some(&ada)), TabMark::of(tab, None));
        assert_ne!(TabMark::of(tab, None), TabMark::of(TabId(8), None));
    }
}
