//! Sign-ins for someone else's screen: the device authorization grant (RFC 8628) and CIBA
//! (OpenID Connect CIBA Core 1.0) keep the same pending record ([`DeviceGrant`]), decided in a
//! browser and redeemed once at the token endpoint.
//!
//! The device authorization grant: a device authorization is a
//! `GrantKind::DeviceCode` grant (stored by the hash of its device code, bound to its client)
//! with a `GrantKind::UserCode` grant naming it (stored by the keyed hash of the user code).
//! The device polls the token endpoint while the user, in a browser, enters the user code, signs
//! in and decides; the decision is written into the device authorization, which the next poll
//! finds and redeems once.

use crate::error::{InternalError, OAuthError, json_no_store};
use crate::registry::Tenant;
use crate::request::RequestContext;
use crate::state::AppState;
use crate::stores::{GrantKind, GrantRecord, GrantStore, SessionRecord};
use crate::tokens;
use crate::tokens::user_code::UserCode;
use crate::validation::device::ValidatedDeviceRequest;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

/// What a device authorization holds while it lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceGrant {
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    /// The polling interval this device must keep (RFC 8628 §3.5: it grows with `slow_down`).
    pub interval: i64,
    /// When the device last polled (only tracked when there is an interval to keep).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_poll: Option<i64>,
    pub status: DeviceStatus,
    /// What a backchannel authentication request (CIBA) adds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel: Option<Backchannel>,
}

/// CIBA Core §7.1: what the client asked the user, and how to tell the client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Backchannel {
    /// Shown to the user on the approvals page, to tie the request to what they see.
    pub binding_message: Option<String>,
    /// The `auth_req_id`, sealed to the tenant (a ping names it to the client).
    pub sealed_id: String,
    /// The client's `client_notification_token`, sealed (a ping presents it).
    pub sealed_notification_token: Option<String>,
    /// The username the hint named, for the pages.
    pub username: String,
    /// CIBA Core §7.1 `acr_values`: what the user's authentication must have been.
    #[serde(default)]
    pub acr_values: Vec<String>,
}

/// Where the user's decision stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DeviceStatus {
    Pending,
    /// The user signed in and allowed it: how, for the tokens.
    Approved(Approval),
    Denied,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approval {
    pub subject: String,
    pub sid: String,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: String,
    pub idp: String,
}

impl Approval {
    pub fn of_session(session: &SessionRecord) -> Self {
        Self {
            subject: session.subject.clone(),
            sid: session.sid.clone(),
            auth_time: session.auth_time,
            amr: session.amr.split(' ').map(str::to_string).collect(),
            acr: session.acr.clone(),
            idp: session.idp.clone(),
        }
    }
}

/// RFC 8628 §3.2 device authorization response.
#[derive(Serialize)]
struct DeviceAuthorizationResponse<'a> {
    device_code: &'a str,
    user_code: &'a str,
    verification_uri: &'a str,
    verification_uri_complete: &'a str,
    expires_in: i64,
    interval: i64,
}

/// The page where users enter codes (RFC 8628 §3.3 `verification_uri`).
pub fn verification_uri(tenant: &Tenant) -> String {
    format!(
        "{}{}",
        tenant.spec.issuer,
        crate::registry::discovery::DEVICE_VERIFICATION_PATH
    )
}

/// RFC 8628 §3.2: a new device authorization, pending, with its device and user codes.
pub async fn authorize(
    state: &AppState,
    tenant: &Tenant,
    v: ValidatedDeviceRequest,
    ctx: &RequestContext,
) -> Result<Response, OAuthError> {
    let now = state.now();
    let policy = &tenant.spec.device;
    let client_id = v.client().spec.client_id.clone();
    let device_code = tokens::new_handle();
    let device = GrantRecord {
        handle_hash: tokens::handle_hash(&device_code),
        client_id: client_id.clone(),
        data: serde_json::to_string(&DeviceGrant {
            scopes: v.scopes().to_vec(),
            audiences: v.audiences().to_vec(),
            interval: policy.interval,
            last_poll: None,
            status: DeviceStatus::Pending,
            backchannel: None,
        })
        .map_err(InternalError::from)?,
        created_at: now,
        expires_at: now + policy.code_lifetime,
        ..GrantRecord::of(GrantKind::DeviceCode)
    };
    // A user code is 34.6 bits: another live one may already have it. Both rows go in one
    // statement, the user code first as the marker that conflicts; on a clash the device row
    // that went in is removed and a new code drawn.
    let mut user_code = None;
    for _ in 0..4 {
        let code = UserCode::generate();
        let marker = GrantRecord {
            handle_hash: state.master.user_code_hash(tenant.slug(), &code),
            client_id: client_id.clone(),
            data: device.handle_hash.clone(),
            created_at: now,
            expires_at: device.expires_at,
            ..GrantRecord::of(GrantKind::UserCode)
        };
        if state
            .store
            .redeem_once(tenant.slug(), &marker, std::slice::from_ref(&device))
            .await?
        {
            user_code = Some(code);
            break;
        }
        state
            .store
            .delete_grant(tenant.slug(), &device.handle_hash)
            .await?;
    }
    let user_code = user_code
        .ok_or_else(|| InternalError::Other("no free user code after four draws".into()))?;
    let shown = user_code.display();
    let verification_uri = verification_uri(tenant);
    let complete = format!("{verification_uri}?user_code={shown}");
    crate::events::device_authorization_started(tenant.slug(), &client_id, &ctx.request_id);
    let body = serde_json::to_vec(&DeviceAuthorizationResponse {
        device_code: &device_code,
        user_code: &shown,
        verification_uri: &verification_uri,
        verification_uri_complete: &complete,
        expires_in: policy.code_lifetime,
        interval: policy.interval,
    })
    .map_err(InternalError::from)?;
    Ok(json_no_store(StatusCode::OK, body))
}

/// A live, pending device authorization (or backchannel request) and its client, found by the
/// hash of its device code (or `auth_req_id`).
pub async fn find_pending(
    state: &AppState,
    tenant: &Tenant,
    device_hash: &str,
) -> Result<Option<(GrantRecord, DeviceGrant)>, InternalError> {
    let Some(record) = state.store.find_grant(tenant.slug(), device_hash).await? else {
        return Ok(None);
    };
    if !matches!(
        record.kind,
        GrantKind::DeviceCode | GrantKind::BackchannelAuth
    ) || record.consumed_at.is_some()
        || record.revoked_at.is_some()
        || record.expires_at <= state.now()
    {
        return Ok(None);
    }
    let grant: DeviceGrant = serde_json::from_str(&record.data)?;
    Ok(matches!(grant.status, DeviceStatus::Pending).then_some((record, grant)))
}

/// Writes the user's decision into a device authorization (or backchannel request) that is
/// still pending; false when it is not (expired, redeemed, or decided in the meantime).
pub async fn decide(
    state: &AppState,
    tenant: &Tenant,
    device_hash: &str,
    status: DeviceStatus,
) -> Result<bool, InternalError> {
    // Compare and set, so that a poll recording its time in between is not overwritten and
    // cannot overwrite the decision; a few tries, as each poll changes the data.
    for _ in 0..5 {
        let Some((record, mut grant)) = find_pending(state, tenant, device_hash).await? else {
            return Ok(false);
        };
        grant.status = status.clone();
        let data = serde_json::to_string(&grant)?;
        if state
            .store
            .swap_grant_data(tenant.slug(), device_hash, &record.data, &data)
            .await?
        {
            return Ok(true);
        }
    }
    Err(InternalError::Other(
        "the device authorization kept changing while it was decided".into(),
    ))
}
