use crate::support::*;
use axum::extract::Extension;
use axum::routing::get;
use portcullis::devcerts::DevCa;
use portcullis::frontdoor::connections::Connections;
use portcullis::frontdoor::tls::{SniResolver, load_certified_key, server_config};
use portcullis::frontdoor::{ConnectionInfo, listener};
use portcullis::request::ListenerKind;
use std::sync::Arc;
use std::time::Duration;

/// Serves a router that echoes the SHA-256 of the client certificate attached to the request.
async fn echo_listener(
    request_client_cert: bool,
) -> (
    std::net::SocketAddr,
    tempfile::TempDir,
    DevCa,
    tokio::sync::watch::Sender<bool>,
) {
    portcullis::frontdoor::tls::install_default_provider();
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::new("Test CA").unwrap();
    let server = ca.server(&["localhost"]).unwrap();
    std::fs::write(dir.path().join("s.pem"), &server.cert_pem).unwrap();
    std::fs::write(dir.path().join("s-key.pem"), &server.key_pem).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
    let ck = load_certified_key(&dir.path().join("s.pem"), &dir.path().join("s-key.pem")).unwrap();
    let config = server_config(Arc::new(SniResolver::new(ck)), request_client_cert).unwrap();
    let app = axum::Router::new().route(
        "/",
        get(|Extension(info): Extension<ConnectionInfo>| async move {
            match info.peer_certificates.as_ref().and_then(|c| c.first()) {
                Some(der) => {
                    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref())
                }
                None => "none".to_string(),
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(listener::serve(
        l,
        ListenerKind::Mtls,
        Some(config.into()),
        app,
        rx,
        Duration::from_secs(1),
        Arc::new(Connections::new(&Default::default(), Vec::new())),
    ));
    (addr, dir, ca, tx)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn the_mtls_listener_attaches_the_presented_certificate_to_the_request() {
    let (addr, dir, ca, _stop) = echo_listener(true).await;
    // A client certificate from a CA the server has never heard of: the TLS layer only checks
    // key possession, so it is accepted and attached.
    let stranger = DevCa::new("Unknown CA")
        .unwrap()
        .client("someone", vec![])
        .unwrap();
    let known = ca.client("acme-mtls", vec![]).unwrap();
    for cert in [known, stranger] {
        let identity = format!("{}{}", cert.cert_pem, cert.key_pem);
        let c = client_for(
            &dir.path().join("ca.pem"),
            &[("localhost", addr)],
            Some(&identity),
        );
        let body = get_text(&c, &format!("https://localhost:{}/", addr.port())).await;
        assert_eq!(
            body,
            hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &cert.der).as_ref())
        );
    }
    // Without a certificate the request is still served (requested, not required).
    let c = client_for(&dir.path().join("ca.pem"), &[("localhost", addr)], None);
    let body = get_text(&c, &format!("https://localhost:{}/", addr.port())).await;
    assert_eq!(body, "none");
}

#[tokio::test]
async fn the_main_listener_never_asks_for_a_client_certificate() {
    let (addr, dir, ca, _stop) = echo_listener(false).await;
    let cert = ca.client("acme-mtls", vec![]).unwrap();
    let identity = format!("{}{}", cert.cert_pem, cert.key_pem);
    let c = client_for(
        &dir.path().join("ca.pem"),
        &[("localhost", addr)],
        Some(&identity),
    );
    let body = get_text(&c, &format!("https://localhost:{}/", addr.port())).await;
    assert_eq!(
        body, "none",
        "a client certificate was requested on the main listener"
    );
}

#[tokio::test]
async fn the_real_mtls_listener_serves_the_tenants_with_a_client_certificate() {
    let s = TestServer::start().await;
    let identity = format!(
        "{}{}",
        std::fs::read_to_string(s.path("certs/demo-client.pem")).unwrap(),
        std::fs::read_to_string(s.path("certs/demo-client-key.pem")).unwrap()
    );
    let c = client_for(
        &s.path("certs/ca.pem"),
        &[("localhost", s.mtls_addr)],
        Some(&identity),
    );
    let r = c
        .post(format!("{}/acme/connect/token", s.mtls_base))
        .basic_auth("acme-m2m", Some("acme-m2m-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.version(),
        reqwest::Version::HTTP_2,
        "ALPN negotiates HTTP/2"
    );
    s.stop().await;
}

#[tokio::test]
async fn sni_selects_the_tenant_certificate_and_the_host_routes_to_the_tenant() {
    // Tenant acme is served at the root of login.acme.test with its own certificate from its own CA.
    let dir = tempfile::tempdir().unwrap();
    let tenant_ca = DevCa::new("Acme CA").unwrap();
    let cert = tenant_ca.server(&["login.acme.test"]).unwrap();
    std::fs::write(dir.path().join("acme-ca.pem"), tenant_ca.cert_pem()).unwrap();
    let acme = ACME.replace(
        "display_name = \"Acme Corporation\"\n",
        &format!(
            "display_name = \"Acme Corporation\"\nissuer = \"https://login.acme.test\"\nhosts = [\"login.acme.test\"]\n[tls]\ncert = \"{0}/acme.pem\"\nkey = \"{0}/acme-key.pem\"\n",
            dir.path().display()
        ),
    );
    std::fs::write(dir.path().join("acme.pem"), &cert.cert_pem).unwrap();
    std::fs::write(dir.path().join("acme-key.pem"), &cert.key_pem).unwrap();
    let s = TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.into())],
        readable_dirs: vec![dir.path().to_path_buf()],
        ..Default::default()
    })
    .await;

    let only_acme_ca = client_for(
        &dir.path().join("acme-ca.pem"),
        &[("login.acme.test", s.addr), ("localhost", s.addr)],
        None,
    );
    let r = only_acme_ca
        .get(format!(
            "https://login.acme.test:{}/.well-known/openid-configuration",
            s.addr.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let d: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        d["issuer"], "https://login.acme.test",
        "the issuer is the configured one, not derived from Host"
    );
    // Operational endpoints stay where they are on a tenant's host.
    let health = only_acme_ca
        .get(format!(
            "https://login.acme.test:{}/health/live",
            s.addr.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // Other names get the default certificate, which the Acme CA did not sign.
    assert!(
        only_acme_ca
            .get(s.url("/globex/.well-known/openid-configuration"))
            .send()
            .await
            .is_err()
    );
    // The default certificate still serves the other tenant by path.
    let (status, _) = s.get_json("/globex/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    s.stop().await;
}

#[tokio::test]
async fn forwarded_headers_count_only_from_trusted_proxies() {
    let acme = ACME.replace(
        "display_name = \"Acme Corporation\"\n",
        "display_name = \"Acme Corporation\"\nhosts = [\"login.acme.test\"]\n",
    );
    for (trusted, expected) in [(true, 200u16), (false, 404)] {
        let server_extra = if trusted {
            "trusted_proxies = [\"127.0.0.1/32\"]".to_string()
        } else {
            String::new()
        };
        let s = TestServer::start_with(Options {
            tenants: vec![("acme", acme.clone())],
            plain_listener: true,
            server_extra,
            ..Default::default()
        })
        .await;
        let plain = s.plain_addr.unwrap();
        let r = reqwest::Client::new()
            .get(format!(
                "http://127.0.0.1:{}/.well-known/openid-configuration",
                plain.port()
            ))
            .header("x-forwarded-host", "login.acme.test")
            .header("x-forwarded-proto", "https")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), expected, "trusted proxy: {trusted}");
        assert_eq!(
            r.headers().contains_key("strict-transport-security"),
            trusted
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn every_response_carries_security_headers_and_a_request_id() {
    let s = TestServer::start().await;
    for path in [
        "/acme/.well-known/openid-configuration",
        "/health/live",
        "/nope",
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(
            h["strict-transport-security"]
                .to_str()
                .unwrap()
                .starts_with("max-age=")
        );
        assert!(h.contains_key("content-security-policy"));
        assert_eq!(h["x-request-id"].len(), 16);
    }
    s.stop().await;
}

#[tokio::test]
async fn health_endpoints_report_liveness_and_database_readiness() {
    let s = TestServer::start().await;
    let (status, live) = s.get_json("/health/live").await;
    assert_eq!((status, live["status"].as_str()), (200, Some("ok")));
    let (status, ready) = s.get_json("/health/ready").await;
    assert_eq!(status, 200);
    assert_eq!(ready["database"], "sqlite");
    assert_eq!(ready["tenants"], 2);
    s.state().store.close().await;
    let (status, ready) = s.get_json("/health/ready").await;
    assert_eq!(
        (status, ready["status"].as_str()),
        (503, Some("unavailable"))
    );
}

#[tokio::test]
async fn after_shutdown_the_listeners_accept_nothing() {
    let s = TestServer::start().await;
    let (addr, http) = (s.addr, s.http.clone());
    let url = s.url("/health/live");
    s.stop().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    assert!(http.get(url).send().await.is_err());
}

#[tokio::test]
async fn graceful_shutdown_stops_accepting_but_finishes_the_request_in_flight() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start().await;
    let (addr, ca) = (s.addr, s.path("certs/ca.pem"));
    let mut conn = raw_tls(&ca, addr).await;
    conn.write_all(TOKEN_REQUEST_HEAD.as_bytes()).await.unwrap();
    conn.write_all(b"grant_type=client").await.unwrap();
    conn.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let stopping = tokio::spawn(s.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no new connections while draining"
    );

    conn.write_all(b"_credentials").await.unwrap();
    conn.flush().await.unwrap();
    let mut response = Vec::new();
    let _ = conn.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"access_token\""), "{response}");
    stopping.await.unwrap();
}

#[tokio::test]
async fn a_request_that_takes_too_long_is_answered_temporarily_unavailable() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with(Options {
        server_extra: "request_timeout_seconds = 1".into(),
        ..Default::default()
    })
    .await;
    let mut conn = raw_tls(&s.path("certs/ca.pem"), s.addr).await;
    conn.write_all(TOKEN_REQUEST_HEAD.as_bytes()).await.unwrap();
    conn.write_all(b"grant_type=").await.unwrap();
    conn.flush().await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .expect("answered before 5 s")
        .unwrap();
    let response = String::from_utf8_lossy(&buf[..n]);
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.contains("temporarily_unavailable"), "{response}");
    s.stop().await;
}

