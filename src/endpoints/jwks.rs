//! `GET /{tenant}/.well-known/jwks` (RFC 7517 §5): announced, active and retired public keys.

use super::discovery::json_document;
use crate::request::CurrentTenant;
use axum::response::{IntoResponse, Response};

pub async fn jwks(CurrentTenant(tenant): CurrentTenant) -> Response {
    let mut r = json_document(tenant.keys.load().jwks.clone(), "public, max-age=300");
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/jwk-set+json"),
    );
    r.into_response()
}
