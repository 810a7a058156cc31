//! Who a connection belongs to, as the application decides on the upgrade.

use std::{fmt, sync::Arc};

use crate::UserId;

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
}

impl Identity {
    /// A visitor's connection.
    pub fn anonymous() -> Self {
        Self::default()
    }
}

/// An opaque session identifier (the application's session id, as text).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionKey(Arc<str>);

impl From<&str> for SessionKey {
    fn from(key: &str) -> Self {
        Self(key.into())
    }
}

impl From<String> for SessionKey {
    fn from(key: String) -> Self {
        Self(key.into())
    }
}

// Serialised for the backplane, which closes a session's connections on
// every process.
impl serde::Serialize for SessionKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for SessionKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

impl fmt::Debug for SessionKey {
    // Session ids are secrets: keep them out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(…)")
    }
}
