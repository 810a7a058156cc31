//! Presence on the server: for kinds of room registered with
//! [`super::HubBuilder::presence`], who is in each room, sent to the room's
//! members when its set of users changes. [`Presence`] owns it all: the
//! kinds, the changes waiting to be sent, what was sent last, and what the
//! other processes announced.
//!
//! Changes are coalesced. Joins, leaves, closes and what other processes
//! announce only mark a room as changed; one task per hub sends, at most
//! once per room per [`super::HubConfig::presence_window`], the room's
//! list to its members, and only if it differs from the last list sent. A
//! tab that joins gets the list too, within the same window. A large
//! room's list names its first users only, and counts the rest
//! ([`Listing`]). So a user
//! flooding a room with joins and leaves costs its other members at most one
//! frame per window, and never closes them.
//!
//! The same task is the only one that sends presence lists and tells the
//! broker this process's presence (a room's, or all of it in a hello or a
//! snapshot): lists go out in the order they were computed, without any
//! lock held across the hub.
//!
//! A room's list is this process's users in it (from the registry) merged
//! with those other processes announced (`remote.rs`).

mod remote;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, OnceLock},
    time::Duration,
};

use axum::extract::ws::Utf8Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use self::remote::RemoteRooms;
use super::{
    Target,
    broker::{Broker, NodeId, PresenceNews},
    registry::{Delivery, Registry},
};
use crate::{ConnectionId, Event, Member, Presence as PresenceEvent, RoomName, protocol};

/// Starts the task that sends presence (on the running Tokio runtime).
type Starter = Box<dyn Fn() + Send + Sync>;

/// How much of a room's list a presence frame names.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Listing {
    /// The most members named; the rest are counted.
    pub max_members: usize,
    /// The most bytes of the event's data: every frame must fit a
    /// socket's write buffer, or the write fails and the socket is dropped
    /// (a list of every member of a large room would drop every member at
    /// every change).
    pub max_bytes: usize,
}

/// Presence of one process: see the module documentation.
pub(crate) struct Presence {
    /// Kinds of room whose presence is tracked.
    kinds: HashSet<&'static str>,
    window: Duration,
    listing: Listing,
    pending: Mutex<Pending>,
    /// Wakes the task when something is pending.
    wake: Arc<Notify>,
    /// What the task last sent and told the broker.
    sent: Mutex<Sent>,
    /// What the other processes announced.
    remote: Mutex<RemoteRooms>,
    /// Starts the task at the first change, once.
    starter: OnceLock<Starter>,
    started: OnceLock<()>,
}

/// What waits for the task.
#[derive(Default)]
struct Pending {
    /// Rooms whose members may have changed.
    rooms: HashSet<RoomName>,
    /// Connections that joined a room and need its list.
    joiners: Vec<(RoomName, ConnectionId)>,
    /// Tell the others this process's whole presence, asking for theirs.
    hello: bool,
    /// Tell the others this process's whole presence, in answer to a hello.
    snapshot: bool,
}

/// What the task last sent and told, to send only what changed.
#[derive(Default)]
struct Sent {
    /// The last list sent to this process's members of each room, as
    /// sent: a change among the users a large room's list only counts
    /// sends nothing when the count stays the same.
    lists: HashMap<RoomName, Utf8Bytes>,
    /// The last members of each room told to the others.
    announced: HashMap<RoomName, Vec<Member>>,
}

impl Presence {
    pub fn new(kinds: HashSet<&'static str>, window: Duration, listing: Listing) -> Self {
        Self {
            kinds,
            window,
            listing,
            pending: Mutex::default(),
            wake: Arc::new(Notify::new()),
            sent: Mutex::default(),
            remote: Mutex::default(),
            starter: OnceLock::new(),
            started: OnceLock::new(),
        }
    }

    /// How to start the task that sends presence, at the first change.
    pub fn set_starter(&self, start: impl Fn() + Send + Sync + 'static) {
        let _ = self.starter.set(Box::new(start));
    }

    /// How long changes gather before they are sent.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// What the task waits on: notified when something is pending (a
    /// permit is kept if the task is not waiting yet).
    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Whether presence is tracked for the kind of this room.
    pub fn tracks(&self, room: &RoomName) -> bool {
        room.split()
            .is_some_and(|(kind, _)| self.kinds.contains(kind))
    }

