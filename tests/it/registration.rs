//! Clients that register themselves (RFC 7591), are managed with their registration access
//! token (RFC 7592), are named by a metadata document, or are kept by the admin API — and the
//! attacker's side of each: closed tenants, used tokens, other tenants' tokens, bad metadata,
//! forged software statements, documents that lie about themselves.

use crate::federation::admin_token;
use crate::interactive::{
    Browser, VERIFIER, challenge, location, params, submit_consent, submit_login,
};
use crate::support::*;
use portcullis::clock::{Clock, SystemClock};
use portcullis::stores::{GrantStore, RuntimeClientStore};
use serde_json::{Value, json};

const CB: &str = "http://127.0.0.1:9000/callback";

async fn initial_token(server: &TestServer, tenant: &str, uses: u32) -> String {
    portcullis::clients::initial_tokens::issue(
        &server.state().store,
        tenant,
        uses,
        3600,
        SystemClock.now(),
    )
    .await
    .unwrap()
    .token
}

async fn register(
    server: &TestServer,
    tenant: &str,
    token: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut r = server
        .http
        .post(server.url(&format!("/{tenant}/connect/register")))
        .json(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

fn web_client() -> Value {
    json!({
        "client_name": "Registered Web",
        "redirect_uris": [CB],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "openid profile offline_access",
        "contacts": ["ops@app.example"],
        "software_id": "4NRB1-0XZABZI9E6-5SM3R",
        "software_version": "2.1"
    })
}

/// Alice signs in at `client` (with consent); returns the code.
async fn alice_code(server: &TestServer, client: &str) -> String {
    let b = Browser::new(server);
    let ch = challenge(VERIFIER);
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("client_id", client),
        ("response_type", "code"),
        ("redirect_uri", CB),
        ("scope", "openid profile offline_access"),
        ("state", "s1"),
        ("code_challenge", ch.as_str()),
        ("code_challenge_method", "S256"),
    ] {
        q.append_pair(k, v);
    }
    let r = b
        .get(&server.url(&format!("/acme/connect/authorize?{}", q.finish())))
        .await;
    assert_eq!(r.status(), 303);
    let r = submit_login(&b, &location(&r), "alice", "alice-password").await;
    assert_eq!(r.status(), 303);
    let consent = location(&r);
    assert!(
        consent.contains("/account/consent"),
        "a registered client always asks: {consent}"
    );
    let r = submit_consent(&b, &consent, "allow", false).await;
    let back = params(&location(&r));
    assert_eq!(back["state"], "s1");
    back["code"].clone()
}

async fn token_form(
    server: &TestServer,
    client: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    server
        .http
        .post(server.url("/acme/connect/token"))
        .basic_auth(client, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn a_registered_client_signs_alice_in_and_is_read_updated_and_deleted_with_its_token(
    postgres: bool,
) {
    let server = TestServer::start_with(Options {
        postgres,
        ..Default::default()
    })
    .await;
    // Discovery names the endpoint where registration is possible, and only there.
    let (_, acme) = server
        .get_json("/acme/.well-known/openid-configuration")
        .await;
    assert_eq!(
        acme["registration_endpoint"],
        server.url("/acme/connect/register")
    );
    assert_eq!(acme["client_id_metadata_document_supported"], true);
    let (_, globex) = server
        .get_json("/globex/.well-known/openid-configuration")
        .await;
    assert!(globex.get("registration_endpoint").is_none());

    let iat = initial_token(&server, "acme", 1).await;
    let r = register(&server, "acme", Some(&iat), &web_client()).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let location_header = r.headers()["location"].to_str().unwrap().to_string();
    let reg: Value = r.json().await.unwrap();
    let id = reg["client_id"].as_str().unwrap().to_string();
    let secret = reg["client_secret"].as_str().unwrap().to_string();
    let rat = reg["registration_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(reg["registration_client_uri"], location_header);
    assert_eq!(
        location_header,
        server.url(&format!("/acme/connect/register/{id}"))
    );
    assert_eq!(reg["client_secret_expires_at"], 0);
    assert!(reg["client_id_issued_at"].as_i64().unwrap() > 0);
    assert_eq!(reg["redirect_uris"], json!([CB]));
    assert_eq!(reg["contacts"], json!(["ops@app.example"]));
    assert_eq!(reg["software_id"], "4NRB1-0XZABZI9E6-5SM3R");
    // The secret is stored as its hash only.
    let stored = server
        .state()
        .store
        .runtime_client("acme", &id)
        .await
        .unwrap()
        .unwrap();
    assert!(!serde_json::to_string(&stored).unwrap().contains(&secret));
    assert!(!serde_json::to_string(&stored).unwrap().contains(&rat));

    // The initial access token was good for one registration.
    let r = register(&server, "acme", Some(&iat), &web_client()).await;
    assert_bearer_error(&r, 401, "invalid_token");

    // The new client signs alice in, redeems its code and refreshes.
    let code = alice_code(&server, &id).await;
    let r = token_form(
        &server,
        &id,
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();

    // RFC 7592 §2.1: read with the registration access token; never with another token.
    let manage = |token: &str, m: reqwest::Method| {
        server
            .http
            .request(m, &location_header)
            .bearer_auth(token.to_string())
    };
    let r = manage(&rat, reqwest::Method::GET).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let read: Value = r.json().await.unwrap();
    assert_eq!(read["client_id"], id.as_str());
    assert_eq!(read["client_name"], "Registered Web");
    assert!(
        read.get("client_secret").is_none(),
        "a secret is shown once"
    );
    assert!(read.get("registration_access_token").is_none());
    for wrong in [iat.as_str(), secret.as_str(), "made-up"] {
        let r = manage(wrong, reqwest::Method::GET).send().await.unwrap();
        assert_bearer_error(&r, 401, "invalid_token");
    }
    let r = server.http.get(&location_header).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // RFC 7592 §2.2: an update replaces the metadata and the registration access token.
    let mut update = web_client();
    update["client_id"] = json!(id);
    update["client_name"] = json!("Renamed Web");
    let r = manage(&rat, reqwest::Method::PUT)
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated["client_name"], "Renamed Web");
    assert!(updated.get("client_secret").is_none(), "the secret is kept");
    let rat2 = updated["registration_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(rat2, rat);
    let r = manage(&rat, reqwest::Method::GET).send().await.unwrap();
    assert_bearer_error(&r, 401, "invalid_token");
    // A client_secret sent in an update must be the current one.
    update["client_secret"] = json!("not-the-secret");
    let r = manage(&rat2, reqwest::Method::PUT)
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_oauth_error(r, 400, "invalid_client_metadata").await;
    // The secret still authenticates after the update.
    let r = token_form(
        &server,
        &id,
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let refreshed: Value = r.json().await.unwrap();
    let refresh = refreshed["refresh_token"].as_str().unwrap().to_string();

    // RFC 7592 §2.3: deleted, the client and its tokens stop at once.
    let r = manage(&rat2, reqwest::Method::DELETE).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = token_form(
        &server,
        &id,
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_oauth_error(r, 401, "invalid_client").await;
    let r = manage(&rat2, reqwest::Method::GET).send().await.unwrap();
    assert_bearer_error(&r, 401, "invalid_token");
    let grants_live = server
        .state()
        .store
        .live_grants_of(
            "acme",
            "alice",
            portcullis::stores::GrantKind::RefreshToken,
            SystemClock.now(),
            100,
        )
        .await
        .unwrap()
        .into_iter()
        .filter(|g| g.client_id == id && g.revoked_at.is_none())
        .count();
    assert_eq!(
        grants_live, 0,
        "the deleted client's refresh tokens are revoked"
    );
    server.stop().await;
}
on_both_engines!(a_registered_client_signs_alice_in_and_is_read_updated_and_deleted_with_its_token);

async fn bad_registrations_get_their_rfc_7591_error_and_store_nothing(postgres: bool) {
    let acme = ACME.replace(
        "[registration]\n",
        "[registration]\nsoftware_statement_issuers = [\"https://ci.acme.test\"]\nmax_clients = 1\n",
    );
    let server = TestServer::start_with(Options {
        postgres,
        ..with_twin(acme)
    })
    .await;
    // globex keeps the default: closed.
    let r = register(&server, "globex", None, &web_client()).await;
    assert_oauth_error(r, 403, "access_denied").await;
    // acme wants an initial access token: none, an unknown one, one of another tenant.
    let r = register(&server, "acme", None, &web_client()).await;
    assert_bearer_error(&r, 401, "invalid_token");
    let r = register(&server, "acme", Some("made-up"), &web_client()).await;
    assert_bearer_error(&r, 401, "invalid_token");
    let twin_token = initial_token(&server, "twin", 1).await;
    let r = register(&server, "acme", Some(&twin_token), &web_client()).await;
    assert_bearer_error(&r, 401, "invalid_token");

    let one_use = initial_token(&server, "acme", 1).await;
    let with = |patch: Value| {
        let mut v = web_client();
        for (k, val) in patch.as_object().unwrap() {
            v[k] = val.clone();
        }
        v
    };
    let (key, kid) = crate::token_exchange::workload_key(&server);
    let statement =
        crate::token_exchange::sign_es256(&key, &kid, json!({"software_id": "signed-app"}));
    let forger = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    let forged = Some(crate::token_exchange::sign_es256(
        &jsonwebtoken::EncodingKey::from_ec_der(forger.as_ref()),
        &kid,
        json!({"software_id": "forged"}),
    ));
    let mut cases = vec![
        (
            with(json!({"redirect_uris": ["https://app.example/cb#frag"]})),
            "invalid_redirect_uri",
        ),
        (
            with(json!({"redirect_uris": ["http://app.example/cb"]})),
            "invalid_redirect_uri",
        ),
        (
            with(json!({"redirect_uris": ["https://*.app.example/cb"]})),
            "invalid_redirect_uri",
        ),
        (
            with(json!({"grant_types": ["implicit"]})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"grant_types": ["password"]})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"response_types": ["code", "token"]})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"grant_types": ["client_credentials"], "response_types": ["code"]})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"jwks": {"keys": []}, "jwks_uri": "https://app.example/jwks"})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"scope": "openid portcullis.admin"})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"logo_uri": "http://app.example/logo.png"})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"token_endpoint_auth_method": "private_key_jwt"})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"software_statement": "not.a.jwt"})),
            "invalid_software_statement",
        ),
        (
            with(json!({"software_statement": statement.replace('.', ".x")})),
            "invalid_software_statement",
        ),
    ];
    if let Some(f) = forged {
        cases.push((
            with(json!({"software_statement": f})),
            "invalid_software_statement",
        ));
    }
    // A statement signed by a key the tenant trusts, but from an issuer not approved for it.
    let unapproved = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iss": "https://elsewhere.example", "software_id": "x"}),
        &jsonwebtoken::EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
    )
    .unwrap();
    cases.push((
        with(json!({"software_statement": unapproved})),
        "unapproved_software_statement",
    ));
    for (body, error) in cases {
        let r = register(&server, "acme", Some(&one_use), &body).await;
        assert_oauth_error(r, 400, error).await;
    }
    for raw in ["{not json", "[]", "\"text\""] {
        let r = server
            .http
            .post(server.url("/acme/connect/register"))
            .bearer_auth(&one_use)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_oauth_error(r, 400, "invalid_client_metadata").await;
    }
    let r = server
        .http
        .post(server.url("/acme/connect/register"))
        .bearer_auth(&one_use)
        .form(&[("redirect_uris", CB)])
        .send()
        .await
        .unwrap();
    assert_oauth_error(r, 400, "invalid_client_metadata").await;
    assert_eq!(
        server
            .state()
            .store
            .count_runtime_clients("acme")
            .await
            .unwrap(),
        0,
        "nothing was stored"
    );
    // No refusal took the token's one use; a signed statement's claims win (RFC 7591 §2.3).
    let r = register(
        &server,
        "acme",
        Some(&one_use),
        &with(json!({"software_statement": statement})),
    )
    .await;
    assert_eq!(r.status(), 201);
    let reg: Value = r.json().await.unwrap();
    assert_eq!(reg["software_id"], "signed-app");
    let id = reg["client_id"].as_str().unwrap();
    let rat = reg["registration_access_token"].as_str().unwrap();
    // Its registration access token means nothing at the twin, and its id is unknown there.
    let r = server
        .http
        .get(server.url(&format!("/twin/connect/register/{id}")))
        .bearer_auth(rat)
        .send()
        .await
        .unwrap();
    assert_bearer_error(&r, 401, "invalid_token");
    // The tenant's quota of one registered client is reached: refused, the token's use kept.
    let quota = initial_token(&server, "acme", 1).await;
    let r = register(&server, "acme", Some(&quota), &web_client()).await;
    assert_oauth_error(r, 403, "access_denied").await;
    assert!(
        portcullis::clients::initial_tokens::check(
            &server.state().store,
            "acme",
            &quota,
            SystemClock.now()
        )
        .await
        .unwrap()
        .is_ok()
    );
    server.stop().await;
}

