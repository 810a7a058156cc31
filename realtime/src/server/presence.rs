//! Presence on the server: for kinds of room registered with
//! [`super::HubBuilder::presence`], who is in each room, sent to the room's
//! members when its set of users changes.
//!
//! Changes are coalesced. Joins, leaves, closes and what other processes
//! announce only mark a room as changed; one task per hub sends, at most
//! once per room per [`super::HubConfig::presence_window`], the room's full
//! list to its members, and only if it differs from the last list sent. A
//! tab that joins gets the full list too, within the same window. So a user
//! flooding a room with joins and leaves costs its other members at most one
//! frame per window, and never closes them.
//!
//! The same task is the only one that sends presence lists and publishes
//! this process's presence to the others (`presence`, `hello`, `snapshot`):
//! lists go out in the order they were computed, without any lock held
//! across the hub.
//!
//! A room's list is this process's users in it (from the registry) merged
//! with those other processes announced (`backplane/remote_presence.rs`).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, OnceLock, Weak},
};

use axum::extract::ws::Utf8Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::{
    Hub, HubInner, Target,
    backplane::{Message, RemotePresence},
};
use crate::{ConnectionId, Event, Member, Presence, RoomName, protocol};

/// What waits for the presence task.
#[derive(Default)]
pub(crate) struct PresenceQueue {
    pending: Mutex<Pending>,
    wake: Notify,
    started: OnceLock<()>,
}

#[derive(Default)]
struct Pending {
    /// Rooms whose members may have changed.
    rooms: HashSet<RoomName>,
    /// Connections that joined a room and need its list.
    joiners: Vec<(RoomName, ConnectionId)>,
    /// Publish this process's whole presence, asking the others for theirs.
    hello: bool,
    /// Publish this process's whole presence, in answer to a `hello`.
    snapshot: bool,
}

impl Hub {
    /// Whether presence is tracked for the kind of this room.
    pub(super) fn tracks_presence(&self, room: &RoomName) -> bool {
        room.split()
            .is_some_and(|(kind, _)| self.inner.presence_kinds.contains(kind))
    }

    /// This process's users of `room` may have changed.
    pub(super) fn presence_changed(&self, room: &RoomName) {
        self.queue_presence(|pending| {
            pending.rooms.insert(room.clone());
        });
    }

    /// `connection` joined `room`, and needs its list.
    pub(super) fn presence_for_joiner(&self, room: &RoomName, connection: ConnectionId) {
        self.queue_presence(|pending| pending.joiners.push((room.clone(), connection)));
    }

    /// What other processes said of their presence changed: `change`
    /// updates it and returns the rooms whose members changed.
    pub(crate) fn remote_presence_changed(
        &self,
        change: impl FnOnce(&mut RemotePresence) -> Vec<RoomName>,
    ) {
        let changed = change(&mut self.inner.remote.lock());
        if !changed.is_empty() {
            self.queue_presence(|pending| pending.rooms.extend(changed));
        }
    }

    /// Publishes this process's presence everywhere and asks the other
    /// processes for theirs (`hello`).
    pub(crate) fn say_hello(&self) {
        self.queue_presence(|pending| pending.hello = true);
    }

    /// Publishes this process's presence, in answer to a `hello`.
    pub(crate) fn answer_hello(&self) {
        self.queue_presence(|pending| pending.snapshot = true);
    }

    fn queue_presence(&self, add: impl FnOnce(&mut Pending)) {
        add(&mut self.inner.presence.pending.lock());
        self.start_presence_task();
        self.inner.presence.wake.notify_one();
    }

    /// Starts the presence task, once, on the running Tokio runtime.
    fn start_presence_task(&self) {
        self.inner.presence.started.get_or_init(|| {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(run(Arc::downgrade(&self.inner)));
                }
                // Without a runtime there are no connections to tell.
                Err(_) => tracing::debug!("presence changed outside a Tokio runtime"),
            }
        });
    }

    /// This process's users in every room whose presence is tracked.
    fn presence_snapshot(&self) -> Vec<(RoomName, Vec<Member>)> {
        let registry = self.inner.registry.read();
        registry
            .room_names()
            .filter(|room| self.tracks_presence(room))
            .map(|room| (room.clone(), registry.room_members_by_user(room)))
            .filter(|(_, members)| !members.is_empty())
            .collect()
    }
}

