//! Why the server closes a connection ([`CloseReason`]), and how the
//! connection's task is told ([`CloseSignal`]): what the registry keeps for
//! each connection, and its task waits on. Closing itself is the hub's
//! (`close.rs`).

use std::sync::OnceLock;

use tokio::sync::Notify;

use crate::protocol;

/// Why the server closes a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The server is shutting down.
    GoingAway,
    /// The session ended (log-out).
    SessionEnded,
    /// The connection's outgoing queue overflowed.
    TooSlow,
    /// The browser kept sending frames past its rate limit.
    RateLimited,
}

impl CloseReason {
    /// The WebSocket close code and reason text sent to the browser.
    pub fn code_and_text(self) -> (u16, &'static str) {
        match self {
            Self::GoingAway => (protocol::close::GOING_AWAY, "server shutting down"),
            Self::SessionEnded => (protocol::close::SESSION_ENDED, "session ended"),
            Self::TooSlow => (protocol::close::TOO_SLOW, "too slow to keep up"),
            Self::RateLimited => (protocol::close::RATE_LIMITED, "sending too fast"),
        }
    }
}

/// A request to a connection's task to close. The first reason wins.
#[derive(Default)]
pub(crate) struct CloseSignal {
    notify: Notify,
    reason: OnceLock<CloseReason>,
}

impl CloseSignal {
    pub fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        // A stored permit: the task sees it even if it is not waiting yet.
        self.notify.notify_one();
    }

    pub async fn closed(&self) -> CloseReason {
        self.notify.notified().await;
        self.reason.get().copied().unwrap_or(CloseReason::GoingAway)
    }
}
