//! A connection's outgoing queue, bounded twice: in items
//! ([`super::super::HubConfig::queue_capacity`]), and in the bytes of the
//! frames it holds ([`super::super::HubConfig::queue_max_bytes`]). The
//! registry pushes, never waiting; the connection's task takes what is
//! there in one go.
//!
//! Bytes are counted whether a frame is the connection's own or shared
//! with every other queue: a socket that stops reading keeps the shared
//! frames alive as long as its own. Frames under [`SMALL_FRAME_BYTES`] are
//! not counted: the item bound alone holds them to 256 KiB with the
//! defaults, and most events are that small. Replays are counted apart,
//! every frame of them: what a tab missed is never cut short by the
//! slow-client rule, but a replay the tab asked for
//! ([`QueueHandle::try_send_replay`]) is refused when the replays the
//! queue holds would pass the same number of bytes (read from the shared
//! history, a replay's frames are its own, not shared with anyone). A
//! catch-up's replay, whose frames the history shares, is counted but
//! never refused.
//!
//! It is a `VecDeque` under a lock rather than a tokio channel, for
//! memory: an idle connection's queue is its [`Shared`] (about 100 bytes)
//! and the room of the few items it last held.

use std::{
    collections::VecDeque,
    future::poll_fn,
    sync::Arc,
    task::{Poll, Waker, ready},
};

use parking_lot::Mutex;
use tokio::task::coop;

use super::Outgoing;

/// Frames this small are bounded by the queue's item count alone.
pub(crate) const SMALL_FRAME_BYTES: usize = 1024;

/// A queue that held more items than this gives their room back once
/// emptied: a burst's memory is not kept by an idle connection.
const KEPT_CAPACITY: usize = 32;

/// When a waiting task wants to be woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// At the first item.
    Any,
    /// Once the queue holds a quarter of its room, in items or in counted
    /// bytes: a task that gathers items for a while (`write_interval`)
    /// takes them while three quarters of the room are left for a burst.
    QuarterFull,
}

/// Why an item was not queued.
pub(crate) enum Unqueued {
    /// The queue holds as many items or bytes as it may (for a replay: as
    /// many bytes of replays).
    Full,
    /// The connection's task is gone.
    Closed,
}

/// What both ends share. One small allocation per connection where a
/// tokio channel took about 1 KiB before anything was queued (two
/// cache-padded halves, a semaphore and a first block of 32 slots): the
/// lock is held only to push one item or to take a batch.
struct Shared {
    state: Mutex<State>,
    capacity: usize,
    max_bytes: usize,
}

struct State {
    items: VecDeque<Outgoing>,
    /// The counted bytes of the frames in `items` (see the module's doc).
    bytes: usize,
    /// The bytes of the replays in `items`.
    replay_bytes: usize,
    /// The task waiting for items, if it is waiting, and when it wants to
    /// be woken.
    waiting: Option<Waker>,
    wanted: Wanted,
    /// Whether the registry's end is dropped: nothing more will come.
    sender_gone: bool,
    /// Whether the task's end is dropped: nothing more is taken.
    receiver_gone: bool,
}

/// A connection's queue, as the registry pushes to it. Dropping it closes
/// the queue: the task takes what is left, and ends.
pub(crate) struct QueueSender {
    handle: QueueHandle,
}

/// Pushes to a connection's queue, as its [`QueueSender`] does, but does
/// not close it when dropped: what the registry's lists for the walks hold
/// besides the sender (`roster.rs`).
#[derive(Clone)]
pub(crate) struct QueueHandle {
    shared: Arc<Shared>,
}

/// A connection's queue, as its task takes from it.
pub(crate) struct QueueReceiver {
    shared: Arc<Shared>,
}

/// A queue of at most `capacity` items and `max_bytes` bytes of frames.
pub(crate) fn queue(capacity: usize, max_bytes: usize) -> (QueueSender, QueueReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            bytes: 0,
            replay_bytes: 0,
            waiting: None,
            wanted: Wanted::Any,
            sender_gone: false,
            receiver_gone: false,
        }),
        capacity: capacity.max(1),
        max_bytes,
    });
    (
        QueueSender {
            handle: QueueHandle {
                shared: Arc::clone(&shared),
            },
        },
        QueueReceiver { shared },
    )
}

