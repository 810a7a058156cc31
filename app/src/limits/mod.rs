//! Rate limits on what people repeat: log-ins and sign-ups per network,
//! failed log-ins per account (not held against the networks an account
//! is known from), each action per user, and most writes per network too,
//! set so that a person never meets them and a script soon does.
//!
//! Most limits are a [`Rate`]: a burst that may be spent at once, refilled
//! at a steady pace (a token bucket, from the `governor` crate). Failed
//! log-ins are counted instead (`failures.rs`): only failures count, and the
//! owner's right password clears their count, so an attacker cannot use
//! the limit to lock the owner out. Over a limit, the action fails with
//! [`AppError::TooManyRequests`]: 429, a `Retry-After` header, and a
//! message saying how long to wait.
//!
//! Clients are counted by network ([`Network`]: an IPv4 address, an IPv6
//! /64 by default), and an IPv6 network by its /48 block too, which may
//! spend [`BLOCK_SHARE`] networks' worth: one holder of a /48 cannot spread
//! over its 65,536 /64s to fill the maps or to take more of the password
//! hashing than that. Every map of keys is bounded: a million addresses
//! cannot grow it past [`MAX_KEYS`] entries. Past that, the keys it does not
//! hold share one bucket until it has room again, and the ones it holds
//! keep theirs.
//!
//! The counts live in this process. With several processes behind a load
//! balancer each keeps its own, so a client spread over `N` processes can
//! do up to `N` times as much; the README says so.

mod failures;
mod keyed;

use std::{
    collections::HashMap,
    fmt,
    num::NonZeroU32,
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant},
};

use governor::Quota;

