//! The streams of durable events: their history (or mirror of the shared
//! one), where each stands, placing events in them, and recovering what a
//! tab missed. [`Streams`] owns all of it, behind one lock, and the order
//! in which that lock is taken with the registry's: always the streams'
//! first. The registry opens itself across several steps only to a holder
//! of the streams' lock (`registry::TakenBefore`), so the two can never be
//! taken the other way round.
//!
//! A durable emit goes to the broker, which places it (gives it its
//! positions) and hands it back to every process, this one included
//! ([`Streams::placed`]). Alone, or while the shared history is out of
//! reach, the broker hands it back at once and it is placed here
//! ([`Streams::place_here`]): appended to this process's history and
//! queued for its readers here as one step. Either way an event is kept
//! and delivered under the lock, and a tab registers or joins (with its
//! replay) under the same lock: an event is either in the replay or
//! delivered live, never neither.
//!
//! With a shared history, each process keeps what it received as a mirror
//! of it, to serve most recoveries without asking. A placed event that
//! shows a gap in a stream followed here (after an outage, for a stream
//! the mirror had forgotten) tells the stream's readers here (a
//! `discontinuity`); one whose offset was given before to another event
//! shows a history that went back (Redis restarted from an older
//! snapshot), and the stream is reset everywhere in a new epoch. A stream
//! read here that the mirror neither hears nor has a position for is
//! *blind* (`blind.rs`): its readers are told they may have missed events
//! once it is heard again. After an outage, or once a shard is heard, the
//! broker catches up on the streams followed here and the blind ones
//! (`catch_up.rs`), and resets those written here apart.

mod blind;
mod catch_up;
mod history;
mod log;
mod recovery;

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::extract::ws::Utf8Bytes;
use futures_util::future::join_all;
use parking_lot::{Mutex, MutexGuard};
use tokio::sync::{Semaphore, oneshot};

use self::{
    blind::Blindness,
    catch_up::tell_revealed,
    history::{Applied, History},
    recovery::{position_here, queue_answer, recover},
};
use super::{
    HubConfig, Refused, Target,
    broker::{Broker, Durable, Fetched, Placed, Placement, streams_of},
    registry::{self, Connection, Delivery, Except, JoinError, Kept, Maps, Registry, TakenBefore},
    sessions::EndedSessions,
};
use crate::{
    ConnectionId, RoomName,
    protocol::{self, ControlFrame, Resume},
    stream::{EventId, Position, Stream},
};

/// How long a read of the shared history may take, waiting for its turn
/// included, before the tab is told it may have missed events (and fetches
/// again) instead.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Reads of the shared history one process makes at once: a crowd of tabs
/// reconnecting together waits its turn rather than flood it.
pub(crate) const READS_AT_ONCE: usize = 64;

/// The streams' lock, held: what opens the registry across several steps.
impl TakenBefore for MutexGuard<'_, History> {}

/// A connection registered with what it missed queued: see
/// [`Streams::register`].
pub(crate) struct Registered {
    /// Where everyone's stream and the user's stand, for the `welcome`
    /// frame (none when the history is off).
    pub positions: BTreeMap<Stream, Position>,
    /// Whether the connection's queue had room for it all.
    pub fitted: bool,
    /// The `discontinuity` sent to the other readers of streams this
    /// step's reads revealed (`catch_up::tell_revealed`).
    pub told: Delivery,
}

/// A connection added to a room: see [`Streams::join`].
pub(crate) struct Joined {
    /// Whether its user arrived in the room with it.
    pub arrived: bool,
    /// Whether the connection's queue had room for the replay and `joined`.
    pub fitted: bool,
    /// As [`Registered::told`].
    pub told: Delivery,
}

/// The streams of one process: see the module documentation.
pub(crate) struct Streams {
    history: Mutex<History>,
    registry: Arc<Registry>,
    broker: Arc<dyn Broker>,
    /// Reads of the shared history under way, at most [`READS_AT_ONCE`].
    reads: Semaphore,
    /// Whether durable events are recorded and recovered: unless the
    /// history is turned off (`history_per_stream: 0`).
    records: bool,
    /// Whether some streams wait to be reset, as the history says after
    /// each step: read at every publication, without the lock.
    diverged: AtomicBool,
}

impl Streams {
    pub fn new(config: &HubConfig, registry: Arc<Registry>, broker: Arc<dyn Broker>) -> Self {
        let limits = config.history_limits();
        let history = if broker.shares_history() {
            History::mirror(limits)
        } else {
            History::new(limits)
        };
        Self {
            history: Mutex::new(history),
            registry,
            broker,
            reads: Semaphore::new(READS_AT_ONCE),
            records: config.history_per_stream > 0,
            diverged: AtomicBool::new(false),
        }
    }

