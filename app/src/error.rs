//! The one error type of the application's server functions, [`AppError`],
//! and the HTTP status each error answers with.
//!
//! Errors are plain values: making or converting one does nothing else.
//! The status is decided in one place, [`AppError::status_code`], and
//! applied to the response of a failed server function by the server's
//! middleware (`server/src/error_status.rs`).

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::auth::AuthError;

/// What a page shows when an action fails. The messages are for the person
/// at the keyboard; internal details stay in the server's log.
///
/// On the wire (JSON), account errors are written as themselves: an
/// [`AuthError`] inside reads the same as on its own.
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
    /// The request never got a proper answer (network down, server gone).
    #[error("Could not reach the server: {0}")]
    Unreachable(String),
    /// The same thing too often, from one user or address: a rate limit.
    #[error("You are doing that too often. Please wait {retry_after_secs} s and try again.")]
    TooManyRequests { retry_after_secs: u64 },
    /// The server has more work of this kind (password checks) than it
    /// takes on at once; trying again soon works.
    #[error("The server is busy right now. Please try again in a moment.")]
    Busy,
    /// Signing up, logging in, or a session that ended.
    #[error(transparent)]
    #[serde(untagged)]
    Auth(#[from] AuthError),
}

impl AppError {
    /// The HTTP status a server function answers with when it fails this way.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Invalid(_) => 400,
            Self::NotLoggedIn => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::TooManyRequests { .. } => 429,
            Self::Internal | Self::Unreachable(_) => 500,
            Self::Unavailable | Self::Busy => 503,
            Self::Auth(error) => error.status_code(),
        }
    }

    /// How many seconds to wait before trying again, for a `Retry-After`
    /// header, when the error says.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::TooManyRequests { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }
}

impl AppError {
    fn invalid_arguments() -> Self {
        Self::Invalid("The request's arguments are not valid.".to_owned())
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(error: ServerFnErrorErr) -> Self {
        match error {
            ServerFnErrorErr::Request(message) => Self::Unreachable(message),
            // Arguments the server could not read: the caller's mistake (or
            // a script's), answered 400, not counted as the server's error.
            // Not echoed: the message may quote what was sent.
            ServerFnErrorErr::Args(_) | ServerFnErrorErr::MissingArg(_) => {
                Self::invalid_arguments()
            }
            // On the server, what could not be decoded is the request; in
            // the browser, it is the server's answer (below).
            #[cfg(feature = "ssr")]
            ServerFnErrorErr::Deserialization(_) => Self::invalid_arguments(),
            // Anything else is a bug or a mismatch between client and server
            // (an old tab talking to a new server): nothing the user can fix.
            _ => Self::Internal,
        }
    }
}

/// An event that could not be encoded is a bug; the hub has logged it.
#[cfg(feature = "ssr")]
impl From<realtime::server::EmitError> for AppError {
    fn from(_: realtime::server::EmitError) -> Self {
        Self::Internal
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

/// Logs a failed query (`what` says which) and returns the error the
/// browser sees: [`AppError::Unavailable`] when the database cannot be
/// reached, [`AppError::Internal`] otherwise.
#[cfg(feature = "ssr")]
pub fn log_database_error(error: sqlx::Error, what: &str) -> AppError {
    if database_unavailable(&error) {
        tracing::warn!(%error, "{what}: the database is unavailable");
        AppError::Unavailable
    } else {
        tracing::error!(%error, "{what} failed");
        AppError::Internal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_errors_read_the_same_inside_an_app_error() {
        let alone = serde_json::to_string(&AuthError::UserNameTooLong { max: 32 }).unwrap();
        let inside =
            serde_json::to_string(&AppError::from(AuthError::UserNameTooLong { max: 32 })).unwrap();
        assert_eq!(inside, alone);
        assert_eq!(inside, r#"{"UserNameTooLong":{"max":32}}"#);
        assert_eq!(
            serde_json::to_string(&AppError::Auth(AuthError::WrongCredentials)).unwrap(),
            r#""WrongCredentials""#
        );
    }

    #[test]
    fn every_error_survives_the_trip_to_the_browser() {
        for error in [
            AppError::Invalid("Write something first.".into()),
            AppError::NotLoggedIn,
            AppError::Forbidden("no".into()),
            AppError::NotFound("gone".into()),
            AppError::Internal,
            AppError::Unavailable,
            AppError::Unreachable("offline".into()),
            AppError::TooManyRequests {
                retry_after_secs: 3,
            },
            AppError::Busy,
            AppError::Auth(AuthError::EmptyUserName),
            AppError::Auth(AuthError::NameTaken { name: "ada".into() }),
            AppError::Auth(AuthError::SessionExpired),
        ] {
            assert_eq!(AppError::de(error.ser()), error);
        }
    }

    #[test]
    fn the_status_follows_the_error() {
        assert_eq!(AppError::Invalid(String::new()).status_code(), 400);
        assert_eq!(AppError::NotLoggedIn.status_code(), 401);
        assert_eq!(AppError::Unavailable.status_code(), 503);
        assert_eq!(
            AppError::from(AuthError::WrongCredentials).status_code(),
            401
        );
        assert_eq!(
            AppError::from(AuthError::NameTaken { name: "ada".into() }).status_code(),
            409
        );
    }

    #[test]
    fn network_failures_are_reported_as_unreachable() {
        let error = AppError::from_server_fn_error(ServerFnErrorErr::Request("offline".into()));
        assert_eq!(error, AppError::Unreachable("offline".into()));
    }
}
