//! Events that carry their own delivery rules, in the manner of fast_app's
//! broadcast events.

use super::Target;
use crate::Event;

/// A domain event that knows where it goes, whether it goes, and what the
/// browsers see of it. [`super::Hub::broadcast`] applies all three.
///
/// ```
/// use realtime::{Event, Room, server::{Broadcast, Target}};
/// use serde::{Deserialize, Serialize};
///
/// # #[derive(Clone)] struct ChatRoom(i64);
/// # impl Room for ChatRoom {
/// #     const KIND: &'static str = "chat";
/// #     fn key(&self) -> String { self.0.to_string() }
/// #     fn from_key(key: &str) -> Option<Self> { key.parse().ok().map(ChatRoom) }
/// # }
/// /// What the server knows about a rename (never sent as is).
/// struct RoomRenamed { room: i64, old_name: String, new_name: String, renamed_by: i64 }
///
/// /// What browsers receive.
/// #[derive(Serialize, Deserialize)]
/// struct RoomView { id: i64, name: String }
/// impl Event for RoomView {
///     const NAME: &'static str = "RoomView";
/// }
///
/// impl Broadcast for RoomRenamed {
///     type Payload = RoomView;
///     fn broadcast_on(&self) -> Target {
///         Target::room(&ChatRoom(self.room))
///     }
///     fn broadcast_when(&self) -> bool {
///         self.old_name != self.new_name
///     }
///     fn broadcast_as(&self) -> RoomView {
///         RoomView { id: self.room, name: self.new_name.clone() }
///     }
/// }
/// ```
pub trait Broadcast {
    /// The type browsers subscribe to.
    type Payload: Event;

    /// Who receives it: rooms, users, everyone, or a union.
    fn broadcast_on(&self) -> Target;

    /// Whether to send it at all. Sent by default.
    fn broadcast_when(&self) -> bool {
        true
    }

    /// The public payload made from this event.
    fn broadcast_as(&self) -> Self::Payload;
}
