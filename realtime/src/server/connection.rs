//! The task that serves one WebSocket, from its `welcome` frame to its
//! removal from the registry.
//!
//! One task per connection does everything: it writes what the queue
//! holds (in batches, with one flush per batch), reads the browser's
//! frames, runs the rules of the rooms it asks to join, pings, and closes
//! when asked (`close.rs`). It talks to the hub only through methods that
//! say what it wants: register, authorise a join, leave, answer with an
//! error, forget.
//!
//! Nothing here waits without a bound:
//! - every write (a batch, a ping, a close) gives up after
//!   [`super::HubConfig::write_timeout`], and stops at once when the hub
//!   closes the connection, so a browser that stops reading cannot hold the
//!   task, its socket or its buffers;
//! - room rules (a database query, say) run beside the loop, a few at a
//!   time, so writing goes on while they decide;
//! - the browser's frames pass a token bucket: past it, an `error` frame,
//!   and if the browser keeps on, close code 4029.
//!
//! However the task ends, the socket is dropped (its file descriptor
//! released) and the connection leaves the registry.

use std::{
    collections::VecDeque, future::Future, num::NonZeroU32, pin::Pin, sync::atomic::Ordering,
    task::Poll, time::Duration,
};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt, stream::FuturesUnordered};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::{Instant, MissedTickBehavior, timeout};

use super::{CloseReason, Hub, Identity, Outgoing, Refused, Registration, registry::Reached};
use crate::{
    ConnectionId, Position, RoomName, UserId,
    protocol::{ClientFrame, ControlFrame, ErrorCode, Resume, close},
};

/// Most frames written per flush.
const MAX_BATCH: usize = 64;
/// Frames are written to the socket once this many bytes are buffered,
/// or at the end of a batch, whichever comes first.
pub(super) const WRITE_BUFFER_BYTES: usize = 8 * 1024;
/// How long a close frame may take to send (after whatever was already
/// buffered) before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Room rules running at once for one connection; more joins wait their
/// turn, in order.
const RULES_AT_ONCE: usize = 4;
/// Joins that may read Redis's history at once (then one a second).
const REDIS_RECOVERIES_BURST: NonZeroU32 = NonZeroU32::new(16).unwrap();
/// Frames over the rate limit a browser may send, after being told, before
/// it is closed.
const DROPPED_FRAMES_TOLERATED: u32 = 10;

/// Serves `socket` until it closes, and counts it as open until it is
/// dropped.
pub(super) async fn serve(hub: Hub, socket: WebSocket, identity: Identity, resume: Resume) {
    hub.inner.open_sockets.fetch_add(1, Ordering::Relaxed);
    serve_socket(&hub, socket, identity, &resume).await;
    // The socket is dropped, its file descriptor released.
    hub.inner.open_sockets.fetch_sub(1, Ordering::Relaxed);
}

