//! The server side: one [`Hub`] per process.
//!
//! The hub accepts WebSocket upgrades, runs one task per connection, and
//! delivers events. It is a cheap, cloneable handle, so emitting works from
//! anywhere: server functions, handlers, spawned tasks.
//!
//! `Hub` is one type whose methods live in the file of their job:
//!
//! | File | Job |
//! |---|---|
//! | `identity.rs` | who a connection belongs to: [`Identity`], [`SessionKey`] |
//! | `target.rs` | who an event goes to: [`Target`] |
//! | `emit.rs` | the public emit API: [`Emit`], [`IntoUserIds`], [`caller`] |
//! | `broadcast.rs` | events that carry their own targets: [`Broadcast`] |
//! | `delivery.rs` | putting a frame in the queues of this process's connections |
//! | `registry.rs` | the maps (connection → queue, user, session, room → connections) and queueing a frame for a target |
//! | `connection.rs` | the task that serves one WebSocket |
//! | `membership.rs` | joining and leaving rooms, on a browser's request or from server code |
//! | `join_rules.rs` | the join-rule registry: who may join which kind of room |
//! | `presence.rs` | who is in a room, sent to its members in order |
//! | `close.rs` | close reasons and disconnecting, including the slow-client chain |
//! | `origin.rs` | the `Origin` check on upgrades: [`Origins`] |
//! | [`backplane`] | several processes acting as one hub (Redis with the `redis` feature) |
//!
//! An emit runs one way through them: `emit.rs` → `delivery.rs` →
//! `registry.rs` → each connection's queue → `connection.rs`; for the other
//! processes, `emit.rs` → `backplane/link.rs` → the transport →
//! `backplane/receive.rs` on each → its `delivery.rs`, and on. Closing and
//! presence call each other, by nature: closing a connection changes the
//! presence of its rooms, and sending a presence list may close a
//! connection too slow to take it (see `close.rs`).
//!
//! This file holds the hub itself: its configuration, its builder,
//! accepting a connection, and its statistics.

pub mod backplane;
mod broadcast;
mod close;
mod connection;
mod delivery;
mod emit;
mod identity;
mod join_rules;
mod membership;
mod origin;
mod presence;
mod registry;
mod target;

use std::{
    collections::HashSet,
    fmt,
    future::Future,
    sync::{Arc, OnceLock},
    time::Duration,
};

use axum::{
    extract::ws::{Utf8Bytes, WebSocketUpgrade},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use parking_lot::{Mutex, ReentrantMutex, RwLock};
use tokio::sync::mpsc;

use self::{
    backplane::{Link, RemotePresence},
    close::CloseSignal,
    join_rules::JoinRules,
    registry::{Connection, Registry},
};
pub use self::{
    broadcast::Broadcast,
    close::CloseReason,
    emit::{Emit, EmitError, IntoUserIds, caller, caller_from_headers},
    identity::{Identity, SessionKey},
    join_rules::{JoinRequest, Refusal},
    origin::Origins,
    registry::RegistryStats,
    target::Target,
};
use crate::{ConnectionId, Room};

/// Limits and settings of a hub. The defaults suit a typical application;
/// `docs/protocol.md` explains each limit.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Largest frame (and message) a browser may send, in bytes. Larger
    /// ones close the connection with code 1009.
    pub max_frame_bytes: usize,
    /// How many rooms one connection may be in at once.
    pub max_rooms_per_connection: usize,
    /// How many frames may wait in one connection's outgoing queue. A
    /// connection whose queue is full is closed with code 4008.
    pub queue_capacity: usize,
    /// Size of each connection's read buffer (tungstenite's default is
    /// 128 KiB, which is most of the memory of an idle connection).
    pub read_buffer_bytes: usize,
    /// How often the server pings an idle connection, so dead ones are
    /// noticed and proxies keep live ones open.
    pub ping_interval: Duration,
    /// How long a room's authorisation rule may take before the join is
    /// refused.
    pub authorize_timeout: Duration,
    /// Which pages may open a connection.
    pub origins: Origins,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 16 * 1024,
            max_rooms_per_connection: 64,
            queue_capacity: 256,
            read_buffer_bytes: 1024,
            ping_interval: Duration::from_secs(30),
            authorize_timeout: Duration::from_secs(10),
            origins: Origins::SameOrigin,
        }
    }
}

