//! `grant_type=urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4, §3.5): a device
//! polls until the user has decided; and `grant_type=urn:openid:params:grant-type:ciba` (CIBA
//! Core §10.1, §11), whose `auth_req_id` is polled (or redeemed after a ping) the same way.

use crate::config::Client;
use crate::config::tenant::GrantType;
use crate::error::{ErrorCode, InternalError, OAuthError};
use crate::protocol::token::DeviceCodeRequest;
use crate::registry::Tenant;
use crate::response::device::{Approval, DeviceGrant, DeviceStatus};
use crate::state::AppState;
use crate::stores::{GrantKind, GrantRecord, GrantStore};
use crate::tokens;
use crate::validation::client_auth::AuthenticatedClient;
use std::sync::Arc;

/// RFC 8628 §3.5: "the interval MUST be increased by 5 seconds for this and all subsequent
/// requests".
const SLOW_DOWN_STEP: i64 = 5;
/// However slow a device is told to be, it is never told to wait longer than this.
const MAX_INTERVAL: i64 = 300;

/// An approved device authorization that this client may redeem. Only [`validate`] builds one.
#[derive(Debug)]
pub struct ValidatedDeviceCode {
    client: Arc<Client>,
    cert_binding: Option<String>,
    record: GrantRecord,
    scopes: Vec<String>,
    audiences: Vec<String>,
    approval: Approval,
}

impl ValidatedDeviceCode {
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }
    pub fn cert_binding(&self) -> Option<&str> {
        self.cert_binding.as_deref()
    }
    /// The device authorization, consumed when the tokens are written.
    pub fn record(&self) -> &GrantRecord {
        &self.record
    }
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }
    pub fn approval(&self) -> &Approval {
        &self.approval
    }
}

/// Which of the two grants is polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polled {
    Device,
    Backchannel,
}

pub async fn validate(
    state: &AppState,
    tenant: &Tenant,
    auth: AuthenticatedClient,
    req: DeviceCodeRequest,
    polled: Polled,
) -> Result<ValidatedDeviceCode, OAuthError> {
    let client = auth.client().clone();
    let (grant_type, kind, what) = match polled {
        Polled::Device => (
            GrantType::DeviceCode,
            GrantKind::DeviceCode,
            "the device code",
        ),
        Polled::Backchannel => (GrantType::Ciba, GrantKind::BackchannelAuth, "auth_req_id"),
    };
    if !client.allows_grant(grant_type) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!("this client may not use {}", grant_type.as_str()),
        ));
    }
    let unknown = || OAuthError::invalid_grant(format!("{what} is invalid or was already used"));
    if req.device_code.len() != 43 {
        return Err(unknown());
    }
    let record = state
        .store
        .find_grant(tenant.slug(), &tokens::handle_hash(&req.device_code))
        .await?
        .filter(|r| r.kind == kind)
        .ok_or_else(unknown)?;
    // RFC 8628 §3.4 / RFC 6749 §5.2: a device code issued to another client is invalid_grant.
    if record.client_id != client.spec.client_id
        || record.consumed_at.is_some()
        || record.revoked_at.is_some()
    {
        return Err(unknown());
    }
    let now = state.now();
    if record.expires_at <= now {
        return Err(OAuthError::new(
            ErrorCode::ExpiredToken,
            format!("{what} expired: start again"),
        ));
    }
    let mut grant: DeviceGrant = serde_json::from_str(&record.data).map_err(InternalError::from)?;
    match grant.status {
        DeviceStatus::Approved(approval) => Ok(ValidatedDeviceCode {
            client,
            cert_binding: auth.cert_binding().map(str::to_string),
            scopes: grant.scopes,
            audiences: grant.audiences,
            approval,
            record,
        }),
        DeviceStatus::Denied => Err(OAuthError::new(
            ErrorCode::AccessDenied,
            "the user denied the request",
        )),
        DeviceStatus::Pending => {
            // RFC 8628 §3.5: the device keeps its interval; a poll inside it slows it down.
            if grant.interval == 0 {
                return Err(pending());
            }
            let early = grant
                .last_poll
                .is_some_and(|last| now - last < grant.interval);
            grant.last_poll = Some(now);
            if early {
                grant.interval = (grant.interval + SLOW_DOWN_STEP).min(MAX_INTERVAL);
            }
            let data = serde_json::to_string(&grant).map_err(InternalError::from)?;
            // Compare and set: a decision written since the read is never overwritten (the
            // next poll finds it).
            let kept = state
                .store
                .swap_grant_data(tenant.slug(), &record.handle_hash, &record.data, &data)
                .await?;
            Err(if early && kept {
                OAuthError::new(
                    ErrorCode::SlowDown,
                    format!(
                        "polling too fast: wait at least {} seconds between requests",
                        grant.interval
                    ),
                )
            } else {
                pending()
            })
        }
    }
}

fn pending() -> OAuthError {
    OAuthError::new(
        ErrorCode::AuthorizationPending,
        "the user has not decided yet",
    )
}
