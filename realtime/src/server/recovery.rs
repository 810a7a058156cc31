//! Replaying durable events to a tab that missed them.
//!
//! Durable events are recorded in each stream they are for (`durable.rs`),
//! and each of the stream's readers gets the frame that says where it
//! sits: its event id, stream, epoch and offset.
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
//! or delivered live, never neither.
//!
//! With Redis, most recoveries are served from this process's mirror of
//! the history. One that it cannot serve (the tab comes from a process
//! that died, or was away longer than the mirror reaches) is read from
//! Redis first (`fetch_for`), then joined, under the locks, with what the
//! mirror received since. Events that the read brought and that are still
//! on their way here live are skipped by the connection
//! (`registry::Reached`), never written twice.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use axum::{extract::FromRequestParts, extract::ws::Utf8Bytes, http::request::Parts};
use futures_util::future::join_all;

use super::{
    Hub,
    backplane::Fetched,
    history::{History, Recorded as Kept, Recovery},
    registry::{Connection, Registry},
};
use crate::{
    ConnectionId, RoomName,
    protocol::{ControlFrame, Resume},
    stream::{Discontinuity, Position, Stream, TabId},
};

/// How long a read of Redis's history may take, waiting for its turn
/// included, before the tab is told it may have missed events (and fetches
/// again) instead.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Reads of Redis's history one process makes at once: a crowd of tabs
/// reconnecting together waits its turn rather than flood Redis.
pub(super) const READS_AT_ONCE: usize = 64;

impl Hub {
    /// Whether durable events are recorded and recovered: unless the
    /// history is turned off (`history_per_stream: 0`).
    pub(super) fn records(&self) -> bool {
        self.inner.config.history_per_stream > 0
    }

    /// Where `stream` is now, to recover from later: what a page rendered
    /// now embeds, so that its socket gets every durable event emitted
    /// after the render. `None` when the history is turned off.
    ///
    /// With Redis this may read it (once per stream this process has not
    /// followed yet); `None` if it must and cannot (Redis is unreachable).
    pub async fn position(&self, stream: &Stream) -> Option<Position> {
        if !self.records() {
            return None;
        }
        let mut fetched = self.fetch_for([(stream.clone(), None)]).await;
        let mut history = self.inner.history.lock();
        position_here(&mut history, stream, fetched.remove(stream))
    }

    /// Reads from Redis what recovering each stream from its position (or
    /// learning where it stands, for `None`) needs and this process's
    /// mirror does not hold. Streams Redis could not be asked about are
    /// left out: recovering them gives a discontinuity.
    pub(super) async fn fetch_for(
        &self,
        wanted: impl IntoIterator<Item = (Stream, Option<Position>)>,
    ) -> BTreeMap<Stream, Fetched> {
        let Some(store) = self.link().and_then(|link| link.store()) else {
            return BTreeMap::new();
        };
        if !self.records() {
            return BTreeMap::new();
        }
        let needed: Vec<(Stream, Option<Position>)> = {
            let history = self.inner.history.lock();
            wanted
                .into_iter()
                .filter(|(stream, since)| !history.covers(stream, *since))
                .collect()
        };
        let reads = needed.into_iter().map(|(stream, since)| {
            let store = &store;
            async move {
                let read = tokio::time::timeout(READ_TIMEOUT, async {
                    let _turn = self.inner.history_reads.acquire().await;
                    store.read(&stream, since).await
                })
                .await;
                match read {
                    Ok(Ok(fetched)) => Some((stream, fetched)),
                    Ok(Err(error)) => {
                        tracing::warn!(%stream, %error, "could not read the history in Redis");
                        None
                    }
                    Err(_) => {
                        tracing::warn!(%stream, "Redis took too long to answer a history read");
                        None
                    }
                }
            }
        });
        join_all(reads).await.into_iter().flatten().collect()
    }

