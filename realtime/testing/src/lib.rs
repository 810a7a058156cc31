//! A WebSocket client that speaks the `realtime` protocol, for an
//! application's integration tests: connect to a running server as a
//! browser tab would, read typed events (the next frame must be the one
//! expected), join rooms, and wait for the server to close.
//!
//! A crate of its own, used only as a dev-dependency, so a production
//! server never compiles it.
//!
//! ```ignore
//! let mut tab = TestClient::connect(address, &[("cookie", &cookie)]).await.unwrap();
//! hub.to(tab.user.unwrap()).emit(&Note { text: "hi".into() })?;
//! assert_eq!(tab.event::<Note>().await.text, "hi");
//! ```
//!
//! ## Where things live
//!
//! - **Who may join a room**: the server's join rules decide;
//!   [`TestClient::join`] returns the `joined` or `refused` answer.
//! - **What happens to a slow tab**: the server closes it with 4008;
//!   [`TestClient::closed`] returns the close code.
//! - **How an emit reaches another process**: through the server's
//!   backplane, invisible here: a client on either process reads the same
//!   frames.
//! - **Where the wire format is**: `realtime::protocol`, described in
//!   `docs/protocol.md`.

pub mod faults;

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use realtime::{
    ConnectionId, Event, Position, Stream, UserId,
    protocol::{self, ClientFrame, ServerFrame},
    stream::Recorded,
};
use tokio::net::{TcpSocket, TcpStream};
/// The WebSocket library under [`TestClient::ws`], for tests that send
/// raw frames.
pub use tokio_tungstenite::tungstenite;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message,
        client::IntoClientRequest,
        http::{HeaderName, HeaderValue, StatusCode},
    },
};

/// How long the client waits for something that should happen.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// One connection, as a browser tab would hold it.
pub struct TestClient {
    pub ws: WebSocketStream<TcpStream>,
    /// From the `welcome` frame.
    pub connection: ConnectionId,
    /// From the `welcome` frame.
    pub user: Option<UserId>,
    /// From the `welcome` frame: where everyone's stream and the user's
    /// stood after the replay (empty when the server records nothing).
    pub positions: BTreeMap<Stream, Position>,
}

impl TestClient {
    /// Connects to the server at `address` (path [`protocol::PATH`]) with
    /// extra request headers (a `Cookie`, an `Origin`), and reads the
    /// welcome frame. A refused upgrade gives its HTTP status.
    pub async fn connect(
        address: SocketAddr,
        headers: &[(&str, &str)],
    ) -> Result<Self, StatusCode> {
        Self::connect_to(address, protocol::PATH, headers).await
    }

