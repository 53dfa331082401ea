//! Robustness end to end: arbitrary requests — bodies, query strings,
//! headers, request objects, DPoP proofs, forwarded client certificates, admin definitions —
//! against one running server per test. Every answer is a client error in the protocol's own
//! format (an OAuth JSON error, or the HTML error page at browser endpoints), a redirect that
//! goes nowhere but the tenant or a registered URI, or a genuine success; never a 5xx. The
//! server is healthy afterwards.
//!
//! The pure-function properties are in `src/robustness_tests.rs`. Tests are named `robust_*`;
//! `PROPTEST_CASES` raises the case count (README, "The two commands").

use crate::support::*;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use portcullis::keys::{Alg, Signer, signer::generate_pkcs8};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use serde_json::{Value, json};

/// `default` cases, or `PROPTEST_CASES` when set; failures are kept next to this file.
fn config(default: u32, test: &'static str) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        source_file: Some(file!()),
        test_name: Some(test),
        failure_persistence: std::env::var_os("PROPTEST_DISABLE_FAILURE_PERSISTENCE")
            .is_none()
            .then(|| -> Box<dyn proptest::test_runner::FailurePersistence> {
                Box::new(FileFailurePersistence::WithSource("proptest-regressions"))
            }),
        ..Config::default()
    }
}

/// A runtime whose workers keep serving between the cases.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The codes an answer may carry (RFC 6749 §5.2, §4.1.2.1; RFC 6750 §3.1; RFC 7009 §2.2.1;
/// RFC 8707; RFC 9101; RFC 9126; RFC 9449; OIDC Core §3.1.2.6; the admin API's own).
const CODES: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "access_denied",
    "unsupported_response_type",
    "login_required",
    "consent_required",
    "interaction_required",
    "invalid_request_uri",
    "invalid_request_object",
    "invalid_dpop_proof",
    "use_dpop_nonce",
    "invalid_token",
    "insufficient_scope",
    "unsupported_token_type",
    "not_found",
    "conflict",
];

const WEB_CB: &str = "http://127.0.0.1:9000/callback";
/// Every redirect URI acme's clients registered (and the request-object client below).
const REGISTERED: &[&str] = &[
    WEB_CB,
    "http://127.0.0.1:9000/spa/callback",
    "http://127.0.0.1:9000/",
    "http://127.0.0.1:9000/spa/",
    "http://127.0.0.1:9000/jar",
];

/// An answer in the protocol's format, or a success; never a server error.
struct Answer {
    status: u16,
    location: Option<String>,
    content_type: String,
    www_authenticate: Option<String>,
    body: String,
}

impl Answer {
    async fn read(r: reqwest::Response) -> Self {
        let header = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (location, content_type, www_authenticate) = (
            header("location"),
            header("content-type").unwrap_or_default(),
            header("www-authenticate"),
        );
        Self {
            status: r.status().as_u16(),
            location,
            content_type,
            www_authenticate,
            body: r.text().await.unwrap_or_default(),
        }
    }

    fn json_error(&self) -> Option<String> {
        serde_json::from_str::<Value>(&self.body)
            .ok()?
            .get("error")?
            .as_str()
            .map(str::to_string)
    }

    fn page_error(&self) -> Option<String> {
        let code = self.body.split("<code id=\"error-code\">").nth(1)?;
        Some(code.split("</code>").next()?.to_string())
    }

    /// Not a 5xx; an error is a JSON OAuth error with a known code (or a bare RFC 6750 §3.1
    /// challenge, when no credentials came at all).
    /// The HTTP layer's own refusal of a head too large to read (RFC 9110 §15.5.15, RFC 6585
    /// §5), answered before any endpoint runs.
    fn is_oversized_head(&self) -> bool {
        matches!(self.status, 414 | 431) && self.body.is_empty()
    }

    fn is_oauth(&self) -> Result<(), TestCaseError> {
        prop_assert!(self.status < 500, "{} {}", self.status, self.body);
        if self.status >= 400 && !self.is_oversized_head() {
            if self.status == 401 && self.body.is_empty() {
                prop_assert!(
                    self.www_authenticate.is_some(),
                    "a bare 401 needs a challenge"
                );
                return Ok(());
            }
            prop_assert!(
                self.content_type.starts_with("application/json"),
                "{} {:?}: {}",
                self.status,
                self.content_type,
                self.body
            );
            let code = self.json_error().unwrap_or_default();
            prop_assert!(
                CODES.contains(&code.as_str()),
                "{} {}",
                self.status,
                self.body
            );
        }
        Ok(())
    }

