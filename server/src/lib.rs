//! The server: configuration, database, sessions, routes and shutdown.
//!
//! `main.rs` only sets up logging and waits for a signal; everything else is
//! here, so integration tests can start the very same server on a free port.
//!
//! Layout:
//! - [`config`]: settings from environment variables, with defaults.
//! - [`database`]: opening the database (SQLite or PostgreSQL) and applying
//!   migrations.
//! - [`session_store`]: tower-sessions' store for either database.
//! - `session_cookie`: refusing requests that carry two session cookies.
//! - `routes`: the axum router: pages, server functions, static files,
//!   the WebSocket endpoint, the health check, and the session layer.
//! - [`connections`]: accepting connections and serving HTTP on them,
//!   with header-read timeouts.
//! - [`client_addr`]: which address a request comes from (behind trusted
//!   proxies too).
//! - `cross_site`: refusing server-function calls from other sites.
//! - `body_limit`: refusing request bodies over the limit.
//! - `error_status`: the HTTP status of a failed server function.
//! - [`form_errors`]: showing only the form errors in URLs this server
//!   wrote.
//! - `health`: the health check, short for anyone, detailed for operators.
//! - [`metrics`]: Prometheus metrics, on a listener of their own.
//! - [`shutdown`]: waiting for SIGINT or SIGTERM.
//! - [`sockets`]: the runtime the WebSocket connections run on, apart from
//!   the one that answers requests.
//!
//! ## Where things live
//!
//! - **Who may join a room**: the application's rules
//!   (`app::join_rules`), added to the hub in [`realtime_hub`]. The
//!   WebSocket (`GET /ws`, in `routes`) belongs to the session's user, as
//!   `app::auth::session::websocket_identity` says.
//! - **What happens to a slow tab**: the `realtime` hub closes it with code
//!   4008 (`realtime/src/server/close.rs`).
//! - **How an emit reaches another process**: [`realtime_hub`] puts the
//!   hub on Redis when `REDIS_URL` is set (`realtime::server::broker`);
//!   without it the process is on its own.
//! - **Where the wire format is**: `docs/protocol.md`; the WebSocket is
//!   served at `realtime::protocol::PATH` (`/ws`).

mod body_limit;
pub mod client_addr;
pub mod config;
pub mod connections;
mod cross_site;
pub mod database;
mod error_status;
pub mod form_errors;
mod health;
pub mod metrics;
mod routes;
mod session_cookie;
pub mod session_store;
pub mod shutdown;
pub mod sockets;

use std::{future::Future, io, net::SocketAddr, time::Duration};

use connections::HttpLimits;

use app::AppContext;
use realtime::server::{
    Hub,
    broker::redis::{BackplaneError, RedisBackplane},
};
use thiserror::Error;
use tokio::net::TcpListener;
use tower_sessions::ExpiredDeletion;

pub use crate::{
    config::Config,
    database::{Database, DatabaseError},
    metrics::Metrics,
    routes::{app, router},
    sockets::SocketRuntime,
};

/// How often expired sessions are deleted from the session table.
const EXPIRED_SESSION_SWEEP: Duration = Duration::from_secs(60 * 60);

/// The process's real-time hub, with the application's rooms, the session
/// table to check the sessions of its connections against, and, when
/// `REDIS_URL` is set, Redis to share events with the other processes (it
/// connects in the background: an unreachable Redis is no error).
///
/// With `sockets`, the connections' tasks run there ([`sockets`]).
pub fn realtime_hub(
    config: &Config,
    database: &Database,
    sockets: Option<tokio::runtime::Handle>,
) -> Result<Hub, BackplaneError> {
    let sessions = database.clone();
    let mut builder = Hub::builder()
        .config(config.realtime.clone())
        .session_check(move |keys| {
            let sessions = sessions.clone();
            async move {
                sessions
                    .ended_sessions(keys)
                    .await
                    .map_err(|error| error.to_string())
            }
        })
        // A call names its tab; only a tab of the call's own session counts.
        .caller_session(|parts| {
            let session = parts.extensions.get::<tower_sessions::Session>()?;
            app::auth::session::realtime_key(session)
        });
    if let Some(url) = &config.redis_url {
        let backplane = RedisBackplane::new(url)?
            .channel(&config.redis_channel)
            .shards(config.redis_shards);
        builder = builder.backplane(backplane);
    }
    if let Some(sockets) = sockets {
        builder = builder.socket_runtime(sockets);
    }
    Ok(app::join_rules(builder, database.pool.clone()).build())
}

