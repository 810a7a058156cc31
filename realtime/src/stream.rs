//! Streams and positions: where a durable event sits, so that a tab that
//! missed some events can ask for what followed the last one it saw.
//!
//! Every durable emit ([`crate::Event::DURABLE`]) is appended to each
//! stream its target names: the stream of everyone, of a user, or of a
//! room. Appending gives it a [`Position`] in that stream, `(epoch,
//! offset)`: offsets grow by one with every event, and the epoch changes
//! whenever the history behind a stream is lost (a restart of a process
//! that kept it in memory), so a position from an old history is never
//! taken for one in the new.
//!
//! Emits to single connections are not recorded: a connection does not
//! outlive its tab.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{RoomName, UserId, ids::hex_id};

/// A stream of durable events. Its events are replayed to whoever may
/// read it now: the stream of everyone to any connection, a user's to that
/// user's connections, a room's to a connection its rule lets in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// Events to every connection. Written `everyone`.
    Everyone,
    /// Events to every connection of one user. Written `user:7`.
    User(UserId),
    /// Events to the members of a room. Written `room:chat:42`.
    Room(RoomName),
}

impl Stream {
    /// The stream of a room.
    pub fn room<R: crate::Room>(room: &R) -> Self {
        Self::Room(room.name())
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Everyone => f.write_str("everyone"),
            Self::User(user) => write!(f, "user:{user}"),
            Self::Room(room) => write!(f, "room:{room}"),
        }
    }
}

/// A stream's written name could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a stream: {0:?}")]
pub struct NotAStream(pub String);

impl FromStr for Stream {
    type Err = NotAStream;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let not_a_stream = || NotAStream(text.to_owned());
        if text == "everyone" {
            return Ok(Self::Everyone);
        }
        if let Some(user) = text.strip_prefix("user:") {
            return user
                .parse()
                .map(|id| Self::User(UserId(id)))
                .map_err(|_| not_a_stream());
        }
        match text.strip_prefix("room:").map(|room| room.split_once(':')) {
            Some(Some((kind, key))) => Ok(Self::Room(RoomName::new(kind, key))),
            _ => Err(not_a_stream()),
        }
    }
}

impl Serialize for Stream {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Stream {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One history of a stream: a new epoch starts when the history behind the
/// stream is lost. Written as 16 hexadecimal digits.
///
/// Two kinds, told apart by the top bit: a history's epoch is random, with
/// the top bit clear ([`Epoch::random`]); a stream that the shared history
/// has never written (or has forgotten) has no epoch yet, and a reader is
/// told where it stands as the *unwritten* epoch of that moment, the top
/// bit set over the shared history's clock in milliseconds
/// ([`Epoch::unwritten_at`]). Reading a stream then writes nothing: a
/// reader at an unwritten epoch has every event of an epoch born after it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epoch(pub u64);

hex_id!(Epoch);

impl Epoch {
    const UNWRITTEN: u64 = 1 << 63;

    /// A new history's epoch.
    #[cfg(feature = "ssr")]
    pub fn random() -> Self {
        Self(rand::random::<u64>() & !Self::UNWRITTEN)
    }

    /// A stream not written as of `millis` on the shared history's clock.
    pub fn unwritten_at(millis: u64) -> Self {
        Self(Self::UNWRITTEN | (millis & !Self::UNWRITTEN))
    }

    /// When the stream was seen unwritten, for an unwritten epoch.
    pub fn unwritten_since(self) -> Option<u64> {
        (self.0 & Self::UNWRITTEN != 0).then_some(self.0 & !Self::UNWRITTEN)
    }
}

/// Where an event sits in a stream: the events of one epoch are numbered
/// 1, 2, 3…; a position with offset 0 is a stream's start, before its first
/// event. A tab that has seen up to a position asks for what followed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    pub epoch: Epoch,
    pub offset: u64,
}

#[cfg(test)]
impl Position {
    /// Offset `offset` of epoch `epoch`: the tests' shorthand.
    pub(crate) fn at(epoch: u64, offset: u64) -> Self {
        Self {
            epoch: Epoch(epoch),
            offset,
        }
    }
}

/// How far a reader has read a stream, and from where it holds every event:
/// it has every event of `at`'s epoch with an offset above `anchor` and up
/// to `at`. A position told to the reader without its events (where a
/// stream stood when it joined, or goes on from after a gap) moves both:
/// it says where to ask from next time, but is no proof that the reader
/// has the events before it. The browser and the server keep one per
/// stream, to know an event that comes a second time by its position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    pub at: Position,
    pub anchor: u64,
}

impl Mark {
    /// A position told without its events.
    pub fn told(at: Position) -> Self {
        Self {
            at,
            anchor: at.offset,
        }
    }

    /// Whether the reader has the event at `position`.
    pub fn covers(&self, position: Position) -> bool {
        self.at.epoch == position.epoch
            && self.anchor < position.offset
            && position.offset <= self.at.offset
    }

