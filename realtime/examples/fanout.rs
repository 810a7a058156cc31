//! The fan-out alone: emits to thousands of in-memory connections, drained
//! by their tasks (no sockets), on 1 and on 2 worker threads.
//!
//! ```sh
//! cargo run --release -p realtime --features bench --example fanout
//! cargo run --release -p realtime --features bench --example fanout -- \
//!     --connections 5000 --events 2000 --emitters 4 --volatile --room --threads 1,2
//! ```
//!
//! Each run builds a runtime with the number of worker threads named, a
//! hub (in-process, its limits lifted, its queues long enough to hold every
//! event), and the connections; then `--emitters` tasks (as many server
//! functions at once) emit `--events` events to everyone (with `--room`:
//! to a room every connection is in) between them, each letting the others
//! run after every emit (with `--budget`: when Tokio's cooperative budget
//! runs out, every 128 emits, as a task that awaits nothing else would).
//! It prints the deliveries a second, from the first emit to the last frame
//! drained, and the best of `--runs` runs, the settings taking turns; the
//! share of each run the emitters spent inside their emits (the walks);
//! then, run by run, the last setting's rate divided by the first's, and
//! the median of those. With one emitter, only one walk runs at a time, so
//! a run on any number of threads takes at least as long as its walks took
//! on one: the last line says what ratio that allows. `--trace` prints the
//! deliveries a second in every 20 ms of each run.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use realtime::{
    Event, Room,
    server::{Hub, HubConfig},
};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Announcement {
    text: String,
    sent_at: u64,
}

impl Event for Announcement {
    const NAME: &'static str = "bench.announcement";
}

#[derive(Serialize, Deserialize)]
struct Typing {
    text: String,
    sent_at: u64,
}

impl Event for Typing {
    const NAME: &'static str = "bench.typing";
    const DURABLE: bool = false;
}

/// The room of `--room`: every connection is in it.
#[derive(Clone)]
struct Everybody;

impl Room for Everybody {
    const KIND: &'static str = "bench";

    fn key(&self) -> String {
        "all".into()
    }

    fn from_key(key: &str) -> Option<Self> {
        (key == "all").then_some(Everybody)
    }
}

struct Options {
    connections: usize,
    events: u64,
    emitters: u64,
    volatile: bool,
    room: bool,
    threads: Vec<usize>,
    runs: usize,
    trace: bool,
    budget: bool,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Options {
            connections: 5000,
            events: 2000,
            emitters: 4,
            volatile: false,
            room: false,
            threads: vec![1, 2],
            runs: 3,
            trace: false,
            budget: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value"));
            let number = |text: String| {
                text.parse::<u64>()
                    .map_err(|_| format!("{arg}: not a number: {text}"))
            };
            match arg.as_str() {
                "--connections" => options.connections = number(value()?)? as usize,
                "--events" => options.events = number(value()?)?,
                "--emitters" => options.emitters = number(value()?)?.max(1),
                "--runs" => options.runs = number(value()?)?.max(1) as usize,
                "--volatile" => options.volatile = true,
                "--room" => options.room = true,
                "--trace" => options.trace = true,
                "--budget" => options.budget = true,
                "--threads" => {
                    options.threads = value()?
                        .split(',')
                        .map(|threads| number(threads.to_owned()).map(|n| n.max(1) as usize))
                        .collect::<Result<_, _>>()?
                }
                other => return Err(format!("unknown option {other}")),
            }
        }
        Ok(options)
    }
}

fn main() {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("fanout: {error}");
            std::process::exit(2);
        }
    };
    println!(
        "{} connections, {} {} events to {} from {} emitters",
        options.connections,
        options.events,
        if options.volatile {
            "volatile"
        } else {
            "durable"
        },
        if options.room { "a room" } else { "everyone" },
        options.emitters,
    );
    // In turns (1, 2, 1, 2, ...): a virtual machine's speed can drift from
    // one minute to the next, and runs in turns meet the same drift.
    let mut runs: Vec<Vec<Run>> = options.threads.iter().map(|_| Vec::new()).collect();
    for _ in 0..options.runs {
        for (index, &threads) in options.threads.iter().enumerate() {
            let run = run(&options, threads);
            if let Some(trace) = &run.trace {
                let listed: Vec<String> = trace.iter().map(|rate| format!("{rate:.1}")).collect();
                println!(
                    "  {threads} thread(s), M deliveries/s in each 20 ms: {}",
                    listed.join(" ")
                );
            }
            runs[index].push(run);
        }
    }
    let mut best = Vec::new();
    for (&threads, runs) in options.threads.iter().zip(&runs) {
        let top = runs.iter().map(|run| run.rate).fold(0.0, f64::max);
        let listed: Vec<String> = runs.iter().map(|run| format!("{:.0}", run.rate)).collect();
        let walking: Vec<String> = runs
            .iter()
            .map(|run| format!("{:.0} %", run.walking * 100.0))
            .collect();
        println!(
            "{threads} worker thread(s): {top:.0} deliveries/s (best of {}: {}); in the emits: {}",
            options.runs,
            listed.join(", "),
            walking.join(", ")
        );
        best.push((threads, top));
    }
    if let [(one_threads, one), .., (many_threads, many)] = best.as_slice() {
        println!(
            "{many_threads} threads deliver {:.2} times what {one_threads} does",
            many / one
        );
    }
    if let [first, .., last] = runs.as_slice() {
        let mut ratios: Vec<f64> = first
            .iter()
            .zip(last)
            .map(|(one, many)| many.rate / one.rate)
            .collect();
        ratios.sort_by(f64::total_cmp);
        let listed: Vec<String> = ratios.iter().map(|ratio| format!("{ratio:.2}")).collect();
        println!(
            "run by run, in turns: median {:.2} ({})",
            ratios[ratios.len() / 2],
            listed.join(", ")
        );
        // One emitter walks on one thread at a time: however many threads
        // drain, the run takes at least the time its emits took on one.
        if options.emitters == 1 && first[0].threads == 1 {
            let mut bounds: Vec<f64> = first.iter().map(|run| 1.0 / run.walking).collect();
            bounds.sort_by(f64::total_cmp);
            println!(
                "one emitter's walk is {:.0} % of a run on one thread: with its walk on one \
                 thread, no number of threads delivers more than {:.2} times one (median)",
                100.0 / bounds[bounds.len() / 2],
                bounds[bounds.len() / 2]
            );
        }
    }
}

