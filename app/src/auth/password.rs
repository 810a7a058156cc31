//! Password hashing with Argon2id (the `argon2` crate's defaults, which
//! follow the OWASP recommendation), a few at a time.
//!
//! Each hash takes tens of milliseconds of CPU and 19 MiB of memory on
//! purpose, so it runs on tokio's blocking pool, and no more than
//! [`HashingConfig::concurrency`] run at once: a few hundred log-ins at the
//! same moment wait their turn instead of taking gigabytes. A call that
//! waits longer than [`HashingConfig::max_wait`] gets [`AppError::Busy`]
//! (503, "try again in a moment").
//!
//! Guesses from many addresses can keep every turn taken. A log-in from a
//! network its account signed up or logged in from lately may also take
//! one more turn, kept for such log-ins ([`Turns::SharedOrKnown`]), a few
//! times a minute per account: owners still get in while strangers'
//! log-ins and sign-ups are turned away. It raises what an attack costs
//! (many networks, each logged in to an account of its own, and many
//! accounts), it does not rule one out.

use std::{
    sync::{
        Arc, LazyLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng},
};
use tokio::sync::Semaphore;

use super::AuthError;
use crate::error::AppError;

/// How many hashes may run at once, and how long a call may wait its turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashingConfig {
    /// `PASSWORD_HASHING_CONCURRENCY`; by default the number of cores minus
    /// one (at least one), so one core serves everything else (but for the
    /// [`KNOWN_NETWORK_TURNS`] kept for owners).
    pub concurrency: usize,
    /// `PASSWORD_HASHING_MAX_WAIT_SECS`; 5 s by default.
    pub max_wait: Duration,
}

impl Default for HashingConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            concurrency: cores.saturating_sub(1).max(1),
            max_wait: Duration::from_secs(5),
        }
    }
}

/// Turns kept for log-ins from networks their accounts logged in from
/// lately, beside the shared ones.
pub const KNOWN_NETWORK_TURNS: usize = 1;

/// Which turns a call may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turns {
    /// One of the [`HashingConfig::concurrency`] turns every call shares.
    Shared,
    /// One of those, or one of the [`KNOWN_NETWORK_TURNS`]: a log-in from
    /// a network its account logged in from lately.
    SharedOrKnown,
}

/// Hashes and verifies passwords, at most [`HashingConfig::concurrency`] at
/// a time (and [`KNOWN_NETWORK_TURNS`] more for log-ins from known
/// networks). A cheap clone: clones share the limit.
#[derive(Clone, Debug)]
pub struct Hasher {
    turns: Arc<Semaphore>,
    known: Arc<Semaphore>,
    max_wait: Duration,
    /// Calls waiting for their turn, for monitoring.
    waiting: Arc<AtomicUsize>,
}

impl Hasher {
    pub fn new(config: HashingConfig) -> Self {
        Self {
            turns: Arc::new(Semaphore::new(config.concurrency.max(1))),
            known: Arc::new(Semaphore::new(KNOWN_NETWORK_TURNS)),
            max_wait: config.max_wait,
            waiting: Arc::default(),
        }
    }

    /// Hashes a new account's `password`, as [`Hasher::hash`], unless it is
    /// one of the most common ones ([`is_common`]): checked in the same
    /// turn, since the check costs CPU too.
    pub async fn hash_new(&self, password: String) -> Result<String, AppError> {
        let common = {
            let password = password.clone();
            self.run(Turns::Shared, move || Ok(is_common(&password)))
                .await?
        };
        if common {
            return Err(AuthError::PasswordTooCommon.into());
        }
        self.hash(password).await
    }

    /// Hashes `password` with a fresh random salt, in PHC string format
    /// (`$argon2id$v=19$m=…`), which records the parameters beside the
    /// hash.
    pub async fn hash(&self, password: String) -> Result<String, AppError> {
        self.run(Turns::Shared, move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|error| {
                    tracing::error!(%error, "hashing a password failed");
                    AppError::Internal
                })
        })
        .await
    }

    /// Whether `password` matches the stored PHC string `hash`, in one of
    /// `turns`.
    ///
    /// With `hash: None` (no such user) it still spends the time of one
    /// verification against a throw-away hash, so the response time does
    /// not tell an attacker whether the name exists.
    pub async fn verify(
        &self,
        password: String,
        hash: Option<String>,
        turns: Turns,
    ) -> Result<bool, AppError> {
        self.run(turns, move || {
            let known_user = hash.is_some();
            let hash = hash.as_deref().unwrap_or(&DECOY_HASH);
            let parsed = PasswordHash::new(hash).map_err(|error| {
                tracing::error!(%error, "a stored password hash is malformed");
                AppError::Internal
            })?;
            let matches = Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            Ok(known_user && matches)
        })
        .await
    }

    /// How many calls wait for their turn right now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Runs `work` on the blocking pool once one of `turns` is free, or
    /// gives up with [`AppError::Busy`] after the longest wait.
    async fn run<T: Send + 'static>(
        &self,
        turns: Turns,
        work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let counted = Waiting::count(&self.waiting);
        let shared = Arc::clone(&self.turns).acquire_owned();
        let turn = tokio::time::timeout(self.max_wait, async {
            match turns {
                Turns::Shared => shared.await,
                // Whichever comes first; the other wait is given up.
                Turns::SharedOrKnown => tokio::select! {
                    biased;
                    turn = shared => turn,
                    turn = Arc::clone(&self.known).acquire_owned() => turn,
                },
            }
        })
        .await;
        drop(counted);
        let Ok(Ok(turn)) = turn else {
            tracing::warn!("password hashing is saturated: a log-in or sign-up was turned away");
            metrics::counter!("app_password_hashing_turned_away_total").increment(1);
            return Err(AppError::Busy);
        };
        tokio::task::spawn_blocking(move || {
            // Held until the hash is done, even if the request is dropped.
            let _turn = turn;
            work()
        })
        .await
        .map_err(|error| {
            tracing::error!(%error, "a password hashing task failed");
            AppError::Internal
        })?
    }
}