    /// The reader received the event at `position`: a reader that had
    /// nothing of its epoch holds the stream from there on.
    pub fn receive(mark: Option<&mut Self>, position: Position) -> Option<Self> {
        match mark {
            Some(mark) if mark.at.epoch == position.epoch => {
                if position.offset > mark.at.offset {
                    mark.at = position;
                }
                None
            }
            Some(mark) => {
                *mark = Self::received_first(position);
                None
            }
            None => Some(Self::received_first(position)),
        }
    }

    /// The reader was told the stream stands at `position` (without the
    /// events before it), unless it is further in that epoch already.
    pub fn tell(mark: Option<&mut Self>, position: Position) -> Option<Self> {
        match mark {
            Some(mark) if mark.at.epoch == position.epoch && mark.at.offset >= position.offset => {
                None
            }
            Some(mark) => {
                *mark = Self::told(position);
                None
            }
            None => Some(Self::told(position)),
        }
    }

    fn received_first(position: Position) -> Self {
        Self {
            at: position,
            anchor: position.offset.saturating_sub(1),
        }
    }
}

/// One durable emit, whatever the streams it was appended to: a tab that
/// gets an event twice (live through one stream, then replayed through
/// another) knows it by its id. Random, written as 16 hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventId(pub u64);

hex_id!(EventId);

/// A browser tab, for as long as the page lives: it keeps its id across
/// reconnections (each gets a new [`crate::ConnectionId`]), so an event
/// emitted "to everyone but the caller" is not replayed to the tab that
/// caused it. Chosen by the tab (at random), written as 16 hexadecimal
/// digits; not a secret, and not guessable either.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TabId(pub u64);

hex_id!(TabId);

/// What an event frame says of a durable event: its id, and its place in
/// the streams through which it reached this connection: the first in
/// `stream` and `position`, any other in `also` (an emit to a room and a
/// user reaches that user's tab in the room through both).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub id: EventId,
    pub stream: Stream,
    pub position: Position,
    pub also: Vec<(Stream, Position)>,
}

impl Recorded {
    /// Every stream the event came through, with its position in it.
    pub fn positions(&self) -> impl Iterator<Item = (&Stream, Position)> {
        std::iter::once((&self.stream, self.position)).chain(
            self.also
                .iter()
                .map(|(stream, position)| (stream, *position)),
        )
    }
}

/// Why a stream cannot be recovered from a position: the page must fetch
/// again what depends on the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Discontinuity {
    /// The history behind the position is gone (a restart, say): the
    /// stream's epoch is not the position's.
    EpochChanged,
    /// The events after the position are older than the history keeps.
    TooOld,
    /// More events followed the position than one recovery replays.
    TooMany,
    /// A server process that may have placed events of the stream on its
    /// own, while it could not reach the others, is gone without a word:
    /// no one can say what they were.
    WriterLost,
    /// A reason this build does not know (a newer server's, during a
    /// deploy): a discontinuity all the same. Never sent.
    #[serde(other)]
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_written_and_read_back() {
        for (stream, text) in [
            (Stream::Everyone, "everyone"),
            (Stream::User(UserId(7)), "user:7"),
            (Stream::Room(RoomName::new("chat", "42")), "room:chat:42"),
            (Stream::Room(RoomName::new("doc", "a:b")), "room:doc:a:b"),
        ] {
            assert_eq!(stream.to_string(), text);
            assert_eq!(text.parse::<Stream>(), Ok(stream.clone()));
            let json = serde_json::to_string(&stream).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Stream>(&json).unwrap(), stream);
        }
        for bad in [
            "",
            "all",
            "user:",
            "user:x",
            "room:",
            "room:chat",
            "Everyone",
        ] {
            assert!(bad.parse::<Stream>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_position_is_an_epoch_in_hex_and_an_offset() {
        let position = Position {
            epoch: Epoch(0xabc),
            offset: 42,
        };
        let json = serde_json::to_string(&position).unwrap();
        assert_eq!(json, r#"{"epoch":"0000000000000abc","offset":42}"#);
        assert_eq!(serde_json::from_str::<Position>(&json).unwrap(), position);
    }

    #[test]
    fn a_mark_holds_what_was_received_not_what_was_told() {
        let at = |offset| Position {
            epoch: Epoch(1),
            offset,
        };
        // Told where a room stood when joining: nothing before is held.
        let mut mark = Mark::told(at(8));
        assert!(!mark.covers(at(8)) && !mark.covers(at(7)));
        assert_eq!(Mark::receive(Some(&mut mark), at(9)), None);
        assert!(mark.covers(at(9)) && !mark.covers(at(8)) && !mark.covers(at(10)));
        // Received first: held from that event on.
        let first = Mark::receive(None, at(4)).unwrap();
        assert!(first.covers(at(4)) && !first.covers(at(3)));
        // Told further on: held no more.
        let mut moved = first;
        Mark::tell(Some(&mut moved), at(6));
        assert!(!moved.covers(at(4)) && !moved.covers(at(6)));
        // Another epoch is never held.
        let other = Position {
            epoch: Epoch(2),
            offset: 9,
        };
        assert!(!mark.covers(other));
    }
}
