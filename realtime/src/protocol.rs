//! The wire protocol: JSON text frames over one WebSocket per tab.
//!
//! `docs/protocol.md` describes every frame, field, close code and limit;
//! keep the two in step. Unknown fields are ignored by both sides, so a
//! field can be added without breaking older peers.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{ConnectionId, RoomName, UserId};

/// Path of the WebSocket endpoint.
pub const PATH: &str = "/ws";

/// Request header on server-function calls naming the calling tab's
/// connection, set by [`crate::RealtimeClient`].
pub const CONNECTION_HEADER: &str = "x-realtime-connection";

/// What the browser sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Asks to join a room. Answered by `joined` or `refused`.
    Join { room: RoomName },
    /// Leaves a room. Answered by `left`.
    Leave { room: RoomName },
}

/// What the server sends, as the browser reads it ([`ServerFrame::parse`]).
///
/// An event's `data` is kept as raw JSON: only the subscriber that knows the
/// event's type decodes it.
#[derive(Debug)]
pub enum ServerFrame {
    /// The first frame on every connection.
    Welcome {
        connection: ConnectionId,
        /// The logged-in user, or `null` for a visitor.
        user: Option<UserId>,
    },
    /// An event.
    Event { name: String, data: Box<RawValue> },
    /// The connection is now in the room.
    Joined { room: RoomName },
    /// The connection may not join the room.
    Refused { room: RoomName, reason: String },
    /// The connection is no longer in the room (it asked, or the server
    /// removed it).
    Left { room: RoomName },
    /// A frame from the browser could not be used.
    Error { code: ErrorCode, message: String },
}

impl ServerFrame {
    /// Reads a frame. (Not a derived `Deserialize`: serde cannot keep an
    /// event's `data` raw inside an internally tagged enum.)
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        use serde::de::Error as _;

        /// Every field any frame has; `type` says which apply.
        #[derive(Deserialize)]
        struct Fields<'a> {
            #[serde(rename = "type")]
            kind: String,
            #[serde(borrow)]
            data: Option<&'a RawValue>,
            name: Option<String>,
            connection: Option<ConnectionId>,
            #[serde(default)]
            user: Option<UserId>,
            room: Option<RoomName>,
            reason: Option<String>,
            code: Option<ErrorCode>,
            message: Option<String>,
        }

        fn required<T>(field: Option<T>, name: &'static str) -> Result<T, serde_json::Error> {
            field.ok_or_else(|| serde_json::Error::missing_field(name))
        }

        let fields: Fields<'_> = serde_json::from_str(text)?;
        Ok(match fields.kind.as_str() {
            "welcome" => Self::Welcome {
                connection: required(fields.connection, "connection")?,
                user: fields.user,
            },
            "event" => Self::Event {
                name: required(fields.name, "name")?,
                data: required(fields.data, "data")?.to_owned(),
            },
            "joined" => Self::Joined {
                room: required(fields.room, "room")?,
            },
            "refused" => Self::Refused {
                room: required(fields.room, "room")?,
                reason: required(fields.reason, "reason")?,
            },
            "left" => Self::Left {
                room: required(fields.room, "room")?,
            },
            "error" => Self::Error {
                code: required(fields.code, "code")?,
                message: required(fields.message, "message")?,
            },
            other => {
                return Err(serde_json::Error::unknown_variant(
                    other,
                    &["welcome", "event", "joined", "refused", "left", "error"],
                ));
            }
        })
    }
}

/// Server frames other than events, as the server writes them.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlFrame<'a> {
    Welcome {
        connection: ConnectionId,
        user: Option<UserId>,
    },
    Joined {
        room: &'a RoomName,
    },
    Refused {
        room: &'a RoomName,
        reason: &'a str,
    },
    Left {
        room: &'a RoomName,
    },
    Error {
        code: ErrorCode,
        message: &'a str,
    },
}

/// Why a browser frame was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, or not a frame this protocol knows.
    MalformedFrame,
    /// A binary frame: the protocol is text only.
    BinaryFrame,
    /// More frames than the connection may send: the frame was dropped.
    /// A browser that keeps on is closed with [`close::RATE_LIMITED`].
    RateLimited,
}

/// Encodes an event frame. The name is a Rust identifier-like constant and
/// the data is already JSON, so this is string assembly, not a second
/// serialization.
pub fn event_frame(name: &str, data_json: &str) -> String {
    let name = serde_json::to_string(name).unwrap_or_else(|_| "\"\"".to_owned());
    let mut frame = String::with_capacity(30 + name.len() + data_json.len());
    frame.push_str(r#"{"type":"event","name":"#);
    frame.push_str(&name);
    frame.push_str(r#","data":"#);
    frame.push_str(data_json);
    frame.push('}');
    frame
}

/// WebSocket close codes the server uses. Codes 4000 to 4999 are the
/// application's own (RFC 6455, section 7.4.2).
pub mod close {
    /// The server is shutting down; reconnect (to it or to another server).
    pub const GOING_AWAY: u16 = 1001;
    /// A frame was larger than the limit.
    pub const TOO_BIG: u16 = 1009;
    /// The session ended (logged out or expired, on any process); reconnect
    /// to continue as whoever the browser is now.
    pub const SESSION_ENDED: u16 = 4001;
    /// The browser read too slowly: its outgoing queue filled up.
    pub const TOO_SLOW: u16 = 4008;
    /// The browser sent frames too fast, after being told (or opened more
    /// connections than its user or address may hold).
    pub const RATE_LIMITED: u16 = 4029;
    /// The server holds as many connections as it takes; try again later
    /// (RFC 6455's "try again later").
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_frame_is_valid_json_with_the_name_and_data() {
        let frame = event_frame("Said\"Hi", r#"{"text":"hello"}"#);
        let parsed = ServerFrame::parse(&frame).unwrap();
        match parsed {
            ServerFrame::Event { name, data } => {
                assert_eq!(name, "Said\"Hi");
                assert_eq!(data.get(), r#"{"text":"hello"}"#);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_welcome_reads_back_with_or_without_a_user() {
        let id = ConnectionId(42);
        for user in [Some(UserId(7)), None] {
            let json = serde_json::to_string(&ControlFrame::Welcome {
                connection: id,
                user,
            })
            .unwrap();
            match ServerFrame::parse(&json).unwrap() {
                ServerFrame::Welcome {
                    connection,
                    user: u,
                } => {
                    assert_eq!((connection, u), (id, user));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn unknown_or_incomplete_frames_are_errors() {
        assert!(ServerFrame::parse(r#"{"type":"bogus"}"#).is_err());
        assert!(ServerFrame::parse(r#"{"type":"joined"}"#).is_err());
        assert!(ServerFrame::parse("[1,2]").is_err());
    }

    #[test]
    fn client_frames_have_a_type_tag() {
        let join = ClientFrame::Join {
            room: "chat:1".into(),
        };
        let json = serde_json::to_string(&join).unwrap();
        assert_eq!(json, r#"{"type":"join","room":"chat:1"}"#);
        assert_eq!(serde_json::from_str::<ClientFrame>(&json).unwrap(), join);
    }

    #[test]
    fn control_frames_read_back_as_server_frames() {
        let room = RoomName::from("chat:1");
        let json = serde_json::to_string(&ControlFrame::Refused {
            room: &room,
            reason: "members only",
        })
        .unwrap();
        match ServerFrame::parse(&json).unwrap() {
            ServerFrame::Refused { room: r, reason } => {
                assert_eq!(r, room);
                assert_eq!(reason, "members only");
            }
            other => panic!("{other:?}"),
        }
    }
}
