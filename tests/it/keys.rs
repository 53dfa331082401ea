use crate::support::*;
use portcullis::clock::FixedClock;
use portcullis::stores::KeyStore;
use serde_json::Value;

const T0: i64 = 1_800_000_000;

async fn es256_kids(s: &TestServer) -> Vec<String> {
    let (_, j) = s.get_json("/acme/.well-known/jwks").await;
    j["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == "ES256")
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

async fn token_kid(s: &TestServer) -> String {
    let body: Value = s
        .token_json(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[("grant_type", "client_credentials")],
        )
        .await;
    jwt_header(body["access_token"].as_str().unwrap())["kid"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn keys_rotate_announce_then_sign_then_retire_then_disappear() {
    let clock = FixedClock::new(T0);
    let s = TestServer::start_with(Options {
        clock: Some(clock.clone()),
        keys:
            "rotation_interval_seconds = 1000\npropagation_seconds = 100\nretention_seconds = 200"
                .into(),
        ..Default::default()
    })
    .await;
    let refresh = || portcullis::registry::sync::refresh(s.state());

    // A new tenant's first key signs at once.
    let k0 = es256_kids(&s).await;
    assert_eq!(k0.len(), 1);
    assert_eq!(token_kid(&s).await, k0[0]);

    // Propagation time before k0 expires, its successor is announced but does not sign yet.
    clock.set(T0 + 899);
    refresh().await.unwrap();
    assert_eq!(es256_kids(&s).await, k0);
    clock.set(T0 + 900);
    refresh().await.unwrap();
    let announced = es256_kids(&s).await;
    assert_eq!(announced.len(), 2, "successor announced in JWKS");
    assert_eq!(announced[0], k0[0], "the signing key is listed first");
    let k1 = announced[1].clone();
    assert_eq!(
        token_kid(&s).await,
        k0[0],
        "the announced key does not sign yet"
    );

    // The successor signs once its propagation time has passed; k0 stays published (retired).
    clock.set(T0 + 1000);
    refresh().await.unwrap();
    assert_eq!(token_kid(&s).await, k1);
    assert_eq!(es256_kids(&s).await, vec![k1.clone(), k0[0].clone()]);

    // After the retention time k0 is gone from JWKS and from the store.
    clock.set(T0 + 1000 + 200);
    refresh().await.unwrap();
    assert_eq!(es256_kids(&s).await, vec![k1.clone()]);
    let stored = s.state().store.list_keys("acme").await.unwrap();
    assert!(stored.iter().all(|r| r.kid != k0[0]));

    // Tokens signed with the new key verify against the published JWKS with an independent library.
    let body: Value = s
        .token_json(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[("grant_type", "client_credentials")],
        )
        .await;
    let (_, jwks) = s.get_json("/acme/.well-known/jwks").await;
    verify_jwt(
        body["access_token"].as_str().unwrap(),
        &jwks,
        &s.url("/acme"),
        "https://api.acme.test",
    );
    s.stop().await;
}

#[tokio::test]
async fn a_first_rsa_key_is_made_when_first_needed_and_no_jwk_set_is_served_without_it() {
    use portcullis::keys::Alg;
    let s = TestServer::start_with(Options {
        lazy_keys: true,
        ..Default::default()
    })
    .await;
    let stored_algs = || async {
        let mut algs: Vec<Alg> = s
            .state()
            .store
            .list_keys("acme")
            .await
            .unwrap()
            .iter()
            .map(|r| r.alg)
            .collect();
        algs.sort_by_key(|a| a.as_str());
        algs
    };
    // At start only the EC key is made: an RSA key costs tens of milliseconds of a core, which
    // ten thousand tenants would spend before serving.
    assert_eq!(stored_algs().await, vec![Alg::ES256]);
    // Discovery and a client_credentials token (ES256) need none.
    let (status, _) = s.get_json("/acme/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    assert!(!token_kid(&s).await.is_empty());
    // Nor does the periodic sync make it.
    portcullis::registry::sync::refresh(s.state())
        .await
        .unwrap();
    assert_eq!(stored_algs().await, vec![Alg::ES256]);
    // The JWK Set is never served without it: it is made first, and signs at once.
    let (status, jwks) = s.get_json("/acme/.well-known/jwks").await;
    assert_eq!(status, 200);
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    assert!(
        published.contains(&"RS256") && published.contains(&"ES256"),
        "{jwks}"
    );
    assert_eq!(stored_algs().await, vec![Alg::ES256, Alg::RS256]);
    let keys = s.state().registry.get("acme").unwrap().keys.load();
    assert!(keys.complete() && keys.signer(Alg::RS256).is_some());
    s.stop().await;
}

#[tokio::test]
async fn private_keys_are_stored_sealed_under_the_master_key_for_their_tenant_and_kid() {
    use base64::Engine;
    use portcullis::keys::{MasterKey, Signer};
    let master = [3u8; 32];
    let s = TestServer::start_with(Options {
        keys: format!(
            "master_key = \"{}\"",
            base64::engine::general_purpose::STANDARD.encode(master)
        ),
        ..Default::default()
    })
    .await;
    // The JWK Set first: it makes the tenant's first RSA key, made when first needed.
    let (_, jwks) = s.get_json("/acme/.well-known/jwks").await;
    let records = s.state().store.list_keys("acme").await.unwrap();
    assert!(records.len() >= 2, "an RS256 and an ES256 key");
    let right = MasterKey::from_bytes(&master).unwrap();
    let wrong = MasterKey::from_bytes(&[4u8; 32]).unwrap();
    // The additional data a sealed key is bound to (keys::ring::KeyRecord::aad).
    let aad = |tenant: &str, kid: &str| format!("portcullis-key|{tenant}|{kid}").into_bytes();
    for r in &records {
        // It opens with the master key, and holds the private half of the published key.
        let der = right.open(&r.private_sealed, &aad("acme", &r.kid)).unwrap();
        let signer = Signer::from_pkcs8(r.alg, &der).unwrap();
        assert_eq!(signer.kid, r.kid);
        let published = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == r.kid.as_str())
            .expect("published");
        assert_eq!(
            serde_json::to_value(signer.public_jwk()).unwrap()["kid"],
            published["kid"]
        );
        // Nothing of the private key is in the stored bytes in clear: no 16-byte run of its
        // PKCS#8 DER (which holds the scalar, or the RSA private exponent and primes).
        let runs: std::collections::HashSet<&[u8]> = der.windows(16).collect();
        assert!(
            !r.private_sealed.windows(16).any(|w| runs.contains(w)),
            "{} {}: the stored key contains its DER in clear",
            r.alg,
            r.kid
        );
        // Not with another master key, nor as another tenant's or another kid's key.
        assert!(wrong.open(&r.private_sealed, &aad("acme", &r.kid)).is_err());
        assert!(
            right
                .open(&r.private_sealed, &aad("globex", &r.kid))
                .is_err()
        );
        assert!(
            right
                .open(&r.private_sealed, &aad("acme", "other"))
                .is_err()
        );
    }
    s.stop().await;
}
