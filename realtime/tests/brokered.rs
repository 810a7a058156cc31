//! Hubs that share a memory backplane, as processes share Redis: what
//! crosses from one to another, and the faults of a shared history that no
//! event may survive unnoticed, without a Redis server. (The same rules on
//! a real Redis are in `backplane.rs` and `redis_history.rs`.)

mod support;

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, Request};
use leptos::prelude::{Owner, provide_context};
use realtime::{
    Position, Presence, Stream,
    protocol::{self, Resume, ServerFrame},
    server::{
        Hub, HubBuilder, HubConfig, JoinRequest, SessionKey,
        broker::{MemoryBackplane, MemoryNode},
    },
    stream::{Discontinuity, TabId},
};
use support::{Note, PATIENCE, Team, TestClient, TestServer, note};

/// The header the test's server functions carry their session in.
const SESSION_HEADER: &str = "x-test-session";

/// Team rooms open to anyone; a call's session is the one in its
/// `x-test-session` header.
fn builder(node: &MemoryNode, config: HubConfig) -> HubBuilder {
    Hub::builder()
        .room::<Team, _, _>(|_: JoinRequest<Team>| async { Ok(()) })
        .presence::<Team>()
        .config(config)
        .memory_backplane(node)
        .caller_session(|parts| {
            let session = parts.headers.get(SESSION_HEADER)?.to_str().ok()?;
            Some(SessionKey::from(session))
        })
}

async fn hub_on(node: &MemoryNode) -> TestServer {
    hub_with(node, HubConfig::default()).await
}

async fn hub_with(node: &MemoryNode, config: HubConfig) -> TestServer {
    let server = TestServer::start(builder(node, config)).await;
    let deadline = Instant::now() + PATIENCE;
    while server.hub.backplane_connected() != Some(true) {
        assert!(Instant::now() < deadline, "the hub did not join");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server
}

fn red() -> Team {
    Team("red".into())
}

fn red_stream() -> Stream {
    Stream::room(&red())
}

/// A tab of user 1 in session `session`, resuming from `since`.
fn tab_query(tab: u64, session: &str, since: &[(Stream, Position)]) -> String {
    let resume = Resume {
        tab: Some(TabId(tab)),
        since: since.to_vec(),
    };
    format!("user=1&session={session}&{}", resume.to_query())
}

/// Runs `emit` as a server function called by tab `tab` in `session`, as
/// `realtime::RealtimeClient` marks the call.
fn as_call_from<T>(tab: u64, session: &str, emit: impl FnOnce() -> T) -> T {
    let mut headers = HeaderMap::new();
    let tab = TabId(tab).to_string();
    headers.insert(protocol::TAB_HEADER, HeaderValue::from_str(&tab).unwrap());
    headers.insert(
        protocol::CONNECTION_HEADER,
        HeaderValue::from_static("none"),
    );
    headers.insert(SESSION_HEADER, HeaderValue::from_str(session).unwrap());
    let mut request = Request::builder().uri("/api/test").body(()).unwrap();
    *request.headers_mut() = headers;
    let (parts, ()) = request.into_parts();
    Owner::new().with(|| {
        provide_context(parts);
        emit()
    })
}

/// The next note and its place in the stream it came through.
async fn placed_note(tab: &mut TestClient) -> (String, Position) {
    let (note, recorded) = tab.recorded_event::<Note>().await;
    (note.text, recorded.expect("a durable event").position)
}

/// The texts of the notes among `frames`.
fn notes(frames: &[ServerFrame]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|frame| match frame {
            ServerFrame::Event { name, data, .. } if name == "Note" => {
                serde_json::from_str::<Note>(data.get()).ok()
            }
            _ => None,
        })
        .map(|note| note.text)
        .collect()
}

/// Reads frames until a discontinuity of `stream` in an epoch other than
/// `old`'s; notes before it (in the old epoch) are returned too.
async fn discontinuity_leaving(
    tab: &mut TestClient,
    stream: &Stream,
    old: Position,
) -> (Discontinuity, Position) {
    loop {
        if let ServerFrame::Discontinuity {
            stream: gap,
            reason,
            position,
        } = tab.frame().await
            && &gap == stream
            && position.epoch != old.epoch
        {
            return (reason, position);
        }
    }
}

