//! How fast each actor may open connections: a logged-in user, or a
//! visitor's network. A token bucket each, so that a tab closed for
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
//!
//! The buckets per actor ([`ActorBuckets`], also the budget of the shared
//! history's reads an actor's joins cause) are bounded: past
//! [`MAX_ACTORS`] (a horde of addresses), new visitors share one bucket per
//! IPv6 /48 (so a horde from one block spends its block's alone), and one
//! for the rest, until a sweep makes room; users keep their own (accounts
//! cost a sign-up each).

use std::{
    collections::HashMap,
    net::IpAddr,
    num::NonZeroU32,
    time::{Duration, Instant},
};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use parking_lot::Mutex;

use super::{Identity, Refused, SessionKey, identity::ipv6_block};
use crate::{ConnectionId, UserId};

/// Who acts, for the buckets: a logged-in user, or a visitor's network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Actor {
    User(UserId),
    Visitor(IpAddr),
    /// Every visitor of one IPv6 block (/48), while the buckets are full.
    Block(IpAddr),
    /// Every other visitor, while the buckets are full.
    Visitors,
    /// A connection the application placed with neither user nor
    /// address, counted alone where it must be counted at all (its joins'
    /// reads).
    Connection(ConnectionId),
}

impl Actor {
    /// The actor behind `identity`; `None` for a connection the
    /// application did not place (no user, no address): not counted.
    pub fn of(identity: &Identity) -> Option<Self> {
        match (identity.user, identity.address) {
            (Some(user), _) => Some(Self::User(user)),
            (None, Some(address)) => Some(Self::Visitor(address)),
            (None, None) => None,
        }
    }
}

/// How often idle actors are forgotten: once a minute as a matter of
/// course, at most once a second while the buckets are full.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
const SWEEP_WHEN_FULL: Duration = Duration::from_secs(1);

/// Most actors with a bucket of their own: far more than act within a
/// minute on one process, few enough to bound the memory a million
/// addresses could take.
pub(crate) const MAX_ACTORS: usize = 100_000;

/// A token bucket per actor, at most [`MAX_ACTORS`] of them.
pub(crate) struct ActorBuckets {
    buckets: DefaultKeyedRateLimiter<Actor>,
    max_actors: usize,
    swept: Mutex<Instant>,
}

impl ActorBuckets {
    pub fn new(quota: Quota) -> Self {
        Self::with_max_actors(quota, MAX_ACTORS)
    }

    fn with_max_actors(quota: Quota, max_actors: usize) -> Self {
        Self {
            buckets: RateLimiter::keyed(quota),
            max_actors,
            swept: Mutex::new(Instant::now()),
        }
    }

    /// Takes a token of `actor`'s bucket, or says how long until one.
    pub fn check(&self, actor: Actor) -> Result<(), Duration> {
        let actor = self.bucket_of(actor);
        self.buckets
            .check_key(&actor)
            .map_err(|not_until| not_until.wait_time_from(self.buckets.clock().now()))
    }

    /// Takes a token of `actor`'s bucket, waiting for one if need be.
    pub async fn until_ready(&self, actor: Actor) {
        let actor = self.bucket_of(actor);
        self.buckets.until_key_ready(&actor).await;
    }

    /// Whose bucket `actor` spends: its own, or, while the buckets are
    /// full, its IPv6 block's (a horde from one /48 then spends one bucket
    /// and leaves the others theirs), or every other visitor's (one that
    /// had a bucket of its own too: which ones the map holds is not asked,
    /// to keep a check one look-up). A wait started on a shared bucket
    /// stays on it.
    fn bucket_of(&self, actor: Actor) -> Actor {
        let full = self.sweep_now_and_then();
        match actor {
            Actor::Visitor(address) if full => {
                ipv6_block(address).map_or(Actor::Visitors, Actor::Block)
            }
            actor => actor,
        }
    }

