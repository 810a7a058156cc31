//! The logged-in user, for server functions that need one.

use tower_sessions::Session;

use super::User;
use crate::{AppContext, error::AppError};

/// The user who made the current server-function call, or
/// [`AppError::NotLoggedIn`].
pub async fn logged_in_user() -> Result<User, AppError> {
    let session = leptos_axum::extract::<Session>().await.map_err(|error| {
        tracing::error!(%error, "no session: is the SessionManagerLayer installed?");
        AppError::Internal
    })?;
    let id = super::session::user_id(&session)
        .await?
        .ok_or(AppError::NotLoggedIn)?;
    AppContext::expect()?
        .users
        .find(id)
        .await?
        .ok_or(AppError::NotLoggedIn)
}
