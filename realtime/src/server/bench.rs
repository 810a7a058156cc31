//! The fan-out without sockets, for `examples/fanout.rs` (the `bench`
//! feature, never in a server's build).
//!
//! [`Hub::drained_connections`] registers visitors' connections as the
//! upgrade does, and gives each a task that does with its queue what a
//! connection's task does, short of the socket: it takes up to
//! [`MAX_BATCH`] items at a time, leaves out what the connection had
//! already, and frames what is left into a write buffer. So what the
//! benchmark measures is the hub's own part of a delivery: the emit's walk,
//! queueing, waking each connection's task, and its batch; the kernel's
//! part (the write) is the side-by-side benchmark's.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use tokio::task::JoinHandle;

use super::{
    Hub, Identity,
    connection::{MAX_BATCH, register},
    registry::{Reached, Wanted},
};
use crate::{ConnectionId, protocol::Resume};

/// A count on a cache line of its own: tasks on different threads never
/// write to the same line.
#[repr(align(64))]
#[derive(Default)]
struct Count(AtomicU64);

/// Connections drained in memory: see the module documentation. Dropping
/// it ends their tasks.
pub struct Drained {
    counts: Arc<[Count]>,
    ids: Vec<ConnectionId>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drained {
    /// Frames the connections' tasks have framed so far, all together.
    pub fn delivered(&self) -> u64 {
        self.counts
            .iter()
            .map(|count| count.0.load(Ordering::Relaxed))
            .sum()
    }

    /// The connections, to put in rooms.
    pub fn ids(&self) -> &[ConnectionId] {
        &self.ids
    }

    /// How many connections there are.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

impl Drop for Drained {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Hub {
    /// Registers `count` visitors' connections whose queues are drained in
    /// memory (see the module documentation). Must be called within the
    /// runtime the tasks are to run on.
    ///
    /// # Panics
    ///
    /// If the hub refuses a connection (its limits are below `count`).
    pub async fn drained_connections(&self, count: usize) -> Drained {
        let counts: Arc<[Count]> = (0..count).map(|_| Count::default()).collect();
        let mut tasks = Vec::with_capacity(count);
        let mut ids = Vec::with_capacity(count);
        for index in 0..count {
            let registration = register(self, Identity::anonymous(), &Resume::default())
                .await
                .unwrap_or_else(|refused| panic!("connection {index} refused: {refused:?}"));
            ids.push(registration.id);
            let hub = self.clone();
            let counts = Arc::clone(&counts);
            tasks.push(tokio::spawn(async move {
                let mut outgoing = registration.outgoing;
                let mut batch = Vec::with_capacity(MAX_BATCH);
                let mut reached = Reached::default();
                let mut frames = Vec::with_capacity(MAX_BATCH);
                let mut buffer = Vec::new();
                while outgoing.recv_many(&mut batch, MAX_BATCH, Wanted::Any).await > 0 {
                    for item in batch.drain(..) {
                        item.write_into(&mut reached, &mut frames);
                    }
                    let written = frames.len() as u64;
                    for frame in frames.drain(..) {
                        // A text frame's header, then its payload, as
                        // tungstenite frames it into its write buffer.
                        buffer.extend_from_slice(&[0x81, 126]);
                        buffer.extend_from_slice(&(frame.len() as u16).to_be_bytes());
                        buffer.extend_from_slice(frame.as_bytes());
                    }
                    std::hint::black_box(&buffer);
                    buffer.clear();
                    counts[index].0.fetch_add(written, Ordering::Relaxed);
                }
                hub.forget(registration.id);
            }));
        }
        Drained { counts, ids, tasks }
    }
}
