//! The hub's limits and settings, with their defaults.

use std::time::Duration;

use super::Origins;

/// Limits and settings of a hub. The defaults suit a typical application;
/// `docs/protocol.md` explains each limit and what exceeding it does.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Largest frame (and message) a browser may send, in bytes. Larger
    /// ones close the connection with code 1009.
    pub max_frame_bytes: usize,
    /// Largest event frame the server sends, in bytes. An emit over it is
    /// an [`EmitError::TooLarge`], sent to nobody.
    pub max_event_bytes: usize,
    /// How many rooms one connection may be in at once.
    pub max_rooms_per_connection: usize,
    /// How many frames may wait in one connection's outgoing queue. A
    /// connection whose queue is full is closed with code 4008.
    pub queue_capacity: usize,
    /// Size of each connection's read buffer (tungstenite's default is
    /// 128 KiB, which is most of the memory of an idle connection).
    pub read_buffer_bytes: usize,
    /// How often the server pings an idle connection, so dead ones are
    /// noticed and proxies keep live ones open.
    pub ping_interval: Duration,
    /// How long any write to a socket (a batch of frames, a ping, a close)
    /// may take. A browser that reads slower than that is dropped.
    pub write_timeout: Duration,
    /// How long a room's authorisation rule may take before the join is
    /// refused.
    pub authorize_timeout: Duration,
    /// The steady rate of frames a browser may send, per second, and the
    /// burst it may send at once (a reconnecting tab re-joins every room
    /// it was in). Past it: an `error` frame, then close code 4029.
    pub frames_per_second: u32,
    pub frame_burst: u32,
    /// Connections in all, per logged-in user, and per address for
    /// visitors. An upgrade past one gets 503 (all) or 429 (the others).
    pub max_connections: usize,
    pub max_connections_per_user: usize,
    pub max_anonymous_per_address: usize,
    /// How many new connections a user (or a visitor's address) may open
    /// per minute, and at once. Past it: 429.
    pub new_connections_per_minute: u32,
    pub new_connection_burst: u32,
    /// How often the sessions of open connections are checked; a
    /// connection whose session expired is closed with code 4001.
    pub session_check_interval: Duration,
    /// Presence changes to a room within this window go out as one list.
    pub presence_window: Duration,
    /// The history of durable events (`history.rs`): how many events each
    /// stream keeps, for how long, and in how many bytes and streams in
    /// all. A tab asking for events that are no longer kept is told it
    /// missed some (a discontinuity). `history_per_stream: 0` keeps no
    /// history at all: durable events are then delivered as volatile ones.
    /// With Redis, its history keeps `history_per_stream` events per
    /// stream for `history_max_age`; the bytes and streams limits bound
    /// each process's mirror of it.
    pub history_per_stream: usize,
    pub history_max_age: Duration,
    pub history_max_bytes: usize,
    pub history_max_streams: usize,
    /// Most events one recovery replays; a tab further behind is told it
    /// missed some.
    pub recovery_max_events: usize,
    /// Which pages may open a connection.
    pub origins: Origins,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 16 * 1024,
            max_event_bytes: 64 * 1024,
            max_rooms_per_connection: 64,
            queue_capacity: 256,
            read_buffer_bytes: 1024,
            ping_interval: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            authorize_timeout: Duration::from_secs(10),
            frames_per_second: 10,
            frame_burst: 100,
            max_connections: 10_000,
            max_connections_per_user: 32,
            max_anonymous_per_address: 64,
            new_connections_per_minute: 60,
            new_connection_burst: 64,
            session_check_interval: Duration::from_secs(60),
            presence_window: Duration::from_millis(250),
            history_per_stream: 1000,
            history_max_age: Duration::from_secs(5 * 60),
            history_max_bytes: 32 * 1024 * 1024,
            history_max_streams: 50_000,
            recovery_max_events: 1000,
            origins: Origins::SameOrigin,
        }
    }
}

