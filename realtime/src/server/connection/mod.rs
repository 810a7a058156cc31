//! The task that serves one WebSocket, from its `welcome` frame to its
//! removal from the registry.
//!
//! One task per connection does everything: it writes what the queue
//! holds (in batches, with one flush per batch, at most once per
//! `write_interval`: `writes.rs`), reads the
//! browser's frames (through a token bucket: `budget.rs`), runs the rules
//! of the rooms it asks to join (`joins.rs`), pings, and closes when asked
//! (`close.rs`). It talks to the hub only through methods that say what it
//! wants: register, authorise a join, leave, answer with an error, forget.
//!
//! Nothing here waits without a bound:
//! - every write (a batch, a ping, a close) gives up after
//!   [`super::HubConfig::write_timeout`], and stops at once when the hub
//!   closes the connection;
//! - room rules run beside the loop, a few at a time;
//! - the browser's frames pass a token bucket: past it, an `error` frame,
//!   and if the browser keeps on, close code 4029.
//!
//! However the task ends, the socket is dropped (its file descriptor
//! released) and the connection leaves the registry.

mod budget;
mod joins;
mod writes;

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc, sync::atomic::Ordering};

use axum::{
    extract::{
        FromRequestParts,
        ws::{Message, WebSocket, WebSocketUpgrade},
    },
    http::request::Parts,
    response::Response,
};
use futures_util::StreamExt;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use self::{
    budget::{Budget, FrameBudget},
    joins::Joins,
    writes::{Spacing, Writes, close_with},
};
pub(crate) use self::{
    joins::{RULE_CHECKS_BURST, RULE_CHECKS_PER_SECOND, SHARED_READS_BURST},
    writes::{MAX_BATCH, WRITE_BUFFER_BYTES},
};
use super::{
    CloseReason, Hub, Identity, Refused,
    pace::Actor,
    registry::{self, Connection, Outgoing, QueueReceiver, Reached},
    signal::CloseSignal,
};
use crate::{
    ConnectionId, Position, Stream, UserId,
    protocol::{
        ClientFrame, ControlFrame, ErrorCode, MAX_ROOM_NAME_BYTES, Resume, room_name_too_long,
    },
};

/// Upgrades the request, with buffers and frame sizes bounded by the hub's
/// limits, and serves the connection as `identity` until it closes.
pub(super) fn upgrade(
    hub: Hub,
    upgrade: WebSocketUpgrade,
    identity: Identity,
    resume: Resume,
) -> Response {
    let config = hub.config();
    let upgrade = upgrade
        .read_buffer_size(config.read_buffer_bytes)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(max_write_buffer(config))
        .max_message_size(config.max_frame_bytes)
        .max_frame_size(config.max_frame_bytes);
    let runtime = hub.inner.socket_runtime.clone();
    // On the heap until the task takes it: what the callback holds is kept
    // for the task's whole life.
    let caller = Box::new(Caller {
        hub,
        identity,
        resume,
    });
    upgrade.on_upgrade(move |socket| async move {
        match runtime {
            // The upgrade's own task ends here.
            Some(runtime) => drop(runtime.spawn(serve(caller, socket))),
            None => serve(caller, socket).await,
        }
    })
}

/// Who asked for the upgrade, as the connection's task gets it.
struct Caller {
    hub: Hub,
    identity: Identity,
    resume: Resume,
}

/// The most one socket may hold unsent: room for one batch and the
/// largest frame, never more, however slowly the browser reads.
pub(crate) fn max_write_buffer(config: &super::HubConfig) -> usize {
    WRITE_BUFFER_BYTES + config.max_event_bytes + 1024
}

/// How long a close handshake may take (the hub waits for them on
/// shutdown: [`super::Hub::sockets_closed`]).
pub(crate) use self::writes::CLOSE_TIMEOUT;
/// The limits of a connection that are constants, for the test that holds
/// `docs/protocol.md` to them.
#[cfg(test)]
pub(crate) use self::{budget::DROPPED_FRAMES_TOLERATED, joins::RULES_AT_ONCE};

