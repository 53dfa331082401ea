//! Attacks on validation: certificate subjects compared as data,
//! tokens that are not id tokens offered as `id_token_hint`, request objects used alone
//! (RFC 9101 §6.3), and a DPoP replay memory that is bounded and never forgets too early.

use crate::dpop::{key as dpop_key, proof};
use crate::interactive::{
    Browser, VERIFIER, alice_signs_in, authorize_url, challenge, location, params, redeem,
    web_params,
};
use crate::support::*;
use portcullis::clock::{Clock, SystemClock};
use portcullis::keys::{Alg, Signer, signer::generate_pkcs8};
use rcgen::{DistinguishedName, DnType};
use serde_json::{Value, json};

const WEB_CB: &str = "http://127.0.0.1:9000/callback";
const OTHER_CB: &str = "http://127.0.0.1:9000/other";
const SPA_CB: &str = "http://127.0.0.1:9000/spa/callback";

async fn error_of(r: reqwest::Response) -> String {
    r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Finding 6: subject DNs compared as parsed RDN sequences, never as formatted strings.

/// A client certificate (PEM certificate + key) with subject `dn`, issued by the test server's
/// development CA, which tenant acme trusts for tls_client_auth (`[mtls] trust_anchors`).
fn issued_by_dev_ca(server: &TestServer, dn: DistinguishedName) -> String {
    let ca_key = rcgen::KeyPair::from_pem(
        &std::fs::read_to_string(server.path("certs/ca-key.pem")).unwrap(),
    )
    .unwrap();
    // The issuer name must be the development CA's subject (`portcullis::devcerts::DevCa`).
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "Portcullis Development CA");
    ca.distinguished_name
        .push(DnType::OrganizationName, "Portcullis development");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = dn;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let cert = params.signed_by(&key, &issuer).unwrap();
    format!("{}{}", cert.pem(), key.serialize_pem())
}

fn dn(attributes: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (t, v) in attributes {
        dn.push(t.clone(), *v);
    }
    dn
}

/// A client_credentials request for `client_id` over the mTLS listener, presenting `identity`.
async fn mtls_token(server: &TestServer, client_id: &str, identity: &str) -> reqwest::Response {
    client_for(
        &server.path("certs/ca.pem"),
        &[("localhost", server.mtls_addr)],
        Some(identity),
    )
    .post(format!("{}/acme/connect/token", server.mtls_base))
    .form(&[
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
    ])
    .send()
    .await
    .unwrap()
}

