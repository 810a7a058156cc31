//! The history of durable events, in this process's memory: what a tab
//! that missed some events gets when it comes back (`recovery.rs`). A
//! plain data structure: [`super::Streams`] owns it, behind its lock.
//!
//! Alone, this history is the only one: positions are given here, and what
//! it no longer holds is lost. With a broker that shares the history (Redis)
//! it is a *mirror* of the history kept there: positions are
//! given by Redis, the mirror keeps the latest events it received, in
//! order, and a recovery it cannot serve is asked of Redis
//! ([`Recovery::Elsewhere`]). A stream written here because Redis did not
//! take the event (it was unreachable, or could not keep up) gets an epoch
//! of this process's own (a *local* log): its readers here recover from it,
//! and Redis resets the stream everywhere as soon as it can
//! ([`History::take_diverged`]), so that no tab mistakes it for Redis's.
//!
//! Each stream keeps its epoch, the offset of its last event and its latest
//! events. Bounded four ways ([`HistoryLimits`]): events per stream, age,
//! bytes of all streams together, and number of streams. What falls out is
//! gone: a tab asking from before it is told so (a discontinuity), never
//! given a history with a hole in it. A stream forgotten entirely starts a
//! new epoch when it is written again (in a mirror: takes Redis's epoch).
//! Streams with readers in this process are never forgotten
//! ([`History::make_room`]): a mirror must know where they stand to tell
//! their readers of a gap.
//!
//! Every event is in two queues: its stream's (for replays), and one of all
//! streams in the order they were written (for dropping the oldest by age
//! or size in constant time). An event dropped from its stream's queue for
//! the per-stream bound leaves a stale record in the second, skipped when
//! it comes to the front, and swept when stale records outnumber the rest.

use std::{
    collections::{HashMap, VecDeque},
    time::Instant,
};

pub(crate) use super::super::config::HistoryLimits;
use super::{
    super::registry::Kept,
    blind::{Blind, Blindness},
    log::Log,
};
use crate::stream::{Discontinuity, Epoch, EventId, Position, Stream};

/// What each kept event costs besides its frame's bytes (its records in
/// both queues, the frame's shared buffer, the allocator's share),
/// counted against [`HistoryLimits::max_bytes`] so that the limit bounds
/// the memory rather than the frames alone. Measured with the
/// `history_memory` example (docs/benchmarks.md).
const OVERHEAD_PER_EVENT: usize = 256;

/// What a recovery from a position gets.
#[derive(Debug)]
pub(crate) enum Recovery {
    /// The events after the position, oldest first (none if the tab was up
    /// to date).
    Replay(Vec<Kept>),
    /// They cannot be replayed; the stream is now at `position`.
    Discontinuity {
        reason: Discontinuity,
        position: Position,
    },
    /// A mirror does not hold them: ask Redis.
    Elsewhere,
}

/// What a mirror made of an event Redis placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The next one.
    InOrder,
    /// Already kept (a catch-up or a read of Redis brought it first).
    Duplicate,
    /// The first of a stream the mirror did not follow (or of a new epoch,
    /// from its start).
    New,
    /// Events before it never arrived here (a gap, or another epoch
    /// begun before this process heard of it): its readers here may have
    /// missed them.
    Missed(Discontinuity),
    /// Its offset was given before, to another event: the history it came
    /// from went back (Redis restarted from an older snapshot). The event
    /// is not kept; the stream must start again in a new epoch.
    Rewound,
}

/// An event in the order all streams were written.
struct Written {
    stream: Stream,
    /// The epoch tells this event from one of a later history of the same
    /// stream, numbered from 1 again.
    position: Position,
    at: Instant,
    bytes: usize,
}

impl Written {
    /// Whether this event is still in `log`.
    fn is_kept_in(&self, log: &Log) -> bool {
        log.epoch == self.position.epoch
            && log
                .events
                .front()
                .is_some_and(|front| front.offset <= self.position.offset)
    }
}

pub(crate) struct History {
    limits: HistoryLimits,
    /// Whether this is a mirror of Redis's history (see the module).
    mirror: bool,
    streams: HashMap<Stream, Log>,
    written: VecDeque<Written>,
    /// Events in the streams' queues, and their frames' bytes.
    events: usize,
    bytes: usize,
    /// A mirror's streams that Redis must start again: written here with
    /// positions of this process's own (Redis was unreachable or could not
    /// keep up), whatever epoch Redis has (`None`); or found to have gone
    /// back in Redis, only if Redis still has that epoch (so that several
    /// processes finding it reset it once).
    diverged: HashMap<Stream, Option<Epoch>>,
    /// The number of streams at which [`History::make_room`] next looks:
    /// the limit, or further when the streams read here alone fill it.
    room_at: usize,
    /// A mirror's streams read here that it cannot vouch for (`blind.rs`).
    blind: Blind,
    /// Streams unheard for a while whose position was learnt in this step:
    /// their readers must be told they may have missed events
    /// ([`History::take_revealed`]).
    revealed: Vec<(Stream, Position)>,
}

