//! The other nodes on the channel, and when each was last heard from: a
//! node that says `goodbye`, or falls silent for longer than
//! [`super::Liveness::timeout`], is forgotten (and its presence with it,
//! by the hub).
//!
//! A node that falls silent without a `goodbye` is also *lost*: it may have
//! been cut off from Redis, placed durable events on its own meanwhile,
//! and died before it could start those streams again (which it does when
//! it is back), so nothing would tell their readers elsewhere. Only a
//! silence this node is sure of counts: one that began after this node
//! last (re)connected, and that lasted the whole timeout while this node
//! still heard its own messages (checked again at each heartbeat for the
//! nodes forgotten before this node could be sure). Any other node
//! forgotten is *away*: it is lost once this node has heard itself for
//! the timeout in all since (the time it was connected before, if it
//! was last heard before this node's connection), counted from each
//! reconnection up to the last of its own messages heard. So a link that
//! comes and goes adds up its spells, and a process that died while this
//! one's link flapped is still found lost; a spell in which this node
//! heard nothing of its own counts for nothing.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use parking_lot::Mutex;

use super::super::NodeId;

/// When each other node was last heard from.
#[derive(Default)]
pub(super) struct Nodes {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    last_heard: HashMap<NodeId, Instant>,
    /// Nodes forgotten without being sure of their silence.
    away: HashMap<NodeId, Away>,
    /// When this node last (re)connected.
    connected_at: Option<Instant>,
}

/// A node forgotten before this one could be sure of its silence.
struct Away {
    /// When it was last heard from.
    heard: Instant,
    /// How long this node has heard itself since, as counted so far.
    waited: Duration,
    /// Up to when that was counted (`None`: this node is cut off now; the
    /// count goes on from its reconnection).
    counted_to: Option<Instant>,
}

impl Away {
    /// Counts the time up to `heard_self`, the last of this node's own
    /// messages heard, if it came after what was counted; `None` (cut
    /// off) stops the count until the next reconnection.
    fn count(&mut self, heard_self: Option<Instant>) {
        match (self.counted_to, heard_self) {
            (Some(from), Some(to)) if to > from => {
                self.waited += to - from;
                self.counted_to = Some(to);
            }
            (Some(_), Some(_)) => {}
            (_, None) => self.counted_to = None,
            (None, Some(_)) => {}
        }
    }
}

/// What [`Nodes::forget_silent`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Silent {
    /// The nodes forgotten now: their presence goes.
    pub forgotten: Vec<NodeId>,
    /// Whether a node was lost (see the module's documentation).
    pub lost: bool,
}

impl Nodes {
    /// Notes that `node` is alive. Returns whether it was known (heard
    /// from, and not forgotten since).
    pub fn heard_from(&self, node: NodeId) -> bool {
        let mut state = self.state.lock();
        state.away.remove(&node);
        state.last_heard.insert(node, Instant::now()).is_some()
    }

    /// Whether `node` has been heard from (and not forgotten since).
    pub fn knows(&self, node: NodeId) -> bool {
        self.state.lock().last_heard.contains_key(&node)
    }

    /// Forgets a node that said goodbye.
    pub fn forget(&self, node: NodeId) {
        let mut state = self.state.lock();
        state.last_heard.remove(&node);
        state.away.remove(&node);
    }

    /// This node is connected again: the time the nodes away have had to
    /// be heard counts on from now. (Called once the link is up, so that
    /// its first message back comes after.)
    pub fn reconnected(&self) {
        let now = Instant::now();
        let mut state = self.state.lock();
        state.connected_at = Some(now);
        for away in state.away.values_mut() {
            away.counted_to = Some(now);
        }
    }

    /// Forgets the nodes not heard from for `timeout`, and says whether a
    /// node was lost. `heard_self` is when this node last heard its own
    /// messages; `None` while it is cut off.
    pub fn forget_silent(&self, timeout: Duration, heard_self: Option<Instant>) -> Silent {
        self.check(timeout, heard_self, heard_self)
    }

