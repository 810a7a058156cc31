//! The streams a mirror cannot vouch for: a connection here reads one, and
//! this process neither knows where it stands in the shared history nor
//! hears its events. Two ways to get there ([`Blindness`]):
//!
//! - The server put a tab in a room whose shard this process does not hear
//!   yet: it will within a subscription's round trip. The tab starts where
//!   the room stands then, as a browser's join does (it waits for the
//!   subscription, then reads the position): nothing is missed.
//! - A tab began reading while Redis was out of reach, or this process
//!   stopped hearing the stream since (an outage). Whatever was published
//!   meanwhile never reached the mirror, and no position says whether
//!   anything was: the stream's readers are told they may have missed
//!   events, at the catch-up that reads where the stream stands once it is
//!   heard again, or at its first event heard, whichever comes first.
//!
//! A blind stream has no log in the mirror: learning its position (or
//! hearing an event of it) ends its blindness. A plain map, owned by the
//! history. Streams nobody reads any more are dropped once it holds as
//! many as the history's limit of streams, and then whenever it doubles:
//! it holds at most that many, or twice the streams read here.

use std::collections::HashMap;

use crate::stream::Stream;

/// Why a stream read here is blind: see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Blindness {
    /// Heard within a subscription's round trip: its readers start where
    /// it stands then.
    Starting,
    /// Unheard for a while: its readers may have missed events.
    Unheard,
}

pub(super) struct Blind {
    streams: HashMap<Stream, Blindness>,
    /// The size at which the streams nobody reads any more are dropped.
    prune_at: usize,
    /// The least `prune_at` ever is.
    floor: usize,
}

impl Blind {
    /// A map that looks for streams nobody reads once it holds `floor`.
    pub fn new(floor: usize) -> Self {
        Self {
            streams: HashMap::new(),
            prune_at: floor,
            floor,
        }
    }

    /// Marks `stream` blind; unheard wins over starting.
    pub fn mark(&mut self, stream: &Stream, blindness: Blindness) {
        match self.streams.get_mut(stream) {
            Some(kept) => {
                if blindness == Blindness::Unheard {
                    *kept = blindness;
                }
            }
            None => {
                self.streams.insert(stream.clone(), blindness);
            }
        }
    }

    pub fn get(&self, stream: &Stream) -> Option<Blindness> {
        self.streams.get(stream).copied()
    }

    /// Ends the stream's blindness: what it was.
    pub fn clear(&mut self, stream: &Stream) -> Option<Blindness> {
        if self.streams.is_empty() {
            return None;
        }
        self.streams.remove(stream)
    }

    /// The blind streams `chosen` says.
    pub fn chosen(&self, chosen: impl Fn(&Stream) -> bool) -> Vec<Stream> {
        self.streams
            .keys()
            .filter(|stream| chosen(stream))
            .cloned()
            .collect()
    }

    /// Drops the streams nobody reads, once the map has grown to twice
    /// what it held after the last time (never at every step).
    pub fn prune(&mut self, has_readers: impl Fn(&Stream) -> bool) {
        if self.streams.len() < self.prune_at {
            return;
        }
        self.streams.retain(|stream, _| has_readers(stream));
        self.prune_at = (2 * self.streams.len()).max(self.floor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> Stream {
        Stream::Room(name.into())
    }

    #[test]
    fn unheard_wins_over_starting_and_is_cleared_once() {
        let mut blind = Blind::new(4);
        blind.mark(&room("a"), Blindness::Unheard);
        blind.mark(&room("a"), Blindness::Starting);
        assert_eq!(blind.get(&room("a")), Some(Blindness::Unheard));
        blind.mark(&room("b"), Blindness::Starting);
        blind.mark(&room("b"), Blindness::Unheard);
        assert_eq!(blind.clear(&room("b")), Some(Blindness::Unheard));
        assert_eq!(blind.clear(&room("b")), None);
    }

    #[test]
    fn streams_nobody_reads_are_dropped_once_the_map_doubles() {
        let mut blind = Blind::new(4);
        for name in ["a", "b", "c"] {
            blind.mark(&room(name), Blindness::Unheard);
        }
        blind.prune(|_| false);
        assert_eq!(blind.chosen(|_| true).len(), 3, "below the floor");
        blind.mark(&room("d"), Blindness::Unheard);
        blind.prune(|stream| *stream == room("a"));
        assert_eq!(blind.chosen(|_| true), [room("a")]);
    }
}
