//! Load generator for the real-time layer.
//!
//! It starts the server (a release build) on a fresh database, signs users
//! up for real, opens thousands of WebSockets with their session cookies,
//! then calls the real `broadcast_event` server function at a fixed rate
//! (logged in: announcing takes a user) and measures, on every connection,
//! what arrives and how late.
//!
//! With `--hostile`, the clients are in a topic (a room) as well, while
//! attackers, each from a loopback address of
//! its own, flood the room with joins and leaves from 20 sockets, post
//! oversized announcements, fire 200 wrong-password log-ins at once, and
//! open 2,000 idle anonymous sockets (`hostile.rs`). It reports what the
//! ordinary clients got, the server's peak memory, and every answer the
//! attackers got.
//!
//! ```sh
//! cargo build --release -p server -p loadgen
//! target/release/loadgen --clients 5000 --rate 50 --seconds 20
//! ```
//!
//! Options (all optional):
//!   --clients N      WebSocket connections to open (1000)
//!   --users N        accounts the connections are spread over (50)
//!   --rate N         broadcasts per second (50)
//!   --seconds N      how long to broadcast (10)
//!   --server PATH    server binary to start (target/release/server; for
//!                    --peer socketio, bench/socketio/target/release/socketio-bench)
//!   --peer P         ours (this project's server) or socketio (the
//!                    socket.io server of bench/socketio, on socketioxide):
//!                    its clients are anonymous, and broadcasts are
//!                    `POST /broadcast` (`peer.rs`)
//!   --server-cores C run the server it starts on these cores only
//!                    (`taskset -c C`: say 1, or 0-1)
//!   --address A      use a server already listening at A (no memory figures)
//!   --processes N    server processes to start (1); clients, sign-ups and
//!                    broadcasts are spread over them round-robin, so most
//!                    deliveries cross from one process to another
//!   --database-url U the processes' database (a fresh SQLite file; for
//!                    several processes, a PostgreSQL database)
//!   --redis-url U    the Redis server the processes share (needed for
//!                    several processes)
//!   --hostile        attack while the clients receive (one process only)
//!   --attacks LIST   which attacks, comma-separated (all: flood,announce,
//!                    passwords,anonymous)
//!   --kill-after S   with --processes 2: kill the first process S seconds
//!                    into the broadcasting; its clients come back on the
//!                    other and must recover every acknowledged event
//!                    (`failover.rs`)
//!
//! The servers it starts inherit its environment: for example
//! `REALTIME_HISTORY_PER_STREAM=0` measures durable events delivered as
//! volatile ones, without a history.
//!
//! Under attack, as in `docs/benchmarks.md`:
//!
//! ```sh
//! target/release/loadgen --hostile --clients 1000 --rate 50 --seconds 20
//! ```
//!
//! Several processes, as in `docs/benchmarks.md`:
//!
//! ```sh
//! target/release/loadgen --processes 2 --clients 5000 --rate 50 \
//!     --database-url postgres://postgres@127.0.0.1/test --redis-url redis://127.0.0.1:6379
//! ```
//!
//! One of two processes killed under load, as in `docs/benchmarks.md`:
//!
//! ```sh
//! target/release/loadgen --processes 2 --clients 2000 --rate 50 --seconds 20 --kill-after 5 \
//!     --database-url postgres://postgres@127.0.0.1/test --redis-url redis://127.0.0.1:6379
//! ```
//!
//! `docs/benchmarks.md` has the figures and how to read them.

mod attack;
mod clients;
mod failover;

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use loadgen::{
    bench_message::{BenchMessage, unix_micros},
    hostile, http,
    pacing::PacedWorkers,
    peer::Peer,
    report::{Step, Table, print_sending},
    server_functions,
    stats::{Latencies, MeasuredProcesses, PeakMemory, millis},
    waiting::wait_for_deliveries,
};

use attack::{ATTACKS, Attack};
use clients::Clients;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug)]
struct Options {
    clients: usize,
    users: usize,
    rate: u32,
    seconds: u32,
    server: PathBuf,
    /// Which server it is.
    peer: Peer,
    /// The cores the servers it starts may run on (`taskset -c`).
    server_cores: Option<String>,
    address: Option<SocketAddr>,
    processes: usize,
    database_url: Option<String>,
    redis_url: Option<String>,
    hostile: bool,
    /// Which attacks `--hostile` runs (all by default).
    attacks: Vec<String>,
    /// Kill the first process this many seconds into the broadcasting.
    kill_after: Option<u32>,
}

