//! Hostile traffic against the application: what an attacker's script gets
//! when it pads, floods, forges or guesses. Each limit is set low here, so
//! the tests run fast; the defaults are in the README. Hostile requests come
//! from 127.0.0.2 and up, ordinary ones from 127.0.0.1.

mod support;

use std::time::Duration;

use app::{
    auth::AuthError,
    error::AppError,
    events::SomethingHappened,
    limits::{Action, Rate},
};
use axum::{
    body::Body,
    http::{StatusCode, header},
};
use realtime_testing::TestClient;
use server::Config;
use support::{Logs, TestApp, default_session, encode_form, test_config};

const PASSWORD: &str = "correct horse battery";

/// A test configuration with these limits.
async fn config_with(limits: &[(Action, &str)]) -> Config {
    let mut config = test_config(default_session()).await;
    for (action, rate) in limits {
        let rate: Rate = rate.parse().expect("a valid rate");
        config.app.limits.set(*action, rate);
    }
    config
}

fn retry_after(response: &support::TestResponse) -> u64 {
    response.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

// --- Arguments ---------------------------------------------------------------

#[tokio::test]
async fn arguments_that_cannot_be_read_are_the_callers_mistake_and_not_echoed() {
    let app = TestApp::new().await;
    let mut browser = app.browser_at("127.0.0.3");
    for form in [
        &[("name", "mallory-was-here")][..],
        &[("name[0][1]", "mallory-was-here"), ("password", "x")][..],
    ] {
        let response = browser.post("/api/auth/log_in", form).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{}",
            response.body
        );
        assert!(
            matches!(response.json::<AppError>(), AppError::Invalid(_)),
            "{}",
            response.body
        );
        assert!(!response.body.contains("mallory"), "{}", response.body);
    }
}

#[tokio::test]
async fn a_body_that_trickles_in_is_cut_off_with_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config = test_config(default_session()).await;
    config.request_body_timeout = Duration::from_secs(1);
    let app = TestApp::with_config(config).await;
    let address = app.listen().await;
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // 100 bytes announced, 10 sent, and then nothing.
    stream
        .write_all(
            b"POST /api/auth/log_in HTTP/1.1\r\nHost: localhost\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 100\r\n\r\nname=ada&p",
        )
        .await
        .unwrap();
    let mut answer = vec![0; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered before the client sent the rest")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn connections_that_send_no_headers_or_trickle_them_are_closed() {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
    };
    let mut config = test_config(default_session()).await;
    config.request_header_timeout = Duration::from_secs(1);
    let app = TestApp::with_config(config).await;
    let address = app.listen().await;
    // One sends nothing at all.
    let silent = TcpStream::connect(address).await.unwrap();
    // One sends the start of a request, a byte every 200 ms.
    let trickling = TcpStream::connect(address).await.unwrap();
    let (mut from_trickling, mut to_trickling) = trickling.into_split();
    tokio::spawn(async move {
        for byte in b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ".repeat(10) {
            if to_trickling.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    // One is kept alive after a request, and never sends the next.
    let mut idle = TcpStream::connect(address).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0; 4096];
    let read = idle.read(&mut answer).await.unwrap();
    assert!(
        answer[..read].starts_with(b"HTTP/1.1 200"),
        "the request is served"
    );

    async fn closed_within(stream: &mut (impl AsyncReadExt + Unpin), which: &str) {
        let mut rest = Vec::new();
        // Closed by the server: the read ends (or is reset).
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
            .await
            .unwrap_or_else(|_| panic!("the {which} connection is still open after 5 s"));
    }
    let mut silent = silent;
    closed_within(&mut silent, "silent").await;
    closed_within(&mut from_trickling, "trickling").await;
    closed_within(&mut idle, "idle").await;
}

// --- Announcements ----------------------------------------------------------

#[tokio::test]
async fn announcing_takes_a_logged_in_user() {
    let app = TestApp::new().await;
    let response = app
        .browser_at("127.0.0.2")
        .post("/api/events/broadcast", &[("event[message]", "hi")])
        .await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(response.json::<AppError>(), AppError::NotLoggedIn);
}

#[tokio::test]
async fn a_padded_announcement_goes_out_trimmed() {
    let app = TestApp::new().await;
    let address = app.listen().await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let mut tab = app.browser().open_socket(address).await;

    let padded = format!("x{}", " ".repeat(20_000));
    let response = ada
        .post("/api/events/broadcast", &[("event[message]", &padded)])
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(
        tab.event::<SomethingHappened>().await,
        SomethingHappened {
            author: Some("ada".into()),
            ..SomethingHappened::new("x")
        }
    );
}

/// The log line of the test below, reached first by a thread that logs
/// nowhere.
fn probe(text: &str) {
    tracing::info!(text, "probe");
}

