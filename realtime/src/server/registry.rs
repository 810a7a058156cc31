//! Who is connected, and which queues a frame for a target goes into.
//!
//! One registry per process, behind one lock that is held for the map
//! operations and queue pushes of one delivery, never across an `.await`:
//! emits take it for reading, connects, disconnects, joins and leaves for
//! writing.
//!
//! Queueing never waits: a connection whose queue is full is reported to
//! the caller ([`Delivery::overflowed`]), which closes it once the lock is
//! released (`close.rs`).

use std::{
    collections::{HashMap, HashSet, hash_map::Entry},
    net::IpAddr,
};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::{CloseReason, Identity, SessionKey, Target, close::CloseSignal};
use crate::{
    ConnectionId, RoomName, UserId,
    stream::{Position, Stream, TabId},
};

/// What the registry keeps for one connection.
pub(crate) struct Connection {
    /// The connection's outgoing queue (bounded).
    pub queue: mpsc::Sender<Outgoing>,
    /// How to stop the connection's task.
    pub signal: std::sync::Arc<CloseSignal>,
    pub identity: Identity,
    /// The browser tab, when it said which (see [`TabId`]).
    pub tab: Option<TabId>,
    /// Rooms this connection is in, to remove it from them when it closes.
    pub rooms: Vec<RoomName>,
}

/// What waits in a connection's queue.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Frame(Utf8Bytes),
    /// A durable event, live: not written if the connection has it
    /// already (a replay that reached further brought it).
    Event {
        frame: Utf8Bytes,
        stream: Stream,
        position: Position,
    },
    /// What a tab missed of one stream, in one place of the queue: a replay
    /// may be longer than the queue, and is not cut short by the
    /// slow-client rule. The stream then stands at `to`.
    Replay {
        stream: Stream,
        frames: Vec<Utf8Bytes>,
        to: Position,
    },
}

impl Outgoing {
    /// Adds the frames to write to `frames`, in order, leaving out the
    /// events the connection had already.
    pub fn write_into(self, reached: &mut Reached, frames: &mut Vec<Utf8Bytes>) {
        match self {
            Self::Frame(frame) => frames.push(frame),
            Self::Event {
                frame,
                stream,
                position,
            } => {
                if reached.advance(&stream, position) {
                    frames.push(frame);
                }
            }
            Self::Replay {
                stream,
                frames: replayed,
                to,
            } => {
                reached.advance(&stream, to);
                frames.extend(replayed);
            }
        }
    }
}

/// How far the frames written to one connection reached in each stream.
/// With a history in Redis, a tab's replay is read there before it is
/// queued, while this process may still be receiving some of the same
/// events live: those are skipped here.
#[derive(Debug, Default)]
pub(crate) struct Reached(HashMap<Stream, Position>);

impl Reached {
    /// More streams than a connection reads at once (everyone's, its
    /// user's and its rooms'): past it, rooms left long ago are forgotten.
    const MAX_STREAMS: usize = 256;

    /// Notes that the connection reached `position`; `false` if it had
    /// reached it (or further) already.
    pub fn advance(&mut self, stream: &Stream, position: Position) -> bool {
        if let Some(at) = self.0.get_mut(stream) {
            if at.epoch == position.epoch && at.offset >= position.offset {
                return false;
            }
            *at = position;
            return true;
        }
        if self.0.len() >= Self::MAX_STREAMS {
            self.0.clear();
        }
        self.0.insert(stream.clone(), position);
        true
    }
}

/// Sizes of the registry's maps, for tests and monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistryStats {
    pub connections: usize,
    /// Connections of visitors (not logged in).
    pub anonymous: usize,
    /// Users with at least one connection.
    pub users: usize,
    /// Sessions with at least one connection.
    pub sessions: usize,
    /// Rooms with at least one member.
    pub rooms: usize,
}

/// Why a join did not happen.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JoinError {
    /// The connection is already in its maximum number of rooms.
    TooManyRooms,
    /// The connection closed meanwhile.
    Gone,
}

