//! Queueing for this process's connections: volatile frames to a target's
//! connections, durable events to their streams' readers (each with its
//! positions in the streams it reads), replays, discontinuities and
//! control frames. All under the registry's lock, never waiting: what a
//! full queue could not take is reported in the [`Delivery`].

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use axum::extract::ws::Utf8Bytes;

use super::{
    ById, Connection, Delivery, Except, Gap, Live, Maps, Outgoing, Positions, Replay, Replayed,
    queue::Unqueued,
};
use crate::{
    ConnectionId,
    protocol::{self, ControlFrame},
    server::{TabMark, Target},
    stream::{Discontinuity, EventId, Position, Stream},
};

/// A durable event, placed in its streams, to queue for their readers.
pub(crate) struct Placed<'a> {
    pub id: EventId,
    /// The event frame without positions.
    pub frame: &'a str,
    /// Each stream with the event's position in it.
    pub streams: &'a [(Stream, Position)],
    /// The event frame with its position in each stream (of the same
    /// index): what a connection that reads one of them gets.
    pub positioned: &'a [Utf8Bytes],
    /// Single connections the target names besides its streams.
    pub connections: &'a [ConnectionId],
    /// Tabs the target names besides its streams (their connections).
    pub tabs: &'a [TabMark],
    pub except: Except,
}

/// One event of a stream's history, as it is replayed.
#[derive(Clone, Debug)]
pub(crate) struct Kept {
    pub offset: u64,
    /// The emit's id.
    pub id: EventId,
    /// Its frame, with its position in this stream.
    pub frame: Utf8Bytes,
    /// The tab the emit left out, if any: left out of replays too.
    pub except: Option<TabMark>,
    /// Its positions in the other streams it was placed in, if any: a
    /// connection that reads one of those gets them in the frame too.
    pub others: Option<Arc<[(Stream, Position)]>>,
}

impl Kept {
    /// The frame for a connection, with the event's positions in the other
    /// streams that connection reads.
    fn frame_for(&self, connection: &Connection) -> Utf8Bytes {
        let Some(others) = &self.others else {
            return self.frame.clone();
        };
        let also: Vec<&(Stream, Position)> = others
            .iter()
            .filter(|(stream, _)| connection.reads(stream))
            .collect();
        if also.is_empty() {
            return self.frame.clone();
        }
        protocol::with_also(self.frame.as_str().to_owned(), also).into()
    }
}

impl Maps {
    /// Queues `frame` for every connection `target` names, each once,
    /// except those it leaves out.
    pub(super) fn deliver(&self, target: &Target, frame: &Utf8Bytes, outcome: &mut Delivery) {
        let except = Except::of(target);
        // One frame for all, each queue holding a reference to it.
        let frame = Arc::new(frame.clone());
        let push = |id: ConnectionId| {
            let Some(connection) = self.connections.get(&id) else {
                return;
            };
            if !except.leaves_out(id, connection) {
                connection.push(id, Outgoing::Frame(Arc::clone(&frame)), outcome);
            }
        };

        let groups =
            target.users.len() + target.rooms.len() + target.connections.len() + target.tabs.len();
        let item = || Outgoing::Frame(Arc::clone(&frame));
        if target.everyone {
            self.everyone.walk(item, except, outcome);
            return;
        }
        if let ([room], 1) = (target.rooms.as_slice(), groups) {
            if let Some(members) = self.rooms.get(room) {
                members.walk(item, except, outcome);
            }
            return;
        }
        let streams = target
            .users
            .iter()
            .map(|user| Stream::User(*user))
            .chain(target.rooms.iter().cloned().map(Stream::Room));
        let all = streams
            .flat_map(|stream| self.readers(&stream).collect::<Vec<_>>())
            .chain(target.connections.iter().copied())
            .chain(
                target
                    .tabs
                    .iter()
                    .flat_map(|tab| self.tabs.get(tab).into_iter().flatten().copied()),
            );
        if groups <= 1 {
            // One user, one room or one connection: no one is named twice.
            all.for_each(push);
        } else {
            let mut seen = HashSet::with_hasher(ById::default());
            all.filter(|id| seen.insert(*id)).for_each(push);
        }
    }

