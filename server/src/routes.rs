//! The axum router: Leptos pages and server functions, static files, the
//! health check, and the layers every request passes through.

use std::sync::OnceLock;

use app::{
    App, AppContext,
    auth::session::{realtime_key, session_cookie_name, websocket_identity},
    client_addr::ClientAddr,
    shell,
};
use axum::{
    Extension, Router,
    extract::{FromRef, State, WebSocketUpgrade},
    http::{HeaderMap, StatusCode},
    middleware,
    response::{IntoResponse, Response},
    routing::get,
};
use leptos::{config::LeptosOptions, prelude::provide_context};
use leptos_axum::{AxumRouteListing, LeptosRoutes, generate_route_list};
use realtime::{protocol::Resume, server::Hub};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tower_sessions::{Expiry, Session, SessionManagerLayer, cookie::SameSite, cookie::time};
use tracing::Level;

use crate::{
    Config, Database,
    config::SessionConfig,
    session_store::{LifetimeCapped, SessionStore},
};

/// State shared by the router's handlers.
#[derive(Clone, FromRef)]
struct ServerState {
    leptos_options: LeptosOptions,
    database: Database,
    hub: Hub,
    context: AppContext,
}

/// Builds the whole application as an axum router, with a context of its
/// own (see [`router`] to share one).
pub fn app(config: &Config, database: &Database, hub: &Hub) -> Router {
    let context = AppContext::new(database.pool.clone(), hub.clone(), &config.app);
    router(config, database, hub, &context)
}

/// Builds the whole application as an axum router around `context`.
pub fn router(config: &Config, database: &Database, hub: &Hub, context: &AppContext) -> Router {
    let context = context.clone();
    let state = ServerState {
        leptos_options: config.leptos.clone(),
        database: database.clone(),
        hub: hub.clone(),
        context: context.clone(),
    };
    let provide_app_context = move || provide_context(context.clone());
    let routes = route_list();

    Router::new()
        .route("/health", get(health))
        .route(realtime::protocol::PATH, get(socket))
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
        // server-function routes, and tracing wraps everything. Requests
        // from other sites, and oversized bodies, are refused before they
        // touch the session.
        .layer(middleware::from_fn(crate::error_status::status_from_error))
        .layer(middleware::from_fn_with_state(
            database.form_error_key.clone(),
            crate::form_errors::sign_and_check,
        ))
        .layer(session_layer(database, &config.session))
        .layer(middleware::from_fn_with_state(
            session_cookie_name(config.session.secure),
            crate::session_cookie::refuse_two_session_cookies,
        ))
        .layer(middleware::from_fn_with_state(
            crate::body_limit::BodyLimits {
                max_bytes: config.max_request_body_bytes,
                read_timeout: config.request_body_timeout,
            },
            crate::body_limit::limit_body,
        ))
        .layer(middleware::from_fn_with_state(
            config.realtime.origins.clone(),
            crate::cross_site::refuse_cross_site,
        ))
        .layer(middleware::from_fn_with_state(
            crate::client_addr::ClientAddrs::new(
                config.trusted_proxies.clone(),
                config.network_prefixes,
            ),
            crate::client_addr::find_client_addr,
        ))
        .layer(
            // One line per request at `info`: method, path, status, latency.
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

/// The application's routes, generated once per process.
///
/// Generating them renders the app while a process-wide flag in Leptos
/// stops resources from loading; a page rendered at that moment on another
/// thread would wait forever. Generated once, before any router exists, no
/// page can ever be rendered while the flag is up (tests build many routers
/// in one process).
fn route_list() -> Vec<AxumRouteListing> {
    static ROUTES: OnceLock<Vec<AxumRouteListing>> = OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// The login session: an HttpOnly cookie holding a random id, with the data
/// in the database; `__Host-session` when it is `Secure`. It expires after
/// `expiry` unused, and `max_lifetime` after the log-in in any case.
fn session_layer(
    database: &Database,
    config: &SessionConfig,
) -> SessionManagerLayer<LifetimeCapped<SessionStore>> {
    let expiry = time::Duration::try_from(config.expiry).unwrap_or(time::Duration::MAX);
    let store = LifetimeCapped::new(database.sessions.clone(), config.max_lifetime);
    SessionManagerLayer::new(store)
        .with_name(session_cookie_name(config.secure))
        .with_http_only(true)
        // Lax, not Strict: following a link to the site from elsewhere must
        // still arrive logged in.
        .with_same_site(SameSite::Lax)
        .with_secure(config.secure)
        .with_expiry(Expiry::OnInactivity(expiry))
}

/// `GET /ws`: the tab's WebSocket. It belongs to the session's user, or is
/// anonymous; a session store or database that cannot answer gets 503 (the
/// browser retries) rather than a silently anonymous connection.
async fn socket(
    upgrade: WebSocketUpgrade,
    session: Session,
    headers: HeaderMap,
    Extension(client): Extension<ClientAddr>,
    resume: Resume,
    State(state): State<ServerState>,
) -> Response {
    // A page of another site, or a session refused a moment ago for
    // reconnecting too fast, is turned away before the session is read
    // from the database.
    if let Some(refused) = state
        .hub
        .refuse_early(&headers, realtime_key(&session).as_ref())
    {
        return refused;
    }
    let context = &state.context;
    match websocket_identity(
        &session,
        &context.users,
        context.session_touch_every,
        client.network,
    )
    .await
    {
        Ok(identity) => state.hub.accept(upgrade, &headers, identity, resume),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// `GET /health`: `{"status":"ok"}` when the server can reach its
/// database, 503 and `{"status":"unavailable"}` when not, for load
/// balancers and start-up scripts. The details are on the metrics
/// listener (`crate::health`).
async fn health(State(state): State<ServerState>) -> impl IntoResponse {
    crate::health::public(&state.database, &state.hub).await
}