/// What the task last sent and published, to send only what changed.
#[derive(Default)]
struct Sent {
    /// The last list sent to this process's members of each room.
    lists: HashMap<RoomName, Vec<Member>>,
    /// The last members of each room this process published.
    published: HashMap<RoomName, Vec<Member>>,
}

/// The presence task: waits for changes, lets a window's worth gather,
/// then sends. Ends when the hub is gone.
async fn run(hub: Weak<HubInner>) {
    let mut sent = Sent::default();
    loop {
        let (wake, window) = match hub.upgrade() {
            Some(inner) => (Arc::clone(&inner), inner.config.presence_window),
            None => return,
        };
        wake.presence.wake.notified().await;
        drop(wake);
        tokio::time::sleep(window).await;
        let Some(inner) = hub.upgrade() else {
            return;
        };
        flush(&Hub { inner }, &mut sent);
    }
}

/// Sends and publishes what the pending changes call for.
fn flush(hub: &Hub, sent: &mut Sent) {
    let pending = std::mem::take(&mut *hub.inner.presence.pending.lock());
    if let Some(link) = hub.link()
        && (pending.hello || pending.snapshot)
    {
        let rooms = hub.presence_snapshot();
        // The others replace all they knew of this process with it.
        sent.published = rooms.iter().cloned().collect();
        let message = if pending.hello {
            Message::Hello { rooms }
        } else {
            Message::Snapshot { rooms }
        };
        link.publish_state(&message);
    }
    let mut told_everyone = HashSet::new();
    for room in &pending.rooms {
        let local = hub.inner.registry.read().room_members_by_user(room);
        if let Some(link) = hub.link()
            && sent
                .published
                .get(room)
                .map_or(!local.is_empty(), |last| *last != local)
        {
            link.publish_state(&Message::Presence {
                room: room.clone(),
                members: local.clone(),
            });
            if local.is_empty() {
                sent.published.remove(room);
            } else {
                sent.published.insert(room.clone(), local.clone());
            }
        }
        if !hub.inner.registry.read().has_room(room) {
            // Nobody here to tell; start afresh when someone joins.
            sent.lists.remove(room);
            continue;
        }
        let members = hub.inner.remote.lock().merged_with(room, local);
        if sent.lists.get(room) != Some(&members) {
            send(hub, room, &members, &Target::room_name(room.clone()));
            sent.lists.insert(room.clone(), members);
            told_everyone.insert(room.clone());
        }
    }
    // Each room's list is made once, however many tabs joined it in the
    // window: a room of a thousand tabs costs a pass over them per list.
    let mut lists: HashMap<RoomName, Option<Utf8Bytes>> = HashMap::new();
    for (room, connection) in pending.joiners {
        if told_everyone.contains(&room) {
            continue;
        }
        let frame = lists.entry(room).or_insert_with_key(|room| {
            let local = hub.inner.registry.read().room_members_by_user(room);
            let members = hub.inner.remote.lock().merged_with(room, local);
            presence_frame(room, &members)
        });
        if let Some(frame) = frame {
            hub.deliver_local(&Target::connection(connection), frame);
        }
    }
}

/// Queues a room's list for `target`'s connections on this process.
fn send(hub: &Hub, room: &RoomName, members: &[Member], target: &Target) {
    if let Some(frame) = presence_frame(room, members) {
        hub.deliver_local(target, &frame);
    }
}

/// A room's list as an event frame.
fn presence_frame(room: &RoomName, members: &[Member]) -> Option<Utf8Bytes> {
    let presence = Presence {
        room: room.clone(),
        members: members.to_vec(),
    };
    match serde_json::to_string(&presence) {
        Ok(data) => Some(protocol::event_frame(<Presence as Event>::NAME, &data).into()),
        Err(error) => {
            tracing::error!(%error, "presence could not be sent");
            None
        }
    }
}