async fn serve_socket(hub: &Hub, mut socket: WebSocket, identity: Identity, resume: &Resume) {
    let user = identity.user;
    let Registration {
        id,
        mut outgoing,
        close_signal,
        positions,
    } = match hub.register(identity, resume).await {
        Ok(registration) => registration,
        Err(refused) => {
            tracing::debug!(?refused, user = ?user, "connection refused");
            let code = match refused {
                Refused::SessionEnded => close::SESSION_ENDED,
                Refused::Full => close::TRY_AGAIN_LATER,
                Refused::TooManyForUser | Refused::TooManyForAddress | Refused::TooFast => {
                    close::RATE_LIMITED
                }
            };
            let _ = close_with(&mut socket, code, refused.reason()).await;
            return;
        }
    };
    let _registered = Registered { hub, id };
    tracing::debug!(connection = %id, user = ?user, "connected");
    let config = hub.config();
    let writes = Writes {
        limit: config.write_timeout,
    };
    // One wait for the close, for the task's whole life: the loop and every
    // write watch it.
    let closed = close_signal.closed();
    tokio::pin!(closed);

    let welcome = ControlFrame::Welcome {
        connection: id,
        user,
        positions,
    };
    if writes
        .send(&mut socket, json_message(&welcome), closed.as_mut())
        .await
        .is_err()
    {
        return;
    }

    let ping_interval = config.ping_interval;
    let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut batch = Vec::new();
    let mut joins = Joins::new(hub, id, user);
    let mut frames = FrameBudget::new(config.frames_per_second, config.frame_burst);
    let mut reached = Reached::default();

    let end = loop {
        tokio::select! {
            biased;
            reason = closed.as_mut() => break End::Closed(reason),
            received = outgoing.recv_many(&mut batch, MAX_BATCH) => {
                if received == 0 {
                    break End::Closed(CloseReason::GoingAway);
                }
                if let Err(end) = writes.batch(&mut socket, &mut batch, &mut reached, closed.as_mut()).await {
                    break end;
                }
            }
            Some(()) = joins.running.next(), if !joins.running.is_empty() => joins.start_waiting(),
            message = socket.recv() => {
                last_heard = Instant::now();
                match message {
                    Some(Ok(Message::Text(text))) => match frames.take() {
                        Budget::Granted => handle_text(hub, id, &mut joins, &text),
                        Budget::Warned => {
                            metrics::counter!("realtime_refusals_total", "limit" => "frames").increment(1);
                            send_error(hub, id, ErrorCode::RateLimited, "Too many frames: slow down.");
                        }
                        Budget::Spent => {
                            tracing::debug!(connection = %id, "frames keep coming past the limit; closing");
                            break End::Closed(CloseReason::RateLimited);
                        }
                    },
                    Some(Ok(Message::Binary(_))) => send_error(hub, id, ErrorCode::BinaryFrame, "This protocol uses text frames only."),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => break End::Browser,
                    Some(Err(error)) => {
                        tracing::debug!(connection = %id, %error, "read failed");
                        if is_too_big(&error) {
                            let _ = close_with(&mut socket, close::TOO_BIG, "frame too big").await;
                            break End::TooBig;
                        }
                        break End::Browser;
                    }
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > ping_interval * 2 {
                    tracing::debug!(connection = %id, "no answer to pings; closing");
                    break End::Silent;
                }
                if let Err(end) = writes.send(&mut socket, Message::Ping(Default::default()), closed.as_mut()).await {
                    break end;
                }
            }
        }
    };
    if let End::Closed(reason) = end {
        let (code, text) = reason.code_and_text();
        let _ = close_with(&mut socket, code, text).await;
    }
    metrics::counter!("realtime_closes_total", "reason" => end.label()).increment(1);
    tracing::debug!(connection = %id, reason = end.label(), "disconnected");
}

/// How a connection ended.
#[derive(Clone, Copy, Debug)]
enum End {
    /// The hub closed it (the close frame says why).
    Closed(CloseReason),
    /// The browser closed it, or went away.
    Browser,
    /// The browser sent a frame over the size limit (close 1009).
    TooBig,
    /// A write failed, or took longer than the write timeout.
    WriteFailed,
    /// The browser answered no pings.
    Silent,
}

impl End {
    /// As metrics label it.
    fn label(self) -> &'static str {
        match self {
            Self::Closed(CloseReason::GoingAway) => "going_away",
            Self::Closed(CloseReason::SessionEnded) => "session_ended",
            Self::Closed(CloseReason::TooSlow) => "too_slow",
            Self::Closed(CloseReason::RateLimited) => "rate_limited",
            Self::Browser => "browser",
            Self::TooBig => "too_big",
            Self::WriteFailed => "write_failed",
            Self::Silent => "silent",
        }
    }
}

/// Removes the connection from the registry when the task ends, however it
/// ends (including a panic).
struct Registered<'a> {
    hub: &'a Hub,
    id: ConnectionId,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.hub.forget(self.id);
    }
}

/// Writes to the socket, each bounded in time and cut short by a close.
struct Writes {
    limit: Duration,
}

/// The connection's wait for its close signal.
type Closed<'a> = Pin<&'a mut (dyn Future<Output = CloseReason> + Send)>;

impl Writes {
    /// Writes what the queue held, [`MAX_BATCH`] frames at a time, each
    /// time with one flush and within the write timeout: a long replay is
    /// written in many such steps, not cut short by one timeout.
    async fn batch(
        &self,
        socket: &mut WebSocket,
        batch: &mut Vec<Outgoing>,
        reached: &mut Reached,
        mut closed: Closed<'_>,
    ) -> Result<(), End> {
        let mut frames = Vec::with_capacity(batch.len());
        for item in batch.drain(..) {
            item.write_into(reached, &mut frames);
        }
        let mut frames = frames.into_iter().peekable();
        while frames.peek().is_some() {
            let chunk = frames.by_ref().take(MAX_BATCH);
            let write = async {
                for frame in chunk {
                    socket.feed(Message::Text(frame)).await?;
                }
                socket.flush().await
            };
            self.bounded(write, closed.as_mut()).await?;
        }
        Ok(())
    }

    async fn send(
        &self,
        socket: &mut WebSocket,
        message: Message,
        closed: Closed<'_>,
    ) -> Result<(), End> {
        self.bounded(socket.send(message), closed).await
    }

