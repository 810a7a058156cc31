//! Who is connected, and which queues a frame goes into: the [`Registry`],
//! owner of the maps of connections, users, sessions, tabs and rooms, and
//! of the lock around them.
//!
//! One registry per process. Its lock is held for the map operations and
//! queue pushes of one step, never across an `.await`: emits take it for
//! reading, connects, disconnects, joins and leaves for writing. Every
//! method takes and releases it; the only way to hold it across several
//! steps is [`Registry::read_after`] or [`Registry::write_after`], which ask
//! for proof that the caller holds the streams' lock ([`TakenBefore`]): the
//! streams' lock is always taken first, and code holding the registry's
//! can never take it.
//!
//! Queueing never waits: a connection whose queue is full is reported to
//! the caller ([`Delivery::overflowed`]), who closes it once the lock is
//! released. The registry knows nothing of closing, presence or recovery.
//! This file keeps the maps (keyed by connection id as `by_id.rs` hashes
//! it); `roster.rs` is the lists of connections the walks to everyone and
//! to a room go through, `delivery.rs` queues frames for connections, and
//! `outgoing.rs` is what a queue holds.

mod by_id;
mod delivery;
mod outgoing;
mod queue;
mod roster;
mod visitors;

use std::{
    collections::{HashMap, hash_map::Entry},
    sync::Arc,
};

use axum::extract::ws::Utf8Bytes;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

pub(crate) use self::by_id::ById;
pub(crate) use self::{
    delivery::{Kept, Placed},
    outgoing::{Delivery, Gap, Live, Outgoing, Positions, Reached, Replay, Replayed},
    queue::{QueueHandle, QueueReceiver, QueueSender, Wanted, queue},
};
use self::{roster::Roster, visitors::Visitors};
use super::{
    Identity, Refused, SessionKey, TabMark, Target, sessions::EndedSessions, signal::CloseSignal,
};
use crate::{ConnectionId, Member, RoomName, UserId, protocol::ControlFrame, stream::Stream};

/// What the registry keeps for one connection.
pub(crate) struct Connection {
    /// The connection's outgoing queue (bounded in items and bytes).
    pub queue: QueueSender,
    /// How to stop the connection's task.
    pub signal: Arc<CloseSignal>,
    pub identity: Identity,
    /// The browser tab, bound to its session, when the tab said which.
    pub tab: Option<TabMark>,
    /// Rooms this connection is in, to remove it from them when it closes.
    pub rooms: Vec<RoomName>,
}

impl Connection {
    /// Queues one item, never waiting.
    fn push(&self, id: ConnectionId, item: Outgoing, outcome: &mut Delivery) {
        outcome.record(id, self.queue.try_send(item));
    }

    /// Whether the connection reads `stream` (gets its events live).
    fn reads(&self, stream: &Stream) -> bool {
        match stream {
            Stream::Everyone => true,
            Stream::User(user) => self.identity.user == Some(*user),
            Stream::Room(room) => self.rooms.contains(room),
        }
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

/// How many connections the registry takes, in all and per actor, and how
/// many rooms each may be in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub total: usize,
    /// Visitors' connections in all.
    pub anonymous: usize,
    pub per_user: usize,
    pub anonymous_per_address: usize,
    pub rooms_per_connection: usize,
}

/// Who an event leaves out: the connection that caused it, and that
/// connection's tab (bound to its session), whatever its connection now.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Except {
    pub connection: Option<ConnectionId>,
    pub tab: Option<TabMark>,
}

impl Except {
    pub fn of(target: &Target) -> Self {
        Self {
            connection: target.except,
            tab: target.except_tab,
        }
    }

    fn leaves_out(self, id: ConnectionId, connection: &Connection) -> bool {
        self.leaves_out_tab(id, connection.tab)
    }

    fn leaves_out_tab(self, id: ConnectionId, tab: Option<TabMark>) -> bool {
        self.connection == Some(id) || (self.tab.is_some() && tab == self.tab)
    }
}

