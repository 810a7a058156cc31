//! Rate limits on what people repeat: log-ins and sign-ups per address (and
//! log-ins per account name), and each action per user, set so that a
//! person never meets them and a script soon does.
//!
//! Each limit is a [`Rate`]: a burst that may be spent at once, refilled at
//! a steady pace (a token bucket, from the `governor` crate). Over it, the
//! action fails with [`AppError::TooManyRequests`]: 429, a `Retry-After`
//! header, and a message saying how long to wait.
//!
//! The counts live in this process. With several processes behind a load
//! balancer each keeps its own, so a client spread over `N` processes can
//! do up to `N` times as much; the README says so.

use std::{
    collections::HashMap,
    fmt,
    net::IpAddr,
    num::NonZeroU32,
    str::FromStr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

use crate::{auth::UserId, error::AppError};

/// How often something may happen: up to `burst` at once, refilled by one
/// every `every`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub burst: NonZeroU32,
    pub every: Duration,
}

impl Rate {
    /// `count` per `period`, with a burst of as many.
    const fn per(count: u32, period: Duration) -> Self {
        let Some(burst) = NonZeroU32::new(count) else {
            panic!("a rate needs a count above zero");
        };
        Self {
            burst,
            every: Duration::from_nanos(period.as_nanos() as u64 / count as u64),
        }
    }

    /// The same steady pace, with another burst.
    const fn burst(self, burst: u32) -> Self {
        let Some(burst) = NonZeroU32::new(burst) else {
            panic!("a burst needs a count above zero");
        };
        Self { burst, ..self }
    }

    fn quota(self) -> Quota {
        Quota::with_period(self.every)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(self.burst)
    }
}

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

impl FromStr for Rate {
    type Err = String;

    /// `10/s`, `20/min`, `10/h`, optionally followed by `burst 30`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wrong = || format!("{text:?} is not a rate such as \"10/s\" or \"20/min burst 40\"");
        let mut words = text.split_whitespace();
        let (count, unit) = words
            .next()
            .and_then(|rate| rate.split_once('/'))
            .ok_or_else(wrong)?;
        let count: u32 = count
            .parse()
            .ok()
            .filter(|count| *count > 0)
            .ok_or_else(wrong)?;
        let period = match unit {
            "s" => SECOND,
            "min" => MINUTE,
            "h" => HOUR,
            _ => return Err(wrong()),
        };
        let rate = Self::per(count, period);
        match (words.next(), words.next(), words.next()) {
            (None, None, None) => Ok(rate),
            (Some("burst"), Some(burst), None) => {
                let burst: u32 = burst
                    .parse()
                    .ok()
                    .filter(|burst| *burst > 0)
                    .ok_or_else(wrong)?;
                Ok(rate.burst(burst))
            }
            _ => Err(wrong()),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one per {:?}, burst {}", self.every, self.burst)
    }
}

/// Everything that is rate-limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Log-ins from one address.
    LogInPerAddress,
    /// Log-ins to one account name, from anywhere.
    LogInPerAccount,
    /// Sign-ups from one address.
    SignUpPerAddress,
    /// Each of these per user.
    Announce,
    // @chat-begin
    Post,
    Typing,
    CreateRoom,
    Rename,
    // @chat-end
    Notify,
}

