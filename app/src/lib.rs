//! The reference application: its pages, components and server functions.
//!
//! The same crate is compiled twice. With the `ssr` feature it is part of
//! the server (`server/`), which renders pages to HTML and runs the server
//! functions; with `hydrate` it is part of the wasm bundle (`frontend/`),
//! which takes over the rendered page in the browser. The two features are
//! never on in one build.
//!
//! Layout:
//! - [`auth`]: who the visitor is (accounts, sessions, the forms' actions).
// @chat-begin
//! - [`chat`]: rooms, messages, presence, typing: the real-time tour.
// @chat-end
//! - [`events`]: announcements to every tab, notifications to one user.
//! - [`topics`]: the smallest kind of room (logged-in users, presence).
//! - [`dev`]: a ping to any target, for tests (debug builds only).
//! - [`jobs`]: background jobs, such as a periodic digest (server only).
//! - [`error`]: the one error type of server functions, and its HTTP status.
//! - [`input`]: the rule for each kind of text and number people type.
//! - [`live_records`]: records a page shows, with the changes it hears.
//! - [`layout`]: the frame around every page (header, connection to the user).
//! - [`pages`]: one module per page.
//!
//! The server (`server/`) knows the application through this file, and
//! through [`auth::session`] for the session cookie and the WebSocket's
//! identity: [`App`] and [`shell`] to render, [`AppContext`] for server
//! functions, [`join_rules`] for the real-time hub, and [`error::AppError`]
//! to give a failed server function its HTTP status.
//!
//! ## Where things live
//!
//! - **Who may join a room**: [`join_rules`] registers each kind of room's
//!   rule ([`topics::register`] is the smallest). The session becomes the
//!   socket's user in [`auth::session::websocket_identity`].
//! - **What happens to a slow tab**: the `realtime` hub closes it (code
//!   4008; `realtime/src/server/close.rs` has the chain); it reconnects
//!   and is replayed what it missed, or, when that cannot be, the page
//!   loads its data again (`realtime::use_missed`).
//! - **How an emit reaches another process**: server functions emit through
//!   [`AppContext::events`], the hub; with `REDIS_URL` set, the server
//!   attaches the hub to Redis and `realtime`'s backplane carries it.
//! - **Where the wire format is**: the events are the [`realtime::Event`]
//!   types of each feature's module ([`events`], [`dev`]); the frames
//!   around them are in `docs/protocol.md`. Server functions answer with JSON, their errors
//!   as [`error::AppError`].

pub mod auth;
// @chat-begin
pub mod chat;
// @chat-end
#[cfg(feature = "ssr")]
pub mod client_addr;
pub mod components;
pub mod dev;
pub mod error;
pub mod events;
pub mod input;
#[cfg(feature = "ssr")]
pub mod jobs;
pub mod layout;
#[cfg(feature = "ssr")]
pub mod limits;
pub mod live_records;
pub mod pages;
pub mod topics;

// The live resources' modules: scripts/new-resource adds each resource's module above this line.

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::{
    SsrMode, StaticSegment,
    components::{Outlet, ParentRoute, Route, Router, Routes},
};

use crate::{
    layout::Layout,
    pages::{HomePage, LogInPage, NotFoundPage, PeoplePage, RealtimeLab, SignUpPage},
};

/// The application's own settings, which the server reads from the
/// environment (the README's "Configuration" table).
#[cfg(feature = "ssr")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSettings {
    /// The rate of each rate-limited action (`LIMIT_*`).
    pub limits: limits::LimitsConfig,
    /// How many password hashes run at once (`PASSWORD_HASHING_*`).
    pub hashing: auth::password::HashingConfig,
    /// Which background jobs run, and how often (`SIGN_UP_DIGEST_SECS`).
    pub jobs: jobs::JobsConfig,
    /// How often, at most, a session in use is written back to move its
    /// expiry ([`auth::session::DEFAULT_TOUCH_EVERY`]).
    pub session_touch_every: std::time::Duration,
}

#[cfg(feature = "ssr")]
impl Default for AppSettings {
    fn default() -> Self {
        Self {
            limits: Default::default(),
            hashing: Default::default(),
            jobs: Default::default(),
            session_touch_every: auth::session::DEFAULT_TOUCH_EVERY,
        }
    }
}

/// What the server hands to server functions and to server-side rendering,
/// as Leptos context. The server builds it once at start-up.
#[cfg(feature = "ssr")]
#[derive(Clone, Debug)]
pub struct AppContext {
    /// The database, for jobs and for stores made per call.
    pub db: sqlx::AnyPool,
    pub users: auth::store::Users,
    // @chat-begin
    pub chat: chat::store::Chat,
    // @chat-end
    /// The real-time hub: emit events from any server function.
    pub events: realtime::server::Hub,
    /// Rate limits per address, account and user.
    pub limits: limits::Limits,
    /// How often, at most, a session in use is written back.
    pub session_touch_every: std::time::Duration,
}