/// One call counted in [`Hasher::waiting`] until it is dropped: also when
/// the request is, mid-wait.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn count(waiting: &'a AtomicUsize) -> Self {
        waiting.fetch_add(1, Ordering::Relaxed);
        Self(waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A hash of a random password nobody knows, made once per process.
static DECOY_HASH: LazyLock<String> = LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    let password = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_str().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        // Hashing only fails for out-of-range parameters, and these are the
        // crate's defaults.
        .unwrap_or_default()
});

/// Whether `password` is, as a whole, one of the most common passwords,
/// words or names (zxcvbn's lists of 30,000 passwords, English words and
/// names, in any case, reversed or with l33t spellings), or a run of
/// keys or characters (`qwertyuiop`, `123456789`): what attackers try first.
pub fn is_common(password: &str) -> bool {
    use zxcvbn::matching::patterns::MatchPattern;
    let entropy = zxcvbn::zxcvbn(password, &[]);
    matches!(
        entropy.sequence(),
        [only] if !matches!(only.pattern, MatchPattern::BruteForce)
    )
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_most_common_passwords_words_and_runs_are_common() {
        for common in [
            "password",
            "P@ssw0rd",
            "password1",
            "iloveyou",
            "sunshine",
            "Elizabeth",
            "drowssap",
            "123456789",
            "qwertyuiop",
            "aaaaaaaa",
        ] {
            assert!(is_common(common), "{common}");
        }
        for uncommon in [
            "correct horse battery",
            "benchmark password",
            "v7#kQ9!zLp",
            "ada-loves-1843-engines",
        ] {
            assert!(!is_common(uncommon), "{uncommon}");
        }
    }
    use super::*;

    fn hasher() -> Hasher {
        Hasher::new(HashingConfig::default())
    }

    #[tokio::test]
    async fn a_hash_verifies_its_own_password_only() {
        let hasher = hasher();
        let hash = hasher.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            hasher
                .verify("correct horse".into(), Some(hash.clone()), Turns::Shared)
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("wrong horse".into(), Some(hash), Turns::Shared)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn the_same_password_gets_a_different_salt_each_time() {
        let hasher = hasher();
        let first = hasher.hash("same password".into()).await.unwrap();
        let second = hasher.hash("same password".into()).await.unwrap();
        assert_ne!(first, second);
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        assert!(
            !hasher()
                .verify("anything".into(), None, Turns::Shared)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn past_the_limit_calls_wait_and_then_are_turned_away() {
        let hasher = Hasher::new(HashingConfig {
            concurrency: 1,
            max_wait: Duration::from_millis(1),
        });
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(
                    async move { hasher.verify("guess".into(), None, Turns::Shared).await },
                )
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap());
        }
        let busy = answers
            .iter()
            .filter(|answer| **answer == Err(AppError::Busy))
            .count();
        assert!(answers.contains(&Ok(false)), "{answers:?}");
        assert!(
            busy >= 4,
            "one at a time, each taking milliseconds: {answers:?}"
        );
        assert_eq!(hasher.waiting(), 0);
    }

    #[tokio::test]
    async fn a_log_in_from_a_known_network_gets_in_while_the_shared_turns_are_taken() {
        let hasher = Hasher::new(HashingConfig {
            concurrency: 1,
            max_wait: Duration::from_millis(300),
        });
        // Every shared turn taken, for longer than anyone waits.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let holder = tokio::spawn({
            let hasher = hasher.clone();
            async move {
                hasher
                    .run(Turns::Shared, move || {
                        let _ = held.recv();
                        Ok(())
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let stranger = hasher.verify("guess".into(), None, Turns::Shared);
        let owner = hasher.verify("guess".into(), None, Turns::SharedOrKnown);
        let (stranger, owner) = tokio::join!(stranger, owner);
        assert_eq!(stranger, Err(AppError::Busy));
        assert_eq!(owner, Ok(false));
        release.send(()).unwrap();
        holder.await.unwrap().unwrap();
    }
}
