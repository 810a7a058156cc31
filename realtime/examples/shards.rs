//! Several processes on one Redis (or a Redis Cluster): what each receives
//! and spends, with every durable event on one channel (`--shards 1`, the
//! design before shards) and with shards subscribed on demand.
//!
//! ```sh
//! cargo run --release -p realtime --features bench,redis --example shards -- \
//!     --redis redis://127.0.0.1:6379 --processes 1,2,4,8 --shards 1,1024 --per-room 16
//! ```
//!
//! For each shard count and each number of processes N, it starts N copies
//! of itself (`--child`), each a hub on the Redis backplane with in-memory
//! connections (`Hub::drained_connections`): `--per-room` of them in each
//! of its rooms, room r belonging to process r mod N, so that each
//! process's tabs read 1/N of the `--rooms`. At an agreed moment the
//! processes emit durable events to rooms drawn at random among all of
//! them, `--rate` a second between them all, for `--seconds`, in
//! `--batches` batches a second between them all (each process sends its
//! share of the batches, at moments spaced between the others'): the
//! site's traffic, not the number of processes, sets how many events a
//! batch carries, as it sets how many each request emits in a real site.
//! Each process then reports the messages it received from Redis, the
//! events its connections were handed, and the CPU time it spent (from
//! `/proc`); the parent adds Redis's CPU time and commands (`INFO`) over
//! the same time, and prints one line per run: every process's figures
//! together, or with `--observe` one process's own, the first of two
//! where the second plays the other N - 1 (what one of N costs, with no
//! more processes than cores).

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use realtime::{
    Event, Room,
    server::{Hub, HubConfig, broker::redis::RedisBackplane},
};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Posted {
    text: String,
}

impl Event for Posted {
    const NAME: &'static str = "bench.posted";
}

/// Room `n` of the benchmark.
#[derive(Clone)]
struct BenchRoom(u32);

impl Room for BenchRoom {
    const KIND: &'static str = "bench";

    fn key(&self) -> String {
        self.0.to_string()
    }

    fn from_key(key: &str) -> Option<Self> {
        key.parse().ok().map(BenchRoom)
    }
}

#[derive(Clone)]
struct Options {
    redis: String,
    processes: Vec<u32>,
    shards: Vec<u16>,
    rooms: u32,
    per_room: u32,
    rate: u32,
    batches: u32,
    seconds: u64,
    /// Two processes for each N: one of N, observed, and one that plays
    /// the other N - 1.
    observe: bool,
    /// In a child: what it plays.
    child: Option<Child>,
}

/// What a child plays: processes `first..first + count` of `of`.
#[derive(Clone)]
struct Child {
    first: u32,
    count: u32,
    of: u32,
    channel: String,
    shards: u16,
    start_at_ms: u64,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Options {
            redis: "redis://127.0.0.1:6379".into(),
            processes: vec![1, 2, 4, 8],
            shards: vec![1, 1024],
            rooms: 256,
            per_room: 16,
            rate: 12000,
            batches: 200,
            seconds: 8,
            observe: false,
            child: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value"));
            let number = |text: &str| {
                text.parse::<u64>()
                    .map_err(|_| format!("{arg}: not a number: {text}"))
            };
            let list = |text: String| {
                text.split(',')
                    .map(&number)
                    .collect::<Result<Vec<u64>, String>>()
            };
            match arg.as_str() {
                "--redis" => options.redis = value()?,
                "--processes" => {
                    options.processes = list(value()?)?.into_iter().map(|n| n as u32).collect()
                }
                "--shards" => {
                    options.shards = list(value()?)?.into_iter().map(|n| n as u16).collect()
                }
                "--rooms" => options.rooms = number(&value()?)? as u32,
                "--per-room" => options.per_room = number(&value()?)? as u32,
                "--rate" => options.rate = number(&value()?)? as u32,
                "--batches" => options.batches = (number(&value()?)? as u32).max(1),
                "--seconds" => options.seconds = number(&value()?)?,
                "--observe" => options.observe = true,
                "--child" => {
                    let text = value()?;
                    let parts: Vec<&str> = text.split(':').collect();
                    let [first, count, of, channel, shards, start] = parts.as_slice() else {
                        return Err("--child first:count:of:channel:shards:start_ms".into());
                    };
                    options.child = Some(Child {
                        first: number(first)? as u32,
                        count: number(count)?.max(1) as u32,
                        of: number(of)?.max(1) as u32,
                        channel: (*channel).to_owned(),
                        shards: number(shards)? as u16,
                        start_at_ms: number(start)?,
                    });
                }
                other => return Err(format!("unknown option {other}")),
            }
        }
        Ok(options)
    }
}