    /// Whether durable events are recorded and recovered.
    pub fn records(&self) -> bool {
        self.records
    }

    /// Whether the history is shared with other processes (each process
    /// then hears only some of its streams).
    pub fn shares_history(&self) -> bool {
        self.history.lock().is_mirror()
    }

    /// Notes whether some streams wait to be reset, at the end of a step.
    fn note_diverged(&self, history: &History) {
        self.diverged
            .store(history.has_diverged(), Ordering::Relaxed);
    }

    /// Takes the streams' lock, having made room for the streams the step
    /// may add (never forgetting those read here), then the registry's.
    fn lock(
        &self,
    ) -> (
        MutexGuard<'_, History>,
        parking_lot::RwLockReadGuard<'_, Maps>,
    ) {
        let mut history = self.history.lock();
        let maps = self.registry.read_after(&history);
        history.make_room(|stream| maps.has_readers(stream));
        (history, maps)
    }

    /// Where `stream` is now, to recover from later: what a page rendered
    /// now embeds. `None` when the history is off, or when it is shared and
    /// could not be read. What was read is learnt only for a stream read
    /// here: the mirror may not have heard the others between the read and
    /// now (a shard's subscription catches up on read streams only).
    /// What learning the position did to readers of a stream it revealed
    /// (`catch_up::tell_revealed`) comes with it.
    pub async fn position(&self, stream: &Stream) -> (Option<Position>, Delivery) {
        if !self.records {
            return (None, Delivery::default());
        }
        let mut fetched = self.fetch([(stream.clone(), None)]).await;
        let (mut history, maps) = self.lock();
        if history.is_mirror() && !maps.has_readers(stream) {
            let known = self
                .broker
                .hears(stream)
                .then(|| history.known(stream))
                .flatten();
            let position = known.or_else(|| fetched.remove(stream).map(|fetched| fetched.position));
            return (position, Delivery::default());
        }
        let position = position_here(&mut history, stream, fetched.remove(stream));
        (position, tell_revealed(&mut history, &maps, None))
    }

    /// Waits until this process hears `stream`'s events, before a
    /// connection starts reading it (see [`Broker::follow`]).
    pub async fn follow(&self, stream: &Stream) {
        self.broker.follow(stream).await;
    }

    /// Has this process hear `stream`'s events as soon as it can, without
    /// waiting (see [`Broker::want`]).
    pub fn want(&self, stream: &Stream) {
        self.broker.want(stream);
    }

    /// Whether following `stream` from `since` (or from where it stands,
    /// for `None`) needs a read of the shared history: it is shared,
    /// reachable, and this process's mirror does not hold what is asked.
    pub fn must_read(&self, stream: &Stream, since: Option<Position>) -> bool {
        self.records
            && self.broker.can_read()
            && !self.mirror_holds(&self.history.lock(), stream, since)
    }

    /// Whether the mirror holds what following `stream` from `since`
    /// needs: a stream this process does not hear, it cannot.
    fn mirror_holds(&self, history: &History, stream: &Stream, since: Option<Position>) -> bool {
        self.broker.hears(stream) && history.covers(stream, since)
    }

    /// Reads from the shared history what recovering each stream from its
    /// position (or learning where it stands, for `None`) needs and this
    /// process's mirror does not hold. Streams that could not be read are
    /// left out: recovering them gives a discontinuity. A read says the
    /// history went back only where this process stood further on before
    /// it was sent ([`Fetched::seen_from`]).
    pub async fn fetch(
        &self,
        wanted: impl IntoIterator<Item = (Stream, Option<Position>)>,
    ) -> BTreeMap<Stream, Fetched> {
        if !self.records || !self.broker.can_read() {
            return BTreeMap::new();
        }
        // With where this process stood in each before the read: the
        // shared history went back only if it is behind that (an event
        // that arrives here between the read and its use is no proof).
        let needed: Vec<(Stream, Option<Position>, Option<Position>)> = {
            let history = self.history.lock();
            wanted
                .into_iter()
                .filter(|(stream, since)| !self.mirror_holds(&history, stream, *since))
                .map(|(stream, since)| {
                    let known = history.known(&stream);
                    (stream, since, known)
                })
                .collect()
        };
        let reads = needed.into_iter().map(|(stream, since, known)| async move {
            let read = tokio::time::timeout(READ_TIMEOUT, async {
                let _turn = self.reads.acquire().await;
                self.broker.read(&stream, since, None).await
            })
            .await;
            match read {
                Ok(Ok(fetched)) => Some((stream, fetched.seen_from(known))),
                Ok(Err(error)) => {
                    tracing::warn!(%stream, %error, "could not read the shared history");
                    None
                }
                Err(_) => {
                    tracing::warn!(%stream, "the shared history took too long to answer a read");
                    None
                }
            }
        });
        join_all(reads).await.into_iter().flatten().collect()
    }

