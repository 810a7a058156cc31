//! The hub against hostile and broken clients: oversized events, frame
//! floods, too many sockets, join/leave floods, slow room rules, browsers
//! that stop reading, and sessions that end or expire. Each limit is set
//! low here, so the tests run fast; hostile clients connect from 127.0.0.2
//! and up.

mod support;

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::http::StatusCode;
use realtime::{
    Event, Presence,
    protocol::{ClientFrame, ErrorCode, ServerFrame, close},
    server::{EmitError, Hub, HubBuilder, HubConfig, SessionKey},
};
use support::{Note, PATIENCE, Team, TestServer, note};
use tokio::sync::Notify;

/// Teams anyone logged in may join, with presence.
fn builder() -> HubBuilder {
    Hub::builder()
        .room::<Team, _, _>(|_| async { Ok(()) })
        .presence::<Team>()
}

async fn server_with(config: HubConfig) -> TestServer {
    TestServer::start(builder().config(config)).await
}

/// Waits until `done` holds, or fails after [`PATIENCE`].
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// --- What the server sends ------------------------------------------------

#[tokio::test]
async fn an_event_over_the_size_limit_is_an_error_and_reaches_nobody() {
    let server = server_with(HubConfig {
        max_event_bytes: 1024,
        ..HubConfig::default()
    })
    .await;
    let mut tab = server.user(1, "s1").await;
    let refused = server.hub.emit(&note(&"x".repeat(2000)));
    assert!(
        matches!(refused, Err(EmitError::TooLarge { max: 1024, .. })),
        "{refused:?}"
    );
    assert_eq!(server.hub.emit(&note("small")).unwrap(), 1);
    assert_eq!(tab.event::<Note>().await, note("small"));
}

// --- What the browser sends -----------------------------------------------

#[tokio::test]
async fn frames_past_the_budget_get_an_error_then_a_close() {
    let server = server_with(HubConfig {
        frames_per_second: 1,
        frame_burst: 3,
        ..HubConfig::default()
    })
    .await;
    let mut tab = server.user(1, "s1").await;
    let leave = ClientFrame::Leave {
        room: "team:red".into(),
    };
    for _ in 0..3 {
        tab.send(&leave).await;
        assert!(matches!(tab.frame().await, ServerFrame::Left { .. }));
    }
    tab.send(&leave).await;
    match tab.frame().await {
        ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::RateLimited),
        other => panic!("expected an error frame, got {other:?}"),
    }
    // Told, and still sending: closed.
    for _ in 0..20 {
        tab.send(&leave).await;
    }
    assert_eq!(tab.closed().await, Some(close::RATE_LIMITED));
}

#[tokio::test]
async fn binary_frames_and_pings_count_against_the_budget_too() {
    use futures_util::SinkExt;
    use realtime_testing::tungstenite::Message;
    let server = server_with(HubConfig {
        frames_per_second: 1,
        frame_burst: 3,
        ..HubConfig::default()
    })
    .await;
    for (kind, message) in [
        ("binary", Message::binary(vec![1, 2, 3])),
        ("ping", Message::Ping(vec![7].into())),
    ] {
        let mut tab = server.user(1, kind).await;
        // Each costs the server a read and an answer (an error, a pong):
        // sent without end, they are refused, then the socket is closed.
        for _ in 0..30 {
            tab.ws
                .send(message.clone())
                .await
                .expect("the frame is sent");
        }
        assert_eq!(tab.closed().await, Some(close::RATE_LIMITED), "{kind}");
    }
}

