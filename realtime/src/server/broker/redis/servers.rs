//! Where Redis is, and how commands reach it: one server, or the nodes of
//! a Redis Cluster.
//!
//! `REDIS_URL` names one server (`redis://host:6379/`), or a cluster: a
//! list of its nodes separated by commas, or any one node of it (asked
//! when connecting: `INFO cluster`). The Redis client crate routes each
//! command to the node that owns its slot, and follows the cluster when
//! slots move; this module only groups the commands it is given:
//!
//! - On one server, every batch goes as one pipeline, and the shards'
//!   channels are plain pub/sub (`PUBLISH`, `SUBSCRIBE`; Redis 6 is
//!   enough).
//! - On a cluster, a pipeline must stay within one slot, so a batch goes
//!   as one pipeline per shard (each shard is one slot: its keys and
//!   channel share a hash tag), sent at once; and every channel is sharded
//!   pub/sub (`SPUBLISH`, `SSUBSCRIBE`, Redis 7): a message reaches the
//!   node that owns its channel's slot and the processes subscribed
//!   there, never the whole cluster. The backplane's own channel is one
//!   of them too (one slot, so its messages keep their order).

use std::collections::HashMap;

use futures_util::future::try_join_all;
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionInfo, ProtocolVersion, PushInfo, RedisResult,
    ServerErrorKind, Value,
    aio::MultiplexedConnection,
    cluster::{ClusterClient, ClusterClientBuilder},
    cluster_async::ClusterConnection,
};
use tokio::{sync::mpsc, time::timeout};

use super::{REDIS_TIMEOUT, transport::timed_out};

/// Where Redis is, as `REDIS_URL` names it.
#[derive(Clone, Debug)]
pub(super) struct Servers {
    /// The server, or the cluster nodes named (at least one).
    nodes: Vec<ConnectionInfo>,
}

impl Servers {
    /// Parses `url`: one URL, or several separated by commas (the nodes
    /// of a cluster). Nothing is connected.
    pub fn parse(url: &str) -> RedisResult<Self> {
        let nodes = url
            .split(',')
            .map(str::trim)
            .filter(|node| !node.is_empty())
            .map(|node| Client::open(node).map(|client| client.get_connection_info().clone()))
            .collect::<RedisResult<Vec<_>>>()?;
        if nodes.is_empty() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "no Redis server named",
            )));
        }
        Ok(Self { nodes })
    }

    /// The first node's host and port, for logs (the URL may hold a
    /// password).
    pub fn address(&self) -> String {
        let first = self.nodes[0].addr().to_string();
        match self.nodes.len() {
            1 => first,
            more => format!("{first} and {} other nodes", more - 1),
        }
    }

    /// Connects, for commands: to the server, or to the cluster (a list of
    /// nodes, or a node that says it is in one).
    pub async fn connect(&self) -> RedisResult<Commands> {
        let timed = |what| move |_| timed_out(what);
        if self.nodes.len() == 1 {
            let client = Client::open(self.nodes[0].clone())?;
            let mut connection = client
                .get_multiplexed_async_connection_with_config(&single_config())
                .await?;
            let info: RedisResult<String> = timeout(
                REDIS_TIMEOUT,
                redis::cmd("INFO")
                    .arg("cluster")
                    .query_async(&mut connection),
            )
            .await
            .map_err(timed("INFO cluster"))?;
            match info {
                Ok(info) if info.contains("cluster_enabled:1") => {}
                Ok(_) => return Ok(Commands::One(connection)),
                // A server whose ACL refuses INFO, or that does not know
                // it: taken for one server (a cluster can be named by its
                // nodes). Any other error is retried.
                Err(error)
                    if matches!(
                        error.kind(),
                        redis::ErrorKind::Server(
                            ServerErrorKind::NoPerm | ServerErrorKind::ResponseError
                        )
                    ) =>
                {
                    return Ok(Commands::One(connection));
                }
                Err(error) => return Err(error),
            }
        }
        let client = self.cluster_builder().build()?;
        let connection = timeout(REDIS_TIMEOUT, client.get_async_connection())
            .await
            .map_err(timed("connecting to the cluster"))??;
        Ok(Commands::Cluster(connection))
    }

    /// Connects for subscribing (RESP3, whose messages arrive as pushes on
    /// `pushes`), the same way [`Commands`] connected: `cluster` says how.
    pub async fn connect_subscriber(
        &self,
        cluster: bool,
        pushes: mpsc::UnboundedSender<PushInfo>,
    ) -> RedisResult<Subscribing> {
        if cluster {
            let client = self
                .cluster_builder()
                .use_protocol(ProtocolVersion::RESP3)
                .push_sender(pushes)
                .build()?;
            let connection = timeout(REDIS_TIMEOUT, client.get_async_connection())
                .await
                .map_err(|_| timed_out("connecting to the cluster"))??;
            return Ok(Subscribing::Cluster(connection));
        }
        let info = self.nodes[0].clone();
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = Client::open(info.set_redis_settings(settings))?;
        let config = single_config().set_push_sender(pushes);
        let connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok(Subscribing::One(connection))
    }

    fn cluster_builder(&self) -> ClusterClientBuilder {
        ClusterClient::builder(self.nodes.clone())
            .connection_timeout(REDIS_TIMEOUT)
            .response_timeout(REDIS_TIMEOUT)
            // A node that does not answer is a fault this process handles
            // (it reconnects and catches up), not one to wait out.
            .retries(2)
    }
}