    /// Browser endpoints: an HTML error page (or a JSON error for what is not a page, e.g. an
    /// unknown tenant), a page, or a redirect to the tenant or a registered URI.
    fn is_browser_answer(&self, base: &str) -> Result<(), TestCaseError> {
        prop_assert!(self.status < 500, "{} {}", self.status, self.body);
        match self.status {
            300..=399 => {
                let to = self.location.clone().unwrap_or_default();
                let before_query = to.split(['?', '#']).next().unwrap_or_default();
                let own = (to.starts_with('/') && !to.starts_with("//"))
                    || to.starts_with(&format!("{base}/"));
                prop_assert!(
                    own || REGISTERED.contains(&before_query),
                    "redirected to {:?}",
                    to
                );
            }
            400..=499 if self.is_oversized_head() => {}
            400..=499 => {
                let code = if self.content_type.starts_with("text/html") {
                    self.page_error()
                } else {
                    self.json_error()
                }
                .unwrap_or_default();
                prop_assert!(
                    CODES.contains(&code.as_str()),
                    "{} {}",
                    self.status,
                    self.body
                );
            }
            _ => prop_assert!(
                self.content_type.starts_with("text/html"),
                "{}",
                self.status
            ),
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Input generators (the unit tests' are private to the library)

#[derive(Debug, Clone)]
enum Edit {
    Flip(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Truncate(Index),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let e = prop_oneof![
        (any::<Index>(), 1u8..).prop_map(|(i, x)| Edit::Flip(i, x)),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<Index>(), 1usize..32).prop_map(|(i, n)| Edit::Delete(i, n)),
        any::<Index>().prop_map(Edit::Truncate),
    ];
    prop::collection::vec(e, 1..4)
}

fn apply(mut data: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = data.len();
        match e {
            Edit::Flip(i, x) if len > 0 => data[i.index(len)] ^= x,
            Edit::Insert(i, b) => {
                let p = i.index(len + 1);
                data.splice(p..p, b.iter().copied());
            }
            Edit::Delete(i, n) if len > 0 => {
                let p = i.index(len);
                data.drain(p..(p + n).min(len));
            }
            Edit::Truncate(i) if len > 0 => data.truncate(i.index(len)),
            _ => {}
        }
    }
    data
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        prop::string::string_regex(&format!("(?s).{{0,{max}}}")).unwrap(),
        prop::string::string_regex(&format!("[ -~]{{0,{max}}}")).unwrap(),
    ]
}

const PARAMS: &[&str] = &[
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "scope",
    "resource",
    "refresh_token",
    "token",
    "token_type_hint",
    "response_type",
    "response_mode",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "id_token_hint",
    "login_hint",
    "request",
    "request_uri",
    "dpop_jkt",
    "acr_values",
    "idp_hint",
    "post_logout_redirect_uri",
    "logout_hint",
    "_signed",
];

const VALUES: &[&str] = &[
    "client_credentials",
    "authorization_code",
    "refresh_token",
    "code",
    "token",
    "id_token",
    "openid",
    "openid profile offline_access",
    "api.read",
    "api.read api.write",
    "S256",
    "plain",
    "none",
    "login consent",
    "query",
    "form_post",
    "-1",
    "9223372036854775808",
    "acme-m2m",
    "acme-web",
    "acme-spa",
    "acme-jar",
    "acme-mtls",
    "globex-m2m",
    "https://api.acme.test",
    "https://evil.example/",
    WEB_CB,
    "http://127.0.0.1:9000/",
    "http://127.0.0.1:9001/callback",
    "//evil.example",
    "urn:ietf:params:oauth:request_uri:x",
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    "eyJhbGciOiJub25lIn0.e30.",
    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    "idp:globex",
    "idp:nope",
    "%",
    "%FF",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(VALUES).prop_map(str::to_string),
        2 => text(48),
        1 => (1usize..5000).prop_map(|n| "x".repeat(n)),
    ]
}

fn param() -> impl Strategy<Value = (String, String)> {
    (
        prop_oneof![
            4 => prop::sample::select(PARAMS).prop_map(str::to_string),
            1 => text(10),
        ],
        value(),
    )
}

/// A change to a request that would succeed: the checks behind the first ones get exercised.
#[derive(Debug, Clone)]
enum Change {
    Set(Index, String),
    Remove(Index),
    Add(String, String),
    Duplicate(Index),
}

fn changes() -> impl Strategy<Value = Vec<Change>> {
    let c = prop_oneof![
        3 => (any::<Index>(), value()).prop_map(|(i, v)| Change::Set(i, v)),
        1 => any::<Index>().prop_map(Change::Remove),
        2 => param().prop_map(|(k, v)| Change::Add(k, v)),
        1 => any::<Index>().prop_map(Change::Duplicate),
    ];
    prop::collection::vec(c, 0..3)
}

fn changed(base: &[(&str, &str)], changes: &[Change]) -> Vec<u8> {
    let mut p: Vec<(String, String)> = base
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for c in changes {
        let n = p.len();
        match c {
            Change::Set(i, v) if n > 0 => p[i.index(n)].1 = v.clone(),
            Change::Remove(i) if n > 0 => {
                p.remove(i.index(n));
            }
            Change::Add(k, v) => p.push((k.clone(), v.clone())),
            Change::Duplicate(i) if n > 0 => p.push(p[i.index(n)].clone()),
            _ => {}
        }
    }
    encode(&p)
}

fn encode(pairs: &[(String, String)]) -> Vec<u8> {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish().into_bytes()
}

fn form_body() -> impl Strategy<Value = Vec<u8>> {
    let pairs = || prop::collection::vec(param(), 0..8);
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..400),
        4 => pairs().prop_map(|p| encode(&p)),
        1 => pairs().prop_map(|p| p
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes()),
    ]
}

/// A query string as a browser would send it: bytes outside printable ASCII percent-encoded,
/// the rest (`%`, `&`, `=`, `+` included) raw.
fn as_query(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if (0x21..0x7f).contains(&b) && b != b'#' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        text(30).prop_map(Value::String),
        prop::sample::select(VALUES).prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text(6), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A header value that HTTP can carry, from arbitrary bytes (obs-text included).
fn header_value(bytes: &[u8]) -> Option<reqwest::header::HeaderValue> {
    reqwest::header::HeaderValue::from_bytes(bytes).ok()
}

fn es256() -> Signer {
    Signer::from_pkcs8(Alg::ES256, &generate_pkcs8(Alg::ES256, 2048).unwrap()).unwrap()
}

/// A proof signed by a fresh key, with claims of any shape.
fn dpop_proof(key: &Signer, claims: &Value) -> String {
    key.sign_with_header(
        &json!({"typ": "dpop+jwt", "jwk": key.bare_public_jwk()}),
        claims,
    )
    .unwrap()
}

/// The health check and an ordinary token request still work.
async fn still_healthy(server: &TestServer) {
    let (status, _) = server.get_json("/health/ready").await;
    assert_eq!(status, 200, "the server is not ready after the run");
    server
        .token_json(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[("grant_type", "client_credentials")],
        )
        .await;
}

// ---------------------------------------------------------------------------------------------
// Token, PAR, introspection, revocation, userinfo

#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Token,
    Par,
    Introspect,
    Revoke,
    Userinfo,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Self::Token => "connect/token",
            Self::Par => "connect/par",
            Self::Introspect => "connect/introspect",
            Self::Revoke => "connect/revocation",
            Self::Userinfo => "connect/userinfo",
        }
    }
}