    /// Registers a connection and queues what its tab missed of the
    /// streams `resume` names (with what `fetched` read from the shared
    /// history), as one step; unless a limit says no, or its session is
    /// among those `ended`.
    pub fn register(
        &self,
        id: ConnectionId,
        connection: Connection,
        resume: &Resume,
        mut fetched: BTreeMap<Stream, Fetched>,
        ended: &EndedSessions,
    ) -> Result<Registered, Refused> {
        if !self.records {
            self.registry.insert(id, connection, ended)?;
            return Ok(Registered {
                positions: BTreeMap::new(),
                fitted: true,
                told: Delivery::default(),
            });
        }
        let user = connection.identity.user;
        let now = Instant::now();
        let mut history = self.history.lock();
        let mut maps = self.registry.write_after(&history);
        history.make_room(|stream| maps.has_readers(stream));
        maps.insert(id, connection, self.registry.limits(), ended)?;
        let mut fitted = true;
        for (stream, since) in &resume.since {
            // The same rule as live delivery: a user's stream reaches only
            // that user's connections.
            if maps.reads(id, stream) {
                let answer = recover(&mut history, stream, *since, fetched.get(stream), now);
                fitted &= queue_answer(&history, &maps, id, stream, answer);
            }
        }
        let streams = std::iter::once(Stream::Everyone).chain(user.map(Stream::User));
        let positions = streams
            .filter_map(|stream| {
                let position =
                    self.start_reading(&mut history, &stream, fetched.remove(&stream))?;
                Some((stream, position))
            })
            .collect();
        let told = tell_revealed(&mut history, &maps, Some(id));
        self.note_diverged(&history);
        Ok(Registered {
            positions,
            fitted,
            told,
        })
    }

    /// Adds a connection to a room whose rule agreed, after queueing what
    /// followed `since` in the room's stream (with what `fetched` read from
    /// the shared history), and `joined` with the stream's position, as one
    /// step.
    pub fn join(
        &self,
        id: ConnectionId,
        room: &RoomName,
        since: Option<Position>,
        fetched: Option<Fetched>,
    ) -> Result<Joined, JoinError> {
        let max = self.registry.limits().rooms_per_connection;
        let now = Instant::now();
        let mut history = self.history.lock();
        let mut maps = self.registry.write_after(&history);
        if !self.records {
            let arrived = maps.join(id, room, max)?;
            let joined = ControlFrame::Joined {
                room,
                position: None,
            };
            let fitted = maps.queue_control(id, &joined);
            return Ok(Joined {
                arrived,
                fitted,
                told: Delivery::default(),
            });
        }
        history.make_room(|stream| maps.has_readers(stream));
        let stream = Stream::Room(room.clone());
        // Joining again: it had everything live, nothing to replay.
        let member = maps.reads(id, &stream);
        let arrived = maps.join(id, room, max)?;
        let replayed = member
            || since.is_none_or(|since| {
                let answer = recover(&mut history, &stream, since, fetched.as_ref(), now);
                queue_answer(&history, &maps, id, &stream, answer)
            });
        let position = self.start_reading(&mut history, &stream, fetched);
        // A fresh join in a mirror: the connection starts at the position
        // (events at or before it still on their way live are not written
        // to it), told by an empty replay.
        let started = member
            || since.is_some()
            || !history.is_mirror()
            || position.is_none_or(|position| maps.queue_replay(id, &stream, &[], position));
        let joined = ControlFrame::Joined { room, position };
        let fitted = replayed && started && maps.queue_control(id, &joined);
        let told = tell_revealed(&mut history, &maps, Some(id));
        self.note_diverged(&history);
        Ok(Joined {
            arrived,
            fitted,
            told,
        })
    }

    /// Where `stream` stands for a connection that starts reading it (see
    /// [`position_here`]). Without a position, and unheard here, the
    /// stream goes blind (`blind.rs`) until this process hears it and
    /// learns where it stands.
    fn start_reading(
        &self,
        history: &mut History,
        stream: &Stream,
        fetched: Option<Fetched>,
    ) -> Option<Position> {
        let position = position_here(history, stream, fetched);
        if position.is_none() && !self.broker.hears(stream) {
            // Connected, this process hears it within a subscription's
            // round trip (the server put the tab in a room of a shard not
            // heard yet); otherwise, not before Redis is back.
            let blindness = if self.broker.can_read() {
                Blindness::Starting
            } else {
                Blindness::Unheard
            };
            history.read_blind(stream, blindness);
        }
        position
    }