/// How many connections the registry takes, in all and per actor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectionLimits {
    pub total: usize,
    pub per_user: usize,
    pub anonymous_per_address: usize,
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The server holds as many connections as it takes.
    Full,
    /// The user has as many connections as one user may.
    TooManyForUser,
    /// The address has as many anonymous connections as one address may.
    TooManyForAddress,
    /// The connection's session has ended (a log-out raced the upgrade).
    SessionEnded,
    /// The user (or the visitor's address) opened connections faster than
    /// its pace.
    TooFast,
}

impl Refused {
    /// The limit, as metrics label it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::TooManyForUser => "per_user",
            Self::TooManyForAddress => "per_address",
            Self::SessionEnded => "session_ended",
            Self::TooFast => "new_connections",
        }
    }

    /// Why, in words for the person at the keyboard (the body of the
    /// refused upgrade, or the close frame's reason).
    pub fn reason(self) -> &'static str {
        match self {
            Self::Full => "The server is full right now. Please try again later.",
            Self::TooManyForUser => "You have too many tabs open. Close some and try again.",
            Self::TooManyForAddress => "Too many connections from your address.",
            Self::SessionEnded => "session ended",
            Self::TooFast => "Too many new connections. Wait a moment and try again.",
        }
    }
}

#[derive(Default)]
pub(crate) struct Registry {
    connections: HashMap<ConnectionId, Connection>,
    users: HashMap<UserId, Vec<ConnectionId>>,
    sessions: HashMap<SessionKey, Vec<ConnectionId>>,
    rooms: HashMap<RoomName, HashSet<ConnectionId>>,
    /// Visitors' connections per address.
    anonymous: HashMap<IpAddr, usize>,
}

impl Registry {
    /// Whether a connection of `identity` would be past a limit.
    pub fn check(&self, identity: &Identity, limits: ConnectionLimits) -> Result<(), Refused> {
        if self.connections.len() >= limits.total {
            return Err(Refused::Full);
        }
        match (identity.user, identity.address) {
            (Some(user), _) => {
                let held = self.users.get(&user).map_or(0, Vec::len);
                if held >= limits.per_user {
                    return Err(Refused::TooManyForUser);
                }
            }
            (None, Some(address)) => {
                let held = self.anonymous.get(&address).copied().unwrap_or(0);
                if held >= limits.anonymous_per_address {
                    return Err(Refused::TooManyForAddress);
                }
            }
            (None, None) => {}
        }
        Ok(())
    }

    /// Registers a connection, unless a limit says no.
    pub fn insert(
        &mut self,
        id: ConnectionId,
        connection: Connection,
        limits: ConnectionLimits,
    ) -> Result<(), Refused> {
        self.check(&connection.identity, limits)?;
        let identity = &connection.identity;
        match (identity.user, identity.address) {
            (Some(user), _) => self.users.entry(user).or_default().push(id),
            (None, Some(address)) => *self.anonymous.entry(address).or_default() += 1,
            (None, None) => {}
        }
        if let Some(session) = &identity.session {
            self.sessions.entry(session.clone()).or_default().push(id);
        }
        self.connections.insert(id, connection);
        Ok(())
    }

    /// Forgets a connection everywhere. Returns it, if it was still here.
    pub fn remove(&mut self, id: ConnectionId) -> Option<Connection> {
        let connection = self.connections.remove(&id)?;
        match (connection.identity.user, connection.identity.address) {
            (Some(user), _) => remove_from_group(&mut self.users, user, id),
            (None, Some(address)) => {
                if let Entry::Occupied(mut held) = self.anonymous.entry(address) {
                    *held.get_mut() -= 1;
                    if *held.get() == 0 {
                        held.remove();
                    }
                }
            }
            (None, None) => {}
        }
        if let Some(session) = &connection.identity.session {
            remove_from_group(&mut self.sessions, session.clone(), id);
        }
        for room in &connection.rooms {
            if let Entry::Occupied(mut members) = self.rooms.entry(room.clone()) {
                members.get_mut().remove(&id);
                if members.get().is_empty() {
                    members.remove();
                }
            }
        }
        Some(connection)
    }