on_both_engines!(bad_registrations_get_their_rfc_7591_error_and_store_nothing);

async fn the_admin_api_keeps_clients_that_sign_in_until_disabled_and_never_takes_a_file_clients_id(
    postgres: bool,
) {
    let server = TestServer::start_with(Options {
        postgres,
        ..Default::default()
    })
    .await;
    let admin = admin_token(&server, "acme", "acme-admin", "acme-admin-secret").await;
    let api = server.url("/acme/admin/clients");
    let r = server
        .http
        .post(&api)
        .bearer_auth(&admin)
        .json(&json!({
            "client_id": "acme-batch",
            "client_name": "Batch jobs",
            "grant_types": ["client_credentials"],
            "scopes": ["api.read"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let secret = created["client_secret"].as_str().unwrap().to_string();
    assert_eq!(created["enabled"], true);
    let t = server
        .token_json(
            "acme",
            "acme-batch",
            &secret,
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(t["scope"], "api.read");
    // Read back: the secret is never shown again.
    let (status, one) = {
        let r = server
            .http
            .get(format!("{api}/acme-batch"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200);
    assert!(one.get("client_secret").is_none());
    assert_eq!(one["secrets"][0]["kind"], "hashed");
    // Disabled, refused at once; rotated, only the new secret works.
    let r = server
        .http
        .patch(format!("{api}/acme-batch"))
        .bearer_auth(&admin)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = server
        .token(
            "acme",
            "acme-batch",
            &secret,
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_oauth_error(r, 401, "invalid_client").await;
    let r = server
        .http
        .patch(format!("{api}/acme-batch"))
        .bearer_auth(&admin)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = server
        .http
        .post(format!("{api}/acme-batch/secret"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().await.unwrap();
    let new_secret = rotated["client_secret"].as_str().unwrap();
    let r = server
        .token(
            "acme",
            "acme-batch",
            &secret,
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_oauth_error(r, 401, "invalid_client").await;
    server
        .token_json(
            "acme",
            "acme-batch",
            new_secret,
            &[("grant_type", "client_credentials")],
        )
        .await;
    // A file client's id cannot be taken; a definition cannot name a file or extend trust.
    for body in [
        json!({"client_id": "acme-web", "grant_types": ["client_credentials"]}),
        json!({"client_id": "x", "grant_types": ["client_credentials"], "jwks_file": "/etc/passwd"}),
        json!({"client_id": "x", "grant_types": ["client_credentials"], "tls_client_auth_trust_anchors": ["/data/master.key"]}),
        json!({"client_id": "x", "grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"], "workload_identity": {"issuer": "https://ci.acme.test"}}),
    ] {
        let r = server
            .http
            .post(&api)
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            matches!(r.status().as_u16(), 400 | 409),
            "{body}: {}",
            r.status()
        );
    }
    let r = server
        .http
        .put(format!("{api}/acme-web"))
        .bearer_auth(&admin)
        .json(&json!({"grant_types": ["client_credentials"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    // acme-web is still the file's client, unchanged.
    let web =
        portcullis::stores::ClientStore::find_client(&server.state().store, "acme", "acme-web")
            .await
            .unwrap()
            .unwrap();
    assert!(web.spec.runtime.is_none());
    assert!(
        server
            .state()
            .store
            .runtime_client("acme", "acme-web")
            .await
            .unwrap()
            .is_none()
    );
    // Another tenant's admin token manages nothing here.
    let globex_admin = server
        .token(
            "globex",
            "globex-admin",
            "globex-admin-secret",
            &[("grant_type", "client_credentials")],
        )
        .await;
    if globex_admin.status() == 200 {
        let t: Value = globex_admin.json().await.unwrap();
        let r = server
            .http
            .get(&api)
            .bearer_auth(t["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    // Removed: gone, and its tokens with it.
    let r = server
        .http
        .delete(format!("{api}/acme-batch"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = server
        .token(
            "acme",
            "acme-batch",
            new_secret,
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_oauth_error(r, 401, "invalid_client").await;
    // Initial access tokens come from the admin API too.
    let r = server
        .http
        .post(server.url("/acme/admin/initial-access-tokens"))
        .bearer_auth(&admin)
        .json(&json!({"uses": 2, "expires_in": 600}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let iat: Value = r.json().await.unwrap();
    let r = register(
        &server,
        "acme",
        iat["initial_access_token"].as_str(),
        &web_client(),
    )
    .await;
    assert_eq!(r.status(), 201);
    server.stop().await;
}

on_both_engines!(
    the_admin_api_keeps_clients_that_sign_in_until_disabled_and_never_takes_a_file_clients_id
);

/// Serves JSON documents by name over TLS (the test's CA), each with `max-age=300`.
async fn document_server(
    upstreams: &Upstreams,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
) {
    use axum::response::IntoResponse;
    let docs = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        String,
    >::new()));
    let d = docs.clone();
    let router = axum::Router::new().route(
        "/clients/{name}",
        axum::routing::get(
            move |axum::extract::Path(name): axum::extract::Path<String>| {
                let d = d.clone();
                async move {
                    if name == "slow.json" {
                        tokio::time::sleep(std::time::Duration::from_secs(8)).await;
                    }
                    match d.lock().unwrap().get(&name).cloned() {
                        Some(body) => (
                            [
                                ("cache-control", "max-age=300"),
                                ("content-type", "application/json"),
                            ],
                            body,
                        )
                            .into_response(),
                        None => axum::http::StatusCode::NOT_FOUND.into_response(),
                    }
                }
            },
        ),
    );
    let base = upstreams.serve(router).await;
    (base.replace("127.0.0.1", "localhost"), docs)
}

fn authorize_as(server: &TestServer, client: &str, ch: &str) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("client_id", client),
        ("response_type", "code"),
        ("redirect_uri", CB),
        ("scope", "openid profile"),
        ("state", "s2"),
        ("code_challenge", ch),
        ("code_challenge_method", "S256"),
    ] {
        q.append_pair(k, v);
    }
    server.url(&format!("/acme/connect/authorize?{}", q.finish()))
}

/// A client named by its metadata document (an MCP-style public client with PKCE), and
/// documents that lie about themselves, are too large, are not JSON or are not found.
#[tokio::test]
async fn a_metadata_document_client_signs_in_with_pkce_and_lying_or_oversized_documents_are_refused()
 {
    let upstreams = Upstreams::new();
    let server = TestServer::start_with(Options {
        trusted_cas: vec![upstreams.ca_file()],
        ..Default::default()
    })
    .await;
    let (base, docs) = document_server(&upstreams).await;
    let url = |name: &str| format!("{base}/clients/{name}");
    let doc = |name: &str, id: &str| {
        json!({
            "client_id": id,
            "client_name": "Totally Official Bank",
            "redirect_uris": [CB],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": "openid profile api.write",
            "logo_uri": format!("{base}/logo-{name}.png"),
        })
        .to_string()
    };
    {
        let mut d = docs.lock().unwrap();
        d.insert("tool.json".into(), doc("tool", &url("tool.json")));
        d.insert("lying.json".into(), doc("lying", &url("tool.json")));
        d.insert(
            "big.json".into(),
            format!(
                "{{\"client_id\": \"{}\", \"pad\": \"{}\"}}",
                url("big.json"),
                "x".repeat(6000)
            ),
        );
        d.insert("text.json".into(), "<html>not json</html>".into());
        d.insert("slow.json".into(), doc("slow", &url("slow.json")));
        d.insert("secret.json".into(), {
            let mut v: Value = serde_json::from_str(&doc("secret", &url("secret.json"))).unwrap();
            v["token_endpoint_auth_method"] = json!("client_secret_post");
            v.to_string()
        });
    }
    let b = Browser::new(&server);
    let ch = challenge(VERIFIER);
    let r = b.get(&authorize_as(&server, &url("tool.json"), &ch)).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let r = submit_login(&b, &location(&r), "alice", "alice-password").await;
    assert_eq!(r.status(), 303);
    let consent = location(&r);
    assert!(consent.contains("/account/consent"), "{consent}");
    // The host is what the user is shown as the one verified fact about the client.
    let page = b.get(&consent).await.text().await.unwrap();
    assert!(page.contains("id=\"client-host\""), "{page}");
    assert!(page.contains("<strong>localhost</strong>"), "{page}");
    let r = submit_consent(&b, &consent, "allow", false).await;
    let back = params(&location(&r));
    let r = server
        .http
        .post(server.url("/acme/connect/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", url("tool.json").as_str()),
            ("code", back["code"].as_str()),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    // api.write is not among the scopes acme lets documents have: narrowed away.
    assert_eq!(t["scope"], "openid profile");
    // Without PKCE, a document client is refused like any public client.
    let r = b
        .get(
            &authorize_as(&server, &url("tool.json"), "")
                .replace("&code_challenge=&code_challenge_method=S256", ""),
        )
        .await;
    assert_ne!(r.status(), 200);
    for bad in [
        "lying.json",
        "big.json",
        "text.json",
        "secret.json",
        "missing.json",
    ] {
        let r = b.get(&authorize_as(&server, &url(bad), &ch)).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    // A document that takes longer than a fetch may (5 s) is no client either.
    let started = std::time::Instant::now();
    let r = b.get(&authorize_as(&server, &url("slow.json"), &ch)).await;
    assert_eq!(r.status(), 400);
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_secs(4) && took < std::time::Duration::from_secs(7),
        "{took:?}"
    );
    // A host the tenant does not allow is never fetched.
    let before = server
        .state()
        .metadata_documents
        .with_allow_list
        .fetch_count();
    let r = b
        .get(&authorize_as(
            &server,
            "https://127.0.0.1:1/clients/x.json",
            &ch,
        ))
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        server
            .state()
            .metadata_documents
            .with_allow_list
            .fetch_count(),
        before
    );
    server.stop().await;

    // Where the tenant does not allow internal addresses, a document on loopback is refused.
    let strict = TestServer::start_with(Options {
        tenants: vec![(
            "acme",
            ACME.replace(
                "allow_internal_addresses = true",
                "allow_internal_addresses = false",
            ),
        )],
        trusted_cas: vec![upstreams.ca_file()],
        ..Default::default()
    })
    .await;
    let b = Browser::new(&strict);
    let r = b.get(&authorize_as(&strict, &url("tool.json"), &ch)).await;
    assert_eq!(r.status(), 400);
    assert!(strict.state().outbound.refused_count() >= 1);
    strict.stop().await;
}

/// Two nodes on one PostgreSQL schema: a client registered on node A gets tokens from node B at
/// once (B had already looked for it and cached "unknown"); deleted on B, it and its reference
/// tokens are refused on A at once.
#[tokio::test]
async fn a_client_registered_on_one_node_works_on_the_other_and_deleted_there_stops_here() {
    if postgres_url().is_none() {
        assert!(!in_ci(), "CI runs the PostgreSQL tests");
        eprintln!("PORTCULLIS_TEST_POSTGRES_URL is not set: PostgreSQL part skipped");
        return;
    }
    use base64::Engine;
    let schema = unique_schema();
    let keys = format!(
        "master_key = \"{}\"",
        base64::engine::general_purpose::STANDARD.encode([9u8; 32])
    );
    let node = || Options {
        postgres: true,
        postgres_schema: Some(schema.clone()),
        keys: keys.clone(),
        ..Default::default()
    };
    let a = TestServer::start_with(node()).await;
    let b = TestServer::start_with(node()).await;
    let iat = initial_token(&a, "acme", 1).await;
    let body = json!({
        "grant_types": ["client_credentials"],
        "response_types": [],
        "scope": "api.read",
    });
    // Registration does not reveal ids in advance, so node B's negative cache is exercised by
    // the admin path below; here B must simply see the new client at once.
    let r = register(&a, "acme", Some(&iat), &body).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let reg: Value = r.json().await.unwrap();
    let id = reg["client_id"].as_str().unwrap().to_string();
    let secret = reg["client_secret"].as_str().unwrap().to_string();
    let rat = reg["registration_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let cc = [("grant_type", "client_credentials")];
    let t = b.token_json("acme", &id, &secret, &cc).await;
    assert!(t["access_token"].is_string());
    // An admin-created client whose id node B already looked up (and cached as unknown).
    let r = b.token("acme", "acme-late", "whatever", &cc).await;
    assert_oauth_error(r, 401, "invalid_client").await;
    let admin = admin_token(&a, "acme", "acme-admin", "acme-admin-secret").await;
    let r = a
        .http
        .post(a.url("/acme/admin/clients"))
        .bearer_auth(&admin)
        .json(&json!({"client_id": "acme-late", "grant_types": ["client_credentials"], "scopes": ["api.read"], "access_token_format": "reference"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let late: Value = r.json().await.unwrap();
    let late_secret = late["client_secret"].as_str().unwrap().to_string();
    let mut seen = false;
    for _ in 0..50 {
        if b.token("acme", "acme-late", &late_secret, &cc)
            .await
            .status()
            == 200
        {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(seen, "node B forgot its cached answer within 5 s");
    let reference = a.token_json("acme", "acme-late", &late_secret, &cc).await;
    let handle = reference["access_token"].as_str().unwrap().to_string();
    let introspect = |s: &TestServer| {
        s.http
            .post(s.url("/acme/connect/introspect"))
            .basic_auth("https%3A%2F%2Fapi.acme.test", Some("acme-api-secret"))
            .form(&[("token", handle.as_str())])
            .send()
    };
    let r: Value = introspect(&a).await.unwrap().json().await.unwrap();
    assert_eq!(r["active"], true);
    // Deleted on B (registration token and admin API alike): refused on A at once.
    let r = b
        .http
        .delete(b.url(&format!("/acme/connect/register/{id}")))
        .bearer_auth(&rat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = b
        .http
        .delete(b.url("/acme/admin/clients/acme-late"))
        .bearer_auth(admin_token(&b, "acme", "acme-admin", "acme-admin-secret").await)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let mut refused = false;
    for _ in 0..50 {
        let gone = a.token("acme", &id, &secret, &cc).await.status() == 401;
        let inactive =
            introspect(&a).await.unwrap().json::<Value>().await.unwrap()["active"] == false;
        if gone && inactive {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        refused,
        "node A refused the deleted clients and their tokens within 5 s"
    );
    a.stop().await;
    b.stop().await;
}

/// An open tenant registers anyone, at most `open_requests_per_minute` per address (429 with
/// Retry-After after that); a client_secret_jwt client gets a secret it can sign with (stored
/// sealed, never hashed); an initial access token stops at its expiry.
#[tokio::test]
async fn open_registration_is_rate_limited_per_address_and_a_client_secret_jwt_client_signs_with_its_secret()
 {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let acme = ACME
        .replace(
            "access = \"initial_token\"",
            "access = \"open\"\nopen_requests_per_minute = 3",
        )
        .replace(
            "allowed_auth_methods = [\"client_secret_basic\"",
            "allowed_auth_methods = [\"client_secret_jwt\", \"client_secret_basic\"",
        );
    assert!(
        acme.contains("open_requests_per_minute = 3") && acme.contains("\"client_secret_jwt\", ")
    );
    let server = TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.into())],
        ..Default::default()
    })
    .await;
    let csj = json!({
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": "client_secret_jwt",
        "scope": "api.read",
    });
    let r = register(&server, "acme", None, &csj).await;
    assert_eq!(r.status(), 201);
    let reg: Value = r.json().await.unwrap();
    let id = reg["client_id"].as_str().unwrap().to_string();
    let secret = reg["client_secret"].as_str().unwrap().to_string();
    let stored = server
        .state()
        .store
        .runtime_client("acme", &id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored
            .secrets
            .iter()
            .all(|s| s.sealed.is_some() && s.hash.is_empty())
    );
    let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let now = SystemClock.now();
    let claims =
        json!({"iss": id, "sub": id, "aud": server.url("/acme"), "exp": now + 60, "jti": "j1"});
    let input = format!("{header}.{}", B64.encode(claims.to_string()));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let assertion = format!(
        "{input}.{}",
        B64.encode(aws_lc_rs::hmac::sign(&key, input.as_bytes()).as_ref())
    );
    let r = server
        .http
        .post(server.url("/acme/connect/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // Two more from this address this minute, then 429.
    for _ in 0..2 {
        assert_eq!(
            register(&server, "acme", None, &web_client())
                .await
                .status(),
            201
        );
    }
    let r = register(&server, "acme", None, &web_client()).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "60");
    assert_oauth_error(r, 429, "temporarily_unavailable").await;
    assert_eq!(
        server
            .state()
            .store
            .count_runtime_clients("acme")
            .await
            .unwrap(),
        3
    );

    // An initial access token is good until its expiry, not a second after.
    let issued =
        portcullis::clients::initial_tokens::issue(&server.state().store, "acme", 5, 60, now)
            .await
            .unwrap();
    let store = &server.state().store;
    assert!(
        portcullis::clients::initial_tokens::check(store, "acme", &issued.token, now + 59)
            .await
            .unwrap()
            .is_ok()
    );
    assert_eq!(
        portcullis::clients::initial_tokens::check(store, "acme", &issued.token, now + 60)
            .await
            .unwrap()
            .unwrap_err(),
        "the initial access token expired"
    );
    assert!(
        portcullis::clients::initial_tokens::check(store, "globex", &issued.token, now)
            .await
            .unwrap()
            .is_err()
    );
    server.stop().await;
}