impl History {
    /// The history of a process alone.
    pub fn new(limits: HistoryLimits) -> Self {
        Self {
            limits,
            mirror: false,
            streams: HashMap::new(),
            written: VecDeque::new(),
            events: 0,
            bytes: 0,
            diverged: HashMap::new(),
            room_at: limits.max_streams,
            blind: Blind::new(limits.max_streams),
            revealed: Vec::new(),
        }
    }

    /// A mirror of the history kept in Redis.
    pub fn mirror(limits: HistoryLimits) -> Self {
        Self {
            mirror: true,
            ..Self::new(limits)
        }
    }

    pub fn is_mirror(&self) -> bool {
        self.mirror
    }

    /// Where `stream` is now: the position a page rendered now should ask
    /// to recover from. A stream not yet written starts here, with a new
    /// epoch. (Alone only: a mirror learns positions from Redis.)
    pub fn position(&mut self, stream: &Stream) -> Position {
        self.log(stream).position()
    }

    /// Where `stream` is now, if this history knows it.
    pub fn known(&self, stream: &Stream) -> Option<Position> {
        self.streams.get(stream).map(Log::position)
    }

    /// A mirror learns where a stream stands in Redis (read there for a
    /// page or a tab), unless it knows the stream already: it then follows
    /// the stream from there (`followed`).
    /// A stream unheard for a while that it learns is revealed
    /// ([`History::take_revealed`]).
    pub fn learn(&mut self, stream: &Stream, position: Position, last_id: Option<EventId>) {
        if !self.streams.contains_key(stream) {
            if self.blind.clear(stream) == Some(Blindness::Unheard) {
                self.revealed.push((stream.clone(), position));
            }
            self.streams
                .insert(stream.clone(), Log::shared(position, last_id));
        }
    }

    /// A connection here reads `stream`, and the mirror neither hears it
    /// nor knows where it stands (or stopped hearing it): it goes blind
    /// (`blind.rs`) until it learns where it stands.
    pub fn read_blind(&mut self, stream: &Stream, blindness: Blindness) {
        if self.mirror && !self.streams.contains_key(stream) {
            self.blind.mark(stream, blindness);
        }
    }

    /// Takes the streams revealed since the last time: blind after a while
    /// unheard, and now at a known position (learnt for a page, a tab, or
    /// a catch-up). Their readers may have missed events before it.
    pub fn take_revealed(&mut self) -> Vec<(Stream, Position)> {
        std::mem::take(&mut self.revealed)
    }

    /// Whether `stream` is blind, and why (`blind.rs`).
    pub fn blindness(&self, stream: &Stream) -> Option<Blindness> {
        self.blind.get(stream)
    }

    /// The blind streams `chosen` says.
    pub fn blind_where(&self, chosen: impl Fn(&Stream) -> bool) -> Vec<Stream> {
        self.blind.chosen(chosen)
    }

    /// Where the next event appended to `stream` here goes. In a mirror,
    /// the stream is written apart from Redis (which did not take the
    /// event): positions of this process's own, in an epoch of its own,
    /// never taken for Redis's, and Redis must reset the stream.
    pub fn next_position(&mut self, stream: &Stream) -> Position {
        if self.mirror {
            if self.streams.get(stream).is_none_or(|log| !log.local) {
                self.replace(stream, Log::local());
            }
            self.diverged.insert(stream.clone(), None);
        }
        let log = self.log(stream);
        Position {
            epoch: log.epoch,
            offset: log.last + 1,
        }
    }

    /// Appends an event at the position [`History::next_position`] gave.
    pub fn append(&mut self, stream: &Stream, position: Position, event: Kept, now: Instant) {
        self.keep(stream, position, event, now);
    }

