//! Accepting TCP connections and serving HTTP/1.1 on them, as `axum::serve`
//! does, with the timeout it leaves out (it gives hyper no timer, so
//! hyper's own never run): a client has
//! [`HttpLimits::header_read_timeout`] to send a request's headers, the
//! first on a connection and each next one on a kept-alive connection. A
//! script that opens connections and sends nothing, or trickles its
//! headers a byte at a time, holds each (and its file descriptor) that
//! long at most, instead of for ever. (A body that trickles in is
//! `body_limit`'s.)
//!
//! Everything else is as `axum::serve` has it: WebSocket upgrades,
//! `TCP_NODELAY` (the WebSocket writer batches frames itself; Nagle's
//! algorithm would only hold the last small write back), each request's
//! peer address as `ConnectInfo` (`client_addr`), and a graceful shutdown
//! that lets requests in flight finish.

use std::{future::Future, io, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper::{Request, body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::watch};
use tower::ServiceExt;

/// How long accepting waits after an error that is not one connection's
/// (no file descriptors left, say), rather than spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// The timeouts connections are served with.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
}

/// Serves `router` on the connections `listener` accepts until `shutdown`
/// completes; then accepts no more, asks every connection to finish the
/// request in flight, and waits for them. (Upgraded connections, the
/// WebSockets, are the hub's to close.)
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    // Told to finish (`send`); every connection's task holds a receiver of
    // `finished`, so its `closed` resolves once they all ended.
    let (finish, told) = watch::channel(());
    let (finished, running) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    pause_after(&error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let service = router
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection = builder
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service))
            .with_upgrades();
        let (mut told, running) = (told.clone(), running.clone());
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = told.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = ended {
                tracing::trace!(%peer, %error, "a connection ended with an error");
            }
            drop(running);
        });
    }
    drop((listener, running));
    let _ = finish.send(());
    finished.closed().await;
}

/// After an accept error: one connection's (it went before it was
/// accepted) is nothing; any other (no file descriptors left) is logged,
/// and accepting pauses rather than spin.
async fn pause_after(error: &io::Error) {
    let one_connection = matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    );
    if !one_connection {
        tracing::error!(%error, "could not accept a connection");
        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
    }
}
