//! The history of durable events in Redis, shared by every process.
//!
//! Each stream has two keys, named after its shard's hash tag and the
//! stream (`{realtime.v2:3}:everyone:meta`, `{realtime.v2:11}:room:chat:7:log`,
//! see `shards.rs`): a hash with its epoch and last offset, and a Redis
//! Stream of its events whose entry ids are their offsets (`7-0`). Never
//! one stream for all: a recovery reads one stream's events only.
//!
//! Three Lua scripts (`scripts/*.lua`) do all the writing and reading,
//! each in one atomic step, each touching the keys and channel of one shard:
//! - `APPEND` gives the event the next offset in each of its streams of
//!   that shard, appends it (trimmed to the history's length, the keys
//!   expiring after its age; an event of several streams keeps its
//!   positions in all of them), and publishes it on the shard's channel
//!   with its positions. Scripts run one at a time, so a shard's channel
//!   carries each of its streams' events in offset order, and every
//!   process delivers them in that order. An event for streams of several
//!   shards is placed in each shard apart, with the same id: there is no
//!   order between shards, and a tab that reads streams of two of them
//!   knows the second copy by its id.
//! - `READ` gives where a stream stands and the events after a position
//!   (at most one recovery's worth), and whether the stream went back
//!   behind that position: its offset is past the stream's last, or the
//!   event there is not the one the reader saw (Redis restarted from an
//!   older snapshot, and gave the offsets again).
//! - `RESET` starts a stream again in a new epoch, and says so on its
//!   shard's channel.
//!
//! Each begins with `SOUND`, which tells keys that the scripts did not
//! write (another type, fields in another shape): they are taken for a
//! stream without a history, so that they can neither fail a pipeline, and
//! with it cut the process off, nor give envelopes nobody can read.
//!
//! A stream without a hash (never written, or expired) starts a new epoch
//! when it is next written, its hash noting when (`born`); reading it
//! writes nothing, so a script asking for made-up names leaves no keys
//! behind. Its reader is told the stream's *unwritten* epoch of that moment
//! ([`Epoch::unwritten_at`]), and recovers from there: the whole of an
//! epoch born since, or nothing while the stream stays unwritten, provided
//! it asks within the keys' lifetime (an epoch born and expired in between
//! cannot be ruled out after that, and the tab is told it may have missed
//! events). A tab with a position in an epoch that is gone is told its
//! epoch changed. A Redis that comes back older than it was (a snapshot, a
//! replica promoted after a failover) gives offsets again in the same
//! epoch: each process tells it when it catches up (`READ` above) or when
//! an offset comes again with another event, and has the stream reset in
//! a new epoch, so its readers everywhere fetch again.

use std::sync::Arc;

use parking_lot::Mutex;
use redis::Value;
use serde::Deserialize;

use super::{
    super::{Durable, Fetched, NodeId, ReadError, StoredEvent},
    envelope::{Envelope, Message},
    scripts::Scripts,
    servers::{Batch, Commands, Slot},
    shards::Shards,
};
use crate::{
    protocol::ServerFrame,
    server::{Target, config::HistoryLimits, registry::Kept},
    stream::{Discontinuity, Epoch, EventId, Position, Stream},
};

/// The history in Redis, as one process uses it.
pub(super) struct RedisHistory {
    shards: Shards,
    limits: HistoryLimits,
    /// The largest event frame this process sends (and replays).
    max_event_bytes: usize,
    /// The connection and loaded scripts, while Redis is connected.
    connected: Mutex<Option<(Commands, Scripts)>>,
}

impl RedisHistory {
    pub fn new(shards: Shards, limits: HistoryLimits, max_event_bytes: usize) -> Self {
        Self {
            shards,
            limits,
            max_event_bytes,
            connected: Mutex::new(None),
        }
    }

    /// Redis is connected (`Some`) or lost (`None`).
    pub fn set_connected(&self, connected: Option<(Commands, Scripts)>) {
        *self.connected.lock() = connected;
    }

    fn keys(&self, stream: &Stream) -> [String; 2] {
        self.shards.keys(stream)
    }

