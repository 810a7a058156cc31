//! The load generator's parts: a minimal HTTP client and the statistics.
//! The binary (`main.rs`) drives them; the server's multi-process tests
//! reuse the HTTP client.

pub mod http;
pub mod stats;
