//! A real server around a [`Hub`], and WebSocket clients that speak the
//! protocol, for the integration tests.
//!
//! The test server takes the connection's identity from the query string
//! (`/ws?user=7&session=abc`): these tests are about the hub; the session
//! cookie is the server crate's business, tested there.

#![allow(dead_code)] // Each test binary uses a different part.

pub mod redis_probe;

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use axum::http::StatusCode;
use axum::{
    Router,
    extract::{ConnectInfo, Query, State, WebSocketUpgrade},
    http::HeaderMap,
    response::Response,
    routing::get,
};
use realtime::{
    Event, UserId,
    protocol::Resume,
    server::{Hub, HubBuilder, Identity, SessionKey, Target},
};
pub use realtime_testing::{PATIENCE, TestClient};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// An event for tests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub text: String,
}

impl Event for Note {
    const NAME: &'static str = "Note";
}

pub fn note(text: &str) -> Note {
    Note { text: text.into() }
}

/// A second event type, sent to everyone after the events under test: a
/// client whose next event is the marker did not get anything before it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker(pub u32);

impl Event for Marker {
    const NAME: &'static str = "Marker";
}

/// A kind of room for tests: any non-empty key. Each test decides who may
/// join with its own rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Team(pub String);

impl realtime::Room for Team {
    const KIND: &'static str = "team";
    fn key(&self) -> String {
        self.0.clone()
    }
    fn from_key(key: &str) -> Option<Self> {
        (!key.is_empty()).then(|| Self(key.to_owned()))
    }
}

pub struct TestServer {
    pub hub: Hub,
    pub address: SocketAddr,
}

impl TestServer {
    pub async fn start(builder: HubBuilder) -> Self {
        let hub = builder.build();
        let router = Router::new()
            .route("/ws", get(socket))
            .with_state(hub.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = router.into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { hub, address }
    }

    /// A visitor's connection.
    pub async fn anonymous(&self) -> TestClient {
        self.connect("").await
    }

    /// A connection of `user`, in session `session`.
    pub async fn user(&self, user: i64, session: &str) -> TestClient {
        self.connect(&format!("user={user}&session={session}"))
            .await
    }

    pub async fn connect(&self, query: &str) -> TestClient {
        self.try_connect(query, &[])
            .await
            .expect("the upgrade succeeds")
    }

    /// Connects with extra request headers; on a refused upgrade, its status.
    pub async fn try_connect(
        &self,
        query: &str,
        headers: &[(&str, &str)],
    ) -> Result<TestClient, StatusCode> {
        TestClient::connect_to(self.address, &format!("/ws?{query}"), headers).await
    }

    /// Connects from the loopback address `from` (127.0.0.2 and up for
    /// hostile clients, so that limits per address leave the others
    /// alone); on a refused upgrade, its status.
    pub async fn connect_from(&self, from: &str, query: &str) -> Result<TestClient, StatusCode> {
        let from = from.parse().expect("an IP address");
        TestClient::connect_from(from, self.address, &format!("/ws?{query}"), &[]).await
    }

    /// Sends a marker to each client, then checks that each one's next
    /// event is that marker: nothing else reached them in between.
    pub async fn assert_nothing_more(&self, clients: &mut [&mut TestClient]) {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let marker = Marker(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let target = clients.iter().fold(Target::nobody(), |target, client| {
            target.and(Target::connection(client.connection))
        });
        self.hub.target(target).emit(&marker).unwrap();
        for client in clients {
            assert_eq!(
                client.event::<Marker>().await,
                marker,
                "an unexpected event arrived first"
            );
        }
    }

    /// Waits until the registry is empty (connections close asynchronously).
    pub async fn wait_until_empty(&self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.hub.stats() != Default::default() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "still registered: {:?}",
                self.hub.stats()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn socket(
    upgrade: WebSocketUpgrade,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<HashMap<String, String>>,
    resume: Resume,
    headers: HeaderMap,
    State(hub): State<Hub>,
) -> Response {
    let identity = Identity {
        user: query
            .get("user")
            .and_then(|user| user.parse().ok())
            .map(UserId),
        session: query
            .get("session")
            .map(|session| SessionKey::from(session.as_str())),
        name: query.get("name").cloned(),
        address: Some(peer.ip()),
    };
    hub.accept(upgrade, &headers, identity, resume)
}
