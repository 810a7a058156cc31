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

/// Connections, in no particular order, each once.
#[derive(Default)]
pub(crate) struct Roster {
    entries: Vec<Entry>,
    /// Where each connection's entry is.
    places: HashMap<ConnectionId, usize, ById>,
}

impl Roster {
    pub fn insert(&mut self, id: ConnectionId, tab: Option<TabMark>, queue: QueueHandle) {
        if let Some(&place) = self.places.get(&id) {
            // Registered again (ids are unique; never expected): replaced.
            self.entries[place] = Entry { id, tab, queue };
            return;
        }
        self.places.insert(id, self.entries.len());
        self.entries.push(Entry { id, tab, queue });
    }

    /// Forgets a connection (the last entry takes its place): whether it
    /// was there.
    pub fn remove(&mut self, id: ConnectionId) -> bool {
        let Some(place) = self.places.remove(&id) else {
            return false;
        };
        self.entries.swap_remove(place);
        if let Some(moved) = self.entries.get(place) {
            self.places.insert(moved.id, place);
        }
        true
    }

    /// The connections' ids.
    pub fn ids(&self) -> Ids<'_> {
        Ids(self.entries.iter())
    }

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
    fn connect(everyone: &mut Roster, id: u64, tab: Option<u64>) -> (QueueSender, QueueReceiver) {
        let (sender, receiver) = queue(8, 1024);
        everyone.insert(ConnectionId(id), tab.map(TabMark), sender.handle());
        (sender, receiver)
    }

    fn queued(receiver: &mut QueueReceiver) -> usize {
        std::iter::from_fn(|| receiver.try_recv()).count()
    }

    /// Every connection's place points at its own entry.
    fn assert_consistent(everyone: &Roster) {
        assert_eq!(everyone.places.len(), everyone.len());
        for (index, entry) in everyone.entries.iter().enumerate() {
            assert_eq!(everyone.places.get(&entry.id), Some(&index));
        }
    }

    #[test]
    fn a_walk_reaches_every_connection_once_but_those_left_out() {
        let mut everyone = Roster::default();
        let mut queues: Vec<_> = (1..=6)
            .map(|id| connect(&mut everyone, id, (id >= 5).then_some(77)))
            .collect();
        assert!(everyone.remove(ConnectionId(2)));
        let except = Except {
            connection: Some(ConnectionId(3)),
            tab: Some(TabMark(77)),
        };
        let mut outcome = Delivery::default();
        everyone.walk(|| Outgoing::frame("hello".into()), except, &mut outcome);
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
        let mut everyone = Roster::default();
        let _queues: Vec<_> = (0..300)
            .map(|id| connect(&mut everyone, id, None))
            .collect();
        // The last, the first, every third, then the rest from the middle.
        assert!(everyone.remove(ConnectionId(299)));
        assert!(everyone.remove(ConnectionId(0)));
        assert_consistent(&everyone);
        for id in (3..299).step_by(3) {
            everyone.remove(ConnectionId(id));
        }
        assert_consistent(&everyone);
        for id in (1..299).rev() {
            everyone.remove(ConnectionId(id));
            assert_consistent(&everyone);
        }
        assert!(everyone.is_empty());
        // Removing what is not there changes nothing.
        assert!(!everyone.remove(ConnectionId(7)));
        assert_consistent(&everyone);
    }
}