    /// Once a minute (once a second while full), forgets the actors whose
    /// buckets are full again. Whether the buckets are still full.
    fn sweep_now_and_then(&self) -> bool {
        let full = || self.buckets.len() >= self.max_actors;
        let now = Instant::now();
        {
            let mut swept = self.swept.lock();
            let every = if full() { SWEEP_WHEN_FULL } else { SWEEP_EVERY };
            if now.duration_since(*swept) < every {
                return full();
            }
            *swept = now;
        }
        self.buckets.retain_recent();
        self.buckets.shrink_to_fit();
        full()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.len()
    }
}

pub(crate) struct Pace {
    buckets: ActorBuckets,
    /// Sessions of users refused for their pace, and until when.
    refused: Mutex<HashMap<SessionKey, Instant>>,
}

impl Pace {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self::with_max_actors(per_minute, burst, MAX_ACTORS)
    }

    fn with_max_actors(per_minute: u32, burst: u32, max_actors: usize) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(per_minute);
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        Self {
            buckets: ActorBuckets::with_max_actors(quota, max_actors),
            refused: Mutex::default(),
        }
    }

    /// Counts one new connection of `identity`: `Err` past its pace.
    pub fn allow(&self, identity: &Identity) -> Result<(), Refused> {
        let Some(actor) = Actor::of(identity) else {
            return Ok(());
        };
        let wait = match self.buckets.check(actor) {
            Ok(()) => return Ok(()),
            Err(wait) => wait,
        };
        if let (Actor::User(_), Some(session)) = (actor, &identity.session) {
            let now = Instant::now();
            let mut refused = self.refused.lock();
            // Forgotten when asked about once their users may connect
            // again; a full map keeps the sessions still refused only.
            if refused.len() >= MAX_ACTORS {
                refused.retain(|_, until| now < *until);
            }
            if refused.len() < MAX_ACTORS {
                refused.insert(session.clone(), now + wait);
            }
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
    fn a_horde_of_addresses_shares_one_bucket_and_users_keep_theirs() {
        let pace = Pace::with_max_actors(1, 1, 3);
        let visitor = |n: u32| Identity {
            address: Some(IpAddr::from([10, 0, (n >> 8) as u8, n as u8])),
            ..Identity::default()
        };
        for n in 0..3 {
            assert_eq!(pace.allow(&visitor(n)), Ok(()));
        }
        // Full: the first newcomer takes the shared bucket's one token, and
        // the next newcomers are refused with it...
        assert_eq!(pace.allow(&visitor(3)), Ok(()));
        for n in 4..1000 {
            assert_eq!(pace.allow(&visitor(n)), Err(Refused::TooFast));
        }
        assert!(pace.buckets.len() <= 4, "{} buckets", pace.buckets.len());
        // ...while a user still has a bucket of her own.
        let ada = Identity {
            user: Some(UserId(1)),
            ..Identity::default()
        };
        assert_eq!(pace.allow(&ada), Ok(()));
    }

    #[test]
    fn a_horde_from_one_ipv6_block_shares_its_blocks_bucket_alone() {
        let pace = Pace::with_max_actors(1, 1, 3);
        let visitor = |address: String| Identity {
            address: Some(address.parse().unwrap()),
            ..Identity::default()
        };
        for n in 0..3 {
            assert_eq!(pace.allow(&visitor(format!("2001:db8:1:{n}::"))), Ok(()));
        }
        // Full: the block's newcomers share one bucket...
        assert_eq!(pace.allow(&visitor("2001:db8:1:3::".into())), Ok(()));
        for n in 4..1000 {
            let refused = pace.allow(&visitor(format!("2001:db8:1:{n:x}::")));
            assert_eq!(refused, Err(Refused::TooFast));
        }
        // ...and leave another block's, and everyone else's, alone.
        assert_eq!(pace.allow(&visitor("2001:db8:2:1::".into())), Ok(()));
        assert_eq!(pace.allow(&visitor("192.0.2.1".into())), Ok(()));
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
