//! The broker: what stands between a hub and the other processes that
//! share its events, as socketioxide's `Adapter` does.
//!
//! A hub asks its [`Broker`] to place durable events (give them their
//! positions and hand them to every process, this one included), to publish
//! volatile ones, to read the shared history for a recovery this process
//! cannot serve, to tell the others its presence, and to tell them that a
//! session ended. What the other processes say comes back through the
//! hub's [`Inbox`]. Two brokers:
//!
//! - [`LocalBroker`]: one process alone. It takes nothing: durable events
//!   are placed in this process's history, and there is nobody to tell.
//! - `redis` (feature `redis`): the processes sharing a Redis server and a
//!   channel act as one hub; the history lives in Redis, and each process
//!   keeps a mirror of it.
//! - [`MemoryBackplane`]: several hubs of one process, as if on one Redis
//!   server, with its faults at hand (an outage, a history that goes
//!   back): for tests.
//!
//! After an outage, a broker that shares the history sets it right the
//! same way whatever it is ([`reconcile`]): the streams written apart
//! start again, the streams followed here catch up, and those whose
//! history went back start again too.
//!
//! The next ones plug in here: Redis Cluster (the Redis broker already
//! spreads streams over shards, each process hearing only the shards its
//! tabs read) and an outbox in the database.
//!
//! The hub never asks whether it is alone: it asks its broker, and the
//! local broker answers as one process does.

mod memory;
#[cfg(feature = "redis")]
pub mod redis;

use std::{fmt::Display, sync::Arc};

use axum::extract::ws::Utf8Bytes;
use futures_util::future::BoxFuture;
use tokio::sync::oneshot;

use super::{SessionKey, TabMark, Target, registry::Kept};
use crate::{
    Member, RoomName,
    stream::{Discontinuity, Epoch, EventId, Position, Stream},
};

/// One server process among those sharing a broker. Random, new at each
/// start, so a restarted process is a new node. Written as 16 hexadecimal
/// digits, like a [`crate::ConnectionId`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(pub u64);

crate::ids::hex_id!(NodeId);

impl NodeId {
    pub fn random() -> Self {
        Self(rand::random())
    }
}

/// Where a durable event was kept, as [`super::Emit::emit_placed`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// In the shared history (Redis): any process can replay it.
    Shared,
    /// In this process's history only: the process is alone, or the broker
    /// was unreachable or could not keep up (its streams are then reset in
    /// the shared history as soon as it can: their readers everywhere
    /// fetch again).
    Local,
    /// Nowhere: a volatile event, the history is off, the target names
    /// single connections or nobody, or the process stopped first.
    NotKept,
}

/// A durable event on its way to be placed.
#[derive(Debug)]
pub(crate) struct Durable {
    pub target: Target,
    pub id: EventId,
    /// The tab the emit leaves out, if any: its recovery leaves it out too.
    pub except_tab: Option<TabMark>,
    /// The streams it is appended to.
    pub streams: Vec<Stream>,
    /// Its event frame, without positions.
    pub frame: String,
    /// Told where it was kept, when the emitter waits for it.
    pub placed: Option<oneshot::Sender<Placement>>,
}

impl Durable {
    /// Tells a waiting emitter where the event was kept.
    pub fn tell(&mut self, placement: Placement) {
        if let Some(placed) = self.placed.take() {
            let _ = placed.send(placement);
        }
    }
}

/// A durable event the broker placed, as it hands it to every process.
pub(crate) struct Placed<'a> {
    pub target: &'a Target,
    pub id: EventId,
    pub except_tab: Option<TabMark>,
    /// Each stream with the event's position in it.
    pub streams: Vec<(Stream, Position)>,
    /// The event frame without positions.
    pub frame: &'a str,
}

