//! Connections are bounded. Silent and idle connections are closed, one
//! client address cannot hold more than its share, and someone holding idle connections up to
//! the limit does not lock everyone else out. Real TLS listeners on loopback; 127.0.0.x source
//! addresses stand for different clients.

use crate::support::*;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

/// A server whose `[connections]` section is `connections` (and `[server]` gets `server`).
async fn server_with(server: &str, connections: &str) -> TestServer {
    TestServer::start_with(Options {
        server_extra: format!("{server}\n[connections]\n{connections}\n"),
        ..Options::default()
    })
    .await
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A TCP connection to `to` from the loopback address `from`.
async fn tcp_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

/// A finished TLS handshake with the test server from `from`, offering `alpn`.
async fn tls_from(
    s: &TestServer,
    from: IpAddr,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(s.path("certs/ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tcp_from(from, s.addr).await?;
    let handshake = connector.connect(ServerName::try_from("localhost").unwrap(), tcp);
    tokio::time::timeout(Duration::from_secs(5), handshake)
        .await
        .map_err(|_| std::io::Error::other("TLS handshake did not finish"))?
}

/// Reads until the server closes the connection (end of stream, or an error such as a reset or
/// a missing close_notify); `None` if it is still open after `limit`. Returns the time waited.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    let read_to_end = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_to_end)
        .await
        .ok()
        .map(|()| start.elapsed())
}

/// One HTTP/1.1 keep-alive GET over `stream`; the status code.
async fn get_h1<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    path: &str,
) -> u16 {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before the response");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end].to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                assert!(head.contains("connection: keep-alive") || !head.contains("close"));
                return text[9..12].parse().unwrap();
            }
        }
    }
}

/// An HTTPS client whose connections come from `from`.
fn client_from(s: &TestServer, from: IpAddr) -> reqwest::Client {
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(s.path("certs/ca.pem")).unwrap()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .resolve("localhost", s.addr)
        .local_address(from)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// A client_credentials token request; the status and the JSON body.
async fn token(
    s: &TestServer,
    client: &reqwest::Client,
) -> reqwest::Result<(u16, serde_json::Value)> {
    let r = client
        .post(s.url("/acme/connect/token"))
        .basic_auth("acme-m2m", Some("acme-m2m-secret"))
        .form(&[("grant_type", "client_credentials"), ("scope", "api.read")])
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or_default()))
}

/// Waits (up to 3 s) until one sample of the server's Prometheus metrics, read through `client`,
/// has the `expected` value: a connection is counted on its serving thread, which may not have
/// run yet when the peer sees the close or the newcomer is served.
async fn metric_reaches(s: &TestServer, client: &reqwest::Client, sample: &str, expected: u64) {
    metric_satisfies(s, client, sample, &format!("{expected}"), |v| v == expected).await
}

