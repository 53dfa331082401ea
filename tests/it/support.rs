//! Starting a real node for a test: temp directories, dev certificates, demo tenants, SQLite
//! (or a fresh PostgreSQL schema), ephemeral ports, and an HTTPS client that trusts the dev CA.
#![allow(dead_code)]

use portcullis::clock::{FixedClock, SharedClock, SystemClock};
use portcullis::config::ServerConfig;
use portcullis::server::{Listeners, Running};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const ACME: &str = include_str!("../../tenants/acme.toml");
pub const GLOBEX: &str = include_str!("../../tenants/globex.toml");
pub const GLOBEX_PROVIDER: &str = include_str!("../../providers/globex.toml");
/// The demo files' base URL, replaced by the test server's own.
pub const DEMO_BASE: &str = "https://localhost:8443";

/// Tenant `twin`: acme's file with another slug (so another issuer and cookie path) and
/// everything else identical — the same client ids, secrets, redirect URIs, API names and
/// secrets, users and passwords. An artifact of acme refused at the twin (or the reverse) can
/// only have been refused by the tenant boundary.
pub fn twin() -> String {
    let text = ACME.replace("slug = \"acme\"", "slug = \"twin\"").replace(
        "display_name = \"Acme Corporation\"",
        "display_name = \"Acme's twin\"",
    );
    assert!(
        text.contains("slug = \"twin\"") && !text.contains("slug = \"acme\""),
        "the demo tenant file changed"
    );
    text
}

/// The demo tenants plus acme's [`twin`].
pub fn with_twin(acme: String) -> Options {
    Options {
        tenants: vec![
            ("acme", acme),
            ("globex", GLOBEX.to_string()),
            ("twin", twin()),
        ],
        ..Default::default()
    }
}

pub struct Options {
    pub tenants: Vec<(&'static str, String)>,
    /// Provider files (`providers/<id>.toml`); `https://localhost:8443` in them and in the
    /// tenant files becomes this server's base URL.
    pub providers: Vec<(&'static str, String)>,
    pub clock: Option<Arc<FixedClock>>,
    pub server_extra: String,
    pub keys: String,
    pub watch_interval: u64,
    pub plain_listener: bool,
    pub postgres: bool,
    /// Share this PostgreSQL schema (another node of the same deployment) instead of a fresh one.
    pub postgres_schema: Option<String>,
    /// Connect with this URL instead of PORTCULLIS_TEST_POSTGRES_URL (e.g. as another role).
    pub postgres_url: Option<String>,
    pub max_body_bytes: usize,
    /// `[outbound] allow_networks`: internal networks the server may call (loopback by
    /// default, where the tests' upstreams and the server itself listen).
    pub outbound_allow: Vec<&'static str>,
    /// Directories outside the server's own that its tenant and provider files may name
    /// files in (`[paths] extra_file_dirs`).
    pub readable_dirs: Vec<PathBuf>,
    /// CA certificates the server trusts for its outbound requests (`[federation] ca_files`),
    /// e.g. the CA of an [`Upstreams`].
    pub trusted_cas: Vec<PathBuf>,
    /// Leave each tenant's first RSA key to be made when first needed, as a server does; by
    /// default every tenant's keys are made at start, for tests that sign or read keys directly.
    pub lazy_keys: bool,
    /// More `[database]` keys (e.g. `change_notices = "poll"`).
    pub database_extra: String,
    /// More sections, appended to the configuration (e.g. `[audit]`).
    pub sections: String,
    /// Another server's data directory (a restart on its data) instead of a fresh one.
    pub data_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            tenants: vec![("acme", ACME.to_string()), ("globex", GLOBEX.to_string())],
            providers: vec![("globex", GLOBEX_PROVIDER.to_string())],
            clock: None,
            server_extra: String::new(),
            keys: String::new(),
            watch_interval: 0,
            plain_listener: false,
            postgres: false,
            postgres_schema: None,
            postgres_url: None,
            max_body_bytes: 65536,
            lazy_keys: false,
            database_extra: String::new(),
            sections: String::new(),
            data_dir: None,
            outbound_allow: vec!["127.0.0.0/8", "::1/128"],
            readable_dirs: Vec::new(),
            trusted_cas: Vec::new(),
        }
    }
}

