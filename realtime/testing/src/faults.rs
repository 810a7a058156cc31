//! Faults a test can cause without touching the machine's services: a
//! Redis server of its own to stop and start again ([`PrivateRedis`]), a
//! Redis Cluster of its own whose nodes restart and whose slots move
//! ([`PrivateCluster`]), and a TCP proxy to cut and restore
//! ([`CuttableProxy`]), to cut one process off from a service the others
//! still reach.

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use crate::PATIENCE;

/// A port nobody listens on now, for a server a test starts.
///
/// Taken below the range the kernel gives outgoing connections their
/// local ports from (32768 and up on Linux): a port the kernel picks for a
/// listener of ours and that we then free can be taken, before the test's
/// server binds it, by a connection another test opens meanwhile (a
/// cluster test once failed so: "Address already in use"). Each call in a
/// process gives another port, from an offset of the process's own.
pub fn free_port() -> u16 {
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id().wrapping_mul(7_919);
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + offset.wrapping_add(n) % COUNT;
        let port = u16::try_from(port).expect("the range is below 65536");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + COUNT)
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
        self.child = Some(spawn_redis(&mut command, self.port));
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

/// A three-node Redis Cluster of the test's own (three primaries, no
/// replicas, nothing on disk but each node's cluster configuration), whose
/// nodes the test restarts ([`PrivateCluster::restart_node`]: it comes
/// back empty, with its slots) and whose slots it moves from one node to
/// another, keys and all ([`PrivateCluster::move_slot_of`]). Stopped and
/// removed when dropped.
pub struct PrivateCluster {
    nodes: Vec<ClusterNode>,
    dir: std::path::PathBuf,
}

struct ClusterNode {
    port: u16,
    child: Option<Child>,
}

impl PrivateCluster {
    pub fn start() -> Self {
        let version = Command::new("redis-server")
            .arg("--version")
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .expect("redis-server is installed (scripts/test says so when it is not)");
        let major = version
            .split("v=")
            .nth(1)
            .and_then(|rest| rest.split('.').next())
            .and_then(|major| major.parse::<u32>().ok())
            .unwrap_or(0);
        assert!(
            major >= 7,
            "a Redis Cluster with sharded pub/sub needs redis-server 7 or later: {version}"
        );
        let first = cluster_port();
        let dir = std::env::temp_dir().join(format!(
            "realtime-test-cluster-{}-{first}",
            std::process::id()
        ));
        let mut cluster = Self {
            nodes: Vec::new(),
            dir,
        };
        for port in [first, cluster_port(), cluster_port()] {
            let mut node = ClusterNode { port, child: None };
            cluster.spawn(&mut node);
            cluster.nodes.push(node);
        }
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli is installed beside redis-server");
        assert!(created.success(), "redis-cli --cluster create failed");
        cluster.wait_until_ok();
        cluster
    }

    /// The URL of the first node: the backplane finds the others.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.nodes[0].port)
    }

    /// Every node's URL, separated by commas (as `REDIS_URL` may list them).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("redis://127.0.0.1:{}", node.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills the node that holds `key`'s slot and starts it again: it
    /// comes back with its slots and none of its keys, as a primary
    /// restarted without persistence does. Returns once the cluster is
    /// whole again.
    pub fn restart_node_of(&mut self, key: &str) {
        let index = self.owner_of(self.slot_of(key));
        let mut node = std::mem::replace(
            &mut self.nodes[index],
            ClusterNode {
                port: 0,
                child: None,
            },
        );
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.spawn(&mut node);
        self.nodes[index] = node;
        self.wait_until_ok();
    }

    /// Moves `key`'s slot, with its keys, to another node, as `redis-cli
    /// --cluster reshard` does.
    pub fn move_slot_of(&self, key: &str) {
        let slot = self.slot_of(key).to_string();
        let from = self.owner_of(self.slot_of(key));
        let to = (from + 1) % self.nodes.len();
        let (from_port, to_port) = (self.nodes[from].port, self.nodes[to].port);
        let (from_id, to_id) = (
            self.cli(from_port, &["CLUSTER", "MYID"]),
            self.cli(to_port, &["CLUSTER", "MYID"]),
        );
        self.cli(
            to_port,
            &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id],
        );
        self.cli(
            from_port,
            &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id],
        );
        let keys = self.cli(from_port, &["CLUSTER", "GETKEYSINSLOT", &slot, "1000"]);
        let keys: Vec<&str> = keys.lines().filter(|key| !key.is_empty()).collect();
        if !keys.is_empty() {
            let to_port = to_port.to_string();
            let mut migrate = vec!["MIGRATE", "127.0.0.1", &to_port, "", "0", "5000", "KEYS"];
            migrate.extend(keys);
            self.cli(from_port, &migrate);
        }
        for node in &self.nodes {
            self.cli(node.port, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
        }
        self.wait_until_ok();
        let moved = self.owner_of(self.slot_of(key));
        assert_eq!(moved, to, "slot {slot} did not move");
        let left = self.cli(from_port, &["CLUSTER", "COUNTKEYSINSLOT", &slot]);
        assert_eq!(left, "0", "slot {slot}'s keys did not all move");
    }

    /// The slot `key` hashes to.
    fn slot_of(&self, key: &str) -> u16 {
        self.cli(self.nodes[0].port, &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("CLUSTER KEYSLOT answers a number")
    }

    /// The index of the node that owns `slot`, as every node sees it.
    fn owner_of(&self, slot: u16) -> usize {
        let nodes = self.cli(self.nodes[0].port, &["CLUSTER", "NODES"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let owns = fields.iter().skip(8).any(|range| {
                let mut bounds = range.split('-').map(|bound| bound.parse::<u16>());
                match (bounds.next(), bounds.next()) {
                    (Some(Ok(start)), Some(Ok(end))) => (start..=end).contains(&slot),
                    (Some(Ok(only)), None) => only == slot,
                    _ => false,
                }
            });
            if owns {
                let port = fields[1]
                    .split(['@', ':'])
                    .nth(1)
                    .and_then(|port| port.parse::<u16>().ok());
                return self
                    .nodes
                    .iter()
                    .position(|node| Some(node.port) == port)
                    .expect("the owner is one of the nodes");
            }
        }
        panic!("no node owns slot {slot}");
    }

    /// Runs a command with `redis-cli` on the node at `port`: its output.
    fn cli(&self, port: u16, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli is installed beside redis-server");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Starts a node (again, on its port and in its folder), and waits
    /// until it listens.
    fn spawn(&self, node: &mut ClusterNode) {
        let dir = self.dir.join(node.port.to_string());
        std::fs::create_dir_all(&dir).expect("a folder for the node");
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &node.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--cluster-enabled",
                "yes",
            ])
            .args(["--cluster-node-timeout", "2000"])
            .arg("--dir")
            .arg(&dir);
        node.child = Some(spawn_redis(&mut command, node.port));
    }

    /// Waits until every node says the cluster is whole.
    fn wait_until_ok(&self) {
        let deadline = Instant::now() + 2 * PATIENCE;
        for node in &self.nodes {
            while !self
                .cli(node.port, &["CLUSTER", "INFO"])
                .contains("cluster_state:ok")
            {
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not become whole"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `redis-server` as `command` says, and waits until it listens on
/// `port`.
fn spawn_redis(command: &mut Command, port: u16) -> Child {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed (scripts/test says so when it is not)");
    let deadline = Instant::now() + PATIENCE;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// A free port whose cluster bus port (10000 more) is free too.
fn cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
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