    /// How long a stream's keys live unwritten: the history's age (at most
    /// a year: Redis refuses larger expiries, and a script that fails
    /// halfway has appended without publishing).
    fn ttl_millis(&self) -> u64 {
        const YEAR_MILLIS: u64 = 365 * 24 * 3600 * 1000;
        u64::try_from(self.limits.max_age.as_millis())
            .map_or(YEAR_MILLIS, |ttl| ttl.clamp(1, YEAR_MILLIS))
    }

    /// Adds to `batch` the commands that place `record` and publish it,
    /// sent by `node`: one per shard of its streams, each touching that
    /// shard's keys and channel only. The connections and tabs the emit
    /// names go with the first (the others would deliver to them again).
    pub fn append(&self, scripts: &Scripts, node: NodeId, record: &Durable, batch: &mut Batch) {
        let mut groups: Vec<(u16, Vec<&Stream>)> = Vec::new();
        for stream in &record.streams {
            let shard = self.shards.of(stream);
            match groups.iter_mut().find(|(of, _)| *of == shard) {
                Some((_, streams)) => streams.push(stream),
                None => groups.push((shard, vec![stream])),
            }
        }
        for (index, (shard, streams)) in groups.into_iter().enumerate() {
            let mut target = record.target.clone();
            if index > 0 {
                target.connections.clear();
                target.tabs.clear();
            }
            let append = self.append_in_shard(scripts, node, record, &target, shard, &streams);
            batch.push(Slot::Shard(shard), append);
        }
    }

    /// Where the commands about `stream` run: its shard's slot.
    pub fn slot_of(&self, stream: &Stream) -> Slot {
        Slot::Shard(self.shards.of(stream))
    }

    /// The command that places `record` in `streams`, all of `shard`.
    fn append_in_shard(
        &self,
        scripts: &Scripts,
        node: NodeId,
        record: &Durable,
        target: &Target,
        shard: u16,
        streams: &[&Stream],
    ) -> redis::Cmd {
        let message = Message::Recorded {
            target: target.clone(),
            id: record.id,
            except_tab: record.except_tab,
            streams: streams.iter().map(|stream| (*stream).clone()).collect(),
            positions: Vec::new(),
        };
        let (header_start, header_end) = header_around_positions(node, &message);
        let mut command = redis::cmd("EVALSHA");
        command.arg(&scripts.append).arg(streams.len() * 2);
        for stream in streams {
            command.arg(self.keys(stream).as_slice());
        }
        command
            .arg(self.shards.channel_of(shard))
            .arg(self.limits.per_stream.max(1))
            .arg(self.ttl_millis())
            .arg(header_start)
            .arg(header_end)
            .arg(&record.frame)
            .arg(record.id.to_string())
            .arg(
                record
                    .except_tab
                    .map(|tab| tab.to_string())
                    .unwrap_or_default(),
            );
        for _ in streams {
            command.arg(Epoch::random().to_string());
        }
        for stream in streams {
            command.arg(serde_json::to_string(stream).unwrap_or_default());
        }
        command
    }

    /// The command that resets `stream` in a new epoch and says so (only
    /// if it still has the epoch `only_in`, when given).
    pub fn reset(
        &self,
        scripts: &Scripts,
        node: NodeId,
        (stream, only_in): &(Stream, Option<Epoch>),
    ) -> redis::Cmd {
        let position = Position {
            epoch: Epoch::random(),
            offset: 0,
        };
        let message = Message::Reset {
            stream: stream.clone(),
            position,
        };
        let mut command = redis::cmd("EVALSHA");
        command
            .arg(&scripts.reset)
            .arg(2)
            .arg(self.keys(stream).as_slice())
            .arg(position.epoch.to_string())
            .arg(self.ttl_millis())
            .arg(self.shards.channel_of(self.shards.of(stream)))
            .arg(Envelope::encode(node, &message).as_ref())
            .arg(only_in.map(|epoch| epoch.to_string()).unwrap_or_default());
        command
    }

