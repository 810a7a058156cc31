//! The receiving side: what a node does with each message from the others,
//! one function per kind, handing what concerns the hub to its inbox.
//!
//! The transport hands every message it receives to [`Receive::message`].
//! The node's own echo, and messages it cannot read, go no further.

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;

use super::{
    super::{Inbox, NodeId, Placed, PresenceNews},
    envelope::{Envelope, Message},
    following::Following,
    link::Link,
    nodes::Nodes,
};
use crate::{
    Member, RoomName,
    protocol::ServerFrame,
    server::{SessionKey, TabMark, Target},
    stream::{EventId, Position, Stream},
};

/// The most ended sessions told again to a process that says `hello`.
const MAX_REPLAYED: usize = 1000;

/// What the receiving side works with.
pub(super) struct Receive<'a> {
    pub inbox: &'a dyn Inbox,
    pub link: &'a Link,
    pub following: &'a Following,
    pub nodes: &'a Nodes,
    /// The largest event frame this node would send.
    pub max_event_bytes: usize,
}

impl Receive<'_> {
    /// Acts on a message from the channel.
    pub fn message(&self, bytes: Bytes) {
        self.link.count_received();
        let envelope = match Envelope::decode(bytes) {
            Ok(envelope) => envelope,
            Err(error) => {
                tracing::warn!(%error, "dropped an unreadable message from the backplane");
                return;
            }
        };
        let from = envelope.node;
        // Durable events and resets reach every node through Redis, the
        // sender's included: in the order Redis placed them.
        match envelope.message {
            Message::Recorded {
                target,
                id,
                except_tab,
                streams,
                positions,
            } => self.recorded(
                from,
                &target,
                (id, except_tab),
                streams,
                positions,
                envelope.payload,
            ),
            // Of a shard unsubscribed while it was on its way: the mirror
            // forgot the stream, and must not take it up again unheard.
            Message::Reset { stream, .. } if !self.following.hears(&stream) => {}
            Message::Reset { stream, position } => {
                // A new epoch begins at its start; anything else is not a
                // reset this code sends.
                if position.offset == 0 {
                    self.inbox.reset(&stream, position);
                } else {
                    tracing::warn!(node = %from, "dropped a reset that does not start at offset 0");
                }
            }
            message if from != self.link.node => {
                return self.other_node_said(from, message, envelope.payload);
            }
            _ => {}
        }
        if from == self.link.node {
            self.link.echo_received();
        } else {
            self.heard_from_another(from, false);
        }
    }

    /// Acts on a message another node sent (not a durable event).
    fn other_node_said(&self, from: NodeId, message: Message, payload: Bytes) {
        let known = self.nodes.knows(from);
        let carries_state = matches!(message, Message::Hello { .. } | Message::Snapshot { .. });
        match message {
            Message::Deliver { target } => self.deliver(from, &target, payload),
            // Handled by `message`.
            Message::Recorded { .. } | Message::Reset { .. } => {}
            Message::CloseSession { session } => self.close_session(&session),
            Message::Presence { room, members } => self.presence(from, room, members),
            Message::Hello { rooms, shards } => {
                self.check_shards(from, shards);
                self.hello(from, rooms);
            }
            Message::Snapshot { rooms, shards } => {
                self.check_shards(from, shards);
                self.inbox.presence(from, PresenceNews::Snapshot { rooms });
            }
            Message::Heartbeat => {}
            Message::Goodbye => return self.goodbye(from),
        }
        // After the message: a snapshot replaces what was known of the node.
        self.heard_from_another(from, known || carries_state);
    }

    /// Notes that another node is alive. One this node had presumed gone
    /// (it was silent too long) or never met, unless its message carried
    /// its state: everyone is asked for their state, this one's included.
    fn heard_from_another(&self, from: NodeId, known: bool) {
        let was_known = self.nodes.heard_from(from);
        if !(known || was_known) {
            self.inbox.joined();
        }
    }

    /// `deliver`: the event frame goes to the target's connections here,
    /// if it is one (`event_frame`).
    fn deliver(&self, from: NodeId, target: &Target, payload: Bytes) {
        if let Some(frame) = self.event_frame(from, payload) {
            self.inbox.deliver(target, frame);
        }
    }

    /// `recorded`: a durable event, placed by Redis. Handed to the hub if it
    /// is an event frame no larger than this node would send, and if Redis
    /// placed it in each stream.
    fn recorded(
        &self,
        from: NodeId,
        target: &Target,
        (id, except_tab): (EventId, Option<TabMark>),
        streams: Vec<Stream>,
        positions: Vec<Position>,
        payload: Bytes,
    ) {
        if streams.len() != positions.len() || positions.iter().any(|at| at.offset == 0) {
            tracing::warn!(node = %from, "dropped a durable event without a position in each stream");
            return;
        }
        // Of a shard unsubscribed while it was on its way (see `Reset`).
        if !streams.iter().all(|stream| self.following.hears(stream)) {
            return;
        }
        let Some(frame) = self.event_frame(from, payload) else {
            // Placed, but not to be sent from here (a process with a
            // larger `max_event_bytes`, say): its readers here are told at
            // once that they cannot have it, rather than at the stream's
            // next event, and the stream goes on from it.
            for (stream, position) in streams.iter().zip(positions) {
                self.inbox.unsendable(stream, position, id);
            }
            return;
        };
        self.inbox.placed(Placed {
            target,
            id,
            except_tab,
            streams: streams.into_iter().zip(positions).collect(),
            frame: frame.as_str(),
        });
    }

    /// The payload as an event frame, if it is one no larger than this
    /// node would send (anything else written to the channel never reaches
    /// a browser).
    fn event_frame(&self, from: NodeId, payload: Bytes) -> Option<Utf8Bytes> {
        if payload.len() > self.max_event_bytes {
            tracing::warn!(node = %from, bytes = payload.len(), "dropped an event over the size limit");
            return None;
        }
        let Ok(frame) = Utf8Bytes::try_from(payload) else {
            tracing::warn!(node = %from, "dropped an event that is not UTF-8");
            return None;
        };
        if !matches!(ServerFrame::parse(&frame), Ok(ServerFrame::Event { .. })) {
            tracing::warn!(node = %from, "dropped a payload that is not an event frame");
            return None;
        }
        Some(frame)
    }

    /// Says loudly when another node spreads the streams over another
    /// number of shards: the two would place one stream in two shards, and
    /// neither would hear the other's events of it.
    fn check_shards(&self, from: NodeId, theirs: Option<u16>) {
        let ours = self.following.shards.count();
        if let Some(theirs) = theirs.filter(|theirs| *theirs != ours) {
            tracing::error!(
                node = %from,
                theirs,
                ours,
                "another process on this channel spreads the streams over another number of \
                 shards: REDIS_SHARDS must be the same on every process, or their tabs miss \
                 each other's events"
            );
        }
    }

    /// `close_session`: the session ended on the sender; its connections
    /// here close too.
    fn close_session(&self, session: &SessionKey) {
        self.inbox.session_ended(session);
    }

    /// `presence`: the sender's users in one room now.
    fn presence(&self, from: NodeId, room: RoomName, members: Vec<Member>) {
        self.inbox
            .presence(from, PresenceNews::Room { room, members });
    }

    /// `hello`: the sender (re)connected. Its presence replaces what was
    /// known of it; it gets this node's presence in answer, and the ends of
    /// sessions it may have missed while it was cut off.
    fn hello(&self, from: NodeId, rooms: Vec<(RoomName, Vec<Member>)>) {
        self.inbox.presence(from, PresenceNews::Hello { rooms });
        self.link
            .replay_ended_sessions(self.inbox.recently_ended_sessions(MAX_REPLAYED));
    }

    /// `goodbye`: the sender is shutting down; its presence goes now.
    fn goodbye(&self, from: NodeId) {
        self.nodes.forget(from);
        self.inbox.node_gone(from);
    }
}
