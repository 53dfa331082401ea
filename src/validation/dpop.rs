//! DPoP proofs (RFC 9449 §4.3): a JWT signed by the client's key, for one request.

use crate::keys::Alg;
use crate::tokens::jws;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Map, Value};

/// How far in the past a proof's `iat` may be (RFC 9449 §11.1: a short window; clients with
/// a wrong clock are helped by nonces, §8).
pub const PROOF_WINDOW: i64 = 120;
const MAX_PROOF_LEN: usize = 8192;
/// RFC 9449 §4.2: the jti is a unique identifier (e.g. 96 bits or more of randomness, a UUID is
/// 36 characters). 128 bytes allows a hex SHA-512 or a base64url of 96 random bytes; anything
/// longer is no identifier but a payload. The replay memory keeps a fixed-size digest anyway.
pub const MAX_JTI_LEN: usize = 128;

/// A proof that passed every check except replay (the caller records the jti).
#[derive(Debug, Clone)]
pub struct Proof {
    /// RFC 7638 thumbprint of the proof's key: what tokens are bound to (`cnf.jkt`).
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
    pub nonce: Option<String>,
}

/// What the request looks like, to compare with the proof.
pub struct Expect<'a> {
    pub htm: &'a str,
    /// The request URL without query and fragment.
    pub htu: &'a str,
    pub now: i64,
    /// At resource endpoints: the access token, whose hash the proof must carry (`ath`).
    pub access_token: Option<&'a str>,
}

/// Checks a proof (RFC 9449 §4.3); the error text is for logs and `error_description`.
pub fn check(proof: &str, expect: &Expect<'_>) -> Result<Proof, &'static str> {
    if proof.len() > MAX_PROOF_LEN {
        return Err("the DPoP proof is too large");
    }
    let (header, _) = jws::decode_unverified(proof).map_err(|_| "the DPoP proof is not a JWT")?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err("the DPoP proof's typ must be dpop+jwt");
    }
    // §4.3 item 5: asymmetric algorithms only; never none, never a MAC.
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(Alg::parse)
        .filter(|a| Alg::DPOP.contains(a))
        .ok_or("the DPoP proof's alg is not allowed")?;
    let jwk = match header.get("jwk") {
        Some(Value::Object(m)) => m,
        _ => return Err("the DPoP proof carries no jwk"),
    };
    // §4.3 item 7: the key is public; a private member means someone leaked a private key.
    if ["d", "p", "q", "dp", "dq", "qi", "k"]
        .iter()
        .any(|k| jwk.contains_key(*k))
    {
        return Err("the DPoP proof's jwk holds private key material");
    }
    let keyset = serde_json::json!({ "keys": [Value::Object(strip_kid(jwk))] });
    let verified = jws::verify(proof, &keyset, &[alg])
        .map_err(|_| "the DPoP proof's signature does not verify")?;
    let c = &verified.claims;
    let s = |k: &str| c.get(k).and_then(Value::as_str);
    if s("htm") != Some(expect.htm) {
        return Err("the DPoP proof's htm does not match the request");
    }
    // §4.3 item 9: htu compared without query and fragment.
    let htu = s("htu").ok_or("the DPoP proof has no htu")?;
    if normalize(htu).as_deref() != normalize(expect.htu).as_deref() {
        return Err("the DPoP proof's htu does not match the request");
    }
    let iat = c
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or("the DPoP proof has no iat")?;
    if iat < expect.now - PROOF_WINDOW || iat > expect.now + 60 {
        return Err("the DPoP proof's iat is outside the accepted window");
    }
    let jti = s("jti")
        .filter(|j| !j.is_empty())
        .ok_or("the DPoP proof has no jti")?;
    if jti.len() > MAX_JTI_LEN {
        return Err("the DPoP proof's jti is longer than 128 bytes");
    }
    let jti = jti.to_string();
    if let Some(token) = expect.access_token {
        // §4.3 item 12 / §7: ath is the base64url SHA-256 of the access token.
        let ath = B64.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            token.as_bytes(),
        ));
        if s("ath") != Some(ath.as_str()) {
            return Err("the DPoP proof's ath does not match the access token");
        }
    }
    Ok(Proof {
        jkt: thumbprint(jwk).ok_or("the DPoP proof's jwk is not a usable public key")?,
        jti,
        iat,
        nonce: s("nonce").map(str::to_string),
    })
}

