//! The security review's findings about federation and outbound requests (files through the
//! admin API, SSRF, unbounded bodies, account linking, provider secrets), each as the attack that worked on the reviewed main, now refused.
//!
//! The rig: a test CA of our own certifies "upstreams" on 127.0.0.2 — the one internal address
//! these servers may reach (`[outbound] allow_networks`) — and an internal service on
//! 127.0.0.1 counts every connection made to it: it must count none.

use crate::federation::{
    WEB_CB, admin_token, back_at_acme, bob_at_globex, claims_of, dynamic_globex,
    globex_with_dynamic_redirect, to_upstream, tokens_for,
};
use crate::interactive::{
    Browser, VERIFIER, authorize_url, challenge, location, params, web_params,
};
use crate::support::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A service inside the network that nothing from outside may make the server call: it counts
/// connections (and answers none).
struct Internal {
    port: u16,
    hits: Arc<AtomicUsize>,
}

async fn internal_service() -> Internal {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    Internal { port, hits }
}

/// A server whose only reachable internal address is 127.0.0.2, trusting `upstreams`' CA.
async fn guarded_server(upstreams: &Upstreams) -> TestServer {
    TestServer::start_with(Options {
        outbound_allow: vec!["127.0.0.2/32"],
        trusted_cas: vec![upstreams.ca_file()],
        ..Default::default()
    })
    .await
}

/// An upstream OpenID provider on 127.0.0.2 whose discovery document says what `fields` say
/// (over a sane base); its issuer is its own base URL.
async fn hostile_provider(upstreams: &Upstreams, fields: Value) -> String {
    let doc = Arc::new(std::sync::Mutex::new(None::<Value>));
    let served = doc.clone();
    let router = axum::Router::new().route(
        "/.well-known/openid-configuration",
        axum::routing::get(move || {
            let served = served.clone();
            async move { axum::Json(served.lock().unwrap().clone().unwrap()) }
        }),
    );
    let base = upstreams.serve_on("127.0.0.2", router).await;
    let mut d = json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "userinfo_endpoint": format!("{base}/userinfo"),
    });
    for (k, v) in fields.as_object().unwrap() {
        d[k] = v.clone();
    }
    *doc.lock().unwrap() = Some(d);
    base
}

