//! Verifying compact JWS (RFC 7515) against a JWK Set: request objects (RFC 9101), our own id
//! tokens as `id_token_hint`. Only asymmetric algorithms; `none` and HMAC are never accepted.

use crate::keys::Alg;
use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Map, Value};

/// Why a JWS was refused. Details are for logs; callers answer with one protocol error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("malformed JWS")]
    Malformed,
    #[error("algorithm not allowed")]
    Algorithm,
    #[error("no matching key")]
    NoKey,
    #[error("bad signature")]
    Signature,
}

/// A verified JWS: its header and claims.
#[derive(Debug)]
pub struct Verified {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
}

type JsonObject = Map<String, Value>;

/// Splits and decodes without verifying (to read `kid`, `alg`, `typ` before choosing a key).
pub fn decode_unverified(compact: &str) -> Result<(JsonObject, JsonObject), JwsError> {
    let mut parts = compact.split('.');
    let (Some(h), Some(p), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    let object = |s: &str| -> Result<Map<String, Value>, JwsError> {
        let bytes = B64.decode(s).map_err(|_| JwsError::Malformed)?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(JwsError::Malformed),
        }
    };
    Ok((object(h)?, object(p)?))
}

/// Verifies `compact` with a key of `jwks` (an object with `keys`) whose algorithm is in
/// `allowed`. A `kid` in the header selects the key; without one every suitable key is tried.
pub fn verify(compact: &str, jwks: &Value, allowed: &[Alg]) -> Result<Verified, JwsError> {
    let (header, claims) = decode_unverified(compact)?;
    // RFC 7515 §4.1.11: we understand no critical extensions.
    if header.contains_key("crit") {
        return Err(JwsError::Malformed);
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(Alg::parse)
        .filter(|a| allowed.contains(a))
        .ok_or(JwsError::Algorithm)?;
    let kid = header.get("kid").and_then(Value::as_str);
    let (signing_input, sig_b64) = compact.rsplit_once('.').ok_or(JwsError::Malformed)?;
    let sig = B64.decode(sig_b64).map_err(|_| JwsError::Malformed)?;
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(JwsError::NoKey)?;
    let mut candidates = keys.iter().filter(|k| {
        kid.is_none_or(|kid| k.get("kid").and_then(Value::as_str) == Some(kid))
            && k.get("use")
                .and_then(Value::as_str)
                .is_none_or(|u| u == "sig")
            && k.get("alg")
                .and_then(Value::as_str)
                .is_none_or(|a| a == alg.as_str())
    });
    let mut found = false;
    for k in candidates.by_ref() {
        let Some(ok) = verify_with(k, alg, signing_input.as_bytes(), &sig) else {
            continue;
        };
        found = true;
        if ok {
            return Ok(Verified { header, claims });
        }
    }
    Err(if found {
        JwsError::Signature
    } else {
        JwsError::NoKey
    })
}

/// Verifies an HMAC JWS (HS256/384/512, RFC 7518 §3.2) with a shared secret; the claims.
pub fn verify_hmac(compact: &str, secret: &[u8]) -> Result<Map<String, Value>, JwsError> {
    let (header, claims) = decode_unverified(compact)?;
    if header.contains_key("crit") {
        return Err(JwsError::Malformed);
    }
    let algorithm = match header.get("alg").and_then(Value::as_str) {
        Some("HS256") => aws_lc_rs::hmac::HMAC_SHA256,
        Some("HS384") => aws_lc_rs::hmac::HMAC_SHA384,
        Some("HS512") => aws_lc_rs::hmac::HMAC_SHA512,
        _ => return Err(JwsError::Algorithm),
    };
    // RFC 7518 §3.2: the key is at least as long as the hash output.
    if secret.len() < algorithm.digest_algorithm().output_len() {
        return Err(JwsError::NoKey);
    }
    let (signing_input, sig_b64) = compact.rsplit_once('.').ok_or(JwsError::Malformed)?;
    let sig = B64.decode(sig_b64).map_err(|_| JwsError::Malformed)?;
    let key = aws_lc_rs::hmac::Key::new(algorithm, secret);
    aws_lc_rs::hmac::verify(&key, signing_input.as_bytes(), &sig)
        .map_err(|_| JwsError::Signature)?;
    Ok(claims)
}

/// `None` when the key does not fit the algorithm; otherwise whether the signature verifies.
fn verify_with(jwk: &Value, alg: Alg, message: &[u8], sig: &[u8]) -> Option<bool> {
    let member = |name: &str| -> Option<Vec<u8>> {
        jwk.get(name)
            .and_then(Value::as_str)
            .and_then(|s| B64.decode(s).ok())
    };
    // A JWK that carries a private member is refused: nobody should publish one.
    if jwk.get("d").is_some() {
        return None;
    }
    let kty = jwk.get("kty").and_then(Value::as_str)?;
    match (alg, kty) {
        (Alg::RS256 | Alg::PS256, "RSA") => {
            let n = member("n")?;
            let e = member("e")?;
            let params: &signature::RsaParameters = if alg == Alg::RS256 {
                &signature::RSA_PKCS1_2048_8192_SHA256
            } else {
                &signature::RSA_PSS_2048_8192_SHA256
            };
            Some(
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok(),
            )
        }
        (Alg::ES256, "EC") => {
            if jwk.get("crv").and_then(Value::as_str) != Some("P-256") {
                return None;
            }
            let x = member("x")?;
            let y = member("y")?;
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            Some(
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok(),
            )
        }
        (Alg::EdDSA, "OKP") => {
            if jwk.get("crv").and_then(Value::as_str) != Some("Ed25519") {
                return None;
            }
            let x = member("x")?;
            Some(
                UnparsedPublicKey::new(&signature::ED25519, x)
                    .verify(message, sig)
                    .is_ok(),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Signer;
    use crate::keys::signer::generate_pkcs8;
    use serde_json::json;

    #[test]
    fn every_algorithm_round_trips_and_a_changed_payload_fails() {
        for alg in Alg::ALL {
            let s = Signer::from_pkcs8(alg, &generate_pkcs8(alg, 2048).unwrap()).unwrap();
            let jwks = json!({"keys": [s.public_jwk()]});
            let jwt = s.sign_jwt("JWT", &json!({"sub": "alice"})).unwrap();
            let v = verify(&jwt, &jwks, &Alg::ALL).unwrap();
            assert_eq!(v.claims["sub"], "alice");
            let mut parts: Vec<&str> = jwt.split('.').collect();
            let forged = B64.encode(br#"{"sub":"mallory"}"#);
            parts[1] = &forged;
            assert_eq!(
                verify(&parts.join("."), &jwks, &Alg::ALL).unwrap_err(),
                JwsError::Signature,
                "{alg}"
            );
        }
    }

    #[test]
    fn alg_none_and_unlisted_algorithms_are_refused() {
        let header = B64.encode(br#"{"alg":"none"}"#);
        let body = B64.encode(br#"{"sub":"x"}"#);
        let jwks = json!({"keys": []});
        assert_eq!(
            verify(&format!("{header}.{body}."), &jwks, &Alg::ALL).unwrap_err(),
            JwsError::Algorithm
        );
        let s = Signer::from_pkcs8(Alg::ES256, &generate_pkcs8(Alg::ES256, 2048).unwrap()).unwrap();
        let jwt = s.sign_jwt("JWT", &json!({})).unwrap();
        assert_eq!(
            verify(&jwt, &json!({"keys": [s.public_jwk()]}), &[Alg::RS256]).unwrap_err(),
            JwsError::Algorithm
        );
    }

    #[test]
    fn a_key_that_is_not_registered_does_not_verify() {
        let a = Signer::from_pkcs8(Alg::ES256, &generate_pkcs8(Alg::ES256, 2048).unwrap()).unwrap();
        let b = Signer::from_pkcs8(Alg::ES256, &generate_pkcs8(Alg::ES256, 2048).unwrap()).unwrap();
        let jwt = a.sign_jwt("JWT", &json!({})).unwrap();
        let mut jwk = b.public_jwk();
        jwk["kid"] = a.public_jwk()["kid"].clone();
        assert_eq!(
            verify(&jwt, &json!({"keys": [jwk]}), &Alg::ALL).unwrap_err(),
            JwsError::Signature
        );
    }
}
