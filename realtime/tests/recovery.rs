//! Durable events and recovery, at the protocol level: positions on event
//! frames, replays after a reconnect or on a join, the rules a replay
//! follows (the same as live delivery), and the discontinuities a tab gets
//! when the events it missed cannot be had.

mod support;

use std::time::Duration;

use realtime::{
    Event, Position, Stream, UserId,
    protocol::{Resume, ServerFrame},
    server::{Hub, HubBuilder, HubConfig, Target},
    stream::{Discontinuity, Epoch, TabId},
};
use serde::{Deserialize, Serialize};
use support::{Note, Team, TestClient, TestServer, note};

/// Teams anyone may join, except user 66.
fn builder() -> HubBuilder {
    Hub::builder().room::<Team, _, _>(|request| async move {
        match request.user {
            Some(UserId(66)) => Err(realtime::server::Refusal::new("not you")),
            _ => Ok(()),
        }
    })
}

async fn server() -> TestServer {
    TestServer::start(builder()).await
}

async fn server_with(config: HubConfig) -> TestServer {
    TestServer::start(builder().config(config)).await
}

/// A volatile event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Blip;

impl Event for Blip {
    const NAME: &'static str = "Blip";
    const DURABLE: bool = false;
}

fn red() -> Team {
    Team("red".into())
}

fn room_stream(name: &str) -> Stream {
    Stream::Room(format!("team:{name}").as_str().into())
}

/// The query of a tab's upgrade that resumes from these positions.
fn resume(tab: u64, since: &[(Stream, Position)]) -> String {
    Resume {
        tab: Some(TabId(tab)),
        since: since.to_vec(),
    }
    .to_query()
}

/// The texts of the notes among `frames`.
fn notes(frames: &[ServerFrame]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|frame| match frame {
            ServerFrame::Event { name, data, .. } if name == Note::NAME => {
                serde_json::from_str::<Note>(data.get())
                    .ok()
                    .map(|n| n.text)
            }
            _ => None,
        })
        .collect()
}

/// The next `count` events, which must be notes: their texts.
async fn next_notes(tab: &mut TestClient, count: usize) -> Vec<String> {
    let mut texts = Vec::new();
    for _ in 0..count {
        texts.push(tab.event::<Note>().await.text);
    }
    texts
}

#[tokio::test]
async fn durable_events_carry_positions_that_grow_by_one_in_each_stream() {
    let server = server().await;
    let mut tab = server.user(1, "s1").await;
    let start = server.hub.position(&Stream::Everyone).await.unwrap();
    assert_eq!(start.offset, 0);

    server.hub.emit(&note("one")).unwrap();
    server.hub.emit(&note("two")).unwrap();
    server.hub.to(1).emit(&note("mine")).unwrap();
    server.hub.emit(&Blip).unwrap();

    let mut seen = Vec::new();
    for _ in 0..3 {
        let (_, recorded) = tab.recorded_event::<Note>().await;
        let recorded = recorded.expect("a durable event says where it was recorded");
        seen.push((recorded.stream, recorded.position.offset));
    }
    assert_eq!(
        seen,
        [
            (Stream::Everyone, 1),
            (Stream::Everyone, 2),
            (Stream::User(UserId(1)), 1)
        ]
    );
    let (_, recorded) = tab.recorded_event::<Blip>().await;
    assert_eq!(recorded, None, "a volatile event is not recorded");
    assert_eq!(
        server.hub.position(&Stream::Everyone).await.unwrap().offset,
        2
    );
}

#[tokio::test]
async fn a_tab_that_comes_back_gets_what_it_missed_in_order_then_what_is_live() {
    let server = server().await;
    let everyone = server.hub.position(&Stream::Everyone).await.unwrap();
    let mine = server.hub.position(&Stream::User(UserId(1))).await.unwrap();
    let tab = server
        .connect(&format!(
            "user=1&session=s1&{}",
            resume(7, &[(Stream::Everyone, everyone)])
        ))
        .await;
    drop(tab);
    server.wait_until_empty().await;

    // While it is away.
    server.hub.emit(&note("a")).unwrap();
    server.hub.to(1).emit(&note("b")).unwrap();
    server.hub.to(2).emit(&note("not for user 1")).unwrap();
    server.hub.emit(&Blip).unwrap();
    server.hub.emit(&note("c")).unwrap();

    let mut back = server
        .connect(&format!(
            "user=1&session=s1&{}",
            resume(
                7,
                &[
                    (Stream::Everyone, everyone),
                    (Stream::User(UserId(1)), mine)
                ]
            )
        ))
        .await;
    // Each stream in order; the volatile event is gone.
    assert_eq!(next_notes(&mut back, 3).await, ["a", "c", "b"]);
    server.hub.emit(&note("live")).unwrap();
    assert_eq!(back.event::<Note>().await, note("live"));
    server.assert_nothing_more(&mut [&mut back]).await;

    // Up to date: nothing to replay.
    let now = server.hub.position(&Stream::Everyone).await.unwrap();
    let mut fresh = server
        .connect(&format!(
            "user=1&session=s2&{}",
            resume(8, &[(Stream::Everyone, now)])
        ))
        .await;
    server.assert_nothing_more(&mut [&mut fresh]).await;
}

