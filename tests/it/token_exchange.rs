//! Tokens for tokens: token exchange (RFC 8693) with delegation and impersonation, workload
//! identity federation, the JWT bearer grant (RFC 7523 §2.1), the legacy password grant, and
//! the tenant's own grant types decided by a webhook.

use crate::interactive::{Browser, VERIFIER, alice_signs_in, redeem};
use crate::support::*;
use portcullis::clock::{Clock, FixedClock, SystemClock};
use serde_json::{Value, json};
use std::sync::Arc;

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
const REFRESH: &str = "urn:ietf:params:oauth:token-type:refresh_token";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const ORDERS: &str = "https://orders.acme.test";
const CI: &str = "https://ci.acme.test";
const MAIN: &str = "repo:acme/app:ref:refs/heads/main";

/// A server on SQLite, or on a fresh PostgreSQL schema.
fn on(pg: bool) -> Options {
    Options {
        postgres: pg,
        ..Default::default()
    }
}

/// acme with more exchange clients: one for impersonation, one that may exchange the Orders
/// API's tokens (so delegation chains), one with no audiences of its own, a password client,
/// a client of a webhook grant, and an issuer that publishes its keys at `jwks_uri`.
fn acme_plus(jwks_uri: &str, webhook: &str) -> String {
    format!(
        "{ACME}\n\
         [[clients]]\nclient_id = \"acme-imp\"\nsecrets = [{{ hash = \"sha256:v3GZ_zogvqppjRv-pQosFX_jz4LXQvVBUmA0j_JIYRQ\" }}]\n\
         grant_types = [\"{EXCHANGE}\"]\nscopes = [\"api.read\", \"api.write\"]\n\
         token_exchange = {{ modes = [\"impersonation\"], subject_token_audiences = [\"https://api.acme.test\"] }}\n\n\
         [[clients]]\nclient_id = \"acme-orders\"\nsecrets = [{{ hash = \"sha256:v3GZ_zogvqppjRv-pQosFX_jz4LXQvVBUmA0j_JIYRQ\" }}]\n\
         grant_types = [\"{EXCHANGE}\", \"client_credentials\"]\nscopes = [\"api.read\"]\n\
         token_exchange = {{ modes = [\"delegation\", \"impersonation\"], subject_token_audiences = [\"{ORDERS}\"] }}\n\n\
         [[clients]]\nclient_id = \"acme-lonely\"\nsecrets = [{{ hash = \"sha256:v3GZ_zogvqppjRv-pQosFX_jz4LXQvVBUmA0j_JIYRQ\" }}]\n\
         grant_types = [\"{EXCHANGE}\", \"{JWT_BEARER}\"]\nscopes = [\"api.read\"]\n\
         token_exchange = {{ modes = [\"delegation\", \"impersonation\"] }}\n\n\
         [[clients]]\nclient_id = \"acme-legacy\"\nsecrets = [{{ hash = \"sha256:v3GZ_zogvqppjRv-pQosFX_jz4LXQvVBUmA0j_JIYRQ\" }}]\n\
         grant_types = [\"password\", \"refresh_token\"]\nscopes = [\"openid\", \"profile\", \"api.read\", \"offline_access\"]\n\n\
         [[clients]]\nclient_id = \"acme-badge\"\nsecrets = [{{ hash = \"sha256:v3GZ_zogvqppjRv-pQosFX_jz4LXQvVBUmA0j_JIYRQ\" }}]\n\
         grant_types = [\"urn:acme:grant-type:badge\", \"urn:acme:grant-type:broken\"]\nscopes = [\"api.read\", \"api.write\"]\n\n\
         [[trusted_issuers]]\nissuer = \"https://partner.example\"\njwks_uri = \"{jwks_uri}\"\nalgorithms = [\"ES256\"]\n\
         max_token_age = 600\nsubject_template = \"partner:{{sub}}\"\nscopes = [\"api.read\"]\n\n\
         [[extension_grants]]\ngrant_type = \"urn:acme:grant-type:badge\"\nwebhook_url = \"{webhook}/badge\"\ntimeout = 1\n\n\
         [[extension_grants]]\ngrant_type = \"urn:acme:grant-type:broken\"\nwebhook_url = \"{webhook}/broken\"\ntimeout = 1\n\n\
         [password_grant]\nenabled = true\n"
    )
}

/// The demo workload key (written by the server at start) and its kid.
pub(crate) fn workload_key(server: &TestServer) -> (jsonwebtoken::EncodingKey, String) {
    let pem = std::fs::read(server.path("certs/demo-workload-key.pem")).unwrap();
    let jwks: Value = serde_json::from_str(
        &std::fs::read_to_string(server.path("certs/demo-workload.jwks.json")).unwrap(),
    )
    .unwrap();
    (
        jsonwebtoken::EncodingKey::from_ec_der(&pem_der(&pem)),
        jwks["keys"][0]["kid"].as_str().unwrap().to_string(),
    )
}

