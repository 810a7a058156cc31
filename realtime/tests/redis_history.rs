//! Durable events with the history in Redis, across hubs: every hub
//! delivers them in the order Redis placed them; a tab recovers on any hub
//! (from that hub's mirror, or from Redis when the hub did not see the
//! events); and after a Redis outage or a hub cut off from Redis, tabs get
//! what they missed or a discontinuity.
//!
//! Needs a Redis server, so ignored by a plain `cargo test`; `scripts/test`
//! runs it with `TEST_REDIS_URL` set. Each test has a channel of its own;
//! the fault tests start a Redis server of their own.

mod support;

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use realtime::{
    Position, Stream,
    protocol::{ClientFrame, Resume, ServerFrame},
    server::{
        Hub, HubBuilder, HubConfig, JoinRequest, Placement, Target,
        broker::redis::{Liveness, RedisBackplane},
    },
    stream::{Discontinuity, TabId},
};
use realtime_testing::faults::{CuttableProxy, PrivateRedis};
use support::{
    Note, PATIENCE, Team, TestClient, TestServer, note,
    redis_probe::{RedisProbe, redis_url},
};

fn fresh_channel() -> String {
    format!("realtime.test.{:016x}", rand::random::<u64>())
}

fn builder(config: HubConfig) -> HubBuilder {
    Hub::builder()
        .room::<Team, _, _>(|_: JoinRequest<Team>| async { Ok(()) })
        .config(config)
}

struct Node {
    server: TestServer,
}

/// A hub on `channel` of the Redis at `url`, once connected.
async fn node_on(url: &str, channel: &str, config: HubConfig) -> Node {
    let redis = RedisBackplane::new(url)
        .expect("a valid URL")
        .channel(channel);
    node_with(redis, config).await
}

/// A hub on `redis`, once connected.
async fn node_with(redis: RedisBackplane, config: HubConfig) -> Node {
    let server = TestServer::start(builder(config).backplane(redis)).await;
    connected(&server.hub, true).await;
    Node { server }
}

async fn node(channel: &str) -> Node {
    node_on(&redis_url(), channel, HubConfig::default()).await
}