#[tokio::test]
async fn metrics_are_only_for_operations_networks() {
    let s = TestServer::start_with(Options {
        plain_listener: true,
        server_extra: "trusted_proxies = [\"127.0.0.1/32\"]".into(),
        ..Default::default()
    })
    .await;
    let url = format!("http://127.0.0.1:{}/metrics", s.plain_addr.unwrap().port());
    let outside = reqwest::Client::new()
        .get(&url)
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(
        outside.status(),
        404,
        "a public address must not read metrics"
    );
    let inside = reqwest::Client::new()
        .get(&url)
        .header("x-forwarded-for", "10.1.2.3")
        .send()
        .await
        .unwrap();
    assert_eq!(inside.status(), 200);
    // A client cannot pose as an inside address by writing X-Forwarded-For itself: the proxy
    // appends the address it saw, and that right-most one counts.
    let spoofed = reqwest::Client::new()
        .get(&url)
        .header("x-forwarded-for", "10.1.2.3, 203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), 404);
    s.stop().await;
}

#[tokio::test]
async fn a_second_server_on_the_same_port_is_refused_not_silently_sharing_it() {
    let s = TestServer::start().await;
    let taken = portcullis::server::Listeners::bind_addrs(s.addr, None, None, 2);
    let err = taken.err().expect("the port is in use");
    assert!(err.to_string().contains("another server"), "{err}");
    s.stop().await;
}