async fn bind(address: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| ServerError::Bind { address, source })
}

/// Why the server could not start, or stopped with an error.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Database(#[from] DatabaseError),
    #[error(transparent)]
    Backplane(#[from] BackplaneError),
    #[error("could not listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: io::Error,
    },
    #[error("could not start the WebSockets' runtime: {0}")]
    SocketRuntime(io::Error),
    #[error("the server stopped with an error: {0}")]
    Serve(io::Error),
}

/// A server with its database open and its port bound, ready to serve.
pub struct Server {
    listener: TcpListener,
    router: axum::Router,
    /// The metrics listener and what it serves, when `METRICS_ADDR` is set.
    metrics: Option<(TcpListener, axum::Router)>,
    /// The timeouts connections are served with.
    http: HttpLimits,
    database: Database,
    hub: Hub,
    /// What the background jobs run with, and which run.
    context: AppContext,
    jobs: app::jobs::JobsConfig,
    /// Where the WebSocket connections run; dropped last, once the hub has
    /// closed them.
    sockets: Option<SocketRuntime>,
}

impl Server {
    /// Opens the database (applying migrations), starts sharing events
    /// through Redis when `REDIS_URL` is set, and binds the listening
    /// address. Port 0 picks a free port; [`Server::local_addr`] tells which.
    ///
    /// An unreachable database is an error; an unreachable Redis is not:
    /// the server starts, serves its own connections, and keeps trying.
    pub async fn bind(config: Config) -> Result<Self, ServerError> {
        if let Some(url) = &config.redis_url {
            // A bad URL stops the server before it opens the database.
            RedisBackplane::new(url)?;
        }
        let database = Database::open(&config.database_url, config.database_pool_size).await?;
        let sockets =
            SocketRuntime::start(config.socket_threads).map_err(ServerError::SocketRuntime)?;
        let hub = realtime_hub(
            &config,
            &database,
            sockets.as_ref().map(SocketRuntime::handle),
        )?;
        let context = AppContext::new(database.pool.clone(), hub.clone(), &config.app);
        let router = routes::router(&config, &database, &hub, &context);
        let listener = bind(config.address()).await?;
        let metrics = match config.metrics_addr {
            Some(address) => Some((
                bind(address).await?,
                Metrics::new(&hub, &context, &database).router(),
            )),
            None => None,
        };
        Ok(Self {
            listener,
            router,
            metrics,
            http: config.http_limits(),
            database,
            hub,
            context,
            jobs: config.app.jobs,
            sockets,
        })
    }

    /// The address metrics are served on, if they are.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, ServerError> {
        self.metrics
            .as_ref()
            .map(|(listener, _)| listener.local_addr().map_err(ServerError::Serve))
            .transpose()
    }

    /// The real-time hub, to emit from outside a request (a background
    /// task, a test).
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The address the server is listening on.
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        self.listener.local_addr().map_err(ServerError::Serve)
    }

    /// Serves requests until `shutdown` completes, then lets requests in
    /// flight finish and closes the database.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let sweeper = tokio::spawn(
            self.database
                .sessions
                .clone()
                .continuously_delete_expired(EXPIRED_SESSION_SWEEP),
        );
        // Sockets close when their session expires.
        let session_watch = tokio::spawn(self.hub.clone().watch_sessions());
        let jobs = app::jobs::start(&self.context, &self.jobs);
        let http = self.http;
        let metrics = self.metrics.map(|(listener, router)| {
            tokio::spawn(connections::serve(
                listener,
                router,
                http,
                std::future::pending(),
            ))
        });
        let hub = self.hub.clone();
        let shutdown = async move {
            shutdown.await;
            // WebSockets would hold the graceful shutdown open forever:
            // close them, and their browsers reconnect to the next server.
            let closed = hub.disconnect_all();
            tracing::info!(connections = closed, "closed the WebSocket connections");
        };
        connections::serve(self.listener, self.router, http, shutdown).await;
        sweeper.abort();
        session_watch.abort();
        for job in jobs {
            job.abort();
        }
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        // The sockets were told to close: their close handshakes finish
        // before their runtime goes.
        self.hub.sockets_closed().await;
        // After the connections closed: their departures go out first.
        self.hub.shutdown().await;
        self.database.close().await;
        // Last: the hub's own tasks may have been started on it (presence,
        // started by the first join).
        drop(self.sockets);
        Ok(())
    }
}
