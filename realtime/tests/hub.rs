//! The hub against real WebSocket clients: every target, the event hooks,
//! rooms and their rules, limits, the origin rule, ending sessions, and
//! what the registry keeps.

mod support;

use std::time::Duration;

use realtime::{
    Presence, Room, UserId,
    protocol::{ClientFrame, ErrorCode, ServerFrame, close},
    server::{Broadcast, Hub, HubConfig, Origins, Refusal, SessionKey, Target},
};
use support::{Note, Team, TestServer, note};

// --- Rooms used by the tests ---------------------------------------------

/// Only user 1 may join; the key must be a number.
#[derive(Clone, Debug, PartialEq)]
struct Vault(u32);

impl Room for Vault {
    const KIND: &'static str = "vault";
    fn key(&self) -> String {
        self.0.to_string()
    }
    fn from_key(key: &str) -> Option<Self> {
        key.parse().ok().map(Self)
    }
}

/// Open to everyone, with presence.
#[derive(Clone, Debug, PartialEq)]
struct Lounge;

impl Room for Lounge {
    const KIND: &'static str = "lounge";
    fn key(&self) -> String {
        "main".into()
    }
    fn from_key(key: &str) -> Option<Self> {
        (key == "main").then_some(Self)
    }
}

fn builder() -> realtime::server::HubBuilder {
    Hub::builder()
        .room::<Lounge, _, _>(|_| async { Ok(()) })
        .presence::<Lounge>()
        .room::<Team, _, _>(|request| async move {
            match request.user {
                Some(_) => Ok(()),
                None => Err(Refusal::new("Log in to join a team.")),
            }
        })
        .room::<Vault, _, _>(|request| async move {
            if request.user == Some(UserId(1)) {
                Ok(())
            } else {
                Err(Refusal::new("This vault is not yours."))
            }
        })
}

async fn server() -> TestServer {
    TestServer::start(builder()).await
}

// --- Connecting ----------------------------------------------------------

#[tokio::test]
async fn the_welcome_frame_names_the_connection_and_its_user() {
    let server = server().await;
    let user = server.user(7, "s7").await;
    let visitor = server.anonymous().await;
    assert_eq!(user.user, Some(UserId(7)));
    assert_eq!(visitor.user, None);
    assert_ne!(user.connection, visitor.connection);
    assert_eq!(server.hub.stats().connections, 2);
}

#[tokio::test]
async fn connections_run_on_the_socket_runtime_when_the_hub_has_one() {
    let sockets = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = TestServer::start(builder().socket_runtime(sockets.handle().clone())).await;
    let mut tab = server.user(1, "s1").await;
    server.hub.emit(&note("served")).unwrap();
    assert_eq!(tab.event::<Note>().await, note("served"));

    // Its task is that runtime's: stopping the runtime drops the socket
    // (no close frame) and the connection leaves the registry.
    sockets.shutdown_background();
    assert_eq!(tab.closed().await, None);
    assert_eq!(server.hub.stats().connections, 0);
}

// --- Targets -------------------------------------------------------------

#[tokio::test]
async fn emit_reaches_every_connection() {
    let server = server().await;
    let mut a = server.user(1, "s1").await;
    let mut b = server.anonymous().await;

    assert_eq!(server.hub.emit(&note("all")).unwrap(), 2);
    assert_eq!(a.event::<Note>().await, note("all"));
    assert_eq!(b.event::<Note>().await, note("all"));
}

#[tokio::test]
async fn to_a_user_reaches_all_their_tabs_and_nobody_else() {
    let server = server().await;
    let mut tab1 = server.user(1, "s1").await;
    let mut tab2 = server.user(1, "s1").await;
    let mut other = server.user(2, "s2").await;
    let mut visitor = server.anonymous().await;

    assert_eq!(server.hub.to(1).emit(&note("for 1")).unwrap(), 2);
    assert_eq!(tab1.event::<Note>().await, note("for 1"));
    assert_eq!(tab2.event::<Note>().await, note("for 1"));
    server
        .assert_nothing_more(&mut [&mut other, &mut visitor])
        .await;
}