/// The tab's [`Resume`], from the upgrade request's query.
impl<S: Send + Sync> FromRequestParts<S> for Resume {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Resume::from_query(parts.uri.query().unwrap_or_default()))
    }
}

/// Serves `socket` until it closes, and counts it as open until it is
/// dropped.
///
/// What a task keeps while it serves is most of what an idle connection
/// costs, so it is kept small: the connection's state is one allocation
/// ([`Served`]), and the steps that write (the welcome, a batch, a ping, a
/// close) and the one-off steps (registering, refusing) run boxed, taking
/// no room in the task while it waits: an async task is as large as its
/// largest step, however rarely it takes it.
fn serve(caller: Box<Caller>, socket: WebSocket) -> impl Future<Output = ()> + Send {
    let socket = Box::new(socket);
    async move {
        let hub = caller.hub.clone();
        hub.inner.open_sockets.fetch_add(1, Ordering::Relaxed);
        serve_socket(&hub, caller, socket).await;
        // The socket is dropped, its file descriptor released.
        hub.inner.open_sockets.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve_socket(hub: &Hub, caller: Box<Caller>, socket: Box<WebSocket>) {
    let Some(mut served) = Box::pin(connect(hub, caller, socket)).await else {
        return;
    };
    let _registered = Registered { hub, id: served.id };
    tracing::debug!(connection = %served.id, user = ?served.user, "connected");
    let end = match Box::pin(served.welcome()).await {
        Ok(()) => served.run().await,
        Err(end) => end,
    };
    if let End::Closed(reason) = end {
        let (code, text) = reason.code_and_text();
        let _ = Box::pin(close_with(&mut served.socket, code, text)).await;
    }
    metrics::counter!("realtime_closes_total", "reason" => end.label()).increment(1);
    tracing::debug!(connection = %served.id, reason = end.label(), "disconnected");
}

/// Registers the connection, or closes the socket with the reason it was
/// refused.
async fn connect(
    hub: &Hub,
    caller: Box<Caller>,
    mut socket: Box<WebSocket>,
) -> Option<Box<Served<'_>>> {
    let Caller {
        identity, resume, ..
    } = *caller;
    let user = identity.user;
    let actor = Actor::of(&identity);
    match register(hub, identity, &resume).await {
        Ok(registration) => Some(Box::new(Served::new(
            hub,
            *socket,
            user,
            actor,
            registration,
        ))),
        Err(refused) => {
            tracing::debug!(?refused, user = ?user, "connection refused");
            let _ = close_with(&mut socket, refused.close_code(), refused.reason()).await;
            None
        }
    }
}

/// A connection just registered with the hub: what its task needs.
pub(super) struct Registration {
    pub(super) id: ConnectionId,
    /// Frames to write, in order.
    pub(super) outgoing: QueueReceiver,
    /// Tells the task to close, and why.
    close_signal: Arc<CloseSignal>,
    /// For the `welcome` frame: where the connection's streams stand.
    positions: BTreeMap<Stream, Position>,
}

/// Adds a connection to the registry, with a fresh id and a queue that
/// holds only what its tab missed (`resume`), unless a limit says no or its
/// session has ended meanwhile. It stays there until its task forgets it,
/// or the hub closes it.
pub(super) async fn register(
    hub: &Hub,
    identity: Identity,
    resume: &Resume,
) -> Result<Registration, Refused> {
    // What the shared history must tell first, if this process does not
    // hold it: the tab's streams from where it stopped, or where they stand.
    let streams = std::iter::once(Stream::Everyone).chain(identity.user.map(Stream::User));
    let wanted: Vec<(Stream, Option<Position>)> = streams
        .map(|stream| {
            let since = resume
                .since
                .iter()
                .find_map(|(asked, since)| (*asked == stream).then_some(*since));
            (stream, since)
        })
        .collect();
    // Heard before they are read: nothing published meanwhile is lost.
    for (stream, _) in &wanted {
        hub.inner.streams.follow(stream).await;
    }
    let fetched = hub.inner.streams.fetch(wanted).await;
    let id = ConnectionId(rand::random());
    let config = hub.config();
    let (queue, outgoing) = registry::queue(config.queue_capacity, config.queue_max_bytes);
    let close_signal = Arc::new(CloseSignal::default());
    let tab = resume
        .tab
        .map(|tab| hub.inner.callers.mark(tab, identity.session.as_ref()));
    let connection = Connection {
        queue,
        signal: Arc::clone(&close_signal),
        identity,
        tab,
        rooms: Vec::new(),
    };
    let registered = hub
        .inner
        .streams
        .register(id, connection, resume, fetched, &hub.inner.ended_sessions)
        .inspect_err(|refused| refused.count())?;
    hub.finish(registered.told);
    // Two answers, a queue of one (`queue_capacity: 1`): too small.
    if !registered.fitted {
        hub.close_too_slow(&[id]);
    }
    Ok(Registration {
        id,
        outgoing,
        close_signal,
        positions: registered.positions,
    })
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

/// A registered connection being served.
struct Served<'h> {
    hub: &'h Hub,
    id: ConnectionId,
    user: Option<UserId>,
    socket: WebSocket,
    outgoing: QueueReceiver,
    /// One wait for the close, for the task's whole life: the loop and
    /// every write watch it.
    closed: Pin<Box<dyn Future<Output = CloseReason> + Send>>,
    /// For the `welcome` frame.
    positions: BTreeMap<Stream, Position>,
    writes: Writes,
    /// Whether the queue is gathering after a write (`write_interval`).
    spacing: Spacing,
    joins: Joins<'h>,
    frames: FrameBudget,
    /// How far the frames written reached in each stream.
    reached: Reached,
    /// When the browser last sent anything (a pong included).
    last_heard: Instant,
}

impl<'h> Served<'h> {
    fn new(
        hub: &'h Hub,
        socket: WebSocket,
        user: Option<UserId>,
        actor: Option<Actor>,
        registration: Registration,
    ) -> Self {
        let config = hub.config();
        let signal = registration.close_signal;
        Self {
            hub,
            id: registration.id,
            user,
            socket,
            outgoing: registration.outgoing,
            closed: Box::pin(async move { signal.closed().await }),
            positions: registration.positions,
            writes: Writes {
                limit: config.write_timeout,
            },
            spacing: Spacing::default(),
            joins: Joins::new(hub, registration.id, user, actor),
            frames: FrameBudget::new(config.frames_per_second, config.frame_burst),
            reached: Reached::default(),
            last_heard: Instant::now(),
        }
    }

    /// Sends the `welcome` frame, the first of every connection.
    async fn welcome(&mut self) -> Result<(), End> {
        // The connection starts reading its streams there: events at or
        // before these positions still on their way live are not written.
        for (stream, position) in &self.positions {
            self.reached.start_at(stream, *position);
        }
        let welcome = ControlFrame::Welcome {
            connection: self.id,
            user: self.user,
            positions: std::mem::take(&mut self.positions),
        };
        let message = Message::Text(welcome.to_json().into());
        let closed = self.closed.as_mut();
        self.writes.send(&mut self.socket, message, closed).await
    }

    /// Writes, reads, runs rules and pings until something ends the
    /// connection.
    async fn run(&mut self) -> End {
        let ping_interval = self.hub.config().ping_interval;
        let write_interval = self.hub.config().write_interval;
        let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut batch = Vec::new();
        loop {
            let step = tokio::select! {
                biased;
                reason = self.closed.as_mut() => Err(End::Closed(reason)),
                received = self.outgoing.recv_many(&mut batch, MAX_BATCH, self.spacing.wanted()) => {
                    // The steps that write run boxed (see `serve`): one
                    // allocation per write, 384 bytes less in every task's
                    // cell.
                    let written = Box::pin(self.write(&mut batch, received)).await;
                    self.spacing.wrote(received, write_interval);
                    written
                }
                () = self.spacing.opened(), if !self.spacing.is_open() => Ok(()),
                Some(serial) = self.joins.running.next(), if !self.joins.running.is_empty() => {
                    self.joins.ended(serial);
                    // A rule decided: its answer goes out now.
                    self.spacing.open();
                    Ok(())
                }
                message = self.socket.recv() => {
                    // Answers to the browser (`left`, `error`) go out now.
                    self.spacing.open();
                    self.read(message).await
                }
                _ = ping.tick() => Box::pin(self.ping(&ping)).await,
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Writes what the queue held (`received` items, 0 when the queue
    /// closed).
    async fn write(&mut self, batch: &mut Vec<Outgoing>, received: usize) -> Result<(), End> {
        if received == 0 {
            return Err(End::Closed(CloseReason::GoingAway));
        }
        let closed = self.closed.as_mut();
        self.writes
            .batch(&mut self.socket, batch, &mut self.reached, closed)
            .await
    }

    /// Acts on what the browser sent.
    async fn read(&mut self, message: Option<Result<Message, axum::Error>>) -> Result<(), End> {
        self.last_heard = Instant::now();
        match message {
            Some(Ok(Message::Close(_))) | None => return Err(End::Browser),
            // Every other frame counts against the budget, whatever its
            // kind: a binary frame or a ping costs a read and an answer too.
            Some(Ok(message)) => match self.frames.take() {
                Budget::Granted => match message {
                    Message::Text(text) => self.handle_text(&text),
                    Message::Binary(_) => self.send_error(
                        ErrorCode::BinaryFrame,
                        "This protocol uses text frames only.",
                    ),
                    Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
                },
                Budget::Warned => {
                    metrics::counter!("realtime_refusals_total", "limit" => "frames").increment(1);
                    self.send_error(ErrorCode::RateLimited, "Too many frames: slow down.");
                }
                Budget::Spent => {
                    tracing::debug!(connection = %self.id, "frames keep coming past the limit; closing");
                    return Err(End::Closed(CloseReason::RateLimited));
                }
            },
            Some(Err(error)) => {
                tracing::debug!(connection = %self.id, %error, "read failed");
                if is_too_big(&error) {
                    let _ = Box::pin(close_with(
                        &mut self.socket,
                        crate::protocol::close::TOO_BIG,
                        "frame too big",
                    ))
                    .await;
                    return Err(End::TooBig);
                }
                return Err(End::Browser);
            }
        }
        Ok(())
    }

    /// Pings the browser, or gives up on one that answered none for two
    /// intervals.
    async fn ping(&mut self, ping: &Interval) -> Result<(), End> {
        if self.last_heard.elapsed() > ping.period() * 2 {
            tracing::debug!(connection = %self.id, "no answer to pings; closing");
            return Err(End::Silent);
        }
        let closed = self.closed.as_mut();
        self.writes
            .send(&mut self.socket, Message::Ping(Default::default()), closed)
            .await
    }

    /// Acts on one text frame from the browser.
    fn handle_text(&mut self, text: &str) {
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) => frame,
            Err(error) => {
                // serde's message may quote the frame: told in part only.
                let mut message = format!("The frame is not valid: {error}");
                if message.len() > MAX_ROOM_NAME_BYTES {
                    let mut end = MAX_ROOM_NAME_BYTES;
                    while !message.is_char_boundary(end) {
                        end -= 1;
                    }
                    message.truncate(end);
                    message.push('…');
                } else {
                    message.push('.');
                }
                self.send_error(ErrorCode::MalformedFrame, &message);
                return;
            }
        };
        let room = match &frame {
            ClientFrame::Join { room, .. } | ClientFrame::Leave { room } => room,
        };
        if room.is_too_long() {
            self.send_error(ErrorCode::MalformedFrame, &room_name_too_long());
            return;
        }
        match frame {
            ClientFrame::Join { room, since } => self.joins.ask(room, since),
            // Answered with `left` even if it was not in the room, so the
            // browser's view is right either way.
            ClientFrame::Leave { room } => {
                self.joins.cancel(&room);
                if !self.hub.remove_from_room(self.id, &room) {
                    self.hub
                        .send_control(self.id, &ControlFrame::Left { room: &room });
                }
            }
        }
    }

    fn send_error(&self, code: ErrorCode, message: &str) {
        self.hub
            .send_control(self.id, &ControlFrame::Error { code, message });
    }
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