impl Shared {
    /// Whether the queue holds what its waiting task wants.
    fn is_wanted(&self, state: &State) -> bool {
        match state.wanted {
            Wanted::Any => !state.items.is_empty(),
            // Never an empty queue, whatever the bounds (`max_bytes` may be 0).
            Wanted::QuarterFull => {
                state.items.len() * 4 >= self.capacity
                    || (state.bytes > 0 && state.bytes * 4 >= self.max_bytes)
            }
        }
    }
}

impl QueueSender {
    /// Queues `item`, never waiting.
    pub fn try_send(&self, item: Outgoing) -> Result<(), Unqueued> {
        self.handle.try_send(item)
    }

    /// Queues a replay, never waiting, within the queue's bound on
    /// replays (see [`QueueHandle::try_send_replay`]).
    pub fn try_send_replay(&self, replay: Outgoing) -> Result<(), Unqueued> {
        self.handle.try_send_replay(replay)
    }

    /// A handle that pushes to the same queue.
    pub fn handle(&self) -> QueueHandle {
        self.handle.clone()
    }
}

impl QueueHandle {
    /// Queues `item`, never waiting.
    pub fn try_send(&self, item: Outgoing) -> Result<(), Unqueued> {
        self.push(item, false)
    }

    /// Queues a replay, never waiting, if the replays the queue holds stay
    /// within its bytes with it (a replay larger than that, alone, does
    /// not fit either): the caller tells the tab it cannot have them
    /// instead.
    pub fn try_send_replay(&self, replay: Outgoing) -> Result<(), Unqueued> {
        self.push(replay, true)
    }

    fn push(&self, item: Outgoing, bound_replay: bool) -> Result<(), Unqueued> {
        let size = item.counted_bytes();
        let replay_size = item.replay_bytes();
        let waiting = {
            let mut state = self.shared.state.lock();
            // Closed by the sender's drop, whatever handles are left.
            if state.receiver_gone || state.sender_gone {
                return Err(Unqueued::Closed);
            }
            // An empty queue takes any one item.
            let too_many_bytes =
                size > 0 && state.bytes > 0 && state.bytes + size > self.shared.max_bytes;
            // An empty replay (where a stream starts) holds nothing.
            let too_many_replayed = bound_replay
                && replay_size > 0
                && state.replay_bytes + replay_size > self.shared.max_bytes;
            if state.items.len() >= self.shared.capacity || too_many_bytes || too_many_replayed {
                return Err(Unqueued::Full);
            }
            state.bytes += size;
            state.replay_bytes += replay_size;
            state.items.push_back(item);
            if self.shared.is_wanted(&state) {
                state.waiting.take()
            } else {
                None
            }
        };
        // Woken outside the lock: the task it wakes may run at once, on
        // another thread, and take the lock itself.
        if let Some(task) = waiting {
            task.wake();
        }
        Ok(())
    }
}

impl Drop for QueueSender {
    fn drop(&mut self) {
        let waiting = {
            let mut state = self.handle.shared.state.lock();
            state.sender_gone = true;
            state.waiting.take()
        };
        if let Some(task) = waiting {
            task.wake();
        }
    }
}

impl QueueReceiver {
    /// Waits for items, as many as `wanted` says, and appends up to
    /// `limit` of them (at least one) to `batch`: their number, 0 once the
    /// queue is closed and empty. Once the queue is closed, whatever it
    /// still holds is taken at once. Cancel-safe: nothing is taken unless
    /// it returns.
    pub async fn recv_many(
        &mut self,
        batch: &mut Vec<Outgoing>,
        limit: usize,
        wanted: Wanted,
    ) -> usize {
        poll_fn(|context| {
            // Counted against the task's budget, as tokio's own channels
            // are: a task whose queue never empties still lets the other
            // tasks of its worker run.
            let budget = ready!(coop::poll_proceed(context));
            let mut state = self.shared.state.lock();
            if state.items.is_empty() && state.sender_gone {
                budget.made_progress();
                return Poll::Ready(0);
            }
            state.wanted = wanted;
            if !state.sender_gone && !self.shared.is_wanted(&state) {
                match &mut state.waiting {
                    Some(waker) if waker.will_wake(context.waker()) => {}
                    waiting => *waiting = Some(context.waker().clone()),
                }
                return Poll::Pending;
            }
            let count = limit.max(1).min(state.items.len());
            let start = batch.len();
            batch.extend(state.items.drain(..count));
            for item in &batch[start..] {
                state.bytes -= item.counted_bytes();
                state.replay_bytes -= item.replay_bytes();
            }
            if state.items.is_empty() && state.items.capacity() > KEPT_CAPACITY {
                state.items = VecDeque::new();
            }
            budget.made_progress();
            Poll::Ready(count)
        })
        .await
    }

