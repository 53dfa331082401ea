//! `grant_type=client_credentials` (RFC 6749 §4.4) with resource indicators (RFC 8707).

use crate::config::tenant::GrantType;
use crate::error::{ErrorCode, OAuthError};
use crate::protocol::token::ClientCredentialsRequest;
use crate::registry::{Client, Tenant};
use crate::validation::client_auth::AuthenticatedClient;
use crate::validation::scope;
use std::sync::Arc;

/// A client_credentials request that passed every check. Only [`validate`] builds one.
#[derive(Debug)]
pub struct ValidatedClientCredentials {
    client: Arc<Client>,
    scopes: Vec<String>,
    audiences: Vec<String>,
}

impl ValidatedClientCredentials {
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }
}

pub fn validate(
    tenant: &Tenant,
    auth: AuthenticatedClient,
    req: ClientCredentialsRequest,
) -> Result<ValidatedClientCredentials, OAuthError> {
    let client = auth.client().clone();
    // RFC 6749 §5.2: the client is not authorized to use this grant type.
    if !client.allows_grant(GrantType::ClientCredentials) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client may not use client_credentials",
        ));
    }
    let is_api_scope = |s: &str| tenant.spec.api_scopes.iter().any(|a| a.name == s);
    let mut scopes: Vec<String> = match req.scope.as_deref() {
        // Like IdentityServer: no scope means every API scope the client may have.
        None => client
            .spec
            .scopes
            .iter()
            .filter(|s| is_api_scope(s))
            .cloned()
            .collect(),
        Some(requested) => {
            let mut v = Vec::new();
            for s in scope::parse(requested)? {
                // RFC 6749 §4.4.2 / §5.2: a scope beyond what the client may have is invalid_scope;
                // identity scopes have no subject to describe in this grant.
                if !client.scopes.contains(s) || !is_api_scope(s) {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidScope,
                        "a requested scope is not allowed for this client",
                    ));
                }
                v.push(s.to_string());
            }
            v
        }
    };

    // RFC 8707 §2: each resource is an absolute URI without fragment, known to this tenant.
    let mut audiences: Vec<String> = Vec::new();
    if req.resources.is_empty() {
        for s in &scopes {
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
        for r in &req.resources {
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
        // RFC 8707 §2.2: the token is restricted to the scopes the requested resources accept.
        scopes.retain(|s| {
            tenant
                .audiences_by_scope
                .get(s)
                .is_some_and(|owners| owners.iter().any(|o| audiences.contains(o)))
        });
    }
    if scopes.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "no scope can be granted for this request",
        ));
    }
    if audiences.is_empty() {
        audiences.push(tenant.default_audience.clone());
    }
    Ok(ValidatedClientCredentials {
        client,
        scopes,
        audiences,
    })
}
