//! Room membership: putting connections in rooms and taking them out,
//! when a browser asks (after the room's join rule agrees) or when server
//! code decides; and who is in a room.
//!
//! Joining or leaving is answered to the browser with a `joined`, `left` or
//! `refused` frame, and changes the room's presence when a user arrives
//! with their first tab or departs with their last (`presence/`). A join
//! goes through the streams, which replay what the tab missed of the room
//! before `joined`, as one step (`streams/`).

use tokio::time::timeout;

use super::{Hub, Refusal, broker::Fetched, registry::JoinError};
use crate::{ConnectionId, Position, Room, RoomName, Stream, UserId, protocol::ControlFrame};

impl Hub {
    /// Puts a connection in a room, without asking the room's rule (server
    /// code is trusted). The browser is told with a `joined` frame.
    pub fn join<R: Room>(&self, connection: ConnectionId, room: &R) -> bool {
        self.add_to_room(connection, &room.name(), None, None)
            .is_ok()
    }

    /// Takes a connection out of a room. The browser is told with a `left`
    /// frame.
    pub fn leave<R: Room>(&self, connection: ConnectionId, room: &R) -> bool {
        self.remove_from_room(connection, &room.name())
    }

    /// The users with at least one connection in the room, each once.
    pub fn room_users<R: Room>(&self, room: &R) -> Vec<UserId> {
        self.inner.registry.room_users(&room.name())
    }

    /// The connections in the room.
    pub fn room_connections<R: Room>(&self, room: &R) -> Vec<ConnectionId> {
        self.inner.registry.room_members(&room.name())
    }

    /// A browser asks to join `room`: the rule of the room's kind decides,
    /// within [`super::HubConfig::authorize_timeout`]. Answered with
    /// `joined` (after what followed `since` in the room) or `refused` (and
    /// nothing replayed). The shared history is read for a recovery this
    /// process cannot serve only if the connection `may_read`; otherwise
    /// the tab gets a discontinuity.
    pub(super) async fn request_join(
        &self,
        connection: ConnectionId,
        user: Option<UserId>,
        room: RoomName,
        since: Option<Position>,
        may_read: bool,
    ) {
        let config = self.config();
        let rule = self.inner.join_rules.authorize(&room, user, connection);
        let decision = timeout(config.authorize_timeout, rule)
            .await
            .unwrap_or_else(|_| Err(Refusal::new("The server took too long to decide.")));
        let refusal = match decision {
            Ok(()) => {
                let stream = Stream::Room(room.clone());
                let fetched = if may_read || since.is_none() {
                    let mut fetched = self.inner.streams.fetch([(stream.clone(), since)]).await;
                    fetched.remove(&stream)
                } else {
                    None
                };
                match self.add_to_room(connection, &room, since, fetched) {
                    Ok(()) | Err(JoinError::Gone) => return,
                    Err(JoinError::TooManyRooms) => format!(
                        "You can be in at most {} rooms at once.",
                        config.max_rooms_per_connection
                    ),
                }
            }
            Err(refusal) => refusal.0,
        };
        self.refuse_join(connection, &room, &refusal);
    }

    /// Tells a browser it may not join `room`, and why.
    pub(super) fn refuse_join(&self, connection: ConnectionId, room: &RoomName, reason: &str) {
        tracing::debug!(%connection, %room, %reason, "join refused");
        self.send_control(connection, &ControlFrame::Refused { room, reason });
    }

    /// A browser asks to leave `room`. Answered with `left` even if it was
    /// not in it, so the browser's view is right either way.
    pub(super) fn request_leave(&self, connection: ConnectionId, room: &RoomName) {
        if !self.remove_from_room(connection, room) {
            self.send_control(connection, &ControlFrame::Left { room });
        }
    }

    /// Queues a control frame for one connection.
    pub(super) fn send_control(&self, connection: ConnectionId, frame: &ControlFrame<'_>) {
        let delivery = self.inner.registry.send(connection, frame.to_json().into());
        self.finish(delivery);
    }

    /// Adds a connection to a room (after replaying what followed `since`),
    /// tells it (`joined`), and updates the room's presence.
    fn add_to_room(
        &self,
        connection: ConnectionId,
        room: &RoomName,
        since: Option<Position>,
        fetched: Option<Fetched>,
    ) -> Result<(), JoinError> {
        let joined = self.inner.streams.join(connection, room, since, fetched)?;
        if !joined.fitted {
            // Its queue was full: too slow for live events anyway.
            self.close_too_slow(&[connection]);
            return Ok(());
        }
        self.inner.presence.joined(room, connection, joined.arrived);
        Ok(())
    }

    /// Takes a connection out of a room, tells it (`left`), and updates the
    /// room's presence. `false` if it was not in the room.
    fn remove_from_room(&self, connection: ConnectionId, room: &RoomName) -> bool {
        let Some((departed, delivery)) = self.inner.registry.leave(connection, room) else {
            return false;
        };
        self.finish(delivery);
        if departed {
            self.inner.presence.changed([room]);
        }
        true
    }
}
