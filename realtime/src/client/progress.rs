//! How far the tab has read each stream, and which durable events it
//! already has: what it asks to recover after a reconnect, and how it
//! drops an event that a replay brings a second time.
//!
//! Positions come from the server: the `welcome` frame (everyone's stream
//! and the user's), `joined` (a room's), every durable event, and a
//! `discontinuity` (where a stream goes on after a gap). A position never
//! moves back within an epoch; a new epoch replaces the old one.

use std::collections::{BTreeMap, HashSet, VecDeque};

use crate::{
    RoomName, UserId,
    protocol::Resume,
    stream::{EventId, Position, Recorded, Stream, TabId},
};

/// How many event ids are remembered to drop duplicates. A duplicate comes
/// from one emit to several streams of this tab (a room and its user, say),
/// replayed through one after it arrived through another: the ids of the
/// latest events are enough for all but very long replays, and past them
/// a duplicate reaches the handlers (the chat also keeps messages by id).
const IDS_REMEMBERED: usize = 4096;

pub(super) struct Progress {
    tab: TabId,
    positions: BTreeMap<Stream, Position>,
    /// The user of the last `welcome`: only their stream is asked for.
    user: Option<UserId>,
    /// Whether a `welcome` came: from then on the tab's positions are the
    /// server's word, newer than any page's.
    welcomed: bool,
    ids: HashSet<EventId>,
    ids_in_order: VecDeque<EventId>,
}

impl Progress {
    pub fn new(tab: TabId) -> Self {
        Self {
            tab,
            positions: BTreeMap::new(),
            user: None,
            welcomed: false,
            ids: HashSet::new(),
            ids_in_order: VecDeque::new(),
        }
    }

    /// What to ask for when (re)connecting: the tab, and how far it read
    /// everyone's stream and its user's.
    pub fn resume(&self) -> Resume {
        // Before the first welcome the user is not known yet: a page may
        // have given its own stream's position (no other user's).
        let user = self.user.or_else(|| {
            self.positions.keys().find_map(|stream| match stream {
                Stream::User(user) => Some(*user),
                _ => None,
            })
        });
        let streams = std::iter::once(Stream::Everyone).chain(user.map(Stream::User));
        Resume {
            tab: Some(self.tab),
            since: streams
                .filter_map(|stream| Some((stream.clone(), *self.positions.get(&stream)?)))
                .collect(),
        }
    }

    /// The `welcome` frame: who the tab is now, and where its streams
    /// stand after what is being replayed. A stream the tab asked about
    /// keeps the tab's own position, which the replayed events (or a
    /// `discontinuity`) advance: should the connection drop halfway
    /// through the replay, the next one asks from what did arrive.
    pub fn welcomed(&mut self, user: Option<UserId>, positions: BTreeMap<Stream, Position>) {
        if user != self.user {
            // Another user's stream is nothing to this tab any more.
            self.positions.retain(|stream, _| match stream {
                Stream::User(other) => Some(*other) == user,
                _ => true,
            });
            self.user = user;
        }
        for (stream, position) in positions {
            self.positions.entry(stream).or_insert(position);
        }
        self.welcomed = true;
    }

    /// Where to recover a room from when joining it again.
    pub fn room(&self, room: &RoomName) -> Option<Position> {
        self.positions.get(&Stream::Room(room.clone())).copied()
    }

    /// The tab no longer wants the room: what it missed from now on is not
    /// missed.
    pub fn left(&mut self, room: &RoomName) {
        self.positions.remove(&Stream::Room(room.clone()));
    }

    /// A durable event arrived: `true` if it is new to the tab (hand it to
    /// the handlers), `false` if the tab had it already. Its position is
    /// kept if `follows` (the tab still follows its stream: not a room it
    /// has let go of while the event was on its way).
    pub fn arrived(&mut self, recorded: &Recorded, follows: bool) -> bool {
        if follows {
            self.advance(recorded.stream.clone(), recorded.position);
        }
        if !self.ids.insert(recorded.id) {
            return false;
        }
        self.ids_in_order.push_back(recorded.id);
        if self.ids_in_order.len() > IDS_REMEMBERED
            && let Some(oldest) = self.ids_in_order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        true
    }