/// Proof that the caller holds the streams' lock, which is always taken
/// before the registry's: only with it can the registry's lock be held
/// across several steps. Implemented by the streams' guard alone.
pub(crate) trait TakenBefore {}

/// The registry of one process: see the module documentation.
pub(crate) struct Registry {
    maps: RwLock<Maps>,
    limits: Limits,
}

impl Registry {
    pub fn new(limits: Limits) -> Self {
        Self {
            maps: RwLock::new(Maps::default()),
            limits,
        }
    }

    /// Holds the lock for reading across several steps, after the
    /// streams' lock.
    pub fn read_after(&self, _streams: &impl TakenBefore) -> RwLockReadGuard<'_, Maps> {
        self.maps.read()
    }

    /// Holds the lock for writing across several steps, after the
    /// streams' lock.
    pub fn write_after(&self, _streams: &impl TakenBefore) -> RwLockWriteGuard<'_, Maps> {
        self.maps.write()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The tab of a connection, bound to its session, if it said which.
    pub fn tab_of(&self, id: ConnectionId) -> Option<TabMark> {
        self.maps.read().tab_of(id)
    }

    /// Whether a connection of `identity` would be past a limit now.
    pub fn check(&self, identity: &Identity) -> Result<(), Refused> {
        self.maps.read().check(identity, self.limits)
    }

    /// Registers a connection, unless a limit says no.
    pub fn insert(
        &self,
        id: ConnectionId,
        connection: Connection,
        ended: &EndedSessions,
    ) -> Result<(), Refused> {
        self.maps.write().insert(id, connection, self.limits, ended)
    }

    /// Forgets a connection everywhere. Returns it, if it was still here,
    /// with the rooms its user left with it (no other connection of theirs
    /// is there).
    pub fn remove(&self, id: ConnectionId) -> Option<(Connection, Vec<RoomName>)> {
        let mut maps = self.maps.write();
        let connection = maps.remove(id)?;
        let departed = match connection.identity.user {
            Some(user) => {
                let still_in = maps.rooms_of_user(user);
                connection
                    .rooms
                    .iter()
                    .filter(|room| !still_in.contains(room))
                    .cloned()
                    .collect()
            }
            None => Vec::new(),
        };
        Some((connection, departed))
    }

    /// Removes a connection from a room and queues its `left` frame. `None`
    /// if it was not in it; otherwise whether its user departed with it,
    /// and what queueing the frame did.
    pub fn leave(&self, id: ConnectionId, room: &RoomName) -> Option<(bool, Delivery)> {
        let mut maps = self.maps.write();
        let departed = maps.leave(id, room)?;
        let mut outcome = Delivery::default();
        if let Some(connection) = maps.connections.get(&id) {
            let left = Outgoing::Left(Box::new((
                ControlFrame::Left { room }.to_json().into(),
                Stream::Room(room.clone()),
            )));
            connection.push(id, left, &mut outcome);
        }
        Some((departed, outcome))
    }

    /// Queues `frame` for every connection `target` names, each once.
    pub fn deliver(&self, target: &Target, frame: &Utf8Bytes) -> Delivery {
        let mut outcome = Delivery::default();
        self.maps.read().deliver(target, frame, &mut outcome);
        outcome
    }

    /// Queues a frame for one connection.
    pub fn send(&self, id: ConnectionId, frame: Utf8Bytes) -> Delivery {
        let mut outcome = Delivery::default();
        if let Some(connection) = self.maps.read().connections.get(&id) {
            connection.push(id, Outgoing::frame(frame), &mut outcome);
        }
        outcome
    }

    /// Whether every connection `target` names is registered here, and it
    /// names nothing else (no stream, no tab): other processes need not
    /// hear of it.
    pub fn holds_all(&self, target: &Target) -> bool {
        target.is_connections_only() && target.tabs.is_empty() && {
            let maps = self.maps.read();
            target
                .connections
                .iter()
                .all(|id| maps.connections.contains_key(id))
        }
    }

    /// The connections of a session.
    pub fn session_connections(&self, session: &SessionKey) -> Vec<ConnectionId> {
        self.maps
            .read()
            .sessions
            .get(session)
            .cloned()
            .unwrap_or_default()
    }

    /// The sessions with at least one connection.
    pub fn session_keys(&self) -> Vec<SessionKey> {
        self.maps.read().sessions.keys().cloned().collect()
    }

    /// Every connection id.
    pub fn connection_ids(&self) -> Vec<ConnectionId> {
        self.maps.read().connections.keys().copied().collect()
    }

    /// The members of a room, in no particular order.
    pub fn room_members(&self, room: &RoomName) -> Vec<ConnectionId> {
        self.maps.read().room_members(room)
    }

    /// The users with a connection in the room, each once, sorted.
    pub fn room_users(&self, room: &RoomName) -> Vec<UserId> {
        let maps = self.maps.read();
        let mut users: Vec<UserId> = maps
            .readers(&Stream::Room(room.clone()))
            .filter_map(|id| maps.connections.get(&id)?.identity.user)
            .collect();
        users.sort_unstable();
        users.dedup();
        users
    }

    /// The users with a connection in the room, each once, with their
    /// names, sorted by name.
    pub fn room_members_by_user(&self, room: &RoomName) -> Vec<Member> {
        self.maps.read().room_members_by_user(room)
    }

    /// Whether a room has members here.
    pub fn has_room(&self, room: &RoomName) -> bool {
        self.maps.read().rooms.contains_key(room)
    }

    /// The users of every room with members here that `keep` keeps.
    pub fn members_of_rooms(
        &self,
        keep: impl Fn(&RoomName) -> bool,
    ) -> Vec<(RoomName, Vec<Member>)> {
        let maps = self.maps.read();
        maps.rooms
            .keys()
            .filter(|room| keep(room))
            .map(|room| (room.clone(), maps.room_members_by_user(room)))
            .filter(|(_, members)| !members.is_empty())
            .collect()
    }

    /// How many connections, users, sessions and rooms the registry holds.
    pub fn stats(&self) -> RegistryStats {
        self.maps.read().stats()
    }

    /// The streams some connection here reads (see [`Maps::streams_read`]).
    #[cfg(feature = "redis")]
    pub fn streams_read(&self) -> Vec<Stream> {
        self.maps.read().streams_read().collect()
    }
}

