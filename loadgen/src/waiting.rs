//! Waiting for what other tasks count: every client connected, every
//! delivery arrived. The counts are atomics the readers bump; reading them
//! every few milliseconds costs nothing beside thousands of sockets.

use std::{
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

/// How long the deliveries may trail the last send: what has not arrived
/// by then is counted lost.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Waits until `count` reaches `all`, however long that takes: a run
/// measures every client or none.
pub async fn wait_for_all(count: &AtomicUsize, all: usize) {
    while count.load(Ordering::Relaxed) < all {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `deliveries` reaches `expected`, for [`DRAIN_LIMIT`] at
/// most.
pub async fn wait_for_deliveries(deliveries: &AtomicU64, expected: u64) {
    let deadline = Instant::now() + DRAIN_LIMIT;
    while deliveries.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