    /// The command that reads `stream` after `since`, where the reader saw
    /// the event `since_id` (if it knows).
    pub fn read_command(
        &self,
        scripts: &Scripts,
        stream: &Stream,
        since: Option<Position>,
        since_id: Option<EventId>,
    ) -> redis::Cmd {
        let (epoch, offset) = since.map_or((String::new(), -1), |since| {
            (
                since.epoch.to_string(),
                i64::try_from(since.offset).unwrap_or(i64::MAX),
            )
        });
        let unwritten_since = since
            .filter(|since| since.offset == 0)
            .and_then(|since| since.epoch.unwritten_since())
            .map(|millis| millis.to_string())
            .unwrap_or_default();
        let mut command = redis::cmd("EVALSHA");
        command
            .arg(&scripts.read)
            .arg(2)
            .arg(self.keys(stream).as_slice())
            .arg(epoch)
            .arg(offset)
            .arg(self.limits.max_replay)
            .arg(unwritten_since)
            .arg(self.ttl_millis())
            .arg(since_id.map(|id| id.to_string()).unwrap_or_default());
        command
    }

    /// Reads `stream` after `since`, while Redis is connected.
    pub async fn read(
        &self,
        stream: &Stream,
        since: Option<Position>,
        since_id: Option<EventId>,
    ) -> Result<Fetched, ReadError> {
        let connected = self.connected.lock().clone();
        let (commands, scripts) =
            connected.ok_or_else(|| ReadError("Redis is not connected".to_owned()))?;
        let reply = commands
            .query_one(self.read_command(&scripts, stream, since, since_id))
            .await
            .map_err(|error| ReadError(error.to_string()))?;
        self.parse_read(stream, since, reply)
    }

    /// Makes sense of what `READ` answered for `stream` after `since`.
    pub fn parse_read(
        &self,
        stream: &Stream,
        since: Option<Position>,
        reply: Value,
    ) -> Result<Fetched, ReadError> {
        let reply = ReadReply::parse(reply)
            .ok_or_else(|| ReadError("Redis answered a history read unexpectedly".to_owned()))?;
        let position = Position {
            epoch: reply
                .epoch
                .unwrap_or_else(|| Epoch::unwritten_at(reply.now_millis)),
            offset: reply.last,
        };
        let Some(since) = since else {
            return Ok(Fetched {
                position,
                events: Ok(Vec::new()),
                went_back: false,
                last_id: reply.last_id,
            });
        };
        if let Some(seen_unwritten) = since.epoch.unwritten_since().filter(|_| since.offset == 0) {
            return Ok(self.after_unwritten(stream, seen_unwritten, position, &reply));
        }
        let events = if reply.went_back {
            Err(Discontinuity::EpochChanged)
        } else {
            self.events_after(stream, since, position, &reply)
        };
        Ok(Fetched {
            position,
            events,
            went_back: reply.went_back,
            last_id: reply.last_id,
        })
    }

    /// What a reader that saw `stream` unwritten at `seen_unwritten`
    /// missed: nothing while it stays unwritten, the whole of an epoch born
    /// since, if it asks within the keys' lifetime.
    fn after_unwritten(
        &self,
        stream: &Stream,
        seen_unwritten: u64,
        position: Position,
        reply: &ReadReply,
    ) -> Fetched {
        let fetched = |position, events| Fetched {
            position,
            events,
            went_back: false,
            last_id: reply.last_id,
        };
        if seen_unwritten > reply.now_millis {
            // Not a time this history gave: not its epoch.
            return fetched(position, Err(Discontinuity::EpochChanged));
        }
        if reply.now_millis - seen_unwritten >= self.ttl_millis() {
            // An epoch may have been born and expired meanwhile.
            return fetched(position, Err(Discontinuity::TooOld));
        }
        match reply.epoch {
            // Still unwritten: nothing missed, and the reader now saw it
            // unwritten at this read.
            None => fetched(position, Ok(Vec::new())),
            Some(epoch) if reply.from_start => {
                let start = Position { epoch, offset: 0 };
                fetched(position, self.events_after(stream, start, position, reply))
            }
            // Born before the reader saw it unwritten (it cannot have
            // been), or reset since: its history is not the reader's.
            Some(_) => fetched(position, Err(Discontinuity::EpochChanged)),
        }
    }

