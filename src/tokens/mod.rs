//! Token contents and handles.

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
