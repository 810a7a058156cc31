//! The backplane: what several server processes tell each other so that
//! they act as one hub.
//!
//! Each process (a *node*) delivers events to its own connections. When an
//! emit may have recipients elsewhere, the node also publishes it once, as
//! an [`Envelope`], and every other node delivers it to *its* connections;
//! the publisher drops its own echo. The same channel carries the ends of
//! sessions (log-out closes the session's sockets everywhere) and presence:
//! each node announces which users it has in each room, and each node
//! merges the announcements with its own members.
//!
//! This module is the transport-independent half: the envelope format,
//! the hub's side of the link, and the presence of other nodes. [`redis`]
//! carries envelopes over Redis pub/sub.
//!
//! ## Envelope format
//!
//! One line of JSON (the header: sender and message), a newline, then the
//! payload: the event frame exactly as browsers receive it, for
//! `deliver` messages, and nothing otherwise. The frame is never parsed
//! or re-encoded on its way through.

#[cfg(feature = "redis")]
pub mod redis;

use std::{
    collections::HashMap,
    fmt,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{self, error::TrySendError};

use super::{SessionKey, Target};
use crate::{Member, RoomName};

/// One server process among those sharing a backplane. Random, new at each
/// start, so a restarted process is a new node.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(pub u64);

impl NodeId {
    pub fn random() -> Self {
        Self(rand::random())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        u64::from_str_radix(&text, 16)
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

/// What one node tells the others.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Message {
    /// Deliver the payload (an event frame) to `target`'s connections.
    Deliver { target: Target },
    /// Close the connections of this session (it ended: log-out).
    CloseSession { session: SessionKey },
    /// The users the sender has in `room` now (replacing what it said
    /// before; empty when it has none left).
    Presence {
        room: RoomName,
        members: Vec<Member>,
    },
    /// The sender (re)joined the backplane: here is its presence in every
    /// room; please answer with yours.
    Hello { rooms: Vec<(RoomName, Vec<Member>)> },
    /// The answer to a `hello`: the sender's presence in every room.
    Snapshot { rooms: Vec<(RoomName, Vec<Member>)> },
    /// The sender is alive. Nodes not heard from for a while are presumed
    /// gone, and their presence forgotten.
    Heartbeat,
    /// The sender is shutting down.
    Goodbye,
}

#[derive(Serialize, Deserialize)]
struct Header<T> {
    node: NodeId,
    message: T,
}

/// A message with its sender and payload, as it travels.
#[derive(Debug, PartialEq)]
pub(crate) struct Envelope {
    pub node: NodeId,
    pub message: Message,
    pub payload: Bytes,
}

/// A message from another node that could not be read (another version of
/// the application on the same channel, say).
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("no header line")]
    NoHeader,
    #[error("bad header: {0}")]
    Header(#[from] serde_json::Error),
}

impl Envelope {
    /// Encodes a message without payload.
    pub fn encode(node: NodeId, message: &Message) -> Bytes {
        Self::encode_with_payload(node, message, &[])
    }

    /// Encodes a message followed by its payload.
    pub fn encode_with_payload(node: NodeId, message: &Message, payload: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(64 + payload.len()).writer();
        // Writing JSON into memory fails only for maps with non-string
        // keys, which `Message` does not have.
        if serde_json::to_writer(&mut out, &Header { node, message }).is_err() {
            return Bytes::new();
        }
        let mut out = out.into_inner();
        out.put_u8(b'\n');
        out.put_slice(payload);
        out.freeze()
    }

    pub fn decode(bytes: Bytes) -> Result<Self, DecodeError> {
        let newline = bytes
            .iter()
            .position(|byte| *byte == b'\n')
            .ok_or(DecodeError::NoHeader)?;
        let header: Header<Message> = serde_json::from_slice(&bytes[..newline])?;
        Ok(Self {
            node: header.node,
            message: header.message,
            payload: bytes.slice(newline + 1..),
        })
    }
}

/// The hub's side of a backplane: where it publishes, and what it knows of
/// the other nodes.
pub(crate) struct Link {
    pub node: NodeId,
    outbound: mpsc::Sender<Bytes>,
    /// Whether the transport is connected. While it is not, nothing is
    /// queued: the emits reach this node's connections only.
    up: AtomicBool,
    /// Envelopes not published since the last report (link down or queue
    /// full), for the log line that reports the gap.
    missed: AtomicU64,
    /// Presence of the other nodes.
    pub remote: Mutex<RemotePresence>,
}

impl Link {
    pub fn new(node: NodeId, outbound: mpsc::Sender<Bytes>) -> Self {
        Self {
            node,
            outbound,
            up: AtomicBool::new(false),
            missed: AtomicU64::new(0),
            remote: Mutex::new(RemotePresence::default()),
        }
    }

    /// Queues a message for the other nodes, unless the link is down.
    pub fn publish(&self, message: &Message, payload: &[u8]) {
        if !self.is_up() {
            self.missed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let envelope = Envelope::encode_with_payload(self.node, message, payload);
        match self.outbound.try_send(envelope) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                // Redis cannot keep up; waiting would stall the emitter.
                if self.missed.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(
                        "the backplane's queue is full: emits reach this process's connections only until it drains"
                    );
                }
            }
            Err(TrySendError::Closed(_)) => {
                self.missed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Release);
    }

    /// Counts an envelope that was not published.
    pub fn count_missed(&self) {
        self.missed.fetch_add(1, Ordering::Relaxed);
    }

    /// How many envelopes were not published since the last call.
    pub fn take_missed(&self) -> u64 {
        self.missed.swap(0, Ordering::Relaxed)
    }
}

