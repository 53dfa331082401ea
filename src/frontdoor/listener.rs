//! Own accept loop: TCP → (TLS) → hyper (HTTP/1.1 and HTTP/2 by ALPN) → axum, with the connection's
//! facts attached to each request, connection limits and timeouts (see `connections`), and
//! graceful shutdown bounded by a grace period.

use super::ConnectionInfo;
use super::connections::{Activity, Closed, Connections, Expired, InFlight, Permit, Timeouts};
use crate::request::ListenerKind;
use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

type Builder = auto::Builder<TokioExecutor>;

/// Serves `router` on `listener` until `shutdown` becomes true, then stops accepting and lets
/// in-flight requests finish for at most `grace`. `connections` admits each connection (limits
/// shared with the node's other listeners and threads) and says how long one may stay silent.
pub async fn serve(
    listener: TcpListener,
    kind: ListenerKind,
    tls: Option<TlsAcceptor>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
    connections: Arc<Connections>,
) {
    let builder = Arc::new(http_builder(&connections.timeouts));
    // Every connection task holds a receiver: the sender sees them all gone when draining ends.
    let (alive, _) = watch::channel(());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, remote) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Over a limit: closed here, before any TLS work.
                let permit = match connections.admit(remote.ip(), Instant::now()) {
                    Ok(p) => p,
                    Err(refused) => {
                        refused.log(remote.ip(), kind);
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let conn = Conn {
                    remote,
                    kind,
                    permit,
                    connections: connections.clone(),
                    _alive: alive.subscribe(),
                };
                let stop = shutdown.clone();
                tokio::spawn(conn.run(tcp, tls.clone(), router.clone(), builder.clone(), stop));
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    tracing::info!(listener = ?kind, connections = alive.receiver_count(), "stopped accepting; draining");
    tokio::select! {
        _ = alive.closed() => tracing::info!(listener = ?kind, "all connections closed"),
        _ = tokio::time::sleep(grace) => tracing::warn!(listener = ?kind, "grace period over; closing remaining connections"),
    }
}

fn http_builder(t: &Timeouts) -> Builder {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Off on purpose: the connection's watchdog bounds the wait for a request head (and
        // everything hyper's header timer leaves out; see `connections`).
        .header_read_timeout(None)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        // RFC 9113 §6.7: a PING not acknowledged in time means the peer is gone.
        .keep_alive_interval(t.http2_keep_alive_interval)
        .keep_alive_timeout(t.http2_keep_alive_timeout);
    builder
}

/// One admitted connection: its place in the count is given back when this is dropped.
struct Conn {
    remote: SocketAddr,
    kind: ListenerKind,
    permit: Permit,
    connections: Arc<Connections>,
    _alive: watch::Receiver<()>,
}

impl Conn {
    /// Serves the connection until it ends, expires, or `stop` turns true (then gracefully).
    async fn run(
        self,
        tcp: TcpStream,
        tls: Option<TlsAcceptor>,
        router: Router,
        builder: Arc<Builder>,
        mut stop: watch::Receiver<bool>,
    ) {
        let remote = self.remote;
        let timeouts = self.connections.timeouts;
        let activity = self.permit.activity.clone();
        let (io, peer_certificates) = match tls {
            Some(acceptor) => {
                // Pinned here, not inside `select!`, so the socket outlives the bookkeeping below.
                let handshake = tokio::time::timeout(timeouts.first_byte, acceptor.accept(tcp));
                tokio::pin!(handshake);
                let done = tokio::select! {
                    done = &mut handshake => done,
                    _ = activity.displaced() => return self.closed(Closed::Displaced),
                    _ = stop.wait_for(|stop| *stop) => return,
                };
                match done {
                    Ok(Ok(stream)) => {
                        let certs = stream.get_ref().1.peer_certificates().map(|c| {
                            Arc::new(c.iter().map(|d| d.clone().into_owned()).collect::<Vec<_>>())
                        });
                        (Io::Tls(Box::new(stream)), certs)
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%remote, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return self.closed(Closed::HandshakeTimeout),
                }
            }
            None => (Io::Plain(tcp), None),
        };
        let ready = Instant::now();
        activity.handshake_done(ready);
        let info = ConnectionInfo {
            remote,
            listener: self.kind,
            peer_certificates,
        };
        let requests = activity.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(info.clone());
            let in_flight = requests.request_started();
            let response = router.clone().oneshot(req.map(Body::new));
            async move {
                let response = response.await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| TrackedBody {
                    body,
                    _in_flight: in_flight,
                }))
            }
        });
        let io = Tracked {
            io,
            first_byte: Some(activity.clone()),
        };
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(conn);
        let expired = tokio::select! {
            ended = conn.as_mut() => return log_end(remote, ended),
            expired = activity.watch(&timeouts, ready) => Some(expired),
            _ = stop.wait_for(|stop| *stop) => None,
        };
        match expired {
            // Nothing was said, or nothing is in flight: close at once.
            Some(Expired::FirstByte) => return self.closed(Closed::FirstByteTimeout),
            Some(Expired::Displaced) => return self.closed(Closed::Displaced),
            Some(Expired::Idle) => self.connections.record_closed(Closed::IdleTimeout),
            None => {}
        }
        // Idle, or the server is stopping: HTTP/1.1 closes (after the request in flight, if
        // any), HTTP/2 sends GOAWAY (RFC 9113 §6.8) and closes when its streams are done.
        conn.as_mut().graceful_shutdown();
        if expired.is_none() {
            // Stopping: the listener's grace period bounds the wait.
            return log_end(remote, conn.await);
        }
        // Idle: a peer that does not take its leave (e.g. never acknowledges the PING that
        // follows HTTP/2's first GOAWAY) gets as long as it got to say hello.
        tokio::select! {
            ended = conn.as_mut() => log_end(remote, ended),
            _ = tokio::time::sleep(timeouts.first_byte) => {}
            _ = activity.displaced() => {}
        }
    }

    fn closed(&self, why: Closed) {
        tracing::debug!(remote = %self.remote, reason = ?why, "connection closed by the server");
        self.connections.record_closed(why);
    }
}

fn log_end(remote: SocketAddr, ended: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(e) = ended {
        tracing::debug!(%remote, error = %e, "connection ended with an error");
    }
}

/// A response body that keeps its request counted as in flight until hyper has sent it all
/// (or dropped it when the peer went away).
struct TrackedBody {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The connection's byte stream, telling the watchdog when the first byte arrives (after that,
/// it costs nothing).
struct Tracked {
    io: Io,
    first_byte: Option<Arc<Activity>>,
}

impl tokio::io::AsyncRead for Tracked {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut this.io).poll_read(cx, buf);
        if this.first_byte.is_some()
            && matches!(polled, std::task::Poll::Ready(Ok(())))
            && buf.filled().len() > before
            && let Some(activity) = this.first_byte.take()
        {
            activity.saw_first_byte();
        }
        polled
    }
}

impl tokio::io::AsyncWrite for Tracked {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A connection's byte stream, TLS or not.
enum Io {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>),
}

impl tokio::io::AsyncRead for Io {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Io {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