    /// Records a durable event and delivers it: hands it to the broker,
    /// which places it and hands it back to every process (this one
    /// included: nothing is queued here yet), or places it here when the
    /// broker does not take it.
    pub fn emit(
        &self,
        target: &Target,
        frame: String,
        placed: Option<oneshot::Sender<Placement>>,
    ) -> Delivery {
        // Server code leaving a connection out leaves its tab out of
        // replays too.
        let except_tab = target.except_tab.or_else(|| {
            let except = target.except?;
            self.registry.tab_of(except)
        });
        let event = Box::new(Durable {
            target: target.clone(),
            id: EventId(rand::random()),
            except_tab,
            streams: streams_of(target),
            frame,
            placed,
        });
        match self.broker.place(event) {
            Ok(()) => Delivery::default(),
            Err(event) => self.place_here(event),
        }
    }

    /// Places a durable event in this process's history, in epochs of its
    /// own when the history mirrors a shared one, and queues it for its
    /// readers here, as one step; then tells a waiting emitter
    /// (`Placement::Local`).
    pub fn place_here(&self, mut event: Box<Durable>) -> Delivery {
        let outcome = {
            let (mut history, maps) = self.lock();
            let positions: Vec<(Stream, Position)> = event
                .streams
                .iter()
                .map(|stream| (stream.clone(), history.next_position(stream)))
                .collect();
            let placed = Placed {
                target: &event.target,
                id: event.id,
                except_tab: event.except_tab,
                streams: positions,
                frame: &event.frame,
            };
            let outcome = keep_and_deliver(&mut history, &maps, &placed, Source::Here);
            self.note_diverged(&history);
            outcome
        };
        event.tell(Placement::Local);
        outcome
    }

    /// Keeps and queues a durable event the broker placed, for its readers
    /// here.
    pub fn placed(&self, event: &Placed<'_>) -> Delivery {
        let (mut history, maps) = self.lock();
        let outcome = keep_and_deliver(&mut history, &maps, event, Source::Broker);
        self.note_diverged(&history);
        outcome
    }
}

/// Where a durable event's positions come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Given here, by this process's history.
    Here,
    /// Given by the broker, in the shared history.
    Broker,
}

/// Keeps a durable event in each of its streams at its position there,
/// then queues it for their readers (and the single connections its target
/// names), each once, with its positions in the streams they read.
fn keep_and_deliver(
    history: &mut History,
    maps: &Maps,
    event: &Placed<'_>,
    source: Source,
) -> Delivery {
    let now = Instant::now();
    let mut outcome = Delivery::default();
    let many = event.streams.len() > 1;
    let mut positioned = Vec::with_capacity(event.streams.len());
    for (index, (stream, position)) in event.streams.iter().enumerate() {
        let frame: Utf8Bytes = protocol::with_positions(
            event.frame,
            event.id,
            std::slice::from_ref(&event.streams[index]),
        )
        .into();
        positioned.push(frame.clone());
        let others = many.then(|| {
            event
                .streams
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .map(|(_, pair)| pair.clone())
                .collect::<Vec<_>>()
                .into()
        });
        let kept = Kept {
            offset: position.offset,
            id: event.id,
            frame,
            except: event.except_tab,
            others,
        };
        match source {
            Source::Here => history.append(stream, *position, kept, now),
            Source::Broker => match history.apply(stream, *position, kept, now) {
                Applied::Missed(reason) => {
                    let before = Position {
                        offset: position.offset - 1,
                        ..*position
                    };
                    maps.discontinuity_to_readers(stream, reason, before, &mut outcome);
                }
                Applied::Rewound => {
                    tracing::warn!(
                        %stream,
                        "an offset came again with another event: the shared history went back \
                         (restarted from an older snapshot?); the stream starts again"
                    );
                    history.went_back(stream, position.epoch);
                }
                // A catch-up, or a read that ran ahead of the broker, brought
                // it first: queued still (a reader that started without a
                // position must not lose it); a connection that stands at
                // or past it already leaves it out (`Outgoing::write_into`).
                Applied::Duplicate | Applied::InOrder | Applied::New => {}
            },
        }
    }
    let placed = registry::Placed {
        id: event.id,
        frame: event.frame,
        streams: &event.streams,
        positioned: &positioned,
        connections: &event.target.connections,
        tabs: &event.target.tabs,
        except: Except {
            connection: event.target.except,
            tab: event.except_tab,
        },
    };
    maps.deliver_placed(&placed, &mut outcome);
    outcome
}
