//! The server side: one [`Hub`] per process.
//!
//! The hub accepts WebSocket upgrades, runs one task per connection, and
//! delivers events. It is a cheap, cloneable handle, so emitting works from
//! anywhere: server functions, handlers, spawned tasks.
//!
//! Each piece of state has one owner, which holds it behind its own lock
//! and says in its methods what it does with it; the hub wires them
//! together and holds the public API:
//!
//! | Owner | What it holds |
//! |---|---|
//! | `registry/` | the connections, users, sessions, tabs and rooms, and each connection's queue |
//! | `streams/` | the history of durable events (or the mirror of a shared one), placing events, recovering what a tab missed; it takes its lock before the registry's, and only it may hold both |
//! | `presence/` | who is in each room, here and on the other processes, and what was last sent |
//! | `broker/` | the other processes: one process alone ([`broker`]'s local broker), or Redis |
//! | `sessions.rs` | the sessions that ended lately, and the application's check of expired ones |
//! | `pace.rs` | how fast each user or address may open connections |
//! | `join_rules.rs` | who may join which kind of room |
//!
//! The hub's own files, on top of them:
//!
//! | File | Job |
//! |---|---|
//! | `config.rs` | the limits and settings: [`HubConfig`] |
//! | `identity.rs` | who a connection belongs to: [`Identity`], [`SessionKey`], [`TabMark`] |
//! | `target.rs` | who an event goes to: [`Target`] |
//! | `caller.rs` | which tab made the current server-function call |
//! | `emit.rs` | the public emit API: [`Emit`], [`IntoUserIds`] |
//! | `broadcast.rs` | events that carry their own targets: [`Broadcast`] |
//! | `membership.rs` | putting connections in rooms and taking them out |
//! | `close.rs` | closing connections (the slow-client chain) |
//! | `signal.rs` | why a connection closes ([`CloseReason`]), and how its task is told |
//! | `inbox.rs` | what the broker hands to this hub: events and news from the other processes |
//! | `connection/` | the task that serves one WebSocket, and a browser's joins (`joins.rs`) |
//! | `documented.rs` | a test: `docs/protocol.md`'s limits against the code |
//! | `refusals.rs` | why a connection is refused, and how each refusal is told |
//! | `origin.rs` | the `Origin` check on upgrades: [`Origins`] |
//! | `bench.rs` | connections drained in memory, for the fan-out benchmark (the `bench` feature only) |
//!
//! Data flows one way: emit → streams (durable) → broker → (every process)
//! → streams → registry → each connection's queue → its task. A volatile
//! emit goes to the registry here, and through the broker to the others'.
//! No owner calls up: the registry knows nothing of closing, presence or
//! recovery; what one delivery overflowed comes back to the hub, which
//! closes those connections (`close.rs`).

#[cfg(feature = "bench")]
mod bench;
mod broadcast;
pub mod broker;
mod caller;
mod close;
mod config;
mod connection;
#[cfg(test)]
mod documented;
mod emit;
mod identity;
mod inbox;
mod join_rules;
mod membership;
mod origin;
mod pace;
mod presence;
mod refusals;
mod registry;
mod sessions;
mod signal;
mod streams;
mod target;

use std::{
    collections::HashSet,
    fmt,
    future::Future,
    sync::{
        Arc, Weak,
        atomic::{AtomicUsize, Ordering},
    },
};

use axum::{
    extract::ws::WebSocketUpgrade,
    http::{HeaderMap, StatusCode, request::Parts},
    response::{IntoResponse, Response},
};

#[cfg(feature = "bench")]
pub use self::bench::Drained;
pub use self::{
    broadcast::Broadcast,
    broker::Placement,
    caller::{caller, caller_from_headers},
    config::HubConfig,
    emit::{Emit, EmitError, IntoUserIds},
    identity::{Identity, SessionKey, TabMark, ipv6_block},
    join_rules::{JoinRequest, Refusal},
    origin::Origins,
    refusals::Refused,
    registry::RegistryStats,
    signal::CloseReason,
    target::Target,
};
use self::{
    broker::{Broker, LocalBroker},
    caller::{CallerSession, Callers},
    inbox::HubInbox,
    join_rules::JoinRules,
    pace::{ActorBuckets, Pace},
    presence::{Listing, Presence},
    registry::{Delivery, Limits, Registry},
    sessions::{EndedSessions, SessionCheck},
    streams::Streams,
};
use crate::{Position, Room, Stream, protocol::Resume};

