//! Who an event goes to.

use serde::{Deserialize, Serialize};

use super::TabMark;
use crate::{ConnectionId, Room, RoomName, UserId};

/// The recipients of an emit: everyone, or any union of users (every
/// connection of each), rooms and single connections, optionally leaving
/// one connection out. A connection named several times gets the event once.
///
/// ```
/// use realtime::{ConnectionId, server::Target};
///
/// let to_users = Target::users([1, 2, 3]);
/// let to_a_tab = Target::connection(ConnectionId(7));
/// let both_but_one = to_users.and(to_a_tab).except(ConnectionId(9));
/// # let _ = both_but_one;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub(crate) everyone: bool,
    pub(crate) users: Vec<UserId>,
    pub(crate) rooms: Vec<RoomName>,
    pub(crate) connections: Vec<ConnectionId>,
    /// The connections of these tabs (the caller's, for `to_caller`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) tabs: Vec<TabMark>,
    pub(crate) except: Option<ConnectionId>,
    /// The tab left out (the caller's, for `except_caller`): whichever
    /// process its connection is on, and in replays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) except_tab: Option<TabMark>,
}

impl Target {
    /// Every connection, logged in or not.
    pub fn everyone() -> Self {
        Self {
            everyone: true,
            ..Self::default()
        }
    }

    /// Every connection of one user.
    pub fn user(user: impl Into<UserId>) -> Self {
        Self::users([user])
    }

    /// Every connection of each of these users: `users([1, 2, 3])`, a
    /// `Vec`, or any iterator.
    pub fn users<U: Into<UserId>>(users: impl IntoIterator<Item = U>) -> Self {
        Self {
            users: users.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// The members of one room.
    pub fn room<R: Room>(room: &R) -> Self {
        Self::room_name(room.name())
    }

    /// The members of each of these rooms.
    pub fn rooms<'a, R: Room>(rooms: impl IntoIterator<Item = &'a R>) -> Self {
        Self::room_names(rooms.into_iter().map(Room::name))
    }

    /// The members of a room given by its wire name.
    pub fn room_name(room: RoomName) -> Self {
        Self::room_names([room])
    }

    /// The members of each of these rooms, given by wire name.
    pub fn room_names(rooms: impl IntoIterator<Item = RoomName>) -> Self {
        Self {
            rooms: rooms.into_iter().collect(),
            ..Self::default()
        }
    }

    /// One connection (one tab).
    pub fn connection(connection: ConnectionId) -> Self {
        Self {
            connections: vec![connection],
            ..Self::default()
        }
    }

    /// Nobody. Useful as the start of a union built in a loop.
    pub fn nobody() -> Self {
        Self::default()
    }

    /// Everyone either target names.
    pub fn and(mut self, other: Target) -> Self {
        self.everyone |= other.everyone;
        self.users.extend(other.users);
        self.rooms.extend(other.rooms);
        self.connections.extend(other.connections);
        self.tabs.extend(other.tabs);
        self.except = self.except.or(other.except);
        self.except_tab = self.except_tab.or(other.except_tab);
        self
    }

    /// Leaves one connection out (usually the caller's).
    pub fn except(mut self, connection: ConnectionId) -> Self {
        self.except = Some(connection);
        self
    }

    /// Leaves the connection out, if there is one.
    pub fn except_maybe(mut self, connection: Option<ConnectionId>) -> Self {
        self.except = connection.or(self.except);
        self
    }

    /// The connection of one tab (the caller's).
    pub(crate) fn tab(tab: TabMark) -> Self {
        Self {
            tabs: vec![tab],
            ..Self::default()
        }
    }

    /// Leaves out the connections of a tab (the caller's).
    pub(crate) fn except_tab(mut self, tab: Option<TabMark>) -> Self {
        self.except_tab = tab.or(self.except_tab);
        self
    }

    /// Whether this target names single connections or tabs and nothing
    /// else: no stream, so nothing of it is recorded.
    pub(crate) fn is_connections_only(&self) -> bool {
        !self.everyone && self.users.is_empty() && self.rooms.is_empty()
    }

    /// Splits the single connections and tabs this target names (with
    /// what it leaves out) from the rest: `None` when it names none, or
    /// nothing else (everyone's stream reaches them all).
    pub(crate) fn take_direct(&mut self) -> Option<Target> {
        if self.everyone
            || self.is_connections_only()
            || (self.connections.is_empty() && self.tabs.is_empty())
        {
            return None;
        }
        Some(Target {
            connections: std::mem::take(&mut self.connections),
            tabs: std::mem::take(&mut self.tabs),
            except: self.except,
            except_tab: self.except_tab,
            ..Target::default()
        })
    }

    /// Whether this target can reach nobody at all.
    pub fn is_nobody(&self) -> bool {
        self.is_connections_only() && self.connections.is_empty() && self.tabs.is_empty()
    }
}
