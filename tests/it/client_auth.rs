//! Client authentication by certificate (RFC 8705 §2) through the real mTLS listener, and by
//! signed JWT (RFC 7523), with certificates and keys made in the test.

use crate::support::*;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use portcullis::clock::{Clock, SystemClock};
use portcullis::devcerts::DevCa;
use portcullis::keys::{Alg, Signer, signer::generate_pkcs8};
use serde_json::{Value, json};

const CC: [(&str, &str); 2] = [("grant_type", "client_credentials"), ("scope", "api.read")];

fn es256() -> Signer {
    Signer::from_pkcs8(Alg::ES256, &generate_pkcs8(Alg::ES256, 2048).unwrap()).unwrap()
}

fn pem_identity(cert: &str, key: &str) -> String {
    format!("{cert}{key}")
}

fn thumbprint(der: &[u8]) -> String {
    B64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der))
}

/// Tenant acme plus test clients: one per certificate method, and a private_key_jwt client.
fn tenant(
    ca_path: &std::path::Path,
    self_signed_der: &[u8],
    jwt_key: &Signer,
    jwks_uri: &str,
) -> String {
    let x5c = STANDARD.encode(self_signed_der);
    let jwk = jwt_key.public_jwk();
    let fields: Vec<String> = jwk
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    ACME.replace(
        "trust_anchors = [\"certs/ca.pem\"]",
        &format!("trust_anchors = [\"{}\"]", ca_path.display()),
    ) + &format!(
        r#"
[[clients]]
client_id = "pki"
token_endpoint_auth_methods = ["tls_client_auth"]
tls_client_auth_subject_dn = "CN=good, O=Portcullis development"
grant_types = ["client_credentials"]
scopes = ["api.read"]

[[clients]]
client_id = "pki-san"
token_endpoint_auth_methods = ["tls_client_auth"]
tls_client_auth_san_dns = "svc.acme.test"
grant_types = ["client_credentials"]
scopes = ["api.read"]

[[clients]]
client_id = "selfsigned"
token_endpoint_auth_methods = ["self_signed_tls_client_auth"]
jwks = {{ keys = [{{ kty = "EC", crv = "P-256", x = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", x5c = ["{x5c}"] }}] }}
grant_types = ["client_credentials"]
scopes = ["api.read"]

[[clients]]
client_id = "jwt"
token_endpoint_auth_methods = ["private_key_jwt"]
jwks = {{ keys = [{{ {} }}] }}
grant_types = ["client_credentials"]
scopes = ["api.read"]

[[clients]]
client_id = "jwt-uri"
token_endpoint_auth_methods = ["private_key_jwt"]
jwks_uri = "{jwks_uri}"
grant_types = ["client_credentials"]
scopes = ["api.read"]
"#,
        fields.join(", ")
    )
}

struct World {
    server: TestServer,
    ca: DevCa,
    self_signed: rcgen::Certificate,
    self_signed_key: rcgen::KeyPair,
    jwt_key: Signer,
    jwks_served: std::sync::Arc<std::sync::Mutex<Value>>,
    _ca_dir: tempfile::TempDir,
}

async fn world(server_extra: &str, plain: bool) -> World {
    let ca = DevCa::new("Test Client CA").unwrap();
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_path = ca_dir.path().join("client-ca.pem");
    std::fs::write(&ca_path, ca.cert_pem()).unwrap();
    let self_signed_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "self-signed client");
    let self_signed = params.self_signed(&self_signed_key).unwrap();
    let jwt_key = es256();
    // A JWKS endpoint whose content the test can change (key rotation at the client).
    let jwks_served = std::sync::Arc::new(std::sync::Mutex::new(
        json!({"keys": [jwt_key.public_jwk()]}),
    ));
    let served = jwks_served.clone();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let served = served.clone();
            async move { axum::Json(served.lock().unwrap().clone()) }
        }),
    );
    // The client's JWK Set, over HTTPS with a certificate from the same CA (the server's
    // outbound guard calls https only).
    portcullis::frontdoor::tls::install_default_provider();
    let (jwks_addr, _) =
        portcullis::devcerts::serve_https(&ca, &["127.0.0.1"], "127.0.0.1:0".parse().unwrap(), app)
            .await
            .unwrap();
    let acme = tenant(
        &ca_path,
        self_signed.der(),
        &jwt_key,
        &format!("https://{jwks_addr}/jwks"),
    );
    let server = TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.into())],
        server_extra: server_extra.to_string(),
        plain_listener: plain,
        readable_dirs: vec![ca_dir.path().to_path_buf()],
        trusted_cas: vec![ca_path.clone()],
        ..Default::default()
    })
    .await;
    World {
        server,
        ca,
        self_signed,
        self_signed_key,
        jwt_key,
        jwks_served,
        _ca_dir: ca_dir,
    }
}

