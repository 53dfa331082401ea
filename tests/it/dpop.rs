//! DPoP (RFC 9449): proofs at the token endpoint, key-bound tokens, userinfo with proofs.

use crate::interactive::{
    Browser, VERIFIER, authorize_url, challenge, location, params, submit_login,
};
use crate::support::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use portcullis::clock::{Clock, SystemClock};
use portcullis::keys::{Alg, Signer, signer::generate_pkcs8};
use serde_json::{Value, json};

pub fn key() -> Signer {
    Signer::from_pkcs8(Alg::ES256, &generate_pkcs8(Alg::ES256, 2048).unwrap()).unwrap()
}

fn proof_with(k: &Signer, header: Value, claims: Value) -> String {
    k.sign_with_header(&header, &claims).unwrap()
}

pub fn proof(k: &Signer, htm: &str, htu: &str, extra: Value) -> String {
    let mut c = json!({"htm": htm, "htu": htu, "iat": SystemClock.now(), "jti": portcullis::tokens::new_jti()});
    for (name, v) in extra.as_object().unwrap() {
        c[name] = v.clone();
    }
    proof_with(k, json!({"typ": "dpop+jwt", "jwk": k.bare_public_jwk()}), c)
}

fn ath(token: &str) -> String {
    B64.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        token.as_bytes(),
    ))
}