    /// Adds a connection to a room. Joining a room twice is not an error.
    /// Returns whether the connection's user arrived in the room with it (it
    /// is their first connection there; never for a visitor).
    pub fn join(
        &mut self,
        id: ConnectionId,
        room: &RoomName,
        max_rooms: usize,
    ) -> Result<bool, JoinError> {
        let connection = self.connections.get(&id).ok_or(JoinError::Gone)?;
        if connection.rooms.contains(room) {
            return Ok(false);
        }
        if connection.rooms.len() >= max_rooms {
            return Err(JoinError::TooManyRooms);
        }
        let user = connection.identity.user;
        let arrived = user.is_some_and(|user| !self.user_in_room(room, user));
        if let Some(connection) = self.connections.get_mut(&id) {
            connection.rooms.push(room.clone());
        }
        self.rooms.entry(room.clone()).or_default().insert(id);
        Ok(arrived)
    }

    /// Removes a connection from a room. `None` if it was not in it;
    /// otherwise whether its user departed with it (no other connection of
    /// theirs is left in the room; never for a visitor).
    pub fn leave(&mut self, id: ConnectionId, room: &RoomName) -> Option<bool> {
        let connection = self.connections.get_mut(&id)?;
        let index = connection.rooms.iter().position(|r| r == room)?;
        connection.rooms.swap_remove(index);
        let user = connection.identity.user;
        if let Entry::Occupied(mut members) = self.rooms.entry(room.clone()) {
            members.get_mut().remove(&id);
            if members.get().is_empty() {
                members.remove();
            }
        }
        Some(user.is_some_and(|user| !self.user_in_room(room, user)))
    }

    /// Whether any connection of `user` is in `room`.
    pub fn user_in_room(&self, room: &RoomName, user: UserId) -> bool {
        self.rooms.get(room).is_some_and(|members| {
            members.iter().any(|id| {
                self.connections
                    .get(id)
                    .is_some_and(|connection| connection.identity.user == Some(user))
            })
        })
    }

    /// Whether a connection is registered.
    pub fn contains(&self, id: ConnectionId) -> bool {
        self.connections.contains_key(&id)
    }

    /// Whether a room has members here.
    pub fn has_room(&self, room: &RoomName) -> bool {
        self.rooms.contains_key(room)
    }

    /// The rooms with members here.
    pub fn room_names(&self) -> impl Iterator<Item = &RoomName> {
        self.rooms.keys()
    }

    /// The sessions with at least one connection.
    pub fn session_keys(&self) -> Vec<SessionKey> {
        self.sessions.keys().cloned().collect()
    }

    /// The connections of a session.
    pub fn session_connections(&self, session: &SessionKey) -> Vec<ConnectionId> {
        self.sessions.get(session).cloned().unwrap_or_default()
    }

    /// Every connection id.
    pub fn connection_ids(&self) -> Vec<ConnectionId> {
        self.connections.keys().copied().collect()
    }