/// The DER of a one-block PEM file.
fn pem_der(pem: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let b64: String = std::str::from_utf8(pem)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

/// A JWT signed by an independent library (jsonwebtoken) with `key`: the given claims over
/// sensible defaults (the demo CI issuer, acme as audience, five minutes).
pub(crate) fn sign_es256(key: &jsonwebtoken::EncodingKey, kid: &str, claims: Value) -> String {
    let now = SystemClock.now();
    let mut c = json!({
        "iss": CI, "sub": MAIN, "iat": now, "exp": now + 300,
        "jti": portcullis::tokens::new_jti(),
    });
    for (k, v) in claims.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some(kid.to_string());
    jsonwebtoken::encode(&h, &c, key).unwrap()
}

fn workload_jwt(server: &TestServer, claims: Value) -> String {
    let (key, kid) = workload_key(server);
    let mut c = json!({ "aud": server.url("/acme") });
    for (k, v) in claims.as_object().unwrap() {
        c[k] = v.clone();
    }
    sign_es256(&key, &kid, c)
}

async fn post(
    server: &TestServer,
    client: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut r = server.http.post(server.url("/acme/connect/token"));
    if let Some((id, secret)) = client {
        r = r.basic_auth(id, Some(secret));
    }
    r.form(form).send().await.unwrap()
}

/// A token exchange by `client` (secret acme-gateway-secret, as all exchange test clients).
async fn exchange(server: &TestServer, client: &str, form: &[(&str, &str)]) -> reqwest::Response {
    let mut f = vec![("grant_type", EXCHANGE)];
    f.extend_from_slice(form);
    post(server, Some((client, "acme-gateway-secret")), &f).await
}

async fn exchanged(server: &TestServer, client: &str, form: &[(&str, &str)]) -> Value {
    let r = exchange(server, client, form).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

async fn alice_tokens(server: &TestServer) -> Value {
    let b = Browser::new(server);
    let back = alice_signs_in(server, &b, "te").await;
    let r = redeem(server, &back["code"], VERIFIER).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn gateway_token(server: &TestServer) -> String {
    server
        .token_json(
            "acme",
            "acme-gateway",
            "acme-gateway-secret",
            &[("grant_type", "client_credentials")],
        )
        .await["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn verified(server_jwks: &Value, server: &TestServer, token: &str, aud: &str) -> Value {
    assert_eq!(jwt_header(token)["typ"], "at+jwt");
    verify_jwt(token, server_jwks, &server.url("/acme"), aud)
}

async fn start_plus(pg: bool) -> (TestServer, Upstreams) {
    let up = Upstreams::new();
    let base = up
        .serve(axum::Router::new().route(
            "/jwks",
            axum::routing::get(|| async { axum::Json(json!({ "keys": [] })) }),
        ))
        .await;
    let server = TestServer::start_with(Options {
        tenants: vec![
            ("acme", acme_plus(&format!("{base}/jwks"), &base)),
            ("globex", GLOBEX.to_string()),
        ],
        trusted_cas: vec![up.ca_file()],
        ..on(pg)
    })
    .await;
    (server, up)
}

on_both_engines!(a_gateway_exchanges_alices_token_for_the_orders_api_naming_itself_as_the_actor);
async fn a_gateway_exchanges_alices_token_for_the_orders_api_naming_itself_as_the_actor(pg: bool) {
    let server = TestServer::start_with(on(pg)).await;
    let alice = alice_tokens(&server).await;
    let subject = alice["access_token"].as_str().unwrap();
    let actor = gateway_token(&server).await;
    let t = exchanged(
        &server,
        "acme-gateway",
        &[
            ("subject_token", subject),
            ("subject_token_type", ACCESS),
            ("actor_token", &actor),
            ("actor_token_type", ACCESS),
            ("resource", ORDERS),
        ],
    )
    .await;
    assert_eq!(t["issued_token_type"], ACCESS);
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "api.read");
    assert!(t.get("refresh_token").is_none());
    let jwks = server.jwks("acme").await;
    let c = verified(&jwks, &server, t["access_token"].as_str().unwrap(), ORDERS);
    let original = verified(&jwks, &server, subject, "https://api.acme.test");
    assert_eq!(c["sub"], original["sub"]);
    assert_eq!(c["act"], json!({ "sub": "acme-gateway" }));
    assert_eq!(c["client_id"], "acme-gateway");
    assert_eq!(c["aud"], ORDERS);
    assert_eq!(c["idp"], "local");
    assert_eq!(c["auth_time"], original["auth_time"]);
    // It does not outlive the token it came from.
    assert!(c["exp"].as_i64() <= original["exp"].as_i64());
    // Without an actor token, a delegation-only client is itself the actor.
    let t = exchanged(
        &server,
        "acme-gateway",
        &[
            ("subject_token", subject),
            ("subject_token_type", ACCESS),
            ("audience", ORDERS),
        ],
    )
    .await;
    let c = verified(&jwks, &server, t["access_token"].as_str().unwrap(), ORDERS);
    assert_eq!(c["act"], json!({ "sub": "acme-gateway" }));
    server.stop().await;
}

on_both_engines!(delegation_chains_nest_act_and_impersonation_adds_none);
async fn delegation_chains_nest_act_and_impersonation_adds_none(pg: bool) {
    let (server, _up) = start_plus(pg).await;
    let alice = alice_tokens(&server).await;
    let subject = alice["access_token"].as_str().unwrap();
    let jwks = server.jwks("acme").await;
    // Impersonation: the Orders token is alice's own, with no actor.
    let t = exchanged(
        &server,
        "acme-imp",
        &[
            ("subject_token", subject),
            ("subject_token_type", ACCESS),
            ("resource", ORDERS),
        ],
    )
    .await;
    let c = verified(&jwks, &server, t["access_token"].as_str().unwrap(), ORDERS);
    assert!(c.get("act").is_none(), "{c}");
    // An impersonation-only client may not name an actor.
    let actor = gateway_token(&server).await;
    let r = exchange(
        &server,
        "acme-imp",
        &[
            ("subject_token", subject),
            ("subject_token_type", ACCESS),
            ("actor_token", &actor),
            ("actor_token_type", ACCESS),
        ],
    )
    .await;
    assert_oauth_error(r, 400, "unauthorized_client").await;
    // The gateway's delegated Orders token, exchanged again by the Orders service with its own
    // token as actor: the new actor, with the gateway nested as the prior one (RFC 8693 §4.1).
    let delegated = exchanged(
        &server,
        "acme-gateway",
        &[
            ("subject_token", subject),
            ("subject_token_type", ACCESS),
            ("resource", ORDERS),
        ],
    )
    .await;
    let orders_actor = server
        .token_json(
            "acme",
            "acme-orders",
            "acme-gateway-secret",
            &[("grant_type", "client_credentials")],
        )
        .await;
    let t = exchanged(
        &server,
        "acme-orders",
        &[
            ("subject_token", delegated["access_token"].as_str().unwrap()),
            ("subject_token_type", JWT),
            (
                "actor_token",
                orders_actor["access_token"].as_str().unwrap(),
            ),
            ("actor_token_type", JWT),
            ("resource", ORDERS),
        ],
    )
    .await;
    let c = verified(&jwks, &server, t["access_token"].as_str().unwrap(), ORDERS);
    assert_eq!(
        c["act"],
        json!({ "sub": "acme-orders", "act": { "sub": "acme-gateway" } })
    );
    // The actor chain is what introspection tells the client too.
    let info: Value = server
        .http
        .post(server.url("/acme/connect/introspect"))
        .basic_auth("acme-orders", Some("acme-gateway-secret"))
        .form(&[("token", t["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["active"], true);
    assert_eq!(info["act"]["act"]["sub"], "acme-gateway");
    server.stop().await;
}

on_both_engines!(scopes_and_audiences_only_narrow_and_bad_tokens_get_precise_errors);
async fn scopes_and_audiences_only_narrow_and_bad_tokens_get_precise_errors(pg: bool) {
    let (server, _up) = start_plus(pg).await;
    let alice = alice_tokens(&server).await;
    let subject = alice["access_token"].as_str().unwrap();
    let base = [("subject_token", subject), ("subject_token_type", ACCESS)];
    fn with<'a>(
        base: &[(&'static str, &'a str)],
        extra: &[(&'static str, &'a str)],
    ) -> Vec<(&'static str, &'a str)> {
        let mut f = base.to_vec();
        f.extend_from_slice(extra);
        f
    }
    // Scope widening: alice's token has api.read only (acme-imp itself may have api.write).
    let r = exchange(&server, "acme-imp", &with(&base, &[("scope", "api.write")])).await;
    assert_oauth_error(r, 400, "invalid_scope").await;
    // An audience that is no resource of the tenant.
    let r = exchange(
        &server,
        "acme-gateway",
        &with(&base, &[("audience", "https://evil.example")]),
    )
    .await;
    assert_oauth_error(r, 400, "invalid_target").await;
    // Unknown and missing token types.
    let r = exchange(
        &server,
        "acme-gateway",
        &[
            ("subject_token", subject),
            ("subject_token_type", "urn:example:saml"),
        ],
    )
    .await;
    assert_oauth_error(r, 400, "invalid_request").await;
    let r = exchange(&server, "acme-gateway", &[("subject_token", subject)]).await;
    assert_oauth_error(r, 400, "invalid_request").await;
    // Oversize: a subject token of more than 16 KiB is not read.
    let huge = "e".repeat(17 * 1024);
    let r = exchange(
        &server,
        "acme-gateway",
        &[("subject_token", &huge), ("subject_token_type", JWT)],
    )
    .await;
    assert_oauth_error(r, 400, "invalid_request").await;
    let r = exchange(
        &server,
        "acme-gateway",
        &with(&base, &[("actor_token", subject)]),
    )
    .await;
    assert_oauth_error(r, 400, "invalid_request").await;
    // A forged token: one signature byte changed.
    let mut forged = subject.to_string();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let r = exchange(
        &server,
        "acme-gateway",
        &[("subject_token", &forged), ("subject_token_type", ACCESS)],
    )
    .await;
    assert_oauth_error(r, 400, "invalid_grant").await;
    // A token not addressed to the client (its aud is the Acme API, which acme-lonely does
    // not list).
    let r = exchange(&server, "acme-lonely", &with(&base, &[])).await;
    let d = assert_oauth_error(r, 400, "invalid_grant").await;
    assert!(d.contains("not addressed to this client"), "{d}");
    // An actor token issued to another client.
    let other = server
        .token_json(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[("grant_type", "client_credentials")],
        )
        .await;
    let r = exchange(
        &server,
        "acme-gateway",
        &with(
            &base,
            &[
                ("actor_token", other["access_token"].as_str().unwrap()),
                ("actor_token_type", ACCESS),
            ],
        ),
    )
    .await;
    assert_oauth_error(r, 400, "invalid_grant").await;
    // A client without the grant.
    let r = post(
        &server,
        Some(("acme-m2m", "acme-m2m-secret")),
        &[
            ("grant_type", EXCHANGE),
            ("subject_token", subject),
            ("subject_token_type", ACCESS),
        ],
    )
    .await;
    assert_oauth_error(r, 400, "unauthorized_client").await;
    // A token of another tenant (globex): its issuer is acme's upstream provider, and the
    // token is not addressed to acme.
    let globex = server
        .token_json(
            "globex",
            "globex-m2m",
            "globex-m2m-secret",
            &[("grant_type", "client_credentials")],
        )
        .await;
    let r = exchange(
        &server,
        "acme-gateway",
        &[
            ("subject_token", globex["access_token"].as_str().unwrap()),
            ("subject_token_type", ACCESS),
        ],
    )
    .await;
    assert_oauth_error(r, 400, "invalid_grant").await;
    // And acme's token means nothing at globex.
    let r = server
        .http
        .post(server.url("/globex/connect/token"))
        .basic_auth("globex-m2m", Some("globex-m2m-secret"))
        .form(&[
            ("grant_type", EXCHANGE),
            ("subject_token", subject),
            ("subject_token_type", ACCESS),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(r, 400, "unauthorized_client").await;
    server.stop().await;
}

on_both_engines!(
    refresh_and_id_tokens_exchange_for_their_own_client_and_revocation_ends_what_came_from_them
);
async fn refresh_and_id_tokens_exchange_for_their_own_client_and_revocation_ends_what_came_from_them(
    pg: bool,
) {
    let server = TestServer::start_with(Options {
        tenants: vec![(
            "acme",
            format!(
                "{ACME}\n[[clients]]\nclient_id = \"acme-web2\"\nsecrets = [{{ hash = \"sha256:VdNE31MWJwjhiiGnu4Vh1JQ6DW9-FQry1d-dHA9w7_Q\" }}]\n\
                 grant_types = [\"authorization_code\", \"refresh_token\", \"{EXCHANGE}\"]\n\
                 scopes = [\"openid\", \"profile\", \"email\", \"offline_access\", \"api.read\"]\n\
                 redirect_uris = [\"http://127.0.0.1:9000/callback\"]\n\
                 token_exchange = {{ modes = [\"impersonation\"] }}\n"
            ),
        )],
        ..on(pg)
    })
    .await;
    let alice = alice_tokens(&server).await;
    let refresh = alice["refresh_token"].as_str().unwrap();
    let id_token = alice["id_token"].as_str().unwrap();
    // acme-web's refresh token is acme-web's: the gateway cannot exchange it.
    let r = exchange(
        &server,
        "acme-gateway",
        &[("subject_token", refresh), ("subject_token_type", REFRESH)],
    )
    .await;
    assert_oauth_error(r, 400, "invalid_grant").await;
    // Nor alice's id token, which was issued to acme-web.
    let r = exchange(
        &server,
        "acme-gateway",
        &[
            ("subject_token", id_token),
            ("subject_token_type", ID_TOKEN),
        ],
    )
    .await;
    assert_oauth_error(r, 400, "invalid_grant").await;
    // acme-web2 signs alice in and exchanges its own refresh token and id token.
    let b = Browser::new(&server);
    let ch = crate::interactive::challenge(VERIFIER);
    let r = b
        .get(&crate::interactive::authorize_url(
            &server,
            "acme",
            "acme-web2",
            &crate::interactive::web_params("s2", &ch),
        ))
        .await;
    let login = crate::interactive::location(&r);
    let r = crate::interactive::submit_login(&b, &login, "alice", "alice-password").await;
    let back = crate::interactive::params(&crate::interactive::location(&r));
    let r = server
        .http
        .post(server.url("/acme/connect/token"))
        .basic_auth("acme-web2", Some("acme-web-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", back["code"].as_str()),
            ("redirect_uri", "http://127.0.0.1:9000/callback"),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mine: Value = r.json().await.unwrap();
    let web2 = |form: Vec<(&'static str, String)>| {
        let server = &server;
        async move {
            let mut f = vec![("grant_type", EXCHANGE.to_string())];
            f.extend(form);
            server
                .http
                .post(server.url("/acme/connect/token"))
                .basic_auth("acme-web2", Some("acme-web-secret"))
                .form(&f)
                .send()
                .await
                .unwrap()
        }
    };
    let by_refresh = web2(vec![
        (
            "subject_token",
            mine["refresh_token"].as_str().unwrap().into(),
        ),
        ("subject_token_type", REFRESH.into()),
        ("scope", "api.read".into()),
    ])
    .await;
    assert_eq!(by_refresh.status(), 200);
    let by_refresh: Value = by_refresh.json().await.unwrap();
    let by_id = web2(vec![
        ("subject_token", mine["id_token"].as_str().unwrap().into()),
        ("subject_token_type", ID_TOKEN.into()),
        ("scope", "api.read".into()),
    ])
    .await;
    assert_eq!(by_id.status(), 200);
    let jwks = server.jwks("acme").await;
    let c = verified(
        &jwks,
        &server,
        by_refresh["access_token"].as_str().unwrap(),
        "https://api.acme.test",
    );
    assert_eq!(
        c["sub"],
        claims_of(mine["id_token"].as_str().unwrap())["sub"]
    );
    // The refresh token was not used up by the exchange; revoking it ends the family, and the
    // token exchanged from it with it.
    let introspect = |token: String| {
        let server = &server;
        async move {
            let v: Value = server
                .http
                .post(server.url("/acme/connect/introspect"))
                .basic_auth("acme-web2", Some("acme-web-secret"))
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["active"].as_bool().unwrap()
        }
    };
    let exchanged_at = by_refresh["access_token"].as_str().unwrap().to_string();
    assert!(introspect(exchanged_at.clone()).await);
    let r = server
        .http
        .post(server.url("/acme/connect/revocation"))
        .basic_auth("acme-web2", Some("acme-web-secret"))
        .form(&[("token", mine["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!introspect(exchanged_at).await);
    let r = web2(vec![
        (
            "subject_token",
            mine["refresh_token"].as_str().unwrap().into(),
        ),
        ("subject_token_type", REFRESH.into()),
    ])
    .await;
    assert_oauth_error(r, 400, "invalid_grant").await;
    server.stop().await;
}

fn claims_of(jwt: &str) -> Value {
    crate::federation::claims_of(jwt)
}

on_both_engines!(an_expired_subject_token_is_refused);
async fn an_expired_subject_token_is_refused(pg: bool) {
    let clock = FixedClock::new(SystemClock.now());
    let server = TestServer::start_with(Options {
        clock: Some(clock.clone()),
        ..on(pg)
    })
    .await;
    let t = server
        .token_json(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[("grant_type", "client_credentials"), ("scope", "api.read")],
        )
        .await;
    let subject = t["access_token"].as_str().unwrap();
    let form = [("subject_token", subject), ("subject_token_type", ACCESS)];
    assert_eq!(exchange(&server, "acme-gateway", &form).await.status(), 200);
    clock.advance(3601);
    let r = exchange(&server, "acme-gateway", &form).await;
    assert_oauth_error(r, 400, "invalid_grant").await;
    server.stop().await;
}

on_both_engines!(a_workload_trades_its_platform_token_for_an_acme_token_without_a_secret);
async fn a_workload_trades_its_platform_token_for_an_acme_token_without_a_secret(pg: bool) {
    crate::security_rules::security_events::capture();
    let server = TestServer::start_with(on(pg)).await;
    let jwt = workload_jwt(&server, json!({}));
    let t: Value = post(
        &server,
        None,
        &[
            ("grant_type", EXCHANGE),
            ("client_id", "acme-ci"),
            ("subject_token", &jwt),
            ("subject_token_type", JWT),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    let jwks = server.jwks("acme").await;
    let c = verified(
        &jwks,
        &server,
        t["access_token"].as_str().unwrap(),
        "https://api.acme.test",
    );
    assert_eq!(c["sub"], format!("ci:{MAIN}"));
    assert_eq!(c["idp"], CI);
    assert_eq!(c["client_id"], "acme-ci");
    assert_eq!(c["scope"], "api.read");
    // Each way the token can fail the trust policy or the issuer's rules.
    let now = SystemClock.now();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({ "sub": "repo:acme/other:ref:refs/heads/main" }),
            "sub",
        ),
        (json!({ "sub": "repo:acme/app:ref:refs/tags/v1" }), "sub"),
        (json!({ "aud": "https://elsewhere.example" }), "audience"),
        (json!({ "iat": now - 4000, "exp": now + 60 }), "older"),
        (json!({ "iat": now - 100, "exp": now - 70 }), "expired"),
        (json!({ "exp": now + 7200 }), "longer"),
        (json!({ "iat": null }), "iat"),
        (json!({ "iss": "https://ci.evil.example" }), "not trusted"),
    ];
    for (claims, reason) in cases {
        let bad = workload_jwt(&server, claims.clone());
        let r = post(
            &server,
            None,
            &[
                ("grant_type", EXCHANGE),
                ("client_id", "acme-ci"),
                ("subject_token", &bad),
                ("subject_token_type", JWT),
            ],
        )
        .await;
        // Each refusal is a security event that names its reason.
        let events = crate::security_rules::security_events::of(&r);
        let d = assert_oauth_error(r, 400, "invalid_grant").await;
        assert!(d.contains(reason), "{claims}: {d}");
        assert!(
            events.iter().any(|e| e["event"] == "grant_refused"
                && e["client_id"] == "acme-ci"
                && e["reason"].as_str().is_some_and(|x| x.contains(reason))),
            "{claims}: {events:?}"
        );
    }
    // Signed by another key with the issuer's kid.
    let other = jsonwebtoken::EncodingKey::from_ec_der(
        &portcullis::keys::signer::generate_pkcs8(portcullis::keys::Alg::ES256, 2048).unwrap(),
    );
    let (_, kid) = workload_key(&server);
    let forged = sign_es256(&other, &kid, json!({ "aud": server.url("/acme") }));
    let r = post(
        &server,
        None,
        &[
            ("grant_type", EXCHANGE),
            ("client_id", "acme-ci"),
            ("subject_token", &forged),
            ("subject_token_type", JWT),
        ],
    )
    .await;
    assert_oauth_error(r, 400, "invalid_grant").await;
    // The workload's identity is only good for these grants: no client_credentials, no
    // introspection, and no actor token.
    let r = post(
        &server,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "acme-ci"),
        ],
    )
    .await;
    assert_oauth_error(r, 401, "invalid_client").await;
    let r = server
        .http
        .post(server.url("/acme/connect/introspect"))
        .form(&[
            ("client_id", "acme-ci"),
            ("grant_type", EXCHANGE),
            ("token", t["access_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(r, 401, "invalid_client").await;
    let r = post(
        &server,
        None,
        &[
            ("grant_type", EXCHANGE),
            ("client_id", "acme-ci"),
            ("subject_token", &jwt),
            ("subject_token_type", JWT),
            ("actor_token", &jwt),
            ("actor_token_type", JWT),
        ],
    )
    .await;
    assert_oauth_error(r, 400, "invalid_request").await;
    server.stop().await;
}

on_both_engines!(a_jwt_bearer_assertion_is_used_once_and_must_be_addressed_to_acme);
async fn a_jwt_bearer_assertion_is_used_once_and_must_be_addressed_to_acme(pg: bool) {
    let server = TestServer::start_with(on(pg)).await;
    let token_endpoint = server.url("/acme/connect/token");
    let assertion = workload_jwt(&server, json!({ "aud": token_endpoint }));
    let form = [
        ("grant_type", JWT_BEARER),
        ("client_id", "acme-ci"),
        ("assertion", assertion.as_str()),
    ];
    let r = post(&server, None, &form).await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert!(t.get("issued_token_type").is_none(), "{t}");
    let c = claims_of(t["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], format!("ci:{MAIN}"));
    // RFC 7523 §3 item 7: a replay is refused.
    let r = post(&server, None, &form).await;
    let d = assert_oauth_error(r, 400, "invalid_grant").await;
    assert!(d.contains("used before"), "{d}");
    // No jti; another audience; a sub outside the policy.
    for (claims, reason) in [
        (json!({ "aud": token_endpoint, "jti": null }), "jti"),
        (json!({ "aud": "https://elsewhere.example" }), "audience"),
        (
            json!({ "aud": token_endpoint, "sub": "repo:evil/app:ref:refs/heads/main" }),
            "sub",
        ),
    ] {
        let a = workload_jwt(&server, claims);
        let r = post(
            &server,
            None,
            &[
                ("grant_type", JWT_BEARER),
                ("client_id", "acme-ci"),
                ("assertion", a.as_str()),
            ],
        )
        .await;
        let d = assert_oauth_error(r, 400, "invalid_grant").await;
        assert!(d.contains(reason), "{reason}: {d}");
    }
    server.stop().await;
}

/// acme with the demo CI issuer's key given inline (the same on every node), and that key.
fn acme_with_inline_ci_key() -> (String, jsonwebtoken::EncodingKey, String) {
    let (key, jwk) = dpop_key_pair();
    let inline = format!(
        "jwks = {{ keys = [{{ kty = \"EC\", crv = \"P-256\", x = {}, y = {}, kid = {} }}] }}",
        jwk["x"], jwk["y"], jwk["kid"]
    );
    let text = ACME.replace("jwks_file = \"certs/demo-workload.jwks.json\"", &inline);
    assert_ne!(text, ACME);
    (text, key, jwk["kid"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn a_jwt_bearer_assertion_replayed_at_another_node_is_refused_on_postgresql() {
    if postgres_url().is_none() {
        eprintln!("skipped: PORTCULLIS_TEST_POSTGRES_URL is not set");
        return;
    }
    use base64::Engine;
    let schema = unique_schema();
    let (acme, key, kid) = acme_with_inline_ci_key();
    let keys = format!(
        "master_key = \"{}\"",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    );
    let node = |acme: String| Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.to_string())],
        postgres: true,
        postgres_schema: Some(schema.clone()),
        keys: keys.clone(),
        ..Default::default()
    };
    let a = TestServer::start_with(node(acme.clone())).await;
    // One deployment, one issuer: node b names node a's URL as acme's issuer.
    let b = TestServer::start_with(node(acme.replace(
        "slug = \"acme\"",
        &format!("slug = \"acme\"\nissuer = \"{}\"", a.url("/acme")),
    )))
    .await;
    let alice = alice_tokens(&a).await;
    // Delegation on PostgreSQL: alice's token from node a, exchanged at node b.
    let r = b
        .http
        .post(b.url("/acme/connect/token"))
        .basic_auth("acme-gateway", Some("acme-gateway-secret"))
        .form(&[
            ("grant_type", EXCHANGE),
            ("subject_token", alice["access_token"].as_str().unwrap()),
            ("subject_token_type", ACCESS),
            ("resource", ORDERS),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // The assertion is for acme (its issuer, the same on both nodes).
    let assertion = sign_es256(&key, &kid, json!({ "aud": a.url("/acme") }));
    let form = [
        ("grant_type", JWT_BEARER),
        ("client_id", "acme-ci"),
        ("assertion", assertion.as_str()),
    ];
    let r = a
        .http
        .post(a.url("/acme/connect/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = b
        .http
        .post(b.url("/acme/connect/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let d = assert_oauth_error(r, 400, "invalid_grant").await;
    assert!(d.contains("used before"), "{d}");
    a.stop().await;
    b.stop().await;
}

on_both_engines!(a_partner_issuer_publishing_keys_at_a_url_is_verified_through_the_cache_and_may_act_binds_the_actor);
async fn a_partner_issuer_publishing_keys_at_a_url_is_verified_through_the_cache_and_may_act_binds_the_actor(
    pg: bool,
) {
    let up = Upstreams::new();
    let key = Arc::new(std::sync::Mutex::new(dpop_key_pair()));
    let served = key.clone();
    let base = up
        .serve(axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let k = served.lock().unwrap().1.clone();
                async move { axum::Json(json!({ "keys": [k] })) }
            }),
        ))
        .await;
    let server = TestServer::start_with(Options {
        tenants: vec![
            ("acme", acme_plus(&format!("{base}/jwks"), &base)),
            ("globex", GLOBEX.to_string()),
        ],
        trusted_cas: vec![up.ca_file()],
        ..on(pg)
    })
    .await;
    let partner = |claims: Value| {
        let k = key.lock().unwrap();
        let mut c = json!({ "iss": "https://partner.example", "aud": server.url("/acme") });
        for (n, v) in claims.as_object().unwrap() {
            c[n] = v.clone();
        }
        sign_es256(&k.0, k.1["kid"].as_str().unwrap(), c)
    };
    let go = |token: String| {
        let server = &server;
        async move {
            exchange(
                server,
                "acme-lonely",
                &[("subject_token", &token), ("subject_token_type", JWT)],
            )
            .await
        }
    };
    let r = go(partner(json!({ "sub": "p-1" }))).await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let c = claims_of(t["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], "partner:p-1");
    assert_eq!(c["idp"], "https://partner.example");
    // acme-lonely may impersonate: without an actor token, the token is the partner user's.
    assert!(c.get("act").is_none(), "{c}");
    // RFC 8693 §4.4: may_act names who may act; acme-lonely is not that party.
    let r = go(partner(
        json!({ "sub": "p-1", "may_act": { "sub": "someone-else" } }),
    ))
    .await;
    let d = assert_oauth_error(r, 400, "invalid_grant").await;
    assert!(d.contains("may_act"), "{d}");
    let r = go(partner(
        json!({ "sub": "p-1", "may_act": { "sub": "acme-lonely" } }),
    ))
    .await;
    assert_eq!(r.status(), 200);
    // The partner's token lived too long for this issuer's max_token_age (600 s).
    let now = SystemClock.now();
    let r = go(partner(json!({ "sub": "p-1", "iat": now - 700 }))).await;
    assert_oauth_error(r, 400, "invalid_grant").await;
    // The partner rotates its key: the unknown kid refetches the set once.
    let fetches = server.state().documents.fetch_count();
    *key.lock().unwrap() = dpop_key_pair();
    let r = go(partner(json!({ "sub": "p-2" }))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(server.state().documents.fetch_count(), fetches + 1);
    // An assertion of the partner for the JWT bearer grant (acme-lonely is no workload: the
    // issuer's own subject template applies).
    let a = partner(json!({ "sub": "p-3", "aud": server.url("/acme/connect/token") }));
    let r = post(
        &server,
        Some(("acme-lonely", "acme-gateway-secret")),
        &[("grant_type", JWT_BEARER), ("assertion", a.as_str())],
    )
    .await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(
        claims_of(t["access_token"].as_str().unwrap())["sub"],
        "partner:p-3"
    );
    server.stop().await;
}

/// An ES256 key for jsonwebtoken and its public JWK (with a kid).
fn dpop_key_pair() -> (jsonwebtoken::EncodingKey, Value) {
    let der = portcullis::keys::signer::generate_pkcs8(portcullis::keys::Alg::ES256, 2048).unwrap();
    let signer = portcullis::keys::Signer::from_pkcs8(portcullis::keys::Alg::ES256, &der).unwrap();
    (
        jsonwebtoken::EncodingKey::from_ec_der(&der),
        signer.public_jwk(),
    )
}

on_both_engines!(exchanged_tokens_are_bound_to_the_dpop_key_or_certificate_presented);
async fn exchanged_tokens_are_bound_to_the_dpop_key_or_certificate_presented(pg: bool) {
    let server = TestServer::start_with(Options {
        tenants: vec![(
            "acme",
            ACME.replace(
                "token_exchange = { modes = [\"delegation\"]",
                "tls_client_certificate_bound_access_tokens = true\ntoken_exchange = { modes = [\"delegation\"]",
            ),
        )],
        ..on(pg)
    })
    .await;
    let cc = server
        .token_json(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[("grant_type", "client_credentials"), ("scope", "api.read")],
        )
        .await;
    let subject = cc["access_token"].as_str().unwrap();
    // DPoP (RFC 9449 §5): the proof at the exchange binds the new token.
    let k = crate::dpop::key();
    let proof = crate::dpop::proof(&k, "POST", &server.url("/acme/connect/token"), json!({}));
    let r = server
        .http
        .post(server.url("/acme/connect/token"))
        .basic_auth("acme-gateway", Some("acme-gateway-secret"))
        .header("DPoP", proof)
        .form(&[
            ("grant_type", EXCHANGE),
            ("subject_token", subject),
            ("subject_token_type", ACCESS),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "DPoP");
    let c = claims_of(t["access_token"].as_str().unwrap());
    assert!(c["cnf"]["jkt"].is_string(), "{c}");
    // RFC 8705 §3: over the mTLS listener with a certificate, bound to it.
    let identity = format!(
        "{}{}",
        std::fs::read_to_string(server.path("certs/demo-client.pem")).unwrap(),
        std::fs::read_to_string(server.path("certs/demo-client-key.pem")).unwrap()
    );
    let http = client_for(
        &server.path("certs/ca.pem"),
        &[("localhost", server.mtls_addr)],
        Some(&identity),
    );
    let r = http
        .post(format!("{}/acme/connect/token", server.mtls_base))
        .basic_auth("acme-gateway", Some("acme-gateway-secret"))
        .form(&[
            ("grant_type", EXCHANGE),
            ("subject_token", subject),
            ("subject_token_type", ACCESS),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let c = claims_of(t["access_token"].as_str().unwrap());
    assert!(c["cnf"]["x5t#S256"].is_string(), "{c}");
    server.stop().await;
}

on_both_engines!(
    bob_brokered_through_globex_exchanges_his_token_and_so_does_a_globex_id_token_issued_to_acme
);
async fn bob_brokered_through_globex_exchanges_his_token_and_so_does_a_globex_id_token_issued_to_acme(
    pg: bool,
) {
    use crate::federation::{back_at_acme, bob_at_globex, to_upstream, tokens_for};
    let server = TestServer::start_with(on(pg)).await;
    let b = Browser::new(&server);
    let up = to_upstream(&server, &b, &[("acr_values", "idp:globex")]).await;
    let callback = bob_at_globex(&b, &up).await;
    let back = back_at_acme(&b, &callback).await;
    let t = tokens_for(&server, &back["code"]).await;
    let bob = claims_of(t["id_token"].as_str().unwrap())["sub"]
        .as_str()
        .unwrap()
        .to_string();
    let x = exchanged(
        &server,
        "acme-gateway",
        &[
            ("subject_token", t["access_token"].as_str().unwrap()),
            ("subject_token_type", ACCESS),
            ("resource", ORDERS),
        ],
    )
    .await;
    let c = claims_of(x["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], bob);
    assert_eq!(c["idp"], "globex");
    // A globex id token issued to acme's broker registration (acme-broker) stands for the acme
    // user it is linked to: bob, the same local user.
    let b2 = Browser::new(&server);
    let ch = crate::interactive::challenge(VERIFIER);
    let r = b2
        .get(&format!(
            "{}?client_id=acme-broker&response_type=code&scope=openid%20email&state=x&nonce=n\
             &code_challenge={ch}&code_challenge_method=S256&redirect_uri={}",
            server.url("/globex/connect/authorize"),
            urlencode(&server.url("/acme/federation/globex/callback"))
        ))
        .await;
    assert_eq!(r.status(), 303);
    let login = crate::interactive::location(&r);
    let r = crate::interactive::submit_login(&b2, &login, "bob", "bob-password").await;
    let mut next = crate::interactive::location(&r);
    if next.contains("/globex/account/consent") {
        let r = crate::interactive::submit_consent(&b2, &next, "allow", false).await;
        next = crate::interactive::location(&r);
    }
    let code = crate::interactive::params(&next)["code"].clone();
    let r = server
        .http
        .post(server.url("/globex/connect/token"))
        .basic_auth("acme-broker", Some("acme-broker-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            (
                "redirect_uri",
                &server.url("/acme/federation/globex/callback"),
            ),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let globex: Value = r.json().await.unwrap();
    let x = exchanged(
        &server,
        "acme-gateway",
        &[
            ("subject_token", globex["id_token"].as_str().unwrap()),
            ("subject_token_type", ID_TOKEN),
        ],
    )
    .await;
    let c = verified(
        &server.jwks("acme").await,
        &server,
        x["access_token"].as_str().unwrap(),
        "https://api.acme.test",
    );
    assert_eq!(c["sub"], bob);
    assert_eq!(c["idp"], "globex");
    // globex's access token is for globex's APIs, not for acme: refused.
    let r = exchange(
        &server,
        "acme-gateway",
        &[
            ("subject_token", globex["access_token"].as_str().unwrap()),
            ("subject_token_type", ACCESS),
        ],
    )
    .await;
    assert_oauth_error(r, 400, "invalid_grant").await;
    server.stop().await;
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

on_both_engines!(
    the_password_grant_is_off_by_default_and_where_allowed_never_gets_past_a_second_factor
);
async fn the_password_grant_is_off_by_default_and_where_allowed_never_gets_past_a_second_factor(
    pg: bool,
) {
    // Off by default: a client cannot even be given it.
    let problems = portcullis::config::tenant::resolve(
        std::path::Path::new("acme.toml"),
        &ACME.replace(
            "grant_types = [\"client_credentials\"]\nscopes = [\"api.read\", \"api.write\"]",
            "grant_types = [\"client_credentials\", \"password\"]\nscopes = [\"api.read\", \"api.write\"]",
        ),
        &portcullis::config::tenant::TenantDefaults {
            public_base_url: DEMO_BASE,
            mtls_base_url: DEMO_BASE,
            files: &portcullis::config::FileRoots::new(
                std::env::temp_dir(),
                vec![std::env::temp_dir()],
                Vec::new(),
            ),
        },
    )
    .unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.key.contains("grant_types") && p.message.contains("RFC 9700")),
        "{problems:?}"
    );
    let (server, _up) = start_plus(pg).await;
    let discovery = server
        .get_json("/acme/.well-known/openid-configuration")
        .await
        .1;
    assert!(
        discovery["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("password"))
    );
    let plain = server
        .get_json("/globex/.well-known/openid-configuration")
        .await
        .1;
    assert!(
        !plain["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("password"))
    );
    let password = |user: &'static str, pw: &'static str| {
        let server = &server;
        async move {
            post(
                server,
                Some(("acme-legacy", "acme-gateway-secret")),
                &[
                    ("grant_type", "password"),
                    ("username", user),
                    ("password", pw),
                    ("scope", "openid api.read offline_access"),
                ],
            )
            .await
        }
    };
    let r = password("alice", "alice-password").await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert!(t["refresh_token"].is_string() && t["id_token"].is_string());
    let c = claims_of(t["access_token"].as_str().unwrap());
    assert_eq!(c["amr"], json!(["pwd"]));
    assert_eq!(c["idp"], "local");
    // carol has a second factor: her right password alone gets nothing.
    let r = password("carol", "carol-password").await;
    let d = assert_oauth_error(r, 400, "invalid_grant").await;
    assert!(d.contains("second factor"), "{d}");
    // Wrong passwords count as at the login page, and lock the account.
    for _ in 0..5 {
        let r = password("alice", "wrong").await;
        assert_oauth_error(r, 400, "invalid_grant").await;
    }
    let r = password("alice", "alice-password").await;
    let d = assert_oauth_error(r, 400, "invalid_grant").await;
    assert!(d.contains("too many"), "{d}");
    // A client without the grant.
    let r = post(
        &server,
        Some(("acme-gateway", "acme-gateway-secret")),
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "alice-password"),
        ],
    )
    .await;
    assert_oauth_error(r, 400, "unauthorized_client").await;
    server.stop().await;
}

on_both_engines!(a_webhook_decides_the_tenants_own_grant_and_its_failures_issue_nothing);
async fn a_webhook_decides_the_tenants_own_grant_and_its_failures_issue_nothing(pg: bool) {
    use axum::http::HeaderMap;
    let up = Upstreams::new();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Value)>();
    let base = up
        .serve(
            axum::Router::new()
                .route(
                    "/jwks",
                    axum::routing::get(|| async { axum::Json(json!({ "keys": [] })) }),
                )
                .route(
                    "/badge",
                    axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                        let seen = seen_tx.clone();
                        async move {
                            let auth = headers["authorization"].to_str().unwrap().to_string();
                            let v: Value = serde_json::from_slice(&body).unwrap();
                            seen.send((auth, v.clone())).unwrap();
                            match v["parameters"]["badge"].as_str() {
                                Some("valid") => axum::Json(json!({
                                    "subject": "badge-7", "scope": "api.read",
                                    "claims": { "department": "logistics" }
                                })),
                                Some("slow") => {
                                    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                                    axum::Json(json!({ "subject": "late" }))
                                }
                                Some("sneaky") => axum::Json(json!({
                                    "subject": "badge-7", "claims": { "sub": "admin" }
                                })),
                                Some("wide") => axum::Json(json!({
                                    "subject": "badge-7", "scope": "api.read portcullis.admin"
                                })),
                                _ => axum::Json(json!({
                                    "error": "invalid_grant", "error_description": "unknown badge"
                                })),
                            }
                        }
                    }),
                )
                .route(
                    "/broken",
                    axum::routing::post(|| async { "<html>oops</html>" }),
                ),
        )
        .await;
    let server = TestServer::start_with(Options {
        tenants: vec![
            ("acme", acme_plus(&format!("{base}/jwks"), &base)),
            ("globex", GLOBEX.to_string()),
        ],
        trusted_cas: vec![up.ca_file()],
        ..on(pg)
    })
    .await;
    let badge = |grant: &'static str, value: &'static str| {
        let server = &server;
        async move {
            post(
                server,
                None,
                &[
                    ("grant_type", grant),
                    ("client_id", "acme-badge"),
                    ("client_secret", "acme-gateway-secret"),
                    ("badge", value),
                ],
            )
            .await
        }
    };
    let r = badge("urn:acme:grant-type:badge", "valid").await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let c = verified(
        &server.jwks("acme").await,
        &server,
        t["access_token"].as_str().unwrap(),
        "https://api.acme.test",
    );
    assert_eq!(c["sub"], "badge-7");
    assert_eq!(c["department"], "logistics");
    assert_eq!(c["scope"], "api.read");
    // The webhook saw the request's parameters but not the client's secret, with a JWT of
    // acme for its URL that names the body's hash.
    let (auth, body) = seen_rx.recv().await.unwrap();
    assert_eq!(body["parameters"]["badge"], "valid");
    assert!(body["parameters"].get("client_secret").is_none(), "{body}");
    assert_eq!(body["client_id"], "acme-badge");
    let jwt = auth.strip_prefix("Bearer ").unwrap();
    let claims = verify_jwt(
        jwt,
        &server.jwks("acme").await,
        &server.url("/acme"),
        &format!("{base}/badge"),
    );
    assert_eq!(claims["grant_type"], "urn:acme:grant-type:badge");
    // A refusal passes through; a slow, broken, sneaky or widening webhook issues nothing.
    let r = badge("urn:acme:grant-type:badge", "forged").await;
    let d = assert_oauth_error(r, 400, "invalid_grant").await;
    assert_eq!(d, "unknown badge");
    for value in ["slow", "sneaky", "wide"] {
        let r = badge("urn:acme:grant-type:badge", value).await;
        assert_oauth_error(r, 503, "temporarily_unavailable").await;
    }
    let r = badge("urn:acme:grant-type:broken", "valid").await;
    assert_oauth_error(r, 503, "temporarily_unavailable").await;
    // An unknown grant type, and a webhook grant of a client that may not use it.
    let r = badge("urn:acme:grant-type:unknown", "valid").await;
    assert_oauth_error(r, 400, "unsupported_grant_type").await;
    let r = post(
        &server,
        Some(("acme-gateway", "acme-gateway-secret")),
        &[
            ("grant_type", "urn:acme:grant-type:badge"),
            ("badge", "valid"),
        ],
    )
    .await;
    assert_oauth_error(r, 400, "unauthorized_client").await;
    server.stop().await;
}