impl Action {
    pub const ALL: &'static [Action] = &[
        Self::LogInPerAddress,
        Self::LogInPerAccount,
        Self::SignUpPerAddress,
        Self::Announce,
        // @chat-begin
        Self::Post,
        Self::Typing,
        Self::CreateRoom,
        Self::Rename,
        // @chat-end
        Self::Notify,
    ];

    /// The limit, as metrics label it: the variable's name, in lower case,
    /// without `LIMIT_`.
    pub fn label(self) -> &'static str {
        match self {
            Self::LogInPerAddress => "log_in_per_address",
            Self::LogInPerAccount => "log_in_per_account",
            Self::SignUpPerAddress => "sign_up_per_address",
            Self::Announce => "announce",
            // @chat-begin
            Self::Post => "post",
            Self::Typing => "typing",
            Self::CreateRoom => "create_room",
            Self::Rename => "rename",
            // @chat-end
            Self::Notify => "notify",
        }
    }

    /// The environment variable that sets this limit.
    pub fn variable(self) -> &'static str {
        match self {
            Self::LogInPerAddress => "LIMIT_LOG_IN_PER_ADDRESS",
            Self::LogInPerAccount => "LIMIT_LOG_IN_PER_ACCOUNT",
            Self::SignUpPerAddress => "LIMIT_SIGN_UP_PER_ADDRESS",
            Self::Announce => "LIMIT_ANNOUNCE",
            // @chat-begin
            Self::Post => "LIMIT_POST",
            Self::Typing => "LIMIT_TYPING",
            Self::CreateRoom => "LIMIT_CREATE_ROOM",
            Self::Rename => "LIMIT_RENAME",
            // @chat-end
            Self::Notify => "LIMIT_NOTIFY",
        }
    }

    /// The limit when the environment does not set it.
    pub fn default_rate(self) -> Rate {
        match self {
            Self::LogInPerAddress => Rate::per(20, MINUTE),
            Self::LogInPerAccount => Rate::per(10, MINUTE),
            Self::SignUpPerAddress => Rate::per(10, HOUR),
            Self::Announce => Rate::per(1, SECOND).burst(10),
            // @chat-begin
            // Ten messages a second for three seconds is fine.
            Self::Post => Rate::per(5, SECOND).burst(30),
            Self::Typing => Rate::per(5, SECOND).burst(20),
            Self::CreateRoom => Rate::per(10, MINUTE),
            Self::Rename => Rate::per(10, MINUTE),
            // @chat-end
            Self::Notify => Rate::per(2, SECOND).burst(20),
        }
    }
}

/// The rate of each action; [`Action::default_rate`] unless set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsConfig {
    rates: HashMap<Action, Rate>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            rates: Action::ALL
                .iter()
                .copied()
                .map(|action| (action, action.default_rate()))
                .collect(),
        }
    }
}

impl LimitsConfig {
    pub fn rate(&self, action: Action) -> Rate {
        self.rates
            .get(&action)
            .copied()
            .unwrap_or_else(|| action.default_rate())
    }

    pub fn set(&mut self, action: Action, rate: Rate) {
        self.rates.insert(action, rate);
    }
}

/// The application's rate limiters, shared by every request of this
/// process. A cheap clone.
#[derive(Clone)]
pub struct Limits {
    inner: Arc<Limiters>,
}

struct Limiters {
    per_address: HashMap<Action, DefaultKeyedRateLimiter<IpAddr>>,
    per_account: DefaultKeyedRateLimiter<String>,
    per_user: HashMap<Action, DefaultKeyedRateLimiter<UserId>>,
    /// When idle keys were last forgotten.
    swept: Mutex<Instant>,
}