/// Who the request says it is.
#[derive(Debug, Clone)]
enum Credentials {
    None,
    M2m,
    Web,
    Api,
    Bearer,
    Raw(Vec<u8>),
    Basic(Vec<u8>),
}

/// What the DPoP header holds.
#[derive(Debug, Clone)]
enum Dpop {
    None,
    Raw(Vec<u8>),
    Signed(Value),
}

#[derive(Debug, Clone)]
struct Call {
    tenant: &'static str,
    endpoint: Endpoint,
    get: bool,
    content_type: Option<String>,
    credentials: Credentials,
    dpop: Dpop,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
}

/// Requests whose answer is pinned down, besides "not a server error".
#[derive(Debug, Clone)]
enum Pinned {
    /// A valid client_credentials request with a DPoP header that is not a valid proof:
    /// `invalid_dpop_proof` (RFC 9449 §5).
    BadProof(Dpop),
    /// acme-web redeeming a code or refresh token it never got: `invalid_grant` (RFC 6749 §5.2).
    ForgedGrant { refresh: bool, value: String },
    /// acme-mtls with a damaged certificate from the trusted proxy: `invalid_client` (RFC 8705
    /// §2), unless the damage left it intact.
    ForwardedCertificate(Vec<Edit>),
}

/// A request that succeeds as it is: endpoint, credentials, parameters.
type Profile = (Endpoint, Credentials, Vec<(&'static str, &'static str)>);

/// The requests near which to search. `$TOKEN` stands for a live access token.
fn profiles() -> Vec<Profile> {
    let pkce = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    vec![
        (
            Endpoint::Token,
            Credentials::M2m,
            vec![("grant_type", "client_credentials"), ("scope", "api.read")],
        ),
        (
            Endpoint::Token,
            Credentials::None,
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "acme-m2m"),
                ("client_secret", "acme-m2m-secret"),
                ("resource", "https://api.acme.test"),
            ],
        ),
        (
            Endpoint::Token,
            Credentials::Web,
            vec![
                ("grant_type", "authorization_code"),
                ("code", "x"),
                ("redirect_uri", WEB_CB),
                (
                    "code_verifier",
                    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                ),
            ],
        ),
        (
            Endpoint::Token,
            Credentials::Web,
            vec![("grant_type", "refresh_token"), ("refresh_token", "x")],
        ),
        (
            Endpoint::Par,
            Credentials::Web,
            vec![
                ("response_type", "code"),
                ("client_id", "acme-web"),
                ("redirect_uri", WEB_CB),
                ("scope", "openid profile"),
                ("state", "s"),
                ("nonce", "n"),
                ("code_challenge", pkce),
                ("code_challenge_method", "S256"),
            ],
        ),
        (
            Endpoint::Introspect,
            Credentials::Api,
            vec![("token", "$TOKEN"), ("token_type_hint", "access_token")],
        ),
        (Endpoint::Revoke, Credentials::M2m, vec![("token", "x")]),
        (Endpoint::Userinfo, Credentials::Bearer, vec![]),
    ]
}

fn near_valid_call() -> impl Strategy<Value = Call> {
    let n = profiles().len();
    (
        0..n,
        changes(),
        prop_oneof![8 => Just("acme"), 1 => Just("twin"), 1 => Just("globex")],
        proptest::option::weighted(0.2, credentials()),
        prop_oneof![6 => Just(Dpop::None), 1 => dpop()],
        prop::collection::vec(header(), 0..2),
    )
        .prop_map(|(i, changes, tenant, other_credentials, dpop, headers)| {
            let (endpoint, credentials, params) = profiles().swap_remove(i);
            Call {
                tenant,
                endpoint,
                get: false,
                content_type: Some("application/x-www-form-urlencoded".into()),
                credentials: other_credentials.unwrap_or(credentials),
                dpop,
                headers,
                body: changed(&params, &changes),
            }
        })
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![1 => arbitrary_call(), 3 => near_valid_call()]
}

fn credentials() -> impl Strategy<Value = Credentials> {
    prop_oneof![
        Just(Credentials::None),
        Just(Credentials::M2m),
        Just(Credentials::Web),
        Just(Credentials::Api),
        Just(Credentials::Bearer),
        prop::collection::vec(any::<u8>(), 0..100).prop_map(Credentials::Raw),
        (
            text(20),
            text(20),
            prop::sample::select(&[":", "", "::"][..])
        )
            .prop_map(|(a, b, sep)| { Credentials::Basic(format!("{a}{sep}{b}").into_bytes()) }),
        prop::collection::vec(any::<u8>(), 0..60).prop_map(Credentials::Basic),
    ]
}

fn dpop() -> impl Strategy<Value = Dpop> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200).prop_map(Dpop::Raw),
        json_value().prop_map(Dpop::Signed),
    ]
}

fn header() -> impl Strategy<Value = (&'static str, Vec<u8>)> {
    (
        prop::sample::select(
            &[
                "cookie",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-forwarded-host",
                "x-client-cert",
                "host",
                "accept",
                "origin",
            ][..],
        ),
        prop::collection::vec(any::<u8>(), 0..120),
    )
}