fn strip_kid(jwk: &Map<String, Value>) -> Map<String, Value> {
    let mut m = jwk.clone();
    m.remove("kid");
    m.remove("alg");
    m.remove("use");
    m
}

/// RFC 7638 §3.2: the thumbprint covers only the required members of the key type.
pub fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let kty = jwk.get("kty")?.as_str()?;
    let members: &[&str] = match kty {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut m = Map::new();
    for k in members {
        m.insert((*k).to_string(), jwk.get(*k)?.clone());
    }
    Some(crate::keys::signer::thumbprint(&Value::Object(m)))
}

/// scheme://host[:port]/path, lower-cased scheme and host, default ports dropped.
fn normalize(u: &str) -> Option<String> {
    let mut url = url::Url::parse(u).ok()?;
    url.set_query(None);
    url.set_fragment(None);
    Some(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Signer;
    use crate::keys::signer::generate_pkcs8;
    use serde_json::json;

    fn key() -> Signer {
        Signer::from_pkcs8(Alg::ES256, &generate_pkcs8(Alg::ES256, 2048).unwrap()).unwrap()
    }

    fn proof(k: &Signer, claims: Value) -> String {
        k.sign_with_header(
            &json!({"typ": "dpop+jwt", "jwk": k.bare_public_jwk()}),
            &claims,
        )
        .unwrap()
    }

    const URL: &str = "https://login.example/acme/connect/token";

    fn expect(now: i64) -> Expect<'static> {
        Expect {
            htm: "POST",
            htu: URL,
            now,
            access_token: None,
        }
    }

    #[test]
    fn a_fresh_proof_for_this_request_passes_and_yields_the_key_thumbprint() {
        let k = key();
        let p = proof(
            &k,
            json!({"htm": "POST", "htu": format!("{URL}?x=1"), "iat": 1000, "jti": "a"}),
        );
        let ok = check(&p, &expect(1000)).unwrap();
        assert_eq!(ok.jkt, k.kid, "the RFC 7638 thumbprint, as our kids are");
    }

    #[test]
    fn method_url_time_and_ath_are_checked() {
        let k = key();
        let base = |c: Value| proof(&k, c);
        assert!(
            check(
                &base(json!({"htm": "GET", "htu": URL, "iat": 1000, "jti": "a"})),
                &expect(1000)
            )
            .is_err()
        );
        assert!(check(&base(json!({"htm": "POST", "htu": "https://other.example/x", "iat": 1000, "jti": "a"})), &expect(1000)).is_err());
        assert!(
            check(
                &base(
                    json!({"htm": "POST", "htu": URL, "iat": 1000 - PROOF_WINDOW - 1, "jti": "a"})
                ),
                &expect(1000)
            )
            .is_err()
        );
        let p = base(json!({"htm": "GET", "htu": URL, "iat": 1000, "jti": "a", "ath": "wrong"}));
        let e = Expect {
            htm: "GET",
            htu: URL,
            now: 1000,
            access_token: Some("tok"),
        };
        assert!(check(&p, &e).is_err());
    }

    #[test]
    fn a_jti_longer_than_128_bytes_is_refused() {
        let k = key();
        let with_jti = |jti: String| {
            proof(
                &k,
                json!({"htm": "POST", "htu": URL, "iat": 1000, "jti": jti}),
            )
        };
        assert!(check(&with_jti("j".repeat(MAX_JTI_LEN)), &expect(1000)).is_ok());
        assert_eq!(
            check(&with_jti("j".repeat(MAX_JTI_LEN + 1)), &expect(1000)).unwrap_err(),
            "the DPoP proof's jti is longer than 128 bytes"
        );
        assert_eq!(
            check(&with_jti(String::new()), &expect(1000)).unwrap_err(),
            "the DPoP proof has no jti"
        );
    }

    #[test]
    fn alg_none_hs256_and_private_keys_are_refused() {
        let k = key();
        let claims = json!({"htm": "POST", "htu": URL, "iat": 1000, "jti": "a"});
        let body = B64.encode(claims.to_string());
        for alg in ["none", "HS256"] {
            let h = B64.encode(
                json!({"typ": "dpop+jwt", "alg": alg, "jwk": k.bare_public_jwk()}).to_string(),
            );
            assert!(
                check(&format!("{h}.{body}.c2ln"), &expect(1000)).is_err(),
                "{alg}"
            );
        }
        let mut jwk = k.bare_public_jwk();
        jwk["d"] = json!("AAAA");
        let p = k
            .sign_with_header(&json!({"typ": "dpop+jwt", "jwk": jwk}), &claims)
            .unwrap();
        assert_eq!(
            check(&p, &expect(1000)).unwrap_err(),
            "the DPoP proof's jwk holds private key material"
        );
        let p = k
            .sign_with_header(&json!({"typ": "JWT", "jwk": k.bare_public_jwk()}), &claims)
            .unwrap();
        assert!(check(&p, &expect(1000)).is_err(), "typ must be dpop+jwt");
    }
}