/// A stream, as read from the shared history.
#[derive(Clone, Debug)]
pub(crate) struct Fetched {
    /// Where the stream stood when it was read.
    pub position: Position,
    /// The events after the position asked for, oldest first, or why they
    /// cannot be had (none when only the position was asked for).
    pub events: Result<Vec<Kept>, Discontinuity>,
    /// The shared history is behind the position asked for, in its epoch
    /// (or gave its offset to another event): it went back, having lost
    /// events (Redis restarted from an older snapshot).
    pub went_back: bool,
    /// The id of the event at `position`, if the history still holds it:
    /// a mirror that learns the position from this read can then tell if
    /// the history later gives that offset to another event.
    pub last_id: Option<EventId>,
}

impl Fetched {
    /// The read as this process takes it, having stood at `known` in the
    /// stream before sending it: the history went back only if it is now
    /// behind that, in the same epoch. A tab's position ahead of it is no
    /// proof (it may be forged), and neither is an event that reached this
    /// process after the read ran, which is at an offset the read could
    /// not have seen.
    pub fn seen_from(mut self, known: Option<Position>) -> Self {
        self.went_back &= known.is_some_and(|known| {
            known.epoch == self.position.epoch && known.offset > self.position.offset
        });
        self
    }
}

/// A reading of the shared history failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ReadError(pub String);

/// What a process tells the others of its presence: the users it has in
/// rooms.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum PresenceNews {
    /// Its users in one room now (replacing what it said before; empty
    /// when it has none left).
    Room {
        room: RoomName,
        members: Vec<Member>,
    },
    /// It (re)joined the others: its users in every room; everyone
    /// answers with a snapshot.
    Hello { rooms: Vec<(RoomName, Vec<Member>)> },
    /// Its users in every room, in answer to a hello.
    Snapshot { rooms: Vec<(RoomName, Vec<Member>)> },
}

/// What a hub asks of the processes it shares its events with. See the
/// module documentation.
pub(crate) trait Broker: Send + Sync + 'static {
    /// Starts the broker for the hub whose inbox this is: what the others
    /// say goes there. Called once, when the hub is built.
    fn start(&self, inbox: Arc<dyn Inbox>);

    /// Whether durable events are placed in a history shared by every
    /// process (this process's history then mirrors it), rather than here.
    fn shares_history(&self) -> bool;

    /// Takes a durable event to place and hand to every process, this one
    /// included (through [`Inbox::placed`]); or hands it back, when it
    /// cannot now: it is then placed in this process's history.
    fn place(&self, event: Box<Durable>) -> Result<(), Box<Durable>>;

    /// Publishes a volatile event frame for the other processes'
    /// connections.
    fn publish(&self, target: &Target, frame: &Utf8Bytes);

    /// Whether the shared history can be read now.
    fn can_read(&self) -> bool;

    /// A connection here is about to read `stream`: resolves once this
    /// process hears the stream's events (with Redis, its shard's channel
    /// subscribed), so that what a read of the shared history made after
    /// it misses nothing published since. At once when it already does,
    /// or cannot (the broker is away).
    fn follow<'a>(&'a self, _stream: &'a Stream) -> BoxFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }

    /// A connection here reads `stream` from now on, without having
    /// waited for [`Broker::follow`] (the server put it in a room): this
    /// process starts hearing the stream's events as soon as it can.
    fn want(&self, _stream: &Stream) {}

    /// Whether this process hears `stream`'s events now: only then does
    /// its mirror follow the stream.
    fn hears(&self, _stream: &Stream) -> bool {
        true
    }

    /// Reads `stream` in the shared history: what followed `since` (or
    /// where it stands, for `None`). `since_id`: the id of the event at
    /// `since`, if known, to tell a history that went back.
    fn read<'a>(
        &'a self,
        stream: &'a Stream,
        since: Option<Position>,
        since_id: Option<EventId>,
    ) -> BoxFuture<'a, Result<Fetched, ReadError>>;

    /// Tells the others this process's presence.
    fn announce(&self, news: PresenceNews);

    /// Tells every process that a session ended (never dropped).
    fn end_session(&self, session: &SessionKey);

    /// Whether the broker is connected to the others: `None` alone.
    fn connected(&self) -> Option<bool>;

    /// How many other processes were heard from recently.
    fn peers(&self) -> usize;

    /// How many messages this process received from the others so far
    /// (its share of the site's traffic: with shards, what its tabs read).
    fn received(&self) -> u64 {
        0
    }

    /// Says goodbye to the others and stops. After the connections closed,
    /// so that their departures go out first.
    fn stop(&self) -> BoxFuture<'_, ()>;
}

