//! The attacker's suite: the attacks of RFC 9700 §4 (OAuth 2.0 Security Best
//! Current Practice), item by item, and the use of every artifact of one tenant at another.
//! Attacks already guarded elsewhere are not repeated here: the README's "Attacks and how they
//! are countered" table names the test for every item, here or in the other modules.
//!
//! Every negative test asserts the exact RFC error (and the description or security event where
//! several rules answer with the same code), and was seen failing with its rule taken out of the
//! code. Cross-tenant tests use tenant `twin` (support::twin): acme's file under another slug,
//! with the same client ids, secrets, redirect URIs, API names and users, so that only the
//! tenant boundary can refuse.

use crate::dpop::{key, proof};
use crate::federation::{admin_token, back_at_acme, bob_at_globex, dynamic_globex, to_upstream};
use crate::interactive::{
    Browser, VERIFIER, alice_signs_in, authorize_url, challenge, field, location, params, redeem,
    submit_consent, submit_login, unescape, web_params,
};
use crate::security_rules::security_events;
use crate::support::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use portcullis::clock::{Clock, SystemClock};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::collections::HashMap;

const WEB_CB: &str = "http://127.0.0.1:9000/callback";
const SPA_CB: &str = "http://127.0.0.1:9000/spa/callback";
const API_USER: &str = "https%3A%2F%2Fapi.acme.test";
const CSRF_REFUSED: &str = "the form expired or did not come from this site; please try again";
const OTHER_BROWSER: &str = "this sign-in was started in another browser";
const UNREGISTERED: &str = "the redirect_uri is not registered for this client";
const CAROL_TOTP: &str = "CPVGE6YPNPBBTGYVKT2AOU537SU3URFN";

/// Replaces `from` in a tenant file, asserting it was there (the demo file may change).
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the demo tenant changed: no {from:?}");
    text.replacen(from, to, 1)
}

/// A server with acme as given, and globex.
async fn acme_is(acme: String) -> TestServer {
    TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.to_string())],
        ..Default::default()
    })
    .await
}

