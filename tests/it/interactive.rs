//! Interactive sign-in: authorize → login (→ TOTP) → consent → code → tokens → userinfo →
//! refresh → logout, driven through the real pages by a cookie-keeping HTTP client.

use crate::support::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use portcullis::clock::{Clock, FixedClock, SystemClock};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

pub const VERIFIER: &str = "dBjftJeZ4CZP-OfAwZlkX0dqtbKXWZ7xjeQs3ALpqzMaybeMoreRandom123";
const WEB_CB: &str = "http://127.0.0.1:9000/callback";

pub fn challenge(verifier: &str) -> String {
    B64.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ))
}

/// A browser: keeps cookies, does not follow redirects (each hop is checked).
pub struct Browser {
    pub http: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
}

impl Browser {
    pub fn new(server: &TestServer) -> Self {
        Self::at(&server.path("certs/ca.pem"), server.addr)
    }

    /// A browser for a server whose dev CA is `ca` and that listens at `addr`.
    pub fn at(ca: &std::path::Path, addr: std::net::SocketAddr) -> Self {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .resolve("localhost", addr)
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self { http, jar }
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.unwrap()
    }

    pub async fn post(&self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http.post(url).form(form).send().await.unwrap()
    }
}

pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location in a {} response", r.status()))
        .to_str()
        .unwrap()
        .to_string()
}

/// The query (or fragment) parameters of a URL.
pub fn params(url: &str) -> HashMap<String, String> {
    let part = url
        .split_once('#')
        .map(|(_, f)| f)
        .or_else(|| url.split_once('?').map(|(_, q)| q))
        .unwrap_or_default();
    form_urlencoded::parse(part.as_bytes())
        .into_owned()
        .collect()
}

/// Undoes minijinja's HTML escaping (it escapes `/` too).
pub fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of a hidden form field in a page.
pub fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in page:\n{html}"))
        + marker.len();
    unescape(html[start..].split('"').next().unwrap())
}

pub fn authorize_url(
    server: &TestServer,
    tenant: &str,
    client: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("client_id", client);
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    server.url(&format!("/{tenant}/connect/authorize?{}", q.finish()))
}