#[cfg(feature = "ssr")]
impl AppContext {
    pub fn new(db: sqlx::AnyPool, events: realtime::server::Hub, settings: &AppSettings) -> Self {
        let hasher = auth::password::Hasher::new(settings.hashing);
        Self {
            // @chat-begin
            chat: chat::store::Chat::new(db.clone()),
            // @chat-end
            users: auth::store::Users::new(db.clone(), hasher),
            db,
            events,
            limits: limits::Limits::new(&settings.limits),
            session_touch_every: settings.session_touch_every,
        }
    }

    /// The context of the current request.
    ///
    /// Missing context during a request is a bug in the server's set-up: it
    /// is logged as an error, and the request fails as an internal error.
    /// Without any request at all, the call comes from a resource left over
    /// from a page render that has already finished (Leptos can start one
    /// while tearing a render down); it fails quietly, as nobody is waiting.
    #[track_caller]
    pub fn expect() -> Result<Self, error::AppError> {
        let caller = std::panic::Location::caller();
        use_context::<Self>().ok_or_else(|| {
            if use_context::<http::request::Parts>().is_some() {
                tracing::error!(%caller, "AppContext was not provided to the server function");
            } else {
                tracing::debug!(%caller, "a server function ran after its request ended");
            }
            error::AppError::Internal
        })
    }
}

/// Adds the application's kinds of room to the hub being built, each with
/// its join rule (and presence, where tracked). `db` is there for rules
/// that read the database.
#[cfg(feature = "ssr")]
pub fn join_rules(
    builder: realtime::server::HubBuilder,
    db: sqlx::AnyPool,
) -> realtime::server::HubBuilder {
    // @chat-begin
    let builder = chat::join_rule::register(builder, db);
    // @chat-end
    // @no-chat: let _ = db;
    topics::register(builder)
}

/// The HTML document around the application, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The product's name as people read it: the page title and the header's
/// brand.
// @template-begin
// `scripts/new-project --title` sets it.
// @template-end
pub const TITLE: &str = "Leptos Realtime";

/// How pages are rendered on the server: streamed in order, each
/// `<Suspense>` waiting for its data in place. The HTML is complete as it
/// arrives, so pages work before (and without) the wasm bundle, and the
/// header never flashes "Log in" for a logged-in user.
const RENDERING: SsrMode = SsrMode::InOrder;

/// The application: global context, the stylesheet, and the routes.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    realtime::provide_realtime();
    mark_hydrated();

    view! {
        // cargo-leptos hot-swaps the stylesheet with id "leptos" in `watch`.
        <Stylesheet id="leptos" href="/pkg/app.css" />
        <Title text=TITLE />
        <Router>
            // The layout is a route too, around every page: Leptos hands a
            // form's error (from a post without JavaScript) to the actions
            // created inside <Routes>, and the layout creates them.
            <Routes fallback=|| view! { <Layout><NotFoundPage /></Layout> }>
                <ParentRoute
                    path=StaticSegment("")
                    view=|| view! { <Layout><Outlet /></Layout> }
                    ssr=RENDERING
                >
                    <Route path=StaticSegment("") view=HomePage ssr=RENDERING />
                    <Route path=StaticSegment("signup") view=SignUpPage ssr=RENDERING />
                    <Route path=StaticSegment("login") view=LogInPage ssr=RENDERING />
                    <Route path=StaticSegment("people") view=PeoplePage ssr=RENDERING />
                    // @chat-begin
                    <Route
                        path=(StaticSegment("rooms"), leptos_router::ParamSegment("id"))
                        view=crate::pages::RoomPage
                        ssr=RENDERING
                    />
                    // @chat-end
                    <Route
                        path=(StaticSegment("dev"), StaticSegment("realtime"))
                        view=RealtimeLab
                        ssr=RENDERING
                    />
                    // scripts/new-resource adds each resource's routes above this line.
                </ParentRoute>
            </Routes>
        </Router>
    }
}

/// Sets `data-hydrated` on `<html>` once the page is interactive.
///
/// Effects only run in the browser, after hydration, so end-to-end tests wait
/// for `html[data-hydrated]` before they click: a click on the server-rendered
/// markup before then would be lost.
fn mark_hydrated() {
    Effect::new(|_| {
        if let Some(root) = document().document_element() {
            // Setting an attribute on <html> cannot fail in practice; a test
            // waiting for the marker would report it if it did.
            let _ = root.set_attribute("data-hydrated", "");
        }
    });
}