pub struct TestServer {
    pub running: Option<Running>,
    pub dir: tempfile::TempDir,
    pub base: String,
    pub mtls_base: String,
    pub addr: SocketAddr,
    pub mtls_addr: SocketAddr,
    pub plain_addr: Option<SocketAddr>,
    pub http: reqwest::Client,
}

/// Whether this is a CI run: the variable `CI` is set, to any value (empty included). A CI run
/// never skips a test for a missing service or tool; it fails instead.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// The PostgreSQL URL to test against (`PORTCULLIS_TEST_POSTGRES_URL`); every PostgreSQL test
/// asks here. Without one, `None` (the caller skips its PostgreSQL part and says so), but in CI
/// the test fails: a run without PostgreSQL must not pass as a green one.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("PORTCULLIS_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty());
    assert!(
        url.is_some() || !in_ci(),
        "CI is set but PORTCULLIS_TEST_POSTGRES_URL is not: the PostgreSQL tests cannot be \
         skipped in CI (scripts/test sets it and starts PostgreSQL)"
    );
    url
}

/// Whether the end-to-end tests must run (`PORTCULLIS_E2E=1`, set by scripts/test): then a
/// missing tool fails them; otherwise they skip. In CI the flag must be on, or the test fails.
pub fn e2e_required() -> bool {
    let on = std::env::var("PORTCULLIS_E2E").is_ok_and(|v| v == "1");
    assert!(
        on || !in_ci(),
        "CI is set but PORTCULLIS_E2E is not 1: the end-to-end tests cannot be skipped in CI \
         (scripts/test sets it and installs their tools)"
    );
    on
}

