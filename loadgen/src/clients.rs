//! The ordinary clients of the fan-out: thousands of sockets of logged-in
//! users, each read until it closes, counting what arrives and how late.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
};

use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use tokio::{sync::Semaphore, task::JoinSet};
use tokio_tungstenite::tungstenite::Message;

use loadgen::{
    bench_message::{BenchMessage, unix_micros},
    peer::Peer,
    socket::{WebSocket, join_frame, open_socket, open_socket_at},
    stats::MeasuredProcesses,
    waiting::wait_for_all,
};

use crate::Error;

/// How many sockets are being opened at any moment: thousands at once
/// would overflow the server's queue of connections waiting to be
/// accepted.
const OPENING_AT_ONCE: usize = 256;

/// Shared counters of the receiving side.
#[derive(Default)]
pub struct Received {
    pub deliveries: AtomicU64,
    /// When the last benchmark event arrived, in Unix microseconds.
    pub last_micros: AtomicU64,
    pub connected: AtomicUsize,
    /// Connections in the benchmark room (`--hostile`).
    pub joined: AtomicUsize,
    /// Set once the run is over and the load generator closes its
    /// connections itself.
    pub finished: AtomicBool,
    /// Connections the server closed before then.
    pub closed_early: AtomicUsize,
    /// Presence frames received, and their bytes, all clients together.
    pub presence_frames: AtomicU64,
    pub presence_bytes: AtomicU64,
}

/// The open clients: their writing halves, to close them at the end, and
/// their readers, each of which returns its connection's latencies.
pub struct Clients {
    pub received: Arc<Received>,
    closers: Vec<SplitSink<WebSocket, Message>>,
    readers: JoinSet<Vec<u32>>,
}

impl Clients {
    /// Opens `count` sockets to `peer`, spread round-robin over the users
    /// of `cookies` (none: no accounts) and over `addresses`; with a
    /// `room`, each joins it. Returns once every one is welcomed (or has
    /// joined), with the servers' memory read when half of them were open.
    pub async fn open(
        peer: Peer,
        addresses: &[SocketAddr],
        cookies: &[String],
        count: usize,
        room: Option<&str>,
        servers: &MeasuredProcesses,
    ) -> Result<(Self, Option<u64>), Error> {
        let received = Arc::new(Received::default());
        let mut clients = Self {
            received: Arc::clone(&received),
            closers: Vec::with_capacity(count),
            readers: JoinSet::new(),
        };
        let limit = Arc::new(Semaphore::new(OPENING_AT_ONCE));
        let mut opening = JoinSet::new();
        for index in 0..count {
            let cookie = cookies.get(index % cookies.len().max(1)).cloned();
            let address = addresses[index % addresses.len()];
            let limit = Arc::clone(&limit);
            opening.spawn(async move {
                let _permit = limit.acquire_owned().await;
                match peer {
                    Peer::Ours => open_socket(address, cookie.as_deref(), "").await,
                    Peer::SocketIo => open_socket_at(address, peer.socket_path()).await,
                }
            });
        }
        let mut memory_half = None;
        while let Some(opened) = opening.join_next().await {
            let socket = opened??;
            if clients.closers.len() == count / 2 {
                memory_half = servers.resident_bytes();
            }
            clients.add(peer, socket, room).await?;
        }
        let ready = match room {
            None => &received.connected,
            Some(_) => &received.joined,
        };
        wait_for_all(ready, count).await;
        Ok((clients, memory_half))
    }

    /// Starts reading `socket`, after saying hello to `peer` and joining
    /// `room` if there is one.
    async fn add(
        &mut self,
        peer: Peer,
        socket: WebSocket,
        room: Option<&str>,
    ) -> Result<(), Error> {
        let (mut sink, stream) = socket.split();
        if let Some(hello) = peer.hello() {
            sink.send(Message::text(hello)).await?;
        }
        if let Some(room) = room {
            sink.send(Message::text(join_frame(room))).await?;
        }
        self.closers.push(sink);
        self.readers
            .spawn(read_events(peer, stream, Arc::clone(&self.received)));
        Ok(())
    }

    /// Closes every socket (the server closing one from now on is not
    /// counted as early) and returns the latencies of all, in µs.
    pub async fn close(mut self) -> Result<Vec<u32>, Error> {
        self.received.finished.store(true, Ordering::Relaxed);
        for mut closer in self.closers {
            let _ = closer.close().await;
        }
        let mut samples = Vec::new();
        while let Some(latencies) = self.readers.join_next().await {
            samples.extend(latencies?);
        }
        Ok(samples)
    }
}

/// Reads one connection until it closes; returns its latencies (µs).
async fn read_events(
    peer: Peer,
    mut socket: SplitStream<WebSocket>,
    received: Arc<Received>,
) -> Vec<u32> {
    let mut latencies = Vec::new();
    while let Some(Ok(message)) = socket.next().await {
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) if !received.finished.load(Ordering::Relaxed) => {
                received.closed_early.fetch_add(1, Ordering::Relaxed);
                break;
            }
            _ => continue,
        };
        // A benchmark announcement, or one of the frames counted beside.
        let Some(message) = BenchMessage::find_in(&text) else {
            if peer.is_ready(&text) {
                received.connected.fetch_add(1, Ordering::Relaxed);
            } else if text.contains("\"joined\"") {
                received.joined.fetch_add(1, Ordering::Relaxed);
            } else if text.starts_with("{\"type\":\"event\",\"name\":\"realtime.presence\"") {
                received.presence_frames.fetch_add(1, Ordering::Relaxed);
                received
                    .presence_bytes
                    .fetch_add(text.len() as u64, Ordering::Relaxed);
            }
            continue;
        };
        let now = unix_micros();
        latencies.push(u32::try_from(now.saturating_sub(message.sent_micros)).unwrap_or(u32::MAX));
        received.deliveries.fetch_add(1, Ordering::Relaxed);
        received.last_micros.fetch_max(now, Ordering::Relaxed);
    }
    latencies
}