/// What a broker hands to the hub it serves: what the other processes
/// said, and, after the broker lost and found them again, the questions of
/// setting the histories right.
pub(crate) trait Inbox: Send + Sync {
    /// A volatile event for `target`'s connections here.
    fn deliver(&self, target: &Target, frame: Utf8Bytes);

    /// A durable event the broker placed (emitted here or elsewhere): kept
    /// and delivered in the order the broker placed it.
    fn placed(&self, event: Placed<'_>);

    /// A durable event the broker took and could not place after all: it
    /// is placed here. (A broker that places events as it takes them, as
    /// the memory one does, never needs it.)
    #[cfg(feature = "redis")]
    fn not_placed(&self, event: Box<Durable>);

    /// The shared history started `stream` again at `position`.
    fn reset(&self, stream: &Stream, position: Position);

    /// A durable event (`id`) placed at `position` in `stream` that this
    /// process cannot send (larger than its `max_event_bytes`, say): its
    /// readers here are told they cannot have it, unless this process
    /// stands past it already (with that event there: another at its
    /// offset means the shared history went back).
    #[cfg(feature = "redis")]
    fn unsendable(&self, stream: &Stream, position: Position, id: EventId);

    /// A session ended on another process.
    fn session_ended(&self, session: &SessionKey);

    /// The sessions that ended lately, the most recent `max` of them: told
    /// again to a process that (re)joins.
    fn recently_ended_sessions(&self, max: usize) -> Vec<SessionKey>;

    /// What another process said of its presence.
    fn presence(&self, node: NodeId, news: PresenceNews);

    /// Another process is gone (it said goodbye, or fell silent): its
    /// presence is forgotten.
    fn node_gone(&self, node: NodeId);

    /// Another process fell silent without saying goodbye: it may have
    /// placed durable events on its own while cut off from the shared
    /// history, that no other process will hear of. Every stream's
    /// readers here are told they may have missed events.
    #[cfg(feature = "redis")]
    fn node_lost(&self);

    /// The broker (re)joined the others: this process's presence goes to
    /// them, with a hello.
    fn joined(&self);

    /// The streams written here apart from the shared history (while it
    /// was unreachable: reset whatever its epoch there, `None`), or found
    /// to have gone back there (reset only if it still has that epoch):
    /// they must start again in a new epoch.
    fn take_diverged(&self) -> Vec<(Stream, Option<Epoch>)>;

    /// Streams taken for a reset that did not happen: asked again later.
    fn diverged_again(&self, streams: &[(Stream, Option<Epoch>)]);

    /// Whether some streams wait to be reset.
    fn has_diverged(&self) -> bool;

    /// What to catch up on after a reconnection: the streams followed here
    /// with readers, and those read here blind.
    fn followed(&self) -> Vec<Followed>;

    /// The streams some connection here reads.
    #[cfg(feature = "redis")]
    fn streams_read_here(&self) -> Vec<Stream>;

    /// Of what to catch up on, the streams `chosen`, as [`Inbox::followed`]
    /// gives them (forgetting nothing).
    #[cfg(feature = "redis")]
    fn followed_where(&self, chosen: &dyn Fn(&Stream) -> bool) -> Vec<Followed>;

    /// The streams read here blind (`streams/blind.rs`) that are `chosen`
    /// (heard now): to read where they stand.
    #[cfg(feature = "redis")]
    fn blind_where(&self, chosen: &dyn Fn(&Stream) -> bool) -> Vec<Followed>;

    /// The broker no longer hears these streams: the mirror forgets those
    /// without readers here.
    #[cfg(feature = "redis")]
    fn forget_unheard(&self, unheard: &dyn Fn(&Stream) -> bool);

    /// What the shared history holds of `stream` after `from`, where this
    /// process stopped following it, or where it stands (`None`, a blind
    /// stream); or why it could not be read.
    fn caught_up(
        &self,
        stream: &Stream,
        from: Option<Position>,
        fetched: Result<Fetched, ReadError>,
    );
}

/// A process alone: durable events are placed in its history, and there
/// is nobody to tell anything.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LocalBroker;

impl Broker for LocalBroker {
    fn start(&self, _inbox: Arc<dyn Inbox>) {}

