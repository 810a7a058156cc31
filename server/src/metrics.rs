//! Metrics for operators, in Prometheus's text format, served at
//! `/metrics` on a listener of their own (`METRICS_ADDR`, off by default),
//! so that a public proxy in front of the application never exposes them;
//! beside them, `/health` with its details (`crate::health`).
//!
//! Counters are recorded where things happen, through the `metrics` crate:
//! the hub counts deliveries, closes by reason, refusals by limit, emits it
//! refused and events the backplane missed; the application counts the
//! rate limits met and the password checks turned away. Gauges are read at
//! each scrape: connections by kind, open sockets, rooms, password checks
//! waiting, and the backplane's state and peers. The README lists them.

use std::sync::OnceLock;

use app::AppContext;
use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use metrics::{counter, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use realtime::server::Hub;

use crate::database::Database;

/// What a scrape reads.
#[derive(Clone)]
pub struct Metrics {
    exporter: PrometheusHandle,
    hub: Hub,
    context: AppContext,
    database: Database,
}

impl Metrics {
    /// The metrics of this process. The first call installs the recorder
    /// that every counter of the process writes to.
    pub fn new(hub: &Hub, context: &AppContext, database: &Database) -> Self {
        static EXPORTER: OnceLock<PrometheusHandle> = OnceLock::new();
        let exporter = EXPORTER
            .get_or_init(|| {
                let recorder = PrometheusBuilder::new().build_recorder();
                let exporter = recorder.handle();
                if metrics::set_global_recorder(recorder).is_err() {
                    tracing::warn!("another metrics recorder is installed: counters go there");
                }
                exporter
            })
            .clone();
        Self {
            exporter,
            hub: hub.clone(),
            context: context.clone(),
            database: database.clone(),
        }
    }

    /// `GET /metrics`, and nothing else.
    pub fn router(self) -> Router {
        Router::new()
            .route("/metrics", get(scrape))
            .route("/health", get(health))
            .with_state(self)
    }

    /// The gauges as they are now, then everything, as text.
    pub fn render(&self) -> String {
        let stats = self.hub.stats();
        gauge!("realtime_connections", "kind" => "user")
            .set((stats.connections - stats.anonymous) as f64);
        gauge!("realtime_connections", "kind" => "anonymous").set(stats.anonymous as f64);
        gauge!("realtime_open_sockets").set(self.hub.open_sockets() as f64);
        gauge!("realtime_rooms").set(stats.rooms as f64);
        gauge!("app_password_hashing_waiting").set(self.context.users.hasher().waiting() as f64);
        if let Some(connected) = self.hub.backplane_connected() {
            gauge!("realtime_backplane_connected").set(f64::from(u8::from(connected)));
            gauge!("realtime_backplane_peers").set(self.hub.peers() as f64);
            counter!("realtime_backplane_received_total").absolute(self.hub.backplane_received());
        }
        self.exporter.render()
    }
}

/// The health check with its details: the backplane and its peers.
async fn health(State(metrics): State<Metrics>) -> impl IntoResponse {
    crate::health::report(&metrics.database, &metrics.hub).await
}

async fn scrape(State(metrics): State<Metrics>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
}