impl HubConfig {
    pub(crate) fn history_limits(&self) -> HistoryLimits {
        HistoryLimits {
            per_stream: self.history_per_stream,
            max_age: self.history_max_age,
            max_bytes: self.history_max_bytes,
            max_streams: self.history_max_streams,
            max_replay: self.recovery_max_events,
        }
    }
}

/// How much history is kept: the `history_*` fields of [`HubConfig`] and
/// `recovery_max_events`, for the history in memory and in Redis.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HistoryLimits {
    pub per_stream: usize,
    pub max_age: Duration,
    pub max_bytes: usize,
    pub max_streams: usize,
    /// Most events one recovery replays.
    pub max_replay: usize,
}

/// `docs/protocol.md`'s tables of limits hold the defaults of every field
/// of [`HubConfig`] and the constants, as the code has them: a field added
/// without a row, a default changed without its row, or a variable the
/// server does not read, fails here.
#[cfg(test)]
mod documented {
    use std::{collections::BTreeMap, time::Duration};

    use super::{super::connection, HubConfig, Origins};
    use crate::server::streams;

    const PROTOCOL: &str = include_str!("../../../docs/protocol.md");
    const SERVER_CONFIG: &str = include_str!("../../../server/src/config.rs");

    fn bytes(n: usize) -> String {
        const KIB: usize = 1024;
        if n >= KIB * KIB && n.is_multiple_of(KIB * KIB) {
            format!("{} MiB", n / (KIB * KIB))
        } else if n >= KIB && n.is_multiple_of(KIB) {
            format!("{} KiB", n / KIB)
        } else {
            format!("{n} bytes")
        }
    }

    fn count(n: impl Into<u64>) -> String {
        let digits = n.into().to_string();
        let mut out = String::new();
        for (index, digit) in digits.chars().enumerate() {
            if index > 0 && (digits.len() - index) % 3 == 0 {
                out.push(',');
            }
            out.push(digit);
        }
        out
    }

    fn duration(d: Duration) -> String {
        if d.as_millis().is_multiple_of(1000) {
            format!("{} s", d.as_secs())
        } else {
            format!("{} ms", d.as_millis())
        }
    }

    /// A field's default, as the tables write it.
    fn shown(field: &str, config: &HubConfig) -> String {
        let c = config;
        match field {
            "max_frame_bytes" => bytes(c.max_frame_bytes),
            "max_event_bytes" => bytes(c.max_event_bytes),
            "max_rooms_per_connection" => count(c.max_rooms_per_connection as u64),
            "queue_capacity" => count(c.queue_capacity as u64),
            "read_buffer_bytes" => bytes(c.read_buffer_bytes),
            "ping_interval" => duration(c.ping_interval),
            "write_timeout" => duration(c.write_timeout),
            "authorize_timeout" => duration(c.authorize_timeout),
            "frames_per_second" => format!("{}/s", c.frames_per_second),
            "frame_burst" => count(c.frame_burst),
            "max_connections" => count(c.max_connections as u64),
            "max_connections_per_user" => count(c.max_connections_per_user as u64),
            "max_anonymous_per_address" => count(c.max_anonymous_per_address as u64),
            "new_connections_per_minute" => format!("{}/min", c.new_connections_per_minute),
            "new_connection_burst" => count(c.new_connection_burst),
            "session_check_interval" => duration(c.session_check_interval),
            "presence_window" => duration(c.presence_window),
            "history_per_stream" => count(c.history_per_stream as u64),
            "history_max_age" => duration(c.history_max_age),
            "history_max_bytes" => bytes(c.history_max_bytes),
            "history_max_streams" => count(c.history_max_streams as u64),
            "recovery_max_events" => count(c.recovery_max_events as u64),
            "origins" => match c.origins {
                Origins::SameOrigin => "the server's own".to_owned(),
                _ => panic!("the default origins are not the server's own"),
            },
            other => panic!("HubConfig has a field this test does not know: {other}"),
        }
    }

