//! The health check: whether this process can serve, for load balancers
//! (`GET /health` on the application's listener: a status and nothing
//! more), and how its events reach the other processes, for operators
//! (`GET /health` on the metrics listener, `METRICS_ADDR`).

use axum::{Json, http::StatusCode};
use realtime::server::Hub;
use serde_json::{Value, json};

use crate::database::Database;

/// The full report: `status` (`"ok"`, or `"unavailable"` with a `reason`
/// when the database does not answer, with 503) and `events`: the
/// backplane (`"off"` for one process, `"connected"`, or `"disconnected"`:
/// Redis is down, this process serves its own connections only, and the
/// status stays 200) and how many other processes it hears from.
pub async fn report(database: &Database, hub: &Hub) -> (StatusCode, Json<Value>) {
    let backplane = match hub.backplane_connected() {
        None => "off",
        Some(true) => "connected",
        Some(false) => "disconnected",
    };
    let events = json!({ "backplane": backplane, "peers": hub.peers() });
    match database.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "ok", "events": events })),
        ),
        Err(error) => {
            tracing::warn!(%error, "health check: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "unavailable",
                    "reason": "database unreachable",
                    "events": events,
                })),
            )
        }
    }
}

/// What anyone may be told: the status alone. How many processes there
/// are and whether Redis is reachable is for operators.
pub async fn public(database: &Database, hub: &Hub) -> (StatusCode, Json<Value>) {
    let (status, Json(report)) = report(database, hub).await;
    (status, Json(json!({ "status": report["status"] })))
}
