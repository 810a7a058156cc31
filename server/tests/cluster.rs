//! Several server processes acting as one: two real `server` processes on
//! different ports, sharing one PostgreSQL database and one Redis server,
//! with WebSocket clients on each; and what happens when Redis or the
//! database is not there.
//!
//! These tests need PostgreSQL and Redis, so they are ignored by a plain
//! `cargo test`. `scripts/test` runs them (it starts both services when they
//! are installed, and says so when they are not). By hand:
//!
//! ```sh
//! TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//! TEST_REDIS_URL=redis://127.0.0.1:6379 \
//!     cargo test -p server --test cluster -- --ignored
//! ```
//!
//! Each test uses a database of its own and a Redis channel of its own
//! (`REDIS_CHANNEL`), so tests do not hear each other. The fault tests
//! start a private `redis-server` on a free port, so the machine's Redis is
//! never stopped.

mod support;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

// @chat-begin
use app::chat::{ChatRoom, MessagePosted, RoomSummary};
// @chat-end
use app::{
    auth::User,
    dev::{Ping, PingTarget},
    events::Notification,
    topics::Topic,
};
use loadgen::http;
use realtime::{
    ConnectionId, Event, Position, Presence, Room, Stream, UserId,
    protocol::{ClientFrame, Resume, ServerFrame, close},
    stream::TabId,
};
use realtime_testing::{
    TestClient,
    faults::{CuttableProxy, PrivateRedis, free_port},
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const NEEDS_SERVICES: &str = "needs PostgreSQL and Redis: scripts/test runs it";
const PASSWORD: &str = "correct horse battery";
/// How long a process may take to start, or a condition to come true.
const PATIENCE: Duration = Duration::from_secs(30);

// --- The processes ----------------------------------------------------------

/// The services named by the environment; a clear failure when missing.
fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| panic!("TEST_REDIS_URL is not set ({NEEDS_SERVICES})"))
}

async fn postgres_database() -> String {
    assert!(
        std::env::var(support::POSTGRES_URL_VARIABLE).is_ok_and(|url| !url.is_empty()),
        "{} is not set ({NEEDS_SERVICES})",
        support::POSTGRES_URL_VARIABLE
    );
    support::fresh_database_url().await
}

