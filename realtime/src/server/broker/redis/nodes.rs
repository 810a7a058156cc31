//! The other nodes on the channel, and when each was last heard from: a
//! node that says `goodbye`, or falls silent for longer than
//! [`super::Liveness::timeout`], is forgotten (and its presence with it,
//! by the hub).

use std::{collections::HashMap, time::Instant};

use parking_lot::Mutex;

use super::super::NodeId;

/// When each other node was last heard from.
#[derive(Default)]
pub(super) struct Nodes {
    last_heard: Mutex<HashMap<NodeId, Instant>>,
}

impl Nodes {
    /// Notes that `node` is alive. Returns whether it was known (heard
    /// from, and not forgotten since).
    pub fn heard_from(&self, node: NodeId) -> bool {
        self.last_heard
            .lock()
            .insert(node, Instant::now())
            .is_some()
    }

    /// Whether `node` has been heard from (and not forgotten since).
    pub fn knows(&self, node: NodeId) -> bool {
        self.last_heard.lock().contains_key(&node)
    }

    /// Forgets a node that said goodbye.
    pub fn forget(&self, node: NodeId) {
        self.last_heard.lock().remove(&node);
    }

    /// Forgets the nodes not heard from since `deadline`, and returns them.
    pub fn forget_silent(&self, deadline: Instant) -> Vec<NodeId> {
        let mut last_heard = self.last_heard.lock();
        let silent: Vec<NodeId> = last_heard
            .iter()
            .filter(|(_, heard)| **heard < deadline)
            .map(|(node, _)| *node)
            .collect();
        for node in &silent {
            tracing::info!(%node, "forgetting a server process not heard from");
            last_heard.remove(node);
        }
        silent
    }

    /// How many nodes were heard from lately.
    pub fn count(&self) -> usize {
        self.last_heard.lock().len()
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
        assert_eq!(nodes.forget_silent(deadline), [NodeId(1)]);
        assert!(!nodes.knows(NodeId(1)) && nodes.knows(NodeId(2)));
        assert_eq!(nodes.count(), 1);
    }
}