    /// This process's users of these rooms may have changed (those whose
    /// presence is tracked).
    pub fn changed<'a>(&self, rooms: impl IntoIterator<Item = &'a RoomName>) {
        let rooms: Vec<&RoomName> = rooms.into_iter().filter(|room| self.tracks(room)).collect();
        if !rooms.is_empty() {
            self.queue(|pending| pending.rooms.extend(rooms.into_iter().cloned()));
        }
    }

    /// `connection` joined `room` (and its user `arrived` with it): the
    /// room's members hear of a new user, and the joiner gets the list.
    pub fn joined(&self, room: &RoomName, connection: ConnectionId, arrived: bool) {
        if !self.tracks(room) {
            return;
        }
        self.queue(|pending| {
            if arrived {
                pending.rooms.insert(room.clone());
            }
            pending.joiners.push((room.clone(), connection));
        });
    }

    /// Tells the others this process's presence and asks for theirs
    /// (hello).
    pub fn say_hello(&self) {
        self.queue(|pending| pending.hello = true);
    }

    /// What another process announced.
    pub fn heard(&self, node: NodeId, news: PresenceNews) {
        let changed = {
            let mut remote = self.remote.lock();
            match news {
                PresenceNews::Room { room, members } => {
                    if remote.set_room(node, &room, members) {
                        vec![room]
                    } else {
                        Vec::new()
                    }
                }
                PresenceNews::Hello { rooms } => {
                    let changed = remote.replace_node(node, rooms);
                    drop(remote);
                    // The newcomer gets this process's presence in answer.
                    self.queue(|pending| pending.snapshot = true);
                    changed
                }
                PresenceNews::Snapshot { rooms } => remote.replace_node(node, rooms),
            }
        };
        if !changed.is_empty() {
            self.queue(|pending| pending.rooms.extend(changed));
        }
    }

    /// Another process is gone: its members leave every room.
    pub fn node_gone(&self, node: NodeId) {
        let changed = self.remote.lock().forget_node(node);
        if !changed.is_empty() {
            self.queue(|pending| pending.rooms.extend(changed));
        }
    }

    fn queue(&self, add: impl FnOnce(&mut Pending)) {
        add(&mut self.pending.lock());
        self.started.get_or_init(|| {
            if let Some(start) = self.starter.get() {
                start();
            }
        });
        self.wake.notify_one();
    }

    /// Sends and tells what the pending changes call for. Returns what
    /// queueing the lists did (connections too slow to take one are closed
    /// by the caller).
    pub fn flush(&self, registry: &Registry, broker: &dyn Broker) -> Delivery {
        let pending = std::mem::take(&mut *self.pending.lock());
        let mut sent = self.sent.lock();
        let mut outcome = Delivery::default();
        if pending.hello || pending.snapshot {
            let rooms = registry.members_of_rooms(|room| self.tracks(room));
            // The others replace all they knew of this process with it.
            sent.announced = rooms.iter().cloned().collect();
            broker.announce(if pending.hello {
                PresenceNews::Hello { rooms }
            } else {
                PresenceNews::Snapshot { rooms }
            });
        }
        let mut told_everyone = HashSet::new();
        for room in &pending.rooms {
            let local = registry.room_members_by_user(room);
            let changed = sent
                .announced
                .get(room)
                .map_or(!local.is_empty(), |last| *last != local);
            if changed {
                broker.announce(PresenceNews::Room {
                    room: room.clone(),
                    members: local.clone(),
                });
                if local.is_empty() {
                    sent.announced.remove(room);
                } else {
                    sent.announced.insert(room.clone(), local.clone());
                }
            }
            if !registry.has_room(room) {
                // Nobody here to tell; start afresh when someone joins.
                sent.lists.remove(room);
                continue;
            }
            let members = self.remote.lock().merged_with(room, local);
            let Some(frame) = presence_frame(room, &members, self.listing) else {
                continue;
            };
            if sent.lists.get(room) != Some(&frame) {
                outcome.add(registry.deliver(&Target::room_name(room.clone()), &frame));
                sent.lists.insert(room.clone(), frame);
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
                let local = registry.room_members_by_user(room);
                let members = self.remote.lock().merged_with(room, local);
                presence_frame(room, &members, self.listing)
            });
            if let Some(frame) = frame {
                outcome.add(registry.send(connection, frame.clone()));
            }
        }
        outcome
    }
}

/// A room's list as an event frame: its first members, as many as
/// `listing` allows, and how many more there are.
fn presence_frame(room: &RoomName, members: &[Member], listing: Listing) -> Option<Utf8Bytes> {
    let mut named = members.len().min(listing.max_members);
    loop {
        let presence = PresenceEvent {
            room: room.clone(),
            members: members[..named].to_vec(),
            more: members.len() - named,
        };
        let data = match serde_json::to_string(&presence) {
            Ok(data) => data,
            Err(error) => {
                tracing::error!(%error, "presence could not be sent");
                return None;
            }
        };
        // Long names: fewer of them, until the list fits.
        if data.len() <= listing.max_bytes || named == 0 {
            return Some(protocol::event_frame(<PresenceEvent as Event>::NAME, &data).into());
        }
        named /= 2;
    }
}
