//! The error type of the application's server functions (other than the
//! accounts', which have their own, [`crate::auth::AuthError`]).

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What a page shows when an action fails. The messages are for the person
/// at the keyboard; internal details stay in the server's log.
#[derive(Clone, Debug, Error, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppError {
    /// The input breaks a rule; the message says which.
    #[error("{0}")]
    Invalid(String),
    #[error("Please log in first.")]
    NotLoggedIn,
    /// Logged in, but not allowed; the message says why.
    #[error("{0}")]
    Forbidden(String),
    /// What the request names does not exist; the message says what.
    #[error("{0}")]
    NotFound(String),
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
    /// The database does not answer (down or restarting): nothing is lost,
    /// and trying again later works.
    #[error("The database is not answering right now. Please try again in a moment.")]
    Unavailable,
    #[error("Could not reach the server: {0}")]
    Unreachable(String),
}

impl AppError {
    /// The HTTP status a server function answers with when it fails this way.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Invalid(_) => 400,
            Self::NotLoggedIn => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Internal | Self::Unreachable(_) => 500,
            Self::Unavailable => 503,
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(error: ServerFnErrorErr) -> Self {
        match error {
            ServerFnErrorErr::Request(message) => Self::Unreachable(message),
            _ => Self::Internal,
        }
    }
}

/// Whether a database error means the database cannot be reached (down,
/// restarting, every connection busy) rather than a broken query.
#[cfg(feature = "ssr")]
pub fn database_unavailable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
    )
}

/// A failed query, logged, as the error the browser sees. An unreachable
/// database also sets the response's status to 503, wherever the error is
/// passed on with `?`.
#[cfg(feature = "ssr")]
pub fn database_error(error: sqlx::Error, what: &str) -> AppError {
    if database_unavailable(&error) {
        tracing::warn!(%error, "{what}: the database is unavailable");
        AppError::Unavailable.reject()
    } else {
        tracing::error!(%error, "{what} failed");
        AppError::Internal
    }
}

/// An account or session failure, where a page expects an [`AppError`].
impl From<crate::auth::AuthError> for AppError {
    fn from(error: crate::auth::AuthError) -> Self {
        use crate::auth::AuthError;
        match error {
            AuthError::Unavailable => Self::Unavailable,
            AuthError::Unreachable(message) => Self::Unreachable(message),
            _ => Self::Internal,
        }
    }
}

#[cfg(feature = "ssr")]
impl From<realtime::server::EmitError> for AppError {
    fn from(error: realtime::server::EmitError) -> Self {
        tracing::error!(%error, "an event could not be emitted");
        Self::Internal
    }
}

/// Gives the response the HTTP status `status`, when the request is a
/// server-function call from code (the browser runtime, a test).
///
/// Two kinds of request are left alone. A page being rendered must keep its
/// own status. A plain HTML form post (no JavaScript yet) gets Leptos's
/// redirect back to the form, with the error in the URL, and a 4xx status
/// would break that redirect.
#[cfg(feature = "ssr")]
pub fn set_status(status: u16) {
    use leptos::prelude::use_context;

    let called_from_code = use_context::<http::request::Parts>().is_some_and(|parts| {
        let accepts_html = parts
            .headers
            .get(http::header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
        parts.uri.path().starts_with("/api/") && !accepts_html
    });
    if called_from_code
        && let Some(response) = use_context::<leptos_axum::ResponseOptions>()
        && let Ok(status) = http::StatusCode::from_u16(status)
    {
        response.set_status(status);
    }
}

#[cfg(feature = "ssr")]
impl AppError {
    /// Sets the response's status to fit this error (see [`set_status`]),
    /// and returns it: `Err(error.reject())`.
    pub fn reject(self) -> Self {
        set_status(self.status_code());
        self
    }
}
