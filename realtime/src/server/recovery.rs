//! Recording durable events, and replaying them to a tab that missed them.
//!
//! A durable emit ([`crate::Event::DURABLE`]) is appended to each stream
//! its target names (`history.rs`), and each of the stream's readers gets
//! the frame that says where it sits: its event id, stream, epoch and
//! offset. A connection reached through several of the streams gets the
//! event once, through the first; the browser knows the event by its id if
//! a replay through another brings it again. Connections named one by one
//! get it without a position.
//!
//! A tab that comes back says how far it had read: for everyone's stream
//! and its user's in the query of its upgrade ([`Resume`]), for a room in
//! its `join`. What followed is replayed before anything live, under the
//! same rules as live delivery (a user's stream only to that user's
//! connections, a room's only once its join rule agreed), without the
//! events the tab itself caused and was left out of (`except_caller`,
//! known by its [`crate::stream::TabId`]), in one place of the queue so
//! that the slow-client rule does not cut it short. When the events cannot
//! be had (too old, too many, another epoch), the tab gets a
//! `discontinuity` frame instead and fetches again what depends on the
//! stream.
//!
//! No gap between replay and live: appending-and-delivering, and
//! registering-or-joining-and-replaying, each happen under the history's
//! lock (taken before the registry's), so an event is either in the replay
//! or delivered live, never neither and never both.
//!
//! Until the history is kept in Redis, only a hub alone records: with a
//! backplane attached, durable events are delivered as volatile ones and
//! positions are ignored.

use std::{
    collections::{BTreeMap, HashSet},
    time::Instant,
};

use axum::{extract::FromRequestParts, extract::ws::Utf8Bytes, http::request::Parts};

use super::{
    Hub, Target,
    history::{History, Recovery},
    registry::{Connection, Delivery, Registry},
};
use crate::{
    ConnectionId, RoomName,
    protocol::{self, ControlFrame, Resume},
    stream::{EventId, Position, Recorded, Stream, TabId},
};

impl Hub {
    /// Whether durable events are recorded and recovered here: alone, and
    /// unless the history is turned off (`history_per_stream: 0`).
    pub(super) fn records(&self) -> bool {
        self.link().is_none() && self.inner.config.history_per_stream > 0
    }

    /// Where `stream` is now, to recover from later: what a page rendered
    /// now embeds, so that its socket gets every durable event emitted
    /// after the render. `None` when this hub does not record (it has a
    /// backplane; see the module's documentation).
    pub fn position(&self, stream: &Stream) -> Option<Position> {
        self.records()
            .then(|| self.inner.history.lock().position(stream))
    }

    /// Appends a durable event to the streams of `target` and queues it for
    /// their readers on this process. Returns how many connections it was
    /// queued for.
    pub(super) fn deliver_recorded(&self, target: &Target, name: &str, data: &str) -> usize {
        let id = EventId(rand::random());
        let streams = streams_of(target);
        let now = Instant::now();
        let mut outcome = Delivery::default();
        {
            let mut history = self.inner.history.lock();
            let registry = self.inner.registry.read();
            let except_tab = target.except.and_then(|except| registry.tab_of(except));
            let mut seen =
                (streams.len() + target.connections.len() > 1).then(HashSet::<ConnectionId>::new);
            for stream in &streams {
                let frame = history.append(
                    stream,
                    except_tab,
                    |position| {
                        let recorded = Recorded {
                            id,
                            stream: stream.clone(),
                            position,
                        };
                        protocol::recorded_event_frame(name, data, &recorded).into()
                    },
                    now,
                );
                registry.deliver_to_stream(
                    stream,
                    target.except,
                    &frame,
                    seen.as_mut(),
                    &mut outcome,
                );
            }
            if !target.connections.is_empty() {
                let frame = protocol::event_frame(name, data).into();
                registry.deliver_to_each(
                    target.connections.iter().copied(),
                    target.except,
                    &frame,
                    seen.as_mut(),
                    &mut outcome,
                );
            }
        }
        self.finish_delivery(outcome)
    }

