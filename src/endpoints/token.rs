//! `POST /{tenant}/connect/token` (RFC 6749 §3.2): extract → authenticate → validate → issue.

use super::call::OAuthCall;
use crate::error::{ErrorCode, OAuthError};
use crate::protocol::token::TokenRequest;
use crate::response;
use crate::validation::token::{
    GrantRequest, authorization_code, client_credentials, device_code, device_code::Polled,
    extension, refresh_token,
};
use crate::validation::{client_auth, dpop};
use axum::response::Response;

pub async fn token(call: OAuthCall) -> Response {
    let (state, tenant, ctx, headers, form) = call.parts();
    let result = async {
        let client = client_auth::authenticate(state, tenant, headers, form, ctx).await?;
        // RFC 9449 §5: a DPoP proof binds the tokens to the proof's key.
        let proof = dpop::verify_request(state, tenant, ctx, headers, "POST", None).await?;
        if proof.is_none() && client.client().spec.interactive.require_dpop {
            return Err(OAuthError::new(
                ErrorCode::InvalidDpopProof,
                "this client must send a DPoP proof",
            ));
        }
        let jkt = proof.as_ref().map(|p| p.jkt.as_str());
        match TokenRequest::parse(form)? {
            TokenRequest::ClientCredentials(request) => {
                let validated = client_credentials::validate(tenant, client, request)?;
                response::token::client_credentials(state, tenant, validated, ctx, jkt).await
            }
            TokenRequest::AuthorizationCode(request) => {
                let validated =
                    authorization_code::validate(state, tenant, client, request).await?;
                response::token::authorization_code(state, tenant, validated, ctx, jkt).await
            }
            TokenRequest::RefreshToken(request) => {
                let validated =
                    refresh_token::validate(state, tenant, client, request, ctx).await?;
                response::token::refresh_token(state, tenant, validated, ctx, jkt).await
            }
            TokenRequest::DeviceCode(request) => {
                let validated =
                    device_code::validate(state, tenant, client, request, Polled::Device).await?;
                response::token::device_code(state, tenant, validated, ctx, jkt).await
            }
            TokenRequest::Extension(grant_type) => {
                let request = GrantRequest {
                    state,
                    tenant,
                    client,
                    form,
                    ctx,
                };
                let validated = extension(request, &grant_type).await?;
                response::token::extension(state, tenant, validated, ctx, jkt).await
            }
            TokenRequest::Ciba(request) => {
                let validated =
                    device_code::validate(state, tenant, client, request, Polled::Backchannel)
                        .await?;
                response::token::device_code(state, tenant, validated, ctx, jkt).await
            }
        }
    }
    .await;
    call.answer("token", result)
}