fn arbitrary_call() -> impl Strategy<Value = Call> {
    (
        prop::sample::select(&["acme", "globex", "twin", "nope"][..]),
        prop::sample::select(vec![
            Endpoint::Token,
            Endpoint::Par,
            Endpoint::Introspect,
            Endpoint::Revoke,
            Endpoint::Userinfo,
        ]),
        prop::bool::weighted(0.1),
        prop_oneof![
            6 => Just(Some("application/x-www-form-urlencoded".to_string())),
            1 => Just(Some("application/x-www-form-urlencoded; charset=ISO-8859-1".to_string())),
            1 => Just(Some("application/json".to_string())),
            1 => Just(None),
            1 => text(30).prop_map(Some),
        ],
        credentials(),
        prop_oneof![3 => Just(Dpop::None), 2 => dpop()],
        prop::collection::vec(header(), 0..3),
        form_body(),
    )
        .prop_map(
            |(tenant, endpoint, get, content_type, credentials, dpop, headers, body)| Call {
                tenant,
                endpoint,
                get,
                content_type,
                credentials,
                dpop,
                headers,
                body,
            },
        )
}

fn pinned() -> impl Strategy<Value = Pinned> {
    prop_oneof![
        prop_oneof![
            prop::collection::vec(any::<u8>(), 1..200).prop_map(Dpop::Raw),
            json_value().prop_map(Dpop::Signed),
        ]
        .prop_map(Pinned::BadProof),
        (
            any::<bool>(),
            prop_oneof![text(60), "[A-Za-z0-9_-]{1,200}"]
                // U+FFFD is refused as a sign of invalid UTF-8 (validation/form.rs), before the
                // grant is read.
                .prop_filter("a value", |v| !v.is_empty() && !v.contains('\u{FFFD}'))
        )
            .prop_map(|(refresh, value)| Pinned::ForgedGrant { refresh, value }),
        edits().prop_map(Pinned::ForwardedCertificate),
    ]
}

struct Endpoints {
    server: TestServer,
    /// A live access token of acme-m2m.
    m2m_token: String,
    /// The demo client certificate (PEM), which acme-mtls registered by subject.
    client_pem: Vec<u8>,
}

impl Endpoints {
    async fn start() -> Self {
        let server = TestServer::start_with(Options {
            // The test client is the trusted proxy: forwarded headers and certificates count.
            server_extra: concat!(
                "trusted_proxies = [\"127.0.0.0/8\", \"::1/128\"]\n",
                "client_cert_header = \"x-client-cert\"\n",
            )
            .into(),
            ..with_twin(ACME.to_string())
        })
        .await;
        let token = server
            .token_json(
                "acme",
                "acme-m2m",
                "acme-m2m-secret",
                &[("grant_type", "client_credentials")],
            )
            .await["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        let client_pem = std::fs::read(server.path("certs/demo-client.pem")).unwrap();
        Self {
            server,
            m2m_token: token,
            client_pem,
        }
    }

    fn dpop_header(&self, tenant: &str, endpoint: Endpoint, d: &Dpop) -> Option<Vec<u8>> {
        match d {
            Dpop::None => None,
            Dpop::Raw(b) => Some(b.clone()),
            Dpop::Signed(claims) => {
                // A real signature over claims of any shape, and sometimes the right method and
                // URL with them.
                let mut claims = claims.clone();
                if let Some(m) = claims.as_object_mut()
                    && m.len() % 2 == 0
                {
                    m.insert("htm".into(), json!("POST"));
                    m.insert(
                        "htu".into(),
                        json!(self.server.url(&format!("/{tenant}/{}", endpoint.path()))),
                    );
                }
                Some(dpop_proof(&es256(), &claims).into_bytes())
            }
        }
    }

    async fn send(&self, c: &Call) -> Answer {
        let url = self
            .server
            .url(&format!("/{}/{}", c.tenant, c.endpoint.path()));
        let body = String::from_utf8(c.body.clone())
            .map(|b| b.replace("%24TOKEN", &self.m2m_token).into_bytes())
            .unwrap_or_else(|_| c.body.clone());
        let mut r = if c.get {
            self.server.http.get(&url)
        } else {
            self.server.http.post(&url).body(body)
        };
        if let Some(ct) = c
            .content_type
            .as_deref()
            .and_then(|t| header_value(t.as_bytes()))
        {
            r = r.header("content-type", ct);
        }
        let authorization: Option<Vec<u8>> = match &c.credentials {
            Credentials::None => None,
            Credentials::M2m => Some(basic("acme-m2m", "acme-m2m-secret")),
            Credentials::Web => Some(basic("acme-web", "acme-web-secret")),
            Credentials::Api => Some(basic("https%3A%2F%2Fapi.acme.test", "acme-api-secret")),
            Credentials::Bearer => Some(format!("Bearer {}", self.m2m_token).into_bytes()),
            Credentials::Raw(b) => Some(b.clone()),
            Credentials::Basic(b) => Some(format!("Basic {}", STANDARD.encode(b)).into_bytes()),
        };
        if let Some(v) = authorization.as_deref().and_then(header_value) {
            r = r.header("authorization", v);
        }
        if let Some(v) = self
            .dpop_header(c.tenant, c.endpoint, &c.dpop)
            .as_deref()
            .and_then(header_value)
        {
            r = r.header("dpop", v);
        }
        for (name, value) in &c.headers {
            if let Some(v) = header_value(value) {
                r = r.header(*name, v);
            }
        }
        Answer::read(r.send().await.unwrap()).await
    }

    async fn pinned(&self, p: &Pinned) -> Result<(), TestCaseError> {
        let token_url = self.server.url("/acme/connect/token");
        match p {
            Pinned::BadProof(d) => {
                let Some(proof) = self
                    .dpop_header("acme", Endpoint::Token, d)
                    .as_deref()
                    .and_then(header_value)
                else {
                    return Ok(());
                };
                let a = Answer::read(
                    self.server
                        .http
                        .post(&token_url)
                        .basic_auth("acme-m2m", Some("acme-m2m-secret"))
                        .header("dpop", proof)
                        .form(&[("grant_type", "client_credentials")])
                        .send()
                        .await
                        .unwrap(),
                )
                .await;
                a.is_oauth()?;
                let code = a.json_error();
                prop_assert_eq!(
                    (a.status, code.as_deref()),
                    (400, Some("invalid_dpop_proof")),
                    "{}",
                    a.body
                );
            }
            Pinned::ForgedGrant { refresh, value } => {
                let form: Vec<(&str, &str)> = if *refresh {
                    vec![("grant_type", "refresh_token"), ("refresh_token", value)]
                } else {
                    vec![
                        ("grant_type", "authorization_code"),
                        ("code", value),
                        ("redirect_uri", WEB_CB),
                        (
                            "code_verifier",
                            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                        ),
                    ]
                };
                let a = Answer::read(
                    self.server
                        .http
                        .post(&token_url)
                        .basic_auth("acme-web", Some("acme-web-secret"))
                        .form(&form)
                        .send()
                        .await
                        .unwrap(),
                )
                .await;
                a.is_oauth()?;
                let code = a.json_error();
                prop_assert_eq!(
                    (a.status, code.as_deref()),
                    (400, Some("invalid_grant")),
                    "{}",
                    a.body
                );
            }
            Pinned::ForwardedCertificate(e) => {
                let pem = apply(self.client_pem.clone(), e);
                let a = Answer::read(
                    self.server
                        .http
                        .post(&token_url)
                        .header("x-client-cert", escaped(&pem))
                        .form(&[
                            ("grant_type", "client_credentials"),
                            ("client_id", "acme-mtls"),
                        ])
                        .send()
                        .await
                        .unwrap(),
                )
                .await;
                a.is_oauth()?;
                if a.status == 200 {
                    // Only a PEM that still carries the very certificate (e.g. damage to the
                    // text around its armour).
                    use rustls::pki_types::{CertificateDer, pem::PemObject};
                    let original = CertificateDer::from_pem_slice(&self.client_pem).unwrap();
                    let got = CertificateDer::from_pem_slice(&pem).ok();
                    prop_assert_eq!(
                        got.as_ref(),
                        Some(&original),
                        "a damaged certificate authenticated"
                    );
                } else {
                    let code = a.json_error();
                    prop_assert_eq!(
                        (a.status, code.as_deref()),
                        (401, Some("invalid_client")),
                        "{}",
                        a.body
                    );
                }
            }
        }
        Ok(())
    }
}

/// URL-encoding as nginx's `$ssl_client_escaped_cert` does it (RFC 3986: a space is `%20`).
fn escaped(pem: &[u8]) -> String {
    pem.iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn basic(id: &str, secret: &str) -> Vec<u8> {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))).into_bytes()
}