    /// The page shows what `stream` held up to `position` (it was rendered
    /// from data read after it): recover from there, unless the tab
    /// already `follows` the stream and knows better. Before the first
    /// `welcome`, parts of one page may give several positions of a
    /// stream: the oldest wins, so that nothing after any of them is lost.
    pub fn recover_from(&mut self, stream: Stream, position: Position, follows: bool) {
        match self.positions.get_mut(&stream) {
            None => {
                self.positions.insert(stream, position);
            }
            Some(current) if !follows => *current = position,
            Some(current)
                if !self.welcomed
                    && current.epoch == position.epoch
                    && position.offset < current.offset =>
            {
                *current = position;
            }
            Some(_) => {}
        }
    }

    /// Where a stream stands now (from `joined`, or a `discontinuity`).
    pub fn at(&mut self, stream: Stream, position: Position) {
        self.advance(stream, position);
    }

    fn advance(&mut self, stream: Stream, position: Position) {
        let current = self.positions.entry(stream).or_insert(position);
        if current.epoch != position.epoch || current.offset < position.offset {
            *current = position;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Progress {
        fn arrived_following(&mut self, recorded: &Recorded) -> bool {
            self.arrived(recorded, true)
        }
    }
    use crate::stream::Epoch;

    fn at(epoch: u64, offset: u64) -> Position {
        Position {
            epoch: Epoch(epoch),
            offset,
        }
    }

    fn event(id: u64, stream: Stream, position: Position) -> Recorded {
        Recorded {
            id: EventId(id),
            stream,
            position,
        }
    }

    #[test]
    fn it_asks_for_everyone_and_its_user_from_where_it_stands() {
        let mut progress = Progress::new(TabId(9));
        assert_eq!(
            progress.resume(),
            Resume {
                tab: Some(TabId(9)),
                since: vec![]
            }
        );
        progress.welcomed(
            Some(UserId(1)),
            BTreeMap::from([
                (Stream::Everyone, at(1, 4)),
                (Stream::User(UserId(1)), at(2, 0)),
            ]),
        );
        assert!(progress.arrived_following(&event(10, Stream::Everyone, at(1, 5))));
        assert!(progress.arrived_following(&event(11, Stream::User(UserId(1)), at(2, 1))));
        assert_eq!(
            progress.resume().since,
            [
                (Stream::Everyone, at(1, 5)),
                (Stream::User(UserId(1)), at(2, 1))
            ]
        );

        // Logged in as someone else: the old user's stream is forgotten.
        progress.welcomed(Some(UserId(2)), BTreeMap::new());
        assert_eq!(progress.resume().since, [(Stream::Everyone, at(1, 5))]);
    }

    #[test]
    fn a_welcome_does_not_move_a_stream_the_tab_asked_about() {
        let mut progress = Progress::new(TabId(1));
        progress.welcomed(None, BTreeMap::from([(Stream::Everyone, at(1, 2))]));
        progress.arrived_following(&event(1, Stream::Everyone, at(1, 3)));
        // Reconnected: the server will replay 4 to 9; the connection may
        // drop before they all arrive.
        progress.welcomed(None, BTreeMap::from([(Stream::Everyone, at(1, 9))]));
        assert_eq!(progress.resume().since, [(Stream::Everyone, at(1, 3))]);
        progress.arrived_following(&event(2, Stream::Everyone, at(1, 4)));
        assert_eq!(progress.resume().since, [(Stream::Everyone, at(1, 4))]);
    }

    #[test]
    fn a_page_may_give_its_users_stream_before_the_first_welcome() {
        let mut progress = Progress::new(TabId(1));
        progress.recover_from(Stream::User(UserId(7)), at(1, 4), true);
        assert_eq!(
            progress.resume().since,
            [(Stream::User(UserId(7)), at(1, 4))]
        );
        // Welcomed as that user: the page's position stands (the replay
        // from it is on its way).
        progress.welcomed(
            Some(UserId(7)),
            BTreeMap::from([(Stream::User(UserId(7)), at(1, 9))]),
        );
        assert_eq!(
            progress.resume().since,
            [(Stream::User(UserId(7)), at(1, 4))]
        );
    }

    #[test]
    fn an_event_of_a_room_let_go_leaves_no_position() {
        let mut progress = Progress::new(TabId(1));
        let red: RoomName = "team:red".into();
        assert!(progress.arrived(&event(1, Stream::Room(red.clone()), at(1, 4)), false));
        assert_eq!(progress.room(&red), None);
    }

    #[test]
    fn positions_never_move_back_in_an_epoch_and_a_new_epoch_replaces_them() {
        let mut progress = Progress::new(TabId(1));
        let red: RoomName = "team:red".into();
        progress.at(Stream::Room(red.clone()), at(1, 7));
        progress.at(Stream::Room(red.clone()), at(1, 3));
        assert_eq!(progress.room(&red), Some(at(1, 7)));
        progress.at(Stream::Room(red.clone()), at(2, 1));
        assert_eq!(progress.room(&red), Some(at(2, 1)));
        progress.left(&red);
        assert_eq!(progress.room(&red), None);
    }

    #[test]
    fn a_rendered_page_sets_where_to_recover_from_unless_the_tab_reads_the_stream() {
        let mut progress = Progress::new(TabId(1));
        progress.welcomed(None, BTreeMap::new());
        let red: RoomName = "team:red".into();
        progress.recover_from(Stream::Room(red.clone()), at(1, 3), false);
        assert_eq!(progress.room(&red), Some(at(1, 3)));
        progress.at(Stream::Room(red.clone()), at(1, 9));
        progress.recover_from(Stream::Room(red.clone()), at(1, 5), true);
        assert_eq!(
            progress.room(&red),
            Some(at(1, 9)),
            "in the room: it knows better"
        );
        // Out of the room, an old position gives way to the page's.
        progress.recover_from(Stream::Room(red.clone()), at(1, 5), false);
        assert_eq!(progress.room(&red), Some(at(1, 5)));

        // Two parts of one page, before the first welcome: the older wins.
        let mut progress = Progress::new(TabId(1));
        progress.recover_from(Stream::Everyone, at(4, 5), true);
        progress.recover_from(Stream::Everyone, at(4, 2), true);
        progress.recover_from(Stream::Everyone, at(4, 3), true);
        assert_eq!(progress.resume().since, [(Stream::Everyone, at(4, 2))]);
        // Once welcomed, the server's word stands.
        progress.welcomed(None, BTreeMap::new());
        progress.recover_from(Stream::Everyone, at(4, 1), true);
        assert_eq!(progress.resume().since, [(Stream::Everyone, at(4, 2))]);
    }

    #[test]
    fn an_event_that_comes_again_through_another_stream_is_dropped() {
        let mut progress = Progress::new(TabId(1));
        let red = Stream::Room("team:red".into());
        assert!(progress.arrived_following(&event(5, Stream::User(UserId(1)), at(1, 1))));
        assert!(!progress.arrived_following(&event(5, red.clone(), at(2, 9))));
        // Its position counts all the same.
        assert_eq!(progress.room(&"team:red".into()), Some(at(2, 9)));

        // Ids are remembered up to a bound.
        for id in 100..100 + IDS_REMEMBERED as u64 {
            assert!(progress.arrived_following(&event(id, Stream::Everyone, at(3, id))));
        }
        assert!(progress.arrived_following(&event(5, Stream::Everyone, at(3, 1))));
    }
}
