//! Opening a WebSocket client on the server's `/ws` as a browser tab does:
//! with its session cookie (none for a visitor) and, in the upgrade's
//! query, what it resumes from; and the frames the clients send on it.

use std::net::{IpAddr, SocketAddr};

use thiserror::Error;
use tokio::net::TcpStream;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self,
        client::IntoClientRequest,
        handshake::client::Request,
        http::{HeaderValue, header::InvalidHeaderValue},
    },
};

use crate::http::connect_from;

/// One open client socket.
pub type WebSocket = WebSocketStream<TcpStream>;

#[derive(Debug, Error)]
pub enum SocketError {
    #[error(transparent)]
    Connect(#[from] std::io::Error),
    #[error(transparent)]
    Cookie(#[from] InvalidHeaderValue),
    /// The upgrade failed, or the server refused it.
    #[error(transparent)]
    Upgrade(#[from] tungstenite::Error),
}

impl SocketError {
    /// The status of an upgrade the server answered but refused (429 past
    /// a limit, say): what an attacker counts.
    pub fn refused_status(&self) -> Option<u16> {
        match self {
            Self::Upgrade(tungstenite::Error::Http(response)) => Some(response.status().as_u16()),
            _ => None,
        }
    }
}

/// Opens a WebSocket to `address` as the user of `cookie`, or anonymous,
/// with `query` in the upgrade (empty for none).
pub async fn open_socket(
    address: SocketAddr,
    cookie: Option<&str>,
    query: &str,
) -> Result<WebSocket, SocketError> {
    let request = upgrade_request(address, cookie, query)?;
    let stream = TcpStream::connect(address).await?;
    // A client's few frames (a join) go out at once rather than wait for
    // an acknowledgement to travel with.
    stream.set_nodelay(true)?;
    handshake(request, stream).await
}

/// Opens a WebSocket to `path` (with its query) on `address`, without a
/// cookie: another server's endpoint (`crate::peer`).
pub async fn open_socket_at(address: SocketAddr, path: &str) -> Result<WebSocket, SocketError> {
    let request = format!("ws://{address}{path}").into_client_request()?;
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    handshake(request, stream).await
}

/// Opens a WebSocket from the local address `from` (any of 127.0.0.0/8
/// reaches a server on loopback): an attacker's traffic comes from an
/// address of its own. Its writes keep the kernel's batching (Nagle), as
/// they had when the attacks were measured.
pub async fn open_socket_from(
    from: IpAddr,
    address: SocketAddr,
    cookie: Option<&str>,
) -> Result<WebSocket, SocketError> {
    let request = upgrade_request(address, cookie, "")?;
    let stream = connect_from(from, address).await?;
    handshake(request, stream).await
}

/// The frame that joins `room` (its wire name).
pub fn join_frame(room: &str) -> String {
    format!(r#"{{"type":"join","room":"{room}"}}"#)
}

/// The frame that leaves `room` (its wire name).
pub fn leave_frame(room: &str) -> String {
    format!(r#"{{"type":"leave","room":"{room}"}}"#)
}

fn upgrade_request(
    address: SocketAddr,
    cookie: Option<&str>,
    query: &str,
) -> Result<Request, SocketError> {
    let url = if query.is_empty() {
        format!("ws://{address}/ws")
    } else {
        format!("ws://{address}/ws?{query}")
    };
    let mut request = url.into_client_request()?;
    if let Some(cookie) = cookie {
        request
            .headers_mut()
            .insert("cookie", HeaderValue::from_str(cookie)?);
    }
    Ok(request)
}

async fn handshake(request: Request, stream: TcpStream) -> Result<WebSocket, SocketError> {
    let (socket, _) = tokio_tungstenite::client_async(request, stream).await?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upgrade_carries_the_cookie_and_the_query() -> Result<(), SocketError> {
        let address = SocketAddr::from(([127, 0, 0, 1], 3000));
        let request = upgrade_request(address, Some("id=abc"), "tab=00ff")?;
        assert_eq!(request.uri(), "ws://127.0.0.1:3000/ws?tab=00ff");
        assert_eq!(request.headers()["cookie"], "id=abc");
        let anonymous = upgrade_request(address, None, "")?;
        assert_eq!(anonymous.uri(), "ws://127.0.0.1:3000/ws");
        assert!(anonymous.headers().get("cookie").is_none());
        Ok(())
    }
}
