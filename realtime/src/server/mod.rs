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
//! | `config.rs` | the limits and settings: [`HubConfig`] |
//! | `identity.rs` | who a connection belongs to: [`Identity`], [`SessionKey`] |
//! | `target.rs` | who an event goes to: [`Target`] |
//! | `emit.rs` | the public emit API: [`Emit`], [`IntoUserIds`], [`caller`] |
//! | `broadcast.rs` | events that carry their own targets: [`Broadcast`] |
//! | `delivery.rs` | putting a frame in the queues of this process's connections |
//! | `registry.rs` | the maps (connection → queue, user, session, room → connections) and queueing a frame for a target |
//! | `connection.rs` | the task that serves one WebSocket |
//! | `membership.rs` | joining and leaving rooms, on a browser's request or from server code |
//! | `join_rules.rs` | the join-rule registry: who may join which kind of room |
//! | `presence.rs` | who is in a room, sent to its members, coalesced |
//! | `durable.rs` | durable events: recorded in their streams (here, or placed by Redis), delivered with their positions |
//! | `history.rs` | the durable events each stream keeps, in memory (alone), or a mirror of Redis's |
//! | `recovery.rs` | replaying what a tab missed |
//! | `close.rs` | close reasons and disconnecting, including the slow-client chain |
//! | `sessions.rs` | connections live no longer than their session |
//! | `origin.rs` | the `Origin` check on upgrades: [`Origins`] |
//! | `pace.rs` | how fast a user or address may open connections |
//! | [`backplane`] | several processes acting as one hub (Redis with the `redis` feature) |
//!
//! An emit runs one way through them: `emit.rs` → `delivery.rs` →
//! `registry.rs` → each connection's queue → `connection.rs`; for the other
//! processes, `emit.rs` → `backplane/link.rs` → the transport →
//! `backplane/receive.rs` on each → its `delivery.rs`, and on. A durable
//! emit goes `emit.rs` → `durable.rs` → (with Redis: `backplane/link.rs` →
//! Redis → `backplane/receive.rs` on every process →) `durable.rs` →
//! `registry.rs`. Closing and
//! presence call each other, by nature: closing a connection changes the
//! presence of its rooms, and sending a presence list may close a
//! connection too slow to take it (see `close.rs`).
//!
//! This file holds the hub itself: its configuration, its builder,
//! accepting a connection, and its statistics.

