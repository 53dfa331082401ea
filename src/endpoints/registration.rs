//! `/{tenant}/connect/register`: dynamic client registration (RFC 7591 §3) and, at
//! `/connect/register/{client_id}`, its management with the registration access token
//! (RFC 7592 §2: GET reads, PUT replaces and rotates the token, DELETE removes).
//!
//! Errors are RFC 7591 §3.2.2's (`invalid_redirect_uri`, `invalid_client_metadata`,
//! `invalid_software_statement`, `unapproved_software_statement`, 400), or RFC 6750 §3's 401
//! for a missing or wrong token; each refusal is a security event.

use super::admin::json_body;
use crate::clients::registration::{self, Refusal};
use crate::config::metadata::MetadataError;
use crate::error::{BearerError, ErrorCode, OAuthError};
use crate::registry::Tenant;
use crate::request::{CurrentTenant, RequestContext};
use crate::state::AppState;
use crate::validation::params::Path;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub async fn register(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = json_metadata(&headers) {
        return refused(&tenant, &ctx, e);
    }
    let result =
        registration::register(&state, &tenant, bearer(&headers), ctx.client_ip, &body).await;
    match result {
        Ok(v) => {
            // RFC 9110 §15.3.2: the new resource is the client's management URI.
            let location = v
                .get("registration_client_uri")
                .and_then(|u| u.as_str())
                .and_then(|u| HeaderValue::from_str(u).ok());
            let mut r = super::admin::json_response(StatusCode::CREATED, v);
            if let Some(loc) = location {
                r.headers_mut().insert(header::LOCATION, loc);
            }
            r
        }
        Err(e) => refused(&tenant, &ctx, e),
    }
}

pub async fn read(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    Path((_, client_id)): Path<(String, String)>,
) -> Response {
    match registration::read(&state, &tenant, &client_id, bearer(&headers)).await {
        Ok(v) => super::admin::json_response(StatusCode::OK, v),
        Err(e) => refused(&tenant, &ctx, e),
    }
}

pub async fn update(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    Path((_, client_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Err(e) = json_metadata(&headers) {
        return refused(&tenant, &ctx, e);
    }
    match registration::update(&state, &tenant, &client_id, bearer(&headers), &body).await {
        Ok(v) => super::admin::json_response(StatusCode::OK, v),
        Err(e) => refused(&tenant, &ctx, e),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    Path((_, client_id)): Path<(String, String)>,
) -> Response {
    match registration::delete(&state, &tenant, &client_id, bearer(&headers)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => refused(&tenant, &ctx, e),
    }
}

/// RFC 7591 §3.1, RFC 7592 §2.2: the metadata is sent as `application/json`.
fn json_metadata(headers: &HeaderMap) -> Result<(), Refusal> {
    if json_body(headers) {
        Ok(())
    } else {
        Err(Refusal::Metadata(MetadataError::Metadata(
            "send the client metadata as application/json (RFC 7591 §3.1)".into(),
        )))
    }
}

/// RFC 6750 §2.1: the Authorization header's bearer token.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
}

/// The wire answer of a refusal, logged as a security event.
fn refused(tenant: &Tenant, ctx: &RequestContext, e: Refusal) -> Response {
    let event = |code: &str, description: &str| {
        crate::events::request_rejected(
            tenant.slug(),
            "registration",
            &ctx.request_id,
            code,
            description,
        );
    };
    let forbidden = |m: &'static str| {
        OAuthError::new(ErrorCode::AccessDenied, m).with_status(StatusCode::FORBIDDEN)
    };
    let e = match e {
        Refusal::Internal(e) => return e.failed("client registration").into_response(),
        Refusal::Unauthorized(why) => {
            event("invalid_token", why);
            return BearerError::invalid_token(&tenant.spec.issuer, why).into_response();
        }
        Refusal::Closed => forbidden("client registration is closed in this tenant"),
        Refusal::Full => forbidden("this tenant holds as many registered clients as it allows"),
        Refusal::TooMany => OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            "too many registrations from this address; try again in a minute",
        )
        .with_status(StatusCode::TOO_MANY_REQUESTS),
        Refusal::Metadata(MetadataError::RedirectUri(m)) => {
            OAuthError::new(ErrorCode::InvalidRedirectUri, m)
        }
        Refusal::Metadata(MetadataError::Metadata(m)) => {
            OAuthError::new(ErrorCode::InvalidClientMetadata, m)
        }
        Refusal::InvalidStatement(m) => OAuthError::new(ErrorCode::InvalidSoftwareStatement, m),
        Refusal::UnapprovedStatement(m) => {
            OAuthError::new(ErrorCode::UnapprovedSoftwareStatement, m)
        }
    };
    event(e.code.as_str(), &e.description);
    let too_many = e.status == StatusCode::TOO_MANY_REQUESTS;
    let mut r = e.into_response();
    if too_many {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    }
    r
}
