//! The subscribing side of a process's link to Redis: one RESP3
//! connection whose messages arrive as pushes, on which channels can be
//! subscribed and unsubscribed while they arrive (what hearing only the
//! shards this process's tabs read needs).
//!
//! RESP3 needs Redis 6 or later; the backplane asks for it whatever the
//! URL says.

use bytes::Bytes;
use redis::{
    AsyncConnectionConfig, Client, ProtocolVersion, PushInfo, PushKind, RedisResult, Value,
    aio::MultiplexedConnection,
};
use tokio::{sync::mpsc, time::timeout};

use super::{REDIS_TIMEOUT, transport::timed_out};

/// A connection subscribed to channels, and the messages it receives.
pub(super) struct Subscriber {
    connection: MultiplexedConnection,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
}

/// What the subscription received.
pub(super) enum Received {
    /// A message's payload.
    Message(Bytes),
    /// The connection is gone.
    Lost,
}

impl Subscriber {
    /// Connects to the Redis `client` names, and subscribes to `channels`
    /// before returning: nothing published after is missed.
    pub async fn connect(client: &Client, channels: &[String]) -> RedisResult<Self> {
        let info = client.get_connection_info().clone();
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = Client::open(info.set_redis_settings(settings))?;
        let (sender, pushes) = mpsc::unbounded_channel();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_push_sender(sender);
        let connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let mut subscriber = Self { connection, pushes };
        subscriber.subscribe(channels).await?;
        Ok(subscriber)
    }

    /// Subscribes to `channels`, within the command timeout.
    pub async fn subscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        timeout(REDIS_TIMEOUT, self.connection.subscribe(channels))
            .await
            .map_err(|_| timed_out("subscribing"))?
    }

    /// Unsubscribes from `channels`, within the command timeout.
    pub async fn unsubscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        timeout(REDIS_TIMEOUT, self.connection.unsubscribe(channels))
            .await
            .map_err(|_| timed_out("unsubscribing"))?
    }

    /// The next message, or the end of the connection.
    pub async fn next(&mut self) -> Received {
        loop {
            let Some(push) = self.pushes.recv().await else {
                return Received::Lost;
            };
            if push.kind == PushKind::Disconnection {
                return Received::Lost;
            }
            // `[channel, payload]` (`[pattern, channel, payload]` for a
            // pattern's); confirmations of (un)subscriptions, and anything
            // else, are not messages.
            let is_message = matches!(
                push.kind,
                PushKind::Message | PushKind::SMessage | PushKind::PMessage
            );
            if is_message && let Some(Value::BulkString(payload)) = push.data.into_iter().last() {
                return Received::Message(Bytes::from(payload));
            }
        }
    }
}
