//! The browser's frames pass a token bucket: past it, an `error` frame,
//! and if the browser keeps on, close code 4029.
//!
//! The frames dropped pass a bucket of their own, which forgives one a
//! second: a browser that keeps sending faster than its budget is closed
//! whatever it sends in between (a frame let through now and then does
//! not start the count again).

use std::{num::NonZeroU32, time::Duration};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Frames over the rate limit a browser may send, after being told, before
/// it is closed; one more is forgiven each [`DROP_FORGIVEN_EVERY`].
pub(crate) const DROPPED_FRAMES_TOLERATED: u32 = 10;

/// How often one dropped frame is forgiven.
pub(crate) const DROP_FORGIVEN_EVERY: Duration = Duration::from_secs(1);

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
    /// The frames dropped that are still tolerated: made at the first one
    /// dropped, so that a browser within its budget (nearly every one)
    /// costs its connection no more.
    drops: Option<Box<DefaultDirectRateLimiter>>,
}

impl FrameBudget {
    pub fn new(per_second: u32, burst: u32) -> Self {
        let per_second = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(per_second);
        Self {
            bucket: RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)),
            drops: None,
        }
    }

    pub fn take(&mut self) -> Budget {
        if self.bucket.check().is_ok() {
            return Budget::Granted;
        }
        let drops = self.drops.get_or_insert_with(|| {
            let tolerated = NonZeroU32::new(DROPPED_FRAMES_TOLERATED).unwrap_or(NonZeroU32::MIN);
            let quota = Quota::with_period(DROP_FORGIVEN_EVERY)
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                .allow_burst(tolerated);
            Box::new(RateLimiter::direct(quota))
        });
        if drops.check().is_ok() {
            Budget::Warned
        } else {
            Budget::Spent
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browser_over_its_budget_is_closed_even_if_some_frames_pass() {
        // No frame a second, after a burst of one: every frame but the
        // first is over the budget.
        let mut budget = FrameBudget::new(1, 1);
        assert!(matches!(budget.take(), Budget::Granted));
        for _ in 0..DROPPED_FRAMES_TOLERATED {
            assert!(matches!(budget.take(), Budget::Warned));
        }
        assert!(matches!(budget.take(), Budget::Spent));

        // Ten over, then one let through, again and again: still closed
        // once the drops pass what is tolerated.
        let mut budget = FrameBudget::new(1000, 1);
        let mut spent = false;
        for _ in 0..5 {
            for _ in 0..DROPPED_FRAMES_TOLERATED {
                spent |= matches!(budget.take(), Budget::Spent);
            }
            std::thread::sleep(Duration::from_millis(2));
            assert!(matches!(budget.take(), Budget::Granted));
        }
        assert!(spent, "forgiven at every frame let through");
    }
}
