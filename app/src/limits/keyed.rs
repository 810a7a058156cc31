//! A token bucket per key, in a map bounded in keys: what every limit
//! counted per network, user or name is made of ([`Keyed`]). Past the
//! bound, the keys the map does not hold share one bucket
//! ([`BoundedStore`]), and idle keys are forgotten now and then.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use governor::{
    RateLimiter,
    clock::{Clock, DefaultClock},
    nanos::Nanos,
    state::{
        StateStore,
        keyed::{DashMapStateStore, ShrinkableKeyedStateStore},
    },
};

use super::{Action, Rate};
use crate::{auth::UserId, client_addr::Network, error::AppError};

/// A token bucket per key, in a map of at most `max_keys` keys (and the
/// overflow bucket: see [`BoundedStore`]).
pub(super) struct Keyed<K: Overflow> {
    action: Action,
    limiter: RateLimiter<K, BoundedStore<K>, DefaultClock>,
    /// The limiter's map of buckets, to ask which keys it holds.
    held: Arc<DashMapStateStore<K>>,
    max_keys: usize,
    /// When idle keys were last forgotten.
    swept: Mutex<Instant>,
}

/// How often idle keys are forgotten: once a minute as a matter of course,
/// at most once a second while a map is full.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
const SWEEP_WHEN_FULL: Duration = Duration::from_secs(1);

impl<K: Overflow> Keyed<K> {
    pub fn new(action: Action, rate: Rate, max_keys: usize) -> Self {
        let map = Arc::new(DashMapStateStore::default());
        let store = BoundedStore {
            map: Arc::clone(&map),
            max_keys,
        };
        Self {
            action,
            limiter: RateLimiter::new(rate.quota(), store, DefaultClock::default()),
            held: map,
            max_keys,
            swept: Mutex::new(Instant::now()),
        }
    }

    /// Whether `key` has a bucket of its own.
    pub fn holds(&self, key: &K) -> bool {
        self.held.contains_key(key)
    }

    /// How many keys have a bucket of their own.
    #[cfg(test)]
    pub fn keys_held(&self) -> usize {
        self.limiter.len()
    }

    /// Counts one for `key`.
    pub fn check(&self, key: K) -> Result<(), AppError> {
        let full = self.limiter.len() >= self.max_keys;
        self.sweep_now_and_then(if full { SWEEP_WHEN_FULL } else { SWEEP_EVERY });
        verdict(self.action, self.limiter.check_key(&key))
    }

    /// Forgets the keys whose buckets are full again, at most once per
    /// `every`, so memory follows the recent clients.
    fn sweep_now_and_then(&self, every: Duration) {
        let now = Instant::now();
        {
            let mut swept = self
                .swept
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if now.duration_since(*swept) < every {
                return;
            }
            *swept = now;
        }
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// A key type with one value no client has: the bucket shared by the keys
/// a full map cannot take.
pub(super) trait Overflow: Clone + Eq + std::hash::Hash {
    fn overflow() -> Self;
}

impl Overflow for Network {
    /// The IPv4 broadcast address, never a client's.
    fn overflow() -> Self {
        crate::client_addr::NetworkPrefixes::default()
            .network_of(std::net::IpAddr::V4(std::net::Ipv4Addr::BROADCAST))
    }
}

impl Overflow for UserId {
    /// No account has a negative id.
    fn overflow() -> Self {
        UserId(-1)
    }
}

impl Overflow for String {
    /// No user is called "" (recipients' names are valid names).
    fn overflow() -> Self {
        String::new()
    }
}

/// governor's map of buckets, bounded: while it holds `max_keys` keys, a
/// key it does not hold is counted in the one overflow bucket that all
/// such keys share. Memory stays bounded whatever the number of keys;
/// clients it already holds keep their own buckets, and the newcomers of a
/// horde of addresses share one.
struct BoundedStore<K: Overflow> {
    /// Shared with the [`Keyed`] that owns the limiter, which asks it
    /// which keys it holds.
    map: Arc<DashMapStateStore<K>>,
    max_keys: usize,
}

impl<K: Overflow> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if self.map.len() >= self.max_keys && !self.map.contains_key(key) {
            return self.map.measure_and_replace(&K::overflow(), f);
        }
        self.map.measure_and_replace(key, f)
    }
}

impl<K: Overflow> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        self.map.retain_recent(drop_below);
    }

    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(&*self.map);
    }

    fn len(&self) -> usize {
        ShrinkableKeyedStateStore::len(&*self.map)
    }

    fn is_empty(&self) -> bool {
        ShrinkableKeyedStateStore::is_empty(&*self.map)
    }
}

/// A limiter's answer as the caller sees it.
fn verdict(
    action: Action,
    checked: Result<(), governor::NotUntil<<DefaultClock as Clock>::Instant>>,
) -> Result<(), AppError> {
    checked.map_err(|not_until| {
        metrics::counter!("app_rate_limited_total", "limit" => action.label()).increment(1);
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        AppError::TooManyRequests {
            retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        }
    })
}
