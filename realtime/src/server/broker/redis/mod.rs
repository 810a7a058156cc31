//! The Redis broker: the server processes sharing a Redis server and a
//! channel act as one hub.
//!
//! Each process (a *node*) delivers events to its own connections. When an
//! emit may have recipients elsewhere, the node also publishes it once, and
//! every other node delivers it to *its* connections; the publisher drops
//! its own echo. The same channel carries the ends of sessions (log-out
//! closes the session's sockets everywhere) and presence: each node
//! announces which users it has in each room, and each node merges the
//! announcements with its own members.
//!
//! One emit to a browser on another process runs one way through these
//! files:
//!
//! 1. `link.rs`: wraps it in an envelope (`envelope.rs`) and queues it for
//!    publishing, or counts it as missed while Redis is away;
//! 2. `transport.rs` (with `publishing.rs`): publishes it on the channel;
//!    on every other node, receives it and passes it on;
//! 3. `receive.rs`: decodes it, drops the node's own echo, and hands it to
//!    the hub's inbox, one function per kind of message.
//!
//! Durable events take another way: the link queues them as [`Durable`]
//! records; the transport has Redis append them to the history
//! (`history.rs`), whose script publishes them on the channel of their
//! stream's shard (`shards.rs`); `receive.rs` on every node that reads a
//! stream of that shard, the emitting one included, hands them to the hub
//! in the order Redis placed them. A node subscribes to a shard while its
//! tabs read one of its streams (`following.rs`), on a connection whose
//! subscriptions change while it receives (`subscriber.rs`). Recoveries a
//! node's mirror cannot serve read Redis's history (`history.rs`).
//!
//! `servers.rs` says where Redis is (one server, or a Redis Cluster's
//! nodes) and sends batches of commands there; `access.rs` is the history
//! as setting it right after an outage uses it. `nodes.rs` keeps which
//! other nodes were heard from lately. `transport.rs` is the task that
//! keeps the node connected; `publishing.rs`, what it sends.

mod access;
mod envelope;
mod following;
mod history;
mod link;
mod nodes;
mod publishing;
mod receive;
mod scripts;
mod servers;
mod shards;
mod subscriber;
mod transport;

use std::{sync::Arc, time::Duration};

use axum::extract::ws::Utf8Bytes;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use thiserror::Error;
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
    time::timeout,
};

pub use self::shards::DEFAULT_SHARDS;
use self::{
    envelope::Message,
    following::Following,
    history::RedisHistory,
    link::{Link, Outbound},
    nodes::Nodes,
    servers::Servers,
    shards::Shards,
    transport::Transport,
};
use super::{Broker, Durable, Fetched, Inbox, PresenceNews, ReadError};
use crate::{
    backoff::Backoff,
    server::{SessionKey, Target, config::HistoryLimits},
    stream::{EventId, Position, Stream},
};

/// The channel used unless [`RedisBackplane::channel`] says otherwise.
/// Its name carries the envelope format's version.
pub const DEFAULT_CHANNEL: &str = "realtime.v2";

/// Envelopes waiting to be published, at most. When Redis cannot keep up,
/// further emits reach this process's connections only (and are counted).
const OUTBOUND_CAPACITY: usize = 16 * 1024;
/// How long connecting, and each command, may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a process stays subscribed to a shard nobody here reads.
pub const DEFAULT_UNSUBSCRIBE_AFTER: Duration = Duration::from_secs(30);

/// The backplane could not be set up.
#[derive(Debug, Error)]
pub enum BackplaneError {
    /// (The URL is not repeated: it may hold a password.)
    #[error(
        "REDIS_URL is not a valid Redis URL (redis://host:port/, or a cluster's nodes \
         separated by commas): {source}"
    )]
    InvalidUrl { source: redis::RedisError },
}

/// How often a node says it is alive, and how long the others wait before
/// presuming it gone.
#[derive(Clone, Copy, Debug)]
pub struct Liveness {
    pub heartbeat: Duration,
    /// Silence after which a node's presence is forgotten.
    pub timeout: Duration,
}

impl Default for Liveness {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
        }
    }
}

/// Settings of a Redis backplane: give them to
/// [`crate::server::HubBuilder::backplane`]. Nothing is connected until the
/// hub is built; from then on a background task connects, and reconnects
/// by itself.
#[derive(Debug)]
pub struct RedisBackplane {
    servers: Servers,
    channel: String,
    shards: u16,
    unsubscribe_after: Duration,
    liveness: Liveness,
    backoff: Backoff,
}