pub mod backplane;
mod broadcast;
mod close;
mod config;
mod connection;
mod delivery;
mod durable;
mod emit;
mod history;
mod identity;
mod join_rules;
mod membership;
mod origin;
mod pace;
mod presence;
mod recovery;
mod registry;
mod sessions;
mod target;

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
    future::Future,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use axum::{
    extract::ws::WebSocketUpgrade,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;

use self::{
    backplane::{Link, RemotePresence},
    close::CloseSignal,
    history::History,
    join_rules::JoinRules,
    pace::Pace,
    presence::PresenceQueue,
    registry::{Connection, ConnectionLimits, Outgoing, Registry},
    sessions::{EndedSessions, SessionCheck},
};
pub use self::{
    broadcast::Broadcast,
    close::CloseReason,
    config::HubConfig,
    emit::{Emit, EmitError, IntoUserIds, Placement, caller, caller_from_headers},
    identity::{Identity, SessionKey},
    join_rules::{JoinRequest, Refusal},
    origin::Origins,
    registry::{Refused, RegistryStats},
    target::Target,
};
use crate::{ConnectionId, Position, Room, Stream, protocol::Resume};

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
    /// Presence changes waiting for the presence task (`presence.rs`).
    presence: PresenceQueue,
    /// Sessions that ended lately (see `sessions.rs`).
    ended_sessions: EndedSessions,
    /// The application's check of which sessions have ended.
    session_check: Option<SessionCheck>,
    /// Sockets whose task still holds them (open file descriptors).
    open_sockets: AtomicUsize,
    /// How fast each user or visitor's address may open connections.
    pace: Pace,
    /// Durable events, for recovery. Taken before the registry when both
    /// are (`recovery.rs`).
    history: Mutex<History>,
    /// Reads of Redis's history under way, at most this many at once
    /// (`recovery.rs`).
    history_reads: tokio::sync::Semaphore,
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
    session_check: Option<SessionCheck>,
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

    /// How the hub learns which sessions have ended (expired): given the
    /// sessions of its open connections, `check` returns those that no
    /// longer live. [`Hub::watch_sessions`] runs it every
    /// [`HubConfig::session_check_interval`].
    pub fn session_check<F, Fut>(mut self, check: F) -> Self
    where
        F: Fn(Vec<SessionKey>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<SessionKey>, String>> + Send + 'static,
    {
        self.session_check = Some(Arc::new(move |sessions| Box::pin(check(sessions))));
        self
    }

    pub fn build(self) -> Hub {
        Hub {
            inner: Arc::new(HubInner {
                registry: RwLock::new(Registry::default()),
                join_rules: self.join_rules,
                presence_kinds: self.presence_kinds,
                link: OnceLock::new(),
                remote: Mutex::new(RemotePresence::default()),
                presence: PresenceQueue::default(),
                ended_sessions: EndedSessions::default(),
                session_check: self.session_check,
                open_sockets: AtomicUsize::new(0),
                history: Mutex::new(History::new(self.config.history_limits())),
                history_reads: tokio::sync::Semaphore::new(recovery::READS_AT_ONCE),
                pace: Pace::new(
                    self.config.new_connections_per_minute,
                    self.config.new_connection_burst,
                ),
                config: self.config,
            }),
        }
    }
}

/// A connection just registered with the hub: what its task needs.
pub(crate) struct Registration {
    pub id: ConnectionId,
    /// Frames to write, in order.
    pub outgoing: mpsc::Receiver<Outgoing>,
    /// Tells the task to close, and why.
    pub close_signal: Arc<CloseSignal>,
    /// For the `welcome` frame: where the connection's streams stand.
    pub positions: BTreeMap<Stream, Position>,
}

impl Hub {
    pub fn builder() -> HubBuilder {
        HubBuilder {
            config: HubConfig::default(),
            join_rules: JoinRules::default(),
            presence_kinds: HashSet::new(),
            session_check: None,
        }
    }

    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// Answers a WebSocket upgrade request: checks its `Origin` (403 when
    /// refused) and the connection limits (503 when the server is full, 429
    /// past the limit of a user or an address), then serves the connection
    /// as `identity` until it closes.
    ///
    /// `resume` (read from the request's query) says how far the tab had
    /// read before: what it missed since is replayed first
    /// (`recovery.rs`).
    pub fn accept(
        &self,
        upgrade: WebSocketUpgrade,
        headers: &HeaderMap,
        identity: Identity,
        resume: Resume,
    ) -> Response {
        if let Err(refused) = self.inner.config.origins.check(headers) {
            tracing::warn!(origin = %refused, "WebSocket upgrade refused: origin not allowed");
            metrics::counter!("realtime_refusals_total", "limit" => "origin").increment(1);
            return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
        }
        let checked = self
            .inner
            .registry
            .read()
            .check(&identity, self.connection_limits())
            .and_then(|()| self.inner.pace.allow(&identity));
        if let Err(refused) = checked {
            tracing::debug!(?refused, user = ?identity.user, address = ?identity.address, "WebSocket upgrade refused");
            return refusal(refused);
        }
        let config = &self.inner.config;
        let hub = self.clone();
        upgrade
            .read_buffer_size(config.read_buffer_bytes)
            .write_buffer_size(connection::WRITE_BUFFER_BYTES)
            // Room for one batch and the largest frame: never more, however
            // slowly the browser reads.
            .max_write_buffer_size(connection::WRITE_BUFFER_BYTES + config.max_event_bytes + 1024)
            .max_message_size(config.max_frame_bytes)
            .max_frame_size(config.max_frame_bytes)
            .on_upgrade(move |socket| connection::serve(hub, socket, identity, resume))
    }

    /// Refuses a WebSocket upgrade before the application reads its
    /// session, when the session's user was refused for opening connections
    /// too fast and may not open one yet (429, as [`Hub::accept`] would
    /// answer). A script reopening its socket in a loop then costs no
    /// database read per attempt. `None`: read the session, then
    /// [`Hub::accept`].
    pub fn refuse_early(&self, session: Option<&SessionKey>) -> Option<Response> {
        let refused = self.inner.pace.still_refused(session?);
        refused.then(|| refusal(Refused::TooFast))
    }

    fn connection_limits(&self) -> ConnectionLimits {
        let config = &self.inner.config;
        ConnectionLimits {
            total: config.max_connections,
            per_user: config.max_connections_per_user,
            anonymous_per_address: config.max_anonymous_per_address,
        }
    }

    /// Adds a connection to the registry, with a fresh id and a queue that
    /// holds only what its tab missed (`resume`), unless a limit says no or
    /// its session has ended meanwhile. It stays there until
    /// [`Hub::forget`] (its task ends) or a disconnect.
    pub(crate) async fn register(
        &self,
        identity: Identity,
        resume: &Resume,
    ) -> Result<Registration, Refused> {
        // What Redis must tell first, if this process does not hold it: the
        // tab's streams from where it stopped, or where they stand.
        let streams = std::iter::once(Stream::Everyone).chain(identity.user.map(Stream::User));
        let wanted = streams.map(|stream| {
            let since = resume
                .since
                .iter()
                .find_map(|(asked, since)| (*asked == stream).then_some(*since));
            (stream, since)
        });
        let fetched = self.fetch_for(wanted.collect::<Vec<_>>()).await;
        if let Some(session) = &identity.session
            && self.inner.ended_sessions.contains(session)
        {
            metrics::counter!("realtime_refusals_total", "limit" => "session_ended").increment(1);
            return Err(Refused::SessionEnded);
        }
        let id = ConnectionId(rand::random());
        let (queue, outgoing) = mpsc::channel(self.inner.config.queue_capacity);
        let close_signal = Arc::new(CloseSignal::default());
        let connection = Connection {
            queue,
            signal: Arc::clone(&close_signal),
            identity,
            tab: resume.tab,
            rooms: Vec::new(),
        };
        let positions = self
            .insert_resuming(id, connection, resume, fetched)
            .inspect_err(|refused| {
                metrics::counter!("realtime_refusals_total", "limit" => refused.label())
                    .increment(1);
            })?;
        Ok(Registration {
            id,
            outgoing,
            close_signal,
            positions,
        })
    }

    /// How many sockets are open: a connection's socket stays open a little
    /// after the connection left the registry, while its close frame goes
    /// out (2 s at most).
    pub fn open_sockets(&self) -> usize {
        self.inner.open_sockets.load(Ordering::Relaxed)
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

/// The answer to a refused upgrade: 503 when the server is full, 429 past
/// a limit of a user or an address, with the reason in words.
fn refusal(refused: Refused) -> Response {
    metrics::counter!("realtime_refusals_total", "limit" => refused.label()).increment(1);
    let status = match refused {
        Refused::Full => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::TOO_MANY_REQUESTS,
    };
    (status, refused.reason()).into_response()
}