impl Options {
    fn parse() -> Result<Self, Error> {
        let mut options = Self {
            clients: 1000,
            users: 50,
            rate: 50,
            seconds: 10,
            server: PathBuf::new(),
            peer: Peer::Ours,
            server_cores: None,
            address: None,
            processes: 1,
            database_url: None,
            redis_url: None,
            hostile: false,
            attacks: ATTACKS.map(str::to_owned).to_vec(),
            kill_after: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--clients" => options.clients = value()?.parse()?,
                "--users" => options.users = value()?.parse()?,
                "--rate" => options.rate = value()?.parse()?,
                "--seconds" => options.seconds = value()?.parse()?,
                "--server" => options.server = value()?.into(),
                "--peer" => options.peer = value()?.parse()?,
                "--server-cores" => options.server_cores = Some(value()?),
                "--address" => options.address = Some(value()?.parse()?),
                "--processes" => options.processes = value()?.parse()?,
                "--database-url" => options.database_url = Some(value()?),
                "--redis-url" => options.redis_url = Some(value()?),
                "--hostile" => options.hostile = true,
                "--kill-after" => options.kill_after = Some(value()?.parse()?),
                "--attacks" => {
                    options.attacks = value()?.split(',').map(str::to_owned).collect();
                    if let Some(unknown) = options
                        .attacks
                        .iter()
                        .find(|a| !ATTACKS.contains(&a.as_str()))
                    {
                        return Err(
                            format!("unknown attack {unknown}: choose among {ATTACKS:?}").into(),
                        );
                    }
                }
                "--help" | "-h" => {
                    println!("see the top of loadgen/src/main.rs for the options");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown option {other}").into()),
            }
        }
        if options.users == 0 || options.clients == 0 || options.rate == 0 || options.processes == 0
        {
            return Err("--clients, --users, --rate and --processes must be at least 1".into());
        }
        if options.processes > 1 && (options.redis_url.is_none() || options.database_url.is_none())
        {
            return Err("several --processes need a shared --database-url and --redis-url".into());
        }
        if options.processes > 1 && options.address.is_some() {
            return Err("--address and --processes cannot be combined".into());
        }
        if options.kill_after.is_some() && (options.processes != 2 || options.hostile) {
            return Err("--kill-after needs --processes 2 (and no --hostile)".into());
        }
        if options.server.as_os_str().is_empty() {
            options.server = options.peer.default_server();
        }
        if options.peer != Peer::Ours
            && (options.processes > 1 || options.hostile || options.kill_after.is_some())
        {
            return Err("--peer socketio runs the plain fan-out against one process".into());
        }
        if options.hostile && (options.processes > 1 || options.address.is_some()) {
            return Err("--hostile starts one server of its own".into());
        }
        if options.hostile && options.clients.div_ceil(options.users) > 64 {
            return Err(
                "--hostile keeps every limit but its own: at most 64 clients per user (--users)"
                    .into(),
            );
        }
        Ok(options)
    }
}

/// A server process this run started; stopped when dropped.
struct ServerProcess {
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

/// The name of the `index`-th user this run signs up.
fn user_name(index: usize) -> String {
    format!("bench-{}-{index}", std::process::id())
}

/// Signs up `count` users; returns their session cookies.
async fn sign_up(address: SocketAddr, count: usize) -> Result<Vec<String>, Error> {
    let mut cookies = Vec::with_capacity(count);
    let mut connection = http::Connection::open(address).await?;
    for index in 0..count {
        let response =
            server_functions::sign_up(&mut connection, &user_name(index), "benchmark password")
                .await?;
        match (response.status, response.cookie) {
            (200, Some(cookie)) => cookies.push(cookie),
            (status, _) => {
                return Err(format!(
                    "sign-up answered {status}: {}",
                    String::from_utf8_lossy(&response.body)
                )
                .into());
            }
        }
    }
    Ok(cookies)
}

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("loadgen: {error}");
        std::process::exit(1);
    }
}