#[test]
fn a_line_is_captured_even_when_a_thread_without_a_subscriber_met_it_first() {
    let (logs, _capturing) = Logs::capture();
    std::thread::spawn(|| probe("from elsewhere"))
        .join()
        .expect("the other thread");
    probe("from here");
    let logged = logs.text();
    assert!(logged.contains("from here"), "{logged}");
    assert!(!logged.contains("from elsewhere"), "{logged}");
}

#[tokio::test]
async fn an_announcement_carries_its_authors_name_whatever_the_caller_says() {
    let (logs, _capturing) = Logs::capture();
    let app = TestApp::new().await;
    let address = app.listen().await;
    let mut mallory = app.browser();
    mallory.sign_up("mallory", PASSWORD).await.unwrap();
    let mut tab = app.browser().open_socket(address).await;
    let response = mallory
        .post(
            "/api/events/broadcast",
            &[
                (
                    "event[message]",
                    "System error: log in again at evil.example",
                ),
                ("event[isError]", "true"),
                ("event[author]", "System"),
            ],
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let event = tab.event::<SomethingHappened>().await;
    assert_eq!(event.author.as_deref(), Some("mallory"));
    // And it is logged, with who sent it.
    let user = mallory.current_user().await.unwrap().unwrap();
    let logged = logs.text();
    assert!(
        logged.lines().any(|line| line.contains("announced")
            && line.contains(&format!("user={}", user.id))
            && line.contains("log in again at evil.example")),
        "{logged}"
    );
}

#[tokio::test]
async fn announcements_are_limited_per_user() {
    let app = TestApp::with_config(config_with(&[(Action::Announce, "1/min burst 3")]).await).await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let mut grace = app.browser();
    grace.sign_up("grace", PASSWORD).await.unwrap();

    let announce = [("event[message]", "hello")];
    for _ in 0..3 {
        let response = ada.post("/api/events/broadcast", &announce).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    }
    let refused = ada.post("/api/events/broadcast", &announce).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&refused);
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(
        refused.json::<AppError>().to_string(),
        format!("You are doing that too often. Please wait {wait} s and try again.")
    );
    // Another user is not held back by Ada.
    let response = grace.post("/api/events/broadcast", &announce).await;
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn every_repeatable_action_is_limited_per_user() {
    let app = TestApp::with_config(
        config_with(&[
            (Action::Notify, "1/min burst 1"),
            // @chat-begin
            (Action::Post, "1/min burst 1"),
            (Action::Typing, "1/min burst 1"),
            (Action::CreateRoom, "1/min burst 1"),
            (Action::Rename, "1/min burst 1"),
            // @chat-end
        ])
        .await,
    )
    .await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    app.browser().sign_up("grace", PASSWORD).await.unwrap();

    let calls: Vec<(&str, Vec<(&str, &str)>)> =
        vec![("/api/events/notify", vec![("to", "grace"), ("text", "hi")])];
    // @chat-begin
    // Creating the room uses up the one room creation.
    let created = ada
        .post("/api/chat/create_room", &[("name", "Lobby")])
        .await;
    assert!(created.status.is_success(), "{}", created.body);
    let room = created.json::<app::chat::RoomSummary>().id.to_string();
    let calls = [
        calls,
        vec![
            (
                "/api/chat/post",
                vec![("room_id", room.as_str()), ("body", "hi")],
            ),
            ("/api/chat/typing", vec![("room_id", &room)]),
            (
                "/api/chat/rename",
                vec![("room_id", &room), ("name", "Hall")],
            ),
        ],
    ]
    .concat();
    // @chat-end
    for (path, form) in &calls {
        let first = ada.post(path, form).await;
        assert!(first.status.is_success(), "{path}: {}", first.body);
    }
    // @chat-begin
    let calls = [
        calls,
        vec![("/api/chat/create_room", vec![("name", "Hall")])],
    ]
    .concat();
    // @chat-end
    for (path, form) in &calls {
        let again = ada.post(path, form).await;
        assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
    }
}

#[tokio::test]
async fn accounts_on_one_network_share_its_writes() {
    let app = TestApp::with_config(
        config_with(&[
            (Action::AnnouncePerAddress, "1/min burst 1"),
            // @chat-begin
            (Action::PostPerAddress, "1/min burst 1"),
            (Action::CreateRoomPerAddress, "1/min burst 1"),
            (Action::TypingPerAddress, "1/min burst 1"),
            // @chat-end
        ])
        .await,
    )
    .await;
    let mut first = app.browser_at("127.0.0.2");
    first.sign_up("first", PASSWORD).await.unwrap();
    let mut second = app.browser_at("127.0.0.2");
    second.sign_up("second", PASSWORD).await.unwrap();
    let mut elsewhere = app.browser_at("127.0.0.3");
    elsewhere.sign_up("elsewhere", PASSWORD).await.unwrap();

    let calls: Vec<(&str, Vec<(&str, String)>)> = vec![(
        "/api/events/broadcast",
        vec![("event[message]", "hello".to_owned())],
    )];
    // @chat-begin
    // A room for the messages, from a third network.
    let mut host = app.browser_at("127.0.0.4");
    host.sign_up("host", PASSWORD).await.unwrap();
    let room = host
        .post("/api/chat/create_room", &[("name", "Lobby")])
        .await
        .json::<app::chat::RoomSummary>()
        .id
        .to_string();
    let calls = [
        calls,
        vec![
            (
                "/api/chat/post",
                vec![("room_id", room.clone()), ("body", "hi".to_owned())],
            ),
            ("/api/chat/typing", vec![("room_id", room)]),
            ("/api/chat/create_room", vec![("name", "Hall".to_owned())]),
        ],
    ]
    .concat();
    // @chat-end
    // Each caller's own names: two rooms may not share one.
    let form_of = |form: &[(&'static str, String)], who: &str| -> Vec<(&'static str, String)> {
        form.iter()
            .map(|(key, value)| match *key {
                "name" => (*key, format!("{value} {who}")),
                _ => (*key, value.clone()),
            })
            .collect()
    };
    for (path, form) in &calls {
        let sent = first.post(path, &pairs(&form_of(form, "1"))).await;
        assert!(sent.status.is_success(), "{path}: {}", sent.body);
        // Another account on the same network: the network's one is spent.
        let again = second.post(path, &pairs(&form_of(form, "2"))).await;
        assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
        // Another network has its own.
        let other = elsewhere.post(path, &pairs(&form_of(form, "3"))).await;
        assert!(other.status.is_success(), "{path}: {}", other.body);
    }
}

// @chat-begin
#[tokio::test]
async fn accounts_on_one_network_share_its_renames() {
    let app =
        TestApp::with_config(config_with(&[(Action::RenamePerAddress, "1/min burst 1")]).await)
            .await;
    // Each renames a room of their own (only its creator may).
    let mut renames = Vec::new();
    for (who, address) in [
        ("first", "127.0.0.2"),
        ("second", "127.0.0.2"),
        ("elsewhere", "127.0.0.3"),
    ] {
        let mut browser = app.browser_at(address);
        browser.sign_up(who, PASSWORD).await.unwrap();
        let room = browser
            .post("/api/chat/create_room", &[("name", who)])
            .await
            .json::<app::chat::RoomSummary>()
            .id
            .to_string();
        let name = format!("{who} renamed");
        let renamed = browser
            .post("/api/chat/rename", &[("room_id", &room), ("name", &name)])
            .await;
        renames.push(renamed.status);
    }
    assert!(renames[0].is_success(), "{renames:?}");
    assert_eq!(renames[1], StatusCode::TOO_MANY_REQUESTS, "same network");
    assert!(renames[2].is_success(), "another network: {renames:?}");
}
// @chat-end

/// A form's fields as the test browser takes them.
fn pairs<'a>(form: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    form.iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect()
}

// --- Request bodies ---------------------------------------------------------

#[tokio::test]
async fn request_bodies_are_bounded() {
    let app = TestApp::new().await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let big = "x".repeat(server::config::DEFAULT_MAX_REQUEST_BODY_BYTES);
    let response = ada
        .post("/api/events/broadcast", &[("event[message]", &big)])
        .await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        matches!(response.json::<AppError>(), AppError::Invalid(message) if message.contains("larger")),
        "{}",
        response.body
    );
    // @chat-begin
    // A message of the largest size, in 4-byte characters, still fits.
    let room = ada
        .post("/api/chat/create_room", &[("name", "Lobby")])
        .await;
    let room = room.json::<app::chat::RoomSummary>().id.to_string();
    let longest = "😀".repeat(app::chat::MAX_MESSAGE_LEN);
    let response = ada
        .post("/api/chat/post", &[("room_id", &room), ("body", &longest)])
        .await;
    assert_eq!(response.status, StatusCode::OK);
    // @chat-end
}

