//! How far the tab has read each stream: what it asks to recover after a
//! reconnect, and how it knows an event that comes a second time.
//!
//! Positions come from the server: the `welcome` frame (everyone's stream
//! and the user's), `joined` (a room's), every durable event (its position
//! in each of the tab's streams it came through), and a `discontinuity`
//! (where a stream goes on after a gap, even backwards: the history behind
//! it was lost). Otherwise a position never moves back within an epoch; a
//! new epoch replaces the old one.
//!
//! An event the tab has already is known by position, not by a window of
//! ids: an emit to a room and a user reaches the user's tab in the room
//! with its position in both streams, so when a replay of one brings it
//! again, the tab's position in the other says it has it. Only positions
//! the tab reached by receiving events count as proof (a [`Mark`]): one it
//! was told (`joined`, `welcome`, a page's, a `discontinuity`) says where
//! to ask from, not that it has what came before.
//!
//! With Redis Cluster's shards, an event for streams of several shards is
//! placed in each shard apart, with its positions there only: a tab that
//! reads streams of two of them gets it twice, with positions that do not
//! overlap. The event's id tells the second: the latest events are kept
//! ([`RECENT_EVENTS`], [`RECENT_BYTES`]).
//!
//! They are kept whole, for one more reason: a component that mounts with
//! data read at a position the tab has passed (a page loaded over HTTP
//! while events kept arriving) needs the events after it, which were handed
//! on before its handlers existed. [`Progress::recover_from`] says so, and
//! [`Progress::hand_again_after`] gives them, for the handlers subscribed
//! since only: no handler gets an event twice. When the tab no longer has
//! all of them, the stream counts as missed, and the page loads again.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use super::HandlerId;
use crate::{
    RoomName, UserId,
    protocol::Resume,
    stream::{EventId, Mark, Position, Recorded, Stream, TabId},
};

/// The most durable events a tab keeps, to know one that comes again
/// through another shard, and to hand it to components that mount later.
pub(super) const RECENT_EVENTS: usize = 1024;
/// The most bytes of those events' names and data: past it, the oldest
/// go first.
pub(super) const RECENT_BYTES: usize = 1024 * 1024;

/// A durable event handed on lately.
struct Heard {
    recorded: Recorded,
    name: String,
    data: String,
    /// The newest handler it was handed to: those subscribed after it
    /// never had it.
    handed_to: HandlerId,
}

impl Heard {
    fn bytes(&self) -> usize {
        self.name.len() + self.data.len()
    }

    /// Whether it came through `stream` after `position`, in its epoch.
    fn is_after(&self, stream: &Stream, position: Position) -> bool {
        self.recorded.positions().any(|(its, at)| {
            its == stream && at.epoch == position.epoch && at.offset > position.offset
        })
    }
}

/// An event as it arrives, to be kept if it is new.
pub(super) struct Arriving<'a> {
    pub name: &'a str,
    pub data: &'a str,
    /// The newest handler it is handed to now.
    pub handed_to: HandlerId,
}

/// What a page's position asks of the tab ([`Progress::recover_from`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Recovery {
    /// The tab handed on events after this position before the page's
    /// handlers existed: hand them again, to those handlers
    /// ([`Progress::hand_again_after`]).
    pub hand_again: Option<Position>,
    /// The tab is past the position without all the events in between:
    /// the page must load again.
    pub missed: bool,
}

