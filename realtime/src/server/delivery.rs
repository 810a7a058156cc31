//! Putting a frame in the queues of this process's connections.
//!
//! Every frame a connection receives after its `welcome` goes through
//! [`Hub::deliver_local`]: events emitted here or on another process,
//! presence lists, and the replies to a browser's frames; durable events
//! go through `durable.rs`, which adds their positions, and replays
//! through `recovery.rs`. Each
//! connection's task writes what its queue holds (`connection.rs`).

use axum::extract::ws::Utf8Bytes;

use super::{Hub, Target, registry::Delivery};
use crate::{ConnectionId, protocol::ControlFrame};

impl Hub {
    /// Queues a frame for `target`'s connections on this process, and
    /// closes those whose queue is full (see `close.rs`). Returns how many
    /// connections it was queued for.
    pub(crate) fn deliver_local(&self, target: &Target, frame: &Utf8Bytes) -> usize {
        let mut outcome = Delivery::default();
        self.inner
            .registry
            .read()
            .deliver(target, frame, &mut outcome);
        self.finish_delivery(outcome)
    }

    /// Closes the connections whose queue was full, counts the deliveries,
    /// and returns how many there were. Closing takes the registry's write
    /// lock: call it once the read lock is released.
    pub(super) fn finish_delivery(&self, outcome: Delivery) -> usize {
        if !outcome.overflowed.is_empty() {
            self.close_too_slow(&outcome.overflowed);
        }
        metrics::counter!("realtime_deliveries_total").increment(outcome.queued as u64);
        outcome.queued
    }

    /// Queues a control frame (`joined`, `left`, `refused`, `error`) for one
    /// connection.
    pub(super) fn send_control(&self, connection: ConnectionId, frame: &ControlFrame<'_>) {
        match serde_json::to_string(frame) {
            Ok(json) => {
                self.deliver_local(&Target::connection(connection), &json.into());
            }
            Err(error) => tracing::error!(%error, "a control frame could not be encoded"),
        }
    }
}