    /// The members of a room, in no particular order.
    pub fn room_members(&self, room: &RoomName) -> Vec<ConnectionId> {
        self.rooms
            .get(room)
            .map(|members| members.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The users with a connection in the room, each once, with their
    /// names, sorted by name.
    pub fn room_members_by_user(&self, room: &RoomName) -> Vec<crate::Member> {
        let members: Vec<crate::Member> = self
            .rooms
            .get(room)
            .into_iter()
            .flatten()
            .filter_map(|id| {
                let identity = &self.connections.get(id)?.identity;
                let user = identity.user?;
                Some(crate::Member {
                    user,
                    name: identity.name.clone().unwrap_or_else(|| user.to_string()),
                })
            })
            .collect();
        crate::presence::each_user_once(members)
    }

    /// The users with a connection in the room, each once.
    pub fn room_users(&self, room: &RoomName) -> Vec<UserId> {
        let mut users: Vec<UserId> = self
            .rooms
            .get(room)
            .into_iter()
            .flatten()
            .filter_map(|id| self.connections.get(id)?.identity.user)
            .collect();
        users.sort_unstable();
        users.dedup();
        users
    }

    pub fn stats(&self) -> RegistryStats {
        RegistryStats {
            connections: self.connections.len(),
            anonymous: self.connections.len() - self.users.values().map(Vec::len).sum::<usize>(),
            users: self.users.len(),
            sessions: self.sessions.len(),
            rooms: self.rooms.len(),
        }
    }

    /// Queues `frame` for every connection `target` names, each once.
    ///
    /// Never waits: a connection whose queue is full is reported in
    /// `outcome.overflowed` for the caller to disconnect, once the lock is
    /// released.
    pub fn deliver(&self, target: &Target, frame: &Utf8Bytes, outcome: &mut Delivery) {
        let mut push = |id: ConnectionId| {
            if target.except == Some(id) {
                return;
            }
            let Some(connection) = self.connections.get(&id) else {
                return;
            };
            connection.push(id, Outgoing::Frame(frame.clone()), outcome);
        };

        if target.everyone {
            self.connections.keys().copied().for_each(&mut push);
            return;
        }
        let groups = target.users.len() + target.rooms.len() + target.connections.len();
        let user_connections = target
            .users
            .iter()
            .flat_map(|user| self.users.get(user).into_iter().flatten().copied());
        let room_connections = target
            .rooms
            .iter()
            .flat_map(|room| self.rooms.get(room).into_iter().flatten().copied());
        let all = user_connections
            .chain(room_connections)
            .chain(target.connections.iter().copied());
        if groups <= 1 {
            // One user, one room or one connection: no one is named twice.
            all.for_each(push);
        } else {
            let mut seen = HashSet::new();
            all.filter(|id| seen.insert(*id)).for_each(push);
        }
    }
}

impl Registry {
    /// The tab a connection belongs to, if it said.
    pub fn tab_of(&self, id: ConnectionId) -> Option<TabId> {
        self.connections.get(&id)?.tab
    }

    /// Whether any connection here reads `stream`.
    #[cfg(feature = "redis")]
    pub fn has_readers(&self, stream: &Stream) -> bool {
        match stream {
            Stream::Everyone => !self.connections.is_empty(),
            Stream::User(user) => self.users.contains_key(user),
            Stream::Room(room) => self.rooms.contains_key(room),
        }
    }

    /// Whether a connection reads `stream` (would get its events live).
    pub fn reads(&self, id: ConnectionId, stream: &Stream) -> bool {
        let Some(connection) = self.connections.get(&id) else {
            return false;
        };
        match stream {
            Stream::Everyone => true,
            Stream::User(user) => connection.identity.user == Some(*user),
            Stream::Room(room) => connection.rooms.contains(room),
        }
    }

    /// Queues a durable event for the connections that read `stream`,
    /// except those `except` names and, when `seen` is given, those
    /// already in it (which it then records).
    pub fn deliver_event(
        &self,
        (stream, position): (&Stream, Position),
        except: Except,
        frame: &Utf8Bytes,
        seen: Option<&mut HashSet<ConnectionId>>,
        outcome: &mut Delivery,
    ) {
        let readers: Box<dyn Iterator<Item = ConnectionId> + '_> = match stream {
            Stream::Everyone => Box::new(self.connections.keys().copied()),
            Stream::User(user) => Box::new(self.users.get(user).into_iter().flatten().copied()),
            Stream::Room(room) => Box::new(self.rooms.get(room).into_iter().flatten().copied()),
        };
        self.for_each_once(readers, except, seen, |id, connection| {
            let item = Outgoing::Event {
                frame: frame.clone(),
                stream: stream.clone(),
                position,
            };
            connection.push(id, item, outcome);
        });
    }

    /// Queues `frame` for each of `ids` still registered, except those
    /// `except` names and those already `seen`.
    pub fn deliver_to_each(
        &self,
        ids: impl Iterator<Item = ConnectionId>,
        except: Except,
        frame: &Utf8Bytes,
        seen: Option<&mut HashSet<ConnectionId>>,
        outcome: &mut Delivery,
    ) {
        self.for_each_once(ids, except, seen, |id, connection| {
            connection.push(id, Outgoing::Frame(frame.clone()), outcome);
        });
    }

    fn for_each_once(
        &self,
        ids: impl Iterator<Item = ConnectionId>,
        except: Except,
        mut seen: Option<&mut HashSet<ConnectionId>>,
        mut each: impl FnMut(ConnectionId, &Connection),
    ) {
        for id in ids {
            if except.connection == Some(id) || seen.as_mut().is_some_and(|seen| !seen.insert(id)) {
                continue;
            }
            if let Some(connection) = self.connections.get(&id)
                && (except.tab.is_none() || connection.tab != except.tab)
            {
                each(id, connection);
            }
        }
    }

    /// Queues for every reader of `stream` here the same replay (less
    /// the events its tab was left out of), after which it stands at `to`.
    #[cfg(feature = "redis")]
    pub fn replay_to_readers(
        &self,
        stream: &Stream,
        events: &[super::history::Recorded],
        to: Position,
        outcome: &mut Delivery,
    ) {
        let readers: Vec<ConnectionId> = match stream {
            Stream::Everyone => self.connections.keys().copied().collect(),
            Stream::User(user) => self.users.get(user).cloned().unwrap_or_default(),
            Stream::Room(room) => self.room_members(room),
        };
        for id in readers {
            let Some(connection) = self.connections.get(&id) else {
                continue;
            };
            let frames = events
                .iter()
                .filter(|event| connection.tab.is_none() || event.except != connection.tab)
                .map(|event| event.frame.clone())
                .collect();
            let replay = Outgoing::Replay {
                stream: stream.clone(),
                frames,
                to,
            };
            connection.push(id, replay, outcome);
        }
    }

    /// Queues a replay of `stream` for one connection. `false` if its queue
    /// is full (or it is gone).
    pub fn queue_replay(
        &self,
        id: ConnectionId,
        stream: &Stream,
        frames: Vec<Utf8Bytes>,
        to: Position,
    ) -> bool {
        self.connections.get(&id).is_some_and(|connection| {
            let replay = Outgoing::Replay {
                stream: stream.clone(),
                frames,
                to,
            };
            connection.queue.try_send(replay).is_ok()
        })
    }
}

/// Who an event leaves out: the connection that caused it, and (for
/// durable events, whose emit names it) that connection's tab, whatever
/// its connection now.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Except {
    pub connection: Option<ConnectionId>,
    pub tab: Option<TabId>,
}