// --- Notifications ------------------------------------------------------------

#[tokio::test]
async fn notify_answers_the_same_whether_or_not_the_name_exists() {
    let app = TestApp::new().await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    app.browser().sign_up("grace", PASSWORD).await.unwrap();
    let mut answers = Vec::new();
    for to in ["grace", "GRACE", "nobody", "no one at all!"] {
        let response = ada
            .post("/api/events/notify", &[("to", to), ("text", "hi")])
            .await;
        answers.push((response.status, response.body));
    }
    assert!(answers[0].0.is_success(), "{answers:?}");
    assert!(
        answers.iter().all(|answer| *answer == answers[0]),
        "{answers:?}"
    );
}

#[tokio::test]
async fn one_sender_cannot_spend_what_a_person_may_get_from_everyone() {
    let app = TestApp::with_config(
        config_with(&[
            (Action::NotifyPerPair, "1/min burst 2"),
            (Action::NotifyPerRecipient, "1/min burst 4"),
        ])
        .await,
    )
    .await;
    app.browser().sign_up("grace", PASSWORD).await.unwrap();
    let mut pest = app.browser_at("127.0.0.2");
    pest.sign_up("pest", PASSWORD).await.unwrap();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let sent = pest
            .post("/api/events/notify", &[("to", "grace"), ("text", "again")])
            .await;
        statuses.push(sent.status);
    }
    assert_eq!(
        statuses.iter().filter(|status| status.is_success()).count(),
        2,
        "{statuses:?}"
    );
    // Grace's allowance is still there for someone else.
    let mut friend = app.browser_at("127.0.0.3");
    friend.sign_up("friend", PASSWORD).await.unwrap();
    let sent = friend
        .post("/api/events/notify", &[("to", "grace"), ("text", "hello")])
        .await;
    assert!(sent.status.is_success(), "{}", sent.body);
}

