//! The backplane's shared history, as Redis keeps it: a log of the last
//! events of each stream, in an epoch of its own. [`Logs`] places events,
//! reads them as Redis's `READ` answers, and resets streams; the caller
//! holds the backplane's lock and tells it the time.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use super::super::{Durable, Fetched, StoredEvent};
use crate::stream::{Discontinuity, Epoch, EventId, Position, Stream};

/// Events each stream keeps, and the most one recovery reads.
const PER_STREAM: usize = 1000;

/// Every stream's log.
#[derive(Clone, Default)]
pub(super) struct Logs(HashMap<Stream, Log>);

#[derive(Clone)]
struct Log {
    epoch: Epoch,
    last: u64,
    events: VecDeque<StoredEvent>,
    /// When the epoch was born by placing an event (not when reset): a
    /// reader that saw the stream unwritten before then has all of it.
    born: Option<u64>,
}

impl Log {
    /// A stream's log in a new epoch, empty.
    fn new(born: Option<u64>) -> Self {
        Self {
            epoch: Epoch::random(),
            last: 0,
            events: VecDeque::new(),
            born,
        }
    }

    /// The id of the event at `offset`, if the log still holds it.
    fn id_at(&self, offset: u64) -> Option<EventId> {
        self.events
            .iter()
            .rev()
            .find(|entry| entry.offset == offset)
            .map(|entry| entry.id)
    }
}

impl Logs {
    /// Places `event` in each of its streams, at `now`: its position in
    /// each, in the order of its streams.
    pub fn place(&mut self, event: &Durable, now: u64) -> Vec<(Stream, Position)> {
        let positions: Vec<(Stream, Position)> = event
            .streams
            .iter()
            .map(|stream| {
                let log = self
                    .0
                    .entry(stream.clone())
                    .or_insert_with(|| Log::new(Some(now)));
                log.last += 1;
                let position = Position {
                    epoch: log.epoch,
                    offset: log.last,
                };
                (stream.clone(), position)
            })
            .collect();
        let all: Arc<[(Stream, Position)]> = positions.clone().into();
        for (stream, position) in &positions {
            let log = self
                .0
                .entry(stream.clone())
                .or_insert_with(|| Log::new(None));
            log.events.push_back(StoredEvent {
                offset: position.offset,
                id: event.id,
                except: event.except_tab,
                frame: event.frame.clone(),
                all: Arc::clone(&all),
            });
            while log.events.len() > PER_STREAM {
                log.events.pop_front();
            }
        }
        positions
    }

    /// Starts `stream` again in a new epoch, unless `only_in` names an
    /// epoch it is no longer in: where it stands then, if it was reset.
    pub fn reset(&mut self, stream: &Stream, only_in: Option<Epoch>) -> Option<Position> {
        let current = self.0.get(stream).map(|log| log.epoch);
        if only_in.is_some() && current != only_in {
            return None;
        }
        let log = Log::new(None);
        let position = Position {
            epoch: log.epoch,
            offset: 0,
        };
        self.0.insert(stream.clone(), log);
        Some(position)
    }

    /// What Redis's `READ` answers at `now`: where `stream` stands, the
    /// events after `since`, or why they cannot be had, and whether the
    /// stream went back behind `since` (the event there is not
    /// `since_id`).
    pub fn read(
        &self,
        stream: &Stream,
        since: Option<Position>,
        since_id: Option<EventId>,
        now: u64,
    ) -> Fetched {
        let Some(log) = self.0.get(stream) else {
            // Never written: nothing is, by reading it.
            return Fetched {
                position: Position {
                    epoch: Epoch::unwritten_at(now),
                    offset: 0,
                },
                events: Ok(Vec::new()),
                went_back: false,
                last_id: None,
            };
        };
        let position = Position {
            epoch: log.epoch,
            offset: log.last,
        };
        // A reader that saw the stream unwritten has all of an epoch born
        // since (streams never expire here).
        let since = since.map(|since| match since.epoch.unwritten_since() {
            Some(seen) if log.born.is_some_and(|born| born >= seen) => Position {
                epoch: log.epoch,
                offset: 0,
            },
            _ => since,
        });
        let Some(since) = since else {
            return Fetched {
                position,
                events: Ok(Vec::new()),
                went_back: false,
                last_id: log.id_at(log.last),
            };
        };
        let same_epoch = since.epoch == log.epoch;
        let seen_differs = since_id.is_some_and(|id| {
            log.events
                .iter()
                .find(|entry| entry.offset == since.offset)
                .is_some_and(|entry| entry.id != id)
        });
        let went_back = same_epoch && (since.offset > log.last || seen_differs);
        let events = if went_back || !same_epoch || since.offset > log.last {
            Err(Discontinuity::EpochChanged)
        } else if log.last - since.offset > PER_STREAM as u64 {
            Err(Discontinuity::TooMany)
        } else {
            let after: Vec<&StoredEvent> = log
                .events
                .iter()
                .filter(|entry| entry.offset > since.offset)
                .collect();
            if after.len() as u64 == log.last - since.offset {
                Ok(after
                    .into_iter()
                    .map(|entry| entry.replayed(stream, position.epoch))
                    .collect())
            } else {
                Err(Discontinuity::TooOld)
            }
        };
        Fetched {
            position,
            events,
            went_back,
            last_id: log.id_at(log.last),
        }
    }
}
