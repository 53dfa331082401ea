//! Three nodes as separate processes on one PostgreSQL database behind HAProxy, started by
//! `scripts/cluster` as a user would: a node killed with SIGKILL under load loses nothing a
//! client received, and a node started under load joins without errors.

use crate::interactive::{
    Browser, VERIFIER, challenge, location, params, submit_consent, submit_login, web_params,
};
use crate::support::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;

const API_USER: &str = "https%3A%2F%2Fapi.acme.test";
const WEB_CB: &str = "http://127.0.0.1:9000/callback";

struct Cluster {
    dir: tempfile::TempDir,
    /// HAProxy's main port; its mTLS port is the next.
    port: u16,
    /// Node n listens on node_port + n (mTLS: node_port + 10 + n).
    node_port: u16,
    schema: String,
}

impl Cluster {
    /// `scripts/cluster up` with this test's ports, directory, schema and binary; `None` (and
    /// a note) without PostgreSQL or HAProxy outside CI.
    fn up() -> Option<Self> {
        postgres_url()?;
        if Command::new("haproxy").arg("-v").output().is_err() {
            assert!(
                !in_ci(),
                "CI is set but haproxy is missing (scripts/test installs it)"
            );
            eprintln!("haproxy is missing: cluster test skipped");
            return None;
        }
        let (port, node_port) = free_ports();
        let c = Cluster {
            dir: tempfile::tempdir().unwrap(),
            port,
            node_port,
            schema: unique_schema(),
        };
        c.script(&["up"]);
        Some(c)
    }

    fn script(&self, args: &[&str]) -> String {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(root.join("scripts/cluster"))
            .args(args)
            .env("CLUSTER_DIR", self.dir.path())
            .env("CLUSTER_DATABASE_URL", postgres_url().unwrap())
            .env("CLUSTER_SCHEMA", &self.schema)
            .env("CLUSTER_PORT", self.port.to_string())
            .env("CLUSTER_NODE_PORT", self.node_port.to_string())
            .env("PORTCULLIS_BIN", env!("CARGO_BIN_EXE_portcullis"))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "scripts/cluster {args:?}: {text}");
        text
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("certs/ca.pem")
    }

    fn base(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    fn lb_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn node_addr(&self, n: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.node_port + n))
    }

    /// An HTTP client that reaches the gateway's public URL at `addr` (HAProxy or one node).
    fn client(&self, addr: SocketAddr) -> reqwest::Client {
        client_for(&self.ca(), &[("localhost", addr)], None)
    }

    /// The same, on a new connection for every request (as many short-lived clients are): the
    /// balancer places each one anew, on a node that joined too.
    fn fresh_client(&self, addr: SocketAddr) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(self.ca()).unwrap()).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([ca])
            .resolve("localhost", addr)
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    }

    /// The gateway's URL for `path` as reached at node `n` directly (its own port; the issuer
    /// stays the public URL).
    fn node_url(&self, n: u16, path: &str) -> String {
        format!("https://localhost:{}{path}", self.node_port + n)
    }

    fn log_of(&self, n: u16) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node{n}.log"))).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let _ = Command::new(root.join("scripts/cluster"))
            .arg("down")
            .env("CLUSTER_DIR", self.dir.path())
            .env("CLUSTER_DROP", "1")
            .env("CLUSTER_DATABASE_URL", postgres_url().unwrap_or_default())
            .env("CLUSTER_SCHEMA", &self.schema)
            .output();
    }
}

