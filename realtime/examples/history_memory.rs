//! How much memory the history of durable events takes at its limits.
//!
//! Fills a hub's history, with no connection open, until its byte limit
//! drops the oldest events: durable events of about 300 bytes, to as many
//! users' streams in turn as `history_max_streams` allows. Prints the
//! process's resident memory before and after.
//!
//! ```sh
//! cargo run --release -p realtime --features ssr --example history_memory
//! cargo run --release -p realtime --features ssr --example history_memory -- 16777216
//! ```
//!
//! The argument sets `history_max_bytes` (default: the hub's).

use realtime::{Event, server::Hub, server::HubConfig};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Message {
    room_id: i64,
    author: String,
    body: String,
}

impl Event for Message {
    const NAME: &'static str = "chat.message";
}

/// The process's resident memory, in bytes (Linux).
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|pages| pages.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let defaults = HubConfig::default();
    let max_bytes = std::env::args()
        .nth(1)
        .and_then(|bytes| bytes.parse().ok())
        .unwrap_or(defaults.history_max_bytes);
    let config = HubConfig {
        history_max_bytes: max_bytes,
        ..defaults
    };
    let streams = config.history_max_streams as i64;
    let hub = Hub::builder().config(config).build();
    let event = Message {
        room_id: 42,
        author: "Ada Lovelace".into(),
        body: "x".repeat(120),
    };
    let before = resident();
    // Enough events to fill the byte limit twice over.
    let events = 2 * max_bytes / 300;
    for n in 0..events {
        hub.to(n as i64 % streams)
            .emit(&event)
            .expect("the event is sent");
    }
    let after = resident();
    let mib = |bytes: u64| bytes as f64 / 1048576.0;
    println!(
        "history_max_bytes {:.0} MiB, {} streams, {} events sent: \
         resident {:.1} MiB before, {:.1} MiB after, {:.1} MiB for the history",
        mib(max_bytes as u64),
        streams,
        events,
        mib(before),
        mib(after),
        mib(after.saturating_sub(before)),
    );
}
