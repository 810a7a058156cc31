//! How fast each actor may open connections: a logged-in user, or a
//! visitor's address. A token bucket each, so that a tab closed for
//! breaking a limit (4029, say) cannot come straight back with a fresh
//! budget, over and over. The burst lets every tab of a user reconnect at
//! once after a restart.
//!
//! A session whose user was refused is remembered until the user's bucket
//! has a token again ([`Pace::still_refused`]): a script reopening its
//! socket in a loop is then turned away before the application reads the
//! session from its database, at the cost of the TCP connection and the
//! HTTP request only. Only sessions that belonged to a user are remembered,
//! so forged cookies cannot fill the memory.

use std::{
    collections::HashMap,
    net::IpAddr,
    num::NonZeroU32,
    time::{Duration, Instant},
};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use parking_lot::Mutex;

use super::{Identity, Refused, SessionKey};
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
    /// Sessions of users refused for their pace, and until when.
    refused: Mutex<HashMap<SessionKey, Instant>>,
    swept: Mutex<Instant>,
}

impl Pace {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(per_minute);
        Self {
            buckets: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            refused: Mutex::default(),
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
        let not_until = match self.buckets.check_key(&actor) {
            Ok(()) => return Ok(()),
            Err(not_until) => not_until,
        };
        if let (Actor::User(_), Some(session)) = (actor, &identity.session) {
            let wait = not_until.wait_time_from(self.buckets.clock().now());
            self.refused
                .lock()
                .insert(session.clone(), Instant::now() + wait);
        }
        Err(Refused::TooFast)
    }

    /// Whether a new connection with `session` is refused without asking
    /// its user's bucket: its user was refused for opening connections too
    /// fast, and has no token yet.
    pub fn still_refused(&self, session: &SessionKey) -> bool {
        let mut refused = self.refused.lock();
        match refused.get(session) {
            Some(until) if Instant::now() < *until => true,
            Some(_) => {
                refused.remove(session);
                false
            }
            None => false,
        }
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
        let mut refused = self.refused.lock();
        refused.retain(|_, until| now < *until);
        refused.shrink_to_fit();
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

    #[test]
    fn a_refused_session_is_known_until_its_user_may_connect_again() {
        // Two at once, then one a second.
        let pace = Pace::new(60, 2);
        let session = SessionKey::from("ada's session");
        let ada = Identity {
            user: Some(UserId(1)),
            session: Some(session.clone()),
            ..Identity::default()
        };
        assert!(!pace.still_refused(&session));
        for _ in 0..2 {
            assert_eq!(pace.allow(&ada), Ok(()));
        }
        assert!(!pace.still_refused(&session), "nothing refused yet");
        assert_eq!(pace.allow(&ada), Err(Refused::TooFast));
        assert!(pace.still_refused(&session));
        assert!(!pace.still_refused(&SessionKey::from("another session")));
        std::thread::sleep(Duration::from_millis(1050));
        assert!(!pace.still_refused(&session), "the user has a token again");
        assert_eq!(pace.allow(&ada), Ok(()));

        // A visitor refused by address leaves no session behind.
        let pace = Pace::new(1, 1);
        let visitor = Identity {
            session: Some(SessionKey::from("a visitor's session")),
            address: Some("127.0.0.2".parse().unwrap()),
            ..Identity::default()
        };
        assert_eq!(pace.allow(&visitor), Ok(()));
        assert_eq!(pace.allow(&visitor), Err(Refused::TooFast));
        assert!(!pace.still_refused(&SessionKey::from("a visitor's session")));
    }
}
