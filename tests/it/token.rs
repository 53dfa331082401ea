use crate::support::*;
use portcullis::stores::GrantStore;
use serde_json::Value;

#[tokio::test]
async fn client_credentials_issues_an_es256_at_jwt_that_verifies_against_the_jwks() {
    let s = TestServer::start().await;
    let r = s
        .token(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[("grant_type", "client_credentials"), ("scope", "api.read")],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "api.read");
    let token = body["access_token"].as_str().unwrap();
    let header = jwt_header(token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let claims = verify_jwt(
        token,
        &s.jwks("acme").await,
        &s.url("/acme"),
        "https://api.acme.test",
    );
    assert_eq!(claims["sub"], "acme-m2m");
    assert_eq!(claims["client_id"], "acme-m2m");
    assert_eq!(claims["scope"], "api.read");
    assert!(claims["jti"].as_str().unwrap().len() >= 16);
    assert_eq!(claims["nbf"], claims["iat"]);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    s.stop().await;
}

#[tokio::test]
async fn client_secret_post_works_and_no_scope_means_every_allowed_api_scope() {
    let s = TestServer::start().await;
    let r = s
        .http
        .post(s.url("/acme/connect/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "acme-m2m"),
            ("client_secret", "acme-m2m-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["scope"], "api.read api.write");
    s.stop().await;
}

#[tokio::test]
async fn the_access_token_algorithm_follows_the_tenant_setting() {
    let acme = ACME.replace(
        "access_token_algorithm = \"ES256\"",
        "access_token_algorithm = \"RS256\"",
    );
    let s = TestServer::start_with(Options {
        tenants: vec![("acme", acme)],
        ..Default::default()
    })
    .await;
    let body: Value = s
        .token_json(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[("grant_type", "client_credentials")],
        )
        .await;
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_header(token)["alg"], "RS256");
    verify_jwt(
        token,
        &s.jwks("acme").await,
        &s.url("/acme"),
        "https://api.acme.test",
    );
    s.stop().await;
}

#[tokio::test]
async fn a_reference_token_client_gets_an_opaque_handle_stored_only_as_a_hash() {
    let acme = ACME.replacen(
        "grant_types = [\"client_credentials\"]\n",
        "grant_types = [\"client_credentials\"]\naccess_token_format = \"reference\"\n",
        1,
    );
    let s = TestServer::start_with(Options {
        tenants: vec![("acme", acme)],
        ..Default::default()
    })
    .await;
    let body: Value = s
        .token_json(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[("grant_type", "client_credentials"), ("scope", "api.read")],
        )
        .await;
    let handle = body["access_token"].as_str().unwrap();
    assert_eq!(handle.split('.').count(), 1, "not a JWT");
    let store = &s.state().store;
    assert!(
        store.find_grant("acme", handle).await.unwrap().is_none(),
        "the handle itself is not stored"
    );
    let g = store
        .find_grant("acme", &portcullis::tokens::handle_hash(handle))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(g.kind, portcullis::stores::GrantKind::ReferenceToken);
    assert_eq!(g.client_id, "acme-m2m");
    assert!(
        store
            .find_grant("globex", &portcullis::tokens::handle_hash(handle))
            .await
            .unwrap()
            .is_none()
    );
    s.stop().await;
}

#[tokio::test]
async fn a_resource_indicator_restricts_the_audience_and_unknown_resources_are_invalid_target() {
    let s = TestServer::start().await;
    let body: Value = s
        .token_json(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://api.acme.test"),
            ],
        )
        .await;
    let claims = verify_jwt(
        body["access_token"].as_str().unwrap(),
        &s.jwks("acme").await,
        &s.url("/acme"),
        "https://api.acme.test",
    );
    assert_eq!(claims["aud"], "https://api.acme.test");
    let r = s
        .token(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://api.globex.test"),
            ],
        )
        .await;
    assert_error(r, 400, "invalid_target").await;
    s.stop().await;
}

async fn assert_error(
    r: reqwest::Response,
    status: u16,
    error: &str,
) -> reqwest::header::HeaderMap {
    assert_eq!(r.status().as_u16(), status, "expected {status} {error}");
    let headers = r.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string());
    headers
}

