//! `GET /{tenant}/.well-known/openid-configuration` (OIDC Discovery 1.0 §4) and
//! `GET /.well-known/oauth-authorization-server/{tenant}` (RFC 8414 §3): a precomputed document.

use crate::request::CurrentTenant;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

pub async fn openid_configuration(CurrentTenant(tenant): CurrentTenant) -> Response {
    json_document(tenant.discovery.clone(), "public, max-age=3600")
}

pub fn json_document(body: bytes::Bytes, cache: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    // Discovery and keys are public documents that browser-based clients fetch cross-origin.
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    r
}
