//! Which server the fan-out measures: this project's own (its `/ws`
//! protocol, announcements through its server function, by logged-in
//! users), or a socket.io server on socketioxide (`bench/socketio`), the
//! Rust peer an axum user would pick, loaded the same way so the two can
//! be run side by side (`scripts/bench-side-by-side`).

use std::{fmt, path::PathBuf, str::FromStr};

use crate::{
    http::{Connection, HttpError, Response},
    server_functions,
};

/// The server under load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Peer {
    /// This project's own server.
    #[default]
    Ours,
    /// `bench/socketio`: socket.io on socketioxide, broadcasting every
    /// `POST /broadcast` to every client.
    SocketIo,
}

/// `--peer` named no server the load generator knows.
#[derive(Debug, thiserror::Error)]
#[error("unknown peer {0:?}: choose ours or socketio")]
pub struct UnknownPeer(String);

impl FromStr for Peer {
    type Err = UnknownPeer;

    fn from_str(text: &str) -> Result<Self, UnknownPeer> {
        match text {
            "ours" => Ok(Self::Ours),
            "socketio" => Ok(Self::SocketIo),
            other => Err(UnknownPeer(other.to_owned())),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ours => "ours",
            Self::SocketIo => "socketio",
        })
    }
}

impl Peer {
    /// Where its release build is, from the repository's root.
    pub fn default_server(self) -> PathBuf {
        match self {
            Self::Ours => PathBuf::from("target/release/server"),
            Self::SocketIo => PathBuf::from("bench/socketio/target/release/socketio-bench"),
        }
    }

    /// Whether its clients are logged-in users (sign-ups first).
    pub fn has_accounts(self) -> bool {
        self == Self::Ours
    }

    /// The path and query of its WebSocket endpoint.
    pub fn socket_path(self) -> &'static str {
        match self {
            Self::Ours => "/ws",
            // Engine.IO 4 straight over a WebSocket, no long-polling first.
            Self::SocketIo => "/socket.io/?EIO=4&transport=websocket",
        }
    }

    /// What a client sends once its socket is open: socket.io's connect to
    /// the default namespace.
    pub fn hello(self) -> Option<&'static str> {
        match self {
            Self::Ours => None,
            Self::SocketIo => Some("40"),
        }
    }

    /// Whether a frame says the client is connected: this project's
    /// `welcome`, socket.io's answer to the namespace connect.
    pub fn is_ready(self, frame: &str) -> bool {
        match self {
            Self::Ours => frame.contains("\"welcome\""),
            Self::SocketIo => frame.starts_with("40"),
        }
    }

    /// Sends `message` to every client: our announcement
    /// server function, as the user of `cookie`, or socket.io's broadcast.
    pub async fn announce(
        self,
        connection: &mut Connection,
        cookie: Option<&str>,
        message: &str,
    ) -> Result<Response, HttpError> {
        match self {
            // Without a cookie the server refuses it: counted as failed.
            Self::Ours => {
                server_functions::announce(connection, cookie.unwrap_or_default(), message).await
            }
            Self::SocketIo => connection.post_form("/broadcast", message, None).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_peer_is_named_and_read_back() {
        for peer in [Peer::Ours, Peer::SocketIo] {
            assert_eq!(peer.to_string().parse::<Peer>().ok(), Some(peer));
        }
        assert!("socket.io".parse::<Peer>().is_err());
    }

    #[test]
    fn a_client_is_ready_on_its_peers_word() {
        assert!(Peer::Ours.is_ready(r#"{"type":"welcome","connection":"00"}"#));
        assert!(Peer::SocketIo.is_ready(r#"40{"sid":"abc"}"#));
        // Engine.IO's own open packet comes first: not yet.
        assert!(!Peer::SocketIo.is_ready(r#"0{"sid":"abc"}"#));
    }
}
