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
//!   --server PATH    server binary to start (target/release/server)
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

mod failover;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures_util::StreamExt;
use tokio::{net::TcpStream, sync::Semaphore, task::JoinSet};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

use loadgen::{
    hostile, http,
    stats::{Latencies, cpu_time, millis, resident_bytes},
};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug)]
struct Options {
    clients: usize,
    users: usize,
    rate: u32,
    seconds: u32,
    server: PathBuf,
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
            server: PathBuf::from("target/release/server"),
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
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(
    binary: &PathBuf,
    database_url: &str,
    redis_url: Option<&str>,
    hostile: bool,
) -> Result<(ServerProcess, SocketAddr), Error> {
    // A free port: bind, read it, release it.
    let address = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut command = Command::new(binary);
    command
        .env("LEPTOS_SITE_ADDR", address.to_string())
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
    Ok((ServerProcess { child }, address))
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
/// hears from all the others through Redis.
async fn wait_until_healthy(address: SocketAddr, peers: usize) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let all_peers = format!("\"peers\":{peers}");
    loop {
        if let Ok(mut connection) = http::Connection::open(address).await
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
        let body = format!(
            "name={}&password={}",
            user_name(index),
            http::form_encode("benchmark password")
        );
        let response = connection
            .post_form("/api/auth/sign_up", &body, None)
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

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as u64)
}

/// Shared counters of the receiving side.
#[derive(Default)]
struct Received {
    deliveries: AtomicU64,
    /// When the last benchmark event arrived, in Unix microseconds.
    last_micros: AtomicU64,
    connected: AtomicUsize,
    /// Connections in the benchmark room (`--hostile`).
    joined: AtomicUsize,
    /// Set once the run is over and the load generator closes its
    /// connections itself.
    finished: AtomicBool,
    /// Connections the server closed before then.
    closed_early: AtomicUsize,
    /// Presence frames received, and their bytes, all clients together.
    presence_frames: AtomicU64,
    presence_bytes: AtomicU64,
}

/// Reads one connection until it closes; returns its latencies (µs).
async fn read_events(
    mut socket: impl futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
    + Unpin,
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
        // "bench <seq> <sent micros>" inside an announcement or a message.
        let Some(start) = text.find("bench ") else {
            if text.contains("\"welcome\"") {
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
        let mut numbers = text[start + 6..]
            .split(|c: char| !c.is_ascii_digit())
            .filter(|part| !part.is_empty());
        let (Some(_seq), Some(sent)) = (
            numbers.next(),
            numbers.next().and_then(|sent| sent.parse::<u64>().ok()),
        ) else {
            continue;
        };
        let now = unix_micros();
        latencies.push(u32::try_from(now.saturating_sub(sent)).unwrap_or(u32::MAX));
        received.deliveries.fetch_add(1, Ordering::Relaxed);
        received.last_micros.fetch_max(now, Ordering::Relaxed);
    }
    latencies
}

/// Opens a WebSocket as the user of `cookie`, with `query` in the upgrade
/// (what a tab resumes from, say; empty for none).
async fn open_socket(
    address: SocketAddr,
    cookie: &str,
    query: &str,
) -> Result<tokio_tungstenite::WebSocketStream<TcpStream>, Error> {
    let mut request = format!("ws://{address}/ws?{query}").into_client_request()?;
    request
        .headers_mut()
        .insert("cookie", HeaderValue::from_str(cookie)?);
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (socket, _) = tokio_tungstenite::client_async(request, stream).await?;
    Ok(socket)
}

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("loadgen: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Error> {
    let options = Options::parse()?;
    let scratch = std::env::temp_dir().join(format!("loadgen-{}", std::process::id()));
    let database_url = options
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/bench.db", scratch.display()));
    let mut processes = Vec::new();
    let addresses = match options.address {
        Some(address) => vec![address],
        None => {
            let mut addresses = Vec::new();
            for _ in 0..options.processes {
                let (process, address) = start_server(
                    &options.server,
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
    let pids: Vec<u32> = processes.iter().map(|process| process.child.id()).collect();
    // The memory of every process together; None without a process of ours.
    let memory = || -> Option<u64> {
        if pids.is_empty() {
            return None;
        }
        pids.iter().map(|pid| resident_bytes(*pid)).sum()
    };
    for address in &addresses {
        wait_until_healthy(*address, addresses.len() - 1).await?;
    }
    for (index, address) in addresses.iter().enumerate() {
        println!(
            "server: {address}{}",
            pids.get(index)
                .map(|pid| format!(" (pid {pid})"))
                .unwrap_or_default()
        );
    }

    print!("signing up {} users… ", options.users);
    let started = Instant::now();
    // The attackers of `--hostile` have accounts too, past the others.
    let attackers = if options.hostile { 2 } else { 0 };
    let mut cookies = sign_up(addresses[0], options.users + attackers).await?;
    let attacker_cookies = cookies.split_off(options.users);
    println!("{:.1} s", started.elapsed().as_secs_f64());
    // Under attack, the clients are in a room: where the flood is.
    let room: Option<Arc<str>> = options
        .hostile
        .then(|| format!("topic:bench-{}", std::process::id()).into());

    tokio::time::sleep(Duration::from_millis(500)).await;
    if let Some(kill_after) = options.kill_after {
        let run = failover::run(
            &addresses,
            processes,
            &cookies,
            options.clients,
            options.rate,
            options.seconds,
            kill_after,
        );
        let ran = run.await;
        let _ = std::fs::remove_dir_all(&scratch);
        return ran;
    }
    let memory_before = memory();

    print!("opening {} WebSockets… ", options.clients);
    let started = Instant::now();
    let received = Arc::new(Received::default());
    let mut readers = JoinSet::new();
    let mut closers = Vec::with_capacity(options.clients);
    let limit = Arc::new(Semaphore::new(256));
    let mut opening = JoinSet::new();
    for index in 0..options.clients {
        let cookie = cookies[index % cookies.len()].clone();
        let address = addresses[index % addresses.len()];
        let limit = Arc::clone(&limit);
        opening.spawn(async move {
            let _permit = limit.acquire_owned().await;
            open_socket(address, &cookie, "").await
        });
    }
    let mut memory_half = None;
    while let Some(opened) = opening.join_next().await {
        let socket = opened??;
        if closers.len() == options.clients / 2 {
            memory_half = memory();
        }
        let (mut sink, stream) = socket.split();
        if let Some(room) = &room {
            use futures_util::SinkExt;
            let join = format!(r#"{{"type":"join","room":"{room}"}}"#);
            sink.send(Message::text(join)).await?;
        }
        closers.push(sink);
        readers.spawn(read_events(stream, Arc::clone(&received)));
    }
    let ready = |received: &Received| match &room {
        None => received.connected.load(Ordering::Relaxed),
        Some(_) => received.joined.load(Ordering::Relaxed),
    };
    while ready(&received) < options.clients {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("{:.1} s", started.elapsed().as_secs_f64());

    tokio::time::sleep(Duration::from_secs(1)).await;
    let memory_idle = memory();

    let total = options.rate * options.seconds;
    println!(
        "sending {total} events ({} per second for {} s){}…",
        options.rate,
        options.seconds,
        if options.hostile {
            ", under attack"
        } else {
            ""
        }
    );
    let attack = match room {
        Some(room) => Some(Attack::start(
            &options.attacks,
            addresses[0],
            room,
            &attacker_cookies,
            Instant::now() + Duration::from_secs(options.seconds.into()),
        )),
        _ => None,
    };
    // The server's largest size while the events go out.
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (peak, pids) = (Arc::clone(&peak), pids.clone());
        tokio::spawn(async move {
            loop {
                let now: Option<u64> = pids.iter().map(|pid| resident_bytes(*pid)).sum();
                peak.fetch_max(now.unwrap_or(0), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let server_cpu = || -> Option<Duration> { pids.iter().map(|pid| cpu_time(*pid)).sum() };
    let cpu_before = server_cpu();
    let broadcast_started = unix_micros();
    let failures = broadcast(&addresses, &cookies, options.rate, total).await?;
    let cpu_used = server_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let memory_busy = memory();
    let attacks = match attack {
        Some(attack) => Some(attack.finish().await),
        None => None,
    };
    sampler.abort();

    let expected = u64::from(total - failures) * options.clients as u64;
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    while received.deliveries.load(Ordering::Relaxed) < expected && Instant::now() < drain_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // From the first broadcast to the last delivery.
    let cpu_to_deliver = server_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));

    received.finished.store(true, Ordering::Relaxed);
    for mut closer in closers {
        use futures_util::SinkExt;
        let _ = closer.close().await;
    }
    let mut samples = Vec::new();
    while let Some(latencies) = readers.join_next().await {
        samples.extend(latencies?);
    }
    drop(processes);
    let _ = std::fs::remove_dir_all(&scratch);

    let delivered = received.deliveries.load(Ordering::Relaxed);
    let span = Duration::from_micros(
        received
            .last_micros
            .load(Ordering::Relaxed)
            .saturating_sub(broadcast_started),
    );
    let latencies = Latencies::new(samples);
    let lost = u64::from(total) * options.clients as u64 - delivered;
    println!();
    println!(
        "| clients | broadcasts/s | sent | failed | deliveries | lost | deliveries/s | p50 | p99 | max |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} | {} ({:.3} %) | {:.0} | {} | {} | {} |",
        options.clients,
        options.rate,
        total,
        failures,
        delivered,
        lost,
        100.0 * lost as f64 / (u64::from(total) * options.clients as u64).max(1) as f64,
        delivered as f64 / span.as_secs_f64().max(1e-9),
        millis(latencies.percentile(50.0)),
        millis(latencies.percentile(99.0)),
        millis(latencies.max()),
    );
    if let Some(cpu) = cpu_to_deliver {
        println!();
        println!(
            "server CPU from the first broadcast to the last delivery: {:.2} s, {:.2} µs per delivery",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / delivered.max(1) as f64,
        );
    }
    if let (Some(before), Some(half), Some(idle)) = (memory_before, memory_half, memory_idle) {
        let mib = |bytes: u64| bytes as f64 / 1048576.0;
        let second_half = options.clients - options.clients / 2;
        println!();
        println!(
            "server memory: {:.1} MiB before connecting, {:.1} MiB with {} idle connections: \
             {:.1} KiB per connection on average, {:.1} KiB for each of the second half; \
             {} while broadcasting",
            mib(before),
            mib(idle),
            options.clients,
            idle.saturating_sub(before) as f64 / 1024.0 / options.clients as f64,
            idle.saturating_sub(half) as f64 / 1024.0 / second_half.max(1) as f64,
            memory_busy.map_or("?".into(), |busy| format!("{:.1} MiB", mib(busy))),
        );
    }
    if let Some(attacks) = attacks {
        println!();
        println!(
            "ordinary clients closed by the server: {}; presence frames they got: {} ({:.1} MiB); \
             server memory at its largest: {:.1} MiB; server CPU while sending: {}",
            received.closed_early.load(Ordering::Relaxed),
            received.presence_frames.load(Ordering::Relaxed),
            received.presence_bytes.load(Ordering::Relaxed) as f64 / 1048576.0,
            peak.load(Ordering::Relaxed) as f64 / 1048576.0,
            cpu_used.map_or("?".into(), |cpu| format!("{:.1} s", cpu.as_secs_f64())),
        );
        println!();
        println!("| attack | answers |");
        println!("|---|---|");
        for (attack, tally) in attacks {
            println!("| {attack} | {tally} |");
        }
    }
    Ok(())
}

/// The attacks `--hostile` can run.
const ATTACKS: [&str; 4] = ["flood", "announce", "passwords", "anonymous"];

/// The attacks of `--hostile`, running while the events go out.
///
/// They run on threads of their own, at a lower priority (nice 10): on the
/// two cores the server shares with the load generator, the attackers' own
/// work would otherwise delay the ordinary clients' reads, and count as
/// the server's latency. Real attackers use their own machines. The server
/// gets no priority either way.
struct Attack {
    running: JoinSet<(&'static str, hostile::Tally)>,
    runtime: tokio::runtime::Runtime,
}

impl Attack {
    /// Starts every attack, each from an address of its own, until `until`.
    fn start(
        attacks: &[String],
        address: SocketAddr,
        room: Arc<str>,
        cookies: &[String],
        until: Instant,
    ) -> Self {
        let on = |attack: &str| attacks.iter().any(|chosen| chosen == attack);
        let runtime = attackers_runtime();
        let at = runtime.handle().clone();
        let from = |last: u8| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last));
        let victim = user_name(0);
        let (flooder, announcer) = (cookies[0].clone(), cookies[1].clone());
        let mut running = JoinSet::new();
        if on("flood") {
            running.spawn_on(
                async move {
                    let tally =
                        hostile::flood_joins(from(2), address, flooder, room, 20, until).await;
                    ("20 sockets flooding the room with joins and leaves", tally)
                },
                &at,
            );
        }
        if on("announce") {
            running.spawn_on(
                async move {
                    let tally =
                        hostile::oversized_announcements(from(3), address, announcer, until).await;
                    (
                        "oversized announcements: 64 KiB and 600 characters, over and over",
                        tally,
                    )
                },
                &at,
            );
        }
        if on("passwords") {
            running.spawn_on(
                async move {
                    let tally = hostile::wrong_passwords(from(4), address, &victim, 200).await;
                    ("200 wrong-password log-ins at once", tally)
                },
                &at,
            );
        }
        if on("anonymous") {
            running.spawn_on(
                async move {
                    let (tally, sockets) = hostile::idle_anonymous(from(5), address, 2000).await;
                    // Held open, idle, for the whole attack.
                    tokio::time::sleep_until(until.into()).await;
                    drop(sockets);
                    ("2,000 idle anonymous sockets from one address", tally)
                },
                &at,
            );
        }
        Self { running, runtime }
    }

    async fn finish(mut self) -> Vec<(&'static str, hostile::Tally)> {
        let mut done = Vec::new();
        while let Some(attack) = self.running.join_next().await {
            if let Ok(attack) = attack {
                done.push(attack);
            }
        }
        done.sort_by_key(|(name, _)| *name);
        self.runtime.shutdown_background();
        done
    }
}

/// The attackers' runtime: two threads at nice 10 (see [`Attack`]).
fn attackers_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("attacker")
        .enable_all()
        .on_thread_start(|| {
            #[cfg(target_os = "linux")]
            // SAFETY: setpriority changes this thread's niceness only; a
            // failure leaves it as it was.
            unsafe {
                let thread = libc::gettid();
                libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, 10);
            }
        })
        .build()
        .expect("a runtime for the attackers")
}

/// Calls the broadcast server function `total` times at `rate` per second,
/// over a few keep-alive connections spread over the processes, each logged
/// in as one of the users (announcing takes a logged-in user). Returns how
/// many calls failed.
async fn broadcast(
    addresses: &[SocketAddr],
    cookies: &[String],
    rate: u32,
    total: u32,
) -> Result<u32, Error> {
    const CONNECTIONS: u32 = 4;
    let failures = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    let mut queues = Vec::new();
    for index in 0..CONNECTIONS {
        let (queue, mut calls) = tokio::sync::mpsc::channel::<u32>(64);
        queues.push(queue);
        let failures = Arc::clone(&failures);
        let address = addresses[index as usize % addresses.len()];
        let cookie = cookies[index as usize % cookies.len()].clone();
        let mut connection = http::Connection::open(address).await?;
        workers.spawn(async move {
            while let Some(seq) = calls.recv().await {
                let message = format!("bench {seq} {}", unix_micros());
                let body = format!("event%5Bmessage%5D={}", http::form_encode(&message));
                match connection
                    .post_form("/api/events/broadcast", &body, Some(&cookie))
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
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for seq in 0..total {
        ticker.tick().await;
        let queue = &queues[(seq % CONNECTIONS) as usize];
        queue
            .send(seq)
            .await
            .map_err(|_| "a broadcast worker stopped")?;
    }
    drop(queues);
    while workers.join_next().await.is_some() {}
    Ok(u32::try_from(failures.load(Ordering::Relaxed)).unwrap_or(u32::MAX))
}
