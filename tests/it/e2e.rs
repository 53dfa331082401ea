//! End-to-end: certified third-party relying-party libraries (openid-client, jose from npm)
//! discover the `acme` tenant and obtain and verify client_credentials tokens.
//! Mandatory when PORTCULLIS_E2E=1 (the README's test command sets it).

use crate::support::*;
use std::path::Path;

#[tokio::test]
async fn openid_client_discovers_acme_and_gets_a_verified_client_credentials_token() {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    let required = std::env::var("PORTCULLIS_E2E").is_ok_and(|v| v == "1");
    if !e2e.join("node_modules").is_dir() {
        assert!(
            !required,
            "tests/e2e/node_modules is missing: run `npm ci --prefix tests/e2e`"
        );
        eprintln!("tests/e2e/node_modules is missing: end-to-end test skipped (run scripts/test)");
        return;
    }
    let s = TestServer::start().await;
    let out = tokio::process::Command::new("node")
        .arg(e2e.join("client_credentials.mjs"))
        .env("ISSUER", s.url("/acme"))
        .env("CLIENT_ID", "acme-m2m")
        .env("CLIENT_SECRET", "acme-m2m-secret")
        .env("AUDIENCE", "https://api.acme.test")
        .env("SCOPE", "api.read")
        .env("NODE_EXTRA_CA_CERTS", s.path("certs/ca.pem"))
        .env_remove("NODE_TLS_REJECT_UNAUTHORIZED")
        .output()
        .await
        .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "openid-client run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("all") && !stdout.contains("not ok"),
        "{stdout}"
    );
    s.stop().await;
}
