//! The other nodes on the channel, and when each was last heard from: a
//! node that says `goodbye`, or falls silent for longer than
//! [`super::Liveness::timeout`], is forgotten (and its presence with it,
//! by the hub).
//!
//! A node that falls silent without a `goodbye` is also *lost*: it may have
//! been cut off from Redis, placed durable events on its own meanwhile,
//! and died before it could start those streams again (which it does when
//! it is back), so nothing would tell their readers elsewhere. A node that
//! this one stops hearing while it is cut off itself may come back with
//! Redis: it is lost only if it stays silent for the timeout once this one
//! is back.

use std::{collections::HashMap, time::Instant};

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
    /// Nodes forgotten while this one was cut off, and when they are
    /// lost if still silent (`None`: this one is still cut off).
    away: HashMap<NodeId, Option<Instant>>,
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

    /// This node is connected again: the nodes it stopped hearing meanwhile
    /// have until `timeout` from now to be heard again.
    pub fn reconnected(&self, timeout: std::time::Duration) {
        let lost_at = Instant::now() + timeout;
        for waiting in self.state.lock().away.values_mut() {
            waiting.get_or_insert(lost_at);
        }
    }

    /// Forgets the nodes not heard from since `deadline`, and says whether
    /// a node was lost: one falls silent while this one is `connected`,
    /// or one it stopped hearing while cut off is still silent.
    pub fn forget_silent(&self, deadline: Instant, connected: bool) -> Silent {
        let mut state = self.state.lock();
        let forgotten: Vec<NodeId> = state
            .last_heard
            .iter()
            .filter(|(_, heard)| **heard < deadline)
            .map(|(node, _)| *node)
            .collect();
        for node in &forgotten {
            tracing::info!(%node, "forgetting a server process not heard from");
            state.last_heard.remove(node);
        }
        let mut lost = connected && !forgotten.is_empty();
        if !connected {
            state
                .away
                .extend(forgotten.iter().map(|node| (*node, None)));
        } else {
            let now = Instant::now();
            state.away.retain(|_, lost_at| {
                let still_away = lost_at.is_none_or(|at| at > now);
                lost |= !still_away;
                still_away
            });
        }
        Silent { forgotten, lost }
    }

    /// How many nodes were heard from lately.
    pub fn count(&self) -> usize {
        self.state.lock().last_heard.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_node_is_forgotten_when_it_falls_silent() {
        let nodes = Nodes::default();
        assert!(!nodes.heard_from(NodeId(1)));
        let deadline = Instant::now() + Duration::from_millis(1);
        std::thread::sleep(Duration::from_millis(2));
        nodes.heard_from(NodeId(2));
        assert_eq!(nodes.forget_silent(deadline, true).forgotten, [NodeId(1)]);
        assert!(!nodes.knows(NodeId(1)) && nodes.knows(NodeId(2)));
        assert_eq!(nodes.count(), 1);
    }

    #[test]
    fn a_node_silent_without_a_goodbye_is_lost_unless_this_one_was_cut_off_and_it_comes_back() {
        // A deadline no node is silent since.
        let start = Instant::now();
        let nodes = Nodes::default();
        let (silent, said_goodbye) = (NodeId(1), NodeId(2));
        nodes.heard_from(silent);
        nodes.heard_from(said_goodbye);
        nodes.forget(said_goodbye);
        let later = Instant::now() + Duration::from_millis(1);
        assert_eq!(
            nodes.forget_silent(later, true),
            Silent {
                forgotten: vec![silent],
                lost: true
            }
        );
        assert!(!nodes.forget_silent(later, true).lost, "lost once");

        // Forgotten while this node is cut off: not lost yet.
        let (back, gone) = (NodeId(3), NodeId(4));
        nodes.heard_from(back);
        nodes.heard_from(gone);
        let later = Instant::now() + Duration::from_millis(1);
        assert!(!nodes.forget_silent(later, false).lost);
        assert!(
            !nodes.forget_silent(later, true).lost,
            "still cut off when it went"
        );
        nodes.reconnected(Duration::from_millis(5));
        nodes.heard_from(back);
        assert!(!nodes.forget_silent(start, true).lost, "within the timeout");
        std::thread::sleep(Duration::from_millis(10));
        assert!(
            nodes.forget_silent(start, true).lost,
            "`gone` stayed silent"
        );
        assert!(nodes.knows(back));
        assert!(!nodes.forget_silent(start, true).lost, "lost once");
    }
}
