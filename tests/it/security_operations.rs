//! Operations under stress: nodes starting together on one PostgreSQL schema, change
//! notices that a node must hear from before it serves, tenant and provider files that cannot be
//! read for a while, and a CI run that cannot skip what it must test.

use crate::support::*;
use std::path::Path;
use std::time::Duration;

/// The demo acme tenant's hash of `acme-m2m-secret`.
const M2M_SECRET_HASH: &str = "sha256:Zsxv5CP7oTQ4690W5g1DqnGwn5toTEeS1o_uDrQnPD4";
const CC: [(&str, &str); 1] = [("grant_type", "client_credentials")];

fn master_key(byte: u8) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------------
// Several processes started at the same instant on a new schema

/// A `portcullis serve` process, held at the starting line until [`Racer::go`].
struct Racer {
    child: tokio::process::Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Racer {
    /// Spawns `sh`, which waits for a line on its standard input and then becomes
    /// `portcullis serve`: every racer is spawned first, then all are let go at once.
    fn spawn(dir: &Path, public: &str, schema: &str, master: &str, n: usize) -> Self {
        let port = free_port();
        let log = dir.join(format!("node-{n}.log"));
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg("read go && exec \"$0\" serve")
            .arg(env!("CARGO_BIN_EXE_portcullis"))
            .current_dir(dir)
            .env_remove("PORTCULLIS_CONFIG")
            .env("PORTCULLIS_SERVER_LISTEN", format!("127.0.0.1:{port}"))
            .env("PORTCULLIS_SERVER_MTLS_LISTEN", "")
            .env("PORTCULLIS_SERVER_PUBLIC_BASE_URL", public)
            .env("PORTCULLIS_SERVER_WORKER_THREADS", "1")
            .env("PORTCULLIS_SERVER_SHUTDOWN_GRACE_SECONDS", "1")
            .env("PORTCULLIS_DATABASE_URL", postgres_url().unwrap())
            .env("PORTCULLIS_DATABASE_SCHEMA", schema)
            .env("PORTCULLIS_KEYS_MASTER_KEY", master)
            .env("PORTCULLIS_RELOAD_WATCH_INTERVAL_SECONDS", "0")
            .env("PORTCULLIS_LOG_LEVEL", "warn")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Racer { child, port, log }
    }

    async fn go(&mut self) {
        use tokio::io::AsyncWriteExt;
        let mut stdin = self.child.stdin.take().unwrap();
        stdin.write_all(b"go\n").await.unwrap();
    }

    /// Waits until `/health/ready` answers 200; fails with the node's log if it exits first.
    async fn ready(&mut self, http: &reqwest::Client) -> serde_json::Value {
        let url = format!("https://localhost:{}/health/ready", self.port);
        for _ in 0..1200 {
            if let Ok(r) = http.get(&url).send().await
                && r.status() == 200
            {
                return r.json().await.unwrap();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "a node started together with others exited ({status}):\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "a node did not become ready:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

#[tokio::test]
async fn nodes_started_at_the_same_instant_on_a_new_postgresql_schema_all_become_ready() {
    if postgres_url().is_none() {
        eprintln!("PORTCULLIS_TEST_POSTGRES_URL is not set: PostgreSQL part skipped");
        return;
    }
    const NODES: usize = 5;
    const ROUNDS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    write_tenant(dir.path(), "acme", ACME);
    write_tenant(dir.path(), "globex", GLOBEX);
    std::fs::create_dir_all(dir.path().join("providers")).unwrap();
    std::fs::write(dir.path().join("providers/globex.toml"), GLOBEX_PROVIDER).unwrap();
    // The nodes share the certificates (made once here, not by five nodes at once).
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("dev-certs")
        .current_dir(dir.path())
        .env_remove("PORTCULLIS_CONFIG")
        .env("PORTCULLIS_LOG_LEVEL", "error")
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let master = master_key(5);
    for round in 0..ROUNDS {
        // A new schema each round: the nodes race to create it and to migrate it.
        let schema = unique_schema();
        let public = format!("https://localhost:{}", free_port());
        let mut nodes: Vec<Racer> = (0..NODES)
            .map(|n| Racer::spawn(dir.path(), &public, &schema, &master, round * NODES + n))
            .collect();
        for node in &mut nodes {
            node.go().await;
        }
        let mut key_rings = Vec::new();
        for node in &mut nodes {
            let addr = format!("127.0.0.1:{}", node.port).parse().unwrap();
            let http = client_for(
                &dir.path().join("certs/ca.pem"),
                &[("localhost", addr)],
                None,
            );
            let ready = node.ready(&http).await;
            assert_eq!(ready["database"], "postgres");
            let jwks: serde_json::Value = http
                .get(format!(
                    "https://localhost:{}/acme/.well-known/jwks",
                    node.port
                ))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            key_rings.push(jwks);
        }
        assert!(
            key_rings.windows(2).all(|w| w[0] == w[1]),
            "the nodes agree on one key ring"
        );
        for mut node in nodes {
            node.child.kill().await.unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Change notices are heard from before a node serves

#[tokio::test]
async fn a_change_made_on_one_node_right_after_another_starts_reaches_it_at_once() {
    if postgres_url().is_none() {
        eprintln!("PORTCULLIS_TEST_POSTGRES_URL is not set: PostgreSQL part skipped");
        return;
    }
    let schema = unique_schema();
    let keys = format!("master_key = \"{}\"", master_key(8));
    // TestServer sets reload.sync_interval_seconds = 3600: only a notice can tell node B in time.
    let node = move || Options {
        postgres: true,
        postgres_schema: Some(schema.clone()),
        keys: keys.clone(),
        ..Default::default()
    };
    // Node A runs on a runtime (and thread) of its own. Node B runs on this test's runtime, which
    // also runs B's background upkeep (the change listener among it). While A makes its change,
    // this thread blocks: whatever B does in the background is held until the change is made,
    // so B can only know of it if it subscribed before it started serving.
    let (a_ready, a_is_ready) = std::sync::mpsc::channel::<()>();
    let (go, a_go) = tokio::sync::oneshot::channel::<()>();
    let (a_done, a_is_done) = std::sync::mpsc::channel::<()>();
    let (stop, a_stop) = tokio::sync::oneshot::channel::<()>();
    let a_options = node();
    let a = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let a = TestServer::start_with(a_options).await;
            a_ready.send(()).unwrap();
            a_go.await.unwrap();
            // Node A applies a changed tenant file: acme gains an API scope.
            write_tenant(
                a.dir.path(),
                "acme",
                &format!("{ACME}\n[[api_scopes]]\nname = \"api.audit\"\n"),
            );
            let report = portcullis::registry::sync::reload_files(a.state())
                .await
                .unwrap();
            assert_eq!(report.applied, ["acme"]);
            a_done.send(()).unwrap();
            let _ = a_stop.await;
            a.stop().await;
        });
    });
    a_is_ready.recv().unwrap();
    let b = TestServer::start_with(node()).await;
    go.send(()).unwrap();
    a_is_done.recv().unwrap();
    // Node B's tenants were built at its start; only the notice can bring the new scope (the
    // periodic sync is an hour away).
    let mut heard = false;
    for _ in 0..50 {
        let (_, doc) = b.get_json("/acme/.well-known/openid-configuration").await;
        if doc["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&"api.audit".into())
        {
            heard = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        heard,
        "node B does not know of the change node A made right after B started"
    );
    let (status, ready) = b.get_json("/health/ready").await;
    assert_eq!((status, &ready["status"]), (200, &serde_json::json!("ok")));
    b.stop().await;
    stop.send(()).unwrap();
    a.join().unwrap();
}

/// A TCP proxy in front of PostgreSQL that can cut, and keep cutting, the connections that
/// subscribe to change notices (they send `LISTEN "portcullis_changes"`), and only those: a node
/// behind it keeps its database but loses the notices.
struct NoticeCutter {
    url: String,
    deaf: tokio::sync::watch::Sender<bool>,
}

impl NoticeCutter {
    async fn start(url: &str) -> Self {
        let mut url = reqwest::Url::parse(url).unwrap();
        let upstream = url.socket_addrs(|| Some(5432)).unwrap()[0];
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        url.set_port(Some(listener.local_addr().unwrap().port()))
            .unwrap();
        // In clear text, so that the proxy can see the LISTEN.
        url.query_pairs_mut().append_pair("sslmode", "disable");
        let (deaf, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let rx = rx.clone();
                tokio::spawn(async move {
                    if let Ok(server) = tokio::net::TcpStream::connect(upstream).await {
                        Self::pipe(client, server, rx).await;
                    }
                });
            }
        });
        NoticeCutter {
            url: url.to_string(),
            deaf,
        }
    }

    async fn pipe(
        client: tokio::net::TcpStream,
        server: tokio::net::TcpStream,
        mut deaf: tokio::sync::watch::Receiver<bool>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        const LISTEN: &[u8] = b"LISTEN \"portcullis_changes\"";
        let (mut from_client, mut to_client) = client.into_split();
        let (mut from_server, mut to_server) = server.into_split();
        let down = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
        });
        let mut listening = false;
        let mut buf = vec![0u8; 16384];
        loop {
            tokio::select! {
                n = from_client.read(&mut buf) => {
                    let n = match n {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    listening |= buf[..n].windows(LISTEN.len()).any(|w| w == LISTEN);
                    if listening && *deaf.borrow() {
                        break;
                    }
                    if to_server.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                changed = deaf.changed() => {
                    if changed.is_err() || (listening && *deaf.borrow()) {
                        break;
                    }
                }
            }
        }
        // Both directions end: the node sees its connection closed.
        down.abort();
    }

    fn set_deaf(&self, deaf: bool) {
        self.deaf.send_replace(deaf);
    }
}

#[tokio::test]
async fn a_node_that_cannot_hear_change_notices_is_not_ready_and_catches_up_when_it_can() {
    let Some(url) = postgres_url() else {
        eprintln!("PORTCULLIS_TEST_POSTGRES_URL is not set: PostgreSQL part skipped");
        return;
    };
    let schema = unique_schema();
    let keys = format!("master_key = \"{}\"", master_key(6));
    let node = |url: Option<String>| Options {
        postgres: true,
        postgres_schema: Some(schema.clone()),
        postgres_url: url,
        keys: keys.clone(),
        ..Default::default()
    };
    let a = TestServer::start_with(node(None)).await;
    // Node B reaches the database through the proxy.
    let cutter = NoticeCutter::start(&url).await;
    let b = TestServer::start_with(node(Some(cutter.url.clone()))).await;
    assert_eq!(b.get_json("/health/ready").await.0, 200);

    cutter.set_deaf(true);
    let mut ready = (0, serde_json::Value::Null);
    for _ in 0..50 {
        ready = b.get_json("/health/ready").await;
        if ready.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ready,
        (
            503,
            serde_json::json!({"status": "unavailable", "changes": "not subscribed"})
        ),
        "a node that cannot hear other nodes' changes is not ready"
    );
    // Its database is fine all along: B still serves what it knows.
    assert_eq!(
        b.token("acme", "acme-m2m", "acme-m2m-secret", &CC)
            .await
            .status(),
        200
    );

    // A change made while B cannot hear it.
    write_tenant(
        a.dir.path(),
        "acme",
        &format!("{ACME}\n[[api_scopes]]\nname = \"api.audit\"\n"),
    );
    portcullis::registry::sync::reload_files(a.state())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(b.get_json("/health/ready").await.0, 503, "still deaf");

    cutter.set_deaf(false);
    let mut status = 0;
    for _ in 0..50 {
        status = b.get_json("/health/ready").await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "listening again, node B is ready again");
    // Ready again means caught up: what was announced while B could not hear is there.
    let (_, doc) = b.get_json("/acme/.well-known/openid-configuration").await;
    assert!(
        doc["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&"api.audit".into()),
        "node B re-read what it may have missed before it said it was ready"
    );
    b.stop().await;
    a.stop().await;
}

// ---------------------------------------------------------------------------------------------
// A file that cannot be read is not a deleted file

/// Asks acme for a token with acme-m2m's demo secret until the answer has status `want`, for at
/// most a few watch ticks; returns the last status and error code (`None` for a token).
async fn acme_token_answer_becomes(s: &TestServer, want: u16) -> (u16, Option<String>) {
    let mut last = (0, None);
    for _ in 0..100 {
        let r = s.token("acme", "acme-m2m", "acme-m2m-secret", &CC).await;
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        last = (status, body["error"].as_str().map(str::to_string));
        if status == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

/// Turns `path` into something that exists but cannot be read as a file, without relying on
/// permissions (tests may run as root, where chmod 000 does not stop a read).
fn make_unreadable(path: &Path, how: &str) {
    std::fs::remove_file(path).unwrap();
    match how {
        // read(2) on a directory: EISDIR.
        "directory" => std::fs::create_dir(path).unwrap(),
        // A symbolic link to itself: ELOOP.
        "symlink loop" => std::os::unix::fs::symlink(path.file_name().unwrap(), path).unwrap(),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn a_tenant_file_that_cannot_be_read_leaves_the_running_tenant_serving() {
    for how in ["directory", "symlink loop"] {
        let s = TestServer::start_with(Options {
            watch_interval: 1,
            ..Default::default()
        })
        .await;
        assert_eq!(acme_token_answer_becomes(&s, 200).await, (200, None));
        let file = s.path("tenants/acme.toml");
        make_unreadable(&file, how);
        // Several watch ticks see the unreadable file (and a direct reload does too).
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let report = portcullis::registry::sync::reload_files(s.state())
            .await
            .unwrap();
        assert!(report.removed.is_empty(), "{how}: {report:?}");
        assert_eq!(
            s.token("acme", "acme-m2m", "acme-m2m-secret", &CC)
                .await
                .status(),
            200,
            "{how}: acme must keep serving while its file cannot be read"
        );
        // Readable again with a change: the change applies.
        if file.is_dir() {
            std::fs::remove_dir(&file).unwrap();
        } else {
            std::fs::remove_file(&file).unwrap();
        }
        let new_hash = portcullis::secrets::SecretHash::of("rotated-secret").to_stored();
        write_tenant(
            s.dir.path(),
            "acme",
            &ACME
                .replace(M2M_SECRET_HASH, &new_hash)
                .replace(DEMO_BASE, &s.base),
        );
        assert_eq!(
            acme_token_answer_becomes(&s, 401).await,
            (401, Some("invalid_client".to_string())),
            "{how}: the changed file applies once readable"
        );
        s.stop().await;
    }
}

/// Makes a directory unreadable to this process as root too: it is replaced by a symbolic link
/// to itself (ELOOP on open). Returns the guard that puts the directory back.
fn make_directory_unreadable(dir: &Path) -> impl Drop + use<> {
    struct Restore(std::path::PathBuf, std::path::PathBuf);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
            let _ = std::fs::rename(&self.1, &self.0);
        }
    }
    let aside = dir.with_extension("aside");
    std::fs::rename(dir, &aside).unwrap();
    std::os::unix::fs::symlink(dir.file_name().unwrap(), dir).unwrap();
    Restore(dir.to_path_buf(), aside)
}

#[tokio::test]
async fn a_tenants_directory_that_cannot_be_read_leaves_every_tenant_serving() {
    let s = TestServer::start_with(Options {
        watch_interval: 1,
        ..Default::default()
    })
    .await;
    let unreadable = make_directory_unreadable(&s.path("tenants"));
    assert!(std::fs::read_dir(s.path("tenants")).is_err());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let report = portcullis::registry::sync::reload_files(s.state())
        .await
        .unwrap();
    assert!(report.removed.is_empty(), "{report:?}");
    assert_eq!(
        s.token("acme", "acme-m2m", "acme-m2m-secret", &CC)
            .await
            .status(),
        200
    );
    assert_eq!(
        s.token("globex", "globex-m2m", "globex-m2m-secret", &CC)
            .await
            .status(),
        200
    );
    drop(unreadable);
    // Readable again: a tenant whose file is gone now is removed, as before.
    std::fs::remove_file(s.path("tenants/globex.toml")).unwrap();
    let report = portcullis::registry::sync::reload_files(s.state())
        .await
        .unwrap();
    assert_eq!(report.removed, ["globex"]);
    let r = s
        .token("globex", "globex-m2m", "globex-m2m-secret", &CC)
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "not_found",
        "unknown tenant"
    );
    s.stop().await;
}

/// Whether the globex provider file is loaded (and so offered to the tenants that list it).
fn globex_loaded(s: &TestServer) -> bool {
    s.state().federation.files.load().contains_key("globex")
}

#[tokio::test]
async fn a_provider_file_or_directory_that_cannot_be_read_leaves_the_running_provider_offered() {
    let s = TestServer::start().await;
    assert!(globex_loaded(&s));
    let file = s.path("providers/globex.toml");
    for how in ["directory", "symlink loop"] {
        make_unreadable(&file, how);
        let report = portcullis::registry::sync::reload_files(s.state())
            .await
            .unwrap();
        assert_eq!(report.provider_errors.len(), 1, "{how}: {report:?}");
        assert!(
            globex_loaded(&s),
            "{how}: the provider must stay while its file cannot be read"
        );
        if file.is_dir() {
            std::fs::remove_dir(&file).unwrap();
        } else {
            std::fs::remove_file(&file).unwrap();
        }
        std::fs::write(&file, GLOBEX_PROVIDER.replace(DEMO_BASE, &s.base)).unwrap();
        let report = portcullis::registry::sync::reload_files(s.state())
            .await
            .unwrap();
        assert!(report.provider_errors.is_empty(), "{report:?}");
        assert!(globex_loaded(&s));
    }
    {
        let _unreadable = make_directory_unreadable(&s.path("providers"));
        let report = portcullis::registry::sync::reload_files(s.state())
            .await
            .unwrap();
        assert_eq!(report.provider_errors.len(), 1, "{report:?}");
        assert!(globex_loaded(&s), "the providers directory");
    }
    // A deleted provider file still removes its provider.
    std::fs::remove_file(&file).unwrap();
    portcullis::registry::sync::reload_files(s.state())
        .await
        .unwrap();
    assert!(!globex_loaded(&s), "a deleted file removes the provider");
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// CI cannot skip PostgreSQL or the end-to-end tests

/// Runs one test of this binary again in a child process with `env` changed.
fn rerun(test: &str, set: &[(&str, &str)], unset: &[&str]) -> (bool, String) {
    let mut c = std::process::Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", test, "--nocapture", "--test-threads=1"]);
    for k in unset {
        c.env_remove(k);
    }
    for (k, v) in set {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Asks for PostgreSQL and the end-to-end flag as every such test does; the rerun cases below
/// set the environment.
#[test]
fn a_test_that_asks_for_postgresql_and_the_end_to_end_flag() {
    if std::env::var_os("PORTCULLIS_RERUN").is_none() {
        return; // only meaningful in a child process of the test below
    }
    let _ = postgres_url();
    let _ = e2e_required();
}

#[test]
fn a_ci_run_fails_rather_than_skip_postgresql_or_the_end_to_end_tests() {
    const PROBE: &str =
        "security_operations::a_test_that_asks_for_postgresql_and_the_end_to_end_flag";
    let pg = "PORTCULLIS_TEST_POSTGRES_URL";
    let e2e = "PORTCULLIS_E2E";
    let rerun_flag = ("PORTCULLIS_RERUN", "1");
    // Outside CI, both may be missing: the tests skip.
    let (ok, out) = rerun(PROBE, &[rerun_flag], &["CI", pg, e2e]);
    assert!(ok, "{out}");
    // CI set to anything, even empty, makes either missing piece a failure.
    for ci in ["true", "1", "yes", ""] {
        let (ok, out) = rerun(PROBE, &[rerun_flag, ("CI", ci), (e2e, "1")], &[pg]);
        assert!(
            !ok && out.contains("PORTCULLIS_TEST_POSTGRES_URL is not"),
            "CI={ci:?}: {out}"
        );
        let (ok, out) = rerun(
            PROBE,
            &[rerun_flag, ("CI", ci), (pg, "postgres://unused")],
            &[e2e],
        );
        assert!(
            !ok && out.contains("PORTCULLIS_E2E is not 1"),
            "CI={ci:?}: {out}"
        );
    }
    let (ok, out) = rerun(
        PROBE,
        &[
            rerun_flag,
            ("CI", "true"),
            (pg, "postgres://unused"),
            (e2e, "1"),
        ],
        &[],
    );
    assert!(ok, "{out}");
}

#[test]
fn the_test_script_refuses_to_skip_postgresql_in_ci() {
    // scripts/test with no cargo on the PATH: the refusal must come before anything else (and
    // if it did not, the script would stop at the missing cargo instead of running the suite).
    let bin = tempfile::tempdir().unwrap();
    let dirname = ["/usr/bin/dirname", "/bin/dirname"]
        .iter()
        .find(|p| Path::new(p).exists())
        .unwrap();
    std::os::unix::fs::symlink(dirname, bin.path().join("dirname")).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test");
    for ci in ["true", "1", "github", ""] {
        let out = std::process::Command::new("/bin/bash")
            .arg(&script)
            .env_clear()
            .env("PATH", bin.path())
            .env("CI", ci)
            .env("PORTCULLIS_SKIP_POSTGRES", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && text.contains("not allowed in CI"),
            "CI={ci:?}: {text}"
        );
    }
    // Outside CI the skip is allowed (the script goes on, here to the missing cargo).
    let out = std::process::Command::new("/bin/bash")
        .arg(&script)
        .env_clear()
        .env("PATH", bin.path())
        .env("PORTCULLIS_SKIP_POSTGRES", "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("not allowed in CI") && text.contains("cargo is missing"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// The audit trail

/// One request the webhook took: its Authorization header and its events.
type Taken = (Option<String>, Vec<serde_json::Value>);

/// A webhook that answers 503 while `failing`, else 200, and keeps what it took.
#[derive(Clone, Default)]
struct Hook {
    failing: Arc<std::sync::atomic::AtomicBool>,
    refused: Arc<std::sync::atomic::AtomicUsize>,
    batches: Arc<std::sync::Mutex<Vec<Taken>>>,
}

impl Hook {
    fn router(&self) -> axum::Router {
        let hook = self.clone();
        axum::Router::new().route(
            "/audit",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let hook = hook.clone();
                    async move {
                        if hook.failing.load(std::sync::atomic::Ordering::SeqCst) {
                            hook.refused
                                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        let auth = headers
                            .get("authorization")
                            .map(|v| v.to_str().unwrap().to_string());
                        let events: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
                        hook.batches.lock().unwrap().push((auth, events));
                        axum::http::StatusCode::OK
                    }
                },
            ),
        )
    }

    fn events(&self) -> Vec<serde_json::Value> {
        let b = self.batches.lock().unwrap();
        b.iter().flat_map(|(_, e)| e.clone()).collect()
    }

    /// Waits until the webhook holds an event for which `f` holds.
    async fn wait_for(&self, what: &str, f: impl Fn(&serde_json::Value) -> bool) {
        for _ in 0..100 {
            if self.events().iter().any(&f) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the webhook never got {what}: {:?}", self.events());
    }
}

use std::sync::Arc;

#[tokio::test]
async fn security_events_reach_the_audit_file_and_the_webhook_in_batches_at_least_once_across_a_restart()
 {
    // The audit layer is part of the process's subscriber (nextest runs each test in a process
    // of its own; elsewhere another test may have installed one first).
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    if tracing_subscriber::registry()
        .with(portcullis::audit::layer())
        .try_init()
        .is_err()
    {
        eprintln!("a tracing subscriber is installed already: audit test skipped");
        return;
    }
    let upstreams = Upstreams::new();
    let hook = Hook::default();
    hook.failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let url = upstreams.serve(hook.router()).await;
    // Both servers keep their data in a directory of the test's: the second restarts on it.
    let keep = tempfile::tempdir().unwrap();
    let data = keep.path().join("data");
    let options = |data_dir: Option<std::path::PathBuf>| Options {
        trusted_cas: vec![upstreams.ca_file()],
        sections: format!(
            "[audit]\nfile = \"audit/trail.jsonl\"\nwebhook_url = \"{url}/audit\"\n\
             webhook_authorization = \"Bearer hook-secret\"\nbatch_size = 2\nflush_interval_ms = 100\n"
        ),
        data_dir,
        ..Default::default()
    };
    let s = TestServer::start_with(options(Some(data.clone()))).await;
    for _ in 0..3 {
        let r = s.token("acme", "acme-m2m", "wrong-secret", &CC).await;
        assert_eq!(r.status(), 401);
    }
    assert_eq!(
        s.token("acme", "acme-m2m", "acme-m2m-secret", &CC)
            .await
            .status(),
        200
    );
    // The webhook refuses for a while: nothing is acknowledged, everything is sent again.
    for _ in 0..50 {
        if hook.refused.load(std::sync::atomic::Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        hook.refused.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "retried"
    );
    hook.failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    hook.wait_for("the token", |e| e["event"] == "token_issued")
        .await;
    let events = hook.events();
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "client_authentication_failed")
        .collect();
    assert!(failed.len() >= 3, "{events:?}");
    for e in &failed {
        assert_eq!(e["tenant"], "acme");
        assert_eq!(e["client_id"], "acme-m2m");
        assert!(e["request_id"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(e["id"].as_str().is_some_and(|r| r.len() == 32));
        assert!(e["time"].as_str().is_some_and(|t| t.contains('T')));
    }
    for (auth, batch) in hook.batches.lock().unwrap().iter() {
        assert_eq!(auth.as_deref(), Some("Bearer hook-secret"));
        assert!(!batch.is_empty() && batch.len() <= 2, "batch_size");
    }
    let trail = std::fs::read_to_string(s.path("audit/trail.jsonl")).unwrap();
    assert!(trail.lines().count() >= 4, "{trail}");
    assert!(
        !trail.contains("wrong-secret") && !format!("{events:?}").contains("wrong-secret"),
        "no secret in the audit trail"
    );

    // Events spooled while the webhook is down survive a restart and are delivered after it.
    hook.failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = s.token("globex", "acme-m2m", "acme-m2m-secret", &CC).await;
    assert_eq!(r.status(), 401, "another tenant's client");
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.stop().await;
    hook.failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let s2 = TestServer::start_with(options(Some(data))).await;
    hook.wait_for("the event spooled before the restart", |e| {
        e["event"] == "client_authentication_failed" && e["tenant"] == "globex"
    })
    .await;
    s2.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Traces

/// An OTLP/HTTP receiver (JSON encoding) that keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

impl Collector {
    async fn start(&self) -> String {
        let spans = self.spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let spans = spans.clone();
                async move {
                    let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let mut all = spans.lock().unwrap();
                    for rs in request["resourceSpans"].as_array().unwrap() {
                        for ss in rs["scopeSpans"].as_array().unwrap() {
                            for span in ss["spans"].as_array().unwrap() {
                                let mut span = span.clone();
                                span["service"] = rs["resource"]["attributes"].clone();
                                all.push(span);
                            }
                        }
                    }
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/v1/traces")
    }

    fn spans(&self) -> Vec<serde_json::Value> {
        self.spans.lock().unwrap().clone()
    }
}

/// A span attribute's value as text (OTLP/JSON writes integers as strings or numbers).
fn attribute(span: &serde_json::Value, key: &str) -> Option<String> {
    let a = span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)?;
    let v = &a["value"];
    v["stringValue"]
        .as_str()
        .map(str::to_string)
        .or_else(|| v["intValue"].as_str().map(str::to_string))
        .or_else(|| v["intValue"].as_i64().map(|i| i.to_string()))
}

#[tokio::test]
async fn traces_reach_a_real_otlp_receiver_with_request_store_and_upstream_spans_in_one_trace() {
    use crate::interactive::{Browser, VERIFIER, authorize_url, challenge, location, web_params};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let config = portcullis::config::runtime::Telemetry {
        otlp_endpoint: Some(endpoint),
        otlp_authorization: None,
        service_name: "portcullis-test".into(),
        export_interval: Duration::from_millis(100),
    };
    // The exporter's client is a blocking one: it is made off the runtime's threads.
    let telemetry = tokio::task::spawn_blocking(move || {
        portcullis::telemetry::Telemetry::start(&config)
            .unwrap()
            .unwrap()
    })
    .await
    .unwrap();
    if tracing_subscriber::registry()
        .with(telemetry.layer())
        .try_init()
        .is_err()
    {
        eprintln!("a tracing subscriber is installed already: trace test skipped");
        return;
    }
    let s = TestServer::start().await;
    // A stored grant: a reference token.
    assert_eq!(
        s.token("acme", "acme-ref", "acme-ref-secret", &CC)
            .await
            .status(),
        200
    );
    // An upstream call: acme's sign-in through globex (on this server) fetches globex's
    // discovery document.
    let b = Browser::new(&s);
    let ch = challenge(VERIFIER);
    let mut params = web_params("st", &ch);
    params.push(("idp_hint", "globex"));
    let r = b.get(&authorize_url(&s, "acme", "acme-web", &params)).await;
    assert_eq!(r.status(), 303);
    let start = location(&r);
    assert!(start.contains("/acme/federation/globex/start"), "{start}");
    let r = b.get(&start).await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).contains("/globex/connect/authorize"));

    let spans = {
        let mut found = Vec::new();
        for _ in 0..100 {
            found = collector.spans();
            let done = found.iter().any(|sp| {
                attribute(sp, "endpoint").as_deref()
                    == Some("/{tenant}/federation/{provider}/start")
            }) && found
                .iter()
                .any(|sp| attribute(sp, "client_id").as_deref() == Some("acme-ref"));
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        found
    };
    let by_id = |id: &serde_json::Value| spans.iter().find(|sp| &sp["spanId"] == id);
    // The token request: tenant, endpoint, client and outcome, and its store call as a child.
    let token = spans
        .iter()
        .find(|sp| attribute(sp, "client_id").as_deref() == Some("acme-ref"))
        .unwrap_or_else(|| panic!("no token request span: {spans:#?}"));
    assert_eq!(token["name"], "POST /{tenant}/connect/token");
    assert_eq!(attribute(token, "tenant").as_deref(), Some("acme"));
    assert_eq!(attribute(token, "outcome").as_deref(), Some("200"));
    assert!(
        spans.iter().any(|sp| sp["name"] == "store"
            && attribute(sp, "op").as_deref() == Some("insert_grant")
            && sp["parentSpanId"] == token["spanId"]
            && sp["traceId"] == token["traceId"]),
        "the stored reference token is a child span of its request"
    );
    // The sign-in start calls the upstream; the upstream's own request (globex on this
    // server) continues the same trace through the traceparent header.
    let start = spans
        .iter()
        .find(|sp| {
            attribute(sp, "endpoint").as_deref() == Some("/{tenant}/federation/{provider}/start")
        })
        .unwrap();
    let outbound = spans
        .iter()
        .find(|sp| sp["name"] == "outbound" && sp["traceId"] == start["traceId"])
        .unwrap_or_else(|| panic!("no upstream call in the sign-in's trace: {spans:#?}"));
    let upstream = spans
        .iter()
        .find(|sp| sp["parentSpanId"] == outbound["spanId"] && sp["name"] == "request")
        .unwrap_or_else(|| panic!("the upstream's request did not continue the trace: {spans:#?}"));
    assert_eq!(upstream["traceId"], start["traceId"]);
    assert!(
        spans
            .iter()
            .any(|sp| sp["parentSpanId"] == upstream["spanId"]
                && attribute(sp, "tenant").as_deref() == Some("globex")
                && sp["traceId"] == start["traceId"]),
        "the upstream's route span (globex) is in the same trace"
    );
    assert!(
        by_id(&outbound["parentSpanId"]).is_some(),
        "the upstream call has its parent"
    );
    telemetry.flush();
    s.stop().await;
}
