//! Structured security events (target `security`): one function per event, so every event
//! carries the same fields and nothing secret can slip into one.

use crate::keys::Alg;

pub fn token_issued(
    tenant: &str,
    client_id: &str,
    request_id: &str,
    grant_type: &str,
    jti_tag: &str,
) {
    tracing::info!(target: "security", event = "token_issued", tenant, client_id, request_id, grant_type, token = jti_tag);
}

pub fn client_auth_failed(tenant: &str, client_id: &str, request_id: &str, reason: &str) {
    tracing::warn!(target: "security", event = "client_authentication_failed", tenant, client_id, request_id, reason);
}

pub fn request_rejected(
    tenant: &str,
    endpoint: &str,
    request_id: &str,
    error: &str,
    description: &str,
) {
    tracing::warn!(target: "security", event = "request_rejected", tenant, endpoint, request_id, error, description);
}

pub fn key_created(tenant: &str, kid: &str, alg: Alg, activates_at: i64) {
    tracing::info!(target: "security", event = "signing_key_created", tenant, kid, alg = alg.as_str(), activates_at);
}

pub fn config_rejected(file: &str, errors: usize) {
    tracing::error!(target: "security", event = "config_rejected", file, errors);
}

pub fn tenant_loaded(tenant: &str, source: &str) {
    tracing::info!(target: "security", event = "tenant_loaded", tenant, source);
}

pub fn code_issued(tenant: &str, client_id: &str, request_id: &str, subject: &str) {
    tracing::info!(target: "security", event = "authorization_code_issued", tenant, client_id, request_id, subject);
}

/// RFC 8628 §3.2: a device asked for authorization.
pub fn device_authorization_started(tenant: &str, client_id: &str, request_id: &str) {
    tracing::info!(target: "security", event = "device_authorization_started", tenant, client_id, request_id);
}

/// CIBA Core §7.1: a client asked for a user's approval.
pub fn backchannel_requested(tenant: &str, client_id: &str, request_id: &str, subject: &str) {
    tracing::info!(target: "security", event = "backchannel_requested", tenant, client_id, request_id, subject);
}

/// RFC 8628 §3.3: the user approved or denied a device.
pub fn device_decided(
    tenant: &str,
    client_id: &str,
    request_id: &str,
    subject: &str,
    approved: bool,
) {
    tracing::info!(target: "security", event = "device_decided", tenant, client_id, request_id, subject, approved);
}

/// RFC 8628 §5.1: a wrong, expired or used user code was entered.
pub fn user_code_rejected(tenant: &str, request_id: &str, reason: &str, client_ip: &str) {
    tracing::warn!(target: "security", event = "user_code_rejected", tenant, request_id, reason, client_ip);
}

pub fn login_succeeded(tenant: &str, subject: &str, request_id: &str, amr: &str, client_ip: &str) {
    tracing::info!(target: "security", event = "login_succeeded", tenant, subject, request_id, amr, client_ip);
}

/// `username` is what was typed (it may not exist); never the password.
pub fn login_failed(tenant: &str, username: &str, request_id: &str, reason: &str, client_ip: &str) {
    tracing::warn!(target: "security", event = "login_failed", tenant, username, request_id, reason, client_ip);
}

pub fn grant_replayed(tenant: &str, client_id: &str, request_id: &str, kind: &str, revoked: u64) {
    tracing::warn!(target: "security", event = "grant_replayed", tenant, client_id, request_id, kind, revoked);
}

/// A token exchange, JWT bearer or extension grant refused, with the precise reason (the
/// client is told less where more would help an attacker).
pub fn grant_refused(
    tenant: &str,
    client_id: &str,
    request_id: &str,
    grant_type: &str,
    reason: &str,
) {
    tracing::warn!(target: "security", event = "grant_refused", tenant, client_id, request_id, grant_type, reason);
}

/// A SAML Response with an assertion went to a service provider.
pub fn saml_response_issued(tenant: &str, sp: &str, request_id: &str, subject: &str) {
    tracing::info!(target: "security", event = "saml_response_issued", tenant, sp, request_id, subject);
}

/// A LogoutRequest went to a SAML SP (single logout of the session `sid`).
pub fn saml_logout_sent(tenant: &str, sp: &str, sid: &str) {
    tracing::info!(target: "security", event = "saml_logout_sent", tenant, sp, sid);
}

pub fn logout(tenant: &str, subject: &str, sid: &str, request_id: &str) {
    tracing::info!(target: "security", event = "logout", tenant, subject, sid, request_id);
}

pub fn token_revoked(tenant: &str, client_id: &str, request_id: &str, kind: &str) {
    tracing::info!(target: "security", event = "token_revoked", tenant, client_id, request_id, kind);
}

/// An upstream provider's answer (or a browser's callback) failed a check: forged or replayed
/// state, a bad signature, the wrong audience, an expired assertion.
pub fn federation_rejected(tenant: &str, request_id: &str, reason: &str, client_ip: &str) {
    tracing::warn!(target: "security", event = "federation_rejected", tenant, request_id, reason, client_ip);
}

/// A connection closed right after accept because `limit` (`global` or `per_address`) was
/// reached; logged at most once per interval, `unlogged` counts the refusals since the last line.
pub fn connection_refused(
    limit: &str,
    client_ip: &str,
    listener: &str,
    open: usize,
    unlogged: u64,
) {
    tracing::warn!(target: "security", event = "connection_refused", limit, client_ip, listener, open, unlogged);
}
