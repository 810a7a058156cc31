//! A socket.io broadcast server on socketioxide, the Rust peer an axum
//! user would pick, for `loadgen --peer socketio` (docs/benchmarks.md):
//! every client connects to the default namespace; `POST /broadcast`
//! emits its body as the event `bench` to all of them, as our server's
//! announcement does; `GET /health` answers once it listens. It listens
//! on `LEPTOS_SITE_ADDR`, as the project's own server does, so the load
//! generator starts both the same way.

use std::{net::SocketAddr, time::Duration};

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    routing::{get, post},
};
use socketioxide::{SocketIo, extract::SocketRef};

/// Announces `body` to every connected client.
async fn broadcast(State(io): State<SocketIo>, body: String) -> StatusCode {
    match io.emit("bench", &body).await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address: SocketAddr = std::env::var("LEPTOS_SITE_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".to_owned())
        .parse()
        .map_err(std::io::Error::other)?;
    let (layer, io) = SocketIo::builder()
        // Runs are shorter than this: clients need not answer pings.
        .ping_interval(Duration::from_secs(600))
        .ping_timeout(Duration::from_secs(600))
        .build_layer();
    io.ns("/", async |_: SocketRef| {});
    let app = Router::new()
        .route("/broadcast", post(broadcast))
        .route("/health", get(|| async { "ok" }))
        .with_state(io)
        .layer(layer);
    let listener = tokio::net::TcpListener::bind(address).await?;
    axum::serve(listener, app).await
}
