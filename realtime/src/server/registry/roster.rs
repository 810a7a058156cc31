//! The connections a walk reaches, in one flat list: [`Roster`]. The
//! registry keeps one of every connection, for the events to everyone, and
//! one per room, for the events to its members.
//!
//! Why lists beside the connections' map: a walk touches each connection's
//! id, tab and queue, and nothing else of it. In the map, each sits in an
//! entry of some 130 bytes (the whole [`super::Connection`]), and a room's
//! member had to be looked up there by its id; here the three are in 32
//! bytes, contiguous, so that a walk reads a quarter of the memory, in
//! order, and looks nothing up. The fan-out benchmark got about a tenth
//! faster to everyone and a fifth to a room (`docs/benchmarks.md`, "The
//! walk's share, and lists for the walks").

use std::collections::HashMap;

use super::{ById, Delivery, Except, Outgoing, QueueHandle};
use crate::{ConnectionId, server::TabMark};

/// One connection, as a walk sees it.
struct Entry {
    id: ConnectionId,
    tab: Option<TabMark>,
    queue: QueueHandle,
}

/// Up to this many connections, a roster finds one by looking through its
/// entries and keeps no map of places: most rooms are small, and a map's
/// smallest table would cost more than the entries themselves.
const SCANNED: usize = 16;

/// Connections, in no particular order, each once.
#[derive(Default)]
pub(crate) struct Roster {
    entries: Vec<Entry>,
    /// Where each connection's entry is: empty while the roster has at
    /// most [`SCANNED`] entries (half as many on the way down, so that a
    /// room at the edge does not build and drop it at every join and
    /// leave), complete otherwise.
    places: HashMap<ConnectionId, usize, ById>,
}

impl Roster {
    /// Adds a connection, or replaces its entry if it is there already (a
    /// room checks membership first; ids are unique).
    pub fn insert(&mut self, id: ConnectionId, tab: Option<TabMark>, queue: QueueHandle) {
        let entry = Entry { id, tab, queue };
        if let Some(place) = self.place_of(id) {
            self.entries[place] = entry;
            return;
        }
        if self.entries.capacity() == 0 {
            // A room of one (the usual first) takes one entry's room.
            self.entries.reserve_exact(1);
        }
        self.entries.push(entry);
        if !self.places.is_empty() {
            self.places.insert(id, self.entries.len() - 1);
        } else if self.entries.len() > SCANNED {
            self.places = self
                .ids()
                .enumerate()
                .map(|(place, id)| (id, place))
                .collect();
        }
    }

    /// Forgets a connection (the last entry takes its place): whether it
    /// was there.
    pub fn remove(&mut self, id: ConnectionId) -> bool {
        let Some(place) = self.place_of(id) else {
            return false;
        };
        self.entries.swap_remove(place);
        if !self.places.is_empty() {
            if self.entries.len() <= SCANNED / 2 {
                self.places = HashMap::default();
            } else {
                self.places.remove(&id);
                if let Some(moved) = self.entries.get(place) {
                    self.places.insert(moved.id, place);
                }
            }
        }
        true
    }

    fn place_of(&self, id: ConnectionId) -> Option<usize> {
        if self.places.is_empty() {
            self.entries.iter().position(|entry| entry.id == id)
        } else {
            self.places.get(&id).copied()
        }
    }

