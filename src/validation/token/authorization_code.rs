//! `grant_type=authorization_code` (RFC 6749 §4.1.3) with PKCE (RFC 7636 §4.6).

use crate::config::Client;
use crate::config::tenant::GrantType;
use crate::error::{ErrorCode, InternalError, OAuthError};
use crate::protocol::token::AuthorizationCodeRequest;
use crate::registry::Tenant;
use crate::request::RequestContext;
use crate::response::authorize::{CodeData, code_aad};
use crate::state::AppState;
use crate::stores::GrantRecord;
use crate::tokens;
use crate::validation::client_auth::AuthenticatedClient;
use base64::Engine;
use std::sync::Arc;

/// A code that may be redeemed by this client. Only [`validate`] builds one.
#[derive(Debug)]
pub struct ValidatedCode {
    client: Arc<Client>,
    cert_binding: Option<String>,
    code_hash: String,
    data: CodeData,
}

impl ValidatedCode {
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }
    /// The hash of the code, under which its use is recorded.
    pub fn code_hash(&self) -> &str {
        &self.code_hash
    }
    pub fn data(&self) -> &CodeData {
        &self.data
    }
    pub fn cert_binding(&self) -> Option<&str> {
        self.cert_binding.as_deref()
    }
}

pub async fn validate(
    state: &AppState,
    tenant: &Tenant,
    auth: AuthenticatedClient,
    req: AuthorizationCodeRequest,
) -> Result<ValidatedCode, OAuthError> {
    let client = auth.client().clone();
    let cert_binding = auth.cert_binding().map(str::to_string);
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client may not use authorization_code",
        ));
    }
    let invalid = || OAuthError::invalid_grant("the code is invalid, expired or already used");
    if req.code.len() > 2048 {
        return Err(invalid());
    }
    // Forged, altered, or from another tenant: the seal does not open.
    let data: CodeData = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&req.code)
        .ok()
        .and_then(|sealed| state.master.open_grant(&sealed, &code_aad(tenant.slug())))
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or_else(invalid)?;
    // RFC 6749 §4.1.3: the code was issued to this client.
    if data.client_id != client.spec.client_id || data.expires_at <= state.now() {
        return Err(invalid());
    }
    // RFC 6749 §4.1.3: the same redirect_uri as in the authorization request.
    let same_redirect = match &req.redirect_uri {
        Some(u) => *u == data.redirect_uri,
        None => client.spec.interactive.redirect_uris.len() == 1,
    };
    if !same_redirect {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    match (&data.code_challenge, &req.code_verifier) {
        (Some(challenge), Some(verifier)) => {
            // RFC 7636 §4.1: 43-128 unreserved characters.
            if !(43..=128).contains(&verifier.len())
                || !verifier
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
            {
                return Err(OAuthError::invalid_grant("malformed code_verifier"));
            }
            let computed = match data.code_challenge_method.as_deref() {
                Some("plain") => verifier.clone(),
                _ => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()),
                ),
            };
            if aws_lc_rs::constant_time::verify_slices_are_equal(
                computed.as_bytes(),
                challenge.as_bytes(),
            )
            .is_err()
            {
                return Err(OAuthError::invalid_grant(
                    "code_verifier does not match the code_challenge",
                ));
            }
        }
        (Some(_), None) => {
            return Err(OAuthError::invalid_grant("code_verifier is required"));
        }
        // RFC 9700 §2.1.1: a verifier for a code issued without a challenge is a downgrade.
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "the authorization request had no code_challenge",
            ));
        }
        (None, None) => {}
    }
    Ok(ValidatedCode {
        client,
        cert_binding,
        code_hash: tokens::handle_hash(&req.code),
        data,
    })
}

pub async fn revoke_family(
    state: &AppState,
    tenant: &Tenant,
    record: &GrantRecord,
    ctx: &RequestContext,
) -> Result<(), InternalError> {
    let revoked = match &record.family {
        Some(f) => state.revoke(tenant.slug(), f, true).await?,
        None => 0,
    };
    crate::events::grant_replayed(
        tenant.slug(),
        &record.client_id,
        &ctx.request_id,
        record.kind.as_str(),
        revoked,
    );
    Ok(())
}