pub(super) struct Progress {
    tab: TabId,
    positions: BTreeMap<Stream, Mark>,
    /// The latest events handed on, oldest first; their ids as a set, and
    /// the bytes they hold.
    recent: VecDeque<Heard>,
    recent_ids: HashSet<EventId>,
    recent_bytes: usize,
    /// Ids of events a `discontinuity` let go of, still in `recent_ids`
    /// (the latest [`RECENT_EVENTS`]): the same events, sent again after
    /// it, are not handed on twice; events given their offsets again are
    /// other events, with other ids.
    let_go: VecDeque<EventId>,
    /// Where in each stream the newest event the tab no longer keeps
    /// stood: a page before it cannot be given what followed.
    forgotten: BTreeMap<Stream, Position>,
    /// Streams a page showed without a position to recover from (the
    /// server could not give one): once the tab follows them, it counts
    /// what it may have missed as missed.
    unanchored: BTreeSet<Stream>,
    /// The user of the last `welcome`: only their stream is asked for.
    user: Option<UserId>,
    /// Whether a `welcome` came: from then on the tab's positions are the
    /// server's word, newer than any page's.
    welcomed: bool,
    /// The last page position of each stream counted as missed, and where
    /// the tab stood then (see [`Progress::recover_from`]).
    missed_from: BTreeMap<Stream, (Position, Position)>,
}

impl Progress {
    pub fn new(tab: TabId) -> Self {
        Self {
            tab,
            positions: BTreeMap::new(),
            recent: VecDeque::new(),
            recent_ids: HashSet::new(),
            recent_bytes: 0,
            let_go: VecDeque::new(),
            forgotten: BTreeMap::new(),
            unanchored: BTreeSet::new(),
            user: None,
            welcomed: false,
            missed_from: BTreeMap::new(),
        }
    }