#[tokio::test]
async fn a_room_replays_what_followed_before_joined_then_goes_live() {
    let server = server().await;
    let since = server.hub.position(&room_stream("red")).await.unwrap();
    server.hub.to_room(&red()).emit(&note("one")).unwrap();
    server.hub.to_room(&red()).emit(&note("two")).unwrap();
    server
        .hub
        .to_room(&Team("blue".into()))
        .emit(&note("blue"))
        .unwrap();

    let mut tab = server.user(1, "s1").await;
    let frames = tab.join_since("team:red", since).await;
    assert_eq!(notes(&frames), ["one", "two"]);
    assert!(matches!(frames.last(), Some(ServerFrame::Joined { .. })));
    for frame in &frames[..2] {
        match frame {
            ServerFrame::Event {
                recorded: Some(recorded),
                ..
            } => assert_eq!(recorded.stream, room_stream("red")),
            other => panic!("{other:?}"),
        }
    }
    server.hub.to_room(&red()).emit(&note("three")).unwrap();
    assert_eq!(tab.event::<Note>().await, note("three"));
}

#[tokio::test]
async fn a_join_rule_that_now_refuses_replays_nothing() {
    let server = server().await;
    let since = server.hub.position(&room_stream("red")).await.unwrap();
    server.hub.to_room(&red()).emit(&note("secret")).unwrap();

    let mut outsider = server.user(66, "s66").await;
    let frames = outsider.join_since("team:red", since).await;
    assert!(
        matches!(frames.as_slice(), [ServerFrame::Refused { .. }]),
        "{frames:?}"
    );
    server.assert_nothing_more(&mut [&mut outsider]).await;
}

#[tokio::test]
async fn a_users_stream_is_replayed_to_that_user_only() {
    let server = server().await;
    let theirs = server.hub.position(&Stream::User(UserId(1))).await.unwrap();
    server.hub.to(1).emit(&note("for user 1")).unwrap();

    let since = resume(9, &[(Stream::User(UserId(1)), theirs)]);
    let mut other = server.connect(&format!("user=2&session=s2&{since}")).await;
    let mut visitor = server.connect(&since).await;
    server
        .assert_nothing_more(&mut [&mut other, &mut visitor])
        .await;
}

#[tokio::test]
async fn the_tab_that_caused_an_event_is_not_replayed_it_on_a_new_connection() {
    let server = server().await;
    let since = server.hub.position(&Stream::Everyone).await.unwrap();
    let caller = server
        .connect(&format!("user=1&session=s1&{}", resume(1, &[])))
        .await;
    server
        .hub
        .target(Target::everyone().except(caller.connection))
        .emit(&note("you did this"))
        .unwrap();
    server.hub.emit(&note("for all")).unwrap();
    drop(caller);

    let mut same_tab = server
        .connect(&format!(
            "user=1&session=s1&{}",
            resume(1, &[(Stream::Everyone, since)])
        ))
        .await;
    assert_eq!(next_notes(&mut same_tab, 1).await, ["for all"]);
    server.assert_nothing_more(&mut [&mut same_tab]).await;

    let mut other_tab = server
        .connect(&format!(
            "user=1&session=s1&{}",
            resume(2, &[(Stream::Everyone, since)])
        ))
        .await;
    assert_eq!(
        next_notes(&mut other_tab, 2).await,
        ["you did this", "for all"]
    );
}

/// The discontinuity among `frames`, which must be the only one.
fn discontinuity(frames: &[ServerFrame]) -> (Stream, Discontinuity, Position) {
    let found: Vec<_> = frames
        .iter()
        .filter_map(|frame| match frame {
            ServerFrame::Discontinuity {
                stream,
                reason,
                position,
            } => Some((stream.clone(), *reason, *position)),
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), 1, "{frames:?}");
    found[0].clone()
}