#[test]
fn robust_token_par_introspection_revocation_and_userinfo_answer_anything_with_oauth_errors() {
    let rt = runtime();
    let f = rt.block_on(Endpoints::start());
    // The pinned paths work at all: the genuine forwarded certificate authenticates.
    rt.block_on(async {
        let r = f
            .server
            .http
            .post(f.server.url("/acme/connect/token"))
            .header("x-client-cert", escaped(&f.client_pem))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "acme-mtls"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "the forwarded demo certificate authenticates"
        );
    });
    let mut runner = TestRunner::new(config(
        160,
        "robust_token_par_introspection_revocation_and_userinfo_answer_anything_with_oauth_errors",
    ));
    let strategy = prop_oneof![3 => call().prop_map(Ok), 1 => pinned().prop_map(Err)];
    let result = runner.run(&strategy, |input| {
        rt.block_on(async {
            match input {
                Ok(c) => f.send(&c).await.is_oauth(),
                Err(p) => f.pinned(&p).await,
            }
        })
    });
    rt.block_on(still_healthy(&f.server));
    rt.block_on(f.server.stop());
    result.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Authorization and end-session endpoints, request objects

/// What a request object is.
#[derive(Debug, Clone)]
enum Object {
    None,
    /// Signed with the client's registered key, over claims of any shape (near-valid ones too).
    Signed(Vec<(String, Value)>),
    /// Signed with a key nobody registered.
    Stranger(Vec<(String, Value)>),
    /// A registered-key object, damaged after signing.
    Damaged(Vec<Edit>),
    Raw(String),
}

#[derive(Debug, Clone)]
struct Visit {
    tenant: &'static str,
    end_session: bool,
    post: bool,
    /// Changes to a request that would succeed, or
    base: Option<Vec<Change>>,
    /// an arbitrary query string or body.
    query: Vec<u8>,
    object: Object,
    client_id: Option<&'static str>,
    cookie: Option<Vec<u8>>,
}

fn claim() -> impl Strategy<Value = (String, Value)> {
    prop_oneof![
        3 => (prop::sample::select(PARAMS), prop::sample::select(VALUES))
            .prop_map(|(k, v)| (k.to_string(), json!(v))),
        2 => (prop::sample::select(PARAMS).prop_map(str::to_string), json_value()),
        1 => (
            prop::sample::select(&["iss", "aud", "exp", "nbf", "iat", "jti"][..])
                .prop_map(str::to_string),
            json_value(),
        ),
    ]
}

fn visit() -> impl Strategy<Value = Visit> {
    let object = prop_oneof![
        3 => Just(Object::None),
        2 => prop::collection::vec(claim(), 0..10).prop_map(Object::Signed),
        1 => prop::collection::vec(claim(), 0..6).prop_map(Object::Stranger),
        1 => edits().prop_map(Object::Damaged),
        1 => text(200).prop_map(Object::Raw),
    ];
    (
        prop_oneof![8 => Just("acme"), 1 => Just("globex"), 1 => Just("nope")],
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.3),
        proptest::option::weighted(0.6, changes()),
        form_body(),
        object,
        prop::sample::select(vec![
            Some("acme-jar"),
            Some("acme-web"),
            Some("nobody"),
            None,
        ]),
        proptest::option::weighted(
            0.2,
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..100),
                "[a-z.]{1,20}=[ -~]{0,120}".prop_map(String::into_bytes),
            ],
        ),
    )
        .prop_map(
            |(tenant, end_session, post, base, query, object, client_id, cookie)| Visit {
                tenant,
                end_session,
                post,
                base,
                query,
                object,
                client_id,
                cookie,
            },
        )
}