#[tokio::test]
async fn to_several_users_from_an_array_a_vec_or_an_iterator() {
    let server = server().await;
    let mut one = server.user(1, "s1").await;
    let mut two = server.user(2, "s2").await;
    let mut three = server.user(3, "s3").await;

    server.hub.to([1, 2]).emit(&note("array")).unwrap();
    server
        .hub
        .to(vec![UserId(2), UserId(3)])
        .emit(&note("vec"))
        .unwrap();
    server
        .hub
        .to_users((1..=3).filter(|id| id % 2 == 1))
        .emit(&note("iter"))
        .unwrap();

    assert_eq!(one.event::<Note>().await, note("array"));
    assert_eq!(one.event::<Note>().await, note("iter"));
    assert_eq!(two.event::<Note>().await, note("array"));
    assert_eq!(two.event::<Note>().await, note("vec"));
    assert_eq!(three.event::<Note>().await, note("vec"));
    assert_eq!(three.event::<Note>().await, note("iter"));
    server
        .assert_nothing_more(&mut [&mut one, &mut two, &mut three])
        .await;
}

#[tokio::test]
async fn anonymous_connections_never_get_user_events() {
    let server = server().await;
    let mut visitor = server.anonymous().await;
    let mut user = server.user(1, "s1").await;

    // Even a target naming every user there is.
    server
        .hub
        .to_users(0..1000)
        .emit(&note("users only"))
        .unwrap();
    assert_eq!(user.event::<Note>().await, note("users only"));
    server.assert_nothing_more(&mut [&mut visitor]).await;
}

#[tokio::test]
async fn to_one_connection_reaches_that_tab_only() {
    let server = server().await;
    let mut tab1 = server.user(1, "s1").await;
    let mut tab2 = server.user(1, "s1").await;

    server
        .hub
        .to_connection(tab2.connection)
        .emit(&note("just you"))
        .unwrap();
    assert_eq!(tab2.event::<Note>().await, note("just you"));
    server.assert_nothing_more(&mut [&mut tab1]).await;
}

#[tokio::test]
async fn to_a_room_and_to_several_rooms_each_member_once() {
    let server = server().await;
    let mut red = server.user(1, "s1").await;
    let mut both = server.user(2, "s2").await;
    let mut blue = server.user(3, "s3").await;
    let mut outside = server.user(4, "s4").await;
    assert!(matches!(
        red.join("team:red").await,
        ServerFrame::Joined { .. }
    ));
    assert!(matches!(
        both.join("team:red").await,
        ServerFrame::Joined { .. }
    ));
    assert!(matches!(
        both.join("team:blue").await,
        ServerFrame::Joined { .. }
    ));
    assert!(matches!(
        blue.join("team:blue").await,
        ServerFrame::Joined { .. }
    ));

    server
        .hub
        .to_room(&Team("red".into()))
        .emit(&note("red"))
        .unwrap();
    let rooms = [Team("red".into()), Team("blue".into())];
    assert_eq!(
        server.hub.to_rooms(&rooms).emit(&note("red+blue")).unwrap(),
        3
    );

    assert_eq!(red.event::<Note>().await, note("red"));
    assert_eq!(red.event::<Note>().await, note("red+blue"));
    assert_eq!(both.event::<Note>().await, note("red"));
    assert_eq!(both.event::<Note>().await, note("red+blue"));
    assert_eq!(blue.event::<Note>().await, note("red+blue"));
    server
        .assert_nothing_more(&mut [&mut red, &mut both, &mut blue, &mut outside])
        .await;
}

