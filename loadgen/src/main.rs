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
//!
//! A run, file by file: `options.rs` reads the command line, `servers.rs`
//! starts the servers, `accounts.rs` signs the users up, `clients.rs` opens
//! the WebSockets, this file sends the events and waits for them, and
//! `results.rs` prints what was measured; `attack.rs` runs `--hostile`'s
//! attacks beside it, and `failover.rs` is the run of `--kill-after`.

mod accounts;
mod attack;
mod clients;
mod failover;
mod options;
mod results;
mod servers;

use std::{
    net::SocketAddr,
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
    report::{Step, print_sending},
    stats::{Latencies, MeasuredProcesses, PeakMemory},
    waiting::wait_for_deliveries,
};

use accounts::{Accounts, sign_up_everyone};
use attack::Attack;
use clients::Clients;
use options::Options;
use results::{FanOutResults, MemoryReadings, UnderAttack, print_results};
use servers::{Scratch, Servers};

type Error = Box<dyn std::error::Error + Send + Sync>;

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
