//! Background jobs: work that runs on a timer rather than on a request.
//!
//! A job is an async function of the application's context that the
//! server starts once, at start-up ([`start`]), next to the requests it
//! serves. A *periodic* job runs once per period on one process only,
//! however many processes share the database ([`periodic`]), and emits
//! through the hub like any server function: every tab of every process
//! hears it.
//!
//! The example is [`sign_up_digest`]: every hour, an announcement of how
//! many people signed up in that hour. `docs/guide.md` ("Emit from a
//! background job") starts from it.

pub mod periodic;
pub mod sign_up_digest;

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::AppContext;

/// Which jobs run, and how often (`SIGN_UP_DIGEST_SECS`, the README's
/// "Configuration" table).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobsConfig {
    /// How often the sign-up digest goes out; `None`: never.
    pub sign_up_digest: Option<Duration>,
}

/// The default: a digest every hour.
pub const DEFAULT_SIGN_UP_DIGEST: Duration = Duration::from_secs(60 * 60);

/// Starts the jobs `config` turns on, each in a task of its own; the
/// server aborts them at shutdown.
pub fn start(context: &AppContext, config: &JobsConfig) -> Vec<JoinHandle<()>> {
    let mut running = Vec::new();
    if let Some(every) = config.sign_up_digest {
        let context = context.clone();
        running.push(tokio::spawn(periodic::run(
            context.db.clone(),
            sign_up_digest::JOB,
            every,
            move |period| sign_up_digest::run(context.clone(), period),
        )));
    }
    running
}