/// How often idle keys are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl fmt::Debug for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limits").finish_non_exhaustive()
    }
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Self {
        let per_address = [Action::LogInPerAddress, Action::SignUpPerAddress]
            .into_iter()
            .map(|action| (action, keyed(config, action)))
            .collect();
        let per_user = [
            Action::Announce,
            // @chat-begin
            Action::Post,
            Action::Typing,
            Action::CreateRoom,
            Action::Rename,
            // @chat-end
            Action::Notify,
        ]
        .into_iter()
        .map(|action| (action, keyed(config, action)))
        .collect();
        Self {
            inner: Arc::new(Limiters {
                per_address,
                per_account: keyed(config, Action::LogInPerAccount),
                per_user,
                swept: Mutex::new(Instant::now()),
            }),
        }
    }

    /// Counts one log-in or sign-up from `address`.
    pub fn by_address(&self, action: Action, address: IpAddr) -> Result<(), AppError> {
        self.sweep_now_and_then();
        match self.inner.per_address.get(&action) {
            Some(limiter) => verdict(action, limiter.check_key(&address)),
            None => Ok(()),
        }
    }

    /// Counts one log-in to the account called `name` (any case). Call it
    /// with valid account names only: every name is a key kept in memory.
    pub fn by_account(&self, name: &str) -> Result<(), AppError> {
        self.sweep_now_and_then();
        verdict(
            Action::LogInPerAccount,
            self.inner.per_account.check_key(&name.to_lowercase()),
        )
    }

    /// Counts one `action` by `user`.
    pub fn by_user(&self, action: Action, user: UserId) -> Result<(), AppError> {
        self.sweep_now_and_then();
        match self.inner.per_user.get(&action) {
            Some(limiter) => verdict(action, limiter.check_key(&user)),
            None => Ok(()),
        }
    }

    /// Once a minute, forgets the keys whose buckets are full again, so
    /// memory follows the recent clients, not every client ever seen.
    fn sweep_now_and_then(&self) {
        let now = Instant::now();
        {
            let mut swept = self
                .inner
                .swept
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if now.duration_since(*swept) < SWEEP_EVERY {
                return;
            }
            *swept = now;
        }
        self.forget_idle();
    }

    fn forget_idle(&self) {
        let Limiters {
            per_address,
            per_account,
            per_user,
            swept: _,
        } = &*self.inner;
        for limiter in per_address.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        for limiter in per_user.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        per_account.retain_recent();
        per_account.shrink_to_fit();
    }
}

/// A limiter for `action`, with a bucket per key.
fn keyed<K: Clone + Eq + std::hash::Hash>(
    config: &LimitsConfig,
    action: Action,
) -> DefaultKeyedRateLimiter<K> {
    RateLimiter::keyed(config.rate(action).quota())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_written() {
        assert_eq!("10/s".parse(), Ok(Rate::per(10, SECOND)));
        assert_eq!(
            "20/min burst 40".parse(),
            Ok(Rate::per(20, MINUTE).burst(40))
        );
        assert_eq!(
            "3/h".parse::<Rate>().map(|rate| rate.every),
            Ok(Duration::from_secs(1200))
        );
        for bad in [
            "",
            "10",
            "0/s",
            "10/day",
            "10/s burst",
            "10/s burst 0",
            "10/s x 3",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_burst_passes_and_the_next_one_is_told_when_to_retry() {
        let mut config = LimitsConfig::default();
        config.set(Action::Announce, Rate::per(1, MINUTE).burst(3));
        let limits = Limits::new(&config);
        let ada = UserId(1);
        for _ in 0..3 {
            assert_eq!(limits.by_user(Action::Announce, ada), Ok(()));
        }
        match limits.by_user(Action::Announce, ada) {
            Err(AppError::TooManyRequests { retry_after_secs }) => {
                assert!((1..=60).contains(&retry_after_secs), "{retry_after_secs}")
            }
            other => panic!("{other:?}"),
        }
        // Another user, and another action, have buckets of their own.
        assert_eq!(limits.by_user(Action::Announce, UserId(2)), Ok(()));
        assert_eq!(limits.by_user(Action::Notify, ada), Ok(()));
    }

    #[test]
    fn account_names_are_counted_whatever_their_case() {
        let mut config = LimitsConfig::default();
        config.set(Action::LogInPerAccount, Rate::per(1, HOUR));
        let limits = Limits::new(&config);
        assert_eq!(limits.by_account("Ada"), Ok(()));
        assert!(limits.by_account("ada").is_err());
        assert_eq!(limits.by_account("grace"), Ok(()));
    }

    #[test]
    fn addresses_are_counted_apart() {
        let mut config = LimitsConfig::default();
        config.set(Action::LogInPerAddress, Rate::per(1, HOUR));
        let limits = Limits::new(&config);
        let (attacker, neighbour) = ("127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap());
        assert_eq!(limits.by_address(Action::LogInPerAddress, attacker), Ok(()));
        assert!(
            limits
                .by_address(Action::LogInPerAddress, attacker)
                .is_err()
        );
        assert_eq!(
            limits.by_address(Action::LogInPerAddress, neighbour),
            Ok(())
        );
    }
}
