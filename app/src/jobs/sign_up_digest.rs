//! The example job: once per period, an announcement to every open tab of
//! how many people signed up in it (nothing when nobody did).

use super::periodic::Period;
use crate::{AppContext, error::AppError, events::SomethingHappened};

/// The job's name in `job_runs`.
pub const JOB: &str = "sign_up_digest";

/// Counts the sign-ups of `period` and announces them.
pub async fn run(context: AppContext, period: Period) -> Result<(), AppError> {
    let count = context
        .users
        .count_created(period.start, period.end)
        .await?;
    if count == 0 {
        return Ok(());
    }
    let message = announcement(count, period.end - period.start);
    tracing::info!(count, period = period.index, "sign-up digest");
    context.events.emit(&SomethingHappened::new(message))?;
    Ok(())
}

/// "3 people signed up in the last hour."
pub fn announcement(count: i64, period_secs: i64) -> String {
    let who = if count == 1 {
        "1 person".to_owned()
    } else {
        format!("{count} people")
    };
    let when = match period_secs {
        3600 => "hour".to_owned(),
        86_400 => "day".to_owned(),
        secs if secs % 3600 == 0 => format!("{} hours", secs / 3600),
        secs if secs % 60 == 0 => format!("{} minutes", secs / 60),
        1 => "second".to_owned(),
        secs => format!("{secs} seconds"),
    };
    format!("{who} signed up in the last {when}.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_announcement_reads_well() {
        assert_eq!(
            announcement(1, 3600),
            "1 person signed up in the last hour."
        );
        assert_eq!(
            announcement(3, 120),
            "3 people signed up in the last 2 minutes."
        );
        assert_eq!(
            announcement(2, 7200),
            "2 people signed up in the last 2 hours."
        );
        assert_eq!(announcement(2, 1), "2 people signed up in the last second.");
        assert_eq!(
            announcement(2, 90),
            "2 people signed up in the last 90 seconds."
        );
    }
}
