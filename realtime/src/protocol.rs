//! The wire protocol: JSON text frames over one WebSocket per tab.
//!
//! `docs/protocol.md` describes every frame, field, close code and limit;
//! keep the two in step. Unknown fields are ignored by both sides, so a
//! field can be added without breaking older peers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{
    ConnectionId, RoomName, UserId,
    stream::{Discontinuity, Epoch, EventId, Position, Recorded, Stream, TabId},
};

/// Path of the WebSocket endpoint.
pub const PATH: &str = "/ws";

/// The longest room name a browser may send, in bytes. Longer ones are
/// answered with an `error` that does not repeat them: nothing a browser
/// sends is kept or echoed at more than this size (the rooms a connection
/// is in, a `refused` answer), so what a connection that stops reading
/// can make the server hold for it alone stays small.
pub const MAX_ROOM_NAME_BYTES: usize = 256;

/// What the server's `error`, and the browser's refusal, say of a room
/// name longer than [`MAX_ROOM_NAME_BYTES`].
pub fn room_name_too_long() -> String {
    format!("Room names are at most {MAX_ROOM_NAME_BYTES} bytes.")
}

/// Request header on server-function calls naming the calling tab's
/// connection, set by [`crate::RealtimeClient`] on every call: the
/// connection's id, or [`NO_CONNECTION`] while the tab has none open. A call
/// without it did not come through `RealtimeClient`, and the server cannot
/// tell which tab made it.
pub const CONNECTION_HEADER: &str = "x-realtime-connection";

/// The [`CONNECTION_HEADER`] of a call from a tab without an open
/// connection.
pub const NO_CONNECTION: &str = "none";

/// Request header on server-function calls naming the calling tab, set by
/// [`crate::RealtimeClient`]: the tab's id (16 hexadecimal digits), the
/// same it gives on its upgrade (`tab=` in [`Resume`]). "Everyone but the
/// caller" leaves out this tab, on every process and in its replays; "to
/// the caller" reaches it. A tab id is random and told to no other
/// browser; the server also binds it to the call's session, so a call
/// naming another session's tab names none.
pub const TAB_HEADER: &str = "x-realtime-tab";

/// What a tab asks for when it (re)connects, in the query of its upgrade
/// request: its [`TabId`], and how far it has read the streams that every
/// connection of it reads, everyone's and its user's (a room's position
/// goes with its `join`):
/// `/ws?tab=<hex>&since=everyone@<epoch>.<offset>&since=user:7@<epoch>.<offset>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resume {
    pub tab: Option<TabId>,
    pub since: Vec<(Stream, Position)>,
}

impl Resume {
    /// Most positions read from one query: everyone's and the user's.
    pub const MAX_POSITIONS: usize = 2;

    /// The query string, without its `?`.
    pub fn to_query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(tab) = self.tab {
            parts.push(format!("tab={tab}"));
        }
        for (stream, position) in &self.since {
            parts.push(format!(
                "since={stream}@{}.{}",
                position.epoch, position.offset
            ));
        }
        parts.join("&")
    }

    /// Reads a query string. What cannot be read is left out: a tab that
    /// sends nonsense recovers nothing, and is served all the same. Room
    /// streams are left out too (they are recovered on `join`).
    pub fn from_query(query: &str) -> Self {
        let mut resume = Self::default();
        for (key, value) in query.split('&').filter_map(|pair| pair.split_once('=')) {
            match key {
                "tab" => resume.tab = value.parse().ok(),
                "since" if resume.since.len() < Self::MAX_POSITIONS => {
                    if let Some(since) = parse_since(value)
                        && !resume.since.iter().any(|(stream, _)| *stream == since.0)
                    {
                        resume.since.push(since);
                    }
                }
                _ => {}
            }
        }
        resume
    }
}

/// `everyone@<epoch>.<offset>` or `user:7@<epoch>.<offset>`.
fn parse_since(text: &str) -> Option<(Stream, Position)> {
    let (stream, position) = text.rsplit_once('@')?;
    let stream: Stream = stream.parse().ok()?;
    if matches!(stream, Stream::Room(_)) {
        return None;
    }
    let (epoch, offset) = position.split_once('.')?;
    let position = Position {
        epoch: epoch.parse().ok()?,
        offset: offset.parse().ok()?,
    };
    Some((stream, position))
}

