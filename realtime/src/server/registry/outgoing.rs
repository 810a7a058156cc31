//! What waits in a connection's queue ([`Outgoing`]), and how far the
//! frames written to it reached in each stream ([`Reached`]).
//!
//! The connection's task turns its queue into frames to write
//! ([`Outgoing::write_into`]). A durable event can come to a connection by
//! two ways at once: live, and in a replay read from Redis while this
//! process was still receiving the same events. `Reached` leaves out the
//! second, by position: an event is written unless it was written already
//! through one of the streams it carries a position in (a [`Mark`]: a
//! position the connection was only told, where a stream went on from
//! after a gap, is no proof). A live event, or a catch-up replayed to
//! every reader, is also left out where the connection stands at or past
//! it in its epoch (its page's data, or its own replay, holds it); the
//! connection's own replay is not, since its `welcome` told it where the
//! stream is now before the replay of what came since its tab's
//! position. A `discontinuity` is never left out: it sets
//! where its stream goes on from. Only one connection's own answer moves
//! it back in an epoch (the tab was ahead of what its process could serve:
//! a history that went back, or one it could not read);
//! one sent to every reader of a stream tells a connection that stands
//! further on where it stands instead, so that events it had are not
//! written to it again.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;

use super::queue::Unqueued;
use crate::{
    protocol::ControlFrame,
    stream::{Discontinuity, Mark, Position, Stream},
};

/// Where a durable event sits in the streams it reached a connection
/// through: one stream (the usual case), or several.
#[derive(Clone, Debug)]
pub(crate) enum Positions {
    One((Stream, Position)),
    Many(Box<[(Stream, Position)]>),
}

/// A durable event as it goes live to the connections that read the same
/// streams: built once per emit and shared by their queues.
#[derive(Debug)]
pub(crate) struct Live {
    pub frame: Utf8Bytes,
    pub positions: Positions,
}

/// One event of a replay, with its offset in the replayed stream.
#[derive(Clone, Debug)]
pub(crate) struct Replayed {
    pub offset: u64,
    pub frame: Utf8Bytes,
}

/// What a tab missed of one stream, in one place of the queue.
#[derive(Debug)]
pub(crate) struct Replay {
    pub stream: Stream,
    /// Shared by the readers of a catch-up that get the same events.
    pub events: Arc<[Replayed]>,
    /// Where the stream stands after it.
    pub to: Position,
    /// The connection's own answer, to its join or its resumption: it
    /// brings the events up to where the connection was told it stands
    /// (its `welcome` says where the stream is now, before the replay of
    /// what came since the tab's position). A catch-up sent to every
    /// reader leaves out what a connection stands past.
    pub own: bool,
}

/// What waits in a connection's queue.
///
/// Two words: a bounded queue allocates its slots by the block (32 of
/// them), and every connection has one, idle or not. What a delivery to
/// thousands of connections queues is built once and shared (an `Arc`), so
/// queueing it is one reference count, with no allocation and no copy of a
/// stream's name.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A frame written as it is: a volatile event, a presence list, a
    /// reply.
    Frame(Arc<Utf8Bytes>),
    /// A durable event, live: not written if the connection has it
    /// already.
    Event(Arc<Live>),
    /// What a tab missed of one stream: a replay may be longer than the
    /// queue, and is not cut short by the slow-client rule. The stream then
    /// stands at its `to`.
    Replay(Box<Replay>),
    /// The connection may have missed events of the stream: always
    /// written, and the stream goes on from the position (see [`Gap`]).
    Discontinuity(Arc<Gap>),
    /// The connection left a room (the `left` frame): its stream is
    /// forgotten, so that what the connection reached stays within the
    /// streams it reads.
    Left(Box<(Utf8Bytes, Stream)>),
}

/// A `discontinuity`, as queued.
#[derive(Debug)]
pub(crate) struct Gap {
    /// The frame, with `position`.
    pub frame: Utf8Bytes,
    pub stream: Stream,
    pub reason: Discontinuity,
    /// Where the stream goes on from.
    pub position: Position,
    /// Whether it moves a connection that stands further on in the same
    /// epoch back to `position`: one connection's own answer, whose tab
    /// was ahead of what its process could serve. Otherwise such a
    /// connection is told where it stands.
    pub moves_back: bool,
}

impl Gap {
    pub fn new(
        stream: &Stream,
        reason: Discontinuity,
        position: Position,
        moves_back: bool,
    ) -> Self {
        Self {
            frame: ControlFrame::Discontinuity {
                stream,
                reason,
                position,
            }
            .to_json()
            .into(),
            stream: stream.clone(),
            reason,
            position,
            moves_back,
        }
    }
}

