//! Faults a test can cause without touching the machine's services: a
//! Redis server of its own to stop and start again ([`PrivateRedis`]),
//! and a TCP proxy to cut and restore ([`CuttableProxy`]), to cut one
//! process off from a service the others still reach.

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use crate::PATIENCE;

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// A `redis-server` of the test's own, on a free port, that the test can
/// stop and start again: empty each time ([`PrivateRedis::start`]), or from
/// the last snapshot it was told to save
/// ([`PrivateRedis::start_with_snapshots`]), as a Redis restarted from an
/// older snapshot comes back. Stopped when dropped.
pub struct PrivateRedis {
    port: u16,
    child: Option<Child>,
    /// Where its snapshot is kept, if it keeps one.
    dir: Option<std::path::PathBuf>,
}

impl PrivateRedis {
    /// One that keeps nothing on disk.
    pub fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            child: None,
            dir: None,
        };
        redis.restart();
        redis
    }

    /// One that saves a snapshot when told ([`PrivateRedis::save`]), and
    /// starts again from it.
    pub fn start_with_snapshots() -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("realtime-test-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a folder for the snapshot");
        let _ = std::fs::remove_file(dir.join("dump.rdb"));
        let mut redis = Self {
            port,
            child: None,
            dir: Some(dir),
        };
        redis.restart();
        redis
    }

    /// Saves a snapshot now (`SAVE`).
    pub fn save(&self) {
        assert!(self.command(&["SAVE"]), "redis-cli SAVE failed");
    }

    /// Stops at once without saving (`SHUTDOWN NOSAVE`): what it held since
    /// its last snapshot is lost.
    pub fn crash(&mut self) {
        // The server closes the connection instead of answering.
        self.command(&["SHUTDOWN", "NOSAVE"]);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// Runs a command with `redis-cli`: whether it succeeded.
    fn command(&self, args: &[&str]) -> bool {
        Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli is installed beside redis-server")
            .success()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Starts it (again, on the same port), and waits until it listens.
    pub fn restart(&mut self) {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"]);
        if let Some(dir) = &self.dir {
            command
                .arg("--dir")
                .arg(dir)
                .args(["--dbfilename", "dump.rdb"]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test says so when it is not)");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A TCP proxy to a service that the test can cut and restore: the
/// processes that connect through it lose the service, the others keep it.
pub struct CuttableProxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl CuttableProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let port = listener.local_addr().expect("an address").port();
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (accepting, forwarded) = (Arc::clone(&up), Arc::clone(&connections));
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    continue; // Dropped: the connection closes at once.
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                if let Ok(mut forwarded) = forwarded.lock() {
                    forwarded.push(task.abort_handle());
                }
            }
        });
        Self {
            port,
            up,
            connections,
        }
    }

    /// Closes every connection through the proxy, and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        if let Ok(mut connections) = self.connections.lock() {
            connections.drain(..).for_each(|task| task.abort());
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
