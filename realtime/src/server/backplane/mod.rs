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
    collections::{HashMap, VecDeque, hash_map::Entry},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{
    Notify,
    mpsc::{self, error::TrySendError},
};

use super::{SessionKey, Target};
use crate::{Member, RoomName};

/// One server process among those sharing a backplane. Random, new at each
/// start, so a restarted process is a new node. Written as 16 hexadecimal
/// digits, like a [`crate::ConnectionId`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(pub u64);

crate::ids::hex_id!(NodeId);

impl NodeId {
    pub fn random() -> Self {
        Self(rand::random())
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
        if let Err(error) = serde_json::to_writer(&mut out, &Header { node, message }) {
            // Other nodes drop an envelope without a header line, with a warning.
            tracing::error!(%error, "a backplane message could not be encoded");
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

/// How long the ends of sessions are remembered, to tell them again to a
/// process that (re)connects: it may have missed them while cut off.
const ENDED_SESSIONS_KEPT: Duration = Duration::from_secs(10 * 60);

/// Messages that must not be lost (ends of sessions; presence while the
/// queue is full) wait here, at most this many. Past it the oldest go, with
/// a warning: something is badly wrong with Redis by then.
const MAX_PENDING: usize = 64 * 1024;

/// The hub's side of a backplane: where it publishes, and what it knows of
/// the other nodes.
///
/// Three kinds of message, three rules:
/// - events ([`Link::publish`]) are at most once: dropped (and counted)
///   while Redis is away or too slow, like a frame to a browser that has
///   gone;
/// - presence ([`Link::publish_state`]) replaces earlier state, so it may
///   be dropped while Redis is away (the `hello` sent on reconnection
///   carries all of it), but never while connected;
/// - the end of a session ([`Link::end_session`]) is never dropped: it
///   waits for Redis to come back, so a logged-out session's sockets on
///   other processes are closed even after an outage.
pub(crate) struct Link {
    pub node: NodeId,
    outbound: mpsc::Sender<Bytes>,
    /// Messages that could not be queued and must not be lost, oldest
    /// first. The transport publishes them before anything queued.
    pending: Mutex<VecDeque<Bytes>>,
    /// Wakes the transport when `pending` gets something.
    pending_ready: Notify,
    /// Whether the transport is connected. While it is not, events are not
    /// queued: they reach this node's connections only.
    up: AtomicBool,
    /// Events not published since the last report (link down or queue
    /// full), for the log line that reports the gap.
    missed: AtomicU64,
    /// When this node last heard its own echo: a subscription that stops
    /// delivering is noticed even if publishing still works.
    last_echo: Mutex<Instant>,
    /// Sessions ended here lately, oldest first, replayed to processes
    /// that (re)connect.
    ended_sessions: Mutex<VecDeque<(Instant, SessionKey)>>,
    /// Presence of the other nodes.
    pub remote: Mutex<RemotePresence>,
}

impl Link {
    pub fn new(node: NodeId, outbound: mpsc::Sender<Bytes>) -> Self {
        Self {
            node,
            outbound,
            pending: Mutex::new(VecDeque::new()),
            pending_ready: Notify::new(),
            up: AtomicBool::new(false),
            missed: AtomicU64::new(0),
            last_echo: Mutex::new(Instant::now()),
            ended_sessions: Mutex::new(VecDeque::new()),
            remote: Mutex::new(RemotePresence::default()),
        }
    }

    /// Queues an event for the other nodes, unless the link is down or the
    /// queue is full (then it is counted as missed).
    pub fn publish(&self, message: &Message, payload: &[u8]) {
        if !self.is_up() {
            self.count_missed();
            return;
        }
        let envelope = Envelope::encode_with_payload(self.node, message, payload);
        if self.outbound.try_send(envelope).is_err()
            && self.missed.fetch_add(1, Ordering::Relaxed) == 0
        {
            // Redis cannot keep up; waiting would stall the emitter.
            tracing::warn!(
                "the backplane's queue is full: events reach this process's connections only until it drains"
            );
        }
    }

    /// Queues a change of presence: never dropped while connected; skipped
    /// while down (the reconnection's `hello` carries the whole state).
    pub fn publish_state(&self, message: &Message, payload: &[u8]) {
        if !self.is_up() {
            return;
        }
        let envelope = Envelope::encode_with_payload(self.node, message, payload);
        let mut pending = self.pending.lock();
        // Once something waits, everything after it waits too: order kept.
        let envelope = if pending.is_empty() {
            match self.outbound.try_send(envelope) {
                Ok(()) => return,
                Err(TrySendError::Full(envelope) | TrySendError::Closed(envelope)) => envelope,
            }
        } else {
            envelope
        };
        Self::wait(&mut pending, envelope);
        drop(pending);
        self.pending_ready.notify_one();
    }

    /// Tells every process that a session ended, now or when Redis is
    /// back, and again to any process that (re)connects within
    /// [`ENDED_SESSIONS_KEPT`] (it may have been cut off meanwhile).
    pub fn end_session(&self, session: &SessionKey) {
        let now = Instant::now();
        {
            let mut ended = self.ended_sessions.lock();
            while ended
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > ENDED_SESSIONS_KEPT)
                || ended.len() >= MAX_PENDING
            {
                ended.pop_front();
            }
            ended.push_back((now, session.clone()));
        }
        self.publish_control(&Message::CloseSession {
            session: session.clone(),
        });
    }

    /// Tells the sessions ended lately again (a process said hello).
    pub fn replay_ended_sessions(&self) {
        let now = Instant::now();
        let recent: Vec<SessionKey> = self
            .ended_sessions
            .lock()
            .iter()
            .filter(|(at, _)| now.duration_since(*at) <= ENDED_SESSIONS_KEPT)
            .map(|(_, session)| session.clone())
            .collect();
        for session in recent {
            self.publish_control(&Message::CloseSession { session });
        }
    }

    /// Queues a message that must reach the other nodes, whenever Redis
    /// lets it. It never enters the event queue, which is thrown away when
    /// Redis is lost: it waits in `pending` until it is published.
    fn publish_control(&self, message: &Message) {
        let envelope = Envelope::encode(self.node, message);
        Self::wait(&mut self.pending.lock(), envelope);
        self.pending_ready.notify_one();
    }

    fn wait(pending: &mut VecDeque<Bytes>, envelope: Bytes) {
        if pending.len() == MAX_PENDING {
            pending.pop_front();
            tracing::warn!("the backplane's pending messages overflowed: the oldest was dropped");
        }
        pending.push_back(envelope);
    }

    /// Takes what waits, oldest first.
    pub fn take_pending(&self) -> Vec<Bytes> {
        self.pending.lock().drain(..).collect()
    }

    /// Puts back what could not be published, before anything newer.
    pub fn put_back(&self, envelopes: Vec<Bytes>) {
        let mut pending = self.pending.lock();
        for envelope in envelopes.into_iter().rev() {
            pending.push_front(envelope);
        }
        pending.truncate(MAX_PENDING);
    }

    /// Resolves when something is waiting in `pending`.
    pub async fn pending_ready(&self) {
        self.pending_ready.notified().await;
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub fn set_up(&self, up: bool) {
        if up {
            *self.last_echo.lock() = Instant::now();
        }
        self.up.store(up, Ordering::Release);
    }

    /// Counts an event that was not published.
    pub fn count_missed(&self) {
        self.missed.fetch_add(1, Ordering::Relaxed);
    }

    /// How many events were not published since the last call.
    pub fn take_missed(&self) -> u64 {
        self.missed.swap(0, Ordering::Relaxed)
    }

    /// Notes that this node's own message came back.
    pub fn echo_received(&self) {
        *self.last_echo.lock() = Instant::now();
    }

    /// How long since this node last heard its own echo.
    pub fn since_last_echo(&self) -> Duration {
        self.last_echo.lock().elapsed()
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

    /// Whether this node has been heard from (and not forgotten since).
    pub fn is_known(&self, node: NodeId) -> bool {
        self.last_heard.contains_key(&node)
    }

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
        self.last_heard.remove(&node);
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
    crate::presence::each_user_once(members)
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

    fn decode_all(envelopes: Vec<Bytes>) -> Vec<Message> {
        envelopes
            .into_iter()
            .map(|bytes| Envelope::decode(bytes).unwrap().message)
            .collect()
    }

    fn presence(user: i64) -> Message {
        Message::Presence {
            room: "chat:1".into(),
            members: vec![member(user, "x")],
        }
    }

    #[test]
    fn events_are_dropped_and_counted_while_down() {
        let (outbound, mut queue) = mpsc::channel(8);
        let link = Link::new(NodeId(1), outbound);
        let deliver = Message::Deliver {
            target: Target::everyone(),
        };
        link.publish(&deliver, b"frame");
        link.publish_state(&presence(1), &[]);
        assert!(queue.try_recv().is_err());
        assert!(link.take_pending().is_empty());
        assert_eq!(link.take_missed(), 1);

        link.set_up(true);
        link.publish(&deliver, b"frame");
        assert_eq!(decode_all(vec![queue.try_recv().unwrap()]), [deliver]);
    }

    #[test]
    fn presence_waits_in_order_when_the_queue_is_full() {
        let (outbound, mut queue) = mpsc::channel(1);
        let link = Link::new(NodeId(1), outbound);
        link.set_up(true);
        for user in 1..=3 {
            link.publish_state(&presence(user), &[]);
        }
        assert_eq!(decode_all(vec![queue.try_recv().unwrap()]), [presence(1)]);
        // The queue has room again, but the waiting ones go first.
        link.publish_state(&presence(4), &[]);
        assert!(queue.try_recv().is_err());
        assert_eq!(
            decode_all(link.take_pending()),
            [presence(2), presence(3), presence(4)]
        );
    }

    #[test]
    fn ends_of_sessions_wait_for_redis_and_are_told_again() {
        let (outbound, _queue) = mpsc::channel(8);
        let link = Link::new(NodeId(1), outbound);
        let session = SessionKey::from("s1");
        link.end_session(&session);
        let close = Message::CloseSession { session };
        assert_eq!(
            decode_all(link.take_pending()),
            std::slice::from_ref(&close)
        );

        link.replay_ended_sessions();
        assert_eq!(decode_all(link.take_pending()), [close]);
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
        // The same snapshot again changes nothing.
        let again = presence.replace_node(node, vec![(blue.clone(), vec![member(1, "ada")])]);
        assert!(again.is_empty(), "{again:?}");
    }
}
