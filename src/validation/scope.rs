//! Scope parsing (RFC 6749 §3.3).

use crate::config::tenant::valid_scope_token;
use crate::error::{ErrorCode, OAuthError};

/// Splits a `scope` value into distinct scope tokens, in request order.
pub fn parse(scope: &str) -> Result<Vec<&str>, OAuthError> {
    let mut out: Vec<&str> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !valid_scope_token(s) {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "the scope value is malformed",
            ));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

/// Each requested scope must be one the client may have, and `offline_access` needs the
/// refresh_token grant (RFC 6749 §3.3, §5.2 `invalid_scope`).
pub fn allowed_for(
    client: &crate::config::Client,
    requested: &[&str],
) -> Result<Vec<String>, OAuthError> {
    let mut scopes = Vec::with_capacity(requested.len());
    for s in requested {
        if !client.scopes.contains(*s) {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "a requested scope is not allowed for this client",
            ));
        }
        if *s == "offline_access"
            && !client.allows_grant(crate::config::tenant::GrantType::RefreshToken)
        {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "offline_access needs the refresh_token grant",
            ));
        }
        scopes.push(s.to_string());
    }
    Ok(scopes)
}

/// RFC 8707: the audiences of a request, and the scopes narrowed to them. Without `resource`,
/// every API resource that owns a requested scope is an audience, except those that insist on
/// being named; with `resource`, exactly the named resources are, and only their scopes remain
/// (RFC 8707 §2.2). Identity scopes (no owning resource) are kept either way.
pub fn audiences(
    tenant: &crate::registry::Tenant,
    scopes: &mut Vec<String>,
    resources: &[String],
) -> Result<Vec<String>, OAuthError> {
    let is_api = |s: &str| tenant.audiences_by_scope.contains_key(s);
    let mut audiences: Vec<String> = Vec::new();
    if resources.is_empty() {
        for s in scopes.iter() {
            for aud in tenant.audiences_by_scope.get(s).into_iter().flatten() {
                let isolated = tenant
                    .spec
                    .api_resources
                    .iter()
                    .any(|r| &r.name == aud && r.require_resource_indicator);
                if !isolated && !audiences.contains(aud) {
                    audiences.push(aud.clone());
                }
            }
        }
        // Scopes of resources that insist on a resource indicator are not granted without one.
        scopes.retain(|s| {
            tenant
                .audiences_by_scope
                .get(s)
                .is_none_or(|owners| owners.iter().any(|o| audiences.contains(o)))
        });
    } else {
        for r in resources {
            // RFC 8707 §2: an absolute URI without fragment, known to this tenant.
            if r.contains('#') || !r.contains(':') {
                return Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    "a resource must be an absolute URI without fragment",
                ));
            }
            let Some(resource) = tenant.spec.api_resources.iter().find(|a| &a.name == r) else {
                return Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    "unknown resource",
                ));
            };
            if !audiences.contains(&resource.name) {
                audiences.push(resource.name.clone());
            }
        }
        scopes.retain(|s| {
            !is_api(s)
                || tenant
                    .audiences_by_scope
                    .get(s)
                    .is_some_and(|owners| owners.iter().any(|o| audiences.contains(o)))
        });
    }
    Ok(audiences)
}