/// The usual parameters of acme-web's requests.
pub fn web_params<'a>(state: &'a str, challenge: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("redirect_uri", WEB_CB),
        ("scope", "openid profile email offline_access api.read"),
        ("state", state),
        ("nonce", "n-0S6_WzA2Mj"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

/// Submits the login form of the page at `login_url`; returns the response to the POST.
pub async fn submit_login(
    b: &Browser,
    login_url: &str,
    user: &str,
    password: &str,
) -> reqwest::Response {
    let page = b.get(login_url).await;
    assert_eq!(page.status(), 200, "login page");
    let html = page.text().await.unwrap();
    let interaction = field(&html, "interaction");
    let csrf = field(&html, "csrf");
    let action = login_url.split('?').next().unwrap().to_string();
    b.post(
        &action,
        &[
            ("interaction", &interaction),
            ("csrf", &csrf),
            ("username", user),
            ("password", password),
        ],
    )
    .await
}

/// Allows (remembering or not) on the consent page at `consent_url`.
pub async fn submit_consent(
    b: &Browser,
    consent_url: &str,
    decision: &str,
    remember: bool,
) -> reqwest::Response {
    let page = b.get(consent_url).await;
    assert_eq!(page.status(), 200, "consent page");
    let html = page.text().await.unwrap();
    let interaction = field(&html, "interaction");
    let csrf = field(&html, "csrf");
    let action = consent_url.split('?').next().unwrap().to_string();
    let mut form = vec![
        ("interaction", interaction.as_str()),
        ("csrf", csrf.as_str()),
        ("decision", decision),
    ];
    if remember {
        form.push(("remember", "on"));
    }
    b.post(&action, &form).await
}

/// Full sign-in of alice at acme-web with consent; returns the redirect to the client.
pub async fn alice_signs_in(
    server: &TestServer,
    b: &Browser,
    state: &str,
) -> HashMap<String, String> {
    let ch = challenge(VERIFIER);
    let r = b
        .get(&authorize_url(
            server,
            "acme",
            "acme-web",
            &web_params(state, &ch),
        ))
        .await;
    assert_eq!(r.status(), 303);
    let login = location(&r);
    assert!(
        login.contains("/acme/account/login?interaction="),
        "{login}"
    );
    let r = submit_login(b, &login, "alice", "alice-password").await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let consent = location(&r);
    if consent.starts_with(WEB_CB) {
        return params(&consent); // consent remembered from an earlier sign-in
    }
    assert!(
        consent.contains("/acme/account/consent?interaction="),
        "{consent}"
    );
    let r = submit_consent(b, &consent, "allow", true).await;
    assert_eq!(r.status(), 303);
    let back = location(&r);
    assert!(back.starts_with(WEB_CB), "{back}");
    params(&back)
}

pub async fn redeem(server: &TestServer, code: &str, verifier: &str) -> reqwest::Response {
    server
        .http
        .post(server.url("/acme/connect/token"))
        .basic_auth("acme-web", Some("acme-web-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", WEB_CB),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap()
}

async fn refresh(server: &TestServer, token: &str) -> reqwest::Response {
    server
        .http
        .post(server.url("/acme/connect/token"))
        .basic_auth("acme-web", Some("acme-web-secret"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .unwrap()
}

async fn userinfo(server: &TestServer, tenant: &str, token: &str) -> reqwest::Response {
    server
        .http
        .get(server.url(&format!("/{tenant}/connect/userinfo")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn real_clock() -> Arc<FixedClock> {
    FixedClock::new(SystemClock.now())
}

#[tokio::test]
async fn code_flow_with_pkce_signs_in_consents_and_issues_verifiable_tokens() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let back = alice_signs_in(&server, &b, "xyz").await;
    assert_eq!(back["state"], "xyz");
    // RFC 9207: the issuer is in the response.
    assert_eq!(back["iss"], server.url("/acme"));
    let r = redeem(&server, &back["code"], VERIFIER).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert!(
        t["refresh_token"].is_string(),
        "offline_access gives a refresh token"
    );
    let jwks = server.jwks("acme").await;
    let id = verify_jwt(
        t["id_token"].as_str().unwrap(),
        &jwks,
        &server.url("/acme"),
        "acme-web",
    );
    assert_eq!(id["sub"], "alice");
    assert_eq!(id["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(id["amr"], serde_json::json!(["pwd"]));
    assert!(id["sid"].is_string() && id["auth_time"].is_i64());
    assert_eq!(jwt_header(t["id_token"].as_str().unwrap())["alg"], "RS256");
    // OIDC Core §3.1.3.6: at_hash is the left half of SHA-256 of the access token.
    let at = t["access_token"].as_str().unwrap();
    let full = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, at.as_bytes());
    assert_eq!(id["at_hash"], B64.encode(&full.as_ref()[..16]));
    let access = verify_jwt(at, &jwks, &server.url("/acme"), "https://api.acme.test");
    assert_eq!(access["client_id"], "acme-web");
    assert_eq!(access["sub"], "alice");
    let info: Value = userinfo(&server, "acme", at).await.json().await.unwrap();
    assert_eq!(info["sub"], "alice");
    assert_eq!(info["email"], "alice@acme.test");
    assert_eq!(info["name"], "Alice Liddell");
    server.stop().await;
}

#[tokio::test]
async fn a_second_sign_in_with_the_session_and_remembered_consent_is_immediate() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    alice_signs_in(&server, &b, "one").await;
    let ch = challenge(VERIFIER);
    let r = b
        .get(&authorize_url(
            &server,
            "acme",
            "acme-web",
            &web_params("two", &ch),
        ))
        .await;
    assert_eq!(r.status(), 303);
    let back = params(&location(&r));
    assert_eq!(back["state"], "two");
    assert!(back.contains_key("code"));
    // prompt=consent asks again even though consent was remembered.
    let mut p = web_params("three", &ch);
    p.push(("prompt", "consent"));
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    assert!(location(&r).contains("/account/consent"));
    server.stop().await;
}

#[tokio::test]
async fn redeeming_a_code_twice_revokes_every_token_issued_from_it() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let back = alice_signs_in(&server, &b, "s").await;
    let first: Value = redeem(&server, &back["code"], VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    let again = redeem(&server, &back["code"], VERIFIER).await;
    assert_eq!(again.status(), 400);
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let r = refresh(&server, first["refresh_token"].as_str().unwrap()).await;
    // The refresh token from the code is revoked.
    assert_oauth_error(r, 400, "invalid_grant").await;
    let r = userinfo(&server, "acme", first["access_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 401, "the access token from the code is revoked");
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_code_verifier_is_invalid_grant_and_leaves_the_code_usable() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let back = alice_signs_in(&server, &b, "s").await;
    let wrong = "x".repeat(43);
    let r = redeem(&server, &back["code"], &wrong).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "invalid_grant");
    assert_eq!(redeem(&server, &back["code"], VERIFIER).await.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn pkce_is_required_and_plain_is_refused() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let ch = challenge(VERIFIER);
    let mut p: Vec<(&str, &str)> = web_params("s", &ch)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .collect();
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    let back = params(&location(&r));
    assert_eq!(back["error"], "invalid_request");
    assert_eq!(back["state"], "s");
    assert_eq!(back["iss"], server.url("/acme"));
    p.push(("code_challenge", VERIFIER));
    p.push(("code_challenge_method", "plain"));
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    let back = params(&location(&r));
    assert_eq!(back["error"], "invalid_request");
    assert!(back["error_description"].contains("plain"));
    server.stop().await;
}

#[tokio::test]
async fn a_redirect_uri_with_added_path_or_query_gets_an_error_page_and_no_redirect() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let ch = challenge(VERIFIER);
    for bad in [
        "http://127.0.0.1:9000/callback/evil",
        "http://127.0.0.1:9000/callback?x=1",
        "http://127.0.0.1:9001/callback",
    ] {
        let p: Vec<(&str, &str)> = web_params("s", &ch)
            .into_iter()
            .map(|(k, v)| {
                if k == "redirect_uri" {
                    (k, bad)
                } else {
                    (k, v)
                }
            })
            .collect();
        let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert!(r.headers().get("location").is_none());
        let html = r.text().await.unwrap();
        assert!(html.contains("invalid_request"), "{html}");
    }
    let r = b
        .get(&authorize_url(
            &server,
            "acme",
            "no-such-client",
            &web_params("s", &ch),
        ))
        .await;
    assert_page_error(r, 400, "invalid_client").await;
    server.stop().await;
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_of_a_rotated_one_kills_the_family() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let back = alice_signs_in(&server, &b, "s").await;
    let t: Value = redeem(&server, &back["code"], VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    let rt1 = t["refresh_token"].as_str().unwrap().to_string();
    let r = refresh(&server, &rt1).await;
    assert_eq!(r.status(), 200);
    let t2: Value = r.json().await.unwrap();
    let rt2 = t2["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2);
    assert!(t2["id_token"].is_string());
    // The first token comes back: a thief or a bug. Both are ended.
    assert_oauth_error(refresh(&server, &rt1).await, 400, "invalid_grant").await;
    let r = refresh(&server, &rt2).await;
    assert_eq!(r.status(), 400, "the whole family is revoked");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // Another client cannot use this client's refresh token.
    let other = alice_signs_in(&server, &Browser::new(&server), "s").await;
    let t3: Value = redeem(&server, &other["code"], VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    let r = server
        .http
        .post(server.url("/acme/connect/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", t3["refresh_token"].as_str().unwrap()),
            ("client_id", "acme-spa"),
        ])
        .send()
        .await
        .unwrap();
    let why = assert_oauth_error(r, 400, "invalid_grant").await;
    assert_eq!(why, "the refresh token is invalid, expired or revoked");
    server.stop().await;
}

#[tokio::test]
async fn prompt_none_without_a_live_session_returns_login_required() {
    let clock = real_clock();
    let server = TestServer::start_with(Options {
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    let b = Browser::new(&server);
    let ch = challenge(VERIFIER);
    let mut p = web_params("s", &ch);
    p.push(("prompt", "none"));
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    let back = params(&location(&r));
    assert_eq!(back["error"], "login_required");
    assert_eq!(back["state"], "s");
    alice_signs_in(&server, &b, "s").await;
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    assert!(
        params(&location(&r)).contains_key("code"),
        "a live session answers silently"
    );
    // Past the idle timeout (8 hours in the demo tenant) the session is over.
    clock.advance(8 * 3600 + 1);
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    assert_eq!(params(&location(&r))["error"], "login_required");
    server.stop().await;
}

#[tokio::test]
async fn a_session_cookie_of_acme_is_not_a_session_at_its_twin() {
    // The twin has the same client, redirect URI and user: only the tenant boundary refuses.
    let server = TestServer::start_with(with_twin(ACME.into())).await;
    let b = Browser::new(&server);
    alice_signs_in(&server, &b, "s").await;
    // The browser scopes the cookie to /acme; an attacker replays it at the twin verbatim.
    use reqwest::cookie::CookieStore;
    let acme_cookies = b
        .jar
        .cookies(&server.url("/acme/connect/authorize").parse().unwrap())
        .unwrap();
    assert!(
        acme_cookies
            .to_str()
            .unwrap()
            .contains("portcullis.session=")
    );
    assert!(
        b.jar
            .cookies(&server.url("/twin/connect/authorize").parse().unwrap())
            .is_none(),
        "the cookie path keeps acme's session away from the twin"
    );
    let ch = challenge(VERIFIER);
    let mut p = web_params("g", &ch);
    p.push(("prompt", "none"));
    let with_cookies = |tenant: &str| {
        server
            .http
            .get(authorize_url(&server, tenant, "acme-web", &p))
            .header("cookie", acme_cookies.clone())
            .send()
    };
    let r = with_cookies("acme").await.unwrap();
    assert!(
        params(&location(&r)).contains_key("code"),
        "a session at acme"
    );
    let r = with_cookies("twin").await.unwrap();
    let back = params(&location(&r));
    assert_eq!(back["error"], "login_required");
    assert_eq!(back["iss"], server.url("/twin"));
    server.stop().await;
}

#[tokio::test]
async fn userinfo_speaks_rfc_6750() {
    let server = TestServer::start().await;
    let url = server.url("/acme/connect/userinfo");
    let r = server.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with("Bearer realm=") && !challenge.contains("error="),
        "{challenge}"
    );
    let r = server
        .http
        .get(format!("{url}?access_token=abc"))
        .send()
        .await
        .unwrap();
    assert_bearer_error(&r, 400, "invalid_request");
    let r = server
        .http
        .get(&url)
        .bearer_auth("not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    // A client_credentials token has no user.
    let t = server
        .token_json(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[("grant_type", "client_credentials")],
        )
        .await;
    let r = userinfo(&server, "acme", t["access_token"].as_str().unwrap()).await;
    assert_bearer_error(&r, 401, "invalid_token");
    server.stop().await;
}

#[tokio::test]
async fn denying_consent_returns_access_denied() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let ch = challenge(VERIFIER);
    let r = b
        .get(&authorize_url(
            &server,
            "acme",
            "acme-web",
            &web_params("d", &ch),
        ))
        .await;
    let r = submit_login(&b, &location(&r), "alice", "alice-password").await;
    let r = submit_consent(&b, &location(&r), "deny", false).await;
    let back = params(&location(&r));
    assert_eq!(back["error"], "access_denied");
    assert_eq!(back["state"], "d");
    server.stop().await;
}

#[tokio::test]
async fn a_login_form_without_its_csrf_token_or_from_another_browser_is_refused() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let ch = challenge(VERIFIER);
    let r = b
        .get(&authorize_url(
            &server,
            "acme",
            "acme-web",
            &web_params("c", &ch),
        ))
        .await;
    let login = location(&r);
    let html = b.get(&login).await.text().await.unwrap();
    let interaction = field(&html, "interaction");
    let csrf = field(&html, "csrf");
    let action = server.url("/acme/account/login");
    let r = b
        .post(
            &action,
            &[
                ("interaction", &interaction),
                ("username", "alice"),
                ("password", "alice-password"),
            ],
        )
        .await;
    let why = assert_page_error(r, 400, "invalid_request").await;
    assert_eq!(
        why,
        "the form expired or did not come from this site; please try again"
    );
    // Another browser (no binding cookie) holding the whole form still cannot use it.
    let other = Browser::new(&server);
    let r = other
        .post(
            &action,
            &[
                ("interaction", &interaction),
                ("csrf", &csrf),
                ("username", "alice"),
                ("password", "alice-password"),
            ],
        )
        .await;
    let why = assert_page_error(r, 400, "invalid_request").await;
    assert_eq!(why, "this sign-in was started in another browser");
    server.stop().await;
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_user_out_and_say_when_to_retry() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let ch = challenge(VERIFIER);
    let r = b
        .get(&authorize_url(
            &server,
            "acme",
            "acme-web",
            &web_params("l", &ch),
        ))
        .await;
    let login = location(&r);
    for _ in 0..5 {
        let r = submit_login(&b, &login, "alice", "wrong").await;
        assert_eq!(r.status(), 200);
    }
    let r = submit_login(&b, &login, "alice", "alice-password").await;
    assert_eq!(
        r.status(),
        200,
        "the right password does not get through a lockout"
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("try again in"), "{html}");
    server.stop().await;
}

#[tokio::test]
async fn carol_needs_her_totp_code_and_a_code_works_only_once() {
    let clock = real_clock();
    let server = TestServer::start_with(Options {
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    let secret = "CPVGE6YPNPBBTGYVKT2AOU537SU3URFN";
    let sign_in = |b: Browser| {
        let server = &server;
        let clock = clock.clone();
        async move {
            let ch = challenge(VERIFIER);
            let p = vec![
                ("response_type", "code"),
                ("redirect_uri", "http://127.0.0.1:9000/spa/callback"),
                ("scope", "openid profile"),
                ("code_challenge", ch.as_str()),
                ("code_challenge_method", "S256"),
            ];
            let r = b.get(&authorize_url(server, "acme", "acme-spa", &p)).await;
            let r = submit_login(&b, &location(&r), "carol", "carol-password").await;
            assert_eq!(r.status(), 200);
            let html = r.text().await.unwrap();
            assert!(
                html.contains("id=\"code\""),
                "the TOTP step follows the password"
            );
            let code = portcullis::users::totp_code(secret, clock.now()).unwrap();
            b.post(
                &server.url("/acme/account/login/totp"),
                &[
                    ("interaction", &field(&html, "interaction")),
                    ("csrf", &field(&html, "csrf")),
                    ("code", &code),
                ],
            )
            .await
        }
    };
    let r = sign_in(Browser::new(&server)).await;
    assert_eq!(r.status(), 303);
    let back = params(&location(&r));
    assert!(back.contains_key("code"));
    // The public client redeems with PKCE only.
    let r = server
        .http
        .post(server.url("/acme/connect/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &back["code"]),
            ("redirect_uri", "http://127.0.0.1:9000/spa/callback"),
            ("code_verifier", VERIFIER),
            ("client_id", "acme-spa"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let id = verify_jwt(
        t["id_token"].as_str().unwrap(),
        &server.jwks("acme").await,
        &server.url("/acme"),
        "acme-spa",
    );
    assert_eq!(id["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    // The same code in the same 30 s step, from another browser: refused.
    let r = sign_in(Browser::new(&server)).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("not valid"));
    server.stop().await;
}

#[tokio::test]
async fn form_post_response_mode_renders_an_auto_submitting_form() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    alice_signs_in(&server, &b, "s").await;
    let ch = challenge(VERIFIER);
    let mut p = web_params("fp", &ch);
    p.push(("response_mode", "form_post"));
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    let html = unescape(&r.text().await.unwrap());
    assert!(html.contains(&format!("action=\"{WEB_CB}\"")), "{html}");
    assert_eq!(field(&html, "state"), "fp");
    assert!(!field(&html, "code").is_empty());
    assert!(csp.contains("script-src 'nonce-"), "{csp}");
    server.stop().await;
}

#[tokio::test]
async fn a_pushed_request_uri_works_once() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    alice_signs_in(&server, &b, "s").await;
    let ch = challenge(VERIFIER);
    let r = server
        .http
        .post(server.url("/acme/connect/par"))
        .basic_auth("acme-web", Some("acme-web-secret"))
        .form(&web_params("par", &ch))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let pushed: Value = r.json().await.unwrap();
    let uri = pushed["request_uri"].as_str().unwrap();
    assert!(uri.starts_with("urn:ietf:params:oauth:request_uri:"));
    let url = authorize_url(&server, "acme", "acme-web", &[("request_uri", uri)]);
    let r = b.get(&url).await;
    let back = params(&location(&r));
    assert_eq!(back["state"], "par");
    assert!(back.contains_key("code"));
    let r = b.get(&url).await;
    // A request_uri is single use.
    assert_page_error(r, 400, "invalid_request_uri").await;
    // A pushed request is checked at once: a bad redirect URI is an error response, not a URI.
    // Otherwise the request is a good one (PKCE, state, nonce): only the redirect rule refuses.
    let p: Vec<(&str, &str)> = web_params("bad", &ch)
        .into_iter()
        .map(|(k, v)| {
            if k == "redirect_uri" {
                (k, "https://evil.example/cb")
            } else {
                (k, v)
            }
        })
        .collect();
    let r = server
        .http
        .post(server.url("/acme/connect/par"))
        .basic_auth("acme-web", Some("acme-web-secret"))
        .form(&p)
        .send()
        .await
        .unwrap();
    let why = assert_oauth_error(r, 400, "invalid_request").await;
    assert_eq!(why, "the redirect_uri is not registered for this client");
    server.stop().await;
}

/// acme with a client that signs request objects with `key`.
fn acme_with_jar_client(jwk: &Value) -> String {
    format!(
        "{ACME}\n[[clients]]\nclient_id = \"acme-jar\"\npublic = true\ngrant_types = [\"authorization_code\"]\nscopes = [\"openid\"]\nredirect_uris = [\"{WEB_CB}\"]\nrequire_signed_request_object = true\njwks = {{ keys = [{}] }}\n",
        toml_inline(jwk)
    )
}

fn toml_inline(v: &Value) -> String {
    let fields: Vec<String> = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k} = {}", v))
        .collect();
    format!("{{ {} }}", fields.join(", "))
}

#[tokio::test]
async fn request_objects_must_be_signed_by_a_registered_key_and_never_alg_none() {
    use portcullis::keys::{Alg, Signer, signer::generate_pkcs8};
    let key = Signer::from_pkcs8(Alg::ES256, &generate_pkcs8(Alg::ES256, 2048).unwrap()).unwrap();
    let stranger =
        Signer::from_pkcs8(Alg::ES256, &generate_pkcs8(Alg::ES256, 2048).unwrap()).unwrap();
    let server = TestServer::start_with(Options {
        tenants: vec![
            ("acme", acme_with_jar_client(&key.public_jwk())),
            ("globex", GLOBEX.into()),
        ],
        ..Default::default()
    })
    .await;
    let b = Browser::new(&server);
    let ch = challenge(VERIFIER);
    let claims = serde_json::json!({
        "iss": "acme-jar", "aud": server.url("/acme"), "client_id": "acme-jar",
        "exp": SystemClock.now() + 300, "response_type": "code", "redirect_uri": WEB_CB, "scope": "openid", "state": "jar",
        "code_challenge": ch, "code_challenge_method": "S256",
    });
    let go = |object: String| {
        let url = authorize_url(&server, "acme", "acme-jar", &[("request", &object)]);
        let b = &b;
        async move { b.get(&url).await }
    };
    let r = go(key.sign_jwt("oauth-authz-req+jwt", &claims).unwrap()).await;
    assert_eq!(
        r.status(),
        303,
        "a properly signed request object is accepted"
    );
    assert!(location(&r).contains("/account/login"));
    let r = go(stranger.sign_jwt("oauth-authz-req+jwt", &claims).unwrap()).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("invalid_request_object"));
    let none = format!(
        "{}.{}.",
        B64.encode(br#"{"alg":"none"}"#),
        B64.encode(claims.to_string())
    );
    let r = go(none).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("invalid_request_object"));
    // This client must sign: plain parameters are refused.
    let r = b
        .get(&authorize_url(
            &server,
            "acme",
            "acme-jar",
            &[
                ("response_type", "code"),
                ("redirect_uri", WEB_CB),
                ("scope", "openid"),
                ("state", "plain"),
                ("code_challenge", &ch),
                ("code_challenge_method", "S256"),
            ],
        ))
        .await;
    assert_eq!(params(&location(&r))["error"], "invalid_request");
    server.stop().await;
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_session_and_notifies_clients() {
    // A back-channel receiver on an ephemeral port, over HTTPS (the server calls nothing else).
    let upstreams = crate::support::Upstreams::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(4);
    let app = axum::Router::new().route(
        "/backchannel-logout",
        axum::routing::post(move |body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body).await;
                "ok"
            }
        }),
    );
    let receiver = upstreams.serve(app).await;
    let acme = ACME.replace(
        "backchannel_logout_uri = \"https://127.0.0.1:9000/backchannel-logout\"",
        &format!("backchannel_logout_uri = \"{receiver}/backchannel-logout\"\nfrontchannel_logout_uri = \"http://127.0.0.1:9000/frontchannel-logout\""),
    );
    let server = TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.into())],
        trusted_cas: vec![upstreams.ca_file()],
        ..Default::default()
    })
    .await;
    let b = Browser::new(&server);
    let back = alice_signs_in(&server, &b, "s").await;
    let t: Value = redeem(&server, &back["code"], VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    let id_token = t["id_token"].as_str().unwrap();
    let sid = verify_jwt(
        id_token,
        &server.jwks("acme").await,
        &server.url("/acme"),
        "acme-web",
    )["sid"]
        .clone();
    // An unregistered post-logout URI is refused.
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", "https://evil.example/")
        .append_pair("state", "bye");
    let r = b
        .get(&server.url(&format!("/acme/connect/endsession?{}", q.finish())))
        .await;
    assert_page_error(r, 400, "invalid_request").await;
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", "http://127.0.0.1:9000/")
        .append_pair("state", "bye");
    let r = b
        .get(&server.url(&format!("/acme/connect/endsession?{}", q.finish())))
        .await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("frame-src http://127.0.0.1:9000"), "{csp}");
    let html = unescape(&r.text().await.unwrap());
    assert!(html.contains("http://127.0.0.1:9000/?state=bye"), "{html}");
    assert!(html.contains("frontchannel-logout?iss="), "{html}");
    // Back-channel: a logout token for this session, without waiting on the user.
    let body = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let token = params(&format!("?{body}"))["logout_token"].clone();
    assert_eq!(jwt_header(&token)["typ"], "logout+jwt");
    let claims = verify_jwt(
        &token,
        &server.jwks("acme").await,
        &server.url("/acme"),
        "acme-web",
    );
    assert_eq!(claims["sid"], sid);
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(claims.get("nonce").is_none());
    // The session is gone.
    let ch = challenge(VERIFIER);
    let mut p = web_params("after", &ch);
    p.push(("prompt", "none"));
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    assert_eq!(params(&location(&r))["error"], "login_required");
    server.stop().await;
}

#[tokio::test]
async fn logout_without_a_hint_asks_for_confirmation() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    alice_signs_in(&server, &b, "s").await;
    let r = b.get(&server.url("/acme/connect/endsession")).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let logout_id = field(&html, "logout_id");
    let csrf = field(&html, "csrf");
    let r = b
        .post(
            &server.url("/acme/account/logout"),
            &[
                ("logout_id", &logout_id),
                ("csrf", "forged"),
                ("decision", "logout"),
            ],
        )
        .await;
    // A forged confirmation does nothing.
    let why = assert_page_error(r, 400, "invalid_request").await;
    assert_eq!(why, "the form did not come from this site");
    let r = b.get(&server.url("/acme/connect/endsession")).await;
    let html = r.text().await.unwrap();
    let r = b
        .post(
            &server.url("/acme/account/logout"),
            &[
                ("logout_id", &field(&html, "logout_id")),
                ("csrf", &field(&html, "csrf")),
                ("decision", "logout"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let _ = (logout_id, csrf);
    let ch = challenge(VERIFIER);
    let mut p = web_params("after", &ch);
    p.push(("prompt", "none"));
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    assert_eq!(params(&location(&r))["error"], "login_required");
    server.stop().await;
}

/// Signs alice in at acme and ends her session with her id token as the hint, the registered
/// post-logout URI (when `back` is set) and `state=bye`.
async fn alice_signs_in_and_out(
    server: &TestServer,
    b: &Browser,
    back: Option<&str>,
) -> reqwest::Response {
    let code = alice_signs_in(server, b, "s").await["code"].clone();
    let t: Value = redeem(server, &code, VERIFIER).await.json().await.unwrap();
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("id_token_hint", t["id_token"].as_str().unwrap());
    if let Some(back) = back {
        q.append_pair("post_logout_redirect_uri", back)
            .append_pair("state", "bye");
    }
    b.get(&server.url(&format!("/acme/connect/endsession?{}", q.finish())))
        .await
}

async fn alice_has_no_session(server: &TestServer, b: &Browser) -> bool {
    let ch = challenge(VERIFIER);
    let mut p = web_params("after", &ch);
    p.push(("prompt", "none"));
    let r = b.get(&authorize_url(server, "acme", "acme-web", &p)).await;
    params(&location(&r))["error"] == "login_required"
}

// OIDC RP-Initiated Logout 1.0 §3: with a valid post_logout_redirect_uri the browser goes back
// to the client on its own; Front-Channel Logout 1.0 §4: after the clients' iframes have loaded.

#[tokio::test]
async fn logout_with_a_registered_return_uri_and_no_front_channel_client_goes_straight_back_with_the_state()
 {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let r = alice_signs_in_and_out(&server, &b, Some("http://127.0.0.1:9000/")).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "http://127.0.0.1:9000/?state=bye");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let cleared = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().contains("Max-Age=0"));
    assert!(cleared, "the session cookie is cleared");
    assert!(alice_has_no_session(&server, &b).await);
    server.stop().await;
}

#[tokio::test]
async fn logout_with_a_front_channel_client_returns_by_a_nonced_script_once_its_iframe_has_loaded()
{
    let acme = ACME.replace(
        "backchannel_logout_uri = \"https://127.0.0.1:9000/backchannel-logout\"",
        "frontchannel_logout_uri = \"http://127.0.0.1:9000/frontchannel-logout\"",
    );
    let server = TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.into())],
        ..Default::default()
    })
    .await;
    let b = Browser::new(&server);
    let r = alice_signs_in_and_out(&server, &b, Some("http://127.0.0.1:9000/")).await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    let html = unescape(&r.text().await.unwrap());
    let directive = |name: &str| {
        csp.split(';')
            .map(str::trim)
            .find_map(|d| d.strip_prefix(name)?.strip_prefix(' '))
            .map(str::to_string)
    };
    // The script runs only by the page's nonce: no 'unsafe-inline', no host, nothing else.
    let nonce = directive("style-src").unwrap();
    assert_eq!(directive("script-src"), Some(nonce.clone()), "{csp}");
    assert_eq!(directive("default-src").as_deref(), Some("'none'"), "{csp}");
    assert_eq!(
        directive("frame-src").as_deref(),
        Some("http://127.0.0.1:9000"),
        "{csp}"
    );
    let nonce = nonce.trim_start_matches("'nonce-").trim_end_matches('\'');
    // The client's iframe, …
    assert_eq!(html.matches("<iframe").count(), 1, "{html}");
    assert!(
        html.contains(
            "<iframe class=\"frontchannel\" src=\"http://127.0.0.1:9000/frontchannel-logout?iss="
        ),
        "{html}"
    );
    // … the link back with the state (the way back without JavaScript), …
    assert!(
        html.contains(
            "<a class=\"button primary\" id=\"return\" href=\"http://127.0.0.1:9000/?state=bye\">"
        ),
        "{html}"
    );
    // … and the one script, with the nonce, that follows that link once every iframe has loaded
    // or 5 seconds have passed.
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    let script = html
        .split(&format!("<script nonce=\"{nonce}\">"))
        .nth(1)
        .expect("a script with the nonce")
        .split("</script>")
        .next()
        .unwrap();
    for part in [
        "document.getElementById(\"return\").href",
        "document.querySelectorAll(\"iframe.frontchannel\")",
        "addEventListener(\"load\"",
        "window.location.replace(back)",
        "window.setTimeout(go, 5000)",
    ] {
        assert!(script.contains(part), "{part} in {script}");
    }
    assert!(alice_has_no_session(&server, &b).await);
    // Without a post-logout URI nothing returns on its own: the iframe, no script.
    let r = alice_signs_in_and_out(&server, &b, None).await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(!csp.contains("script-src"), "{csp}");
    let html = r.text().await.unwrap();
    assert_eq!(html.matches("<iframe").count(), 1, "{html}");
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("id=\"return\""), "{html}");
    server.stop().await;
}