    /// Registers a connection and replays what its tab missed of the
    /// streams `resume` names, as one step. Returns where everyone's stream
    /// and the user's stand then, for the `welcome` frame (none when this
    /// hub does not record).
    pub(super) fn insert_resuming(
        &self,
        id: ConnectionId,
        connection: Connection,
        resume: &Resume,
    ) -> Result<BTreeMap<Stream, Position>, super::Refused> {
        let limits = self.connection_limits();
        if !self.records() {
            self.inner.registry.write().insert(id, connection, limits)?;
            return Ok(BTreeMap::new());
        }
        let tab = connection.tab;
        let user = connection.identity.user;
        let (positions, fitted) = {
            let mut history = self.inner.history.lock();
            let mut registry = self.inner.registry.write();
            registry.insert(id, connection, limits)?;
            let mut fitted = true;
            for (stream, since) in &resume.since {
                // The same rule as live delivery: a user's stream reaches
                // only that user's connections.
                if registry.reads(id, stream) {
                    fitted &= replay(&mut history, &registry, id, tab, stream, *since);
                }
            }
            let streams = std::iter::once(Stream::Everyone).chain(user.map(Stream::User));
            let positions = streams
                .map(|stream| {
                    let position = history.position(&stream);
                    (stream, position)
                })
                .collect();
            (positions, fitted)
        };
        // Two answers, a queue of one (`queue_capacity: 1`): too small.
        if !fitted {
            self.close_too_slow(&[id]);
        }
        Ok(positions)
    }

    /// Adds a connection to a room whose rule agreed, after replaying what
    /// followed `since` in the room's stream, and tells it (`joined`, with
    /// the stream's position), as one step. Returns whether its user
    /// arrived in the room with it.
    pub(super) fn join_resuming(
        &self,
        id: ConnectionId,
        room: &RoomName,
        since: Option<Position>,
    ) -> Result<bool, super::registry::JoinError> {
        let max = self.inner.config.max_rooms_per_connection;
        if !self.records() {
            let arrived = self.inner.registry.write().join(id, room, max)?;
            let joined = ControlFrame::Joined {
                room,
                position: None,
            };
            self.send_control(id, &joined);
            return Ok(arrived);
        }
        let fitted = {
            let mut history = self.inner.history.lock();
            let mut registry = self.inner.registry.write();
            let stream = Stream::Room(room.clone());
            // Joining again: it had everything live, nothing to replay.
            let member = registry.reads(id, &stream);
            let arrived = registry.join(id, room, max)?;
            let tab = registry.tab_of(id);
            let replayed = member
                || since
                    .is_none_or(|since| replay(&mut history, &registry, id, tab, &stream, since));
            let joined = ControlFrame::Joined {
                room,
                position: Some(history.position(&stream)),
            };
            (arrived, replayed && queue_control(&registry, id, &joined))
        };
        match fitted {
            (arrived, true) => Ok(arrived),
            // Its queue was full: too slow for live events anyway.
            (arrived, false) => {
                self.close_too_slow(&[id]);
                Ok(arrived)
            }
        }
    }
}

/// Queues for connection `id` what followed `since` in `stream`, or a
/// `discontinuity`. `false` if its queue had no room.
fn replay(
    history: &mut History,
    registry: &Registry,
    id: ConnectionId,
    tab: Option<TabId>,
    stream: &Stream,
    since: Position,
) -> bool {
    match history.since(stream, since, Instant::now()) {
        Recovery::Replay(events) => {
            let frames: Vec<Utf8Bytes> = events
                .into_iter()
                // Left out live, left out again.
                .filter(|event| tab.is_none() || event.except != tab)
                .map(|event| event.frame)
                .collect();
            registry.queue_replay(id, frames)
        }
        Recovery::Discontinuity { reason, position } => {
            tracing::debug!(connection = %id, %stream, ?reason, "cannot recover");
            let frame = ControlFrame::Discontinuity {
                stream,
                reason,
                position,
            };
            queue_control(registry, id, &frame)
        }
    }
}

/// Queues a control frame for one connection, under the locks its caller
/// holds. `false` if its queue had no room.
fn queue_control(registry: &Registry, id: ConnectionId, frame: &ControlFrame<'_>) -> bool {
    let Ok(json) = serde_json::to_string(frame) else {
        return true;
    };
    let mut outcome = Delivery::default();
    registry.deliver_to_each(std::iter::once(id), None, &json.into(), None, &mut outcome);
    outcome.overflowed.is_empty()
}

/// The streams a durable emit to `target` is appended to: everyone's, or
/// each user's and each room's.
fn streams_of(target: &Target) -> Vec<Stream> {
    if target.everyone {
        return vec![Stream::Everyone];
    }
    let mut named = HashSet::new();
    target
        .users
        .iter()
        .map(|user| Stream::User(*user))
        .chain(target.rooms.iter().cloned().map(Stream::Room))
        .filter(|stream| named.insert(stream.clone()))
        .collect()
}

/// The tab's [`Resume`], from the upgrade request's query.
impl<S: Send + Sync> FromRequestParts<S> for Resume {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Resume::from_query(parts.uri.query().unwrap_or_default()))
    }
}
