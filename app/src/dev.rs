//! Development-only server functions: a `Ping` event sent to any target, for
//! the multi-process tests (`server/tests/cluster.rs`) and for trying targets
//! by hand. Debug builds only: a release build refuses the call.
//!
//! ```sh
//! curl -H 'Content-Type: application/json' -d '{"to":"everyone","text":"hi"}' \
//!      http://127.0.0.1:3000/api/dev/ping
//! ```

use leptos::{prelude::*, server_fn::codec::Json};
use realtime::{ConnectionId, UserId};
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// A line of text sent to a target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    pub text: String,
}

impl realtime::Event for Ping {
    const NAME: &'static str = "dev.Ping";
    // The playground measures live delivery: a ping replayed after a
    // reconnect would count twice.
    const DURABLE: bool = false;
}

/// Who a [`Ping`] goes to: one of the hub's targets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PingTarget {
    Everyone,
    /// Everyone except the calling tab's connection.
    EveryoneButMe,
    /// Every connection of each of these users.
    Users(Vec<UserId>),
    /// The members of these topics ([`crate::topics::Topic`]).
    Topics(Vec<String>),
    Connection(ConnectionId),
}

/// Sends a [`Ping`]. Returns how many connections of the process that
/// handled the call it was queued for (other processes deliver theirs).
#[server(prefix = "/api", endpoint = "dev/ping", input = Json, client = realtime::RealtimeClient)]
pub async fn send_ping(to: PingTarget, text: String) -> Result<usize, AppError> {
    use crate::topics::Topic;

    if !cfg!(debug_assertions) {
        return Err(AppError::NotFound(
            "Not available in release builds.".into(),
        ));
    }
    let events = crate::AppContext::expect()?.events;
    let ping = Ping { text };
    let queued = match to {
        PingTarget::Everyone => events.emit(&ping)?,
        PingTarget::EveryoneButMe => events.except_caller().emit(&ping)?,
        PingTarget::Users(users) => events.to(users).emit(&ping)?,
        PingTarget::Topics(topics) => {
            let topics: Vec<Topic> = topics
                .iter()
                .map(|slug| {
                    Topic::new(slug).ok_or_else(|| {
                        AppError::Invalid("One of those is not a topic name.".to_owned())
                    })
                })
                .collect::<Result<_, _>>()?;
            events.to_rooms(&topics).emit(&ping)?
        }
        PingTarget::Connection(connection) => events.to_connection(connection).emit(&ping)?,
    };
    Ok(queued)
}
