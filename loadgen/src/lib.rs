//! The load generator's parts: a minimal HTTP client and the server
//! functions it calls, WebSocket clients, the text of the benchmark's
//! announcements, sending at a fixed rate, the statistics, what a run
//! prints, and the attacks of the hostile mode.
//! The binary (`main.rs`) drives them; the server's multi-process tests
//! reuse the HTTP client.
//!
//! ## Where things live
//!
//! - **Who may join a room**: the server's join rules; the load generator
//!   only receives announcements, sent to everyone.
//! - **What happens to a slow tab**: the server closes it with 4008; the
//!   events it misses then show in the load generator's "lost" column.
//! - **How an emit reaches another process**: through the server's Redis
//!   backplane; `--processes N` starts several servers and spreads the
//!   clients over them.
//! - **Where the wire format is**: `docs/protocol.md`; results are in
//!   `docs/benchmarks.md`.

pub mod bench_message;
pub mod hostile;
pub mod http;
pub mod pacing;
pub mod peer;
pub mod report;
pub mod server_functions;
pub mod socket;
pub mod stats;
pub mod waiting;
