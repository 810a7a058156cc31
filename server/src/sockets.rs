//! The runtime the WebSocket connections run on, apart from the one that
//! answers requests (`REALTIME_SOCKET_THREADS`; why:
//! `realtime::server::HubBuilder::socket_runtime`, and docs/benchmarks.md,
//! "A runtime for the sockets").

use std::io;

use tokio::runtime::{Builder, Handle, Runtime};

/// A multi-threaded runtime for the connections' tasks, shut down (without
/// waiting for what still runs on it) when dropped. `Server::serve` drops
/// it last: after the sockets' close handshakes, the hub and the database.
/// Besides the connections, tasks they start run on it (the hub's presence
/// task, started by a first join; a database pool's returns), so it must
/// outlive the hub.
pub struct SocketRuntime {
    /// Taken only when dropped.
    runtime: Option<Runtime>,
    handle: Handle,
}

impl SocketRuntime {
    /// A runtime of `threads` worker threads, named `sockets`; none when
    /// `threads` is 0 (the connections then run on the caller's runtime).
    pub fn start(threads: usize) -> io::Result<Option<Self>> {
        if threads == 0 {
            return Ok(None);
        }
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("sockets")
            .enable_all()
            .build()?;
        Ok(Some(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        }))
    }

    /// What the hub spawns the connections' tasks with.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

impl Drop for SocketRuntime {
    fn drop(&mut self) {
        // Dropped from within the request runtime, where waiting for
        // another runtime's threads is not allowed.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