    /// A mirror keeps an event Redis placed at `position`, received in
    /// order. One it has already is ignored; after a gap (or in a new
    /// epoch) the mirror holds the stream from this event on, and says
    /// what its readers may have missed.
    pub fn apply(
        &mut self,
        stream: &Stream,
        position: Position,
        event: Kept,
        now: Instant,
    ) -> Applied {
        let applied = match self.streams.get(stream) {
            Some(log) if !log.local && log.epoch == position.epoch => {
                if position.offset <= log.last {
                    return if log.gave(position.offset, event.id) {
                        Applied::Duplicate
                    } else {
                        Applied::Rewound
                    };
                }
                if position.offset > log.last + 1 {
                    Applied::Missed(Discontinuity::TooOld)
                } else {
                    Applied::InOrder
                }
            }
            // A new epoch from its start: nothing of it was missed (the old
            // one expired unwritten, say).
            Some(_) if position.offset == 1 => Applied::New,
            Some(_) => Applied::Missed(Discontinuity::EpochChanged),
            // Read here, unheard for a while: what came before it may
            // have been missed.
            None => match self.blind.clear(stream) {
                Some(Blindness::Unheard) => Applied::Missed(Discontinuity::TooOld),
                Some(Blindness::Starting) | None => Applied::New,
            },
        };
        if !matches!(applied, Applied::InOrder) {
            self.replace(
                stream,
                Log::shared(
                    Position {
                        offset: position.offset - 1,
                        ..position
                    },
                    None,
                ),
            );
        }
        self.keep(stream, position, event, now);
        applied
    }

    /// Keeps `event`, the stream's newest (at `position`), within the
    /// bounds: per stream, then age and bytes.
    fn keep(&mut self, stream: &Stream, position: Position, event: Kept, now: Instant) {
        let per_stream = self.limits.per_stream;
        let log = self.log(stream);
        log.last = position.offset;
        log.last_id = Some(event.id);
        let bytes = event.frame.len() + OVERHEAD_PER_EVENT;
        log.events.push_back(event);
        let (mut dropped_events, mut dropped_bytes) = (0, 0);
        while log.events.len() > per_stream {
            if let Some(old) = log.events.pop_front() {
                dropped_events += 1;
                dropped_bytes += old.frame.len() + OVERHEAD_PER_EVENT;
            }
        }
        self.events = self.events + 1 - dropped_events;
        self.bytes = self.bytes + bytes - dropped_bytes;
        self.written.push_back(Written {
            stream: stream.clone(),
            position,
            at: now,
            bytes,
        });
        self.trim(now);
    }

    /// The stream starts again at `position` (Redis reset it): what was
    /// kept of it is forgotten.
    pub fn reset(&mut self, stream: &Stream, position: Position) {
        self.replace(stream, Log::shared(position, None));
    }

    /// Takes the streams written with positions of this process's own
    /// (Redis was unreachable, or could not keep up): Redis must reset
    /// them.
    pub fn take_diverged(&mut self) -> Vec<(Stream, Option<Epoch>)> {
        self.diverged.drain().collect()
    }

    /// Streams whose reset did not happen: they wait for the next.
    pub fn diverged_again(&mut self, streams: &[(Stream, Option<Epoch>)]) {
        for (stream, epoch) in streams {
            self.must_reset(stream, *epoch);
        }
    }

    /// Whether the event at `position` in `stream` was `id`, as far as
    /// this history can tell (only of the events it still holds, in the
    /// epoch it holds).
    #[cfg(feature = "redis")]
    pub fn gave(&self, stream: &Stream, position: Position, id: EventId) -> bool {
        self.streams
            .get(stream)
            .is_none_or(|log| log.epoch != position.epoch || log.gave(position.offset, id))
    }

    /// `stream` went back in the shared history, in `epoch` (it gave
    /// offsets again): it must start again, if it still has that epoch.
    pub fn went_back(&mut self, stream: &Stream, epoch: Epoch) {
        self.must_reset(stream, Some(epoch));
    }

    /// A reset whatever the epoch wins over one in an epoch.
    fn must_reset(&mut self, stream: &Stream, epoch: Option<Epoch>) {
        let entry = self.diverged.entry(stream.clone()).or_insert(epoch);
        if epoch.is_none() {
            *entry = None;
        }
    }

    /// Whether some streams wait to be reset in Redis.
    pub fn has_diverged(&self) -> bool {
        !self.diverged.is_empty()
    }

    /// The streams a mirror follows in the shared history's epochs, how
    /// far, and the id of the event there when it saw it.
    pub fn followed(&self) -> Vec<(Stream, Position, Option<EventId>)> {
        self.streams
            .iter()
            .filter(|(_, log)| !log.local)
            .map(|(stream, log)| (stream.clone(), log.position(), log.last_id))
            .collect()
    }

    /// Forgets the streams `forgotten` says (a mirror that stops hearing
    /// them would miss their events).
    #[cfg(feature = "redis")]
    pub fn forget_where(&mut self, forgotten: impl Fn(&Stream) -> bool) {
        let streams: Vec<Stream> = self
            .streams
            .keys()
            .filter(|stream| forgotten(stream))
            .cloned()
            .collect();
        for stream in streams {
            self.forget(&stream);
        }
    }