    /// Queues a durable event for the readers of its streams, each once,
    /// with its position in each of the streams through which the
    /// connection gets it; then for the single connections the target
    /// names and that did not get it through a stream, without positions.
    pub fn deliver_placed(&self, event: &Placed<'_>, outcome: &mut Delivery) {
        let mut reached = HashSet::with_hasher(ById::default());
        if let ([(stream, position)], [frame]) = (event.streams, event.positioned) {
            let live = Arc::new(Live {
                frame: frame.clone(),
                positions: Positions::One((stream.clone(), *position)),
            });
            match self.roster(stream) {
                Some(readers) => {
                    let item = || Outgoing::Event(Arc::clone(&live));
                    readers.walk(item, event.except, outcome);
                }
                // A user's connections (a few), or a room without members here.
                None => {
                    for id in self.readers(stream) {
                        self.push_event(id, event.except, &live, outcome);
                    }
                }
            }
            if !event.connections.is_empty() || !event.tabs.is_empty() {
                reached.extend(self.readers(stream));
            }
        } else {
            // Each connection, with the streams (by index) it reads.
            let mut streams_of: HashMap<ConnectionId, Vec<usize>, ById> = HashMap::default();
            for (index, (stream, _)) in event.streams.iter().enumerate() {
                for id in self.readers(stream) {
                    streams_of.entry(id).or_default().push(index);
                }
            }
            // One frame per set of streams, whoever reads it.
            let mut frames: HashMap<Vec<usize>, Arc<Live>> = HashMap::new();
            for (id, indexes) in streams_of {
                let live = frames.entry(indexes).or_insert_with_key(|indexes| {
                    if let ([index], Some(frame)) =
                        (indexes.as_slice(), event.positioned.get(indexes[0]))
                    {
                        return Arc::new(Live {
                            frame: frame.clone(),
                            positions: Positions::One(event.streams[*index].clone()),
                        });
                    }
                    let positions: Vec<(Stream, Position)> = indexes
                        .iter()
                        .map(|index| event.streams[*index].clone())
                        .collect();
                    let frame = protocol::with_positions(event.frame, event.id, &positions);
                    Arc::new(Live {
                        frame: frame.into(),
                        positions: Positions::Many(positions.into()),
                    })
                });
                self.push_event(id, event.except, live, outcome);
                reached.insert(id);
            }
        }
        if !event.connections.is_empty() || !event.tabs.is_empty() {
            let frame = Arc::new(Utf8Bytes::from(event.frame.to_owned()));
            let of_tabs = event
                .tabs
                .iter()
                .flat_map(|tab| self.tabs.get(tab).into_iter().flatten());
            for id in event.connections.iter().chain(of_tabs) {
                if reached.insert(*id)
                    && let Some(connection) = self.connections.get(id)
                    && !event.except.leaves_out(*id, connection)
                {
                    connection.push(*id, Outgoing::Frame(Arc::clone(&frame)), outcome);
                }
            }
        }
    }

    fn push_event(
        &self,
        id: ConnectionId,
        except: Except,
        live: &Arc<Live>,
        outcome: &mut Delivery,
    ) {
        if let Some(connection) = self.connections.get(&id)
            && !except.leaves_out(id, connection)
        {
            connection.push(id, Outgoing::Event(Arc::clone(live)), outcome);
        }
    }

    /// Queues for every reader of `stream` here the same replay (less
    /// the events its tab was left out of), after which it stands at `to`.
    /// Readers that get the events as they are share one list of them: a
    /// catch-up of a thousand events to ten thousand readers holds one
    /// list, not ten thousand.
    pub fn replay_to_readers(
        &self,
        stream: &Stream,
        events: &[Kept],
        to: Position,
        outcome: &mut Delivery,
    ) {
        let shared: Arc<[Replayed]> = events
            .iter()
            .map(|event| Replayed {
                offset: event.offset,
                frame: event.frame.clone(),
            })
            .collect();
        // Who gets a list of its own: a tab some event leaves out, or a
        // reader of another stream some event was placed in too.
        let left_out: HashSet<TabMark> = events.iter().filter_map(|event| event.except).collect();
        let mut also: Vec<&Stream> = Vec::new();
        let others = events.iter().filter_map(|event| event.others.as_deref());
        for (other, _) in others.flatten() {
            if !also.contains(&other) {
                also.push(other);
            }
        }
        for id in self.readers(stream) {
            if let Some(connection) = self.connections.get(&id) {
                let own = connection.tab.is_some_and(|tab| left_out.contains(&tab))
                    || also.iter().any(|other| connection.reads(other));
                let replay = Outgoing::Replay(Box::new(Replay {
                    stream: stream.clone(),
                    events: if own {
                        replayed_for(connection, events).into()
                    } else {
                        Arc::clone(&shared)
                    },
                    to,
                    own: false,
                }));
                connection.push(id, replay, outcome);
            }
        }
    }

