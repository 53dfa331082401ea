//! `grant_type=client_credentials` (RFC 6749 §4.4) with resource indicators (RFC 8707).

use crate::config::Client;
use crate::config::tenant::GrantType;
use crate::error::{ErrorCode, OAuthError};
use crate::protocol::token::ClientCredentialsRequest;
use crate::registry::Tenant;
use crate::validation::client_auth::AuthenticatedClient;
use crate::validation::scope;
use std::sync::Arc;

/// A client_credentials request that passed every check. Only [`validate`] builds one.
#[derive(Debug)]
pub struct ValidatedClientCredentials {
    client: Arc<Client>,
    cert_binding: Option<String>,
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
    /// RFC 8705 §3: the certificate thumbprint the token is bound to.
    pub fn cert_binding(&self) -> Option<&str> {
        self.cert_binding.as_deref()
    }
}

pub fn validate(
    tenant: &Tenant,
    auth: AuthenticatedClient,
    req: ClientCredentialsRequest,
) -> Result<ValidatedClientCredentials, OAuthError> {
    let client = auth.client().clone();
    let cert_binding = auth.cert_binding().map(str::to_string);
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

    let mut audiences = scope::audiences(tenant, &mut scopes, &req.resources)?;
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
        cert_binding,
        scopes,
        audiences,
    })
}
