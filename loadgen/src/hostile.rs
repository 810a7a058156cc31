//! The attacks of `loadgen --hostile`, each from a loopback address of its
//! own (127.0.0.2 and up), so that limits per address meet the attacker and
//! not the ordinary clients at 127.0.0.1. Each attack counts the answers it
//! got, to set beside the ones `docs/protocol.md` and the README document.

use std::{
    collections::BTreeMap,
    fmt,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Instant,
};

use futures_util::{SinkExt, StreamExt};
use tokio::{sync::Mutex, task::JoinSet};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    http::{Connection, HttpError},
    server_functions::{announce, log_in},
    socket::{SocketError, WebSocket, join_frame, leave_frame, open_socket_from},
};

/// How many times each answer came back.
#[derive(Clone, Debug, Default)]
pub struct Tally(BTreeMap<String, u64>);

impl Tally {
    pub fn add(&mut self, answer: impl Into<String>) {
        *self.0.entry(answer.into()).or_default() += 1;
    }

    pub fn merge(&mut self, other: Tally) {
        for (answer, count) in other.0 {
            *self.0.entry(answer).or_default() += count;
        }
    }

    pub fn count(&self, answer: &str) -> u64 {
        self.0.get(answer).copied().unwrap_or(0)
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let answers: Vec<String> = self
            .0
            .iter()
            .map(|(answer, count)| format!("{count} × {answer}"))
            .collect();
        f.write_str(&answers.join(", "))
    }
}

/// `sockets` connections of one user (its `cookie`), each sending `join`
/// and `leave` for `room` (its wire name) as fast as it can until the server closes it,
/// then opening again, until `until`. Counts what the server answered:
/// the frames of the ordinary protocol, `error` frames, and close codes.
pub async fn flood_joins(
    from: IpAddr,
    address: SocketAddr,
    cookie: String,
    room: Arc<str>,
    sockets: usize,
    until: Instant,
) -> Tally {
    let mut floods = JoinSet::new();
    for _ in 0..sockets {
        let cookie = cookie.clone();
        let room = Arc::clone(&room);
        floods.spawn(async move {
            let mut tally = Tally::default();
            while Instant::now() < until {
                match open_socket_from(from, address, Some(&cookie)).await {
                    Ok(socket) => tally.merge(flood_one(socket, &room, until).await),
                    Err(refused) => tally.add(format!("upgrade {}", upgrade_answer(&refused))),
                }
            }
            tally
        });
    }
    let mut tally = Tally::default();
    while let Some(flood) = floods.join_next().await {
        tally.merge(flood.unwrap_or_default());
    }
    tally
}

/// One flooding socket: joins and leaves `room` until `until` or until the
/// server closes it.
async fn flood_one(socket: WebSocket, room: &str, until: Instant) -> Tally {
    let (mut sink, mut stream) = socket.split();
    let (join, leave) = (join_frame(room), leave_frame(room));
    let writer = tokio::spawn(async move {
        while Instant::now() < until {
            for frame in [&join, &leave] {
                if sink.send(Message::text(frame.as_str())).await.is_err() {
                    return;
                }
            }
        }
        let _ = sink.close().await;
    });
    let mut tally = Tally::default();
    while let Some(message) = stream.next().await {
        match message {
            Ok(Message::Text(text)) => tally.add(frame_kind(&text)),
            Ok(Message::Close(frame)) => {
                let code = frame.map_or("none".into(), |frame| u16::from(frame.code).to_string());
                tally.add(format!("close {code}"));
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    writer.abort();
    tally
}

/// What kind of server frame `text` is: its type, and an error's code.
fn frame_kind(text: &str) -> String {
    let kind = serde_json::from_str::<serde_json::Value>(text).ok();
    let field = |name: &str| {
        kind.as_ref()
            .and_then(|frame| frame.get(name)?.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    match field("type").as_str() {
        "error" => format!("error {}", field("code")),
        "event" => format!("event {}", field("name")),
        other => other.to_owned(),
    }
}

/// Oversized announcements from a logged-in user (its `cookie`) until
/// `until`: a 64 KiB one and a 600-character one, over and over. Counts the
/// statuses of each.
pub async fn oversized_announcements(
    from: IpAddr,
    address: SocketAddr,
    cookie: String,
    until: Instant,
) -> Tally {
    let cases = [
        ("64 KiB", "x".repeat(64 * 1024)),
        ("600 characters", "x".repeat(600)),
    ];
    let mut tally = Tally::default();
    while Instant::now() < until {
        for (label, message) in &cases {
            // A new connection each time: a refused body closes it.
            let answer = match Connection::open_from(from, address).await {
                Ok(mut connection) => announce(&mut connection, &cookie, message)
                    .await
                    .map(|response| response.status.to_string()),
                Err(error) => Err(error),
            };
            tally.add(format!("{label}: {}", status_or_error(answer)));
        }
    }
    tally
}

/// `count` log-ins to `name` with wrong passwords, all at once. Counts the
/// statuses.
pub async fn wrong_passwords(from: IpAddr, address: SocketAddr, name: &str, count: usize) -> Tally {
    let mut guesses = JoinSet::new();
    for guess in 0..count {
        let name = name.to_owned();
        guesses.spawn(async move {
            let mut connection = Connection::open_from(from, address).await?;
            log_in(&mut connection, &name, &format!("guess number {guess}"))
                .await
                .map(|response| response.status.to_string())
        });
    }
    let mut tally = Tally::default();
    while let Some(answer) = guesses.join_next().await {
        tally.add(status_or_error(answer.unwrap_or_else(|error| {
            Err(HttpError::Protocol(error.to_string()))
        })));
    }
    tally
}

/// `count` anonymous WebSockets from one address, opened a few at a time
/// and left idle. Returns the answers and the sockets that were accepted
/// (keep them to keep them open).
pub async fn idle_anonymous(
    from: IpAddr,
    address: SocketAddr,
    count: usize,
) -> (Tally, Vec<WebSocket>) {
    let opened = Arc::new(Mutex::new((Tally::default(), Vec::new())));
    let limit = Arc::new(tokio::sync::Semaphore::new(64));
    let mut opening = JoinSet::new();
    for _ in 0..count {
        let (opened, limit) = (Arc::clone(&opened), Arc::clone(&limit));
        opening.spawn(async move {
            let _turn = limit.acquire_owned().await;
            let socket = open_socket_from(from, address, None).await;
            let mut opened = opened.lock().await;
            match socket {
                Ok(socket) => {
                    opened.0.add("101 (accepted)");
                    opened.1.push(socket);
                }
                Err(refused) => opened.0.add(upgrade_answer(&refused)),
            }
        });
    }
    while opening.join_next().await.is_some() {}
    let mut opened = opened.lock().await;
    (std::mem::take(&mut opened.0), std::mem::take(&mut opened.1))
}

/// What a failed upgrade tells an attacker: the status the server refused
/// it with, or why there was none.
fn upgrade_answer(error: &SocketError) -> String {
    error
        .refused_status()
        .map_or_else(|| error.to_string(), |status| status.to_string())
}

fn status_or_error(answer: Result<String, HttpError>) -> String {
    answer.unwrap_or_else(|error| format!("no answer ({error})"))
}
