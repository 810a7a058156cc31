//! What a tab that comes back gets of a stream it asks to recover: the
//! events that followed its position, or a `discontinuity` when they
//! cannot be had. Plain functions on the history and what was read from
//! the shared one; [`super::Streams`] calls them under its locks.
//!
//! A tab says how far it had read: for everyone's stream and its user's in
//! the query of its upgrade ([`crate::protocol::Resume`]), for a room in
//! its `join`. What followed is replayed before anything live, under the
//! same rules as live delivery (a user's stream only to that user's
//! connections, a room's only once its join rule agreed), without the
//! events the tab itself caused and was left out of (`except_caller`,
//! known by its [`super::super::TabMark`]), in one place of the queue so
//! that the slow-client rule does not cut it short. When the events cannot
//! be had (too old, too many, another epoch, a history that went back),
//! the tab gets a `discontinuity` frame instead and fetches again what
//! depends on the stream.
//!
//! With a shared history, most recoveries are served from this process's
//! mirror. One that it cannot serve (the tab comes from a process that
//! died, or was away longer than the mirror reaches) is read from the
//! shared history first, then joined, under the locks, with what the
//! mirror received since. Events that the read brought and that are still
//! on their way here live are left out by position, where the connection
//! writes them (`registry::Reached`).

use std::time::Instant;

use super::{
    super::{
        broker::Fetched,
        registry::{Kept, Maps},
    },
    history::{History, Recovery},
};
use crate::{
    ConnectionId,
    stream::{Discontinuity, Position, Stream},
};

/// What a connection gets of a stream it asked to recover.
pub(super) enum Answer {
    /// These events, oldest first; then the stream stands at `to`.
    Replay { events: Vec<Kept>, to: Position },
    /// It cannot have them: it fetches again, and goes on from `position`.
    Gap {
        reason: Discontinuity,
        position: Position,
    },
}

/// What follows `since` in `stream`: from this process's history, or,
/// where a mirror does not hold it, from what was read in the shared
/// history followed by what the mirror received since.
pub(super) fn recover(
    history: &mut History,
    stream: &Stream,
    since: Position,
    fetched: Option<&Fetched>,
    now: Instant,
) -> Answer {
    let replay = |events: Vec<Kept>, to: Position| {
        let to = events.last().map_or(to, |last| Position {
            epoch: to.epoch,
            offset: last.offset,
        });
        Answer::Replay { events, to }
    };
    match history.since(stream, since, now) {
        Recovery::Replay(events) => replay(events, since),
        Recovery::Discontinuity { reason, position } => Answer::Gap { reason, position },
        Recovery::Elsewhere => {
            let Some(fetched) = fetched else {
                // The shared history could not be asked: the tab fetches
                // again, and goes on from where this process is (or from
                // where it was).
                let position = history.known(stream).unwrap_or(since);
                return Answer::Gap {
                    reason: reason_between(since, position),
                    position,
                };
            };
            history.learn(stream, fetched.position, fetched.last_id);
            if fetched.went_back {
                // This process saw the stream further on before the read
                // (`Fetched::seen_from`): not a tab's word alone (it may be
                // forged), the history went back.
                history.went_back(stream, fetched.position.epoch);
            }
            let events = match &fetched.events {
                Ok(events) => events.clone(),
                // Gone, or (a tab ahead of the history) went back: the
                // `discontinuity` moves the tab back to where the history
                // is, so that the offsets it gives again are not skipped.
                Err(reason) => {
                    return Answer::Gap {
                        reason: *reason,
                        position: fetched.position,
                    };
                }
            };
            match history.kept_after(stream, fetched.position) {
                Some(received) => {
                    let mut events = events;
                    events.extend(received);
                    replay(events, fetched.position)
                }
                // The mirror moved on (the stream was reset, say) or has a
                // hole: nothing to stitch the read to.
                None => {
                    let position = history.known(stream).unwrap_or(fetched.position);
                    Answer::Gap {
                        reason: reason_between(fetched.position, position),
                        position,
                    }
                }
            }
        }
    }
}

/// Why a tab at `from` cannot go on to `to` without fetching again.
fn reason_between(from: Position, to: Position) -> Discontinuity {
    if from.epoch == to.epoch {
        Discontinuity::TooOld
    } else {
        Discontinuity::EpochChanged
    }
}

/// Where `stream` stands for a tab that starts following it now: known
/// here, or read in the shared history (the mirror then follows it). Alone,
/// a stream not written yet starts here; a mirror that could not read the
/// shared history has none to give (the tab then counts what it may miss
/// as missed).
pub(super) fn position_here(
    history: &mut History,
    stream: &Stream,
    fetched: Option<Fetched>,
) -> Option<Position> {
    if let Some(position) = history.known(stream) {
        return Some(position);
    }
    if let Some(fetched) = fetched {
        history.learn(stream, fetched.position, fetched.last_id);
        return Some(fetched.position);
    }
    (!history.is_mirror()).then(|| history.position(stream))
}

/// Queues an answer for connection `id`. `false` if its queue had no room.
pub(super) fn queue_answer(
    history: &History,
    maps: &Maps,
    id: ConnectionId,
    stream: &Stream,
    answer: Answer,
) -> bool {
    match answer {
        Answer::Replay { events, to } => {
            // Alone, nothing can arrive twice: an empty replay need not be
            // queued.
            if events.is_empty() && !history.is_mirror() {
                return true;
            }
            maps.queue_replay(id, stream, &events, to)
        }
        Answer::Gap { reason, position } => {
            tracing::debug!(connection = %id, %stream, ?reason, "cannot recover");
            maps.queue_discontinuity(id, stream, reason, position)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        server::config::HistoryLimits,
        stream::{Epoch, EventId},
    };

    fn mirror() -> History {
        History::mirror(HistoryLimits {
            per_stream: 10,
            max_age: Duration::from_secs(60),
            max_bytes: usize::MAX,
            max_streams: 10,
            max_replay: 10,
        })
    }

    fn at(offset: u64) -> Position {
        Position {
            epoch: Epoch(1),
            offset,
        }
    }

    /// What the shared history answers a tab at 12 when it went back to 7.
    fn went_back_to_seven() -> Fetched {
        Fetched {
            position: at(7),
            events: Err(Discontinuity::EpochChanged),
            went_back: true,
            last_id: None,
        }
    }

    #[test]
    fn a_tab_ahead_of_a_history_that_went_back_resets_it_only_if_this_process_saw_it_too() {
        let red = Stream::Room("team:red".into());
        let now = Instant::now();

        // Alone with the tab's word: the tab moves back, nothing resets.
        let mut history = mirror();
        let read = went_back_to_seven().seen_from(history.known(&red));
        let answer = recover(&mut history, &red, at(12), Some(&read), now);
        assert!(matches!(answer, Answer::Gap { position, .. } if position == at(7)));
        assert!(history.take_diverged().is_empty(), "a tab's word alone");

        // This process saw it at 10: the history did go back.
        let mut history = mirror();
        let event = Kept {
            offset: 10,
            id: EventId(10),
            frame: "e10".into(),
            except: None,
            others: None,
        };
        history.apply(&red, at(10), event, now);
        let read = went_back_to_seven().seen_from(history.known(&red));
        let answer = recover(&mut history, &red, at(12), Some(&read), now);
        assert!(matches!(answer, Answer::Gap { position, .. } if position == at(7)));
        assert_eq!(history.take_diverged(), [(red, Some(Epoch(1)))]);
    }
}