#[tokio::test]
async fn events_no_longer_kept_or_of_another_epoch_are_a_discontinuity() {
    let server = server_with(HubConfig {
        history_per_stream: 2,
        ..HubConfig::default()
    })
    .await;
    let since = server.hub.position(&room_stream("red")).await.unwrap();
    for text in ["1", "2", "3"] {
        server.hub.to_room(&red()).emit(&note(text)).unwrap();
    }
    let now = server.hub.position(&room_stream("red")).await.unwrap();

    let mut tab = server.user(1, "s1").await;
    let frames = tab.join_since("team:red", since).await;
    assert_eq!(
        discontinuity(&frames),
        (room_stream("red"), Discontinuity::TooOld, now)
    );
    assert!(notes(&frames).is_empty(), "no history with a hole in it");

    let mut tab = server.user(1, "s2").await;
    let foreign = Position {
        epoch: Epoch(now.epoch.0 ^ 1),
        offset: 3,
    };
    let frames = tab.join_since("team:red", foreign).await;
    assert_eq!(
        discontinuity(&frames),
        (room_stream("red"), Discontinuity::EpochChanged, now)
    );

    // On connecting, the same: the frame comes right after the welcome.
    let mut tab = server
        .connect(&format!(
            "user=1&session=s3&{}",
            resume(3, &[(Stream::Everyone, foreign)])
        ))
        .await;
    let (stream, reason, _) = discontinuity(&[tab.frame().await]);
    assert_eq!(
        (stream, reason),
        (Stream::Everyone, Discontinuity::EpochChanged)
    );
}

#[tokio::test]
async fn more_events_than_one_recovery_replays_are_a_discontinuity() {
    let server = server_with(HubConfig {
        recovery_max_events: 2,
        ..HubConfig::default()
    })
    .await;
    let since = server.hub.position(&room_stream("red")).await.unwrap();
    for text in ["1", "2", "3"] {
        server.hub.to_room(&red()).emit(&note(text)).unwrap();
    }
    let mut tab = server.user(1, "s1").await;
    let frames = tab.join_since("team:red", since).await;
    assert_eq!(discontinuity(&frames).1, Discontinuity::TooMany);
}

#[tokio::test]
async fn a_replay_larger_than_a_connections_replays_may_hold_is_a_discontinuity() {
    let server = server_with(HubConfig {
        queue_max_bytes: 8 * 1024,
        ..HubConfig::default()
    })
    .await;
    let (red, blue) = (Team("red".into()), Team("blue".into()));
    let red_since = server.hub.position(&room_stream("red")).await.unwrap();
    let blue_since = server.hub.position(&room_stream("blue")).await.unwrap();
    // Three events of about 2 KB in red, five in blue.
    for n in 0..5 {
        let text = format!("{n}{}", "x".repeat(2000));
        if n < 3 {
            server.hub.to_room(&red).emit(&note(&text)).unwrap();
        }
        server.hub.to_room(&blue).emit(&note(&text)).unwrap();
    }
    let mut tab = server.user(1, "s1").await;
    let frames = tab.join_since("team:red", red_since).await;
    assert_eq!(notes(&frames).len(), 3, "6 KB fit: {frames:?}");
    let frames = tab.join_since("team:blue", blue_since).await;
    assert!(notes(&frames).is_empty(), "10 KB do not: {frames:?}");
    let (stream, reason, position) = discontinuity(&frames);
    assert_eq!(
        (stream, reason),
        (room_stream("blue"), Discontinuity::TooMany)
    );
    assert_eq!(
        position.offset,
        blue_since.offset + 5,
        "it goes on from the end"
    );
    // Live events go on as ever.
    server.hub.to_room(&blue).emit(&note("live")).unwrap();
    assert_eq!(tab.event::<Note>().await, note("live"));
}

#[tokio::test]
async fn a_replay_longer_than_the_queue_is_not_cut_short() {
    let server = server_with(HubConfig {
        queue_capacity: 4,
        ..HubConfig::default()
    })
    .await;
    let since = server.hub.position(&Stream::Everyone).await.unwrap();
    let texts: Vec<String> = (0..50).map(|n| n.to_string()).collect();
    for text in &texts {
        server.hub.emit(&note(text)).unwrap();
    }
    let mut tab = server
        .connect(&format!(
            "user=1&session=s1&{}",
            resume(1, &[(Stream::Everyone, since)])
        ))
        .await;
    assert_eq!(next_notes(&mut tab, texts.len()).await, texts);
    server.assert_nothing_more(&mut [&mut tab]).await;
}

