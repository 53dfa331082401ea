//! `grant_type=refresh_token` (RFC 6749 §6) with one-time-use rotation and reuse detection
//! (RFC 9700 §4.14.2).

use crate::config::Client;
use crate::config::tenant::GrantType;
use crate::error::{ErrorCode, InternalError, OAuthError};
use crate::protocol::token::RefreshTokenRequest;
use crate::registry::Tenant;
use crate::request::RequestContext;
use crate::state::AppState;
use crate::stores::{GrantKind, GrantRecord, GrantStore};
use crate::tokens;
use crate::validation::client_auth::AuthenticatedClient;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What a refresh token stands for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshData {
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: String,
    pub sid: String,
    /// The family may not live beyond this, however often it is used.
    pub absolute_expires_at: i64,
    /// RFC 8705 §4: a public client's refresh token is bound to its certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_binding: Option<String>,
    /// RFC 9449 §5: a public client's refresh token is bound to its DPoP key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// How the user signed in: `local` or the upstream provider.
    #[serde(default = "crate::response::authorize::local_idp")]
    pub idp: String,
}

#[derive(Debug)]
pub struct ValidatedRefresh {
    client: Arc<Client>,
    cert_binding: Option<String>,
    record: GrantRecord,
    data: RefreshData,
    scopes: Vec<String>,
}

impl ValidatedRefresh {
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }
    pub fn record(&self) -> &GrantRecord {
        &self.record
    }
    pub fn data(&self) -> &RefreshData {
        &self.data
    }
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }
    pub fn cert_binding(&self) -> Option<&str> {
        self.cert_binding.as_deref()
    }
}

pub async fn validate(
    state: &AppState,
    tenant: &Tenant,
    auth: AuthenticatedClient,
    req: RefreshTokenRequest,
    ctx: &RequestContext,
) -> Result<ValidatedRefresh, OAuthError> {
    let client = auth.client().clone();
    let cert_binding = auth.cert_binding().map(str::to_string);
    if !client.allows_grant(GrantType::RefreshToken) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client may not use refresh_token",
        ));
    }
    let invalid = || OAuthError::invalid_grant("the refresh token is invalid, expired or revoked");
    if req.refresh_token.len() > 100 {
        return Err(invalid());
    }
    let Some(record) = state
        .store
        .find_grant(tenant.slug(), &tokens::handle_hash(&req.refresh_token))
        .await?
        .filter(|r| r.kind == GrantKind::RefreshToken)
    else {
        return Err(invalid());
    };
    // RFC 6749 §6: the refresh token is bound to the client it was issued to.
    if record.client_id != client.spec.client_id {
        return Err(invalid());
    }
    if record.revoked_at.is_some() {
        return Err(invalid());
    }
    if record.consumed_at.is_some() {
        // RFC 9700 §4.14.2: a rotated token came back: someone holds a copy. End the family.
        super::authorization_code::revoke_family(state, tenant, &record, ctx).await?;
        return Err(invalid());
    }
    if record.expires_at <= state.now() {
        return Err(invalid());
    }
    let data: RefreshData = serde_json::from_str(&record.data).map_err(InternalError::from)?;
    // RFC 8705 §4: a bound refresh token is usable only with the same certificate.
    if let Some(bound) = &data.cert_binding
        && ctx.cert_thumbprint().as_deref() != Some(bound.as_str())
    {
        return Err(OAuthError::invalid_grant(
            "the refresh token is bound to another certificate",
        ));
    }
    // RFC 6749 §6: a narrower scope may be asked for, never a wider one.
    let scopes = match &req.scope {
        None => data.scopes.clone(),
        Some(s) => {
            let mut out = Vec::new();
            for x in crate::validation::scope::parse(s)? {
                if !data.scopes.iter().any(|g| g == x) {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidScope,
                        "the scope exceeds what was granted",
                    ));
                }
                out.push(x.to_string());
            }
            out
        }
    };
    Ok(ValidatedRefresh {
        client,
        cert_binding,
        record,
        data,
        scopes,
    })
}