    fn events_after(
        &self,
        stream: &Stream,
        since: Position,
        position: Position,
        reply: &ReadReply,
    ) -> Result<Vec<Kept>, Discontinuity> {
        if since.epoch != position.epoch || since.offset > position.offset {
            return Err(Discontinuity::EpochChanged);
        }
        let missed = position.offset - since.offset;
        if missed == 0 {
            return Ok(Vec::new());
        }
        if missed > self.limits.max_replay as u64 {
            return Err(Discontinuity::TooMany);
        }
        let oldest_kept = reply.now_millis.saturating_sub(self.ttl_millis());
        let complete = reply.entries.len() as u64 == missed
            && reply
                .entries
                .first()
                .is_some_and(|first| first.at_millis >= oldest_kept);
        if !complete {
            return Err(Discontinuity::TooOld);
        }
        // Read back as the channel's messages are taken (`receive.rs`):
        // every offset in turn, each an event frame no larger than this
        // process sends. Anything else was not written by a process:
        // the reader is told it may have missed events, not handed it.
        let sound = reply
            .entries
            .iter()
            .zip(since.offset + 1..)
            .all(|(entry, offset)| entry.event.offset == offset && self.replays(&entry.event));
        if !sound {
            tracing::warn!(%stream, "a log in Redis holds entries no process wrote: not replayed");
            return Err(Discontinuity::TooOld);
        }
        Ok(reply
            .entries
            .iter()
            .map(|entry| entry.event.replayed(stream, position.epoch))
            .collect())
    }
}

impl RedisHistory {
    /// Whether an event read back from a log may be replayed: an event
    /// frame no larger than this process sends.
    fn replays(&self, event: &StoredEvent) -> bool {
        event.frame.len() <= self.max_event_bytes
            && matches!(
                ServerFrame::parse(&event.frame),
                Ok(ServerFrame::Event { .. })
            )
    }
}

/// The envelope's header of a `recorded` message (without positions),
/// split where Redis writes the positions: `…"positions":[` and `]}}`
/// with the newline that ends it.
fn header_around_positions(node: NodeId, message: &Message) -> (String, String) {
    let header = Envelope::encode(node, message);
    let header = String::from_utf8_lossy(&header);
    // `positions` is the message's last field: the header ends `[]}}\n`.
    let split = header.rfind("[]").map_or(header.len(), |at| at + 1);
    (header[..split].to_owned(), header[split..].to_owned())
}

/// One event of a stream's log.
struct Entry {
    event: StoredEvent,
    /// When it was appended, by Redis's clock.
    at_millis: u64,
}

/// What `READ` answers.
struct ReadReply {
    /// `None` for a stream without a history.
    epoch: Option<Epoch>,
    last: u64,
    entries: Vec<Entry>,
    now_millis: u64,
    went_back: bool,
    /// The id of the event at `last`, if kept.
    last_id: Option<EventId>,
    /// Whether `entries` start at the epoch's first event (see `READ`).
    from_start: bool,
}

impl ReadReply {
    fn parse(reply: Value) -> Option<Self> {
        let Value::Array(parts) = reply else {
            return None;
        };
        let [epoch, last, entries, now, went_back, last_id, from_start] =
            <[Value; 7]>::try_from(parts).ok()?;
        let Value::Array(entries) = entries else {
            return None;
        };
        let epoch = text(&epoch)?;
        Some(Self {
            epoch: if epoch.is_empty() {
                None
            } else {
                Some(epoch.parse().ok()?)
            },
            last: integer(&last)?,
            entries: entries.iter().map(Entry::parse).collect::<Option<_>>()?,
            now_millis: integer(&now)?,
            went_back: integer(&went_back)? == 1,
            last_id: text(&last_id)?.parse().ok(),
            from_start: integer(&from_start)? == 1,
        })
    }
}

