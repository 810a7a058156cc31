//! What a page shows of records that change while it is open: the list it
//! loaded, with the changes its tab heard since laid over it.
//!
//! A page loads its records from a server function, then hears each
//! change as an event: created, updated, deleted. [`LiveRecords`] keeps
//! what it heard, and [`LiveRecords::over`] lays it over the loaded list.
//! Two rules make that right whatever the order things arrive in:
//!
//! - Each record has a version, raised by one at each edit: of two copies,
//!   the higher version wins. So an event older than the list (one the
//!   list already includes, replayed because it followed the position the
//!   list was read at) changes nothing.
//! - A deleted record stays deleted: ids are never used twice, so a late
//!   copy cannot bring it back.
//!
//! When the page loads its list again (its tab missed events for good),
//! what it heard before is in the new list, or was lost with what it
//! missed: [`LiveRecords::reloading`] when the load starts, and
//! [`LiveRecords::reloaded`] when it is back, keep only what was heard in
//! between (the page shows the old list and all it heard until then).
//!
//! The pages `scripts/new-resource` writes use it, and so can any page of
//! records that people edit.

use std::collections::{BTreeMap, BTreeSet};

/// A record with an id that is never used again and a version that rises
/// with each edit.
pub trait Versioned: Clone {
    fn id(&self) -> i64;
    fn version(&self) -> i64;
}

/// The changes a tab heard since it loaded its records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveRecords<T> {
    heard: Heard<T>,
    /// What was heard since a reload began: all that is kept once its
    /// records are back.
    since_reload: Option<Heard<T>>,
}

impl<T> Default for LiveRecords<T> {
    fn default() -> Self {
        Self {
            heard: Heard::default(),
            since_reload: None,
        }
    }
}

/// Changes heard: the newest copy of each record, and the records deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Heard<T> {
    records: BTreeMap<i64, T>,
    deleted: BTreeSet<i64>,
}

impl<T> Default for Heard<T> {
    fn default() -> Self {
        Self {
            records: BTreeMap::new(),
            deleted: BTreeSet::new(),
        }
    }
}

impl<T: Versioned> Heard<T> {
    fn put(&mut self, record: T) {
        if self.deleted.contains(&record.id()) {
            return;
        }
        let newer = self
            .records
            .get(&record.id())
            .is_none_or(|known| known.version() < record.version());
        if newer {
            self.records.insert(record.id(), record);
        }
    }

    fn remove(&mut self, id: i64) {
        self.records.remove(&id);
        self.deleted.insert(id);
    }
}

impl<T: Versioned> LiveRecords<T> {
    /// A record was created or changed: keeps this copy unless a newer one
    /// was heard, or the record was deleted.
    pub fn put(&mut self, record: T) {
        if let Some(since_reload) = &mut self.since_reload {
            since_reload.put(record.clone());
        }
        self.heard.put(record);
    }

    /// The record `id` was deleted.
    pub fn remove(&mut self, id: i64) {
        if let Some(since_reload) = &mut self.since_reload {
            since_reload.remove(id);
        }
        self.heard.remove(id);
    }

    /// The page starts loading its records (again): what is heard from now
    /// on is what will count once they are back.
    pub fn reloading(&mut self) {
        self.since_reload = Some(Heard::default());
    }

    /// The records the page loaded are back: what was heard before the
    /// load began is in them, or was lost with what the tab missed.
    pub fn reloaded(&mut self) {
        if let Some(since_reload) = self.since_reload.take() {
            self.heard = since_reload;
        }
    }

    /// `loaded` with what was heard laid over it, newest record (highest
    /// id) first: each record once, in its newest copy, deleted ones left
    /// out, new ones added.
    pub fn over(&self, loaded: &[T]) -> Vec<T> {
        let heard = &self.heard;
        let mut records: BTreeMap<i64, T> = loaded
            .iter()
            .filter(|record| !heard.deleted.contains(&record.id()))
            .map(|record| (record.id(), record.clone()))
            .collect();
        for (id, record) in &heard.records {
            let newer = records
                .get(id)
                .is_none_or(|loaded| loaded.version() < record.version());
            if newer {
                records.insert(*id, record.clone());
            }
        }
        records.into_values().rev().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Note {
        id: i64,
        version: i64,
        text: &'static str,
    }

    impl Versioned for Note {
        fn id(&self) -> i64 {
            self.id
        }
        fn version(&self) -> i64 {
            self.version
        }
    }

    fn note(id: i64, version: i64, text: &'static str) -> Note {
        Note { id, version, text }
    }

    fn texts(notes: Vec<Note>) -> Vec<&'static str> {
        notes.into_iter().map(|note| note.text).collect()
    }

    #[test]
    fn new_records_come_first_and_each_record_shows_once() {
        let loaded = [note(2, 1, "two"), note(1, 1, "one")];
        let mut live = LiveRecords::default();
        live.put(note(3, 1, "three"));
        // The list already had it: a replay of its creation.
        live.put(note(2, 1, "two"));
        assert_eq!(texts(live.over(&loaded)), ["three", "two", "one"]);
    }

    #[test]
    fn the_newest_version_wins_whichever_arrives_first() {
        let loaded = [note(1, 2, "edited twice")];
        let mut live = LiveRecords::default();
        // An edit the list already includes, replayed: changes nothing.
        live.put(note(1, 1, "edited once"));
        assert_eq!(texts(live.over(&loaded)), ["edited twice"]);
        live.put(note(1, 4, "edited four times"));
        live.put(note(1, 3, "edited three times"));
        assert_eq!(texts(live.over(&loaded)), ["edited four times"]);
    }

    #[test]
    fn a_deleted_record_stays_deleted() {
        let loaded = [note(2, 1, "two"), note(1, 1, "one")];
        let mut live = LiveRecords::default();
        live.remove(1);
        // A late copy of its last edit does not bring it back.
        live.put(note(1, 2, "one, edited"));
        live.put(note(3, 1, "three"));
        live.remove(3);
        assert_eq!(texts(live.over(&loaded)), ["two"]);
    }

    #[test]
    fn a_reload_keeps_only_what_was_heard_while_it_loaded() {
        let old_list = [note(2, 1, "two"), note(1, 1, "one")];
        let mut live = LiveRecords::default();
        // Heard before the tab missed some changes: in the new list, or lost.
        live.put(note(3, 1, "three"));
        live.remove(1);
        live.reloading();
        // Until the new list is back, the page shows the old one as before.
        assert_eq!(texts(live.over(&old_list)), ["three", "two"]);
        // Heard while it loads: newer than the new list, maybe.
        live.put(note(2, 2, "two, edited"));
        live.remove(4);
        live.reloaded();
        // The new list: 3 was deleted while the tab was away, 4 is gone too.
        let new_list = [note(4, 1, "four"), note(2, 1, "two"), note(1, 1, "one")];
        assert_eq!(texts(live.over(&new_list)), ["two, edited", "one"]);
    }
}
