//! The current request's session and user, for server functions.

use tower_sessions::Session;

use super::{User, session::session_user};
use crate::{AppContext, error::AppError};

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
    session_user(&session, &AppContext::expect()?.users).await
}

/// The user who made the current server-function call, or
/// [`AppError::NotLoggedIn`].
pub async fn logged_in_user() -> Result<User, AppError> {
    request_user().await?.ok_or(AppError::NotLoggedIn)
}
