//! Recognising our own access tokens (userinfo, introspection, revocation): JWTs by signature,
//! reference tokens by their stored record; either way only live tokens of this tenant.

use crate::error::InternalError;
use crate::registry::Tenant;
use crate::state::AppState;
use crate::stores::{GrantKind, GrantRecord};
use serde_json::{Map, Value};

/// A live access token and where its liveness is recorded.
#[derive(Debug)]
pub struct AccessToken {
    pub claims: Map<String, Value>,
    /// The issuance record (reference tokens, and JWTs issued for a user), if there is one.
    pub record: Option<std::sync::Arc<GrantRecord>>,
}

impl AccessToken {
    pub fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }
    /// RFC 7519 §4.1.3: `aud` is a string or an array of strings.
    pub fn has_audience(&self, aud: &str) -> bool {
        match self.claims.get("aud") {
            Some(Value::String(a)) => a == aud,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(aud)),
            _ => false,
        }
    }
}

/// The access token `token` if it is one of this tenant's, unexpired and not revoked.
pub async fn verify(
    state: &AppState,
    tenant: &Tenant,
    token: &str,
) -> Result<Option<AccessToken>, InternalError> {
    if token.is_empty() || token.len() > 8192 {
        return Ok(None);
    }
    let now = state.now();
    let (claims, record) = if token.contains('.') {
        let keys = tenant.keys.load();
        let Ok(v) = super::jws::verify(
            token,
            &keys.public_keys,
            &tenant.spec.tokens.signing_algorithms,
        ) else {
            return Ok(None);
        };
        // RFC 9068 §4: an access token has typ at+jwt (an id token is not an access token).
        if v.header.get("typ").and_then(Value::as_str) != Some("at+jwt") {
            return Ok(None);
        }
        // Tokens issued for a user are recorded by jti, so revoking their family ends them.
        let record = if v.claims.contains_key("sid") {
            let Some(jti) = v.claims.get("jti").and_then(Value::as_str) else {
                return Ok(None);
            };
            match state
                .grants
                .find(&state.store, tenant.slug(), &super::handle_hash(jti))
                .await?
            {
                Some(r) if r.kind == GrantKind::AccessToken && r.revoked_at.is_none() => Some(r),
                _ => return Ok(None),
            }
        } else {
            None
        };
        (v.claims, record)
    } else {
        let Some(r) = state
            .grants
            .find(&state.store, tenant.slug(), &super::handle_hash(token))
            .await?
            .filter(|r| r.kind == GrantKind::ReferenceToken && r.revoked_at.is_none())
        else {
            return Ok(None);
        };
        let Ok(Value::Object(claims)) = serde_json::from_str::<Value>(&r.data) else {
            return Ok(None);
        };
        (claims, Some(r))
    };
    let num = |k: &str| claims.get(k).and_then(Value::as_i64);
    let issuer_ok = claims.get("iss").and_then(Value::as_str) == Some(tenant.spec.issuer.as_str());
    if !issuer_ok
        || num("exp").is_none_or(|exp| exp <= now)
        || num("nbf").is_some_and(|nbf| nbf > now + 60)
    {
        return Ok(None);
    }
    Ok(Some(AccessToken { claims, record }))
}
