//! Writing to the socket: every write (a batch of frames, a ping, a close)
//! is bounded by [`super::super::HubConfig::write_timeout`] and cut short
//! when the hub closes the connection, so a browser that stops reading
//! cannot hold the task, its socket or its buffers.

use std::{future::Future, pin::Pin, task::Poll, time::Duration};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use tokio::time::{Sleep, sleep, timeout};

use super::{
    super::{
        CloseReason,
        registry::{Outgoing, Reached, Wanted},
    },
    End,
};

/// Most frames written per flush.
pub(crate) const MAX_BATCH: usize = 64;
/// Frames are written to the socket once this many bytes are buffered,
/// or at the end of a batch, whichever comes first.
pub(crate) const WRITE_BUFFER_BYTES: usize = 8 * 1024;
/// How long a close frame may take to send (after whatever was already
/// buffered), and the browser's close frame to come back, before the socket
/// is dropped.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Writes to the socket, each bounded in time and cut short by a close.
pub(super) struct Writes {
    pub limit: Duration,
}

/// The connection's wait for its close signal.
pub(super) type Closed<'a> = Pin<&'a mut (dyn Future<Output = CloseReason> + Send)>;

impl Writes {
    /// Writes what the queue held, [`MAX_BATCH`] frames at a time, each
    /// time with one flush and within the write timeout: a long replay is
    /// written in many such steps, not cut short by one timeout.
    pub async fn batch(
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

    pub async fn send(
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
        // The rest wait on the heap: the timer would otherwise take room in
        // every connection's task, idle or not.
        let limit = self.limit;
        Box::pin(async move {
            tokio::select! {
                biased;
                reason = closed => Err(End::Closed(reason)),
                written = timeout(limit, write) => match written {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(End::WriteFailed),
                    Err(_) => {
                        tracing::debug!("a write took too long; dropping the connection");
                        Err(End::WriteFailed)
                    }
                },
            }
        })
        .await
    }
}

/// How often the connection writes its queue, at most
/// ([`super::super::HubConfig::write_interval`]).
///
/// After a write that emptied the queue, the queue is left alone for the
/// interval, so that what comes meanwhile goes out in one write (sooner if
/// a quarter of the queue fills first, or the browser sends a frame, whose
/// answer should not wait): a write costs the kernel about the same for one
/// frame as for ten, and at a few events a second per tab it is most of a
/// delivery's cost. An event after a quiet spell is written at once. The
/// socket is still read, pinged and closed meanwhile; only the queue waits.
#[derive(Default)]
pub(super) struct Spacing {
    /// Running after a write, until the queue may be read again. On the
    /// heap, and only then: an idle connection keeps no timer.
    until: Option<Pin<Box<Sleep>>>,
}

impl Spacing {
    /// Whether the interval since the last write has run out.
    pub fn is_open(&self) -> bool {
        self.until.is_none()
    }

    /// What the queue must hold for the task to take it: anything once
    /// the interval is out, a quarter of its room before (so that three
    /// quarters are left for a burst: gathering takes room a burst could
    /// have had, and a queue that overflows closes the tab as too slow).
    pub fn wanted(&self) -> Wanted {
        if self.is_open() {
            Wanted::Any
        } else {
            Wanted::QuarterFull
        }
    }

    /// `taken` items were just written. If that emptied the queue, it
    /// waits for `interval`; if not, what is left goes at once.
    pub fn wrote(&mut self, taken: usize, interval: Duration) {
        self.until = if taken < MAX_BATCH && !interval.is_zero() {
            Some(Box::pin(sleep(interval)))
        } else {
            None
        };
    }

    /// The queue may be read at once: the browser asked for something,
    /// and the answer should not wait for the interval.
    pub fn open(&mut self) {
        self.until = None;
    }

    /// Waits until the queue may be read again. Cancel-safe.
    pub async fn opened(&mut self) {
        if let Some(until) = &mut self.until {
            until.await;
        }
        self.until = None;
    }
}

/// Sends a close frame and waits for the browser's, all within
/// [`CLOSE_TIMEOUT`].
///
/// What the browser sent meanwhile is read and dropped until its close
/// frame comes: a socket closed with unread data is reset, and the reset
/// can overtake the close frame, so that the browser would see 1006
/// instead of the reason (a script flooding frames, told 4029, is the usual
/// case).
pub(super) async fn close_with(
    socket: &mut WebSocket,
    code: u16,
    reason: &'static str,
) -> Result<(), ()> {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let handshake = async {
        socket
            .send(Message::Close(Some(frame)))
            .await
            .map_err(|_| ())?;
        while let Some(Ok(message)) = socket.recv().await {
            if let Message::Close(_) = message {
                break;
            }
        }
        Ok(())
    };
    timeout(CLOSE_TIMEOUT, handshake).await.unwrap_or(Err(()))
}