use self::{
    failures::Failures,
    keyed::{Keyed, Overflow},
};
use crate::{auth::UserId, client_addr::Network, error::AppError};

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

    /// `share` times as much: a burst `share` times larger, refilled
    /// `share` times as fast.
    fn times(self, share: u32) -> Self {
        let share = NonZeroU32::new(share).unwrap_or(NonZeroU32::MIN);
        Self {
            burst: self.burst.saturating_mul(share),
            every: self.every / share.get(),
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

/// What a limit counts per: whose bucket an action spends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Per {
    /// The client's network ([`Limits::by_address`]).
    Network,
    /// The logged-in user ([`Limits::by_user`], through
    /// `auth::guard::acting_user`).
    User,
    /// The user an action is aimed at, by name ([`Limits::by_recipient`]).
    Recipient,
    /// Failed log-ins to one account from one network
    /// ([`Limits::begin_log_in`]).
    AccountAndNetwork,
    /// Failed log-ins to one account from anywhere
    /// ([`Limits::begin_log_in`]).
    Account,
}

/// Declares every limit in one table: the [`Action`], what it counts per,
/// the variable that sets it and its default. [`Action::ALL`], the
/// limiters ([`Limits::new`]), the variable's parsing
/// (`server/src/config.rs`) and the metrics label follow from a row; what
/// is left is to count the action where it happens (`acting_user`,
/// [`Limits::by_address`]…) and to give it a row in the README's table of
/// limits, which a test holds to this one.
macro_rules! limits {
    ($($(#[$doc:meta])* $action:ident: per $per:ident, $variable:literal, $default:expr;)+) => {
        /// Everything that is rate-limited.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Action {
            $($(#[$doc])* $action,)+
        }

        impl Action {
            /// Every action, in the table's order.
            pub const ALL: &'static [Action] = &[$(Self::$action),+];

            /// What the limit counts per.
            pub fn per(self) -> Per {
                match self {
                    $(Self::$action => Per::$per,)+
                }
            }

            /// The environment variable that sets this limit.
            pub fn variable(self) -> &'static str {
                match self {
                    $(Self::$action => $variable,)+
                }
            }

            /// The limit when the environment does not set it.
            pub fn default_rate(self) -> Rate {
                match self {
                    $(Self::$action => $default,)+
                }
            }
        }
    };
}

limits! {
    /// Log-in attempts from one network, right or wrong: what bounds one
    /// client's share of the password hashing.
    LogInPerAddress: per Network, "LIMIT_LOG_IN_PER_ADDRESS", Rate::per(20, MINUTE);
    /// Failed log-ins to one account from one network; the account's right
    /// password from that network clears them.
    LogInFailures: per AccountAndNetwork, "LIMIT_LOG_IN_FAILURES", Rate::per(10, MINUTE);
    /// Failed log-ins to one account from anywhere: a ceiling for guesses
    /// spread over many networks, well above [`Action::LogInFailures`]; the
    /// networks the account logged in from lately are not held to it.
    LogInPerAccount: per Account, "LIMIT_LOG_IN_PER_ACCOUNT", Rate::per(100, MINUTE);
    /// Log-ins to one account that may take the password hashing's turn
    /// kept for known networks: bots logged in to their own account once
    /// from each of many networks cannot keep that turn taken.
    LogInKnownTurn: per Recipient, "LIMIT_LOG_IN_KNOWN_TURN", Rate::per(6, MINUTE);
    /// Sign-ups from one network.
    SignUpPerAddress: per Network, "LIMIT_SIGN_UP_PER_ADDRESS", Rate::per(10, HOUR);
    /// Announcements to every tab.
    Announce: per User, "LIMIT_ANNOUNCE", Rate::per(1, SECOND).burst(10);
    /// Announcements from one network, whoever makes them: accounts are
    /// cheap to make, so many on one network count together.
    AnnouncePerAddress: per Network, "LIMIT_ANNOUNCE_PER_ADDRESS", Rate::per(2, SECOND).burst(20);
    // @chat-begin
    /// Messages in a room: ten a second for three seconds is fine.
    Post: per User, "LIMIT_POST", Rate::per(5, SECOND).burst(30);
    /// "Is typing" signals.
    Typing: per User, "LIMIT_TYPING", Rate::per(5, SECOND).burst(20);
    /// "Is typing" signals from one network, whoever sends them.
    TypingPerAddress: per Network, "LIMIT_TYPING_PER_ADDRESS", Rate::per(20, SECOND).burst(100);
    /// Messages from one network, whoever posts them (an office behind
    /// one address posts a lot).
    PostPerAddress: per Network, "LIMIT_POST_PER_ADDRESS", Rate::per(20, SECOND).burst(100);
    /// Rooms created.
    CreateRoom: per User, "LIMIT_CREATE_ROOM", Rate::per(10, MINUTE);
    /// Rooms created from one network, whoever creates them.
    CreateRoomPerAddress: per Network, "LIMIT_CREATE_ROOM_PER_ADDRESS", Rate::per(30, MINUTE);
    /// Rooms renamed.
    Rename: per User, "LIMIT_RENAME", Rate::per(10, MINUTE);
    /// Rooms renamed from one network, whoever renames them.
    RenamePerAddress: per Network, "LIMIT_RENAME_PER_ADDRESS", Rate::per(30, MINUTE);
    // @chat-end
    /// Notifications sent.
    Notify: per User, "LIMIT_NOTIFY", Rate::per(2, SECOND).burst(20);
    /// Notifications from one network, whoever sends them: many accounts
    /// on one network count together.
    NotifyPerAddress: per Network, "LIMIT_NOTIFY_PER_ADDRESS", Rate::per(4, SECOND).burst(40);
    /// Notifications from one user to one name: one sender spends a
    /// quarter of what a name may get, so it cannot keep everyone else's
    /// from getting through.
    NotifyPerPair: per Recipient, "LIMIT_NOTIFY_PER_PAIR", Rate::per(1, SECOND).burst(10);
    /// Notifications to one name, from everyone: many accounts cannot flood
    /// one person's tabs, nor push their notifications out of the history.
    NotifyPerRecipient: per Recipient, "LIMIT_NOTIFY_PER_RECIPIENT", Rate::per(4, SECOND).burst(40);
    // scripts/new-resource adds each resource's limit above this line.
}

impl Action {
    /// The limit, as metrics label it: the variable's name, in lower case,
    /// without `LIMIT_`.
    pub fn label(self) -> String {
        let variable = self.variable();
        variable
            .strip_prefix("LIMIT_")
            .unwrap_or(variable)
            .to_ascii_lowercase()
    }

    /// The actions counted per `per`.
    fn each_per(per: Per) -> impl Iterator<Item = Action> {
        Self::ALL
            .iter()
            .copied()
            .filter(move |action| action.per() == per)
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

/// Most keys each limiter keeps: enough for every client of a busy site
/// within a limit's refill time, few enough to bound memory whatever the
/// number of addresses a client has (docs/benchmarks.md, "Limits under a
/// million addresses").
pub const MAX_KEYS: usize = 100_000;

/// How many networks' worth of each limit per network an IPv6 block (a
/// /48) may spend: the subnets of one site share it.
pub const BLOCK_SHARE: u32 = 16;

/// The application's rate limiters, shared by every request of this
/// process. A cheap clone.
#[derive(Clone)]
pub struct Limits {
    inner: Arc<Limiters>,
}

struct Limiters {
    per_network: HashMap<Action, Keyed<Network>>,
    /// The same actions per IPv6 block, at [`BLOCK_SHARE`] times the rate.
    per_block: HashMap<Action, Keyed<Network>>,
    per_user: HashMap<Action, Keyed<UserId>>,
    per_recipient: HashMap<Action, Keyed<String>>,
    /// Failed log-ins per (account, network), and per account.
    failures: Failures<(String, Network)>,
    account_failures: Failures<String>,
    /// The networks each account logged in from lately: the account's
    /// ceiling does not apply there, so guesses from everywhere else cannot
    /// lock the owner out of her usual places.
    known: moka::sync::Cache<(String, Network), ()>,
}

/// How long a network an account signed up or logged in from stays
/// known: longer than a login lasts (30 days at most by default), so that
/// an owner who logs in again when it ends is still at home.
const KNOWN_FOR: Duration = Duration::from_secs(60 * 24 * 3600);

impl fmt::Debug for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limits").finish_non_exhaustive()
    }
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Self {
        Self::with_max_keys(config, MAX_KEYS)
    }

    /// Limits whose maps keep at most `max_keys` keys each.
    pub fn with_max_keys(config: &LimitsConfig, max_keys: usize) -> Self {
        // A limiter for each action counted per `per`, at `share` times
        // its rate.
        fn keyed<K: Overflow>(
            per: Per,
            share: u32,
            config: &LimitsConfig,
            max_keys: usize,
        ) -> HashMap<Action, Keyed<K>> {
            Action::each_per(per)
                .map(|action| {
                    let rate = config.rate(action).times(share);
                    (action, Keyed::new(action, rate, max_keys))
                })
                .collect()
        }
        Self {
            inner: Arc::new(Limiters {
                per_network: keyed(Per::Network, 1, config, max_keys),
                per_block: keyed(Per::Network, BLOCK_SHARE, config, max_keys),
                per_user: keyed(Per::User, 1, config, max_keys),
                per_recipient: keyed(Per::Recipient, 1, config, max_keys),
                failures: Failures::new(
                    Action::LogInFailures,
                    config.rate(Action::LogInFailures),
                    max_keys,
                ),
                account_failures: Failures::new(
                    Action::LogInPerAccount,
                    config.rate(Action::LogInPerAccount),
                    max_keys,
                ),
                known: moka::sync::Cache::builder()
                    .max_capacity(max_keys as u64)
                    .time_to_live(KNOWN_FOR)
                    .build(),
            }),
        }
    }

    /// Counts one `action` (a log-in, a sign-up, a notification) from
    /// `network`, and from its IPv6 block.
    pub fn by_address(&self, action: Action, network: Network) -> Result<(), AppError> {
        let Some(block) = network.block() else {
            return check(&self.inner.per_network, action, network);
        };
        // A network held already is asked first: over its own limit, it
        // spends nothing of its block's share, which its neighbours need.
        // One not held yet is asked of its block first: a block over its
        // share adds no key to the map of networks.
        let held = self
            .inner
            .per_network
            .get(&action)
            .is_some_and(|limiter| limiter.holds(&network));
        if held {
            check(&self.inner.per_network, action, network)?;
            check(&self.inner.per_block, action, block)
        } else {
            check(&self.inner.per_block, action, block)?;
            check(&self.inner.per_network, action, network)
        }
    }

    /// Begins a log-in to the account called `name` (any case) from
    /// `network`, counted as a failure until it is known not to be one: so
    /// guesses sent at once are counted before any is answered, and can
    /// never be more than the limit. Refused if it failed too often from
    /// there, or from everywhere (unless the account logged in from there
    /// lately). Call it with valid account names only.
    pub fn begin_log_in(&self, name: &str, network: Network) -> Result<LogInAttempt, AppError> {
        let key = (name.to_lowercase(), network);
        let failures = &self.inner.failures;
        let accounts = &self.inner.account_failures;
        let network_window = failures.count(&key, true)?;
        // From a network the account logged in from lately, it counts
        // against the account too, but is never refused for it.
        let known = self.inner.known.contains_key(&key);
        let account_window = match accounts.count(&key.0, !known) {
            Ok(window) => window,
            Err(error) => {
                failures.uncount(&key, network_window);
                return Err(error);
            }
        };
        Ok(LogInAttempt {
            limits: Arc::clone(&self.inner),
            key,
            windows: (network_window, account_window),
            known,
            outcome: None,
        })
    }

    /// The account called `name` (any case) was just made from `network`:
    /// the network is known to it, as after a log-in.
    pub fn signed_up_from(&self, name: &str, network: Network) {
        self.inner.known.insert((name.to_lowercase(), network), ());
    }

    /// Counts one `action` aimed at the user called `name` (any case), a
    /// notification say, whether or not there is one: the answer must not
    /// tell. Call it with valid user names only.
    pub fn by_recipient(&self, action: Action, name: &str) -> Result<(), AppError> {
        check(&self.inner.per_recipient, action, name.to_lowercase())
    }

    /// Counts one `action` by `user`.
    pub fn by_user(&self, action: Action, user: UserId) -> Result<(), AppError> {
        check(&self.inner.per_user, action, user)
    }
}

/// Counts one `action` by `key` in the limiter `limiters` has for it. An
/// action asked of limiters of another kind (`by_user` with a limit per
/// network, say) is a mistake in the code: it panics in debug builds (the
/// tests), and is logged and let through in release ones.
fn check<K: Overflow>(
    limiters: &HashMap<Action, Keyed<K>>,
    action: Action,
    key: K,
) -> Result<(), AppError> {
    match limiters.get(&action) {
        Some(limiter) => limiter.check(key),
        None => {
            debug_assert!(false, "{action:?} is counted per {:?}", action.per());
            tracing::error!(?action, per = ?action.per(), "a limit asked of the wrong limiters");
            Ok(())
        }
    }
}

/// A log-in under way, counted as a failure (see
/// [`Limits::begin_log_in`]). Say how it ended: a wrong password stays
/// counted; a right one clears the network's failures (not the account's
/// from everywhere: an owner's log-in does not give a spread-out guesser a
/// fresh start) and makes the network known to the account for
/// [`KNOWN_FOR`]. Dropped without either (another error, or the request
/// gone), it never counted.
#[must_use = "say whether the password was right"]
pub struct LogInAttempt {
    limits: Arc<Limiters>,
    key: (String, Network),
    /// When the windows it was counted in began (the network's, the
    /// account's): it is taken back from those only.
    windows: (Instant, Instant),
    /// The account logged in from this network lately.
    known: bool,
    outcome: Option<bool>,
}

impl LogInAttempt {
    /// Whether the account logged in from this network lately.
    pub fn from_known_network(&self) -> bool {
        self.known
    }

    /// The password was wrong: the failure stays counted.
    pub fn failed(mut self) {
        self.outcome = Some(false);
    }

    /// The password was right.
    pub fn succeeded(mut self) {
        self.outcome = Some(true);
    }
}

impl Drop for LogInAttempt {
    fn drop(&mut self) {
        let limits = &self.limits;
        match self.outcome {
            Some(false) => return,
            Some(true) => {
                limits.failures.clear(&self.key);
                limits.known.insert(self.key.clone(), ());
            }
            None => limits.failures.uncount(&self.key, self.windows.0),
        }
        limits.account_failures.uncount(&self.key.0, self.windows.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's table of limits names every `LIMIT_*` variable with
    /// its default, and no variable that is not one.
    #[test]
    fn the_readme_lists_every_limit_with_its_default() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));
        let rows: Vec<Vec<&str>> = readme
            .lines()
            .filter(|line| line.starts_with("| `LIMIT_"))
            .map(|line| line.split('|').map(str::trim).collect())
            .collect();
        for &action in Action::ALL {
            let variable = format!("`{}`", action.variable());
            let row = rows
                .iter()
                .find(|row| row[1].split(", ").any(|name| name == variable))
                .unwrap_or_else(|| panic!("the README's limits table has no row for {variable}"));
            assert_eq!(
                row[2].trim_matches('`').parse::<Rate>(),
                Ok(action.default_rate()),
                "the README's default for {variable}"
            );
        }
        for row in &rows {
            for name in row[1].split(", ") {
                let name = name.trim_matches('`');
                assert!(
                    Action::ALL.iter().any(|action| action.variable() == name),
                    "the README's limits table names {name}, which is no limit"
                );
            }
        }
    }

    #[test]
    fn each_action_is_counted_where_it_says() {
        let limits = Limits::new(&LimitsConfig::default());
        for &action in Action::ALL {
            let held = match action.per() {
                Per::Network => limits.inner.per_network.contains_key(&action),
                Per::User => limits.inner.per_user.contains_key(&action),
                Per::Recipient => limits.inner.per_recipient.contains_key(&action),
                Per::AccountAndNetwork => limits.inner.failures.action() == action,
                Per::Account => limits.inner.account_failures.action() == action,
            };
            assert!(held, "{action:?} has no limiter per {:?}", action.per());
        }
    }

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

    fn network(address: &str) -> Network {
        crate::client_addr::NetworkPrefixes::default()
            .network_of(address.parse().expect("an address"))
    }

    /// A log-in to `name` from `network` with a wrong password.
    fn wrong_password(limits: &Limits, name: &str, network: Network) -> Result<(), AppError> {
        limits.begin_log_in(name, network).map(LogInAttempt::failed)
    }

    /// A log-in to `name` from `network` with the right password.
    fn right_password(limits: &Limits, name: &str, network: Network) -> Result<(), AppError> {
        limits
            .begin_log_in(name, network)
            .map(LogInAttempt::succeeded)
    }

    #[test]
    fn failed_log_ins_are_counted_per_account_and_network_and_a_success_clears_them() {
        let mut config = LimitsConfig::default();
        config.set(Action::LogInFailures, Rate::per(2, HOUR));
        let limits = Limits::new(&config);
        let (home, attacker) = (network("192.0.2.1"), network("198.51.100.7"));
        // The owner's typo, then the right password: nothing held against her.
        assert_eq!(wrong_password(&limits, "Ada", home), Ok(()));
        assert_eq!(right_password(&limits, "ada", home), Ok(()));
        assert_eq!(wrong_password(&limits, "ada", home), Ok(()));
        assert_eq!(right_password(&limits, "ada", home), Ok(()));
        // Two failures from one network, whatever the case: that network
        // is refused for this account...
        assert_eq!(wrong_password(&limits, "ADA", attacker), Ok(()));
        assert_eq!(wrong_password(&limits, "ada", attacker), Ok(()));
        assert!(matches!(
            limits.begin_log_in("Ada", attacker),
            Err(AppError::TooManyRequests { retry_after_secs }) if retry_after_secs > 3000
        ));
        // ...and only that network, and only this account.
        assert_eq!(right_password(&limits, "ada", home), Ok(()));
        assert_eq!(wrong_password(&limits, "grace", attacker), Ok(()));
        // Successes never count.
        for _ in 0..10 {
            assert_eq!(right_password(&limits, "grace", home), Ok(()));
        }
    }

    #[test]
    fn log_ins_at_once_are_counted_before_any_is_answered() {
        let mut config = LimitsConfig::default();
        config.set(Action::LogInFailures, Rate::per(2, HOUR));
        let limits = Limits::new(&config);
        let attacker = network("198.51.100.7");
        let first = limits.begin_log_in("ada", attacker).unwrap();
        let second = limits.begin_log_in("ada", attacker).unwrap();
        assert!(limits.begin_log_in("ada", attacker).is_err());
        // One that ends in another error (or whose request is gone) did
        // not count.
        drop(second);
        first.failed();
        let third = limits.begin_log_in("ada", attacker).unwrap();
        third.failed();
        assert!(limits.begin_log_in("ada", attacker).is_err());
    }

    #[test]
    fn failures_from_everywhere_meet_the_accounts_ceiling() {
        let mut config = LimitsConfig::default();
        config.set(Action::LogInPerAccount, Rate::per(3, HOUR));
        let limits = Limits::new(&config);
        for address in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
            assert_eq!(wrong_password(&limits, "ada", network(address)), Ok(()));
        }
        assert!(limits.begin_log_in("ada", network("192.0.2.1")).is_err());
        assert_eq!(
            right_password(&limits, "grace", network("192.0.2.1")),
            Ok(())
        );
    }

    #[test]
    fn the_owners_usual_networks_stay_open_past_the_accounts_ceiling() {
        let mut config = LimitsConfig::default();
        config.set(Action::LogInPerAccount, Rate::per(3, HOUR));
        let limits = Limits::new(&config);
        let home = network("192.0.2.1");
        assert_eq!(right_password(&limits, "ada", home), Ok(()));
        for address in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
            assert_eq!(wrong_password(&limits, "ada", network(address)), Ok(()));
        }
        assert!(limits.begin_log_in("ada", network("203.0.113.9")).is_err());
        assert_eq!(right_password(&limits, "Ada", home), Ok(()));
        // Wrong passwords from her usual network still count against the
        // account (and are not refused for it).
        let limits = Limits::new(&config);
        assert_eq!(right_password(&limits, "ada", home), Ok(()));
        for _ in 0..3 {
            assert_eq!(wrong_password(&limits, "ada", home), Ok(()));
        }
        assert!(limits.begin_log_in("ada", network("203.0.113.9")).is_err());
    }

    #[test]
    fn an_account_is_known_from_where_it_signed_up_or_logged_in() {
        let limits = Limits::new(&LimitsConfig::default());
        let (signed_up, logged_in, elsewhere) = (
            network("192.0.2.1"),
            network("192.0.2.2"),
            network("198.51.100.7"),
        );
        limits.signed_up_from("Ada", signed_up);
        assert_eq!(right_password(&limits, "ada", logged_in), Ok(()));
        for (from, known) in [(signed_up, true), (logged_in, true), (elsewhere, false)] {
            let attempt = limits.begin_log_in("ADA", from).unwrap();
            assert_eq!(attempt.from_known_network(), known, "{from:?}");
            attempt.failed();
        }
        // Another account is not known from there.
        let attempt = limits.begin_log_in("grace", signed_up).unwrap();
        assert!(!attempt.from_known_network());
        attempt.failed();
    }

    #[test]
    fn an_ipv6_64_is_one_client() {
        let mut config = LimitsConfig::default();
        config.set(Action::SignUpPerAddress, Rate::per(1, HOUR));
        let limits = Limits::new(&config);
        assert_eq!(
            limits.by_address(Action::SignUpPerAddress, network("2001:db8:1:2::1")),
            Ok(())
        );
        assert!(
            limits
                .by_address(Action::SignUpPerAddress, network("2001:db8:1:2:ffff::9"))
                .is_err()
        );
        assert_eq!(
            limits.by_address(Action::SignUpPerAddress, network("2001:db8:1:3::1")),
            Ok(())
        );
    }

    #[test]
    fn an_ipv6_block_spreads_over_its_64s_for_its_share_only() {
        let mut config = LimitsConfig::default();
        config.set(Action::SignUpPerAddress, Rate::per(1, HOUR));
        let limits = Limits::with_max_keys(&config, 1000);
        let from = |address: String| limits.by_address(Action::SignUpPerAddress, network(&address));
        let allowed = (0..1000)
            .filter(|n| from(format!("2001:db8:1:{n:x}::1")).is_ok())
            .count();
        assert_eq!(allowed, BLOCK_SHARE as usize);
        let held = limits.inner.per_network[&Action::SignUpPerAddress].keys_held();
        assert!(held <= BLOCK_SHARE as usize + 1, "{held} networks held");
        // Another block, and IPv4, have shares of their own.
        assert_eq!(from("2001:db8:2::1".to_owned()), Ok(()));
        assert_eq!(from("192.0.2.1".to_owned()), Ok(()));
        // A network over its own limit spends nothing of its block's
        // share: its neighbours keep theirs.
        assert_eq!(from("2001:db8:3:1::1".to_owned()), Ok(()));
        for _ in 0..100 {
            assert!(from("2001:db8:3:1::1".to_owned()).is_err());
        }
        let neighbours = (2..100)
            .filter(|n| from(format!("2001:db8:3:{n:x}::1")).is_ok())
            .count();
        assert_eq!(neighbours, BLOCK_SHARE as usize - 1);
    }

    #[test]
    fn a_horde_of_addresses_keeps_the_maps_bounded() {
        // Buckets that take an hour to refill: no sweep forgets a key
        // during the test, however slow the machine.
        let mut config = LimitsConfig::default();
        config.set(Action::LogInPerAddress, Rate::per(1, HOUR).burst(1000));
        let limits = Limits::with_max_keys(&config, 1000);
        // A client known before the horde.
        let regular = network("192.0.2.1");
        assert_eq!(limits.by_address(Action::LogInPerAddress, regular), Ok(()));
        let mut refused = 0;
        for n in 0..100_000u32 {
            let address = std::net::IpAddr::V4(std::net::Ipv4Addr::from_bits(0x0a00_0000 + n));
            let network = crate::client_addr::NetworkPrefixes::default().network_of(address);
            if limits.by_address(Action::LogInPerAddress, network).is_err() {
                refused += 1;
            }
            if n % 10 == 0
                && let Ok(attempt) = limits.begin_log_in(&format!("user{n}"), network)
            {
                attempt.failed();
            }
        }
        let inner = &limits.inner;
        // The bound, and the overflow bucket.
        assert!(inner.per_network[&Action::LogInPerAddress].keys_held() <= 1001);
        assert!(inner.failures.keys_held() <= 1000);
        assert!(inner.account_failures.keys_held() <= 1000);
        // Past the bound, the newcomers shared one bucket...
        assert!(refused >= 97_000, "{refused}");
        // ...and the client held before keeps its own.
        assert_eq!(limits.by_address(Action::LogInPerAddress, regular), Ok(()));
    }
}