/// The `Cookie` header a browser sends to `tenant`'s pages.
fn cookies_for(b: &Browser, server: &TestServer, tenant: &str) -> String {
    use reqwest::cookie::CookieStore;
    b.jar
        .cookies(
            &server
                .url(&format!("/{tenant}/connect/authorize"))
                .parse()
                .unwrap(),
        )
        .map(|c| c.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Whether `b` holds a live SSO session at acme with acme-web (a silent request gets a code).
async fn has_session(server: &TestServer, b: &Browser) -> bool {
    let ch = challenge(VERIFIER);
    let mut p = web_params("silent", &ch);
    p.push(("prompt", "none"));
    let r = b.get(&authorize_url(server, "acme", "acme-web", &p)).await;
    params(&location(&r)).contains_key("code")
}

/// Alice signs in at `tenant`'s acme-web (consent given and remembered); the client's redirect
/// parameters.
async fn alice_at(server: &TestServer, b: &Browser, tenant: &str) -> HashMap<String, String> {
    let ch = challenge(VERIFIER);
    let r = b
        .get(&authorize_url(
            server,
            tenant,
            "acme-web",
            &web_params("s", &ch),
        ))
        .await;
    let r = submit_login(b, &location(&r), "alice", "alice-password").await;
    let mut next = location(&r);
    if next.contains("/account/consent") {
        next = location(&submit_consent(b, &next, "allow", true).await);
    }
    assert!(next.starts_with(WEB_CB), "{next}");
    params(&next)
}

/// acme-web's tokens at `tenant` for a code.
async fn web_tokens(server: &TestServer, tenant: &str, code: &str) -> Value {
    let r = server
        .http
        .post(server.url(&format!("/{tenant}/connect/token")))
        .basic_auth("acme-web", Some("acme-web-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", WEB_CB),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// base64url SHA-256: a DPoP proof's `ath` (RFC 9449 §4.2), a certificate's `x5t#S256`
/// (RFC 8705 §3.1).
fn sha256_b64(bytes: &[u8]) -> String {
    B64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

/// `url` with its query replaced by `pairs`.
fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let base = url.split(['?', '#']).next().unwrap();
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    format!("{base}?{}", q.finish())
}

// ---------------------------------------------------------------------------------------------
// What a browser sees during a sign-in, a second factor, brokering and a sign-out: the pages and
// redirects §4.2 (Referer), §4.3 (history, caches), §4.12 (307) and §4.16 (framing) are about.

struct Seen {
    what: &'static str,
    method: &'static str,
    status: u16,
    headers: HeaderMap,
}

impl Seen {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }
    fn is_html(&self) -> bool {
        self.header("content-type").starts_with("text/html")
    }
}

struct Walk(Vec<Seen>);

impl Walk {
    fn saw(&mut self, what: &'static str, method: &'static str, r: &reqwest::Response) {
        self.0.push(Seen {
            what,
            method,
            status: r.status().as_u16(),
            headers: r.headers().clone(),
        });
    }
}

/// Alice signs in (login, consent), gets codes back by query, fragment and form_post, redeems
/// one, meets an error redirect and an error page, and signs out through the confirmation page;
/// carol signs in with her second factor; bob is brokered from globex. Every response is kept.
async fn walk(server: &TestServer) -> Walk {
    let mut w = Walk(Vec::new());
    let ch = challenge(VERIFIER);
    let b = Browser::new(server);
    // The authorization request as a form POST (OIDC Core §3.1.2.1 allows both methods).
    let r = b
        .post(
            &server.url("/acme/connect/authorize"),
            &[&[("client_id", "acme-web")][..], &web_params("w", &ch)].concat(),
        )
        .await;
    w.saw("authorize (POST) -> login", "POST", &r);
    let login = location(&r);
    let r = b.get(&login).await;
    w.saw("login page", "GET", &r);
    let html = r.text().await.unwrap();
    let r = b
        .post(
            &server.url("/acme/account/login"),
            &[
                ("interaction", &field(&html, "interaction")),
                ("csrf", &field(&html, "csrf")),
                ("username", "alice"),
                ("password", "alice-password"),
            ],
        )
        .await;
    w.saw("login POST -> consent", "POST", &r);
    let consent = location(&r);
    let r = b.get(&consent).await;
    w.saw("consent page", "GET", &r);
    let html = r.text().await.unwrap();
    let r = b
        .post(
            &server.url("/acme/account/consent"),
            &[
                ("interaction", &field(&html, "interaction")),
                ("csrf", &field(&html, "csrf")),
                ("decision", "allow"),
                ("remember", "on"),
            ],
        )
        .await;
    w.saw("consent POST -> code", "POST", &r);
    let code = params(&location(&r))["code"].clone();
    let r = redeem(server, &code, VERIFIER).await;
    w.saw("token response", "POST", &r);
    let t: Value = r.json().await.unwrap();
    let r = server
        .http
        .get(server.url("/acme/connect/userinfo"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    w.saw("userinfo", "GET", &r);
    let r = b
        .get(&authorize_url(
            server,
            "acme",
            "acme-web",
            &[&web_params("w", &ch)[..], &[("response_mode", "fragment")]].concat(),
        ))
        .await;
    w.saw("authorize -> code in the fragment", "GET", &r);
    let r = b
        .get(&authorize_url(
            server,
            "acme",
            "acme-web",
            &[&web_params("w", &ch)[..], &[("response_mode", "form_post")]].concat(),
        ))
        .await;
    w.saw("form_post page", "GET", &r);
    let mut bad_scope = web_params("w", &ch);
    bad_scope[2] = ("scope", "openid nope");
    let r = b
        .get(&authorize_url(server, "acme", "acme-web", &bad_scope))
        .await;
    w.saw("authorize -> error redirect", "GET", &r);
    let r = b
        .get(&authorize_url(
            server,
            "acme",
            "nobody",
            &web_params("w", &ch),
        ))
        .await;
    w.saw("error page", "GET", &r);
    let r = b.get(&server.url("/acme/connect/endsession")).await;
    w.saw("logout confirmation page", "GET", &r);
    let html = r.text().await.unwrap();
    let r = b
        .post(
            &server.url("/acme/account/logout"),
            &[
                ("logout_id", &field(&html, "logout_id")),
                ("csrf", &field(&html, "csrf")),
            ],
        )
        .await;
    w.saw("logout POST -> signed-out page", "POST", &r);

    // Carol: password, then her TOTP code.
    let c = Browser::new(server);
    let spa = [
        ("response_type", "code"),
        ("redirect_uri", SPA_CB),
        ("scope", "openid"),
        ("state", "w"),
        ("code_challenge", ch.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let r = c
        .get(&authorize_url(server, "acme", "acme-spa", &spa))
        .await;
    let r = submit_login(&c, &location(&r), "carol", "carol-password").await;
    w.saw("TOTP page", "POST", &r);
    let html = r.text().await.unwrap();
    let totp = portcullis::users::totp_code(CAROL_TOTP, SystemClock.now()).unwrap();
    let r = c
        .post(
            &server.url("/acme/account/login/totp"),
            &[
                ("interaction", &field(&html, "interaction")),
                ("csrf", &field(&html, "csrf")),
                ("code", &totp),
            ],
        )
        .await;
    w.saw("TOTP POST -> code", "POST", &r);

    // Bob: a work address sends him to globex from the login form; back through the callback.
    let d = Browser::new(server);
    let r = d
        .get(&authorize_url(
            server,
            "acme",
            "acme-web",
            &web_params("w", &ch),
        ))
        .await;
    let login = location(&r);
    let html = d.get(&login).await.text().await.unwrap();
    let r = d
        .post(
            &server.url("/acme/account/login"),
            &[
                ("interaction", &field(&html, "interaction")),
                ("csrf", &field(&html, "csrf")),
                ("username", "bob@globex.test"),
                ("password", ""),
            ],
        )
        .await;
    w.saw("login POST -> federation start", "POST", &r);
    let r = d.get(&location(&r)).await;
    w.saw("federation start -> upstream", "GET", &r);
    let callback = bob_at_globex(&d, &location(&r)).await;
    let r = d.get(&callback).await;
    w.saw("federation callback -> consent", "GET", &r);
    let r = d
        .get(&server.url("/acme/federation/globex/signed-out"))
        .await;
    w.saw("upstream signed-out page", "GET", &r);
    w
}

// ---------------------------------------------------------------------------------------------
// RFC 9700 §4.1: insufficient redirect URI validation. Exact string comparison (§4.1.3), with
// only the port of a native client's loopback URI free (RFC 8252 §7.3).

#[tokio::test]
async fn an_open_redirector_at_authorize_gets_an_error_page_for_every_redirect_uri_trick() {
    // A native client beside acme-web (http://127.0.0.1:9000/callback).
    let acme = format!(
        "{ACME}\n[[clients]]\nclient_id = \"acme-cli\"\npublic = true\napplication_type = \"native\"\ngrant_types = [\"authorization_code\"]\nscopes = [\"openid\"]\nredirect_uris = [\"http://127.0.0.1/cb\"]\n"
    );
    let server = acme_is(acme).await;
    let b = Browser::new(&server);
    let ch = challenge(VERIFIER);
    let ask = |client: &str, redirect_uri: &str| {
        authorize_url(
            &server,
            "acme",
            client,
            &[
                ("response_type", "code"),
                ("redirect_uri", redirect_uri),
                ("scope", "openid"),
                ("state", "s"),
                ("code_challenge", ch.as_str()),
                ("code_challenge_method", "S256"),
            ],
        )
    };
    let web_tricks = [
        "https://evil.example/callback",
        "http://127.0.0.1:9000/callback/evil",
        "http://127.0.0.1:9000/callback?next=https://evil.example",
        "http://127.0.0.1:9000/callback#evil",
        "http://127.0.0.1:9000/callback/",
        "http://127.0.0.1:9000/callback/../evil",
        "http://127.0.0.1:9000/callback%2F..%2Fevil",
        "http://127.0.0.1:9000/CALLBACK",
        // userinfo: the host is evil.example, or userinfo smuggled before the right host
        "http://127.0.0.1:9000@evil.example/callback",
        "http://evil.example@127.0.0.1:9000/callback",
        "http://127.0.0.1:9001/callback",
        "http://127.0.0.1/callback",
        "https://127.0.0.1:9000/callback",
        "http://127.0.0.1.evil.example:9000/callback",
        // the same URL once parsed: only an exact comparison refuses these
        "HTTP://127.0.0.1:9000/callback",
        "http://0x7f000001:9000/callback",
        "http://127.0.0.1:9000/./callback",
        "//127.0.0.1:9000/callback",
        " http://127.0.0.1:9000/callback",
    ];
    let native_tricks = [
        "http://127.0.0.1:51000/cb/evil",
        "http://127.0.0.1:51000/cb?x=1",
        "http://127.0.0.1:51000/cb#x",
        "http://127.0.0.1:51000@evil.example/cb",
        "http://user@127.0.0.1:51000/cb",
        "https://127.0.0.1:51000/cb",
        "http://127.0.0.2:51000/cb",
        "http://localhost:51000/cb",
        "http://evil.example:51000/cb",
        "com.evil.app:/cb",
    ];
    for (client, tricks) in [
        ("acme-web", &web_tricks[..]),
        ("acme-cli", &native_tricks[..]),
    ] {
        for bad in tricks {
            let r = b.get(&ask(client, bad)).await;
            let why = assert_page_error(r, 400, "invalid_request").await;
            assert_eq!(why, UNREGISTERED, "{client} {bad:?}");
        }
    }
    // A pushed request is checked the same way (RFC 9126 §2.1).
    for bad in web_tricks {
        let mut p = web_params("s", &ch);
        p[1] = ("redirect_uri", bad);
        let r = server
            .http
            .post(server.url("/acme/connect/par"))
            .basic_auth("acme-web", Some("acme-web-secret"))
            .form(&p)
            .send()
            .await
            .unwrap();
        let why = assert_oauth_error(r, 400, "invalid_request").await;
        assert_eq!(why, UNREGISTERED, "PAR {bad:?}");
    }
    // The registered URIs work; the native client's loopback URI with any port.
    for (client, good) in [
        ("acme-web", WEB_CB),
        ("acme-cli", "http://127.0.0.1:51000/cb"),
        ("acme-cli", "http://127.0.0.1/cb"),
    ] {
        let r = b.get(&ask(client, good)).await;
        assert_eq!(r.status(), 303, "{client} {good}");
        assert!(location(&r).contains("/acme/account/login?interaction="));
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// RFC 9700 §4.2: credential leakage via the Referer header. Every page and redirect of a sign-in
// says `Referrer-Policy: no-referrer`, so a code or state in a URL never reaches a third party
// (the login page's links, a logo, an upstream provider).

#[tokio::test]
async fn no_page_or_redirect_of_a_sign_in_leaks_its_url_through_the_referer() {
    let server = TestServer::start().await;
    let w = walk(&server).await;
    for s in &w.0 {
        assert_eq!(s.header("referrer-policy"), "no-referrer", "{}", s.what);
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// RFC 9700 §4.3: credential leakage via browser history and caches. Tokens never appear in a
// URL (see §4.6); pages, redirects and token responses are `no-store`; codes are single use
// and short lived (interactive.rs).

#[tokio::test]
async fn no_page_redirect_or_token_response_may_be_stored_by_a_cache() {
    let server = TestServer::start().await;
    let w = walk(&server).await;
    for s in &w.0 {
        assert_eq!(s.header("cache-control"), "no-store", "{}", s.what);
        let location = s.header("location");
        assert!(
            !location.contains("access_token") && !location.contains("id_token"),
            "{}: {location}",
            s.what
        );
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// RFC 9700 §4.4: mix-up. RFC 9207: every authorization response names its issuer, errors
// included, so a client talking to several servers knows who answered; and as a client of
// upstream providers, Portcullis checks theirs.

#[tokio::test]
async fn every_authorization_response_names_its_issuer_even_an_error() {
    let server = TestServer::start_with(with_twin(ACME.into())).await;
    let acme = server.url("/acme");
    let (_, discovery) = server
        .get_json("/acme/.well-known/openid-configuration")
        .await;
    assert_eq!(
        discovery["authorization_response_iss_parameter_supported"],
        true
    );
    let ch = challenge(VERIFIER);
    let b = Browser::new(&server);
    let mut seen: Vec<(&str, HashMap<String, String>)> = Vec::new();
    // Errors before a session exists: prompt=none, a bad scope.
    let mut p = web_params("e", &ch);
    p.push(("prompt", "none"));
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    seen.push(("login_required", params(&location(&r))));
    let mut p = web_params("e", &ch);
    p[2] = ("scope", "openid nope");
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    seen.push(("invalid_scope", params(&location(&r))));
    // The user says no.
    let r = b
        .get(&authorize_url(
            &server,
            "acme",
            "acme-web",
            &web_params("e", &ch),
        ))
        .await;
    let r = submit_login(&b, &location(&r), "alice", "alice-password").await;
    let r = submit_consent(&b, &location(&r), "deny", false).await;
    seen.push(("access_denied", params(&location(&r))));
    // The code, by query, fragment and form_post.
    let b = Browser::new(&server);
    seen.push(("code", alice_signs_in(&server, &b, "e").await));
    let mut p = web_params("e", &ch);
    p.push(("response_mode", "fragment"));
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    let back = location(&r);
    assert!(back.starts_with(&format!("{WEB_CB}#")), "{back}");
    seen.push(("code in the fragment", params(&back)));
    let mut p = web_params("e", &ch);
    p.push(("response_mode", "form_post"));
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    let html = unescape(&r.text().await.unwrap());
    let form_post: HashMap<String, String> = ["code", "state", "iss"]
        .iter()
        .map(|k| (k.to_string(), field(&html, k)))
        .collect();
    seen.push(("code by form_post", form_post));
    // An upstream provider's refusal, relayed to the client.
    let f = Browser::new(&server);
    let up = to_upstream(&server, &f, &[("acr_values", "idp:globex")]).await;
    let st = params(&up)["state"].clone();
    let r = f
        .get(&server.url(&format!(
            "/acme/federation/globex/callback?error=access_denied&state={st}"
        )))
        .await;
    seen.push(("upstream refusal", params(&location(&r))));
    for (what, back) in &seen {
        assert_eq!(back.get("iss"), Some(&acme), "{what}: {back:?}");
    }
    // The twin answers with its own issuer.
    let mut p = web_params("e", &ch);
    p.push(("prompt", "none"));
    let r = Browser::new(&server)
        .get(&authorize_url(&server, "twin", "acme-web", &p))
        .await;
    assert_eq!(params(&location(&r))["iss"], server.url("/twin"));
    server.stop().await;
}

#[tokio::test]
async fn a_brokered_answer_without_the_iss_its_upstream_promised_is_a_mix_up() {
    // Globex (this server) advertises authorization_response_iss_parameter_supported, so an
    // answer without iss, or with another issuer's, did not come from globex (RFC 9207 §2.4).
    security_events::capture();
    let server = TestServer::start_with(with_twin(ACME.into())).await;
    for (iss, reason) in [
        (None, "the authorization response lacks iss"),
        (
            Some(server.url("/twin")),
            "the authorization response came from another issuer",
        ),
    ] {
        let b = Browser::new(&server);
        let up = to_upstream(&server, &b, &[("acr_values", "idp:globex")]).await;
        let callback = bob_at_globex(&b, &up).await;
        let q = params(&callback);
        assert_eq!(q["iss"], server.url("/globex"), "globex names itself");
        let mut pairs = vec![("code", q["code"].as_str()), ("state", q["state"].as_str())];
        if let Some(i) = &iss {
            pairs.push(("iss", i.as_str()));
        }
        let r = b.get(&with_query(&callback, &pairs)).await;
        let back = location(&r);
        assert!(back.starts_with(WEB_CB), "{back}");
        assert_eq!(params(&back)["error"], "access_denied");
        assert_eq!(params(&back)["state"], "st-1");
        let events = security_events::of(&r);
        assert!(
            events
                .iter()
                .any(|e| e["event"] == "federation_rejected" && e["reason"] == reason),
            "{events:?}"
        );
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// RFC 9700 §4.5: authorization code injection. A code is bound to its client, redirect URI,
// PKCE challenge, DPoP key and nonce; here the client.

#[tokio::test]
async fn an_authorization_code_stolen_by_another_client_is_invalid_grant() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let code = alice_signs_in(&server, &b, "s").await["code"].clone();
    // acme-spa presents acme-web's code with everything else right (the code's redirect URI,
    // its verifier): only the client binding can refuse.
    let r = server
        .http
        .post(server.url("/acme/connect/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", WEB_CB),
            ("code_verifier", VERIFIER),
            ("client_id", "acme-spa"),
        ])
        .send()
        .await
        .unwrap();
    let why = assert_oauth_error(r, 400, "invalid_grant").await;
    assert_eq!(why, "the code is invalid, expired or already used");
    // Nothing was used up: the client it was issued to redeems it.
    assert_eq!(redeem(&server, &code, VERIFIER).await.status(), 200);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// RFC 9700 §4.6: access token injection, and §4.3.2: tokens in URLs. Only the code flow exists:
// no access or id token ever travels through the browser.

#[tokio::test]
async fn tokens_never_travel_in_the_front_channel() {
    let server = TestServer::start().await;
    let (_, discovery) = server
        .get_json("/acme/.well-known/openid-configuration")
        .await;
    assert_eq!(discovery["response_types_supported"], json!(["code"]));
    let b = Browser::new(&server);
    alice_signs_in(&server, &b, "s").await; // a session and a remembered consent
    let ch = challenge(VERIFIER);
    for response_type in [
        "token",
        "id_token",
        "id_token token",
        "code id_token",
        "code token",
        "code id_token token",
    ] {
        let mut p = web_params("t", &ch);
        p[0] = ("response_type", response_type);
        let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
        let (error, why) = redirect_error(&r);
        assert_eq!(
            (error.as_str(), why.as_str()),
            (
                "unsupported_response_type",
                "only response_type=code is supported"
            ),
            "{response_type}"
        );
        let back = location(&r);
        assert!(
            !back.contains("access_token=") && !back.contains("id_token="),
            "{back}"
        );
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// RFC 9700 §4.7: CSRF. Every form carries its interaction's CSRF value and only the browser that
// started the interaction (binding cookie) may complete it; a sign-out form only ends the
// session it was shown for. The attacker here holds valid values of their own.

/// The interaction and CSRF value of the login form `b` is shown for an authorization request.
async fn login_form(b: &Browser, authorize: &str) -> (String, String) {
    let r = b.get(authorize).await;
    let html = b.get(&location(&r)).await.text().await.unwrap();
    (field(&html, "interaction"), field(&html, "csrf"))
}

/// Carol's second-factor form in `b` (acme-spa), after her password.
async fn totp_form(server: &TestServer, b: &Browser, ch: &str) -> (String, String) {
    let spa = [
        ("response_type", "code"),
        ("redirect_uri", SPA_CB),
        ("scope", "openid"),
        ("code_challenge", ch),
        ("code_challenge_method", "S256"),
    ];
    let r = b
        .get(&authorize_url(server, "acme", "acme-spa", &spa))
        .await;
    let r = submit_login(b, &location(&r), "carol", "carol-password").await;
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"totp-form\""), "the TOTP step");
    (field(&html, "interaction"), field(&html, "csrf"))
}

/// Alice's consent form in `b` (acme-web), after her password.
async fn consent_form(server: &TestServer, b: &Browser, ch: &str) -> (String, String) {
    let r = b
        .get(&authorize_url(
            server,
            "acme",
            "acme-web",
            &web_params("c", ch),
        ))
        .await;
    let r = submit_login(b, &location(&r), "alice", "alice-password").await;
    let html = b.get(&location(&r)).await.text().await.unwrap();
    (field(&html, "interaction"), field(&html, "csrf"))
}

/// The sign-out confirmation form `b` is shown.
async fn logout_form(server: &TestServer, b: &Browser) -> (String, String) {
    let html = b
        .get(&server.url("/acme/connect/endsession"))
        .await
        .text()
        .await
        .unwrap();
    (field(&html, "logout_id"), field(&html, "csrf"))
}

#[tokio::test]
async fn every_form_refuses_a_foreign_csrf_value_and_a_foreign_browser() {
    use portcullis::stores::{ConsentStore, SessionStore};
    let server = TestServer::start().await;
    let store = &server.state().store;
    let ch = challenge(VERIFIER);
    let victim = Browser::new(&server);
    let attacker = Browser::new(&server);
    let refused = |r: reqwest::Response, why: &'static str| async move {
        assert_eq!(assert_page_error(r, 400, "invalid_request").await, why);
    };

    // Login: the attacker's own csrf with the victim's interaction; then login CSRF proper, the
    // victim's browser posting the attacker's complete form (to sign the victim in as someone).
    let login = server.url("/acme/account/login");
    let authorize = authorize_url(&server, "acme", "acme-web", &web_params("c", &ch));
    let (vi, _) = login_form(&victim, &authorize).await;
    let (ai, ac) = login_form(&attacker, &authorize).await;
    for (interaction, why) in [(&vi, CSRF_REFUSED), (&ai, OTHER_BROWSER)] {
        let form = [
            ("interaction", interaction.as_str()),
            ("csrf", ac.as_str()),
            ("username", "alice"),
            ("password", "alice-password"),
        ];
        refused(victim.post(&login, &form).await, why).await;
    }
    assert!(!has_session(&server, &victim).await, "nobody signed in");

    // Second factor (carol): the attacker's csrf; then the victim's whole form, elsewhere.
    let totp = server.url("/acme/account/login/totp");
    let (vi, vc) = totp_form(&server, &victim, &ch).await;
    let (_, ac) = totp_form(&server, &attacker, &ch).await;
    let code = portcullis::users::totp_code(CAROL_TOTP, SystemClock.now()).unwrap();
    for (b, csrf, why) in [
        (&victim, &ac, CSRF_REFUSED),
        (&attacker, &vc, OTHER_BROWSER),
    ] {
        let form = [
            ("interaction", vi.as_str()),
            ("csrf", csrf.as_str()),
            ("code", code.as_str()),
        ];
        refused(b.post(&totp, &form).await, why).await;
    }
    assert!(
        store
            .list_sessions("acme", "carol")
            .await
            .unwrap()
            .is_empty()
    );

    // Consent (alice at acme-web): the same two.
    let consent = server.url("/acme/account/consent");
    let (vi, vc) = consent_form(&server, &victim, &ch).await;
    let (_, ac) = consent_form(&server, &attacker, &ch).await;
    let allow = |csrf: &str| {
        vec![
            ("interaction", vi.clone()),
            ("csrf", csrf.to_string()),
            ("decision", "allow".to_string()),
            ("remember", "on".to_string()),
        ]
    };
    for (b, csrf, why) in [
        (&victim, &ac, CSRF_REFUSED),
        (&attacker, &vc, OTHER_BROWSER),
    ] {
        let form = allow(csrf);
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        refused(b.post(&consent, &form).await, why).await;
    }
    let now = server.state().now();
    let stored = store.find_consent("acme", "alice", "acme-web", now).await;
    assert_eq!(stored.unwrap(), None, "no consent was stored");
    // Nothing was used up: the victim's own form still works.
    let form = allow(&vc);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = victim.post(&consent, &form).await;
    assert_eq!(r.status(), 303);
    assert!(params(&location(&r)).contains_key("code"));

    // Sign-out confirmation: both browsers are signed in as alice, and a form ends only the
    // session it was shown to.
    let logout = server.url("/acme/account/logout");
    // (The attacker's browser signed in as alice for its consent form.)
    assert!(has_session(&server, &victim).await && has_session(&server, &attacker).await);
    let did_not_come_from_here = "the form did not come from this site";
    let (vl, _) = logout_form(&server, &victim).await;
    let r = victim.post(&logout, &[("logout_id", vl.as_str())]).await;
    refused(r, did_not_come_from_here).await;
    let (vl, _) = logout_form(&server, &victim).await;
    let (al, ac) = logout_form(&server, &attacker).await;
    let r = victim
        .post(
            &logout,
            &[("logout_id", vl.as_str()), ("csrf", ac.as_str())],
        )
        .await;
    refused(r, did_not_come_from_here).await;
    // The attacker's own valid form posted by the victim's browser, and the victim's form
    // posted by the attacker's: neither ends the victim's session.
    let (vl, vc) = logout_form(&server, &victim).await;
    let r = victim
        .post(
            &logout,
            &[("logout_id", al.as_str()), ("csrf", ac.as_str())],
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = attacker
        .post(
            &logout,
            &[("logout_id", vl.as_str()), ("csrf", vc.as_str())],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        has_session(&server, &victim).await,
        "the victim is still signed in"
    );
    let (vl, vc) = logout_form(&server, &victim).await;
    let r = victim
        .post(
            &logout,
            &[("logout_id", vl.as_str()), ("csrf", vc.as_str())],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        !has_session(&server, &victim).await,
        "its own form signs it out"
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// RFC 9700 §4.9: access token leakage at the resource server. A token is audience-restricted:
// an API that received one cannot use it elsewhere, and another API learns nothing about it.

#[tokio::test]
async fn an_access_token_for_one_api_is_inactive_at_another_apis_introspection() {
    let billing = portcullis::secrets::SecretHash::of("billing-api-secret").to_stored();
    let acme = edit(
        ACME,
        "grant_types = [\"client_credentials\"]\nscopes = [\"api.read\", \"api.write\"]",
        "grant_types = [\"client_credentials\"]\nscopes = [\"api.read\", \"api.write\", \"billing.read\"]",
    ) + &format!(
        "\n[[api_scopes]]\nname = \"billing.read\"\n\n[[api_resources]]\nname = \"https://billing.acme.test\"\nscopes = [\"billing.read\"]\nsecrets = [{{ hash = \"{billing}\" }}]\n"
    );
    let server = acme_is(acme).await;
    let token = |scope: &'static str| {
        let server = &server;
        async move {
            server
                .token_json(
                    "acme",
                    "acme-m2m",
                    "acme-m2m-secret",
                    &[("grant_type", "client_credentials"), ("scope", scope)],
                )
                .await["access_token"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let introspect = |api: &'static str, secret: &'static str, token: String| {
        let server = &server;
        async move {
            let r = server
                .http
                .post(server.url("/acme/connect/introspect"))
                .basic_auth(api, Some(secret))
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let api = (API_USER, "acme-api-secret");
    let bill = ("https%3A%2F%2Fbilling.acme.test", "billing-api-secret");
    for (scope, home, other) in [("api.read", api, bill), ("billing.read", bill, api)] {
        let t = token(scope).await;
        assert_eq!(introspect(home.0, home.1, t.clone()).await["active"], true);
        assert_eq!(
            introspect(other.0, other.1, t).await,
            json!({"active": false}),
            "a {scope} token at the other API"
        );
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// RFC 9700 §4.10: misuse of stolen access tokens. Sender-constrained tokens (DPoP, mTLS) are
// refused without a proof of their key (or their certificate, client_auth.rs), and
// introspection tells the API what the token is bound to.

#[tokio::test]
async fn a_stolen_dpop_bound_token_is_refused_with_the_thiefs_own_proof_and_introspection_shows_the_binding()
 {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let k = key();
    let ch = challenge(VERIFIER);
    let p = [
        ("response_type", "code"),
        ("redirect_uri", SPA_CB),
        ("scope", "openid profile api.read"),
        ("code_challenge", ch.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let r = b.get(&authorize_url(&server, "acme", "acme-spa", &p)).await;
    let r = submit_login(&b, &location(&r), "alice", "alice-password").await;
    let code = params(&location(&r))["code"].clone();
    let token_url = server.url("/acme/connect/token");
    let r = server
        .http
        .post(&token_url)
        .header("DPoP", proof(&k, "POST", &token_url, json!({})))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", SPA_CB),
            ("code_verifier", VERIFIER),
            ("client_id", "acme-spa"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let at = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let ui = server.url("/acme/connect/userinfo");
    let userinfo = |k: &portcullis::keys::Signer| {
        server
            .http
            .get(&ui)
            .header("Authorization", format!("DPoP {at}"))
            .header(
                "DPoP",
                proof(k, "GET", &ui, json!({"ath": sha256_b64(at.as_bytes())})),
            )
            .send()
    };
    // The thief's proof is a valid proof (this request, this token's hash), of another key.
    let r = userinfo(&key()).await.unwrap();
    assert_bearer_error(&r, 401, "invalid_token");
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("DPoP ")
    );
    assert_eq!(
        userinfo(&k).await.unwrap().status(),
        200,
        "the holder's proof"
    );
    // The API learns the binding (RFC 9449 §6.2) so it can demand the proof too.
    let r = server
        .http
        .post(server.url("/acme/connect/introspect"))
        .basic_auth(API_USER, Some("acme-api-secret"))
        .form(&[("token", at.as_str())])
        .send()
        .await
        .unwrap();
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["active"], true);
    assert_eq!(info["token_type"], "DPoP");
    assert_eq!(info["cnf"]["jkt"], k.kid.as_str());
    // A certificate-bound token: introspection names the certificate (RFC 8705 §3.2).
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let cert = std::fs::read_to_string(server.path("certs/demo-client.pem")).unwrap();
    let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
    let identity = format!(
        "{cert}{}",
        std::fs::read_to_string(server.path("certs/demo-client-key.pem")).unwrap()
    );
    let mtls = client_for(
        &server.path("certs/ca.pem"),
        &[("localhost", server.mtls_addr)],
        Some(&identity),
    );
    let t: Value = mtls
        .post(format!("{}/acme/connect/token", server.mtls_base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "acme-mtls"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = server
        .http
        .post(server.url("/acme/connect/introspect"))
        .basic_auth(API_USER, Some("acme-api-secret"))
        .form(&[("token", t["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["active"], true);
    assert_eq!(info["cnf"]["x5t#S256"], sha256_b64(der.as_ref()));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// RFC 9700 §4.11: open redirection. At the end-session endpoint a post-logout URI is followed
// only when registered (exactly) for the client named by a valid id_token_hint or client_id;
// the way back from an upstream's logout only goes where a recorded logout was going.

#[tokio::test]
async fn sign_out_redirects_only_to_a_uri_registered_for_the_named_client() {
    let server = TestServer::start_with(with_twin(ACME.into())).await;
    let b = Browser::new(&server);
    let back = alice_at(&server, &b, "acme").await;
    let id_token = web_tokens(&server, "acme", &back["code"]).await["id_token"]
        .as_str()
        .unwrap()
        .to_string();
    let t = Browser::new(&server);
    let back = alice_at(&server, &t, "twin").await;
    let twin_id_token = web_tokens(&server, "twin", &back["code"]).await["id_token"]
        .as_str()
        .unwrap()
        .to_string();
    let registered = "http://127.0.0.1:9000/";
    let spa_registered = "http://127.0.0.1:9000/spa/";
    let not_registered = "post_logout_redirect_uri is not registered for this client";
    let hint = id_token.as_str();
    // (query, error, description)
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("post_logout_redirect_uri", registered)],
            "invalid_request",
            not_registered,
        ),
        (
            vec![
                ("client_id", "acme-web"),
                ("post_logout_redirect_uri", spa_registered),
            ],
            "invalid_request",
            not_registered,
        ),
        (
            vec![
                ("id_token_hint", hint),
                ("post_logout_redirect_uri", "https://evil.example/"),
            ],
            "invalid_request",
            not_registered,
        ),
        (
            vec![
                ("id_token_hint", hint),
                ("post_logout_redirect_uri", "http://127.0.0.1:9000/evil"),
            ],
            "invalid_request",
            not_registered,
        ),
        (
            vec![
                ("id_token_hint", hint),
                (
                    "post_logout_redirect_uri",
                    "http://127.0.0.1:9000/?next=https://evil.example",
                ),
            ],
            "invalid_request",
            not_registered,
        ),
        (
            vec![
                ("id_token_hint", hint),
                ("post_logout_redirect_uri", "http://127.0.0.1:9000"),
            ],
            "invalid_request",
            not_registered,
        ),
        (
            vec![
                ("id_token_hint", hint),
                ("client_id", "acme-spa"),
                ("post_logout_redirect_uri", spa_registered),
            ],
            "invalid_request",
            "id_token_hint was issued to another client",
        ),
        (
            vec![
                ("id_token_hint", twin_id_token.as_str()),
                ("post_logout_redirect_uri", registered),
            ],
            "invalid_request",
            "id_token_hint is not an id token of this issuer",
        ),
        (
            vec![
                ("client_id", "evil"),
                ("post_logout_redirect_uri", "https://evil.example/"),
            ],
            "invalid_client",
            "unknown client",
        ),
    ];
    for (query, error, description) in cases {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &query {
            q.append_pair(k, v);
        }
        q.append_pair("state", "bye");
        let r = b
            .get(&server.url(&format!("/acme/connect/endsession?{}", q.finish())))
            .await;
        let why = assert_page_error(r, 400, error).await;
        assert_eq!(why, description, "{query:?}");
    }
    assert!(
        has_session(&server, &b).await,
        "no refusal signed alice out"
    );
    // The way back from an upstream logout: only a recorded destination.
    for q in [
        format!("state={}", "A".repeat(43)),
        "state=https%3A%2F%2Fevil.example%2F".to_string(),
        "RelayState=https%3A%2F%2Fevil.example%2F".to_string(),
    ] {
        let r = b
            .get(&server.url(&format!("/acme/federation/globex/signed-out?{q}")))
            .await;
        assert_eq!(r.status(), 200, "{q}");
        assert!(r.headers().get("location").is_none(), "{q}");
        assert!(!r.text().await.unwrap().contains("evil.example"), "{q}");
    }
    // The registered URI with the client named: followed (at once, RP-Initiated Logout 1.0 §3)
    // after the user confirms.
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", "acme-web")
        .append_pair("post_logout_redirect_uri", registered)
        .append_pair("state", "bye")
        .finish();
    let html = b
        .get(&server.url(&format!("/acme/connect/endsession?{q}")))
        .await
        .text()
        .await
        .unwrap();
    let r = b
        .post(
            &server.url("/acme/account/logout"),
            &[
                ("logout_id", &field(&html, "logout_id")),
                ("csrf", &field(&html, "csrf")),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "http://127.0.0.1:9000/?state=bye");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// RFC 9700 §4.12: 307 redirect. A POST that redirects answers 303, so the browser follows with
// a GET and never re-posts the password (or the code, or the consent) to the next hop.

#[tokio::test]
async fn every_post_that_redirects_answers_303_so_no_credential_is_posted_again() {
    let server = TestServer::start().await;
    let w = walk(&server).await;
    let posts: Vec<&Seen> =
        w.0.iter()
            .filter(|s| s.method == "POST" && s.headers.contains_key("location"))
            .collect();
    let whats: Vec<&str> = posts.iter().map(|s| s.what).collect();
    assert_eq!(
        whats,
        [
            "authorize (POST) -> login",
            "login POST -> consent",
            "consent POST -> code",
            "TOTP POST -> code",
            "login POST -> federation start"
        ]
    );
    for s in posts {
        assert_eq!(s.status, 303, "{}", s.what);
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// RFC 9700 §4.15: a client impersonating a resource owner. Client ids come from operator files
// only (no registration), so a client cannot pick a user's subject; should an operator name a
// client like a user, its token still cannot pass for the user's: it carries no identity scope,
// no auth_time and no sid, and userinfo refuses it.

#[tokio::test]
async fn a_client_named_like_a_user_gets_no_token_that_passes_for_the_users() {
    let acme = format!(
        "{ACME}\n[[clients]]\nclient_id = \"alice\"\n# secret: acme-m2m-secret\nsecrets = [{{ hash = \"sha256:Zsxv5CP7oTQ4690W5g1DqnGwn5toTEeS1o_uDrQnPD4\" }}]\ngrant_types = [\"client_credentials\", \"authorization_code\"]\nscopes = [\"api.read\", \"openid\", \"profile\"]\nredirect_uris = [\"{WEB_CB}\"]\n"
    );
    let server = acme_is(acme).await;
    let jwks = server.jwks("acme").await;
    let t = server
        .token_json(
            "acme",
            "alice",
            "acme-m2m-secret",
            &[("grant_type", "client_credentials")],
        )
        .await;
    let at = t["access_token"].as_str().unwrap();
    let claims = verify_jwt(at, &jwks, &server.url("/acme"), "https://api.acme.test");
    // RFC 9068 §2.2: the client is the subject; the user alice has the same subject.
    assert_eq!(
        (claims["sub"].as_str(), claims["client_id"].as_str()),
        (Some("alice"), Some("alice"))
    );
    for user_only in ["auth_time", "sid", "amr", "idp"] {
        assert!(claims.get(user_only).is_none(), "{user_only} in {claims}");
    }
    assert_eq!(claims["scope"], "api.read");
    // Identity scopes name a user: not in this grant, even for a client allowed them.
    let r = server
        .token(
            "acme",
            "alice",
            "acme-m2m-secret",
            &[
                ("grant_type", "client_credentials"),
                ("scope", "openid profile"),
            ],
        )
        .await;
    let why = assert_oauth_error(r, 400, "invalid_scope").await;
    assert_eq!(why, "a requested scope is not allowed for this client");
    let r = server
        .http
        .get(server.url("/acme/connect/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_bearer_error(&r, 401, "invalid_token");
    // The user's own token says who signed in and when.
    let b = Browser::new(&server);
    let code = alice_signs_in(&server, &b, "s").await["code"].clone();
    let t: Value = redeem(&server, &code, VERIFIER).await.json().await.unwrap();
    let user = verify_jwt(
        t["access_token"].as_str().unwrap(),
        &jwks,
        &server.url("/acme"),
        "https://api.acme.test",
    );
    assert_eq!(user["sub"], "alice");
    assert!(user["auth_time"].is_i64() && user["sid"].is_string());
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// RFC 9700 §4.16: clickjacking. No page may be framed by another origin.

#[tokio::test]
async fn every_page_refuses_to_be_framed() {
    let server = TestServer::start().await;
    let w = walk(&server).await;
    let pages: Vec<&Seen> = w.0.iter().filter(|s| s.is_html()).collect();
    assert!(pages.len() >= 8, "{}", pages.len());
    for s in &w.0 {
        assert_eq!(s.header("x-frame-options"), "DENY", "{}", s.what);
    }
    for s in pages {
        let csp = s.header("content-security-policy");
        assert!(
            csp.split(';').any(|d| d.trim() == "frame-ancestors 'none'"),
            "{}: {csp}",
            s.what
        );
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// RFC 9700 §4.17: in-browser communication flows. None is offered: no web_message response
// mode, no postMessage; a request for one is an error, not a silent fallback.

#[tokio::test]
async fn an_in_browser_response_mode_is_refused() {
    let server = TestServer::start().await;
    let (_, discovery) = server
        .get_json("/acme/.well-known/openid-configuration")
        .await;
    assert_eq!(
        discovery["response_modes_supported"],
        json!(["query", "fragment", "form_post"])
    );
    let b = Browser::new(&server);
    let ch = challenge(VERIFIER);
    let mut p = web_params("m", &ch);
    p.push(("response_mode", "web_message"));
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    let (error, why) = redirect_error(&r);
    assert_eq!(
        (error.as_str(), why.as_str()),
        ("invalid_request", "unsupported response_mode")
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// RFC 9700 §4.18 (and §4.11.2): the authorization server redirecting to a phishing site. Until
// the client and its redirect URI are established, every error is a page: a request built to
// fail at once (prompt=none, a bad scope or response type) cannot bounce a signed-in user to an
// unregistered URI.

#[tokio::test]
async fn a_request_that_fails_before_its_redirect_uri_is_trusted_gets_a_page_even_with_prompt_none()
{
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    alice_signs_in(&server, &b, "s").await; // a signed-in victim
    let ch = challenge(VERIFIER);
    let evil = "https://evil.example/cb";
    let with = |client: &str, changes: &[(&'static str, &'static str)]| {
        let mut p: Vec<(&str, &str)> = web_params("p", &ch);
        p[1] = ("redirect_uri", evil);
        p.push(("prompt", "none"));
        for &(k, v) in changes {
            match p.iter_mut().find(|(name, _)| *name == k) {
                Some(pair) => pair.1 = v,
                None => p.push((k, v)),
            }
        }
        p.retain(|(_, v)| !v.is_empty());
        authorize_url(&server, "acme", client, &p)
    };
    let cases = [
        (with("evil-client", &[]), "invalid_client", "unknown client"),
        (with("acme-web", &[]), "invalid_request", UNREGISTERED),
        (
            with("acme-web", &[("scope", "openid nope")]),
            "invalid_request",
            UNREGISTERED,
        ),
        (
            with("acme-web", &[("response_type", "token")]),
            "invalid_request",
            UNREGISTERED,
        ),
        (
            with("acme-web", &[("code_challenge", "")]),
            "invalid_request",
            UNREGISTERED,
        ),
        (
            with("acme-web", &[("prompt", "login none")]),
            "invalid_request",
            UNREGISTERED,
        ),
        (
            with("acme-web", &[("redirect_uri", "")]),
            "invalid_request",
            "redirect_uri is required",
        ),
        (
            with("acme-m2m", &[]),
            "unauthorized_client",
            "this client may not use the authorization code flow",
        ),
    ];
    for (url, error, description) in cases {
        let r = b.get(&url).await;
        let why = assert_page_error(r, 400, error).await;
        assert_eq!(why, description, "{url}");
    }
    // The same request with the registered URI answers silently, as prompt=none should.
    let r = b.get(&with("acme-web", &[("redirect_uri", WEB_CB)])).await;
    assert!(params(&location(&r)).contains_key("code"));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Cross-tenant use of every artifact, against acme's twin. Already elsewhere: client id and
// secret, refresh token, access token at userinfo and introspection, consent, PAR request_uri
// and admin token (security_rules.rs); code and session cookie (interactive.rs).

#[tokio::test]
async fn an_acme_client_assertion_is_invalid_client_at_the_twin() {
    // acme-jwt is registered at both with the same key (certs/acme-jwt.jwks.json): only the
    // assertion's audience (RFC 7523 §3 item 3) tells the tenants apart.
    security_events::capture();
    let server = TestServer::start_with(with_twin(ACME.into())).await;
    use rustls::pki_types::pem::PemObject;
    let der =
        rustls::pki_types::PrivatePkcs8KeyDer::from_pem_file(server.path("certs/acme-jwt-key.pem"))
            .unwrap();
    let k =
        portcullis::keys::Signer::from_pkcs8(portcullis::keys::Alg::ES256, der.secret_pkcs8_der())
            .unwrap();
    let now = SystemClock.now();
    let assertion = |aud: String| {
        k.sign_jwt(
            "JWT",
            &json!({"iss": "acme-jwt", "sub": "acme-jwt", "aud": aud, "iat": now, "exp": now + 60,
                    "jti": portcullis::tokens::new_jti()}),
        )
        .unwrap()
    };
    let present = |tenant: &str, a: &str| {
        server
            .http
            .post(server.url(&format!("/{tenant}/connect/token")))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "acme-jwt"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", a),
            ])
            .send()
    };
    for aud in [server.url("/acme"), server.url("/acme/connect/token")] {
        let a = assertion(aud.clone());
        let r = present("twin", &a).await.unwrap();
        let events = security_events::of(&r);
        assert_oauth_error(r, 401, "invalid_client").await;
        assert!(
            events
                .iter()
                .any(|e| e["event"] == "client_authentication_failed"
                    && e["reason"] == "the assertion's audience is not this server"),
            "{aud}: {events:?}"
        );
        // Unused by the refusal: still good, once, at acme.
        assert_eq!(present("acme", &a).await.unwrap().status(), 200, "{aud}");
    }
    server.stop().await;
}

#[tokio::test]
async fn an_acme_token_cannot_be_revoked_at_the_twin() {
    let server = TestServer::start_with(with_twin(ACME.into())).await;
    let b = Browser::new(&server);
    let code = alice_signs_in(&server, &b, "s").await["code"].clone();
    let t = web_tokens(&server, "acme", &code).await;
    let (at, rt) = (
        t["access_token"].as_str().unwrap(),
        t["refresh_token"].as_str().unwrap(),
    );
    let reference = server
        .token_json(
            "acme",
            "acme-ref",
            "acme-ref-secret",
            &[("grant_type", "client_credentials")],
        )
        .await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    // The twin's clients of the same name and secret ask the twin to revoke them: RFC 7009 §2.2
    // answers 200 for a token it does not know, and nothing happens at acme.
    for (client, secret, token) in [
        ("acme-web", "acme-web-secret", at),
        ("acme-web", "acme-web-secret", rt),
        ("acme-ref", "acme-ref-secret", reference.as_str()),
    ] {
        let r = server
            .http
            .post(server.url("/twin/connect/revocation"))
            .basic_auth(client, Some(secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap(), json!({}));
    }
    let r = server
        .http
        .get(server.url("/acme/connect/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the access token lives");
    let r = server
        .http
        .post(server.url("/acme/connect/introspect"))
        .basic_auth(API_USER, Some("acme-api-secret"))
        .form(&[("token", reference.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["active"],
        true,
        "the reference token lives"
    );
    let r = server
        .http
        .post(server.url("/acme/connect/token"))
        .basic_auth("acme-web", Some("acme-web-secret"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the refresh token lives");
    server.stop().await;
}

#[tokio::test]
async fn an_acme_sign_in_or_sign_out_in_progress_is_unknown_at_the_twin() {
    let server = TestServer::start_with(with_twin(ACME.into())).await;
    let b = Browser::new(&server);
    let ch = challenge(VERIFIER);
    let r = b
        .get(&authorize_url(
            &server,
            "acme",
            "acme-web",
            &web_params("x", &ch),
        ))
        .await;
    let login = location(&r);
    let html = b.get(&login).await.text().await.unwrap();
    let (interaction, csrf) = (field(&html, "interaction"), field(&html, "csrf"));
    // The attacker replays the interaction with acme's binding cookie at the twin, where the
    // same client and user exist.
    let cookie = cookies_for(&b, &server, "acme");
    assert!(cookie.contains("portcullis.bind="), "{cookie}");
    let unknown = "this sign-in has expired or is unknown; start again from the application";
    let r = server
        .http
        .get(server.url(&format!("/twin/account/login?interaction={interaction}")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(assert_page_error(r, 400, "invalid_request").await, unknown);
    let r = server
        .http
        .post(server.url("/twin/account/login"))
        .header("cookie", &cookie)
        .form(&[
            ("interaction", interaction.as_str()),
            ("csrf", csrf.as_str()),
            ("username", "alice"),
            ("password", "alice-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(assert_page_error(r, 400, "invalid_request").await, unknown);
    // At home the sign-in goes on (to consent).
    let r = b
        .post(
            &server.url("/acme/account/login"),
            &[
                ("interaction", interaction.as_str()),
                ("csrf", csrf.as_str()),
                ("username", "alice"),
                ("password", "alice-password"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = submit_consent(&b, &location(&r), "allow", true).await;
    assert!(location(&r).starts_with(WEB_CB));
    // A sign-out confirmation of acme, posted at the twin with acme's session cookie.
    let html = b
        .get(&server.url("/acme/connect/endsession"))
        .await
        .text()
        .await
        .unwrap();
    let (logout_id, csrf) = (field(&html, "logout_id"), field(&html, "csrf"));
    let r = server
        .http
        .post(server.url("/twin/account/logout"))
        .header("cookie", cookies_for(&b, &server, "acme"))
        .form(&[("logout_id", logout_id.as_str()), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    let why = assert_page_error(r, 400, "invalid_request").await;
    assert_eq!(why, "this logout request has expired; sign out again");
    assert!(has_session(&server, &b).await, "still signed in at acme");
    server.stop().await;
}

#[tokio::test]
async fn an_acme_upstream_state_is_unknown_at_the_twin() {
    security_events::capture();
    let server = TestServer::start_with(with_twin(ACME.into())).await;
    let b = Browser::new(&server);
    let up = to_upstream(&server, &b, &[("acr_values", "idp:globex")]).await;
    let callback = bob_at_globex(&b, &up).await;
    // The twin offers globex too; the attacker brings acme's binding cookie along.
    let at_twin = callback.replace(
        "/acme/federation/globex/callback",
        "/twin/federation/globex/callback",
    );
    assert_ne!(at_twin, callback);
    let r = server
        .http
        .get(&at_twin)
        .header("cookie", cookies_for(&b, &server, "acme"))
        .send()
        .await
        .unwrap();
    let events = security_events::of(&r);
    assert_page_error(r, 400, "invalid_request").await;
    assert!(
        events.iter().any(|e| e["event"] == "federation_rejected"
            && e["reason"] == "unknown or expired upstream state"),
        "{events:?}"
    );
    // Unused by the twin: the sign-in completes at acme.
    let back = back_at_acme(&b, &callback).await;
    assert!(back.contains_key("code"));
    server.stop().await;
}

#[tokio::test]
async fn an_acme_runtime_provider_is_unknown_at_the_twin() {
    let server = TestServer::start_with(with_twin(ACME.into())).await;
    let admin = admin_token(&server, "acme", "acme-admin", "acme-admin-secret").await;
    let r = server
        .http
        .post(server.url("/acme/admin/providers"))
        .bearer_auth(&admin)
        .json(&dynamic_globex(&server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let ch = challenge(VERIFIER);
    let start = |tenant: &'static str| {
        let server = &server;
        let ch = ch.clone();
        async move {
            let b = Browser::new(server);
            let r = b
                .get(&authorize_url(
                    server,
                    tenant,
                    "acme-web",
                    &web_params("d", &ch),
                ))
                .await;
            let id = params(&location(&r))["interaction"].clone();
            b.get(&server.url(&format!(
                "/{tenant}/federation/globex-dyn/start?interaction={id}"
            )))
            .await
        }
    };
    // At acme it sends the browser to its upstream (and is now in acme's provider cache).
    let r = start("acme").await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).contains("/globex/connect/authorize?"));
    let r = start("twin").await;
    let why = assert_page_error(r, 400, "invalid_request").await;
    assert_eq!(
        why,
        "this sign-in option is not available to the application"
    );
    // Home-realm discovery at the twin does not find it either: the sign-in page is shown.
    let mut p = web_params("d", &ch);
    p.push(("idp_hint", "globex-dyn"));
    let r = Browser::new(&server)
        .get(&authorize_url(&server, "twin", "acme-web", &p))
        .await;
    assert!(
        location(&r).contains("/twin/account/login?"),
        "{}",
        location(&r)
    );
    // Nor does the twin's admin API.
    let twin_admin = admin_token(&server, "twin", "acme-admin", "acme-admin-secret").await;
    let r = server
        .http
        .get(server.url("/twin/admin/providers/globex-dyn"))
        .bearer_auth(&twin_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    server.stop().await;
}

#[tokio::test]
async fn an_acme_dpop_proof_or_nonce_is_refused_at_the_twin() {
    // Both tenants want server nonces (RFC 9449 §8), so a nonce is an artifact too.
    let nonce = "\n[dpop]\nrequire_nonce = true\n";
    let mut o = with_twin(format!("{ACME}{nonce}"));
    o.tenants[2].1 = format!("{}{nonce}", twin());
    let server = TestServer::start_with(o).await;
    let k = key();
    let url = |tenant: &str| server.url(&format!("/{tenant}/connect/token"));
    let cc = |tenant: &str, dpop: String| {
        server
            .http
            .post(url(tenant))
            .basic_auth("acme-m2m", Some("acme-m2m-secret"))
            .header("DPoP", dpop)
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let nonce_of = |tenant: &'static str| {
        let k = &k;
        let cc = &cc;
        async move {
            let r = cc(tenant, proof(k, "POST", &url(tenant), json!({})))
                .await
                .unwrap();
            let n = r.headers()["dpop-nonce"].to_str().unwrap().to_string();
            assert_oauth_error(r, 400, "use_dpop_nonce").await;
            n
        }
    };
    let (acme_nonce, twin_nonce) = (nonce_of("acme").await, nonce_of("twin").await);
    // A proof made for acme's token endpoint, fresh or already used there, at the twin's.
    let for_acme = proof(&k, "POST", &url("acme"), json!({"nonce": acme_nonce}));
    let r = cc("twin", for_acme.clone()).await.unwrap();
    let why = assert_oauth_error(r, 400, "invalid_dpop_proof").await;
    assert_eq!(why, "the DPoP proof's htu does not match the request");
    assert_eq!(cc("acme", for_acme.clone()).await.unwrap().status(), 200);
    let r = cc("twin", for_acme).await.unwrap();
    let why = assert_oauth_error(r, 400, "invalid_dpop_proof").await;
    assert_eq!(why, "the DPoP proof's htu does not match the request");
    // A proof for the twin's endpoint carrying acme's nonce.
    let r = cc(
        "twin",
        proof(&k, "POST", &url("twin"), json!({"nonce": acme_nonce})),
    )
    .await
    .unwrap();
    let why = assert_oauth_error(r, 400, "use_dpop_nonce").await;
    assert_eq!(why, "the DPoP proof must carry the server's nonce");
    let r = cc(
        "twin",
        proof(&k, "POST", &url("twin"), json!({"nonce": twin_nonce})),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "with the twin's own nonce");
    server.stop().await;
}