/// What the browser sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Asks to join a room. Answered by `joined` or `refused`. With
    /// `since`, the room's stream position the tab has seen up to: the
    /// durable events that followed come first (or a `discontinuity`),
    /// then `joined`.
    Join {
        room: RoomName,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<Position>,
    },
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
        /// Where everyone's stream and the user's stand, after what was
        /// replayed: what to recover from next time (empty when the server
        /// records nothing).
        positions: BTreeMap<Stream, Position>,
    },
    /// An event; a durable one says where it was recorded.
    Event {
        name: String,
        data: Box<RawValue>,
        recorded: Option<Recorded>,
    },
    /// The connection is now in the room, whose stream stands at
    /// `position` (when the server records).
    Joined {
        room: RoomName,
        position: Option<Position>,
    },
    /// The connection may not join the room.
    Refused { room: RoomName, reason: String },
    /// The connection is no longer in the room (it asked, or the server
    /// removed it).
    Left { room: RoomName },
    /// A frame from the browser could not be used.
    Error { code: ErrorCode, message: String },
    /// The events of a stream after the position the tab asked from cannot
    /// be replayed: what depends on the stream must be fetched again. The
    /// stream goes on from `position`.
    Discontinuity {
        stream: Stream,
        reason: Discontinuity,
        position: Position,
    },
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
            // `null` is data too (a unit struct's): present, it is kept.
            #[serde(borrow, default, deserialize_with = "present")]
            data: Option<&'a RawValue>,
            name: Option<String>,
            connection: Option<ConnectionId>,
            #[serde(default)]
            user: Option<UserId>,
            room: Option<RoomName>,
            reason: Option<String>,
            code: Option<ErrorCode>,
            message: Option<String>,
            id: Option<EventId>,
            stream: Option<Stream>,
            epoch: Option<Epoch>,
            offset: Option<u64>,
            position: Option<Position>,
            #[serde(default)]
            positions: BTreeMap<Stream, Position>,
            #[serde(default)]
            also: Vec<Also>,
        }

        /// One of an event's positions in more streams.
        #[derive(Deserialize)]
        struct Also {
            stream: Stream,
            epoch: Epoch,
            offset: u64,
        }

        fn present<'de, D: serde::Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<&'de RawValue>, D::Error> {
            <&RawValue>::deserialize(deserializer).map(Some)
        }

        fn required<T>(field: Option<T>, name: &'static str) -> Result<T, serde_json::Error> {
            field.ok_or_else(|| serde_json::Error::missing_field(name))
        }

        let fields: Fields<'_> = serde_json::from_str(text)?;
        Ok(match fields.kind.as_str() {
            "welcome" => Self::Welcome {
                connection: required(fields.connection, "connection")?,
                user: fields.user,
                positions: fields.positions,
            },
            "event" => Self::Event {
                name: required(fields.name, "name")?,
                data: required(fields.data, "data")?.to_owned(),
                recorded: match (fields.id, fields.stream, fields.epoch, fields.offset) {
                    (Some(id), Some(stream), Some(epoch), Some(offset)) => Some(Recorded {
                        id,
                        stream,
                        position: Position { epoch, offset },
                        also: fields
                            .also
                            .into_iter()
                            .map(|also| {
                                let position = Position {
                                    epoch: also.epoch,
                                    offset: also.offset,
                                };
                                (also.stream, position)
                            })
                            .collect(),
                    }),
                    (None, None, None, None) => None,
                    _ => {
                        return Err(serde_json::Error::missing_field(
                            "id, stream, epoch, offset",
                        ));
                    }
                },
            },
            "joined" => Self::Joined {
                room: required(fields.room, "room")?,
                position: fields.position,
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
            "discontinuity" => Self::Discontinuity {
                stream: required(fields.stream, "stream")?,
                reason: serde_json::from_value(serde_json::Value::String(required(
                    fields.reason,
                    "reason",
                )?))?,
                position: required(fields.position, "position")?,
            },
            other => {
                return Err(serde_json::Error::unknown_variant(
                    other,
                    &[
                        "welcome",
                        "event",
                        "joined",
                        "refused",
                        "left",
                        "error",
                        "discontinuity",
                    ],
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
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        positions: BTreeMap<Stream, Position>,
    },
    Joined {
        room: &'a RoomName,
        #[serde(skip_serializing_if = "Option::is_none")]
        position: Option<Position>,
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
    Discontinuity {
        stream: &'a Stream,
        reason: Discontinuity,
        position: Position,
    },
}

impl ControlFrame<'_> {
    /// The frame as JSON, ready to send. Cannot fail: every field is a
    /// string, a number, or a map whose keys are written as strings.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .expect("control frames hold strings, numbers and string-keyed maps only")
    }
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

/// Encodes the frame of a durable event: [`event_frame`] with where the
/// event was recorded, `"id"`, `"stream"`, `"epoch"` and `"offset"`.
pub fn recorded_event_frame(name: &str, data_json: &str, recorded: &Recorded) -> String {
    with_position(event_frame(name, data_json), recorded)
}

/// Adds where a durable event was recorded to its [`event_frame`]: its id,
/// its stream, epoch and offset, and (`also`) its positions in more streams.
pub fn with_position(mut frame: String, recorded: &Recorded) -> String {
    frame.pop(); // the closing brace
    frame.push_str(&format!(r#","id":"{}","#, recorded.id));
    push_position(&mut frame, &recorded.stream, recorded.position);
    push_also(&mut frame, &recorded.also);
    frame.push('}');
    frame
}

/// Adds a durable event's id and positions to its [`event_frame`]: the
/// first stream's as `stream`, `epoch` and `offset`, the others' in `also`.
pub fn with_positions(frame: &str, id: EventId, positions: &[(Stream, Position)]) -> String {
    let Some(((stream, position), others)) = positions.split_first() else {
        return frame.to_owned();
    };
    let recorded = Recorded {
        id,
        stream: stream.clone(),
        position: *position,
        also: others.to_vec(),
    };
    with_position(frame.to_owned(), &recorded)
}

/// Adds `also`, a durable event's positions in more streams, to its frame
/// (which has its first position already). Nothing for none.
pub fn with_also<'a>(
    mut frame: String,
    also: impl IntoIterator<Item = &'a (Stream, Position)>,
) -> String {
    let also: Vec<&(Stream, Position)> = also.into_iter().collect();
    if also.is_empty() {
        return frame;
    }
    frame.pop(); // the closing brace
    push_also(&mut frame, also);
    frame.push('}');
    frame
}

/// `,"also":[{"stream":…,"epoch":…,"offset":…},…]`, unless there is none.
fn push_also<'a>(frame: &mut String, also: impl IntoIterator<Item = &'a (Stream, Position)>) {
    let mut also = also.into_iter().peekable();
    if also.peek().is_none() {
        return;
    }
    frame.push_str(r#","also":["#);
    for (index, (stream, position)) in also.enumerate() {
        if index > 0 {
            frame.push(',');
        }
        frame.push('{');
        push_position(frame, stream, *position);
        frame.push('}');
    }
    frame.push(']');
}

/// `"stream":"…","epoch":"…","offset":N`, appended to `frame`.
fn push_position(frame: &mut String, stream: &Stream, position: Position) {
    // A stream's written name quoted by serde, which escapes what needs it.
    let stream = serde_json::to_string(stream).unwrap_or_else(|_| "\"\"".to_owned());
    frame.push_str(&format!(
        r#""stream":{stream},"epoch":"{}","offset":{}"#,
        position.epoch, position.offset
    ));
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
            ServerFrame::Event {
                name,
                data,
                recorded: None,
            } => {
                assert_eq!(name, "Said\"Hi");
                assert_eq!(data.get(), r#"{"text":"hello"}"#);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_event_whose_data_is_null_reads_back() {
        match ServerFrame::parse(&event_frame("Tick", "null")).unwrap() {
            ServerFrame::Event { data, .. } => assert_eq!(data.get(), "null"),
            other => panic!("{other:?}"),
        }
        assert!(ServerFrame::parse(r#"{"type":"event","name":"Tick"}"#).is_err());
    }

    #[test]
    fn a_recorded_event_frame_says_where_it_was_recorded() {
        let recorded = Recorded {
            id: EventId(1),
            stream: Stream::Room("chat:\"7".into()),
            position: Position {
                epoch: Epoch(0xfeed),
                offset: 12,
            },
            also: vec![(
                Stream::User(UserId(3)),
                Position {
                    epoch: Epoch(0xbeef),
                    offset: 4,
                },
            )],
        };
        let frame = recorded_event_frame("Said", r#"{"text":"hello"}"#, &recorded);
        assert!(
            serde_json::from_str::<serde_json::Value>(&frame).is_ok(),
            "{frame}"
        );
        match ServerFrame::parse(&frame).unwrap() {
            ServerFrame::Event {
                name,
                data,
                recorded: Some(back),
            } => {
                assert_eq!(name, "Said");
                assert_eq!(data.get(), r#"{"text":"hello"}"#);
                assert_eq!(back, recorded);
            }
            other => panic!("{other:?}"),
        }
        // Half a record is not one.
        let torn = frame.replace(r#","offset":12"#, "");
        assert!(ServerFrame::parse(&torn).is_err());
    }

    #[test]
    fn a_resume_query_reads_back_and_nonsense_is_left_out() {
        let position = Position {
            epoch: Epoch(0xab),
            offset: 7,
        };
        let resume = Resume {
            tab: Some(TabId(5)),
            since: vec![
                (Stream::Everyone, position),
                (Stream::User(UserId(3)), position),
            ],
        };
        let query = resume.to_query();
        assert_eq!(
            query,
            "tab=0000000000000005&since=everyone@00000000000000ab.7&since=user:3@00000000000000ab.7"
        );
        assert_eq!(Resume::from_query(&query), resume);
        assert_eq!(Resume::from_query(""), Resume::default());
        let nonsense = "tab=zz&since=room:chat:1@ab.1&since=everyone@ab&since=user:x@ab.1&other=1";
        assert_eq!(Resume::from_query(nonsense), Resume::default());
        let many = format!("{query}&since=everyone@ab.9");
        assert_eq!(Resume::from_query(&many).since.len(), Resume::MAX_POSITIONS);
        // A stream named twice counts once, the first time.
        let twice = "since=everyone@ab.1&since=everyone@ab.2";
        assert_eq!(
            Resume::from_query(twice).since,
            [(
                Stream::Everyone,
                Position {
                    epoch: Epoch(0xab),
                    offset: 1
                }
            )]
        );
    }

    #[test]
    fn a_discontinuity_reads_back() {
        let stream = Stream::User(UserId(3));
        let position = Position {
            epoch: Epoch(9),
            offset: 0,
        };
        let json = serde_json::to_string(&ControlFrame::Discontinuity {
            stream: &stream,
            reason: Discontinuity::TooOld,
            position,
        })
        .unwrap();
        match ServerFrame::parse(&json).unwrap() {
            ServerFrame::Discontinuity {
                stream: s,
                reason,
                position: p,
            } => assert_eq!((s, reason, p), (stream, Discontinuity::TooOld, position)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_welcome_reads_back_with_or_without_a_user() {
        let id = ConnectionId(42);
        let position = Position {
            epoch: Epoch(1),
            offset: 2,
        };
        for (user, positions) in [
            (
                Some(UserId(7)),
                BTreeMap::from([(Stream::Everyone, position)]),
            ),
            (None, BTreeMap::new()),
        ] {
            let json = serde_json::to_string(&ControlFrame::Welcome {
                connection: id,
                user,
                positions: positions.clone(),
            })
            .unwrap();
            match ServerFrame::parse(&json).unwrap() {
                ServerFrame::Welcome {
                    connection,
                    user: u,
                    positions: p,
                } => {
                    assert_eq!((connection, u, p), (id, user, positions));
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
            since: None,
        };
        let json = serde_json::to_string(&join).unwrap();
        assert_eq!(json, r#"{"type":"join","room":"chat:1"}"#);
        assert_eq!(serde_json::from_str::<ClientFrame>(&json).unwrap(), join);
        let from = ClientFrame::Join {
            room: "chat:1".into(),
            since: Some(Position {
                epoch: Epoch(1),
                offset: 5,
            }),
        };
        let json = serde_json::to_string(&from).unwrap();
        assert_eq!(
            json,
            r#"{"type":"join","room":"chat:1","since":{"epoch":"0000000000000001","offset":5}}"#
        );
        assert_eq!(serde_json::from_str::<ClientFrame>(&json).unwrap(), from);
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
