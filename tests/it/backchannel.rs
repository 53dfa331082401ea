//! OpenID Connect CIBA: a confidential client asks for a user's approval at the backchannel
//! authentication endpoint; the user approves or denies on the approvals page (reached with a
//! session, or through the link in the tenant's webhook notification); the client polls, or is
//! pinged at its notification endpoint and then redeems.

use crate::interactive::{Browser, alice_signs_in, field, location, submit_login};
use crate::support::*;
use portcullis::clock::{Clock, FixedClock, SystemClock};
use serde_json::Value;
use tokio::sync::mpsc;

const GRANT: &str = "urn:openid:params:grant-type:ciba";

/// What a plain-HTTP listener on the loopback received: path, Authorization header, body.
type Received = (String, Option<String>, String);

/// A listener for pings and webhook notifications (http on loopback, as a tenant file may
/// register for a client on the same machine).
async fn receiver() -> (u16, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: String| {
            let tx = tx.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let _ = tx.send((uri.path().to_string(), auth, body));
                axum::http::StatusCode::NO_CONTENT
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, rx)
}

/// acme with a webhook and a ping client, both at the receiver on `port`.
fn acme_notifying(port: u16) -> String {
    format!(
        "{ACME}\n[ciba]\nwebhook_url = \"http://127.0.0.1:{port}/webhook\"\n\n[[clients]]\nclient_id = \"acme-ping\"\n\
         secrets = [{{ hash = \"sha256:Zsxv5CP7oTQ4690W5g1DqnGwn5toTEeS1o_uDrQnPD4\" }}]\ngrant_types = [\"{GRANT}\"]\n\
         scopes = [\"openid\", \"profile\", \"api.read\"]\nbackchannel_token_delivery_mode = \"ping\"\n\
         backchannel_client_notification_endpoint = \"http://127.0.0.1:{port}/ciba-notify\"\n"
    )
}

