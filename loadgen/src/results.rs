//! What a fan-out run prints: the deliveries' table, the servers' CPU and
//! memory, and what the attackers got.

use std::time::Duration;

use loadgen::{
    hostile,
    report::Table,
    stats::{Latencies, millis},
};

/// What the fan-out measured.
pub(crate) struct FanOutResults {
    pub(crate) clients: usize,
    pub(crate) rate: u32,
    pub(crate) total: u32,
    pub(crate) failures: u32,
    pub(crate) delivered: u64,
    /// From the first send to the last arrival.
    pub(crate) span: Duration,
    pub(crate) latencies: Latencies,
    pub(crate) cpu_to_deliver: Option<Duration>,
    pub(crate) memory: MemoryReadings,
    pub(crate) under_attack: Option<UnderAttack>,
}

/// The servers' resident memory along the run, in bytes; `None` where it
/// could not be read (a server at `--address`).
pub(crate) struct MemoryReadings {
    pub(crate) before: Option<u64>,
    pub(crate) half: Option<u64>,
    pub(crate) idle: Option<u64>,
    pub(crate) busy: Option<u64>,
}

/// What `--hostile` adds to the report.
pub(crate) struct UnderAttack {
    pub(crate) closed_early: usize,
    pub(crate) presence_frames: u64,
    pub(crate) presence_bytes: u64,
    pub(crate) peak_memory: u64,
    pub(crate) cpu_while_sending: Option<Duration>,
    pub(crate) attacks: Vec<(&'static str, hostile::Tally)>,
}

/// Prints the deliveries' table, the servers' CPU and memory, and what the
/// attacks met.
pub(crate) fn print_results(results: &FanOutResults) {
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