#[tokio::test]
async fn except_leaves_out_one_connection_whatever_the_target() {
    let server = server().await;
    let mut caller = server.user(1, "s1").await;
    let mut same_user_other_tab = server.user(1, "s1").await;
    let mut other = server.user(2, "s2").await;
    caller.join("team:red").await;
    other.join("team:red").await;

    server
        .hub
        .target(Target::everyone())
        .except(caller.connection)
        .emit(&note("everyone but"))
        .unwrap();
    server
        .hub
        .to(1)
        .except(caller.connection)
        .emit(&note("user but"))
        .unwrap();
    server
        .hub
        .to_room(&Team("red".into()))
        .except(caller.connection)
        .emit(&note("room but"))
        .unwrap();

    assert_eq!(
        same_user_other_tab.event::<Note>().await,
        note("everyone but")
    );
    assert_eq!(same_user_other_tab.event::<Note>().await, note("user but"));
    assert_eq!(other.event::<Note>().await, note("everyone but"));
    assert_eq!(other.event::<Note>().await, note("room but"));
    server
        .assert_nothing_more(&mut [&mut caller, &mut same_user_other_tab, &mut other])
        .await;
}

#[tokio::test]
async fn emitting_works_from_a_spawned_task() {
    let server = server().await;
    let mut client = server.user(1, "s1").await;
    let hub = server.hub.clone();
    tokio::spawn(async move { hub.to(1).emit(&note("from a task")) })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.event::<Note>().await, note("from a task"));
}

// --- Event hooks ---------------------------------------------------------

/// A domain event: goes to its team's room, only when something changed,
/// as a public view without the secret.
struct TeamRenamed {
    team: String,
    old_name: String,
    new_name: String,
    secret: String,
}

impl Broadcast for TeamRenamed {
    type Payload = Note;
    fn broadcast_on(&self) -> Target {
        Target::room(&Team(self.team.clone()))
    }
    fn broadcast_when(&self) -> bool {
        self.old_name != self.new_name
    }
    fn broadcast_as(&self) -> Note {
        note(&format!("now called {}", self.new_name))
    }
}

#[tokio::test]
async fn broadcast_applies_on_when_and_as() {
    let server = server().await;
    let mut member = server.user(1, "s1").await;
    let mut outsider = server.user(2, "s2").await;
    member.join("team:red").await;
    let renamed = |old: &str, new: &str| TeamRenamed {
        team: "red".into(),
        old_name: old.into(),
        new_name: new.into(),
        secret: "never on the wire".into(),
    };

    assert_eq!(
        server.hub.broadcast(&renamed("Red", "Red")).unwrap(),
        0,
        "declined"
    );
    assert_eq!(server.hub.broadcast(&renamed("Red", "Crimson")).unwrap(), 1);

    let received = member.event::<Note>().await;
    assert_eq!(received, note("now called Crimson"));
    assert!(!renamed("a", "b").secret.is_empty());
    server
        .assert_nothing_more(&mut [&mut member, &mut outsider])
        .await;
}

#[tokio::test]
async fn broadcast_can_leave_out_a_connection_too() {
    let server = server().await;
    let mut caller = server.user(1, "s1").await;
    let mut teammate = server.user(2, "s2").await;
    caller.join("team:red").await;
    teammate.join("team:red").await;
    let event = TeamRenamed {
        team: "red".into(),
        old_name: "Red".into(),
        new_name: "Scarlet".into(),
        secret: String::new(),
    };

    server
        .hub
        .target(Target::nobody())
        .except(caller.connection)
        .broadcast(&event)
        .unwrap();
    assert_eq!(teammate.event::<Note>().await, note("now called Scarlet"));
    server
        .assert_nothing_more(&mut [&mut caller, &mut teammate])
        .await;
}

// --- Rooms ---------------------------------------------------------------

#[tokio::test]
async fn a_join_passes_the_rule_of_its_kind() {
    let server = server().await;
    let mut owner = server.user(1, "s1").await;
    let mut stranger = server.user(2, "s2").await;
    let mut visitor = server.anonymous().await;

    assert!(
        matches!(owner.join("vault:9").await, ServerFrame::Joined { room, .. } if room.as_str() == "vault:9")
    );
    match stranger.join("vault:9").await {
        ServerFrame::Refused { room, reason } => {
            assert_eq!(room.as_str(), "vault:9");
            assert_eq!(reason, "This vault is not yours.");
        }
        other => panic!("{other:?}"),
    }
    match visitor.join("team:red").await {
        ServerFrame::Refused { reason, .. } => assert_eq!(reason, "Log in to join a team."),
        other => panic!("{other:?}"),
    }

    server.hub.to_room(&Vault(9)).emit(&note("secret")).unwrap();
    assert_eq!(owner.event::<Note>().await, note("secret"));
    server
        .assert_nothing_more(&mut [&mut owner, &mut stranger, &mut visitor])
        .await;
}