    /// Registers a connection and replays what its tab missed of the
    /// streams `resume` names (with what `fetched` read from Redis), as one
    /// step. Returns where everyone's stream and the user's stand then, for
    /// the `welcome` frame (none when the history is off).
    pub(super) fn insert_resuming(
        &self,
        id: ConnectionId,
        connection: Connection,
        resume: &Resume,
        mut fetched: BTreeMap<Stream, Fetched>,
    ) -> Result<BTreeMap<Stream, Position>, super::Refused> {
        let limits = self.connection_limits();
        if !self.records() {
            self.inner.registry.write().insert(id, connection, limits)?;
            return Ok(BTreeMap::new());
        }
        let tab = connection.tab;
        let user = connection.identity.user;
        let now = Instant::now();
        let (positions, fitted) = {
            let mut history = self.inner.history.lock();
            let mut registry = self.inner.registry.write();
            registry.insert(id, connection, limits)?;
            let mut fitted = true;
            for (stream, since) in &resume.since {
                // The same rule as live delivery: a user's stream reaches
                // only that user's connections.
                if registry.reads(id, stream) {
                    let answer = recover(&mut history, stream, *since, fetched.get(stream), now);
                    fitted &= queue_answer(&history, &registry, (id, tab), stream, answer);
                }
            }
            let streams = std::iter::once(Stream::Everyone).chain(user.map(Stream::User));
            let positions = streams
                .filter_map(|stream| {
                    let position = position_here(&mut history, &stream, fetched.remove(&stream))?;
                    Some((stream, position))
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
    /// followed `since` in the room's stream (with what `fetched` read from
    /// Redis), and tells it (`joined`, with the stream's position), as one
    /// step. Returns whether its user arrived in the room with it.
    pub(super) fn join_resuming(
        &self,
        id: ConnectionId,
        room: &RoomName,
        since: Option<Position>,
        fetched: Option<Fetched>,
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
        let now = Instant::now();
        let fitted = {
            let mut history = self.inner.history.lock();
            let mut registry = self.inner.registry.write();
            let stream = Stream::Room(room.clone());
            // Joining again: it had everything live, nothing to replay.
            let member = registry.reads(id, &stream);
            let arrived = registry.join(id, room, max)?;
            let tab = registry.tab_of(id);
            let replayed = member
                || since.is_none_or(|since| {
                    let answer = recover(&mut history, &stream, since, fetched.as_ref(), now);
                    queue_answer(&history, &registry, (id, tab), &stream, answer)
                });
            let joined = ControlFrame::Joined {
                room,
                position: position_here(&mut history, &stream, fetched),
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

/// What a connection gets of a stream it asked to recover.
enum Answer {
    /// These events, oldest first; then the stream stands at `to`.
    Replay { events: Vec<Kept>, to: Position },
    /// It cannot have them: it fetches again, and goes on from `position`.
    Gap {
        reason: Discontinuity,
        position: Position,
    },
}

/// What follows `since` in `stream`: from this process's history, or,
/// where a mirror does not hold it, from what was read in Redis followed by
/// what the mirror received since.
fn recover(
    history: &mut History,
    stream: &Stream,
    since: Position,
    fetched: Option<&Fetched>,
    now: Instant,
) -> Answer {
    let replay = |events: Vec<Kept>, to: Position| {
        let to = events.last().map_or(to, |last| Position {
            epoch: to.epoch,
            offset: last.offset,
        });
        Answer::Replay { events, to }
    };
    match history.since(stream, since, now) {
        Recovery::Replay(events) => replay(events, since),
        Recovery::Discontinuity { reason, position } => Answer::Gap { reason, position },
        Recovery::Elsewhere => {
            let Some(fetched) = fetched else {
                // Redis could not be asked: the tab fetches again, and goes
                // on from where this process is (or from where it was).
                let position = history.known(stream).unwrap_or(since);
                let reason = if position.epoch == since.epoch {
                    Discontinuity::TooOld
                } else {
                    Discontinuity::EpochChanged
                };
                return Answer::Gap { reason, position };
            };
            let events = match &fetched.events {
                Ok(events) => events.clone(),
                Err(reason) => {
                    history.learn(stream, fetched.position);
                    return Answer::Gap {
                        reason: *reason,
                        position: fetched.position,
                    };
                }
            };
            history.learn(stream, fetched.position);
            match history.kept_after(stream, fetched.position) {
                Some(received) => {
                    let mut events = events;
                    events.extend(received);
                    replay(events, fetched.position)
                }
                // The mirror moved on (Redis reset the stream, say) or
                // has a hole: nothing to stitch the read to.
                None => {
                    let position = history.known(stream).unwrap_or(fetched.position);
                    let reason = if position.epoch == fetched.position.epoch {
                        Discontinuity::TooOld
                    } else {
                        Discontinuity::EpochChanged
                    };
                    Answer::Gap { reason, position }
                }
            }
        }
    }
}

/// Where `stream` stands for a tab that starts following it now: known
/// here, or read in Redis (the mirror then follows it). Alone, a stream not
/// written yet starts here; a mirror that could not ask Redis has none to
/// give (the tab then counts what it may miss as missed).
fn position_here(
    history: &mut History,
    stream: &Stream,
    fetched: Option<Fetched>,
) -> Option<Position> {
    if let Some(position) = history.known(stream) {
        return Some(position);
    }
    if let Some(fetched) = fetched {
        history.learn(stream, fetched.position);
        return Some(fetched.position);
    }
    (!history.is_mirror()).then(|| history.position(stream))
}

/// Queues an answer for connection `id` of tab `tab`. `false` if its queue
/// had no room.
fn queue_answer(
    history: &History,
    registry: &Registry,
    (id, tab): (ConnectionId, Option<TabId>),
    stream: &Stream,
    answer: Answer,
) -> bool {
    match answer {
        Answer::Replay { events, to } => {
            let frames: Vec<Utf8Bytes> = events
                .into_iter()
                // Left out live, left out again.
                .filter(|event| tab.is_none() || event.except != tab)
                .map(|event| event.frame)
                .collect();
            // Alone, nothing can arrive twice: an empty replay need not
            // be queued.
            if frames.is_empty() && !history.is_mirror() {
                return true;
            }
            registry.queue_replay(id, stream, frames, to)
        }
        Answer::Gap { reason, position } => {
            tracing::debug!(connection = %id, %stream, ?reason, "cannot recover");
            let frame = ControlFrame::Discontinuity {
                stream,
                reason,
                position,
            };
            match serde_json::to_string(&frame) {
                Ok(json) => registry.queue_replay(id, stream, vec![json.into()], position),
                Err(_) => true,
            }
        }
    }
}

/// Queues a control frame for one connection, under the locks its caller
/// holds. `false` if its queue had no room.
fn queue_control(registry: &Registry, id: ConnectionId, frame: &ControlFrame<'_>) -> bool {
    let Ok(json) = serde_json::to_string(frame) else {
        return true;
    };
    let mut outcome = super::registry::Delivery::default();
    registry.deliver_to_each(
        std::iter::once(id),
        super::registry::Except::default(),
        &json.into(),
        None,
        &mut outcome,
    );
    outcome.overflowed.is_empty()
}

/// The tab's [`Resume`], from the upgrade request's query.
impl<S: Send + Sync> FromRequestParts<S> for Resume {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Resume::from_query(parts.uri.query().unwrap_or_default()))
    }
}