/// What one delivery did.
#[derive(Debug, Default)]
pub(crate) struct Delivery {
    /// Connections the frame was queued for.
    pub queued: usize,
    /// Connections whose queue was full.
    pub overflowed: Vec<ConnectionId>,
}

fn remove_from_group<K: Eq + std::hash::Hash>(
    groups: &mut HashMap<K, Vec<ConnectionId>>,
    key: K,
    id: ConnectionId,
) {
    if let Entry::Occupied(mut members) = groups.entry(key) {
        members.get_mut().retain(|member| *member != id);
        if members.get().is_empty() {
            members.remove();
        }
    }
}

impl Connection {
    /// Asks the connection's task to close with `reason`.
    pub fn close(&self, reason: CloseReason) {
        self.signal.close(reason);
    }

    /// Queues one item, never waiting.
    fn push(&self, id: ConnectionId, item: Outgoing, outcome: &mut Delivery) {
        match self.queue.try_send(item) {
            Ok(()) => outcome.queued += 1,
            Err(TrySendError::Full(_)) => outcome.overflowed.push(id),
            // The connection is closing; its task removes it.
            Err(TrySendError::Closed(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const UNLIMITED: ConnectionLimits = ConnectionLimits {
        total: usize::MAX,
        per_user: usize::MAX,
        anonymous_per_address: usize::MAX,
    };

    struct Fixture {
        registry: Registry,
        queues: HashMap<ConnectionId, mpsc::Receiver<Outgoing>>,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                registry: Registry::default(),
                queues: HashMap::new(),
            }
        }

        fn connect(&mut self, id: u64, user: Option<i64>, session: Option<&str>) -> ConnectionId {
            self.connect_with_capacity(id, user, session, 8)
        }

        fn connect_with_capacity(
            &mut self,
            id: u64,
            user: Option<i64>,
            session: Option<&str>,
            capacity: usize,
        ) -> ConnectionId {
            let id = ConnectionId(id);
            let (queue, receiver) = mpsc::channel(capacity);
            self.registry
                .insert(
                    id,
                    Connection {
                        queue,
                        signal: Arc::new(CloseSignal::default()),
                        identity: Identity {
                            user: user.map(UserId),
                            session: session.map(SessionKey::from),
                            name: user.map(|user| format!("user {user}")),
                            address: None,
                        },
                        tab: None,
                        rooms: Vec::new(),
                    },
                    UNLIMITED,
                )
                .unwrap();
            self.queues.insert(id, receiver);
            id
        }

        /// Delivers one frame and returns who got it, sorted.
        fn deliver(&mut self, target: &Target) -> Vec<u64> {
            let mut outcome = Delivery::default();
            self.registry
                .deliver(target, &Utf8Bytes::from_static("frame"), &mut outcome);
            let mut got: Vec<u64> = self
                .queues
                .iter_mut()
                .filter_map(|(id, queue)| queue.try_recv().ok().map(|_| id.0))
                .collect();
            got.sort_unstable();
            assert_eq!(got.len(), outcome.queued);
            got
        }
    }

    #[test]
    fn everyone_means_every_connection_anonymous_or_not() {
        let mut f = Fixture::new();
        f.connect(1, Some(10), Some("s1"));
        f.connect(2, None, None);
        assert_eq!(f.deliver(&Target::everyone()), [1, 2]);
    }

    #[test]
    fn a_user_gets_it_on_every_connection_and_visitors_never() {
        let mut f = Fixture::new();
        f.connect(1, Some(10), Some("a"));
        f.connect(2, Some(10), Some("b"));
        f.connect(3, Some(11), Some("c"));
        f.connect(4, None, None);
        assert_eq!(f.deliver(&Target::user(10)), [1, 2]);
        assert_eq!(f.deliver(&Target::users([10, 11])), [1, 2, 3]);
        assert_eq!(
            f.deliver(&Target::users(Vec::<i64>::new())),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn rooms_and_unions_name_each_connection_once() {
        let mut f = Fixture::new();
        let a = f.connect(1, Some(10), None);
        let b = f.connect(2, Some(11), None);
        f.connect(3, None, None);
        let red = RoomName::from("team:red");
        let blue = RoomName::from("team:blue");
        f.registry.join(a, &red, 8).unwrap();
        f.registry.join(a, &blue, 8).unwrap();
        f.registry.join(b, &blue, 8).unwrap();

        assert_eq!(f.deliver(&Target::room_name(red.clone())), [1]);
        assert_eq!(
            f.deliver(&Target::room_names([red.clone(), blue.clone()])),
            [1, 2]
        );
        assert_eq!(
            f.deliver(
                &Target::room_name(blue)
                    .and(Target::user(10))
                    .and(Target::connection(a))
            ),
            [1, 2]
        );
    }

    #[test]
    fn except_leaves_out_one_connection() {
        let mut f = Fixture::new();
        let a = f.connect(1, Some(10), None);
        f.connect(2, Some(10), None);
        assert_eq!(f.deliver(&Target::everyone().except(a)), [2]);
        assert_eq!(f.deliver(&Target::user(10).except(a)), [2]);
    }

    #[test]
    fn a_full_queue_is_reported_not_waited_for() {
        let mut f = Fixture::new();
        let slow = f.connect_with_capacity(1, None, None, 1);
        let mut outcome = Delivery::default();
        let frame = Utf8Bytes::from_static("frame");
        f.registry
            .deliver(&Target::everyone(), &frame, &mut outcome);
        f.registry
            .deliver(&Target::everyone(), &frame, &mut outcome);
        assert_eq!(outcome.queued, 1);
        assert_eq!(outcome.overflowed, [slow]);
    }

    #[test]
    fn the_room_limit_is_enforced_and_rejoining_is_free() {
        let mut f = Fixture::new();
        let a = f.connect(1, None, None);
        f.registry.join(a, &"r:1".into(), 2).unwrap();
        f.registry.join(a, &"r:1".into(), 2).unwrap();
        f.registry.join(a, &"r:2".into(), 2).unwrap();
        assert_eq!(
            f.registry.join(a, &"r:3".into(), 2),
            Err(JoinError::TooManyRooms)
        );
        assert_eq!(
            f.registry.join(ConnectionId(99), &"r:1".into(), 2),
            Err(JoinError::Gone)
        );
    }

    #[test]
    fn removing_a_connection_leaves_no_trace() {
        let mut f = Fixture::new();
        let a = f.connect(1, Some(10), Some("s"));
        let b = f.connect(2, Some(10), Some("s"));
        f.registry.join(a, &"r:1".into(), 8).unwrap();
        f.registry.join(b, &"r:1".into(), 8).unwrap();
        assert_eq!(
            f.registry.stats(),
            RegistryStats {
                connections: 2,
                anonymous: 0,
                users: 1,
                sessions: 1,
                rooms: 1
            }
        );

        f.registry.remove(a);
        assert_eq!(f.registry.room_members(&"r:1".into()), [b]);
        f.registry.remove(b);
        assert_eq!(f.registry.stats(), RegistryStats::default());
        assert!(f.registry.remove(b).is_none());
    }

    #[test]
    fn leaving_empties_the_room() {
        let mut f = Fixture::new();
        let a = f.connect(1, None, None);
        f.registry.join(a, &"r:1".into(), 8).unwrap();
        assert_eq!(f.registry.leave(a, &"r:1".into()), Some(false));
        assert_eq!(f.registry.leave(a, &"r:1".into()), None);
        assert_eq!(f.registry.stats().rooms, 0);
    }

    #[test]
    fn a_user_arrives_with_their_first_tab_and_departs_with_their_last() {
        let mut f = Fixture::new();
        let room = RoomName::from("r:1");
        let tab1 = f.connect(1, Some(10), None);
        let tab2 = f.connect(2, Some(10), None);
        let visitor = f.connect(3, None, None);
        assert_eq!(f.registry.join(tab1, &room, 8), Ok(true));
        assert_eq!(f.registry.join(tab2, &room, 8), Ok(false));
        assert_eq!(f.registry.join(visitor, &room, 8), Ok(false));
        assert_eq!(f.registry.leave(tab1, &room), Some(false));
        assert_eq!(f.registry.leave(tab2, &room), Some(true));
        assert!(!f.registry.user_in_room(&room, UserId(10)));
    }

    #[test]
    fn members_are_listed_once_per_user_by_name() {
        let mut f = Fixture::new();
        let room = RoomName::from("r:1");
        for (id, user) in [(1, Some(20)), (2, Some(10)), (3, Some(20)), (4, None)] {
            let connection = f.connect(id, user, None);
            f.registry.join(connection, &room, 8).unwrap();
        }
        let names: Vec<String> = f
            .registry
            .room_members_by_user(&room)
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, ["user 10", "user 20"]);
    }

    #[test]
    fn room_users_counts_each_user_once() {
        let mut f = Fixture::new();
        let a = f.connect(1, Some(10), None);
        let b = f.connect(2, Some(10), None);
        let c = f.connect(3, None, None);
        for id in [a, b, c] {
            f.registry.join(id, &"r:1".into(), 8).unwrap();
        }
        assert_eq!(f.registry.room_users(&"r:1".into()), [UserId(10)]);
    }
}
