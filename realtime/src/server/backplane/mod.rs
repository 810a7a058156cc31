//! The backplane: what several server processes tell each other so that
//! they act as one hub.
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
//! 1. `server/emit.rs`: encodes the event and hands it to the link;
//! 2. `link.rs`: wraps it in an envelope (`envelope.rs`) and queues it for
//!    publishing, or counts it as missed while Redis is away;
//! 3. `redis.rs`, the transport: publishes it on the channel; on every other
//!    node, receives it and passes it on;
//! 4. `receive.rs`: decodes it, drops the node's own echo, and acts on it,
//!    one function per kind of message; an event goes to
//! 5. `server/delivery.rs` and `server/registry.rs`: into the queues of the
//!    target's connections on that node;
//! 6. `server/connection.rs`: each connection's task writes it to its
//!    browser.
//!
//! Durable events take another way: `server/durable.rs` hands them to the
//! link as a [`Record`]; the transport has Redis append them to the
//! history (`redis_history.rs`), which publishes them; `receive.rs` on
//! every node, the emitting one included, delivers them in the order Redis
//! placed them. Recoveries this node's mirror cannot serve read Redis's
//! history through the link's [`HistoryStore`].
//!
//! `remote_presence.rs` keeps what the other nodes said of their presence.
//!
//! Without a transport (the `redis` feature) a hub never has a backplane:
//! the link and the receiving side are compiled, and unused.

#![cfg_attr(not(feature = "redis"), allow(dead_code))]

mod envelope;
mod link;
mod receive;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "redis")]
mod redis_history;
mod remote_presence;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

pub use self::envelope::NodeId;
pub(crate) use self::{
    envelope::{Envelope, Message},
    link::{Link, Outbound, Record},
    remote_presence::RemotePresence,
};
use super::{Hub, history::History, history::Recorded as Kept};
use crate::stream::{Discontinuity, Position, Stream};

/// Where the history of durable events is kept for every node (Redis).
pub(crate) trait HistoryStore: Send + Sync {
    /// What `stream` holds after `since` (or only where it stands, for
    /// `None`). Fails when the store cannot be reached.
    fn read<'a>(
        &'a self,
        stream: &'a Stream,
        since: Option<Position>,
    ) -> BoxFuture<'a, Result<Fetched, String>>;
}

/// A stream, as read from the shared history.
#[derive(Clone, Debug)]
pub(crate) struct Fetched {
    /// Where the stream stood when it was read.
    pub position: Position,
    /// The events after the position asked for, oldest first, or why they
    /// cannot be had (none when only the position was asked for).
    pub events: Result<Vec<Kept>, Discontinuity>,
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

/// What a transport calls on the hub it serves.
impl Hub {
    /// Connects this hub to a backplane transport: envelopes to publish
    /// come out of the returned link's queue. A hub has one backplane, for
    /// its whole life; `None` if it already has one.
    /// The history of durable events is kept in `store`, and this hub's
    /// history becomes a mirror of it.
    pub(crate) fn attach(
        &self,
        outbound: mpsc::Sender<Outbound>,
        store: Arc<dyn HistoryStore>,
    ) -> Option<Arc<Link>> {
        let link = Arc::new(Link::new(NodeId::random(), outbound, store));
        self.inner.link.set(Arc::clone(&link)).ok()?;
        *self.inner.history.lock() = History::mirror(self.config().history_limits());
        Some(link)
    }

    /// Forgets the presence of nodes not heard from since `deadline`.
    pub(crate) fn forget_silent_nodes(&self, deadline: Instant) {
        self.remote_presence_changed(|remote| remote.forget_silent(deadline));
    }

    /// Whether `node` has been heard from (and not forgotten since).
    fn knows_node(&self, node: NodeId) -> bool {
        self.inner.remote.lock().is_known(node)
    }

    /// Notes that `node` is alive.
    fn heard_from(&self, node: NodeId) {
        self.inner.remote.lock().heard_from(node, Instant::now());
    }
}