#[tokio::test]
async fn a_certificate_whose_common_name_contains_a_comma_cannot_pose_as_another_subject_dn() {
    let server = TestServer::start().await;
    // acme-mtls is registered with `CN=acme-mtls, O=Portcullis development`. This certificate
    // from the same CA has ONE attribute, a CN whose value is that whole text: formatted as a
    // string it reads the same, as data it is another name.
    let spoof = issued_by_dev_ca(
        &server,
        dn(&[(DnType::CommonName, "acme-mtls, O=Portcullis development")]),
    );
    let r = mtls_token(&server, "acme-mtls", &spoof).await;
    assert_eq!(r.status(), 401);
    assert_eq!(error_of(r).await, "invalid_client");
    // The same with the plus sign of a multi-valued RDN inside the value.
    let spoof = issued_by_dev_ca(
        &server,
        dn(&[(DnType::CommonName, "acme-mtls+O=Portcullis development")]),
    );
    let r = mtls_token(&server, "acme-mtls", &spoof).await;
    assert_eq!(error_of(r).await, "invalid_client");
    // A subset or a superset of the registered attributes is another subject too.
    for attributes in [
        vec![(DnType::CommonName, "acme-mtls")],
        vec![
            (DnType::CommonName, "acme-mtls"),
            (DnType::OrganizationName, "Portcullis development"),
            (DnType::OrganizationalUnitName, "extra"),
        ],
    ] {
        let r = mtls_token(
            &server,
            "acme-mtls",
            &issued_by_dev_ca(&server, dn(&attributes)),
        )
        .await;
        assert_eq!(error_of(r).await, "invalid_client", "{attributes:?}");
    }
    // The registered subject itself authenticates, in either order, and with another case and
    // other insignificant spaces (RFC 4517 caseIgnoreMatch after RFC 4518 preparation).
    for attributes in [
        vec![
            (DnType::CommonName, "acme-mtls"),
            (DnType::OrganizationName, "Portcullis development"),
        ],
        vec![
            (DnType::OrganizationName, "Portcullis development"),
            (DnType::CommonName, "acme-mtls"),
        ],
        vec![
            (DnType::CommonName, "ACME-MTLS"),
            (DnType::OrganizationName, " Portcullis   Development "),
        ],
    ] {
        let r = mtls_token(
            &server,
            "acme-mtls",
            &issued_by_dev_ca(&server, dn(&attributes)),
        )
        .await;
        assert_eq!(r.status(), 200, "{attributes:?}");
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Finding 9: id_token_hint accepts id tokens only.

/// Whether the browser's SSO session is still alive (a prompt=none request gets a code).
async fn still_signed_in(server: &TestServer, b: &Browser) -> bool {
    let ch = challenge(VERIFIER);
    let mut p = web_params("probe", &ch);
    p.push(("prompt", "none"));
    let r = b.get(&authorize_url(server, "acme", "acme-web", &p)).await;
    params(&location(&r)).contains_key("code")
}

async fn end_session(b: &Browser, server: &TestServer, form: &[(&str, &str)]) -> reqwest::Response {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        q.append_pair(k, v);
    }
    b.get(&server.url(&format!("/acme/connect/endsession?{}", q.finish())))
        .await
}

/// A server whose acme-web receives back-channel logout tokens at a local receiver.
async fn server_with_logout_receiver() -> (TestServer, tokio::sync::mpsc::Receiver<String>) {
    // Over HTTPS: the server's outbound requests are https only.
    let upstreams = Upstreams::new();
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(4);
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
        &format!("backchannel_logout_uri = \"{receiver}/backchannel-logout\""),
    );
    let server = TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.into())],
        trusted_cas: vec![upstreams.ca_file()],
        ..Default::default()
    })
    .await;
    std::mem::forget(upstreams);
    (server, rx)
}

