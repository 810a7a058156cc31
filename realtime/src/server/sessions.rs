//! Connections live no longer than their session.
//!
//! - A session that ends (log-out, here or on another process) closes its
//!   connections at once (`close.rs`) and is remembered for a while, so a
//!   connection whose upgrade raced the log-out, and registers after it, is
//!   refused with code 4001; the broker tells processes that reconnect
//!   about the sessions that ended meanwhile.
//! - A session that expires ends nobody's request, so every
//!   [`super::HubConfig::session_check_interval`] the hub asks the
//!   application which sessions of its open connections have ended
//!   ([`super::HubBuilder::session_check`]) and closes theirs with 4001.
//!   Each process checks its own connections.

use std::{
    collections::{HashSet, VecDeque},
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;

use super::{Hub, SessionKey};

/// How long an ended session is remembered.
pub(crate) const ENDED_SESSIONS_KEPT: Duration = Duration::from_secs(10 * 60);
/// The most ended sessions remembered; past it the oldest are forgotten.
const MAX_ENDED_SESSIONS: usize = 64 * 1024;

/// The sessions that ended lately, oldest first.
#[derive(Default)]
pub(crate) struct EndedSessions {
    inner: Mutex<Ended>,
}

#[derive(Default)]
struct Ended {
    order: VecDeque<(Instant, SessionKey)>,
    keys: HashSet<SessionKey>,
}

impl EndedSessions {
    /// Remembers that `session` ended now.
    pub fn record(&self, session: &SessionKey) {
        let now = Instant::now();
        let mut ended = self.inner.lock();
        ended.forget_old(now);
        if ended.keys.insert(session.clone()) {
            ended.order.push_back((now, session.clone()));
        }
    }

    /// Whether `session` ended lately.
    pub fn contains(&self, session: &SessionKey) -> bool {
        let mut ended = self.inner.lock();
        ended.forget_old(Instant::now());
        ended.keys.contains(session)
    }

    /// The sessions that ended lately, the most recent `max` of them.
    pub fn recent(&self, max: usize) -> Vec<SessionKey> {
        let mut ended = self.inner.lock();
        ended.forget_old(Instant::now());
        ended
            .order
            .iter()
            .rev()
            .take(max)
            .map(|(_, session)| session.clone())
            .collect()
    }
}

impl Ended {
    fn forget_old(&mut self, now: Instant) {
        while let Some((at, session)) = self.order.front()
            && (now.duration_since(*at) > ENDED_SESSIONS_KEPT
                || self.order.len() > MAX_ENDED_SESSIONS)
        {
            self.keys.remove(session);
            self.order.pop_front();
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The application's answer to "which of these sessions have ended?": the
/// ended ones, or an error (the check is tried again next time).
pub(crate) type SessionCheck =
    Arc<dyn Fn(Vec<SessionKey>) -> BoxFuture<Result<Vec<SessionKey>, String>> + Send + Sync>;

impl Hub {
    /// Asks the application which sessions of this process's connections
    /// have ended, and closes their connections with code 4001. Returns how
    /// many connections were closed. Without a session check, nothing.
    pub async fn check_sessions(&self) -> usize {
        let Some(check) = self.inner.session_check.clone() else {
            return 0;
        };
        let sessions = self.inner.registry.session_keys();
        if sessions.is_empty() {
            return 0;
        }
        match check(sessions).await {
            Ok(ended) => ended
                .iter()
                .map(|session| {
                    self.inner.ended_sessions.record(session);
                    self.disconnect_local_session(session)
                })
                .sum(),
            Err(error) => {
                tracing::warn!(%error, "the sessions of open connections could not be checked");
                0
            }
        }
    }

    /// Checks the sessions every [`super::HubConfig::session_check_interval`],
    /// for as long as the returned future runs: spawn it next to the server.
    pub async fn watch_sessions(self) {
        let every = self.inner.config.session_check_interval;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let closed = self.check_sessions().await;
            if closed > 0 {
                tracing::info!(
                    connections = closed,
                    "closed the connections of expired sessions"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_sessions_are_remembered_most_recent_first() {
        let ended = EndedSessions::default();
        let (a, b) = (SessionKey::from("a"), SessionKey::from("b"));
        assert!(!ended.contains(&a));
        ended.record(&a);
        ended.record(&b);
        ended.record(&a);
        assert!(ended.contains(&a) && ended.contains(&b));
        assert_eq!(ended.recent(10), [b.clone(), a.clone()]);
        assert_eq!(ended.recent(1), [b]);
    }
}