struct Browser {
    server: TestServer,
    key: Signer,
    stranger: Signer,
}

/// acme, with a client that signs request objects with `key` (RFC 9101).
fn acme_with_request_object_client(key: &Signer) -> String {
    let jwk = key.public_jwk();
    let members: Vec<String> = jwk
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    format!(
        "{ACME}\n[[clients]]\nclient_id = \"acme-jar\"\npublic = true\n\
         grant_types = [\"authorization_code\"]\nscopes = [\"openid\", \"profile\"]\n\
         redirect_uris = [\"http://127.0.0.1:9000/jar\"]\njwks = {{ keys = [{{ {} }}] }}\n",
        members.join(", ")
    )
}

impl Browser {
    async fn start() -> Self {
        let key = es256();
        let server = TestServer::start_with(Options {
            tenants: vec![
                ("acme", acme_with_request_object_client(&key)),
                ("globex", GLOBEX.to_string()),
            ],
            ..Default::default()
        })
        .await;
        Self {
            server,
            key,
            stranger: es256(),
        }
    }

    fn valid_claims(&self) -> serde_json::Map<String, Value> {
        json!({
            "iss": "acme-jar", "aud": self.server.url("/acme"), "client_id": "acme-jar",
            "response_type": "code", "redirect_uri": "http://127.0.0.1:9000/jar", "scope": "openid",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256", "exp": now() + 300, "jti": B64.encode(portcullis::secrets::random_bytes::<12>()),
        })
        .as_object()
        .unwrap()
        .clone()
    }

    /// The request object and whether it is forged (then the request must be refused).
    fn object(&self, o: &Object) -> Option<(String, bool)> {
        let sign = |key: &Signer, changes: &[(String, Value)]| {
            let mut claims = self.valid_claims();
            for (k, v) in changes {
                claims.insert(k.clone(), v.clone());
            }
            key.sign_jwt("oauth-authz-req+jwt", &Value::Object(claims))
                .unwrap()
        };
        match o {
            Object::None => None,
            Object::Signed(changes) => Some((sign(&self.key, changes), false)),
            Object::Stranger(changes) => Some((sign(&self.stranger, changes), true)),
            Object::Damaged(e) => {
                let genuine = sign(&self.key, &[]);
                let damaged =
                    String::from_utf8_lossy(&apply(genuine.clone().into_bytes(), e)).into_owned();
                let forged = damaged != genuine;
                Some((damaged, forged))
            }
            Object::Raw(s) => Some((s.clone(), true)),
        }
    }

    async fn send(&self, v: &Visit) -> Result<(), TestCaseError> {
        let path = if v.end_session {
            "connect/endsession"
        } else {
            "connect/authorize"
        };
        let object = self.object(&v.object);
        let mut body = match (&object, &v.base) {
            (None, Some(changes)) if v.end_session => changed(
                &[
                    ("client_id", "acme-web"),
                    ("post_logout_redirect_uri", "http://127.0.0.1:9000/"),
                    ("state", "s"),
                ],
                changes,
            ),
            (None, Some(changes)) => changed(
                &[
                    ("client_id", "acme-web"),
                    ("response_type", "code"),
                    ("redirect_uri", WEB_CB),
                    ("scope", "openid profile offline_access"),
                    ("state", "s"),
                    ("nonce", "n"),
                    (
                        "code_challenge",
                        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                    ),
                    ("code_challenge_method", "S256"),
                ],
                changes,
            ),
            _ => v.query.clone(),
        };
        if let Some((jwt, _)) = &object {
            let mut extra = vec![("request".to_string(), jwt.clone())];
            if let Some(id) = v.client_id {
                extra.push(("client_id".into(), id.into()));
            }
            if !body.is_empty() {
                body.push(b'&');
            }
            body.extend(encode(&extra));
        }
        let url = self.server.url(&format!("/{}/{path}", v.tenant));
        let mut r = if v.post {
            self.server
                .http
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
        } else {
            self.server.http.get(format!("{url}?{}", as_query(&body)))
        };
        if let Some(c) = v.cookie.as_deref().and_then(header_value) {
            r = r.header("cookie", c);
        }
        let a = Answer::read(r.send().await.unwrap()).await;
        a.is_browser_answer(&self.server.base)?;
        // The end-session endpoint reads no request object; an empty one is no object
        // (RFC 6749 §3.1).
        if let (Some((jwt, true)), false) = (&object, v.end_session)
            && !jwt.is_empty()
        {
            prop_assert!(
                (400..500).contains(&a.status),
                "a forged request object got {} {:?}",
                a.status,
                a.location
            );
        }
        Ok(())
    }
}

fn now() -> i64 {
    use portcullis::clock::Clock;
    portcullis::clock::SystemClock.now()
}

