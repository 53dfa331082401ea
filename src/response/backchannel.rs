//! Client-Initiated Backchannel Authentication (OpenID Connect CIBA Core 1.0): a request is a
//! `GrantKind::BackchannelAuth` grant (stored by the hash of its `auth_req_id`, its subject the
//! user asked) holding a [`DeviceGrant`] with [`Backchannel`] details. The user learns of it on
//! the approvals page and, if the tenant has one, through its webhook; decides it there; and the
//! client polls (or, in ping mode, is told, then redeems once).

use super::device::{Backchannel, DeviceGrant, DeviceStatus};
use crate::config::Client;
use crate::config::tenant::CibaMode;
use crate::error::{InternalError, OAuthError, json_no_store};
use crate::registry::Tenant;
use crate::request::RequestContext;
use crate::state::AppState;
use crate::stores::{GrantKind, GrantRecord, GrantStore};
use crate::tokens;
use crate::validation::backchannel::ValidatedBackchannel;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use std::time::Duration;

/// The approvals page, relative to the issuer.
pub const APPROVALS_PATH: &str = "/approvals";
/// Delays before the retries of a notification that failed (webhook and ping alike).
const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(25),
];

/// Binds a sealed value to its purpose and tenant.
fn aad(tenant: &str, what: &str) -> Vec<u8> {
    format!("backchannel {what}\0{tenant}").into_bytes()
}

fn seal(state: &AppState, tenant: &str, what: &str, value: &str) -> Result<String, InternalError> {
    Ok(B64.encode(
        state
            .master
            .seal_grant(value.as_bytes(), &aad(tenant, what))?,
    ))
}

fn open(state: &AppState, tenant: &str, what: &str, sealed: &str) -> Option<String> {
    let bytes = B64.decode(sealed).ok()?;
    let plain = state.master.open_grant(&bytes, &aad(tenant, what))?;
    String::from_utf8(plain).ok()
}

/// CIBA Core §7.3: `auth_req_id`, `expires_in`, `interval`.
#[derive(serde::Serialize)]
struct BackchannelResponse<'a> {
    auth_req_id: &'a str,
    expires_in: i64,
    interval: i64,
}

/// A new pending request, announced to the user; the client's answer.
pub async fn authorize(
    state: &AppState,
    tenant: &Tenant,
    v: ValidatedBackchannel,
    ctx: &RequestContext,
) -> Result<Response, OAuthError> {
    let now = state.now();
    let auth_req_id = tokens::new_handle();
    let client_id = v.client().spec.client_id.clone();
    let sealed_notification_token = v
        .notification_token
        .as_deref()
        .map(|t| seal(state, tenant.slug(), "notification token", t))
        .transpose()?;
    let grant = DeviceGrant {
        scopes: v.scopes.clone(),
        audiences: v.audiences.clone(),
        interval: tenant.spec.ciba.interval,
        last_poll: None,
        status: DeviceStatus::Pending,
        backchannel: Some(Backchannel {
            binding_message: v.binding_message.clone(),
            sealed_id: seal(state, tenant.slug(), "auth_req_id", &auth_req_id)?,
            sealed_notification_token,
            username: v.username.clone(),
            acr_values: v.acr_values.clone(),
        }),
    };
    let record = GrantRecord {
        handle_hash: tokens::handle_hash(&auth_req_id),
        client_id: client_id.clone(),
        subject: Some(v.subject.clone()),
        data: serde_json::to_string(&grant).map_err(InternalError::from)?,
        created_at: now,
        expires_at: now + v.expires_in,
        ..GrantRecord::of(GrantKind::BackchannelAuth)
    };
    state.store.insert_grant(tenant.slug(), &record).await?;
    crate::events::backchannel_requested(tenant.slug(), &client_id, &ctx.request_id, &v.subject);
    if let Some(url) = tenant.spec.ciba.webhook_url.clone() {
        let jwt = webhook_jwt(tenant, &v, (&auth_req_id, &record.handle_hash), &url, now)?;
        let state = state.clone();
        let slug = tenant.slug().to_string();
        tokio::spawn(async move {
            deliver(&slug, "webhook", || {
                state
                    .outbound
                    .post_notification(&url)
                    .body("application/jwt", jwt.clone().into_bytes())
            })
            .await;
        });
    }
    let body = serde_json::to_vec(&BackchannelResponse {
        auth_req_id: &auth_req_id,
        expires_in: v.expires_in,
        interval: tenant.spec.ciba.interval,
    })
    .map_err(InternalError::from)?;
    Ok(json_no_store(StatusCode::OK, body))
}

