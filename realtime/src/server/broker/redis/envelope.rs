//! What travels between processes: the [`Message`]s one node tells the
//! others, each wrapped in an [`Envelope`] with its sender and payload.
//!
//! ## Format
//!
//! One line of JSON (the header: sender and message), a newline, then the
//! payload: the event frame exactly as browsers receive it, for `deliver`
//! messages, and nothing otherwise. The frame is never parsed or
//! re-encoded on its way through. `docs/protocol.md` ("Between server
//! processes") describes every message.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::super::{NodeId, PresenceNews};
use crate::{
    Member, RoomName,
    server::{SessionKey, TabMark, Target},
    stream::{EventId, Position, Stream},
};

/// What one node tells the others.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Message {
    /// Deliver the payload (an event frame) to `target`'s connections.
    Deliver { target: Target },
    /// A durable event Redis placed in each of `streams`, at the position
    /// of the same index: deliver the payload (its event frame, without
    /// positions) to `target`'s connections, through those streams. Redis
    /// itself writes `positions`, last in the header (`history.rs`);
    /// every node acts on it, the sender included.
    Recorded {
        target: Target,
        id: EventId,
        except_tab: Option<TabMark>,
        streams: Vec<Stream>,
        positions: Vec<Position>,
    },
    /// Redis started `stream` again at `position` (its history was lost,
    /// or written apart while Redis was away): its readers may have missed
    /// events. Every node acts on it, the sender included.
    Reset { stream: Stream, position: Position },
    /// Close the connections of this session (it ended: log-out).
    CloseSession { session: SessionKey },
    /// The users the sender has in `room` now (replacing what it said
    /// before; empty when it has none left).
    Presence {
        room: RoomName,
        members: Vec<Member>,
    },
    /// The sender (re)joined the backplane: here is its presence in every
    /// room; please answer with yours. `shards`: how many shards it spreads
    /// the streams over, which must be every node's count.
    Hello {
        rooms: Vec<(RoomName, Vec<Member>)>,
        #[serde(default)]
        shards: Option<u16>,
    },
    /// The answer to a `hello`: the sender's presence in every room, and
    /// its shard count.
    Snapshot {
        rooms: Vec<(RoomName, Vec<Member>)>,
        #[serde(default)]
        shards: Option<u16>,
    },
    /// The sender is alive. Nodes not heard from for a while are presumed
    /// gone, and their presence forgotten.
    Heartbeat,
    /// The sender is shutting down.
    Goodbye,
}

impl Message {
    /// What a node says of its presence, with its shard count.
    pub fn presence(news: PresenceNews, shards: u16) -> Self {
        match news {
            PresenceNews::Room { room, members } => Self::Presence { room, members },
            PresenceNews::Hello { rooms } => Self::Hello {
                rooms,
                shards: Some(shards),
            },
            PresenceNews::Snapshot { rooms } => Self::Snapshot {
                rooms,
                shards: Some(shards),
            },
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConnectionId;

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
                members: vec![Member::new(1, "ada")],
            },
            Message::Hello {
                rooms: vec![(room.clone(), vec![Member::new(2, "bob")])],
                shards: Some(16),
            },
            Message::Snapshot {
                rooms: vec![],
                shards: None,
            },
            Message::Heartbeat,
            Message::Goodbye,
        ] {
            let bytes = Envelope::encode(NodeId(1), &message);
            assert_eq!(Envelope::decode(bytes).unwrap().message, message);
        }
    }

    #[test]
    fn a_deliver_header_is_written_as_docs_protocol_md_shows() {
        let message = Message::Deliver {
            target: Target::room_name("chat:7".into()).except(ConnectionId(0x00ab_cdef_0123_4567)),
        };
        let frame = br#"{"type":"event","name":"chat.message","data":{}}"#;
        let bytes = Envelope::encode_with_payload(NodeId(0x5f0c_3a9e_1b2d_4c6f), &message, frame);
        let (header, payload) = bytes.split_at(bytes.iter().position(|b| *b == b'\n').unwrap());
        assert_eq!(
            std::str::from_utf8(header).unwrap(),
            r#"{"node":"5f0c3a9e1b2d4c6f","message":{"type":"deliver","target":{"everyone":false,"users":[],"rooms":["chat:7"],"connections":[],"except":"00abcdef01234567"}}}"#
        );
        assert_eq!(&payload[1..], frame);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"no newline", b"{}\n", b"{\"node\":\"zz\"}\n"] {
            assert!(Envelope::decode(Bytes::copy_from_slice(bytes)).is_err());
        }
    }
}
