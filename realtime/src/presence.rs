//! Presence: who is in a room right now.
//!
//! For kinds of room registered with `HubBuilder::presence`, the hub sends a
//! [`Presence`] event to the room whenever its set of *users* changes: when
//! a user's first tab joins and when their last tab leaves or closes. Extra
//! tabs of a user already there change nothing. A connection that joins also
//! gets the current list at once.

use serde::{Deserialize, Serialize};

use crate::{Event, RoomName, UserId};

/// The users in a room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub room: RoomName,
    /// Each user once, sorted by name: in a large room, the first of them
    /// only (the server's `HubConfig::max_presence_listed`), so that the
    /// list stays one small frame however many are in the room.
    pub members: Vec<Member>,
    /// How many more users are in the room than `members` lists.
    #[serde(default)]
    pub more: usize,
}

/// One user in a room.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub user: UserId,
}

impl Member {
    pub fn new(user: impl Into<UserId>, name: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            name: name.into(),
        }
    }
}

impl Event for Presence {
    const NAME: &'static str = "realtime.presence";
    // A tab gets the whole list when it joins: nothing to recover.
    const DURABLE: bool = false;
}

/// The members as a [`Presence`] lists them: each user once (two tabs may
/// carry different names, if the user was renamed in between), sorted by
/// name.
#[cfg(feature = "ssr")]
pub(crate) fn each_user_once(mut members: Vec<Member>) -> Vec<Member> {
    members.sort_by_key(|member| member.user);
    members.dedup_by_key(|member| member.user);
    members.sort();
    members
}
