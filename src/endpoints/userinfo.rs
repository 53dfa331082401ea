//! `GET`/`POST /{tenant}/connect/userinfo` (OIDC Core §5.3) with bearer tokens (RFC 6750): in
//! the Authorization header or, for POST, the form body — never in the query.

use crate::frontdoor::middleware::RequestContext;
use crate::frontdoor::tenant::CurrentTenant;
use crate::registry::Tenant;
use crate::state::AppState;
use crate::tokens::{self, UserAccessClaims};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// RFC 6750 §3: an error with its `WWW-Authenticate: Bearer` challenge.
fn bearer_error(
    tenant: &Tenant,
    status: StatusCode,
    error: Option<&str>,
    description: &str,
) -> Response {
    let mut challenge = format!("Bearer realm=\"{}\"", tenant.spec.issuer);
    if let Some(e) = error {
        challenge.push_str(&format!(
            ", error=\"{e}\", error_description=\"{description}\""
        ));
    }
    let body = match error {
        Some(e) => serde_json::json!({"error": e, "error_description": description}).to_string(),
        None => String::new(),
    };
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        h.insert(header::WWW_AUTHENTICATE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if error.is_some() {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    r
}

pub async fn get(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if query.is_some_and(|q| q.contains("access_token=")) {
        // RFC 6750 §2.3 is not supported: URIs end up in logs and histories.
        return bearer_error(
            &tenant,
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
            "access tokens are not accepted in the query",
        );
    }
    respond(&state, &tenant, &ctx, bearer_from_header(&headers), None).await
}

pub async fn post(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let form_token = if is_form {
        match crate::validation::form::Form::parse(&body) {
            Ok(f) => f.get("access_token").map(str::to_string),
            Err(_) => {
                return bearer_error(
                    &tenant,
                    StatusCode::BAD_REQUEST,
                    Some("invalid_request"),
                    "the body is not a valid form",
                );
            }
        }
    } else {
        None
    };
    respond(
        &state,
        &tenant,
        &ctx,
        bearer_from_header(&headers),
        form_token,
    )
    .await
}

fn bearer_from_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string())
}

async fn respond(
    state: &AppState,
    tenant: &Tenant,
    ctx: &RequestContext,
    header_token: Option<String>,
    form_token: Option<String>,
) -> Response {
    let token = match (header_token, form_token) {
        (Some(_), Some(_)) => {
            // RFC 6750 §2: exactly one method.
            return bearer_error(
                tenant,
                StatusCode::BAD_REQUEST,
                Some("invalid_request"),
                "send the token once",
            );
        }
        (Some(t), None) | (None, Some(t)) => t,
        // RFC 6750 §3.1: no error code when the request carried no credentials.
        (None, None) => return bearer_error(tenant, StatusCode::UNAUTHORIZED, None, ""),
    };
    let invalid = |why: &str| {
        crate::events::request_rejected(
            tenant.slug(),
            "userinfo",
            &ctx.request_id,
            "invalid_token",
            why,
        );
        bearer_error(
            tenant,
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
            "the access token is invalid or expired",
        )
    };
    let claims = match access_claims(state, tenant, &token).await {
        Ok(Some(c)) => c,
        Ok(None) => return invalid("token not valid here"),
        Err(e) => {
            tracing::error!(error = %e, "userinfo failed");
            return crate::error::OAuthError::server_error().into_response();
        }
    };
    // RFC 8705 §3: a certificate-bound token is only good with the same certificate.
    if let Some(bound) = claims
        .cnf
        .as_ref()
        .and_then(|c| c.get("x5t#S256"))
        .and_then(|t| t.as_str())
        && ctx.cert_thumbprint().as_deref() != Some(bound)
    {
        return invalid("certificate-bound token without its certificate");
    }
    let scopes: Vec<String> = claims.scope.split(' ').map(str::to_string).collect();
    // OIDC Core §5.3: userinfo serves tokens that carry the openid scope.
    if !scopes.iter().any(|s| s == "openid") {
        return bearer_error(
            tenant,
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "the token lacks the openid scope",
        );
    }
    let user = match crate::endpoints::account::find_subject_in(state, tenant, &claims.sub).await {
        Ok(Some(u)) if u.enabled => u,
        Ok(_) => return invalid("user gone"),
        Err(e) => {
            tracing::error!(error = %e, "userinfo failed");
            return crate::error::OAuthError::server_error().into_response();
        }
    };
    let mut body = tokens::user_claims(tenant, &user, &scopes);
    body.insert("sub".into(), claims.sub.into());
    let mut r = axum::Json(serde_json::Value::Object(body)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The claims of a live user access token of this tenant (JWT or reference), or `None`
/// (client_credentials tokens have no user: they do not parse as user claims).
pub async fn access_claims(
    state: &AppState,
    tenant: &Tenant,
    token: &str,
) -> Result<Option<UserAccessClaims>, crate::error::InternalError> {
    let Some(t) = tokens::access::verify(state, tenant, token).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_value(serde_json::Value::Object(t.claims)).ok())
}
