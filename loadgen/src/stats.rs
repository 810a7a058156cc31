//! Latency percentiles, and the memory and CPU time of the server
//! processes a run started.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::task::JoinHandle;

/// Latencies in microseconds, summarised.
pub struct Latencies {
    sorted: Vec<u32>,
}

impl Latencies {
    pub fn new(mut samples: Vec<u32>) -> Self {
        samples.sort_unstable();
        Self { sorted: samples }
    }

    /// The `p`-th percentile (0 to 100).
    pub fn percentile(&self, p: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * (self.sorted.len() - 1) as f64).round() as usize;
        Duration::from_micros(self.sorted[rank.min(self.sorted.len() - 1)].into())
    }

    pub fn max(&self) -> Duration {
        self.sorted
            .last()
            .map_or(Duration::ZERO, |max| Duration::from_micros((*max).into()))
    }
}

/// Resident memory of a process, in bytes, from `/proc/<pid>/status`.
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time a process has used (user and system), from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name, which may hold spaces, in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel counts in clock ticks, 100 per second on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// The server processes a run started, read together: the figures are
/// for all of them, whichever process did the work.
#[derive(Clone, Debug, Default)]
pub struct MeasuredProcesses {
    pids: Arc<[u32]>,
}

impl MeasuredProcesses {
    pub fn new(pids: Vec<u32>) -> Self {
        Self { pids: pids.into() }
    }

    pub fn pids(&self) -> &[u32] {
        &self.pids
    }

    /// Their resident memory together; `None` without a process to read
    /// (a server at `--address` is not ours).
    pub fn resident_bytes(&self) -> Option<u64> {
        if self.pids.is_empty() {
            return None;
        }
        self.pids.iter().map(|pid| resident_bytes(*pid)).sum()
    }

    /// Their CPU time together.
    pub fn cpu_time(&self) -> Option<Duration> {
        self.pids.iter().map(|pid| cpu_time(*pid)).sum()
    }
}

/// The largest resident memory of the processes while it samples (every
/// 100 ms): a peak between two readings is missed.
pub struct PeakMemory {
    peak: Arc<AtomicU64>,
    sampler: JoinHandle<()>,
}

impl PeakMemory {
    pub fn sample(processes: MeasuredProcesses) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let sampler = tokio::spawn({
            let peak = Arc::clone(&peak);
            async move {
                loop {
                    let now = processes.resident_bytes().unwrap_or(0);
                    peak.fetch_max(now, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        Self { peak, sampler }
    }

    /// Stops sampling; returns the peak in bytes.
    pub fn stop(self) -> u64 {
        self.sampler.abort();
        self.peak.load(Ordering::Relaxed)
    }
}

pub fn millis(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_from_the_sorted_samples() {
        let latencies = Latencies::new((1..=100).rev().collect());
        assert_eq!(latencies.percentile(50.0), Duration::from_micros(51));
        assert_eq!(latencies.percentile(99.0), Duration::from_micros(99));
        assert_eq!(latencies.max(), Duration::from_micros(100));
        assert_eq!(Latencies::new(vec![]).percentile(50.0), Duration::ZERO);
    }
}