/// Waits until the hub's backplane is connected (or not).
async fn connected(hub: &Hub, up: bool) {
    let deadline = Instant::now() + PATIENCE;
    while hub.backplane_connected() != Some(up) {
        assert!(
            Instant::now() < deadline,
            "the backplane did not become {up}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn red() -> Team {
    Team("red".into())
}

fn red_stream() -> Stream {
    Stream::Room("team:red".into())
}

/// The query of tab `tab`'s upgrade as user 1, resuming from `since`.
fn tab_query(tab: u64, since: &[(Stream, Position)]) -> String {
    let resume = Resume {
        tab: Some(TabId(tab)),
        since: since.to_vec(),
    };
    format!("user=1&session=s{tab}&{}", resume.to_query())
}

/// The next note and where it sits in the room's stream.
async fn placed_note(tab: &mut TestClient) -> (String, Position) {
    let (note, recorded) = tab.recorded_event::<Note>().await;
    let recorded = recorded.expect("a durable event carries its position");
    assert_eq!(recorded.stream, red_stream());
    (note.text, recorded.position)
}

/// The texts of the notes among `frames`.
fn notes(frames: &[ServerFrame]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|frame| match frame {
            ServerFrame::Event { name, data, .. } if name == "Note" => {
                serde_json::from_str::<Note>(data.get())
                    .ok()
                    .map(|n| n.text)
            }
            _ => None,
        })
        .collect()
}

/// Whether `frames` hold a discontinuity for `reason`.
fn has_discontinuity(frames: &[ServerFrame], reason: Discontinuity) -> bool {
    frames.iter().any(
        |frame| matches!(frame, ServerFrame::Discontinuity { reason: gap, .. } if *gap == reason),
    )
}

/// Reads frames until a discontinuity of `stream`; fails on a note first.
async fn discontinuity_of(tab: &mut TestClient, stream: &Stream) -> (Discontinuity, Position) {
    loop {
        match tab.frame().await {
            ServerFrame::Discontinuity {
                stream: gap,
                reason,
                position,
            } if &gap == stream => return (reason, position),
            ServerFrame::Event { name, .. } if name == "Note" => {
                panic!("a note arrived before the discontinuity")
            }
            _ => {}
        }
    }
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn every_hub_delivers_a_stream_in_the_order_redis_placed_it() {
    let channel = fresh_channel();
    let (a, b) = (node(&channel).await, node(&channel).await);
    let mut on_a = a.server.user(1, "s1").await;
    let mut on_b = b.server.user(2, "s2").await;
    let _ = on_a.join("team:red").await;
    let _ = on_b.join("team:red").await;

    // Both hubs emit at once, interleaved however the tasks run.
    let emits = |hub: Hub, prefix: &'static str| async move {
        for n in 0..50 {
            hub.to_room(&red())
                .emit(&note(&format!("{prefix}{n}")))
                .unwrap();
            tokio::task::yield_now().await;
        }
    };
    let (hub_a, hub_b) = (a.server.hub.clone(), b.server.hub.clone());
    tokio::join!(emits(hub_a, "a"), emits(hub_b, "b"));

    let mut seen_on_a = Vec::new();
    let mut seen_on_b = Vec::new();
    for _ in 0..100 {
        seen_on_a.push(placed_note(&mut on_a).await);
        seen_on_b.push(placed_note(&mut on_b).await);
    }
    // The same order on both hubs, and that order is the offsets'.
    assert_eq!(seen_on_a, seen_on_b);
    let offsets: Vec<u64> = seen_on_a.iter().map(|(_, at)| at.offset).collect();
    assert_eq!(offsets, (1..=100).collect::<Vec<_>>());
    // Each hub's own events too (no shortcut past Redis).
    let mine: Vec<&str> = seen_on_a
        .iter()
        .map(|(text, _)| text.as_str())
        .filter(|text| text.starts_with('a'))
        .collect();
    assert_eq!(mine.len(), 50);
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn a_tab_recovers_on_another_hub_from_its_mirror_or_from_redis() {
    let channel = fresh_channel();
    let (a, b) = (node(&channel).await, node(&channel).await);
    let mut tab = a.server.connect(&tab_query(7, &[])).await;
    let _ = tab.join("team:red").await;
    a.server.hub.to_room(&red()).emit(&note("one")).unwrap();
    let (_, seen) = placed_note(&mut tab).await;
    // Hub A goes away with the tab's connection.
    drop(tab);
    drop(a);

    b.server.hub.to_room(&red()).emit(&note("two")).unwrap();
    b.server.hub.to_room(&red()).emit(&note("three")).unwrap();

    // On B, which placed them (and whose mirror does not follow the room:
    // no tab of B reads it), from Redis.
    let mut on_b = b.server.connect(&tab_query(7, &[])).await;
    let frames = on_b.join_since("team:red", seen).await;
    assert_eq!(notes(&frames), ["two", "three"]);

    // On C, started after them: its mirror knows nothing; Redis does.
    let c = node(&channel).await;
    let mut on_c = c.server.connect(&tab_query(7, &[])).await;
    let frames = on_c.join_since("team:red", seen).await;
    assert_eq!(notes(&frames), ["two", "three"]);
    let Some(ServerFrame::Joined { position, .. }) = frames.last() else {
        panic!("no joined: {frames:?}");
    };
    assert_eq!(position.map(|at| at.offset), Some(3));

    // Then live, once each, whichever hub emits.
    b.server.hub.to_room(&red()).emit(&note("four")).unwrap();
    assert_eq!(placed_note(&mut on_c).await.0, "four");
    assert_eq!(placed_note(&mut on_b).await.0, "four");
    c.server.assert_nothing_more(&mut [&mut on_c]).await;
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn a_recovery_redis_cannot_serve_is_a_discontinuity() {
    let channel = fresh_channel();
    let config = HubConfig {
        recovery_max_events: 2,
        ..HubConfig::default()
    };
    let a = node_on(&redis_url(), &channel, config.clone()).await;
    let since = a.server.hub.position(&red_stream()).await.unwrap();
    for text in ["one", "two", "three"] {
        a.server.hub.to_room(&red()).emit(&note(text)).unwrap();
    }
    // A hub that did not see them reads Redis.
    let b = node_on(&redis_url(), &channel, config).await;
    let mut tab = b.server.connect(&tab_query(7, &[])).await;
    let frames = tab.join_since("team:red", since).await;
    assert!(
        has_discontinuity(&frames, Discontinuity::TooMany),
        "{frames:?}"
    );
    assert!(notes(&frames).is_empty());

    let mut other = b.server.connect(&tab_query(8, &[])).await;
    let foreign = Position {
        epoch: realtime::stream::Epoch(1),
        offset: 1,
    };
    let frames = other.join_since("team:red", foreign).await;
    assert!(
        has_discontinuity(&frames, Discontinuity::EpochChanged),
        "{frames:?}"
    );
}

/// A node whose way to Redis goes through a proxy that can cut it off.
async fn node_behind_proxy(channel: &str, config: HubConfig) -> (Node, CuttableProxy) {
    let (url, proxy) = proxy_to_redis().await;
    (node_on(&url, channel, config).await, proxy)
}

/// A proxy to the test's Redis that can be cut, and its URL.
async fn proxy_to_redis() -> (String, CuttableProxy) {
    let upstream = redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .parse()
        .expect("TEST_REDIS_URL is redis://host:port");
    let proxy = CuttableProxy::start(upstream).await;
    (format!("redis://127.0.0.1:{}", proxy.port), proxy)
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn a_hub_cut_off_from_redis_catches_up_when_it_is_back() {
    let channel = fresh_channel();
    let a = node(&channel).await;
    // A queue shorter than what it catches up on: the catch-up is one
    // replay, not cut short by the slow-client rule.
    let (b, proxy) = node_behind_proxy(
        &channel,
        HubConfig {
            queue_capacity: 4,
            ..HubConfig::default()
        },
    )
    .await;
    let mut on_b = b.server.user(2, "s2").await;
    let _ = on_b.join("team:red").await;
    a.server.hub.to_room(&red()).emit(&note("before")).unwrap();
    assert_eq!(placed_note(&mut on_b).await.0, "before");

    proxy.cut();
    connected(&b.server.hub, false).await;
    let missed: Vec<String> = (1..=10).map(|n| format!("while cut off {n}")).collect();
    for text in &missed {
        a.server.hub.to_room(&red()).emit(&note(text)).unwrap();
    }
    proxy.restore();
    connected(&b.server.hub, true).await;

    // Caught up from Redis, in order, before anything newer.
    a.server.hub.to_room(&red()).emit(&note("after")).unwrap();
    let mut texts = Vec::new();
    for _ in 0..11 {
        texts.push(placed_note(&mut on_b).await.0);
    }
    let mut expected = missed;
    expected.push("after".to_owned());
    assert_eq!(texts, expected);
    b.server.assert_nothing_more(&mut [&mut on_b]).await;
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn a_room_joined_while_cut_off_from_redis_is_told_what_it_missed_when_it_is_back() {
    let channel = fresh_channel();
    let a = node(&channel).await;
    let (b, proxy) = node_behind_proxy(&channel, HubConfig::default()).await;
    let mut on_b = b.server.user(2, "s2").await;
    proxy.cut();
    connected(&b.server.hub, false).await;
    // B cannot learn where the room stands, nor hear it.
    let joined = on_b.join("team:red").await;
    assert!(
        matches!(joined, ServerFrame::Joined { position: None, .. }),
        "{joined:?}"
    );
    a.server.hub.to_room(&red()).emit(&note("missed")).unwrap();
    proxy.restore();
    connected(&b.server.hub, true).await;

    // Told as soon as B is back, before anything newer.
    let (reason, position) = discontinuity_of(&mut on_b, &red_stream()).await;
    assert_eq!((reason, position.offset), (Discontinuity::TooOld, 1));
    a.server.hub.to_room(&red()).emit(&note("after")).unwrap();
    assert_eq!(placed_note(&mut on_b).await.0, "after");
}

/// How many connections `redis` has taken since it started.
async fn connections_taken(redis: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(redis)
        .await
        .expect("INFO answers");
    info.lines()
        .find_map(|line| line.strip_prefix("total_connections_received:"))
        .and_then(|count| count.trim().parse().ok())
        .expect("INFO stats counts connections")
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn a_redis_that_takes_connections_but_refuses_writes_is_retried_ever_less_often() {
    let redis = PrivateRedis::start();
    let a = node_on(&redis.url(), &fresh_channel(), HubConfig::default()).await;
    let mut on_a = a.server.user(1, "s1").await;
    let _ = on_a.join("team:red").await;
    let mut probe = redis::Client::open(redis.url())
        .expect("a valid URL")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    // A session with Redis opens this many connections (the probe is one).
    let per_session = connections_taken(&mut probe).await - 1;
    // A replica of a primary that is not there: every write is refused
    // (READONLY), while connections, subscriptions, publications and the
    // scripts' loading still work, as on a replica after a failover.
    let nowhere = realtime_testing::faults::free_port();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(nowhere)
        .query_async(&mut probe)
        .await
        .expect("REPLICAOF answers");
    // Refused: the session ends, and each new one ends at once, when it
    // tries to start the room's stream again in Redis.
    a.server.hub.to_room(&red()).emit(&note("refused")).unwrap();
    let before = connections_taken(&mut probe).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sessions = (connections_taken(&mut probe).await - before) / per_session;
    // Retried at once after each, that is a session every 125 ms on
    // average (about 20 in 3 s); with the delays doubling from 250 ms,
    // 2 to 4.
    assert!((1..=8).contains(&sessions), "{sessions} sessions in 3 s");
    // A primary again: the process places events in Redis again from
    // its next try, up to the longest delay (10 s) away.
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut probe)
        .await
        .expect("REPLICAOF answers");
    let deadline = Instant::now() + Duration::from_secs(11);
    let emit = async || {
        let room = a.server.hub.to_room(&red());
        room.emit_placed(&note("after")).await.unwrap()
    };
    while emit().await != Placement::Shared {
        assert!(Instant::now() < deadline, "never placed in Redis again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn emits_while_redis_is_down_reach_their_hub_and_everyone_is_told_when_it_is_back() {
    let mut redis = PrivateRedis::start();
    let channel = fresh_channel();
    let a = node_on(&redis.url(), &channel, HubConfig::default()).await;
    let b = node_on(&redis.url(), &channel, HubConfig::default()).await;
    let mut on_a = a.server.user(1, "s1").await;
    let mut on_b = b.server.user(2, "s2").await;
    let _ = on_a.join("team:red").await;
    let _ = on_b.join("team:red").await;

    redis.stop();
    connected(&a.server.hub, false).await;
    connected(&b.server.hub, false).await;
    // Placed on A, in an epoch of A's own: A's tab has it at once.
    a.server.hub.to_room(&red()).emit(&note("during")).unwrap();
    let (_, during) = placed_note(&mut on_a).await;

    redis.restart();
    connected(&a.server.hub, true).await;
    connected(&b.server.hub, true).await;
    // B's tab never got it: it is told to fetch again; so is A's (the
    // stream starts again everywhere).
    let (reason, _) = discontinuity_of(&mut on_b, &red_stream()).await;
    assert_eq!(reason, Discontinuity::EpochChanged);
    discontinuity_of(&mut on_a, &red_stream()).await;

    // Then it goes on, on every hub, in Redis's epoch.
    b.server.hub.to_room(&red()).emit(&note("after")).unwrap();
    for tab in [&mut on_a, &mut on_b] {
        let after = loop {
            if let ServerFrame::Event {
                name,
                recorded: Some(recorded),
                ..
            } = tab.frame().await
                && name == "Note"
            {
                break recorded.position;
            }
        };
        assert_ne!(after.epoch, during.epoch);
    }
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn an_event_too_large_for_a_process_is_told_to_its_readers_there_at_once() {
    let channel = fresh_channel();
    let a = node(&channel).await;
    let small = HubConfig {
        max_event_bytes: 1024,
        ..HubConfig::default()
    };
    let b = node_on(&redis_url(), &channel, small).await;
    let mut on_b = b.server.user(2, "s2").await;
    let _ = on_b.join("team:red").await;
    a.server.hub.to_room(&red()).emit(&note("small")).unwrap();
    assert_eq!(placed_note(&mut on_b).await.0, "small");

    // Placed by A, too large for B to send: B's reader is told before
    // anything else happens in the room.
    a.server
        .hub
        .to_room(&red())
        .emit(&note(&"x".repeat(2000)))
        .unwrap();
    let (_, position) = discontinuity_of(&mut on_b, &red_stream()).await;
    assert_eq!(position.offset, 2);
    a.server.hub.to_room(&red()).emit(&note("after")).unwrap();
    let (text, after) = placed_note(&mut on_b).await;
    assert_eq!((text.as_str(), after.offset), ("after", 3));
    b.server.assert_nothing_more(&mut [&mut on_b]).await;
}

/// A hub on `channel` of the Redis at `url` that counts another process
/// gone after 600 ms of silence.
async fn attentive_node_on(url: &str, channel: &str) -> Node {
    let redis = RedisBackplane::new(url)
        .expect("a valid URL")
        .channel(channel)
        .liveness(Liveness {
            heartbeat: Duration::from_millis(100),
            timeout: Duration::from_millis(600),
        });
    node_with(redis, HubConfig::default()).await
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn a_process_silent_since_it_was_cut_off_is_told_to_the_readers_of_every_stream() {
    let channel = fresh_channel();
    let b = attentive_node_on(&redis_url(), &channel).await;
    let (url, proxy) = proxy_to_redis().await;
    let a = attentive_node_on(&url, &channel).await;
    let mut on_b = b.server.user(2, "s2").await;
    let _ = on_b.join("team:red").await;
    a.server.hub.to_room(&red()).emit(&note("heard")).unwrap();
    let (_, heard) = placed_note(&mut on_b).await;

    // A is cut off, places an event its own tabs alone get, and is never
    // heard again (it dies before Redis is back for it).
    proxy.cut();
    connected(&a.server.hub, false).await;
    a.server
        .hub
        .to_room(&red())
        .emit(&note("on A alone"))
        .unwrap();

    // B's reader is told it may have missed events in every stream it
    // reads, from where it is, once each.
    let mut told = BTreeMap::new();
    while told.len() < 3 {
        match on_b.frame().await {
            ServerFrame::Discontinuity {
                stream,
                reason,
                position,
            } => {
                assert_eq!(reason, Discontinuity::WriterLost);
                assert!(told.insert(stream.to_string(), position).is_none());
            }
            other => panic!("a discontinuity was expected, not {other:?}"),
        }
    }
    assert_eq!(told.get("room:team:red"), Some(&heard));
    assert!(told.contains_key("everyone") && told.contains_key("user:2"));
    b.server.assert_nothing_more(&mut [&mut on_b]).await;
    drop(a);
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn a_user_may_have_a_few_recoveries_read_from_redis_then_gets_discontinuities() {
    let channel = fresh_channel();
    let a = node(&channel).await;
    let mut since = Vec::new();
    for n in 0..50 {
        let team = Team(format!("t{n}"));
        since.push(a.server.hub.position(&Stream::room(&team)).await.unwrap());
        a.server.hub.to_room(&team).emit(&note("missed")).unwrap();
    }
    // A hub started after them: every recovery is a read of Redis.
    let b = node(&channel).await;
    // How many of `rooms` `tab` had replayed, and how many it was told it
    // could not have.
    async fn recover(
        tab: &mut TestClient,
        since: &[Position],
        rooms: std::ops::Range<usize>,
    ) -> (usize, usize) {
        let (mut replayed, mut refused) = (0, 0);
        for n in rooms {
            let frames = tab.join_since(&format!("team:t{n}"), since[n]).await;
            match notes(&frames).as_slice() {
                [one] if one == "missed" => replayed += 1,
                [] if frames
                    .iter()
                    .any(|frame| matches!(frame, ServerFrame::Discontinuity { .. })) =>
                {
                    refused += 1
                }
                _ => panic!("{frames:?}"),
            }
        }
        (replayed, refused)
    }
    // Thirty-two at once per user, all their tabs together, then one a
    // second (a slow machine may see one more).
    let mut first = b.server.user(7, "s7").await;
    assert_eq!(recover(&mut first, &since, 0..20).await, (20, 0));
    let mut second = b.server.user(7, "s7").await;
    let (replayed, refused) = recover(&mut second, &since, 20..40).await;
    assert!(
        (12..=13).contains(&replayed) && replayed + refused == 20,
        "{replayed} replayed, {refused} refused"
    );
    // Another user has a budget of their own.
    let mut other = b.server.user(8, "s8").await;
    assert_eq!(recover(&mut other, &since, 40..50).await, (10, 0));
}

/// The keys Redis holds on `channel`.
async fn keys_on(channel: &str) -> Vec<String> {
    // Every key is under a shard's hash tag, `{<channel>:<shard>}`.
    RedisProbe::connect()
        .await
        .keys(&format!("{{{channel}:*"))
        .await
}

/// The hash tag a key is under.
fn tag_of(key: &str) -> &str {
    &key[..=key.find('}').expect("a hash tag")]
}

/// Joins `room` without a position; the position `joined` gave.
async fn joined_at(tab: &mut TestClient, room: &str) -> Position {
    match tab.join(room).await {
        ServerFrame::Joined {
            position: Some(position),
            ..
        } => position,
        other => panic!("not joined with a position: {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn a_streams_keys_spoilt_by_something_else_start_it_again_and_stop_nothing() {
    let channel = fresh_channel();
    let a = node(&channel).await;
    let mut tab = a.server.user(1, "s1").await;
    let _ = tab.join("team:red").await;
    let emit = async |text: &str| {
        let room = a.server.hub.to_room(&red());
        room.emit_placed(&note(text)).await.unwrap()
    };
    assert_eq!(emit("first").await, Placement::Shared);
    assert_eq!(placed_note(&mut tab).await.0, "first");
    let keys = keys_on(&channel).await;
    let meta = keys
        .iter()
        .find(|key| key.ends_with(":room:team:red:meta"))
        .expect("the room's hash")
        .clone();
    let log = meta.replace(":meta", ":log");
    let probe = RedisProbe::connect().await;
    let spoilt = [
        redis::cmd("SET").arg(&meta).arg("not a hash").clone(),
        redis::cmd("HSET")
            .arg(&meta)
            .arg("epoch")
            .arg("an epoch?")
            .clone(),
        // Lua would write the next offset as 1e+14.
        redis::cmd("HSET")
            .arg(&meta)
            .arg("offset")
            .arg("99999999999999")
            .clone(),
        redis::cmd("SET").arg(&log).arg("not a stream").clone(),
    ];
    let texts = [
        "after SET meta",
        "after a bad epoch",
        "after a huge offset",
        "after SET log",
    ];
    for (spoil, text) in spoilt.iter().zip(texts) {
        // What went before left the keys sound again.
        assert_eq!(emit("sound").await, Placement::Shared);
        assert_eq!(placed_note(&mut tab).await.0, "sound");
        probe.run(spoil).await;
        // Placed in Redis (in a new epoch), and delivered.
        assert_eq!(emit(text).await, Placement::Shared, "{text}");
        let (got, position) = placed_note(&mut tab).await;
        assert_eq!((got.as_str(), position.offset), (text, 1));
    }
    // A hash behind its log, as if Redis went back: the append still goes
    // in, and the stream starts again (its readers are told).
    probe
        .run(redis::cmd("HSET").arg(&meta).arg("offset").arg("0"))
        .await;
    assert_eq!(emit("behind the log").await, Placement::Shared);
    loop {
        if let ServerFrame::Discontinuity { stream, reason, .. } = tab.frame().await
            && stream == red_stream()
        {
            assert_eq!(reason, Discontinuity::EpochChanged);
            break;
        }
    }
    assert_eq!(a.server.hub.backplane_connected(), Some(true));
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn reading_streams_never_written_leaves_nothing_in_redis() {
    let channel = fresh_channel();
    let a = node(&channel).await;
    let mut tab = a.server.user(1, "s1").await;
    let position = joined_at(&mut tab, "team:never").await;
    assert!(position.epoch.unwritten_since().is_some(), "{position:?}");
    assert_eq!(position.offset, 0);
    let page = a
        .server
        .hub
        .position(&Stream::Room("team:page".into()))
        .await;
    assert!(page.is_some_and(|page| page.epoch.unwritten_since().is_some()));
    assert_eq!(keys_on(&channel).await, Vec::<String>::new());

    // Written, it has its keys.
    a.server.hub.to_room(&red()).emit(&note("one")).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut keys = keys_on(&channel).await;
    while keys.len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        keys = keys_on(&channel).await;
    }
    keys.sort();
    let [log, meta] = keys.as_slice() else {
        panic!("{keys:?}");
    };
    assert!(log.ends_with("}:room:team:red:log") && meta.ends_with("}:room:team:red:meta"));
    assert_eq!(tag_of(log), tag_of(meta), "one stream, one slot");
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn an_event_for_streams_of_two_shards_is_placed_in_each_with_the_same_id() {
    let channel = fresh_channel();
    // With this many shards, user 1's stream and the room's fall apart.
    let url = redis_url();
    let redis = RedisBackplane::new(&url)
        .unwrap()
        .channel(&channel)
        .shards(1024);
    let server = TestServer::start(builder(HubConfig::default()).backplane(redis)).await;
    connected(&server.hub, true).await;
    let mut ada = server.user(1, "s1").await;
    let _ = ada.join("team:red").await;
    let mut grace = server.user(2, "s2").await;
    let _ = grace.join("team:red").await;

    let both = Target::user(1).and(Target::room(&red()));
    server.hub.target(both).emit(&note("both")).unwrap();

    // Ada reads both streams: once through each shard, with one id and
    // positions that do not overlap.
    let (first, one) = ada.recorded_event::<Note>().await;
    let (second, other) = ada.recorded_event::<Note>().await;
    assert_eq!(
        (first.text.as_str(), second.text.as_str()),
        ("both", "both")
    );
    let (one, other) = (one.unwrap(), other.unwrap());
    assert_eq!(one.id, other.id);
    let mut streams = [one.stream.clone(), other.stream.clone()];
    streams.sort_by_key(ToString::to_string);
    assert_eq!(streams, [red_stream(), Stream::User(realtime::UserId(1))]);
    assert!(one.also.is_empty() && other.also.is_empty());
    // Grace reads the room only: once.
    assert_eq!(placed_note(&mut grace).await.0, "both");
    server
        .assert_nothing_more(&mut [&mut ada, &mut grace])
        .await;

    // Each shard's keys under its own tag.
    let keys = keys_on(&channel).await;
    let tag = |suffix: &str| {
        let key = keys.iter().find(|key| key.ends_with(suffix)).expect(suffix);
        tag_of(key).to_owned()
    };
    assert_ne!(tag(":user:1:meta"), tag(":room:team:red:meta"));
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn a_tab_that_saw_a_stream_unwritten_gets_all_of_its_first_epoch_on_another_hub() {
    let channel = fresh_channel();
    let a = node(&channel).await;
    let mut tab = a.server.connect(&tab_query(7, &[])).await;
    let unwritten = joined_at(&mut tab, "team:red").await;
    drop(tab);
    a.server.hub.to_room(&red()).emit(&note("one")).unwrap();
    a.server.hub.to_room(&red()).emit(&note("two")).unwrap();

    // B started after them: Redis says the epoch was born after the tab
    // saw the stream unwritten.
    let b = node(&channel).await;
    let mut on_b = b.server.connect(&tab_query(7, &[])).await;
    let frames = on_b.join_since("team:red", unwritten).await;
    assert_eq!(notes(&frames), ["one", "two"], "{frames:?}");

    // Told it was unwritten long ago (longer than a key lives): an epoch
    // may have come and gone meanwhile.
    let long_ago = Position {
        epoch: realtime::stream::Epoch::unwritten_at(
            unwritten.epoch.unwritten_since().unwrap() - 10 * 60 * 1000,
        ),
        offset: 0,
    };
    let c = node(&channel).await;
    let mut on_c = c.server.connect(&tab_query(8, &[])).await;
    let frames = on_c.join_since("team:blue", long_ago).await;
    assert!(
        has_discontinuity(&frames, Discontinuity::TooOld),
        "{frames:?}"
    );
    // Told so just now, of a stream written before: not its history.
    let just_now = Position {
        epoch: realtime::stream::Epoch::unwritten_at(
            unwritten.epoch.unwritten_since().unwrap() + 60 * 1000,
        ),
        offset: 0,
    };
    let frames = on_c.join_since("team:red", just_now).await;
    assert!(
        notes(&frames).is_empty() && has_discontinuity(&frames, Discontinuity::EpochChanged),
        "{frames:?}"
    );
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn joins_without_a_position_read_redis_within_the_users_budget() {
    let channel = fresh_channel();
    let a = node(&channel).await;
    let mut tab = a.server.user(1, "s1").await;
    let start = Instant::now();
    // The burst, then one a second: the 34th waits two seconds, on any of
    // the user's connections.
    for n in 0..32 {
        joined_at(&mut tab, &format!("team:fresh{n}")).await;
    }
    let mut another = a.server.user(1, "s1").await;
    for n in 32..34 {
        joined_at(&mut another, &format!("team:fresh{n}")).await;
    }
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(1500), "{waited:?}");
    // Streams this hub knows cost no read, and do not wait.
    let start = Instant::now();
    for n in 0..34 {
        joined_at(&mut tab, &format!("team:fresh{n}")).await;
    }
    assert!(start.elapsed() < Duration::from_millis(900));
}

/// A hub on `channel` with 1,024 shards, that drops a shard 300 ms after
/// its last reader went (checked every 100 ms).
/// The shards of a [`quick_node`]: many, so that rooms rarely share one.
const QUICK_SHARDS: u16 = 1024;

async fn quick_node(channel: &str) -> Node {
    let redis = RedisBackplane::new(&redis_url())
        .unwrap()
        .channel(channel)
        .shards(QUICK_SHARDS)
        .unsubscribe_after(Duration::from_millis(300))
        .liveness(Liveness {
            heartbeat: Duration::from_millis(100),
            timeout: Duration::from_secs(5),
        });
    node_with(redis, HubConfig::default()).await
}

/// How many processes subscribe to each of the shards' channels of
/// `channel` that has any.
async fn subscribers(channel: &str) -> BTreeMap<String, usize> {
    let shards: Vec<String> = (0..QUICK_SHARDS)
        .map(|shard| format!("{{{channel}:{shard}}}:events"))
        .collect();
    let counts = RedisProbe::connect().await.listeners(&shards).await;
    shards
        .into_iter()
        .zip(counts)
        .filter(|(_, count)| *count > 0)
        .collect()
}

/// Waits until `check` holds of the subscriptions on `channel`.
async fn subscriptions_become(
    channel: &str,
    what: &str,
    check: impl Fn(&BTreeMap<String, usize>) -> bool,
) -> BTreeMap<String, usize> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let counts = subscribers(channel).await;
        if check(&counts) {
            return counts;
        }
        assert!(Instant::now() < deadline, "{what}: {counts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn a_process_hears_the_shards_its_tabs_read_and_forgets_the_others() {
    let channel = fresh_channel();
    let (a, b) = (quick_node(&channel).await, quick_node(&channel).await);
    // Only everyone's shard, on both.
    let everyone = subscriptions_become(&channel, "everyone's shard", |counts| {
        counts.len() == 1 && counts.values().all(|count| *count == 2)
    })
    .await;

    // A visitor: no user's stream, so the one new shard is the room's.
    let mut on_b = b.server.anonymous().await;
    let _ = on_b.join("team:red").await;
    let counts = subscribers(&channel).await;
    assert_eq!(counts.len(), 2, "{counts:?}");
    let red_shard = counts
        .keys()
        .find(|shard| !everyone.contains_key(*shard))
        .expect("the room's shard is subscribed once a tab joins")
        .clone();
    assert_eq!(counts[&red_shard], 1, "B alone reads the room");

    a.server.hub.to_room(&red()).emit(&note("one")).unwrap();
    let (_, seen) = placed_note(&mut on_b).await;
    on_b.send(&ClientFrame::Leave {
        room: "team:red".into(),
    })
    .await;
    subscriptions_become(&channel, "B drops the room's shard", |counts| {
        !counts.contains_key(&red_shard)
    })
    .await;

    // Said while B did not hear the shard: B's mirror forgot the room, so
    // the tab's recovery reads Redis rather than a copy gone stale.
    a.server.hub.to_room(&red()).emit(&note("two")).unwrap();
    a.server.hub.to_room(&red()).emit(&note("three")).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let frames = on_b.join_since("team:red", seen).await;
    assert_eq!(notes(&frames), ["two", "three"], "{frames:?}");
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn a_durable_event_reaches_a_connection_it_names_on_a_process_that_does_not_read_its_room() {
    let channel = fresh_channel();
    let (a, b) = (quick_node(&channel).await, quick_node(&channel).await);
    let mut reader = a.server.anonymous().await;
    let _ = reader.join("team:red").await;
    // B hears nothing of the room.
    let mut named = b.server.anonymous().await;
    let target = Target::room(&red()).and(Target::connection(named.connection));
    a.server.hub.target(target).emit(&note("to both")).unwrap();
    assert_eq!(placed_note(&mut reader).await.0, "to both");
    assert_eq!(named.event::<Note>().await, note("to both"));
}

/// Notes to each of some rooms, numbered, written without pause until
/// stopped, then a note "last" to each.
struct Writing {
    writing: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Writing {
    fn start(hub: &Hub, rooms: Vec<Team>) -> Self {
        let writing = Arc::new(AtomicBool::new(true));
        let (hub, still) = (hub.clone(), Arc::clone(&writing));
        let task = tokio::spawn(async move {
            let mut n = 0;
            while still.load(Ordering::Relaxed) {
                for room in &rooms {
                    hub.to_room(room).emit(&note(&n.to_string())).unwrap();
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            for room in &rooms {
                hub.to_room(room).emit(&note("last")).unwrap();
            }
        });
        Self { writing, task }
    }

    async fn stop(self) {
        self.writing.store(false, Ordering::Relaxed);
        self.task.await.unwrap();
    }
}

/// Reads `tab`'s notes of `stream` to the one called "last": each the one
/// after the one before (the first after `from`, when given), in its
/// epoch, once, and no discontinuity (`recorded_event` takes nothing
/// else).
async fn notes_in_order_to_the_last(tab: &mut TestClient, stream: &Stream, from: Option<Position>) {
    let mut at = from;
    loop {
        let (note, recorded) = tab.recorded_event::<Note>().await;
        let recorded = recorded.expect("a durable event carries its position");
        assert_eq!(&recorded.stream, stream);
        if let Some(at) = at {
            assert_eq!(recorded.position.epoch, at.epoch, "{stream} after {at:?}");
            assert_eq!(
                recorded.position.offset,
                at.offset + 1,
                "{stream} after {at:?}"
            );
        }
        at = Some(recorded.position);
        if note.text == "last" {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis: scripts/test runs it"]
async fn nothing_is_lost_between_a_join_and_its_shards_subscription() {
    let channel = fresh_channel();
    let (a, b) = (quick_node(&channel).await, quick_node(&channel).await);
    // Rooms of different shards (1024 of them), each joined on B while A
    // writes it without pause: each join is a race between B's
    // subscription, its read of the room's position and the publications
    // on their way (received after the read, they are at or before the
    // position it gave).
    const ROOMS: usize = 8;
    let room = |k: usize| Team(format!("r{k}"));
    let writing = Writing::start(&a.server.hub, (0..ROOMS).map(room).collect());
    let mut joined = Vec::new();
    for k in 0..ROOMS {
        tokio::time::sleep(Duration::from_millis(10)).await;
        // B hears nothing of the room yet: its tab's join subscribes.
        let mut tab = b.server.connect(&tab_query(10 + k as u64, &[])).await;
        let at = joined_at(&mut tab, &format!("team:r{k}")).await;
        joined.push((k, tab, at));
    }
    writing.stop().await;
    for (k, mut tab, joined) in joined {
        let stream = Stream::Room(format!("team:r{k}").as_str().into());
        notes_in_order_to_the_last(&mut tab, &stream, Some(joined)).await;
    }
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn a_gap_in_what_redis_publishes_is_told_to_the_readers() {
    let channel = fresh_channel();
    let a = node(&channel).await;
    let mut tab = a.server.user(1, "s1").await;
    let ServerFrame::Joined {
        position: Some(start),
        ..
    } = tab.join("team:red").await
    else {
        panic!("no position for the room");
    };
    let redis = RedisProbe::connect().await;
    // What the channel would carry had publications 1 to 4 been lost on
    // their way here; and messages no script sends, dropped.
    let publish = |offset: u64, text: &str| {
        format!(
            r#"{{"node":"00000000000000aa","message":{{"type":"recorded","target":{{"everyone":false,"users":[],"rooms":["team:red"],"connections":[],"except":null}},"id":"00000000000000{offset:02x}","except_tab":null,"streams":["room:team:red"],"positions":[{{"epoch":"{}","offset":{offset}}}]}}}}
{{"type":"event","name":"Note","data":{{"text":"{text}"}}}}"#,
            start.epoch
        )
    };
    let reset_mid_epoch = format!(
        r#"{{"node":"00000000000000aa","message":{{"type":"reset","stream":"room:team:red","position":{{"epoch":"{}","offset":9}}}}}}
"#,
        start.epoch
    );
    for envelope in [
        publish(0, "at offset zero"),
        reset_mid_epoch,
        publish(5, "after a gap"),
    ] {
        redis.publish(&channel, &envelope).await;
    }
    let (reason, position) = discontinuity_of(&mut tab, &red_stream()).await;
    assert_eq!(reason, Discontinuity::TooOld);
    assert_eq!(position.offset, 4);
    assert_eq!(
        placed_note(&mut tab).await,
        ("after a gap".to_owned(), Position { offset: 5, ..start })
    );
    a.server.assert_nothing_more(&mut [&mut tab]).await;
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn a_redis_back_from_an_older_snapshot_starts_the_stream_again_and_swallows_nothing_after() {
    let mut redis = PrivateRedis::start_with_snapshots();
    let channel = fresh_channel();
    let a = node_on(&redis.url(), &channel, HubConfig::default()).await;
    let b = node_on(&redis.url(), &channel, HubConfig::default()).await;
    // A tab on A reads the room; messages are posted through B.
    let mut tab = a.server.user(1, "s1").await;
    let _ = tab.join("team:red").await;
    for n in 1..=3 {
        b.server
            .hub
            .to_room(&red())
            .emit(&note(&format!("saved {n}")))
            .unwrap();
    }
    for _ in 1..=3 {
        placed_note(&mut tab).await;
    }
    // Redis saves a snapshot, takes five more, crashes, and starts again
    // from the snapshot: offsets 4 to 8 will be given again.
    redis.save();
    for n in 1..=5 {
        b.server
            .hub
            .to_room(&red())
            .emit(&note(&format!("lost {n}")))
            .unwrap();
    }
    let mut old = None;
    for _ in 1..=5 {
        old = Some(placed_note(&mut tab).await.1);
    }
    let old = old.expect("five notes");
    assert_eq!(old.offset, 8);
    redis.crash();
    connected(&a.server.hub, false).await;
    connected(&b.server.hub, false).await;
    redis.restart();
    connected(&a.server.hub, true).await;
    connected(&b.server.hub, true).await;

    // The tab is told, and the stream goes on in a new epoch.
    let new = loop {
        if let ServerFrame::Discontinuity {
            stream, position, ..
        } = tab.frame().await
            && stream == red_stream()
            && position.epoch != old.epoch
        {
            break position;
        }
    };
    for n in 1..=8 {
        b.server
            .hub
            .to_room(&red())
            .emit(&note(&format!("after {n}")))
            .unwrap();
    }
    for n in 1..=8 {
        let (text, position) = placed_note(&mut tab).await;
        assert_eq!(text, format!("after {n}"));
        assert_eq!((position.epoch, position.offset), (new.epoch, n));
    }
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn a_connection_the_server_puts_in_a_room_hears_the_room_at_once() {
    let channel = fresh_channel();
    // Heartbeats 5 s apart: the shard must not wait for the next one.
    let node = || async {
        let redis = RedisBackplane::new(&redis_url())
            .unwrap()
            .channel(&channel)
            .shards(QUICK_SHARDS);
        let server = TestServer::start(builder(HubConfig::default()).backplane(redis)).await;
        connected(&server.hub, true).await;
        server
    };
    let (a, b) = (node().await, node().await);
    let mut tab = b.anonymous().await;
    assert!(b.hub.join(tab.connection, &red()));
    assert!(matches!(tab.frame().await, ServerFrame::Joined { .. }));
    // Within a second, long before B's next heartbeat.
    let deadline = Instant::now() + Duration::from_secs(1);
    while subscribers(&channel).await.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the room's shard waits for a heartbeat"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.hub.to_room(&red()).emit(&note("at once")).unwrap();
    assert_eq!(placed_note(&mut tab).await.0, "at once");
}

/// What the processes of this test binary logged (from the first call on).
fn logs() -> &'static std::sync::Mutex<Vec<u8>> {
    static LOGS: std::sync::OnceLock<std::sync::Mutex<Vec<u8>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        struct Writer;
        impl std::io::Write for Writer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                logs().lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let _ = tracing_subscriber::fmt()
            .with_writer(|| Writer)
            .with_ansi(false)
            .try_init();
        std::sync::Mutex::default()
    })
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn processes_with_different_shard_counts_on_one_channel_are_told_loudly() {
    let _ = logs();
    let channel = fresh_channel();
    let with = |shards: u16| {
        RedisBackplane::new(&redis_url())
            .unwrap()
            .channel(&channel)
            .shards(shards)
    };
    let a = TestServer::start(builder(HubConfig::default()).backplane(with(16))).await;
    connected(&a.hub, true).await;
    let b = TestServer::start(builder(HubConfig::default()).backplane(with(32))).await;
    connected(&b.hub, true).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let logged = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
        let told = logged
            .lines()
            .filter(|line| line.contains("ERROR") && line.contains("REDIS_SHARDS must be the same"))
            .collect::<Vec<_>>();
        // A hears B's hello, B hears A's snapshot.
        if told.iter().any(|line| line.contains("theirs=32 ours=16"))
            && told.iter().any(|line| line.contains("theirs=16 ours=32"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "not told: {told:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis: scripts/test runs it"]
async fn a_tab_put_in_a_room_without_a_position_loses_nothing_a_later_join_read_ahead() {
    let channel = fresh_channel();
    let (a, b) = (quick_node(&channel).await, quick_node(&channel).await);
    // In each room, a tab the server puts in it (no position: B has not
    // read the room), then a tab that joins it, whose read of the room's
    // position may run ahead of what B has received live: what B then
    // receives it had already; the first tab still gets it.
    const ROOMS: usize = 8;
    let room = |k: usize| Team(format!("s{k}"));
    let writing = Writing::start(&a.server.hub, (0..ROOMS).map(room).collect());
    let mut tabs = Vec::new();
    for k in 0..ROOMS {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut put = b.server.anonymous().await;
        let mut joining = b.server.connect(&tab_query(20 + k as u64, &[])).await;
        // At once: the join's read follows the subscription the server's
        // join asked for.
        assert!(b.server.hub.join(put.connection, &room(k)));
        let at = joined_at(&mut joining, &format!("team:s{k}")).await;
        assert!(matches!(put.frame().await, ServerFrame::Joined { .. }));
        tabs.push((k, put, joining, at));
    }
    writing.stop().await;
    for (k, mut put, mut joining, joined) in tabs {
        let stream = Stream::Room(format!("team:s{k}").as_str().into());
        // From its first note (the one put in), or from its joined
        // position (the one that joined).
        notes_in_order_to_the_last(&mut put, &stream, None).await;
        notes_in_order_to_the_last(&mut joining, &stream, Some(joined)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis: scripts/test runs it"]
async fn an_event_sent_at_once_to_a_room_the_server_put_a_tab_in_reaches_it() {
    let channel = fresh_channel();
    let node = quick_node(&channel).await;
    // Each room's shard is new to the process: its subscription must come
    // before the event goes out, or the event comes back to nobody here.
    for k in 0..64 {
        let room = Team(format!("p{k}"));
        let mut put = node.server.anonymous().await;
        assert!(node.server.hub.join(put.connection, &room));
        let sent = note(&format!("sent at once to p{k}"));
        node.server.hub.to_room(&room).emit(&sent).unwrap();
        assert!(matches!(put.frame().await, ServerFrame::Joined { .. }));
        assert_eq!(put.event::<Note>().await, sent, "room p{k}");
    }
}
