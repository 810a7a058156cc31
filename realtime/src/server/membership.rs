//! Room membership: putting connections in rooms and taking them out,
//! when a browser asks (after the room's join rule agrees) or when server
//! code decides; and who is in a room.
//!
//! Joining or leaving is answered to the browser with a `joined`, `left` or
//! `refused` frame, and changes the room's presence when a user arrives
//! with their first tab or departs with their last (`presence/`). A join
//! goes through the streams, which replay what the tab missed of the room
//! before `joined`, as one step (`streams/`). A browser's join passes its
//! room's rule first (`connection/joins.rs`).

use super::{Hub, broker::Fetched, registry::JoinError};
use crate::{ConnectionId, Position, Room, RoomName, Stream, UserId, protocol::ControlFrame};

impl Hub {
    /// Puts a connection in a room, without asking the room's rule (server
    /// code is trusted). The browser is told with a `joined` frame. With
    /// Redis, a room whose shard this process does not hear yet is heard
    /// within a subscription's round trip, and its live events start
    /// there; an event this process emits after the join reaches the
    /// connection (docs/protocol.md).
    pub fn join<R: Room>(&self, connection: ConnectionId, room: &R) -> bool {
        let room = room.name();
        // With several processes, this one may not hear the room's shard
        // yet: it subscribes now, rather than at its next heartbeat.
        self.inner.streams.want(&Stream::Room(room.clone()));
        self.add_to_room(connection, &room, None, None).is_ok()
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

    /// Queues a control frame for one connection.
    pub(super) fn send_control(&self, connection: ConnectionId, frame: &ControlFrame<'_>) {
        let delivery = self.inner.registry.send(connection, frame.to_json().into());
        self.finish(delivery);
    }

    /// Adds a connection to a room (after replaying what followed `since`),
    /// tells it (`joined`), and updates the room's presence.
    pub(super) fn add_to_room(
        &self,
        connection: ConnectionId,
        room: &RoomName,
        since: Option<Position>,
        fetched: Option<Fetched>,
    ) -> Result<(), JoinError> {
        let joined = self.inner.streams.join(connection, room, since, fetched)?;
        self.finish(joined.told);
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
    pub(super) fn remove_from_room(&self, connection: ConnectionId, room: &RoomName) -> bool {
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
