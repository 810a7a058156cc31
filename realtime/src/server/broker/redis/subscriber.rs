//! The subscribing side of a process's link to Redis: one RESP3
//! connection (on a cluster, one per node, which the Redis client crate
//! keeps) whose messages arrive as pushes, on which channels can be
//! subscribed and unsubscribed while they arrive (what hearing only the
//! shards this process's tabs read needs).
//!
//! On a cluster, every channel is sharded pub/sub, subscribed one at a
//! time (one `SSUBSCRIBE` must stay within one slot). A node that drops
//! the connection, or that unsubscribes this process from a channel
//! itself (its slot moved to another node), may have cost messages: the
//! subscription is then lost as a whole, and the transport connects again
//! and catches up, as after any outage. (The client crate would resubscribe
//! by itself, but it resubscribes all of a node's shard channels in one
//! command, which the node refuses, and it forgets a channel whose slot
//! moved.)
//!
//! RESP3 needs Redis 6 or later; the backplane asks for it whatever the
//! URL says.

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::future::try_join_all;
use redis::{PushInfo, PushKind, RedisResult, Value};
use tokio::{sync::mpsc, time::timeout};

use super::{
    REDIS_TIMEOUT,
    servers::{Servers, Subscribing},
    transport::timed_out,
};

/// A connection subscribed to channels, and the messages it receives.
pub(super) struct Subscriber {
    connection: Subscribing,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
    /// On a cluster: the confirmations still to come of the channels this
    /// process unsubscribed from (any other unsubscription is the node's).
    unsubscribing: HashMap<Vec<u8>, usize>,
}

/// What the subscription received.
pub(super) enum Received {
    /// A message's payload.
    Message(Bytes),
    /// The subscription is gone, or may have missed messages: why.
    Lost(&'static str),
}

impl Subscriber {
    /// Connects to Redis as `servers` name it (`cluster`: as the nodes of
    /// a cluster), and subscribes to `channels` before returning: nothing
    /// published after is missed.
    pub async fn connect(
        servers: &Servers,
        cluster: bool,
        channels: &[String],
    ) -> RedisResult<Self> {
        let (sender, pushes) = mpsc::unbounded_channel();
        let connection = servers.connect_subscriber(cluster, sender).await?;
        let mut subscriber = Self {
            connection,
            pushes,
            unsubscribing: HashMap::new(),
        };
        subscriber.subscribe(channels).await?;
        Ok(subscriber)
    }

    /// Subscribes to `channels`, within the command timeout.
    pub async fn subscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        let subscribed = match &mut self.connection {
            Subscribing::One(connection) => {
                timeout(REDIS_TIMEOUT, connection.subscribe(channels)).await
            }
            Subscribing::Cluster(connection) => {
                let each = channels.iter().map(|channel| {
                    let mut connection = connection.clone();
                    async move { connection.ssubscribe(channel).await }
                });
                timeout(REDIS_TIMEOUT, async { try_join_all(each).await.map(drop) }).await
            }
        };
        subscribed.map_err(|_| timed_out("subscribing"))?
    }

    /// Unsubscribes from `channels`, within the command timeout.
    pub async fn unsubscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        let unsubscribed = match &mut self.connection {
            Subscribing::One(connection) => {
                timeout(REDIS_TIMEOUT, connection.unsubscribe(channels)).await
            }
            Subscribing::Cluster(connection) => {
                for channel in channels {
                    *self
                        .unsubscribing
                        .entry(channel.as_bytes().to_vec())
                        .or_default() += 1;
                }
                let each = channels.iter().map(|channel| {
                    let mut connection = connection.clone();
                    async move { connection.sunsubscribe(channel).await }
                });
                timeout(REDIS_TIMEOUT, async { try_join_all(each).await.map(drop) }).await
            }
        };
        unsubscribed.map_err(|_| timed_out("unsubscribing"))?
    }

    /// The next message, or the end of the subscription.
    pub async fn next(&mut self) -> Received {
        loop {
            let Some(push) = self.pushes.recv().await else {
                return Received::Lost("the subscription closed");
            };
            if let Some(received) = self.read(push) {
                return received;
            }
        }
    }

    /// The next message if one has arrived already: the transport takes
    /// what came in one go, rather than one wake-up per message.
    pub fn try_next(&mut self) -> Option<Received> {
        loop {
            let push = self.pushes.try_recv().ok()?;
            if let Some(received) = self.read(push) {
                return Some(received);
            }
        }
    }

    /// What a push says: a message, the end of the subscription, or
    /// nothing to act on.
    fn read(&mut self, push: PushInfo) -> Option<Received> {
        match push.kind {
            PushKind::Disconnection => {
                Some(Received::Lost("a connection of the subscription closed"))
            }
            // `[channel, payload]` (`[pattern, channel, payload]` for a
            // pattern's).
            PushKind::Message | PushKind::SMessage | PushKind::PMessage => {
                match push.data.into_iter().last() {
                    Some(Value::BulkString(payload)) => {
                        Some(Received::Message(Bytes::from(payload)))
                    }
                    _ => None,
                }
            }
            PushKind::SUnsubscribe if !self.asked_to_unsubscribe(&push.data) => Some(
                Received::Lost("a shard channel's slot moved to another node"),
            ),
            // Confirmations of (un)subscriptions, and anything else.
            _ => None,
        }
    }

    /// Whether an unsubscription (`[channel, count]`) is one this process
    /// asked for.
    fn asked_to_unsubscribe(&mut self, data: &[Value]) -> bool {
        let Some(Value::BulkString(channel)) = data.first() else {
            return true;
        };
        match self.unsubscribing.get_mut(channel) {
            Some(pending) if *pending > 1 => {
                *pending -= 1;
                true
            }
            Some(_) => {
                self.unsubscribing.remove(channel);
                true
            }
            None => false,
        }
    }
}
