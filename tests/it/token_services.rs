//! Introspection (RFC 7662) and revocation (RFC 7009).

use crate::interactive::{Browser, VERIFIER, alice_signs_in, redeem};
use crate::support::*;
use portcullis::clock::{Clock, FixedClock, SystemClock};
use serde_json::Value;

const API: &str = "https://api.acme.test";
/// RFC 6749 §2.3.1: the Basic user name is form-encoded (a URI contains ':').
const API_USER: &str = "https%3A%2F%2Fapi.acme.test";

async fn introspect(
    server: &TestServer,
    tenant: &str,
    user: &str,
    secret: &str,
    token: &str,
) -> reqwest::Response {
    server
        .http
        .post(server.url(&format!("/{tenant}/connect/introspect")))
        .basic_auth(user, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

async fn active(server: &TestServer, tenant: &str, user: &str, secret: &str, token: &str) -> Value {
    let r = introspect(server, tenant, user, secret, token).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

async fn revoke(server: &TestServer, client: &str, secret: &str, token: &str) -> reqwest::Response {
    server
        .http
        .post(server.url("/acme/connect/revocation"))
        .basic_auth(client, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_api_learns_about_tokens_for_its_audience_and_nothing_else() {
    let server = TestServer::start_with(with_twin(ACME.into())).await;
    let t = server
        .token_json(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[("grant_type", "client_credentials"), ("scope", "api.read")],
        )
        .await;
    let at = t["access_token"].as_str().unwrap();
    let info = active(&server, "acme", API_USER, "acme-api-secret", at).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["client_id"], "acme-m2m");
    assert_eq!(info["scope"], "api.read");
    assert_eq!(info["aud"], API);
    assert_eq!(info["token_type"], "Bearer");
    assert_eq!(info["iss"], server.url("/acme"));
    assert!(info["exp"].is_i64() && info["iat"].is_i64());
    // A wrong API secret is a failed authentication.
    let r = introspect(&server, "acme", API_USER, "wrong", at).await;
    assert_oauth_error(r, 401, "invalid_client").await;
    // The client the token belongs to may ask too; another client learns nothing.
    assert_eq!(
        active(&server, "acme", "acme-m2m", "acme-m2m-secret", at).await["active"],
        true
    );
    assert_eq!(
        active(&server, "acme", "acme-web", "acme-web-secret", at).await,
        serde_json::json!({"active": false})
    );
    // Public clients do not introspect.
    let r = server
        .http
        .post(server.url("/acme/connect/introspect"))
        .form(&[("token", at), ("client_id", "acme-spa")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(r, 401, "invalid_client").await;
    // Garbage, and a token of another tenant, are simply inactive. The twin's token has the
    // same client, scope and audience (https://api.acme.test): only its issuer differs.
    assert_eq!(
        active(&server, "acme", API_USER, "acme-api-secret", "not-a-token").await["active"],
        false
    );
    let g = server
        .token_json(
            "twin",
            "acme-m2m",
            "acme-m2m-secret",
            &[("grant_type", "client_credentials"), ("scope", "api.read")],
        )
        .await;
    let foreign = g["access_token"].as_str().unwrap();
    assert_eq!(
        active(&server, "twin", API_USER, "acme-api-secret", foreign).await["active"],
        true,
        "active at its own tenant"
    );
    assert_eq!(
        active(&server, "acme", API_USER, "acme-api-secret", foreign).await,
        serde_json::json!({"active": false})
    );
    server.stop().await;
}

#[tokio::test]
async fn expired_and_revoked_reference_tokens_are_inactive() {
    let clock = FixedClock::new(SystemClock.now());
    let acme = ACME.replace(
        "client_id = \"acme-m2m\"",
        "client_id = \"acme-m2m\"\naccess_token_format = \"reference\"",
    );
    let server = TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.into())],
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    let grant = [("grant_type", "client_credentials"), ("scope", "api.read")];
    let t = server
        .token_json("acme", "acme-m2m", "acme-m2m-secret", &grant)
        .await;
    let at = t["access_token"].as_str().unwrap().to_string();
    assert!(!at.contains('.'), "a reference token is an opaque handle");
    assert_eq!(
        active(&server, "acme", API_USER, "acme-api-secret", &at).await["active"],
        true
    );
    // Another client may not revoke it.
    let r = revoke(&server, "acme-web", "acme-web-secret", &at).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
    assert_eq!(
        revoke(&server, "acme-m2m", "acme-m2m-secret", &at)
            .await
            .status(),
        200
    );
    assert_eq!(
        active(&server, "acme", API_USER, "acme-api-secret", &at).await["active"],
        false
    );
    // Unknown tokens: 200 (RFC 7009 §2.2).
    assert_eq!(
        revoke(&server, "acme-m2m", "acme-m2m-secret", "unknown")
            .await
            .status(),
        200
    );
    let t = server
        .token_json("acme", "acme-m2m", "acme-m2m-secret", &grant)
        .await;
    clock.advance(3601);
    assert_eq!(
        active(
            &server,
            "acme",
            API_USER,
            "acme-api-secret",
            t["access_token"].as_str().unwrap()
        )
        .await["active"],
        false
    );
    server.stop().await;
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_family_and_the_access_tokens_issued_with_it() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let back = alice_signs_in(&server, &b, "s").await;
    let t: Value = redeem(&server, &back["code"], VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    let rt = t["refresh_token"].as_str().unwrap();
    let at = t["access_token"].as_str().unwrap();
    let info = active(&server, "acme", "acme-web", "acme-web-secret", rt).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["token_type"], "refresh_token");
    assert_eq!(info["sub"], "alice");
    let info = active(&server, "acme", API_USER, "acme-api-secret", at).await;
    assert_eq!(info["sub"], "alice");
    assert!(info["sid"].is_string());
    // The API never sees refresh tokens.
    assert_eq!(
        active(&server, "acme", API_USER, "acme-api-secret", rt).await["active"],
        false
    );
    assert_eq!(
        revoke(&server, "acme-web", "acme-web-secret", rt)
            .await
            .status(),
        200
    );
    assert_eq!(
        active(&server, "acme", "acme-web", "acme-web-secret", rt).await["active"],
        false
    );
    assert_eq!(
        active(&server, "acme", API_USER, "acme-api-secret", at).await["active"],
        false,
        "the family is revoked"
    );
    let r = server
        .http
        .get(server.url("/acme/connect/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_bearer_error(&r, 401, "invalid_token");
    server.stop().await;
}

#[tokio::test]
async fn a_jwt_access_token_issued_for_a_user_can_be_revoked_alone() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let back = alice_signs_in(&server, &b, "s").await;
    let t: Value = redeem(&server, &back["code"], VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    let at = t["access_token"].as_str().unwrap();
    assert_eq!(
        revoke(&server, "acme-web", "acme-web-secret", at)
            .await
            .status(),
        200
    );
    assert_eq!(
        active(&server, "acme", API_USER, "acme-api-secret", at).await["active"],
        false
    );
    // The refresh token still works: only the access token was revoked.
    let r = server
        .http
        .post(server.url("/acme/connect/token"))
        .basic_auth("acme-web", Some("acme-web-secret"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn a_revocation_on_one_node_clears_the_cached_token_on_the_other_through_postgresql() {
    if postgres_url().is_none() {
        eprintln!("PORTCULLIS_TEST_POSTGRES_URL is not set: PostgreSQL part skipped");
        return;
    }
    use base64::Engine;
    let schema = unique_schema();
    let keys = format!(
        "master_key = \"{}\"",
        base64::engine::general_purpose::STANDARD.encode([9u8; 32])
    );
    let acme = ACME.replace(
        "client_id = \"acme-m2m\"",
        "client_id = \"acme-m2m\"\naccess_token_format = \"reference\"",
    );
    let node = |acme: String| Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.into())],
        postgres: true,
        postgres_schema: Some(schema.clone()),
        keys: keys.clone(),
        ..Default::default()
    };
    let a = TestServer::start_with(node(acme.clone())).await;
    // One deployment, one issuer: node b names node a's URL as acme's issuer (each node would
    // otherwise store its own URL as the tenant's issuer, and the tokens of one would not be
    // the other's).
    let b = TestServer::start_with(node(acme.replace(
        "slug = \"acme\"",
        &format!("slug = \"acme\"\nissuer = \"{}\"", a.url("/acme")),
    )))
    .await;
    let t = a
        .token_json(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[("grant_type", "client_credentials")],
        )
        .await;
    let at = t["access_token"].as_str().unwrap();
    // Node B looks it up (and now holds it in its cache).
    assert_eq!(
        active(&b, "acme", API_USER, "acme-api-secret", at).await["active"],
        true
    );
    assert_eq!(
        revoke(&a, "acme-m2m", "acme-m2m-secret", at).await.status(),
        200
    );
    let mut gone = false;
    for _ in 0..50 {
        if active(&b, "acme", API_USER, "acme-api-secret", at).await["active"] == false {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        gone,
        "node B still answers active for a token revoked on node A"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn an_api_may_authenticate_with_a_signed_assertion_instead_of_a_secret() {
    use portcullis::keys::{Alg, Signer, signer::generate_pkcs8};
    let key = Signer::from_pkcs8(Alg::ES256, &generate_pkcs8(Alg::ES256, 2048).unwrap()).unwrap();
    let jwk: Vec<String> = key
        .public_jwk()
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    let acme = ACME.replacen(
        "# DEMO ONLY: the API's secret",
        &format!(
            "jwks = {{ keys = [{{ {} }}] }}\n# DEMO ONLY: the API's secret",
            jwk.join(", ")
        ),
        1,
    );
    let server = TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.into())],
        ..Default::default()
    })
    .await;
    let t = server
        .token_json(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[("grant_type", "client_credentials")],
        )
        .await;
    let now = SystemClock.now();
    let assertion = |jti: &str| {
        key.sign_jwt(
            "JWT",
            &serde_json::json!({"iss": API, "sub": API, "aud": server.url("/acme"), "exp": now + 60, "jti": jti}),
        )
        .unwrap()
    };
    let ask = |a: String| {
        let server = &server;
        let token = t["access_token"].as_str().unwrap().to_string();
        async move {
            server
                .http
                .post(server.url("/acme/connect/introspect"))
                .form(&[
                    ("token", token.as_str()),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", a.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let r = ask(assertion("api-1")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["active"], true);
    // Single use.
    assert_oauth_error(ask(assertion("api-1")).await, 401, "invalid_client").await;
    server.stop().await;
}
