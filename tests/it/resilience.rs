//! Faults: the database going away under a running node, and coming back.

use crate::support::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A PostgreSQL server of the test's own (initdb into a temporary directory, its own port), so
/// that it can be stopped and started without touching the machine's. When the tests run as
/// root, the server runs as the `postgres` user (PostgreSQL refuses to run as root).
struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PrivatePostgres {
    /// `None` (and a note) where PostgreSQL's server programs are missing; in CI a failure.
    fn start() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists())
            .max();
        let Some(bin) = bin else {
            assert!(
                !in_ci(),
                "CI is set but PostgreSQL's server programs (/usr/lib/postgresql/*/bin) are missing"
            );
            eprintln!("no /usr/lib/postgresql/*/bin/initdb: private PostgreSQL test skipped");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("id").arg("-u").output().unwrap();
        let as_postgres = String::from_utf8_lossy(&out.stdout).trim() == "0";
        if as_postgres {
            let ids = |flag: &str| -> u32 {
                let o = Command::new("id")
                    .args([flag, "postgres"])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
            };
            std::os::unix::fs::chown(dir.path(), Some(ids("-u")), Some(ids("-g"))).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = PrivatePostgres {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        pg.resume();
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = c.args(args).current_dir(self.dir.path()).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server (again) and waits until it accepts connections.
    fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server as an operator would (fast shutdown: sessions are ended).
    fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&path)
                .args(args)
                .output()
        } else {
            Command::new(&path).args(args).output()
        };
    }
}

async fn ready(s: &TestServer) -> (u16, Duration) {
    let t = Instant::now();
    let status = s
        .http
        .get(s.url("/health/ready"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    (status, t.elapsed())
}

#[tokio::test]
async fn a_stopped_database_gets_503s_within_seconds_cached_jwt_clients_keep_working_and_all_recovers()
 {
    if postgres_url().is_none() {
        eprintln!("PORTCULLIS_TEST_POSTGRES_URL is not set: PostgreSQL part skipped");
        return;
    }
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let s = TestServer::start_with(Options {
        postgres: true,
        postgres_url: Some(pg.url()),
        ..Default::default()
    })
    .await;
    let cc = [("grant_type", "client_credentials")];
    // acme-m2m gets JWTs (signed in memory); acme-ref gets reference tokens, stored.
    let jwt = || s.token("acme", "acme-m2m", "acme-m2m-secret", &cc);
    let reference = || s.token("acme", "acme-ref", "acme-ref-secret", &cc);
    assert_eq!(jwt().await.status(), 200);
    assert_eq!(reference().await.status(), 200);
    assert_eq!(ready(&s).await.0, 200);

    // A bounded load of stored grants throughout: four clients, one request in flight each.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, http, url) = (stop.clone(), s.http.clone(), s.url("/acme/connect/token"));
        load.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .basic_auth("acme-ref", Some("acme-ref-secret"))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                seen.push((
                    status,
                    body["error"].as_str().map(str::to_string),
                    t.elapsed(),
                ));
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    pg.stop();
    let (status, took) = ready(&s).await;
    assert_eq!(status, 503, "readiness with the database down");
    assert!(took <= Duration::from_secs(2), "readiness took {took:?}");
    let t = Instant::now();
    let r = reference().await;
    let took = t.elapsed();
    assert_eq!(
        r.headers().get("retry-after").map(|v| v.to_str().unwrap()),
        Some("1")
    );
    assert_oauth_error(r, 503, "temporarily_unavailable").await;
    assert!(
        took <= Duration::from_secs(3),
        "the token endpoint took {took:?}"
    );
    // A client whose registration is cached and whose tokens need no store keeps working.
    assert_eq!(
        jwt().await.status(),
        200,
        "cached JWT client with the database down"
    );
    // So do discovery and the JWK Set (from memory).
    assert_eq!(
        s.get_json("/acme/.well-known/openid-configuration").await.0,
        200
    );
    assert_eq!(s.get_json("/acme/.well-known/jwks").await.0, 200);

    pg.resume();
    let t = Instant::now();
    while ready(&s).await.0 != 200 {
        assert!(t.elapsed() < Duration::from_secs(20), "not ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    // Under the load, every answer was a success or a 503 temporarily_unavailable, none took
    // longer than 3 s, and the load succeeded again once the database was back.
    let mut answers = Vec::new();
    for w in load {
        let seen = w.await.unwrap();
        assert_eq!(seen.last().map(|a| a.0), Some(200), "the load recovered");
        answers.extend(seen);
    }
    for (status, error, took) in &answers {
        assert!(
            *status == 200
                || (*status == 503 && error.as_deref() == Some("temporarily_unavailable")),
            "{status} {error:?}"
        );
        assert!(*took <= Duration::from_secs(3), "an answer took {took:?}");
    }
    assert!(answers.iter().any(|a| a.0 == 503), "the outage was seen");
    assert_eq!(reference().await.status(), 200, "the store answers again");
    assert!(
        s.state().hears_changes(),
        "listening for change notices again"
    );
    s.stop().await;
}