/// Two port bases with every port the cluster needs free (HAProxy: p, p+1; nodes: q+1..q+3,
/// q+11..q+13).
fn free_ports() -> (u16, u16) {
    for _ in 0..50 {
        let [a, b]: [u8; 2] = portcullis::secrets::random_bytes();
        let p = 20_000 + u16::from(a) * 100;
        let q = p + 20 + u16::from(b % 50);
        let ports = [p, p + 1, q + 1, q + 2, q + 3, q + 11, q + 12, q + 13];
        if ports
            .iter()
            .all(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        {
            return (p, q);
        }
    }
    panic!("no free ports for the cluster");
}

/// alice signs in at acme-web through `base` (with `b`'s cookies); the code and the session.
async fn alice_code(base: &str, b: &Browser, state: &str) -> String {
    let ch = challenge(VERIFIER);
    let view = Url(base);
    let r = b.get(&view.authorize(&web_params(state, &ch))).await;
    assert_eq!(r.status(), 303);
    let mut next = location(&r);
    if next.contains("/account/login") {
        let r = submit_login(b, &next, "alice", "alice-password").await;
        assert_eq!(r.status(), 303);
        next = location(&r);
    }
    if next.contains("/account/consent") {
        let r = submit_consent(b, &next, "allow", true).await;
        assert_eq!(r.status(), 303);
        next = location(&r);
    }
    assert!(next.starts_with(WEB_CB), "{next}");
    params(&next)["code"].clone()
}

/// A base URL with the helpers' shape.
struct Url<'a>(&'a str);

impl Url<'_> {
    fn authorize(&self, extra: &[(&str, &str)]) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("client_id", "acme-web");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
        format!("{}/acme/connect/authorize?{}", self.0, q.finish())
    }
}

async fn token(
    http: &reqwest::Client,
    base: &str,
    form: &[(&str, &str)],
    client: (&str, &str),
) -> Result<Value, String> {
    let r = http
        .post(format!("{base}/acme/connect/token"))
        .basic_auth(client.0, Some(client.1))
        .form(form)
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = r.status();
    let body: Value = r.json().await.map_err(|e| format!("body: {e}"))?;
    if status == 200 {
        Ok(body)
    } else {
        Err(format!("{status}: {body}"))
    }
}

async fn redeem_code(http: &reqwest::Client, base: &str, code: &str) -> Result<Value, String> {
    token(
        http,
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", WEB_CB),
            ("code_verifier", VERIFIER),
        ],
        ("acme-web", "acme-web-secret"),
    )
    .await
}

async fn rotate(http: &reqwest::Client, base: &str, rt: &str) -> Result<Value, String> {
    token(
        http,
        base,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        ("acme-web", "acme-web-secret"),
    )
    .await
}

