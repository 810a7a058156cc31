//! Accepting TCP connections and serving HTTP/1.1 on them, as `axum::serve`
//! does, with the timeouts it leaves out (it gives hyper no timer, so
//! hyper's own never run), so that a script cannot hold connections (and
//! their file descriptors and buffers) for as long as it likes:
//!
//! - A client has [`HttpLimits::header_read_timeout`] to send a request's
//!   headers, the first on a connection and each next one on a kept-alive
//!   connection: one that sends nothing, or trickles its headers a byte at
//!   a time, is closed. (A body that trickles in is `body_limit`'s.)
//! - A write the client leaves unread for [`HttpLimits::write_stall_timeout`]
//!   fails, and the connection closes: a client that asks for the site's
//!   bundle and never reads it is let go ([`Stalling`]). A WebSocket's own
//!   writes are bounded sooner, by the hub's write timeout.
//!
//! Everything else is as `axum::serve` has it: WebSocket upgrades,
//! `TCP_NODELAY` (the WebSocket writer batches frames itself; Nagle's
//! algorithm would only hold the last small write back), each request's
//! peer address as `ConnectInfo` (`client_addr`), and a graceful shutdown
//! that lets requests in flight finish, within [`HttpLimits::shutdown_grace`].

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, extract::ConnectInfo};
use hyper::{
    Request,
    body::Incoming,
    rt::{Read, ReadBufCursor, Write},
    server::conn::http1,
};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    net::TcpListener,
    sync::watch,
    time::{Sleep, sleep},
};
use tower::ServiceExt;

/// How long accepting waits after an error that is not one connection's
/// (no file descriptors left, say), rather than spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// How long a shutdown waits for the requests in flight, by default.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The timeouts connections are served with.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long a write may wait for the client to read before it fails.
    pub write_stall_timeout: Duration,
    /// How long a shutdown waits for the requests in flight: a handler
    /// that never answers does not keep the process from stopping.
    pub shutdown_grace: Duration,
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
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tokio::select! {
                    () = pause_after(&error) => continue,
                    () = &mut shutdown => break,
                }
            }
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
            .serve_connection(
                Stalling::new(TokioIo::new(tcp), limits.write_stall_timeout),
                TowerToHyperService::new(service),
            )
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
    let grace = limits.shutdown_grace;
    if tokio::time::timeout(grace, finished.closed())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {grace:?}: stopping anyway");
    }
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

