use crate::support::*;
use std::time::Duration;

async fn wait_for(s: &TestServer, path: &str, status: u16) -> bool {
    for _ in 0..100 {
        if s.get_json(path).await.0 == status {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn adding_a_tenant_file_while_running_onboards_the_tenant() {
    let s = TestServer::start_with(Options {
        tenants: vec![("acme", ACME.into())],
        watch_interval: 1,
        ..Default::default()
    })
    .await;
    assert_eq!(
        s.get_json("/globex/.well-known/openid-configuration")
            .await
            .0,
        404
    );
    write_tenant(s.dir.path(), "globex", GLOBEX);
    assert!(
        wait_for(&s, "/globex/.well-known/openid-configuration", 200).await,
        "globex was not onboarded"
    );
    let r = s
        .token(
            "globex",
            "globex-m2m",
            "globex-m2m-secret",
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn an_invalid_change_is_rejected_and_the_running_tenant_keeps_working() {
    let s = TestServer::start_with(Options {
        watch_interval: 1,
        ..Default::default()
    })
    .await;
    write_tenant(
        s.dir.path(),
        "acme",
        &ACME.replacen(
            "grant_types = [\"client_credentials\"]",
            "grant_types = [\"telepathy\"]",
            1,
        ),
    );
    let report = portcullis::registry::sync::reload_files(s.state())
        .await
        .unwrap();
    assert_eq!(report.rejected.len(), 1);
    assert!(
        report.rejected[0]
            .to_string()
            .contains("clients[0].grant_types[0]"),
        "{}",
        report.rejected[0]
    );
    let r = s
        .token(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status(), 200, "the running tenant is untouched");
    s.stop().await;
}

#[tokio::test]
async fn a_changed_client_takes_effect_and_a_removed_file_removes_the_tenant() {
    let s = TestServer::start().await;
    assert_eq!(
        s.token(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[("grant_type", "client_credentials")]
        )
        .await
        .status(),
        200
    );
    // Revoke the client's secret by replacing it in the file.
    let new_hash = portcullis::secrets::SecretHash::of("rotated-secret").to_stored();
    write_tenant(
        s.dir.path(),
        "acme",
        &ACME.replace(
            "sha256:Zsxv5CP7oTQ4690W5g1DqnGwn5toTEeS1o_uDrQnPD4",
            &new_hash,
        ),
    );
    portcullis::registry::sync::reload_files(s.state())
        .await
        .unwrap();
    let r = s
        .token(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_oauth_error(r, 401, "invalid_client").await;
    assert_eq!(
        s.token(
            "acme",
            "acme-m2m",
            "rotated-secret",
            &[("grant_type", "client_credentials")]
        )
        .await
        .status(),
        200
    );

    std::fs::remove_file(s.path("tenants/globex.toml")).unwrap();
    let report = portcullis::registry::sync::reload_files(s.state())
        .await
        .unwrap();
    assert_eq!(report.removed, vec!["globex".to_string()]);
    let (status, body) = s.get_json("/globex/.well-known/openid-configuration").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    s.stop().await;
}

/// The command line, run as a user would (the real binary).
mod cli {
    use super::*;
    use std::process::Command;

    fn portcullis(dir: &std::path::Path) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_portcullis"));
        c.current_dir(dir)
            .env_remove("PORTCULLIS_CONFIG")
            .env("PORTCULLIS_LOG_LEVEL", "error");
        c
    }

    #[test]
    fn check_config_accepts_the_demo_tenants_and_locates_every_error() {
        let dir = tempfile::tempdir().unwrap();
        write_tenant(dir.path(), "acme", ACME);
        write_tenant(dir.path(), "globex", GLOBEX);
        let ok = portcullis(dir.path()).arg("check-config").output().unwrap();
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );

        write_tenant(
            dir.path(),
            "globex",
            &GLOBEX.replace(
                "scopes = [\"api.read\"]\n\n[[identity",
                "scopes = [\"api.nope\"]\n\n[[identity",
            ),
        );
        let bad = portcullis(dir.path()).arg("check-config").output().unwrap();
        assert!(!bad.status.success());
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert!(
            stderr.contains("tenants/globex.toml:14: `api_resources[0].scopes[0]`"),
            "{stderr}"
        );
    }

    #[test]
    fn check_config_reports_a_host_two_files_claim_with_the_loaders_message() {
        let dir = tempfile::tempdir().unwrap();
        let with_host = |text: &str, name: &str| {
            text.replacen(
                "\n\n",
                &format!("\nhosts = [\"login.shared.test\"]\n# {name}\n\n"),
                1,
            )
        };
        write_tenant(dir.path(), "acme", &with_host(ACME, "acme"));
        write_tenant(dir.path(), "globex", &with_host(GLOBEX, "globex"));
        let out = portcullis(dir.path()).arg("check-config").output().unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The message `registry::sync::reload_files` gives a running node, located in the file.
        assert!(
            stderr.contains("tenants/globex.toml:")
                && stderr
                    .contains("`hosts[0]`: host `login.shared.test` already serves tenant `acme`"),
            "{stderr}"
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("ok  ") && stdout.contains("(tenant acme,"),
            "{stdout}"
        );
        assert!(!stdout.contains("(tenant globex,"), "{stdout}");
    }

    #[test]
    fn hash_secret_prints_the_stored_form() {
        let dir = tempfile::tempdir().unwrap();
        let out = portcullis(dir.path())
            .args(["clients", "hash-secret", "acme-m2m-secret"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "sha256:Zsxv5CP7oTQ4690W5g1DqnGwn5toTEeS1o_uDrQnPD4"
        );
    }

    #[tokio::test]
    async fn keys_list_and_rotate_work_against_a_running_deployments_database() {
        let s = TestServer::start().await;
        // The CLI reads the same database and master key as the running node.
        let env = |c: &mut Command| {
            c.env("PORTCULLIS_PATHS_DATA_DIR", s.path("data"))
                .env("PORTCULLIS_PATHS_TENANTS_DIR", s.path("tenants"));
        };
        let mut rotate = portcullis(s.dir.path());
        env(&mut rotate);
        let out = rotate
            .args(["keys", "rotate", "--tenant", "acme"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            stdout.matches("successor key created").count(),
            2,
            "{stdout}"
        );
        assert_eq!(stdout.matches("announced").count(), 2, "{stdout}");
        assert_eq!(stdout.matches("active").count(), 2, "{stdout}");
        // Logs are JSON lines on standard error when configured so.
        let mut list = portcullis(s.dir.path());
        env(&mut list);
        let out = list
            .args(["keys", "list", "--tenant", "acme"])
            .env("PORTCULLIS_LOG_FORMAT", "json")
            .env("PORTCULLIS_LOG_LEVEL", "warn")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line: serde_json::Value =
            serde_json::from_str(stderr.lines().next().unwrap_or_default()).unwrap();
        assert_eq!(line["level"], "WARN", "{stderr}");
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("alg"),
            "command output stays on stdout"
        );
        // The running node publishes the announced keys after its next sync.
        portcullis::registry::sync::refresh(s.state())
            .await
            .unwrap();
        let (_, jwks) = s.get_json("/acme/.well-known/jwks").await;
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 4);
        s.stop().await;
    }
}

#[tokio::test]
async fn a_tenant_cannot_take_a_host_name_another_tenant_serves() {
    let with_host = |text: &str, name: &str| {
        text.replacen(
            "\n\n",
            &format!("\nhosts = [\"login.shared.test\"]\n# {name}\n\n"),
            1,
        )
    };
    let s = TestServer::start_with(Options {
        tenants: vec![("acme", with_host(ACME, "acme"))],
        ..Default::default()
    })
    .await;
    write_tenant(s.dir.path(), "globex", &with_host(GLOBEX, "globex"));
    let report = portcullis::registry::sync::reload_files(s.state())
        .await
        .unwrap();
    assert_eq!(report.rejected.len(), 1, "{:?}", report.rejected);
    assert!(
        report.rejected[0]
            .to_string()
            .contains("already serves tenant `acme`"),
        "{}",
        report.rejected[0]
    );
    assert_eq!(
        s.state()
            .registry
            .slug_for_host("login.shared.test")
            .as_deref(),
        Some("acme")
    );
    assert!(s.state().registry.get("globex").is_none());
    s.stop().await;
}
