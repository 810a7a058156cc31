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
//! after a gap, is no proof). A `discontinuity` is never left out: it sets
//! where its stream goes on from, even backwards (the history behind it
//! was lost).

use std::{collections::HashMap, sync::Arc};

use axum::extract::ws::Utf8Bytes;

use crate::stream::{Mark, Position, Stream};

/// Where a durable event sits in the streams it reached a connection
/// through: one stream (the usual case, no allocation), or several, shared
/// by the connections that read the same ones.
#[derive(Clone, Debug)]
pub(crate) enum Positions {
    One((Stream, Position)),
    Many(Arc<[(Stream, Position)]>),
}

/// One event of a replay, with its offset in the replayed stream.
#[derive(Clone, Debug)]
pub(crate) struct Replayed {
    pub offset: u64,
    pub frame: Utf8Bytes,
}

/// What waits in a connection's queue.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A frame written as it is: a volatile event, a presence list, a
    /// reply.
    Frame(Utf8Bytes),
    /// A durable event, live: not written if the connection has it
    /// already.
    Event {
        frame: Utf8Bytes,
        positions: Positions,
    },
    /// What a tab missed of one stream, in one place of the queue: a replay
    /// may be longer than the queue, and is not cut short by the
    /// slow-client rule. The stream then stands at `to`.
    Replay {
        stream: Stream,
        events: Vec<Replayed>,
        to: Position,
    },
    /// The connection may have missed events of `stream`: always written,
    /// and the stream goes on from `position`, whatever it had reached.
    Discontinuity {
        frame: Utf8Bytes,
        stream: Stream,
        position: Position,
    },
    /// The connection left a room (the `left` frame): its stream is
    /// forgotten, so that what the connection reached stays within the
    /// streams it reads.
    Left { frame: Utf8Bytes, stream: Stream },
}

impl Outgoing {
    /// Adds the frames to write to `frames`, in order, leaving out the
    /// events the connection had already.
    pub fn write_into(self, reached: &mut Reached, frames: &mut Vec<Utf8Bytes>) {
        match self {
            Self::Frame(frame) => frames.push(frame),
            Self::Event {
                frame,
                positions: Positions::One((stream, position)),
            } => {
                if reached.receive_new(&stream, position) {
                    frames.push(frame);
                }
            }
            Self::Event {
                frame,
                positions: Positions::Many(positions),
            } => {
                if !reached.has_any(&positions) {
                    for (stream, position) in positions.iter() {
                        reached.receive_new(stream, *position);
                    }
                    frames.push(frame);
                }
            }
            Self::Replay { stream, events, to } => {
                for event in events {
                    let position = Position {
                        epoch: to.epoch,
                        offset: event.offset,
                    };
                    if reached.receive_new(&stream, position) {
                        frames.push(event.frame);
                    }
                }
                reached.tell(&stream, to);
            }
            Self::Discontinuity {
                frame,
                stream,
                position,
            } => {
                reached.set(stream, position);
                frames.push(frame);
            }
            Self::Left { frame, stream } => {
                reached.forget(&stream);
                frames.push(frame);
            }
        }
    }
}

/// How far the frames written to one connection reached in each stream it
/// reads, and from where they hold every event: everyone's, its user's and
/// its rooms' (a room is forgotten when the connection leaves it), so never
/// more than a few dozen.
#[derive(Debug, Default)]
pub(crate) struct Reached(HashMap<Stream, Mark>);

impl Reached {
    /// Whether the event at any of these positions was written already.
    fn has_any(&self, positions: &[(Stream, Position)]) -> bool {
        positions.iter().any(|(stream, position)| {
            self.0
                .get(stream)
                .is_some_and(|mark| mark.covers(*position))
        })
    }

    /// Notes that the event at `position` is written now: `false` if it
    /// was already (and is not to be written again).
    fn receive_new(&mut self, stream: &Stream, position: Position) -> bool {
        match self.0.get_mut(stream) {
            Some(mark) if mark.covers(position) => false,
            mark @ Some(_) => {
                Mark::receive(mark, position);
                true
            }
            None => {
                if let Some(first) = Mark::receive(None, position) {
                    self.0.insert(stream.clone(), first);
                }
                true
            }
        }
    }

    /// The stream stands at `position`, the events before it not written
    /// here, unless the connection is further in that epoch already.
    fn tell(&mut self, stream: &Stream, position: Position) {
        if let Some(first) = Mark::tell(self.0.get_mut(stream), position) {
            self.0.insert(stream.clone(), first);
        }
    }

    /// The stream goes on from `position`, whatever was reached before.
    fn set(&mut self, stream: Stream, position: Position) {
        self.0.insert(stream, Mark::told(position));
    }

    fn forget(&mut self, stream: &Stream) {
        self.0.remove(stream);
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
    /// Adds what another delivery did.
    pub fn add(&mut self, other: Delivery) {
        self.queued += other.queued;
        self.overflowed.extend(other.overflowed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::Epoch;

    fn at(epoch: u64, offset: u64) -> Position {
        Position {
            epoch: Epoch(epoch),
            offset,
        }
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
        Outgoing::Event {
            frame: Utf8Bytes::from_static(text),
            positions: match positions {
                [one] => Positions::One(one.clone()),
                many => Positions::Many(many.into()),
            },
        }
    }

    #[test]
    fn an_event_a_replay_brought_already_is_left_out_by_any_of_its_streams() {
        let red = Stream::Room("team:red".into());
        let mut reached = Reached::default();
        let replay = Outgoing::Replay {
            stream: Stream::Everyone,
            events: vec![Replayed {
                offset: 4,
                frame: Utf8Bytes::from_static("e4"),
            }],
            to: at(1, 4),
        };
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
                Outgoing::Discontinuity {
                    frame: Utf8Bytes::from_static("gap"),
                    stream: Stream::Everyone,
                    position: at(1, 3),
                },
                // Offsets given again after the history went back.
                event("new e4", &[(Stream::Everyone, at(1, 4))]),
            ],
            &mut reached,
        );
        assert_eq!(got, ["e9", "gap", "new e4"]);
    }

    #[test]
    fn leaving_a_room_forgets_its_stream() {
        let red = Stream::Room("team:red".into());
        let mut reached = Reached::default();
        let got = written(
            vec![
                event("e1", &[(red.clone(), at(1, 1))]),
                Outgoing::Left {
                    frame: Utf8Bytes::from_static("left"),
                    stream: red,
                },
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
                Outgoing::Discontinuity {
                    frame: Utf8Bytes::from_static("gap"),
                    stream: s.clone(),
                    position: at(1, 30),
                },
                // Event 29 of S, which is also in T, arrives live.
                event("e29", &[(s.clone(), at(1, 29)), (t.clone(), at(2, 5))]),
                event("e29 again", &[(t, at(2, 5))]),
            ],
            &mut reached,
        );
        assert_eq!(got, ["gap", "e29"]);
    }
}
