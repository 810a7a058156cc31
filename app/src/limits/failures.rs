//! Failures per key, for log-ins: a count of failures in a window, made
//! and taken back in one step each, in a cache bounded in keys (see
//! [`super::Limits::begin_log_in`]).

use std::time::{Duration, Instant};

use moka::ops::compute::Op;

use super::{Action, Rate};
use crate::error::AppError;

/// Failures per key: at most `burst` of a [`Rate`] within the time the rate
/// takes to refill them (`10/min`: 10 failures a minute), counted from the
/// first. Kept in a cache bounded in entries whose entries expire with
/// their window.
pub(super) struct Failures<K: Clone + Eq + std::hash::Hash + Send + Sync + 'static> {
    action: Action,
    allowed: u32,
    window: Duration,
    counts: moka::sync::Cache<K, Strikes>,
}

/// Failures of one key since `since`.
#[derive(Clone, Copy, Debug)]
struct Strikes {
    count: u32,
    since: Instant,
}

impl<K: Clone + Eq + std::hash::Hash + Send + Sync + 'static> Failures<K> {
    pub fn new(action: Action, rate: Rate, max_keys: usize) -> Self {
        let window = rate.every.saturating_mul(rate.burst.get());
        Self {
            action,
            allowed: rate.burst.get(),
            window,
            counts: moka::sync::Cache::builder()
                .max_capacity(max_keys as u64)
                .time_to_live(window)
                .build(),
        }
    }

    /// The limit this counts for.
    #[cfg(test)]
    pub fn action(&self) -> Action {
        self.action
    }

    /// Counts one failure of `key`, unless it has had its failures within
    /// the window and `may_refuse` (then refused, and not counted): one
    /// step, so attempts at once cannot all pass before any is counted.
    /// Returns when the window it was counted in began.
    pub fn count(&self, key: &K, may_refuse: bool) -> Result<Instant, AppError> {
        let (allowed, window) = (self.allowed, self.window);
        let mut refused = None;
        let mut counted_in = Instant::now();
        self.counts.entry(key.clone()).and_compute_with(|held| {
            let strikes = held
                .map(|entry| entry.into_value())
                .filter(|strikes| strikes.since.elapsed() < window);
            match strikes {
                Some(strikes) if may_refuse && strikes.count >= allowed => {
                    refused = Some(window.saturating_sub(strikes.since.elapsed()));
                    Op::Nop
                }
                Some(strikes) => {
                    counted_in = strikes.since;
                    Op::Put(Strikes {
                        count: strikes.count.saturating_add(1),
                        ..strikes
                    })
                }
                None => Op::Put(Strikes {
                    count: 1,
                    since: counted_in,
                }),
            }
        });
        let Some(wait) = refused else {
            return Ok(counted_in);
        };
        metrics::counter!("app_rate_limited_total", "limit" => self.action.label()).increment(1);
        Err(AppError::TooManyRequests {
            retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        })
    }

    /// Takes back one failure counted by [`Failures::count`] that was not
    /// one, if its window (begun at `window`) is still the key's.
    pub fn uncount(&self, key: &K, window: Instant) {
        self.counts.entry(key.clone()).and_compute_with(|held| {
            match held.map(|entry| entry.into_value()) {
                Some(strikes) if strikes.since != window => Op::Nop,
                Some(strikes) if strikes.count > 1 => Op::Put(Strikes {
                    count: strikes.count - 1,
                    ..strikes
                }),
                Some(_) => Op::Remove,
                None => Op::Nop,
            }
        });
    }

    pub fn clear(&self, key: &K) {
        self.counts.invalidate(key);
    }

    /// How many keys are held (after the cache's pending work).
    #[cfg(test)]
    pub fn keys_held(&self) -> u64 {
        self.counts.run_pending_tasks();
        self.counts.entry_count()
    }
}