/// What a child reports, one line of JSON.
#[derive(Serialize, Deserialize)]
struct Report {
    emitted: u64,
    received: u64,
    delivered: u64,
    cpu_seconds: f64,
}

fn main() {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("shards: {error}");
            std::process::exit(2);
        }
    };
    match options.child.clone() {
        Some(child) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime");
            // On the runtime's worker, as a server's emits are: not on
            // this thread, which would wake the worker at every emit.
            let report = runtime
                .block_on(runtime.spawn(async move { run_child(&options, child).await }))
                .expect("the child's run");
            println!("{}", serde_json::to_string(&report).expect("a report"));
        }
        None => run_parent(&options),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or_default()
}

/// The CPU time this process has used (user and system, every thread).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command's name in parentheses: fields 14 and 15 overall.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

async fn run_child(
    options: &Options,
    Child {
        first,
        count,
        of,
        channel,
        shards,
        start_at_ms,
    }: Child,
) -> Report {
    let plays = first..first + count;
    let mine: Vec<u32> = (0..options.rooms)
        .filter(|room| plays.contains(&(room % of)))
        .collect();
    let connections = (mine.len() as u32 * options.per_room) as usize;
    let defaults = HubConfig::default();
    let redis = RedisBackplane::new(&options.redis)
        .expect("a valid REDIS URL")
        .channel(channel)
        .shards(shards);
    let hub = Hub::builder()
        .config(HubConfig {
            max_connections: connections + 1,
            queue_capacity: defaults.queue_capacity.max(4096),
            queue_max_bytes: usize::MAX,
            ..defaults
        })
        .backplane(redis)
        .build();
    while hub.backplane_connected() != Some(true) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drained = hub.drained_connections(connections).await;
    for (n, id) in drained.ids().iter().enumerate() {
        hub.join(*id, &BenchRoom(mine[n / options.per_room as usize]));
    }
    let wait = start_at_ms.saturating_sub(now_ms());
    tokio::time::sleep(Duration::from_millis(wait)).await;

    let (received, delivered, cpu) = (hub.backplane_received(), drained.delivered(), cpu_seconds());
    let per_second = u64::from(options.rate) * u64::from(count) / u64::from(of);
    let total = per_second * options.seconds;
    // This process's share of the batches, its moments between the others'.
    let period =
        Duration::from_secs_f64(f64::from(of) / f64::from(options.batches) / f64::from(count));
    tokio::time::sleep(period * first / of).await;
    let started = Instant::now();
    let mut emitted = 0;
    let mut tick = tokio::time::interval(period);
    while emitted < total {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * per_second as f64) as u64;
        while emitted < due.min(total) {
            let room = BenchRoom(rand::random::<u32>() % options.rooms);
            let text = format!("event {emitted} of process {first}");
            hub.to_room(&room)
                .emit(&Posted { text })
                .expect("the event fits");
            emitted += 1;
        }
    }
    // What is on its way arrives.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = Report {
        emitted,
        received: hub.backplane_received() - received,
        delivered: drained.delivered() - delivered,
        cpu_seconds: cpu_seconds() - cpu,
    };
    hub.shutdown().await;
    report
}

/// Redis's CPU seconds so far on each node, and the commands processed
/// by all of them.
fn redis_totals(url: &str) -> (Vec<f64>, u64) {
    let mut cpu = Vec::new();
    let mut commands = 0;
    for node in url.split(',') {
        let address = node
            .trim()
            .trim_start_matches("redis://")
            .trim_end_matches('/');
        let (host, port) = address.split_once(':').unwrap_or((address, "6379"));
        let mut ports = vec![port.to_owned()];
        // A cluster named by one node: every node it knows.
        let nodes = Command::new("redis-cli")
            .args(["-h", host, "-p", port, "cluster", "nodes"])
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default();
        if nodes.contains("master") && !url.contains(',') {
            ports = nodes
                .lines()
                .filter_map(|line| line.split(' ').nth(1))
                .filter_map(|address| address.split(['@', ':']).nth(1).map(str::to_owned))
                .collect();
        }
        for port in ports {
            let info = Command::new("redis-cli")
                .args(["-h", host, "-p", &port, "info", "all"])
                .output()
                .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
                .unwrap_or_default();
            cpu.push(0.0);
            let node_cpu = cpu.last_mut().expect("just pushed");
            for line in info.lines() {
                let line = line.trim();
                if let Some(value) = line
                    .strip_prefix("used_cpu_sys:")
                    .or_else(|| line.strip_prefix("used_cpu_user:"))
                {
                    *node_cpu += value.parse::<f64>().unwrap_or(0.0);
                }
                if let Some(value) = line.strip_prefix("total_commands_processed:") {
                    commands += value.parse::<u64>().unwrap_or(0);
                }
            }
        }
    }
    (cpu, commands)
}