async fn ask(
    server: &TestServer,
    tenant: &str,
    (client, secret): (&str, &str),
    form: &[(&str, &str)],
) -> reqwest::Response {
    server
        .http
        .post(server.url(&format!("/{tenant}/connect/ciba")))
        .basic_auth(client, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

const POS: (&str, &str) = ("acme-pos", "acme-pos-secret");

async fn ask_ok(server: &TestServer, client: (&str, &str), form: &[(&str, &str)]) -> Value {
    let r = ask(server, "acme", client, form).await;
    assert_eq!(r.status(), 200, "backchannel authentication request");
    r.json().await.unwrap()
}

async fn redeem(
    server: &TestServer,
    tenant: &str,
    (client, secret): (&str, &str),
    id: &str,
) -> reqwest::Response {
    server
        .http
        .post(server.url(&format!("/{tenant}/connect/token")))
        .basic_auth(client, Some(secret))
        .form(&[("grant_type", GRANT), ("auth_req_id", id)])
        .send()
        .await
        .unwrap()
}

async fn redeem_error(server: &TestServer, client: (&str, &str), id: &str) -> String {
    let r = redeem(server, "acme", client, id).await;
    assert_eq!(r.status(), 400);
    r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The approvals page as `b` sees it: the HTML.
async fn approvals_page(server: &TestServer, b: &Browser, query: &str) -> String {
    let r = b.get(&server.url(&format!("/acme/approvals{query}"))).await;
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// Chooses on the approvals page `html` (the first request shown).
async fn choose(server: &TestServer, b: &Browser, html: &str, decision: &str) -> reqwest::Response {
    b.post(
        &server.url("/acme/approvals"),
        &[
            ("csrf", &field(html, "csrf")),
            ("request", &field(html, "request")),
            ("decision", decision),
        ],
    )
    .await
}

#[tokio::test]
async fn a_poll_client_gets_alices_tokens_once_she_approves_on_the_approvals_page() {
    let server = TestServer::start().await;
    let (_, d) = server
        .get_json("/acme/.well-known/openid-configuration")
        .await;
    assert_eq!(
        d["backchannel_authentication_endpoint"],
        server.url("/acme/connect/ciba")
    );
    assert_eq!(
        d["backchannel_token_delivery_modes_supported"],
        serde_json::json!(["poll", "ping"])
    );
    assert_eq!(d["backchannel_user_code_parameter_supported"], true);
    assert!(
        d["grant_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == GRANT)
    );

    let asked = ask_ok(
        &server,
        POS,
        &[
            ("scope", "openid profile api.read"),
            ("login_hint", "alice"),
            ("binding_message", "Till 4: 12.50 EUR"),
        ],
    )
    .await;
    assert_eq!(asked["expires_in"], 300);
    assert_eq!(asked["interval"], 5);
    let id = asked["auth_req_id"].as_str().unwrap();
    assert_eq!(
        redeem_error(&server, POS, id).await,
        "authorization_pending"
    );

    // alice, signed in (at acme-web), sees the request with its binding message and approves.
    let b = Browser::new(&server);
    alice_signs_in(&server, &b, "s").await;
    let html = approvals_page(&server, &b, "").await;
    assert!(html.contains("Acme Point of Sale"), "{html}");
    assert!(html.contains("Till 4: 12.50 EUR"), "{html}");
    let r = choose(&server, &b, &html, "approve").await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("id=\"device-approved\""));

    let r = redeem(&server, "acme", POS, id).await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let claims = verify_jwt(
        tokens["id_token"].as_str().unwrap(),
        &server.jwks("acme").await,
        &server.url("/acme"),
        "acme-pos",
    );
    assert!(claims["auth_time"].is_i64());
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert!(
        tokens.get("refresh_token").is_none(),
        "no offline_access asked"
    );
    assert_eq!(redeem_error(&server, POS, id).await, "invalid_grant");
    // Decided requests leave the page.
    let html = approvals_page(&server, &b, "").await;
    assert!(html.contains("id=\"no-requests\""), "{html}");
    server.stop().await;
}

#[tokio::test]
async fn the_webhook_links_to_the_request_and_the_ping_client_is_told_when_it_is_decided() {
    let (port, mut received) = receiver().await;
    let server = TestServer::start_with(Options {
        tenants: vec![("acme", acme_notifying(port)), ("globex", GLOBEX.into())],
        ..Default::default()
    })
    .await;
    let ping = ("acme-ping", "acme-m2m-secret");
    let asked = ask_ok(
        &server,
        ping,
        &[
            ("scope", "openid api.read"),
            ("login_hint", "alice"),
            ("binding_message", "Call 7731"),
            ("client_notification_token", "ping-token-1234567890"),
        ],
    )
    .await;
    let id = asked["auth_req_id"].as_str().unwrap();
    // The webhook: a JWT signed with acme's key, naming the request, the user, the client and
    // the binding message, and the link to the request.
    let (path, _, jwt) = tokio::time::timeout(std::time::Duration::from_secs(10), received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(path, "/webhook");
    let note = verify_jwt(
        &jwt,
        &server.jwks("acme").await,
        &server.url("/acme"),
        &format!("http://127.0.0.1:{port}/webhook"),
    );
    assert_eq!(note["username"], "alice");
    assert_eq!(note["client_id"], "acme-ping");
    assert_eq!(note["binding_message"], "Call 7731");
    assert_eq!(note["auth_req_id"], id);
    assert_eq!(note["tenant"], "acme");
    assert_eq!(note["scope"], "openid api.read");
    let link = note["approval_uri"].as_str().unwrap();

    // A browser without a session opens the link: the request is shown; approving asks alice
    // to sign in first.
    let b = Browser::new(&server);
    let html = b.get(link).await.text().await.unwrap();
    assert!(html.contains("Call 7731"), "{html}");
    let r = choose(&server, &b, &html, "approve").await;
    assert_eq!(r.status(), 303);
    let login = location(&r);
    assert!(
        login.contains("/acme/account/login?interaction="),
        "{login}"
    );
    assert_eq!(
        redeem_error(&server, ping, id).await,
        "authorization_pending"
    );
    let r = submit_login(&b, &login, "alice", "alice-password").await;
    assert_eq!(r.status(), 200, "approved right after the sign-in");

    // CIBA Core §10.2: the ping carries the auth_req_id and the client's token.
    let (path, auth, body) =
        tokio::time::timeout(std::time::Duration::from_secs(10), received.recv())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(path, "/ciba-notify");
    assert_eq!(auth.as_deref(), Some("Bearer ping-token-1234567890"));
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["auth_req_id"], id);
    let r = redeem(&server, "acme", ping, id).await;
    assert_eq!(r.status(), 200);
    assert_eq!(redeem_error(&server, ping, id).await, "invalid_grant");
    server.stop().await;
}

/// acme plus dave, whose password is alice's (and who is not alice).
fn acme_with_dave() -> String {
    format!(
        "{ACME}\n[[users]]\nusername = \"dave\"\npassword_hash = \"$argon2id$v=19$m=12288,t=3,p=1$uT7W6mpN32o8KQJgCZ6NQQ$CDyVgucIzF0n+e2CTHqCP0KaRisnfCfvHl90HaxsxO0\"\n"
    )
}

#[tokio::test]
async fn only_the_user_asked_can_decide_and_a_denial_reaches_the_client() {
    let clock = FixedClock::new(SystemClock.now());
    let server = TestServer::start_with(Options {
        tenants: vec![("acme", acme_with_dave()), ("globex", GLOBEX.into())],
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    let asked = ask_ok(
        &server,
        POS,
        &[("scope", "openid"), ("login_hint", "alice")],
    )
    .await;
    let id = asked["auth_req_id"].as_str().unwrap();
    let hash = portcullis::tokens::handle_hash(id);
    // dave opens alice's request by its link and tries to deny it: he must sign in as alice.
    let dave = Browser::new(&server);
    let html = approvals_page(&server, &dave, &format!("?request={hash}")).await;
    let r = choose(&server, &dave, &html, "deny").await;
    assert_eq!(r.status(), 303, "deciding needs the user asked to sign in");
    let login = location(&r);
    let page = dave.get(&login).await.text().await.unwrap();
    assert!(
        page.contains("value=\"alice\""),
        "the login form is prefilled with the user asked"
    );
    let r = submit_login(&dave, &login, "dave", "alice-password").await;
    assert_page_error(r, 400, "access_denied").await;
    assert_eq!(
        redeem_error(&server, POS, id).await,
        "authorization_pending"
    );
    clock.advance(5);
    // dave's own page does not list it.
    let html = approvals_page(&server, &dave, "").await;
    assert!(html.contains("id=\"no-requests\""), "{html}");
    // A form without its CSRF token changes nothing.
    let b = Browser::new(&server);
    alice_signs_in(&server, &b, "s").await;
    let r = b
        .post(
            &server.url("/acme/approvals"),
            &[("request", hash.as_str()), ("decision", "deny")],
        )
        .await;
    assert_page_error(r, 400, "invalid_request").await;
    assert_eq!(
        redeem_error(&server, POS, id).await,
        "authorization_pending"
    );
    clock.advance(5);
    // alice denies.
    let html = approvals_page(&server, &b, "").await;
    let r = choose(&server, &b, &html, "deny").await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("id=\"device-denied\""));
    assert_eq!(redeem_error(&server, POS, id).await, "access_denied");
    server.stop().await;
}

#[tokio::test]
async fn bad_backchannel_requests_get_their_ciba_errors_and_change_nothing() {
    let server = TestServer::start_with(with_twin(ACME.to_string())).await;
    let long = "x".repeat(65);
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("scope", "profile"), ("login_hint", "alice")],
            400,
            "invalid_request",
        ),
        (vec![("login_hint", "alice")], 400, "invalid_request"),
        (
            vec![
                ("scope", "openid"),
                ("login_hint", "alice"),
                ("id_token_hint", "x.y.z"),
            ],
            400,
            "invalid_request",
        ),
        (vec![("scope", "openid")], 400, "invalid_request"),
        (
            vec![("scope", "openid"), ("login_hint_token", "t")],
            400,
            "invalid_request",
        ),
        (
            vec![("scope", "openid"), ("login_hint", "nobody")],
            400,
            "unknown_user_id",
        ),
        // bob is a user of globex, not of acme.
        (
            vec![("scope", "openid"), ("login_hint", "bob")],
            400,
            "unknown_user_id",
        ),
        (
            vec![("scope", "openid"), ("id_token_hint", "not.a.token")],
            400,
            "unknown_user_id",
        ),
        (
            vec![
                ("scope", "openid"),
                ("login_hint", "alice"),
                ("binding_message", long.as_str()),
            ],
            400,
            "invalid_binding_message",
        ),
        (
            vec![("scope", "openid api.write"), ("login_hint", "alice")],
            400,
            "invalid_scope",
        ),
        (
            vec![
                ("scope", "openid"),
                ("login_hint", "alice"),
                ("user_code", "1234"),
            ],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("scope", "openid"),
                ("login_hint", "alice"),
                ("requested_expiry", "-5"),
            ],
            400,
            "invalid_request",
        ),
    ];
    for (form, status, error) in &cases {
        let r = ask(&server, "acme", POS, form).await;
        let got = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            (got, body["error"].as_str()),
            (*status, Some(*error)),
            "{form:?}: {body}"
        );
    }
    // Clients without the grant, public clients, and wrong secrets.
    let r = ask(
        &server,
        "acme",
        ("acme-web", "acme-web-secret"),
        &[("scope", "openid"), ("login_hint", "alice")],
    )
    .await;
    assert_oauth_error(r, 400, "unauthorized_client").await;
    let r = server
        .http
        .post(server.url("/acme/connect/ciba"))
        .form(&[
            ("client_id", "acme-spa"),
            ("scope", "openid"),
            ("login_hint", "alice"),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(r, 400, "unauthorized_client").await;
    let r = ask(
        &server,
        "acme",
        ("acme-pos", "wrong"),
        &[("scope", "openid"), ("login_hint", "alice")],
    )
    .await;
    assert_oauth_error(r, 401, "invalid_client").await;
    // A ping client must send its notification token.
    let r = ask(
        &server,
        "acme",
        ("acme-callcenter", "acme-callcenter-secret"),
        &[("scope", "openid"), ("login_hint", "alice")],
    )
    .await;
    assert_oauth_error(r, 400, "invalid_request").await;

    // auth_req_ids: another client's, another tenant's, unknown, forged.
    let asked = ask_ok(
        &server,
        POS,
        &[("scope", "openid"), ("login_hint", "alice")],
    )
    .await;
    let id = asked["auth_req_id"].as_str().unwrap();
    let other = ("acme-callcenter", "acme-callcenter-secret");
    assert_eq!(redeem_error(&server, other, id).await, "invalid_grant");
    let r = redeem(&server, "twin", POS, id).await;
    assert_oauth_error(r, 400, "invalid_grant").await;
    assert_eq!(
        redeem_error(&server, POS, &portcullis::tokens::new_handle()).await,
        "invalid_grant"
    );
    assert_eq!(redeem_error(&server, POS, "forged").await, "invalid_grant");
    // The original is still pending.
    assert_eq!(
        redeem_error(&server, POS, id).await,
        "authorization_pending"
    );
    server.stop().await;
}

#[tokio::test]
async fn polling_too_fast_slows_down_and_an_old_request_expires() {
    let clock = FixedClock::new(SystemClock.now());
    let server = TestServer::start_with(Options {
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    let asked = ask_ok(
        &server,
        POS,
        &[
            ("scope", "openid"),
            ("login_hint", "alice"),
            ("requested_expiry", "120"),
        ],
    )
    .await;
    assert_eq!(asked["expires_in"], 120);
    let id = asked["auth_req_id"].as_str().unwrap();
    assert_eq!(
        redeem_error(&server, POS, id).await,
        "authorization_pending"
    );
    clock.advance(2);
    assert_eq!(redeem_error(&server, POS, id).await, "slow_down");
    clock.advance(10);
    assert_eq!(
        redeem_error(&server, POS, id).await,
        "authorization_pending"
    );
    clock.advance(120);
    assert_eq!(redeem_error(&server, POS, id).await, "expired_token");
    let swept = server
        .state()
        .store
        .sweep(clock.now(), 1000)
        .await
        .unwrap()
        .unwrap();
    assert!(swept.0["grants.backchannel_auth"] >= 1, "{swept:?}");
    server.stop().await;
}

#[tokio::test]
async fn ciba_works_on_postgresql() {
    if postgres_url().is_none() {
        eprintln!("skipped: PORTCULLIS_TEST_POSTGRES_URL is not set");
        return;
    }
    let server = TestServer::start_with(Options {
        postgres: true,
        ..Default::default()
    })
    .await;
    let asked = ask_ok(
        &server,
        POS,
        &[("scope", "openid"), ("login_hint", "alice")],
    )
    .await;
    let id = asked["auth_req_id"].as_str().unwrap();
    assert_eq!(
        redeem_error(&server, POS, id).await,
        "authorization_pending"
    );
    let b = Browser::new(&server);
    alice_signs_in(&server, &b, "s").await;
    let html = approvals_page(&server, &b, "").await;
    let r = choose(&server, &b, &html, "approve").await;
    assert_eq!(r.status(), 200);
    let r = redeem(&server, "acme", POS, id).await;
    assert_eq!(r.status(), 200);
    assert_eq!(redeem_error(&server, POS, id).await, "invalid_grant");
    server.stop().await;
}

#[tokio::test]
async fn a_tenant_that_requires_mfa_approves_only_after_a_second_factor() {
    let clock = FixedClock::new(SystemClock.now());
    let server = TestServer::start_with(Options {
        tenants: vec![
            ("acme", format!("{ACME}\n[ciba]\nrequire_mfa = true\n")),
            ("globex", GLOBEX.into()),
        ],
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    // carol has TOTP: password, then her code, then the request is approved.
    let asked = ask_ok(
        &server,
        POS,
        &[("scope", "openid"), ("login_hint", "carol")],
    )
    .await;
    let id = asked["auth_req_id"].as_str().unwrap();
    let hash = portcullis::tokens::handle_hash(id);
    let b = Browser::new(&server);
    let html = approvals_page(&server, &b, &format!("?request={hash}")).await;
    let r = choose(&server, &b, &html, "approve").await;
    let r = submit_login(&b, &location(&r), "carol", "carol-password").await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("id=\"code\""),
        "the TOTP step follows the password"
    );
    let code =
        portcullis::users::totp_code("CPVGE6YPNPBBTGYVKT2AOU537SU3URFN", clock.now()).unwrap();
    let r = b
        .post(
            &server.url("/acme/account/login/totp"),
            &[
                ("interaction", &field(&html, "interaction")),
                ("csrf", &field(&html, "csrf")),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("id=\"device-approved\""));
    let r = redeem(&server, "acme", POS, id).await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let claims = verify_jwt(
        tokens["id_token"].as_str().unwrap(),
        &server.jwks("acme").await,
        &server.url("/acme"),
        "acme-pos",
    );
    assert_eq!(claims["acr"], "urn:portcullis:acr:mfa");

    // alice has no second factor: her approval is refused, and the request stays pending.
    let asked = ask_ok(
        &server,
        POS,
        &[("scope", "openid"), ("login_hint", "alice")],
    )
    .await;
    let id = asked["auth_req_id"].as_str().unwrap();
    let b = Browser::new(&server);
    let html = approvals_page(
        &server,
        &b,
        &format!("?request={}", portcullis::tokens::handle_hash(id)),
    )
    .await;
    let r = choose(&server, &b, &html, "approve").await;
    let r = submit_login(&b, &location(&r), "alice", "alice-password").await;
    assert_page_error(r, 400, "access_denied").await;
    assert_eq!(
        redeem_error(&server, POS, id).await,
        "authorization_pending"
    );
    // An approval link of acme means nothing at acme's twin… (no such tenant here: globex).
    let r = b
        .get(&server.url(&format!(
            "/globex/approvals?request={}",
            portcullis::tokens::handle_hash(id)
        )))
        .await;
    assert!(
        r.text().await.unwrap().contains("id=\"no-requests\""),
        "another tenant does not show acme's request"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_client_registered_for_user_codes_must_send_the_users_current_one_time_code() {
    let clock = FixedClock::new(SystemClock.now());
    let acme = format!(
        "{ACME}\n[[clients]]\nclient_id = \"acme-pos-pin\"\n\
         secrets = [{{ hash = \"sha256:Zsxv5CP7oTQ4690W5g1DqnGwn5toTEeS1o_uDrQnPD4\" }}]\n\
         grant_types = [\"{GRANT}\"]\nscopes = [\"openid\"]\nbackchannel_token_delivery_mode = \"poll\"\n\
         backchannel_user_code_parameter = true\n"
    );
    let server = TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.into())],
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    let pin = ("acme-pos-pin", "acme-m2m-secret");
    let carol = |code: &'static str| {
        vec![
            ("scope", "openid"),
            ("login_hint", "carol"),
            ("user_code", code),
        ]
    };
    let r = ask(
        &server,
        "acme",
        pin,
        &[("scope", "openid"), ("login_hint", "carol")],
    )
    .await;
    assert_oauth_error(r, 400, "missing_user_code").await;
    let r = ask(&server, "acme", pin, &carol("000000")).await;
    assert_oauth_error(r, 400, "invalid_user_code").await;
    // alice has no one-time code to give.
    let r = ask(
        &server,
        "acme",
        pin,
        &[
            ("scope", "openid"),
            ("login_hint", "alice"),
            ("user_code", "123456"),
        ],
    )
    .await;
    assert_oauth_error(r, 400, "invalid_user_code").await;
    // carol's current code works, once.
    let code =
        portcullis::users::totp_code("CPVGE6YPNPBBTGYVKT2AOU537SU3URFN", clock.now()).unwrap();
    let code: &'static str = Box::leak(code.into_boxed_str());
    let r = ask(&server, "acme", pin, &carol(code)).await;
    assert_eq!(r.status(), 200);
    let r = ask(&server, "acme", pin, &carol(code)).await;
    assert_oauth_error(r, 400, "invalid_user_code").await;
    // A client not registered for user codes may not send one.
    let r = ask(&server, "acme", POS, &carol("123456")).await;
    assert_oauth_error(r, 400, "invalid_request").await;
    server.stop().await;
}

#[tokio::test]
async fn a_signed_request_is_used_alone_and_must_be_signed_by_the_clients_key() {
    use base64::Engine;
    use portcullis::keys::{Alg, Signer, signer::generate_pkcs8};
    let key = Signer::from_pkcs8(Alg::ES256, &generate_pkcs8(Alg::ES256, 2048).unwrap()).unwrap();
    let stranger =
        Signer::from_pkcs8(Alg::ES256, &generate_pkcs8(Alg::ES256, 2048).unwrap()).unwrap();
    let jwk = key.public_jwk();
    let fields: Vec<String> = jwk
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    let acme = format!(
        "{ACME}\n[[clients]]\nclient_id = \"acme-signed\"\n\
         secrets = [{{ hash = \"sha256:Zsxv5CP7oTQ4690W5g1DqnGwn5toTEeS1o_uDrQnPD4\" }}]\n\
         grant_types = [\"{GRANT}\"]\nscopes = [\"openid\"]\nbackchannel_token_delivery_mode = \"poll\"\n\
         require_signed_request_object = true\njwks = {{ keys = [{{ {} }}] }}\n",
        fields.join(", ")
    );
    let server = TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.into())],
        ..Default::default()
    })
    .await;
    let client = ("acme-signed", "acme-m2m-secret");
    let now = SystemClock.now();
    let claims = serde_json::json!({
        "iss": "acme-signed", "aud": server.url("/acme"), "client_id": "acme-signed",
        "iat": now, "nbf": now, "exp": now + 300, "jti": portcullis::tokens::new_jti(),
        "scope": "openid", "login_hint": "alice", "binding_message": "signed",
    });
    // CIBA Core §7.1.1: the signed parameters count, the outer ones do not.
    let object = key.sign_jwt("JWT", &claims).unwrap();
    let r = ask(
        &server,
        "acme",
        client,
        &[("request", &object), ("login_hint", "nobody")],
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // This client must sign.
    let r = ask(
        &server,
        "acme",
        client,
        &[("scope", "openid"), ("login_hint", "alice")],
    )
    .await;
    assert_oauth_error(r, 400, "invalid_request").await;
    // Not with another key, and never alg none.
    let r = ask(
        &server,
        "acme",
        client,
        &[("request", &stranger.sign_jwt("JWT", &claims).unwrap())],
    )
    .await;
    assert_oauth_error(r, 400, "invalid_request_object").await;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none"}"#),
        b64.encode(claims.to_string())
    );
    let r = ask(&server, "acme", client, &[("request", &none)]).await;
    assert_oauth_error(r, 400, "invalid_request_object").await;
    server.stop().await;
}