/// A connection whose writes must make progress: one the client leaves
/// unread for `limit` fails with `TimedOut`. The timer is made only when
/// a write has to wait (most never do), and dropped once one goes through.
struct Stalling<T> {
    io: T,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> Stalling<T> {
    fn new(io: T, limit: Duration) -> Self {
        Self {
            io,
            limit,
            stalled: None,
        }
    }

    /// What a step of writing gave: waiting, it fails once no write went
    /// through for the limit. `wrote`: whether a ready step wrote bytes
    /// (a flush is always ready, and proves nothing).
    fn bound<R>(
        &mut self,
        context: &mut Context<'_>,
        step: Poll<io::Result<R>>,
        wrote: impl Fn(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        if let Poll::Ready(done) = &step {
            if done.as_ref().is_ok_and(&wrote) {
                self.stalled = None;
            }
            return step;
        }
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(sleep(self.limit)));
        match stalled.as_mut().poll(context) {
            Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: Read + Unpin> Read for Stalling<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(context, buf)
    }
}

impl<T: Write + Unpin> Write for Stalling<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let step = Pin::new(&mut self.io).poll_write(context, buf);
        self.bound(context, step, |written| *written > 0)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let step = Pin::new(&mut self.io).poll_write_vectored(context, bufs);
        self.bound(context, step, |written| *written > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let step = Pin::new(&mut self.io).poll_flush(context);
        self.bound(context, step, |()| false)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let step = Pin::new(&mut self.io).poll_shutdown(context);
        self.bound(context, step, |()| false)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, DuplexStream, duplex};

    use super::*;

    const LIMIT: Duration = Duration::from_secs(30);

    /// Writes `bytes` as hyper does (a write, then a flush, again and
    /// again), through a [`Stalling`] connection whose client end is the
    /// other half of `ours`.
    async fn write_all(ours: DuplexStream, mut bytes: usize) -> io::Result<()> {
        let mut io = Stalling::new(TokioIo::new(ours), LIMIT);
        std::future::poll_fn(|context| {
            while bytes > 0 {
                let step = Pin::new(&mut io).poll_write(context, &[0; 64][..bytes.min(64)]);
                let flushed = Pin::new(&mut io).poll_flush(context);
                match (step, flushed) {
                    (Poll::Ready(Ok(written)), _) => bytes -= written,
                    (Poll::Ready(Err(error)), _) | (_, Poll::Ready(Err(error))) => {
                        return Poll::Ready(Err(error));
                    }
                    (Poll::Pending, _) => return Poll::Pending,
                }
            }
            Poll::Ready(Ok(()))
        })
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_its_client_leaves_unread_fails_after_the_limit() {
        let (ours, _theirs) = duplex(64);
        let started = tokio::time::Instant::now();
        let written = tokio::time::timeout(2 * LIMIT, write_all(ours, 1024))
            .await
            .expect("ended before twice the limit");
        assert_eq!(written.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), LIMIT);
    }

    /// Serves `router` on a port of its own until `stop` is sent.
    async fn started(
        router: Router,
        shutdown_grace: Duration,
    ) -> (
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let address = listener.local_addr().expect("its address");
        let limits = HttpLimits {
            header_read_timeout: LIMIT,
            write_stall_timeout: LIMIT,
            shutdown_grace,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(serve(listener, router, limits, async move {
            let _ = stopped.await;
        }));
        (address, stop, serving)
    }

    /// Sends a request to `path` and waits until the server has it.
    async fn ask(address: std::net::SocketAddr, path: &str) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let mut client = tokio::net::TcpStream::connect(address)
            .await
            .expect("connected");
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        client
            .write_all(request.as_bytes())
            .await
            .expect("request sent");
        client
    }

    #[tokio::test]
    async fn a_shutdown_lets_a_request_in_flight_finish_but_waits_for_a_stuck_one_no_longer_than_its_grace()
     {
        use axum::routing::get;
        use std::time::Instant;

        let (arrived, mut arrivals) = tokio::sync::mpsc::unbounded_channel::<()>();
        let router = Router::new()
            .route(
                "/quick",
                get({
                    let arrived = arrived.clone();
                    move || async move {
                        let _ = arrived.send(());
                        sleep(Duration::from_millis(300)).await;
                        "done"
                    }
                }),
            )
            .route(
                "/stuck",
                get(move || async move {
                    let _ = arrived.send(());
                    std::future::pending::<()>().await
                }),
            );
        let grace = Duration::from_secs(1);

        // A request that finishes within the grace gets its answer.
        let (address, stop, serving) = started(router.clone(), grace).await;
        let mut quick = ask(address, "/quick").await;
        arrivals.recv().await.expect("the request arrived");
        stop.send(()).expect("still serving");
        let mut answer = String::new();
        quick
            .read_to_string(&mut answer)
            .await
            .expect("the answer, then the end");
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"),
            "{answer}"
        );
        serving.await.expect("served");

        // One that never finishes holds the shutdown for the grace only.
        let (address, stop, serving) = started(router, grace).await;
        let _stuck = ask(address, "/stuck").await;
        arrivals.recv().await.expect("the request arrived");
        let stopping = Instant::now();
        stop.send(()).expect("still serving");
        tokio::time::timeout(grace * 10, serving)
            .await
            .expect("the shutdown ended")
            .expect("served");
        assert!(stopping.elapsed() >= grace, "it waited for the request");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_reads_slowly_but_steadily_is_never_cut_off() {
        let (ours, mut theirs) = duplex(64);
        tokio::spawn(async move {
            let mut chunk = [0; 64];
            while theirs.read(&mut chunk).await.is_ok_and(|read| read > 0) {
                tokio::time::sleep(LIMIT * 2 / 3).await;
            }
        });
        assert!(write_all(ours, 640).await.is_ok());
    }
}
