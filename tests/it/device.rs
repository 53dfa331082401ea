//! The device authorization grant (RFC 8628): a device asks for codes, a browser enters the
//! user code and signs in through the real pages, the device polls the token endpoint.

use crate::interactive::{Browser, field, location, submit_login};
use crate::support::*;
use portcullis::clock::{Clock, FixedClock, SystemClock};
use serde_json::Value;
use std::sync::Arc;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const TV_SCOPES: &str = "openid profile api.read offline_access";

/// acme plus a second device client, and a device client that authenticates with the demo
/// client certificate (so that its tokens can be bound to it).
fn acme_with_more_devices() -> String {
    format!(
        "{ACME}\n[[clients]]\nclient_id = \"acme-tv2\"\npublic = true\ngrant_types = [\"{GRANT}\"]\nscopes = [\"openid\", \"api.read\"]\n\n\
         [[clients]]\nclient_id = \"acme-kiosk\"\ntoken_endpoint_auth_methods = [\"tls_client_auth\"]\n\
         tls_client_auth_subject_dn = \"CN=acme-mtls, O=Portcullis development\"\ngrant_types = [\"{GRANT}\"]\nscopes = [\"openid\", \"api.read\"]\n"
    )
}

fn fixed_clock() -> Arc<FixedClock> {
    FixedClock::new(SystemClock.now())
}

/// Starts the device flow for `client` at `tenant`; the JSON answer.
async fn device_authorization(
    server: &TestServer,
    tenant: &str,
    client: &str,
    scope: &str,
) -> Value {
    let r = start(server, tenant, &[("client_id", client), ("scope", scope)]).await;
    assert_eq!(r.status(), 200, "device authorization");
    r.json().await.unwrap()
}

