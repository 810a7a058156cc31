//! Running a job once per period, on one process among many.
//!
//! Time is cut into periods of equal length counted from the Unix epoch
//! (period `n` is `[n × every, (n + 1) × every)`), so every process agrees
//! on them without talking to the others. At the end of each period, each
//! process tries to claim the period that just ended in the `job_runs`
//! table; the primary key lets one claim succeed, and that process runs the
//! job for the period. A process that is down at the end of a period does
//! not run it later: periods are not caught up.

use std::{
    future::Future,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sqlx::AnyPool;

use crate::error::{AppError, log_database_error};

/// How many past periods `job_runs` remembers per job: claims older than
/// this are deleted as new ones are made, so the table stays small.
const REMEMBERED_PERIODS: i64 = 100;

/// A period a job runs for: `[start, end)`, in seconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    /// Which period this is, counted from the epoch.
    pub index: i64,
    pub start: i64,
    pub end: i64,
}

impl Period {
    /// The period of length `every` that contains `at` (seconds since the
    /// epoch).
    pub fn containing(at: i64, every: Duration) -> Self {
        let length = every.as_secs().max(1) as i64;
        let index = at.div_euclid(length);
        Self {
            index,
            start: index * length,
            end: (index + 1) * length,
        }
    }

    /// The period after this one.
    pub fn next(self) -> Self {
        let length = self.end - self.start;
        Self {
            index: self.index + 1,
            start: self.end,
            end: self.end + length,
        }
    }
}

/// Runs `work` for each period of length `every` that ends while this
/// process runs, if this process is the one that claims it. Errors are
/// logged, and the next period runs as usual. Never returns.
pub async fn run<F, Fut>(db: AnyPool, job: &'static str, every: Duration, work: F)
where
    F: Fn(Period) -> Fut,
    Fut: Future<Output = Result<(), AppError>>,
{
    loop {
        let now = now_millis();
        let ended = Period::containing(now.div_euclid(1000), every);
        // Until the period is over; the period is the one slept through,
        // even if the clock moved meanwhile.
        let left = (ended.end * 1000 - now).max(0) as u64;
        tokio::time::sleep(Duration::from_millis(left)).await;
        match claim(&db, job, ended).await {
            Ok(true) => {
                if let Err(error) = work(ended).await {
                    tracing::warn!(job, period = ended.index, %error, "the job failed");
                }
            }
            Ok(false) => tracing::debug!(job, period = ended.index, "another process ran it"),
            Err(error) => tracing::warn!(job, period = ended.index, %error, "could not claim"),
        }
    }
}

/// Claims `period` of `job` for this process: `true` for the one claim
/// that succeeds, `false` for every other, whichever process makes it.
pub async fn claim(db: &AnyPool, job: &str, period: Period) -> Result<bool, AppError> {
    let inserted =
        sqlx::query("INSERT INTO job_runs (job, period) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(job)
            .bind(period.index)
            .execute(db)
            .await
            .map_err(|error| log_database_error(error, "claiming a job's period"))?;
    if inserted.rows_affected() == 1 {
        sqlx::query("DELETE FROM job_runs WHERE job = $1 AND period < $2")
            .bind(job)
            .bind(period.index - REMEMBERED_PERIODS)
            .execute(db)
            .await
            .map_err(|error| log_database_error(error, "forgetting a job's old periods"))?;
    }
    Ok(inserted.rows_affected() == 1)
}

/// Milliseconds since the epoch.
fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_counted_from_the_epoch() {
        let hour = Duration::from_secs(3600);
        let period = Period::containing(7_200 + 59, hour);
        assert_eq!((period.index, period.start, period.end), (2, 7_200, 10_800));
        assert_eq!(Period::containing(3_600, hour).next(), period);
        assert_eq!(Period::containing(10_800, hour).index, 3);
    }
}
