//! Presence on the other processes: the users each other node has in each
//! room, as it last announced.
//!
//! A node announces its own users (`PresenceNews`); every node merges the
//! announcements with its own members ([`RemoteRooms::merged_with`]). A
//! node that leaves (its goodbye, or silence past the broker's liveness
//! timeout, as the broker tells) is forgotten.

use std::collections::{HashMap, hash_map::Entry};

use super::super::broker::NodeId;
use crate::{Member, RoomName};

/// The users other nodes have in each room, as they last announced.
#[derive(Default)]
pub(crate) struct RemoteRooms {
    rooms: HashMap<RoomName, HashMap<NodeId, Vec<Member>>>,
}

impl RemoteRooms {
    /// Records a node's members of one room. Returns whether they changed.
    pub fn set_room(&mut self, node: NodeId, room: &RoomName, members: Vec<Member>) -> bool {
        let nodes = self.rooms.entry(room.clone()).or_default();
        let changed = match (nodes.entry(node), members.is_empty()) {
            (Entry::Occupied(entry), true) => {
                entry.remove();
                true
            }
            (Entry::Vacant(_), true) => false,
            (Entry::Occupied(mut entry), false) => {
                let changed = *entry.get() != members;
                entry.insert(members);
                changed
            }
            (Entry::Vacant(entry), false) => {
                entry.insert(members);
                true
            }
        };
        if nodes.is_empty() {
            self.rooms.remove(room);
        }
        changed
    }

    /// Replaces everything a node said with a snapshot. Returns the rooms
    /// whose members changed.
    pub fn replace_node(
        &mut self,
        node: NodeId,
        snapshot: Vec<(RoomName, Vec<Member>)>,
    ) -> Vec<RoomName> {
        let mut before = self.take_rooms(node);
        let mut changed = Vec::new();
        for (room, members) in snapshot {
            if members.is_empty() {
                continue;
            }
            if before.remove(&room).as_ref() != Some(&members) {
                changed.push(room.clone());
            }
            self.rooms.entry(room).or_default().insert(node, members);
        }
        // The rooms it had and no longer has.
        changed.extend(before.into_keys());
        changed
    }

    /// Forgets a node. Returns the rooms it had members in.
    pub fn forget_node(&mut self, node: NodeId) -> Vec<RoomName> {
        self.take_rooms(node).into_keys().collect()
    }

    /// Removes a node's members from every room, and returns them.
    fn take_rooms(&mut self, node: NodeId) -> HashMap<RoomName, Vec<Member>> {
        let mut taken = HashMap::new();
        self.rooms.retain(|room, nodes| {
            if let Some(members) = nodes.remove(&node) {
                taken.insert(room.clone(), members);
            }
            !nodes.is_empty()
        });
        taken
    }

    /// The members other nodes have in a room.
    pub fn members(&self, room: &RoomName) -> impl Iterator<Item = &Member> {
        self.rooms
            .get(room)
            .into_iter()
            .flatten()
            .flat_map(|(_, members)| members)
    }

    /// The members of a room on every node: this node's (`local`) and the
    /// others', each user once, sorted by name.
    pub fn merged_with(&self, room: &RoomName, local: Vec<Member>) -> Vec<Member> {
        let mut members = local;
        members.extend(self.members(room).cloned());
        crate::presence::each_user_once(members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_members_name_each_user_once_sorted_by_name() {
        let room = RoomName::from("chat:1");
        let mut presence = RemoteRooms::default();
        presence.set_room(
            NodeId(1),
            &room,
            vec![Member::new(3, "cy"), Member::new(1, "ada")],
        );
        let merged =
            presence.merged_with(&room, vec![Member::new(2, "bob"), Member::new(1, "ada")]);
        assert_eq!(
            merged,
            [
                Member::new(1, "ada"),
                Member::new(2, "bob"),
                Member::new(3, "cy")
            ]
        );
    }

    #[test]
    fn a_node_forgotten_takes_its_members_with_it() {
        let room = RoomName::from("chat:1");
        let mut presence = RemoteRooms::default();
        assert!(presence.set_room(NodeId(1), &room, vec![Member::new(1, "ada")]));
        assert!(!presence.set_room(NodeId(1), &room, vec![Member::new(1, "ada")]));
        assert!(presence.set_room(NodeId(2), &room, vec![Member::new(2, "bob")]));
        assert_eq!(presence.forget_node(NodeId(1)), std::slice::from_ref(&room));
        assert_eq!(
            presence.members(&room).collect::<Vec<_>>(),
            [&Member::new(2, "bob")]
        );
    }

    #[test]
    fn a_snapshot_replaces_what_a_node_said_before() {
        let (red, blue) = (RoomName::from("chat:red"), RoomName::from("chat:blue"));
        let node = NodeId(1);
        let mut presence = RemoteRooms::default();
        presence.set_room(node, &red, vec![Member::new(1, "ada")]);
        let changed =
            presence.replace_node(node, vec![(blue.clone(), vec![Member::new(1, "ada")])]);
        assert!(changed.contains(&red) && changed.contains(&blue));
        assert_eq!(presence.members(&red).count(), 0);
        assert_eq!(presence.members(&blue).count(), 1);
        // The same snapshot again changes nothing.
        let again = presence.replace_node(node, vec![(blue.clone(), vec![Member::new(1, "ada")])]);
        assert!(again.is_empty(), "{again:?}");
    }
}