/// The user notification (the tenant's webhook): a JWT signed with the tenant's key, naming
/// the tenant, the request (`auth_req_id`, and its approvals link), the user, the client, the
/// binding message and the scopes. The `auth_req_id` alone redeems nothing: the token endpoint
/// also wants the client's authentication (CIBA Core §10.1).
fn webhook_jwt(
    tenant: &Tenant,
    v: &ValidatedBackchannel,
    (auth_req_id, request): (&str, &str),
    audience: &str,
    now: i64,
) -> Result<String, InternalError> {
    let client = &v.client().spec;
    let claims = serde_json::json!({
        "iss": tenant.spec.issuer,
        "aud": audience,
        "iat": now,
        "exp": now + v.expires_in,
        "jti": tokens::new_jti(),
        "tenant": tenant.slug(),
        "sub": v.subject,
        "username": v.username,
        "client_id": client.client_id,
        "client_name": client.client_name.clone().unwrap_or_else(|| client.client_id.clone()),
        "binding_message": v.binding_message,
        "scope": v.scopes.join(" "),
        "auth_req_id": auth_req_id,
        "request": request,
        "approval_uri": approval_uri(tenant, request),
    });
    let keys = tenant.keys.load();
    let signer = keys
        .signer(tenant.spec.tokens.id_token_algorithm)
        .ok_or_else(|| {
            InternalError::Other(format!("tenant {} has no id token key", tenant.slug()))
        })?;
    signer.sign_jwt("ciba-notification+jwt", &claims)
}

/// The page where the user decides one request.
pub fn approval_uri(tenant: &Tenant, request: &str) -> String {
    format!("{}{APPROVALS_PATH}?request={request}", tenant.spec.issuer)
}

/// Sends a notification, retrying with backoff; failures are logged (the client can still
/// poll; the user can still find the request on the approvals page).
async fn deliver<'a>(
    tenant: &str,
    what: &'static str,
    request: impl Fn() -> crate::outbound::OutboundRequest<'a>,
) {
    for attempt in 0..=RETRY_DELAYS.len() {
        match request().send_for_status().await {
            Ok(status) if status.is_success() => return,
            Ok(status) => tracing::warn!(
                tenant,
                what,
                status = status.as_u16(),
                attempt,
                "notification refused"
            ),
            Err(e) => tracing::warn!(tenant, what, error = %e, attempt, "notification failed"),
        }
        match RETRY_DELAYS.get(attempt) {
            Some(d) => tokio::time::sleep(*d).await,
            None => tracing::error!(tenant, what, "notification given up"),
        }
    }
}

/// What a ping needs, taken before the decision is written.
pub struct Notify {
    state: AppState,
    tenant: String,
    endpoint: Option<String>,
}

impl Notify {
    pub fn of(state: &AppState, tenant: &Tenant, client: &Client) -> Self {
        let endpoint = client
            .spec
            .ciba
            .as_ref()
            .filter(|c| c.mode == CibaMode::Ping)
            .and_then(|c| c.notification_endpoint.clone());
        Self {
            state: state.clone(),
            tenant: tenant.slug().to_string(),
            endpoint,
        }
    }

    /// CIBA Core §10.2: a ping client is told `{"auth_req_id": …}` with its
    /// `client_notification_token` as Bearer, once the request is decided.
    pub async fn decided(self, grant_hash: &str) {
        let Some(endpoint) = self.endpoint else {
            return;
        };
        let record = match self.state.store.find_grant(&self.tenant, grant_hash).await {
            Ok(Some(r)) => r,
            _ => return,
        };
        let Some(details) = serde_json::from_str::<DeviceGrant>(&record.data)
            .ok()
            .and_then(|g| g.backchannel)
        else {
            return;
        };
        let (Some(id), Some(token)) = (
            open(&self.state, &self.tenant, "auth_req_id", &details.sealed_id),
            details
                .sealed_notification_token
                .as_deref()
                .and_then(|t| open(&self.state, &self.tenant, "notification token", t)),
        ) else {
            tracing::error!(tenant = %self.tenant, "a ping could not open its sealed values");
            return;
        };
        let body = serde_json::json!({ "auth_req_id": id })
            .to_string()
            .into_bytes();
        tokio::spawn(async move {
            let state = self.state;
            deliver(&self.tenant, "ping", || {
                state
                    .outbound
                    .post_notification(&endpoint)
                    .bearer_auth(&token)
                    .body("application/json", body.clone())
            })
            .await;
        });
    }
}