/// The real-time hub of one process. Clone it freely: clones share one
/// registry.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    config: HubConfig,
    registry: RwLock<Registry>,
    join_rules: JoinRules,
    /// Kinds of room whose presence is tracked.
    presence_kinds: HashSet<&'static str>,
    /// The other processes, once a backplane is attached.
    link: OnceLock<Arc<Link>>,
    /// The users other processes have in each room (empty without a
    /// backplane).
    remote: Mutex<RemotePresence>,
    /// Held while a presence list is computed and sent or published, so
    /// lists go out in the order they were computed (see `presence.rs`).
    presence_order: ReentrantMutex<()>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Hub`]: its limits and the authorisation rule of each kind of
/// room.
pub struct HubBuilder {
    config: HubConfig,
    join_rules: JoinRules,
    presence_kinds: HashSet<&'static str>,
}

impl HubBuilder {
    pub fn config(mut self, config: HubConfig) -> Self {
        self.config = config;
        self
    }

    /// Lets connections join rooms of kind `R` when `authorize` agrees.
    ///
    /// Joins of kinds without a rule are refused, so every room a browser
    /// can join has passed a rule the application wrote.
    pub fn room<R, F, Fut>(mut self, authorize: F) -> Self
    where
        R: Room,
        F: Fn(JoinRequest<R>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Refusal>> + Send + 'static,
    {
        self.join_rules.add::<R, F, Fut>(authorize);
        self
    }

    /// Tracks who is in rooms of kind `R`: their members receive
    /// [`crate::Presence`] events (see [`crate::presence`]).
    pub fn presence<R: Room>(mut self) -> Self {
        self.presence_kinds.insert(R::KIND);
        self
    }

    pub fn build(self) -> Hub {
        Hub {
            inner: Arc::new(HubInner {
                config: self.config,
                registry: RwLock::new(Registry::default()),
                join_rules: self.join_rules,
                presence_kinds: self.presence_kinds,
                link: OnceLock::new(),
                remote: Mutex::new(RemotePresence::default()),
                presence_order: ReentrantMutex::new(()),
            }),
        }
    }
}

/// A connection just registered with the hub: what its task needs.
pub(crate) struct Registration {
    pub id: ConnectionId,
    /// Frames to write, in order.
    pub outgoing: mpsc::Receiver<Utf8Bytes>,
    /// Tells the task to close, and why.
    pub close_signal: Arc<CloseSignal>,
}

impl Hub {
    pub fn builder() -> HubBuilder {
        HubBuilder {
            config: HubConfig::default(),
            join_rules: JoinRules::default(),
            presence_kinds: HashSet::new(),
        }
    }

    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// Answers a WebSocket upgrade request: checks its `Origin` (403 when
    /// refused), then serves the connection as `identity` until it closes.
    pub fn accept(
        &self,
        upgrade: WebSocketUpgrade,
        headers: &HeaderMap,
        identity: Identity,
    ) -> Response {
        if let Err(refused) = self.inner.config.origins.check(headers) {
            tracing::warn!(origin = %refused, "WebSocket upgrade refused: origin not allowed");
            return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
        }
        let config = &self.inner.config;
        let hub = self.clone();
        upgrade
            .read_buffer_size(config.read_buffer_bytes)
            .write_buffer_size(connection::WRITE_BUFFER_BYTES)
            .max_message_size(config.max_frame_bytes)
            .max_frame_size(config.max_frame_bytes)
            .on_upgrade(move |socket| connection::serve(hub, socket, identity))
    }

    /// Adds a connection to the registry, with a fresh id and an empty
    /// queue. It stays there until [`Hub::forget`] (its task ends) or a
    /// disconnect.
    pub(crate) fn register(&self, identity: Identity) -> Registration {
        let id = ConnectionId(rand::random());
        let (queue, outgoing) = mpsc::channel(self.inner.config.queue_capacity);
        let close_signal = Arc::new(CloseSignal::default());
        self.inner.registry.write().insert(
            id,
            Connection {
                queue,
                signal: Arc::clone(&close_signal),
                identity,
                rooms: Vec::new(),
            },
        );
        Registration {
            id,
            outgoing,
            close_signal,
        }
    }

    /// How many connections, users, sessions and rooms the registry holds.
    pub fn stats(&self) -> RegistryStats {
        self.inner.registry.read().stats()
    }

    /// Whether the backplane is connected: `None` without a backplane.
    pub fn backplane_connected(&self) -> Option<bool> {
        self.link().map(|link| link.is_up())
    }

    /// How many other processes this one has heard from recently.
    pub fn peers(&self) -> usize {
        self.inner.remote.lock().nodes()
    }

    /// The other processes, once a backplane is attached.
    fn link(&self) -> Option<&Arc<Link>> {
        self.inner.link.get()
    }
}