#[tokio::test]
async fn a_reconnecting_tab_may_rejoin_all_its_rooms_at_once() {
    let server = server_with(HubConfig::default()).await;
    let mut tab = server.user(1, "s1").await;
    let rooms = HubConfig::default().max_rooms_per_connection;
    for room in 0..rooms {
        tab.send(&ClientFrame::Join {
            room: format!("team:{room}").as_str().into(),
            since: None,
        })
        .await;
    }
    let mut joined = 0;
    while joined < rooms {
        match tab.frame().await {
            ServerFrame::Joined { .. } => joined += 1,
            ServerFrame::Event { .. } => {} // presence lists
            other => panic!("expected joined, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_users_room_rules_run_within_their_budget_across_their_connections() {
    // A rule that counts its runs: each may cost the application a query.
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let builder = Hub::builder()
        .room::<Team, _, _>(move |_| {
            counted.fetch_add(1, Ordering::Relaxed);
            async { Ok(()) }
        })
        .config(HubConfig {
            authorize_timeout: Duration::from_secs(1),
            ..HubConfig::default()
        });
    let server = TestServer::start(builder).await;
    let rooms = HubConfig::default().max_rooms_per_connection;
    let mut tabs = Vec::new();
    for tab in 0..3 {
        let mut tab = server.user(1, &format!("s{tab}")).await;
        for room in 0..rooms {
            tab.send(&ClientFrame::Join {
                room: format!("team:{room}").as_str().into(),
                since: None,
            })
            .await;
        }
        tabs.push(tab);
    }
    let asked = 3 * rooms;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let early = runs.load(Ordering::Relaxed);
    assert!(
        early < 150 && early < asked,
        "{early} of {asked} rules ran at once"
    );
    // The rest wait their turn, each for as long as a rule may take at
    // most: every join is answered, some with a refusal to try again.
    let (mut joined, mut refused) = (0, 0);
    for tab in &mut tabs {
        for _ in 0..rooms {
            match tab.frame().await {
                ServerFrame::Joined { .. } => joined += 1,
                ServerFrame::Refused { reason, .. } => {
                    assert!(reason.starts_with("Too many joins"), "{reason}");
                    refused += 1;
                }
                other => panic!("expected an answer to a join, got {other:?}"),
            }
        }
    }
    assert!(refused > 0, "no join waited past its time");
    assert_eq!(
        runs.load(Ordering::Relaxed),
        joined,
        "a rule per join let in"
    );
}

#[tokio::test]
async fn what_a_browser_sends_is_never_echoed_back_at_length() {
    let server = server_with(HubConfig::default()).await;
    let mut tab = server.user(1, "a").await;
    // Past the longest room name, within the largest frame.
    let long = "x".repeat(1536);
    let frames = [
        format!(r#"{{"type":"join","room":"team:{long}"}}"#),
        format!(r#"{{"type":"leave","room":"team:{long}"}}"#),
        format!(r#"{{"type":"{long}"}}"#),
    ];
    for frame in frames {
        tab.send_text(&frame).await;
        match tab.frame().await {
            ServerFrame::Error {
                code: ErrorCode::MalformedFrame,
                message,
            } => assert!(message.len() < 1024, "{} bytes", message.len()),
            other => panic!("{other:?}"),
        }
    }
    // A name within the bound is a room like any other.
    let team = format!("team:{}", "y".repeat(200));
    tab.send_text(&format!(r#"{{"type":"join","room":"{team}"}}"#))
        .await;
    assert!(matches!(tab.frame().await, ServerFrame::Joined { room, .. } if room.as_str() == team));
    assert_eq!(server.hub.stats().rooms, 1);
}

// --- Connections ------------------------------------------------------------

#[tokio::test]
async fn connections_are_limited_per_user_per_address_and_in_all() {
    let server = server_with(HubConfig {
        max_connections: 6,
        max_connections_per_user: 2,
        max_anonymous_per_address: 2,
        ..HubConfig::default()
    })
    .await;
    // A user's third tab.
    let _tabs = [server.user(1, "a").await, server.user(1, "b").await];
    let third = server.try_connect("user=1&session=c", &[]).await.err();
    assert_eq!(third, Some(StatusCode::TOO_MANY_REQUESTS));

    // A third visitor from one address; another address is not affected.
    let _visitors = [
        server.connect_from("127.0.0.2", "").await.unwrap(),
        server.connect_from("127.0.0.2", "").await.unwrap(),
    ];
    let refused = server.connect_from("127.0.0.2", "").await.err();
    assert_eq!(refused, Some(StatusCode::TOO_MANY_REQUESTS));
    let _neighbour = server.connect_from("127.0.0.3", "").await.unwrap();

    // Six in all: the seventh is told the server is full.
    let _last = server.user(2, "d").await;
    assert_eq!(server.hub.stats().connections, 6);
    let full = server.connect_from("127.0.0.4", "").await.err();
    assert_eq!(full, Some(StatusCode::SERVICE_UNAVAILABLE));
}

#[tokio::test]
async fn visitors_from_many_addresses_cannot_crowd_out_users() {
    let server = server_with(HubConfig {
        max_connections: 6,
        max_anonymous_connections: 3,
        ..HubConfig::default()
    })
    .await;
    // Visitors from as many addresses as they like take their share...
    let mut visitors = Vec::new();
    for address in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        visitors.push(server.connect_from(address, "").await.unwrap());
    }
    // ...and no more, from a new address too: the server is full for them.
    let refused = server.connect_from("127.0.0.5", "").await.err();
    assert_eq!(refused, Some(StatusCode::SERVICE_UNAVAILABLE));
    // The other places are the users'.
    let _tabs = [
        server.user(1, "a").await,
        server.user(2, "b").await,
        server.user(3, "c").await,
    ];
    // A visitor who leaves frees a visitor's place.
    drop(visitors.pop());
    eventually("the visitor's place is free", || {
        server.hub.stats().connections == 5
    })
    .await;
    server.connect_from("127.0.0.5", "").await.unwrap();
}

#[tokio::test]
async fn new_connections_are_paced_per_user_and_per_address() {
    let server = server_with(HubConfig {
        new_connections_per_minute: 1,
        new_connection_burst: 3,
        ..HubConfig::default()
    })
    .await;
    // Closed at once, or kept: every new connection counts.
    for _ in 0..3 {
        let tab = server.user(1, "s1").await;
        drop(tab);
        let visitor = server.connect_from("127.0.0.2", "").await.unwrap();
        drop(visitor);
    }
    let too_fast = server.try_connect("user=1&session=s1", &[]).await.err();
    assert_eq!(too_fast, Some(StatusCode::TOO_MANY_REQUESTS));
    let too_fast = server.connect_from("127.0.0.2", "").await.err();
    assert_eq!(too_fast, Some(StatusCode::TOO_MANY_REQUESTS));
    // Others are not held back.
    server.user(2, "s2").await;
    server.connect_from("127.0.0.3", "").await.unwrap();
}

#[tokio::test]
async fn upgrades_refused_for_a_limit_spend_the_pace_too() {
    let server = server_with(HubConfig {
        max_connections_per_user: 1,
        new_connections_per_minute: 1,
        new_connection_burst: 3,
        ..HubConfig::default()
    })
    .await;
    let _tab = server.user(1, "s1").await;
    // Past the user's connections, refused, and counted all the same...
    for _ in 0..3 {
        let refused = server.try_connect("user=1&session=s1", &[]).await.err();
        assert_eq!(refused, Some(StatusCode::TOO_MANY_REQUESTS));
    }
    // ...so the next attempt is turned away before its session is read.
    let early = server
        .hub
        .refuse_early(&Default::default(), Some(&SessionKey::from("s1")));
    assert_eq!(
        early.map(|response| response.status()),
        Some(StatusCode::TOO_MANY_REQUESTS)
    );
}

#[tokio::test]
async fn a_join_leave_flood_costs_the_others_a_few_frames_and_closes_none() {
    let server = server_with(HubConfig {
        queue_capacity: 16,
        presence_window: Duration::from_millis(100),
        frames_per_second: 1000,
        frame_burst: 1000,
        ..HubConfig::default()
    })
    .await;
    let mut member = server.connect("user=1&session=m&name=Ada").await;
    assert!(matches!(
        member.join("team:red").await,
        ServerFrame::Joined { .. }
    ));
    let mut flooder = server.connect("user=2&session=f&name=Mallory").await;

    // 200 joins and leaves as fast as the socket takes them, answers
    // unread.
    for _ in 0..200 {
        for frame in [
            ClientFrame::Join {
                room: "team:red".into(),
                since: None,
            },
            ClientFrame::Leave {
                room: "team:red".into(),
            },
        ] {
            flooder.send(&frame).await;
        }
    }
    // Ada's tab gets presence lists, at most one per window, then nothing.
    let mut lists = 0;
    loop {
        match tokio::time::timeout(Duration::from_millis(500), member.frame()).await {
            Ok(ServerFrame::Event { name, .. }) if name == Presence::NAME => lists += 1,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => break,
        }
    }
    assert!(lists <= 30, "{lists} presence lists for one flood");
    assert_eq!(server.hub.stats().connections, 2, "nobody was closed");
    server.assert_nothing_more(&mut [&mut member]).await;
}

#[tokio::test]
async fn room_rules_run_beside_the_socket_so_events_keep_flowing() {
    let released = Arc::new(Notify::new());
    let rule = Arc::clone(&released);
    let builder = Hub::builder()
        .room::<Team, _, _>(move |_| {
            let rule = Arc::clone(&rule);
            // A slow database: the rule answers when the test says so.
            async move {
                rule.notified().await;
                Ok(())
            }
        })
        .config(HubConfig {
            queue_capacity: 4,
            ..HubConfig::default()
        });
    let server = TestServer::start(builder).await;
    let mut tab = server.user(1, "s1").await;
    tab.send(&ClientFrame::Join {
        room: "team:red".into(),
        since: None,
    })
    .await;

    // While the rule decides, twenty events go out, more than the queue
    // holds: the socket is written all along.
    for n in 0..20 {
        let event = note(&n.to_string());
        server
            .hub
            .to_connection(tab.connection)
            .emit(&event)
            .unwrap();
        assert_eq!(tab.event::<Note>().await, event);
    }
    released.notify_one();
    assert!(matches!(tab.frame().await, ServerFrame::Joined { .. }));
}

#[tokio::test]
async fn a_browser_that_stops_reading_is_dropped_after_the_write_timeout() {
    let server = server_with(HubConfig {
        write_timeout: Duration::from_millis(300),
        // Large enough never to overflow: only the write timeout can act.
        queue_capacity: 100_000,
        queue_max_bytes: usize::MAX,
        max_event_bytes: 128 * 1024,
        ..HubConfig::default()
    })
    .await;
    let _stalled = server.user(1, "s1").await;
    let big = note(&"x".repeat(64 * 1024));
    // Enough to fill the kernel's buffers both ways, and then some.
    for _ in 0..400 {
        server.hub.emit(&big).unwrap();
    }
    eventually("the stalled connection is dropped", || {
        server.hub.stats().connections == 0
    })
    .await;
    eventually("its socket is released", || server.hub.open_sockets() == 0).await;
}

#[tokio::test]
async fn a_disconnected_browser_releases_its_socket_even_if_it_never_reads() {
    let server = server_with(HubConfig {
        queue_capacity: 100_000,
        queue_max_bytes: usize::MAX,
        max_event_bytes: 128 * 1024,
        ..HubConfig::default()
    })
    .await;
    let _stalled = server.user(1, "s1").await;
    let big = note(&"x".repeat(64 * 1024));
    for _ in 0..400 {
        server.hub.emit(&big).unwrap();
    }
    // By now its task is stuck in the middle of a write, the kernel's
    // buffers full (the write timeout, 10 s, is far off).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.hub.disconnect_session(&SessionKey::from("s1")), 1);
    assert_eq!(server.hub.stats().connections, 0);
    eventually("its socket is released", || server.hub.open_sockets() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_that_never_ends_its_message_is_still_closed_as_silent() {
    use tokio::io::AsyncWriteExt;
    let server = server_with(HubConfig {
        ping_interval: Duration::from_millis(200),
        ..HubConfig::default()
    })
    .await;
    let mut tab = server.user(1, "s1").await;
    // A text message begun and never ended: empty continuation frames
    // (masked, as a browser's must be), as fast as the socket takes them.
    // Nothing the server reads is ever a whole message, nor a pong.
    let stream = tab.ws.get_mut();
    stream.write_all(&[0x01, 0x80, 1, 2, 3, 4]).await.unwrap();
    let frames = [0x00, 0x80, 1, 2, 3, 4].repeat(1000);
    let flood = async { while stream.write_all(&frames).await.is_ok() {} };
    // Closed, and the writes fail, after two pings unanswered.
    let ended = tokio::time::timeout(Duration::from_secs(5), flood).await;
    assert!(
        ended.is_ok(),
        "still open after 5 s of frames that make no message"
    );
}

// --- Sessions ---------------------------------------------------------------

#[tokio::test]
async fn a_connection_whose_session_just_ended_is_refused() {
    let server = server_with(HubConfig::default()).await;
    // The log-out happened while this tab's upgrade was on its way.
    server.hub.disconnect_session(&SessionKey::from("gone"));
    let code = realtime_testing::TestClient::closed_on_arrival(
        server.address,
        "/ws?user=1&session=gone",
        &[],
    )
    .await;
    assert_eq!(code, Some(close::SESSION_ENDED));
    assert_eq!(server.hub.stats().connections, 0);
    // Another session of the same user is welcome.
    server.user(1, "fresh").await;
}

#[tokio::test]
async fn connections_close_when_their_session_expires() {
    let expired: Arc<Mutex<HashSet<SessionKey>>> = Arc::default();
    let known = Arc::clone(&expired);
    let builder = builder()
        .config(HubConfig {
            session_check_interval: Duration::from_millis(50),
            ..HubConfig::default()
        })
        .session_check(move |sessions: Vec<SessionKey>| {
            let expired = Arc::clone(&known);
            async move {
                let expired = expired.lock().unwrap();
                Ok(sessions
                    .into_iter()
                    .filter(|session| expired.contains(session))
                    .collect())
            }
        });
    let server = TestServer::start(builder).await;
    tokio::spawn(server.hub.clone().watch_sessions());
    let mut ending = server.user(1, "ending").await;
    let mut lasting = server.user(2, "lasting").await;

    expired.lock().unwrap().insert(SessionKey::from("ending"));
    assert_eq!(ending.closed().await, Some(close::SESSION_ENDED));
    server.assert_nothing_more(&mut [&mut lasting]).await;
    assert_eq!(server.hub.stats().connections, 1);
}

/// Rooms named by a number.
#[derive(Clone, Debug, PartialEq)]
struct Numbered(u32);

impl realtime::Room for Numbered {
    const KIND: &'static str = "number";
    fn key(&self) -> String {
        self.0.to_string()
    }
    fn from_key(key: &str) -> Option<Self> {
        // Lenient on purpose: `007` and `+7` parse as 7.
        key.parse().ok().map(Self)
    }
}

#[tokio::test]
async fn only_a_rooms_own_key_names_it() {
    let builder = Hub::builder().room::<Numbered, _, _>(|_| async { Ok(()) });
    let server = TestServer::start(builder).await;
    let mut tab = server.user(1, "s1").await;
    for shadow in ["number:007", "number:+7", "number: 7"] {
        match tab.join(shadow).await {
            ServerFrame::Refused { reason, .. } => assert_eq!(reason, "There is no such room."),
            other => panic!("{shadow}: expected a refusal, got {other:?}"),
        }
    }
    assert!(matches!(
        tab.join("number:7").await,
        ServerFrame::Joined { .. }
    ));
}