#[tokio::test]
async fn sign_in_code_exchange_and_refresh_work_on_postgresql() {
    if postgres_url().is_none() {
        eprintln!("PORTCULLIS_TEST_POSTGRES_URL is not set: PostgreSQL part skipped");
        return;
    }
    let server = TestServer::start_with(Options {
        postgres: true,
        ..Default::default()
    })
    .await;
    let b = Browser::new(&server);
    let back = alice_signs_in(&server, &b, "pg").await;
    let t: Value = redeem(&server, &back["code"], VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    let r = userinfo(&server, "acme", t["access_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 200);
    let rt = t["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(&server, rt).await.status(), 200);
    // Reuse detected on PostgreSQL too.
    assert_oauth_error(refresh(&server, rt).await, 400, "invalid_grant").await;
    let r = redeem(&server, &back["code"], VERIFIER).await;
    assert_oauth_error(r, 400, "invalid_grant").await;
    server.stop().await;
}

#[tokio::test]
async fn max_age_zero_asks_for_a_fresh_login_even_right_after_one() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    alice_signs_in(&server, &b, "s").await;
    let ch = challenge(VERIFIER);
    let mut p = web_params("m", &ch);
    p.push(("max_age", "0"));
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    assert!(
        location(&r).contains("/account/login"),
        "OIDC Core §3.1.2.1 errata: max_age=0 is prompt=login"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_code_is_sealed_to_its_tenant_and_cannot_be_altered() {
    let server = TestServer::start_with(with_twin(ACME.into())).await;
    let b = Browser::new(&server);
    let back = alice_signs_in(&server, &b, "s").await;
    let code = back["code"].clone();
    // The same code at the twin, by the twin's acme-web (same secret, redirect URI and user):
    // the seal does not open there.
    let r = server
        .http
        .post(server.url("/twin/connect/token"))
        .basic_auth("acme-web", Some("acme-web-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", WEB_CB),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    let why = assert_oauth_error(r, 400, "invalid_grant").await;
    assert_eq!(why, "the code is invalid, expired or already used");
    // One character changed.
    let mut altered = code.clone().into_bytes();
    altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
    let r = redeem(&server, std::str::from_utf8(&altered).unwrap(), VERIFIER).await;
    assert_oauth_error(r, 400, "invalid_grant").await;
    // The untouched code still works, once.
    assert_eq!(redeem(&server, &code, VERIFIER).await.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn a_code_expires_after_its_lifetime() {
    let clock = real_clock();
    let server = TestServer::start_with(Options {
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    let b = Browser::new(&server);
    let back = alice_signs_in(&server, &b, "s").await;
    clock.advance(61);
    let r = redeem(&server, &back["code"], VERIFIER).await;
    // Codes live 60 s by default.
    assert_oauth_error(r, 400, "invalid_grant").await;
    server.stop().await;
}

fn cli(server: &TestServer) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
    c.current_dir(server.dir.path())
        .env_remove("PORTCULLIS_CONFIG")
        .env("PORTCULLIS_LOG_LEVEL", "error");
    c
}

fn run(mut c: std::process::Command, stdin: &str) -> String {
    use std::io::Write;
    let mut child = c
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_user_added_with_the_cli_signs_in_and_the_cli_lists_and_revokes_sessions_and_consent() {
    let server = TestServer::start().await;
    let mut add = cli(&server);
    add.args([
        "users",
        "add",
        "--tenant",
        "acme",
        "--username",
        "dave",
        "--claims",
        r#"{"name":"Dave Bowman","email":"dave@acme.test","email_verified":true}"#,
    ]);
    run(add, "open-the-pod-bay-doors\n");
    let b = Browser::new(&server);
    let ch = challenge(VERIFIER);
    let mut p = web_params("dave", &ch);
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    let r = submit_login(&b, &location(&r), "dave", "open-the-pod-bay-doors").await;
    let r = submit_consent(&b, &location(&r), "allow", true).await;
    let back = params(&location(&r));
    let t: Value = redeem(&server, &back["code"], VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    let info: Value = userinfo(&server, "acme", t["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["email"], "dave@acme.test");

    let mut show = cli(&server);
    show.args([
        "consents",
        "show",
        "--tenant",
        "acme",
        "--subject",
        "dave",
        "--client",
        "acme-web",
    ]);
    assert!(run(show, "").contains("api.read"));
    let mut revoke = cli(&server);
    revoke.args([
        "consents",
        "revoke",
        "--tenant",
        "acme",
        "--subject",
        "dave",
        "--client",
        "acme-web",
    ]);
    run(revoke, "");
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    assert!(
        location(&r).contains("/account/consent"),
        "consent is asked again"
    );

    let mut list = cli(&server);
    list.args(["sessions", "list", "--tenant", "acme", "--subject", "dave"]);
    assert!(run(list, "").contains("acme-web"));
    let mut end = cli(&server);
    end.args([
        "sessions",
        "revoke",
        "--tenant",
        "acme",
        "--subject",
        "dave",
    ]);
    assert!(run(end, "").contains("1 session(s) revoked"));
    p.push(("prompt", "none"));
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    assert_eq!(params(&location(&r))["error"], "login_required");
    server.stop().await;
}