/// A Redis channel no other test uses.
fn fresh_channel() -> String {
    format!("realtime.test.{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

/// One `server` process, killed when dropped.
struct Node {
    child: Child,
    address: SocketAddr,
    /// Where its metrics and its detailed `/health` are served.
    metrics: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Node {
    /// Starts a server process and waits until it answers `/health`.
    async fn start(database_url: &str, redis_url: &str, channel: &str) -> Self {
        let node = Self::spawn(database_url, Some((redis_url, channel)));
        node.wait_for_health(|_| true).await;
        node
    }

    fn spawn(database_url: &str, redis: Option<(&str, &str)>) -> Self {
        let address: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
        command
            .env("LEPTOS_SITE_ADDR", address.to_string())
            .env("METRICS_ADDR", metrics.to_string())
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "info,tower_http=warn")
            .env_remove("REDIS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some((url, channel)) = redis {
            command.env("REDIS_URL", url).env("REDIS_CHANNEL", channel);
        }
        let mut child = command.spawn().expect("the server binary starts");
        let log = Arc::new(Mutex::new(String::new()));
        for output in [
            child
                .stdout
                .take()
                .map(|out| Box::new(out) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|err| Box::new(err) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(output).lines().map_while(Result::ok) {
                    if let Ok(mut log) = log.lock() {
                        log.push_str(&line);
                        log.push('\n');
                    }
                }
            });
        }
        Self {
            child,
            address,
            metrics,
            log,
        }
    }

    fn log(&self) -> String {
        self.log.lock().map(|log| log.clone()).unwrap_or_default()
    }

    /// The detailed health report, from the metrics listener.
    async fn health(&self) -> Option<Value> {
        let mut connection = http::Connection::open(self.metrics).await.ok()?;
        let response = connection.get("/health").await.ok()?;
        serde_json::from_slice(&response.body).ok()
    }

    /// Waits until `/health` answers and `condition` holds for its body.
    async fn wait_for_health(&self, condition: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(health) = self.health().await
                && condition(&health)
            {
                return health;
            }
            assert!(
                Instant::now() < deadline,
                "the server at {} did not get there in time; its log:\n{}",
                self.address,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until this process hears from `peers` others through Redis.
    async fn wait_for_peers(&self, peers: u64) {
        self.wait_for_health(|health| {
            health["events"]["backplane"] == "connected" && health["events"]["peers"] == peers
        })
        .await;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two processes on one database and one Redis channel, each knowing the
/// other.
async fn two_nodes() -> (Node, Node) {
    two_nodes_on(&redis_url()).await
}

/// Two processes on one database and a channel of their own on the Redis
/// at `redis`, each knowing the other.
async fn two_nodes_on(redis: &str) -> (Node, Node) {
    let database = postgres_database().await;
    let channel = fresh_channel();
    let a = Node::start(&database, redis, &channel).await;
    let b = Node::start(&database, redis, &channel).await;
    a.wait_for_peers(1).await;
    b.wait_for_peers(1).await;
    (a, b)
}

// --- Browsers ---------------------------------------------------------------

/// A browser: a cookie, and calls to any process.
#[derive(Default)]
struct Browser {
    cookie: Option<String>,
}

impl Browser {
    async fn post<T: DeserializeOwned>(
        &mut self,
        node: &Node,
        path: &str,
        content_type: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> T {
        let mut connection = http::Connection::open(node.address)
            .await
            .expect("the server accepts connections");
        let response = connection
            .post(path, content_type, body, self.cookie.as_deref(), headers)
            .await
            .expect("the server answers");
        if let Some(cookie) = response.cookie {
            self.cookie = Some(cookie);
        }
        assert_eq!(
            response.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&response.body)
        );
        serde_json::from_slice(&response.body).expect("a JSON answer")
    }

    async fn form<T: DeserializeOwned>(
        &mut self,
        node: &Node,
        path: &str,
        form: &[(&str, &str)],
    ) -> T {
        let body: Vec<String> = form
            .iter()
            .map(|(name, value)| format!("{name}={}", http::form_encode(value)))
            .collect();
        self.post(
            node,
            path,
            "application/x-www-form-urlencoded",
            &body.join("&"),
            &[],
        )
        .await
    }

    async fn sign_up(node: &Node, name: &str) -> (Self, UserId) {
        let mut browser = Self::default();
        let user: User = browser
            .form(
                node,
                "/api/auth/sign_up",
                &[("name", name), ("password", PASSWORD)],
            )
            .await;
        (browser, user.id)
    }

    // @chat-begin
    async fn create_room(&mut self, node: &Node, name: &str) -> i64 {
        let room: RoomSummary = self
            .form(node, "/api/chat/create_room", &[("name", name)])
            .await;
        room.id
    }
    // @chat-end

    async fn log_out(&mut self, node: &Node) {
        let () = self.form(node, "/api/auth/log_out", &[]).await;
    }

    /// Sends a ping through `node`, as the tab whose connection is `caller`.
    /// Pings `to` through `node`, as a call from `caller`'s tab (its id
    /// and connection, as the browser runtime names them), if any.
    async fn ping(
        &mut self,
        node: &Node,
        to: PingTarget,
        text: &str,
        caller: Option<(TabId, ConnectionId)>,
    ) {
        let body = json!({ "to": to, "text": text }).to_string();
        let caller = caller.map(|(tab, connection)| (tab.to_string(), connection.to_string()));
        let headers: Vec<(&str, &str)> = caller
            .iter()
            .flat_map(|(tab, connection)| {
                [
                    (realtime::protocol::TAB_HEADER, tab.as_str()),
                    (realtime::protocol::CONNECTION_HEADER, connection.as_str()),
                ]
            })
            .collect();
        let _queued: usize = self
            .post(node, "/api/dev/ping", "application/json", &body, &headers)
            .await;
    }

    async fn open_socket(&self, node: &Node) -> TestClient {
        self.open_socket_at(node, realtime::protocol::PATH).await
    }

    /// Opens a socket as tab `tab`, as the browser runtime does.
    async fn open_tab(&self, node: &Node, tab: TabId) -> TestClient {
        let query = Resume {
            tab: Some(tab),
            since: Vec::new(),
        }
        .to_query();
        let path = format!("{}?{query}", realtime::protocol::PATH);
        self.open_socket_at(node, &path).await
    }

    async fn open_socket_at(&self, node: &Node, path: &str) -> TestClient {
        let cookie = self.cookie.clone().unwrap_or_default();
        let headers: Vec<(&str, &str)> = if cookie.is_empty() {
            Vec::new()
        } else {
            vec![("cookie", cookie.as_str())]
        };
        TestClient::connect_to(node.address, path, &headers)
            .await
            .expect("the upgrade succeeds")
    }

    /// Opens a socket that resumes the user's stream from `since`, as a
    /// tab that comes back does.
    async fn open_socket_since(&self, node: &Node, stream: Stream, since: Position) -> TestClient {
        let cookie = self.cookie.clone().unwrap_or_default();
        let query = Resume {
            tab: None,
            since: vec![(stream, since)],
        }
        .to_query();
        let path = format!("{}?{query}", realtime::protocol::PATH);
        TestClient::connect_to(node.address, &path, &[("cookie", cookie.as_str())])
            .await
            .expect("the upgrade succeeds")
    }

    /// Notifies the user called `to`, through `node`.
    async fn notify(&mut self, node: &Node, to: &str, text: &str) {
        let () = self
            .form(node, "/api/events/notify", &[("to", to), ("text", text)])
            .await;
    }
}

/// The next notification and where it sits in its user's stream (other
/// events are skipped; a discontinuity fails the test).
async fn next_notification(socket: &mut TestClient) -> (String, Position) {
    loop {
        let frame = socket.frame().await;
        if let ServerFrame::Event {
            name,
            data,
            recorded,
        } = &frame
            && name == Notification::NAME
        {
            let notification: Notification =
                serde_json::from_str(data.get()).expect("a notification");
            let recorded = recorded
                .as_ref()
                .expect("a notification carries its position");
            return (notification.text, recorded.position);
        }
        if let ServerFrame::Discontinuity { .. } = frame {
            panic!("a discontinuity where a notification was expected");
        }
    }
}

/// The next event of type `E` on a socket; other events (presence updates,
/// which arrive whenever someone on any process comes or goes, or a new
/// room) are skipped, and so are discontinuities (after
/// Redis comes back, streams written or read without it start again).
async fn next_event<E: Event + DeserializeOwned>(socket: &mut TestClient) -> E {
    loop {
        match socket.frame().await {
            ServerFrame::Event { name, data, .. } if name == E::NAME => {
                return serde_json::from_str(data.get()).expect("the event's data");
            }
            ServerFrame::Event { .. } | ServerFrame::Discontinuity { .. } => continue,
            other => panic!("expected event {}, got {other:?}", E::NAME),
        }
    }
}

async fn next_ping(socket: &mut TestClient) -> String {
    next_event::<Ping>(socket).await.text
}

/// The names in the room, from the next presence update.
async fn next_presence(socket: &mut TestClient) -> Vec<String> {
    let presence: Presence = next_event(socket).await;
    presence.members.into_iter().map(|m| m.name).collect()
}

/// Reads presence updates until one lists exactly `names`.
async fn presence_becomes(socket: &mut TestClient, names: &[&str]) {
    loop {
        if next_presence(socket).await == names {
            return;
        }
    }
}

/// Joins a room (events arriving meanwhile are skipped).
async fn join(socket: &mut TestClient, room: &impl Room) {
    let name = room.name();
    socket
        .send(&ClientFrame::Join {
            room: name.clone(),
            since: None,
        })
        .await;
    loop {
        match socket.frame().await {
            ServerFrame::Joined { .. } => return,
            ServerFrame::Event { .. } => continue,
            other => panic!("expected to join {name}, got {other:?}"),
        }
    }
}

// --- Every target, across processes -----------------------------------------

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis: scripts/test runs it"]
async fn every_target_reaches_its_connections_on_every_process() {
    let (a, b) = two_nodes().await;
    // Ada has a tab on each process, Bob one on B, and a visitor one on A.
    let (mut ada, ada_id) = Browser::sign_up(&a, "ada").await;
    let (mut bob, bob_id) = Browser::sign_up(&b, "bob").await;
    let (ada_tab, bob_tab) = (TabId(0x0a), TabId(0x0b));
    let mut ada_a = ada.open_tab(&a, ada_tab).await;
    let mut ada_b = ada.open_socket(&b).await;
    let mut bob_b = bob.open_tab(&b, bob_tab).await;
    let mut visitor_a = Browser::default().open_socket(&a).await;
    let ops = Topic("ops".into());
    join(&mut ada_a, &ops).await;
    join(&mut bob_b, &ops).await;

    // Each ping goes out, then a "marker" to everyone: a socket's next ping
    // is the first if it was a recipient, the marker if it was not.
    let (ada_caller, bob_caller) = (
        Some((ada_tab, ada_a.connection)),
        Some((bob_tab, bob_b.connection)),
    );
    type Case = (
        &'static str,
        PingTarget,
        Option<(TabId, ConnectionId)>,
        [bool; 4],
    );
    let cases = |caller: Option<(TabId, ConnectionId)>, left_out: usize| -> Vec<Case> {
        let mut everyone_but = [true; 4];
        everyone_but[left_out] = false;
        vec![
            ("everyone", PingTarget::Everyone, None, [true; 4]),
            (
                "one user",
                PingTarget::Users(vec![ada_id]),
                None,
                [true, true, false, false],
            ),
            (
                "several users",
                PingTarget::Users(vec![ada_id, bob_id]),
                None,
                [true, true, true, false],
            ),
            (
                "a room",
                PingTarget::Topics(vec![ops.0.clone()]),
                None,
                [true, false, true, false],
            ),
            (
                "one connection elsewhere",
                PingTarget::Connection(bob_b.connection),
                None,
                [false, false, true, false],
            ),
            (
                "everyone but the caller",
                PingTarget::EveryoneButMe,
                caller,
                everyone_but,
            ),
        ]
    };
    // Ada's calls leave out her tab on A, Bob's his on B, whichever process
    // a call lands on; Bob naming Ada's tab as his leaves out nobody.
    let forged = vec![(
        "everyone but a tab of another session",
        PingTarget::EveryoneButMe,
        ada_caller,
        [true; 4],
    )];
    let runs = [
        (0, cases(ada_caller, 0)),
        (1, cases(bob_caller, 2)),
        (1, forged),
    ];
    for (sender, cases) in runs {
        for node in [&a, &b] {
            for (what, target, caller, recipients) in &cases {
                let browser = if sender == 0 { &mut ada } else { &mut bob };
                browser.ping(node, target.clone(), what, *caller).await;
                browser
                    .ping(node, PingTarget::Everyone, "marker", None)
                    .await;
                let sockets = [&mut ada_a, &mut ada_b, &mut bob_b, &mut visitor_a];
                for (index, (socket, expected)) in sockets.into_iter().zip(recipients).enumerate() {
                    let first = next_ping(socket).await;
                    if *expected {
                        assert_eq!(
                            first, *what,
                            "socket {index}, sent through {}",
                            node.address
                        );
                        assert_eq!(next_ping(socket).await, "marker");
                    } else {
                        assert_eq!(
                            first, "marker",
                            "socket {index} got {what:?} through {}",
                            node.address
                        );
                    }
                }
            }
        }
    }
}

// @chat-begin
#[tokio::test]
#[ignore = "needs PostgreSQL and Redis: scripts/test runs it"]
async fn a_chat_message_reaches_the_room_on_the_other_process_once() {
    let (a, b) = two_nodes().await;
    let (mut ada, _) = Browser::sign_up(&a, "ada").await;
    let (bob, _) = Browser::sign_up(&b, "bob").await;
    let room = ada.create_room(&a, "General").await;
    let mut ada_a = ada.open_socket(&a).await;
    let mut bob_b = bob.open_socket(&b).await;
    join(&mut ada_a, &ChatRoom(room)).await;
    join(&mut bob_b, &ChatRoom(room)).await;

    let caller = ada_a.connection.to_string();
    let body = format!("room_id={room}&body=hello+from+A");
    let _: app::chat::Message = ada
        .post(
            &a,
            "/api/chat/post",
            "application/x-www-form-urlencoded",
            &body,
            &[(realtime::protocol::CONNECTION_HEADER, caller.as_str())],
        )
        .await;
    let posted: MessagePosted = next_event(&mut bob_b).await;
    assert_eq!(posted.0.body, "hello from A");
    // The sender's tab got nothing (it shows its own message itself).
    ada.ping(&a, PingTarget::Everyone, "marker", None).await;
    assert_eq!(next_ping(&mut ada_a).await, "marker");
}

// @chat-end

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis: scripts/test runs it"]
async fn logging_out_closes_the_sessions_sockets_on_every_process() {
    let (a, b) = two_nodes().await;
    let (mut ada, ada_id) = Browser::sign_up(&a, "ada").await;
    let mut tab_a = ada.open_socket(&a).await;
    let mut tab_b = ada.open_socket(&b).await;
    assert_eq!((tab_a.user, tab_b.user), (Some(ada_id), Some(ada_id)));

    ada.log_out(&b).await;
    assert_eq!(tab_a.closed().await, Some(close::SESSION_ENDED));
    assert_eq!(tab_b.closed().await, Some(close::SESSION_ENDED));
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis: scripts/test runs it"]
async fn presence_counts_users_across_processes() {
    let (a, b) = two_nodes().await;
    let (ada, _) = Browser::sign_up(&a, "ada").await;
    let (mut bob, _) = Browser::sign_up(&b, "bob").await;
    let lobby = Topic("lobby".into());

    let mut ada_a = ada.open_socket(&a).await;
    join(&mut ada_a, &lobby).await;
    presence_becomes(&mut ada_a, &["ada"]).await;

    let mut bob_b = bob.open_socket(&b).await;
    join(&mut bob_b, &lobby).await;
    presence_becomes(&mut bob_b, &["ada", "bob"]).await;
    presence_becomes(&mut ada_a, &["ada", "bob"]).await;

    // A second tab of Ada's, on the other process, changes nothing; Ada
    // leaves when her last tab does.
    let mut ada_b = ada.open_socket(&b).await;
    join(&mut ada_b, &lobby).await;
    presence_becomes(&mut ada_b, &["ada", "bob"]).await;
    drop(ada_a);
    // Whatever updates Bob gets until the ping, Ada is in every one of them.
    bob.ping(
        &b,
        PingTarget::Topics(vec![lobby.0.clone()]),
        "still here",
        None,
    )
    .await;
    loop {
        match bob_b.frame().await {
            ServerFrame::Event { name, data, .. } if name == Presence::NAME => {
                let presence: Presence = serde_json::from_str(data.get()).expect("presence");
                let names: Vec<String> = presence.members.into_iter().map(|m| m.name).collect();
                assert_eq!(names, ["ada", "bob"], "Ada still has a tab in the room");
            }
            ServerFrame::Event { name, .. } if name == Ping::NAME => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    drop(ada_b);
    presence_becomes(&mut bob_b, &["bob"]).await;
}

// --- Faults -----------------------------------------------------------------

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis: scripts/test runs it"]
async fn without_redis_a_process_starts_serves_its_own_and_connects_later() {
    let database = postgres_database().await;
    let mut redis = PrivateRedis::start();
    redis.stop();
    let channel = fresh_channel();

    let a = Node::spawn(&database, Some((&redis.url(), &channel)));
    let health = a.wait_for_health(|health| health["status"] == "ok").await;
    assert_eq!(health["events"]["backplane"], "disconnected");
    assert!(
        a.log().contains("Redis is unreachable"),
        "a clear warning; the log:\n{}",
        a.log()
    );
    // Local delivery works meanwhile.
    let (mut ada, _) = Browser::sign_up(&a, "ada").await;
    let mut tab = ada.open_socket(&a).await;
    ada.ping(&a, PingTarget::Everyone, "local", None).await;
    assert_eq!(next_ping(&mut tab).await, "local");

    // Redis arrives: the process connects by itself, and a second process
    // hears it.
    redis.restart();
    let b = Node::start(&database, &redis.url(), &channel).await;
    a.wait_for_peers(1).await;
    b.wait_for_peers(1).await;
    let (mut bob, _) = Browser::sign_up(&b, "bob").await;
    bob.ping(&b, PingTarget::Everyone, "from B", None).await;
    assert_eq!(next_ping(&mut tab).await, "from B");
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis: scripts/test runs it"]
async fn a_tab_of_a_killed_process_recovers_everything_on_the_other() {
    let (a, b) = two_nodes().await;
    let (mut ada, _) = Browser::sign_up(&b, "ada").await;
    let (bob, bob_id) = Browser::sign_up(&a, "bob").await;
    let mut bob_a = bob.open_socket(&a).await;
    ada.notify(&b, "bob", "one").await;
    let (_, seen) = next_notification(&mut bob_a).await;

    // A dies at once: no goodbye, no close frame.
    drop(a);
    ada.notify(&b, "bob", "two").await;
    ada.notify(&b, "bob", "three").await;

    // Bob's tab comes back on B and asks for what followed "one".
    let mut bob_b = bob.open_socket_since(&b, Stream::User(bob_id), seen).await;
    assert_eq!(next_notification(&mut bob_b).await.0, "two");
    assert_eq!(next_notification(&mut bob_b).await.0, "three");
    ada.notify(&b, "bob", "four").await;
    assert_eq!(next_notification(&mut bob_b).await.0, "four");
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis: scripts/test runs it"]
async fn after_a_redis_restart_tabs_that_missed_events_are_told_and_a_tab_away_recovers() {
    let mut redis = PrivateRedis::start();
    let (a, b) = two_nodes_on(&redis.url()).await;
    let (mut ada, _) = Browser::sign_up(&a, "ada").await;
    let (bob, bob_id) = Browser::sign_up(&b, "bob").await;
    let mut bob_b = bob.open_socket(&b).await;
    ada.notify(&a, "bob", "before").await;
    assert_eq!(next_notification(&mut bob_b).await.0, "before");

    redis.stop();
    a.wait_for_health(|health| health["events"]["backplane"] == "disconnected")
        .await;
    // Kept by A alone: B's tab cannot have it.
    ada.notify(&a, "bob", "during").await;

    redis.restart();
    a.wait_for_peers(1).await;
    b.wait_for_peers(1).await;
    // B's tab is told that it may have missed notifications (the page
    // then fetches what it shows again) ...
    let stream = Stream::User(bob_id);
    loop {
        match bob_b.frame().await {
            ServerFrame::Discontinuity { stream: gap, .. } if gap == stream => break,
            ServerFrame::Event { name, .. } if name == Notification::NAME => {
                panic!("a notification arrived before the discontinuity")
            }
            _ => continue,
        }
    }
    // ... and from there on gets every notification, whichever process
    // sends it (another discontinuity may come first: each process that
    // set the stream right says so) ...
    ada.notify(&a, "bob", "after").await;
    let after = loop {
        match bob_b.frame().await {
            ServerFrame::Event {
                name,
                data,
                recorded: Some(recorded),
            } if name == Notification::NAME => {
                let notification: Notification =
                    serde_json::from_str(data.get()).expect("a notification");
                assert_eq!(notification.text, "after");
                break recorded.position;
            }
            _ => continue,
        }
    };
    // ... and a tab that was away since just before it recovers it from
    // Redis, on either process.
    let before_after = Position {
        offset: after.offset - 1,
        ..after
    };
    let mut away = bob.open_socket_since(&a, stream, before_after).await;
    assert_eq!(next_notification(&mut away).await.0, "after");
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis: scripts/test runs it"]
async fn losing_redis_keeps_local_delivery_and_resumes_when_it_returns() {
    let mut redis = PrivateRedis::start();
    let (a, b) = two_nodes_on(&redis.url()).await;
    let (mut ada, _) = Browser::sign_up(&a, "ada").await;
    let (mut bob, _) = Browser::sign_up(&b, "bob").await;
    let mut ada_a = ada.open_socket(&a).await;
    let mut bob_b = bob.open_socket(&b).await;
    let (mut carol, _) = Browser::sign_up(&a, "carol").await;
    let mut carol_a = carol.open_socket(&a).await;

    redis.stop();
    a.wait_for_health(|health| health["events"]["backplane"] == "disconnected")
        .await;
    // Each process still serves its own.
    ada.ping(&a, PingTarget::Everyone, "during the gap", None)
        .await;
    assert_eq!(next_ping(&mut ada_a).await, "during the gap");
    bob.ping(&b, PingTarget::Everyone, "B alone", None).await;
    assert_eq!(next_ping(&mut bob_b).await, "B alone");
    // Carol logs out through B while B cannot tell A: her tab on A must
    // still be closed, as soon as Redis is back.
    carol.log_out(&b).await;

    redis.restart();
    a.wait_for_peers(1).await;
    b.wait_for_peers(1).await;
    assert_eq!(carol_a.closed().await, Some(close::SESSION_ENDED));
    ada.ping(&a, PingTarget::Everyone, "after", None).await;
    assert_eq!(next_ping(&mut bob_b).await, "after");
    assert_eq!(next_ping(&mut ada_a).await, "after");
    let log = a.log();
    assert!(log.contains("lost Redis"), "the loss is logged:\n{log}");
    assert!(
        log.contains("reconnected to Redis") && log.contains("missed_emits=1"),
        "the gap is logged, with what it missed:\n{log}"
    );
}

#[tokio::test]
async fn an_unreachable_database_at_start_is_a_clear_error_and_a_failed_exit() {
    let port = free_port(); // Nothing listens there.
    let mut node = Node::spawn(&format!("postgres://app:secret@127.0.0.1:{port}/app"), None);
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = node
            .child
            .try_wait()
            .expect("the process can be waited for")
        {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not give up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success());
    // The reader threads may still be copying the last lines.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = node.log();
    assert!(log.contains("could not open the database"), "{log}");
    assert!(
        !log.contains("secret"),
        "the password stays out of the log:\n{log}"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis: scripts/test runs it"]
async fn losing_the_database_gives_clear_errors_and_it_recovers_by_itself() {
    let database = postgres_database().await;
    let (upstream, name) = {
        let rest = database.split_once('@').expect("a user in the URL").1;
        let (host, name) = rest.split_once('/').expect("a database name");
        let upstream: SocketAddr = host.parse().expect("host:port");
        (upstream, name.to_owned())
    };
    let proxy = CuttableProxy::start(upstream).await;
    let through_proxy = format!("postgres://postgres@127.0.0.1:{}/{name}", proxy.port);
    let mut node = Node::spawn(&through_proxy, None);
    node.wait_for_health(|health| health["status"] == "ok")
        .await;
    let (mut ada, _) = Browser::sign_up(&node, "ada").await;

    proxy.cut();
    let health = node
        .wait_for_health(|health| health["status"] == "unavailable")
        .await;
    assert_eq!(health["reason"], "database unreachable");
    let mut connection = http::Connection::open(node.address).await.unwrap();
    let response = connection
        .post_form("/api/auth/me", "", ada.cookie.as_deref())
        .await
        .unwrap();
    assert_eq!(
        response.status,
        503,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    let error: app::error::AppError = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(error, app::error::AppError::Unavailable);
    assert!(
        error.to_string().contains("database is not answering"),
        "a message for the person at the keyboard: {error}"
    );

    proxy.restore();
    node.wait_for_health(|health| health["status"] == "ok")
        .await;
    let me: Option<User> = ada.form(&node, "/api/auth/me", &[]).await;
    assert_eq!(me.map(|user| user.name), Some("ada".to_owned()));
    assert!(node.child.try_wait().unwrap().is_none(), "nothing crashed");
}
