//! One stream's log in this process's history (`history.rs`): its epoch,
//! the offset of its last event, and its latest events, oldest first. A
//! plain record; the history keeps one per stream it knows, and the bounds.

use std::collections::VecDeque;

use super::super::registry::Kept;
use crate::stream::{Epoch, EventId, Position};

pub(super) struct Log {
    pub epoch: Epoch,
    /// The offset of the last event appended (0: none yet).
    pub last: u64,
    /// The id of that event, when this history saw it: a history that went
    /// back and gave its offset to another event is told by it.
    pub last_id: Option<EventId>,
    pub events: VecDeque<Kept>,
    /// Whether this process gave the epoch (always, alone; in a mirror,
    /// only for streams written while Redis was unreachable).
    pub local: bool,
}

impl Log {
    /// A log in a new epoch of this process's own, nothing written yet.
    pub fn local() -> Self {
        Self {
            epoch: Epoch::random(),
            last: 0,
            last_id: None,
            events: VecDeque::new(),
            local: true,
        }
    }

    /// A mirror's log of a stream of the shared history that stands at
    /// `position` (with the event of `last_id` there, when known), none of
    /// its events held yet.
    pub fn shared(position: Position, last_id: Option<EventId>) -> Self {
        Self {
            epoch: position.epoch,
            last: position.offset,
            last_id,
            events: VecDeque::new(),
            local: false,
        }
    }

    pub fn position(&self) -> Position {
        Position {
            epoch: self.epoch,
            offset: self.last,
        }
    }

    /// Whether a reader at `position` misses nothing of this stream, known
    /// unwritten in the shared history (and unwritten still, or the mirror
    /// would have heard): the reader saw it unwritten too, no earlier than
    /// the mirror (before, an epoch may have come and gone).
    pub fn unwritten_for(&self, position: Position) -> bool {
        if position.offset != 0 || self.last != 0 {
            return false;
        }
        match (
            self.epoch.unwritten_since(),
            position.epoch.unwritten_since(),
        ) {
            (Some(known), Some(seen)) => known <= seen,
            _ => false,
        }
    }

    /// Whether the event at `offset` was `id`, as far as this log can tell
    /// (it tells only the events it still holds, and its last).
    pub fn gave(&self, offset: u64, id: EventId) -> bool {
        if offset == self.last
            && let Some(last) = self.last_id
        {
            return last == id;
        }
        let Some(oldest) = self.events.front() else {
            return true;
        };
        let Some(index) = offset.checked_sub(oldest.offset) else {
            return true;
        };
        self.events
            .get(usize::try_from(index).unwrap_or(usize::MAX))
            .is_none_or(|kept| kept.id == id)
    }
}
