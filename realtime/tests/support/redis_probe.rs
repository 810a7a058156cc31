//! The test's Redis as the tests look at it, whether `TEST_REDIS_URL`
//! names one server or a node of a Redis Cluster: its keys, who listens on
//! a channel, and the channel's messages, the way the backplane uses them
//! there (plain pub/sub on one server, sharded pub/sub on a cluster).

use std::time::Duration;

use redis::{
    AsyncConnectionConfig, Client, ProtocolVersion, PushKind, Value, aio::MultiplexedConnection,
    cluster::ClusterClient, cluster_async::ClusterConnection,
};
use tokio::sync::mpsc;

/// The URL of the test's Redis (`TEST_REDIS_URL`).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| panic!("TEST_REDIS_URL is not set (needs Redis: scripts/test runs it)"))
}

/// One server, or every primary of a cluster.
pub struct RedisProbe {
    url: String,
    /// A connection to each primary (the server, alone).
    primaries: Vec<MultiplexedConnection>,
    /// The cluster, when it is one.
    cluster: Option<(ClusterClient, ClusterConnection)>,
}

impl RedisProbe {
    /// The Redis `TEST_REDIS_URL` names.
    pub async fn connect() -> Self {
        Self::connect_to(&redis_url()).await
    }

    pub async fn connect_to(url: &str) -> Self {
        let mut seed = Client::open(url)
            .expect("a valid URL")
            .get_multiplexed_async_connection()
            .await
            .expect("Redis answers");
        let info: String = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut seed)
            .await
            .expect("INFO answers");
        if !info.contains("cluster_enabled:1") {
            return Self {
                url: url.to_owned(),
                primaries: vec![seed],
                cluster: None,
            };
        }
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut seed)
            .await
            .expect("CLUSTER NODES answers");
        let mut primaries = Vec::new();
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() > 2 && fields[2].contains("master") && !fields[2].contains("fail") {
                let address = fields[1].split('@').next().expect("an address");
                let connection = Client::open(format!("redis://{address}"))
                    .unwrap()
                    .get_multiplexed_async_connection()
                    .await
                    .expect("a primary answers");
                primaries.push(connection);
            }
        }
        let client = ClusterClient::new(vec![url]).expect("a valid URL");
        let connection = client
            .get_async_connection()
            .await
            .expect("the cluster answers");
        Self {
            url: url.to_owned(),
            primaries,
            cluster: Some((client, connection)),
        }
    }

    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// The keys that match `pattern`, on every primary.
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys = Vec::new();
        for primary in &self.primaries {
            let mut primary = primary.clone();
            let found: Vec<String> = redis::AsyncCommands::keys(&mut primary, pattern)
                .await
                .unwrap();
            keys.extend(found);
        }
        keys
    }

    /// Runs one command on the server or the cluster node it belongs to.
    pub async fn run(&self, command: &redis::Cmd) {
        let _: Value = match &self.cluster {
            Some((_, connection)) => command.query_async(&mut connection.clone()).await,
            None => command.query_async(&mut self.primaries[0].clone()).await,
        }
        .unwrap_or_else(|error| panic!("{command:?} failed: {error}"));
    }

    /// How many connections listen on each of `channels`, as the backplane
    /// subscribes to them.
    pub async fn listeners(&self, channels: &[String]) -> Vec<usize> {
        let mut counts = vec![0; channels.len()];
        let numsub = if self.is_cluster() {
            "SHARDNUMSUB"
        } else {
            "NUMSUB"
        };
        for primary in &self.primaries {
            let mut primary = primary.clone();
            let answer: Vec<Value> = redis::cmd("PUBSUB")
                .arg(numsub)
                .arg(channels)
                .query_async(&mut primary)
                .await
                .unwrap();
            for (count, pair) in counts.iter_mut().zip(answer.chunks_exact(2)) {
                *count += redis::from_redis_value::<usize>(pair[1].clone()).unwrap();
            }
        }
        counts
    }

    /// Publishes `payload` on `channel`, as the backplane does.
    pub async fn publish(&self, channel: &str, payload: &str) {
        match &self.cluster {
            Some((_, connection)) => {
                let mut connection = connection.clone();
                let _: Value = redis::cmd("SPUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .query_async(&mut connection)
                    .await
                    .unwrap();
            }
            None => {
                let mut connection = self.primaries[0].clone();
                let _: () = redis::AsyncCommands::publish(&mut connection, channel, payload)
                    .await
                    .unwrap();
            }
        }
    }

    /// Listens on `channels`: their messages' payloads, as they come.
    pub async fn listen(&self, channels: &[String]) -> Listener {
        let (sender, messages) = mpsc::unbounded_channel();
        let connection = match &self.cluster {
            Some((_, _)) => {
                let client = ClusterClient::builder(vec![self.url.clone()])
                    .use_protocol(ProtocolVersion::RESP3)
                    .push_sender(sender)
                    .build()
                    .unwrap();
                let mut connection = client.get_async_connection().await.unwrap();
                for channel in channels {
                    connection.ssubscribe(channel).await.unwrap();
                }
                Listening::Cluster(connection)
            }
            None => {
                let mut client_info = Client::open(self.url.as_str())
                    .unwrap()
                    .get_connection_info()
                    .clone();
                let settings = client_info
                    .redis_settings()
                    .clone()
                    .set_protocol(ProtocolVersion::RESP3);
                client_info = client_info.set_redis_settings(settings);
                let config = AsyncConnectionConfig::new().set_push_sender(sender);
                let mut connection = Client::open(client_info)
                    .unwrap()
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .unwrap();
                connection.subscribe(channels).await.unwrap();
                Listening::One(connection)
            }
        };
        Listener {
            _connection: connection,
            messages,
        }
    }
}

enum Listening {
    One(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// Messages on the channels a [`RedisProbe`] listens on.
pub struct Listener {
    _connection: Listening,
    messages: mpsc::UnboundedReceiver<redis::PushInfo>,
}

impl Listener {
    /// The next message's payload, if one comes within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<String> {
        self.next_on_within(wait).await.map(|(_, payload)| payload)
    }

    /// The next message's channel and payload, if one comes within `wait`.
    pub async fn next_on_within(&mut self, wait: Duration) -> Option<(String, String)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let push = tokio::time::timeout_at(deadline, self.messages.recv())
                .await
                .ok()??;
            if matches!(push.kind, PushKind::Message | PushKind::SMessage)
                && let [Value::BulkString(channel), Value::BulkString(payload)] =
                    push.data.as_slice()
            {
                return Some((
                    String::from_utf8_lossy(channel).into_owned(),
                    String::from_utf8_lossy(payload).into_owned(),
                ));
            }
        }
    }
}