/// alice signs in at acme-web; the token response.
async fn alice_tokens(server: &TestServer, b: &Browser) -> Value {
    let back = alice_signs_in(server, b, "s").await;
    let r = redeem(server, &back["code"], VERIFIER).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_back_channel_logout_token_used_as_id_token_hint_does_not_sign_the_user_out() {
    let (server, mut rx) = server_with_logout_receiver().await;
    let b = Browser::new(&server);
    let t = alice_tokens(&server, &b).await;
    // A real sign-out sends acme-web a logout token: sub alice, aud acme-web, signed by acme.
    let r = end_session(
        &b,
        &server,
        &[("id_token_hint", t["id_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(r.status(), 200);
    let body = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let logout_token = params(&format!("?{body}"))["logout_token"].clone();
    assert_eq!(jwt_header(&logout_token)["typ"], "logout+jwt");
    // alice signs in again; whoever holds that logout token tries to sign her out silently.
    alice_signs_in(&server, &b, "again").await;
    let r = end_session(&b, &server, &[("id_token_hint", &logout_token)]).await;
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    assert!(page.contains("invalid_request"), "{page}");
    assert!(
        still_signed_in(&server, &b).await,
        "the session must survive"
    );
    // At the authorization endpoint it is no id_token_hint either (OIDC Core §3.1.2.1).
    let ch = challenge(VERIFIER);
    let mut p = web_params("hint", &ch);
    p.push(("id_token_hint", &logout_token));
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    assert_eq!(params(&location(&r))["error"], "invalid_request");
    server.stop().await;
}

#[tokio::test]
async fn an_access_token_used_as_id_token_hint_is_refused() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let t = alice_tokens(&server, &b).await;
    let access_token = t["access_token"].as_str().unwrap();
    assert_eq!(jwt_header(access_token)["typ"], "at+jwt");
    let r = end_session(
        &b,
        &server,
        &[("id_token_hint", access_token), ("client_id", "acme-web")],
    )
    .await;
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    assert!(page.contains("invalid_request"), "{page}");
    assert!(
        still_signed_in(&server, &b).await,
        "the session must survive"
    );
    let ch = challenge(VERIFIER);
    let mut p = web_params("hint", &ch);
    p.push(("id_token_hint", access_token));
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    assert_eq!(params(&location(&r))["error"], "invalid_request");
    server.stop().await;
}

#[tokio::test]
async fn another_clients_id_token_is_no_id_token_hint_for_this_client() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    alice_tokens(&server, &b).await;
    // alice (already signed in) gets an id token for acme-spa.
    let ch = challenge(VERIFIER);
    let r = b
        .get(&authorize_url(
            &server,
            "acme",
            "acme-spa",
            &[
                ("response_type", "code"),
                ("redirect_uri", SPA_CB),
                ("scope", "openid"),
                ("state", "spa"),
                ("code_challenge", &ch),
                ("code_challenge_method", "S256"),
            ],
        ))
        .await;
    let code = params(&location(&r))["code"].clone();
    let t: Value = server
        .http
        .post(server.url("/acme/connect/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "acme-spa"),
            ("code", &code),
            ("redirect_uri", SPA_CB),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let spa_id_token = t["id_token"].as_str().unwrap().to_string();
    // At acme-web's authorization request, acme-spa's id token is refused.
    let mut p = web_params("hint", &ch);
    p.push(("id_token_hint", &spa_id_token));
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    assert_eq!(params(&location(&r))["error"], "invalid_request");
    // At end session for acme-web too.
    let r = end_session(
        &b,
        &server,
        &[("id_token_hint", &spa_id_token), ("client_id", "acme-web")],
    )
    .await;
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    assert!(page.contains("invalid_request"), "{page}");
    assert!(
        still_signed_in(&server, &b).await,
        "the session must survive"
    );
    // acme-spa's own request with it is fine.
    let mut q = vec![
        ("response_type", "code"),
        ("redirect_uri", SPA_CB),
        ("scope", "openid"),
        ("state", "spa2"),
        ("code_challenge", ch.as_str()),
        ("code_challenge_method", "S256"),
    ];
    q.push(("id_token_hint", &spa_id_token));
    let r = b.get(&authorize_url(&server, "acme", "acme-spa", &q)).await;
    assert!(params(&location(&r)).contains_key("code"));
    server.stop().await;
}

/// A JWT signed with tenant acme's id token key, as anything the tenant signs would be.
fn signed_by_acme(server: &TestServer, typ: &str, claims: Value) -> String {
    let tenant = server.state().registry.get("acme").unwrap();
    let keys = tenant.keys.load();
    keys.signer(Alg::RS256)
        .unwrap()
        .sign_jwt(typ, &claims)
        .unwrap()
}

#[tokio::test]
async fn a_jwt_of_the_tenant_is_an_id_token_hint_only_with_typ_jwt_no_events_and_a_client_audience()
{
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let sub = verify_jwt(
        alice_tokens(&server, &b).await["id_token"]
            .as_str()
            .unwrap(),
        &server.jwks("acme").await,
        &server.url("/acme"),
        "acme-web",
    )["sub"]
        .clone();
    let now = SystemClock.now();
    let claims = |aud: &str, extra: Value| {
        let mut c = json!({"iss": server.url("/acme"), "sub": sub, "aud": aud, "iat": now, "exp": now + 300});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let events = json!({"events": {"http://schemas.openid.net/event/backchannel-logout": {}}});
    // Each is refused by one rule alone: the type, the logout event, the audience.
    for (why, hint) in [
        (
            "typ at+jwt",
            signed_by_acme(&server, "at+jwt", claims("acme-web", json!({}))),
        ),
        (
            "typ logout+jwt",
            signed_by_acme(&server, "logout+jwt", claims("acme-web", json!({}))),
        ),
        (
            "events",
            signed_by_acme(&server, "JWT", claims("acme-web", events.clone())),
        ),
        (
            "audience of no client",
            signed_by_acme(&server, "JWT", claims("no-such-client", json!({}))),
        ),
    ] {
        let ch = challenge(VERIFIER);
        let mut p = web_params("hint", &ch);
        p.push(("id_token_hint", &hint));
        let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
        assert_eq!(
            params(&location(&r)).get("error").map(String::as_str),
            Some("invalid_request"),
            "{why}"
        );
        // At end session without client_id, the hint alone names the client.
        let r = end_session(&b, &server, &[("id_token_hint", &hint)]).await;
        assert_eq!(r.status(), 400, "{why}");
        let page = r.text().await.unwrap();
        assert!(page.contains("invalid_request"), "{why}: {page}");
        assert!(still_signed_in(&server, &b).await, "{why}");
    }
    // The same, typed and addressed as an id token, is one: at authorize, and it signs alice
    // out at once (no confirmation) at end session.
    let id_token = signed_by_acme(&server, "JWT", claims("acme-web", json!({})));
    let ch = challenge(VERIFIER);
    let mut p = web_params("hint", &ch);
    p.push(("id_token_hint", &id_token));
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    assert!(params(&location(&r)).contains_key("code"));
    let r = end_session(&b, &server, &[("id_token_hint", &id_token)]).await;
    assert_eq!(r.status(), 200);
    assert!(!still_signed_in(&server, &b).await, "signed out");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Finding 10a: request objects are used alone, expire, and their jti is single use.

fn es256() -> Signer {
    Signer::from_pkcs8(Alg::ES256, &generate_pkcs8(Alg::ES256, 2048).unwrap()).unwrap()
}

fn toml_inline(v: &Value) -> String {
    let fields: Vec<String> = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    format!("{{ {} }}", fields.join(", "))
}

/// acme with `acme-jar`, a public client that signs its request objects with `key`.
async fn jar_server(key: &Signer) -> TestServer {
    let acme = format!(
        "{ACME}\n[[clients]]\nclient_id = \"acme-jar\"\npublic = true\ngrant_types = [\"authorization_code\"]\nscopes = [\"openid\", \"profile\"]\nredirect_uris = [\"{WEB_CB}\", \"{OTHER_CB}\"]\njwks = {{ keys = [{}] }}\n",
        toml_inline(&key.public_jwk())
    );
    TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.into())],
        ..Default::default()
    })
    .await
}

/// The claims of a request object for acme-jar: one hour at most, a fresh jti.
fn jar_claims(server: &TestServer) -> Value {
    let now = SystemClock.now();
    json!({
        "iss": "acme-jar", "aud": server.url("/acme"), "client_id": "acme-jar",
        "iat": now, "exp": now + 300, "jti": portcullis::tokens::new_jti(),
        "response_type": "code", "redirect_uri": WEB_CB, "scope": "openid", "state": "signed",
        "nonce": "n-signed", "code_challenge": challenge(VERIFIER), "code_challenge_method": "S256",
    })
}

fn sign(key: &Signer, claims: &Value) -> String {
    key.sign_jwt("oauth-authz-req+jwt", claims).unwrap()
}

/// Redeems acme-jar's code; the token response.
async fn redeem_jar(server: &TestServer, code: &str, redirect_uri: &str) -> reqwest::Response {
    server
        .http
        .post(server.url("/acme/connect/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "acme-jar"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn parameters_appended_to_a_signed_request_object_cannot_change_what_is_authorized() {
    let key = es256();
    let server = jar_server(&key).await;
    let b = Browser::new(&server);
    alice_signs_in(&server, &b, "s").await;
    let object = sign(&key, &jar_claims(&server));
    // Someone who sees the signed request appends parameters of their own: another registered
    // redirect URI, more scope, their own state and PKCE challenge, a DPoP key binding and a
    // response mode — those outside the object as well as those inside it.
    let attacker_challenge = challenge("attacker-verifier-attacker-verifier-attacker-verifier");
    let attacker_jkt = dpop_key().kid.clone();
    let r = b
        .get(&authorize_url(
            &server,
            "acme",
            "acme-jar",
            &[
                ("request", &object),
                ("redirect_uri", OTHER_CB),
                ("scope", "openid profile"),
                ("state", "attacker"),
                ("code_challenge", &attacker_challenge),
                ("code_challenge_method", "S256"),
                ("response_mode", "fragment"),
                ("dpop_jkt", &attacker_jkt),
                ("prompt", "login"),
            ],
        ))
        .await;
    assert_eq!(r.status(), 303);
    let back = location(&r);
    // RFC 9101 §6.3: only the object counts — its redirect URI, in query mode, with its state,
    // and no new sign-in (prompt=login came from outside).
    assert!(back.starts_with(&format!("{WEB_CB}?")), "{back}");
    let p = params(&back);
    assert_eq!(p["state"], "signed");
    // The code is redeemed with the object's PKCE verifier, without any DPoP key, for the
    // object's scope only.
    let r = redeem_jar(&server, &p["code"], WEB_CB).await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["scope"], "openid");
    assert_eq!(t["token_type"], "Bearer");
    server.stop().await;
}

#[tokio::test]
async fn a_request_object_must_agree_with_the_client_id_and_response_type_outside_it() {
    let key = es256();
    let server = jar_server(&key).await;
    let b = Browser::new(&server);
    let object = sign(&key, &jar_claims(&server));
    let r = b
        .get(&authorize_url(
            &server,
            "acme",
            "acme-jar",
            &[("request", &object), ("response_type", "token")],
        ))
        .await;
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    assert!(page.contains("invalid_request_object"), "{page}");
    server.stop().await;
}

#[tokio::test]
async fn a_request_object_without_exp_or_living_longer_than_an_hour_is_refused() {
    let key = es256();
    let server = jar_server(&key).await;
    let b = Browser::new(&server);
    let now = SystemClock.now();
    let mut without_exp = jar_claims(&server);
    without_exp.as_object_mut().unwrap().remove("exp");
    let mut too_long = jar_claims(&server);
    too_long["exp"] = json!(now + 2 * 3600);
    let mut far_away = jar_claims(&server);
    far_away.as_object_mut().unwrap().remove("iat");
    far_away["exp"] = json!(now + 30 * 86_400);
    for (why, claims) in [
        ("no exp", without_exp),
        ("exp - iat of two hours", too_long),
        ("exp in a month, no iat", far_away),
    ] {
        let r = b
            .get(&authorize_url(
                &server,
                "acme",
                "acme-jar",
                &[("request", &sign(&key, &claims))],
            ))
            .await;
        assert_eq!(r.status(), 400, "{why}");
        let page = r.text().await.unwrap();
        assert!(page.contains("invalid_request_object"), "{why}: {page}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_request_object_jti_is_single_use() {
    let key = es256();
    let server = jar_server(&key).await;
    let b = Browser::new(&server);
    let object = sign(&key, &jar_claims(&server));
    let url = authorize_url(&server, "acme", "acme-jar", &[("request", &object)]);
    let r = b.get(&url).await;
    assert_eq!(r.status(), 303, "the first use is accepted");
    assert!(location(&r).contains("/account/login"));
    let r = b.get(&url).await;
    assert_eq!(r.status(), 400, "the same request object again");
    let page = r.text().await.unwrap();
    assert!(page.contains("invalid_request_object"), "{page}");
    server.stop().await;
}

#[tokio::test]
async fn a_pushed_request_object_is_used_alone_and_its_jti_only_once() {
    let key = es256();
    let server = jar_server(&key).await;
    let b = Browser::new(&server);
    alice_signs_in(&server, &b, "s").await;
    let object = sign(&key, &jar_claims(&server));
    let push = || {
        server
            .http
            .post(server.url("/acme/connect/par"))
            .form(&[
                ("client_id", "acme-jar"),
                ("request", object.as_str()),
                ("state", "attacker"),
                ("response_mode", "fragment"),
                ("redirect_uri", OTHER_CB),
            ])
            .send()
    };
    let r = push().await.unwrap();
    assert_eq!(r.status(), 201);
    let uri = r.json::<Value>().await.unwrap()["request_uri"]
        .as_str()
        .unwrap()
        .to_string();
    let r = b
        .get(&authorize_url(
            &server,
            "acme",
            "acme-jar",
            &[("request_uri", &uri)],
        ))
        .await;
    let back = location(&r);
    assert!(back.starts_with(&format!("{WEB_CB}?")), "{back}");
    assert_eq!(params(&back)["state"], "signed");
    // The same object pushed again is a replay.
    let r = push().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_of(r).await, "invalid_request_object");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Finding 10b: the DPoP replay memory is bounded and never forgets a proof inside its window.

async fn cc_with_proof(server: &TestServer, dpop: &str) -> reqwest::Response {
    server
        .http
        .post(server.url("/acme/connect/token"))
        .basic_auth("acme-m2m", Some("acme-m2m-secret"))
        .header("DPoP", dpop)
        .form(&[("grant_type", "client_credentials"), ("scope", "api.read")])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_dpop_proof_with_an_oversized_jti_is_refused() {
    let server = TestServer::start().await;
    let k = dpop_key();
    let htu = server.url("/acme/connect/token");
    for len in [129, 200, 10 * 1024] {
        let p = proof(&k, "POST", &htu, json!({"jti": "j".repeat(len)}));
        let r = cc_with_proof(&server, &p).await;
        assert_eq!(r.status(), 400, "a jti of {len} bytes");
        assert_eq!(error_of(r).await, "invalid_dpop_proof", "{len}");
    }
    let p = proof(&k, "POST", &htu, json!({"jti": "j".repeat(128)}));
    assert_eq!(cc_with_proof(&server, &p).await.status(), 200, "128 bytes");
    server.stop().await;
}

#[tokio::test]
async fn a_replayed_dpop_proof_is_refused_after_many_other_proofs_and_a_full_memory_fails_closed() {
    // A replay memory of 48 entries, so the test can fill it.
    let server = TestServer::start_with(Options {
        server_extra: "[cache]\nreplay_capacity = 48\n".into(),
        ..Default::default()
    })
    .await;
    let k = dpop_key();
    let htu = server.url("/acme/connect/token");
    let first = proof(&k, "POST", &htu, json!({}));
    assert_eq!(cc_with_proof(&server, &first).await.status(), 200);
    for i in 1..48 {
        let r = cc_with_proof(&server, &proof(&k, "POST", &htu, json!({}))).await;
        assert_eq!(r.status(), 200, "proof {i}");
    }
    // Full: the first proof is still remembered…
    let r = cc_with_proof(&server, &first).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_of(r).await, "invalid_dpop_proof");
    // …and a new one is refused rather than let in unremembered.
    let r = cc_with_proof(&server, &proof(&k, "POST", &htu, json!({}))).await;
    assert_eq!(r.status(), 503);
    assert_eq!(error_of(r).await, "temporarily_unavailable");
    server.stop().await;
}

#[tokio::test]
async fn on_postgresql_a_full_replay_memory_leaves_the_decision_to_the_database() {
    if postgres_url().is_none() {
        eprintln!("PORTCULLIS_TEST_POSTGRES_URL is not set: PostgreSQL part skipped");
        return;
    }
    let server = TestServer::start_with(Options {
        postgres: true,
        server_extra: "[cache]\nreplay_capacity = 4\n".into(),
        ..Default::default()
    })
    .await;
    let k = dpop_key();
    let htu = server.url("/acme/connect/token");
    let first = proof(&k, "POST", &htu, json!({}));
    assert_eq!(cc_with_proof(&server, &first).await.status(), 200);
    for i in 1..4 {
        let r = cc_with_proof(&server, &proof(&k, "POST", &htu, json!({}))).await;
        assert_eq!(r.status(), 200, "proof {i}");
    }
    // The memory is full: new proofs are still served (the database remembers them)…
    let later = proof(&k, "POST", &htu, json!({}));
    assert_eq!(cc_with_proof(&server, &later).await.status(), 200);
    // …and replays are refused, by the memory or by the database.
    for p in [&first, &later] {
        let r = cc_with_proof(&server, p).await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_of(r).await, "invalid_dpop_proof");
    }
    server.stop().await;
}