    /// Queues a `discontinuity` for every reader of `stream` here: whatever
    /// they read of it, they may have missed some; it goes on from
    /// `position`.
    pub fn discontinuity_to_readers(
        &self,
        stream: &Stream,
        reason: Discontinuity,
        position: Position,
        outcome: &mut Delivery,
    ) {
        self.discontinuity_to_readers_but(stream, reason, position, None, outcome);
    }

    /// The same, leaving `but` out (a connection given its own answer).
    pub fn discontinuity_to_readers_but(
        &self,
        stream: &Stream,
        reason: Discontinuity,
        position: Position,
        but: Option<ConnectionId>,
        outcome: &mut Delivery,
    ) {
        let gap = Arc::new(Gap::new(stream, reason, position, false));
        for id in self.readers(stream).filter(|id| Some(*id) != but) {
            if let Some(connection) = self.connections.get(&id) {
                connection.push(id, Outgoing::Discontinuity(Arc::clone(&gap)), outcome);
            }
        }
    }

    /// Queues a replay of `stream` for one connection, less the events its
    /// tab was left out of; one that the queue's bound on replays leaves
    /// no room for is a `discontinuity` (`too_many`) from `to` instead.
    /// `false` if its queue is full (or it is gone).
    pub fn queue_replay(
        &self,
        id: ConnectionId,
        stream: &Stream,
        events: &[Kept],
        to: Position,
    ) -> bool {
        let Some(connection) = self.connections.get(&id) else {
            return false;
        };
        let replay = Outgoing::Replay(Box::new(Replay {
            stream: stream.clone(),
            events: replayed_for(connection, events).into(),
            to,
            own: true,
        }));
        match connection.queue.try_send_replay(replay) {
            Ok(()) => true,
            Err(Unqueued::Closed) => false,
            // Too many bytes of replays, or a full queue (whose
            // `discontinuity` then fails too, and the connection closes).
            Err(Unqueued::Full) => {
                tracing::debug!(connection = %id, %stream, "no room for a replay");
                self.queue_discontinuity(id, stream, Discontinuity::TooMany, to)
            }
        }
    }

    /// Queues a `discontinuity` of `stream` for one connection, its own
    /// answer: it moves the stream back if the tab was further on (see
    /// [`Gap::moves_back`]). `false` if its queue is full (or it is gone).
    pub fn queue_discontinuity(
        &self,
        id: ConnectionId,
        stream: &Stream,
        reason: Discontinuity,
        position: Position,
    ) -> bool {
        self.connections.get(&id).is_some_and(|connection| {
            let gap = Gap::new(stream, reason, position, true);
            connection
                .queue
                .try_send(Outgoing::Discontinuity(Arc::new(gap)))
                .is_ok()
        })
    }

    /// Queues a control frame for one connection. `false` if its queue is
    /// full (or it is gone).
    pub fn queue_control(&self, id: ConnectionId, frame: &ControlFrame<'_>) -> bool {
        self.connections.get(&id).is_some_and(|connection| {
            let item = Outgoing::frame(frame.to_json().into());
            connection.queue.try_send(item).is_ok()
        })
    }
}

/// A replay's events as one connection gets them: without those its tab
/// was left out of, with the positions in the other streams it reads.
fn replayed_for(connection: &Connection, events: &[Kept]) -> Vec<Replayed> {
    events
        .iter()
        .filter(|event| connection.tab.is_none() || event.except != connection.tab)
        .map(|event| Replayed {
            offset: event.offset,
            frame: event.frame_for(connection),
        })
        .collect()
}