/// Like `metric_reaches`, for a condition (`what` says which).
async fn metric_satisfies(
    s: &TestServer,
    client: &reqwest::Client,
    sample: &str,
    what: &str,
    ok: impl Fn(u64) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let text = get_text(client, &s.url("/metrics")).await;
        let value: Option<u64> = text
            .lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok());
        if value.is_some_and(&ok) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sample} is {value:?}, not {what}, in\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens up to `n` TLS connections from `from` and keeps those the server admitted (a refused
/// one is closed before its handshake completes).
async fn hold(s: &TestServer, from: &str, n: usize) -> Vec<TlsStream<TcpStream>> {
    let mut held = Vec::new();
    for _ in 0..n {
        if let Ok(c) = tls_from(s, ip(from), &[b"http/1.1"]).await {
            held.push(c);
        }
    }
    held
}

#[tokio::test]
async fn a_connection_that_sends_nothing_after_the_handshake_is_closed() {
    let s = server_with(
        "",
        "first_byte_timeout_seconds = 1\nidle_timeout_seconds = 60",
    )
    .await;
    // Completes TLS, then says nothing: hyper-util reads the first bytes to choose between
    // HTTP/1.1 and HTTP/2 without any timer, so nothing else would ever close this.
    let mut silent = tls_from(&s, ip("127.0.0.1"), &[b"http/1.1"]).await.unwrap();
    // Never even starts TLS.
    let mut mute = tcp_from(ip("127.0.0.1"), s.addr).await.unwrap();
    let (silent, mute) = tokio::join!(
        closed_within(&mut silent, Duration::from_secs(5)),
        closed_within(&mut mute, Duration::from_secs(5)),
    );
    let silent = silent.expect("a silent TLS connection is still open after 5 s");
    let mute = mute.expect("a connection without a TLS handshake is still open after 5 s");
    assert!(
        silent >= Duration::from_millis(800),
        "closed after {silent:?}"
    );
    assert!(mute >= Duration::from_millis(800), "closed after {mute:?}");
    for reason in ["first_byte_timeout", "handshake_timeout"] {
        let sample = format!("portcullis_connections_closed_total{{reason=\"{reason}\"}}");
        metric_reaches(&s, &s.http, &sample, 1).await;
    }
    s.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let s = server_with("", "idle_timeout_seconds = 1").await;
    let mut c = tls_from(&s, ip("127.0.0.1"), &[b"http/1.1"]).await.unwrap();
    // Keep-alive works: two requests on one connection, each within the idle timeout.
    assert_eq!(get_h1(&mut c, "/health/live").await, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(get_h1(&mut c, "/health/live").await, 200);
    // Then nothing: the connection is closed once it has been idle for the timeout.
    let closed = closed_within(&mut c, Duration::from_secs(5))
        .await
        .expect("an idle keep-alive connection is still open after 5 s");
    assert!(
        closed >= Duration::from_millis(800),
        "closed after {closed:?}"
    );
    metric_reaches(
        &s,
        &s.http,
        "portcullis_connections_closed_total{reason=\"idle_timeout\"}",
        1,
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed() {
    let s = server_with("", "idle_timeout_seconds = 1").await;
    let tls = tls_from(&s, ip("127.0.0.1"), &[b"h2"]).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let mut conn = tokio::spawn(conn);
    let request = hyper::Request::get(s.url("/health/live"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    drop(response);
    // No stream open, and the client's own traffic (SETTINGS, PING acknowledgements) does not
    // count: after the idle timeout the server says GOAWAY and the connection ends.
    let start = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), &mut conn)
        .await
        .expect("an idle HTTP/2 connection is still open after 5 s")
        .unwrap()
        .ok();
    assert!(
        start.elapsed() >= Duration::from_millis(800),
        "closed after {:?}",
        start.elapsed()
    );
    assert!(sender.is_closed());
    s.stop().await;
}

#[tokio::test]
async fn an_http2_peer_that_stops_answering_pings_is_closed() {
    let s = server_with(
        "",
        "idle_timeout_seconds = 60\nhttp2_keep_alive_interval_seconds = 1\nhttp2_keep_alive_timeout_seconds = 1",
    )
    .await;
    let mut c = tls_from(&s, ip("127.0.0.1"), &[b"h2"]).await.unwrap();
    // RFC 9113 §3.4: the connection preface, then an empty SETTINGS frame.
    c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let start = Instant::now();
    let mut pinged_at = None;
    let closed_at = loop {
        let mut head = [0u8; 9];
        let read = tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut head)).await;
        let Ok(Ok(_)) = read else {
            assert!(
                read.is_ok(),
                "the connection is still open after 5 s of silence"
            );
            break start.elapsed();
        };
        let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; length];
        if c.read_exact(&mut payload).await.is_err() {
            break start.elapsed();
        }
        match (head[3], head[4]) {
            // The server's SETTINGS: acknowledged, as a live peer would.
            (0x4, 0) => c.write_all(b"\0\0\0\x04\x01\0\0\0\0").await.unwrap(),
            // A PING (RFC 9113 §6.7): never acknowledged.
            (0x6, 0) => pinged_at = pinged_at.or(Some(start.elapsed())),
            _ => {}
        }
    };
    let pinged_at = pinged_at.expect("the server never sent a keep-alive PING");
    assert!(
        pinged_at < Duration::from_secs(4),
        "first PING after {pinged_at:?}"
    );
    assert!(
        closed_at >= pinged_at + Duration::from_millis(800),
        "closed {closed_at:?} after the PING at {pinged_at:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn one_address_cannot_hold_more_than_its_share_of_connections() {
    let s = server_with(
        "",
        "max_connections = 100\nmax_connections_per_address = 3\nfirst_byte_timeout_seconds = 30",
    )
    .await;
    let mut held = hold(&s, "127.0.0.1", 3).await;
    assert_eq!(held.len(), 3);
    // The fourth from the same address is closed at accept, before any TLS.
    let start = Instant::now();
    let refused = tls_from(&s, ip("127.0.0.1"), &[b"http/1.1"]).await;
    assert!(
        refused.is_err(),
        "a fourth connection from one address was admitted"
    );
    assert!(start.elapsed() < Duration::from_secs(2));
    // Another address is served.
    let other = client_from(&s, ip("127.0.0.2"));
    let (status, body) = token(&s, &other).await.unwrap();
    assert_eq!((status, body["token_type"].as_str()), (200, Some("Bearer")));
    // A connection given up gives its place back.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(3);
    let readmitted = loop {
        match tls_from(&s, ip("127.0.0.1"), &[b"http/1.1"]).await {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the freed place was never given back: {e}"),
        }
    };
    drop(readmitted);
    metric_satisfies(
        &s,
        &other,
        "portcullis_connections_refused_total{limit=\"per_address\"}",
        "at least 1",
        |v| v >= 1,
    )
    .await;
    drop(held);
    s.stop().await;
}

#[tokio::test]
async fn the_server_keeps_answering_others_while_its_connection_limit_is_held() {
    let s = server_with(
        "",
        "max_connections = 12\nmax_connections_per_address = 4\nfirst_byte_timeout_seconds = 10",
    )
    .await;
    // One address tries to take everything and gets its share; two more take the rest.
    let first = hold(&s, "127.0.0.1", 40).await;
    assert_eq!(first.len(), 4, "one address held more than its share");
    let second = hold(&s, "127.0.0.3", 4).await;
    let third = hold(&s, "127.0.0.4", 4).await;
    assert_eq!(second.len() + third.len(), 8);
    // The limit is full of idle connections, long before they would time out.
    let start = Instant::now();
    let legitimate = client_from(&s, ip("127.0.0.2"));
    let (status, body) = token(&s, &legitimate)
        .await
        .expect("a client with no connection was locked out by idle ones");
    assert_eq!((status, body["token_type"].as_str()), (200, Some("Bearer")));
    assert!(start.elapsed() < Duration::from_secs(3));
    // One idle connection made room for it; the holders cannot win it back.
    assert!(
        hold(&s, "127.0.0.1", 1).await.is_empty(),
        "a holder displaced someone with fewer connections"
    );
    metric_reaches(
        &s,
        &legitimate,
        "portcullis_connections_closed_total{reason=\"displaced\"}",
        1,
    )
    .await;
    drop((first, second, third));
    s.stop().await;
}

#[tokio::test]
async fn a_trusted_proxy_is_held_only_to_the_global_limit() {
    let s = server_with(
        "trusted_proxies = [\"127.0.0.5\"]",
        "max_connections = 6\nmax_connections_per_address = 2\nfirst_byte_timeout_seconds = 30",
    )
    .await;
    // Every user behind the proxy shares its address: more than the per-address share.
    let mut held = hold(&s, "127.0.0.5", 5).await;
    assert_eq!(held.len(), 5);
    held.extend(hold(&s, "127.0.0.6", 1).await);
    assert_eq!(held.len(), 6);
    // The global limit still counts the proxy's connections.
    assert!(hold(&s, "127.0.0.5", 1).await.is_empty());
    drop(held);
    s.stop().await;
}
