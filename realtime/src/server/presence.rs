//! Presence on the server: for kinds of room registered with
//! [`super::HubBuilder::presence`], who is in each room, sent to the room's
//! members whenever its set of users changes.
//!
//! A room's list is this process's users in it (from the registry) merged
//! with those other processes announced (`backplane/remote_presence.rs`);
//! each process sends the list to its own connections.
//!
//! Lists go out in the order they were computed: a list computed before a
//! change can never overtake one computed after it. Every method here that
//! computes and sends (or publishes) a list does so holding the hub's
//! presence lock. The lock is reentrant because sending a list can close a
//! slow connection, whose departure is presence too (`close.rs`).

use super::{Hub, Target, backplane::Message, backplane::RemotePresence};
use crate::{Event, Member, Presence, RoomName, protocol};

impl Hub {
    /// Whether presence is tracked for the kind of this room.
    pub(super) fn tracks_presence(&self, room: &RoomName) -> bool {
        room.split()
            .is_some_and(|(kind, _)| self.inner.presence_kinds.contains(kind))
    }

    /// The users of a room on this process changed: tells the other
    /// processes, and this process's members of the room.
    pub(super) fn local_presence_changed(&self, room: &RoomName) {
        let _in_order = self.inner.presence_order.lock();
        if let Some(link) = self.link() {
            let members = self.inner.registry.read().room_members_by_user(room);
            link.publish_state(&Message::Presence {
                room: room.clone(),
                members,
            });
        }
        self.send_presence(room, Target::room_name(room.clone()));
    }

    /// Sends the room's current members, on every process, to `target`'s
    /// connections on this process.
    pub(super) fn send_presence(&self, room: &RoomName, target: Target) {
        let _in_order = self.inner.presence_order.lock();
        let local = self.inner.registry.read().room_members_by_user(room);
        let presence = Presence {
            room: room.clone(),
            members: self.inner.remote.lock().merged_with(room, local),
        };
        match serde_json::to_string(&presence) {
            Ok(data) => {
                let frame = protocol::event_frame(<Presence as Event>::NAME, &data);
                self.deliver_local(&target, &frame.into());
            }
            Err(error) => tracing::error!(%error, "presence could not be sent"),
        }
    }

    /// What other processes said of their presence changed: `change`
    /// updates it and returns the rooms whose members changed, which are
    /// then re-sent to this process's connections in them.
    pub(crate) fn remote_presence_changed(
        &self,
        change: impl FnOnce(&mut RemotePresence) -> Vec<RoomName>,
    ) {
        let _in_order = self.inner.presence_order.lock();
        let changed = change(&mut self.inner.remote.lock());
        for room in &changed {
            if self.inner.registry.read().has_room(room) {
                self.send_presence(room, Target::room_name(room.clone()));
            }
        }
    }

    /// This process's users in every room whose presence is tracked, for
    /// the other processes. Call it holding the presence lock, through
    /// [`Hub::in_presence_order`], so no change slips between computing and
    /// publishing it.
    pub(crate) fn presence_snapshot(&self) -> Vec<(RoomName, Vec<Member>)> {
        let registry = self.inner.registry.read();
        registry
            .room_names()
            .filter(|room| self.tracks_presence(room))
            .map(|room| (room.clone(), registry.room_members_by_user(room)))
            .filter(|(_, members)| !members.is_empty())
            .collect()
    }

    /// Runs `work` holding the presence lock: presence computed and
    /// published inside it is in order with every other list.
    pub(crate) fn in_presence_order<T>(&self, work: impl FnOnce() -> T) -> T {
        let _in_order = self.inner.presence_order.lock();
        work()
    }
}
