//! `--kill-after S`: one of two processes dies under load, and its clients
//! come back on the other.
//!
//! Each client is a browser tab as the runtime in `realtime::client`
//! behaves: it keeps a tab id and its position in everyone's stream, and
//! when its socket dies it opens another on the surviving process, asking
//! (in the upgrade's query) for what followed that position. Announcements
//! go out at `--rate` through both processes, then through the survivor
//! only; each one the server acknowledged (the server function answers
//! once Redis has placed the event, `Emit::emit_placed`) must reach every
//! client exactly once. The first process is killed (SIGKILL: no goodbye,
//! no close frame) `S` seconds into the broadcasting.
//!
//! Reported: how long each client of the dead process took to be back and
//! to have every event it missed, and how many acknowledged events any
//! client lacks or got twice.

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::{Error, servers::ServerProcess};
use loadgen::{
    bench_message::{BenchMessage, unix_micros},
    http,
    pacing::PacedWorkers,
    report::{Step, Table, print_sending},
    server_functions::announce,
    socket::open_socket,
    waiting::{wait_for_all, wait_for_deliveries},
};

/// What the clients share.
struct Run {
    addresses: [SocketAddr; 2],
    /// When the first process was killed.
    killed_at: OnceLock<Instant>,
    /// Set once the run is over: sockets closing then are not failures.
    finished: AtomicBool,
    connected: AtomicUsize,
    deliveries: AtomicU64,
}

/// What one client saw.
#[derive(Default)]
struct Seen {
    /// Whether it started on the process that was killed.
    on_dead: bool,
    seqs: HashSet<u32>,
    duplicates: u64,
    discontinuities: u64,
    /// From the kill to its `welcome` on the survivor.
    back_after: Option<Duration>,
    /// From the kill to the last event it had missed (or its `welcome`,
    /// if it had missed none).
    recovered_after: Option<Duration>,
}

/// The run of `--kill-after`: opens the tabs, announces while the first
/// process is killed, waits for the deliveries, and reports.
pub async fn run(
    addresses: &[SocketAddr],
    mut processes: Vec<ServerProcess>,
    cookies: &[String],
    clients: usize,
    rate: u32,
    seconds: u32,
    kill_after: u32,
) -> Result<(), Error> {
    let [first, second] = addresses else {
        return Err("--kill-after needs --processes 2".into());
    };
    let run = Arc::new(Run {
        addresses: [*first, *second],
        killed_at: OnceLock::new(),
        finished: AtomicBool::new(false),
        connected: AtomicUsize::new(0),
        deliveries: AtomicU64::new(0),
    });
    let (mut tabs, seen) = open_tabs(&run, cookies, clients).await;

    let total = rate * seconds;
    print_sending(
        total,
        rate,
        seconds,
        &format!("; killing {first} after {kill_after} s"),
    );
    let killer = kill_later(&run, processes.remove(0), kill_after);
    let acked = broadcast(&run, cookies, rate, total).await;
    killer.await?;
    wait_for_deliveries(&run.deliveries, acked.len() as u64 * clients as u64).await;
    run.finished.store(true, Ordering::SeqCst);
    tabs.abort_all();
    while tabs.join_next().await.is_some() {}
    drop(processes);
    let seen_all: Vec<Seen> = seen
        .iter()
        .filter_map(|seen| Some(std::mem::take(&mut *seen.lock().ok()?)))
        .collect();
    report(&seen_all, &acked, total);
    Ok(())
}

/// Opens `clients` tabs, every other one on the process to be killed;
/// returns once all are welcomed, with what each will see.
async fn open_tabs(
    run: &Arc<Run>,
    cookies: &[String],
    clients: usize,
) -> (JoinSet<()>, Vec<Arc<Mutex<Seen>>>) {
    let step = Step::start(format_args!("opening {clients} WebSockets"));
    let mut tabs = JoinSet::new();
    let mut seen = Vec::with_capacity(clients);
    for index in 0..clients {
        let cookie = cookies[index % cookies.len()].clone();
        let tab_seen = Arc::new(Mutex::new(Seen {
            on_dead: index % 2 == 0,
            ..Seen::default()
        }));
        seen.push(Arc::clone(&tab_seen));
        tabs.spawn(tab(Arc::clone(run), index % 2, cookie, tab_seen));
    }
    wait_for_all(&run.connected, clients).await;
    step.done();
    (tabs, seen)
}

/// Kills `dead` (SIGKILL, as it is dropped: no goodbye, no close frame)
/// `after` seconds from now, and notes when.
fn kill_later(run: &Arc<Run>, dead: ServerProcess, after: u32) -> tokio::task::JoinHandle<()> {
    let run = Arc::clone(run);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(after.into())).await;
        let _ = run.killed_at.set(Instant::now());
        drop(dead);
    })
}

