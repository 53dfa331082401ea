//! `GET`/`POST /{tenant}/connect/userinfo` (OIDC Core §5.3) with bearer tokens (RFC 6750: the
//! Authorization header or, for POST, the form body — never the query) and DPoP-bound tokens
//! (RFC 9449 §7: `Authorization: DPoP` with a proof for this request).

use crate::error::{AuthScheme, BearerError, BearerErrorCode, ErrorCode};
use crate::registry::Tenant;
use crate::request::CurrentTenant;
use crate::request::RequestContext;
use crate::state::AppState;
use crate::tokens::{self, UserAccessClaims};
use crate::validation::dpop;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

pub async fn get(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if query.is_some_and(|q| q.contains("access_token=")) {
        // RFC 6750 §2.3 is not supported: URIs end up in logs and histories.
        return BearerError::invalid_request(
            &tenant.spec.issuer,
            "access tokens are not accepted in the query",
        )
        .into_response();
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
                return BearerError::invalid_request(
                    &tenant.spec.issuer,
                    "the body is not a valid form",
                )
                .into_response();
            }
        }
    } else {
        None
    };
    respond(&state, &tenant, &ctx, &headers, "POST", form_token).await
}

fn token_from_header(headers: &HeaderMap) -> Option<(AuthScheme, String)> {
    let (scheme, token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))?;
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        AuthScheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        AuthScheme::Dpop
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
    match user_claims(state, tenant, ctx, headers, method, form_token).await {
        Ok(body) => {
            let mut r = axum::Json(serde_json::Value::Object(body)).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(Refused::Bearer(e)) => {
            if let Some(code) = e.code() {
                crate::events::request_rejected(
                    tenant.slug(),
                    "userinfo",
                    &ctx.request_id,
                    code.as_str(),
                    e.reason(),
                );
            }
            e.into_response()
        }
        Err(Refused::Internal(e)) => e.failed("userinfo").into_response(),
    }
}

enum Refused {
    Bearer(BearerError),
    Internal(crate::error::InternalError),
}

impl From<BearerError> for Refused {
    fn from(e: BearerError) -> Self {
        Self::Bearer(e)
    }
}

impl From<crate::error::InternalError> for Refused {
    fn from(e: crate::error::InternalError) -> Self {
        Self::Internal(e)
    }
}

/// The claims the token's scopes release about its user, or why not.
async fn user_claims(
    state: &AppState,
    tenant: &Tenant,
    ctx: &RequestContext,
    headers: &HeaderMap,
    method: &str,
    form_token: Option<String>,
) -> Result<serde_json::Map<String, serde_json::Value>, Refused> {
    let realm = tenant.spec.issuer.as_str();
    let (scheme, token) = match (token_from_header(headers), form_token) {
        // RFC 6750 §2: exactly one method.
        (Some(_), Some(_)) => Err(BearerError::invalid_request(realm, "send the token once"))?,
        (Some(t), None) => t,
        (None, Some(t)) => (AuthScheme::Bearer, t),
        // RFC 6750 §3.1: no error code when the request carried no credentials.
        (None, None) => Err(BearerError::no_credentials(realm))?,
    };
    // The description names only what the caller did wrong, never what the token holds.
    let expired = || BearerError::invalid_token(realm, "the access token is invalid or expired");
    let Some(claims) = access_claims(state, tenant, &token).await? else {
        Err(expired().scheme(scheme).because("token not valid here"))?
    };
    let cnf = claims.cnf.as_ref();
    // RFC 8705 §3: a certificate-bound token is only good with the same certificate.
    if let Some(bound) = cnf.and_then(|c| c.get("x5t#S256")).and_then(|t| t.as_str())
        && ctx.cert_thumbprint().as_deref() != Some(bound)
    {
        Err(BearerError::invalid_token(
            realm,
            "this token is bound to a client certificate: present it",
        )
        .scheme(scheme))?;
    }
    // RFC 9449 §7: a DPoP-bound token comes with the DPoP scheme and a proof by its key; a
    // bound token sent as a bearer token is refused, and so is the DPoP scheme for a bearer one.
    let jkt = cnf.and_then(|c| c.get("jkt")).and_then(|t| t.as_str());
    match (jkt, scheme) {
        (Some(_), AuthScheme::Bearer) => Err(BearerError::invalid_token(
            realm,
            "this token is DPoP-bound: use the DPoP scheme with a proof",
        )
        .scheme(AuthScheme::Dpop))?,
        (None, AuthScheme::Dpop) => Err(BearerError::invalid_token(
            realm,
            "this token is not DPoP-bound: use the Bearer scheme",
        )
        .scheme(AuthScheme::Dpop))?,
        (Some(jkt), AuthScheme::Dpop) => {
            let proof = dpop::verify_request(state, tenant, ctx, headers, method, Some(&token))
                .await
                .map_err(|e| {
                    let code = if e.code == ErrorCode::UseDpopNonce {
                        BearerErrorCode::UseDpopNonce
                    } else {
                        BearerErrorCode::InvalidDpopProof
                    };
                    BearerError::new(realm, code, "the DPoP proof is not valid for this request")
                        .scheme(AuthScheme::Dpop)
                        .with_dpop_nonce(e.dpop_nonce)
                        .because(e.description)
                })?;
            match proof {
                Some(p) if p.jkt == jkt => {}
                // The proof's key is not the token's.
                Some(_) => Err(expired()
                    .scheme(AuthScheme::Dpop)
                    .because("the proof's key is not the token's"))?,
                None => Err(BearerError::new(
                    realm,
                    BearerErrorCode::InvalidDpopProof,
                    "a DPoP proof is required",
                )
                .scheme(AuthScheme::Dpop))?,
            }
        }
        (None, AuthScheme::Bearer) => {}
    }
    let scopes: Vec<String> = claims.scope.split(' ').map(str::to_string).collect();
    // OIDC Core §5.3: userinfo serves tokens that carry the openid scope.
    if !scopes.iter().any(|s| s == "openid") {
        Err(BearerError::insufficient_scope(
            realm,
            Some("openid"),
            "the token lacks the openid scope",
        ))?;
    }
    let user = match crate::users::directory::by_subject(&state.store, tenant, &claims.sub).await? {
        Some(u) if u.enabled => u,
        _ => Err(expired().scheme(scheme).because("user gone"))?,
    };
    let mut body = tokens::user_claims(tenant, &user, &scopes);
    body.insert("sub".into(), claims.sub.into());
    Ok(body)
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
