//! The transport's publishing side: what goes to Redis in one round trip
//! (envelopes on the channel, durable events through the history's
//! script), what waited for Redis, and what becomes of an item that could
//! not go.

use bytes::Bytes;

use super::{
    envelope::{Envelope, Message},
    link::Outbound,
    scripts::Scripts,
    servers::{Batch, Commands, Slot},
    transport::Transport,
};

impl Transport {
    /// Publishes what waited, oldest first. On failure it is put back.
    pub(super) async fn publish_pending(&self, publisher: &mut Commands) -> redis::RedisResult<()> {
        let pending = self.link.take_pending();
        if pending.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::default();
        for envelope in &pending {
            batch.push(
                Slot::Channel,
                publisher.publish(&self.settings.channel, envelope.as_ref()),
            );
        }
        let published = publisher.exec(batch).await;
        if published.is_err() {
            self.link.put_back(pending);
        }
        published
    }

    /// This node's envelope of `message`.
    pub(super) fn envelope(&self, message: &Message) -> Bytes {
        Envelope::encode(self.link.node, message)
    }

    /// Publishes envelopes, and has Redis place durable events, in one
    /// round trip.
    pub(super) async fn publish(
        &self,
        publisher: &mut Commands,
        scripts: &Scripts,
        items: &[Outbound],
    ) -> redis::RedisResult<()> {
        publisher
            .exec(self.batch(publisher, scripts, items).0)
            .await
    }

    /// Publishes as [`Transport::publish`] does; on failure, which items
    /// may not have gone (by index), and the first error.
    pub(super) async fn publish_each(
        &self,
        publisher: &Commands,
        scripts: &Scripts,
        items: &[Outbound],
    ) -> Result<(), (Vec<bool>, redis::RedisError)> {
        let (batch, item_of) = self.batch(publisher, scripts, items);
        publisher.exec_each(batch).await.map_err(|unsent| {
            let mut items_unsent = vec![false; items.len()];
            for command in unsent.commands {
                items_unsent[item_of[command]] = true;
            }
            (items_unsent, unsent.error)
        })
    }

    /// The commands that publish `items`, and the item each comes from.
    pub(super) fn batch(
        &self,
        publisher: &Commands,
        scripts: &Scripts,
        items: &[Outbound],
    ) -> (Batch, Vec<usize>) {
        let channel = self.settings.channel.as_str();
        let mut batch = Batch::default();
        let mut item_of = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            match item {
                Outbound::Publish(envelope) | Outbound::State(envelope) => {
                    batch.push(Slot::Channel, publisher.publish(channel, envelope.as_ref()));
                }
                Outbound::Record(record) => {
                    self.history
                        .append(scripts, self.link.node, record, &mut batch);
                }
            }
            item_of.resize(batch.len(), index);
        }
        (batch, item_of)
    }

    /// What could not be sent: an event reached this process's
    /// connections only (counted); a durable event is placed here.
    pub(super) fn not_published(&self, item: Outbound) {
        match item {
            Outbound::Publish(_) => self.link.count_missed(),
            Outbound::State(_) => {}
            Outbound::Record(record) => self.inbox.not_placed(record),
        }
    }
}
