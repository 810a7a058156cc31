//! The login, as kept in the tower-sessions session, and the one way a
//! session becomes a user: [`session_user`], used by server functions
//! (through [`super::guard`]) and by the WebSocket upgrade
//! ([`websocket_identity`]).
//!
//! A logged-in session holds one entry: the user's id. Everything else about
//! the user is read from the database, so a renamed or deleted account is
//! seen at once.

use std::{
    future::Future,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use realtime::server::{Hub, Identity, SessionKey};
use tower_sessions::Session;

use super::{User, UserId, store::Users};
use crate::{client_addr::Network, error::AppError};

/// Name of the session cookie over plain http (development). The server's
/// session layer uses it, and the server functions look for it to tell
/// "never logged in" from "logged in, but the session is gone".
pub const SESSION_COOKIE_NAME: &str = "session";

/// Its name when it is `Secure` (behind TLS). Browsers take a `__Host-`
/// cookie only over https, for the whole site and without a `Domain`: a
/// page on a sibling subdomain cannot plant one (log-in CSRF, the victim
/// logged in as the attacker).
pub const SECURE_SESSION_COOKIE_NAME: &str = "__Host-session";

/// The session cookie's name, `Secure` or not.
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_SESSION_COOKIE_NAME
    } else {
        SESSION_COOKIE_NAME
    }
}

/// How many cookies named `name` (the session cookie's name, as the
/// server is configured: [`session_cookie_name`]) a request carries, as
/// the session layer reads them. More than one means another page planted
/// its own beside ours: the server refuses such requests rather than guess
/// which is ours. A cookie of the other name is not counted: the session
/// layer never reads it, and counting it would let anyone who can set
/// `session` for the domain shut a `__Host-session` site's visitors out.
pub fn session_cookie_count(headers: &http::HeaderMap, name: &str) -> usize {
    cookie_names(headers).filter(|read| read == name).count()
}

/// The names of the cookies a request carries, as the session layer reads
/// them.
fn cookie_names(headers: &http::HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| std::str::from_utf8(value.as_bytes()).ok())
        .flat_map(|value| value.split(';'))
        .filter_map(read_name)
}

/// Takes out of a request's `Cookie` headers every cookie whose name reads
/// as a session cookie's only once percent-decoded (`%5F_Host-session`,
/// `sessio%6E`). A browser takes such a name, which any sibling subdomain
/// may set, for another cookie than ours, while the session layer decodes
/// it into ours: left in, it would log the person in as whoever planted
/// it. `true` if one was taken out.
pub fn drop_disguised_session_cookies(headers: &mut http::HeaderMap) -> bool {
    let disguised = |pair: &str| {
        read_name(pair).is_some_and(|name| {
            is_session_cookie_name(&name)
                && pair.split_once('=').map(|(raw, _)| raw.trim()) != Some(name.as_str())
        })
    };
    let mut dropped = false;
    let values: Vec<http::HeaderValue> = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| {
            // Read as the session layer reads them; what it cannot read
            // (not UTF-8), it ignores, and so may this.
            let Ok(text) = std::str::from_utf8(value.as_bytes()) else {
                return Some(value.clone());
            };
            if !text.split(';').any(disguised) {
                return Some(value.clone());
            }
            dropped = true;
            let kept: Vec<&str> = text.split(';').filter(|pair| !disguised(pair)).collect();
            let kept = kept.join(";");
            (!kept.trim().is_empty())
                .then(|| http::HeaderValue::from_bytes(kept.as_bytes()).ok())
                .flatten()
        })
        .collect();
    if dropped {
        headers.remove(http::header::COOKIE);
        for value in values {
            headers.append(http::header::COOKIE, value);
        }
    }
    dropped
}

/// A cookie's name as the session layer (tower-cookies) reads it: the
/// pair parsed, its name percent-decoded. `None` if it reads no cookie.
fn read_name(pair: &str) -> Option<String> {
    tower_sessions::cookie::Cookie::parse_encoded(pair)
        .ok()
        .map(|cookie| cookie.name().to_owned())
}

fn is_session_cookie_name(name: &str) -> bool {
    name == SESSION_COOKIE_NAME || name == SECURE_SESSION_COOKIE_NAME
}

/// Session key under which the logged-in user's id is stored.
const USER_ID_KEY: &str = "user_id";

/// Session key under which the time the session was last used is stored,
/// in seconds since the Unix epoch.
const TOUCHED_AT_KEY: &str = "touched_at";

/// Session key under which the time of the log-in is stored, in seconds
/// since the Unix epoch. The session store reads it to end every login a
/// fixed time after it began, however much it is used
/// (`SESSION_MAX_LIFETIME_SECS`): a stolen cookie kept alive by use still
/// dies then.
pub const LOGGED_IN_AT_KEY: &str = "logged_in_at";

