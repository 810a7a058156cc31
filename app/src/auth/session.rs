//! The login, as kept in the tower-sessions session.
//!
//! A logged-in session holds one entry: the user's id. Everything else about
//! the user is read from the database, so a renamed or deleted account is
//! seen at once.

use tower_sessions::Session;

use super::{AuthError, UserId};

/// Name of the session cookie. The server's session layer uses it, and the
/// server functions look for it to tell "never logged in" from "logged in,
/// but the session is gone".
pub const SESSION_COOKIE_NAME: &str = "session";

/// Session key under which the logged-in user's id is stored.
const USER_ID_KEY: &str = "user_id";

/// Marks the session as belonging to `user`.
///
/// The session id is replaced first, so an id planted in the browser before
/// the login (session fixation) is worthless afterwards.
pub async fn log_in(session: &Session, user: UserId) -> Result<(), AuthError> {
    session.cycle_id().await.map_err(internal)?;
    session.insert(USER_ID_KEY, user).await.map_err(internal)
}

/// The logged-in user's id, if any.
pub async fn user_id(session: &Session) -> Result<Option<UserId>, AuthError> {
    session.get(USER_ID_KEY).await.map_err(internal)
}

/// Ends the login: deletes the session from the store and tells the browser
/// to drop its cookie.
pub async fn log_out(session: &Session) -> Result<(), AuthError> {
    session.flush().await.map_err(internal)
}

/// The session as the real-time hub knows it, to close its connections.
/// `None` for a visitor's session, which is never stored.
pub fn realtime_key(session: &Session) -> Option<realtime::server::SessionKey> {
    session.id().map(|id| id.to_string().into())
}

/// Whether the request carried a session cookie at all (valid or not).
pub fn has_session_cookie(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .any(|(name, _)| name.trim() == SESSION_COOKIE_NAME)
}

/// The session store is the database: when it fails, the database is
/// almost always unreachable (its errors arrive as text, so this cannot be
/// told for sure).
fn internal(error: tower_sessions::session::Error) -> AuthError {
    tracing::warn!(%error, "the session store failed");
    crate::error::set_status(AuthError::Unavailable.status_code());
    AuthError::Unavailable
}