impl Outgoing {
    /// A frame written as it is, queued for one connection.
    pub fn frame(frame: Utf8Bytes) -> Self {
        Self::Frame(Arc::new(frame))
    }

    /// The bytes this item counts for in its queue's bound (a replay, or a
    /// frame under [`super::queue::SMALL_FRAME_BYTES`], none: see
    /// `queue.rs`).
    pub fn counted_bytes(&self) -> usize {
        let bytes = match self {
            Self::Frame(frame) => frame.len(),
            Self::Event(live) => live.frame.len(),
            Self::Replay(_) => 0,
            Self::Discontinuity(gap) => gap.frame.len(),
            Self::Left(left) => left.0.len(),
        };
        if bytes < super::queue::SMALL_FRAME_BYTES {
            0
        } else {
            bytes
        }
    }

    /// The bytes of a replay's frames (0 for anything else): replays are
    /// bounded apart (`queue.rs`).
    pub fn replay_bytes(&self) -> usize {
        match self {
            Self::Replay(replay) => replay.events.iter().map(|event| event.frame.len()).sum(),
            _ => 0,
        }
    }

    /// Adds the frames to write to `frames`, in order, leaving out the
    /// events the connection had already.
    pub fn write_into(self, reached: &mut Reached, frames: &mut Vec<Utf8Bytes>) {
        match self {
            Self::Frame(frame) => frames.push(unshare(frame)),
            Self::Event(live) => {
                // The connection stands there or further already: its
                // replay brought the event, or its page's data holds it (a
                // position told is where the tab asks from next, so never
                // behind what it has), whether or not this process's
                // history had the event before it came live.
                let stale = |(stream, position): &(Stream, Position)| {
                    reached.stands_at_or_past(stream, *position)
                };
                let new = match &live.positions {
                    Positions::One(one) => !stale(one) && reached.receive_new(&one.0, one.1),
                    Positions::Many(positions) => {
                        let all_stale = positions.iter().all(stale);
                        let new = !all_stale && !reached.has_any(positions);
                        if new {
                            for (stream, position) in positions.iter() {
                                reached.receive_new(stream, *position);
                            }
                        }
                        new
                    }
                };
                if new {
                    frames.push(live.frame.clone());
                }
            }
            Self::Replay(replay) => {
                let Replay {
                    stream,
                    events,
                    to,
                    own,
                } = *replay;
                for event in events.iter() {
                    let position = Position {
                        epoch: to.epoch,
                        offset: event.offset,
                    };
                    // As for a live event: where the connection stands,
                    // it has what came before (a catch-up that reached it
                    // after its own join's read ran ahead).
                    let stale = !own && reached.stands_at_or_past(&stream, position);
                    if !stale && reached.receive_new(&stream, position) {
                        frames.push(event.frame.clone());
                    }
                }
                reached.tell(&stream, to);
            }
            Self::Discontinuity(gap) => match reached.past(&gap.stream, gap.position) {
                // A replay read ahead of this process brought it further:
                // what came between is not to come again.
                Some(at) if !gap.moves_back => {
                    let here = Gap::new(&gap.stream, gap.reason, at, false);
                    reached.set(&gap.stream, at);
                    frames.push(here.frame);
                }
                _ => {
                    reached.set(&gap.stream, gap.position);
                    frames.push(gap.frame.clone());
                }
            },
            Self::Left(left) => {
                let (frame, stream) = *left;
                reached.forget(&stream);
                frames.push(frame);
            }
        }
    }
}

/// The frame of a shared item, moved out when this queue held the last
/// reference (no reference count to change), cloned otherwise.
fn unshare(frame: Arc<Utf8Bytes>) -> Utf8Bytes {
    Arc::try_unwrap(frame).unwrap_or_else(|shared| Utf8Bytes::clone(&shared))
}

/// How far the frames written to one connection reached in each stream it
/// reads, and from where they hold every event: everyone's, its user's and
/// its rooms' (a room is forgotten when the connection leaves it), so never
/// more than a few dozen: a list, searched in order, costs less than a
/// hash of the stream's name at every delivery, and nothing until the
/// first durable event.
#[derive(Debug, Default)]
pub(crate) struct Reached(Vec<(Stream, Mark)>);

impl Reached {
    fn get_mut(&mut self, stream: &Stream) -> Option<&mut Mark> {
        self.0
            .iter_mut()
            .find_map(|(reached, mark)| (reached == stream).then_some(mark))
    }