/// Prints what the clients saw: how soon those of the dead process were
/// back and had what they missed, and what any client lacks or got twice.
fn report(seen_all: &[Seen], acked: &[u32], total: u32) {
    let lacking: u64 = seen_all
        .iter()
        .map(|seen| acked.iter().filter(|seq| !seen.seqs.contains(seq)).count() as u64)
        .sum();
    let duplicates: u64 = seen_all.iter().map(|seen| seen.duplicates).sum();
    let discontinuities: u64 = seen_all.iter().map(|seen| seen.discontinuities).sum();
    let dead: Vec<&Seen> = seen_all.iter().filter(|seen| seen.on_dead).collect();
    let back = |pick: fn(&Seen) -> Option<Duration>| {
        let mut times: Vec<Duration> = dead.iter().filter_map(|seen| pick(seen)).collect();
        times.sort();
        times
    };
    let back_times = back(|seen| seen.back_after);
    let recovered_times = back(|seen| seen.recovered_after);
    let quantile = |times: &[Duration], q: f64| -> String {
        if times.is_empty() {
            return "-".into();
        }
        let index = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
        format!("{:.2} s", times[index].as_secs_f64())
    };
    let p50_p99_max = |times: &[Duration]| {
        format!(
            "{} / {} / {}",
            quantile(times, 0.5),
            quantile(times, 0.99),
            quantile(times, 1.0)
        )
    };
    let mut table = Table::new(&[
        "clients",
        "of the dead process",
        "back",
        "back, p50 / p99 / max",
        "recovered, p50 / p99 / max",
        "sent",
        "acknowledged",
        "lacking",
        "twice",
        "discontinuities",
    ]);
    table.row(vec![
        seen_all.len().to_string(),
        dead.len().to_string(),
        back_times.len().to_string(),
        p50_p99_max(&back_times),
        p50_p99_max(&recovered_times),
        total.to_string(),
        acked.len().to_string(),
        lacking.to_string(),
        duplicates.to_string(),
        discontinuities.to_string(),
    ]);
    table.print();
}

/// Announces `total` times at `rate`, through both processes in turn
/// until the first is killed, then through the second only. Returns the
/// sequence numbers the server acknowledged.
async fn broadcast(run: &Arc<Run>, cookies: &[String], rate: u32, total: u32) -> Vec<u32> {
    // A few keep-alive connections to each process.
    const PER_PROCESS: usize = 2;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut workers = PacedWorkers::default();
    for (index, address) in run
        .addresses
        .iter()
        .flat_map(|address| std::iter::repeat_n(*address, PER_PROCESS))
        .enumerate()
    {
        let cookie = cookies[index % cookies.len()].clone();
        let acked = Arc::clone(&acked);
        workers.spawn(|mut calls| async move {
            let mut connection = http::Connection::open(address).await.ok();
            while let Some(seq) = calls.recv().await {
                let Some(open) = connection.as_mut() else {
                    continue; // Its process is gone: not acknowledged.
                };
                let message = BenchMessage::now(seq).to_string();
                match announce(open, &cookie, &message).await {
                    Ok(response) if response.status == 200 => {
                        if let Ok(mut acked) = acked.lock() {
                            acked.push(seq);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => connection = None,
                }
            }
        });
    }
    let choose = |seq: u32| {
        let worker = seq as usize % (2 * PER_PROCESS);
        // After the kill, only the survivor's workers (the second half).
        if run.killed_at.get().is_some() {
            PER_PROCESS + worker % PER_PROCESS
        } else {
            worker
        }
    };
    // A worker stops only by panicking: the announcements it was to make
    // then show as not acknowledged.
    let _ = workers.send_paced(rate, total, choose).await;
    acked.lock().map(|acked| acked.clone()).unwrap_or_default()
}

/// One tab: connects to process `start`, reads, and when its socket dies,
/// reconnects to the survivor asking for what it missed.
async fn tab(run: Arc<Run>, start: usize, cookie: String, seen: Arc<Mutex<Seen>>) {
    let tab_id: u64 = rand_u64();
    let mut position: Option<(String, u64)> = None;
    let mut address = run.addresses[start];
    let mut first = true;
    loop {
        let mut query = format!("tab={tab_id:016x}");
        if let Some((epoch, offset)) = &position {
            query.push_str(&format!("&since=everyone@{epoch}.{offset}"));
        }
        let Ok(mut socket) = open_socket(address, Some(&cookie), &query).await else {
            if run.finished.load(Ordering::SeqCst) {
                return;
            }
            address = run.addresses[1];
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut welcomed_at_micros = None;
        while let Some(Ok(message)) = socket.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let Ok(frame) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            let Ok(mut seen) = seen.lock() else {
                return;
            };
            match frame["type"].as_str() {
                Some("welcome") => {
                    welcomed_at_micros = Some(unix_micros());
                    if first {
                        run.connected.fetch_add(1, Ordering::Relaxed);
                        first = false;
                    } else if let Some(killed_at) = run.killed_at.get() {
                        seen.back_after = Some(killed_at.elapsed());
                        seen.recovered_after.get_or_insert(killed_at.elapsed());
                    }
                    if position.is_none()
                        && let Some(at) = frame["positions"].get("everyone")
                    {
                        position = at["epoch"]
                            .as_str()
                            .zip(at["offset"].as_u64())
                            .map(|(epoch, offset)| (epoch.to_owned(), offset));
                    }
                }
                Some("discontinuity") => seen.discontinuities += 1,
                Some("event") => {
                    if frame["stream"] == "everyone"
                        && let (Some(epoch), Some(offset)) =
                            (frame["epoch"].as_str(), frame["offset"].as_u64())
                    {
                        position = Some((epoch.to_owned(), offset));
                    }
                    let Some(BenchMessage {
                        seq,
                        sent_micros: sent,
                    }) = frame["data"]["message"]
                        .as_str()
                        .and_then(BenchMessage::parse)
                    else {
                        continue;
                    };
                    if !seen.seqs.insert(seq) {
                        seen.duplicates += 1;
                        continue;
                    }
                    run.deliveries.fetch_add(1, Ordering::Relaxed);
                    // One it missed, replayed after the welcome.
                    if seen.back_after.is_some()
                        && welcomed_at_micros.is_some_and(|welcomed| sent < welcomed)
                        && let Some(killed_at) = run.killed_at.get()
                    {
                        seen.recovered_after = Some(killed_at.elapsed());
                    }
                }
                _ => {}
            }
        }
        if run.finished.load(Ordering::SeqCst) {
            return;
        }
        // Its process died: on to the survivor.
        address = run.addresses[1];
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}