#[test]
fn robust_authorize_and_end_session_answer_anything_with_error_pages_or_safe_redirects() {
    let rt = runtime();
    let b = rt.block_on(Browser::start());
    // The generator reaches the accepting path: a genuine request object leads to the login page.
    rt.block_on(async {
        let jwt = b
            .key
            .sign_jwt("oauth-authz-req+jwt", &Value::Object(b.valid_claims()))
            .unwrap();
        let url = format!(
            "{}?{}",
            b.server.url("/acme/connect/authorize"),
            String::from_utf8(encode(&[
                ("client_id".into(), "acme-jar".into()),
                ("request".into(), jwt)
            ]))
            .unwrap()
        );
        let r = b.server.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let to = r.headers()["location"].to_str().unwrap();
        assert!(to.contains("/acme/account/login"), "{to}");
    });
    let mut runner = TestRunner::new(config(
        160,
        "robust_authorize_and_end_session_answer_anything_with_error_pages_or_safe_redirects",
    ));
    let result = runner.run(&visit(), |v| rt.block_on(b.send(&v)));
    rt.block_on(still_healthy(&b.server));
    rt.block_on(b.server.stop());
    result.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Admin API

#[derive(Debug, Clone)]
struct AdminCall {
    method: &'static str,
    id: Option<String>,
    query: Option<String>,
    json: bool,
    body: Vec<u8>,
}

fn definition() -> Value {
    json!({
        "id": "corp", "kind": "oidc", "display_name": "Corp", "domains": ["corp.example"],
        "oidc": {"issuer": "https://idp.example", "client_id": "c", "client_secret": "s3cret",
                 "scopes": ["openid", "email"]},
        "claims": {"email": "mail"}, "provisioning": {"jit": true}
    })
}

fn admin_call() -> impl Strategy<Value = AdminCall> {
    let key = prop_oneof![
        prop::sample::select(
            &[
                "id",
                "kind",
                "display_name",
                "enabled",
                "listed",
                "domains",
                "oidc",
                "saml",
                "claims",
                "provisioning",
                "issuer",
                "client_id",
                "client_secret",
                "scopes",
                "metadata_xml",
                "metadata_url",
                "sp_signing_key",
                "client_secret_file",
                "link_by_verified_email",
            ][..]
        )
        .prop_map(str::to_string),
        text(6),
    ];
    let edit = (key, any::<bool>(), proptest::option::of(json_value()));
    let body = prop_oneof![
        3 => prop::collection::vec(edit, 0..4).prop_map(|edits| {
            let mut v = definition();
            for (k, nested, value) in edits {
                let target = if nested { &mut v["oidc"] } else { &mut v };
                if let Some(o) = target.as_object_mut() {
                    match value {
                        Some(value) => o.insert(k, value),
                        None => o.remove(&k),
                    };
                }
            }
            serde_json::to_vec(&v).unwrap()
        }),
        1 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ];
    (
        prop::sample::select(&["POST", "PUT", "PATCH", "GET", "DELETE"][..]),
        prop::bool::weighted(0.9),
        proptest::option::of(prop_oneof![
            Just("corp".to_string()),
            "[a-z0-9._-]{1,70}",
            text(12).prop_map(|s| form_urlencoded::byte_serialize(s.as_bytes()).collect()),
            Just("%FF".to_string()),
        ]),
        proptest::option::weighted(
            0.2,
            prop_oneof![
                "(after=[a-z%0-9]{0,8}&)?limit=-?[0-9]{1,20}",
                "limit=[a-z]{1,5}",
                text(30).prop_map(|t| as_query(t.as_bytes())),
            ],
        ),
        prop::bool::weighted(0.9),
        body,
    )
        .prop_map(|(method, usual, id, query, json, body)| AdminCall {
            method,
            // The collection takes POST and GET, a provider the rest (mostly).
            id: if usual == matches!(method, "POST" | "GET") {
                None
            } else {
                Some(id.unwrap_or_else(|| "corp".into()))
            },
            query,
            json,
            body,
        })
}

#[test]
fn robust_the_admin_api_answers_any_definition_with_json_errors() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    let token = rt.block_on(server.token_json(
        "acme",
        "acme-admin",
        "acme-admin-secret",
        &[
            ("grant_type", "client_credentials"),
            ("scope", "portcullis.admin"),
        ],
    ))["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut runner = TestRunner::new(config(
        96,
        "robust_the_admin_api_answers_any_definition_with_json_errors",
    ));
    let result = runner.run(&admin_call(), |c| {
        rt.block_on(async {
            let mut path = match &c.id {
                Some(id) => format!("/acme/admin/providers/{id}"),
                None => "/acme/admin/providers".to_string(),
            };
            if let Some(q) = &c.query {
                path = format!("{path}?{q}");
            }
            let method = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
            let mut r = server
                .http
                .request(method, server.url(&path))
                .bearer_auth(&token)
                .body(c.body.clone());
            if c.json {
                r = r.header("content-type", "application/json");
            }
            let a = Answer::read(r.send().await.unwrap()).await;
            prop_assert!(a.status < 500, "{} {}", a.status, a.body);
            if a.status >= 400 {
                // 405 on the collection for PUT/PATCH/DELETE is the router's.
                if a.status != 405 {
                    prop_assert!(
                        a.content_type.starts_with("application/json"),
                        "{} {:?}: {}",
                        a.status,
                        a.content_type,
                        a.body
                    );
                    let code = a.json_error().unwrap_or_default();
                    prop_assert!(CODES.contains(&code.as_str()), "{} {}", a.status, a.body);
                }
            } else if a.status != 204 {
                prop_assert!(serde_json::from_str::<Value>(&a.body).is_ok(), "{}", a.body);
            }
            Ok(())
        })
    });
    rt.block_on(async {
        let r = server
            .http
            .get(server.url("/acme/admin/providers"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "the admin API still lists providers");
    });
    rt.block_on(still_healthy(&server));
    rt.block_on(server.stop());
    result.unwrap();
}

