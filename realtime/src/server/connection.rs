//! The task that serves one WebSocket, from its `welcome` frame to its
//! removal from the registry.
//!
//! One task per connection does everything: it writes what the queue
//! holds (in batches, with one flush per batch), reads the browser's
//! frames, pings, and closes when asked (`close.rs`). Whatever way it ends,
//! the connection leaves the registry. It talks to the hub only through
//! methods that say what it wants: register, join, leave, answer with an
//! error, forget.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use tokio::time::{Instant, MissedTickBehavior, timeout};

use super::{Hub, Identity, Registration};
use crate::{
    ConnectionId, UserId,
    protocol::{ClientFrame, ControlFrame, ErrorCode, close},
};

/// Most frames written per flush.
const MAX_BATCH: usize = 64;
/// Frames are written to the socket once this many bytes are buffered,
/// or at the end of a batch, whichever comes first.
pub(super) const WRITE_BUFFER_BYTES: usize = 8 * 1024;
/// How long a close frame may take to send (after whatever was already
/// buffered) before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `socket` until it closes.
pub(super) async fn serve(hub: Hub, mut socket: WebSocket, identity: Identity) {
    let user = identity.user;
    let Registration {
        id,
        mut outgoing,
        close_signal,
    } = hub.register(identity);
    let _registered = Registered { hub: &hub, id };
    tracing::debug!(connection = %id, user = ?user, "connected");

    let welcome = ControlFrame::Welcome {
        connection: id,
        user,
    };
    if send_json(&mut socket, &welcome).await.is_err() {
        return;
    }

    let ping_interval = hub.config().ping_interval;
    let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut batch = Vec::new();

    let reason = loop {
        tokio::select! {
            biased;
            reason = close_signal.closed() => break Some(reason),
            received = outgoing.recv_many(&mut batch, MAX_BATCH) => {
                if received == 0 {
                    break None;
                }
                // A peer that stops reading blocks the write; a close
                // request (it is too slow, or logged out) still ends it.
                // The close frame then goes out after what is already
                // buffered, if the peer reads it within the close timeout.
                tokio::select! {
                    biased;
                    reason = close_signal.closed() => break Some(reason),
                    written = write_batch(&mut socket, &mut batch) => {
                        if written.is_err() {
                            break None;
                        }
                    }
                }
            }
            message = socket.recv() => {
                last_heard = Instant::now();
                match message {
                    Some(Ok(Message::Text(text))) => handle_text(&hub, id, user, &text).await,
                    Some(Ok(Message::Binary(_))) => send_error(&hub, id, ErrorCode::BinaryFrame, "This protocol uses text frames only."),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => break None,
                    Some(Err(error)) => {
                        if is_too_big(&error) {
                            let _ = close_with(&mut socket, close::TOO_BIG, "frame too big").await;
                        }
                        tracing::debug!(connection = %id, %error, "read failed");
                        break None;
                    }
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > ping_interval * 2 {
                    tracing::debug!(connection = %id, "no answer to pings; closing");
                    break None;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break None;
                }
            }
        }
    };
    if let Some(reason) = reason {
        let (code, text) = reason.code_and_text();
        let _ = close_with(&mut socket, code, text).await;
    }
    tracing::debug!(connection = %id, ?reason, "disconnected");
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

async fn write_batch(
    socket: &mut WebSocket,
    batch: &mut Vec<Utf8Bytes>,
) -> Result<(), axum::Error> {
    for frame in batch.drain(..) {
        socket.feed(Message::Text(frame)).await?;
    }
    socket.flush().await
}

async fn send_json(socket: &mut WebSocket, frame: &ControlFrame<'_>) -> Result<(), axum::Error> {
    let json = serde_json::to_string(frame).map_err(axum::Error::new)?;
    socket.send(Message::Text(json.into())).await
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
async fn handle_text(hub: &Hub, id: ConnectionId, user: Option<UserId>, text: &str) {
    let frame = match serde_json::from_str::<ClientFrame>(text) {
        Ok(frame) => frame,
        Err(error) => {
            let message = format!("The frame is not valid: {error}.");
            send_error(hub, id, ErrorCode::MalformedFrame, &message);
            return;
        }
    };
    match frame {
        ClientFrame::Join { room } => hub.request_join(id, user, room).await,
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
