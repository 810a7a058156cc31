//! The current request's session and user, for server functions.

use tower_sessions::Session;

use super::{User, session::session_user};
use crate::{AppContext, error::AppError, limits::Action};

/// The session of the current server-function call.
pub async fn request_session() -> Result<Session, AppError> {
    leptos_axum::extract::<Session>().await.map_err(|error| {
        tracing::error!(%error, "no session: is the SessionManagerLayer installed?");
        AppError::Internal
    })
}

/// The user who made the current server-function call, `None` for a
/// visitor.
pub async fn request_user() -> Result<Option<User>, AppError> {
    let session = request_session().await?;
    let context = AppContext::expect()?;
    session_user(&session, &context.users, context.session_touch_every).await
}

/// The user who made the current server-function call, or
/// [`AppError::NotLoggedIn`].
pub async fn logged_in_user() -> Result<User, AppError> {
    request_user().await?.ok_or(AppError::NotLoggedIn)
}

/// The logged-in user, who may do `action` now: [`AppError::NotLoggedIn`]
/// for a visitor, [`AppError::TooManyRequests`] past the user's rate for
/// it. Every action a user can repeat starts here.
pub async fn acting_user(action: Action) -> Result<User, AppError> {
    let user = logged_in_user().await?;
    AppContext::expect()?.limits.by_user(action, user.id)?;
    Ok(user)
}

/// As [`acting_user`], and the action counts against the caller's network
/// too (`per_network`): accounts are cheap to make, and many on one
/// network share its limit. A user past their own limit spends none of
/// the network's.
pub async fn acting_user_on_network(action: Action, per_network: Action) -> Result<User, AppError> {
    let user = acting_user(action).await?;
    let network = crate::client_addr::client_addr().network;
    AppContext::expect()?
        .limits
        .by_address(per_network, network)?;
    Ok(user)
}
