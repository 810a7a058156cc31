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
    server::{Hub, SessionKey, Target},
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
        if envelope.node == link.node {
            link.echo_received();
            return;
        }
        let from = envelope.node;
        let known = self.knows_node(from);
        let receive = Receive {
            hub: self,
            link,
            from,
        };
        let carries_state = matches!(
            envelope.message,
            Message::Hello { .. } | Message::Snapshot { .. }
        );
        match envelope.message {
            Message::Deliver { target } => receive.deliver(&target, envelope.payload),
            Message::CloseSession { session } => receive.close_session(&session),
            Message::Presence { room, members } => receive.presence(room, members),
            Message::Hello { rooms } => receive.hello(rooms),
            Message::Snapshot { rooms } => receive.snapshot(rooms),
            Message::Heartbeat => {}
            Message::Goodbye => return receive.goodbye(),
        }
        // After the message: a snapshot replaces what was known of the node.
        self.heard_from(from);
        if !known && !carries_state {
            // A node this one had presumed gone (it was silent too long) or
            // never met: ask everyone for their state, this one's included.
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
    /// if it is one: an event frame, no larger than this node would send.
    /// Anything else written to the channel never reaches a browser.
    fn deliver(&self, target: &Target, payload: Bytes) {
        if payload.len() > self.hub.config().max_event_bytes {
            tracing::warn!(node = %self.from, bytes = payload.len(), "dropped an event over the size limit");
            return;
        }
        let Ok(frame) = Utf8Bytes::try_from(payload) else {
            tracing::warn!(node = %self.from, "dropped an event that is not UTF-8");
            return;
        };
        if !matches!(ServerFrame::parse(&frame), Ok(ServerFrame::Event { .. })) {
            tracing::warn!(node = %self.from, "dropped a deliver whose payload is not an event frame");
            return;
        }
        self.hub.deliver_local(target, &frame);
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