    /// Forgets a stream (a mirror that may have missed some of it).
    pub fn forget(&mut self, stream: &Stream) {
        if let Some(log) = self.streams.remove(stream) {
            self.uncount(&log);
        }
    }

    /// Whether a recovery of `stream` from `since` (or its position, for
    /// `None`) can be answered here; a mirror that cannot asks Redis.
    pub fn covers(&self, stream: &Stream, since: Option<Position>) -> bool {
        if !self.mirror {
            return true;
        }
        let Some(log) = self.streams.get(stream) else {
            return false;
        };
        let Some(since) = since else {
            return true;
        };
        // A position past the mirror's is checked in the shared history:
        // the mirror may lag, or the history may have gone back.
        log.local
            || log.unwritten_for(since)
            || (log.epoch == since.epoch
                && (since.offset == log.last
                    || (since.offset < log.last
                        && log
                            .events
                            .front()
                            .is_some_and(|oldest| oldest.offset <= since.offset + 1))))
    }

    /// The events kept after `position`, if the history holds all of them
    /// in that epoch (none, if `position` is at or after the last).
    pub fn kept_after(&self, stream: &Stream, position: Position) -> Option<Vec<Kept>> {
        let log = self.streams.get(stream)?;
        if log.unwritten_for(position) {
            return Some(Vec::new());
        }
        if log.epoch != position.epoch {
            return None;
        }
        if position.offset >= log.last {
            return Some(Vec::new());
        }
        let oldest = log.events.front()?;
        (oldest.offset <= position.offset + 1).then(|| {
            log.events
                .iter()
                .filter(|event| event.offset > position.offset)
                .cloned()
                .collect()
        })
    }

    /// The events of `stream` after `since`, or why they cannot be had.
    pub fn since(&mut self, stream: &Stream, since: Position, now: Instant) -> Recovery {
        self.trim(now);
        let max_replay = self.limits.max_replay;
        // A mirror answers only from what it holds of Redis's epochs (a
        // local log is its own, and the only one).
        let ask_redis = self.mirror && self.streams.get(stream).is_none_or(|log| !log.local);
        if ask_redis
            && self
                .streams
                .get(stream)
                .is_some_and(|log| log.epoch == since.epoch && since.offset > log.last)
        {
            return Recovery::Elsewhere;
        }
        if ask_redis {
            return match self.kept_after(stream, since) {
                Some(events) if events.len() > max_replay => {
                    let position = self.known(stream).unwrap_or(since);
                    Recovery::Discontinuity {
                        reason: Discontinuity::TooMany,
                        position,
                    }
                }
                Some(events) => Recovery::Replay(events),
                None => Recovery::Elsewhere,
            };
        }
        let log = self.log(stream);
        let position = log.position();
        let gap = |reason| Recovery::Discontinuity { reason, position };
        if since.epoch != log.epoch || since.offset > log.last {
            return gap(Discontinuity::EpochChanged);
        }
        let missed = log.last - since.offset;
        if missed == 0 {
            return Recovery::Replay(Vec::new());
        }
        if missed > max_replay as u64 {
            return gap(Discontinuity::TooMany);
        }
        match log.events.front() {
            Some(oldest) if oldest.offset <= since.offset + 1 => {}
            _ => return gap(Discontinuity::TooOld),
        }
        let skip = log.events.len() - missed as usize;
        Recovery::Replay(log.events.iter().skip(skip).cloned().collect())
    }

    /// How many events are kept, in how many bytes of frames.
    #[cfg(test)]
    fn size(&self) -> (usize, usize) {
        (self.events, self.bytes - self.events * OVERHEAD_PER_EVENT)
    }

    fn log(&mut self, stream: &Stream) -> &mut Log {
        self.streams
            .entry(stream.clone())
            .or_insert_with(Log::local)
    }

    /// Puts `log` in place of the stream's, uncounting what it held.
    fn replace(&mut self, stream: &Stream, log: Log) {
        self.blind.clear(stream);
        if let Some(old) = self.streams.insert(stream.clone(), log) {
            self.uncount(&old);
        }
    }

    /// Takes a removed log's events off the counts (their records in
    /// `written` go stale, swept by `trim`).
    fn uncount(&mut self, log: &Log) {
        self.events -= log.events.len();
        self.bytes -= log
            .events
            .iter()
            .map(|event| event.frame.len() + OVERHEAD_PER_EVENT)
            .sum::<usize>();
    }

