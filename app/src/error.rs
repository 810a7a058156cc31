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
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
    #[error("Could not reach the server: {0}")]
    Unreachable(String),
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

#[cfg(feature = "ssr")]
impl From<realtime::server::EmitError> for AppError {
    fn from(error: realtime::server::EmitError) -> Self {
        tracing::error!(%error, "an event could not be emitted");
        Self::Internal
    }
}