/// A run: starts the servers and signs the users up, then measures the
/// fan-out (under attack with `--hostile`) or, with `--kill-after`, the
/// recovery from a process killed under load.
async fn run() -> Result<(), Error> {
    let options = Options::parse()?;
    // Declared before the servers, so removed after they have stopped.
    let scratch = Scratch::new();
    let servers = Servers::start(&options, &scratch).await?;
    let accounts = if options.peer.has_accounts() {
        sign_up_everyone(servers.first(), &options).await?
    } else {
        Accounts::default()
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    match options.kill_after {
        Some(kill_after) => {
            let Servers {
                processes,
                addresses,
                ..
            } = servers;
            failover::run(
                &addresses,
                processes,
                &accounts.users,
                options.clients,
                options.rate,
                options.seconds,
                kill_after,
            )
            .await
        }
        None => fan_out(&options, servers, &accounts).await,
    }
}

/// The run's own directory, for its SQLite database (unless
/// `--database-url` names another); removed when dropped.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new() -> Self {
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
struct Servers {
    processes: Vec<ServerProcess>,
    addresses: Vec<SocketAddr>,
    measured: MeasuredProcesses,
}

impl Servers {
    /// Starts `--processes` servers on the run's database, or takes the one
    /// at `--address`; returns once each is healthy and hears from the
    /// others, having printed where they are.
    async fn start(options: &Options, scratch: &Scratch) -> Result<Self, Error> {
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
    fn first(&self) -> SocketAddr {
        self.addresses[0]
    }
}

/// The session cookies of the run's users (none for a peer without
/// accounts).
#[derive(Default)]
struct Accounts {
    /// The ordinary clients' users.
    users: Vec<String>,
    /// With `--hostile`, the flooder and the announcer.
    attackers: Vec<String>,
}

/// Signs up `--users` users, and the attackers' two with `--hostile`.
async fn sign_up_everyone(address: SocketAddr, options: &Options) -> Result<Accounts, Error> {
    let step = Step::start(format_args!("signing up {} users", options.users));
    // The attackers have accounts too, past the others.
    let attackers = if options.hostile { 2 } else { 0 };
    let mut users = sign_up(address, options.users + attackers).await?;
    let attackers = users.split_off(options.users);
    step.done();
    Ok(Accounts { users, attackers })
}

/// The fan-out benchmark, under attack with `--hostile`: opens the
/// clients, sends the events, waits for them to arrive, and reports.
async fn fan_out(options: &Options, servers: Servers, accounts: &Accounts) -> Result<(), Error> {
    // Under attack, the clients are in a room: where the flood is.
    let room: Option<Arc<str>> = options
        .hostile
        .then(|| format!("topic:bench-{}", std::process::id()).into());
    let memory_before = servers.measured.resident_bytes();

    let step = Step::start(format_args!("opening {} WebSockets", options.clients));
    let (clients, memory_half) = Clients::open(
        options.peer,
        &servers.addresses,
        &accounts.users,
        options.clients,
        room.as_deref(),
        &servers.measured,
    )
    .await?;
    step.done();
    // The idle reading is of connections at rest, their first frames done.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let memory_idle = servers.measured.resident_bytes();

    let sent = send_events(options, &servers, accounts, room).await?;
    let expected = u64::from(sent.total - sent.failures) * options.clients as u64;
    wait_for_deliveries(&clients.received.deliveries, expected).await;
    // From the first broadcast to the last delivery.
    let cpu_to_deliver = cpu_since(&servers.measured, sent.cpu_before);

    let received = Arc::clone(&clients.received);
    let samples = clients.close().await?;
    drop(servers);

    let under_attack = sent.attacks.map(|attacks| UnderAttack {
        closed_early: received.closed_early.load(Ordering::Relaxed),
        presence_frames: received.presence_frames.load(Ordering::Relaxed),
        presence_bytes: received.presence_bytes.load(Ordering::Relaxed),
        peak_memory: sent.peak_memory,
        cpu_while_sending: sent.cpu_while_sending,
        attacks,
    });
    print_results(&FanOutResults {
        clients: options.clients,
        rate: options.rate,
        total: sent.total,
        failures: sent.failures,
        delivered: received.deliveries.load(Ordering::Relaxed),
        span: Duration::from_micros(
            received
                .last_micros
                .load(Ordering::Relaxed)
                .saturating_sub(sent.started_micros),
        ),
        latencies: Latencies::new(samples),
        cpu_to_deliver,
        memory: MemoryReadings {
            before: memory_before,
            half: memory_half,
            idle: memory_idle,
            busy: sent.memory_busy,
        },
        under_attack,
    });
    Ok(())
}

/// What the sending step leaves for the report.
struct Sent {
    total: u32,
    failures: u32,
    /// When the first broadcast went out, in Unix microseconds.
    started_micros: u64,
    /// The servers' CPU time when the sending started.
    cpu_before: Option<Duration>,
    cpu_while_sending: Option<Duration>,
    memory_busy: Option<u64>,
    peak_memory: u64,
    /// What the attackers got, with `--hostile`.
    attacks: Option<Vec<(&'static str, hostile::Tally)>>,
}

/// Sends `--rate` events a second for `--seconds` seconds, with the
/// attacks running when there is a `room` to flood, reading the servers'
/// CPU and memory around it.
async fn send_events(
    options: &Options,
    servers: &Servers,
    accounts: &Accounts,
    room: Option<Arc<str>>,
) -> Result<Sent, Error> {
    let total = options.rate * options.seconds;
    let aside = if options.hostile {
        ", under attack"
    } else {
        ""
    };
    print_sending(total, options.rate, options.seconds, aside);
    let attack = match room {
        Some(room) => Some(Attack::start(
            &options.attacks,
            servers.first(),
            room,
            &accounts.attackers,
            Instant::now() + Duration::from_secs(options.seconds.into()),
        )?),
        None => None,
    };
    // The servers' largest size while the events go out.
    let peak = PeakMemory::sample(servers.measured.clone());
    let cpu_before = servers.measured.cpu_time();
    let started_micros = unix_micros();
    let failures = broadcast(
        options.peer,
        &servers.addresses,
        &accounts.users,
        options.rate,
        total,
    )
    .await?;
    let cpu_while_sending = cpu_since(&servers.measured, cpu_before);
    let memory_busy = servers.measured.resident_bytes();
    let attacks = match attack {
        Some(attack) => Some(attack.finish().await),
        None => None,
    };
    Ok(Sent {
        total,
        failures,
        started_micros,
        cpu_before,
        cpu_while_sending,
        memory_busy,
        peak_memory: peak.stop(),
        attacks,
    })
}

/// Calls the broadcast server function `total` times at `rate` per second,
/// over 32 keep-alive connections spread over the processes, each logged
/// in as one of the users (announcing takes a logged-in user). Returns how
/// many calls failed.
async fn broadcast(
    peer: Peer,
    addresses: &[SocketAddr],
    cookies: &[String],
    rate: u32,
    total: u32,
) -> Result<u32, Error> {
    // Each connection waits for its call's answer before the next, so
    // there are enough of them that a slow answer does not slow the rate:
    // with 4, on cores shared with the load generator, the announcement's
    // session and user queries (SQLite, on its own thread) took ~90 ms a
    // call, and 200 broadcasts a second became 44.
    const CONNECTIONS: usize = 32;
    let failures = Arc::new(AtomicU64::new(0));
    let mut workers = PacedWorkers::default();
    for index in 0..CONNECTIONS {
        let address = addresses[index % addresses.len()];
        let cookie = cookies.get(index % cookies.len().max(1)).cloned();
        let mut connection = http::Connection::open(address).await?;
        let failures = Arc::clone(&failures);
        workers.spawn(|mut calls| async move {
            while let Some(seq) = calls.recv().await {
                let message = BenchMessage::now(seq).to_string();
                match peer
                    .announce(&mut connection, cookie.as_deref(), &message)
                    .await
                {
                    Ok(response) if response.status == 200 => {}
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    // Round-robin over the connections.
    workers.send_paced(rate, total, |seq| seq as usize).await?;
    Ok(u32::try_from(failures.load(Ordering::Relaxed)).unwrap_or(u32::MAX))
}

/// The servers' CPU time since `before`.
fn cpu_since(servers: &MeasuredProcesses, before: Option<Duration>) -> Option<Duration> {
    servers
        .cpu_time()
        .zip(before)
        .map(|(after, before)| after.saturating_sub(before))
}

/// What the fan-out measured.
struct FanOutResults {
    clients: usize,
    rate: u32,
    total: u32,
    failures: u32,
    delivered: u64,
    /// From the first send to the last arrival.
    span: Duration,
    latencies: Latencies,
    cpu_to_deliver: Option<Duration>,
    memory: MemoryReadings,
    under_attack: Option<UnderAttack>,
}

/// The servers' resident memory along the run, in bytes; `None` where it
/// could not be read (a server at `--address`).
struct MemoryReadings {
    before: Option<u64>,
    half: Option<u64>,
    idle: Option<u64>,
    busy: Option<u64>,
}

/// What `--hostile` adds to the report.
struct UnderAttack {
    closed_early: usize,
    presence_frames: u64,
    presence_bytes: u64,
    peak_memory: u64,
    cpu_while_sending: Option<Duration>,
    attacks: Vec<(&'static str, hostile::Tally)>,
}

/// Prints the deliveries' table, the servers' CPU and memory, and what the
/// attacks met.
fn print_results(results: &FanOutResults) {
    print_deliveries(results);
    if let Some(cpu) = results.cpu_to_deliver {
        println!();
        println!(
            "server CPU from the first broadcast to the last delivery: {:.2} s, {:.2} µs per delivery",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / results.delivered.max(1) as f64,
        );
    }
    print_memory(&results.memory, results.clients);
    if let Some(under_attack) = &results.under_attack {
        print_under_attack(under_attack);
    }
}

/// The table `docs/benchmarks.md` quotes: deliveries, loss and latency.
fn print_deliveries(results: &FanOutResults) {
    let sendable = u64::from(results.total) * results.clients as u64;
    let lost = sendable - results.delivered;
    let latencies = &results.latencies;
    let mut table = Table::new(&[
        "clients",
        "broadcasts/s",
        "sent",
        "failed",
        "deliveries",
        "lost",
        "deliveries/s",
        "p50",
        "p99",
        "max",
    ]);
    table.row(vec![
        results.clients.to_string(),
        results.rate.to_string(),
        results.total.to_string(),
        results.failures.to_string(),
        results.delivered.to_string(),
        format!(
            "{lost} ({:.3} %)",
            100.0 * lost as f64 / sendable.max(1) as f64
        ),
        format!(
            "{:.0}",
            results.delivered as f64 / results.span.as_secs_f64().max(1e-9)
        ),
        millis(latencies.percentile(50.0)),
        millis(latencies.percentile(99.0)),
        millis(latencies.max()),
    ]);
    table.print();
}

/// The memory of an idle connection: the average, and that of the second
/// half alone (the first connections pay one-off costs).
fn print_memory(memory: &MemoryReadings, clients: usize) {
    let (Some(before), Some(half), Some(idle)) = (memory.before, memory.half, memory.idle) else {
        return;
    };
    let second_half = clients - clients / 2;
    println!();
    println!(
        "server memory: {:.1} MiB before connecting, {:.1} MiB with {} idle connections: \
         {:.1} KiB per connection on average, {:.1} KiB for each of the second half; \
         {} while broadcasting",
        mib(before),
        mib(idle),
        clients,
        idle.saturating_sub(before) as f64 / 1024.0 / clients as f64,
        idle.saturating_sub(half) as f64 / 1024.0 / second_half.max(1) as f64,
        memory
            .busy
            .map_or("?".into(), |busy| format!("{:.1} MiB", mib(busy))),
    );
}

/// What the ordinary clients went through under attack, and what each
/// attack got.
fn print_under_attack(under_attack: &UnderAttack) {
    println!();
    println!(
        "ordinary clients closed by the server: {}; presence frames they got: {} ({:.1} MiB); \
         server memory at its largest: {:.1} MiB; server CPU while sending: {}",
        under_attack.closed_early,
        under_attack.presence_frames,
        mib(under_attack.presence_bytes),
        mib(under_attack.peak_memory),
        under_attack
            .cpu_while_sending
            .map_or("?".into(), |cpu| format!("{:.1} s", cpu.as_secs_f64())),
    );
    let mut table = Table::new(&["attack", "answers"]);
    for (attack, tally) in &under_attack.attacks {
        table.row(vec![(*attack).to_owned(), tally.to_string()]);
    }
    table.print();
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}
