//! How fast each actor may open connections: a logged-in user, or a
//! visitor's address. A token bucket each, so that a tab closed for
//! breaking a limit (4029, say) cannot come straight back with a fresh
//! budget, over and over. The burst lets every tab of a user reconnect at
//! once after a restart.

use std::{
    net::IpAddr,
    num::NonZeroU32,
    time::{Duration, Instant},
};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;

use super::{Identity, Refused};
use crate::UserId;

/// Who opens a connection, for the pace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Actor {
    User(UserId),
    Visitor(IpAddr),
}

/// How often idle actors are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

pub(crate) struct Pace {
    buckets: DefaultKeyedRateLimiter<Actor>,
    swept: Mutex<Instant>,
}

impl Pace {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(per_minute);
        Self {
            buckets: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            swept: Mutex::new(Instant::now()),
        }
    }

    /// Counts one new connection of `identity`: `Err` past its pace.
    pub fn allow(&self, identity: &Identity) -> Result<(), Refused> {
        let actor = match (identity.user, identity.address) {
            (Some(user), _) => Actor::User(user),
            (None, Some(address)) => Actor::Visitor(address),
            (None, None) => return Ok(()),
        };
        self.sweep_now_and_then();
        self.buckets.check_key(&actor).map_err(|_| Refused::TooFast)
    }

    /// Once a minute, forgets the actors whose buckets are full again.
    fn sweep_now_and_then(&self) {
        let now = Instant::now();
        {
            let mut swept = self.swept.lock();
            if now.duration_since(*swept) < SWEEP_EVERY {
                return;
            }
            *swept = now;
        }
        self.buckets.retain_recent();
        self.buckets.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_actor_has_a_bucket_of_its_own() {
        let pace = Pace::new(1, 2);
        let ada = Identity {
            user: Some(UserId(1)),
            ..Identity::default()
        };
        let visitor = Identity {
            address: Some("127.0.0.2".parse().unwrap()),
            ..Identity::default()
        };
        for _ in 0..2 {
            assert_eq!(pace.allow(&ada), Ok(()));
            assert_eq!(pace.allow(&visitor), Ok(()));
        }
        assert_eq!(pace.allow(&ada), Err(Refused::TooFast));
        assert_eq!(pace.allow(&visitor), Err(Refused::TooFast));
        // Nobody to count: a connection the application did not place.
        assert_eq!(pace.allow(&Identity::default()), Ok(()));
    }
}
