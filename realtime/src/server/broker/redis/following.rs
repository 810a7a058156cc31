//! Which shards this process hears: it subscribes to a shard's channel
//! while one of its connections reads a stream of that shard (everyone's
//! stream's shard always), and unsubscribes a while after the last one
//! goes ([`super::RedisBackplane::unsubscribe_after`]). So a process's
//! share of the site's durable events is what its own tabs read.
//!
//! A connection about to read a stream asks first ([`Following::follow`])
//! and waits until the transport has subscribed; what it then reads of
//! the shared history misses nothing published meanwhile (an event both
//! brings is written to it once, by position). The transport looks at the
//! streams read here at each heartbeat and drops the shards nobody has
//! wanted for a while; the mirror then forgets their streams, since it no
//! longer hears them. When it subscribes to a shard, the mirror forgets
//! the shard's streams nobody here reads, and catches up on those read
//! here (a connection whose wait timed out, or that joined while Redis was
//! reconnecting, read where its stream stood before the subscription).
//!
//! The lock is held for a few map operations, never across an `.await`.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use super::{REDIS_TIMEOUT, shards::Shards};
use crate::stream::Stream;

/// Which shards are heard, and which are wanted: see the module.
pub(super) struct Following {
    pub shards: Shards,
    /// Everyone's stream's shard: always heard.
    everyone: u16,
    /// How long a shard stays subscribed after it was last wanted.
    linger: Duration,
    state: Mutex<State>,
    /// Shards to subscribe to now, for the transport.
    requests: mpsc::UnboundedSender<u16>,
}

#[derive(Default)]
struct State {
    /// Whether the transport is connected.
    up: bool,
    /// The shards whose channel is subscribed.
    heard: HashSet<u16>,
    /// When each shard was last wanted (a connection followed one of its
    /// streams, or read one).
    wanted_at: HashMap<u16, Instant>,
    /// The shards asked for and not yet subscribed, and the connections
    /// waiting for each.
    waiting: HashMap<u16, Vec<oneshot::Sender<()>>>,
}

impl Following {
    /// The state, and the receiving end of the subscription requests.
    pub fn new(shards: Shards, linger: Duration) -> (Self, mpsc::UnboundedReceiver<u16>) {
        let (requests, received) = mpsc::unbounded_channel();
        let following = Self {
            everyone: shards.of(&Stream::Everyone),
            shards,
            linger,
            state: Mutex::default(),
            requests,
        };
        (following, received)
    }

    /// Waits until `stream`'s shard is heard (at most the command
    /// timeout), unless it is already or the transport is away.
    pub async fn follow(&self, stream: &Stream) {
        let (told, heard) = oneshot::channel();
        if self.ask(stream, Some(told)) {
            let _ = tokio::time::timeout(REDIS_TIMEOUT, heard).await;
        }
    }

    /// Has `stream`'s shard subscribed, without waiting (a connection the
    /// server put in a room: its events come once it is).
    pub fn want(&self, stream: &Stream) {
        self.ask(stream, None);
    }

    /// Notes that `stream`'s shard is wanted, and asks the transport to
    /// subscribe to it unless it is heard, asked already, or the transport
    /// is away; `told` hears when it is. Whether there is anything to wait
    /// for.
    fn ask(&self, stream: &Stream, told: Option<oneshot::Sender<()>>) -> bool {
        let shard = self.shards.of(stream);
        let mut state = self.state.lock();
        state.wanted_at.insert(shard, Instant::now());
        if !state.up || state.heard.contains(&shard) {
            return false;
        }
        // A shard in `waiting` was asked for already (its list may be
        // empty: asked without waiting).
        let first = !state.waiting.contains_key(&shard);
        state.waiting.entry(shard).or_default().extend(told);
        if first {
            let _ = self.requests.send(shard);
        }
        true
    }

    /// Whether `stream`'s shard is heard now.
    pub fn hears(&self, stream: &Stream) -> bool {
        let shard = self.shards.of(stream);
        let state = self.state.lock();
        state.up && state.heard.contains(&shard)
    }

    /// The shards wanted now: everyone's, those of the streams read here
    /// (`read`), and those wanted within the linger.
    pub fn wanted(&self, read: &[Stream]) -> HashSet<u16> {
        let now = Instant::now();
        let mut state = self.state.lock();
        for stream in read {
            state.wanted_at.insert(self.shards.of(stream), now);
        }
        let linger = self.linger;
        state
            .wanted_at
            .retain(|_, at| now.duration_since(*at) <= linger);
        let mut wanted: HashSet<u16> = state.wanted_at.keys().copied().collect();
        wanted.insert(self.everyone);
        wanted
    }

    /// The transport (re)connected, hearing `heard`: those waiting for
    /// them go on; the shards wanted since the transport looked (a join
    /// while it connected) are asked for now, not at the next heartbeat.
    pub fn connected(&self, heard: HashSet<u16>) {
        let mut state = self.state.lock();
        state.up = true;
        state.heard = heard;
        let waiting: Vec<u16> = state.waiting.keys().copied().collect();
        for shard in waiting {
            if state.heard.contains(&shard) {
                for told in state.waiting.remove(&shard).unwrap_or_default() {
                    let _ = told.send(());
                }
            }
        }
        let missing: Vec<u16> = state
            .wanted_at
            .keys()
            .filter(|shard| !state.heard.contains(shard))
            .copied()
            .collect();
        for shard in missing {
            if let std::collections::hash_map::Entry::Vacant(asked) = state.waiting.entry(shard) {
                asked.insert(Vec::new());
                let _ = self.requests.send(shard);
            }
        }
    }

    /// Whether `shard` still needs subscribing (a request may come twice).
    pub fn needs(&self, shard: u16) -> bool {
        let state = self.state.lock();
        state.up && !state.heard.contains(&shard)
    }

    /// The transport subscribed to `shard`: those waiting go on.
    pub fn subscribed(&self, shard: u16) {
        let mut state = self.state.lock();
        state.heard.insert(shard);
        for told in state.waiting.remove(&shard).unwrap_or_default() {
            let _ = told.send(());
        }
    }

    /// Takes out of the heard shards those not wanted within the linger
    /// (looked at now, under the lock: a connection that followed one since
    /// [`Following::wanted`] keeps it), for the transport to unsubscribe: a
    /// connection that follows one of them from now on waits for its
    /// subscription again.
    pub fn take_unwanted(&self) -> Vec<u16> {
        let now = Instant::now();
        let mut state = self.state.lock();
        let unwanted: Vec<u16> = state
            .heard
            .iter()
            .filter(|shard| {
                **shard != self.everyone
                    && state
                        .wanted_at
                        .get(shard)
                        .is_none_or(|at| now.duration_since(*at) > self.linger)
            })
            .copied()
            .collect();
        for shard in &unwanted {
            state.heard.remove(shard);
        }
        unwanted
    }

    /// The transport lost Redis: nothing is heard; those waiting go on
    /// (their reads fail, and their tabs are told what they may miss).
    pub fn lost(&self) {
        let mut state = self.state.lock();
        state.up = false;
        state.heard.clear();
        state.waiting.clear();
    }
}