async fn start(server: &TestServer, tenant: &str, form: &[(&str, &str)]) -> reqwest::Response {
    server
        .http
        .post(server.url(&format!("/{tenant}/connect/deviceauthorization")))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn poll(
    server: &TestServer,
    tenant: &str,
    client: &str,
    device_code: &str,
) -> reqwest::Response {
    server
        .http
        .post(server.url(&format!("/{tenant}/connect/token")))
        .form(&[
            ("grant_type", GRANT),
            ("client_id", client),
            ("device_code", device_code),
        ])
        .send()
        .await
        .unwrap()
}

async fn poll_error(server: &TestServer, client: &str, device_code: &str) -> String {
    let r = poll(server, "acme", client, device_code).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    body["error"].as_str().unwrap().to_string()
}

/// Enters `code` on the verification page (the page's own form, CSRF token and all).
async fn enter_code(
    server: &TestServer,
    b: &Browser,
    tenant: &str,
    code: &str,
) -> reqwest::Response {
    let page = b.get(&server.url(&format!("/{tenant}/device"))).await;
    assert_eq!(page.status(), 200);
    let csrf = field(&page.text().await.unwrap(), "csrf");
    b.post(
        &server.url(&format!("/{tenant}/device")),
        &[("csrf", &csrf), ("user_code", code)],
    )
    .await
}

/// Allows or denies on the consent page the sign-in went to; the page that follows.
async fn decide(b: &Browser, consent_url: &str, decision: &str) -> (u16, String) {
    let page = b.get(consent_url).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("id=\"device-notice\""),
        "the consent page says a device is asking"
    );
    assert!(
        !html.contains("name=\"remember\""),
        "a device's consent is not remembered"
    );
    let action = consent_url.split('?').next().unwrap();
    let r = b
        .post(
            action,
            &[
                ("interaction", &field(&html, "interaction")),
                ("csrf", &field(&html, "csrf")),
                ("decision", decision),
            ],
        )
        .await;
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

/// alice enters the code, signs in with her password and decides.
async fn alice_decides(
    server: &TestServer,
    b: &Browser,
    user_code: &str,
    decision: &str,
) -> (u16, String) {
    let r = enter_code(server, b, "acme", user_code).await;
    assert_eq!(r.status(), 303, "a right code starts the sign-in");
    let login = location(&r);
    assert!(
        login.contains("/acme/account/login?interaction="),
        "{login}"
    );
    let r = submit_login(b, &login, "alice", "alice-password").await;
    assert_eq!(r.status(), 303);
    let consent = location(&r);
    assert!(
        consent.contains("/acme/account/consent?interaction="),
        "{consent}"
    );
    decide(b, &consent, decision).await
}

#[tokio::test]
async fn a_device_is_signed_in_by_alice_through_the_pages_and_gets_its_tokens_once() {
    let server = TestServer::start().await;
    let (_, discovery) = server
        .get_json("/acme/.well-known/openid-configuration")
        .await;
    assert_eq!(
        discovery["device_authorization_endpoint"],
        server.url("/acme/connect/deviceauthorization")
    );
    assert!(
        discovery["grant_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == GRANT)
    );

    let d = device_authorization(&server, "acme", "acme-tv", TV_SCOPES).await;
    let user_code = d["user_code"].as_str().unwrap();
    // RFC 8628 §6.1: XXXX-XXXX of the 20 consonants.
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert!(
        user_code
            .chars()
            .filter(|c| *c != '-')
            .all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c))
    );
    assert_eq!(d["verification_uri"], server.url("/acme/device"));
    assert_eq!(
        d["verification_uri_complete"],
        format!("{}?user_code={user_code}", server.url("/acme/device"))
    );
    assert_eq!(d["expires_in"], 600);
    assert_eq!(d["interval"], 5);
    let device_code = d["device_code"].as_str().unwrap();
    assert_eq!(
        poll_error(&server, "acme-tv", device_code).await,
        "authorization_pending"
    );

    // The complete URI fills the field in; the user still confirms it (RFC 8628 §5.4).
    let b = Browser::new(&server);
    let page = b
        .get(d["verification_uri_complete"].as_str().unwrap())
        .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("value=\"{user_code}\"")), "{html}");
    // Typed in lower case and without the dash, it is the same code.
    let typed = user_code.replace('-', "").to_lowercase();
    let (status, html) = alice_decides(&server, &b, &typed, "allow").await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"device-approved\""), "{html}");

    let r = poll(&server, "acme", "acme-tv", device_code).await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], TV_SCOPES);
    let jwks = server.jwks("acme").await;
    let id = verify_jwt(
        tokens["id_token"].as_str().unwrap(),
        &jwks,
        &server.url("/acme"),
        "acme-tv",
    );
    assert_eq!(id["amr"], serde_json::json!(["pwd"]));
    let at = verify_jwt(
        tokens["access_token"].as_str().unwrap(),
        &jwks,
        &server.url("/acme"),
        "https://api.acme.test",
    );
    assert_eq!(at["client_id"], "acme-tv");
    assert_eq!(at["sub"], id["sub"]);
    // The refresh token works; the device code never works twice.
    let r = server
        .http
        .post(server.url("/acme/connect/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "acme-tv"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        poll_error(&server, "acme-tv", device_code).await,
        "invalid_grant"
    );
    // Nor does the user code.
    let r = enter_code(&server, &b, "acme", user_code).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("That code is not right"));
    server.stop().await;
}

