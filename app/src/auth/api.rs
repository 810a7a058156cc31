//! The identity actions the browser can call: sign up, log in, log out, and
//! who am I. Each is a Leptos server function at a fixed URL under
//! `/api/auth/`, so tests and other clients can call it too.

use leptos::prelude::*;

use super::{AuthError, User};

/// Creates an account and logs it in, then sends the browser home.
#[server(prefix = "/api", endpoint = "auth/sign_up")]
pub async fn sign_up(name: String, password: String) -> Result<User, AuthError> {
    use server::*;
    let user = users()?.sign_up(&name, &password).await.map_err(reject)?;
    tracing::info!(user = %user.id, name = %user.name, "signed up");
    start_session(user.id).await?;
    leptos_axum::redirect("/");
    Ok(user)
}

/// Logs in with a name and password, then sends the browser home.
#[server(prefix = "/api", endpoint = "auth/log_in")]
pub async fn log_in(name: String, password: String) -> Result<User, AuthError> {
    use server::*;
    let user = users()?
        .authenticate(&name, &password)
        .await
        .map_err(reject)?;
    tracing::info!(user = %user.id, "logged in");
    start_session(user.id).await?;
    leptos_axum::redirect("/");
    Ok(user)
}

/// Ends the login, if there is one, then sends the browser home. The
/// session's WebSocket connections are closed at once.
#[server(prefix = "/api", endpoint = "auth/log_out")]
pub async fn log_out() -> Result<(), AuthError> {
    use server::*;
    let session = session().await?;
    if let Some(user) = super::session::user_id(&session).await? {
        tracing::info!(%user, "logged out");
    }
    if let Some(key) = super::session::realtime_key(&session) {
        context()?.events.disconnect_session(&key);
    }
    super::session::log_out(&session).await?;
    leptos_axum::redirect("/");
    Ok(())
}

/// The logged-in user, or `None` for a visitor.
///
/// A request that carries a session cookie the server no longer knows
/// (expired, logged out elsewhere, or forged) gets
/// [`AuthError::SessionExpired`]; the session layer removes the stale
/// cookie in the same response, so the next request is a plain visitor's.
#[server(prefix = "/api", endpoint = "auth/me")]
pub async fn current_user() -> Result<Option<User>, AuthError> {
    use server::*;
    let session = session().await?;
    let Some(id) = super::session::user_id(&session).await? else {
        let parts = use_context::<http::request::Parts>().ok_or(AuthError::Internal)?;
        return if super::session::has_session_cookie(&parts.headers) {
            Err(reject(AuthError::SessionExpired))
        } else {
            Ok(None)
        };
    };
    match users()?.find(id).await? {
        Some(user) => Ok(Some(user)),
        // The account was deleted while logged in.
        None => {
            super::session::log_out(&session).await?;
            Err(reject(AuthError::SessionExpired))
        }
    }
}

/// Server-side helpers for the functions above.
#[cfg(feature = "ssr")]
mod server {
    use tower_sessions::Session;

    use crate::{
        AppContext,
        auth::{AuthError, UserId, store::Users},
    };

    pub fn context() -> Result<AppContext, AuthError> {
        AppContext::expect().map_err(|_| AuthError::Internal)
    }

    pub fn users() -> Result<Users, AuthError> {
        context().map(|context| context.users)
    }

    /// Logs `user` in on this browser's session. Connections of the session
    /// being replaced (another user's login) are closed.
    pub async fn start_session(user: UserId) -> Result<(), AuthError> {
        let session = session().await?;
        if let Some(key) = crate::auth::session::realtime_key(&session) {
            context()?.events.disconnect_session(&key);
        }
        crate::auth::session::log_in(&session, user).await
    }

    pub async fn session() -> Result<Session, AuthError> {
        leptos_axum::extract::<Session>().await.map_err(|error| {
            tracing::error!(%error, "no session: is the SessionManagerLayer installed?");
            AuthError::Internal
        })
    }

    /// Sets the response's status to fit `error` (see
    /// [`crate::error::set_status`]) and returns it.
    pub fn reject(error: AuthError) -> AuthError {
        crate::error::set_status(error.status_code());
        error
    }
}