    /// The tab's id.
    pub fn tab(&self) -> TabId {
        self.tab
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
                .filter_map(|stream| Some((stream.clone(), self.positions.get(&stream)?.at)))
                .collect(),
        }
    }

    /// The `welcome` frame: who the tab is now, and where its streams
    /// stand after what is being replayed. A stream the tab asked about
    /// keeps the tab's own position, which the replayed events (or a
    /// `discontinuity`) advance: should the connection drop halfway
    /// through the replay, the next one asks from what did arrive.
    /// Returns the streams the page showed without a position and the tab
    /// now follows: what they may have missed counts as missed.
    pub fn welcomed(
        &mut self,
        user: Option<UserId>,
        positions: BTreeMap<Stream, Position>,
    ) -> Vec<Stream> {
        if user != self.user {
            // Another user's stream is nothing to this tab any more.
            self.positions.retain(|stream, _| match stream {
                Stream::User(other) => Some(*other) == user,
                _ => true,
            });
            self.user = user;
        }
        let mut missed = Vec::new();
        for (stream, position) in positions {
            if self.unanchored.remove(&stream) {
                missed.push(stream.clone());
            }
            self.positions.entry(stream).or_insert(Mark::told(position));
        }
        self.welcomed = true;
        missed
    }

    /// Where to recover a room from when joining it again.
    pub fn room(&self, room: &RoomName) -> Option<Position> {
        self.positions
            .get(&Stream::Room(room.clone()))
            .map(|mark| mark.at)
    }

    /// The tab no longer wants the room: what it missed from now on is not
    /// missed.
    pub fn left(&mut self, room: &RoomName) {
        let stream = Stream::Room(room.clone());
        self.positions.remove(&stream);
        self.unanchored.remove(&stream);
        self.forgotten.remove(&stream);
        self.missed_from.remove(&stream);
    }

    /// A durable event arrived: `true` if it is new to the tab (hand it to
    /// the handlers), `false` if the tab had it already: it received the
    /// event at that position in one of the streams it came through, or
    /// the event of that id lately (through another shard). Its positions
    /// are kept in the streams the tab `follows` (not a room it has let go
    /// of while the event was on its way). A new one is kept ([`Heard`]).
    pub fn arrived(
        &mut self,
        recorded: &Recorded,
        follows: impl Fn(&Stream) -> bool,
        arriving: Arriving<'_>,
    ) -> bool {
        let had = recorded.positions().any(|(stream, position)| {
            self.positions
                .get(stream)
                .is_some_and(|mark| mark.covers(position))
        }) || self.recent_ids.contains(&recorded.id);
        if !had {
            self.keep(Heard {
                recorded: recorded.clone(),
                name: arriving.name.to_owned(),
                data: arriving.data.to_owned(),
                handed_to: arriving.handed_to,
            });
        }
        for (stream, position) in recorded.positions() {
            if follows(stream)
                && let Some(first) = Mark::receive(self.positions.get_mut(stream), position)
            {
                self.positions.insert(stream.clone(), first);
            }
        }
        !had
    }

    /// The page shows what `stream` held up to `position` (it was rendered
    /// from data read after it), and its handlers are (or are about to be)
    /// subscribed.
    ///
    /// - A stream the tab does not follow (a room it is about to join) is
    ///   recovered from there: the join's replay brings what followed,
    ///   but the events among them the tab handed on already come again
    ///   to no handler (known by their ids), so they are handed again.
    /// - A stream it follows and has read past `position`: the events in
    ///   between were handed on before the page's handlers existed. They
    ///   are handed again if the tab still has every one, or the stream
    ///   counts as missed (the page loads again).
    /// - The same position again, the tab where it stood when that
    ///   position counted as missed: the page loaded again since, after
    ///   the tab had every event up to there, so its data holds them
    ///   (a server whose own view lags behind what the tab read from Redis
    ///   gives the same position until it catches up: counting it again
    ///   would load the page again and again).
    /// - Before the first `welcome`, parts of one page may give several
    ///   positions of a stream: the oldest wins, so that nothing after any
    ///   of them is lost.
    ///
    /// `None`: the server could not say where the stream stood (its
    /// history was out of reach); once the tab follows the stream, what it
    /// may have missed counts as missed (see [`Progress::joined`]).
    pub fn recover_from(
        &mut self,
        stream: Stream,
        position: Option<Position>,
        follows: bool,
    ) -> Recovery {
        let Some(position) = position else {
            // Everyone's and the user's are followed once welcomed.
            let followed = follows && (self.welcomed || matches!(stream, Stream::Room(_)));
            if !followed {
                self.unanchored.insert(stream);
            }
            return Recovery::default();
        };
        if !follows {
            let hand_again = self.heard_after(&stream, position);
            // The page's data replaces what the tab had of it.
            self.unanchored.remove(&stream);
            self.positions.insert(stream, Mark::told(position));
            return Recovery {
                hand_again,
                missed: false,
            };
        }
        let Some(current) = self.positions.get(&stream).copied() else {
            self.positions.insert(stream, Mark::told(position));
            return Recovery::default();
        };
        // A page that saw the stream unwritten (`Epoch::unwritten_at`) had
        // none of it: it needs the whole of the epoch written since, which
        // the tab has if it has received that epoch from its start.
        let position = match (
            position.epoch.unwritten_since(),
            current.at.epoch.unwritten_since(),
        ) {
            (Some(_), None) if position.offset == 0 && self.welcomed => Position {
                epoch: current.at.epoch,
                offset: 0,
            },
            _ => position,
        };
        let behind = current.at.epoch == position.epoch && position.offset < current.at.offset;
        if !self.welcomed {
            if behind {
                self.positions.insert(stream, Mark::told(position));
            }
            return Recovery::default();
        }
        // Another epoch (the server's word stands), or where the tab is
        // or ahead of it (what follows arrives live).
        if !behind {
            return Recovery::default();
        }
        if self.missed_from.get(&stream) == Some(&(position, current.at)) {
            return Recovery::default();
        }
        let received_all = current.anchor <= position.offset;
        let kept_all = self
            .forgotten
            .get(&stream)
            .is_none_or(|gone| gone.epoch != position.epoch || gone.offset <= position.offset);
        if received_all && kept_all {
            Recovery {
                hand_again: self.heard_after(&stream, position),
                missed: false,
            }
        } else {
            self.missed_from.insert(stream, (position, current.at));
            Recovery {
                hand_again: None,
                missed: true,
            }
        }
    }

    /// `position`, if the tab keeps events after it in `stream`.
    fn heard_after(&self, stream: &Stream, position: Position) -> Option<Position> {
        let any = self
            .recent
            .iter()
            .any(|heard| heard.is_after(stream, position));
        any.then_some(position)
    }

    /// The kept events after `position` in `stream`, as (name, data, the
    /// newest handler that had it), oldest first; from now on, each counts
    /// as handed to `newest` too (a second call gives them to nobody
    /// twice).
    pub fn hand_again_after(
        &mut self,
        stream: &Stream,
        position: Position,
        newest: HandlerId,
    ) -> Vec<(String, String, HandlerId)> {
        self.recent
            .iter_mut()
            .filter(|heard| heard.is_after(stream, position))
            .map(|heard| {
                let had_it = std::mem::replace(&mut heard.handed_to, newest);
                (heard.name.clone(), heard.data.clone(), had_it)
            })
            .collect()
    }

    /// Keeps an event handed on, and lets the oldest go past the bounds,
    /// noting where in each stream what is gone stood.
    fn keep(&mut self, heard: Heard) {
        self.recent_bytes += heard.bytes();
        self.recent_ids.insert(heard.recorded.id);
        self.recent.push_back(heard);
        while self.recent.len() > RECENT_EVENTS || self.recent_bytes > RECENT_BYTES {
            let Some(oldest) = self.recent.pop_front() else {
                break;
            };
            self.recent_bytes -= oldest.bytes();
            self.recent_ids.remove(&oldest.recorded.id);
            for (stream, position) in oldest.recorded.positions() {
                // Of a stream the tab no longer reads, nothing is asked.
                if !self.positions.contains_key(stream) {
                    continue;
                }
                match self.forgotten.get_mut(stream) {
                    Some(gone)
                        if gone.epoch == position.epoch && gone.offset >= position.offset => {}
                    Some(gone) => *gone = position,
                    None => {
                        self.forgotten.insert(stream.clone(), position);
                    }
                }
            }
        }
    }

    /// A room's `joined` frame: where its stream stands now. Returns
    /// whether the page showed it without a position, so that what it may
    /// have missed counts as missed.
    pub fn joined(&mut self, stream: Stream, position: Position) -> bool {
        let unanchored = self.unanchored.remove(&stream);
        if let Some(first) = Mark::tell(self.positions.get_mut(&stream), position) {
            self.positions.insert(stream, first);
        }
        unanchored
    }

    /// A `discontinuity`: the stream goes on from `position`, even if that
    /// is behind where the tab was (the history went back, and gives those
    /// offsets again).
    pub fn discontinuity(&mut self, stream: Stream, position: Position) {
        self.unanchored.remove(&stream);
        // Offsets after it may be given again to other events: the events
        // kept at them are no longer what the stream holds there.
        self.forget_after(&stream, position);
        self.positions.insert(stream, Mark::told(position));
    }

    /// Lets go of the kept events after `position` in `stream`.
    fn forget_after(&mut self, stream: &Stream, position: Position) {
        let (let_go, recent_bytes) = (&mut self.let_go, &mut self.recent_bytes);
        self.recent.retain(|heard| {
            let after = heard.is_after(stream, position);
            if after {
                *recent_bytes -= heard.bytes();
                let_go.push_back(heard.recorded.id);
            }
            !after
        });
        while self.let_go.len() > RECENT_EVENTS {
            if let Some(id) = self.let_go.pop_front() {
                self.recent_ids.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Progress {
        fn arrived_following(&mut self, recorded: &Recorded) -> bool {
            let data = recorded.id.0.to_string();
            self.arrived(recorded, |_| true, arriving(&data))
        }
    }
    use crate::stream::{Epoch, EventId};

    /// An event arriving with `data`, handed to no handler.
    fn arriving(data: &str) -> Arriving<'_> {
        Arriving {
            name: "e",
            data,
            handed_to: super::super::Dispatcher::default().newest(),
        }
    }

    fn at(epoch: u64, offset: u64) -> Position {
        Position::at(epoch, offset)
    }

    fn event(id: u64, stream: Stream, position: Position) -> Recorded {
        Recorded {
            id: EventId(id),
            stream,
            position,
            also: Vec::new(),
        }
    }

    #[test]
    fn it_asks_for_everyone_and_its_user_from_where_it_stands() {
        let mut progress = Progress::new(TabId(9));
        assert_eq!(progress.tab(), TabId(9));
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
        progress.recover_from(Stream::User(UserId(7)), Some(at(1, 4)), true);
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
        let late = event(1, Stream::Room(red.clone()), at(1, 4));
        assert!(progress.arrived(&late, |_| false, arriving("late")));
        assert_eq!(progress.room(&red), None);
    }

    #[test]
    fn positions_never_move_back_in_an_epoch_and_a_new_epoch_replaces_them() {
        let mut progress = Progress::new(TabId(1));
        let red: RoomName = "team:red".into();
        progress.joined(Stream::Room(red.clone()), at(1, 7));
        progress.joined(Stream::Room(red.clone()), at(1, 3));
        assert_eq!(progress.room(&red), Some(at(1, 7)));
        progress.joined(Stream::Room(red.clone()), at(2, 1));
        assert_eq!(progress.room(&red), Some(at(2, 1)));
        progress.left(&red);
        assert_eq!(progress.room(&red), None);
    }

    #[test]
    fn a_rendered_page_sets_where_to_recover_from_unless_the_tab_reads_the_stream() {
        let mut progress = Progress::new(TabId(1));
        progress.welcomed(None, BTreeMap::new());
        let red: RoomName = "team:red".into();
        progress.recover_from(Stream::Room(red.clone()), Some(at(1, 3)), false);
        assert_eq!(progress.room(&red), Some(at(1, 3)));
        progress.joined(Stream::Room(red.clone()), at(1, 9));
        progress.recover_from(Stream::Room(red.clone()), Some(at(1, 5)), true);
        assert_eq!(
            progress.room(&red),
            Some(at(1, 9)),
            "in the room: it knows better"
        );
        // Out of the room, an old position gives way to the page's.
        progress.recover_from(Stream::Room(red.clone()), Some(at(1, 5)), false);
        assert_eq!(progress.room(&red), Some(at(1, 5)));

        // Two parts of one page, before the first welcome: the older wins.
        let mut progress = Progress::new(TabId(1));
        progress.recover_from(Stream::Everyone, Some(at(4, 5)), true);
        progress.recover_from(Stream::Everyone, Some(at(4, 2)), true);
        progress.recover_from(Stream::Everyone, Some(at(4, 3)), true);
        assert_eq!(progress.resume().since, [(Stream::Everyone, at(4, 2))]);
        // Once welcomed, the server's word stands.
        progress.welcomed(None, BTreeMap::new());
        progress.recover_from(Stream::Everyone, Some(at(4, 1)), true);
        assert_eq!(progress.resume().since, [(Stream::Everyone, at(4, 2))]);
    }

    #[test]
    fn an_event_that_comes_again_through_another_stream_is_known_by_its_position() {
        let mut progress = Progress::new(TabId(1));
        let (ada, red) = (Stream::User(UserId(1)), Stream::Room("team:red".into()));
        // Live: once, with its position in both of the tab's streams.
        let live = Recorded {
            also: vec![(red.clone(), at(2, 9))],
            ..event(5, ada.clone(), at(1, 1))
        };
        assert!(progress.arrived_following(&live));
        assert_eq!(progress.room(&"team:red".into()), Some(at(2, 9)));
        // A replay of the room brings it again, saying where it sits in the
        // user's stream, which the tab has reached.
        let replayed = Recorded {
            also: vec![(ada.clone(), at(1, 1))],
            ..event(5, red.clone(), at(2, 9))
        };
        assert!(!progress.arrived_following(&replayed));
        // However many events came between.
        for offset in 2..10_000 {
            let id = 100_000 + offset;
            assert!(progress.arrived_following(&event(id, ada.clone(), at(1, offset))));
        }
        assert!(!progress.arrived_following(&replayed));
        assert!(progress.arrived_following(&event(7, red, at(2, 10))));
    }

    #[test]
    fn an_event_placed_in_two_shards_is_known_by_its_id_and_moves_both_streams_on() {
        let mut progress = Progress::new(TabId(1));
        let (ada, red) = (Stream::User(UserId(1)), Stream::Room("team:red".into()));
        // Through the user's shard, then the room's: no position in common.
        assert!(progress.arrived_following(&event(42, ada.clone(), at(1, 1))));
        assert!(!progress.arrived_following(&event(42, red.clone(), at(2, 9))));
        assert_eq!(progress.room(&"team:red".into()), Some(at(2, 9)));
        // Only the latest ids are kept.
        for n in 0..RECENT_EVENTS as u64 {
            progress.arrived_following(&event(1_000 + n, ada.clone(), at(1, 2 + n)));
        }
        assert!(progress.arrived_following(&event(42, red, at(2, 10))));
    }

    #[test]
    fn a_discontinuity_moves_a_stream_even_back() {
        let mut progress = Progress::new(TabId(1));
        progress.welcomed(None, BTreeMap::from([(Stream::Everyone, at(1, 9))]));
        progress.discontinuity(Stream::Everyone, at(1, 3));
        assert_eq!(progress.resume().since, [(Stream::Everyone, at(1, 3))]);
        // The offsets given again are new events.
        assert!(progress.arrived_following(&event(1, Stream::Everyone, at(1, 4))));
    }

    #[test]
    fn a_page_shown_without_a_position_counts_a_gap_once_its_stream_is_followed() {
        let mut progress = Progress::new(TabId(1));
        let red: RoomName = "team:red".into();
        let room = Stream::Room(red.clone());
        progress.recover_from(room.clone(), None, false);
        assert!(progress.joined(room.clone(), at(1, 4)), "joined: a gap");
        assert!(!progress.joined(room.clone(), at(1, 4)), "once");
        // A position given afterwards anchors it again.
        progress.left(&red);
        progress.recover_from(room.clone(), None, false);
        progress.recover_from(room.clone(), Some(at(1, 4)), false);
        assert!(!progress.joined(room, at(1, 5)));
        // Everyone's stream, before the first welcome (which the runtime
        // says the tab follows: it will, once welcomed).
        progress.recover_from(Stream::Everyone, None, true);
        let missed = progress.welcomed(None, BTreeMap::from([(Stream::Everyone, at(3, 1))]));
        assert_eq!(missed, [Stream::Everyone]);
        // A stream the tab already follows knows better.
        progress.recover_from(Stream::Everyone, None, true);
        assert!(
            progress
                .welcomed(None, BTreeMap::from([(Stream::Everyone, at(3, 1))]))
                .is_empty()
        );
    }

    #[test]
    fn a_position_the_tab_was_told_is_no_proof_it_has_the_events_before() {
        let mut progress = Progress::new(TabId(1));
        progress.welcomed(None, BTreeMap::new());
        let (a, b) = (Stream::Room("team:a".into()), Stream::Room("team:b".into()));
        // Room A from a page's position; room B joined without one, after
        // X was placed in both (B's `joined` says 8, X's offset there).
        progress.recover_from(a.clone(), Some(at(1, 5)), false);
        progress.joined(b.clone(), at(2, 8));
        let x = Recorded {
            also: vec![(b.clone(), at(2, 8))],
            ..event(1, a.clone(), at(1, 6))
        };
        assert!(progress.arrived_following(&x), "A's replay brings X: new");
        assert!(!progress.arrived_following(&x), "and only once");
        // After a gap, the same: told where to go on from, not what came
        // before.
        progress.discontinuity(b.clone(), at(2, 20));
        let y = Recorded {
            also: vec![(b, at(2, 19))],
            ..event(2, a, at(1, 7))
        };
        assert!(progress.arrived_following(&y));
    }

    /// What `hand_again_after` gives, as (data, the handler that had it).
    fn handed_again(
        progress: &mut Progress,
        stream: &Stream,
        position: Position,
        newest: u64,
    ) -> Vec<(String, u64)> {
        progress
            .hand_again_after(stream, position, HandlerId::nth(newest))
            .into_iter()
            .map(|(_, data, had)| {
                let had = (0..=newest).find(|n| HandlerId::nth(*n) == had).unwrap();
                (data, had)
            })
            .collect()
    }

    #[test]
    fn a_page_behind_a_followed_stream_gets_what_the_tab_heard_since_for_its_new_handlers_once() {
        let mut progress = Progress::new(TabId(1));
        progress.welcomed(None, BTreeMap::from([(Stream::Everyone, at(1, 2))]));
        for (id, offset, handlers) in [(3, 3, 1), (4, 4, 1), (5, 5, 2)] {
            let data = format!("e{offset}");
            let arrived = Arriving {
                name: "e",
                data: &data,
                handed_to: HandlerId::nth(handlers),
            };
            let recorded = event(id, Stream::Everyone, at(1, offset));
            assert!(progress.arrived(&recorded, |_| true, arrived));
        }
        // A page read at 3: the tab is at 5, and has 4 and 5.
        let recovery = progress.recover_from(Stream::Everyone, Some(at(1, 3)), true);
        assert_eq!(
            recovery,
            Recovery {
                hand_again: Some(at(1, 3)),
                missed: false
            }
        );
        assert_eq!(
            handed_again(&mut progress, &Stream::Everyone, at(1, 3), 7),
            [("e4".to_owned(), 1), ("e5".to_owned(), 2)]
        );
        // Once handed again, every handler up to the 7th has them.
        assert_eq!(
            handed_again(&mut progress, &Stream::Everyone, at(1, 3), 9),
            [("e4".to_owned(), 7), ("e5".to_owned(), 7)]
        );
        // A page at or past where the tab is needs nothing.
        assert_eq!(
            progress.recover_from(Stream::Everyone, Some(at(1, 5)), true),
            Recovery::default()
        );
    }

    #[test]
    fn a_page_behind_what_the_tab_received_or_kept_of_a_followed_stream_loads_again() {
        // Told where the stream stood at 9 (a `discontinuity`): the events
        // up to 9 never came to the tab.
        let mut progress = Progress::new(TabId(1));
        progress.welcomed(None, BTreeMap::new());
        progress.discontinuity(Stream::Everyone, at(1, 9));
        let recovery = progress.recover_from(Stream::Everyone, Some(at(1, 5)), true);
        assert!(
            recovery.missed && recovery.hand_again.is_none(),
            "{recovery:?}"
        );

        // Received from 1 on, but the oldest are no longer kept.
        let mut progress = Progress::new(TabId(1));
        progress.welcomed(None, BTreeMap::new());
        for offset in 1..=RECENT_EVENTS as u64 + 10 {
            progress.arrived_following(&event(offset, Stream::Everyone, at(1, offset)));
        }
        let recovery = progress.recover_from(Stream::Everyone, Some(at(1, 5)), true);
        assert!(recovery.missed, "the events after 5 are gone");
        let recovery = progress.recover_from(Stream::Everyone, Some(at(1, 11)), true);
        assert!(
            recovery.hand_again.is_some() && !recovery.missed,
            "those after 11 are kept"
        );
    }

    #[test]
    fn a_page_that_loaded_again_from_the_same_position_counts_it_missed_once() {
        // The tab read to 9 from Redis; its server's view lags at 5, and
        // each load of the page says 5.
        let mut progress = Progress::new(TabId(1));
        progress.welcomed(None, BTreeMap::new());
        progress.discontinuity(Stream::Everyone, at(1, 9));
        assert!(
            progress
                .recover_from(Stream::Everyone, Some(at(1, 5)), true)
                .missed
        );
        // Loaded again after that: its data holds what the tab had.
        let again = progress.recover_from(Stream::Everyone, Some(at(1, 5)), true);
        assert!(!again.missed, "{again:?}");
        // The tab moved on meanwhile: the page may not hold the newer.
        progress.arrived_following(&event(10, Stream::Everyone, at(1, 10)));
        assert!(
            progress
                .recover_from(Stream::Everyone, Some(at(1, 5)), true)
                .missed
        );
        assert!(
            !progress
                .recover_from(Stream::Everyone, Some(at(1, 5)), true)
                .missed
        );
    }

    #[test]
    fn events_sent_again_after_a_discontinuity_moved_the_tab_back_are_handed_on_once() {
        let mut progress = Progress::new(TabId(1));
        progress.welcomed(None, BTreeMap::new());
        for offset in 1..=5 {
            assert!(progress.arrived_following(&event(offset, Stream::Everyone, at(1, offset))));
        }
        // Its process could not read Redis: it goes on from 2, and sends 3
        // to 5 again.
        progress.discontinuity(Stream::Everyone, at(1, 2));
        for offset in 3..=5 {
            assert!(
                !progress.arrived_following(&event(offset, Stream::Everyone, at(1, offset))),
                "{offset} again"
            );
        }
        // Offsets given again to other events (the history went back) are
        // other events.
        progress.discontinuity(Stream::Everyone, at(1, 2));
        assert!(progress.arrived_following(&event(99, Stream::Everyone, at(1, 3))));
    }

    #[test]
    fn a_room_joined_again_from_a_page_gets_what_the_tab_heard_before_it_left_from_the_tab() {
        let red = Stream::Room("team:red".into());
        let room: RoomName = "team:red".into();
        let mut progress = Progress::new(TabId(1));
        progress.welcomed(None, BTreeMap::new());
        progress.joined(red.clone(), at(1, 3));
        let x = event(44, red.clone(), at(1, 4));
        assert!(progress.arrived_following(&x));
        // The page loads again from 3 (it had not shown X); meanwhile the
        // old view let go of the room.
        progress.left(&room);
        let recovery = progress.recover_from(red.clone(), Some(at(1, 3)), false);
        assert!(
            recovery.hand_again.is_some() && !recovery.missed,
            "{recovery:?}"
        );
        assert_eq!(
            handed_again(&mut progress, &red, at(1, 3), 2),
            [("44".to_owned(), 0)]
        );
        // The join's replay brings X again: no handler gets it twice.
        assert!(!progress.arrived_following(&x));
        assert_eq!(progress.room(&room), Some(at(1, 4)));
    }

    #[test]
    fn a_page_that_saw_the_stream_unwritten_gets_the_epoch_written_since() {
        let mut progress = Progress::new(TabId(1));
        let unwritten = |millis| Position {
            epoch: Epoch::unwritten_at(millis),
            offset: 0,
        };
        progress.welcomed(None, BTreeMap::from([(Stream::Everyone, unwritten(5))]));
        // The stream is written: the tab receives its epoch from the start.
        for offset in 1..=2 {
            progress.arrived_following(&event(offset, Stream::Everyone, at(7, offset)));
        }
        let recovery = progress.recover_from(Stream::Everyone, Some(unwritten(6)), true);
        assert_eq!(
            recovery,
            Recovery {
                hand_again: Some(at(7, 0)),
                missed: false
            }
        );
        assert_eq!(
            handed_again(&mut progress, &Stream::Everyone, at(7, 0), 3),
            [("1".to_owned(), 0), ("2".to_owned(), 0)]
        );
    }

    #[test]
    fn a_history_that_went_back_lets_go_of_the_kept_events_after_where_it_goes_on() {
        let mut progress = Progress::new(TabId(1));
        progress.welcomed(None, BTreeMap::new());
        for offset in 1..=5 {
            progress.arrived_following(&event(offset, Stream::Everyone, at(1, offset)));
        }
        // Offsets 4 and 5 are given again, to other events.
        progress.discontinuity(Stream::Everyone, at(1, 3));
        assert!(progress.arrived_following(&event(40, Stream::Everyone, at(1, 4))));
        let recovery = progress.recover_from(Stream::Everyone, Some(at(1, 3)), true);
        assert_eq!(recovery.hand_again, Some(at(1, 3)));
        assert_eq!(
            handed_again(&mut progress, &Stream::Everyone, at(1, 3), 1),
            [("40".to_owned(), 0)]
        );
    }
}
