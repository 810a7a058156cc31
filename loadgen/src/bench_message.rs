//! The text every benchmark announcement carries, `bench <seq> <sent
//! micros>`: its sequence number and when it was sent, in Unix
//! microseconds. The senders write it and the receiving clients read it
//! back, to count each announcement and time it end to end.

use std::{
    fmt,
    time::{SystemTime, UNIX_EPOCH},
};

/// What starts the text, and what the receivers look for.
const PREFIX: &str = "bench ";

/// The sequence number and sending time of one benchmark announcement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchMessage {
    pub seq: u32,
    /// When it was sent, in Unix microseconds.
    pub sent_micros: u64,
}

impl BenchMessage {
    /// The announcement `seq`, sent now.
    pub fn now(seq: u32) -> Self {
        Self {
            seq,
            sent_micros: unix_micros(),
        }
    }

    /// Reads a message that is a benchmark announcement's whole text (the
    /// `message` of an event already parsed).
    pub fn parse(message: &str) -> Option<Self> {
        let mut numbers = message.strip_prefix(PREFIX)?.split(' ');
        let seq = numbers.next()?.parse().ok()?;
        let sent_micros = numbers.next()?.parse().ok()?;
        Some(Self { seq, sent_micros })
    }

    /// Finds a benchmark announcement anywhere in a frame's raw text. The
    /// fan-out reads every frame of thousands of sockets: it looks for the
    /// text rather than parse each frame's JSON.
    pub fn find_in(frame: &str) -> Option<Self> {
        let start = frame.find(PREFIX)? + PREFIX.len();
        let mut numbers = frame[start..]
            .split(|c: char| !c.is_ascii_digit())
            .filter(|part| !part.is_empty());
        let seq = numbers.next()?.parse().ok()?;
        let sent_micros = numbers.next()?.parse().ok()?;
        Some(Self { seq, sent_micros })
    }
}

impl fmt::Display for BenchMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{} {}", self.seq, self.sent_micros)
    }
}

/// The time now, in Unix microseconds: what the sender stamps and the
/// receiver subtracts from (one clock, the machine's, on both sides).
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENT: BenchMessage = BenchMessage {
        seq: 12,
        sent_micros: 1_700_000_000_123_456,
    };

    #[test]
    fn the_text_is_bench_seq_and_sending_time() {
        assert_eq!(SENT.to_string(), "bench 12 1700000000123456");
    }

    #[test]
    fn the_whole_text_reads_back() {
        assert_eq!(BenchMessage::parse(&SENT.to_string()), Some(SENT));
        assert_eq!(BenchMessage::parse("hello"), None);
        assert_eq!(BenchMessage::parse("bench 12"), None);
    }

    #[test]
    fn it_is_found_inside_a_frame() {
        let frame = format!(r#"{{"type":"event","data":{{"message":"{SENT}"}}}}"#);
        assert_eq!(BenchMessage::find_in(&frame), Some(SENT));
        assert_eq!(BenchMessage::find_in(r#"{"type":"welcome"}"#), None);
    }
}
