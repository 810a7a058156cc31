//! Chat rooms: the reference application's main feature, and a tour of the
//! real-time layer.
//!
//! - A new message reaches everyone in the room but its sender, whose tab
//!   adds the message it got back from the server function: the sender sees
//!   it at once and exactly once ([`MessagePosted`]).
//! - Who is in the room comes from the hub's presence ([`realtime::Presence`]).
//! - "… is typing" goes to the others in the room and is never stored
//!   ([`Typing`]).
//! - A new room appears in every open room list ([`RoomCreated`]).
//! - Renaming a room is a domain event with hooks ([`RoomRenamed`]): sent to
//!   the room's members as a public [`RoomView`], and not at all when the
//!   name did not change.
//!
//! The server functions are in [`api`]; the queries ([`store`]) and the
//! chat's join rule ([`join_rule`]: who may join a chat room's real-time
//! room) are server-only.

pub mod api;
#[cfg(feature = "ssr")]
pub mod join_rule;
#[cfg(feature = "ssr")]
pub mod store;

use realtime::{Event, Position, Room, UserId};
use serde::{Deserialize, Serialize};

use crate::input::{Characters, TextRule};

/// The longest room name, in characters.
pub const MAX_ROOM_NAME_LEN: usize = 40;
/// The longest message, in characters.
pub const MAX_MESSAGE_LEN: usize = 2000;

/// What a room name must be.
pub const ROOM_NAME: TextRule = TextRule {
    what: "Room names",
    max_chars: MAX_ROOM_NAME_LEN,
    when_empty: "Give the room a name.",
    characters: Characters::Name,
};

/// What a message must be.
pub const MESSAGE: TextRule = TextRule {
    what: "Messages",
    max_chars: MAX_MESSAGE_LEN,
    when_empty: "Write something first.",
    characters: Characters::Prose,
};
/// How many of the latest messages a room page shows.
pub const HISTORY_LEN: i64 = 100;

/// A chat room's real-time room: `chat:<id>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChatRoom(pub i64);

impl Room for ChatRoom {
    const KIND: &'static str = "chat";

    fn key(&self) -> String {
        self.0.to_string()
    }

    /// Room ids as the database gives them: positive, written plainly
    /// (`7`, never `+7` or `007`, which would be other rooms to the hub).
    fn from_key(key: &str) -> Option<Self> {
        let id: i64 = key.parse().ok()?;
        (id > 0 && id.to_string() == key).then_some(Self(id))
    }
}

/// A room as lists show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    pub id: i64,
    pub name: String,
    pub created_by: UserId,
    pub created_at: i64,
}

/// How many rooms a page of the room list shows.
pub const ROOM_PAGE_LEN: usize = 50;

/// A page of the room list, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomPage {
    pub rooms: Vec<RoomSummary>,
    /// Whether older rooms follow.
    pub more: bool,
    /// Where everyone's event stream (new rooms, announcements) stood just
    /// before the rooms were read: the page recovers from there.
    pub position: Option<Position>,
}

/// A message, with its author's name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: i64,
    pub room_id: i64,
    pub author_id: UserId,
    pub author: String,
    pub body: String,
    pub created_at: i64,
}

/// A room and its latest messages, oldest first, as `viewer` sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomHistory {
    pub room: RoomSummary,
    pub messages: Vec<Message>,
    /// The logged-in user who asked.
    pub viewer: UserId,
    /// Where the room's event stream stood just before the room and its
    /// messages were read: the page joins the room from there, so a
    /// message posted or a rename made in between arrives (and a message
    /// is shown once: messages have ids).
    pub position: Option<Position>,
}

/// Someone posted a message (sent to the room, except the sender's tab).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePosted(pub Message);

impl Event for MessagePosted {
    const NAME: &'static str = "chat.message";
}

/// Someone is typing in a room (sent to the room, except the typist's tab).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Typing {
    pub room_id: i64,
    pub user: UserId,
    pub name: String,
}

impl Event for Typing {
    const NAME: &'static str = "chat.typing";
    // Stale a few seconds later: never replayed.
    const DURABLE: bool = false;
}

/// A room was created (sent to everyone).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomCreated(pub RoomSummary);

impl Event for RoomCreated {
    const NAME: &'static str = "chat.room_created";
}

/// The public view of a room, as its members receive it after a rename.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomView {
    pub id: i64,
    pub name: String,
}

impl Event for RoomView {
    const NAME: &'static str = "chat.room";
}

/// A room was renamed: what the server knows, never sent as is.
#[derive(Clone, Debug)]
pub struct RoomRenamed {
    pub room: RoomSummary,
    pub old_name: String,
    pub renamed_by: UserId,
}

#[cfg(feature = "ssr")]
impl realtime::server::Broadcast for RoomRenamed {
    type Payload = RoomView;

    /// The room's members.
    fn broadcast_on(&self) -> realtime::server::Target {
        realtime::server::Target::room(&ChatRoom(self.room.id))
    }

    /// Only when the name changed.
    fn broadcast_when(&self) -> bool {
        self.old_name != self.room.name
    }

    /// Who renamed it, and when the room was made, are not for the wire.
    fn broadcast_as(&self) -> RoomView {
        RoomView {
            id: self.room.id,
            name: self.room.name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_and_messages_are_trimmed_and_bounded() {
        assert_eq!(ROOM_NAME.check("  Lobby "), Ok("Lobby".into()));
        assert!(ROOM_NAME.check("   ").is_err());
        assert!(ROOM_NAME.check(&"x".repeat(MAX_ROOM_NAME_LEN + 1)).is_err());
        assert_eq!(MESSAGE.check(" hi "), Ok("hi".into()));
        assert!(MESSAGE.check("").is_err());
        assert!(MESSAGE.check(&"x".repeat(MAX_MESSAGE_LEN + 1)).is_err());
    }

    #[test]
    fn a_chat_room_is_named_by_its_id() {
        assert_eq!(ChatRoom(7).name().as_str(), "chat:7");
        assert_eq!(ChatRoom::from_key("7"), Some(ChatRoom(7)));
        assert_eq!(ChatRoom::from_key("seven"), None);
        for shadow in ["+7", "007", "-7", "0", " 7"] {
            assert_eq!(ChatRoom::from_key(shadow), None, "{shadow:?}");
        }
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn a_rename_is_sent_only_when_the_name_changed_and_only_as_a_view() {
        use realtime::server::Broadcast;
        let room = RoomSummary {
            id: 3,
            name: "Lounge".into(),
            created_by: UserId(1),
            created_at: 0,
        };
        let same = RoomRenamed {
            room: room.clone(),
            old_name: "Lounge".into(),
            renamed_by: UserId(1),
        };
        assert!(!same.broadcast_when());
        let changed = RoomRenamed {
            old_name: "Hall".into(),
            ..same
        };
        assert!(changed.broadcast_when());
        assert_eq!(
            changed.broadcast_as(),
            RoomView {
                id: 3,
                name: "Lounge".into()
            }
        );
        assert_eq!(
            changed.broadcast_on(),
            realtime::server::Target::room(&ChatRoom(3))
        );
    }
}