    /// Whether the event at any of these positions was written already.
    fn has_any(&self, positions: &[(Stream, Position)]) -> bool {
        positions.iter().any(|(stream, position)| {
            self.0
                .iter()
                .any(|(reached, mark)| reached == stream && mark.covers(*position))
        })
    }

    /// Whether the connection stands at `position` or further in its
    /// epoch (told or received).
    fn stands_at_or_past(&self, stream: &Stream, position: Position) -> bool {
        self.0.iter().any(|(reached, mark)| {
            reached == stream
                && mark.at.epoch == position.epoch
                && mark.at.offset >= position.offset
        })
    }

    /// Where the connection stands in `stream`, if that is further on than
    /// `position` in its epoch.
    fn past(&self, stream: &Stream, position: Position) -> Option<Position> {
        self.0.iter().find_map(|(reached, mark)| {
            (reached == stream
                && mark.at.epoch == position.epoch
                && mark.at.offset > position.offset)
                .then_some(mark.at)
        })
    }

    /// The connection starts reading `stream` at `position` (the
    /// `welcome` frame's positions).
    pub fn start_at(&mut self, stream: &Stream, position: Position) {
        self.tell(stream, position);
    }

    /// Notes that the event at `position` is written now: `false` if it
    /// was already (and is not to be written again).
    fn receive_new(&mut self, stream: &Stream, position: Position) -> bool {
        match self.get_mut(stream) {
            Some(mark) if mark.covers(position) => false,
            mark @ Some(_) => {
                Mark::receive(mark, position);
                true
            }
            None => {
                if let Some(first) = Mark::receive(None, position) {
                    self.0.push((stream.clone(), first));
                }
                true
            }
        }
    }

    /// The stream stands at `position`, the events before it not written
    /// here, unless the connection is further in that epoch already.
    fn tell(&mut self, stream: &Stream, position: Position) {
        if let Some(first) = Mark::tell(self.get_mut(stream), position) {
            self.0.push((stream.clone(), first));
        }
    }

    /// The stream goes on from `position`, whatever was reached before.
    fn set(&mut self, stream: &Stream, position: Position) {
        match self.get_mut(stream) {
            Some(mark) => *mark = Mark::told(position),
            None => self.0.push((stream.clone(), Mark::told(position))),
        }
    }