    fn shares_history(&self) -> bool {
        false
    }

    fn place(&self, event: Box<Durable>) -> Result<(), Box<Durable>> {
        Err(event)
    }

    fn publish(&self, _target: &Target, _frame: &Utf8Bytes) {}

    fn can_read(&self) -> bool {
        false
    }

    fn read<'a>(
        &'a self,
        _stream: &'a Stream,
        _since: Option<Position>,
        _since_id: Option<EventId>,
    ) -> BoxFuture<'a, Result<Fetched, ReadError>> {
        Box::pin(async { Err(ReadError("no shared history: one process".to_owned())) })
    }

    fn announce(&self, _news: PresenceNews) {}

    fn end_session(&self, _session: &SessionKey) {}

    fn connected(&self) -> Option<bool> {
        None
    }

    fn peers(&self) -> usize {
        0
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

pub use self::memory::{MemoryBackplane, MemoryNode, Snapshot};

/// What setting the histories right after an outage needs of a shared
/// history: starting streams again, and reading several at once.
pub(crate) trait SharedHistory {
    type Error: Display;

    /// Starts these streams again in new epochs, and tells every process;
    /// a stream given with an epoch only if it still has that one.
    fn reset<'a>(
        &'a mut self,
        streams: &'a [(Stream, Option<Epoch>)],
    ) -> BoxFuture<'a, Result<(), Self::Error>>;

    /// Reads each stream after the position (where the reader saw the
    /// event of that id), or where it stands (no position), in one round
    /// trip: one answer per stream.
    fn read_many<'a>(
        &'a mut self,
        wanted: &'a [Followed],
    ) -> BoxFuture<'a, Result<Vec<Read>, Self::Error>>;
}

/// One stream's answer to a read of the shared history.
pub(crate) type Read = Result<Fetched, ReadError>;

/// A stream to catch up on: where this process stands in it (`None`:
/// nowhere it can vouch for, `streams/blind.rs`), and the id of the event
/// there when it saw it.
pub(crate) type Followed = (Stream, Option<Position>, Option<EventId>);

/// Streams read per round trip when catching up: each may bring a
/// recovery's worth of events, and one timeout covers the round trip.
const CATCH_UP_READS: usize = 16;
/// Streams reset per round trip.
const RESETS_AT_ONCE: usize = 512;

/// Sets the histories right after the broker (re)joined the shared one:
/// the streams written here apart start again everywhere; the streams
/// followed here get what the other processes placed meanwhile (or a
/// discontinuity, if it is gone); and those whose history went back (it
/// restarted from an older snapshot) start again everywhere too. Before
/// anything newer is delivered.
pub(crate) async fn reconcile<H: SharedHistory>(
    inbox: &dyn Inbox,
    history: &mut H,
) -> Result<(), H::Error> {
    reset_diverged(inbox, history).await?;
    catch_up(inbox, history, &inbox.followed()).await?;
    reset_diverged(inbox, history).await
}

/// Has each of the `followed` streams (where this process stands in it)
/// catch up on what the shared history holds after that; each blind one,
/// on where it stands.
pub(crate) async fn catch_up<H: SharedHistory>(
    inbox: &dyn Inbox,
    history: &mut H,
    followed: &[Followed],
) -> Result<(), H::Error> {
    for streams in followed.chunks(CATCH_UP_READS) {
        let fetched = history.read_many(streams).await?;
        for ((stream, position, _), fetched) in streams.iter().zip(fetched) {
            inbox.caught_up(stream, *position, fetched);
        }
    }
    Ok(())
}