/// The real-time hub of one process. Clone it freely: clones share one
/// hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    config: HubConfig,
    registry: Arc<Registry>,
    streams: Streams,
    presence: Presence,
    broker: Arc<dyn Broker>,
    join_rules: JoinRules,
    /// Sessions that ended lately (see `sessions.rs`).
    ended_sessions: EndedSessions,
    /// The application's check of which sessions have ended.
    session_check: Option<SessionCheck>,
    /// Which tab made a call, bound to its session.
    callers: Callers,
    /// How fast each user or visitor's address may open connections.
    pace: Pace,
    /// How many reads of the shared history each user's or visitor's
    /// joins may cause (`connection/joins.rs`).
    shared_reads: ActorBuckets,
    /// How many room rules each user's or visitor's joins may run
    /// (`connection/joins.rs`).
    rule_checks: ActorBuckets,
    /// Sockets whose task still holds them (open file descriptors).
    open_sockets: AtomicUsize,
    /// Where the connections' tasks run, if not where their upgrade was
    /// accepted ([`HubBuilder::socket_runtime`]).
    socket_runtime: Option<tokio::runtime::Handle>,
}

/// Makes a broker for the hub's settings, when the hub is built.
type MakeBroker = Box<dyn FnOnce(&HubConfig) -> Arc<dyn Broker> + Send>;

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Hub`]: its limits, the authorisation rule of each kind of
/// room, and how it meets other processes.
pub struct HubBuilder {
    config: HubConfig,
    join_rules: JoinRules,
    presence_kinds: HashSet<&'static str>,
    session_check: Option<SessionCheck>,
    caller_session: Option<CallerSession>,
    broker: MakeBroker,
    socket_runtime: Option<tokio::runtime::Handle>,
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

    /// How the hub learns the session of a server-function call, the same
    /// one its WebSocket connections were opened with ([`Identity::session`]):
    /// a call then names only a tab of its own session to leave out
    /// (`except_caller`) or to reach (`to_caller`); naming another
    /// session's tab names none. Without it, a call's tab is taken at its
    /// word (tab ids are random and never told to other browsers).
    pub fn caller_session(
        mut self,
        session: impl Fn(&Parts) -> Option<SessionKey> + Send + Sync + 'static,
    ) -> Self {
        self.caller_session = Some(Box::new(session));
        self
    }

    /// Shares events with the other processes on the same Redis server and
    /// channel (feature `redis`): they act as one hub. The history of
    /// durable events then lives in Redis, and each process keeps a mirror
    /// of it. The backplane connects when the hub is built, in the
    /// background, and reconnects by itself; [`Hub::shutdown`] stops it.
    #[cfg(feature = "redis")]
    pub fn backplane(mut self, redis: broker::redis::RedisBackplane) -> Self {
        self.broker = Box::new(move |config| {
            Arc::new(redis.into_broker(config.history_limits(), config.max_event_bytes))
        });
        self
    }

    /// Shares events with the other hubs of this process on the same
    /// [`broker::MemoryBackplane`], as if they were processes on one Redis
    /// server: for tests of what crosses processes, without Redis.
    pub fn memory_backplane(mut self, node: &broker::MemoryNode) -> Self {
        let broker = node.broker();
        self.broker = Box::new(move |_| Arc::new(broker));
        self
    }

    /// Runs every connection's task on `runtime` rather than on the
    /// runtime that accepted its upgrade.
    ///
    /// An emit to thousands of tabs wakes thousands of tasks at once, and
    /// a runtime runs what it woke in turn: on the runtime that also serves
    /// requests, each step of a server function (its request read, every
    /// database answer) waits behind them. On a runtime of their own, the
    /// sockets queue only behind each other, and requests are answered
    /// sooner. What the connections start runs there too (the presence
    /// task, started by a first join), so the runtime must outlive the hub;
    /// on shutdown, wait for [`Hub::sockets_closed`] before stopping it.
    pub fn socket_runtime(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.socket_runtime = Some(runtime);
        self
    }

    pub fn build(self) -> Hub {
        let config = self.config;
        let broker = (self.broker)(&config);
        let registry = Arc::new(Registry::new(Limits {
            total: config.max_connections,
            anonymous: config.max_anonymous_connections,
            per_user: config.max_connections_per_user,
            anonymous_per_address: config.max_anonymous_per_address,
            rooms_per_connection: config.max_rooms_per_connection,
        }));
        let hub = Hub {
            inner: Arc::new(HubInner {
                streams: Streams::new(&config, Arc::clone(&registry), Arc::clone(&broker)),
                presence: Presence::new(
                    self.presence_kinds,
                    config.presence_window,
                    Listing {
                        max_members: config.max_presence_listed,
                        max_bytes: config.max_event_bytes,
                    },
                ),
                registry,
                broker,
                join_rules: self.join_rules,
                ended_sessions: EndedSessions::default(),
                session_check: self.session_check,
                callers: Callers::new(self.caller_session),
                pace: Pace::new(
                    config.new_connections_per_minute,
                    config.new_connection_burst,
                ),
                shared_reads: ActorBuckets::new(
                    governor::Quota::per_second(std::num::NonZeroU32::MIN)
                        .allow_burst(connection::SHARED_READS_BURST),
                ),
                rule_checks: ActorBuckets::new(
                    governor::Quota::per_second(connection::RULE_CHECKS_PER_SECOND)
                        .allow_burst(connection::RULE_CHECKS_BURST),
                ),
                open_sockets: AtomicUsize::new(0),
                socket_runtime: self.socket_runtime,
                config,
            }),
        };
        let weak = Arc::downgrade(&hub.inner);
        hub.inner
            .presence
            .set_starter(move || start_presence_task(weak.clone()));
        let inbox = HubInbox::new(Arc::downgrade(&hub.inner));
        hub.inner.broker.start(Arc::new(inbox));
        hub
    }
}

impl Hub {
    pub fn builder() -> HubBuilder {
        HubBuilder {
            config: HubConfig::default(),
            join_rules: JoinRules::default(),
            presence_kinds: HashSet::new(),
            session_check: None,
            caller_session: None,
            broker: Box::new(|_| Arc::new(LocalBroker)),
            socket_runtime: None,
        }
    }

    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// Answers a WebSocket upgrade request: checks its `Origin` (403 when
    /// refused), the pace of new connections and the connection limits
    /// (503 when the server is full, 429 past the limit of a user or an
    /// address), then serves the connection as `identity` until it closes.
    /// Every attempt spends from its actor's pace, refused or not: a script
    /// retrying past a limit soon meets [`Hub::refuse_early`].
    ///
    /// `resume` (read from the request's query) says how far the tab had
    /// read before: what it missed since is replayed first.
    pub fn accept(
        &self,
        upgrade: WebSocketUpgrade,
        headers: &HeaderMap,
        identity: Identity,
        resume: Resume,
    ) -> Response {
        if let Some(refused) = self.refuse_origin(headers) {
            return refused;
        }
        let checked = self
            .inner
            .pace
            .allow(&identity)
            .and_then(|()| self.inner.registry.check(&identity));
        if let Err(refused) = checked {
            tracing::debug!(?refused, user = ?identity.user, address = ?identity.address, "WebSocket upgrade refused");
            return refused.into_response();
        }
        connection::upgrade(self.clone(), upgrade, identity, resume)
    }

    /// Refuses a WebSocket upgrade before the application reads its
    /// session, as [`Hub::accept`] would answer: from an `Origin` not
    /// allowed (403), or when the session's user was refused for opening
    /// connections too fast and may not open one yet (429). A page of
    /// another site, or a script reopening its socket in a loop, then
    /// costs no database read per attempt. `None`: read the session, then
    /// [`Hub::accept`].
    pub fn refuse_early(
        &self,
        headers: &HeaderMap,
        session: Option<&SessionKey>,
    ) -> Option<Response> {
        if let Some(refused) = self.refuse_origin(headers) {
            return Some(refused);
        }
        let refused = self.inner.pace.still_refused(session?);
        refused.then(|| Refused::TooFast.into_response())
    }

    /// 403 for an upgrade from an `Origin` not allowed.
    fn refuse_origin(&self, headers: &HeaderMap) -> Option<Response> {
        let refused = self.inner.config.origins.check(headers).err()?;
        tracing::warn!(origin = %refused, "WebSocket upgrade refused: origin not allowed");
        metrics::counter!("realtime_refusals_total", "limit" => "origin").increment(1);
        Some((StatusCode::FORBIDDEN, "origin not allowed").into_response())
    }

    /// Where `stream` is now, to recover from later: what a page rendered
    /// now embeds, so that its socket gets every durable event emitted
    /// after the render. `None` when the history is turned off, or (with
    /// Redis) when Redis must be read and cannot be; a page given `None`
    /// counts what it may have missed as missed once its tab follows the
    /// stream.
    pub async fn position(&self, stream: &Stream) -> Option<Position> {
        let (position, told) = self.inner.streams.position(stream).await;
        self.finish(told);
        position
    }

    /// How many sockets are open: a connection's socket stays open a little
    /// after the connection left the registry, while its close frame goes
    /// out (2 s at most).
    pub fn open_sockets(&self) -> usize {
        self.inner.open_sockets.load(Ordering::Relaxed)
    }

    /// Waits until every socket is closed, or for a close handshake's
    /// bound and a second more at most. Call it after
    /// [`Hub::disconnect_all`] and before stopping the runtime the sockets
    /// run on ([`HubBuilder::socket_runtime`]): stopping it sooner cuts
    /// their close handshakes off, and the browsers see 1006 rather than
    /// the reason.
    pub async fn sockets_closed(&self) {
        let deadline = tokio::time::Instant::now()
            + connection::CLOSE_TIMEOUT
            + std::time::Duration::from_secs(1);
        while self.open_sockets() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// How many connections, users, sessions and rooms the registry holds.
    pub fn stats(&self) -> RegistryStats {
        self.inner.registry.stats()
    }

    /// Whether the backplane is connected: `None` without a backplane.
    pub fn backplane_connected(&self) -> Option<bool> {
        self.inner.broker.connected()
    }

    /// How many other processes this one has heard from recently.
    pub fn peers(&self) -> usize {
        self.inner.broker.peers()
    }

    /// How many messages this process received through the backplane so
    /// far (0 alone).
    pub fn backplane_received(&self) -> u64 {
        self.inner.broker.received()
    }

    /// Says goodbye to the other processes (so they forget this one's
    /// presence at once) and stops the backplane. Call it after closing the
    /// connections on shutdown, so their departures go out first.
    pub async fn shutdown(&self) {
        self.inner.broker.stop().await;
    }

    /// Closes the connections whose queue was full, counts the deliveries,
    /// and returns how many there were.
    fn finish(&self, outcome: Delivery) -> usize {
        if !outcome.overflowed.is_empty() {
            self.close_too_slow(&outcome.overflowed);
        }
        metrics::counter!("realtime_deliveries_total").increment(outcome.queued as u64);
        outcome.queued
    }
}

/// Starts the task that sends presence: it waits for changes, lets a
/// window's worth gather, then sends. It holds the hub only while it
/// sends, and ends when the hub is gone.
fn start_presence_task(hub: Weak<HubInner>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // Without a runtime there are no connections to tell.
        tracing::debug!("presence changed outside a Tokio runtime");
        return;
    };
    let Some(inner) = hub.upgrade() else {
        return;
    };
    let wake = inner.presence.waker();
    let window = inner.presence.window();
    drop(inner);
    runtime.spawn(async move {
        loop {
            wake.notified().await;
            tokio::time::sleep(window).await;
            let Some(inner) = hub.upgrade() else {
                return;
            };
            let hub = Hub { inner };
            let outcome = hub
                .inner
                .presence
                .flush(&hub.inner.registry, &*hub.inner.broker);
            hub.finish(outcome);
        }
    });
}