/// How often, at most, a session in use is written back to move its
/// expiry (`SESSION_EXPIRY_SECS` after its last use): once a minute by
/// default, so that reading a session does not mean writing it.
pub const DEFAULT_TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The user a session is logged in as, read from the `users` table: `None`
/// for a visitor. A session whose account has been deleted is ended here,
/// so every caller sees a visitor. A logged-in session used more than
/// `touch_every` after it was last written is written again, which moves
/// its expiry: an idle session expires, one in use does not.
pub async fn session_user(
    session: &Session,
    users: &Users,
    touch_every: Duration,
) -> Result<Option<User>, AppError> {
    let Some(id) = user_id(session).await? else {
        return Ok(None);
    };
    let user = users.find(id).await?;
    if user.is_none() {
        log_out(session).await?;
    } else {
        touch(session, touch_every).await?;
    }
    Ok(user)
}

/// Marks a logged-in session as used now, if it was last marked at least
/// `every` ago: the session layer then saves it, with its expiry moved.
/// A login from before [`LOGGED_IN_AT_KEY`] was kept counts as begun now.
async fn touch(session: &Session, every: Duration) -> Result<(), AppError> {
    let now = unix_now();
    let logged_in_at: Option<u64> = session
        .get(LOGGED_IN_AT_KEY)
        .await
        .map_err(log_store_failure)?;
    if logged_in_at.is_none() {
        session
            .insert(LOGGED_IN_AT_KEY, now)
            .await
            .map_err(log_store_failure)?;
    }
    let touched_at: Option<u64> = session
        .get(TOUCHED_AT_KEY)
        .await
        .map_err(log_store_failure)?;
    if touched_at.is_none_or(|touched_at| now.saturating_sub(touched_at) >= every.as_secs()) {
        session
            .insert(TOUCHED_AT_KEY, now)
            .await
            .map_err(log_store_failure)?;
    }
    Ok(())
}

/// Who a WebSocket opened with this session, from `network`, belongs to:
/// its user (named, for presence) and the session, so that ending the
/// session closes it; the network counts a visitor's connections.
pub async fn websocket_identity(
    session: &Session,
    users: &Users,
    touch_every: Duration,
    network: Network,
) -> Result<Identity, AppError> {
    let identity = match session_user(session, users, touch_every).await? {
        Some(user) => Identity {
            user: Some(user.id),
            session: realtime_key(session),
            name: Some(user.name),
            address: None,
        },
        None => Identity::anonymous(),
    };
    Ok(Identity {
        address: Some(network.ip()),
        ..identity
    })
}

/// Marks the session as belonging to `user`.
///
/// The session id is replaced first, so an id planted in the browser before
/// the login (session fixation) is worthless afterwards.
pub async fn log_in(session: &Session, user: UserId) -> Result<(), AppError> {
    session.cycle_id().await.map_err(log_store_failure)?;
    session
        .insert(USER_ID_KEY, user)
        .await
        .map_err(log_store_failure)?;
    let now = unix_now();
    session
        .insert(LOGGED_IN_AT_KEY, now)
        .await
        .map_err(log_store_failure)?;
    session
        .insert(TOUCHED_AT_KEY, now)
        .await
        .map_err(log_store_failure)
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The logged-in user's id, if any.
pub async fn user_id(session: &Session) -> Result<Option<UserId>, AppError> {
    session.get(USER_ID_KEY).await.map_err(log_store_failure)
}

/// Ends the login: deletes the session from the store and tells the browser
/// to drop its cookie.
pub async fn log_out(session: &Session) -> Result<(), AppError> {
    session.flush().await.map_err(log_store_failure)
}

/// The session as the real-time hub knows it, to close its connections.
/// `None` for a visitor's session, which is never stored.
pub fn realtime_key(session: &Session) -> Option<SessionKey> {
    session.id().map(|id| id.to_string().into())
}

/// Ends the session (or replaces it, with `then`: a new login), and only
/// then closes the WebSocket connections opened with it, on every process.
/// In that order, a connection being opened meanwhile either sees the
/// session gone, or registers and is closed: never a socket logged in with
/// a session that ended.
pub async fn end_with_sockets<F, Fut>(session: &Session, hub: &Hub, end: F) -> Result<(), AppError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), AppError>>,
{
    let key = realtime_key(session);
    end().await?;
    if let Some(key) = key {
        hub.disconnect_session(&key);
    }
    Ok(())
}

/// Whether the request carried a session cookie at all (valid or not).
pub fn has_session_cookie(headers: &http::HeaderMap) -> bool {
    cookie_names(headers).any(|name| is_session_cookie_name(&name))
}

/// The session store is the database: when it fails, the database is
/// almost always unreachable (its errors arrive as text, so this cannot be
/// told for sure). Logged here, where the detail is known.
fn log_store_failure(error: tower_sessions::session::Error) -> AppError {
    tracing::warn!(%error, "the session store failed");
    AppError::Unavailable
}