impl RedisBackplane {
    /// Checks the URL: one server (`redis://host:port/`), or a Redis
    /// Cluster (the URLs of some of its nodes separated by commas, or of
    /// any one of them: asked when connecting). `rediss://…` for TLS is
    /// not built in. Nothing is connected yet.
    pub fn new(url: &str) -> Result<Self, BackplaneError> {
        let servers =
            Servers::parse(url).map_err(|source| BackplaneError::InvalidUrl { source })?;
        Ok(Self {
            servers,
            channel: DEFAULT_CHANNEL.to_owned(),
            shards: DEFAULT_SHARDS,
            unsubscribe_after: DEFAULT_UNSUBSCRIBE_AFTER,
            liveness: Liveness::default(),
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(10)),
        })
    }

    /// The pub/sub channel: processes on the same channel act as one hub.
    /// Give each application its own when they share a Redis server.
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }

    /// How many shards the streams are spread over (at least 1), each with
    /// a channel of its own: the same for every process on the channel,
    /// and fixed for a deployment (a stream's shard is a hash of its name
    /// modulo the count).
    pub fn shards(mut self, shards: u16) -> Self {
        self.shards = shards.max(1);
        self
    }

    /// How long a process stays subscribed to a shard after its last
    /// connection reading a stream of it went (checked at each heartbeat).
    pub fn unsubscribe_after(mut self, after: Duration) -> Self {
        self.unsubscribe_after = after;
        self
    }

    /// How often processes say they are alive, and how long before a
    /// silent one's presence is forgotten.
    pub fn liveness(mut self, liveness: Liveness) -> Self {
        self.liveness = liveness;
        self
    }

    /// How long to wait between reconnection attempts.
    pub fn reconnect_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The broker, for a hub that keeps this much history and sends
    /// events of at most `max_event_bytes`.
    pub(crate) fn into_broker(self, limits: HistoryLimits, max_event_bytes: usize) -> RedisBroker {
        let (outbound, queue) = mpsc::channel(OUTBOUND_CAPACITY);
        let shards = Shards::new(&self.channel, self.shards);
        let (following, requests) = Following::new(shards.clone(), self.unsubscribe_after);
        RedisBroker {
            link: Arc::new(Link::new(outbound)),
            history: Arc::new(RedisHistory::new(shards, limits, max_event_bytes)),
            following: Arc::new(following),
            nodes: Arc::new(Nodes::default()),
            max_event_bytes,
            waiting: Mutex::new(Some(Waiting {
                settings: self,
                queue,
                requests,
            })),
            running: Mutex::new(None),
        }
    }
}

/// The running transport: told to stop, and awaited.
struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// What the transport takes when it starts.
struct Waiting {
    settings: RedisBackplane,
    queue: mpsc::Receiver<Outbound>,
    /// Shards to subscribe to (`following.rs`).
    requests: mpsc::UnboundedReceiver<u16>,
}

/// The broker over Redis: see the module documentation.
pub(crate) struct RedisBroker {
    link: Arc<Link>,
    history: Arc<RedisHistory>,
    following: Arc<Following>,
    nodes: Arc<Nodes>,
    /// The largest event frame this process sends (and takes from others).
    max_event_bytes: usize,
    /// What the transport takes when it starts.
    waiting: Mutex<Option<Waiting>>,
    running: Mutex<Option<Running>>,
}

impl Broker for RedisBroker {
    fn start(&self, inbox: Arc<dyn Inbox>) {
        let Some(Waiting {
            settings,
            queue,
            requests,
        }) = self.waiting.lock().take()
        else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("a hub with a Redis backplane was built outside a Tokio runtime");
            return;
        };
        let (stop, stopped) = watch::channel(false);
        let task = runtime.spawn(
            Transport {
                inbox,
                link: Arc::clone(&self.link),
                history: Arc::clone(&self.history),
                following: Arc::clone(&self.following),
                nodes: Arc::clone(&self.nodes),
                settings,
                queue,
                requests,
                stopped,
                max_event_bytes: self.max_event_bytes,
            }
            .run(),
        );
        *self.running.lock() = Some(Running { stop, task });
    }

    fn shares_history(&self) -> bool {
        true
    }

    fn place(&self, event: Box<Durable>) -> Result<(), Box<Durable>> {
        self.link.record(event)
    }

    fn publish(&self, target: &Target, frame: &Utf8Bytes) {
        let message = Message::Deliver {
            target: target.clone(),
        };
        // On the backplane's channel, whatever the target: one channel
        // keeps an emitter's volatile events in order for every tab (two
        // channels of a cluster may be on two nodes).
        self.link.publish(&message, frame.as_str().as_bytes());
    }

    fn can_read(&self) -> bool {
        self.link.is_up()
    }

    fn follow<'a>(&'a self, stream: &'a Stream) -> BoxFuture<'a, ()> {
        Box::pin(self.following.follow(stream))
    }

    fn want(&self, stream: &Stream) {
        self.following.want(stream);
    }

    fn hears(&self, stream: &Stream) -> bool {
        self.following.hears(stream)
    }

    fn read<'a>(
        &'a self,
        stream: &'a Stream,
        since: Option<Position>,
        since_id: Option<EventId>,
    ) -> BoxFuture<'a, Result<Fetched, ReadError>> {
        Box::pin(self.history.read(stream, since, since_id))
    }

    fn announce(&self, news: PresenceNews) {
        let shards = self.following.shards.count();
        self.link.publish_state(&Message::presence(news, shards));
    }

    fn end_session(&self, session: &SessionKey) {
        // Never dropped: kept until Redis is back if it is away, and told
        // again to processes that reconnect.
        self.link.end_session(session);
    }

    fn connected(&self) -> Option<bool> {
        Some(self.link.is_up())
    }

    fn peers(&self) -> usize {
        self.nodes.count()
    }

    fn received(&self) -> u64 {
        self.link.received()
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        let running = self.running.lock().take();
        Box::pin(async move {
            let Some(mut running) = running else {
                return;
            };
            let _ = running.stop.send(true);
            if timeout(REDIS_TIMEOUT, &mut running.task).await.is_err() {
                tracing::warn!(
                    "the Redis backplane did not stop in time: stopped without a goodbye"
                );
                running.task.abort();
            }
        })
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        // The hub is gone: so is its transport.
        if let Some(running) = self.running.lock().take() {
            running.task.abort();
        }
    }
}