    fn forget(&mut self, stream: &Stream) {
        self.0.retain(|(reached, _)| reached != stream);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// What one delivery did.
#[derive(Debug, Default)]
#[must_use = "connections whose queue overflowed must be closed"]
pub(crate) struct Delivery {
    /// Connections the frame was queued for.
    pub queued: usize,
    /// Connections whose queue was full.
    pub overflowed: Vec<crate::ConnectionId>,
}

impl Delivery {
    /// Counts what pushing to connection `id`'s queue did.
    pub fn record(&mut self, id: crate::ConnectionId, pushed: Result<(), Unqueued>) {
        match pushed {
            Ok(()) => self.queued += 1,
            Err(Unqueued::Full) => self.overflowed.push(id),
            // The connection is closing; its task removes it.
            Err(Unqueued::Closed) => {}
        }
    }

    /// Adds what another delivery did.
    pub fn add(&mut self, other: Delivery) {
        self.queued += other.queued;
        self.overflowed.extend(other.overflowed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(epoch: u64, offset: u64) -> Position {
        Position::at(epoch, offset)
    }

    fn written(items: Vec<Outgoing>, reached: &mut Reached) -> Vec<String> {
        let mut frames = Vec::new();
        for item in items {
            item.write_into(reached, &mut frames);
        }
        frames
            .iter()
            .map(|frame| frame.as_str().to_owned())
            .collect()
    }

    fn event(text: &'static str, positions: &[(Stream, Position)]) -> Outgoing {
        Outgoing::Event(Arc::new(Live {
            frame: Utf8Bytes::from_static(text),
            positions: match positions {
                [one] => Positions::One(one.clone()),
                many => Positions::Many(many.into()),
            },
        }))
    }

    /// The connection's own replay of the events at `offsets` (epoch 1),
    /// framed as `e<offset>`, after which the stream stands at the last.
    fn replayed(stream: &Stream, offsets: &[u64]) -> Outgoing {
        replay_of(stream, offsets, true)
    }

    /// The same, as a catch-up sent to every reader.
    fn caught_up(stream: &Stream, offsets: &[u64]) -> Outgoing {
        replay_of(stream, offsets, false)
    }

    fn replay_of(stream: &Stream, offsets: &[u64], own: bool) -> Outgoing {
        Outgoing::Replay(Box::new(Replay {
            stream: stream.clone(),
            events: offsets
                .iter()
                .map(|&offset| Replayed {
                    offset,
                    frame: Utf8Bytes::from(format!("e{offset}")),
                })
                .collect(),
            to: at(1, offsets.last().copied().unwrap_or(0)),
            own,
        }))
    }

    fn started_at(stream: &Stream, position: Position) -> Outgoing {
        Outgoing::Replay(Box::new(Replay {
            stream: stream.clone(),
            events: Arc::new([]),
            to: position,
            own: true,
        }))
    }

    #[test]
    fn a_live_event_is_written_only_to_connections_that_stand_before_it() {
        let red = Stream::Room("team:red".into());
        let user = Stream::User(crate::UserId(1));
        // Joined at 7 (a read ran ahead of the live events): 6 and 7 are
        // not for it.
        let mut joined = Reached::default();
        let got = written(
            vec![
                started_at(&red, at(1, 7)),
                event("e6", &[(red.clone(), at(1, 6))]),
                event("e7", &[(red.clone(), at(1, 7))]),
                event("e8", &[(red.clone(), at(1, 8))]),
            ],
            &mut joined,
        );
        assert_eq!(got, ["e8"]);
        // Joined from its page's position 5 on a process whose mirror
        // lagged at 3: the replay read from the shared history brought 6
        // and 7; 4 and 5, live after it, are in the page's data already.
        let mut lagging = Reached::default();
        let mut items = vec![replayed(&red, &[6, 7])];
        for (text, offset) in [("e4", 4), ("e5", 5), ("e6", 6), ("e7", 7), ("e8", 8)] {
            items.push(event(text, &[(red.clone(), at(1, offset))]));
        }
        assert_eq!(written(items, &mut lagging), ["e6", "e7", "e8"]);
        // Put in the room without a position: it loses none of them.
        let mut put = Reached::default();
        let got = written(
            vec![
                event("e6", &[(red.clone(), at(1, 6))]),
                event("e7", &[(red.clone(), at(1, 7))]),
                event("e8", &[(red.clone(), at(1, 8))]),
            ],
            &mut put,
        );
        assert_eq!(got, ["e6", "e7", "e8"]);
        // Past it in the room, new in the user's stream: written, once.
        let mut both = Reached::default();
        let got = written(
            vec![
                started_at(&red, at(1, 7)),
                started_at(&user, at(3, 2)),
                event("e7", &[(red.clone(), at(1, 7)), (user.clone(), at(3, 3))]),
                event("e7 again", &[(red, at(1, 7)), (user, at(3, 3))]),
            ],
            &mut both,
        );
        assert_eq!(got, ["e7"]);
    }

    #[test]
    fn a_catch_up_writes_only_the_events_past_where_the_connection_stands() {
        let red = Stream::Room("team:red".into());
        // Joined at 7 (its own read ran ahead of this process), then this
        // process's catch-up after an outage replays 5 to 9.
        let mut ahead = Reached::default();
        let got = written(
            vec![
                started_at(&red, at(1, 7)),
                caught_up(&red, &[5, 6, 7, 8, 9]),
            ],
            &mut ahead,
        );
        assert_eq!(got, ["e8", "e9"]);
        // Standing at 3, it gets them all.
        let mut behind = Reached::default();
        let got = written(
            vec![started_at(&red, at(1, 3)), caught_up(&red, &[4, 5])],
            &mut behind,
        );
        assert_eq!(got, ["e4", "e5"]);
        // Its own answer, after a `welcome` that told it where the stream
        // is now, brings what came since its tab's position.
        let mut resumed = Reached::default();
        let got = written(
            vec![started_at(&red, at(1, 7)), replayed(&red, &[5, 6, 7])],
            &mut resumed,
        );
        assert_eq!(got, ["e5", "e6", "e7"]);
        // Moved back by its own recovery answer: what follows comes again.
        let mut moved_back = Reached::default();
        let got = written(
            vec![
                started_at(&red, at(1, 7)),
                gap(red.clone(), at(1, 4)),
                caught_up(&red, &[5, 6]),
            ],
            &mut moved_back,
        );
        assert_eq!(got, ["gap", "e5", "e6"]);
    }

    /// One connection's own answer (it may move the stream back).
    fn gap(stream: Stream, position: Position) -> Outgoing {
        Outgoing::Discontinuity(Arc::new(Gap {
            frame: Utf8Bytes::from_static("gap"),
            stream,
            reason: Discontinuity::TooOld,
            position,
            moves_back: true,
        }))
    }

    #[test]
    fn a_queued_item_is_two_words() {
        // Every connection's queue holds a block of 32 of them, idle or not.
        assert_eq!(size_of::<Outgoing>(), 2 * size_of::<usize>());
    }

    #[test]
    fn an_event_a_replay_brought_already_is_left_out_by_any_of_its_streams() {
        let red = Stream::Room("team:red".into());
        let mut reached = Reached::default();
        let replay = Outgoing::Replay(Box::new(Replay {
            stream: Stream::Everyone,
            events: Arc::new([Replayed {
                offset: 4,
                frame: Utf8Bytes::from_static("e4"),
            }]),
            to: at(1, 4),
            own: true,
        }));
        let got = written(
            vec![
                replay,
                event("e4 again", &[(Stream::Everyone, at(1, 4))]),
                event(
                    "e5",
                    &[(red.clone(), at(2, 1)), (Stream::Everyone, at(1, 5))],
                ),
                event("e5 again", &[(red, at(2, 1))]),
            ],
            &mut reached,
        );
        assert_eq!(got, ["e4", "e5"]);
    }

    #[test]
    fn a_discontinuity_is_always_written_and_moves_its_stream_even_back() {
        let mut reached = Reached::default();
        let got = written(
            vec![
                event("e9", &[(Stream::Everyone, at(1, 9))]),
                gap(Stream::Everyone, at(1, 3)),
                // Offsets given again after the history went back.
                event("new e4", &[(Stream::Everyone, at(1, 4))]),
            ],
            &mut reached,
        );
        assert_eq!(got, ["e9", "gap", "new e4"]);
    }

    #[test]
    fn a_discontinuity_to_every_reader_never_moves_a_connection_back() {
        let red = Stream::Room("team:red".into());
        let to_readers = || {
            Outgoing::Discontinuity(Arc::new(Gap::new(
                &red,
                Discontinuity::TooOld,
                at(1, 3),
                false,
            )))
        };
        // Joined from its page's position 5 while this process was at 3:
        // the replay brought 6 and 7.
        let replay = || replayed(&red, &[6, 7]);
        let mut ahead = Reached::default();
        let got = written(
            vec![
                replay(),
                to_readers(),
                event("e5", &[(red.clone(), at(1, 5))]),
                event("e7", &[(red.clone(), at(1, 7))]),
                event("e8", &[(red.clone(), at(1, 8))]),
            ],
            &mut ahead,
        );
        let told = Gap::new(&red, Discontinuity::TooOld, at(1, 7), false).frame;
        assert_eq!(got, ["e6", "e7", told.as_str(), "e8"]);
        // A connection behind it goes on from it.
        let mut behind = Reached::default();
        let got = written(
            vec![
                event("e2", &[(red.clone(), at(1, 2))]),
                to_readers(),
                event("e4", &[(red.clone(), at(1, 4))]),
            ],
            &mut behind,
        );
        let frame = Gap::new(&red, Discontinuity::TooOld, at(1, 3), false).frame;
        assert_eq!(got, ["e2", frame.as_str(), "e4"]);
    }

    #[test]
    fn leaving_a_room_forgets_its_stream() {
        let red = Stream::Room("team:red".into());
        let mut reached = Reached::default();
        let got = written(
            vec![
                event("e1", &[(red.clone(), at(1, 1))]),
                Outgoing::Left(Box::new((Utf8Bytes::from_static("left"), red))),
            ],
            &mut reached,
        );
        assert_eq!(got, ["e1", "left"]);
        assert_eq!(reached.len(), 0);
    }

    #[test]
    fn where_a_gap_goes_on_from_is_no_proof_of_the_events_before() {
        let (s, t) = (Stream::Room("team:s".into()), Stream::Room("team:t".into()));
        let mut reached = Reached::default();
        let got = written(
            vec![
                // A join's read of the shared history: too old, go on from 30
                // (this process's mirror is at 28).
                gap(s.clone(), at(1, 30)),
                // Event 29 of S, which is also in T, arrives live.
                event("e29", &[(s.clone(), at(1, 29)), (t.clone(), at(2, 5))]),
                event("e29 again", &[(t, at(2, 5))]),
            ],
            &mut reached,
        );
        assert_eq!(got, ["gap", "e29"]);
    }
}
