//! The history in Redis as setting it right after an outage uses it
//! ([`super::super::reconcile`], [`super::super::catch_up`]): resets and
//! reads, one batch per step, on the transport's publishing connection.

use futures_util::future::BoxFuture;

use super::{
    super::{Followed, NodeId, Read, SharedHistory},
    history::RedisHistory,
    scripts::Scripts,
    servers::{Batch, Commands},
};
use crate::{Stream, stream::Epoch};

/// The history in Redis, as setting it right after an outage uses it: one
/// pipeline per step, on the publishing connection.
pub(super) struct Access<'a> {
    pub publisher: &'a mut Commands,
    pub scripts: &'a Scripts,
    pub history: &'a RedisHistory,
    pub node: NodeId,
}

impl SharedHistory for Access<'_> {
    type Error = redis::RedisError;

    fn reset<'a>(
        &'a mut self,
        streams: &'a [(Stream, Option<Epoch>)],
    ) -> BoxFuture<'a, redis::RedisResult<()>> {
        Box::pin(async move {
            let mut batch = Batch::default();
            for stream in streams {
                let reset = self.history.reset(self.scripts, self.node, stream);
                batch.push(self.history.slot_of(&stream.0), reset);
            }
            self.publisher.exec(batch).await
        })
    }

    fn read_many<'a>(
        &'a mut self,
        wanted: &'a [Followed],
    ) -> BoxFuture<'a, redis::RedisResult<Vec<Read>>> {
        Box::pin(async move {
            let mut batch = Batch::default();
            for (stream, position, id) in wanted {
                let read = self
                    .history
                    .read_command(self.scripts, stream, *position, *id);
                batch.push(self.history.slot_of(stream), read);
            }
            let replies = self.publisher.query(batch).await?;
            Ok(wanted
                .iter()
                .zip(replies)
                .map(|((stream, position, _), reply)| {
                    self.history.parse_read(stream, *position, reply)
                })
                .collect())
        })
    }
}
