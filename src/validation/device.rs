//! `POST /{tenant}/connect/deviceauthorization` (RFC 8628 §3.1): what a device may ask for.

use crate::config::Client;
use crate::config::tenant::GrantType;
use crate::error::{ErrorCode, OAuthError};
use crate::registry::Tenant;
use crate::validation::client_auth::AuthenticatedClient;
use crate::validation::form::Form;
use crate::validation::scope;
use std::sync::Arc;

/// A device authorization request that passed every check. Only [`validate`] builds one.
#[derive(Debug)]
pub struct ValidatedDeviceRequest {
    client: Arc<Client>,
    scopes: Vec<String>,
    audiences: Vec<String>,
}

impl ValidatedDeviceRequest {
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
    auth: &AuthenticatedClient,
    form: &Form,
) -> Result<ValidatedDeviceRequest, OAuthError> {
    let client = auth.client().clone();
    // RFC 8628 §3.1 / RFC 6749 §5.2: the client must be registered for the grant.
    if !client.allows_grant(GrantType::DeviceCode) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client may not use the device authorization grant",
        ));
    }
    if form
        .get("client_id")
        .is_some_and(|id| id != client.spec.client_id)
    {
        return Err(OAuthError::invalid_request(
            "client_id does not match the authenticated client",
        ));
    }
    let mut scopes: Vec<String> = match form.get("scope") {
        // Like IdentityServer: no scope means every scope the client may have.
        None => {
            let mut all: Vec<String> = client.scopes.iter().cloned().collect();
            all.sort_unstable();
            if !client.allows_grant(GrantType::RefreshToken) {
                all.retain(|s| s != "offline_access");
            }
            all
        }
        Some(requested) => scope::allowed_for(&client, &scope::parse(requested)?)?,
    };
    let resources: Vec<String> = form.get_all("resource").map(str::to_string).collect();
    // RFC 8707 §2: the resources narrow the audiences and their scopes.
    let audiences = scope::audiences(tenant, &mut scopes, &resources)?;
    if scopes.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "no scope can be granted for this request",
        ));
    }
    Ok(ValidatedDeviceRequest {
        client,
        scopes,
        audiences,
    })
}