async fn introspect_active(http: &reqwest::Client, base: &str, token: &str) -> bool {
    let r = http
        .post(format!("{base}/acme/connect/introspect"))
        .basic_auth(API_USER, Some("acme-api-secret"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["active"] == true
}

/// What the load received: the tokens a client holds, and how many requests failed.
#[derive(Default)]
struct Received {
    reference_tokens: Vec<String>,
    /// Each chain's refresh token as last received; `None` once a rotation failed in flight
    /// (its outcome is unknown to the client, so the chain ends there).
    refresh_tokens: Vec<Option<String>>,
}

#[tokio::test]
async fn a_node_killed_under_load_loses_no_grant_a_client_received_and_a_restarted_node_joins() {
    let Some(c) = Cluster::up() else {
        return;
    };
    let base = c.base();
    let lb = c.client(c.lb_addr());
    // Before the fault: four refresh-token chains and one code not yet redeemed, each from a
    // sign-in through the balancer, and the session of the last browser.
    let mut chains = Vec::new();
    let mut browser = None;
    for i in 0..4 {
        let b = Browser::at(&c.ca(), c.lb_addr());
        let code = alice_code(&base, &b, &format!("s{i}")).await;
        let t = redeem_code(&lb, &base, &code).await.unwrap();
        chains.push(Some(t["refresh_token"].as_str().unwrap().to_string()));
        browser = Some(b);
    }
    let browser = browser.unwrap();
    let pending_code = alice_code(&base, &browser, "pending").await;
    let received = Arc::new(Mutex::new(Received {
        refresh_tokens: chains,
        ..Default::default()
    }));

    // The load: four workers through the balancer, one request in flight each; each worker
    // alternates a reference token (a stored grant) and a refresh rotation of its chain. Two
    // keep their connection, two open one per request.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (stop, failures, done, received) = (
            stop.clone(),
            failures.clone(),
            done.clone(),
            received.clone(),
        );
        let http = if w % 2 == 0 {
            c.client(c.lb_addr())
        } else {
            c.fresh_client(c.lb_addr())
        };
        let base = base.clone();
        workers.push(tokio::spawn(async move {
            let cc = [("grant_type", "client_credentials")];
            while !stop.load(Ordering::Relaxed) {
                match token(&http, &base, &cc, ("acme-ref", "acme-ref-secret")).await {
                    Ok(t) => received
                        .lock()
                        .await
                        .reference_tokens
                        .push(t["access_token"].as_str().unwrap().to_string()),
                    Err(e) => {
                        eprintln!("worker {w}: reference token: {e}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let current = received.lock().await.refresh_tokens[w].clone();
                if let Some(rt) = current {
                    let next = rotate(&http, &base, &rt).await;
                    let mut r = received.lock().await;
                    match next {
                        Ok(t) => {
                            r.refresh_tokens[w] =
                                Some(t["refresh_token"].as_str().unwrap().to_string())
                        }
                        Err(e) => {
                            eprintln!("worker {w}: rotation: {e}");
                            failures.fetch_add(1, Ordering::Relaxed);
                            r.refresh_tokens[w] = None;
                        }
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let settle = |d: u64| tokio::time::sleep(Duration::from_secs(d));
    settle(3).await;
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "failures before the fault"
    );

    // SIGKILL node 1 under load. Only what was in flight on it may fail: at most one request
    // per worker.
    c.script(&["kill", "1"]);
    settle(5).await;
    let lost = failures.load(Ordering::Relaxed);
    assert!(
        lost <= 4,
        "{lost} requests failed: more than were in flight"
    );

    // Node 1 comes back under load and joins: no request fails from here on.
    let before = c.log_of(1).len();
    c.script(&["start", "1"]);
    settle(4).await; // HAProxy takes it back after two good checks (1 s apart)
    let rejoined_from = done.load(Ordering::Relaxed);
    settle(4).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(
        failures.load(Ordering::Relaxed),
        lost,
        "requests failed after node 1 joined again"
    );
    assert!(
        done.load(Ordering::Relaxed) > rejoined_from,
        "the load went on"
    );
    let joined_log = &c.log_of(1)[before..];
    assert!(
        !joined_log.contains("ERROR"),
        "node 1 logged errors while joining:\n{joined_log}"
    );
    let node1 = c.client(c.node_addr(1));
    let metrics = get_text(&node1, &c.node_url(1, "/metrics")).await;
    let issued: u64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "portcullis_tokens_issued_total{tenant=\"acme\",grant_type=\"client_credentials\"} ",
            )
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(issued > 0, "node 1 served no token after it joined");

    // Everything a client received works on the other nodes.
    let received = received.lock().await;
    assert!(received.reference_tokens.len() > 20, "the load ran");
    let node2 = c.client(c.node_addr(2));
    let node3 = c.client(c.node_addr(3));
    let n2 = c.node_url(2, "");
    let n3 = c.node_url(3, "");
    for t in &received.reference_tokens {
        assert!(
            introspect_active(&node3, &n3, t).await,
            "a received token is gone"
        );
    }
    let live = received.refresh_tokens.iter().flatten().count();
    assert!(live >= 1, "every chain ended in flight");
    for rt in received.refresh_tokens.iter().flatten() {
        rotate(&node2, &n2, rt)
            .await
            .expect("a received refresh token works on another node");
    }
    redeem_code(&node3, &n3, &pending_code)
        .await
        .expect("a code issued before the fault is redeemed on another node");
    // The session: the browser's session cookie (cookies are not bound to a port) signs in
    // again through node 2 without a password (single sign-on).
    let at_node2 = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(c.ca()).unwrap()).unwrap()])
        .resolve("localhost", c.node_addr(2))
        .cookie_provider(browser.jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = at_node2
        .get(Url(&n2).authorize(&web_params("sso", &challenge(VERIFIER))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        location(&r).starts_with(WEB_CB),
        "the session still signs in"
    );
}

/// Separate `portcullis serve` processes on one PostgreSQL: an initial access token made by the
/// CLI registers a client at node 1; alice signs in with it starting at node 2 and its code is
/// redeemed there; the client deletes its registration at node 2, and node 1 refuses its refresh
/// token and its secret at once.
#[tokio::test]
async fn a_client_registered_at_one_node_process_signs_in_at_another_and_deleted_there_is_refused_at_the_first()
 {
    let Some(c) = Cluster::up() else { return };
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .current_dir(c.dir.path())
        .env("PORTCULLIS_DATABASE_URL", postgres_url().unwrap())
        .env("PORTCULLIS_DATABASE_SCHEMA", &c.schema)
        .env(
            "PORTCULLIS_KEYS_MASTER_KEY_FILE",
            c.dir.path().join("master.key"),
        )
        .env("PORTCULLIS_PATHS_DATA_DIR", c.dir.path().join("node1"))
        .args([
            "--config",
            "portcullis.toml",
            "clients",
            "initial-token",
            "--tenant",
            "acme",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let iat = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!iat.is_empty() && !iat.contains(' '), "{iat}");

    let node1 = c.client(c.node_addr(1));
    let node2 = c.client(c.node_addr(2));
    let r = node1
        .post(c.node_url(1, "/acme/connect/register"))
        .bearer_auth(&iat)
        .json(&serde_json::json!({
            "redirect_uris": [WEB_CB],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid profile offline_access",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let reg: Value = r.json().await.unwrap();
    let id = reg["client_id"].as_str().unwrap().to_string();
    let secret = reg["client_secret"].as_str().unwrap().to_string();
    let rat = reg["registration_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    // The registration is managed at the public URL.
    assert_eq!(
        reg["registration_client_uri"],
        format!("{}/acme/connect/register/{id}", c.base())
    );

    let b = Browser::at(&c.ca(), c.lb_addr());
    let ch = challenge(VERIFIER);
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("client_id", &id);
    for (k, v) in [
        ("response_type", "code"),
        ("redirect_uri", WEB_CB),
        ("scope", "openid profile offline_access"),
        ("state", "two"),
        ("code_challenge", ch.as_str()),
        ("code_challenge_method", "S256"),
    ] {
        q.append_pair(k, v);
    }
    let r = b
        .get(&c.node_url(2, &format!("/acme/connect/authorize?{}", q.finish())))
        .await;
    assert_eq!(
        r.status(),
        303,
        "node 2 knows the client registered at node 1"
    );
    let r = submit_login(&b, &location(&r), "alice", "alice-password").await;
    let r = submit_consent(&b, &location(&r), "allow", false).await;
    let code = params(&location(&r))["code"].clone();
    let tokens = token(
        &node2,
        &c.node_url(2, ""),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", WEB_CB),
            ("code_verifier", VERIFIER),
        ],
        (&id, &secret),
    )
    .await
    .unwrap();
    // Node 1 uses the client too (and so holds it in its cache).
    let rotated = token(
        &node1,
        &c.node_url(1, ""),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
        (&id, &secret),
    )
    .await
    .unwrap();
    let refresh = rotated["refresh_token"].as_str().unwrap().to_string();

    let r = node2
        .delete(c.node_url(2, &format!("/acme/connect/register/{id}")))
        .bearer_auth(&rat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // The grant is revoked in the database at once; node 1 forgets its cached client when the
    // change notice arrives (milliseconds): then the client itself is unknown (401).
    let mut last = String::new();
    for _ in 0..50 {
        last = token(
            &node1,
            &c.node_url(1, ""),
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
            (&id, &secret),
        )
        .await
        .unwrap_err();
        if last.starts_with("401") {
            break;
        }
        assert!(
            last.starts_with("400"),
            "the refresh token is refused: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        last.starts_with("401"),
        "node 1 forgot the deleted client: {last}"
    );
}