#[tokio::test]
async fn events_cross_to_the_other_hub_and_a_tab_recovers_on_either() {
    let backplane = MemoryBackplane::new();
    let (a, b) = (
        hub_on(&backplane.node()).await,
        hub_on(&backplane.node()).await,
    );
    let mut on_a = a.connect(&tab_query(1, "s1", &[])).await;
    let _ = on_a.join("team:red").await;
    b.hub.to_room(&red()).emit(&note("durable")).unwrap();
    let (text, seen) = placed_note(&mut on_a).await;
    assert_eq!(text, "durable");
    b.hub.to_room(&red()).emit(&note("missed")).unwrap();
    assert_eq!(placed_note(&mut on_a).await.0, "missed");

    // The tab comes back on B, from before "missed".
    let mut on_b = b.connect(&tab_query(1, "s1", &[])).await;
    let frames = on_b.join_since("team:red", seen).await;
    assert_eq!(notes(&frames), ["missed"]);
}

#[tokio::test]
async fn everyone_but_the_caller_leaves_out_its_tab_whichever_hub_the_call_lands_on() {
    let backplane = MemoryBackplane::new();
    let (a, b) = (
        hub_on(&backplane.node()).await,
        hub_on(&backplane.node()).await,
    );
    // Tab 7's socket is on A; its calls land on B.
    let mut caller = a.connect(&tab_query(7, "s1", &[])).await;
    let before: Vec<(Stream, Position)> = caller.positions.clone().into_iter().collect();
    let mut other_tab = a.connect(&tab_query(8, "s1", &[])).await;

    as_call_from(7, "s1", || {
        b.hub.except_caller().emit(&note("mine")).unwrap()
    });
    assert_eq!(other_tab.event::<Note>().await.text, "mine");
    a.assert_nothing_more(&mut [&mut caller]).await;

    // Back on B from before it: not replayed it either.
    let mut again = b.connect(&tab_query(7, "s1", &before)).await;
    b.assert_nothing_more(&mut [&mut again]).await;

    // A call of another session naming tab 7 names no tab of its own.
    as_call_from(7, "s2", || {
        b.hub.except_caller().emit(&note("forged")).unwrap()
    });
    for tab in [&mut again, &mut caller, &mut other_tab] {
        assert_eq!(tab.event::<Note>().await.text, "forged");
    }

    // To the caller: its tab, whichever hub its socket is on.
    as_call_from(8, "s1", || b.hub.to_caller().emit(&note("yours")).unwrap());
    assert_eq!(other_tab.event::<Note>().await.text, "yours");
    a.assert_nothing_more(&mut [&mut caller]).await;
}

#[tokio::test]
async fn a_history_that_goes_back_starts_its_streams_again_and_swallows_nothing_after() {
    let backplane = MemoryBackplane::new();
    let (a, b) = (
        hub_on(&backplane.node()).await,
        hub_on(&backplane.node()).await,
    );
    let mut tab = a.connect(&tab_query(1, "s1", &[])).await;
    let _ = tab.join("team:red").await;
    // A tab on B too: both hubs find the stream gone back; it starts
    // again once.
    let mut on_b = b.connect(&tab_query(2, "s2", &[])).await;
    let _ = on_b.join("team:red").await;
    for n in 1..=3 {
        b.hub
            .to_room(&red())
            .emit(&note(&format!("saved {n}")))
            .unwrap();
    }
    let snapshot = backplane.save();
    for n in 1..=5 {
        b.hub
            .to_room(&red())
            .emit(&note(&format!("lost {n}")))
            .unwrap();
    }
    let mut old = None;
    for _ in 1..=8 {
        old = Some(placed_note(&mut tab).await.1);
    }
    let old = old.expect("eight notes");
    assert_eq!(old.offset, 8);

    // The history restarts from the snapshot: offsets 4 to 8 again.
    backplane.restart_from(&snapshot).await;
    let (_, new) = discontinuity_leaving(&mut tab, &red_stream(), old).await;
    for n in 1..=8 {
        b.hub
            .to_room(&red())
            .emit(&note(&format!("after {n}")))
            .unwrap();
    }
    for n in 1..=8 {
        let (text, position) = placed_note(&mut tab).await;
        assert_eq!(text, format!("after {n}"));
        assert_eq!((position.epoch, position.offset), (new.epoch, n));
    }
    let (_, on_b_new) = discontinuity_leaving(&mut on_b, &red_stream(), old).await;
    assert_eq!(on_b_new, new, "one new epoch, whichever hub reset it");
    for n in 1..=8 {
        assert_eq!(placed_note(&mut on_b).await.1.offset, n);
    }
    a.assert_nothing_more(&mut [&mut tab]).await;
}

