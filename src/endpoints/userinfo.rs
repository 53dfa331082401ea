//! `GET`/`POST /{tenant}/connect/userinfo` (OIDC Core §5.3) with bearer tokens (RFC 6750: the
//! Authorization header or, for POST, the form body — never the query) and DPoP-bound tokens
//! (RFC 9449 §7: `Authorization: DPoP` with a proof for this request).

use crate::error::ErrorCode;
use crate::frontdoor::middleware::RequestContext;
use crate::frontdoor::tenant::CurrentTenant;
use crate::registry::Tenant;
use crate::state::AppState;
use crate::tokens::{self, UserAccessClaims};
use crate::validation::dpop;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
}

/// RFC 6750 §3 / RFC 9449 §7.1: an error with its `WWW-Authenticate` challenge.
struct Refusal<'a> {
    scheme: Scheme,
    status: StatusCode,
    error: Option<&'a str>,
    description: &'a str,
    nonce: Option<String>,
}

fn refuse(tenant: &Tenant, r: Refusal<'_>) -> Response {
    let mut challenge = match r.scheme {
        Scheme::Bearer => format!("Bearer realm=\"{}\"", tenant.spec.issuer),
        Scheme::Dpop => format!(
            "DPoP realm=\"{}\", algs=\"{}\"",
            tenant.spec.issuer, DPOP_ALGS
        ),
    };
    if let Some(e) = r.error {
        challenge.push_str(&format!(
            ", error=\"{e}\", error_description=\"{}\"",
            r.description
        ));
    }
    let body = match r.error {
        Some(e) => serde_json::json!({"error": e, "error_description": r.description}).to_string(),
        None => String::new(),
    };
    let mut resp = (r.status, body).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        h.insert(header::WWW_AUTHENTICATE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if r.error.is_some() {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if let Some(n) = r.nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
        h.insert("dpop-nonce", n);
    }
    resp
}

/// RFC 9449 §7.1: the algorithms proofs may use.
pub const DPOP_ALGS: &str = "ES256 RS256 PS256 EdDSA";

fn bearer_error(
    tenant: &Tenant,
    status: StatusCode,
    error: Option<&str>,
    description: &str,
) -> Response {
    refuse(
        tenant,
        Refusal {
            scheme: Scheme::Bearer,
            status,
            error,
            description,
            nonce: None,
        },
    )
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
    respond(&state, &tenant, &ctx, &headers, "GET", None).await
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
    respond(&state, &tenant, &ctx, &headers, "POST", form_token).await
}

fn token_from_header(headers: &HeaderMap) -> Option<(Scheme, String)> {
    let (scheme, token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))?;
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return None;
    };
    Some((scheme, token.trim().to_string()))
}

async fn respond(
    state: &AppState,
    tenant: &Tenant,
    ctx: &RequestContext,
    headers: &HeaderMap,
    method: &str,
    form_token: Option<String>,
) -> Response {
    let (scheme, token) = match (token_from_header(headers), form_token) {
        (Some(_), Some(_)) => {
            // RFC 6750 §2: exactly one method.
            return bearer_error(
                tenant,
                StatusCode::BAD_REQUEST,
                Some("invalid_request"),
                "send the token once",
            );
        }
        (Some(t), None) => t,
        (None, Some(t)) => (Scheme::Bearer, t),
        // RFC 6750 §3.1: no error code when the request carried no credentials.
        (None, None) => return bearer_error(tenant, StatusCode::UNAUTHORIZED, None, ""),
    };
    // The description names only what the caller did wrong, never what the token holds.
    let invalid = |scheme: Scheme, why: &str| {
        crate::events::request_rejected(
            tenant.slug(),
            "userinfo",
            &ctx.request_id,
            "invalid_token",
            why,
        );
        let description = match why {
            "DPoP-bound token sent as a bearer token" => {
                "this token is DPoP-bound: use the DPoP scheme with a proof"
            }
            "bearer token sent with the DPoP scheme" => {
                "this token is not DPoP-bound: use the Bearer scheme"
            }
            "certificate-bound token without its certificate" => {
                "this token is bound to a client certificate: present it"
            }
            _ => "the access token is invalid or expired",
        };
        refuse(
            tenant,
            Refusal {
                scheme,
                status: StatusCode::UNAUTHORIZED,
                error: Some("invalid_token"),
                description,
                nonce: None,
            },
        )
    };
    let claims = match access_claims(state, tenant, &token).await {
        Ok(Some(c)) => c,
        Ok(None) => return invalid(scheme, "token not valid here"),
        Err(e) => {
            tracing::error!(error = %e, "userinfo failed");
            return crate::error::OAuthError::server_error().into_response();
        }
    };
    let cnf = claims.cnf.as_ref();
    // RFC 8705 §3: a certificate-bound token is only good with the same certificate.
    if let Some(bound) = cnf.and_then(|c| c.get("x5t#S256")).and_then(|t| t.as_str())
        && ctx.cert_thumbprint().as_deref() != Some(bound)
    {
        return invalid(scheme, "certificate-bound token without its certificate");
    }
    // RFC 9449 §7: a DPoP-bound token comes with the DPoP scheme and a proof by its key; a
    // bound token sent as a bearer token is refused, and so is the DPoP scheme for a bearer one.
    let jkt = cnf.and_then(|c| c.get("jkt")).and_then(|t| t.as_str());
    match (jkt, scheme) {
        (Some(_), Scheme::Bearer) => {
            return invalid(Scheme::Dpop, "DPoP-bound token sent as a bearer token");
        }
        (None, Scheme::Dpop) => {
            return invalid(Scheme::Dpop, "bearer token sent with the DPoP scheme");
        }
        (Some(jkt), Scheme::Dpop) => {
            match dpop::verify_request(state, tenant, ctx, headers, method, Some(&token)).await {
                Ok(Some(p)) if p.jkt == jkt => {}
                Ok(Some(_)) => return invalid(Scheme::Dpop, "the proof's key is not the token's"),
                Ok(None) => {
                    return refuse(
                        tenant,
                        Refusal {
                            scheme: Scheme::Dpop,
                            status: StatusCode::UNAUTHORIZED,
                            error: Some("invalid_dpop_proof"),
                            description: "a DPoP proof is required",
                            nonce: None,
                        },
                    );
                }
                Err(e) => {
                    let code = if e.code == ErrorCode::UseDpopNonce {
                        "use_dpop_nonce"
                    } else {
                        "invalid_dpop_proof"
                    };
                    crate::events::request_rejected(
                        tenant.slug(),
                        "userinfo",
                        &ctx.request_id,
                        code,
                        &e.description,
                    );
                    return refuse(
                        tenant,
                        Refusal {
                            scheme: Scheme::Dpop,
                            status: StatusCode::UNAUTHORIZED,
                            error: Some(code),
                            description: "the DPoP proof is not valid for this request",
                            nonce: e.dpop_nonce,
                        },
                    );
                }
            }
        }
        (None, Scheme::Bearer) => {}
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
    let user = match crate::users::directory::by_subject(&state.store, tenant, &claims.sub).await {
        Ok(Some(u)) if u.enabled => u,
        Ok(_) => return invalid(scheme, "user gone"),
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
