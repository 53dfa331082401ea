//! The rules an audit found unguarded: each test here was seen failing with the
//! check it names taken out of the code, and asserts the exact RFC error (and, where several
//! rules answer with the same code, the description) that proves that check refused.
//!
//! Cross-tenant tests use tenant `twin` (support::twin): acme's file under another slug, with
//! the same client ids, secrets, API names and users, so only the tenant boundary can refuse.

use crate::dpop::{key, proof};
use crate::interactive::{
    Browser, VERIFIER, alice_signs_in, authorize_url, challenge, field, location, params, redeem,
    submit_consent, submit_login, web_params,
};
use crate::support::*;
use portcullis::clock::{Clock, FixedClock, SystemClock};
use portcullis::stores::{ConsentStore, SessionStore};
use serde_json::{Value, json};

const WEB_CB: &str = "http://127.0.0.1:9000/callback";
const SPA_CB: &str = "http://127.0.0.1:9000/spa/callback";

/// Replaces `from` in the demo tenant, asserting it was there (the demo file may change).
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the demo tenant changed: no {from:?}");
    text.replacen(from, to, 1)
}

/// acme with a tenant-file edit, plus globex.
async fn acme_with(from: &str, to: &str) -> TestServer {
    TestServer::start_with(Options {
        tenants: vec![
            ("acme", edit(ACME, from, to)),
            ("globex", GLOBEX.to_string()),
        ],
        ..Default::default()
    })
    .await
}

/// POSTs a token request at `tenant` with the form and optional Basic credentials / DPoP proof.
async fn token_request(
    server: &TestServer,
    tenant: &str,
    basic: Option<(&str, &str)>,
    dpop: Option<String>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut r = server
        .http
        .post(server.url(&format!("/{tenant}/connect/token")))
        .form(form);
    if let Some((id, secret)) = basic {
        r = r.basic_auth(id, Some(secret));
    }
    if let Some(p) = dpop {
        r = r.header("DPoP", p);
    }
    r.send().await.unwrap()
}

/// acme-web redeems `code` at `tenant` with exactly the parameters given (no defaults).
async fn web_redeem(server: &TestServer, tenant: &str, form: &[(&str, &str)]) -> reqwest::Response {
    let mut f = vec![("grant_type", "authorization_code")];
    f.extend_from_slice(form);
    token_request(
        server,
        tenant,
        Some(("acme-web", "acme-web-secret")),
        None,
        &f,
    )
    .await
}

/// Alice signs in at acme-spa (public client) with PKCE S256 plus `extra`; the code.
async fn spa_code(server: &TestServer, b: &Browser, scope: &str, extra: &[(&str, &str)]) -> String {
    let ch = challenge(VERIFIER);
    let mut p = vec![
        ("response_type", "code"),
        ("redirect_uri", SPA_CB),
        ("scope", scope),
        ("state", "spa"),
        ("code_challenge", ch.as_str()),
        ("code_challenge_method", "S256"),
    ];
    p.extend_from_slice(extra);
    let r = b.get(&authorize_url(server, "acme", "acme-spa", &p)).await;
    assert_eq!(r.status(), 303);
    let r = submit_login(b, &location(&r), "alice", "alice-password").await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let back = location(&r);
    assert!(back.starts_with(SPA_CB), "{back}");
    params(&back)["code"].clone()
}

// ---------------------------------------------------------------------------------------------
// 1. RFC 6749 §4.1.3: the token request's redirect_uri is the authorization request's.