    /// Like [`TestClient::connect`], at any path and query.
    ///
    /// # Panics
    ///
    /// When the server cannot be reached or does not answer as a WebSocket
    /// server: that is a broken test set-up.
    pub async fn connect_to(
        address: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Self, StatusCode> {
        let stream = TcpStream::connect(address)
            .await
            .expect("the server is listening");
        Self::handshake(stream, address, path, headers).await
    }

    /// Like [`TestClient::connect_to`], from the local address `from` (any
    /// of 127.0.0.0/8 on loopback): tests send hostile traffic from
    /// addresses of its own, so limits per address leave the others alone.
    pub async fn connect_from(
        from: IpAddr,
        address: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Self, StatusCode> {
        let socket = TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind(SocketAddr::new(from, 0))
            .expect("a loopback address to connect from");
        let stream = socket
            .connect(address)
            .await
            .expect("the server is listening");
        Self::handshake(stream, address, path, headers).await
    }

    /// Opens the WebSocket on `stream`, and reads the welcome frame.
    ///
    /// # Panics
    ///
    /// When the server does not answer as a WebSocket server, or closes
    /// before its welcome: that is a broken test set-up.
    async fn handshake(
        stream: TcpStream,
        address: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Self, StatusCode> {
        let mut client = Self {
            ws: upgrade(stream, address, path, headers).await?,
            connection: ConnectionId(0),
            user: None,
            positions: BTreeMap::new(),
        };
        match client.frame().await {
            ServerFrame::Welcome {
                connection,
                user,
                positions,
            } => {
                client.connection = connection;
                client.user = user;
                client.positions = positions;
                Ok(client)
            }
            other => panic!("expected a welcome frame, got {other:?}"),
        }
    }

    /// Opens a WebSocket that the server accepts, then closes before its
    /// welcome (the connection was refused after the upgrade): the close
    /// code, if any.
    ///
    /// # Panics
    ///
    /// When the upgrade is refused, or a frame arrives instead of the close.
    pub async fn closed_on_arrival(
        address: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Option<u16> {
        let stream = TcpStream::connect(address)
            .await
            .expect("the server is listening");
        let mut ws = upgrade(stream, address, path, headers)
            .await
            .unwrap_or_else(|status| panic!("the upgrade was refused with {status}"));
        let message = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("the server answers in time");
        match message {
            Some(Ok(Message::Close(frame))) => frame.map(|frame| frame.code.into()),
            Some(Err(_)) | None => None,
            Some(Ok(other)) => panic!("expected a close, got {other:?}"),
        }
    }

    /// The next text frame; pings are skipped.
    ///
    /// # Panics
    ///
    /// When none arrives within [`PATIENCE`], or the connection closes.
    pub async fn frame(&mut self) -> ServerFrame {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("a frame arrives in time")
                .expect("the connection is open")
                .expect("the frame can be read");
            match message {
                Message::Text(text) => return ServerFrame::parse(&text).expect("a valid frame"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame, which must be an event of type `E`.
    pub async fn event<E: Event>(&mut self) -> E {
        self.recorded_event().await.0
    }

    /// The next frame, which must be an event of type `E`, and where it
    /// was recorded (`None` for a volatile event).
    pub async fn recorded_event<E: Event>(&mut self) -> (E, Option<Recorded>) {
        match self.frame().await {
            ServerFrame::Event {
                name,
                data,
                recorded,
            } => {
                assert_eq!(name, E::NAME, "another event arrived first: {}", data.get());
                let event =
                    serde_json::from_str(data.get()).expect("the data fits the event's type");
                (event, recorded)
            }
            other => panic!("expected event {}, got {other:?}", E::NAME),
        }
    }

    pub async fn send(&mut self, frame: &ClientFrame) {
        let json = serde_json::to_string(frame).expect("frames encode");
        self.send_text(&json).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text))
            .await
            .expect("the frame is sent");
    }

    /// Asks to join a room and returns the answer (`joined` or `refused`).
    pub async fn join(&mut self, room: &str) -> ServerFrame {
        self.send(&ClientFrame::Join {
            room: room.into(),
            since: None,
        })
        .await;
        self.frame().await
    }

    /// Asks to join a room, recovering what followed `since` in it; returns
    /// every frame up to and including the answer (`joined` or `refused`).
    pub async fn join_since(&mut self, room: &str, since: Position) -> Vec<ServerFrame> {
        self.send(&ClientFrame::Join {
            room: room.into(),
            since: Some(since),
        })
        .await;
        let mut frames = Vec::new();
        loop {
            let frame = self.frame().await;
            let answer = matches!(
                frame,
                ServerFrame::Joined { .. } | ServerFrame::Refused { .. }
            );
            frames.push(frame);
            if answer {
                return frames;
            }
        }
    }

    /// Waits for the server to close the connection; its close code, if it
    /// sent one. Frames before the close are skipped.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("the connection closes in time");
            match message {
                Some(Ok(Message::Close(frame))) => return frame.map(|frame| frame.code.into()),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }
}

/// The WebSocket handshake on `stream`; a refused upgrade gives its status.
async fn upgrade(
    stream: TcpStream,
    address: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<WebSocketStream<TcpStream>, StatusCode> {
    let mut request = format!("ws://{address}{path}")
        .into_client_request()
        .expect("a valid WebSocket URL");
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
        let value = HeaderValue::from_str(value).expect("a valid header value");
        request.headers_mut().insert(name, value);
    }
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(response)) => Err(response.status()),
        Err(error) => panic!("the WebSocket handshake failed: {error}"),
    }
}
