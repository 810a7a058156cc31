//! Sending at a fixed rate through a few workers: a ticker hands out the
//! sequence numbers `0..total` at `rate` per second, each to one worker's
//! queue, and each worker makes its calls over a keep-alive connection of
//! its own. One connection would hold a call back behind the previous
//! one's answer and fall behind the rate.

use std::{future::Future, time::Duration};

use thiserror::Error;
use tokio::{sync::mpsc, task::JoinSet};

/// How many sequence numbers may wait for a busy worker.
const QUEUE: usize = 64;

#[derive(Debug, Error)]
#[error("a broadcast worker stopped")]
pub struct WorkerStopped;

/// The workers, each reading the sequence numbers it is handed.
#[derive(Default)]
pub struct PacedWorkers {
    queues: Vec<mpsc::Sender<u32>>,
    workers: JoinSet<()>,
}

impl PacedWorkers {
    /// Starts a worker: `work` receives its queue of sequence numbers and
    /// returns once the queue is closed.
    pub fn spawn<Work>(&mut self, work: impl FnOnce(mpsc::Receiver<u32>) -> Work)
    where
        Work: Future<Output = ()> + Send + 'static,
    {
        let (queue, calls) = mpsc::channel(QUEUE);
        self.queues.push(queue);
        self.workers.spawn(work(calls));
    }

    /// Hands out `0..total` at `rate` per second, `seq` to worker
    /// `choose(seq)` (modulo their number), then waits for the workers to
    /// finish. A tick missed (the sender held up) is made up at once, so
    /// that the run still sends `total` in about `total / rate` seconds.
    pub async fn send_paced(
        mut self,
        rate: u32,
        total: u32,
        mut choose: impl FnMut(u32) -> usize,
    ) -> Result<(), WorkerStopped> {
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut sent = Ok(());
        for seq in 0..total {
            ticker.tick().await;
            let worker = choose(seq) % self.queues.len().max(1);
            let handed = match self.queues.get(worker) {
                Some(queue) => queue.send(seq).await.is_ok(),
                None => false,
            };
            if !handed {
                sent = Err(WorkerStopped);
                break;
            }
        }
        self.queues.clear();
        while self.workers.join_next().await.is_some() {}
        sent
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn every_seq_reaches_the_worker_chosen() -> Result<(), WorkerStopped> {
        let handed = Arc::new(Mutex::new(Vec::new()));
        let mut workers = PacedWorkers::default();
        for worker in 0..2 {
            let handed = Arc::clone(&handed);
            workers.spawn(|mut calls| async move {
                while let Some(seq) = calls.recv().await {
                    if let Ok(mut handed) = handed.lock() {
                        handed.push((worker, seq));
                    }
                }
            });
        }
        workers.send_paced(1000, 6, |seq| seq as usize / 3).await?;
        let mut handed = handed
            .lock()
            .map(|handed| handed.clone())
            .unwrap_or_default();
        handed.sort_unstable();
        assert_eq!(handed, [(0, 0), (0, 1), (0, 2), (1, 3), (1, 4), (1, 5)]);
        Ok(())
    }

    #[tokio::test]
    async fn without_workers_nothing_is_sent() {
        let sent = PacedWorkers::default().send_paced(1000, 1, |seq| seq as usize);
        assert!(sent.await.is_err());
    }
}