/// The maps themselves, behind the registry's lock.
#[derive(Default)]
pub(crate) struct Maps {
    connections: HashMap<ConnectionId, Connection, ById>,
    users: HashMap<UserId, Vec<ConnectionId>>,
    sessions: HashMap<SessionKey, Vec<ConnectionId>>,
    tabs: HashMap<TabMark, Vec<ConnectionId>>,
    /// Each room's members.
    rooms: HashMap<RoomName, Roster>,
    /// Visitors' connections, in all, per address and per IPv6 block.
    visitors: Visitors,
    /// Every connection again, in a list for the walks to everyone.
    everyone: Roster,
}

impl Maps {
    /// Whether a connection of `identity` would be past a limit.
    fn check(&self, identity: &Identity, limits: Limits) -> Result<(), Refused> {
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
            (None, address) => self.visitors.check(address, limits)?,
        }
        Ok(())
    }

    /// Registers a connection, unless a limit says no, or its session
    /// ended.
    pub fn insert(
        &mut self,
        id: ConnectionId,
        connection: Connection,
        limits: Limits,
        ended: &EndedSessions,
    ) -> Result<(), Refused> {
        // Under the registry's lock, which closing a session's connections
        // takes after noting that it ended (`close.rs`): a connection whose
        // upgrade raced the log-out is either here to be closed, or
        // refused now.
        if let Some(session) = &connection.identity.session
            && ended.contains(session)
        {
            return Err(Refused::SessionEnded);
        }
        self.check(&connection.identity, limits)?;
        debug_assert!(
            !self.connections.contains_key(&id),
            "connection ids are unique"
        );
        let identity = &connection.identity;
        match (identity.user, identity.address) {
            (Some(user), _) => self.users.entry(user).or_default().push(id),
            (None, address) => self.visitors.add(address),
        }
        if let Some(session) = &identity.session {
            self.sessions.entry(session.clone()).or_default().push(id);
        }
        if let Some(tab) = connection.tab {
            self.tabs.entry(tab).or_default().push(id);
        }
        self.everyone
            .insert(id, connection.tab, connection.queue.handle());
        self.connections.insert(id, connection);
        Ok(())
    }

    /// Forgets a connection everywhere. Returns it, if it was still here.
    fn remove(&mut self, id: ConnectionId) -> Option<Connection> {
        let connection = self.connections.remove(&id)?;
        self.everyone.remove(id);
        match (connection.identity.user, connection.identity.address) {
            (Some(user), _) => remove_from_group(&mut self.users, user, id),
            (None, address) => self.visitors.remove(address),
        }
        if let Some(session) = &connection.identity.session {
            remove_from_group(&mut self.sessions, session.clone(), id);
        }
        if let Some(tab) = connection.tab {
            remove_from_group(&mut self.tabs, tab, id);
        }
        for room in &connection.rooms {
            self.forget_member(room, id);
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
        let (tab, queue) = (connection.tab, connection.queue.handle());
        let arrived = user.is_some_and(|user| !self.user_in_room(room, user));
        if let Some(connection) = self.connections.get_mut(&id) {
            connection.rooms.push(room.clone());
        }
        self.rooms
            .entry(room.clone())
            .or_default()
            .insert(id, tab, queue);
        Ok(arrived)
    }

    /// Removes a connection from a room. `None` if it was not in it;
    /// otherwise whether its user departed with it (no other connection of
    /// theirs is left in the room; never for a visitor).
    fn leave(&mut self, id: ConnectionId, room: &RoomName) -> Option<bool> {
        let connection = self.connections.get_mut(&id)?;
        let index = connection.rooms.iter().position(|r| r == room)?;
        connection.rooms.swap_remove(index);
        let user = connection.identity.user;
        self.forget_member(room, id);
        Some(user.is_some_and(|user| !self.user_in_room(room, user)))
    }

    /// Takes a connection out of a room's roster, and the room out of the
    /// map once it has no member.
    fn forget_member(&mut self, room: &RoomName, id: ConnectionId) {
        if let Entry::Occupied(mut members) = self.rooms.entry(room.clone()) {
            members.get_mut().remove(id);
            if members.get().is_empty() {
                members.remove();
            }
        }
    }

    /// The rooms some connection of `user` is in, each once.
    fn rooms_of_user(&self, user: UserId) -> std::collections::HashSet<&RoomName> {
        self.users
            .get(&user)
            .into_iter()
            .flatten()
            .filter_map(|id| self.connections.get(id))
            .flat_map(|connection| &connection.rooms)
            .collect()
    }

    /// Whether any connection of `user` is in `room`: asked of the user's
    /// own connections (a few, each in a few rooms), never of the room's
    /// members, who may be thousands, under the write lock every emit
    /// waits for.
    fn user_in_room(&self, room: &RoomName, user: UserId) -> bool {
        self.users.get(&user).is_some_and(|ids| {
            ids.iter().any(|id| {
                self.connections
                    .get(id)
                    .is_some_and(|connection| connection.rooms.contains(room))
            })
        })
    }

    /// The connections that read `stream` here (get its events live).
    pub fn readers(&self, stream: &Stream) -> Readers<'_> {
        match stream {
            Stream::User(user) => Readers::Listed(self.users.get(user).map(|ids| ids.iter())),
            Stream::Everyone | Stream::Room(_) => {
                Readers::Roster(self.roster(stream).map(Roster::ids))
            }
        }
    }

    /// The list of a stream's readers that a walk goes through: everyone,
    /// or a room's members (`None` for a user's stream, or a room without
    /// members here).
    fn roster(&self, stream: &Stream) -> Option<&Roster> {
        match stream {
            Stream::Everyone => Some(&self.everyone),
            Stream::Room(room) => self.rooms.get(room),
            Stream::User(_) => None,
        }
    }

    /// The streams some connection here reads: everyone's (when there is
    /// a connection), and its users' and rooms'.
    pub fn streams_read(&self) -> impl Iterator<Item = Stream> + '_ {
        let everyone = (!self.connections.is_empty()).then_some(Stream::Everyone);
        let users = self.users.keys().map(|user| Stream::User(*user));
        let rooms = self.rooms.keys().cloned().map(Stream::Room);
        everyone.into_iter().chain(users).chain(rooms)
    }

    /// Whether any connection here reads `stream`.
    pub fn has_readers(&self, stream: &Stream) -> bool {
        self.readers(stream).next().is_some()
    }

    /// Whether a connection reads `stream` (would get its events live).
    pub fn reads(&self, id: ConnectionId, stream: &Stream) -> bool {
        self.connections
            .get(&id)
            .is_some_and(|connection| connection.reads(stream))
    }

    /// The members of a room, in no particular order.
    fn room_members(&self, room: &RoomName) -> Vec<ConnectionId> {
        self.readers(&Stream::Room(room.clone())).collect()
    }

    /// The users with a connection in the room, each once, with their
    /// names, sorted by name.
    fn room_members_by_user(&self, room: &RoomName) -> Vec<Member> {
        let members: Vec<Member> = self
            .readers(&Stream::Room(room.clone()))
            .filter_map(|id| {
                let identity = &self.connections.get(&id)?.identity;
                let user = identity.user?;
                Some(Member {
                    user,
                    name: identity.name.clone().unwrap_or_else(|| user.to_string()),
                })
            })
            .collect();
        crate::presence::each_user_once(members)
    }

    fn stats(&self) -> RegistryStats {
        RegistryStats {
            connections: self.connections.len(),
            anonymous: self.connections.len() - self.users.values().map(Vec::len).sum::<usize>(),
            users: self.users.len(),
            sessions: self.sessions.len(),
            rooms: self.rooms.len(),
        }
    }

    /// The tab of a connection, bound to its session, if it said which.
    pub fn tab_of(&self, id: ConnectionId) -> Option<TabMark> {
        self.connections.get(&id)?.tab
    }
}