async fn cc_with(server: &TestServer, dpop: &str) -> reqwest::Response {
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

async fn error_of(r: reqwest::Response) -> String {
    r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_valid_proof_binds_the_token_to_the_key_and_a_replayed_one_is_refused() {
    let server = TestServer::start().await;
    let k = key();
    let htu = server.url("/acme/connect/token");
    let p = proof(&k, "POST", &htu, json!({}));
    let r = cc_with(&server, &p).await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "DPoP");
    let claims = verify_jwt(
        t["access_token"].as_str().unwrap(),
        &server.jwks("acme").await,
        &server.url("/acme"),
        "https://api.acme.test",
    );
    // RFC 9449 §6.1: cnf.jkt is the RFC 7638 thumbprint of the proof key (our kid is one too).
    assert_eq!(claims["cnf"]["jkt"], k.kid.as_str());
    let r = server
        .http
        .post(server.url("/acme/connect/introspect"))
        .basic_auth("https%3A%2F%2Fapi.acme.test", Some("acme-api-secret"))
        .form(&[("token", t["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["token_type"], "DPoP");
    let r = cc_with(&server, &p).await;
    assert_eq!(r.status(), 400, "the same proof twice");
    assert_eq!(error_of(r).await, "invalid_dpop_proof");
    server.stop().await;
}

#[tokio::test]
async fn proofs_for_another_request_or_time_or_with_bad_keys_are_refused() {
    let server = TestServer::start().await;
    let k = key();
    let htu = server.url("/acme/connect/token");
    let now = SystemClock.now();
    let cases = [
        ("wrong htm", proof(&k, "GET", &htu, json!({}))),
        (
            "wrong htu",
            proof(&k, "POST", &server.url("/acme/connect/par"), json!({})),
        ),
        (
            "stale iat",
            proof(&k, "POST", &htu, json!({"iat": now - 3600})),
        ),
        ("no jti", proof(&k, "POST", &htu, json!({"jti": ""}))),
        (
            "typ",
            proof_with(
                &k,
                json!({"typ": "JWT", "jwk": k.bare_public_jwk()}),
                json!({"htm": "POST", "htu": htu, "iat": now, "jti": "x1"}),
            ),
        ),
        ("private key in jwk", {
            let mut jwk = k.bare_public_jwk();
            jwk["d"] = json!("c2VjcmV0");
            proof_with(
                &k,
                json!({"typ": "dpop+jwt", "jwk": jwk}),
                json!({"htm": "POST", "htu": htu, "iat": now, "jti": "x2"}),
            )
        }),
        (
            "signed by another key",
            proof_with(
                &key(),
                json!({"typ": "dpop+jwt", "jwk": k.bare_public_jwk()}),
                json!({"htm": "POST", "htu": htu, "iat": now, "jti": "x3"}),
            ),
        ),
    ];
    for (why, p) in cases {
        let r = cc_with(&server, &p).await;
        assert_eq!(r.status(), 400, "{why}");
        assert_eq!(error_of(r).await, "invalid_dpop_proof", "{why}");
    }
    // RFC 9449 §4.3 item 5: never none, never a MAC. Everything else about these proofs is
    // right (a public EC key, fresh claims, a signature over the input) so that only the
    // algorithm rule can refuse them.
    for (alg, jti) in [("none", "x4"), ("HS256", "x5")] {
        let header = B64
            .encode(json!({"typ": "dpop+jwt", "alg": alg, "jwk": k.bare_public_jwk()}).to_string());
        let claims =
            B64.encode(json!({"htm": "POST", "htu": htu, "iat": now, "jti": jti}).to_string());
        let input = format!("{header}.{claims}");
        let signature = match alg {
            "none" => String::new(),
            _ => {
                // Keyed with the public key's x coordinate: what an alg-confusion attack uses.
                let x = k.bare_public_jwk()["x"].as_str().unwrap().to_string();
                let mac = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, x.as_bytes());
                B64.encode(aws_lc_rs::hmac::sign(&mac, input.as_bytes()).as_ref())
            }
        };
        let r = cc_with(&server, &format!("{input}.{signature}")).await;
        let why = assert_oauth_error(r, 400, "invalid_dpop_proof").await;
        assert_eq!(why, "the DPoP proof's alg is not allowed", "{alg}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_tenant_that_requires_nonces_hands_one_out_and_accepts_it() {
    let server = TestServer::start_with(Options {
        tenants: vec![
            ("acme", format!("{ACME}\n[dpop]\nrequire_nonce = true\n")),
            ("globex", GLOBEX.into()),
        ],
        ..Default::default()
    })
    .await;
    let k = key();
    let htu = server.url("/acme/connect/token");
    let r = cc_with(&server, &proof(&k, "POST", &htu, json!({}))).await;
    assert_eq!(r.status(), 400);
    let nonce = r.headers()["dpop-nonce"].to_str().unwrap().to_string();
    assert_eq!(error_of(r).await, "use_dpop_nonce");
    let r = cc_with(&server, &proof(&k, "POST", &htu, json!({"nonce": nonce}))).await;
    assert_eq!(r.status(), 200);
    let r = cc_with(
        &server,
        &proof(&k, "POST", &htu, json!({"nonce": "made-up"})),
    )
    .await;
    assert_eq!(error_of(r).await, "use_dpop_nonce");
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_requires_dpop_gets_no_token_without_a_proof() {
    let acme = ACME.replace(
        "client_id = \"acme-m2m\"",
        "client_id = \"acme-m2m\"\nrequire_dpop = true",
    );
    let server = TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.into())],
        ..Default::default()
    })
    .await;
    let r = server
        .token(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_of(r).await, "invalid_dpop_proof");
    server.stop().await;
}

#[tokio::test]
async fn the_code_flow_with_dpop_binds_tokens_and_userinfo_wants_the_proof() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let k = key();
    let ch = challenge(VERIFIER);
    let cb = "http://127.0.0.1:9000/spa/callback";
    // RFC 9449 §10: the code is bound to the key at the authorization request.
    let p = vec![
        ("response_type", "code"),
        ("redirect_uri", cb),
        ("scope", "openid profile"),
        ("code_challenge", ch.as_str()),
        ("code_challenge_method", "S256"),
        ("dpop_jkt", k.kid.as_str()),
    ];
    let r = b.get(&authorize_url(&server, "acme", "acme-spa", &p)).await;
    let r = submit_login(&b, &location(&r), "alice", "alice-password").await;
    let code = params(&location(&r))["code"].clone();
    let token_url = server.url("/acme/connect/token");
    let redeem = |dpop: String| {
        let server = &server;
        let code = code.clone();
        let token_url = token_url.clone();
        async move {
            server
                .http
                .post(token_url)
                .header("DPoP", dpop)
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", cb),
                    ("code_verifier", VERIFIER),
                    ("client_id", "acme-spa"),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let r = redeem(proof(&key(), "POST", &token_url, json!({}))).await;
    // Another key than dpop_jkt.
    let why = assert_oauth_error(r, 400, "invalid_dpop_proof").await;
    assert_eq!(why, "the code is bound to another DPoP key");
    let r = redeem(proof(&k, "POST", &token_url, json!({}))).await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "DPoP");
    let at = t["access_token"].as_str().unwrap();
    let ui = server.url("/acme/connect/userinfo");
    // As a bearer token: refused, with a DPoP challenge.
    let r = server.http.get(&ui).bearer_auth(at).send().await.unwrap();
    assert_bearer_error(&r, 401, "invalid_token");
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("DPoP")
    );
    // With the DPoP scheme but a wrong ath: refused.
    let r = server
        .http
        .get(&ui)
        .header("Authorization", format!("DPoP {at}"))
        .header("DPoP", proof(&k, "GET", &ui, json!({"ath": ath("other")})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_dpop_proof")
    );
    // With a proof by the token's key for this request: the user's claims.
    let r = server
        .http
        .get(&ui)
        .header("Authorization", format!("DPoP {at}"))
        .header("DPoP", proof(&k, "GET", &ui, json!({"ath": ath(at)})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["sub"], "alice");
    server.stop().await;
}