/// Has the shared history start again, in new epochs, the streams written
/// here apart or found to have gone back; every process tells their
/// readers. Those not reset are asked again next time.
pub(crate) async fn reset_diverged<H: SharedHistory>(
    inbox: &dyn Inbox,
    history: &mut H,
) -> Result<(), H::Error> {
    let diverged = inbox.take_diverged();
    for (index, streams) in diverged.chunks(RESETS_AT_ONCE).enumerate() {
        if let Err(error) = history.reset(streams).await {
            inbox.diverged_again(&diverged[index * RESETS_AT_ONCE..]);
            return Err(error);
        }
    }
    if !diverged.is_empty() {
        tracing::info!(
            streams = diverged.len(),
            "streams written apart from the shared history, or whose history went back, \
             start again: their readers fetch again"
        );
    }
    Ok(())
}

/// One event as a shared history stores it in each of its streams' logs:
/// its frame without positions, and its positions in every stream it was
/// placed in (none kept when only one).
#[derive(Clone, Debug)]
pub(crate) struct StoredEvent {
    pub offset: u64,
    pub id: EventId,
    pub except: Option<TabMark>,
    pub frame: String,
    pub all: Arc<[(Stream, Position)]>,
}

impl StoredEvent {
    /// The event as a recovery of `stream` (in `epoch`) replays it: its
    /// frame with its position in `stream`, and its positions in the other
    /// streams it was placed in.
    pub fn replayed(&self, stream: &Stream, epoch: Epoch) -> Kept {
        let recorded = crate::stream::Recorded {
            id: self.id,
            stream: stream.clone(),
            position: Position {
                epoch,
                offset: self.offset,
            },
            also: Vec::new(),
        };
        let others: Vec<(Stream, Position)> = self
            .all
            .iter()
            .filter(|(other, _)| other != stream)
            .cloned()
            .collect();
        Kept {
            offset: self.offset,
            id: self.id,
            frame: crate::protocol::with_position(self.frame.clone(), &recorded).into(),
            except: self.except,
            others: (!others.is_empty()).then(|| others.into()),
        }
    }
}

/// The streams a durable emit to `target` is appended to: everyone's, or
/// each user's and each room's, each once.
pub(crate) fn streams_of(target: &Target) -> Vec<Stream> {
    if target.everyone {
        return vec![Stream::Everyone];
    }
    let mut named = std::collections::HashSet::new();
    target
        .users
        .iter()
        .map(|user| Stream::User(*user))
        .chain(target.rooms.iter().cloned().map(Stream::Room))
        .filter(|stream| named.insert(stream.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(epoch: u64, offset: u64) -> Position {
        Position::at(epoch, offset)
    }

    /// A read that found the history at offset 3 of epoch 1, behind the
    /// position a tab asked from.
    fn behind_the_tab() -> Fetched {
        Fetched {
            position: at(1, 3),
            events: Err(Discontinuity::TooOld),
            went_back: true,
            last_id: None,
        }
    }

    #[test]
    fn a_history_went_back_only_if_this_process_stood_further_on_before_the_read() {
        assert!(behind_the_tab().seen_from(Some(at(1, 5))).went_back);
        // A tab's word alone, or this process at the same place (an event
        // that arrived after the read is not counted before it).
        assert!(!behind_the_tab().seen_from(None).went_back);
        assert!(!behind_the_tab().seen_from(Some(at(1, 3))).went_back);
        assert!(!behind_the_tab().seen_from(Some(at(1, 2))).went_back);
        // Further on in another epoch: nothing to compare.
        assert!(!behind_the_tab().seen_from(Some(at(2, 9))).went_back);
        // A read that did not find the history behind stays so.
        let ahead = Fetched {
            went_back: false,
            ..behind_the_tab()
        };
        assert!(!ahead.seen_from(Some(at(1, 5))).went_back);
    }
}
