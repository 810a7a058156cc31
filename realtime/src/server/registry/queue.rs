//! A connection's outgoing queue, bounded twice: in items by its channel
//! ([`super::super::HubConfig::queue_capacity`]), and in the bytes of the
//! frames it holds ([`super::super::HubConfig::queue_max_bytes`]). The
//! registry counts what it pushes; the connection's task, what it takes.
//!
//! Bytes are counted whether a frame is the connection's own or shared
//! with every other queue: a socket that stops reading keeps the shared
//! frames alive as long as its own. Frames under [`SMALL_FRAME_BYTES`] are
//! not counted: the item bound alone holds them to 256 KiB with the
//! defaults, and most events are that small, so queueing them costs no
//! shared counter (measured: counting every frame made the fan-out 13 %
//! slower). A replay is not counted either: it is what the tab missed,
//! bounded by the history's limits, and is never cut short by the
//! slow-client rule.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use tokio::sync::mpsc::{self, error::TrySendError};

use super::Outgoing;

/// Frames this small are bounded by the queue's item count alone.
pub(crate) const SMALL_FRAME_BYTES: usize = 1024;

/// Why an item was not queued.
pub(crate) enum Unqueued {
    /// The queue holds as many items or bytes as it may.
    Full,
    /// The connection's task is gone.
    Closed,
}

/// A connection's queue, as the registry pushes to it.
pub(crate) struct QueueSender {
    items: mpsc::Sender<Outgoing>,
    bytes: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// A connection's queue, as its task takes from it.
pub(crate) struct QueueReceiver {
    items: mpsc::Receiver<Outgoing>,
    bytes: Arc<AtomicUsize>,
}

/// A queue of at most `capacity` items and `max_bytes` bytes of frames.
pub(crate) fn queue(capacity: usize, max_bytes: usize) -> (QueueSender, QueueReceiver) {
    let (sender, receiver) = mpsc::channel(capacity.max(1));
    let bytes = Arc::new(AtomicUsize::new(0));
    (
        QueueSender {
            items: sender,
            bytes: Arc::clone(&bytes),
            max_bytes,
        },
        QueueReceiver {
            items: receiver,
            bytes,
        },
    )
}

impl QueueSender {
    /// Queues `item`, never waiting.
    pub fn try_send(&self, item: Outgoing) -> Result<(), Unqueued> {
        let size = item.counted_bytes();
        if size > 0 {
            // Added before the send, taken back if it fails: the task
            // never takes more than was added. An empty queue takes any
            // one item.
            let held = self.bytes.fetch_add(size, Ordering::Relaxed);
            if held > 0 && held + size > self.max_bytes {
                self.bytes.fetch_sub(size, Ordering::Relaxed);
                return Err(Unqueued::Full);
            }
        }
        self.items.try_send(item).map_err(|error| {
            if size > 0 {
                self.bytes.fetch_sub(size, Ordering::Relaxed);
            }
            match error {
                TrySendError::Full(_) => Unqueued::Full,
                TrySendError::Closed(_) => Unqueued::Closed,
            }
        })
    }
}

impl QueueReceiver {
    /// Waits for items, and appends up to `limit` of them to `batch`:
    /// their number, 0 once the queue is closed and empty.
    pub async fn recv_many(&mut self, batch: &mut Vec<Outgoing>, limit: usize) -> usize {
        let start = batch.len();
        let received = self.items.recv_many(batch, limit).await;
        let taken: usize = batch[start..].iter().map(Outgoing::counted_bytes).sum();
        if taken > 0 {
            self.bytes.fetch_sub(taken, Ordering::Relaxed);
        }
        received
    }

    /// Takes one item, if the queue holds one.
    #[cfg(test)]
    pub fn try_recv(&mut self) -> Option<Outgoing> {
        let item = self.items.try_recv().ok()?;
        self.bytes
            .fetch_sub(item.counted_bytes(), Ordering::Relaxed);
        Some(item)
    }

    /// The bytes of frames the queue holds.
    #[cfg(test)]
    pub fn held_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(bytes: usize) -> Outgoing {
        Outgoing::frame("x".repeat(bytes).into())
    }

    #[tokio::test]
    async fn a_queue_takes_no_more_bytes_than_it_may_and_counts_what_leaves() {
        let (sender, mut receiver) = queue(100, 5000);
        assert!(sender.try_send(frame(3000)).is_ok());
        assert!(matches!(sender.try_send(frame(3000)), Err(Unqueued::Full)));
        assert!(sender.try_send(frame(2000)).is_ok());
        assert_eq!(receiver.held_bytes(), 5000);

        let mut batch = Vec::new();
        assert_eq!(receiver.recv_many(&mut batch, 1).await, 1);
        assert_eq!(receiver.held_bytes(), 2000);
        assert!(sender.try_send(frame(3000)).is_ok());
    }

    #[test]
    fn small_frames_are_bounded_by_the_item_count_alone() {
        let (sender, receiver) = queue(4, 1500);
        for _ in 0..4 {
            assert!(sender.try_send(frame(SMALL_FRAME_BYTES - 1)).is_ok());
        }
        assert_eq!(receiver.held_bytes(), 0);
        assert!(matches!(sender.try_send(frame(1)), Err(Unqueued::Full)));
    }

    #[test]
    fn a_queue_takes_no_more_items_than_it_may() {
        let (sender, receiver) = queue(2, 100_000);
        assert!(sender.try_send(frame(2000)).is_ok());
        assert!(sender.try_send(frame(2000)).is_ok());
        assert!(matches!(sender.try_send(frame(2000)), Err(Unqueued::Full)));
        assert_eq!(
            receiver.held_bytes(),
            4000,
            "the refused item is not counted"
        );
    }

    #[test]
    fn an_empty_queue_takes_one_item_larger_than_its_bytes() {
        let (sender, receiver) = queue(100, 1000);
        assert!(sender.try_send(frame(5000)).is_ok());
        assert!(matches!(sender.try_send(frame(2000)), Err(Unqueued::Full)));
        assert_eq!(receiver.held_bytes(), 5000);
    }
}