#[tokio::test]
async fn offsets_given_again_to_other_events_while_a_hub_was_away_are_told() {
    let backplane = MemoryBackplane::new();
    let (node_a, node_b) = (backplane.node(), backplane.node());
    let (a, b) = (hub_on(&node_a).await, hub_on(&node_b).await);
    let mut tab = a.connect(&tab_query(1, "s1", &[])).await;
    let _ = tab.join("team:red").await;
    b.hub.to_room(&red()).emit(&note("saved")).unwrap();
    placed_note(&mut tab).await;
    let snapshot = backplane.save();
    b.hub.to_room(&red()).emit(&note("lost")).unwrap();
    let (_, old) = placed_note(&mut tab).await;

    // A is away while the history goes back and B gives offset 2 again.
    node_a.cut();
    backplane.restart_from(&snapshot).await;
    b.hub.to_room(&red()).emit(&note("new at 2")).unwrap();
    node_a.restore().await;

    // Where A stopped, (epoch, 2), the history holds another event now.
    let (_, new) = discontinuity_leaving(&mut tab, &red_stream(), old).await;
    b.hub.to_room(&red()).emit(&note("then")).unwrap();
    let (text, position) = placed_note(&mut tab).await;
    assert_eq!((text.as_str(), position.epoch), ("then", new.epoch));
}

