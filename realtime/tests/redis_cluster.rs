//! Faults of a Redis Cluster, on a cluster of the test's own
//! ([`PrivateCluster`]): a node that restarts empty, and a slot that moves
//! to another node while a stream of it is written. A tab reading the
//! stream on another process gets every event in order, or is told it may
//! have missed some (a `discontinuity`), never a silent gap.
//!
//! Needs `redis-server` 7 and `redis-cli`, so ignored by a plain `cargo
//! test`; `scripts/test` runs it. (The other Redis tests run against the
//! script's own cluster too: `redis_history.rs`, `backplane.rs`.)

mod support;

use std::time::{Duration, Instant};

use realtime::{
    Position, Stream,
    protocol::ServerFrame,
    server::{Hub, HubBuilder, JoinRequest, broker::redis::RedisBackplane},
};
use realtime_testing::faults::PrivateCluster;
use support::{Note, PATIENCE, Team, TestClient, TestServer, note, redis_probe::RedisProbe};

fn fresh_channel() -> String {
    format!("realtime.test.{:016x}", rand::random::<u64>())
}

/// A hub on `channel` of the cluster at `url`, once connected.
async fn node_on(url: &str, channel: &str) -> TestServer {
    let redis = RedisBackplane::new(url)
        .expect("a valid URL")
        .channel(channel);
    let builder: HubBuilder =
        Hub::builder().room::<Team, _, _>(|_: JoinRequest<Team>| async { Ok(()) });
    let server = TestServer::start(builder.backplane(redis)).await;
    let deadline = Instant::now() + PATIENCE;
    while server.hub.backplane_connected() != Some(true) {
        assert!(Instant::now() < deadline, "the hub did not connect");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server
}

fn red() -> Team {
    Team("red".into())
}

fn red_stream() -> Stream {
    Stream::Room("team:red".into())
}

/// What a tab reading the room gets, one frame at a time.
enum Got {
    Note(String, Position),
    Gap(Position),
}

/// The next note or discontinuity of the room (other frames skipped).
async fn next(tab: &mut TestClient) -> Got {
    loop {
        match tab.frame().await {
            ServerFrame::Event {
                name,
                data,
                recorded,
            } if name == "Note" => {
                let note: Note = serde_json::from_str(data.get()).expect("a note");
                let recorded = recorded.expect("a durable event carries its position");
                assert_eq!(recorded.stream, red_stream());
                return Got::Note(note.text, recorded.position);
            }
            ServerFrame::Discontinuity {
                stream, position, ..
            } if stream == red_stream() => return Got::Gap(position),
            _ => {}
        }
    }
}

/// The key of the room's stream's hash in the cluster (its slot is the
/// room's shard's).
async fn room_key(url: &str, channel: &str) -> String {
    let keys = RedisProbe::connect_to(url)
        .await
        .keys(&format!("{{{channel}:*}}:room:team:red:meta"))
        .await;
    keys.into_iter().next().expect("the room was written")
}

#[tokio::test]
#[ignore = "needs redis-server 7: scripts/test runs it"]
async fn a_cluster_node_that_restarts_empty_is_a_discontinuity_for_the_readers_of_its_streams() {
    let mut cluster = PrivateCluster::start();
    let channel = fresh_channel();
    let a = node_on(&cluster.urls(), &channel).await;
    let b = node_on(&cluster.url(), &channel).await;
    let mut tab = b.user(1, "s1").await;
    let _ = tab.join("team:red").await;
    a.hub.to_room(&red()).emit(&note("before")).unwrap();
    let Got::Note(text, before) = next(&mut tab).await else {
        panic!("a discontinuity before anything happened");
    };
    assert_eq!((text.as_str(), before.offset), ("before", 1));

    // The node holding the room forgets it.
    cluster.restart_node_of(&room_key(&cluster.url(), &channel).await);

    // B hears of it: the tab is told, whatever A does meanwhile.
    let Got::Gap(gap) = next(&mut tab).await else {
        panic!("an event arrived before the discontinuity");
    };
    assert_ne!(gap.epoch, before.epoch, "the room's history is gone");
    // Then the room goes on, in a new epoch.
    let deadline = Instant::now() + 2 * PATIENCE;
    loop {
        assert!(Instant::now() < deadline, "the room never went on");
        a.hub.to_room(&red()).emit(&note("after")).unwrap();
        match tokio::time::timeout(Duration::from_millis(500), next(&mut tab)).await {
            Ok(Got::Note(text, position)) => {
                assert_eq!(text, "after");
                assert_ne!(position.epoch, before.epoch);
                break;
            }
            Ok(Got::Gap(_)) | Err(_) => {}
        }
    }
}

#[tokio::test]
#[ignore = "needs redis-server 7: scripts/test runs it"]
async fn a_slot_that_moves_while_its_stream_is_written_loses_nothing_silently() {
    let cluster = PrivateCluster::start();
    let channel = fresh_channel();
    let (a, b) = (
        node_on(&cluster.url(), &channel).await,
        node_on(&cluster.url(), &channel).await,
    );
    let mut tab = b.user(1, "s1").await;
    let _ = tab.join("team:red").await;
    a.hub.to_room(&red()).emit(&note("0")).unwrap();
    let Got::Note(_, first) = next(&mut tab).await else {
        panic!("a discontinuity before anything happened");
    };
    let key = room_key(&cluster.url(), &channel).await;

    const EVENTS: usize = 300;
    let hub = a.hub.clone();
    let writer = tokio::spawn(async move {
        for n in 1..=EVENTS {
            hub.to_room(&red()).emit(&note(&n.to_string())).unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    // (Kept: dropping it stops the cluster.)
    let _cluster = tokio::task::spawn_blocking(move || {
        cluster.move_slot_of(&key);
        cluster
    })
    .await
    .unwrap();

    // Each note is the one after the last, or after where a discontinuity
    // said the stream goes on; the last one comes.
    let (mut at, mut gaps) = (first, 0);
    loop {
        match next(&mut tab).await {
            Got::Note(text, position) => {
                assert_eq!(position.epoch, at.epoch, "a note of another epoch, untold");
                assert_eq!(position.offset, at.offset + 1, "a gap, untold ({text})");
                at = position;
                if text == EVENTS.to_string() {
                    break;
                }
            }
            Got::Gap(position) => {
                gaps += 1;
                at = position;
            }
        }
    }
    writer.await.unwrap();
    eprintln!("the slot moved: {gaps} discontinuities told");
}