/// Adds runtime provider `id` for `issuer` at acme through the admin API; the answer.
async fn add_provider(server: &TestServer, admin: &str, body: Value) -> reqwest::Response {
    server
        .http
        .post(server.url("/acme/admin/providers"))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn oidc_provider(id: &str, issuer: &str) -> Value {
    json!({
        "id": id,
        "kind": "oidc",
        "oidc": {"issuer": issuer, "client_id": "portcullis", "client_secret": "s3cret"}
    })
}

/// A browser starts signing in at acme with provider `id`; what the start hop answered.
async fn start_with(server: &TestServer, b: &Browser, id: &str) -> reqwest::Response {
    let ch = challenge(VERIFIER);
    let mut p = web_params("st-1", &ch);
    p.push(("idp_hint", id));
    let r = b.get(&authorize_url(server, "acme", "acme-web", &p)).await;
    assert_eq!(r.status(), 303);
    let start = location(&r);
    assert!(
        start.contains(&format!("/acme/federation/{id}/start")),
        "{start}"
    );
    b.get(&start).await
}

async fn error_of(r: reqwest::Response) -> String {
    let body: Value = r.json().await.unwrap();
    body["error"].as_str().unwrap_or_default().to_string()
}

// ---------------------------------------------------------------------------------------------
// Finding 1: a tenant admin read server files and environment variables through the admin API.

#[tokio::test]
async fn a_runtime_provider_cannot_name_a_server_file_as_its_secret() {
    let server = TestServer::start().await;
    let admin = admin_token(&server, "acme", "acme-admin", "acme-admin-secret").await;
    let mut descriptions = Vec::new();
    for (section, field, value) in [
        ("oidc", "client_secret_file", "data/master.key"),
        ("oidc", "client_secret_file", "data/no-such-file"),
        ("oidc", "client_secret_file", "/etc/passwd"),
        ("oidc", "client_secret_env", "PORTCULLIS_DATABASE_URL"),
        ("oidc", "private_key_file", "certs/server-key.pem"),
        ("saml", "sp_signing_key_file", "certs/server-key.pem"),
        ("saml", "metadata_file", "data/master.key"),
    ] {
        let mut body = match section {
            "oidc" => oidc_provider("evil", "https://idp.example"),
            _ => json!({"id": "evil", "kind": "saml", "saml": {
                "metadata_url": "https://idp.example/md", "sp_certificate": "x"}}),
        };
        body[section][field] = value.into();
        let r = add_provider(&server, &admin, body).await;
        assert_eq!(r.status(), 400, "{field} = {value}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"], "invalid_request");
        let d = e["error_description"].as_str().unwrap().to_string();
        assert!(d.contains("unknown field"), "{d}");
        // Nothing tells whether a path exists, nor what the OS said about it.
        assert!(
            !d.contains("No such file") && !d.contains("os error"),
            "{d}"
        );
        descriptions.push((value, d));
    }
    assert_eq!(
        descriptions[0].1.replace(descriptions[0].0, ""),
        descriptions[1].1.replace(descriptions[1].0, ""),
        "an existing and a missing path are refused alike"
    );
    let r = server
        .http
        .get(server.url("/acme/admin/providers/evil"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "nothing was stored");
    server.stop().await;
}

#[tokio::test]
async fn a_provider_file_cannot_read_the_master_key_or_borrow_the_servers_environment() {
    let base = "kind = \"oidc\"\n[oidc]\nissuer = \"${public_base_url}/globex\"\nclient_id = \"acme-broker\"\n";
    let server = TestServer::start_with(Options {
        providers: vec![
            ("globex", GLOBEX_PROVIDER.to_string()),
            (
                "by-file",
                format!("{base}client_secret_file = \"data/master.key\"\n"),
            ),
            (
                "by-dots",
                format!("{base}client_secret_file = \"certs/../data/master.key\"\n"),
            ),
            (
                "by-env",
                format!("{base}client_secret_env = \"PORTCULLIS_KEYS_MASTER_KEY\"\n"),
            ),
            (
                "by-key",
                format!(
                    "{base}token_endpoint_auth_method = \"private_key_jwt\"\nprivate_key_file = \"/etc/ssl/private/ssl-cert-snakeoil.key\"\n"
                ),
            ),
        ],
        ..Default::default()
    })
    .await;
    let files = server.state().federation.files.load();
    assert!(files.contains_key("globex"));
    for id in ["by-file", "by-dots", "by-env", "by-key"] {
        assert!(!files.contains_key(id), "{id} must not load");
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Finding 2: SSRF through the upstream's discovery document and through definitions.

#[tokio::test]
async fn a_discovery_document_cannot_send_the_server_to_an_internal_address() {
    let upstreams = Upstreams::new();
    let internal = internal_service().await;
    let server = guarded_server(&upstreams).await;
    let admin = admin_token(&server, "acme", "acme-admin", "acme-admin-secret").await;
    for (n, (field, target)) in [
        (
            "token_endpoint",
            format!("http://127.0.0.1:{}/token", internal.port),
        ),
        (
            "token_endpoint",
            format!("https://127.0.0.1:{}/token", internal.port),
        ),
        (
            "jwks_uri",
            format!("https://[::ffff:127.0.0.1]:{}/jwks", internal.port),
        ),
        (
            "userinfo_endpoint",
            "https://169.254.169.254/latest/meta-data/".to_string(),
        ),
        (
            "token_endpoint",
            format!("https://10.1.2.3:{}/token", internal.port),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let base = hostile_provider(&upstreams, json!({ field: target })).await;
        let id = format!("evil-{n}");
        let r = add_provider(&server, &admin, oidc_provider(&id, &base)).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let b = Browser::new(&server);
        let r = start_with(&server, &b, &id).await;
        assert_eq!(r.status(), 303);
        let back = location(&r);
        assert!(back.starts_with(WEB_CB), "{back}");
        assert_eq!(
            params(&back)["error"],
            "temporarily_unavailable",
            "{field} = {target}"
        );
    }
    assert_eq!(
        internal.hits.load(Ordering::SeqCst),
        0,
        "nothing reached the internal service"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_name_that_resolves_to_an_internal_address_is_refused_when_the_server_connects() {
    // The document names `localhost` (not an address): the check happens when the name is
    // resolved for the connection itself, so a rebinding name cannot pass it and then connect.
    let upstreams = Upstreams::new();
    let internal = internal_service().await;
    let server = guarded_server(&upstreams).await;
    let admin = admin_token(&server, "acme", "acme-admin", "acme-admin-secret").await;
    let base = hostile_provider(
        &upstreams,
        json!({"token_endpoint": format!("https://localhost:{}/token", internal.port)}),
    )
    .await;
    let r = add_provider(&server, &admin, oidc_provider("rebind", &base)).await;
    assert_eq!(r.status(), 201);
    let b = Browser::new(&server);
    let r = start_with(&server, &b, "rebind").await;
    let upstream = location(&r);
    assert!(
        upstream.starts_with(&format!("{base}/authorize?")),
        "{upstream}"
    );
    // The upstream "answers" with a code; the server now calls the token endpoint.
    let state = params(&upstream)["state"].clone();
    let callback = server.url(&format!(
        "/acme/federation/rebind/callback?code=c&state={state}&iss={}",
        form_urlencoded::byte_serialize(base.as_bytes()).collect::<String>()
    ));
    let r = b.get(&callback).await;
    let back = location(&r);
    assert_eq!(params(&back)["error"], "temporarily_unavailable", "{back}");
    assert_eq!(internal.hits.load(Ordering::SeqCst), 0);
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("portcullis_outbound_refused_total 1"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn definitions_naming_internal_or_plain_http_addresses_are_refused() {
    let server = TestServer::start_with(Options {
        outbound_allow: vec![],
        ..Default::default()
    })
    .await;
    let admin = admin_token(&server, "acme", "acme-admin", "acme-admin-secret").await;
    for issuer in [
        "https://10.0.0.1",
        "https://169.254.169.254/latest",
        "http://127.0.0.1:8080",
        "https://127.0.0.1:8443/globex",
        "https://[fd00::1]/",
        "file:///etc/passwd",
    ] {
        let r = add_provider(&server, &admin, oidc_provider("internal", issuer)).await;
        assert_eq!(r.status(), 400, "{issuer}");
        assert_eq!(error_of(r).await, "invalid_request");
    }
    let mut saml = json!({"id": "internal", "kind": "saml", "saml": {
        "metadata_url": "https://169.254.169.254/md", "sp_certificate": "x", "sp_signing_key": "y"}});
    let r = add_provider(&server, &admin, saml.clone()).await;
    assert_eq!(r.status(), 400);
    saml["saml"]["metadata_url"] = "http://idp.example/md".into();
    let r = add_provider(&server, &admin, saml).await;
    assert_eq!(r.status(), 400);
    server.stop().await;
}

#[tokio::test]
async fn a_clients_jwks_uri_and_logout_uri_cannot_reach_an_internal_address() {
    let internal = internal_service().await;
    let acme = ACME.replace(
        "backchannel_logout_uri = \"https://127.0.0.1:9000/backchannel-logout\"",
        &format!(
            "backchannel_logout_uri = \"https://localhost:{}/logout\"",
            internal.port
        ),
    ) + &format!(
        "\n[[clients]]\nclient_id = \"keyed\"\ntoken_endpoint_auth_methods = [\"private_key_jwt\"]\njwks_uri = \"https://localhost:{}/jwks\"\ngrant_types = [\"client_credentials\"]\nscopes = [\"api.read\"]\n",
        internal.port
    );
    let server = TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.into())],
        outbound_allow: vec![],
        ..Default::default()
    })
    .await;
    // A client assertion makes the server want the client's keys.
    let key = portcullis::keys::Signer::from_pkcs8(
        portcullis::keys::Alg::ES256,
        &portcullis::keys::signer::generate_pkcs8(portcullis::keys::Alg::ES256, 2048).unwrap(),
    )
    .unwrap();
    let now = chrono_now();
    let token_url = server.url("/acme/connect/token");
    let assertion = key
        .sign_jwt(
            "JWT",
            &json!({"iss": "keyed", "sub": "keyed", "aud": token_url, "jti": "j1",
                     "iat": now, "exp": now + 60}),
        )
        .unwrap();
    let r = server
        .http
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "keyed"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(error_of(r).await, "invalid_client");
    // A sign-out makes the server notify acme-web's back-channel logout URI.
    let b = Browser::new(&server);
    let back = crate::interactive::alice_signs_in(&server, &b, "s").await;
    let t: Value = crate::interactive::redeem(&server, &back["code"], VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("id_token_hint", t["id_token"].as_str().unwrap());
    let r = b
        .get(&server.url(&format!("/acme/connect/endsession?{}", q.finish())))
        .await;
    assert_eq!(r.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(internal.hits.load(Ordering::SeqCst), 0);
    assert!(server.state().outbound.refused_count() >= 2);
    server.stop().await;
}

fn chrono_now() -> i64 {
    portcullis::clock::Clock::now(&portcullis::clock::SystemClock)
}

// ---------------------------------------------------------------------------------------------
// Finding 3: unbounded outbound bodies.

#[tokio::test]
async fn an_upstream_cannot_make_the_server_read_an_endless_document() {
    let upstreams = Upstreams::new();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    // A discovery document that never ends (no Content-Length), and one that announces 1.5 GB.
    let router = axum::Router::new()
        .route(
            "/endless/.well-known/openid-configuration",
            axum::routing::get(move || {
                let counter = counter.clone();
                async move {
                    let chunk = bytes::Bytes::from(vec![b' '; 64 * 1024]);
                    let stream = futures_util::stream::repeat_with(move || {
                        counter.fetch_add(chunk.len(), Ordering::SeqCst);
                        Ok::<_, std::io::Error>(chunk.clone())
                    });
                    axum::body::Body::from_stream(stream)
                }
            }),
        )
        .route(
            "/announced/.well-known/openid-configuration",
            axum::routing::get(|| async {
                axum::response::Response::builder()
                    .header("content-length", "1500000000")
                    .body(axum::body::Body::from("{"))
                    .unwrap()
            }),
        );
    let base = upstreams.serve_on("127.0.0.2", router).await;
    let server = guarded_server(&upstreams).await;
    let admin = admin_token(&server, "acme", "acme-admin", "acme-admin-secret").await;
    for id in ["endless", "announced"] {
        let r = add_provider(&server, &admin, oidc_provider(id, &format!("{base}/{id}"))).await;
        assert_eq!(r.status(), 201);
        let b = Browser::new(&server);
        let started = std::time::Instant::now();
        let r = start_with(&server, &b, id).await;
        assert_eq!(params(&location(&r))["error"], "temporarily_unavailable");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{id}"
        );
    }
    // The default limit is 1 MiB; what the upstream managed to push into socket buffers before
    // the connection was dropped stays within a few MiB, not gigabytes.
    let pushed = sent.load(Ordering::SeqCst);
    assert!(pushed < 16 * 1024 * 1024, "{pushed} bytes were pulled");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Finding 8: account takeover through a runtime provider.

#[tokio::test]
async fn linking_by_email_is_not_an_admin_api_field() {
    let server = TestServer::start().await;
    let admin = admin_token(&server, "acme", "acme-admin", "acme-admin-secret").await;
    let mut body = dynamic_globex(&server.base);
    body["provisioning"] = json!({"jit": true, "link_by_verified_email": true});
    let r = add_provider(&server, &admin, body).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "invalid_request");
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("link_by_verified_email"),
        "{e}"
    );
    server.stop().await;
}

/// Globex, where bob's verified email is carol's at acme (what a hostile upstream asserts).
fn globex_asserting_carols_email() -> String {
    let carol_email = "carol@acme.test";
    let g = globex_with_dynamic_redirect();
    assert!(
        g.contains("bob@globex.test"),
        "the demo's bob has this email"
    );
    g.replace("bob@globex.test", carol_email)
}

#[tokio::test]
async fn a_runtime_provider_asserting_a_local_users_email_does_not_sign_in_as_that_user() {
    // Even when the tenant's operator trusts email linking for its file providers.
    let acme = ACME.replace(
        "providers = [\"globex\"]",
        "providers = [\"globex\"]\nlink_by_verified_email = [\"globex\"]",
    );
    let server = TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", globex_asserting_carols_email())],
        ..Default::default()
    })
    .await;
    let carol = server
        .state()
        .registry
        .get("acme")
        .unwrap()
        .spec
        .users
        .iter()
        .find(|u| u.username == "carol")
        .unwrap()
        .subject
        .clone();
    // The file provider the operator trusts links the upstream's verified email to carol.
    let b = Browser::new(&server);
    let up = to_upstream(&server, &b, &[("idp_hint", "globex")]).await;
    let callback = bob_at_globex(&b, &up).await;
    let back = back_at_acme(&b, &callback).await;
    let t = tokens_for(&server, &back["code"]).await;
    assert_eq!(
        claims_of(t["id_token"].as_str().unwrap())["sub"],
        carol.as_str()
    );
    // A runtime provider asserting the same verified email (same upstream answer) does not:
    // whoever holds the admin token chose that upstream.
    let admin = admin_token(&server, "acme", "acme-admin", "acme-admin-secret").await;
    let r = add_provider(&server, &admin, dynamic_globex(&server.base)).await;
    assert_eq!(r.status(), 201);
    let b = Browser::new(&server);
    let up = to_upstream(&server, &b, &[("idp_hint", "globex-dyn")]).await;
    let callback = bob_at_globex(&b, &up).await;
    let back = back_at_acme(&b, &callback).await;
    let t = tokens_for(&server, &back["code"]).await;
    let claims = claims_of(t["id_token"].as_str().unwrap());
    assert_eq!(claims["idp"], "globex-dyn");
    assert_ne!(
        claims["sub"],
        carol.as_str(),
        "not carol: a new user of its own"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_provider_re_created_under_an_old_id_links_nothing_of_the_old_one() {
    let server = TestServer::start_with(Options {
        tenants: vec![
            ("acme", ACME.to_string()),
            ("globex", globex_with_dynamic_redirect()),
        ],
        ..Default::default()
    })
    .await;
    let admin = admin_token(&server, "acme", "acme-admin", "acme-admin-secret").await;
    let sign_in = || async {
        let b = Browser::new(&server);
        let up = to_upstream(&server, &b, &[("idp_hint", "globex-dyn")]).await;
        let callback = bob_at_globex(&b, &up).await;
        let back = back_at_acme(&b, &callback).await;
        let t = tokens_for(&server, &back["code"]).await;
        claims_of(t["id_token"].as_str().unwrap())["sub"].clone()
    };
    assert_eq!(
        add_provider(&server, &admin, dynamic_globex(&server.base))
            .await
            .status(),
        201
    );
    let first = sign_in().await;
    assert_eq!(sign_in().await, first, "linked: the same user again");
    let one = server.url("/acme/admin/providers/globex-dyn");
    let r = server
        .http
        .delete(&one)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // Re-created under the same id (here even for the same upstream): a new user.
    let r = server
        .http
        .put(&one)
        .bearer_auth(&admin)
        .json(&dynamic_globex(&server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        201,
        "a PUT that creates answers 201 (RFC 9110 §9.3.4)"
    );
    assert!(r.headers().contains_key("location"));
    assert_ne!(sign_in().await, first);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Finding 11: runtime providers and file providers' domains.

#[tokio::test]
async fn a_runtime_provider_cannot_claim_a_domain_of_a_file_provider() {
    let server = TestServer::start().await;
    let admin = admin_token(&server, "acme", "acme-admin", "acme-admin-secret").await;
    let mut body = dynamic_globex(&server.base);
    body["domains"] = json!(["globex.test"]);
    let r = add_provider(&server, &admin, body).await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_of(r).await, "conflict");
    server.stop().await;
}