#[tokio::test]
async fn a_signed_in_user_goes_straight_to_consent_and_deny_tells_the_device_access_denied() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let d = device_authorization(&server, "acme", "acme-tv", "openid api.read").await;
    let (status, html) = alice_decides(&server, &b, d["user_code"].as_str().unwrap(), "deny").await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"device-denied\""), "{html}");
    let device_code = d["device_code"].as_str().unwrap();
    assert_eq!(
        poll_error(&server, "acme-tv", device_code).await,
        "access_denied"
    );
    assert_eq!(
        poll_error(&server, "acme-tv", device_code).await,
        "access_denied"
    );

    // alice has a session now: the next device goes straight to consent.
    let d = device_authorization(&server, "acme", "acme-tv", "openid").await;
    let r = enter_code(&server, &b, "acme", d["user_code"].as_str().unwrap()).await;
    assert_eq!(r.status(), 303);
    let consent = location(&r);
    assert!(
        consent.contains("/acme/account/consent?interaction="),
        "{consent}"
    );
    // A consent POST without its CSRF token changes nothing.
    let html = b.get(&consent).await.text().await.unwrap();
    let r = b
        .post(
            &server.url("/acme/account/consent"),
            &[
                ("interaction", &field(&html, "interaction")),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_page_error(r, 400, "invalid_request").await;
    assert_eq!(
        poll_error(&server, "acme-tv", d["device_code"].as_str().unwrap()).await,
        "authorization_pending"
    );
    let (status, html) = decide(&b, &consent, "allow").await;
    assert_eq!(status, 200, "{html}");
    let r = poll(
        &server,
        "acme",
        "acme-tv",
        d["device_code"].as_str().unwrap(),
    )
    .await;
    assert_eq!(r.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn polling_inside_the_interval_slows_the_device_down_by_five_seconds_each_time() {
    let clock = fixed_clock();
    let server = TestServer::start_with(Options {
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    let d = device_authorization(&server, "acme", "acme-tv", "openid").await;
    let code = d["device_code"].as_str().unwrap();
    assert_eq!(
        poll_error(&server, "acme-tv", code).await,
        "authorization_pending"
    );
    clock.advance(4);
    let r = poll(&server, "acme", "acme-tv", code).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "slow_down");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("10 seconds"),
        "{body}"
    );
    // The interval is now 10 s: 9 s later is still too fast, and makes it 15 s.
    clock.advance(9);
    assert_eq!(poll_error(&server, "acme-tv", code).await, "slow_down");
    clock.advance(15);
    assert_eq!(
        poll_error(&server, "acme-tv", code).await,
        "authorization_pending"
    );
    clock.advance(15);
    assert_eq!(
        poll_error(&server, "acme-tv", code).await,
        "authorization_pending"
    );
    server.stop().await;
}

#[tokio::test]
async fn device_and_user_codes_expire_with_their_lifetime() {
    let clock = fixed_clock();
    let server = TestServer::start_with(Options {
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    let d = device_authorization(&server, "acme", "acme-tv", "openid").await;
    clock.advance(601);
    assert_eq!(
        poll_error(&server, "acme-tv", d["device_code"].as_str().unwrap()).await,
        "expired_token"
    );
    let b = Browser::new(&server);
    let r = enter_code(&server, &b, "acme", d["user_code"].as_str().unwrap()).await;
    assert_eq!(r.status(), 400, "an expired user code is a wrong one");
    // The operational cleanup sweeps both.
    let swept = server
        .state()
        .store
        .sweep(clock.now(), 1000)
        .await
        .unwrap()
        .unwrap();
    assert!(
        swept.0["grants.device_code"] >= 1 && swept.0["grants.user_code"] >= 1,
        "{swept:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn device_codes_of_another_client_or_tenant_unknown_or_forged_are_invalid_grant() {
    let server = TestServer::start_with(with_twin(acme_with_more_devices())).await;
    let d = device_authorization(&server, "acme", "acme-tv", "openid").await;
    let code = d["device_code"].as_str().unwrap();
    // Another device client of the same tenant.
    assert_eq!(poll_error(&server, "acme-tv2", code).await, "invalid_grant");
    // The same client id at the twin tenant.
    let r = poll(&server, "twin", "acme-tv", code).await;
    assert_oauth_error(r, 400, "invalid_grant").await;
    // Unknown, forged and oversized codes.
    assert_eq!(
        poll_error(&server, "acme-tv", &portcullis::tokens::new_handle()).await,
        "invalid_grant"
    );
    assert_eq!(
        poll_error(&server, "acme-tv", &"A".repeat(5000)).await,
        "invalid_grant"
    );
    // A client without the grant may neither start nor poll.
    let r = server
        .http
        .post(server.url("/acme/connect/deviceauthorization"))
        .basic_auth("acme-web", Some("acme-web-secret"))
        .form(&[("scope", "openid")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(r, 400, "unauthorized_client").await;
    let r = server
        .http
        .post(server.url("/acme/connect/token"))
        .basic_auth("acme-web", Some("acme-web-secret"))
        .form(&[("grant_type", GRANT), ("device_code", code)])
        .send()
        .await
        .unwrap();
    assert_oauth_error(r, 400, "unauthorized_client").await;
    // The original is still pending: none of that changed anything.
    assert_eq!(
        poll_error(&server, "acme-tv", code).await,
        "authorization_pending"
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_device_authorization_requests_get_their_rfc_errors() {
    let server = TestServer::start().await;
    type Case<'a> = (&'a [(&'a str, &'a str)], u16, &'a str);
    let cases: &[Case] = &[
        (
            &[("client_id", "acme-tv"), ("scope", "api.write")],
            400,
            "invalid_scope",
        ),
        (
            &[("client_id", "acme-tv"), ("scope", "openid nonsense")],
            400,
            "invalid_scope",
        ),
        (
            &[
                ("client_id", "acme-tv"),
                ("scope", "api.read"),
                ("resource", "https://unknown.example"),
            ],
            400,
            "invalid_target",
        ),
        (
            &[("client_id", "nobody"), ("scope", "openid")],
            401,
            "invalid_client",
        ),
        (&[("scope", "openid")], 401, "invalid_client"),
    ];
    for (form, status, error) in cases {
        let r = start(&server, "acme", form).await;
        assert_oauth_error(r, *status, error).await;
    }
    let r = server
        .http
        .get(server.url("/acme/connect/deviceauthorization"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    // No scope: every scope the client may have.
    let d = device_authorization(&server, "acme", "acme-tv", "").await;
    assert!(d["device_code"].is_string());
    server.stop().await;
}

#[tokio::test]
async fn a_user_code_works_only_at_its_own_tenant() {
    let server = TestServer::start_with(with_twin(ACME.to_string())).await;
    let d = device_authorization(&server, "twin", "acme-tv", "openid").await;
    let user_code = d["user_code"].as_str().unwrap();
    let b = Browser::new(&server);
    let r = enter_code(&server, &b, "acme", user_code).await;
    assert_eq!(r.status(), 400, "twin's code means nothing at acme");
    // …and was not used up by the attempt: at its own tenant it works.
    let r = enter_code(&server, &b, "twin", user_code).await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).contains("/twin/account/login?interaction="));
    server.stop().await;
}

#[tokio::test]
async fn wrong_user_codes_are_throttled_per_browser_and_the_page_says_when_to_try_again() {
    let server = TestServer::start().await;
    let d = device_authorization(&server, "acme", "acme-tv", "openid").await;
    let b = Browser::new(&server);
    for _ in 0..4 {
        let r = enter_code(&server, &b, "acme", "BCDF-GHJK").await;
        assert_eq!(r.status(), 400);
    }
    // The fifth wrong code locks this browser.
    let r = enter_code(&server, &b, "acme", "not a code at all").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    assert!(r.text().await.unwrap().contains("Try again in"));
    // Locked, even the right code is not checked (and not used up).
    let r = enter_code(&server, &b, "acme", d["user_code"].as_str().unwrap()).await;
    assert_eq!(r.status(), 429);
    // Another browser is not locked by this one, and the code still works there.
    let other = Browser::new(&server);
    let r = enter_code(&server, &other, "acme", d["user_code"].as_str().unwrap()).await;
    assert_eq!(r.status(), 303);
    server.stop().await;
}

#[tokio::test]
async fn the_code_entry_form_needs_its_csrf_token() {
    let server = TestServer::start().await;
    let d = device_authorization(&server, "acme", "acme-tv", "openid").await;
    let b = Browser::new(&server);
    let _ = b.get(&server.url("/acme/device")).await;
    let r = b
        .post(
            &server.url("/acme/device"),
            &[
                ("user_code", d["user_code"].as_str().unwrap()),
                ("csrf", "forged"),
            ],
        )
        .await;
    assert_page_error(r, 400, "invalid_request").await;
    // Another browser's token is no good either.
    let other = Browser::new(&server);
    let html = other
        .get(&server.url("/acme/device"))
        .await
        .text()
        .await
        .unwrap();
    let r = b
        .post(
            &server.url("/acme/device"),
            &[
                ("user_code", d["user_code"].as_str().unwrap()),
                ("csrf", &field(&html, "csrf")),
            ],
        )
        .await;
    assert_page_error(r, 400, "invalid_request").await;
    // The code was not used up.
    let r = enter_code(&server, &b, "acme", d["user_code"].as_str().unwrap()).await;
    assert_eq!(r.status(), 303);
    server.stop().await;
}

#[tokio::test]
async fn device_tokens_are_bound_to_a_dpop_key_or_to_the_client_certificate() {
    let server = TestServer::start_with(Options {
        tenants: vec![
            ("acme", acme_with_more_devices()),
            ("globex", GLOBEX.to_string()),
        ],
        ..Default::default()
    })
    .await;
    let b = Browser::new(&server);
    // DPoP (RFC 9449 §5): a proof at the token request binds the tokens.
    let d = device_authorization(&server, "acme", "acme-tv", TV_SCOPES).await;
    let (status, _) = alice_decides(&server, &b, d["user_code"].as_str().unwrap(), "allow").await;
    assert_eq!(status, 200);
    let key = crate::dpop::key();
    let htu = server.url("/acme/connect/token");
    let r = server
        .http
        .post(&htu)
        .header(
            "DPoP",
            crate::dpop::proof(&key, "POST", &htu, serde_json::json!({})),
        )
        .form(&[
            ("grant_type", GRANT),
            ("client_id", "acme-tv"),
            ("device_code", d["device_code"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["token_type"], "DPoP");
    let at = verify_jwt(
        tokens["access_token"].as_str().unwrap(),
        &server.jwks("acme").await,
        &server.url("/acme"),
        "https://api.acme.test",
    );
    assert!(at["cnf"]["jkt"].is_string());

    // mTLS (RFC 8705 §3): a client that authenticates with its certificate gets bound tokens.
    let identity = format!(
        "{}{}",
        std::fs::read_to_string(server.path("certs/demo-client.pem")).unwrap(),
        std::fs::read_to_string(server.path("certs/demo-client-key.pem")).unwrap()
    );
    let mtls = client_for(
        &server.path("certs/ca.pem"),
        &[("localhost", server.mtls_addr)],
        Some(&identity),
    );
    let r = mtls
        .post(format!(
            "{}/acme/connect/deviceauthorization",
            server.mtls_base
        ))
        .form(&[("client_id", "acme-kiosk"), ("scope", "openid api.read")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let d: Value = r.json().await.unwrap();
    // Over the main listener, without the certificate, the kiosk is nobody.
    let r = poll(
        &server,
        "acme",
        "acme-kiosk",
        d["device_code"].as_str().unwrap(),
    )
    .await;
    assert_oauth_error(r, 401, "invalid_client").await;
    let (status, _) =
        decide_signed_in(&server, &b, d["user_code"].as_str().unwrap(), "allow").await;
    assert_eq!(status, 200);
    let r = mtls
        .post(format!("{}/acme/connect/token", server.mtls_base))
        .form(&[
            ("grant_type", GRANT),
            ("client_id", "acme-kiosk"),
            ("device_code", d["device_code"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let at = verify_jwt(
        tokens["access_token"].as_str().unwrap(),
        &server.jwks("acme").await,
        &server.url("/acme"),
        "https://api.acme.test",
    );
    assert!(at["cnf"]["x5t#S256"].is_string(), "{at}");
    server.stop().await;
}

/// A browser with a session enters a code and decides.
async fn decide_signed_in(
    server: &TestServer,
    b: &Browser,
    user_code: &str,
    decision: &str,
) -> (u16, String) {
    let r = enter_code(server, b, "acme", user_code).await;
    assert_eq!(r.status(), 303);
    decide(b, &location(&r), decision).await
}

#[tokio::test]
async fn the_device_flow_works_on_postgresql() {
    if postgres_url().is_none() {
        eprintln!("skipped: PORTCULLIS_TEST_POSTGRES_URL is not set");
        return;
    }
    let clock = fixed_clock();
    let server = TestServer::start_with(Options {
        postgres: true,
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    let d = device_authorization(&server, "acme", "acme-tv", TV_SCOPES).await;
    let code = d["device_code"].as_str().unwrap();
    assert_eq!(
        poll_error(&server, "acme-tv", code).await,
        "authorization_pending"
    );
    clock.advance(1);
    assert_eq!(poll_error(&server, "acme-tv", code).await, "slow_down");
    let b = Browser::new(&server);
    let (status, _) = alice_decides(&server, &b, d["user_code"].as_str().unwrap(), "allow").await;
    assert_eq!(status, 200);
    let r = poll(&server, "acme", "acme-tv", code).await;
    assert_eq!(r.status(), 200);
    assert_eq!(poll_error(&server, "acme-tv", code).await, "invalid_grant");
    // Another device, denied; then the clock passes both lifetimes and the sweep takes them.
    let d = device_authorization(&server, "acme", "acme-tv", "openid").await;
    let (status, _) = decide_signed_in(&server, &b, d["user_code"].as_str().unwrap(), "deny").await;
    assert_eq!(status, 200);
    assert_eq!(
        poll_error(&server, "acme-tv", d["device_code"].as_str().unwrap()).await,
        "access_denied"
    );
    clock.advance(601);
    let swept = server
        .state()
        .store
        .sweep(clock.now(), 1000)
        .await
        .unwrap()
        .unwrap();
    assert!(swept.total() >= 3, "{swept:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_device_and_a_ciba_request_started_on_one_node_are_decided_on_another_and_redeemed_on_the_first()
 {
    if postgres_url().is_none() {
        eprintln!("skipped: PORTCULLIS_TEST_POSTGRES_URL is not set");
        return;
    }
    use crate::federation::{free_port, serve_process};
    use base64::Engine;
    // Two `portcullis serve` processes of one deployment: one database, one master key, the
    // same files, one public URL (node B's, as a load balancer would present one).
    let dir = tempfile::tempdir().unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let public = format!("https://localhost:{port_b}");
    write_tenant(dir.path(), "acme", ACME);
    write_tenant(dir.path(), "globex", GLOBEX);
    std::fs::create_dir_all(dir.path().join("providers")).unwrap();
    std::fs::write(dir.path().join("providers/globex.toml"), GLOBEX_PROVIDER).unwrap();
    let schema = unique_schema();
    let master = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let a = serve_process(dir.path(), &public, port_a, &schema, &master).await;
    let b = serve_process(dir.path(), &public, port_b, &schema, &master).await;
    let ca = dir.path().join("certs/ca.pem");
    let to_a = client_for(&ca, &[("localhost", a.addr)], None);
    let a_url = |p: &str| format!("https://localhost:{port_a}{p}");
    let b_url = |p: &str| format!("{public}{p}");
    let poll_a = |code: String| {
        let to_a = &to_a;
        let url = a_url("/acme/connect/token");
        async move {
            let r = to_a
                .post(url)
                .form(&[
                    ("grant_type", GRANT),
                    ("client_id", "acme-tv"),
                    ("device_code", &code),
                ])
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };

    // The device asks node A; alice enters the code at node B; the device polls node A.
    let d: Value = to_a
        .post(a_url("/acme/connect/deviceauthorization"))
        .form(&[("client_id", "acme-tv"), ("scope", "openid api.read")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let device_code = d["device_code"].as_str().unwrap().to_string();
    let (status, body) = poll_a(device_code.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("authorization_pending"))
    );
    let browser = Browser::at(&ca, b.addr);
    let page = browser
        .get(&b_url("/acme/device"))
        .await
        .text()
        .await
        .unwrap();
    let r = browser
        .post(
            &b_url("/acme/device"),
            &[
                ("csrf", &field(&page, "csrf")),
                ("user_code", d["user_code"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = submit_login(&browser, &location(&r), "alice", "alice-password").await;
    assert_eq!(r.status(), 303);
    let (status, _) = decide(&browser, &location(&r), "allow").await;
    assert_eq!(status, 200);
    let (status, body) = poll_a(device_code.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["id_token"].is_string());
    let (status, body) = poll_a(device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // A CIBA request asked of node A, approved on node B's approvals page, redeemed at node A.
    let asked: Value = to_a
        .post(a_url("/acme/connect/ciba"))
        .basic_auth("acme-pos", Some("acme-pos-secret"))
        .form(&[("scope", "openid"), ("login_hint", "alice")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = asked["auth_req_id"].as_str().unwrap();
    let html = browser
        .get(&b_url("/acme/approvals"))
        .await
        .text()
        .await
        .unwrap();
    let r = browser
        .post(
            &b_url("/acme/approvals"),
            &[
                ("csrf", &field(&html, "csrf")),
                ("request", &field(&html, "request")),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = to_a
        .post(a_url("/acme/connect/token"))
        .basic_auth("acme-pos", Some("acme-pos-secret"))
        .form(&[
            ("grant_type", "urn:openid:params:grant-type:ciba"),
            ("auth_req_id", id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop((a, b));
}