impl World {
    /// A client_credentials request for `client_id` over the mTLS listener with `identity`.
    async fn mtls_token(&self, client_id: &str, identity: Option<&str>) -> reqwest::Response {
        let http = client_for(
            &self.server.path("certs/ca.pem"),
            &[("localhost", self.server.mtls_addr)],
            identity,
        );
        let mut form = CC.to_vec();
        form.push(("client_id", client_id));
        http.post(format!("{}/acme/connect/token", self.server.mtls_base))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    fn assertion(&self, key: &Signer, client_id: &str, claims: Value) -> String {
        let now = SystemClock.now();
        let mut c = json!({
            "iss": client_id, "sub": client_id, "aud": self.server.url("/acme"),
            "iat": now, "exp": now + 60, "jti": portcullis::tokens::new_jti(),
        });
        for (k, v) in claims.as_object().unwrap() {
            c[k] = v.clone();
        }
        key.sign_jwt("JWT", &c).unwrap()
    }

    async fn jwt_token(&self, assertion: &str, client_id: Option<&str>) -> reqwest::Response {
        let mut form = CC.to_vec();
        form.push((
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ));
        form.push(("client_assertion", assertion));
        if let Some(id) = client_id {
            form.push(("client_id", id));
        }
        self.server
            .http
            .post(self.server.url("/acme/connect/token"))
            .form(&form)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_certificate_from_the_trusted_ca_with_the_registered_subject_authenticates_and_binds_the_token()
 {
    let w = world("", false).await;
    let good = w.ca.client("good", Vec::new()).unwrap();
    let r = w
        .mtls_token("pki", Some(&pem_identity(&good.cert_pem, &good.key_pem)))
        .await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let claims = verify_jwt(
        t["access_token"].as_str().unwrap(),
        &w.server.jwks("acme").await,
        &w.server.url("/acme"),
        "https://api.acme.test",
    );
    // RFC 8705 §3.1: cnf.x5t#S256 is the SHA-256 of the presented DER.
    assert_eq!(claims["cnf"]["x5t#S256"], thumbprint(&good.der));
    // A SAN-registered client matches on the DNS name.
    let san =
        w.ca.client(
            "whatever",
            vec![rcgen::SanType::DnsName("svc.acme.test".try_into().unwrap())],
        )
        .unwrap();
    assert_eq!(
        w.mtls_token("pki-san", Some(&pem_identity(&san.cert_pem, &san.key_pem)))
            .await
            .status(),
        200
    );
    w.server.stop().await;
}

#[tokio::test]
async fn wrong_subject_expired_unknown_ca_and_no_certificate_are_refused() {
    let w = world("", false).await;
    let wrong = w.ca.client("mallory", Vec::new()).unwrap();
    let r = w
        .mtls_token("pki", Some(&pem_identity(&wrong.cert_pem, &wrong.key_pem)))
        .await;
    assert_oauth_error(r, 401, "invalid_client").await;

    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "good");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Portcullis development");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let expired = w.ca.issue(params).unwrap();
    assert_oauth_error(
        w.mtls_token(
            "pki",
            Some(&pem_identity(&expired.cert_pem, &expired.key_pem)),
        )
        .await,
        401,
        "invalid_client",
    )
    .await;

    let other_ca = DevCa::new("Not Trusted").unwrap();
    let foreign = other_ca.client("good", Vec::new()).unwrap();
    assert_oauth_error(
        w.mtls_token(
            "pki",
            Some(&pem_identity(&foreign.cert_pem, &foreign.key_pem)),
        )
        .await,
        401,
        "invalid_client",
    )
    .await;

    // No certificate.
    assert_oauth_error(w.mtls_token("pki", None).await, 401, "invalid_client").await;
    w.server.stop().await;
}

#[tokio::test]
async fn a_registered_self_signed_certificate_authenticates_and_an_unregistered_one_does_not() {
    let w = world("", false).await;
    let id = pem_identity(&w.self_signed.pem(), &w.self_signed_key.serialize_pem());
    let r = w.mtls_token("selfsigned", Some(&id)).await;
    assert_eq!(r.status(), 200);
    let other_key = rcgen::KeyPair::generate().unwrap();
    let other = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&other_key)
        .unwrap();
    let r = w
        .mtls_token(
            "selfsigned",
            Some(&pem_identity(&other.pem(), &other_key.serialize_pem())),
        )
        .await;
    assert_oauth_error(r, 401, "invalid_client").await;
    w.server.stop().await;
}

#[tokio::test]
async fn a_forwarded_certificate_counts_only_from_a_trusted_proxy() {
    let trusted = world(
        "trusted_proxies = [\"127.0.0.1/32\"]\nclient_cert_header = \"x-client-cert\"",
        true,
    )
    .await;
    let good = trusted.ca.client("good", Vec::new()).unwrap();
    // nginx's $ssl_client_escaped_cert: the PEM, URL-encoded.
    let escaped: String = form_urlencoded::byte_serialize(good.cert_pem.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    let send = |w: &World| {
        let http = reqwest::Client::new();
        let url = format!("http://{}/acme/connect/token", w.server.plain_addr.unwrap());
        let escaped = escaped.clone();
        async move {
            http.post(url)
                .header("x-client-cert", escaped)
                .header("x-forwarded-proto", "https")
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("scope", "api.read"),
                    ("client_id", "pki"),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let r = send(&trusted).await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let claims = verify_jwt(
        t["access_token"].as_str().unwrap(),
        &trusted.server.jwks("acme").await,
        &trusted.server.url("/acme"),
        "https://api.acme.test",
    );
    assert_eq!(claims["cnf"]["x5t#S256"], thumbprint(&good.der));
    trusted.server.stop().await;

    let untrusted = world(
        "trusted_proxies = [\"10.0.0.0/8\"]\nclient_cert_header = \"x-client-cert\"",
        true,
    )
    .await;
    // The header from an untrusted peer is ignored.
    assert_oauth_error(send(&untrusted).await, 401, "invalid_client").await;
    untrusted.server.stop().await;
}

#[tokio::test]
async fn private_key_jwt_authenticates_once_per_assertion_and_checks_audience_expiry_and_key() {
    let w = world("", false).await;
    let a = w.assertion(&w.jwt_key, "jwt", json!({}));
    assert_eq!(w.jwt_token(&a, None).await.status(), 200);
    let r = w.jwt_token(&a, Some("jwt")).await;
    // A replayed jti is refused.
    assert_oauth_error(r, 401, "invalid_client").await;
    // The token endpoint URL is an acceptable audience too (RFC 7523 §3).
    let a = w.assertion(
        &w.jwt_key,
        "jwt",
        json!({"aud": w.server.url("/acme/connect/token")}),
    );
    assert_eq!(w.jwt_token(&a, None).await.status(), 200);
    let a = w.assertion(
        &w.jwt_key,
        "jwt",
        json!({"aud": "https://elsewhere.example"}),
    );
    // Wrong audience.
    assert_oauth_error(w.jwt_token(&a, None).await, 401, "invalid_client").await;
    let now = SystemClock.now();
    let a = w.assertion(&w.jwt_key, "jwt", json!({"exp": now - 10}));
    // Expired.
    assert_oauth_error(w.jwt_token(&a, None).await, 401, "invalid_client").await;
    let a = w.assertion(&w.jwt_key, "jwt", json!({"exp": now + 3600}));
    // Lives too long.
    assert_oauth_error(w.jwt_token(&a, None).await, 401, "invalid_client").await;
    let a = w.assertion(&es256(), "jwt", json!({}));
    // Signed by an unregistered key.
    assert_oauth_error(w.jwt_token(&a, None).await, 401, "invalid_client").await;
    let a = w.assertion(&w.jwt_key, "jwt", json!({"iss": "someone-else"}));
    // `iss` must be the client.
    assert_oauth_error(w.jwt_token(&a, None).await, 401, "invalid_client").await;
    // Two methods in one request: RFC 6749 §2.3.
    let a = w.assertion(&w.jwt_key, "jwt", json!({}));
    let mut form = CC.to_vec();
    form.push((
        "client_assertion_type",
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    ));
    form.push(("client_assertion", &a));
    let r = w
        .server
        .http
        .post(w.server.url("/acme/connect/token"))
        .basic_auth("acme-m2m", Some("acme-m2m-secret"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_oauth_error(r, 401, "invalid_client").await;
    w.server.stop().await;
}

#[tokio::test]
async fn a_key_rotated_at_the_clients_jwks_uri_is_picked_up() {
    let w = world("", false).await;
    let a = w.assertion(&w.jwt_key, "jwt-uri", json!({}));
    assert_eq!(w.jwt_token(&a, None).await.status(), 200);
    // The client rotates: its JWKS now has only the new key (new kid).
    let new_key = es256();
    *w.jwks_served.lock().unwrap() = json!({"keys": [new_key.public_jwk()]});
    let a = w.assertion(&new_key, "jwt-uri", json!({}));
    assert_eq!(
        w.jwt_token(&a, None).await.status(),
        200,
        "an unknown kid refetches the JWKS"
    );
    w.server.stop().await;
}

#[tokio::test]
async fn the_demo_clients_authenticate_with_the_generated_certificate_and_key() {
    let server = TestServer::start().await;
    // acme-mtls with certs/demo-client.pem over the mTLS listener.
    let identity = pem_identity(
        &std::fs::read_to_string(server.path("certs/demo-client.pem")).unwrap(),
        &std::fs::read_to_string(server.path("certs/demo-client-key.pem")).unwrap(),
    );
    let http = client_for(
        &server.path("certs/ca.pem"),
        &[("localhost", server.mtls_addr)],
        Some(&identity),
    );
    let r = http
        .post(format!("{}/acme/connect/token", server.mtls_base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "acme-mtls"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // acme-jwt with certs/acme-jwt-key.pem.
    use rustls::pki_types::pem::PemObject;
    let der =
        rustls::pki_types::PrivatePkcs8KeyDer::from_pem_file(server.path("certs/acme-jwt-key.pem"))
            .unwrap();
    let key = Signer::from_pkcs8(Alg::ES256, der.secret_pkcs8_der()).unwrap();
    let now = SystemClock.now();
    let assertion = key
        .sign_jwt(
            "JWT",
            &json!({"iss": "acme-jwt", "sub": "acme-jwt", "aud": server.url("/acme"), "exp": now + 60, "jti": "demo-1"}),
        )
        .unwrap();
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
    assert_eq!(r.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn a_public_client_registered_for_binding_gets_tokens_bound_to_its_certificate() {
    use crate::interactive::{
        Browser, VERIFIER, authorize_url, challenge, location, params, submit_login,
    };
    let acme = ACME
        .replace(
            "client_id = \"acme-spa\"",
            "client_id = \"acme-spa\"\ntls_client_certificate_bound_access_tokens = true",
        )
        .replace(
            "scopes = [\"openid\", \"profile\", \"api.read\"]\nredirect_uris = [\"http://127.0.0.1:9000/spa/callback\"]",
            "scopes = [\"openid\", \"profile\", \"offline_access\"]\nredirect_uris = [\"http://127.0.0.1:9000/spa/callback\"]",
        );
    assert!(acme.contains(
        "\"profile\", \"offline_access\"]\nredirect_uris = [\"http://127.0.0.1:9000/spa"
    ));
    let server = TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.into())],
        ..Default::default()
    })
    .await;
    let b = Browser::new(&server);
    let ch = challenge(VERIFIER);
    let cb = "http://127.0.0.1:9000/spa/callback";
    let p = vec![
        ("response_type", "code"),
        ("redirect_uri", cb),
        ("scope", "openid profile offline_access"),
        ("code_challenge", ch.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let r = b.get(&authorize_url(&server, "acme", "acme-spa", &p)).await;
    let r = submit_login(&b, &location(&r), "alice", "alice-password").await;
    let code = params(&location(&r))["code"].clone();
    // Any certificate: the TLS layer proves possession; binding needs no CA.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let identity = pem_identity(&cert.pem(), &key.serialize_pem());
    let mtls = client_for(
        &server.path("certs/ca.pem"),
        &[("localhost", server.mtls_addr)],
        Some(&identity),
    );
    let r = mtls
        .post(format!("{}/acme/connect/token", server.mtls_base))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", cb),
            ("code_verifier", VERIFIER),
            ("client_id", "acme-spa"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let at = t["access_token"].as_str().unwrap();
    let claims = verify_jwt(
        at,
        &server.jwks("acme").await,
        &server.url("/acme"),
        &server.url("/acme/resources"),
    );
    assert_eq!(claims["cnf"]["x5t#S256"], thumbprint(cert.der()));
    // RFC 8705 §3: without the certificate the token is worthless.
    let r = server
        .http
        .get(server.url("/acme/connect/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_bearer_error(&r, 401, "invalid_token");
    let r = mtls
        .get(format!("{}/acme/connect/userinfo", server.mtls_base))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // RFC 8705 §4: the public client's refresh token needs the same certificate.
    let other_key = rcgen::KeyPair::generate().unwrap();
    let other = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&other_key)
        .unwrap();
    let thief = client_for(
        &server.path("certs/ca.pem"),
        &[("localhost", server.mtls_addr)],
        Some(&pem_identity(&other.pem(), &other_key.serialize_pem())),
    );
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ("client_id", "acme-spa"),
    ];
    let r = thief
        .post(format!("{}/acme/connect/token", server.mtls_base))
        .form(&refresh)
        .send()
        .await
        .unwrap();
    let why = assert_oauth_error(r, 400, "invalid_grant").await;
    assert_eq!(why, "the refresh token is bound to another certificate");
    let r = mtls
        .post(format!("{}/acme/connect/token", server.mtls_base))
        .form(&refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn client_secret_jwt_verifies_the_hmac_with_a_sealed_secret() {
    let master_b64 = STANDARD.encode([5u8; 32]);
    let master = portcullis::keys::MasterKey::from_base64(&master_b64).unwrap();
    let secret = "a-long-shared-secret-for-hmac-assertions-0123456789";
    let sealed = master
        .seal(
            secret.as_bytes(),
            &portcullis::registry::sealed_secret_aad("acme", "csj"),
        )
        .unwrap();
    let acme = format!(
        "{ACME}\n[[clients]]\nclient_id = \"csj\"\ntoken_endpoint_auth_methods = [\"client_secret_jwt\"]\nsecrets = [{{ sealed = \"sealed:{}\" }}]\ngrant_types = [\"client_credentials\"]\nscopes = [\"api.read\"]\n",
        B64.encode(&sealed)
    );
    let server = TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.into())],
        keys: format!("master_key = \"{master_b64}\""),
        ..Default::default()
    })
    .await;
    let hs256 = |key: &[u8], claims: Value| {
        let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let input = format!("{header}.{}", B64.encode(claims.to_string()));
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
        format!(
            "{input}.{}",
            B64.encode(aws_lc_rs::hmac::sign(&k, input.as_bytes()).as_ref())
        )
    };
    let now = SystemClock.now();
    let claims = |jti: &str| json!({"iss": "csj", "sub": "csj", "aud": server.url("/acme"), "exp": now + 60, "jti": jti});
    let post = |assertion: String| {
        let server = &server;
        async move {
            server
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
                .unwrap()
        }
    };
    let good = hs256(secret.as_bytes(), claims("one"));
    assert_eq!(post(good.clone()).await.status(), 200);
    // Replayed.
    assert_oauth_error(post(good).await, 401, "invalid_client").await;
    let forged = hs256(
        b"another-secret-of-the-same-length-0123456789abcdefg",
        claims("two"),
    );
    assert_oauth_error(post(forged).await, 401, "invalid_client").await;
    // The sealed secret is not accepted as a plain secret: the client allows only the JWT.
    assert_oauth_error(
        server.token("acme", "csj", secret, &CC).await,
        401,
        "invalid_client",
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn a_client_may_bring_its_own_trust_anchors() {
    let own = DevCa::new("Client's own CA").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("own-ca.pem");
    std::fs::write(&path, own.cert_pem()).unwrap();
    let acme = format!(
        "{ACME}\n[[clients]]\nclient_id = \"pki-own\"\ntoken_endpoint_auth_methods = [\"tls_client_auth\"]\ntls_client_auth_subject_dn = \"CN=own, O=Portcullis development\"\ntls_client_auth_trust_anchors = [\"{}\"]\ngrant_types = [\"client_credentials\"]\nscopes = [\"api.read\"]\n",
        path.display()
    );
    let server = TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.into())],
        readable_dirs: vec![dir.path().to_path_buf()],
        ..Default::default()
    })
    .await;
    let post = |identity: String| {
        let server = &server;
        async move {
            client_for(
                &server.path("certs/ca.pem"),
                &[("localhost", server.mtls_addr)],
                Some(&identity),
            )
            .post(format!("{}/acme/connect/token", server.mtls_base))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "pki-own"),
            ])
            .send()
            .await
            .unwrap()
        }
    };
    let good = own.client("own", Vec::new()).unwrap();
    assert_eq!(
        post(pem_identity(&good.cert_pem, &good.key_pem))
            .await
            .status(),
        200
    );
    let stranger = DevCa::new("Someone else")
        .unwrap()
        .client("own", Vec::new())
        .unwrap();
    assert_oauth_error(
        post(pem_identity(&stranger.cert_pem, &stranger.key_pem)).await,
        401,
        "invalid_client",
    )
    .await;
    server.stop().await;
}
