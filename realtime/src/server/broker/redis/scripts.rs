//! The Lua scripts that do all of the history's writing and reading in
//! Redis (what each does: `history.rs`), kept as `.lua` files beside this
//! one, and loaded into Redis once per connection. Each starts with
//! `sound.lua`, which tells keys the scripts did not write.

use super::servers::Commands;

const SOUND: &str = include_str!("scripts/sound.lua");
const APPEND: &str = include_str!("scripts/append.lua");
const READ: &str = include_str!("scripts/read.lua");
const RESET: &str = include_str!("scripts/reset.lua");

/// The scripts, as Redis knows them once loaded (their SHA1s).
#[derive(Clone, Debug)]
pub(super) struct Scripts {
    pub append: String,
    pub read: String,
    pub reset: String,
}

impl Scripts {
    /// Loads the scripts (again after each reconnection: a restarted Redis
    /// has forgotten them; on a cluster, into every node). On a cluster
    /// they publish with `SPUBLISH` (see `servers.rs`).
    pub async fn load(commands: &Commands) -> redis::RedisResult<Self> {
        let load = |script: &'static str| async move {
            let script = format!("{SOUND}{script}");
            let script = if commands.is_cluster() {
                script.replace("redis.call('PUBLISH'", "redis.call('SPUBLISH'")
            } else {
                script
            };
            let mut load = redis::cmd("SCRIPT");
            load.arg("LOAD").arg(script);
            redis::RedisResult::Ok(redis::from_redis_value::<String>(
                commands.query_one(load).await?,
            )?)
        };
        Ok(Self {
            append: load(APPEND).await?,
            read: load(READ).await?,
            reset: load(RESET).await?,
        })
    }
}