/// What one run measured.
struct Run {
    threads: usize,
    /// Deliveries a second, from the first emit to the last frame drained.
    rate: f64,
    /// The share of the run the emitters spent in their emits (the walks),
    /// all together.
    walking: f64,
    /// With `--trace`: millions of deliveries a second in each 20 ms.
    trace: Option<Vec<f64>>,
}

/// One run.
fn run(options: &Options, threads: usize) -> Run {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("a runtime");
    let (connections, events, emitters, volatile, room, trace, budget) = (
        options.connections,
        options.events,
        options.emitters,
        options.volatile,
        options.room,
        options.trace,
        options.budget,
    );
    // On a worker: the thread that blocks on it only waits for the answer.
    let measured = runtime.spawn(async move {
        let defaults = HubConfig::default();
        let hub = Hub::builder()
            .config(HubConfig {
                max_connections: connections + 1,
                queue_capacity: (events as usize + 1).max(defaults.queue_capacity),
                queue_max_bytes: usize::MAX,
                ..defaults
            })
            .build();
        let drained = Arc::new(hub.drained_connections(connections).await);
        if room {
            for id in drained.ids() {
                hub.join(*id, &Everybody);
            }
        }
        // Every task has started, and written its `joined` frame if any.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let already = drained.delivered();
        let started = Instant::now();
        let done = Arc::new(AtomicBool::new(false));
        // On a thread of its own, not one of the runtime's.
        let tracer = trace.then(|| {
            let (drained, done) = (Arc::clone(&drained), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut rates = Vec::new();
                let mut last = drained.delivered();
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                    let now = drained.delivered();
                    rates.push((now - last) as f64 / 20_000.0);
                    last = now;
                }
                rates
            })
        });
        let per_emitter = events / emitters;
        let total = per_emitter * emitters;
        let emitters: Vec<_> = (0..emitters)
            .map(|_| {
                let hub = hub.clone();
                tokio::spawn(async move {
                    let mut walking = Duration::ZERO;
                    for n in 0..per_emitter {
                        let text = format!("announcement {n}");
                        let walk = Instant::now();
                        let sent_at = started.elapsed().as_micros() as u64;
                        let emit = match (volatile, room) {
                            (true, false) => hub.emit(&Typing { text, sent_at }),
                            (false, false) => hub.emit(&Announcement { text, sent_at }),
                            (true, true) => hub.to_room(&Everybody).emit(&Typing { text, sent_at }),
                            (false, true) => hub
                                .to_room(&Everybody)
                                .emit(&Announcement { text, sent_at }),
                        };
                        emit.expect("the event fits");
                        walking += walk.elapsed();
                        if budget {
                            tokio::task::consume_budget().await;
                        } else {
                            tokio::task::yield_now().await;
                        }
                    }
                    walking
                })
            })
            .collect();
        let mut walking = Duration::ZERO;
        for emitter in emitters {
            walking += emitter.await.expect("an emitter");
        }
        let expected = already + total * drained.len() as u64;
        while drained.delivered() < expected {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let elapsed = started.elapsed();
        done.store(true, Ordering::Relaxed);
        assert_eq!(drained.delivered(), expected, "every event delivered once");
        Run {
            threads,
            rate: (expected - already) as f64 / elapsed.as_secs_f64(),
            walking: walking.as_secs_f64() / elapsed.as_secs_f64(),
            trace: tracer.map(|tracer| tracer.join().expect("the tracer")),
        }
    });
    runtime.block_on(measured).expect("the run")
}
