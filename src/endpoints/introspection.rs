//! `POST /{tenant}/connect/introspect` (RFC 7662): an API resource (or the client a token was
//! issued to) asks whether a token is active. Anything it may not know about is `active: false`.

use super::call::OAuthCall;
use crate::error::json_no_store;
use crate::error::{InternalError, OAuthError};
use crate::registry::Tenant;
use crate::state::AppState;
use crate::stores::{GrantKind, GrantRecord, GrantStore};
use crate::tokens;
use crate::validation::client_auth::{self, Introspector};
use crate::validation::token::refresh_token::RefreshData;
use axum::response::Response;
use serde_json::{Map, Value, json};

/// RFC 7662 §2.2: the members an active token's response may carry.
const MEMBERS: &[&str] = &[
    "scope",
    "client_id",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "iss",
    "jti",
    "cnf",
    "sid",
    "auth_time",
    "acr",
    "amr",
    "idp",
    // RFC 8693 §4.1: who acts for the subject.
    "act",
];

pub async fn introspect(call: OAuthCall) -> Response {
    let (state, tenant, ctx, headers, form) = call.parts();
    let result = async {
        let caller =
            client_auth::authenticate_introspector(state, tenant, headers, form, ctx).await?;
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        // RFC 7662 §2.1: the hint only orders the search.
        let refresh_first = form.get("token_type_hint") == Some("refresh_token");
        let answer = if refresh_first {
            match refresh(state, tenant, &caller, token).await? {
                Some(a) => Some(a),
                None => access(state, tenant, &caller, token).await?,
            }
        } else {
            match access(state, tenant, &caller, token).await? {
                Some(a) => Some(a),
                None => refresh(state, tenant, &caller, token).await?,
            }
        };
        let body = answer.unwrap_or_else(|| json!({ "active": false }));
        Ok::<_, OAuthError>(json_no_store(
            axum::http::StatusCode::OK,
            serde_json::to_vec(&body).map_err(InternalError::from)?,
        ))
    }
    .await;
    call.answer("introspection", result)
}

/// An active access token the caller may learn about: an API resource only about tokens whose
/// audience includes it, a client only about its own.
async fn access(
    state: &AppState,
    tenant: &Tenant,
    caller: &Introspector,
    token: &str,
) -> Result<Option<Value>, OAuthError> {
    let Some(t) = tokens::access::verify(state, tenant, token).await? else {
        return Ok(None);
    };
    let allowed = match caller {
        Introspector::Resource(name) => t.has_audience(name),
        Introspector::Client(c) => t.str_claim("client_id") == Some(c.spec.client_id.as_str()),
    };
    if !allowed {
        return Ok(None);
    }
    let mut out = Map::new();
    out.insert("active".into(), true.into());
    for m in MEMBERS {
        if let Some(v) = t.claims.get(*m) {
            out.insert((*m).into(), v.clone());
        }
    }
    // RFC 9449 §6.2 / RFC 8705 §3.2: a bound token says how it is bound.
    let token_type = if t.claims.get("cnf").and_then(|c| c.get("jkt")).is_some() {
        "DPoP"
    } else {
        "Bearer"
    };
    out.insert("token_type".into(), token_type.into());
    Ok(Some(Value::Object(out)))
}

/// An active refresh token, for the client it was issued to (API resources never see them).
async fn refresh(
    state: &AppState,
    tenant: &Tenant,
    caller: &Introspector,
    token: &str,
) -> Result<Option<Value>, OAuthError> {
    let Introspector::Client(client) = caller else {
        return Ok(None);
    };
    if token.len() > 100 {
        return Ok(None);
    }
    let Some(r): Option<GrantRecord> = state
        .store
        .find_grant(tenant.slug(), &tokens::handle_hash(token))
        .await?
        .filter(|r| {
            r.kind == GrantKind::RefreshToken
                && r.revoked_at.is_none()
                && r.consumed_at.is_none()
                && r.expires_at > state.now()
                && r.client_id == client.spec.client_id
        })
    else {
        return Ok(None);
    };
    let data: RefreshData = serde_json::from_str(&r.data).map_err(InternalError::from)?;
    Ok(Some(json!({
        "active": true,
        "token_type": "refresh_token",
        "client_id": r.client_id,
        "sub": r.subject,
        "scope": data.scopes.join(" "),
        "iat": r.created_at,
        "exp": r.expires_at,
        "iss": tenant.spec.issuer,
        "sid": data.sid,
    })))
}