    /// Takes one item, if the queue holds one.
    #[cfg(test)]
    pub fn try_recv(&mut self) -> Option<Outgoing> {
        let mut state = self.shared.state.lock();
        let item = state.items.pop_front()?;
        state.bytes -= item.counted_bytes();
        state.replay_bytes -= item.replay_bytes();
        Some(item)
    }

    /// The bytes of frames the queue holds.
    #[cfg(test)]
    pub fn held_bytes(&self) -> usize {
        self.shared.state.lock().bytes
    }
}

impl Drop for QueueReceiver {
    fn drop(&mut self) {
        // What is queued goes now, not when the registry lets go of the
        // sender: shared frames are not kept alive by a task that is gone.
        let items = {
            let mut state = self.shared.state.lock();
            state.receiver_gone = true;
            state.bytes = 0;
            state.replay_bytes = 0;
            state.waiting = None;
            std::mem::take(&mut state.items)
        };
        drop(items);
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
        assert_eq!(receiver.recv_many(&mut batch, 1, Wanted::Any).await, 1);
        assert_eq!(receiver.held_bytes(), 2000);
        assert!(sender.try_send(frame(3000)).is_ok());
    }

    #[tokio::test]
    async fn dropping_the_sender_closes_the_queue_whatever_handles_are_left() {
        let (sender, mut receiver) = queue(10, 5000);
        let handle = sender.handle();
        assert!(handle.try_send(frame(10)).is_ok());
        drop(sender);
        assert!(matches!(handle.try_send(frame(10)), Err(Unqueued::Closed)));
        // The task takes what was queued, then sees the end.
        let mut batch = Vec::new();
        assert_eq!(receiver.recv_many(&mut batch, 10, Wanted::Any).await, 1);
        assert_eq!(receiver.recv_many(&mut batch, 10, Wanted::Any).await, 0);
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

    fn replay(bytes: usize) -> Outgoing {
        use super::super::outgoing::{Replay, Replayed};
        Outgoing::Replay(Box::new(Replay {
            stream: crate::Stream::Everyone,
            events: Arc::new([Replayed {
                offset: 1,
                frame: "x".repeat(bytes).into(),
            }]),
            to: crate::Position {
                epoch: crate::stream::Epoch(1),
                offset: 1,
            },
            own: true,
        }))
    }

    #[tokio::test]
    async fn the_replays_a_queue_holds_stay_within_its_bytes_whatever_else_it_holds() {
        let (sender, mut receiver) = queue(100, 5000);
        // Live frames do not count against replays, nor the reverse.
        assert!(sender.try_send(frame(4000)).is_ok());
        assert!(sender.try_send_replay(replay(3000)).is_ok());
        assert!(sender.try_send_replay(replay(1500)).is_ok());
        assert!(matches!(
            sender.try_send_replay(replay(1000)),
            Err(Unqueued::Full)
        ));
        // A replay taken leaves room for the next.
        let mut batch = Vec::new();
        assert_eq!(receiver.recv_many(&mut batch, 2, Wanted::Any).await, 2);
        assert!(sender.try_send_replay(replay(3000)).is_ok());
        // One larger than the bound does not fit, even alone.
        let (sender, _receiver) = queue(100, 5000);
        assert!(matches!(
            sender.try_send_replay(replay(6000)),
            Err(Unqueued::Full)
        ));
        // Sent as any item, a replay is not bounded (a catch-up's, shared).
        assert!(sender.try_send(replay(6000)).is_ok());
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

    #[tokio::test]
    async fn a_waiting_task_is_woken_by_a_push_and_ends_once_the_sender_is_gone() {
        let (sender, mut receiver) = queue(10, 100_000);
        let task = tokio::spawn(async move {
            let mut batch = Vec::new();
            let first = receiver.recv_many(&mut batch, 10, Wanted::Any).await;
            let after = receiver.recv_many(&mut batch, 10, Wanted::Any).await;
            (first, after)
        });
        tokio::task::yield_now().await;
        assert!(sender.try_send(frame(10)).is_ok());
        tokio::task::yield_now().await;
        drop(sender);
        let (first, after) = tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("woken")
            .expect("the task ran");
        assert_eq!((first, after), (1, 0));
    }

    #[tokio::test]
    async fn a_gathering_task_is_woken_at_a_quarter_of_the_room_in_items_or_in_bytes() {
        use std::{future::Future, pin::pin, task::Context};

        let (sender, mut receiver) = queue(16, 20_000);
        let mut batch = Vec::new();
        let mut context = Context::from_waker(Waker::noop());
        {
            let mut waiting = pin!(receiver.recv_many(&mut batch, 64, Wanted::QuarterFull));
            assert!(waiting.as_mut().poll(&mut context).is_pending());
            for _ in 0..3 {
                assert!(sender.try_send(frame(10)).is_ok());
                assert!(waiting.as_mut().poll(&mut context).is_pending());
            }
            assert!(sender.try_send(frame(10)).is_ok());
            assert_eq!(waiting.as_mut().poll(&mut context), Poll::Ready(4));
        }
        {
            let mut waiting = pin!(receiver.recv_many(&mut batch, 64, Wanted::QuarterFull));
            assert!(sender.try_send(frame(4000)).is_ok());
            assert!(waiting.as_mut().poll(&mut context).is_pending());
            assert!(sender.try_send(frame(1100)).is_ok());
            assert_eq!(waiting.as_mut().poll(&mut context), Poll::Ready(2));
        }
        // Once the registry lets go, what is left is taken at once.
        assert!(sender.try_send(frame(10)).is_ok());
        drop(sender);
        assert_eq!(
            receiver
                .recv_many(&mut batch, 64, Wanted::QuarterFull)
                .await,
            1
        );
    }

    #[test]
    fn a_gathering_task_is_not_woken_by_an_empty_queue_whatever_its_bounds() {
        use std::{future::Future, pin::pin, task::Context};

        let (sender, mut receiver) = queue(8, 0);
        let mut batch = Vec::new();
        let mut context = Context::from_waker(Waker::noop());
        let mut waiting = pin!(receiver.recv_many(&mut batch, 64, Wanted::QuarterFull));
        assert!(waiting.as_mut().poll(&mut context).is_pending());
        assert!(sender.try_send(frame(10)).is_ok());
        assert!(waiting.as_mut().poll(&mut context).is_pending());
        // A counted frame fills a queue of no bytes at once.
        assert!(sender.try_send(frame(2000)).is_ok());
        assert_eq!(waiting.as_mut().poll(&mut context), Poll::Ready(2));
    }

    #[test]
    fn a_queue_whose_task_is_gone_takes_nothing() {
        let (sender, receiver) = queue(10, 100_000);
        assert!(sender.try_send(frame(10)).is_ok());
        drop(receiver);
        assert!(matches!(sender.try_send(frame(10)), Err(Unqueued::Closed)));
        assert!(sender.handle.shared.state.lock().items.is_empty());
    }

    #[tokio::test]
    async fn an_emptied_queue_gives_back_the_room_a_burst_took() {
        let (sender, mut receiver) = queue(1000, usize::MAX);
        for _ in 0..500 {
            assert!(sender.try_send(frame(10)).is_ok());
        }
        let mut batch = Vec::new();
        assert_eq!(receiver.recv_many(&mut batch, 200, Wanted::Any).await, 200);
        assert!(sender.handle.shared.state.lock().items.capacity() >= 300);
        assert_eq!(receiver.recv_many(&mut batch, 1000, Wanted::Any).await, 300);
        assert!(sender.handle.shared.state.lock().items.capacity() <= KEPT_CAPACITY);
    }

    #[test]
    fn an_empty_queue_takes_one_item_larger_than_its_bytes() {
        let (sender, receiver) = queue(100, 1000);
        assert!(sender.try_send(frame(5000)).is_ok());
        assert!(matches!(sender.try_send(frame(2000)), Err(Unqueued::Full)));
        assert_eq!(receiver.held_bytes(), 5000);
    }
}
