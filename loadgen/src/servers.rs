//! The servers a run measures: started on a scratch database with the
//! limits a load generator needs lifted, and waited for until healthy (or
//! the one at `--address`).

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use loadgen::{http, stats::MeasuredProcesses};

use crate::{Error, options::Options};

/// A server process this run started; stopped when dropped.
pub(crate) struct ServerProcess {
    child: Child,
    /// Its metrics listener, whose `/health` tells how many peers it hears.
    metrics: SocketAddr,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(
    binary: &PathBuf,
    cores: Option<&str>,
    database_url: &str,
    redis_url: Option<&str>,
    hostile: bool,
) -> Result<(ServerProcess, SocketAddr), Error> {
    // A free port: bind, read it, release it.
    let address = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    // On the cores asked for: `taskset` becomes the server (it execs it),
    // so the process measured is the server's.
    let mut command = match cores {
        Some(cores) => {
            let mut taskset = Command::new("taskset");
            taskset.arg("-c").arg(cores).arg(binary);
            taskset
        }
        None => Command::new(binary),
    };
    command
        .env("LEPTOS_SITE_ADDR", address.to_string())
        .env("METRICS_ADDR", metrics.to_string())
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        // A channel of this run's own, should Redis be shared.
        .env("REDIS_CHANNEL", format!("loadgen.{}", std::process::id()))
        .env_remove("REDIS_URL");
    // The load generator is one client at 127.0.0.1 doing the work of many:
    // the limits meant for one person or address are lifted.
    for (variable, value) in BENCHMARK_LIMITS {
        command.env(variable, value);
    }
    if !hostile {
        for (variable, value) in UNLESS_HOSTILE {
            command.env(variable, value);
        }
    }
    if let Some(redis_url) = redis_url {
        command.env("REDIS_URL", redis_url);
    }
    let child = command.stdout(Stdio::null()).spawn().map_err(|error| {
        format!(
            "cannot start {}: {error} (build it with cargo build --release -p server)",
            binary.display()
        )
    })?;
    Ok((ServerProcess { child, metrics }, address))
}

/// What the load generator needs lifted on the servers it starts (with
/// `--address`, the server's operator sets them): it is one client at
/// 127.0.0.1 doing the work of many. The attackers of `--hostile` meet
/// every other limit at its default.
const BENCHMARK_LIMITS: [(&str, &str); 4] = [
    // Every user is signed up from this one address.
    ("LIMIT_SIGN_UP_PER_ADDRESS", "100000/s"),
    // `--rate` announcements per second from a handful of users.
    ("LIMIT_ANNOUNCE", "100000/s"),
    // Thousands of connections from 50 users, up to 10,000 and more.
    ("REALTIME_MAX_CONNECTIONS_PER_USER", "100000"),
    ("REALTIME_MAX_CONNECTIONS", "1000000"),
];

/// Lifted too, but for `--hostile`: thousands of new connections at once
/// from 50 users. Under `--hostile` a user's clients stay within its burst,
/// and the flooding attacker meets the pace at its default.
const UNLESS_HOSTILE: [(&str, &str); 1] = [("REALTIME_NEW_CONNECTION_BURST", "1000000")];

/// Waits until the server answers `/health` and, with several processes,
/// hears from all the others through Redis (which its metrics listener's
/// `/health` tells: the public one says only "ok").
async fn wait_until_healthy(
    address: SocketAddr,
    metrics: Option<SocketAddr>,
    peers: usize,
) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let all_peers = format!("\"peers\":{peers}");
    let asked = match metrics {
        Some(metrics) if peers > 0 => metrics,
        _ => address,
    };
    loop {
        if let Ok(mut connection) = http::Connection::open(asked).await
            && let Ok(response) = connection.get("/health").await
            && response.status == 200
            && (peers == 0 || String::from_utf8_lossy(&response.body).contains(&all_peers))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the server at {address} did not become healthy").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The run's own directory, for its SQLite database (unless
/// `--database-url` names another); removed when dropped.
pub(crate) struct Scratch {
    path: PathBuf,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        Self {
            path: std::env::temp_dir().join(format!("loadgen-{}", std::process::id())),
        }
    }

    fn database_url(&self) -> String {
        format!("sqlite://{}/bench.db", self.path.display())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The servers a run measures: the processes it started (none with
/// `--address`), where they listen, and their readings.
pub(crate) struct Servers {
    pub(crate) processes: Vec<ServerProcess>,
    pub(crate) addresses: Vec<SocketAddr>,
    pub(crate) measured: MeasuredProcesses,
}

impl Servers {
    /// Starts `--processes` servers on the run's database, or takes the one
    /// at `--address`; returns once each is healthy and hears from the
    /// others, having printed where they are.
    pub(crate) async fn start(options: &Options, scratch: &Scratch) -> Result<Self, Error> {
        let database_url = options
            .database_url
            .clone()
            .unwrap_or_else(|| scratch.database_url());
        let mut processes = Vec::new();
        let addresses = match options.address {
            Some(address) => vec![address],
            None => {
                let mut addresses = Vec::new();
                for _ in 0..options.processes {
                    let (process, address) = start_server(
                        &options.server,
                        options.server_cores.as_deref(),
                        &database_url,
                        options.redis_url.as_deref(),
                        options.hostile,
                    )?;
                    processes.push(process);
                    addresses.push(address);
                }
                addresses
            }
        };
        let measured =
            MeasuredProcesses::new(processes.iter().map(|process| process.child.id()).collect());
        for (index, address) in addresses.iter().enumerate() {
            let metrics = processes.get(index).map(|process| process.metrics);
            wait_until_healthy(*address, metrics, addresses.len() - 1).await?;
        }
        let servers = Self {
            processes,
            addresses,
            measured,
        };
        servers.print();
        Ok(servers)
    }

    /// A line for each: `server: <address> (pid <pid>)`.
    fn print(&self) {
        for (index, address) in self.addresses.iter().enumerate() {
            println!(
                "server: {address}{}",
                self.measured
                    .pids()
                    .get(index)
                    .map(|pid| format!(" (pid {pid})"))
                    .unwrap_or_default()
            );
        }
    }

    /// The first server: the users sign up there, and the attackers
    /// attack it.
    pub(crate) fn first(&self) -> SocketAddr {
        self.addresses[0]
    }
}
