//! `docs/protocol.md`'s tables of limits hold the defaults of every field
//! of [`HubConfig`] and the constants, as the code has them: a field added
//! without a row, a default changed without its row, a constant changed
//! without its row, or a variable the server does not read, fails here.

use std::{collections::BTreeMap, time::Duration};

use super::{HubConfig, Origins, connection, streams};

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
        "queue_max_bytes" => bytes(c.queue_max_bytes),
        "read_buffer_bytes" => bytes(c.read_buffer_bytes),
        "ping_interval" => duration(c.ping_interval),
        "write_timeout" => duration(c.write_timeout),
        "write_interval" => format!("{} ms", c.write_interval.as_millis()),
        "authorize_timeout" => duration(c.authorize_timeout),
        "frames_per_second" => format!("{}/s", c.frames_per_second),
        "frame_burst" => count(c.frame_burst),
        "max_connections" => count(c.max_connections as u64),
        "max_anonymous_connections" => count(c.max_anonymous_connections as u64),
        "max_connections_per_user" => count(c.max_connections_per_user as u64),
        "max_anonymous_per_address" => count(c.max_anonymous_per_address as u64),
        "new_connections_per_minute" => format!("{}/min", c.new_connections_per_minute),
        "new_connection_burst" => count(c.new_connection_burst),
        "session_check_interval" => duration(c.session_check_interval),
        "presence_window" => duration(c.presence_window),
        "max_presence_listed" => count(c.max_presence_listed as u64),
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
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
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
            "RULE_CHECKS_BURST",
            format!(
                "{} at once per user or visitor's network, then {}/s",
                connection::RULE_CHECKS_BURST,
                connection::RULE_CHECKS_PER_SECOND
            ),
        ),
        (
            "MAX_ROOM_NAME_BYTES",
            bytes(crate::protocol::MAX_ROOM_NAME_BYTES),
        ),
        (
            "SHARED_READS_BURST",
            format!(
                "{} at once per user or visitor's network, then 1/s",
                connection::SHARED_READS_BURST
            ),
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