/// Found by `robust_the_admin_api_answers_any_definition_with_json_errors`: a provider id that
/// is not UTF-8 once percent-decoded got axum's plain-text rejection.
#[tokio::test]
async fn robust_a_provider_id_that_is_not_utf8_is_an_invalid_request_in_json() {
    let server = TestServer::start().await;
    let token = server
        .token_json(
            "acme",
            "acme-admin",
            "acme-admin-secret",
            &[
                ("grant_type", "client_credentials"),
                ("scope", "portcullis.admin"),
            ],
        )
        .await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    for (method, path) in [
        (reqwest::Method::PUT, "/acme/admin/providers/%FF"),
        (reqwest::Method::GET, "/acme/admin/providers/%C3%28"),
        (reqwest::Method::GET, "/acme/admin/providers?limit=many"),
    ] {
        let r = server
            .http
            .request(method, server.url(path))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_oauth_error(r, 400, "invalid_request").await;
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The tenant as SAML identity provider: its SSO and single logout services

#[derive(Debug, Clone)]
struct SamlCall {
    path: &'static str,
    post: bool,
    param: &'static str,
    message: Vec<u8>,
    deflate: bool,
    relay_state: Option<String>,
    /// A query of its own instead of the message (GET only).
    raw_query: Option<String>,
}

/// Messages an SP could send the demo tenant (the demo SP signs nothing), to be mutated.
fn saml_templates(issuer: &str) -> Vec<String> {
    let instant = portcullis::federation::saml::sp::instant(now()).unwrap();
    let head = "xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
                xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" Version=\"2.0\"";
    vec![
        format!(
            "<samlp:AuthnRequest {head} ID=\"_r1\" IssueInstant=\"{instant}\" \
             Destination=\"{issuer}/saml/sso\" AssertionConsumerServiceURL=\"http://127.0.0.1:9000/saml/acs\">\
             <saml:Issuer>https://sp.acme.test</saml:Issuer><samlp:NameIDPolicy AllowCreate=\"true\"/>\
             <samlp:RequestedAuthnContext Comparison=\"minimum\"><saml:AuthnContextClassRef>\
             urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef>\
             </samlp:RequestedAuthnContext></samlp:AuthnRequest>"
        ),
        format!(
            "<samlp:LogoutRequest {head} ID=\"_l1\" IssueInstant=\"{instant}\" \
             Destination=\"{issuer}/saml/slo\"><saml:Issuer>https://sp.acme.test</saml:Issuer>\
             <saml:NameID>x</saml:NameID><samlp:SessionIndex>s</samlp:SessionIndex></samlp:LogoutRequest>"
        ),
        format!(
            "<samlp:LogoutResponse {head} ID=\"_p1\" IssueInstant=\"{instant}\" InResponseTo=\"_x\" \
             Destination=\"{issuer}/saml/slo\"><saml:Issuer>https://sp.acme.test</saml:Issuer>\
             <samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/>\
             </samlp:Status></samlp:LogoutResponse>"
        ),
    ]
}

fn saml_call(templates: Vec<String>) -> impl Strategy<Value = SamlCall> {
    let edit = (any::<Index>(), any::<Index>(), text(40));
    let message = prop_oneof![
        4 => (prop::sample::select(templates), prop::collection::vec(edit, 0..4)).prop_map(
            |(t, edits)| {
                let mut bytes = t.into_bytes();
                for (at, cut, insert) in edits {
                    let i = at.index(bytes.len() + 1);
                    let j = (i + cut.index(8)).min(bytes.len());
                    bytes.splice(i..j, insert.into_bytes());
                }
                bytes
            }
        ),
        1 => prop::collection::vec(any::<u8>(), 0..300),
    ];
    (
        prop::sample::select(&["/acme/saml/sso", "/acme/saml/slo", "/globex/saml/slo"][..]),
        any::<bool>(),
        prop::sample::select(&["SAMLRequest", "SAMLResponse"][..]),
        message,
        any::<bool>(),
        proptest::option::of(text(100)),
        proptest::option::weighted(0.15, text(60).prop_map(|t| as_query(t.as_bytes()))),
    )
        .prop_map(
            |(path, post, param, message, deflate, relay_state, raw_query)| SamlCall {
                path,
                post,
                param,
                message,
                deflate,
                relay_state,
                raw_query,
            },
        )
}

async fn send_saml(server: &TestServer, c: &SamlCall) -> Result<(), TestCaseError> {
    use std::io::Write;
    let payload = if c.deflate && !c.post {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&c.message).unwrap();
        e.finish().unwrap()
    } else {
        c.message.clone()
    };
    let mut pairs = vec![(c.param.to_string(), STANDARD.encode(payload))];
    if let Some(r) = &c.relay_state {
        pairs.push(("RelayState".into(), r.clone()));
    }
    let url = server.url(c.path);
    let r = if c.post {
        server
            .http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(&pairs))
            .send()
            .await
    } else {
        let query = c
            .raw_query
            .clone()
            .unwrap_or_else(|| String::from_utf8(encode(&pairs)).unwrap());
        server.http.get(format!("{url}?{query}")).send().await
    };
    let a = Answer::read(r.unwrap()).await;
    prop_assert!(
        matches!(a.status, 200 | 303 | 400 | 413),
        "{c:?}: {} {}",
        a.status,
        a.body
    );
    // A redirect stays at the tenant (the login page, a resumed request): the demo SP
    // registered no single logout service to send anything to.
    if let Some(to) = &a.location {
        prop_assert!(to.starts_with(&server.url("/acme/")), "{c:?}: to {to}");
    }
    // A page that posts somewhere posts to the demo SP's registered ACS only.
    let body = crate::interactive::unescape(&a.body);
    if body.contains("<form") && body.contains("SAMLResponse") {
        prop_assert!(
            body.contains("action=\"http://127.0.0.1:9000/saml/acs\""),
            "{c:?}: {}",
            a.body
        );
    }
    Ok(())
}

#[test]
fn robust_the_saml_sso_and_logout_services_answer_anything_with_pages_or_saml_errors() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    let templates = saml_templates(&server.url("/acme"));
    // The generator reaches the accepting path: the untouched AuthnRequest leads to the login page.
    rt.block_on(async {
        let c = SamlCall {
            path: "/acme/saml/sso",
            post: false,
            param: "SAMLRequest",
            message: templates[0].clone().into_bytes(),
            deflate: true,
            relay_state: None,
            raw_query: None,
        };
        send_saml(&server, &c).await.unwrap();
    });
    let mut runner = TestRunner::new(config(
        200,
        "robust_the_saml_sso_and_logout_services_answer_anything_with_pages_or_saml_errors",
    ));
    let result = runner.run(&saml_call(templates), |c| {
        rt.block_on(send_saml(&server, &c))
    });
    rt.block_on(still_healthy(&server));
    rt.block_on(server.stop());
    result.unwrap();
}