    /// [`Nodes::forget_silent`], the time of the nodes away counted up to
    /// `counted_until` (at least `heard_self`); the silences this node is
    /// sure of still end at `heard_self`, the last it knows it heard.
    fn check(
        &self,
        timeout: Duration,
        heard_self: Option<Instant>,
        counted_until: Option<Instant>,
    ) -> Silent {
        let now = Instant::now();
        let Some(deadline) = now.checked_sub(timeout) else {
            return Silent::default();
        };
        let mut state = self.state.lock();
        let silent: Vec<(NodeId, Instant)> = state
            .last_heard
            .iter()
            .filter(|(_, heard)| **heard < deadline)
            .map(|(node, heard)| (*node, *heard))
            .collect();
        // Silent for the whole timeout while this node heard itself,
        // since it last connected.
        let connected_at = state.connected_at;
        let sure = |heard: Instant| {
            heard_self
                .and_then(|heard_self| heard_self.checked_sub(timeout))
                .is_some_and(|sure_before| {
                    heard < sure_before && connected_at.is_some_and(|at| heard >= at)
                })
        };
        for away in state.away.values_mut() {
            away.count(counted_until);
        }
        for (node, heard) in &silent {
            tracing::info!(%node, "forgetting a server process not heard from");
            state.last_heard.remove(node);
            // Last heard before this node connected: the time connected
            // since counts already.
            let (waited, counted_to) = match (counted_until, connected_at) {
                (None, _) => (Duration::ZERO, None),
                (Some(until), Some(at)) if *heard < at => {
                    (until.saturating_duration_since(at), Some(until))
                }
                (Some(until), _) => (Duration::ZERO, Some(until.max(*heard))),
            };
            state.away.insert(
                *node,
                Away {
                    heard: *heard,
                    waited,
                    counted_to,
                },
            );
        }
        let mut lost = false;
        if heard_self.is_some() {
            state.away.retain(|_, away| {
                let gone = sure(away.heard) || away.waited >= timeout;
                lost |= gone;
                !gone
            });
        }
        Silent {
            forgotten: silent.into_iter().map(|(node, _)| node).collect(),
            lost,
        }
    }

    /// This node's session with Redis ended: the nodes away count the
    /// time it heard itself in it, [`Nodes::forget_silent`] with
    /// `last_echo` (its own last message heard). One heard since the
    /// reconnection counts as heard until the next heartbeat's echo was
    /// due, or now if that is sooner: otherwise a session shorter than a
    /// heartbeat would count only up to its first echo, and a link that
    /// drops every few seconds would put a lost process off for hours.
    /// (Only that count: a silence this node is sure of still ends at
    /// `last_echo`.)
    pub fn session_ended(
        &self,
        timeout: Duration,
        last_echo: Instant,
        heartbeat: Duration,
    ) -> Silent {
        let echoed = self
            .state
            .lock()
            .connected_at
            .is_some_and(|at| last_echo > at);
        let heard_until = if echoed {
            Instant::now().min(last_echo + heartbeat)
        } else {
            last_echo
        };
        self.check(timeout, Some(last_echo), Some(heard_until))
    }