/// The users other nodes have in each room, as they last announced.
#[derive(Default)]
pub(crate) struct RemotePresence {
    rooms: HashMap<RoomName, HashMap<NodeId, Vec<Member>>>,
    last_heard: HashMap<NodeId, Instant>,
}

impl RemotePresence {
    /// Notes that `node` is alive.
    pub fn heard_from(&mut self, node: NodeId, now: Instant) {
        self.last_heard.insert(node, now);
    }

    /// Records a node's members of one room. Returns whether they changed.
    pub fn set_room(&mut self, node: NodeId, room: &RoomName, members: Vec<Member>) -> bool {
        let nodes = self.rooms.entry(room.clone()).or_default();
        let changed = if members.is_empty() {
            nodes.remove(&node).is_some()
        } else {
            nodes.insert(node, members.clone()).as_ref() != Some(&members)
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
        let mut changed = self.forget_node(node);
        for (room, members) in snapshot {
            if self.set_room(node, &room, members) && !changed.contains(&room) {
                changed.push(room);
            }
        }
        // A room it still has, unchanged, was counted as changed by the
        // forgetting; it did not change, but re-sending it is harmless.
        changed
    }

    /// Forgets a node. Returns the rooms it had members in.
    pub fn forget_node(&mut self, node: NodeId) -> Vec<RoomName> {
        self.last_heard.remove(&node);
        let mut changed = Vec::new();
        self.rooms.retain(|room, nodes| {
            if nodes.remove(&node).is_some() {
                changed.push(room.clone());
            }
            !nodes.is_empty()
        });
        changed
    }

    /// Forgets the nodes not heard from since `deadline`. Returns the rooms
    /// they had members in.
    pub fn forget_silent(&mut self, deadline: Instant) -> Vec<RoomName> {
        let silent: Vec<NodeId> = self
            .last_heard
            .iter()
            .filter(|(_, heard)| **heard < deadline)
            .map(|(node, _)| *node)
            .collect();
        let mut changed = Vec::new();
        for node in silent {
            tracing::info!(%node, "forgetting a server process not heard from");
            for room in self.forget_node(node) {
                if !changed.contains(&room) {
                    changed.push(room);
                }
            }
        }
        changed
    }

    /// The members other nodes have in a room.
    pub fn members(&self, room: &RoomName) -> impl Iterator<Item = &Member> {
        self.rooms
            .get(room)
            .into_iter()
            .flatten()
            .flat_map(|(_, members)| members)
    }

    /// The nodes heard from, for tests and monitoring.
    pub fn nodes(&self) -> usize {
        self.last_heard.len()
    }
}

/// Merges the members of a room on every node: each user once, sorted by
/// name.
pub(crate) fn merge_members<'a>(
    local: Vec<Member>,
    remote: impl Iterator<Item = &'a Member>,
) -> Vec<Member> {
    let mut members = local;
    members.extend(remote.cloned());
    members.sort_by_key(|member| member.user);
    members.dedup_by_key(|member| member.user);
    members.sort();
    members
}