impl Entry {
    /// `[id, [field, value, …]]`, as `XRANGE` gives it.
    fn parse(entry: &Value) -> Option<Self> {
        let Value::Array(parts) = entry else {
            return None;
        };
        let [id, Value::Array(fields)] = parts.as_slice() else {
            return None;
        };
        let offset = text(id)?.strip_suffix("-0")?.parse().ok()?;
        let field = |name: &str| {
            fields
                .chunks_exact(2)
                .find(|pair| text(&pair[0]).is_some_and(|key| key == name))
                .and_then(|pair| text(&pair[1]))
        };
        let except = field("except")?;
        // Absent in entries written before it was (and when only one stream).
        let all = field("all").unwrap_or_default();
        let event = StoredEvent {
            offset,
            id: field("id")?.parse().ok()?,
            except: if except.is_empty() {
                None
            } else {
                Some(except.parse().ok()?)
            },
            frame: field("frame")?,
            all: if all.is_empty() {
                Arc::from([])
            } else {
                parse_all(&all)?.into()
            },
        };
        Some(Self {
            event,
            at_millis: field("at")?.parse().ok()?,
        })
    }
}

/// `[["room:chat:7","<epoch>",12],…]`, as `APPEND` writes it.
fn parse_all(text: &str) -> Option<Vec<(Stream, Position)>> {
    #[derive(Deserialize)]
    struct One(Stream, Epoch, u64);
    let all: Vec<One> = serde_json::from_str(text).ok()?;
    Some(
        all.into_iter()
            .map(|One(stream, epoch, offset)| (stream, Position { epoch, offset }))
            .collect(),
    )
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        Value::Int(number) => Some(number.to_string()),
        _ => None,
    }
}

fn integer(value: &Value) -> Option<u64> {
    match value {
        Value::Int(number) => u64::try_from(*number).ok(),
        other => text(other)?.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const EPOCH: &str = "0123456789abcdef";
    const NOW: i64 = 1_000_000;

    fn history() -> RedisHistory {
        let limits = HistoryLimits {
            per_stream: 100,
            max_age: Duration::from_secs(60),
            max_bytes: usize::MAX,
            max_streams: 100,
            max_replay: 100,
        };
        RedisHistory::new(Shards::new("test", 16), limits, 64)
    }

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    /// A log entry as `XRANGE` gives it.
    fn entry(offset: u64, frame: &str) -> Value {
        let id = format!("{offset:016x}");
        let at = NOW.to_string();
        let fields = ["frame", frame, "id", &id, "except", "", "at", &at];
        Value::Array(vec![
            bulk(&format!("{offset}-0")),
            Value::Array(fields.iter().map(|field| bulk(field)).collect()),
        ])
    }

    /// What `READ` answers for a stream at offset `last`, with `entries`.
    fn read_after_one(entries: Vec<Value>, last: i64) -> Result<Vec<Kept>, Discontinuity> {
        let reply = Value::Array(vec![
            bulk(EPOCH),
            Value::Int(last),
            Value::Array(entries),
            Value::Int(NOW),
            Value::Int(0),
            bulk(""),
            Value::Int(0),
        ]);
        let since = Position {
            epoch: EPOCH.parse().unwrap(),
            offset: 1,
        };
        let stream = Stream::Room("team:red".into());
        history()
            .parse_read(&stream, Some(since), reply)
            .expect("a reply in the script's shape")
            .events
    }

    const EVENT: &str = r#"{"type":"event","name":"Note","data":{}}"#;

    #[test]
    fn a_log_is_replayed_only_if_every_entry_is_the_next_event_frame() {
        let replayed = read_after_one(vec![entry(2, EVENT), entry(3, EVENT)], 3).unwrap();
        assert_eq!(replayed.len(), 2);
        // A hole, an offset twice, a control frame, a frame too large.
        let large = format!(
            r#"{{"type":"event","name":"Note","data":"{}"}}"#,
            "x".repeat(64)
        );
        for entries in [
            vec![entry(2, EVENT), entry(4, EVENT)],
            vec![entry(2, EVENT), entry(2, EVENT)],
            vec![
                entry(2, EVENT),
                entry(3, r#"{"type":"left","room":"team:red"}"#),
            ],
            vec![entry(2, &large), entry(3, EVENT)],
        ] {
            assert_eq!(
                read_after_one(entries, 3).unwrap_err(),
                Discontinuity::TooOld
            );
        }
    }
}