    /// How many nodes were heard from lately.
    pub fn count(&self) -> usize {
        self.state.lock().last_heard.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long enough that no step of a test takes as long on a loaded
    /// machine.
    const TIMEOUT: Duration = Duration::from_millis(200);

    fn wait(time: Duration) {
        std::thread::sleep(time);
    }

    #[test]
    fn a_node_is_forgotten_when_it_falls_silent() {
        let nodes = Nodes::default();
        nodes.reconnected();
        assert!(!nodes.heard_from(NodeId(1)));
        wait(TIMEOUT * 2);
        nodes.heard_from(NodeId(2));
        let silent = nodes.forget_silent(TIMEOUT, Some(Instant::now()));
        assert_eq!(silent.forgotten, [NodeId(1)]);
        assert!(!nodes.knows(NodeId(1)) && nodes.knows(NodeId(2)));
        assert_eq!(nodes.count(), 1);
    }

    #[test]
    fn a_node_silent_while_this_one_heard_itself_is_lost_once() {
        let nodes = Nodes::default();
        nodes.reconnected();
        let (silent, said_goodbye) = (NodeId(1), NodeId(2));
        nodes.heard_from(silent);
        nodes.heard_from(said_goodbye);
        nodes.forget(said_goodbye);
        wait(TIMEOUT * 2);
        let found = nodes.forget_silent(TIMEOUT, Some(Instant::now()));
        assert_eq!(
            found,
            Silent {
                forgotten: vec![silent],
                lost: true
            }
        );
        assert!(!nodes.forget_silent(TIMEOUT, Some(Instant::now())).lost);
    }

    #[test]
    fn a_node_this_one_may_not_have_heard_gets_the_timeout_to_come_back() {
        // This node's own messages stopped coming back too: its own
        // subscription may be what went silent.
        let nodes = Nodes::default();
        nodes.reconnected();
        nodes.heard_from(NodeId(1));
        let heard_self = Instant::now();
        wait(TIMEOUT * 2);
        assert!(!nodes.forget_silent(TIMEOUT, Some(heard_self)).lost);
        // It is heard again: not lost.
        nodes.heard_from(NodeId(1));
        wait(TIMEOUT * 2);
        assert!(!nodes.forget_silent(TIMEOUT * 10, Some(Instant::now())).lost);

        // Forgotten while this node is cut off: the time starts when it is
        // back, whenever that is.
        let nodes = Nodes::default();
        nodes.reconnected();
        let (back, gone) = (NodeId(3), NodeId(4));
        nodes.heard_from(back);
        nodes.heard_from(gone);
        wait(TIMEOUT * 2);
        assert!(!nodes.forget_silent(TIMEOUT, None).lost);
        wait(TIMEOUT * 2);
        assert!(!nodes.forget_silent(TIMEOUT, None).lost, "still cut off");
        nodes.reconnected();
        nodes.heard_from(back);
        assert!(!nodes.forget_silent(TIMEOUT, Some(Instant::now())).lost);
        wait(TIMEOUT * 2);
        nodes.heard_from(back);
        let found = nodes.forget_silent(TIMEOUT, Some(Instant::now()));
        assert!(found.lost, "`gone` stayed silent");
        assert!(nodes.knows(back));
        assert!(!nodes.forget_silent(TIMEOUT, Some(Instant::now())).lost);

        // Last heard before this node reconnected (a short outage for
        // both): it has the timeout from the reconnection.
        let nodes = Nodes::default();
        nodes.reconnected();
        nodes.heard_from(NodeId(5));
        wait(TIMEOUT * 2);
        nodes.reconnected();
        let found = nodes.forget_silent(TIMEOUT, Some(Instant::now()));
        assert_eq!((found.forgotten.len(), found.lost), (1, false));
        wait(TIMEOUT * 2);
        assert!(nodes.forget_silent(TIMEOUT, Some(Instant::now())).lost);
    }

    #[test]
    fn a_node_forgotten_before_this_one_was_sure_is_lost_once_it_is() {
        let nodes = Nodes::default();
        nodes.reconnected();
        nodes.heard_from(NodeId(1));
        // This node's last echo was about when the other was last heard.
        let echo = Instant::now();
        wait(TIMEOUT * 2);
        assert!(!nodes.forget_silent(TIMEOUT, Some(echo)).lost);
        // Its next echo comes: the other's silence is sure now, before the
        // timeout it was given.
        assert!(nodes.forget_silent(TIMEOUT, Some(Instant::now())).lost);
    }

    #[test]
    fn a_session_that_ends_is_sure_of_no_silence_past_its_last_echo() {
        // Node 1 was heard about when this node last heard itself; the
        // session ends later, past the timeout, without another echo:
        // nothing says node 1 went silent while this node could hear.
        let nodes = Nodes::default();
        nodes.reconnected();
        nodes.heard_from(NodeId(1));
        let echo = Instant::now();
        wait(TIMEOUT + TIMEOUT / 2);
        let ended = nodes.session_ended(TIMEOUT, echo, Duration::from_secs(5));
        assert_eq!((ended.forgotten.len(), ended.lost), (1, false));
    }

    #[test]
    fn a_link_that_comes_and_goes_adds_up_its_spells() {
        const HEARTBEAT: Duration = Duration::from_secs(5);
        let nodes = Nodes::default();
        nodes.reconnected();
        nodes.heard_from(NodeId(1));
        wait(TIMEOUT * 2);
        // Cut off: forgotten, away.
        assert!(!nodes.forget_silent(TIMEOUT, None).lost);
        // Spells of a fifth of the timeout, far shorter than a heartbeat:
        // this node hears itself once, at the start of each (its first
        // heartbeat), and each counts when it ends.
        let spell = |nodes: &Nodes| {
            nodes.reconnected();
            wait(Duration::from_millis(1));
            let echo = Instant::now();
            wait(TIMEOUT / 5);
            let lost = nodes.session_ended(TIMEOUT, echo, HEARTBEAT).lost;
            assert!(!nodes.forget_silent(TIMEOUT, None).lost);
            lost
        };
        for _ in 0..3 {
            assert!(!spell(&nodes), "not yet the timeout in all");
        }
        assert!(spell(&nodes) || spell(&nodes), "the timeout in all");

        // A spell in which this node heard nothing of its own counts for
        // nothing.
        let nodes = Nodes::default();
        nodes.reconnected();
        nodes.heard_from(NodeId(1));
        wait(TIMEOUT * 2);
        assert!(!nodes.forget_silent(TIMEOUT, None).lost);
        let last_echo = Instant::now();
        nodes.reconnected();
        wait(TIMEOUT * 2);
        assert!(!nodes.session_ended(TIMEOUT, last_echo, HEARTBEAT).lost);
        assert!(!nodes.forget_silent(TIMEOUT, Some(last_echo)).lost);
    }
}