    /// The connections' ids.
    pub fn ids(&self) -> Ids<'_> {
        Ids(self.entries.iter())
    }

    /// Whether no connection is left: a room is forgotten then.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Queues the item `make` makes for every connection but those
    /// `except` leaves out.
    pub fn walk(&self, make: impl Fn() -> Outgoing, except: Except, outcome: &mut Delivery) {
        for entry in &self.entries {
            if !except.leaves_out_tab(entry.id, entry.tab) {
                outcome.record(entry.id, entry.queue.try_send(make()));
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A roster's ids, in its order.
pub(crate) struct Ids<'a>(std::slice::Iter<'a, Entry>);

impl Iterator for Ids<'_> {
    type Item = ConnectionId;

    fn next(&mut self) -> Option<ConnectionId> {
        self.0.next().map(|entry| entry.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::registry::{QueueReceiver, QueueSender, queue};

    /// A connection's queue, both ends (the registry keeps the sender).
    fn connect(roster: &mut Roster, id: u64, tab: Option<u64>) -> (QueueSender, QueueReceiver) {
        let (sender, receiver) = queue(8, 1024);
        roster.insert(ConnectionId(id), tab.map(TabMark), sender.handle());
        (sender, receiver)
    }

    fn queued(receiver: &mut QueueReceiver) -> usize {
        std::iter::from_fn(|| receiver.try_recv()).count()
    }

    /// Every connection is found at its own entry, and the map of places,
    /// if any, is complete.
    fn assert_consistent(roster: &Roster) {
        assert!(roster.places.is_empty() || roster.places.len() == roster.len());
        for (place, id) in roster.ids().enumerate() {
            assert_eq!(roster.place_of(id), Some(place));
        }
    }

    #[test]
    fn a_walk_reaches_every_connection_once_but_those_left_out() {
        let mut roster = Roster::default();
        let mut queues: Vec<_> = (1..=6)
            .map(|id| connect(&mut roster, id, (id >= 5).then_some(77)))
            .collect();
        assert!(roster.remove(ConnectionId(2)));
        let except = Except {
            connection: Some(ConnectionId(3)),
            tab: Some(TabMark(77)),
        };
        let mut outcome = Delivery::default();
        roster.walk(|| Outgoing::frame("hello".into()), except, &mut outcome);
        assert_eq!(outcome.queued, 2);
        let counts: Vec<usize> = queues
            .iter_mut()
            .map(|(_, receiver)| queued(receiver))
            .collect();
        // 2 is gone, 3 is the caller, 5 and 6 are the caller's tab.
        assert_eq!(counts, [1, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn the_places_stay_right_whatever_leaves() {
        let mut roster = Roster::default();
        let _queues: Vec<_> = (0..300).map(|id| connect(&mut roster, id, None)).collect();
        // The last, the first, every third, then the rest from the last down.
        assert!(roster.remove(ConnectionId(299)));
        assert!(roster.remove(ConnectionId(0)));
        assert_consistent(&roster);
        for id in (3..299).step_by(3) {
            assert!(roster.remove(ConnectionId(id)));
        }
        assert_consistent(&roster);
        for id in (1..299).rev() {
            roster.remove(ConnectionId(id));
            assert_consistent(&roster);
        }
        assert!(roster.is_empty());
        // Removing what is not there changes nothing.
        assert!(!roster.remove(ConnectionId(7)));
        assert_consistent(&roster);
    }

    #[test]
    fn a_small_roster_keeps_no_map_and_a_large_one_does() {
        let mut roster = Roster::default();
        let _first = connect(&mut roster, 0, None);
        assert_eq!(roster.entries.capacity(), 1);
        let _queues: Vec<_> = (1..SCANNED as u64)
            .map(|id| connect(&mut roster, id, None))
            .collect();
        assert!(roster.places.is_empty());
        let _one_more = connect(&mut roster, 99, None);
        assert_eq!(roster.places.len(), SCANNED + 1);
        assert_consistent(&roster);
        // Down to half the threshold, the map goes; found all the same.
        // From SCANNED + 1 entries to SCANNED / 2.
        for id in 1..=(SCANNED / 2 + 1) as u64 {
            roster.remove(ConnectionId(id));
            assert_consistent(&roster);
        }
        assert!(roster.places.is_empty());
        assert!(roster.place_of(ConnectionId(99)).is_some());
    }

    #[test]
    fn inserting_a_connection_again_replaces_its_entry() {
        let mut roster = Roster::default();
        let (_old_sender, mut old) = connect(&mut roster, 1, Some(5));
        let (_new_sender, mut new) = connect(&mut roster, 1, None);
        assert_eq!(roster.len(), 1);
        let mut outcome = Delivery::default();
        let except = Except {
            connection: None,
            tab: Some(TabMark(5)),
        };
        roster.walk(|| Outgoing::frame("hello".into()), except, &mut outcome);
        assert_eq!((queued(&mut old), queued(&mut new)), (0, 1));
    }
}
