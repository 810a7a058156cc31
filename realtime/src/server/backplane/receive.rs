//! The receiving side of the backplane: what a node does with each message
//! from the others, one function per kind.
//!
//! The transport hands every message it receives to [`Hub::receive`]. The
//! node's own echo, and messages it cannot read, go no further.

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;

use super::{Envelope, Link, Message, NodeId};
use crate::{
    Member, RoomName,
    protocol::ServerFrame,
    server::{Hub, SessionKey, Target, durable::Placed},
    stream::{EventId, Position, Stream, TabId},
};

/// The most ended sessions told again to a process that says `hello`.
const MAX_REPLAYED: usize = 1000;

impl Hub {
    /// Acts on a message from the backplane.
    pub(crate) fn receive(&self, link: &Link, bytes: Bytes) {
        let envelope = match Envelope::decode(bytes) {
            Ok(envelope) => envelope,
            Err(error) => {
                tracing::warn!(%error, "dropped an unreadable message from the backplane");
                return;
            }
        };
        let from = envelope.node;
        let receive = Receive {
            hub: self,
            link,
            from,
        };
        // Durable events and resets reach every node through Redis, the
        // sender's included: in the order Redis placed them.
        match envelope.message {
            Message::Recorded {
                target,
                id,
                except_tab,
                streams,
                positions,
            } => receive.recorded(
                &target,
                id,
                except_tab,
                streams,
                positions,
                envelope.payload,
            ),
            Message::Reset { stream, position } => {
                // A new epoch begins at its start; anything else is not a
                // reset this code sends.
                if position.offset == 0 {
                    self.reset_stream(&stream, position);
                } else {
                    tracing::warn!(node = %from, "dropped a reset that does not start at offset 0");
                }
            }
            message if from != link.node => {
                return self.receive_from_another(&receive, message, envelope.payload);
            }
            _ => {}
        }
        if from == link.node {
            link.echo_received();
        } else {
            self.heard_from_another(from, false);
        }
    }

    /// Acts on a message another node sent (not a durable event).
    fn receive_from_another(&self, receive: &Receive<'_>, message: Message, payload: Bytes) {
        let from = receive.from;
        let known = self.knows_node(from);
        let carries_state = matches!(message, Message::Hello { .. } | Message::Snapshot { .. });
        match message {
            Message::Deliver { target } => receive.deliver(&target, payload),
            // Handled by `receive`.
            Message::Recorded { .. } | Message::Reset { .. } => {}
            Message::CloseSession { session } => receive.close_session(&session),
            Message::Presence { room, members } => receive.presence(room, members),
            Message::Hello { rooms } => receive.hello(rooms),
            Message::Snapshot { rooms } => receive.snapshot(rooms),
            Message::Heartbeat => {}
            Message::Goodbye => return receive.goodbye(),
        }
        // After the message: a snapshot replaces what was known of the node.
        self.heard_from_another(from, known || carries_state);
    }

    /// Notes that another node is alive. One this node had presumed gone
    /// (it was silent too long) or never met, unless its message carried
    /// its state: everyone is asked for their state, this one's included.
    fn heard_from_another(&self, from: NodeId, known: bool) {
        let known = known || self.knows_node(from);
        self.heard_from(from);
        if !known {
            self.say_hello();
        }
    }
}

/// One message from another node, being acted on.
struct Receive<'a> {
    hub: &'a Hub,
    link: &'a Link,
    from: NodeId,
}

impl Receive<'_> {
    /// `deliver`: the event frame goes to the target's connections here,
    /// if it is one (`event_frame`).
    fn deliver(&self, target: &Target, payload: Bytes) {
        if let Some(frame) = self.event_frame(payload) {
            self.hub.deliver_local(target, &frame);
        }
    }

    /// `recorded`: a durable event, placed by Redis. Delivered, and kept in
    /// the mirror, if it is an event frame no larger than this node would
    /// send; and if Redis placed it in each stream.
    fn recorded(
        &self,
        target: &Target,
        id: EventId,
        except_tab: Option<TabId>,
        streams: Vec<Stream>,
        positions: Vec<Position>,
        payload: Bytes,
    ) {
        if streams.len() != positions.len() || positions.iter().any(|at| at.offset == 0) {
            tracing::warn!(node = %self.from, "dropped a durable event without a position in each stream");
            return;
        }
        let Some(frame) = self.event_frame(payload) else {
            return;
        };
        let streams = streams.into_iter().zip(positions).collect();
        let placed = Placed {
            target,
            id,
            except_tab,
            streams,
            frame: frame.as_str(),
        };
        self.hub.deliver_placed(&placed);
    }

    /// The payload as an event frame, if it is one no larger than this
    /// node would send (anything else written to the channel never reaches
    /// a browser).
    fn event_frame(&self, payload: Bytes) -> Option<Utf8Bytes> {
        if payload.len() > self.hub.config().max_event_bytes {
            tracing::warn!(node = %self.from, bytes = payload.len(), "dropped an event over the size limit");
            return None;
        }
        let Ok(frame) = Utf8Bytes::try_from(payload) else {
            tracing::warn!(node = %self.from, "dropped an event that is not UTF-8");
            return None;
        };
        if !matches!(ServerFrame::parse(&frame), Ok(ServerFrame::Event { .. })) {
            tracing::warn!(node = %self.from, "dropped a payload that is not an event frame");
            return None;
        }
        Some(frame)
    }

    /// `close_session`: the session ended on the sender; its connections
    /// here close too.
    fn close_session(&self, session: &SessionKey) {
        self.hub.disconnect_local_session(session);
    }

    /// `presence`: the sender's users in one room now.
    fn presence(&self, room: RoomName, members: Vec<Member>) {
        self.hub.remote_presence_changed(|remote| {
            if remote.set_room(self.from, &room, members) {
                vec![room]
            } else {
                Vec::new()
            }
        });
    }

    /// `hello`: the sender (re)connected. Its presence replaces what was
    /// known of it; it gets this node's presence in answer, and the ends of
    /// sessions it may have missed while it was cut off.
    fn hello(&self, rooms: Vec<(RoomName, Vec<Member>)>) {
        self.hub
            .remote_presence_changed(|remote| remote.replace_node(self.from, rooms));
        self.hub.answer_hello();
        self.link
            .replay_ended_sessions(self.hub.recently_ended_sessions(MAX_REPLAYED));
    }

    /// `snapshot`: the sender's presence in every room, in answer to a
    /// `hello`.
    fn snapshot(&self, rooms: Vec<(RoomName, Vec<Member>)>) {
        self.hub
            .remote_presence_changed(|remote| remote.replace_node(self.from, rooms));
    }

    /// `goodbye`: the sender is shutting down; its presence goes now.
    fn goodbye(&self) {
        self.hub
            .remote_presence_changed(|remote| remote.forget_node(self.from));
    }
}