fn single_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT))
}

/// Where a command must run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Slot {
    /// The backplane's channel.
    Channel,
    /// A shard's slot: its streams' keys and its channel.
    Shard(u16),
}

/// Commands to send together, each with where it must run.
#[derive(Default)]
pub(super) struct Batch(Vec<(Slot, Cmd)>);

impl Batch {
    pub fn push(&mut self, slot: Slot, command: Cmd) {
        self.0.push((slot, command));
    }

    /// How many commands it holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A connection for commands (not subscriptions): cheap to clone, each
/// clone sharing it.
#[derive(Clone)]
pub(super) enum Commands {
    One(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Commands {
    /// Whether this is a cluster: its channels are sharded pub/sub.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// The command that publishes `payload` on `channel`.
    pub fn publish(&self, channel: &str, payload: &[u8]) -> Cmd {
        let mut command = redis::cmd(if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        });
        command.arg(channel).arg(payload);
        command
    }

    /// Sends a batch, in one round trip: one pipeline, or on a cluster one
    /// per slot, at once. The commands of one slot run in their order;
    /// there is no order between slots.
    pub async fn exec(&self, batch: Batch) -> RedisResult<()> {
        self.query(batch).await.map(drop)
    }

    /// Sends a batch as [`Commands::exec`] does. On a cluster a slot's
    /// pipeline may fail while the others ran: on failure, the commands (by
    /// index in the batch) that may not have run, and the first error.
    pub async fn exec_each(&self, batch: Batch) -> Result<(), Unsent> {
        let Self::Cluster(connection) = self else {
            let count = batch.0.len();
            return self.exec(batch).await.map_err(|error| Unsent {
                commands: (0..count).collect(),
                error,
            });
        };
        let sent = by_slot(batch).into_iter().map(|(indexes, pipeline)| {
            let mut connection = connection.clone();
            async move {
                let ran = timeout(REDIS_TIMEOUT, pipeline.exec_async(&mut connection)).await;
                (
                    indexes,
                    ran.unwrap_or_else(|_| Err(timed_out("a pipeline"))),
                )
            }
        });
        let mut unsent: Option<Unsent> = None;
        for (indexes, ran) in futures_util::future::join_all(sent).await {
            if let Err(error) = ran {
                let unsent = unsent.get_or_insert_with(|| Unsent {
                    commands: Vec::new(),
                    error,
                });
                unsent.commands.extend(indexes);
            }
        }
        unsent.map_or(Ok(()), Err)
    }

    /// Sends a batch as [`Commands::exec`] does, and returns each
    /// command's answer, in the batch's order.
    pub async fn query(&self, batch: Batch) -> RedisResult<Vec<Value>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let count = batch.0.len();
        let answers = match self {
            Self::One(connection) => {
                let mut pipeline = redis::pipe();
                for (_, command) in batch.0 {
                    pipeline.add_command(command);
                }
                let mut connection = connection.clone();
                timeout(REDIS_TIMEOUT, pipeline.query_async(&mut connection))
                    .await
                    .map_err(|_| timed_out("a pipeline"))??
            }
            Self::Cluster(connection) => {
                let sent = by_slot(batch).into_iter().map(|(indexes, pipeline)| {
                    let mut connection = connection.clone();
                    async move {
                        let answers: Vec<Value> = pipeline.query_async(&mut connection).await?;
                        Ok::<_, redis::RedisError>(indexes.into_iter().zip(answers))
                    }
                });
                let answered = timeout(REDIS_TIMEOUT, try_join_all(sent))
                    .await
                    .map_err(|_| timed_out("a pipeline"))??;
                let mut answers = vec![Value::Nil; count];
                for (index, answer) in answered.into_iter().flatten() {
                    answers[index] = answer;
                }
                answers
            }
        };
        Ok(answers)
    }

    /// Sends one command.
    pub async fn query_one(&self, command: Cmd) -> RedisResult<Value> {
        let answer = match self {
            Self::One(connection) => {
                let mut connection = connection.clone();
                timeout(REDIS_TIMEOUT, command.query_async(&mut connection)).await
            }
            Self::Cluster(connection) => {
                let mut connection = connection.clone();
                timeout(REDIS_TIMEOUT, command.query_async(&mut connection)).await
            }
        };
        answer.map_err(|_| timed_out("a command"))?
    }
}

/// The commands of a batch, one pipeline per slot, each with the indexes
/// of its commands in the batch.
fn by_slot(batch: Batch) -> Vec<(Vec<usize>, redis::Pipeline)> {
    let mut slots: HashMap<Slot, (Vec<usize>, redis::Pipeline)> = HashMap::new();
    for (index, (slot, command)) in batch.0.into_iter().enumerate() {
        let (indexes, pipeline) = slots
            .entry(slot)
            .or_insert_with(|| (Vec::new(), redis::pipe()));
        indexes.push(index);
        pipeline.add_command(command);
    }
    slots.into_values().collect()
}

/// What a batch could not send: see [`Commands::exec_each`].
pub(super) struct Unsent {
    /// The commands, by index in the batch.
    pub commands: Vec<usize>,
    pub error: redis::RedisError,
}

/// A connection for subscriptions: see `subscriber.rs`.
pub(super) enum Subscribing {
    One(MultiplexedConnection),
    Cluster(ClusterConnection),
}