/// A schema name no other test uses.
pub fn unique_schema() -> String {
    let r: [u8; 8] = portcullis::secrets::random_bytes();
    format!(
        "t_{}",
        r.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

pub fn write_tenant(dir: &Path, slug: &str, text: &str) {
    std::fs::create_dir_all(dir.join("tenants")).unwrap();
    std::fs::write(dir.join("tenants").join(format!("{slug}.toml")), text).unwrap();
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(o: Options) -> Self {
        portcullis::frontdoor::tls::install_default_provider();
        let dir = tempfile::tempdir().unwrap();
        let local = "127.0.0.1:0".parse().unwrap();
        let listeners =
            Listeners::bind_addrs(local, Some(local), o.plain_listener.then_some(local), 2)
                .unwrap();
        let port = listeners.main_addr.port();
        let base = format!("https://localhost:{port}");
        for (slug, text) in &o.tenants {
            write_tenant(dir.path(), slug, &text.replace(DEMO_BASE, &base));
        }
        std::fs::create_dir_all(dir.path().join("providers")).unwrap();
        for (id, text) in &o.providers {
            std::fs::write(
                dir.path().join("providers").join(format!("{id}.toml")),
                text.replace(DEMO_BASE, &base),
            )
            .unwrap();
        }
        let mport = listeners.mtls_addr.unwrap().port();
        let database = if o.postgres {
            let url = o
                .postgres_url
                .clone()
                .or_else(postgres_url)
                .expect("PORTCULLIS_TEST_POSTGRES_URL");
            let schema = o.postgres_schema.clone().unwrap_or_else(unique_schema);
            format!(
                "url = \"{url}\"\nschema = \"{schema}\"\n{}",
                o.database_extra
            )
        } else {
            o.database_extra.clone()
        };
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_base_url = \"https://localhost:{port}\"\nmtls_base_url = \"https://localhost:{mport}\"\nmax_body_bytes = {}\nshutdown_grace_seconds = 2\n{}\n\
             [database]\n{database}\n[keys]\n{}\n[reload]\nwatch_interval_seconds = {}\nsync_interval_seconds = 3600\n[log]\nlevel = \"warn\"\n\
             [outbound]\nallow_networks = {:?}\n[paths]\nextra_file_dirs = {:?}\n{}[federation]\nca_files = {:?}\n{}\n",
            o.max_body_bytes,
            o.server_extra,
            o.keys,
            o.watch_interval,
            o.outbound_allow,
            o.readable_dirs,
            o.data_dir
                .as_ref()
                .map(|d| format!("data_dir = {:?}\n", d.display().to_string()))
                .unwrap_or_default(),
            o.trusted_cas,
            o.sections
        );
        let config = ServerConfig::from_text(
            Path::new("test.toml"),
            &text,
            &|_| None,
            dir.path().to_path_buf(),
        )
        .unwrap();
        let clock: SharedClock = match &o.clock {
            Some(c) => c.clone(),
            None => Arc::new(SystemClock),
        };
        let running = portcullis::server::start(config, clock, listeners)
            .await
            .unwrap();
        if !o.lazy_keys {
            for t in running.state.registry.all() {
                portcullis::registry::sync::signing_keys(&running.state, &t)
                    .await
                    .unwrap();
            }
        }
        let addr = running.main_addr;
        let mtls_addr = running.mtls_addr.unwrap();
        let plain_addr = running.plain_addr;
        let http = client_for(
            &dir.path().join("certs/ca.pem"),
            &[("localhost", addr)],
            None,
        );
        TestServer {
            running: Some(running),
            base: format!("https://localhost:{port}"),
            mtls_base: format!("https://localhost:{mport}"),
            dir,
            addr,
            mtls_addr,
            plain_addr,
            http,
        }
    }

    pub fn state(&self) -> &portcullis::AppState {
        &self.running.as_ref().unwrap().state
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs a client_credentials request with HTTP Basic authentication.
    pub async fn token(
        &self,
        tenant: &str,
        client: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/{tenant}/connect/token")))
            .basic_auth(client, Some(secret))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// A successful token response's JSON body.
    pub async fn token_json(
        &self,
        tenant: &str,
        client: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> serde_json::Value {
        let r = self.token(tenant, client, secret, form).await;
        assert_eq!(r.status(), 200, "token request failed");
        r.json().await.unwrap()
    }

    /// A tenant's published JWKS.
    pub async fn jwks(&self, tenant: &str) -> serde_json::Value {
        self.get_json(&format!("/{tenant}/.well-known/jwks"))
            .await
            .1
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

/// The servers a test stands up for Portcullis to call (JWK Sets, identity providers, logout
/// receivers), over HTTPS with certificates from a CA of the test's own, since the server's
/// outbound guard calls nothing else. Give [`Upstreams::ca_file`] to `Options.trusted_cas`.
pub struct Upstreams {
    pub ca: portcullis::devcerts::DevCa,
    pub dir: tempfile::TempDir,
}

impl Upstreams {
    pub fn new() -> Self {
        let ca = portcullis::devcerts::DevCa::new("Test upstreams CA").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("upstreams-ca.pem"), ca.cert_pem()).unwrap();
        Self { ca, dir }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("upstreams-ca.pem")
    }

    /// Serves `router` on `ip` (e.g. "127.0.0.1") at a free port; its base URL.
    pub async fn serve_on(&self, ip: &str, router: axum::Router) -> String {
        portcullis::frontdoor::tls::install_default_provider();
        let (addr, _task) = portcullis::devcerts::serve_https(
            &self.ca,
            &[ip, "localhost"],
            format!("{ip}:0").parse().unwrap(),
            router,
        )
        .await
        .unwrap();
        format!("https://{ip}:{}", addr.port())
    }

    pub async fn serve(&self, router: axum::Router) -> String {
        self.serve_on("127.0.0.1", router).await
    }
}

/// The body of a GET, as text.
pub async fn get_text(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// An HTTPS client that trusts only `ca_pem`, resolves the given names to local addresses and
/// optionally presents a client certificate.
pub fn client_for(
    ca_pem: &Path,
    resolve: &[(&str, SocketAddr)],
    identity_pem: Option<&str>,
) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca_pem).unwrap()).unwrap();
    let mut b = reqwest::Client::builder()
        .tls_certs_only([ca])
        .redirect(reqwest::redirect::Policy::none());
    for (name, addr) in resolve {
        b = b.resolve(name, *addr);
    }
    if let Some(pem) = identity_pem {
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// Verifies a JWT with an independent library (jsonwebtoken) against the served JWKS.
pub fn verify_jwt(
    token: &str,
    jwks: &serde_json::Value,
    issuer: &str,
    audience: &str,
) -> serde_json::Value {
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header, jwk::JwkSet};
    let header = decode_header(token).unwrap();
    let set: JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    let kid = header.kid.clone().expect("kid");
    let jwk = set.find(&kid).expect("the token's kid is in the JWKS");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub", "iat"]);
    decode::<serde_json::Value>(token, &key, &v).unwrap().claims
}

pub fn jwt_header(token: &str) -> serde_json::Value {
    use base64::Engine;
    let h = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .unwrap(),
    )
    .unwrap()
}

/// Asserts an OAuth JSON error response (RFC 6749 §5.2): status and `error`; returns the
/// `error_description` so that a test can tell which rule refused the request.
pub async fn assert_oauth_error(r: reqwest::Response, status: u16, error: &str) -> String {
    let got = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
    assert_eq!(
        (got, body["error"].as_str()),
        (status, Some(error)),
        "expected {status} {error}, got {got} {body}"
    );
    body["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Asserts the error page (never a redirect) with status and RFC error code; returns its
/// description.
pub async fn assert_page_error(r: reqwest::Response, status: u16, error: &str) -> String {
    let got = r.status().as_u16();
    assert!(
        r.headers().get("location").is_none(),
        "an error page, not a redirect"
    );
    let html = r.text().await.unwrap();
    let code = html
        .split("<code id=\"error-code\">")
        .nth(1)
        .and_then(|s| s.split("</code>").next())
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        (got, code.as_str()),
        (status, error),
        "expected an error page {status} {error}:\n{html}"
    );
    let description = html
        .split("role=\"alert\">")
        .nth(1)
        .and_then(|s| s.split("<p>").nth(1))
        .and_then(|s| s.split("</p>").next())
        .unwrap_or_default();
    unescape_html(description)
}

/// The `error` and `error_description` of an error sent back to the client by redirect
/// (RFC 6749 §4.1.2.1), asserting that it is one.
pub fn redirect_error(r: &reqwest::Response) -> (String, String) {
    assert_eq!(r.status().as_u16(), 303, "an error redirect");
    let location = r.headers()["location"].to_str().unwrap();
    let query = location.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let q: std::collections::HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    (
        q.get("error").cloned().unwrap_or_default(),
        q.get("error_description").cloned().unwrap_or_default(),
    )
}

/// Asserts a resource endpoint's refusal (RFC 6750 §3): status and the `error` of the
/// `WWW-Authenticate` challenge.
pub fn assert_bearer_error(r: &reqwest::Response, status: u16, error: &str) {
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    assert_eq!(r.status().as_u16(), status, "{challenge}");
    assert!(
        challenge.contains(&format!("error=\"{error}\"")),
        "expected error=\"{error}\" in {challenge:?}"
    );
}

fn unescape_html(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A raw TLS connection (HTTP/1.1, no client library in between) to the main listener, for tests
/// that need to control exactly when bytes are sent.
pub async fn raw_tls(
    ca_pem: &Path,
    addr: SocketAddr,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca_pem).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// The head of a client_credentials request for acme-m2m whose body is 29 bytes long.
pub const TOKEN_REQUEST_HEAD: &str = "POST /acme/connect/token HTTP/1.1\r\nHost: localhost\r\n\
    Authorization: Basic YWNtZS1tMm06YWNtZS1tMm0tc2VjcmV0\r\n\
    Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\n\r\n";

/// Each rule holds on both engines: `NAME::on_sqlite` and `NAME::on_postgresql` run the test
/// `NAME(pg)`.
macro_rules! on_both_engines {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn on_sqlite() {
                super::$name(false).await
            }
            #[tokio::test]
            async fn on_postgresql() {
                if crate::support::postgres_url().is_none() {
                    eprintln!("PORTCULLIS_TEST_POSTGRES_URL is not set: PostgreSQL part skipped");
                    return;
                }
                super::$name(true).await
            }
        }
    };
}
