//! Why a connection is refused, and every way the refusal is told: the
//! metrics label, the words for the person at the keyboard, the HTTP status
//! of a refused upgrade and the close code of a connection refused once
//! upgraded. One place, so that a new reason cannot be told one way and
//! forgotten in another.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};

use crate::protocol::close;

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The server holds as many connections as it takes.
    Full,
    /// The user has as many connections as one user may.
    TooManyForUser,
    /// The address has as many anonymous connections as one address may.
    TooManyForAddress,
    /// The connection's session has ended (a log-out raced the upgrade).
    SessionEnded,
    /// The user (or the visitor's address) opened connections faster than
    /// its pace.
    TooFast,
}

impl Refused {
    /// The limit, as metrics label it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::TooManyForUser => "per_user",
            Self::TooManyForAddress => "per_address",
            Self::SessionEnded => "session_ended",
            Self::TooFast => "new_connections",
        }
    }

    /// Why, in words for the person at the keyboard (the body of the
    /// refused upgrade, or the close frame's reason).
    pub fn reason(self) -> &'static str {
        match self {
            Self::Full => "The server is full right now. Please try again later.",
            Self::TooManyForUser => "You have too many tabs open. Close some and try again.",
            Self::TooManyForAddress => "Too many connections from your address.",
            Self::SessionEnded => "session ended",
            Self::TooFast => "Too many new connections. Wait a moment and try again.",
        }
    }

    /// The status of a refused upgrade: 503 when the server is full, 429
    /// past a limit of a user or an address. (A session that ended is found
    /// after the upgrade only.)
    pub fn status(self) -> StatusCode {
        match self {
            Self::Full => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyForUser | Self::TooManyForAddress | Self::TooFast | Self::SessionEnded => {
                StatusCode::TOO_MANY_REQUESTS
            }
        }
    }

    /// The close code of a connection refused once upgraded (two upgrades
    /// racing for the last place, or a log-out racing the upgrade).
    pub fn close_code(self) -> u16 {
        match self {
            Self::SessionEnded => close::SESSION_ENDED,
            Self::Full => close::TRY_AGAIN_LATER,
            Self::TooManyForUser | Self::TooManyForAddress | Self::TooFast => close::RATE_LIMITED,
        }
    }

    /// Counts the refusal (`realtime_refusals_total`, by limit).
    pub(crate) fn count(self) {
        metrics::counter!("realtime_refusals_total", "limit" => self.label()).increment(1);
    }
}

/// The answer to a refused upgrade: its status, with the reason in words.
impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        self.count();
        (self.status(), self.reason()).into_response()
    }
}
