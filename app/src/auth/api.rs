//! The identity actions the browser can call: sign up, log in, log out, and
//! who am I. Each is a Leptos server function at a fixed URL under
//! `/api/auth/`, so tests and other clients can call it too.

use leptos::prelude::*;

use super::User;
use crate::error::AppError;

/// Creates an account and logs it in, then sends the browser home. Limited
/// per network; a name no account may have is refused before it counts.
#[server(prefix = "/api", endpoint = "auth/sign_up")]
pub async fn sign_up(name: String, password: String) -> Result<User, AppError> {
    use crate::{client_addr::client_addr, limits::Action};
    let context = crate::AppContext::expect()?;
    super::UserName::parse(&name)?;
    context
        .limits
        .by_address(Action::SignUpPerAddress, client_addr().network)?;
    let network = client_addr().network;
    let user = context.users.sign_up(&name, &password).await?;
    context.limits.signed_up_from(&user.name, network);
    tracing::info!(user = %user.id, name = %user.name, "signed up");
    server::start_session(user.id).await?;
    leptos_axum::redirect("/");
    Ok(user)
}

/// Logs in with a name and password, then sends the browser home. Limited
/// per network (attempts), and in failures per account and network, and
/// per account from everywhere (guessing one account's password from many
/// networks). Only failures count against an account, and the right
/// password clears its network's: an attacker's wrong guesses cannot lock
/// the owner out from her own network.
#[server(prefix = "/api", endpoint = "auth/log_in")]
pub async fn log_in(name: String, password: String) -> Result<User, AppError> {
    use super::password::Turns;
    use crate::{client_addr::client_addr, limits::Action};
    let context = crate::AppContext::expect()?;
    let network = client_addr().network;
    context
        .limits
        .by_address(Action::LogInPerAddress, network)?;
    // Only a name an account can have is counted: random long names would
    // only fill memory.
    let attempt = match super::UserName::parse(&name) {
        Ok(account) => Some(context.limits.begin_log_in(account.as_str(), network)?),
        Err(_) => None,
    };
    // The account's owner, from a network it is known from, may take a
    // turn kept for them when guesses keep the others taken (a few times a
    // minute per account).
    let turns = match &attempt {
        Some(attempt)
            if attempt.from_known_network()
                && context
                    .limits
                    .by_recipient(Action::LogInKnownTurn, &name)
                    .is_ok() =>
        {
            Turns::SharedOrKnown
        }
        _ => Turns::Shared,
    };
    let user = match context.users.authenticate(&name, &password, turns).await {
        Ok(user) => user,
        Err(error) => {
            if let (Some(attempt), AppError::Auth(super::AuthError::WrongCredentials)) =
                (attempt, &error)
            {
                attempt.failed();
            }
            return Err(error);
        }
    };
    if let Some(attempt) = attempt {
        attempt.succeeded();
    }
    tracing::info!(user = %user.id, "logged in");
    server::start_session(user.id).await?;
    leptos_axum::redirect("/");
    Ok(user)
}

/// Ends the login, if there is one, then sends the browser home. The
/// session's WebSocket connections are closed at once.
#[server(prefix = "/api", endpoint = "auth/log_out")]
pub async fn log_out() -> Result<(), AppError> {
    use super::{guard::request_session, session};
    let session = request_session().await?;
    if let Some(user) = session::user_id(&session).await? {
        tracing::info!(%user, "logged out");
    }
    let hub = crate::AppContext::expect()?.events;
    session::end_with_sockets(&session, &hub, || session::log_out(&session)).await?;
    leptos_axum::redirect("/");
    Ok(())
}

/// The logged-in user, or `None` for a visitor.
///
/// A request that carries a session cookie the server no longer knows
/// (expired, logged out elsewhere, its account deleted, or forged) gets
/// [`super::AuthError::SessionExpired`]; the session layer removes the
/// stale cookie in the same response, so the next request is a plain
/// visitor's.
#[server(prefix = "/api", endpoint = "auth/me")]
pub async fn current_user() -> Result<Option<User>, AppError> {
    use super::{AuthError, guard::request_user, session::has_session_cookie};
    if let Some(user) = request_user().await? {
        return Ok(Some(user));
    }
    let parts = use_context::<http::request::Parts>().ok_or(AppError::Internal)?;
    if has_session_cookie(&parts.headers) {
        Err(AuthError::SessionExpired.into())
    } else {
        Ok(None)
    }
}

/// Server-side helpers for the functions above.
#[cfg(feature = "ssr")]
mod server {
    use crate::{
        AppContext,
        auth::{UserId, guard::request_session, session},
        error::AppError,
    };

    /// Logs `user` in on this browser's session. Connections of the session
    /// being replaced (another user's login) are closed, once it is gone.
    pub async fn start_session(user: UserId) -> Result<(), AppError> {
        let session = request_session().await?;
        let hub = AppContext::expect()?.events;
        session::end_with_sockets(&session, &hub, || session::log_in(&session, user)).await
    }
}