    /// Drops the oldest events while they are too old or too many bytes.
    fn trim(&mut self, now: Instant) {
        while let Some(oldest) = self.written.front() {
            let too_old = now.duration_since(oldest.at) > self.limits.max_age;
            if !too_old && self.bytes <= self.limits.max_bytes {
                break;
            }
            if let Some(oldest) = self.written.pop_front() {
                self.drop_if_kept(&oldest);
            }
        }
        // Stale records (events already dropped for the per-stream bound)
        // outnumber the kept ones: sweep them.
        if self.written.len() > 2 * self.events + 64 {
            let streams = &self.streams;
            self.written.retain(|record| {
                streams
                    .get(&record.stream)
                    .is_some_and(|log| record.is_kept_in(log))
            });
        }
    }

    /// Drops the event `record` names from its stream, unless it is gone
    /// already.
    fn drop_if_kept(&mut self, record: &Written) {
        if let Some(log) = self.streams.get_mut(&record.stream)
            && log.epoch == record.position.epoch
            && log
                .events
                .front()
                .is_some_and(|front| front.offset == record.position.offset)
        {
            log.events.pop_front();
            self.events -= 1;
            self.bytes -= record.bytes;
        }
    }

    /// Before a step that may add streams, at the limit of streams: forgets
    /// the streams that hold no events,
    /// then, while still over, those whose kept events are the oldest;
    /// never everyone's, which every tab reads, nor any stream that
    /// `has_readers` here (their position is needed to tell their readers
    /// of a gap; their events still go by age and bytes). Room is made for
    /// a tenth of the limit at once, so this runs once per that many new
    /// streams, not for each.
    pub fn make_room(&mut self, has_readers: impl Fn(&Stream) -> bool) {
        self.blind.prune(&has_readers);
        let max = self.limits.max_streams;
        if self.streams.len() < self.room_at.max(max) {
            return;
        }
        // Looks again at the limit once room is made; if the streams read
        // here fill it, only a tenth further on: never at every step.
        self.room_at = max;
        self.make_room_now(max, has_readers);
        if self.streams.len() >= max {
            self.room_at = self.streams.len() + max / 10 + 1;
        }
    }