    /// The rows of every table in `text`, as cells.
    fn rows(text: &str) -> Vec<Vec<String>> {
        text.lines()
            .filter(|line| line.starts_with('|') && !line.starts_with("|---"))
            .map(|line| {
                line.trim_matches('|')
                    .split('|')
                    .map(|cell| cell.trim().to_owned())
                    .collect()
            })
            .collect()
    }

    /// The names in backquotes at the start of a cell, before its colon.
    fn names(cell: &str) -> Vec<String> {
        let head = cell.split(": ").next().unwrap_or_default();
        head.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_field_of_hub_config_is_documented_with_its_default_and_variable() {
        let config = HubConfig::default();
        // Every field, from the struct's own Debug output.
        let debug = format!("{config:?}");
        let fields: Vec<&str> = debug
            .split(['{', ','])
            .filter_map(|part| part.split_once(':'))
            .map(|(name, _)| name.trim())
            .filter(|name| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            })
            .collect();
        let mut documented: BTreeMap<String, (String, String)> = BTreeMap::new();
        for row in rows(PROTOCOL) {
            let [limit, variable, default, ..] = row.as_slice() else {
                continue;
            };
            for name in names(limit) {
                if fields.contains(&name.as_str()) && !default.is_empty() {
                    documented.insert(name, (variable.clone(), default.clone()));
                }
            }
        }
        for field in &fields {
            let Some((variable, default)) = documented.get(*field) else {
                panic!("docs/protocol.md has no row with the default of `{field}`");
            };
            assert_eq!(
                *default,
                shown(field, &config),
                "docs/protocol.md's default of `{field}`"
            );
            for variable in names(variable) {
                assert!(
                    SERVER_CONFIG.contains(&format!("\"{variable}\"")),
                    "docs/protocol.md says `{field}` comes from {variable}, which the server does not read"
                );
            }
        }
    }

    #[test]
    fn every_constant_limit_is_documented_with_its_value() {
        let config = HubConfig::default();
        let expected: BTreeMap<&str, String> = BTreeMap::from([
            (
                "WRITE_BUFFER_BYTES",
                format!(
                    "{} + {} + 1 KiB",
                    bytes(connection::WRITE_BUFFER_BYTES),
                    bytes(config.max_event_bytes)
                ),
            ),
            ("MAX_BATCH", count(connection::MAX_BATCH as u64)),
            ("CLOSE_TIMEOUT", duration(connection::CLOSE_TIMEOUT)),
            (
                "DROPPED_FRAMES_TOLERATED",
                count(connection::DROPPED_FRAMES_TOLERATED),
            ),
            ("RULES_AT_ONCE", count(connection::RULES_AT_ONCE as u64)),
            (
                "SHARED_RECOVERIES_BURST",
                format!("{} at once, then 1/s", connection::SHARED_RECOVERIES_BURST),
            ),
            ("READS_AT_ONCE", count(streams::READS_AT_ONCE as u64)),
            ("READ_TIMEOUT", duration(streams::READ_TIMEOUT)),
        ]);
        let mut seen = Vec::new();
        for row in rows(PROTOCOL) {
            let [_, constant, value, ..] = row.as_slice() else {
                continue;
            };
            let Some(name) = names(constant).into_iter().next() else {
                continue;
            };
            if let Some(expected) = expected.get(name.as_str()) {
                assert_eq!(value, expected, "docs/protocol.md's value of {name}");
                seen.push(name);
            }
        }
        for name in expected.keys() {
            assert!(
                seen.iter().any(|seen| seen == name),
                "docs/protocol.md has no row for {name}"
            );
        }
        // The write buffer is what the code gives a socket.
        assert_eq!(
            connection::max_write_buffer(&config),
            connection::WRITE_BUFFER_BYTES + config.max_event_bytes + 1024
        );
    }
}