#[tokio::test]
async fn rooms_without_a_rule_or_with_a_bad_key_are_refused() {
    let server = server().await;
    let mut client = server.user(1, "s1").await;
    for room in ["lobby:1", "no-colon", "vault:not-a-number", "team:"] {
        match client.join(room).await {
            ServerFrame::Refused { reason, .. } => {
                assert_eq!(reason, "There is no such room.", "{room}")
            }
            other => panic!("{room}: {other:?}"),
        }
    }
    assert_eq!(server.hub.stats().rooms, 0);
}

#[tokio::test]
async fn a_slow_rule_is_a_refusal_not_a_hang() {
    let server = TestServer::start(
        Hub::builder()
            .config(HubConfig {
                authorize_timeout: Duration::from_millis(50),
                ..HubConfig::default()
            })
            .room::<Team, _, _>(|_| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            }),
    )
    .await;
    let mut client = server.user(1, "s1").await;
    match client.join("team:red").await {
        ServerFrame::Refused { reason, .. } => {
            assert_eq!(reason, "The server took too long to decide.")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn leaving_a_room_stops_its_events() {
    let server = server().await;
    let mut client = server.user(1, "s1").await;
    client.join("team:red").await;
    client
        .send(&ClientFrame::Leave {
            room: "team:red".into(),
        })
        .await;
    assert!(
        matches!(client.frame().await, ServerFrame::Left { room } if room.as_str() == "team:red")
    );

    server
        .hub
        .to_room(&Team("red".into()))
        .emit(&note("after leaving"))
        .unwrap();
    server.assert_nothing_more(&mut [&mut client]).await;
    assert_eq!(server.hub.stats().rooms, 0);
}

#[tokio::test]
async fn server_code_can_put_a_connection_in_a_room_and_take_it_out() {
    let server = server().await;
    let mut client = server.anonymous().await;
    let room = Vault(5);

    // Server code is trusted: no rule is asked.
    assert!(server.hub.join(client.connection, &room));
    assert!(
        matches!(client.frame().await, ServerFrame::Joined { room, .. } if room.as_str() == "vault:5")
    );
    server.hub.to_room(&room).emit(&note("inside")).unwrap();
    assert_eq!(client.event::<Note>().await, note("inside"));

    assert!(server.hub.leave(client.connection, &room));
    assert!(matches!(client.frame().await, ServerFrame::Left { .. }));
    server.hub.to_room(&room).emit(&note("outside")).unwrap();
    server.assert_nothing_more(&mut [&mut client]).await;
}

#[tokio::test]
async fn room_users_counts_each_user_once() {
    let server = server().await;
    let mut tab1 = server.user(1, "s1").await;
    let mut tab2 = server.user(1, "s1").await;
    let mut other = server.user(2, "s2").await;
    for client in [&mut tab1, &mut tab2, &mut other] {
        client.join("team:red").await;
    }
    let mut users = server.hub.room_users(&Team("red".into()));
    users.sort();
    assert_eq!(users, [UserId(1), UserId(2)]);
    assert_eq!(server.hub.room_connections(&Team("red".into())).len(), 3);
}

// --- Presence ------------------------------------------------------------

async fn expect_presence(client: &mut support::TestClient) -> Vec<String> {
    let presence = client.event::<Presence>().await;
    assert_eq!(presence.room.as_str(), "lounge:main");
    presence
        .members
        .into_iter()
        .map(|member| member.name)
        .collect()
}

#[tokio::test]
async fn presence_follows_users_not_tabs() {
    let server = server().await;
    let mut ada1 = server.connect("user=1&session=a&name=Ada").await;
    let mut ada2 = server.connect("user=1&session=a&name=Ada").await;
    let mut grace = server.connect("user=2&session=g&name=Grace").await;

    ada1.join("lounge:main").await;
    assert_eq!(expect_presence(&mut ada1).await, ["Ada"]);

    grace.join("lounge:main").await;
    assert_eq!(expect_presence(&mut ada1).await, ["Ada", "Grace"]);
    assert_eq!(expect_presence(&mut grace).await, ["Ada", "Grace"]);

    // Ada's second tab: the set of users does not change, so only that tab
    // hears (it needs the list).
    ada2.join("lounge:main").await;
    assert_eq!(expect_presence(&mut ada2).await, ["Ada", "Grace"]);
    server
        .assert_nothing_more(&mut [&mut ada1, &mut grace])
        .await;

    // One of Ada's tabs leaves: Ada is still there.
    ada1.send(&ClientFrame::Leave {
        room: "lounge:main".into(),
    })
    .await;
    assert!(matches!(ada1.frame().await, ServerFrame::Left { .. }));
    server
        .assert_nothing_more(&mut [&mut ada2, &mut grace])
        .await;

    // Her last tab closes: she is gone.
    ada2.ws.close(None).await.unwrap();
    assert_eq!(expect_presence(&mut grace).await, ["Grace"]);
}

#[tokio::test]
async fn a_large_rooms_list_names_its_first_users_and_counts_the_rest_so_it_fits_every_socket() {
    // A list of every one of 200 long names (about 13 KB) would pass the
    // sockets' write buffers (8 KiB + `max_event_bytes` + 1 KiB): each
    // member's socket would fail to write it, and be dropped.
    let server = TestServer::start(builder().config(HubConfig {
        max_event_bytes: 2 * 1024,
        ..HubConfig::default()
    }))
    .await;
    let mut tabs = Vec::new();
    for n in 0..200 {
        let name = format!("{n:03}{}", "x".repeat(37));
        let mut tab = server
            .connect(&format!("user={}&session=s{n}&name={name}", n + 1))
            .await;
        tab.join("lounge:main").await;
        tabs.push(tab);
    }
    let mut last = server.connect("user=999&session=z&name=Zoe").await;
    last.join("lounge:main").await;
    let presence = last.event::<Presence>().await;
    assert_eq!(
        presence.members.len() + presence.more,
        201,
        "everyone is counted"
    );
    // The default names 100; 2 KiB hold fewer of these names.
    assert!(
        (1..100).contains(&presence.members.len()),
        "{} named",
        presence.members.len()
    );
    assert_eq!(
        presence.members[0].name,
        format!("000{}", "x".repeat(37)),
        "the first by name"
    );
    let data = serde_json::to_string(&presence).unwrap();
    assert!(data.len() <= 2 * 1024, "{} bytes", data.len());

    // The others got lists as the room grew, and are all still here.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.hub.stats().connections, 201);
    let first = tabs.first_mut().expect("a tab");
    first.ws.close(None).await.unwrap();
    let presence = last.event::<Presence>().await;
    assert_eq!(presence.members.len() + presence.more, 200);
}

#[tokio::test]
async fn a_rooms_list_names_at_most_max_presence_listed_users() {
    let server = TestServer::start(builder().config(HubConfig {
        max_presence_listed: 2,
        ..HubConfig::default()
    }))
    .await;
    let mut ada = server.connect("user=1&session=a&name=Ada").await;
    let mut bob = server.connect("user=2&session=b&name=Bob").await;
    let mut cy = server.connect("user=3&session=c&name=Cy").await;
    ada.join("lounge:main").await;
    assert_eq!(expect_presence(&mut ada).await, ["Ada"]);
    bob.join("lounge:main").await;
    assert_eq!(expect_presence(&mut ada).await, ["Ada", "Bob"]);
    cy.join("lounge:main").await;
    let presence = cy.event::<Presence>().await;
    let names: Vec<_> = presence
        .members
        .iter()
        .map(|member| member.name.as_str())
        .collect();
    assert_eq!(
        (names.as_slice(), presence.more),
        (["Ada", "Bob"].as_slice(), 1)
    );
}

#[tokio::test]
async fn visitors_are_not_listed_and_rooms_without_presence_send_none() {
    let server = server().await;
    let mut visitor = server.anonymous().await;
    let mut ada = server.connect("user=1&session=a&name=Ada").await;
    visitor.join("lounge:main").await;
    assert_eq!(expect_presence(&mut visitor).await, Vec::<String>::new());
    ada.join("lounge:main").await;
    assert_eq!(expect_presence(&mut visitor).await, ["Ada"]);

    // Teams have no presence: joining one sends nothing but `joined`.
    ada.join("team:red").await;
    server.assert_nothing_more(&mut [&mut ada]).await;
}

// --- Limits --------------------------------------------------------------

#[tokio::test]
async fn a_connection_may_be_in_a_limited_number_of_rooms() {
    let server = TestServer::start(builder().config(HubConfig {
        max_rooms_per_connection: 2,
        ..HubConfig::default()
    }))
    .await;
    let mut client = server.user(1, "s1").await;
    assert!(matches!(
        client.join("team:a").await,
        ServerFrame::Joined { .. }
    ));
    assert!(matches!(
        client.join("team:b").await,
        ServerFrame::Joined { .. }
    ));
    // Joining a room it is already in is not one more.
    assert!(matches!(
        client.join("team:a").await,
        ServerFrame::Joined { .. }
    ));
    match client.join("team:c").await {
        ServerFrame::Refused { reason, .. } => {
            assert_eq!(reason, "You can be in at most 2 rooms at once.")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn malformed_and_binary_frames_get_an_error_frame_and_the_connection_lives_on() {
    let server = server().await;
    let mut client = server.user(1, "s1").await;

    for bad in [
        "not json",
        r#"{"type":"dance"}"#,
        r#"{"type":"join"}"#,
        "[]",
    ] {
        client.send_text(bad).await;
        match client.frame().await {
            ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::MalformedFrame, "{bad}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    use futures_util::SinkExt;
    client
        .ws
        .send(realtime_testing::tungstenite::Message::binary(vec![
            1, 2, 3,
        ]))
        .await
        .unwrap();
    match client.frame().await {
        ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::BinaryFrame),
        other => panic!("{other:?}"),
    }

    // Still connected, still served.
    assert!(matches!(
        client.join("team:red").await,
        ServerFrame::Joined { .. }
    ));
}

#[tokio::test]
async fn a_frame_over_the_limit_closes_the_connection_with_1009() {
    let server = TestServer::start(builder().config(HubConfig {
        max_frame_bytes: 1024,
        ..HubConfig::default()
    }))
    .await;
    let mut client = server.user(1, "s1").await;
    let huge = format!(r#"{{"type":"join","room":"team:{}"}}"#, "x".repeat(2000));
    client.send_text(&huge).await;
    assert_eq!(client.closed().await, Some(close::TOO_BIG));
    server.wait_until_empty().await;
}

#[tokio::test]
async fn frames_larger_than_the_read_buffer_are_read_whole() {
    let server = TestServer::start(builder().config(HubConfig {
        read_buffer_bytes: 64,
        ..HubConfig::default()
    }))
    .await;
    let mut client = server.user(1, "s1").await;
    // Three frames of 1.5 KiB each, sent back to back: each read in pieces.
    for room in ["team:red", "team:blue", "team:green"] {
        let padded = format!(r#"{{"type":"join","room":"{room}"}}{}"#, " ".repeat(1500));
        client.send_text(&padded).await;
    }
    let mut joined = 0;
    while joined < 3 {
        match client.frame().await {
            ServerFrame::Joined { .. } => joined += 1,
            ServerFrame::Error { .. } | ServerFrame::Refused { .. } => {
                panic!("a padded join was not read whole")
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_write_interval_gathers_what_comes_after_a_write_and_delays_no_event_after_a_quiet_spell()
{
    let interval = Duration::from_millis(800);
    let server = TestServer::start(builder().config(HubConfig {
        write_interval: interval,
        ..HubConfig::default()
    }))
    .await;
    let mut client = server.user(1, "s1").await;
    // After a quiet spell (only the welcome so far): written at once.
    let emitted = tokio::time::Instant::now();
    server.hub.emit(&note("first")).unwrap();
    assert_eq!(client.event::<Note>().await, note("first"));
    let first = tokio::time::Instant::now();
    assert!(
        first - emitted < interval / 2,
        "the first event waited {:?}",
        first - emitted
    );
    // Two more right after it: held until the interval since that write
    // ends, then written together.
    server.hub.emit(&note("second")).unwrap();
    server.hub.emit(&note("third")).unwrap();
    assert_eq!(client.event::<Note>().await, note("second"));
    let second = tokio::time::Instant::now();
    assert_eq!(client.event::<Note>().await, note("third"));
    let third = tokio::time::Instant::now();
    assert!(
        second - first >= interval * 3 / 4,
        "the second event came {:?} after the first",
        second - first
    );
    assert!(
        third - second < interval / 2,
        "the third event came {:?} after the second: not in the same write",
        third - second
    );
    // Right after that write, the browser asks to join: the answer does
    // not wait for the interval.
    let asked = tokio::time::Instant::now();
    assert!(matches!(
        client.join("team:red").await,
        ServerFrame::Joined { .. }
    ));
    assert!(
        asked.elapsed() < interval / 2,
        "the join's answer waited {:?}",
        asked.elapsed()
    );
    // While the queue waits, the hub's close still goes out at once.
    server.hub.emit(&note("fourth")).unwrap();
    let ending = tokio::time::Instant::now();
    assert_eq!(server.hub.disconnect_session(&SessionKey::from("s1")), 1);
    assert_eq!(client.closed().await, Some(close::SESSION_ENDED));
    assert!(
        ending.elapsed() < interval / 2,
        "the close waited {:?}",
        ending.elapsed()
    );
}

#[tokio::test]
async fn events_gathered_for_a_write_interval_never_overflow_the_queue() {
    let server = TestServer::start(builder().config(HubConfig {
        write_interval: Duration::from_secs(1),
        queue_capacity: 8,
        ..HubConfig::default()
    }))
    .await;
    let mut client = server.user(1, "s1").await;
    server.hub.emit(&note("first")).unwrap();
    assert_eq!(client.event::<Note>().await, note("first"));
    // Within the interval after that write, three times the queue's
    // capacity: taken as the queue fills, not lost to the slow-client rule.
    for n in 0..24 {
        server.hub.emit(&note(&n.to_string())).unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for n in 0..24 {
        assert_eq!(client.event::<Note>().await, note(&n.to_string()));
    }
    assert_eq!(server.hub.stats().connections, 1);
}

#[tokio::test]
async fn a_client_too_slow_to_read_is_disconnected_and_the_others_are_not_held_up() {
    let server = TestServer::start(builder().config(HubConfig {
        queue_capacity: 8,
        // Events of 64 KiB fill the kernel's buffers in a few sends.
        max_event_bytes: 128 * 1024,
        ..HubConfig::default()
    }))
    .await;
    let mut slow = server.user(1, "s1").await;
    let mut fast = server.user(2, "s2").await;
    let big = note(&"x".repeat(64 * 1024));

    // The slow client reads nothing: the kernel's buffers fill, then its
    // queue, and the hub lets it go. The fast one reads everything.
    let mut sent = 0;
    while server.hub.stats().connections == 2 {
        assert!(sent < 10_000, "the slow client was never disconnected");
        server.hub.emit(&big).unwrap();
        sent += 1;
        assert_eq!(fast.event::<Note>().await, big);
    }
    assert_eq!(server.hub.stats().connections, 1);
    assert_eq!(slow.closed().await, Some(close::TOO_SLOW));
    server.hub.emit(&note("still here")).unwrap();
    assert_eq!(fast.event::<Note>().await, note("still here"));
}

#[tokio::test]
async fn a_queue_is_bounded_in_bytes_however_few_its_frames() {
    for (max_bytes, closed) in [(8 * 1024, true), (1024 * 1024, false)] {
        let server = TestServer::start(builder().config(HubConfig {
            queue_capacity: 256,
            queue_max_bytes: max_bytes,
            ..HubConfig::default()
        }))
        .await;
        let mut tab = server.user(1, "s1").await;
        let kib = note(&"x".repeat(1024));
        // Twenty frames of 1 KiB queued before the connection's task can
        // take any (this test's runtime has one thread): far fewer frames
        // than the queue holds, more bytes than it may.
        for _ in 0..20 {
            server.hub.emit(&kib).unwrap();
        }
        if closed {
            assert_eq!(tab.closed().await, Some(close::TOO_SLOW));
        } else {
            for _ in 0..20 {
                assert_eq!(tab.event::<Note>().await, kib);
            }
            assert_eq!(server.hub.stats().connections, 1);
        }
    }
}

// --- The origin rule ----------------------------------------------------

#[tokio::test]
async fn upgrades_from_another_origin_are_refused_with_403() {
    let server = server().await;
    let host = server.address.to_string();
    let same = format!("http://{host}");

    assert!(server.try_connect("", &[("origin", &same)]).await.is_ok());
    assert_eq!(
        server
            .try_connect("", &[("origin", "http://evil.example")])
            .await
            .err(),
        Some(axum::http::StatusCode::FORBIDDEN)
    );
    // Requests without an Origin are not from a web page.
    assert!(server.try_connect("", &[]).await.is_ok());
}

#[tokio::test]
async fn listed_origins_are_let_in() {
    let server = TestServer::start(builder().config(HubConfig {
        origins: Origins::SameOriginAnd(vec!["https://app.example".into()]),
        ..HubConfig::default()
    }))
    .await;
    assert!(
        server
            .try_connect("", &[("origin", "https://app.example")])
            .await
            .is_ok()
    );
    assert!(
        server
            .try_connect("", &[("origin", "https://other.example")])
            .await
            .is_err()
    );
}

// --- Ending sessions, and the registry ----------------------------------

#[tokio::test]
async fn ending_a_session_closes_its_connections_at_once() {
    let server = server().await;
    let mut tab1 = server.user(1, "session-a").await;
    let mut tab2 = server.user(1, "session-a").await;
    let mut same_user_other_device = server.user(1, "session-b").await;

    assert_eq!(
        server
            .hub
            .disconnect_session(&SessionKey::from("session-a")),
        2
    );
    // Gone from the registry before the call returned: nothing sent now
    // reaches them.
    assert_eq!(server.hub.to(1).emit(&note("after logout")).unwrap(), 1);
    assert_eq!(tab1.closed().await, Some(close::SESSION_ENDED));
    assert_eq!(tab2.closed().await, Some(close::SESSION_ENDED));
    assert_eq!(
        same_user_other_device.event::<Note>().await,
        note("after logout")
    );
}

#[tokio::test]
async fn disconnect_all_closes_everything_with_going_away() {
    let server = server().await;
    let mut a = server.user(1, "s1").await;
    let mut b = server.anonymous().await;
    assert_eq!(server.hub.disconnect_all(), 2);
    assert_eq!(a.closed().await, Some(close::GOING_AWAY));
    assert_eq!(b.closed().await, Some(close::GOING_AWAY));
    server.wait_until_empty().await;
}

#[tokio::test]
async fn the_registry_forgets_closed_connections_entirely() {
    let server = server().await;
    let mut a = server.user(1, "s1").await;
    let mut b = server.user(1, "s1").await;
    let mut c = server.anonymous().await;
    a.join("team:red").await;
    b.join("vault:1").await;
    let stats = server.hub.stats();
    assert_eq!(
        (stats.connections, stats.users, stats.sessions, stats.rooms),
        (3, 1, 1, 2)
    );

    a.ws.close(None).await.unwrap();
    b.ws.close(None).await.unwrap();
    drop(c.ws.close(None).await);
    server.wait_until_empty().await;
}
