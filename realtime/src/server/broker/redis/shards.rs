//! Streams in shards: every stream belongs to one of `count` shards, by a
//! hash of its name, and each shard has a channel of its own. One stream's
//! keys and its shard's channel share a hash tag, so a script that places
//! an event in one shard touches one slot of a Redis Cluster.
//!
//! The hash is XXH3 (64 bits) of the stream's written name
//! (`room:chat:7`), modulo the count: a specified algorithm, so that every
//! process of every version agrees. The count is fixed for a deployment:
//! processes with different counts would place one stream in two shards.

use xxhash_rust::xxh3::xxh3_64;

use crate::stream::Stream;

/// Shards used unless [`super::RedisBackplane::shards`] says otherwise.
pub const DEFAULT_SHARDS: u16 = 16;

/// The shards of one channel.
#[derive(Clone, Debug)]
pub(crate) struct Shards {
    channel: String,
    count: u16,
}

impl Shards {
    pub fn new(channel: &str, count: u16) -> Self {
        Self {
            channel: channel.to_owned(),
            count: count.max(1),
        }
    }

    /// How many shards there are.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// The shard `stream` belongs to.
    pub fn of(&self, stream: &Stream) -> u16 {
        let hash = xxh3_64(stream.to_string().as_bytes());
        (hash % u64::from(self.count)) as u16
    }

    /// The hash tag of `shard`: `{<channel>:<shard>}`.
    fn tag(&self, shard: u16) -> String {
        format!("{{{}:{shard}}}", self.channel)
    }

    /// The channel durable events of `shard` are published on.
    pub fn channel_of(&self, shard: u16) -> String {
        format!("{}:events", self.tag(shard))
    }

    /// A stream's keys: its hash (epoch, last offset, when it was born) and
    /// its log.
    pub fn keys(&self, stream: &Stream) -> [String; 2] {
        let tag = self.tag(self.of(stream));
        [
            format!("{tag}:{stream}:meta"),
            format!("{tag}:{stream}:log"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RoomName, UserId};

    #[test]
    fn a_streams_keys_and_its_shards_channel_share_a_hash_tag() {
        let shards = Shards::new("realtime.v2", 16);
        let stream = Stream::Room(RoomName::new("chat", "7"));
        let shard = shards.of(&stream);
        let tag = format!("{{realtime.v2:{shard}}}");
        let [meta, log] = shards.keys(&stream);
        assert!(meta.starts_with(&tag) && meta.ends_with(":room:chat:7:meta"));
        assert!(log.starts_with(&tag) && log.ends_with(":room:chat:7:log"));
        assert!(shards.channel_of(shard).starts_with(&tag));
    }

    #[test]
    fn streams_spread_over_the_shards_and_each_stays_in_its_own() {
        let shards = Shards::new("realtime.v2", 16);
        let mut used = [0u32; 16];
        for n in 0..1600 {
            let stream = Stream::User(UserId(n));
            let shard = shards.of(&stream);
            assert_eq!(shard, shards.of(&stream));
            used[usize::from(shard)] += 1;
        }
        assert!(
            used.iter().all(|&count| (50..=150).contains(&count)),
            "{used:?}"
        );
        assert_eq!(Shards::new("x", 1).of(&Stream::Everyone), 0);
    }

    #[test]
    fn the_hash_is_fixed_so_processes_of_every_version_agree() {
        // XXH3-64 of the written names, modulo 16: changing the hash (or
        // how a stream is written) would split a deployment in two.
        let shards = Shards::new("realtime.v2", 16);
        assert_eq!(shards.of(&Stream::Everyone), 6);
        assert_eq!(shards.of(&Stream::User(UserId(1))), 1);
        assert_eq!(shards.of(&Stream::Room(RoomName::new("chat", "7"))), 2);
    }
}