#[tokio::test]
async fn many_accounts_cannot_flood_one_person_nor_one_network_send_without_end() {
    let app = TestApp::with_config(
        config_with(&[
            (Action::NotifyPerRecipient, "1/min burst 3"),
            (Action::NotifyPerAddress, "1/min burst 5"),
        ])
        .await,
    )
    .await;
    app.browser().sign_up("grace", PASSWORD).await.unwrap();
    // Three accounts, each within its own limit, from three networks.
    let mut senders = Vec::new();
    for (name, address) in [
        ("bot1", "127.0.0.2"),
        ("bot2", "127.0.0.3"),
        ("bot3", "127.0.0.4"),
    ] {
        let mut bot = app.browser_at(address);
        bot.sign_up(name, PASSWORD).await.unwrap();
        senders.push(bot);
    }
    for bot in &mut senders {
        let sent = bot
            .post(
                "/api/events/notify",
                &[("to", "grace"), ("text", "buy now")],
            )
            .await;
        assert!(sent.status.is_success(), "{}", sent.body);
    }
    // Grace has had her three: the next, from anyone, waits.
    let fourth = senders[0]
        .post(
            "/api/events/notify",
            &[("to", "Grace"), ("text", "buy now")],
        )
        .await;
    assert_eq!(fourth.status, StatusCode::TOO_MANY_REQUESTS);
    // Others still get theirs.
    app.browser().sign_up("alan", PASSWORD).await.unwrap();
    let to_alan = senders[1]
        .post("/api/events/notify", &[("to", "alan"), ("text", "hi")])
        .await;
    assert!(to_alan.status.is_success(), "{}", to_alan.body);

    // Five accounts on one network share its five.
    let mut neighbours = Vec::new();
    for n in 0..6 {
        let mut bot = app.browser_at("127.0.0.9");
        bot.sign_up(&format!("same{n}"), PASSWORD).await.unwrap();
        neighbours.push(bot);
    }
    let mut statuses = Vec::new();
    for (n, bot) in neighbours.iter_mut().enumerate() {
        let to = format!("target{n}");
        let sent = bot
            .post("/api/events/notify", &[("to", to.as_str()), ("text", "hi")])
            .await;
        statuses.push(sent.status);
    }
    assert!(
        statuses[..5].iter().all(StatusCode::is_success),
        "{statuses:?}"
    );
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS);
}

// --- Log-ins and sign-ups ---------------------------------------------------