    /// `Err(End::Closed(_))`: the hub closed the connection meanwhile (the
    /// close frame goes out after what is already buffered);
    /// `Err(End::WriteFailed)`: the write failed or took too long, and the
    /// socket is dropped.
    async fn bounded(
        &self,
        write: impl Future<Output = Result<(), axum::Error>>,
        closed: Closed<'_>,
    ) -> Result<(), End> {
        let mut write = std::pin::pin!(write);
        // Most writes finish at once, the socket having room: no timer for
        // those.
        if let Poll::Ready(written) = futures_util::poll!(write.as_mut()) {
            return written.map_err(|_| End::WriteFailed);
        }
        tokio::select! {
            biased;
            reason = closed => Err(End::Closed(reason)),
            written = timeout(self.limit, write) => match written {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(End::WriteFailed),
                Err(_) => {
                    tracing::debug!("a write took too long; dropping the connection");
                    Err(End::WriteFailed)
                }
            },
        }
    }
}

/// The joins a connection asked for: a few rules running beside the loop,
/// the rest waiting their turn.
struct Joins<'h> {
    hub: &'h Hub,
    id: ConnectionId,
    user: Option<UserId>,
    running: FuturesUnordered<Pin<Box<dyn Future<Output = ()> + Send + 'h>>>,
    /// Rooms to join, each with the position to recover from, if any.
    waiting: VecDeque<(RoomName, Option<Position>)>,
    /// Recoveries this connection may have read from Redis, when this
    /// process does not hold them: a tab re-joins its few rooms after a
    /// reconnect; a script asking for old positions in room after room
    /// gets discontinuities instead (`ask` turns its reads off).
    reads: DefaultDirectRateLimiter,
}

impl<'h> Joins<'h> {
    fn new(hub: &'h Hub, id: ConnectionId, user: Option<UserId>) -> Self {
        Self {
            hub,
            id,
            user,
            running: FuturesUnordered::new(),
            waiting: VecDeque::new(),
            reads: RateLimiter::direct(
                Quota::per_second(NonZeroU32::MIN).allow_burst(REDIS_RECOVERIES_BURST),
            ),
        }
    }

    /// Asks to join `room`: its rule runs now, or once a turn is free. A
    /// connection may not queue more joins than it may be in rooms.
    fn ask(&mut self, room: RoomName, since: Option<Position>) {
        if self.waiting.len() >= self.hub.config().max_rooms_per_connection {
            self.hub
                .refuse_join(self.id, &room, "Too many joins at once.");
            return;
        }
        self.waiting.push_back((room, since));
        self.start_waiting();
    }

    fn start_waiting(&mut self) {
        while self.running.len() < RULES_AT_ONCE
            && let Some((room, since)) = self.waiting.pop_front()
        {
            let may_read = since.is_some() && self.reads.check().is_ok();
            let join = self
                .hub
                .request_join(self.id, self.user, room, since, may_read);
            self.running.push(Box::pin(join));
        }
    }
}

/// What the token bucket says of one more frame.
enum Budget {
    Granted,
    /// Over the limit: dropped, and the browser told.
    Warned,
    /// Over the limit, and told often enough: the connection closes.
    Spent,
}

/// The browser's frames, through a token bucket.
struct FrameBudget {
    bucket: DefaultDirectRateLimiter,
    dropped: u32,
}

impl FrameBudget {
    fn new(per_second: u32, burst: u32) -> Self {
        let per_second = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(per_second);
        Self {
            bucket: RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)),
            dropped: 0,
        }
    }

    fn take(&mut self) -> Budget {
        if self.bucket.check().is_ok() {
            self.dropped = 0;
            return Budget::Granted;
        }
        self.dropped += 1;
        if self.dropped > DROPPED_FRAMES_TOLERATED {
            Budget::Spent
        } else {
            Budget::Warned
        }
    }
}

fn json_message(frame: &ControlFrame<'_>) -> Message {
    // Control frames hold ids and short text: encoding cannot fail.
    Message::Text(serde_json::to_string(frame).unwrap_or_default().into())
}

async fn close_with(socket: &mut WebSocket, code: u16, reason: &'static str) -> Result<(), ()> {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    match timeout(CLOSE_TIMEOUT, socket.send(Message::Close(Some(frame)))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Acts on one text frame from the browser.
fn handle_text(hub: &Hub, id: ConnectionId, joins: &mut Joins<'_>, text: &str) {
    let frame = match serde_json::from_str::<ClientFrame>(text) {
        Ok(frame) => frame,
        Err(error) => {
            let message = format!("The frame is not valid: {error}.");
            send_error(hub, id, ErrorCode::MalformedFrame, &message);
            return;
        }
    };
    match frame {
        ClientFrame::Join { room, since } => joins.ask(room, since),
        ClientFrame::Leave { room } => hub.request_leave(id, &room),
    }
}

fn send_error(hub: &Hub, id: ConnectionId, code: ErrorCode, message: &str) {
    hub.send_control(id, &ControlFrame::Error { code, message });
}

/// Whether a read failed because the browser sent more than the limit.
fn is_too_big(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if let Some(tungstenite::Error::Capacity(_)) = error.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = error.source();
    }
    false
}
