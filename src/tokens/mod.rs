//! Token contents and handles.

pub mod access;
pub mod jws;
pub mod user_code;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Serialize;

/// RFC 9068 §2.2 claims of a JWT access token.
#[derive(Debug, Serialize)]
pub struct AccessTokenClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: Audience<'a>,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub jti: &'a str,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// RFC 8705 §3.1 / RFC 9449 §6: the key or certificate the token is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<serde_json::Value>,
}

/// `cnf` of a sender-constrained token: the certificate (RFC 8705 §3.1) and/or the DPoP key
/// (RFC 9449 §6.1) it is bound to.
pub fn cnf(x5t: Option<&str>, jkt: Option<&str>) -> Option<serde_json::Value> {
    if x5t.is_none() && jkt.is_none() {
        return None;
    }
    let mut m = serde_json::Map::new();
    if let Some(t) = x5t {
        m.insert("x5t#S256".into(), t.into());
    }
    if let Some(k) = jkt {
        m.insert("jkt".into(), k.into());
    }
    Some(serde_json::Value::Object(m))
}

/// RFC 9068 claims of an access token issued for a user (authorization code, refresh token).
#[derive(Debug, Serialize, serde::Deserialize, Clone)]
pub struct UserAccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: serde_json::Value,
    pub client_id: String,
    pub scope: String,
    pub jti: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub amr: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cnf: Option<serde_json::Value>,
    /// How the user signed in: `local` or the upstream provider's id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub idp: Option<String>,
}

/// OIDC Core §3.1.3.6 / §3.3.2.11: the left half of the hash of `value`, with the hash of the
/// id token's signing algorithm (SHA-256 for RS256, PS256 and ES256; SHA-512 for Ed25519).
pub fn half_hash(alg: crate::keys::Alg, value: &str) -> String {
    let algorithm = match alg {
        crate::keys::Alg::EdDSA => &aws_lc_rs::digest::SHA512,
        _ => &aws_lc_rs::digest::SHA256,
    };
    let d = aws_lc_rs::digest::digest(algorithm, value.as_bytes());
    let bytes = d.as_ref();
    B64.encode(bytes.get(..bytes.len() / 2).unwrap_or_default())
}

/// `aud` is a single string when there is one audience, else an array (RFC 7519 §4.1.3).
#[derive(Debug)]
pub struct Audience<'a>(pub &'a [String]);

impl Serialize for Audience<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

/// A fresh unique token identifier (128 random bits).
pub fn new_jti() -> String {
    B64.encode(crate::secrets::random_bytes::<16>())
}

/// A fresh opaque handle (256 random bits) for reference tokens.
pub fn new_handle() -> String {
    B64.encode(crate::secrets::random_bytes::<32>())
}

/// How a handle is stored: its SHA-256, so a database leak reveals no usable token.
pub fn handle_hash(handle: &str) -> String {
    B64.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        handle.as_bytes(),
    ))
}

/// The claims of `user` that the identity scopes in `scopes` release (OIDC Core §5.4).
pub fn user_claims(
    tenant: &crate::registry::Tenant,
    user: &crate::config::tenant::UserSpec,
    scopes: &[String],
) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    for r in tenant
        .spec
        .identity_resources
        .iter()
        .filter(|r| scopes.contains(&r.name))
    {
        for claim in &r.claims {
            if let Some(v) = user.claims.get(claim) {
                out.insert(claim.clone(), v.clone());
            }
        }
    }
    out
}
