//! Two hubs joined by the Redis backplane, each behind its own WebSocket
//! server: what crosses, what does not, and how much goes through Redis.
//!
//! Needs a Redis server, so ignored by a plain `cargo test`; `scripts/test`
//! runs it with `TEST_REDIS_URL` set. Each test has a channel of its own.

mod support;

use std::time::{Duration, Instant};

use realtime::{
    Presence,
    server::{
        Hub, HubBuilder, JoinRequest, SessionKey,
        broker::redis::{DEFAULT_SHARDS, RedisBackplane},
    },
};
use realtime_testing::faults::CuttableProxy;
use support::{
    PATIENCE, Team, TestServer, note,
    redis_probe::{RedisProbe, redis_url},
};

fn fresh_channel() -> String {
    use std::hash::{BuildHasher, RandomState};
    format!(
        "realtime.test.{:016x}",
        RandomState::new().hash_one(Instant::now())
    )
}

/// Team rooms open to anyone, with presence.
fn builder() -> HubBuilder {
    Hub::builder()
        .room::<Team, _, _>(|_: JoinRequest<Team>| async { Ok(()) })
        .presence::<Team>()
}

struct Node {
    server: TestServer,
}

/// A hub on the backplane, once connected to Redis: a tab that connects
/// before gets positions of the hub's own, reset once Redis is there.
async fn node(channel: &str) -> Node {
    let server = TestServer::start(on_backplane(&redis_url(), channel)).await;
    let deadline = Instant::now() + PATIENCE;
    while server.hub.backplane_connected() != Some(true) {
        assert!(
            Instant::now() < deadline,
            "the hub did not connect to Redis"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Node { server }
}

/// A hub that shares `channel` of the Redis at `url`.
fn on_backplane(url: &str, channel: &str) -> HubBuilder {
    let redis = RedisBackplane::new(url)
        .expect("a valid URL")
        .channel(channel);
    builder().backplane(redis)
}

/// The Redis server's address, from its URL.
fn redis_address() -> std::net::SocketAddr {
    let url = redis_url();
    let host = url
        .trim_start_matches("redis://")
        .split(['/', '?'])
        .next()
        .unwrap_or_default()
        .to_owned();
    std::net::ToSocketAddrs::to_socket_addrs(&host)
        .ok()
        .and_then(|mut addresses| addresses.next())
        .unwrap_or_else(|| panic!("TEST_REDIS_URL names no address: {url}"))
}

/// Waits until each hub is connected and hears from the other.
async fn introduce(nodes: &[&Node]) {
    let deadline = Instant::now() + PATIENCE;
    for node in nodes {
        while !(node.server.hub.backplane_connected() == Some(true)
            && node.server.hub.peers() == nodes.len() - 1)
        {
            assert!(Instant::now() < deadline, "the hubs did not meet");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn two_nodes() -> (Node, Node, String) {
    let channel = fresh_channel();
    let a = node(&channel).await;
    let b = node(&channel).await;
    introduce(&[&a, &b]).await;
    (a, b, channel)
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn an_emit_reaches_the_other_hub_once_and_its_own_connections_once() {
    let (a, b, _) = two_nodes().await;
    let mut on_a = a.server.user(1, "s1").await;
    let mut on_b = b.server.user(1, "s2").await;

    a.server.hub.to(1).emit(&note("hi")).unwrap();
    assert_eq!(on_a.event::<support::Note>().await, note("hi"));
    assert_eq!(on_b.event::<support::Note>().await, note("hi"));
    // No echo: A delivered it to its own connection once.
    a.server.assert_nothing_more(&mut [&mut on_a]).await;
    b.server.assert_nothing_more(&mut [&mut on_b]).await;
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn an_emit_is_one_publish_whatever_the_number_of_recipients() {
    let (a, b, channel) = two_nodes().await;
    // Durable events go out on their stream's shard's channel.
    let channels: Vec<String> = std::iter::once(channel.clone())
        .chain((0..DEFAULT_SHARDS).map(|shard| format!("{{{channel}:{shard}}}:events")))
        .collect();
    let mut messages = RedisProbe::connect().await.listen(&channels).await;

    let mut on_b = Vec::new();
    for user in 1..=5 {
        let mut client = b.server.user(user, &format!("s{user}")).await;
        let _ = client.join("team:red").await;
        on_b.push(client);
    }
    let local = a.server.user(9, "s9").await;

    a.server
        .hub
        .to_room(&Team("red".into()))
        .emit(&note("all five"))
        .unwrap();
    a.server
        .hub
        .to_connection(local.connection)
        .emit(&note("local only"))
        .unwrap();
    a.server.hub.emit(&note("end")).unwrap();

    // Everything published until "end" and "all five" both were (on a
    // cluster their shards' channels may be on two nodes: no order
    // between them).
    let mut published = Vec::new();
    while !["all five", "end"].iter().all(|text| {
        published
            .iter()
            .any(|payload: &String| payload.contains(text))
    }) {
        let payload = messages
            .next_within(PATIENCE)
            .await
            .expect("published in time");
        published.push(payload);
    }
    // And whatever else comes soon after (a second copy, say).
    while let Some(payload) = messages.next_within(Duration::from_millis(300)).await {
        published.push(payload);
    }
    // Durable events (notes) are published by Redis as it places them
    // (`recorded`), each once.
    let recorded = |text: &str| {
        published
            .iter()
            .filter(|payload| payload.contains(r#""type":"recorded""#) && payload.contains(text))
            .count()
    };
    assert_eq!(
        (recorded("all five"), recorded("end")),
        (1, 1),
        "{published:?}"
    );
    assert!(
        !published
            .iter()
            .any(|payload| payload.contains("local only")),
        "the emit to a connection of A's own was published: {published:?}"
    );
    // Each of B's clients gets both, once (in either order on a cluster).
    for client in &mut on_b {
        let mut got = [next_note(client).await.text, next_note(client).await.text];
        got.sort();
        assert_eq!(got, ["all five", "end"]);
    }
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn presence_merges_the_members_of_every_hub() {
    let (a, b, _) = two_nodes().await;
    let (mut ada, bob) = ada_on_a_and_bob_on_b_in_red(&a, &b).await;

    // A second connection of Ada's on B: still one Ada.
    let mut ada_on_b = b.server.connect("user=1&session=s3&name=ada").await;
    let _ = ada_on_b.join("team:red").await;
    presence_becomes(&mut ada_on_b, &["ada", "bob"]).await;

    drop(bob);
    presence_becomes(&mut ada, &["ada"]).await;
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn a_session_ends_on_every_hub() {
    let (a, b, _) = two_nodes().await;
    let mut on_a = a.server.user(1, "shared").await;
    let mut on_b = b.server.user(1, "shared").await;
    let mut other = b.server.user(1, "another").await;

    assert_eq!(
        a.server.hub.disconnect_session(&"shared".into()),
        1,
        "A closes its own connection"
    );
    let ended = Some(realtime::protocol::close::SESSION_ENDED);
    assert_eq!(on_a.closed().await, ended);
    assert_eq!(on_b.closed().await, ended);
    b.server.assert_nothing_more(&mut [&mut other]).await;
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn a_hub_that_connects_late_still_hears_of_a_session_that_ended() {
    let channel = fresh_channel();
    let a = node(&channel).await;
    introduce(&[&a]).await;
    // B serves a connection of the session, but cannot reach Redis yet
    // (it is cut off, say) when A ends the session.
    let proxy = CuttableProxy::start(redis_address()).await;
    proxy.cut();
    let through_proxy = format!("redis://127.0.0.1:{}", proxy.port);
    let b = TestServer::start(on_backplane(&through_proxy, &channel)).await;
    let mut on_b = b.user(1, "shared").await;
    assert_eq!(a.server.hub.disconnect_session(&"shared".into()), 0);

    // B connects; its hello makes A tell the end of the session again.
    proxy.restore();
    assert_eq!(
        on_b.closed().await,
        Some(realtime::protocol::close::SESSION_ENDED)
    );
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn a_hub_that_says_goodbye_is_forgotten_at_once() {
    let (a, b, _) = two_nodes().await;
    let (mut ada, _bob) = ada_on_a_and_bob_on_b_in_red(&a, &b).await;

    // B shuts down: its connections close (their departures are published)
    // and it says goodbye. A's list is right at once, not after a timeout.
    b.server.hub.disconnect_all();
    b.server.hub.shutdown().await;
    presence_becomes(&mut ada, &["ada"]).await;
    let deadline = Instant::now() + PATIENCE;
    while a.server.hub.peers() != 0 {
        assert!(Instant::now() < deadline, "A still counts B");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Ada on A and Bob on B join room red; both see both.
async fn ada_on_a_and_bob_on_b_in_red(
    a: &Node,
    b: &Node,
) -> (support::TestClient, support::TestClient) {
    let mut ada = a.server.connect("user=1&session=s1&name=ada").await;
    let _ = ada.join("team:red").await;
    presence_becomes(&mut ada, &["ada"]).await;
    let mut bob = b.server.connect("user=2&session=s2&name=bob").await;
    let _ = bob.join("team:red").await;
    presence_becomes(&mut bob, &["ada", "bob"]).await;
    presence_becomes(&mut ada, &["ada", "bob"]).await;
    (ada, bob)
}

/// Reads presence updates until one lists exactly `names`. (Updates from
/// the other hub arrive when they arrive: an intermediate list is fine.)
async fn presence_becomes(client: &mut support::TestClient, names: &[&str]) {
    loop {
        let presence = client.event::<Presence>().await;
        let got: Vec<&str> = presence.members.iter().map(|m| m.name.as_str()).collect();
        if got == names {
            return;
        }
    }
}

/// The next note, skipping presence updates.
async fn next_note(client: &mut support::TestClient) -> support::Note {
    use realtime::{Event, protocol::ServerFrame};
    loop {
        match client.frame().await {
            ServerFrame::Event { name, data, .. } if name == support::Note::NAME => {
                return serde_json::from_str(data.get()).expect("a note");
            }
            ServerFrame::Event { name, .. } if name == Presence::NAME => continue,
            other => panic!("expected a note, got {other:?}"),
        }
    }
}

#[tokio::test]
#[ignore = "needs Redis: scripts/test runs it"]
async fn only_event_frames_cross_and_session_ids_never_do() {
    let channel = fresh_channel();
    let node = node(&channel).await;
    let mut tab = node.server.user(1, "secret-session-id").await;
    let redis = RedisProbe::connect().await;
    let mut messages = redis.listen(std::slice::from_ref(&channel)).await;

    // Anyone who can write to the channel: a forged welcome, and frames
    // that are not frames at all. None reaches the browser.
    let header = r#"{"node":"00000000000000aa","message":{"type":"deliver","target":{"everyone":true,"users":[],"rooms":[],"connections":[],"except":null}}}"#;
    for payload in [
        r#"{"type":"welcome","connection":"0000000000000001","user":2}"#,
        r#"{"type":"left","room":"team:red"}"#,
        "not json",
    ] {
        redis
            .publish(&channel, &format!("{header}\n{payload}"))
            .await;
    }
    // An event frame does cross.
    let event = format!(
        r#"{header}
{{"type":"event","name":"Note","data":{{"text":"forged but well-formed"}}}}"#
    );
    redis.publish(&channel, &event).await;
    assert_eq!(next_note(&mut tab).await, note("forged but well-formed"));
    node.server.assert_nothing_more(&mut [&mut tab]).await;

    // A log-out tells the other processes a hash of the session, not its id.
    node.server
        .hub
        .disconnect_session(&SessionKey::from("secret-session-id"));
    loop {
        let payload = messages
            .next_within(PATIENCE)
            .await
            .expect("published in time");
        if payload.contains("close_session") {
            assert!(!payload.contains("secret-session-id"), "{payload}");
            break;
        }
    }
}
