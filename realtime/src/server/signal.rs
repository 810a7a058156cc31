//! Why the server closes a connection ([`CloseReason`]), and how the
//! connection's task is told ([`CloseSignal`]): what the registry keeps for
//! each connection, and its task waits on. Closing itself is the hub's
//! (`close.rs`).

use std::{future::Future, sync::OnceLock, task::Poll};

use futures_util::task::AtomicWaker;

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
///
/// The task's wait is polled at every wake-up of the task (every batch it
/// writes), so it is a waker slot and a reason set once: no lock, as
/// `tokio::sync::Notify` would take at each poll.
#[derive(Default)]
pub(crate) struct CloseSignal {
    waker: AtomicWaker,
    reason: OnceLock<CloseReason>,
}

impl CloseSignal {
    pub fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        // The task sees the reason even if it is not waiting yet.
        self.waker.wake();
    }

    /// Waits until the connection is asked to close, and says why. Waited
    /// on by the connection's own task only (one waker).
    pub fn closed(&self) -> impl Future<Output = CloseReason> + Send + '_ {
        std::future::poll_fn(|cx| {
            if let Some(reason) = self.reason.get() {
                return Poll::Ready(*reason);
            }
            self.waker.register(cx.waker());
            // Set between the look and the registration: seen now.
            match self.reason.get() {
                Some(reason) => Poll::Ready(*reason),
                None => Poll::Pending,
            }
        })
    }
}
