//! The hub's limits and settings, with their defaults.

use std::time::Duration;

use super::Origins;

/// Limits and settings of a hub. The defaults suit a typical application;
/// `docs/protocol.md` explains each limit and what exceeding it does.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Largest frame (and message) a browser may send, in bytes. Larger
    /// ones close the connection with code 1009. A browser sends joins and
    /// leaves only, under 600 bytes with the longest room name; a larger
    /// allowance is memory a script could make every connection hold (a
    /// connection's read buffer may keep the size of the largest frame it
    /// read).
    pub max_frame_bytes: usize,
    /// Largest event frame the server sends, in bytes. An emit over it is
    /// an [`EmitError::TooLarge`], sent to nobody.
    pub max_event_bytes: usize,
    /// How many rooms one connection may be in at once.
    pub max_rooms_per_connection: usize,
    /// How many frames may wait in one connection's outgoing queue. A
    /// connection whose queue is full is closed with code 4008.
    pub queue_capacity: usize,
    /// How many bytes of frames of 1 KiB or more may wait in one
    /// connection's outgoing queue, whether its own or shared with other
    /// queues (a replay of what it missed aside), however few the frames:
    /// past it, the same close. Smaller frames are bounded by
    /// `queue_capacity` alone. An empty queue takes any one frame.
    pub queue_max_bytes: usize,
    /// Size of each connection's read buffer (tungstenite's default is
    /// 128 KiB, which would be most of the memory of an idle connection).
    /// A browser's frames (joins and leaves) are a few dozen bytes; a
    /// larger one grows the buffer for as long as it takes to read it.
    pub read_buffer_bytes: usize,
    /// How often the server pings an idle connection, so dead ones are
    /// noticed and proxies keep live ones open.
    pub ping_interval: Duration,
    /// How long any write to a socket (a batch of frames, a ping, a close)
    /// may take. A browser that reads slower than that is dropped.
    pub write_timeout: Duration,
    /// How long a connection's queue is left to gather after a write that
    /// emptied it. What is queued meanwhile goes out together when the
    /// interval is out, or sooner once a quarter of the queue is full or
    /// the browser sends a frame (its answer does not wait); an event after
    /// a quiet spell is written at once. Zero writes every batch as soon as
    /// it is queued. A longer interval costs a busy tab up to that much
    /// latency and saves the server a write per event (`docs/benchmarks.md`,
    /// "Gathering writes").
    pub write_interval: Duration,
    /// How long a room's authorisation rule may take before the join is
    /// refused.
    pub authorize_timeout: Duration,
    /// The steady rate of frames a browser may send, per second, and the
    /// burst it may send at once (a reconnecting tab re-joins every room
    /// it was in). Past it: an `error` frame, then close code 4029.
    pub frames_per_second: u32,
    pub frame_burst: u32,
    /// Connections in all, visitors' connections in all (a share of the
    /// first that visitors cannot pass, so that they cannot crowd logged-in
    /// users out), per logged-in user, and per address for visitors (an
    /// IPv6 /48 holds 16 addresses' worth, `registry/visitors.rs`). An
    /// upgrade past one of the first two gets 503, past the others 429.
    pub max_connections: usize,
    pub max_anonymous_connections: usize,
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
    /// The most users a presence list names; the rest are counted
    /// ([`crate::Presence::more`]). A list also stays within
    /// `max_event_bytes`: every frame must fit a socket's write buffer.
    pub max_presence_listed: usize,
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
            max_frame_bytes: 2 * 1024,
            max_event_bytes: 64 * 1024,
            max_rooms_per_connection: 64,
            queue_capacity: 256,
            queue_max_bytes: 1024 * 1024,
            read_buffer_bytes: 256,
            ping_interval: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            write_interval: Duration::ZERO,
            authorize_timeout: Duration::from_secs(10),
            frames_per_second: 10,
            frame_burst: 100,
            max_connections: 10_000,
            max_anonymous_connections: 5_000,
            max_connections_per_user: 32,
            max_anonymous_per_address: 64,
            new_connections_per_minute: 60,
            new_connection_burst: 64,
            session_check_interval: Duration::from_secs(5),
            presence_window: Duration::from_millis(250),
            max_presence_listed: 100,
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
