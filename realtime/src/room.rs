//! Rooms: named groups of connections that events can be sent to.
//!
//! A room is a typed value, such as `ChatRoom(42)`. Its *kind* (`"chat"`)
//! selects the authorisation rule the server applies when a connection asks
//! to join; its *key* (`"42"`) tells rooms of one kind apart. On the wire
//! the two make one name, `chat:42`.

use std::{fmt, sync::Arc};

use serde::{Deserialize, Serialize};

/// A kind of room.
///
/// ```
/// #[derive(Clone, Debug, PartialEq)]
/// struct ChatRoom(i64);
///
/// impl realtime::Room for ChatRoom {
///     const KIND: &'static str = "chat";
///     fn key(&self) -> String {
///         self.0.to_string()
///     }
///     fn from_key(key: &str) -> Option<Self> {
///         key.parse().ok().map(ChatRoom)
///     }
/// }
/// ```
pub trait Room: Clone + Send + Sync + 'static {
    /// The kind's name: letters, digits, `_` and `-`, no `:`.
    const KIND: &'static str;

    /// What tells this room apart from others of its kind.
    fn key(&self) -> String;

    /// The room a key names, or `None` if the key is not valid for this kind.
    ///
    /// A browser's join is refused unless `from_key(key)` gives a room whose
    /// [`Room::key`] is `key` again: `chat:007` and `chat:7` cannot be two
    /// rooms (with two presence lists) for the same key.
    fn from_key(key: &str) -> Option<Self>;

    /// The room's name on the wire: `KIND:key`.
    fn name(&self) -> RoomName {
        RoomName::new(Self::KIND, &self.key())
    }
}

/// A room's wire name, `kind:key`. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomName(Arc<str>);

impl RoomName {
    pub fn new(kind: &str, key: &str) -> Self {
        Self(format!("{kind}:{key}").into())
    }

    /// The whole name, `kind:key`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the name is longer than a browser may send
    /// ([`crate::protocol::MAX_ROOM_NAME_BYTES`]): the server answers a
    /// join of it with an `error`, and the browser's runtime refuses it
    /// before asking.
    pub fn is_too_long(&self) -> bool {
        self.0.len() > crate::protocol::MAX_ROOM_NAME_BYTES
    }

    /// The kind and the key, if the name has the `kind:key` shape.
    pub fn split(&self) -> Option<(&str, &str)> {
        self.0.split_once(':')
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoomName({:?})", &*self.0)
    }
}

impl From<&str> for RoomName {
    fn from(name: &str) -> Self {
        Self(name.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct ChatRoom(i64);

    impl Room for ChatRoom {
        const KIND: &'static str = "chat";
        fn key(&self) -> String {
            self.0.to_string()
        }
        fn from_key(key: &str) -> Option<Self> {
            key.parse().ok().map(ChatRoom)
        }
    }

    #[test]
    fn a_room_name_is_kind_and_key() {
        let name = ChatRoom(42).name();
        assert_eq!(name.as_str(), "chat:42");
        assert_eq!(name.split(), Some(("chat", "42")));
        assert_eq!(ChatRoom::from_key("42"), Some(ChatRoom(42)));
    }

    #[test]
    fn only_the_first_colon_separates_kind_and_key() {
        let name = RoomName::from("doc:a:b");
        assert_eq!(name.split(), Some(("doc", "a:b")));
        assert_eq!(RoomName::from("nokind").split(), None);
    }
}