pub use service::*;

/// DPoP at the endpoints: header extraction, server nonces, replay across nodes.
mod service {
    use super::{Expect, PROOF_WINDOW, Proof, check};
    use crate::error::{ErrorCode, InternalError, OAuthError};
    use crate::registry::Tenant;
    use crate::request::ListenerKind;
    use crate::request::RequestContext;
    use crate::state::AppState;
    use axum::http::HeaderMap;

    /// Server nonces change every this many seconds; the previous one is still accepted.
    const NONCE_WINDOW: i64 = 300;

    /// The nonce a client should put in its next proof (RFC 9449 §8): a MAC of the tenant and
    /// the time window, so nothing is stored and every node makes the same one.
    pub fn current_nonce(state: &AppState, tenant: &Tenant) -> String {
        nonce_for(state, tenant, state.now().div_euclid(NONCE_WINDOW))
    }

    fn nonce_for(state: &AppState, tenant: &Tenant, window: i64) -> String {
        let mac = state
            .master
            .nonce_mac(format!("dpop-nonce\0{}\0{window}", tenant.slug()).as_bytes());
        format!("{window:x}.{mac}")
    }

    fn nonce_is_current(state: &AppState, tenant: &Tenant, nonce: &str) -> bool {
        let window = state.now().div_euclid(NONCE_WINDOW);
        [window, window - 1].into_iter().any(|w| {
            aws_lc_rs::constant_time::verify_slices_are_equal(
                nonce_for(state, tenant, w).as_bytes(),
                nonce.as_bytes(),
            )
            .is_ok()
        })
    }

    /// The URL the client called, as a proof's `htu` must name it (the mTLS alias has its own).
    pub fn request_url(tenant: &Tenant, ctx: &RequestContext) -> String {
        let base = if ctx.listener == Some(ListenerKind::Mtls) {
            &tenant.spec.mtls_base_url
        } else {
            &tenant.spec.issuer
        };
        let below = ctx.path.get(tenant.slug().len() + 1..).unwrap_or("");
        format!("{base}{below}")
    }

    /// Failures of a DPoP proof, as the token endpoint answers them (RFC 9449 §5, §8).
    fn refuse(d: &'static str) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidDpopProof, d)
    }

    /// The request's DPoP proof, checked, or `None` without one. `access_token` is given at
    /// resource endpoints (the proof must carry its hash).
    pub async fn verify_request(
        state: &AppState,
        tenant: &Tenant,
        ctx: &RequestContext,
        headers: &HeaderMap,
        method: &str,
        access_token: Option<&str>,
    ) -> Result<Option<Proof>, OAuthError> {
        let mut values = headers.get_all("dpop").iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        // §4.3 item 1: exactly one DPoP header.
        if values.next().is_some() {
            return Err(refuse("more than one DPoP header"));
        }
        let proof_jwt = value
            .to_str()
            .map_err(|_| refuse("the DPoP header is not text"))?;
        let htu = request_url(tenant, ctx);
        let proof = check(
            proof_jwt,
            &Expect {
                htm: method,
                htu: &htu,
                now: state.now(),
                access_token,
            },
        )
        .map_err(refuse)?;
        if tenant.spec.dpop_require_nonce
            && !proof
                .nonce
                .as_deref()
                .is_some_and(|n| nonce_is_current(state, tenant, n))
        {
            return Err(OAuthError::new(
                ErrorCode::UseDpopNonce,
                "the DPoP proof must carry the server's nonce",
            )
            .with_dpop_nonce(current_nonce(state, tenant)));
        }
        // §11.1: each proof is used once, on every node, while its iat is acceptable.
        let key = format!("{}:{}", proof.jkt, proof.jti);
        if !state
            .first_use(tenant.slug(), &key, proof.iat + PROOF_WINDOW + 60)
            .await
            .map_err(InternalError::into_oauth)?
        {
            return Err(refuse("the DPoP proof was used before"));
        }
        Ok(Some(proof))
    }
}