fn run_parent(options: &Options) {
    println!(
        "{} rooms, {} connections each, {} durable events/s to random rooms for {} s, Redis {}",
        options.rooms, options.per_room, options.rate, options.seconds, options.redis
    );
    if options.observe {
        println!("one of N processes observed, a second one playing the other N - 1:");
    }
    println!(
        "shards processes | received/process  received, all  delivered/s  server CPU %  µs CPU/delivery | Redis CPU %  busiest node %  Redis commands/s"
    );
    let exe = std::env::current_exe().expect("this program's path");
    for &shards in &options.shards {
        for &of in &options.processes {
            let channel = format!("bench.{:016x}", rand::random::<u64>());
            let start_at = now_ms() + 3000 + 300 * u64::from(of);
            // (first, count) of each child: N of one each, or the observed
            // one and one for the rest.
            let plays: Vec<(u32, u32)> = if options.observe && of > 1 {
                vec![(0, 1), (1, of - 1)]
            } else {
                (0..of).map(|index| (index, 1)).collect()
            };
            let children: Vec<_> = plays
                .iter()
                .map(|(first, count)| {
                    Command::new(&exe)
                        .args(["--redis", &options.redis])
                        .args(["--rooms", &options.rooms.to_string()])
                        .args(["--per-room", &options.per_room.to_string()])
                        .args(["--rate", &options.rate.to_string()])
                        .args(["--batches", &options.batches.to_string()])
                        .args(["--seconds", &options.seconds.to_string()])
                        .args([
                            "--child",
                            &format!("{first}:{count}:{of}:{channel}:{shards}:{start_at}"),
                        ])
                        .stdout(Stdio::piped())
                        .spawn()
                        .expect("a child process")
                })
                .collect();
            std::thread::sleep(Duration::from_millis(start_at.saturating_sub(now_ms())));
            let (cpu_before, commands_before) = redis_totals(&options.redis);
            let began = Instant::now();
            let reports: Vec<Report> = children
                .into_iter()
                .map(|mut child| {
                    let stdout = child.stdout.take().expect("its output");
                    let line = BufReader::new(stdout)
                        .lines()
                        .map_while(Result::ok)
                        .last()
                        .unwrap_or_default();
                    let _ = child.wait();
                    serde_json::from_str(&line).expect("a child's report")
                })
                .collect();
            let elapsed = began.elapsed().as_secs_f64();
            let (cpu_after, commands_after) = redis_totals(&options.redis);
            let redis_cpu: Vec<f64> = cpu_after
                .iter()
                .zip(&cpu_before)
                .map(|(after, before)| after - before)
                .collect();
            let received: u64 = reports.iter().map(|report| report.received).sum();
            let delivered: u64 = reports.iter().map(|report| report.delivered).sum();
            let cpu: f64 = reports.iter().map(|report| report.cpu_seconds).sum();
            // Observing: the first process's own figures; otherwise every
            // process's, each process's received as their mean.
            let (received_here, delivered_here, cpu_here) = match reports.first() {
                Some(observed) if options.observe => (
                    observed.received as f64,
                    observed.delivered,
                    observed.cpu_seconds,
                ),
                _ => (received as f64 / f64::from(of), delivered, cpu),
            };
            println!(
                "{shards:>6} {of:>9} | {:>16.0}  {:>13}  {:>11.0}  {:>12.1}  {:>15.2} | {:>11.1}  {:>14.1}  {:>16.0}",
                received_here,
                received,
                delivered_here as f64 / options.seconds as f64,
                cpu_here * 100.0 / elapsed,
                cpu_here * 1e6 / delivered_here.max(1) as f64,
                redis_cpu.iter().sum::<f64>() * 100.0 / elapsed,
                redis_cpu.iter().copied().fold(0.0, f64::max) * 100.0 / elapsed,
                (commands_after - commands_before) as f64 / elapsed,
            );
        }
    }
}