    fn make_room_now(&mut self, max: usize, has_readers: impl Fn(&Stream) -> bool) {
        let keep = max.saturating_sub(max / 10 + 1);
        let pinned = |stream: &Stream| *stream == Stream::Everyone || has_readers(stream);
        self.streams
            .retain(|stream, log| !log.events.is_empty() || pinned(stream));
        let mut index = 0;
        while self.streams.len() > keep && index < self.written.len() {
            let record = &self.written[index];
            index += 1;
            let oldest_kept = !pinned(&record.stream)
                && self
                    .streams
                    .get(&record.stream)
                    .is_some_and(|log| record.is_kept_in(log));
            if !oldest_kept {
                continue;
            }
            // Its other records go stale, skipped and swept by `trim`.
            let stream = record.stream.clone();
            self.forget(&stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::extract::ws::Utf8Bytes;

    use super::*;
    use crate::UserId;

    fn limits() -> HistoryLimits {
        HistoryLimits {
            per_stream: 3,
            max_age: Duration::from_secs(60),
            max_bytes: 100 * OVERHEAD_PER_EVENT,
            max_streams: 10,
            max_replay: 10,
        }
    }

    fn room(name: &str) -> Stream {
        Stream::Room(name.into())
    }

    /// Appends `text` as the frame, making room for its stream first;
    /// returns its position.
    fn append(history: &mut History, stream: &Stream, text: &str, now: Instant) -> Position {
        history.make_room(|_| false);
        let position = history.next_position(stream);
        let event = Kept {
            offset: position.offset,
            id: EventId(rand::random()),
            frame: Utf8Bytes::from(text.to_owned()),
            except: None,
            others: None,
        };
        history.append(stream, position, event, now);
        position
    }

    /// Where `stream` starts, making room for it first.
    fn start(history: &mut History, stream: &Stream) -> Position {
        history.make_room(|_| false);
        history.position(stream)
    }

    fn replayed(recovery: Recovery) -> Vec<String> {
        match recovery {
            Recovery::Replay(events) => events
                .into_iter()
                .map(|event| event.frame.as_str().to_owned())
                .collect(),
            Recovery::Discontinuity { reason, .. } => panic!("{reason:?}"),
            Recovery::Elsewhere => panic!("elsewhere"),
        }
    }

    fn gap(recovery: Recovery) -> (Discontinuity, Position) {
        match recovery {
            Recovery::Discontinuity { reason, position } => (reason, position),
            Recovery::Replay(events) => panic!("replayed {} events", events.len()),
            Recovery::Elsewhere => panic!("elsewhere"),
        }
    }

    #[test]
    fn offsets_grow_by_one_per_stream_and_a_recovery_gets_what_followed() {
        let mut history = History::new(limits());
        let now = Instant::now();
        let red = room("team:red");
        let start = history.position(&red);
        assert_eq!(start.offset, 0);
        let first = append(&mut history, &red, "a", now);
        append(&mut history, &Stream::Everyone, "x", now);
        let second = append(&mut history, &red, "b", now);
        assert_eq!((first.offset, second.offset), (1, 2));
        assert_eq!(first.epoch, start.epoch);
        assert_eq!(history.position(&Stream::Everyone).offset, 1);

        assert_eq!(replayed(history.since(&red, start, now)), ["a", "b"]);
        assert_eq!(replayed(history.since(&red, first, now)), ["b"]);
        assert!(replayed(history.since(&red, second, now)).is_empty());
    }

    #[test]
    fn each_stream_has_an_epoch_of_its_own_and_a_foreign_one_is_a_discontinuity() {
        let mut history = History::new(limits());
        let now = Instant::now();
        let red = history.position(&room("team:red"));
        let blue = history.position(&room("team:blue"));
        assert_ne!(red.epoch, blue.epoch);
        let (reason, position) = gap(history.since(&room("team:red"), blue, now));
        assert_eq!((reason, position), (Discontinuity::EpochChanged, red));
        // A position from the future is no better.
        let ahead = Position {
            epoch: red.epoch,
            offset: 5,
        };
        assert_eq!(
            gap(history.since(&room("team:red"), ahead, now)).0,
            Discontinuity::EpochChanged
        );
    }

    #[test]
    fn a_recovery_from_before_what_is_kept_is_a_discontinuity() {
        let mut history = History::new(limits());
        let now = Instant::now();
        let red = room("team:red");
        let start = history.position(&red);
        let positions: Vec<Position> = ["a", "b", "c", "d"]
            .iter()
            .map(|text| append(&mut history, &red, text, now))
            .collect();
        // Three kept: b, c, d.
        assert_eq!(
            gap(history.since(&red, start, now)),
            (Discontinuity::TooOld, positions[3])
        );
        assert_eq!(
            replayed(history.since(&red, positions[0], now)),
            ["b", "c", "d"]
        );
        assert_eq!(history.size(), (3, 3));
    }

    #[test]
    fn a_recovery_of_more_than_a_replay_holds_is_a_discontinuity() {
        let mut history = History::new(HistoryLimits {
            per_stream: 10,
            max_replay: 2,
            ..limits()
        });
        let now = Instant::now();
        let start = history.position(&Stream::Everyone);
        for text in ["a", "b", "c"] {
            append(&mut history, &Stream::Everyone, text, now);
        }
        assert_eq!(
            gap(history.since(&Stream::Everyone, start, now)).0,
            Discontinuity::TooMany
        );
    }

    #[test]
    fn old_events_and_bytes_over_the_limit_are_dropped_oldest_first() {
        let mut history = History::new(HistoryLimits {
            max_bytes: 10 + 2 * OVERHEAD_PER_EVENT,
            ..limits()
        });
        let now = Instant::now();
        let red = room("team:red");
        let start = history.position(&red);
        let first = append(&mut history, &red, "12345", now);
        append(&mut history, &Stream::Everyone, "12345", now);
        append(&mut history, &Stream::Everyone, "1", now);
        // 11 bytes: red's event, the oldest, is dropped.
        assert_eq!(history.size(), (2, 6));
        assert_eq!(
            gap(history.since(&red, start, now)).0,
            Discontinuity::TooOld
        );
        // Its stream keeps its place.
        assert!(replayed(history.since(&red, first, now)).is_empty());

        let later = now + Duration::from_secs(61);
        let everyone = history.position(&Stream::Everyone);
        append(&mut history, &red, "b", later);
        assert_eq!(history.size(), (1, 1), "the minute-old events are gone");
        assert!(replayed(history.since(&Stream::Everyone, everyone, later)).is_empty());
    }

    #[test]
    fn past_the_number_of_streams_empty_ones_are_forgotten_first() {
        let mut history = History::new(HistoryLimits {
            max_streams: 2,
            ..limits()
        });
        let now = Instant::now();
        let ada = Stream::User(UserId(1));
        let first = append(&mut history, &ada, "a", now);
        let idle = start(&mut history, &Stream::User(UserId(2)));
        start(&mut history, &Stream::User(UserId(3)));
        // User 2's stream, empty, made room; Ada's is intact.
        assert!(replayed(history.since(&ada, first, now)).is_empty());
        assert_eq!(
            gap(history.since(&Stream::User(UserId(2)), idle, now)).0,
            Discontinuity::EpochChanged
        );
    }

    #[test]
    fn past_the_number_of_streams_the_oldest_go_but_never_everyones() {
        let mut history = History::new(HistoryLimits {
            max_streams: 3,
            ..limits()
        });
        let now = Instant::now();
        let everyone = append(&mut history, &Stream::Everyone, "e", now);
        let (ada, bob) = (Stream::User(UserId(1)), Stream::User(UserId(2)));
        let first = append(&mut history, &ada, "a", now);
        append(&mut history, &bob, "b", now);
        start(&mut history, &Stream::User(UserId(3)));
        // Everyone's event is the oldest, but Ada's stream went.
        assert!(replayed(history.since(&Stream::Everyone, everyone, now)).is_empty());
        assert_eq!(
            gap(history.since(&ada, first, now)).0,
            Discontinuity::EpochChanged
        );
        assert_eq!(history.size().0, 2, "everyone's and Bob's events");
    }

    fn kept(offset: u64) -> Kept {
        kept_as(offset, offset)
    }

    fn kept_as(offset: u64, id: u64) -> Kept {
        Kept {
            offset,
            id: EventId(id),
            frame: Utf8Bytes::from(format!("e{offset}")),
            except: None,
            others: None,
        }
    }

    #[test]
    fn past_the_number_of_streams_those_read_here_are_never_forgotten() {
        let mut history = History::mirror(HistoryLimits {
            max_streams: 3,
            ..limits()
        });
        let now = Instant::now();
        let at = |offset| Position {
            epoch: Epoch(1),
            offset,
        };
        let read = room("team:read");
        history.apply(&read, at(1), kept(1), now);
        for other in ["a", "b", "c", "d"] {
            history.make_room(|stream| *stream == read);
            history.apply(&room(other), at(1), kept(1), now);
        }
        assert_eq!(history.known(&read), Some(at(1)), "the stream read here");
        assert_eq!(history.known(&room("a")), None, "the oldest of the others");
    }

    #[test]
    fn streams_read_here_past_the_limit_are_not_scanned_at_every_step() {
        let mut history = History::mirror(HistoryLimits {
            max_streams: 100,
            ..limits()
        });
        let now = Instant::now();
        let at = |offset| Position {
            epoch: Epoch(1),
            offset,
        };
        let asked = std::cell::Cell::new(0_u64);
        for n in 0..1000 {
            // Every stream has readers here: none may go.
            history.make_room(|_| {
                asked.set(asked.get() + 1);
                true
            });
            history.apply(&room(&format!("r{n}")), at(1), kept(1), now);
        }
        assert_eq!(history.streams.len(), 1000, "none forgotten");
        // Looking at every step past the limit would ask about half a
        // million times; a tenth of the limit further each time, a tenth
        // of that.
        assert!(asked.get() < 150_000, "{} questions", asked.get());
    }

    #[test]
    fn an_offset_given_again_to_another_event_is_a_history_that_went_back() {
        let mut mirror = History::mirror(limits());
        let now = Instant::now();
        let red = room("team:red");
        let at = |offset| Position {
            epoch: Epoch(1),
            offset,
        };
        for offset in 1..=3 {
            mirror.apply(&red, at(offset), kept(offset), now);
        }
        assert_eq!(mirror.apply(&red, at(3), kept(3), now), Applied::Duplicate);
        assert_eq!(mirror.apply(&red, at(2), kept(2), now), Applied::Duplicate);
        assert_eq!(
            mirror.apply(&red, at(2), kept_as(2, 99), now),
            Applied::Rewound
        );
        assert_eq!(
            mirror.apply(&red, at(3), kept_as(3, 98), now),
            Applied::Rewound
        );
        assert_eq!(mirror.known(&red), Some(at(3)), "left as it was");
    }

    #[cfg(feature = "redis")]
    #[test]
    fn a_history_tells_which_event_it_gave_an_offset() {
        let mut mirror = History::mirror(limits());
        let now = Instant::now();
        let red = room("team:red");
        let at = Position::at;
        for offset in 1..=3 {
            mirror.apply(&red, at(1, offset), kept(offset), now);
        }
        assert!(mirror.gave(&red, at(1, 2), kept(2).id));
        assert!(!mirror.gave(&red, at(1, 2), kept_as(2, 99).id));
        assert!(!mirror.gave(&red, at(1, 3), kept_as(3, 98).id), "the last");
        // What it cannot tell (another epoch, another stream) it does not
        // hold against the event.
        assert!(mirror.gave(&red, at(2, 2), kept_as(2, 99).id));
        assert!(mirror.gave(&room("team:blue"), at(1, 2), kept_as(2, 99).id));
    }

    #[test]
    fn a_mirror_says_what_its_readers_may_have_missed() {
        let mut mirror = History::mirror(limits());
        let now = Instant::now();
        let red = room("team:red");
        let at = Position::at;
        assert_eq!(mirror.apply(&red, at(1, 3), kept(3), now), Applied::New);
        assert_eq!(mirror.apply(&red, at(1, 4), kept(4), now), Applied::InOrder);
        assert_eq!(
            mirror.apply(&red, at(1, 4), kept(4), now),
            Applied::Duplicate
        );
        assert_eq!(
            mirror.apply(&red, at(1, 6), kept(6), now),
            Applied::Missed(Discontinuity::TooOld)
        );
        // Another epoch: from its start nothing was missed; later, some was.
        assert_eq!(mirror.apply(&red, at(2, 1), kept(1), now), Applied::New);
        assert_eq!(
            mirror.apply(&red, at(3, 7), kept(7), now),
            Applied::Missed(Discontinuity::EpochChanged)
        );
        // The mirror holds from 7 on: a recovery from before asks Redis.
        assert!(matches!(
            mirror.since(&red, at(3, 5), now),
            Recovery::Elsewhere
        ));
        assert!(replayed(mirror.since(&red, at(3, 7), now)).is_empty());
    }

    #[test]
    fn a_blind_streams_first_event_heard_tells_its_readers_they_may_have_missed_some() {
        let mut mirror = History::mirror(limits());
        let now = Instant::now();
        let at = |offset| Position {
            epoch: Epoch(1),
            offset,
        };
        let (red, blue, green) = (room("team:red"), room("team:blue"), room("team:green"));
        mirror.read_blind(&red, Blindness::Unheard);
        assert_eq!(
            mirror.apply(&red, at(4), kept(4), now),
            Applied::Missed(Discontinuity::TooOld)
        );
        assert_eq!(mirror.apply(&red, at(5), kept(5), now), Applied::InOrder);
        // Not blind, or only until its shard is heard: its first event is
        // only new.
        assert_eq!(mirror.apply(&blue, at(4), kept(4), now), Applied::New);
        mirror.read_blind(&green, Blindness::Starting);
        assert_eq!(mirror.apply(&green, at(4), kept(4), now), Applied::New);
        // Learning where a blind stream stands ends its blindness too, and
        // reveals it if it was unheard: its readers are told then.
        assert!(
            mirror.take_revealed().is_empty(),
            "an event tells by itself"
        );
        let gray = room("team:gray");
        mirror.read_blind(&gray, Blindness::Unheard);
        mirror.learn(&gray, at(3), None);
        assert_eq!(mirror.blindness(&gray), None);
        assert_eq!(mirror.take_revealed(), [(gray.clone(), at(3))]);
        assert_eq!(mirror.apply(&gray, at(4), kept(4), now), Applied::InOrder);
        let white = room("team:white");
        mirror.read_blind(&white, Blindness::Starting);
        mirror.learn(&white, at(3), None);
        assert!(
            mirror.take_revealed().is_empty(),
            "nothing missed while starting"
        );
        // A stream the mirror knows is never blind.
        mirror.read_blind(&blue, Blindness::Unheard);
        assert_eq!(mirror.blindness(&blue), None);
    }

    #[test]
    fn a_stream_written_apart_in_a_mirror_waits_for_its_reset_whatever_arrives() {
        let mut mirror = History::mirror(limits());
        let now = Instant::now();
        let red = room("team:red");
        let redis = Position {
            epoch: Epoch(1),
            offset: 1,
        };
        mirror.apply(&red, redis, kept(1), now);
        let local = append(&mut mirror, &red, "here", now);
        assert_ne!(local.epoch, redis.epoch, "an epoch of its own");
        // Redis's next event replaces the local log, not the need to reset.
        mirror.apply(&red, Position { offset: 2, ..redis }, kept(2), now);
        assert_eq!(mirror.take_diverged(), [(red.clone(), None)]);
        assert!(mirror.take_diverged().is_empty());
        // Learning a position is no writing.
        mirror.learn(&room("team:blue"), redis, None);
        assert!(!mirror.has_diverged());
    }

    #[test]
    fn dropping_many_events_for_the_per_stream_bound_keeps_the_order_queue_small() {
        let mut history = History::new(HistoryLimits {
            per_stream: 1,
            max_bytes: usize::MAX,
            ..limits()
        });
        let now = Instant::now();
        for _ in 0..10_000 {
            append(&mut history, &Stream::Everyone, "x", now);
        }
        assert_eq!(history.size(), (1, 1));
        assert!(history.written.len() <= 2 + 64, "{}", history.written.len());
    }
}
