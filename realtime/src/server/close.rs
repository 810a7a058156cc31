//! Closing connections from the server side: the hub's methods that do it
//! (why, and how a connection's task is told, are in `signal.rs`).
//!
//! A closed connection leaves the registry at once, before its task has
//! said goodbye to the browser: no event sent afterwards reaches it. Its
//! user leaves the presence of the rooms where no other tab of theirs is
//! within the presence window, not at once: the rooms are marked, and the
//! presence task sends their lists (`presence/`). Four things close a
//! connection:
//!
//! - **Its session ended** (log-out or expiry): [`Hub::disconnect_session`]
//!   here and, through the broker, on every other process; expiry is found
//!   by [`Hub::check_sessions`] (`sessions.rs`).
//!   Close code 4001; the browser reconnects at once as whoever it is now.
//! - **A shutdown**: [`Hub::disconnect_all`]. Close code 1001; the browser
//!   reconnects (to this server or another).
//! - **The browser went away or broke the protocol**: the task ends by
//!   itself (`connection/`) and removes its connection with
//!   [`Hub::forget`].
//! - **A tab too slow to keep up.** The whole chain:
//!   1. Every frame for a connection, an event, a presence list or a reply,
//!      is put in its bounded queue ([`super::HubConfig::queue_capacity`])
//!      by the registry (`registry/`), with `try_send`: it never waits, so
//!      one slow tab cannot hold up an emit to thousands.
//!   2. A full queue is reported, not waited for: every delivery, whoever
//!      makes it (an emit, the streams, presence, the broker's inbox),
//!      returns a `Delivery` whose `overflowed` lists those connections.
//!   3. `Hub::finish` hands them to `Hub::close_too_slow` here, once the
//!      registry's lock is released.
//!   4. That removes each from the registry and signals its task with
//!      [`CloseReason::TooSlow`]. Its user's departure from rooms is
//!      presence too: the rooms are marked for the presence task
//!      (`presence/`), which sends each at most one list per window.
//!   5. The task (`connection/`) stops writing at once, even in the middle
//!      of a write to a browser that stopped reading, sends close code 4008
//!      after what is already buffered (giving up after 2 s), and drops the
//!      socket.
//!   6. The browser reconnects with backoff, re-joins its rooms and reloads
//!      what it missed (`use_resumed`).

use super::{CloseReason, Hub, SessionKey, registry::Connection};
use crate::ConnectionId;

impl Hub {
    /// Closes every connection opened with this session, at once: the
    /// connections leave the registry before this returns, so no event sent
    /// afterwards reaches them. Call it when the session ends (log-out).
    /// Returns how many connections of this process were closed; those of
    /// other processes are closed by them.
    ///
    /// Call it after the session is gone from the store: a connection whose
    /// upgrade read the session before and registers after is refused too
    /// (`sessions.rs`).
    pub fn disconnect_session(&self, session: &SessionKey) -> usize {
        self.inner.broker.end_session(session);
        self.disconnect_local_session(session)
    }

    /// Closes this process's connections of a session that ended (here, or
    /// on another process), and refuses the ones still on their way.
    pub(crate) fn disconnect_local_session(&self, session: &SessionKey) -> usize {
        self.inner.ended_sessions.record(session);
        let connections = self.inner.registry.session_connections(session);
        connections
            .iter()
            .filter(|connection| self.disconnect(**connection, CloseReason::SessionEnded))
            .count()
    }

    /// Closes every connection, for a shutdown: browsers reconnect.
    pub fn disconnect_all(&self) -> usize {
        let connections = self.inner.registry.connection_ids();
        connections
            .iter()
            .filter(|connection| self.disconnect(**connection, CloseReason::GoingAway))
            .count()
    }

    /// Closes connections whose queue overflowed (step 4 of the chain in
    /// the module documentation).
    pub(super) fn close_too_slow(&self, connections: &[ConnectionId]) {
        for connection in connections {
            tracing::warn!(%connection, "disconnecting a connection that cannot keep up");
            self.disconnect(*connection, CloseReason::TooSlow);
        }
    }

    /// Removes a connection from the registry and tells its task to close.
    fn disconnect(&self, connection: ConnectionId, reason: CloseReason) -> bool {
        match self.forget(connection) {
            Some(entry) => {
                entry.signal.close(reason);
                true
            }
            None => false,
        }
    }

    /// Removes a connection from the registry, and updates the presence of
    /// the rooms its user has now left. Its task calls this when it ends,
    /// however it ends; a connection already gone is `None`.
    pub(super) fn forget(&self, connection: ConnectionId) -> Option<Connection> {
        let (entry, departed_from) = self.inner.registry.remove(connection)?;
        self.inner.presence.changed(&departed_from);
        Some(entry)
    }
}
