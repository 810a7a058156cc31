//! The browser's room book: the rooms a tab wants to be in, counted per
//! component.
//!
//! Several components may want the same room; the tab joins it when the
//! first one mounts and leaves it when the last one unmounts. After a
//! reconnect, the tab joins every room still wanted.

use std::collections::HashMap;

use crate::RoomName;

/// How many of the tab's components want each room.
#[derive(Debug, Default)]
pub struct RoomBook {
    wanted: HashMap<RoomName, usize>,
}

impl RoomBook {
    /// One more component wants `room`. Returns whether it is the first
    /// (the tab should send `join`).
    pub fn want(&mut self, room: &RoomName) -> bool {
        let count = self.wanted.entry(room.clone()).or_default();
        *count += 1;
        *count == 1
    }

    /// One component no longer wants `room`. Returns whether it was the
    /// last (the tab should send `leave`).
    pub fn release(&mut self, room: &RoomName) -> bool {
        match self.wanted.get_mut(room) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            Some(_) => {
                self.wanted.remove(room);
                true
            }
            None => false,
        }
    }

    pub fn is_wanted(&self, room: &RoomName) -> bool {
        self.wanted.contains_key(room)
    }

    /// Every room to join after (re)connecting.
    pub fn wanted(&self) -> impl Iterator<Item = &RoomName> {
        self.wanted.keys()
    }

    /// How many memberships the components hold, in every room.
    pub fn memberships(&self) -> usize {
        self.wanted.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_want_joins_and_the_last_release_leaves() {
        let mut book = RoomBook::default();
        let room = RoomName::from("chat:1");
        assert!(book.want(&room));
        assert!(!book.want(&room));
        assert!(!book.release(&room));
        assert!(book.is_wanted(&room));
        assert!(book.release(&room));
        assert!(!book.is_wanted(&room));
        assert!(
            !book.release(&room),
            "releasing an unwanted room does nothing"
        );
    }

    #[test]
    fn every_wanted_room_is_rejoined() {
        let mut book = RoomBook::default();
        book.want(&"chat:1".into());
        book.want(&"chat:2".into());
        book.want(&"chat:3".into());
        book.release(&"chat:2".into());
        let mut rooms: Vec<&str> = book.wanted().map(RoomName::as_str).collect();
        rooms.sort_unstable();
        assert_eq!(rooms, ["chat:1", "chat:3"]);
    }
}