#[tokio::test]
async fn a_stream_read_here_is_never_forgotten_so_a_gap_in_it_is_told() {
    let backplane = MemoryBackplane::new();
    let node_a = backplane.node();
    let small = HubConfig {
        history_max_streams: 4,
        ..HubConfig::default()
    };
    let (a, b) = (
        hub_with(&node_a, small).await,
        hub_on(&backplane.node()).await,
    );
    let mut tab = a.connect(&tab_query(1, "s1", &[])).await;
    let _ = tab.join("team:red").await;
    b.hub.to_room(&red()).emit(&note("first")).unwrap();
    placed_note(&mut tab).await;
    // Many streams A reads none of: its mirror makes room for them.
    for n in 0..20 {
        b.hub
            .to_room(&Team(format!("t{n}")))
            .emit(&note("x"))
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;

    // A misses one of red's events, then hears the next.
    node_a.cut();
    b.hub.to_room(&red()).emit(&note("missed")).unwrap();
    node_a.restore().await;
    b.hub.to_room(&red()).emit(&note("after")).unwrap();
    // Caught up (or told), never silently skipped.
    assert_eq!(placed_note(&mut tab).await.0, "missed");
    assert_eq!(placed_note(&mut tab).await.0, "after");
}

#[tokio::test]
async fn a_room_joined_while_the_shared_history_was_away_is_told_what_it_missed_when_it_is_back() {
    let backplane = MemoryBackplane::new();
    let node_a = backplane.node();
    let (a, b) = (hub_on(&node_a).await, hub_on(&backplane.node()).await);
    let mut tab = a.connect(&tab_query(1, "s1", &[])).await;
    // A is away when its tab joins: it cannot learn where the room stands.
    node_a.cut();
    let joined = tab.join("team:red").await;
    assert!(
        matches!(joined, ServerFrame::Joined { position: None, .. }),
        "{joined:?}"
    );
    b.hub.to_room(&red()).emit(&note("missed")).unwrap();
    node_a.restore().await;

    // Told as soon as A is back, before any newer event of the room.
    let position = loop {
        match tab.frame().await {
            ServerFrame::Discontinuity {
                stream, position, ..
            } if stream == red_stream() => break position,
            ServerFrame::Event { name, data, .. } if name == "Note" => {
                panic!("a note came before the discontinuity: {}", data.get())
            }
            _ => {}
        }
    };
    assert_eq!(position.offset, 1, "where the room stands: after `missed`");
    b.hub.to_room(&red()).emit(&note("after")).unwrap();
    assert_eq!(placed_note(&mut tab).await.0, "after");
}

#[tokio::test]
async fn a_tab_that_joins_ahead_of_a_lagging_hub_is_not_sent_what_its_page_has() {
    let backplane = MemoryBackplane::new();
    let node_b = backplane.node();
    let (a, b) = (hub_on(&backplane.node()).await, hub_on(&node_b).await);
    // B follows the room: a tab of its own reads it.
    let mut reader = b.connect(&tab_query(1, "s1", &[])).await;
    let _ = reader.join("team:red").await;
    a.hub.to_room(&red()).emit(&note("1")).unwrap();
    let (_, first) = placed_note(&mut reader).await;

    // B lags while A places 2 to 5, and a page rendered at 4 opens on B.
    node_b.hold();
    for n in 2..=5 {
        a.hub.to_room(&red()).emit(&note(&n.to_string())).unwrap();
    }
    let page = Position { offset: 4, ..first };
    let mut late = b.connect(&tab_query(2, "s2", &[])).await;
    let frames = late.join_since("team:red", page).await;
    assert_eq!(
        notes(&frames),
        ["5"],
        "the replay, read from the shared history"
    );
    node_b.release();
    a.hub.to_room(&red()).emit(&note("6")).unwrap();

    // 2 to 5 reach B live now: the tab had 5, and its page has the rest.
    assert_eq!(
        placed_note(&mut late).await,
        ("6".to_owned(), Position { offset: 6, ..first })
    );
    b.assert_nothing_more(&mut [&mut late]).await;
    for n in 2..=6 {
        assert_eq!(placed_note(&mut reader).await.0, n.to_string());
    }
}

/// Reads presence updates until one lists exactly `names` (updates from
/// the other hub arrive when they arrive: an intermediate list is fine).
async fn presence_becomes(tab: &mut TestClient, names: &[&str]) {
    loop {
        let presence = tab.event::<Presence>().await;
        let got: Vec<&str> = presence.members.iter().map(|m| m.name.as_str()).collect();
        if got == names {
            return;
        }
    }
}

#[tokio::test]
async fn presence_merges_every_hubs_members_and_forgets_a_hub_that_leaves() {
    let backplane = MemoryBackplane::new();
    let (a, b) = (
        hub_on(&backplane.node()).await,
        hub_on(&backplane.node()).await,
    );
    let mut ada = a.connect("user=1&session=s1&name=ada").await;
    let _ = ada.join("team:red").await;
    let mut bob = b.connect("user=2&session=s2&name=bob").await;
    let _ = bob.join("team:red").await;
    presence_becomes(&mut bob, &["ada", "bob"]).await;
    presence_becomes(&mut ada, &["ada", "bob"]).await;
    // A second tab of Ada's on B: still one Ada.
    let mut ada_on_b = b.connect("user=1&session=s3&name=ada").await;
    let _ = ada_on_b.join("team:red").await;
    presence_becomes(&mut ada_on_b, &["ada", "bob"]).await;

    // B leaves the backplane (its own tabs still open there): A forgets
    // its members at once, without waiting to hear that they left.
    b.hub.shutdown().await;
    presence_becomes(&mut ada, &["ada"]).await;
    assert_eq!(a.hub.peers(), 0);
}

#[tokio::test]
async fn a_session_ends_on_every_hub_even_one_away_when_it_ended() {
    let backplane = MemoryBackplane::new();
    let (node_b, node_c) = (backplane.node(), backplane.node());
    let a = hub_on(&backplane.node()).await;
    let (b, c) = (hub_on(&node_b).await, hub_on(&node_c).await);
    let mut on_a = a.user(1, "shared").await;
    let mut on_b = b.user(1, "shared").await;
    let mut on_c = c.user(1, "shared").await;
    let mut other = b.user(1, "another").await;

    // C is away when A ends the session; then B is away when C comes back.
    node_c.cut();
    assert_eq!(a.hub.disconnect_session(&"shared".into()), 1);
    let ended = Some(protocol::close::SESSION_ENDED);
    assert_eq!(on_a.closed().await, ended);
    assert_eq!(on_b.closed().await, ended);
    b.assert_nothing_more(&mut [&mut other]).await;
    node_c.restore().await;
    assert_eq!(on_c.closed().await, ended, "told again when C came back");

    // A session that ends on a hub that is away is told when it is back.
    let mut on_a = a.user(2, "later").await;
    node_b.cut();
    b.hub.disconnect_session(&"later".into());
    node_b.restore().await;
    assert_eq!(on_a.closed().await, ended);
}

#[tokio::test]
async fn a_tab_ahead_of_this_hubs_mirror_is_checked_against_the_shared_history() {
    let backplane = MemoryBackplane::new();
    let emitter = hub_on(&backplane.node()).await;
    for n in 1..=7 {
        emitter
            .hub
            .to_room(&red())
            .emit(&note(&n.to_string()))
            .unwrap();
    }
    let snapshot = backplane.save();
    // A tab read up to 10 on a hub that is gone now.
    for n in 8..=10 {
        emitter
            .hub
            .to_room(&red())
            .emit(&note(&n.to_string()))
            .unwrap();
    }
    let ahead = emitter.hub.position(&red_stream()).await.unwrap();
    assert_eq!(ahead.offset, 10);
    // The history goes back to 7; B learns that much (a tab of B's reads
    // the room from there).
    backplane.restart_from(&snapshot).await;
    let b = hub_on(&backplane.node()).await;
    let mut reader = b.connect(&tab_query(2, "s2", &[])).await;
    let ServerFrame::Joined {
        position: Some(known),
        ..
    } = reader.join("team:red").await
    else {
        panic!("no position for the room");
    };
    assert_eq!(known.offset, 7);

    // The tab comes back on B from 10: it is moved back to 7, and the
    // offsets given again reach it.
    let mut tab = b.connect(&tab_query(1, "s1", &[])).await;
    let frames = tab.join_since("team:red", ahead).await;
    assert!(
        frames.iter().any(|frame| matches!(
            frame,
            ServerFrame::Discontinuity { position, .. } if position.offset == 7
        )),
        "{frames:?}"
    );
    emitter.hub.to_room(&red()).emit(&note("new 8")).unwrap();
    assert_eq!(
        placed_note(&mut tab).await,
        ("new 8".to_owned(), Position { offset: 8, ..ahead })
    );
}

#[tokio::test]
async fn a_position_learnt_from_the_shared_history_is_checked_like_one_received() {
    let backplane = MemoryBackplane::new();
    let node_b = backplane.node();
    let a = hub_on(&backplane.node()).await;
    for n in 1..=2 {
        a.hub.to_room(&red()).emit(&note(&n.to_string())).unwrap();
    }
    let snapshot = backplane.save();
    a.hub.to_room(&red()).emit(&note("3, lost")).unwrap();
    // B's tab joins red: B learns where it stands (3) from the history.
    let b = hub_on(&node_b).await;
    let mut tab = b.connect(&tab_query(1, "s1", &[])).await;
    let ServerFrame::Joined {
        position: Some(joined),
        ..
    } = tab.join("team:red").await
    else {
        panic!("no position for the room");
    };
    assert_eq!(joined.offset, 3);
    // B is away while the history goes back and gives 3 to another event.
    node_b.cut();
    backplane.restart_from(&snapshot).await;
    a.hub.to_room(&red()).emit(&note("3, again")).unwrap();
    node_b.restore().await;
    let (_, new) = discontinuity_leaving(&mut tab, &red_stream(), joined).await;
    a.hub.to_room(&red()).emit(&note("then")).unwrap();
    assert_eq!(
        placed_note(&mut tab).await,
        ("then".to_owned(), Position { offset: 1, ..new })
    );
}
