//! Which tab made the current server-function call.
//!
//! [`crate::RealtimeClient`] marks every call with two headers: the tab's
//! connection ([`protocol::CONNECTION_HEADER`], or `none`) and the tab's id
//! ([`protocol::TAB_HEADER`]). The hub leaves out ("everyone but the
//! caller") or reaches ("to the caller") the *tab*: bound to the call's
//! session ([`TabMark`]), it names the same connections on every process
//! and in every replay, and a call naming a tab of another session names
//! none.

use axum::http::{HeaderMap, request::Parts};

use super::{SessionKey, TabMark};
use crate::{ConnectionId, protocol, stream::TabId};

/// The application's answer to "which session made this request?".
pub(super) type CallerSession = Box<dyn Fn(&Parts) -> Option<SessionKey> + Send + Sync>;

/// The connection of the browser tab that made the current server-function
/// call, as the call names it ([`protocol::CONNECTION_HEADER`]). `None`
/// outside a server function, or when the tab had no open connection.
/// Not checked against the call's session: to leave the caller out or to
/// reach it, use [`super::Emit::except_caller`] and [`Hub::to_caller`],
/// which are.
pub fn caller() -> Option<ConnectionId> {
    leptos::prelude::use_context::<Parts>().and_then(|parts| caller_from_headers(&parts.headers))
}

/// The calling connection named in a request's headers (none for
/// [`protocol::NO_CONNECTION`]).
pub fn caller_from_headers(headers: &HeaderMap) -> Option<ConnectionId> {
    headers
        .get(protocol::CONNECTION_HEADER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The tab a request names, if it names one.
fn tab_from_headers(headers: &HeaderMap) -> Option<TabId> {
    headers
        .get(protocol::TAB_HEADER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// How a hub tells which tab made a call, and binds tabs to sessions: the
/// application's way to read a request's session
/// ([`super::HubBuilder::caller_session`]), if it gave one.
pub(super) struct Callers {
    session: Option<CallerSession>,
}

impl Callers {
    pub fn new(session: Option<CallerSession>) -> Self {
        Self { session }
    }

    /// The tab that made the current server-function call, bound to the
    /// call's session. `None` outside a server function, or for a call that
    /// names no tab. In debug builds, a call that did not come through
    /// `RealtimeClient` is a warning (`what` is the emit that needed it).
    pub fn current(&self, what: &'static str) -> Option<TabMark> {
        let parts = leptos::prelude::use_context::<Parts>()?;
        warn_if_unmarked(&parts, what);
        let tab = tab_from_headers(&parts.headers)?;
        let session = self.session.as_ref().and_then(|session| session(&parts));
        Some(self.mark(tab, session.as_ref()))
    }

    /// A tab's mark, bound to `session` when the hub knows the sessions of
    /// calls (otherwise to none, for connections and calls alike).
    pub fn mark(&self, tab: TabId, session: Option<&SessionKey>) -> TabMark {
        TabMark::of(tab, self.session.as_ref().and(session))
    }
}

/// In debug builds, warns (once per server function) when `to_caller()`
/// or `except_caller()` runs in a request that did not come through
/// [`crate::RealtimeClient`]: the server cannot tell which tab called, so
/// the caller gets its own event (or `to_caller` reaches nobody), silently.
fn warn_if_unmarked(parts: &Parts, what: &'static str) {
    if !cfg!(debug_assertions) || parts.headers.contains_key(protocol::CONNECTION_HEADER) {
        return;
    }
    static WARNED: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let server_fn = parts.uri.path().to_owned();
    let first = WARNED
        .lock()
        .map(|mut warned| warned.insert(server_fn.clone()))
        .unwrap_or(false);
    if first {
        tracing::warn!(
            server_fn,
            "{what} in a call that did not come through realtime::RealtimeClient: \
             the server cannot tell which tab called, so the calling tab gets its own event. \
             Add `client = realtime::RealtimeClient` to the server function's #[server(...)]"
        );
    }
}
