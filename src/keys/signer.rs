//! One private signing key: JWS signing (RFC 7515 compact form) and its public JWK.

use super::Alg;
use crate::error::InternalError;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RSA_PSS_SHA256,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

enum Inner {
    Ec(EcdsaKeyPair),
    Rsa(signature::RsaKeyPair),
    Ed(Ed25519KeyPair),
}

pub struct Signer {
    pub alg: Alg,
    pub kid: String,
    inner: Inner,
    rng: SystemRandom,
    /// Base64url of `{"alg":…,"typ":"at+jwt","kid":…}`, the header of every JWT access token.
    at_jwt_header: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Generates a new private key for `alg`, as PKCS#8 DER.
pub fn generate_pkcs8(alg: Alg, rsa_bits: u32) -> Result<Vec<u8>, InternalError> {
    let rng = SystemRandom::new();
    match alg {
        Alg::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| InternalError::Crypto("EC key generation")),
        Alg::EdDSA => Ed25519KeyPair::generate_pkcs8v1(&rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| InternalError::Crypto("Ed25519 key generation")),
        Alg::RS256 | Alg::PS256 => {
            let size = match rsa_bits {
                3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
                4096 => aws_lc_rs::rsa::KeySize::Rsa4096,
                _ => aws_lc_rs::rsa::KeySize::Rsa2048,
            };
            let kp = signature::RsaKeyPair::generate(size)
                .map_err(|_| InternalError::Crypto("RSA key generation"))?;
            let der = kp
                .as_der()
                .map_err(|_| InternalError::Crypto("RSA key export"))?;
            Ok(der.as_ref().to_vec())
        }
    }
}

impl Signer {
    /// Loads a PKCS#8 key; the `kid` is the RFC 7638 thumbprint of its public key.
    pub fn from_pkcs8(alg: Alg, pkcs8: &[u8]) -> Result<Self, InternalError> {
        let inner = match alg {
            Alg::ES256 => Inner::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(|_| InternalError::Crypto("EC key"))?,
            ),
            Alg::EdDSA => Inner::Ed(
                Ed25519KeyPair::from_pkcs8(pkcs8)
                    .map_err(|_| InternalError::Crypto("Ed25519 key"))?,
            ),
            Alg::RS256 | Alg::PS256 => Inner::Rsa(
                signature::RsaKeyPair::from_pkcs8(pkcs8)
                    .map_err(|_| InternalError::Crypto("RSA key"))?,
            ),
        };
        let mut signer = Self {
            alg,
            kid: String::new(),
            inner,
            rng: SystemRandom::new(),
            at_jwt_header: String::new(),
        };
        signer.kid = thumbprint(&signer.public_members());
        signer.at_jwt_header = signer.header_b64("at+jwt");
        Ok(signer)
    }

    /// The key's public members only (RFC 7638 §3.2 order-independent).
    fn public_members(&self) -> Value {
        match &self.inner {
            Inner::Ec(k) => {
                // Uncompressed point: 0x04 ‖ x ‖ y (SEC 1 §2.3.3)
                let p = k.public_key().as_ref();
                let x = p.get(1..33).unwrap_or_default();
                let y = p.get(33..65).unwrap_or_default();
                json!({"crv": "P-256", "kty": "EC", "x": B64.encode(x), "y": B64.encode(y)})
            }
            Inner::Ed(k) => {
                json!({"crv": "Ed25519", "kty": "OKP", "x": B64.encode(k.public_key().as_ref())})
            }
            Inner::Rsa(k) => {
                let pk = k.public_key();
                json!({
                    "e": B64.encode(pk.exponent().big_endian_without_leading_zero()),
                    "kty": "RSA",
                    "n": B64.encode(pk.modulus().big_endian_without_leading_zero()),
                })
            }
        }
    }

    /// The public JWK published in JWKS (RFC 7517 §4).
    pub fn public_jwk(&self) -> Value {
        let mut jwk = self.public_members();
        if let Value::Object(m) = &mut jwk {
            m.insert("kid".into(), Value::String(self.kid.clone()));
            m.insert("alg".into(), Value::String(self.alg.as_str().into()));
            m.insert("use".into(), Value::String("sig".into()));
        }
        jwk
    }

    pub fn header_b64(&self, typ: &str) -> String {
        let header = json!({"alg": self.alg.as_str(), "typ": typ, "kid": self.kid});
        B64.encode(header.to_string())
    }

    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, InternalError> {
        match &self.inner {
            Inner::Ec(k) => k
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| InternalError::Crypto("sign")),
            Inner::Ed(k) => Ok(k.sign(message).as_ref().to_vec()),
            Inner::Rsa(k) => {
                let padding: &'static dyn signature::RsaEncoding = if self.alg == Alg::PS256 {
                    &RSA_PSS_SHA256
                } else {
                    &RSA_PKCS1_SHA256
                };
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(padding, &self.rng, message, &mut sig)
                    .map_err(|_| InternalError::Crypto("sign"))?;
                Ok(sig)
            }
        }
    }

    /// A compact JWS with a header of the caller's choosing (`alg` is set to this key's).
    pub fn sign_with_header(
        &self,
        header: &Value,
        claims: &impl serde::Serialize,
    ) -> Result<String, InternalError> {
        let mut header = header.clone();
        if let Value::Object(m) = &mut header {
            m.insert("alg".into(), Value::String(self.alg.as_str().into()));
        }
        let mut out = B64.encode(header.to_string());
        out.push('.');
        B64.encode_string(serde_json::to_vec(claims)?, &mut out);
        let signature = self.sign(out.as_bytes())?;
        out.push('.');
        B64.encode_string(signature, &mut out);
        Ok(out)
    }

    /// The public JWK without `kid`, `alg` and `use` (what a DPoP proof carries).
    pub fn bare_public_jwk(&self) -> Value {
        self.public_members()
    }

    /// A compact JWS over `claims` with the header `{alg, typ, kid}`.
    pub fn sign_jwt(
        &self,
        typ: &str,
        claims: &impl serde::Serialize,
    ) -> Result<String, InternalError> {
        let header;
        let header_b64 = if typ == "at+jwt" {
            &self.at_jwt_header
        } else {
            header = self.header_b64(typ);
            &header
        };
        let payload = serde_json::to_vec(claims)?;
        let mut out = String::with_capacity(header_b64.len() + payload.len() * 4 / 3 + 100);
        out.push_str(header_b64);
        out.push('.');
        B64.encode_string(&payload, &mut out);
        let signature = self.sign(out.as_bytes())?;
        out.push('.');
        B64.encode_string(signature, &mut out);
        Ok(out)
    }
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url) of the required public members.
pub fn thumbprint(members: &Value) -> String {
    // serde_json's default map is a BTreeMap, so the members serialize in lexicographic order
    // without whitespace, as RFC 7638 §3 requires.
    let canonical = members.to_string();
    B64.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical.as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_signs_a_jwt_with_its_thumbprint_as_kid() {
        for alg in Alg::ALL {
            let der = generate_pkcs8(alg, 2048).unwrap();
            let s = Signer::from_pkcs8(alg, &der).unwrap();
            let jwt = s.sign_jwt("at+jwt", &json!({"sub": "x"})).unwrap();
            assert_eq!(jwt.split('.').count(), 3);
            assert_eq!(s.public_jwk()["kid"], s.kid.as_str());
            assert_eq!(s.kid.len(), 43);
        }
    }

    #[test]
    fn rfc_7638_example_thumbprint() {
        // RFC 7638 §3.1
        let jwk = json!({
            "e": "AQAB", "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        });
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