/// The connections that read a stream: every connection, a user's, or a
/// room's members.
pub(crate) enum Readers<'a> {
    Listed(Option<std::slice::Iter<'a, ConnectionId>>),
    Roster(Option<roster::Ids<'a>>),
}

impl Iterator for Readers<'_> {
    type Item = ConnectionId;

    fn next(&mut self) -> Option<ConnectionId> {
        match self {
            Self::Listed(ids) => ids.as_mut()?.next().copied(),
            Self::Roster(ids) => ids.as_mut()?.next(),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        protocol,
        stream::{Epoch, EventId, Position},
    };

    const UNLIMITED: Limits = Limits {
        total: usize::MAX,
        per_user: usize::MAX,
        anonymous: usize::MAX,
        anonymous_per_address: usize::MAX,
        rooms_per_connection: 8,
    };

    struct Fixture {
        maps: Maps,
        queues: HashMap<ConnectionId, QueueReceiver>,
        ended: EndedSessions,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                ended: EndedSessions::default(),
                maps: Maps::default(),
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
            self.try_connect(id, user, session, capacity).unwrap()
        }

        fn try_connect(
            &mut self,
            id: u64,
            user: Option<i64>,
            session: Option<&str>,
            capacity: usize,
        ) -> Result<ConnectionId, Refused> {
            let id = ConnectionId(id);
            let (queue, receiver) = queue(capacity, usize::MAX);
            let connection = Connection {
                queue,
                signal: Arc::new(CloseSignal::default()),
                identity: Identity {
                    user: user.map(UserId),
                    session: session.map(SessionKey::from),
                    name: user.map(|user| format!("user {user}")),
                    address: None,
                },
                tab: Some(TabMark(id.0)),
                rooms: Vec::new(),
            };
            self.maps.insert(id, connection, UNLIMITED, &self.ended)?;
            self.queues.insert(id, receiver);
            Ok(id)
        }

        fn join(&mut self, id: ConnectionId, room: &RoomName) {
            self.maps.join(id, room, 8).unwrap();
        }

        /// Delivers one frame and returns who got it, sorted.
        fn deliver(&mut self, target: &Target) -> Vec<u64> {
            let mut outcome = Delivery::default();
            self.maps
                .deliver(target, &Utf8Bytes::from_static("frame"), &mut outcome);
            let got = self.received().into_keys().collect::<Vec<_>>();
            assert_eq!(got.len(), outcome.queued);
            got
        }

        /// What each connection's queue holds, as written, by connection.
        fn received(&mut self) -> std::collections::BTreeMap<u64, Vec<String>> {
            self.queues
                .iter_mut()
                .filter_map(|(id, queue)| {
                    let mut frames = Vec::new();
                    let mut reached = Reached::default();
                    while let Some(item) = queue.try_recv() {
                        item.write_into(&mut reached, &mut frames);
                    }
                    let frames: Vec<String> = frames
                        .iter()
                        .map(|frame| frame.as_str().to_owned())
                        .collect();
                    (!frames.is_empty()).then_some((id.0, frames))
                })
                .collect()
        }
    }

    #[test]
    fn a_catch_up_shares_one_list_of_events_among_the_readers_that_get_them_all() {
        let mut f = Fixture::new();
        for id in 1..=3 {
            f.connect(id, Some(id as i64), None);
        }
        let red = RoomName::new("team", "red");
        f.join(ConnectionId(2), &red);
        let at = |offset| Position {
            epoch: Epoch(1),
            offset,
        };
        let kept = |offset, except: Option<u64>, others: Option<&[(Stream, Position)]>| Kept {
            offset,
            id: EventId(offset),
            frame: Utf8Bytes::from(format!("e{offset}")),
            except: except.map(TabMark),
            others: others.map(Arc::from),
        };
        let in_red = [(Stream::Room(red), at(9))];
        // Tab 3 was left out of one; connection 2 reads a stream another
        // was placed in too.
        let events = [
            kept(1, None, None),
            kept(2, Some(3), None),
            kept(3, None, Some(&in_red)),
        ];
        let mut outcome = Delivery::default();
        f.maps
            .replay_to_readers(&Stream::Everyone, &events, at(3), &mut outcome);
        assert_eq!(outcome.queued, 3);
        let mut lists = HashMap::new();
        for (id, queue) in &mut f.queues {
            let Some(Outgoing::Replay(replay)) = queue.try_recv() else {
                panic!("a replay for {id:?}");
            };
            lists.insert(id.0, replay.events);
        }
        assert_eq!(lists[&1].len(), 3);
        assert_eq!(
            lists[&3].len(),
            2,
            "without the event tab 3 was left out of"
        );
        assert!(lists[&2][2].frame.as_str().contains("room:team:red"));
        assert!(!Arc::ptr_eq(&lists[&1], &lists[&2]));
        assert!(!Arc::ptr_eq(&lists[&1], &lists[&3]));
        // Connection 1 gets them all as they are: the list is the shared one.
        let mut again = Delivery::default();
        f.maps
            .replay_to_readers(&Stream::Everyone, &events[..1], at(1), &mut again);
        let replays: Vec<Arc<[Replayed]>> = f
            .queues
            .values_mut()
            .filter_map(|queue| match queue.try_recv() {
                Some(Outgoing::Replay(replay)) => Some(replay.events),
                _ => None,
            })
            .collect();
        assert_eq!(replays.len(), 3);
        assert!(
            replays
                .windows(2)
                .all(|pair| Arc::ptr_eq(&pair[0], &pair[1]))
        );
    }

    #[test]
    fn a_connection_of_a_session_that_ended_is_refused_as_it_registers() {
        let mut f = Fixture::new();
        f.ended.record(&SessionKey::from("gone"));
        assert_eq!(
            f.try_connect(1, Some(10), Some("gone"), 8),
            Err(Refused::SessionEnded)
        );
        assert!(f.try_connect(2, Some(10), Some("kept"), 8).is_ok());
        assert_eq!(f.maps.stats().connections, 1);
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
        f.join(a, &red);
        f.join(a, &blue);
        f.join(b, &blue);

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
    fn except_leaves_out_one_connection_or_one_tab() {
        let mut f = Fixture::new();
        let a = f.connect(1, Some(10), None);
        f.connect(2, Some(10), None);
        assert_eq!(f.deliver(&Target::everyone().except(a)), [2]);
        assert_eq!(f.deliver(&Target::user(10).except(a)), [2]);
        let tab = f.maps.tab_of(a);
        assert_eq!(f.deliver(&Target::user(10).except_tab(tab)), [2]);
        assert_eq!(f.deliver(&Target::tab(TabMark(2))), [2]);
    }

    #[test]
    fn a_room_leaves_out_its_caller_and_the_callers_tab() {
        let mut f = Fixture::new();
        let room = RoomName::from("r:1");
        let ids: Vec<ConnectionId> = (1..=3).map(|id| f.connect(id, Some(10), None)).collect();
        f.connect(4, None, None);
        for id in &ids {
            f.join(*id, &room);
        }
        let target = || Target::room_name(room.clone());
        assert_eq!(f.deliver(&target()), [1, 2, 3]);
        assert_eq!(f.deliver(&target().except(ids[0])), [2, 3]);
        // Each fixture connection's tab is its own id.
        assert_eq!(f.deliver(&target().except_tab(Some(TabMark(2)))), [1, 3]);
    }

    #[test]
    fn who_left_a_room_gets_its_events_no_more_and_the_rest_still_do() {
        let mut f = Fixture::new();
        let room = RoomName::from("r:1");
        let ids: Vec<ConnectionId> = (1..=20).map(|id| f.connect(id, None, None)).collect();
        for id in &ids {
            f.join(*id, &room);
        }
        f.received();
        for id in ids.iter().step_by(2) {
            assert!(f.maps.leave(*id, &room).is_some());
        }
        f.received();
        let odd: Vec<u64> = (1..=20).step_by(2).map(|id| id + 1).collect();
        assert_eq!(f.deliver(&Target::room_name(room.clone())), odd);
        f.maps.remove(ids[1]);
        f.queues.remove(&ids[1]);
        assert_eq!(f.deliver(&Target::room_name(room)), odd[1..]);
    }

    #[test]
    fn a_full_queue_is_reported_not_waited_for() {
        let mut f = Fixture::new();
        let slow = f.connect_with_capacity(1, None, None, 1);
        let mut outcome = Delivery::default();
        let frame = Utf8Bytes::from_static("frame");
        f.maps.deliver(&Target::everyone(), &frame, &mut outcome);
        f.maps.deliver(&Target::everyone(), &frame, &mut outcome);
        assert_eq!(outcome.queued, 1);
        assert_eq!(outcome.overflowed, [slow]);
    }

    #[test]
    fn the_room_limit_is_enforced_and_rejoining_is_free() {
        let mut f = Fixture::new();
        let a = f.connect(1, None, None);
        f.maps.join(a, &"r:1".into(), 2).unwrap();
        f.maps.join(a, &"r:1".into(), 2).unwrap();
        f.maps.join(a, &"r:2".into(), 2).unwrap();
        assert_eq!(
            f.maps.join(a, &"r:3".into(), 2),
            Err(JoinError::TooManyRooms)
        );
        assert_eq!(
            f.maps.join(ConnectionId(99), &"r:1".into(), 2),
            Err(JoinError::Gone)
        );
    }

    #[test]
    fn removing_a_connection_leaves_no_trace() {
        let mut f = Fixture::new();
        let a = f.connect(1, Some(10), Some("s"));
        let b = f.connect(2, Some(10), Some("s"));
        f.join(a, &"r:1".into());
        f.join(b, &"r:1".into());
        assert_eq!(
            f.maps.stats(),
            RegistryStats {
                connections: 2,
                anonymous: 0,
                users: 1,
                sessions: 1,
                rooms: 1
            }
        );

        f.maps.remove(a);
        assert_eq!(f.maps.room_members(&"r:1".into()), [b]);
        f.maps.remove(b);
        assert_eq!(f.maps.stats(), RegistryStats::default());
        assert!(f.maps.tabs.is_empty());
        assert!(f.maps.remove(b).is_none());
    }

    #[test]
    fn leaving_empties_the_room() {
        let mut f = Fixture::new();
        let a = f.connect(1, None, None);
        f.join(a, &"r:1".into());
        assert_eq!(f.maps.leave(a, &"r:1".into()), Some(false));
        assert_eq!(f.maps.leave(a, &"r:1".into()), None);
        assert_eq!(f.maps.stats().rooms, 0);
    }

    #[test]
    fn a_user_arrives_with_their_first_tab_and_departs_with_their_last() {
        let mut f = Fixture::new();
        let room = RoomName::from("r:1");
        let tab1 = f.connect(1, Some(10), None);
        let tab2 = f.connect(2, Some(10), None);
        let visitor = f.connect(3, None, None);
        assert_eq!(f.maps.join(tab1, &room, 8), Ok(true));
        assert_eq!(f.maps.join(tab2, &room, 8), Ok(false));
        assert_eq!(f.maps.join(visitor, &room, 8), Ok(false));
        assert_eq!(f.maps.leave(tab1, &room), Some(false));
        assert_eq!(f.maps.leave(tab2, &room), Some(true));
        assert!(!f.maps.user_in_room(&room, UserId(10)));
    }

    #[test]
    fn members_are_listed_once_per_user_by_name() {
        let mut f = Fixture::new();
        let room = RoomName::from("r:1");
        for (id, user) in [(1, Some(20)), (2, Some(10)), (3, Some(20)), (4, None)] {
            let connection = f.connect(id, user, None);
            f.join(connection, &room);
        }
        let names: Vec<String> = f
            .maps
            .room_members_by_user(&room)
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, ["user 10", "user 20"]);
    }

    #[test]
    fn a_durable_event_carries_its_position_in_each_stream_a_connection_reads() {
        let mut f = Fixture::new();
        let red = RoomName::from("team:red");
        let ada = f.connect(1, Some(10), None);
        let bob = f.connect(2, Some(11), None);
        f.connect(3, None, None);
        f.join(ada, &red);
        f.join(bob, &red);
        let at = |offset| Position {
            epoch: Epoch(1),
            offset,
        };
        let streams = [
            (Stream::User(UserId(10)), at(4)),
            (Stream::Room(red), at(9)),
        ];
        let mut outcome = Delivery::default();
        let frame = r#"{"type":"event","name":"x","data":1}"#;
        let positioned: Vec<Utf8Bytes> = streams
            .iter()
            .map(|one| {
                protocol::with_positions(frame, EventId(5), std::slice::from_ref(one)).into()
            })
            .collect();
        let event = Placed {
            id: EventId(5),
            frame,
            streams: &streams,
            positioned: &positioned,
            connections: &[ConnectionId(3)],
            tabs: &[],
            except: Except::default(),
        };
        f.maps.deliver_placed(&event, &mut outcome);
        assert_eq!(outcome.queued, 3);
        let got = f.received();
        let ada = &got[&1][0];
        assert!(
            ada.contains(r#""stream":"user:10","epoch":"0000000000000001","offset":4"#)
                && ada.contains(r#""also":[{"stream":"room:team:red""#),
            "{ada}"
        );
        assert!(got[&2][0].contains(r#""stream":"room:team:red""#) && !got[&2][0].contains("also"));
        assert_eq!(got[&3], [r#"{"type":"event","name":"x","data":1}"#]);
    }
}
