//! Just enough HTTP/1.1 to call server functions: posts over a keep-alive
//! connection, with a cookie. (A full HTTP client would be a large build for
//! three kinds of request.) The server's multi-process tests use it too.

use std::net::{IpAddr, SocketAddr};

use thiserror::Error;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpSocket, TcpStream},
};

/// A TCP connection to `address` from the local address `from`.
pub async fn connect_from(from: IpAddr, address: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match from {
        IpAddr::V4(_) => {
            let socket = TcpSocket::new_v4()?;
            choose_port_at_connect(&socket)?;
            socket
        }
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(address).await
}

/// Asks the kernel to pick (IPv4) the local port at `connect`, where it needs to be
/// unique only for this pair of addresses, rather than at `bind`, where it
/// takes a port from every other connection. An attacker opening a thousand
/// connections a second leaves each port in `TIME_WAIT` for a minute, and
/// would otherwise use up the ephemeral ports of the whole machine, the
/// ordinary clients' included.
#[cfg(target_os = "linux")]
fn choose_port_at_connect(socket: &TcpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: the descriptor is an open socket owned by `socket`, and the
    // option's value is a `c_int` of the size given.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn choose_port_at_connect(_socket: &TcpSocket) -> std::io::Result<()> {
    Ok(())
}

#[derive(Debug, Error)]
pub enum HttpError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("unexpected response: {0}")]
    Protocol(String),
    #[error("the server closed the connection")]
    Closed,
}

/// A response, read completely.
pub struct Response {
    pub status: u16,
    /// The `name=value` part of the first `Set-Cookie`, if any.
    pub cookie: Option<String>,
    pub body: Vec<u8>,
}

/// One keep-alive connection. One the server closed while it was idle
/// (its header timeout) is opened again, and the request sent again.
pub struct Connection {
    address: SocketAddr,
    /// The local address it connects from, if chosen.
    from: Option<IpAddr>,
    stream: BufReader<TcpStream>,
}

impl Connection {
    pub async fn open(address: SocketAddr) -> Result<Self, HttpError> {
        Self::on(TcpStream::connect(address).await?, address, None)
    }

    /// Opens a connection from the local address `from` (any of
    /// 127.0.0.0/8 reaches a server on loopback): hostile traffic comes from
    /// addresses of its own.
    pub async fn open_from(from: IpAddr, address: SocketAddr) -> Result<Self, HttpError> {
        Self::on(connect_from(from, address).await?, address, Some(from))
    }

    fn on(stream: TcpStream, address: SocketAddr, from: Option<IpAddr>) -> Result<Self, HttpError> {
        stream.set_nodelay(true)?;
        Ok(Self {
            address,
            from,
            stream: BufReader::new(stream),
        })
    }

    /// Sends `request` and reads its response; on a connection the server
    /// closed meanwhile, once more on a new one.
    async fn exchange(&mut self, request: &[u8]) -> Result<Response, HttpError> {
        match self.send_and_read(request).await {
            Err(HttpError::Closed) => {
                let stream = match self.from {
                    Some(from) => connect_from(from, self.address).await?,
                    None => TcpStream::connect(self.address).await?,
                };
                *self = Self::on(stream, self.address, self.from)?;
                self.send_and_read(request).await
            }
            answered => answered,
        }
    }

    async fn send_and_read(&mut self, request: &[u8]) -> Result<Response, HttpError> {
        let written = self.stream.get_mut().write_all(request).await;
        match written {
            Err(error) if is_closed(&error) => return Err(HttpError::Closed),
            written => written?,
        }
        self.read_response().await
    }

    /// Posts an `application/x-www-form-urlencoded` body.
    pub async fn post_form(
        &mut self,
        path: &str,
        body: &str,
        cookie: Option<&str>,
    ) -> Result<Response, HttpError> {
        self.post(path, "application/x-www-form-urlencoded", body, cookie, &[])
            .await
    }

    /// Posts a body of any type, with extra headers.
    pub async fn post(
        &mut self,
        path: &str,
        content_type: &str,
        body: &str,
        cookie: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Response, HttpError> {
        let mut extra: String = headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}\r\n"))
            .collect();
        if let Some(cookie) = cookie {
            extra.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\n\
             Accept: application/json\r\nContent-Length: {}\r\n{extra}\r\n{body}",
            self.address,
            body.len()
        );
        self.exchange(request.as_bytes()).await
    }

    /// Gets a path.
    pub async fn get(&mut self, path: &str) -> Result<Response, HttpError> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.address);
        self.exchange(request.as_bytes()).await
    }

    async fn read_response(&mut self) -> Result<Response, HttpError> {
        let mut line = String::new();
        match self.stream.read_line(&mut line).await {
            Ok(0) => return Err(HttpError::Closed),
            Err(error) if is_closed(&error) => return Err(HttpError::Closed),
            read => read?,
        };
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|status| status.parse().ok())
            .ok_or_else(|| HttpError::Protocol(format!("status line {line:?}")))?;
        let mut length = None;
        let mut cookie = None;
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(HttpError::Protocol(
                    "connection closed in the headers".into(),
                ));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("set-cookie") && cookie.is_none() {
                cookie = value.split(';').next().map(str::to_owned);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(HttpError::Protocol(format!(
                    "unsupported transfer encoding {value}"
                )));
            }
        }
        let mut body = vec![0; length.unwrap_or(0)];
        self.stream.read_exact(&mut body).await?;
        Ok(Response {
            status,
            cookie,
            body,
        })
    }
}

/// Whether an I/O error says the server had closed the connection.
fn is_closed(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
    )
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                char::from(byte).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use tokio::{io::AsyncWriteExt, net::TcpListener};

    use super::*;

    #[tokio::test]
    async fn a_connection_the_server_closed_while_idle_is_opened_again() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        // A server that answers one request per connection, then closes it.
        tokio::spawn(async move {
            for n in 0..2 {
                let (stream, _) = listener.accept().await.unwrap();
                let mut stream = BufReader::new(stream);
                let mut line = String::new();
                while stream.read_line(&mut line).await.unwrap() > 2 {
                    line.clear();
                }
                let body = format!("answer {n}");
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                stream.get_mut().write_all(answer.as_bytes()).await.unwrap();
            }
        });
        let mut connection = Connection::open(address).await.unwrap();
        for n in 0..2 {
            let response = connection.get("/").await.unwrap();
            assert_eq!(response.body, format!("answer {n}").into_bytes());
        }
    }
}
