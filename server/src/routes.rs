//! The axum router: Leptos pages and server functions, static files, the
//! health check, and the layers every request passes through.

use app::{App, AppContext, auth::session::SESSION_COOKIE_NAME, shell};
use axum::{
    Json, Router,
    extract::{FromRef, State},
    http::StatusCode,
    response::IntoResponse,
    routing::get,
};
use leptos::{config::LeptosOptions, prelude::provide_context};
use leptos_axum::{LeptosRoutes, generate_route_list};
use serde_json::json;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tower_sessions::{Expiry, SessionManagerLayer, cookie::SameSite, cookie::time};
use tracing::Level;

use crate::{Config, Database, config::SessionConfig};

/// State shared by the router's handlers.
#[derive(Clone, FromRef)]
struct ServerState {
    leptos_options: LeptosOptions,
    database: Database,
}

/// Builds the whole application as an axum router.
pub fn app(config: &Config, database: &Database) -> Router {
    let state = ServerState {
        leptos_options: config.leptos.clone(),
        database: database.clone(),
    };
    let context = AppContext::new(database.pool.clone());
    let provide_app_context = move || provide_context(context.clone());
    let routes = generate_route_list(App);

    Router::new()
        .route("/health", get(health))
        .leptos_routes_with_context(&state, routes, provide_app_context.clone(), {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        // Files under the site root (the wasm bundle, CSS, public/), else the
        // application's own "not found" page.
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            ServerState,
            _,
        >(provide_app_context, shell))
        // Layers wrap from the inside out: the session layer must wrap the
        // server-function routes, and tracing wraps everything.
        .layer(session_layer(database, &config.session))
        .layer(
            // One line per request at `info`: method, path, status, latency.
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

/// The login session: an HttpOnly cookie holding a random id, with the data
/// in the database.
fn session_layer(
    database: &Database,
    config: &SessionConfig,
) -> SessionManagerLayer<tower_sessions_sqlx_store::SqliteStore> {
    let expiry = time::Duration::try_from(config.expiry).unwrap_or(time::Duration::MAX);
    SessionManagerLayer::new(database.sessions.clone())
        .with_name(SESSION_COOKIE_NAME)
        .with_http_only(true)
        // Lax, not Strict: following a link to the site from elsewhere must
        // still arrive logged in.
        .with_same_site(SameSite::Lax)
        .with_secure(config.secure)
        .with_expiry(Expiry::OnInactivity(expiry))
}

/// `GET /health`: 200 when the server can reach its database, 503 when not.
/// For load balancers and start-up scripts.
async fn health(State(database): State<Database>) -> impl IntoResponse {
    match database.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ok" }))),
        Err(error) => {
            tracing::warn!(%error, "health check: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "reason": "database unreachable" })),
            )
        }
    }
}