#[tokio::test]
async fn log_ins_are_limited_per_address() {
    let app = TestApp::with_config(config_with(&[(Action::LogInPerAddress, "3/min")]).await).await;
    app.browser().sign_up("ada", PASSWORD).await.unwrap();

    let mut attacker = app.browser_at("127.0.0.2");
    for guess in 0..3 {
        let answer = attacker.log_in("ada", &format!("guess {guess}")).await;
        assert_eq!(answer, Err(AuthError::WrongCredentials.into()));
    }
    let response = attacker
        .post(
            "/api/auth/log_in",
            &[("name", "ada"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&response) >= 1);

    // Ada, from her own address, is not locked out by it.
    assert!(app.browser().log_in("ada", PASSWORD).await.is_ok());
}

#[tokio::test]
async fn wrong_passwords_from_one_network_do_not_lock_the_owner_out() {
    let app = TestApp::with_config(config_with(&[(Action::LogInFailures, "3/min")]).await).await;
    app.browser().sign_up("ada", PASSWORD).await.unwrap();
    let mut attacker = app.browser_at("127.0.0.2");
    for guess in 0..3 {
        let answer = attacker.log_in("ada", &format!("guess {guess}")).await;
        assert_eq!(answer, Err(AuthError::WrongCredentials.into()));
    }
    // The attacker's network is refused for Ada's account, even with the
    // right password...
    let answer = attacker.log_in("ada", PASSWORD).await;
    assert!(
        matches!(answer, Err(AppError::TooManyRequests { .. })),
        "{answer:?}"
    );
    // ...while Ada, from her own network, gets in as often as she likes:
    // successes do not count, and her typo is forgiven by her password.
    for _ in 0..4 {
        assert!(app.browser().log_in("ada", "a typo").await.is_err());
        assert!(app.browser().log_in("ada", PASSWORD).await.is_ok());
    }
}

#[tokio::test]
async fn log_ins_are_limited_per_account_from_any_address() {
    let app = TestApp::with_config(config_with(&[(Action::LogInPerAccount, "2/min")]).await).await;
    app.browser().sign_up("ada", PASSWORD).await.unwrap();
    for (address, guess) in [("127.0.0.2", "one"), ("127.0.0.3", "two")] {
        let answer = app.browser_at(address).log_in("ADA", guess).await;
        assert_eq!(answer, Err(AuthError::WrongCredentials.into()));
    }
    let answer = app.browser_at("127.0.0.4").log_in("ada", "three").await;
    assert!(
        matches!(answer, Err(AppError::TooManyRequests { .. })),
        "{answer:?}"
    );
    // Other accounts are not affected.
    app.browser().sign_up("grace", PASSWORD).await.unwrap();
    assert!(
        app.browser_at("127.0.0.4")
            .log_in("grace", PASSWORD)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn sign_ups_are_limited_per_address() {
    let app = TestApp::with_config(config_with(&[(Action::SignUpPerAddress, "2/h")]).await).await;
    let mut attacker = app.browser_at("127.0.0.2");
    // A name no account may have is refused before it counts (nor takes
    // a key in the limiter's map).
    for _ in 0..3 {
        let answer = attacker.sign_up("no spaces allowed!", PASSWORD).await;
        assert!(
            matches!(answer, Err(AppError::Auth(AuthError::UserNameInvalid))),
            "{answer:?}"
        );
    }
    for name in ["bot1", "bot2"] {
        attacker.sign_up(name, PASSWORD).await.unwrap();
    }
    let answer = app.browser_at("127.0.0.2").sign_up("bot3", PASSWORD).await;
    assert!(
        matches!(answer, Err(AppError::TooManyRequests { .. })),
        "{answer:?}"
    );
    assert_eq!(app.user_count().await, 2);
    assert!(app.browser().sign_up("ada", PASSWORD).await.is_ok());
}

/// A configuration where one password check at a time may run, and none
/// may wait.
async fn one_hash_at_a_time() -> Config {
    let mut config = config_with(&[
        (Action::LogInPerAddress, "1000/s"),
        (Action::LogInFailures, "1000/s"),
        (Action::LogInPerAccount, "1000/s"),
    ])
    .await;
    config.app.hashing.concurrency = 1;
    config.app.hashing.max_wait = Duration::ZERO;
    config
}

#[tokio::test]
async fn password_hashing_runs_a_few_at_a_time_and_turns_the_rest_away() {
    let app = TestApp::with_config(one_hash_at_a_time().await).await;
    let guesses = (0..20).map(|guess| {
        let mut attacker = app.browser_at("127.0.0.2");
        async move {
            let password = format!("guess {guess}");
            attacker
                .post(
                    "/api/auth/log_in",
                    &[("name", "nobody"), ("password", &password)],
                )
                .await
        }
    });
    let responses = futures_util::future::join_all(guesses).await;
    let busy: Vec<_> = responses
        .iter()
        .filter(|response| response.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(!busy.is_empty(), "{responses:?}");
    for response in busy {
        assert_eq!(response.json::<AppError>(), AppError::Busy);
    }
    assert!(
        responses
            .iter()
            .any(|response| response.status == StatusCode::UNAUTHORIZED),
        "one at a time still gets answered: {responses:?}"
    );
}

#[tokio::test]
async fn a_password_longer_than_any_account_has_is_wrong_without_a_hash() {
    let app = TestApp::with_config(one_hash_at_a_time().await).await;
    let too_long = "p".repeat(app::auth::MAX_PASSWORD_LEN + 1);
    let guesses = (0..20).map(|_| {
        let mut attacker = app.browser_at("127.0.0.2");
        let password = too_long.clone();
        async move { attacker.log_in("nobody", &password).await }
    });
    // Were they hashed, one at a time with no waiting, most would be busy.
    for answer in futures_util::future::join_all(guesses).await {
        assert_eq!(answer, Err(AuthError::WrongCredentials.into()));
    }
}

// --- Client addresses -------------------------------------------------------

#[tokio::test]
async fn a_forwarded_address_counts_only_from_a_trusted_proxy() {
    let forwarded_log_in = |app: &TestApp, client: &str| {
        let body = encode_form(&[("name", "ada"), ("password", "wrong")]);
        app.browser_at("127.0.0.2")
            .request("POST", "/api/auth/log_in")
            .header("x-forwarded-for", client)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };

    // Untrusted: the header is ignored, so a script cannot claim a new
    // address for each guess.
    let app = TestApp::with_config(config_with(&[(Action::LogInPerAddress, "1/min")]).await).await;
    let first = app.send(forwarded_log_in(&app, "198.51.100.1")).await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED);
    let second = app.send(forwarded_log_in(&app, "198.51.100.2")).await;
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS);

    // Behind a trusted proxy, each forwarded client has its own count.
    let mut config = config_with(&[(Action::LogInPerAddress, "1/min")]).await;
    config.trusted_proxies = "127.0.0.2".parse().unwrap();
    let app = TestApp::with_config(config).await;
    for client in ["198.51.100.1", "198.51.100.2"] {
        let response = app.send(forwarded_log_in(&app, client)).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{client}");
    }
    let again = app.send(forwarded_log_in(&app, "198.51.100.1")).await;
    assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn requests_forwarded_by_an_untrusted_proxy_are_warned_of_once() {
    let forwarded = |app: &TestApp| {
        app.browser_at("127.0.0.2")
            .request("GET", "/health")
            .header("x-forwarded-for", "198.51.100.1")
            .body(Body::empty())
            .unwrap()
    };
    let warning = "X-Forwarded-For but TRUSTED_PROXIES is empty";
    let (logs, _capturing) = Logs::capture();
    let app = TestApp::new().await;
    app.send(forwarded(&app)).await;
    app.send(forwarded(&app)).await;
    assert_eq!(logs.text().matches(warning).count(), 1, "{}", logs.text());

    // Behind a trusted proxy, nothing to warn of.
    let (logs, _capturing) = Logs::capture();
    let mut config = test_config(default_session()).await;
    config.trusted_proxies = "127.0.0.2".parse().unwrap();
    let app = TestApp::with_config(config).await;
    app.send(forwarded(&app)).await;
    assert!(!logs.text().contains(warning), "{}", logs.text());
}

#[tokio::test]
async fn visitors_sockets_are_counted_per_ipv6_network() {
    let mut config = test_config(default_session()).await;
    config.trusted_proxies = "127.0.0.1".parse().unwrap();
    config.realtime.max_anonymous_per_address = 2;
    let app = TestApp::with_config(config).await;
    let address = app.listen().await;
    let visitor = |client: &'static str| async move {
        TestClient::connect_to(
            address,
            realtime::protocol::PATH,
            &[("x-forwarded-for", client)],
        )
        .await
    };
    // Two addresses of one /64 are one network: its two sockets...
    let _first = visitor("2001:db8:1:2::1").await.expect("the first socket");
    let _second = visitor("2001:db8:1:2::ffff").await.expect("the second");
    // ...and no third, whichever address of the /64 it comes from.
    assert!(visitor("2001:db8:1:2:abcd::9").await.is_err());
    // Another /64 has sockets of its own.
    let _other = visitor("2001:db8:1:3::1")
        .await
        .expect("another network's socket");
}

// --- Cross-site requests ----------------------------------------------------

#[tokio::test]
async fn changes_from_other_sites_and_sibling_subdomains_are_refused() {
    let app = TestApp::new().await;
    let attempt = |headers: &[(&'static str, &'static str)]| {
        let mut request = app
            .browser_at("127.0.0.2")
            .request("POST", "/api/auth/sign_up")
            .header(header::HOST, "app.example.com")
            // A form with enctype="text/plain", laid out to read as a
            // URL-encoded one.
            .header(header::CONTENT_TYPE, "text/plain");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .body(Body::from("name=mallory&password=correct horse battery"))
            .unwrap()
    };
    for headers in [
        &[("origin", "https://evil.example")][..],
        &[("origin", "https://blog.example.com")],
        // This host, over a scheme it is not served with (plain http here).
        &[("origin", "https://app.example.com")],
        &[("origin", "null")],
        &[("sec-fetch-site", "cross-site")],
        &[
            ("sec-fetch-site", "same-site"),
            ("origin", "https://blog.example.com"),
        ],
    ] {
        let response = app.send(attempt(headers)).await;
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert!(
            matches!(response.json::<AppError>(), AppError::Forbidden(_)),
            "{headers:?}"
        );
    }
    assert_eq!(app.user_count().await, 0);

    // The site's own pages, and clients that are not browsers, go through.
    let own_page = app
        .send(attempt(&[
            ("origin", "https://app.example.com"),
            ("sec-fetch-site", "same-origin"),
        ]))
        .await;
    assert!(own_page.status.is_success(), "{}", own_page.body);
    let mut script = app.browser_at("127.0.0.3");
    assert!(script.sign_up("grace", PASSWORD).await.is_ok());

    // Any method that changes something, on any path: a route a product
    // adds outside the server functions is covered too.
    for (method, path) in [
        ("PUT", "/api/auth/sign_up"),
        ("DELETE", "/records/1"),
        ("POST", "/"),
    ] {
        let request = app
            .browser_at("127.0.0.4")
            .request(method, path)
            .header(header::HOST, "app.example.com")
            .header("origin", "https://evil.example")
            .body(Body::empty())
            .unwrap();
        let response = app.send(request).await;
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{method} {path}");
    }
}

// --- Sockets and sessions ---------------------------------------------------

#[tokio::test]
async fn a_socket_closes_when_its_session_expires() {
    let app = TestApp::new().await;
    let address = app.listen().await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let mut socket = ada.open_socket(address).await;
    let mut visitor = app.browser().open_socket(address).await;

    // Nothing has expired yet: the check closes nothing.
    assert_eq!(app.hub.check_sessions().await, 0);
    app.expire_all_sessions().await;
    assert_eq!(app.hub.check_sessions().await, 1);
    assert_eq!(
        socket.closed().await,
        Some(realtime::protocol::close::SESSION_ENDED)
    );
    // The visitor's socket had no session to expire.
    app.hub.emit(&SomethingHappened::new("still here")).unwrap();
    assert_eq!(
        visitor.event::<SomethingHappened>().await,
        SomethingHappened::new("still here")
    );
}

#[tokio::test]
async fn a_login_in_constant_use_still_ends_at_its_maximum_lifetime() {
    // A stolen cookie kept alive by use: every use writes the session back,
    // which moves its expiry an hour on, but never past the log-in's
    // deadline. The log-in's time is kept in whole seconds (and SQLite
    // compares times as text, a whole second after a fraction of it), so
    // the deadline is 3–5 s after the sign-up.
    let app = app_with_lifetime(Duration::from_secs(4)).await;
    let address = app.listen().await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let mut socket = ada.open_socket(address).await;

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(ada.current_user().await.unwrap().is_some(), "in use");
    assert_eq!(app.hub.check_sessions().await, 0);

    tokio::time::sleep(Duration::from_millis(4200)).await;
    assert_eq!(
        ada.current_user().await,
        Err(AuthError::SessionExpired.into()),
        "past its lifetime"
    );
    assert_eq!(app.hub.check_sessions().await, 1);
    assert_eq!(
        socket.closed().await,
        Some(realtime::protocol::close::SESSION_ENDED)
    );
}

#[tokio::test]
async fn logging_in_again_on_a_live_session_starts_a_new_lifetime() {
    // The session keeps its data when its id is cycled at the log-in: the
    // new log-in's time must replace the old one. A lifetime of 6 s: the
    // first deadline is 5–7 s after the sign-up, the second 8.2–10.2 s.
    let app = app_with_lifetime(Duration::from_secs(6)).await;
    let mut browser = app.browser();
    browser.sign_up("ada", PASSWORD).await.unwrap();
    assert!(browser.current_user().await.unwrap().is_some(), "in use");
    app.browser().sign_up("grace", PASSWORD).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let grace = browser.log_in("grace", PASSWORD).await.unwrap();
    tokio::time::sleep(Duration::from_millis(4300)).await;
    assert_eq!(browser.current_user().await, Ok(Some(grace)));
}

/// The application with logins that last `max_lifetime` at most, and
/// sessions written back at every use.
async fn app_with_lifetime(max_lifetime: Duration) -> TestApp {
    let mut config = test_config(server::config::SessionConfig {
        max_lifetime,
        ..default_session()
    })
    .await;
    config.app.session_touch_every = Duration::ZERO;
    TestApp::with_config(config).await
}

#[tokio::test]
async fn an_upgrade_from_another_site_is_refused_before_its_session_is_read() {
    let app = TestApp::new().await;
    let address = app.listen().await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let cookie = ada.cookie_header();
    // Reading the session now would answer 503: the database is gone.
    app.database.pool.close().await;
    let headers = [
        ("cookie", cookie.as_str()),
        ("origin", "https://elsewhere.example"),
    ];
    let refused = realtime_testing::TestClient::connect(address, &headers).await;
    assert_eq!(refused.err(), Some(StatusCode::FORBIDDEN));
}

#[tokio::test]
async fn a_session_refused_for_reconnecting_too_fast_is_turned_away_before_it_is_read() {
    let mut config = test_config(default_session()).await;
    config.realtime.new_connections_per_minute = 1;
    config.realtime.new_connection_burst = 1;
    let app = TestApp::with_config(config).await;
    let address = app.listen().await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let mut grace = app.browser();
    grace.sign_up("grace", PASSWORD).await.unwrap();
    let cookie = ada.cookie_header();
    let headers = [("cookie", cookie.as_str())];
    let tab = realtime_testing::TestClient::connect(address, &headers).await;
    assert!(tab.is_ok(), "the first connection is within the pace");
    let again = realtime_testing::TestClient::connect(address, &headers).await;
    assert_eq!(again.err(), Some(StatusCode::TOO_MANY_REQUESTS));

    // Read from the database, the session would now be a visitor's, with a
    // budget of its own: the refusal shows that it was not read.
    app.delete_user("ada").await;
    let again = realtime_testing::TestClient::connect(address, &headers).await;
    assert_eq!(again.err(), Some(StatusCode::TOO_MANY_REQUESTS));
    // Other sessions are read as usual.
    grace.open_socket(address).await;
}

// --- Inputs -----------------------------------------------------------------

#[tokio::test]
async fn bad_text_is_refused_with_a_reason_on_every_database() {
    let app = TestApp::new().await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    // @chat-begin
    let room = ada
        .post("/api/chat/create_room", &[("name", "Lobby")])
        .await;
    let room = room.json::<app::chat::RoomSummary>().id.to_string();
    // @chat-end

    for (path, form) in [
        ("/api/events/broadcast", vec![("event[message]", "hi\0")]),
        (
            "/api/events/notify",
            vec![("to", "ada"), ("text", "\u{1b}[2J")],
        ),
        // @chat-begin
        // NUL, which PostgreSQL cannot store.
        (
            "/api/chat/post",
            vec![("room_id", room.as_str()), ("body", "a\0b")],
        ),
        (
            "/api/chat/post",
            vec![("room_id", &room), ("body", "\u{1b}[2J")],
        ),
        // A right-to-left override, which turns what follows around.
        (
            "/api/chat/create_room",
            vec![("name", "evil\u{202E}gnp.exe")],
        ),
        // A zero-width space: "Lobby" again, to the eye.
        ("/api/chat/create_room", vec![("name", "Lob\u{200B}by")]),
        // @chat-end
    ] {
        let response = ada.post(path, &form).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{path} {form:?}");
        assert!(
            matches!(response.json::<AppError>(), AppError::Invalid(message) if message.contains("control characters")),
            "{}",
            response.body
        );
    }
}

// @chat-begin
#[tokio::test]
async fn room_names_are_taken_whatever_their_case_on_every_database() {
    let app = TestApp::new().await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let first = ada.post("/api/chat/create_room", &[("name", "Élan")]).await;
    assert!(first.status.is_success(), "{}", first.body);
    let again = ada.post("/api/chat/create_room", &[("name", "ÉLAN")]).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        again.json::<AppError>(),
        AppError::Invalid("A room with that name already exists.".into())
    );
}

#[tokio::test]
async fn room_lists_come_in_pages() {
    let app = TestApp::with_config(
        config_with(&[
            (Action::CreateRoom, "1000/s"),
            (Action::CreateRoomPerAddress, "1000/s"),
        ])
        .await,
    )
    .await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let total = app::chat::ROOM_PAGE_LEN + 5;
    for n in 0..total {
        let response = ada
            .post("/api/chat/create_room", &[("name", &format!("room {n}"))])
            .await;
        assert!(response.status.is_success(), "{}", response.body);
    }
    let first = ada
        .post("/api/chat/rooms", &[])
        .await
        .json::<app::chat::RoomPage>();
    assert_eq!(first.rooms.len(), app::chat::ROOM_PAGE_LEN);
    assert!(first.more);
    assert_eq!(first.rooms[0].name, format!("room {}", total - 1));
    let oldest_shown = first.rooms.last().unwrap().id.to_string();
    let second = ada
        .post("/api/chat/rooms", &[("before", &oldest_shown)])
        .await
        .json::<app::chat::RoomPage>();
    assert_eq!(second.rooms.len(), 5);
    assert!(!second.more);
    assert_eq!(second.rooms.last().unwrap().name, "room 0");
}
// @chat-end