/// How often a node says it is alive, and how long the others wait before
/// presuming it gone.
#[derive(Clone, Copy, Debug)]
pub struct Liveness {
    pub heartbeat: Duration,
    /// Silence after which a node's presence is forgotten.
    pub timeout: Duration,
}

impl Default for Liveness {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConnectionId, UserId};

    fn member(user: i64, name: &str) -> Member {
        Member {
            user: UserId(user),
            name: name.into(),
        }
    }

    #[test]
    fn an_envelope_carries_its_payload_untouched() {
        let node = NodeId(0xfeed);
        let message = Message::Deliver {
            target: Target::users([1, 2]).except(ConnectionId(7)),
        };
        let frame = br#"{"type":"event","event":"x","data":{"text":"line\nbreak"}}"#;
        let bytes = Envelope::encode_with_payload(node, &message, frame);
        let envelope = Envelope::decode(bytes).unwrap();
        assert_eq!(envelope.node, node);
        assert_eq!(envelope.message, message);
        assert_eq!(&envelope.payload[..], frame);
    }

    #[test]
    fn every_message_survives_the_trip() {
        let room = RoomName::from("chat:1");
        for message in [
            Message::CloseSession {
                session: SessionKey::from("abc"),
            },
            Message::Presence {
                room: room.clone(),
                members: vec![member(1, "ada")],
            },
            Message::Hello {
                rooms: vec![(room.clone(), vec![member(2, "bob")])],
            },
            Message::Snapshot { rooms: vec![] },
            Message::Heartbeat,
            Message::Goodbye,
        ] {
            let bytes = Envelope::encode(NodeId(1), &message);
            assert_eq!(Envelope::decode(bytes).unwrap().message, message);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"no newline", b"{}\n", b"{\"node\":\"zz\"}\n"] {
            assert!(Envelope::decode(Bytes::copy_from_slice(bytes)).is_err());
        }
    }

    #[test]
    fn merged_members_name_each_user_once_sorted_by_name() {
        let remote = [member(3, "cy"), member(1, "ada")];
        let merged = merge_members(vec![member(2, "bob"), member(1, "ada")], remote.iter());
        assert_eq!(
            merged,
            [member(1, "ada"), member(2, "bob"), member(3, "cy")]
        );
    }

    #[test]
    fn a_node_is_forgotten_when_it_leaves_or_falls_silent() {
        let room = RoomName::from("chat:1");
        let (a, b) = (NodeId(1), NodeId(2));
        let start = Instant::now();
        let mut presence = RemotePresence::default();
        presence.heard_from(a, start);
        presence.heard_from(b, start + Duration::from_secs(10));
        assert!(presence.set_room(a, &room, vec![member(1, "ada")]));
        assert!(!presence.set_room(a, &room, vec![member(1, "ada")]));
        assert!(presence.set_room(b, &room, vec![member(2, "bob")]));
        assert_eq!(presence.members(&room).count(), 2);

        assert_eq!(
            presence.forget_silent(start + Duration::from_secs(5)),
            std::slice::from_ref(&room)
        );
        assert_eq!(
            presence.members(&room).collect::<Vec<_>>(),
            [&member(2, "bob")]
        );
        assert_eq!(presence.forget_node(b), std::slice::from_ref(&room));
        assert_eq!(presence.members(&room).count(), 0);
        assert_eq!(presence.nodes(), 0);
    }

    #[test]
    fn a_snapshot_replaces_what_a_node_said_before() {
        let (red, blue) = (RoomName::from("chat:red"), RoomName::from("chat:blue"));
        let node = NodeId(1);
        let mut presence = RemotePresence::default();
        presence.set_room(node, &red, vec![member(1, "ada")]);
        let changed = presence.replace_node(node, vec![(blue.clone(), vec![member(1, "ada")])]);
        assert!(changed.contains(&red) && changed.contains(&blue));
        assert_eq!(presence.members(&red).count(), 0);
        assert_eq!(presence.members(&blue).count(), 1);
    }
}
