//! How much memory the rate limiters hold after a million distinct
//! addresses (docs/benchmarks.md, "Limits under a million addresses"):
//!
//! ```sh
//! cargo run --release -p app --features ssr --example limits_memory
//! ```
//!
//! Each address tries a log-in (the per-network limit) and fails it (the
//! failures per account and network, and per account), as a horde of
//! addresses guessing passwords would; once with the maps bounded as the
//! server bounds them, once unbounded, for comparison.

use std::net::{IpAddr, Ipv6Addr};

use app::{
    client_addr::NetworkPrefixes,
    limits::{Action, Limits, LimitsConfig, MAX_KEYS},
};

/// The process's resident memory, in KiB, from `/proc/self/status`.
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Runs a million addresses through limits that keep at most `max_keys`
/// keys per map; returns the memory it took, in MiB, and how many were
/// refused.
fn horde(max_keys: usize) -> (f64, u32) {
    let before = resident_kib();
    let limits = Limits::with_max_keys(&LimitsConfig::default(), max_keys);
    let prefixes = NetworkPrefixes::default();
    let mut refused = 0;
    for n in 0..1_000_000u32 {
        // A fresh /64 each time: the worst an IPv6 attacker can do.
        let address = IpAddr::V6(Ipv6Addr::from_bits(
            (0x2001_0db8_u128 << 96) | (u128::from(n) << 64) | 1,
        ));
        let network = prefixes.network_of(address);
        if limits.by_address(Action::LogInPerAddress, network).is_err() {
            refused += 1;
        }
        if let Ok(attempt) = limits.begin_log_in(&format!("user{}", n % 50_000), network) {
            attempt.failed();
        }
    }
    let after = resident_kib();
    drop(limits);
    (after.saturating_sub(before) as f64 / 1024.0, refused)
}

fn main() {
    let (bounded, refused) = horde(MAX_KEYS);
    println!(
        "bounded at {MAX_KEYS} keys per map: {bounded:.1} MiB after a million networks, \
         {refused} of their log-ins refused (the newcomers past the bound share one bucket)"
    );
    let (unbounded, _) = horde(usize::MAX);
    println!("unbounded, for comparison: {unbounded:.1} MiB");
}
