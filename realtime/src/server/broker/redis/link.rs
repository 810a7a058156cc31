//! The link: how a hub publishes to the other processes, and the four
//! rules for what may be lost.
//!
//! - Durable events (`record`) are never lost silently: they go to Redis,
//!   which places and publishes them; when Redis is away or cannot keep
//!   up, they are handed back and placed on this process
//!   (`server/streams`), and their streams are reset in Redis as soon
//!   as it can (their readers everywhere fetch again).
//! - Events (`deliver`) may be dropped: while Redis is away, or when it
//!   cannot keep up. They are counted, and the gap is logged.
//! - Presence (`presence`, `hello`, `snapshot`) is kept, in order, while
//!   connected; while Redis is away it is not published, because the
//!   `hello` sent on reconnection carries all of it.
//! - The end of a session (`close_session`) is never dropped: it waits for
//!   Redis to come back, and is replayed (the last 10 minutes' worth, at
//!   most 1,000, a few times a minute at most) when a process says
//!   `hello`.
//!
//! The transport (`transport.rs`) takes what the link queues and publishes it.

use std::{
    collections::VecDeque,
    num::NonZeroU32,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use tokio::sync::{
    Notify,
    mpsc::{self},
};

use super::{
    super::{Durable, NodeId},
    envelope::{Envelope, Message},
};
use crate::server::SessionKey;

/// What the transport takes from the link's queue.
pub(crate) enum Outbound {
    /// An envelope to publish as it is, on the backplane's channel.
    Publish(Bytes),
    /// The same, of this process's presence: not a missed emit when it
    /// cannot go (the `hello` after the reconnection carries it all).
    State(Bytes),
    /// A durable event for Redis to place and publish.
    Record(Box<Durable>),
}

/// The pace and burst of replays of ended sessions.
const REPLAY_EVERY: Duration = Duration::from_secs(10);
const REPLAY_BURST: NonZeroU32 = NonZeroU32::new(6).unwrap();

/// Messages that must not be lost (ends of sessions; presence while the
/// queue is full) wait here, at most this many. Past it the oldest go, with
/// a warning: something is badly wrong with Redis by then.
const MAX_PENDING: usize = 64 * 1024;

/// The hub's side of a backplane, outbound: [`Link::publish`] for events,
/// [`Link::publish_state`] for presence, [`Link::end_session`] for the end
/// of a session, each with its rule (see the module documentation).
pub(crate) struct Link {
    pub node: NodeId,
    outbound: mpsc::Sender<Outbound>,
    /// Messages that could not be queued and must not be lost, oldest
    /// first. The transport publishes them before anything queued.
    pending: Mutex<VecDeque<Bytes>>,
    /// Wakes the transport when `pending` gets something.
    pending_ready: Notify,
    /// Whether the transport is connected. While it is not, events are not
    /// queued: they reach this node's connections only.
    up: AtomicBool,
    /// Events not published since the last report (link down or queue
    /// full), for the log line that reports the gap.
    missed: AtomicU64,
    /// When this node last heard its own echo: a subscription that stops
    /// delivering is noticed even if publishing still works.
    last_echo: Mutex<Instant>,
    /// How often ended sessions may be replayed.
    replays: DefaultDirectRateLimiter,
    /// Messages received from Redis so far (this node's echoes included).
    received: AtomicU64,
}

impl Link {
    pub fn new(outbound: mpsc::Sender<Outbound>) -> Self {
        Self {
            node: NodeId::random(),
            outbound,
            pending: Mutex::new(VecDeque::new()),
            pending_ready: Notify::new(),
            up: AtomicBool::new(false),
            missed: AtomicU64::new(0),
            received: AtomicU64::new(0),
            last_echo: Mutex::new(Instant::now()),
            replays: RateLimiter::direct(
                Quota::with_period(REPLAY_EVERY)
                    .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
                    .allow_burst(REPLAY_BURST),
            ),
        }
    }

    /// Queues an event for the other nodes, unless the link is down or the
    /// queue is full (then it is counted as missed).
    pub fn publish(&self, message: &Message, payload: &[u8]) {
        if !self.is_up() {
            self.count_missed();
            return;
        }
        let envelope = Envelope::encode_with_payload(self.node, message, payload);
        if self.outbound.try_send(Outbound::Publish(envelope)).is_err() {
            metrics::counter!("realtime_backplane_missed_events_total").increment(1);
            if self.missed.fetch_add(1, Ordering::Relaxed) == 0 {
                // Redis cannot keep up; waiting would stall the emitter.
                tracing::warn!(
                    "the backplane's queue is full: events reach this process's connections only until it drains"
                );
            }
        }
    }

    /// Queues a durable event for Redis, or hands it back when Redis is
    /// away or its queue is full: the caller then places it here.
    pub fn record(&self, record: Box<Durable>) -> Result<(), Box<Durable>> {
        if !self.is_up() {
            return Err(record);
        }
        let Ok(permit) = self.outbound.try_reserve() else {
            // Redis cannot keep up (or the transport stopped).
            metrics::counter!("realtime_backplane_unplaced_events_total").increment(1);
            tracing::debug!("the backplane's queue is full: a durable event is placed here");
            return Err(record);
        };
        permit.send(Outbound::Record(record));
        Ok(())
    }

    /// Queues a change of presence: never dropped while connected; skipped
    /// while down (the reconnection's `hello` carries the whole state).
    pub fn publish_state(&self, message: &Message) {
        if !self.is_up() {
            return;
        }
        let envelope = Envelope::encode(self.node, message);
        let mut pending = self.pending.lock();
        // Once something waits, everything after it waits too: order kept.
        if pending.is_empty()
            && let Ok(permit) = self.outbound.try_reserve()
        {
            permit.send(Outbound::State(envelope));
            return;
        }
        Self::wait(&mut pending, envelope);
        drop(pending);
        self.pending_ready.notify_one();
    }

    /// Tells every process that a session ended, now or when Redis is
    /// back.
    pub fn end_session(&self, session: &SessionKey) {
        self.publish_control(&Message::CloseSession {
            session: session.clone(),
        });
    }

    /// Tells the ends of these sessions again (a process said hello: it may
    /// have missed them while it was cut off). At most a few replays a
    /// minute, whoever asks: a flood of `hello`s costs one.
    pub fn replay_ended_sessions(&self, sessions: Vec<SessionKey>) {
        if self.replays.check().is_err() {
            tracing::debug!("a replay of ended sessions was skipped: too many hellos lately");
            return;
        }
        for session in sessions {
            self.publish_control(&Message::CloseSession { session });
        }
    }

    /// Queues a message that must reach the other nodes, whenever Redis
    /// lets it. It never enters the event queue, which is thrown away when
    /// Redis is lost: it waits in `pending` until it is published.
    fn publish_control(&self, message: &Message) {
        let envelope = Envelope::encode(self.node, message);
        Self::wait(&mut self.pending.lock(), envelope);
        self.pending_ready.notify_one();
    }

    fn wait(pending: &mut VecDeque<Bytes>, envelope: Bytes) {
        if pending.len() == MAX_PENDING {
            pending.pop_front();
            tracing::warn!("the backplane's pending messages overflowed: the oldest was dropped");
        }
        pending.push_back(envelope);
    }

    /// Takes what waits, oldest first.
    pub fn take_pending(&self) -> Vec<Bytes> {
        self.pending.lock().drain(..).collect()
    }

    /// Puts back what could not be published, before anything newer.
    pub fn put_back(&self, envelopes: Vec<Bytes>) {
        let mut pending = self.pending.lock();
        for envelope in envelopes.into_iter().rev() {
            pending.push_front(envelope);
        }
        pending.truncate(MAX_PENDING);
    }

    /// Resolves when something is waiting in `pending`.
    pub async fn pending_ready(&self) {
        self.pending_ready.notified().await;
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub fn set_up(&self, up: bool) {
        if up {
            *self.last_echo.lock() = Instant::now();
        }
        self.up.store(up, Ordering::Release);
    }

    /// Counts an event that was not published.
    pub fn count_missed(&self) {
        self.missed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("realtime_backplane_missed_events_total").increment(1);
    }

    /// How many events were not published since the last call.
    pub fn take_missed(&self) -> u64 {
        self.missed.swap(0, Ordering::Relaxed)
    }

    /// Notes that this node's own message came back.
    /// Counts a message received from Redis.
    pub fn count_received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// Messages received from Redis so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    pub fn echo_received(&self) {
        *self.last_echo.lock() = Instant::now();
    }

    /// How long since this node last heard its own echo.
    pub fn since_last_echo(&self) -> Duration {
        self.last_echo.lock().elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Member, server::Target};

    fn published(item: Outbound) -> Bytes {
        match item {
            Outbound::Publish(envelope) | Outbound::State(envelope) => envelope,
            Outbound::Record(record) => panic!("a record: {record:?}"),
        }
    }

    fn decode_all(envelopes: Vec<Bytes>) -> Vec<Message> {
        envelopes
            .into_iter()
            .map(|bytes| Envelope::decode(bytes).unwrap().message)
            .collect()
    }

    fn presence(user: i64) -> Message {
        Message::Presence {
            room: "chat:1".into(),
            members: vec![Member::new(user, "x")],
        }
    }

    #[test]
    fn events_are_dropped_and_counted_while_down() {
        let (outbound, mut queue) = mpsc::channel(8);
        let link = Link::new(outbound);
        let deliver = Message::Deliver {
            target: Target::everyone(),
        };
        link.publish(&deliver, b"frame");
        link.publish_state(&presence(1));
        assert!(queue.try_recv().is_err());
        assert!(link.take_pending().is_empty());
        assert_eq!(link.take_missed(), 1);

        link.set_up(true);
        link.publish(&deliver, b"frame");
        assert_eq!(
            decode_all(vec![published(queue.try_recv().unwrap())]),
            [deliver]
        );
    }

    #[test]
    fn presence_waits_in_order_when_the_queue_is_full() {
        let (outbound, mut queue) = mpsc::channel(1);
        let link = Link::new(outbound);
        link.set_up(true);
        for user in 1..=3 {
            link.publish_state(&presence(user));
        }
        assert_eq!(
            decode_all(vec![published(queue.try_recv().unwrap())]),
            [presence(1)]
        );
        // The queue has room again, but the waiting ones go first.
        link.publish_state(&presence(4));
        assert!(queue.try_recv().is_err());
        assert_eq!(
            decode_all(link.take_pending()),
            [presence(2), presence(3), presence(4)]
        );
    }

    #[test]
    fn ends_of_sessions_wait_for_redis_and_are_told_again() {
        let (outbound, _queue) = mpsc::channel(8);
        let link = Link::new(outbound);
        let session = SessionKey::from("s1");
        link.end_session(&session);
        let close = Message::CloseSession {
            session: session.clone(),
        };
        assert_eq!(
            decode_all(link.take_pending()),
            std::slice::from_ref(&close)
        );

        link.replay_ended_sessions(vec![session.clone()]);
        assert_eq!(decode_all(link.take_pending()), [close]);
    }

    #[test]
    fn a_flood_of_hellos_gets_a_few_replays_only() {
        let (outbound, _queue) = mpsc::channel(8);
        let link = Link::new(outbound);
        let session = SessionKey::from("s1");
        for _ in 0..100 {
            link.replay_ended_sessions(vec![session.clone()]);
        }
        assert_eq!(
            link.take_pending().len(),
            REPLAY_BURST.get() as usize,
            "one replay per hello until the burst is spent"
        );
    }
}