#[tokio::test]
async fn a_code_redeemed_with_another_registered_redirect_uri_is_invalid_grant() {
    let other = "http://127.0.0.1:9000/other-callback";
    let server = acme_with(
        "redirect_uris = [\"http://127.0.0.1:9000/callback\"]",
        &format!("redirect_uris = [\"{WEB_CB}\", \"{other}\"]"),
    )
    .await;
    let b = Browser::new(&server);
    let code = alice_signs_in(&server, &b, "s").await["code"].clone();
    // Both URIs are registered for acme-web: only the match with the request can refuse.
    let r = web_redeem(
        &server,
        "acme",
        &[
            ("code", &code),
            ("redirect_uri", other),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    let why = assert_oauth_error(r, 400, "invalid_grant").await;
    assert_eq!(why, "redirect_uri does not match the authorization request");
    // Left out while the client has several: which one was meant cannot be known.
    let r = web_redeem(
        &server,
        "acme",
        &[("code", &code), ("code_verifier", VERIFIER)],
    )
    .await;
    let why = assert_oauth_error(r, 400, "invalid_grant").await;
    assert_eq!(why, "redirect_uri does not match the authorization request");
    // The refusals used nothing up: the right request still gets the tokens.
    assert_eq!(redeem(&server, &code, VERIFIER).await.status(), 200);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 2 and 3. PKCE (RFC 7636 §4.6) and its downgrades (RFC 9700 §4.8.2).

#[tokio::test]
async fn a_code_issued_with_a_challenge_is_not_redeemed_without_its_verifier() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let code = alice_signs_in(&server, &b, "s").await["code"].clone();
    let r = web_redeem(
        &server,
        "acme",
        &[("code", &code), ("redirect_uri", WEB_CB)],
    )
    .await;
    let why = assert_oauth_error(r, 400, "invalid_grant").await;
    assert_eq!(why, "code_verifier is required");
    assert_eq!(redeem(&server, &code, VERIFIER).await.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn pkce_downgrade_a_public_clients_code_redeemed_without_its_verifier_is_invalid_grant() {
    // Code injection against a public client: no client authentication, PKCE is all there is.
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let code = spa_code(&server, &b, "openid", &[]).await;
    let r = token_request(
        &server,
        "acme",
        None,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", SPA_CB),
            ("client_id", "acme-spa"),
        ],
    )
    .await;
    let why = assert_oauth_error(r, 400, "invalid_grant").await;
    assert_eq!(why, "code_verifier is required");
    server.stop().await;
}

#[tokio::test]
async fn pkce_downgrade_a_client_that_must_use_s256_cannot_ask_with_plain_or_without_a_method() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let ask = |extra: Vec<(&'static str, String)>| {
        let mut p: Vec<(&str, String)> = vec![
            ("response_type", "code".into()),
            ("redirect_uri", SPA_CB.into()),
            ("scope", "openid".into()),
            ("state", "dg".into()),
        ];
        p.extend(extra);
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        authorize_url(&server, "acme", "acme-spa", &p)
    };
    // RFC 7636 §4.3: plain, named or by default (no method), is the downgrade.
    for extra in [
        vec![
            ("code_challenge", VERIFIER.to_string()),
            ("code_challenge_method", "plain".to_string()),
        ],
        vec![("code_challenge", VERIFIER.to_string())],
    ] {
        let r = b.get(&ask(extra)).await;
        let (error, why) = redirect_error(&r);
        assert_eq!(error, "invalid_request");
        assert_eq!(why, "code_challenge_method plain is not allowed: use S256");
    }
    server.stop().await;
}

#[tokio::test]
async fn pkce_downgrade_a_verifier_for_a_code_issued_without_a_challenge_is_invalid_grant() {
    // A confidential client allowed to skip PKCE. RFC 9700 §4.8.2: a code_verifier for a code
    // whose request had no code_challenge is refused (the attacker stripped the challenge).
    let server = acme_with(
        "client_id = \"acme-web\"",
        "client_id = \"acme-web\"\nrequire_pkce = false",
    )
    .await;
    let b = Browser::new(&server);
    let ch = challenge(VERIFIER);
    let p: Vec<(&str, &str)> = web_params("np", &ch)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .collect();
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    let r = submit_login(&b, &location(&r), "alice", "alice-password").await;
    let r = submit_consent(&b, &location(&r), "allow", false).await;
    let code = params(&location(&r))["code"].clone();
    let why =
        assert_oauth_error(redeem(&server, &code, VERIFIER).await, 400, "invalid_grant").await;
    assert_eq!(why, "the authorization request had no code_challenge");
    let r = web_redeem(
        &server,
        "acme",
        &[("code", &code), ("redirect_uri", WEB_CB)],
    )
    .await;
    assert_eq!(r.status(), 200, "without a verifier, as it was asked");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 6. RFC 9700 §2.1.1: public clients must use PKCE.

#[tokio::test]
async fn a_public_client_asking_without_a_code_challenge_gets_invalid_request() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let p = [
        ("response_type", "code"),
        ("redirect_uri", SPA_CB),
        ("scope", "openid profile"),
        ("state", "np"),
    ];
    let r = b.get(&authorize_url(&server, "acme", "acme-spa", &p)).await;
    let (error, why) = redirect_error(&r);
    assert_eq!(error, "invalid_request");
    assert_eq!(
        why,
        "PKCE is required: send code_challenge with code_challenge_method=S256"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_tenant_file_cannot_let_a_public_client_skip_pkce() {
    let server = TestServer::start().await;
    write_tenant(
        server.dir.path(),
        "acme",
        &edit(
            ACME,
            "client_id = \"acme-spa\"",
            "client_id = \"acme-spa\"\nrequire_pkce = false",
        )
        .replace(DEMO_BASE, &server.base),
    );
    let report = portcullis::registry::sync::reload_files(server.state())
        .await
        .unwrap();
    assert_eq!(report.rejected.len(), 1, "{:?}", report.rejected);
    let why = report.rejected[0].to_string();
    assert!(
        why.contains("require_pkce") && why.contains("a public client must use PKCE"),
        "{why}"
    );
    // The running tenant is untouched: acme-spa still must send a challenge.
    let b = Browser::new(&server);
    let p = [
        ("response_type", "code"),
        ("redirect_uri", SPA_CB),
        ("scope", "openid"),
    ];
    let r = b.get(&authorize_url(&server, "acme", "acme-spa", &p)).await;
    assert_eq!(redirect_error(&r).0, "invalid_request");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 4. RFC 9449 §5: a public client's refresh token is bound to the DPoP key it was issued with.

#[tokio::test]
async fn a_public_clients_refresh_token_works_only_with_a_proof_of_its_dpop_key() {
    let server = acme_with(
        "scopes = [\"openid\", \"profile\", \"api.read\"]\nredirect_uris = [\"http://127.0.0.1:9000/spa/callback\"]",
        "scopes = [\"openid\", \"profile\", \"api.read\", \"offline_access\"]\nredirect_uris = [\"http://127.0.0.1:9000/spa/callback\"]",
    )
    .await;
    let b = Browser::new(&server);
    let code = spa_code(&server, &b, "openid offline_access", &[]).await;
    let token_url = server.url("/acme/connect/token");
    let k = key();
    let r = token_request(
        &server,
        "acme",
        None,
        Some(proof(&k, "POST", &token_url, json!({}))),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", SPA_CB),
            ("code_verifier", VERIFIER),
            ("client_id", "acme-spa"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "DPoP");
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    let refresh = |dpop: Option<String>| {
        let (server, rt) = (&server, rt.clone());
        async move {
            token_request(
                server,
                "acme",
                None,
                dpop,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                    ("client_id", "acme-spa"),
                ],
            )
            .await
        }
    };
    // A thief with the refresh token but not the key: no proof, or a valid proof of their own
    // key. Neither proof is invalid (RFC 9449 §5 keeps invalid_dpop_proof for that): the grant
    // is not usable by this sender, RFC 6749 §5.2 invalid_grant.
    let why = assert_oauth_error(refresh(None).await, 400, "invalid_grant").await;
    assert_eq!(
        why,
        "the refresh token is bound to a DPoP key: send a proof made with it"
    );
    let thief = proof(&key(), "POST", &token_url, json!({}));
    let why = assert_oauth_error(refresh(Some(thief)).await, 400, "invalid_grant").await;
    assert_eq!(why, "the refresh token is bound to another DPoP key");
    // The holder of the key refreshes (the refusals consumed nothing), and stays bound.
    let r = refresh(Some(proof(&k, "POST", &token_url, json!({})))).await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "DPoP");
    let claims = verify_jwt(
        t["access_token"].as_str().unwrap(),
        &server.jwks("acme").await,
        &server.url("/acme"),
        &server.url("/acme/resources"),
    );
    assert_eq!(claims["cnf"]["jkt"], k.kid.as_str());
    let r = token_request(
        &server,
        "acme",
        None,
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
            ("client_id", "acme-spa"),
        ],
    )
    .await;
    assert_oauth_error(r, 400, "invalid_grant").await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 5. CSRF on the sign-in forms: a forged post is refused and changes nothing.

const CSRF_REFUSED: &str = "the form expired or did not come from this site; please try again";

/// The same value with its last character changed.
fn forge(csrf: &str) -> String {
    let (head, last) = csrf.split_at(csrf.len() - 1);
    format!("{head}{}", if last == "A" { "B" } else { "A" })
}

fn has_session_cookie(b: &Browser, server: &TestServer) -> bool {
    use reqwest::cookie::CookieStore;
    b.jar
        .cookies(&server.url("/acme/connect/authorize").parse().unwrap())
        .is_some_and(|c| c.to_str().unwrap().contains("portcullis.session="))
}

#[tokio::test]
async fn a_totp_form_without_or_with_a_wrong_csrf_value_is_refused_and_signs_nobody_in() {
    let clock = FixedClock::new(SystemClock.now());
    let server = TestServer::start_with(Options {
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    let b = Browser::new(&server);
    let ch = challenge(VERIFIER);
    let p = [
        ("response_type", "code"),
        ("redirect_uri", SPA_CB),
        ("scope", "openid"),
        ("code_challenge", ch.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let r = b.get(&authorize_url(&server, "acme", "acme-spa", &p)).await;
    let r = submit_login(&b, &location(&r), "carol", "carol-password").await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"totp-form\""), "the TOTP step");
    let interaction = field(&html, "interaction");
    let csrf = field(&html, "csrf");
    // The right code: only the CSRF check can refuse these.
    let code =
        portcullis::users::totp_code("CPVGE6YPNPBBTGYVKT2AOU537SU3URFN", clock.now()).unwrap();
    let action = server.url("/acme/account/login/totp");
    let forged = forge(&csrf);
    for form in [
        vec![
            ("interaction", interaction.as_str()),
            ("code", code.as_str()),
        ],
        vec![
            ("interaction", interaction.as_str()),
            ("csrf", forged.as_str()),
            ("code", code.as_str()),
        ],
    ] {
        let r = b.post(&action, &form).await;
        assert!(r.headers().get("set-cookie").is_none(), "no cookie set");
        let why = assert_page_error(r, 400, "invalid_request").await;
        assert_eq!(why, CSRF_REFUSED);
    }
    assert!(!has_session_cookie(&b, &server));
    let store = &server.state().store;
    assert!(
        store
            .list_sessions("acme", "carol")
            .await
            .unwrap()
            .is_empty(),
        "no session was started"
    );
    // Nothing was used up either: the same code with the form's own csrf signs carol in.
    let r = b
        .post(
            &action,
            &[
                ("interaction", interaction.as_str()),
                ("csrf", csrf.as_str()),
                ("code", code.as_str()),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).starts_with(SPA_CB));
    assert_eq!(store.list_sessions("acme", "carol").await.unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_consent_form_without_or_with_a_wrong_csrf_value_is_refused_and_stores_no_consent() {
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
    let r = submit_login(&b, &location(&r), "alice", "alice-password").await;
    let consent = location(&r);
    assert!(consent.contains("/acme/account/consent"), "{consent}");
    let html = b.get(&consent).await.text().await.unwrap();
    let interaction = field(&html, "interaction");
    let csrf = field(&html, "csrf");
    let action = server.url("/acme/account/consent");
    let forged = forge(&csrf);
    for form in [
        vec![
            ("interaction", interaction.as_str()),
            ("decision", "allow"),
            ("remember", "on"),
        ],
        vec![
            ("interaction", interaction.as_str()),
            ("csrf", forged.as_str()),
            ("decision", "allow"),
            ("remember", "on"),
        ],
    ] {
        let r = b.post(&action, &form).await;
        let why = assert_page_error(r, 400, "invalid_request").await;
        assert_eq!(why, CSRF_REFUSED);
    }
    let store = &server.state().store;
    let now = server.state().now();
    assert_eq!(
        store
            .find_consent("acme", "alice", "acme-web", now)
            .await
            .unwrap(),
        None,
        "no consent was stored"
    );
    // The interaction is intact: asking again still shows the consent page.
    let r = b
        .post(
            &action,
            &[
                ("interaction", interaction.as_str()),
                ("csrf", csrf.as_str()),
                ("decision", "allow"),
                ("remember", "on"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(params(&location(&r)).contains_key("code"));
    assert!(
        store
            .find_consent("acme", "alice", "acme-web", now)
            .await
            .unwrap()
            .is_some()
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 8. Tenant isolation, against a twin with the same clients, secrets, APIs and users.

#[tokio::test]
async fn a_client_registration_and_its_secret_belong_to_one_tenant() {
    // Here acme's acme-m2m has a rotated secret and acme has a client the twin lacks; the
    // twin keeps the demo secret. A lookup or cache keyed by client id alone would mix them.
    let rotated = portcullis::secrets::SecretHash::of("rotated-m2m-secret").to_stored();
    let acme = edit(
        ACME,
        "sha256:Zsxv5CP7oTQ4690W5g1DqnGwn5toTEeS1o_uDrQnPD4",
        &rotated,
    ) + "\n[[clients]]\nclient_id = \"acme-only\"\n# secret: acme-m2m-secret\nsecrets = [{ hash = \"sha256:Zsxv5CP7oTQ4690W5g1DqnGwn5toTEeS1o_uDrQnPD4\" }]\ngrant_types = [\"client_credentials\"]\nscopes = [\"api.read\"]\n";
    let server = TestServer::start_with(with_twin(acme)).await;
    let cc = [("grant_type", "client_credentials")];
    // Each at home first.
    assert_eq!(
        server
            .token("acme", "acme-m2m", "rotated-m2m-secret", &cc)
            .await
            .status(),
        200
    );
    assert_eq!(
        server
            .token("twin", "acme-m2m", "acme-m2m-secret", &cc)
            .await
            .status(),
        200
    );
    assert_eq!(
        server
            .token("acme", "acme-only", "acme-m2m-secret", &cc)
            .await
            .status(),
        200
    );
    for (tenant, client, secret) in [
        ("twin", "acme-m2m", "rotated-m2m-secret"),
        ("acme", "acme-m2m", "acme-m2m-secret"),
        ("twin", "acme-only", "acme-m2m-secret"),
    ] {
        let r = server.token(tenant, client, secret, &cc).await;
        assert_oauth_error(r, 401, "invalid_client").await;
    }
    server.stop().await;
}

#[tokio::test]
async fn a_refresh_token_of_acme_is_invalid_grant_at_its_twin() {
    let server = TestServer::start_with(with_twin(ACME.into())).await;
    let b = Browser::new(&server);
    let code = alice_signs_in(&server, &b, "s").await["code"].clone();
    let t: Value = redeem(&server, &code, VERIFIER).await.json().await.unwrap();
    let rt = t["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", rt)];
    let basic = Some(("acme-web", "acme-web-secret"));
    let r = token_request(&server, "twin", basic, None, &form).await;
    let why = assert_oauth_error(r, 400, "invalid_grant").await;
    assert_eq!(why, "the refresh token is invalid, expired or revoked");
    let r = token_request(&server, "acme", basic, None, &form).await;
    assert_eq!(r.status(), 200, "still good at home");
    server.stop().await;
}

#[tokio::test]
async fn an_access_token_of_acme_is_refused_at_the_twins_userinfo_and_inactive_at_its_introspection()
 {
    let acme_ref_web = edit(
        ACME,
        "client_id = \"acme-web\"",
        "client_id = \"acme-web\"\naccess_token_format = \"reference\"",
    );
    let twin = edit(
        &twin(),
        "client_id = \"acme-web\"",
        "client_id = \"acme-web\"\naccess_token_format = \"reference\"",
    );
    for (acme, twin, kind) in [
        (ACME.to_string(), crate::support::twin(), "JWT"),
        (acme_ref_web, twin, "reference"),
    ] {
        let mut o = with_twin(acme);
        o.tenants[2].1 = twin;
        let server = TestServer::start_with(o).await;
        let b = Browser::new(&server);
        let code = alice_signs_in(&server, &b, "s").await["code"].clone();
        let t: Value = redeem(&server, &code, VERIFIER).await.json().await.unwrap();
        let at = t["access_token"].as_str().unwrap();
        assert_eq!(at.contains('.'), kind == "JWT", "{kind}");
        let userinfo = |tenant: &str| {
            server
                .http
                .get(server.url(&format!("/{tenant}/connect/userinfo")))
                .bearer_auth(at)
                .send()
        };
        assert_eq!(userinfo("acme").await.unwrap().status(), 200, "{kind}");
        let r = userinfo("twin").await.unwrap();
        assert_bearer_error(&r, 401, "invalid_token");
        // The same API credentials and the token's own client, at each tenant.
        for (user, secret) in [
            ("https%3A%2F%2Fapi.acme.test", "acme-api-secret"),
            ("acme-web", "acme-web-secret"),
        ] {
            let introspect = |tenant: &str| {
                server
                    .http
                    .post(server.url(&format!("/{tenant}/connect/introspect")))
                    .basic_auth(user, Some(secret))
                    .form(&[("token", at)])
                    .send()
            };
            let home: Value = introspect("acme").await.unwrap().json().await.unwrap();
            assert_eq!(home["active"], true, "{kind} {user}");
            let r = introspect("twin").await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(
                r.json::<Value>().await.unwrap(),
                json!({"active": false}),
                "{kind} {user}"
            );
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn a_consent_given_at_acme_is_not_a_consent_at_its_twin() {
    let server = TestServer::start_with(with_twin(ACME.into())).await;
    let b = Browser::new(&server);
    alice_signs_in(&server, &b, "s").await; // consents, remembered
    let now = server.state().now();
    let store = &server.state().store;
    assert!(
        store
            .find_consent("acme", "alice", "acme-web", now)
            .await
            .unwrap()
            .is_some()
    );
    // Alice (the twin has an alice too) signs in at the twin with the same client: asked.
    let ch = challenge(VERIFIER);
    let r = b
        .get(&authorize_url(
            &server,
            "twin",
            "acme-web",
            &web_params("t", &ch),
        ))
        .await;
    let r = submit_login(&b, &location(&r), "alice", "alice-password").await;
    assert_eq!(r.status(), 303);
    assert!(
        location(&r).contains("/twin/account/consent?interaction="),
        "{}",
        location(&r)
    );
    assert_eq!(
        store
            .find_consent("twin", "alice", "acme-web", now)
            .await
            .unwrap(),
        None
    );
    server.stop().await;
}

#[tokio::test]
async fn a_pushed_request_uri_of_acme_is_invalid_request_uri_at_its_twin() {
    let server = TestServer::start_with(with_twin(ACME.into())).await;
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
    let b = Browser::new(&server);
    let r = b
        .get(&authorize_url(
            &server,
            "twin",
            "acme-web",
            &[("request_uri", uri)],
        ))
        .await;
    assert_page_error(r, 400, "invalid_request_uri").await;
    // Still unused at acme.
    let r = b
        .get(&authorize_url(
            &server,
            "acme",
            "acme-web",
            &[("request_uri", uri)],
        ))
        .await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).contains("/acme/account/login"));
    server.stop().await;
}

#[tokio::test]
async fn an_admin_token_of_the_twin_is_not_an_admin_token_at_acme() {
    let server = TestServer::start_with(with_twin(ACME.into())).await;
    let twin_admin = server
        .token_json(
            "twin",
            "acme-admin",
            "acme-admin-secret",
            &[("grant_type", "client_credentials")],
        )
        .await;
    let token = twin_admin["access_token"].as_str().unwrap();
    let list = |tenant: &str| {
        server
            .http
            .get(server.url(&format!("/{tenant}/admin/providers")))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(list("twin").await.unwrap().status(), 200, "at home");
    let r = list("acme").await.unwrap();
    assert_bearer_error(&r, 401, "invalid_token");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The security log, for answers that are the same whatever the reason (the SAML ACS).

/// Security events (`target: "security"`) of this process, captured as JSON lines, so that a
/// test can tell which rule refused a request whose answer is deliberately the same for every
/// reason. The serving threads run their own runtimes, hence one process-wide subscriber; the
/// request id (`x-request-id`) tells the events of one request apart from other tests'.
pub mod security_events {
    use std::io::Write;
    use std::sync::{Arc, Mutex, OnceLock};

    static LINES: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Starts capturing (once per process).
    pub fn capture() {
        use tracing_subscriber::prelude::*;
        LINES.get_or_init(|| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let writer = lines.clone();
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .with_writer(move || Sink(writer.clone()))
                .with_filter(
                    tracing_subscriber::filter::Targets::new()
                        .with_target("security", tracing::Level::INFO),
                );
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
                .expect("no other global subscriber in the test binary");
            lines
        });
    }

    /// The fields of the security events logged while serving the response `r`.
    pub fn of(r: &reqwest::Response) -> Vec<serde_json::Value> {
        let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        let lines = LINES.get().expect("capture() first").lock().unwrap();
        String::from_utf8_lossy(&lines)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|e| e["fields"].clone())
            .filter(|f| f["request_id"] == id.as_str())
            .collect()
    }
}