#[tokio::test]
async fn a_tab_reached_through_several_streams_gets_an_event_once_and_knows_it_by_its_id() {
    let server = server().await;
    let mut tab = server.user(1, "s1").await;
    tab.join("team:red").await;
    tab.join("team:blue").await;
    let target = Target::room(&red())
        .and(Target::room(&Team("blue".into())))
        .and(Target::user(1));
    server.hub.target(target).emit(&note("once")).unwrap();
    let (_, live) = tab.recorded_event::<Note>().await;
    server.assert_nothing_more(&mut [&mut tab]).await;

    // Replayed through another of its streams, it has the same id.
    let blue = Position {
        offset: 0,
        ..server.hub.position(&room_stream("blue")).await.unwrap()
    };
    let mut again = server.user(1, "s2").await;
    let frames = again.join_since("team:blue", blue).await;
    match &frames[0] {
        ServerFrame::Event {
            recorded: Some(replayed),
            ..
        } => {
            let live = live.unwrap();
            assert_eq!(replayed.id, live.id);
            assert_eq!(replayed.stream, room_stream("blue"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_event_reached_through_several_streams_carries_its_position_in_each_live_and_replayed() {
    let server = server().await;
    let mut tab = server.user(1, "s1").await;
    let user = Stream::User(UserId(1));
    let user_start = tab.positions[&user];
    let ServerFrame::Joined {
        position: Some(red_start),
        ..
    } = tab.join("team:red").await
    else {
        panic!("no position for the room");
    };
    let target = Target::room(&red()).and(Target::user(1));
    server.hub.target(target).emit(&note("both")).unwrap();

    // Live: once, with its place in the user's stream and in the room's.
    let (_, live) = tab.recorded_event::<Note>().await;
    let live = live.expect("a durable event");
    let mut positions: Vec<(Stream, u64)> = live
        .positions()
        .map(|(stream, position)| (stream.clone(), position.offset))
        .collect();
    positions.sort_by_key(|(stream, _)| stream.to_string());
    assert_eq!(positions, [(room_stream("red"), 1), (user.clone(), 1)]);
    server.assert_nothing_more(&mut [&mut tab]).await;

    // Back from before it: the user's stream replays it, then the room's
    // replays it again, saying where it sits in the user's stream (which
    // the tab has reached by then: it knows it has it).
    let query = format!(
        "user=1&session=s1&{}",
        resume(1, &[(user.clone(), user_start)])
    );
    let mut again = server.connect(&query).await;
    let (_, first) = again.recorded_event::<Note>().await;
    let first = first.expect("a durable event");
    assert_eq!(
        (first.stream.clone(), first.position.offset),
        (user.clone(), 1)
    );
    let frames = again.join_since("team:red", red_start).await;
    let replayed = frames
        .iter()
        .find_map(|frame| match frame {
            ServerFrame::Event {
                recorded: Some(recorded),
                ..
            } => Some(recorded.clone()),
            _ => None,
        })
        .expect("the room's replay");
    assert_eq!(replayed.stream, room_stream("red"));
    assert_eq!(replayed.also, [(user, first.position)]);
}

/// Emits to the room without pause while a tab joins it from a position:
/// the tab must get every offset after it exactly once, in order, whatever
/// the moment the join lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_falls_between_the_replay_and_the_live_events() {
    // Room for every event, in the history and in the tab's queue.
    let server = server_with(HubConfig {
        history_per_stream: 10_000,
        recovery_max_events: 10_000,
        queue_capacity: 10_000,
        ..HubConfig::default()
    })
    .await;
    let since = server.hub.position(&room_stream("red")).await.unwrap();
    let hub = server.hub.clone();
    const EVENTS: u64 = 2_000;
    let emitter = tokio::spawn(async move {
        for n in 0..EVENTS {
            hub.to_room(&red()).emit(&note(&n.to_string())).unwrap();
            tokio::task::yield_now().await;
        }
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    let mut tab = server.user(1, "s1").await;
    tab.send(&realtime::protocol::ClientFrame::Join {
        room: "team:red".into(),
        since: Some(since),
    })
    .await;
    let mut offsets = Vec::new();
    while offsets.len() < EVENTS as usize {
        match tab.frame().await {
            ServerFrame::Event {
                recorded: Some(recorded),
                ..
            } => offsets.push(recorded.position.offset),
            ServerFrame::Joined { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    emitter.await.unwrap();
    let expected: Vec<u64> = (1..=EVENTS).collect();
    assert_eq!(offsets, expected);
}

#[tokio::test]
async fn the_welcome_and_joined_frames_say_where_the_streams_stand() {
    let server = server().await;
    server.hub.emit(&note("before")).unwrap();
    server.hub.to(1).emit(&note("before, for user 1")).unwrap();
    let mut tab = server.user(1, "s1").await;
    let everyone = server.hub.position(&Stream::Everyone).await.unwrap();
    let mine = server.hub.position(&Stream::User(UserId(1))).await.unwrap();
    assert_eq!(everyone.offset, 1);
    assert_eq!(
        tab.positions.clone().into_iter().collect::<Vec<_>>(),
        [
            (Stream::Everyone, everyone),
            (Stream::User(UserId(1)), mine)
        ]
    );
    let visitor = server.anonymous().await;
    assert_eq!(
        visitor.positions.keys().collect::<Vec<_>>(),
        [&Stream::Everyone]
    );

    server
        .hub
        .to_room(&red())
        .emit(&note("before joining"))
        .unwrap();
    let joined_at = match tab.join("team:red").await {
        ServerFrame::Joined {
            position: Some(position),
            ..
        } => position,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        joined_at,
        server.hub.position(&room_stream("red")).await.unwrap()
    );
    assert_eq!(joined_at.offset, 1);

    // From there, a tab that lost its connection recovers the room.
    drop(tab);
    server
        .hub
        .to_room(&red())
        .emit(&note("while away"))
        .unwrap();
    let mut back = server.user(1, "s1").await;
    let frames = back.join_since("team:red", joined_at).await;
    assert_eq!(notes(&frames), ["while away"]);
}

#[tokio::test]
async fn with_no_history_durable_events_go_out_as_volatile_ones() {
    let server = server_with(HubConfig {
        history_per_stream: 0,
        ..HubConfig::default()
    })
    .await;
    assert_eq!(server.hub.position(&Stream::Everyone).await, None);
    let mut tab = server.user(1, "s1").await;
    assert!(tab.positions.is_empty());
    server.hub.emit(&note("one")).unwrap();
    assert_eq!(tab.recorded_event::<Note>().await.1, None);
    assert!(matches!(
        tab.join("team:red").await,
        ServerFrame::Joined { position: None, .. }
    ));
}

#[tokio::test]
async fn joining_a_room_again_replays_nothing() {
    let server = server().await;
    let mut tab = server.user(1, "s1").await;
    let since = match tab.join("team:red").await {
        ServerFrame::Joined {
            position: Some(position),
            ..
        } => position,
        other => panic!("{other:?}"),
    };
    server.hub.to_room(&red()).emit(&note("live")).unwrap();
    assert_eq!(tab.event::<Note>().await, note("live"));
    // Asking again from before it: the tab had it live.
    let frames = tab.join_since("team:red", since).await;
    assert!(
        matches!(frames.as_slice(), [ServerFrame::Joined { .. }]),
        "{frames:?}"
    );
}

#[tokio::test]
async fn a_leave_cancels_the_join_it_overtook_so_a_later_join_gets_its_replay() {
    use realtime::protocol::ClientFrame;
    use std::sync::Arc;
    use tokio::sync::Semaphore;

    // A slow rule: each join waits for a permit the test hands out.
    let permits = Arc::new(Semaphore::new(0));
    let rule = Arc::clone(&permits);
    let server = TestServer::start(Hub::builder().room::<Team, _, _>(move |_| {
        let rule = Arc::clone(&rule);
        async move {
            rule.acquire().await.expect("open").forget();
            Ok(())
        }
    }))
    .await;
    let mut tab = server.user(1, "s1").await;
    // A component wants the room and goes before the rule has decided.
    tab.send(&ClientFrame::Join {
        room: "team:red".into(),
        since: None,
    })
    .await;
    tab.send(&ClientFrame::Leave {
        room: "team:red".into(),
    })
    .await;
    assert!(matches!(tab.frame().await, ServerFrame::Left { .. }));

    // Another shows the room as it stood here, and joins from there.
    let since = server.hub.position(&room_stream("red")).await.unwrap();
    server.hub.to_room(&red()).emit(&note("missed")).unwrap();
    permits.add_permits(2);
    let frames = tab.join_since("team:red", since).await;
    assert_eq!(notes(&frames), ["missed"], "{frames:?}");
    assert!(matches!(frames.last(), Some(ServerFrame::Joined { .. })));
    // The cancelled join is never answered.
    server.assert_nothing_more(&mut [&mut tab]).await;
}