#[tokio::test]
async fn a_get_on_a_post_only_endpoint_is_405_naming_that_endpoint() {
    let s = TestServer::start().await;
    for (path, name) in [
        ("/acme/connect/token", "the token endpoint"),
        (
            "/acme/connect/par",
            "the pushed authorization request endpoint",
        ),
        ("/acme/connect/introspect", "the introspection endpoint"),
        ("/acme/connect/revocation", "the revocation endpoint"),
        (
            "/acme/federation/globex/backchannel-logout",
            "the back-channel logout endpoint",
        ),
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 405, "{path}");
        assert_eq!(r.headers()["allow"], "POST", "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{path}");
        assert_eq!(
            body["error_description"],
            format!("{name} accepts only POST"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn every_bad_token_request_gets_its_exact_error() {
    let s = TestServer::start().await;
    let cc = [("grant_type", "client_credentials")];

    // Unknown tenant
    let r = s.token("nobody", "acme-m2m", "acme-m2m-secret", &cc).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "not_found");

    // Unknown client, wrong secret, another tenant's client: 401 invalid_client with a challenge
    for (tenant, client, secret) in [
        ("acme", "nobody", "x"),
        ("acme", "acme-m2m", "wrong"),
        ("acme", "globex-m2m", "globex-m2m-secret"),
    ] {
        let h = assert_error(
            s.token(tenant, client, secret, &cc).await,
            401,
            "invalid_client",
        )
        .await;
        assert!(h["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    }

    // Secret sent both ways: RFC 6749 §2.3 one method only
    let r = s
        .http
        .post(s.url("/acme/connect/token"))
        .basic_auth("acme-m2m", Some("acme-m2m-secret"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "acme-m2m"),
            ("client_secret", "acme-m2m-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "invalid_client").await;

    // No client authentication at all
    let r = s
        .http
        .post(s.url("/acme/connect/token"))
        .form(&cc)
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "invalid_client").await;

    // Missing and unsupported grant types
    assert_error(
        s.token(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[("scope", "api.read")],
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    assert_error(
        s.token(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[("grant_type", "password")],
        )
        .await,
        400,
        "unsupported_grant_type",
    )
    .await;

    // Scopes the client may not have, identity scopes, malformed scope
    for scope in ["api.admin", "openid", "api.read \"x"] {
        let r = s
            .token(
                "acme",
                "acme-m2m",
                "acme-m2m-secret",
                &[("grant_type", "client_credentials"), ("scope", scope)],
            )
            .await;
        assert_error(r, 400, "invalid_scope").await;
    }
    // globex-m2m may read but not write at globex
    let r = s
        .token(
            "globex",
            "globex-m2m",
            "globex-m2m-secret",
            &[("grant_type", "client_credentials"), ("scope", "api.write")],
        )
        .await;
    assert_error(r, 400, "invalid_scope").await;

    // Duplicated parameters
    let r = s
        .http
        .post(s.url("/acme/connect/token"))
        .basic_auth("acme-m2m", Some("acme-m2m-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=api.read&scope=api.write")
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "invalid_request").await;

    // Not a form
    let r = s
        .http
        .post(s.url("/acme/connect/token"))
        .basic_auth("acme-m2m", Some("acme-m2m-secret"))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "invalid_request").await;

    // Oversized body
    let big = format!("grant_type=client_credentials&pad={}", "a".repeat(70_000));
    let r = s
        .http
        .post(s.url("/acme/connect/token"))
        .basic_auth("acme-m2m", Some("acme-m2m-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_error(r, 413, "invalid_request").await;

    // GET on the token endpoint
    let r = s
        .http
        .get(s.url("/acme/connect/token"))
        .send()
        .await
        .unwrap();
    let h = assert_error(r, 405, "invalid_request").await;
    assert_eq!(h["allow"], "POST");

    // Malformed Basic credentials
    let r = s
        .http
        .post(s.url("/acme/connect/token"))
        .header("authorization", "Basic !!!not-base64")
        .form(&cc)
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "invalid_client").await;

    // None of this issued a token.
    let metrics = get_text(&s.http, &s.url("/metrics")).await;
    assert!(
        metrics.contains(
            "portcullis_tokens_issued_total{tenant=\"acme\",grant_type=\"client_credentials\"} 0"
        ),
        "{metrics}"
    );
    s.stop().await;
}

#[tokio::test]
async fn metrics_count_tokens_and_requests_by_tenant_and_endpoint() {
    let s = TestServer::start().await;
    for _ in 0..2 {
        assert_eq!(
            s.token(
                "acme",
                "acme-m2m",
                "acme-m2m-secret",
                &[("grant_type", "client_credentials")]
            )
            .await
            .status(),
            200
        );
    }
    let _ = s
        .token(
            "globex",
            "globex-m2m",
            "wrong",
            &[("grant_type", "client_credentials")],
        )
        .await;
    let m = get_text(&s.http, &s.url("/metrics")).await;
    assert!(
        m.contains(
            "portcullis_tokens_issued_total{tenant=\"acme\",grant_type=\"client_credentials\"} 2"
        ),
        "{m}"
    );
    assert!(
        m.contains("portcullis_requests_total{tenant=\"acme\",endpoint=\"token\"} 2"),
        "{m}"
    );
    assert!(
        m.contains(
            "portcullis_request_errors_total{tenant=\"globex\",endpoint=\"token\",class=\"4xx\"} 1"
        ),
        "{m}"
    );
    assert!(m.contains("portcullis_request_duration_seconds_bucket{tenant=\"acme\",endpoint=\"token\",le=\"+Inf\"} 2"), "{m}");
    s.stop().await;
}

#[tokio::test]
async fn a_resource_that_requires_an_indicator_gets_tokens_only_when_named() {
    // RFC 8707 resource isolation: api.write belongs to an API that insists on `resource=`.
    let acme = ACME.replace(
        "scopes = [\"api.read\", \"api.write\"]\n# DEMO ONLY: the API's secret",
        "scopes = [\"api.read\"]\n# DEMO ONLY: the API's secret",
    ) + "\n[[api_resources]]\nname = \"https://admin.acme.test\"\nscopes = [\"api.write\"]\nrequire_resource_indicator = true\n";
    assert!(
        acme.contains("scopes = [\"api.read\"]\n# DEMO"),
        "the demo tenant changed"
    );
    let s = TestServer::start_with(Options {
        tenants: vec![("acme", acme)],
        ..Default::default()
    })
    .await;
    let secret = ("acme-m2m", "acme-m2m-secret");

    // Without a resource indicator the isolated API's scope is not granted, and its audience is absent.
    let body = s
        .token_json(
            "acme",
            secret.0,
            secret.1,
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(body["scope"], "api.read");
    let claims = verify_jwt(
        body["access_token"].as_str().unwrap(),
        &s.jwks("acme").await,
        &s.url("/acme"),
        "https://api.acme.test",
    );
    assert_eq!(claims["aud"], "https://api.acme.test");
    let r = s
        .token(
            "acme",
            secret.0,
            secret.1,
            &[("grant_type", "client_credentials"), ("scope", "api.write")],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_scope");

    // Named, it gets a token for exactly that audience with exactly its scope.
    let body = s
        .token_json(
            "acme",
            secret.0,
            secret.1,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://admin.acme.test"),
            ],
        )
        .await;
    assert_eq!(body["scope"], "api.write");
    let claims = verify_jwt(
        body["access_token"].as_str().unwrap(),
        &s.jwks("acme").await,
        &s.url("/acme"),
        "https://admin.acme.test",
    );
    assert_eq!(claims["aud"], "https://admin.acme.test");
    s.stop().await;
}
