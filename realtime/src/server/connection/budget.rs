//! The browser's frames pass a token bucket: past it, an `error` frame,
//! and if the browser keeps on, close code 4029.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Frames over the rate limit a browser may send, after being told, before
/// it is closed.
pub(crate) const DROPPED_FRAMES_TOLERATED: u32 = 10;

/// What the token bucket says of one more frame.
pub(super) enum Budget {
    Granted,
    /// Over the limit: dropped, and the browser told.
    Warned,
    /// Over the limit, and told often enough: the connection closes.
    Spent,
}

/// The browser's frames, through a token bucket.
pub(super) struct FrameBudget {
    bucket: DefaultDirectRateLimiter,
    dropped: u32,
}

impl FrameBudget {
    pub fn new(per_second: u32, burst: u32) -> Self {
        let per_second = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(per_second);
        Self {
            bucket: RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)),
            dropped: 0,
        }
    }

    pub fn take(&mut self) -> Budget {
        if self.bucket.check().is_ok() {
            self.dropped = 0;
            return Budget::Granted;
        }
        self.dropped += 1;
        if self.dropped > DROPPED_FRAMES_TOLERATED {
            Budget::Spent
        } else {
            Budget::Warned
        }
    }
}
