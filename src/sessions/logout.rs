//! Logout notifications: front-channel iframes (OIDC Front-Channel Logout 1.0 §2) and
//! back-channel logout tokens (OIDC Back-Channel Logout 1.0 §2.4), sent in the background with
//! retries so the user never waits on a client.

use crate::config::Client;
use crate::registry::Tenant;
use crate::state::AppState;
use crate::stores::{ClientStore, SessionRecord};
use crate::tokens;
use std::sync::Arc;
use std::time::Duration;

const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
const ATTEMPTS: u32 = 3;

/// Ends `session` (on every node: it is deleted from the store) and tells its OIDC clients:
/// back-channel now, in the background; the front-channel URLs are returned for the browser.
pub async fn end(
    state: &AppState,
    tenant: &Tenant,
    session: &SessionRecord,
    request_id: &str,
) -> Result<Vec<String>, crate::error::InternalError> {
    use crate::stores::SessionStore;
    state
        .store
        .delete_session(tenant.slug(), &session.sid)
        .await?;
    crate::events::logout(tenant.slug(), &session.subject, &session.sid, request_id);
    let clients = session_clients(tenant, session).await;
    send_backchannel(state, tenant, session, &clients);
    Ok(frontchannel_urls(tenant, session, &clients))
}

/// The clients that received tokens in `session`.
pub async fn session_clients(tenant: &Tenant, session: &SessionRecord) -> Vec<Arc<Client>> {
    let mut out = Vec::new();
    for id in session.client_ids() {
        if let Ok(Some(c)) = tenant.clients.find_client(tenant.slug(), id).await {
            out.push(c);
        }
    }
    out
}

/// One URL per client with a front-channel logout URI, carrying `iss` and `sid` (§2).
pub fn frontchannel_urls(
    tenant: &Tenant,
    session: &SessionRecord,
    clients: &[Arc<Client>],
) -> Vec<String> {
    clients
        .iter()
        .filter_map(|c| c.spec.interactive.frontchannel_logout_uri.as_deref())
        .filter_map(|uri| {
            let mut u = url::Url::parse(uri).ok()?;
            u.query_pairs_mut()
                .append_pair("iss", &tenant.spec.issuer)
                .append_pair("sid", &session.sid);
            Some(u.to_string())
        })
        .collect()
}

/// Posts a logout token to every client with a back-channel logout URI; returns at once.
pub fn send_backchannel(
    state: &AppState,
    tenant: &Tenant,
    session: &SessionRecord,
    clients: &[Arc<Client>],
) {
    let now = state.now();
    for c in clients {
        let Some(uri) = c.spec.interactive.backchannel_logout_uri.clone() else {
            continue;
        };
        let token = match logout_token(tenant, c, session, now) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, client = %c.spec.client_id, "cannot sign a logout token");
                continue;
            }
        };
        let outbound = state.outbound.clone();
        let client_id = c.spec.client_id.clone();
        let slug = tenant.slug().to_string();
        tokio::spawn(async move {
            for attempt in 1..=ATTEMPTS {
                let sent = outbound
                    .post(&uri)
                    .form(&[("logout_token", token.as_str())])
                    .send_for_status()
                    .await;
                match sent {
                    // §2.8: 200 (or 204) means the RP logged the user out.
                    Ok(status) if status.is_success() => {
                        tracing::info!(target: "security", event = "backchannel_logout_sent", tenant = %slug, client_id = %client_id);
                        return;
                    }
                    Ok(status) => {
                        tracing::warn!(tenant = %slug, client_id = %client_id, %status, attempt, "back-channel logout refused")
                    }
                    // The guard refused the URI: trying again changes nothing.
                    Err(e @ crate::outbound::OutboundError::Refused(_)) => {
                        tracing::warn!(target: "security", event = "backchannel_logout_failed", tenant = %slug, client_id = %client_id, error = %e);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(tenant = %slug, client_id = %client_id, error = %e, attempt, "back-channel logout failed")
                    }
                }
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt * attempt))).await;
            }
            tracing::warn!(target: "security", event = "backchannel_logout_failed", tenant = %slug, client_id = %client_id);
        });
    }
}

/// §2.4: iss, aud, iat, exp, jti, events, sub and sid; never a nonce; `typ: logout+jwt`.
fn logout_token(
    tenant: &Tenant,
    client: &Client,
    session: &SessionRecord,
    now: i64,
) -> Result<String, crate::error::InternalError> {
    let alg = client
        .spec
        .interactive
        .id_token_alg
        .unwrap_or(tenant.spec.tokens.id_token_algorithm);
    let keys = tenant.keys.load();
    let signer = keys
        .signer(alg)
        .ok_or_else(|| crate::error::InternalError::Other(format!("no active {alg} key")))?;
    let claims = serde_json::json!({
        "iss": tenant.spec.issuer,
        "aud": client.spec.client_id,
        "iat": now,
        "exp": now + 120,
        "jti": tokens::new_jti(),
        "sub": session.subject,
        "sid": session.sid,
        "events": { BACKCHANNEL_EVENT: {} },
    });
    signer.sign_jwt("logout+jwt", &claims)
}
