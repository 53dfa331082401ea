//! `POST /{tenant}/connect/revocation` (RFC 7009): a client revokes one of its refresh tokens
//! (and with it the whole family) or access tokens. Unknown tokens are answered 200.

use super::call::OAuthCall;
use crate::error::json_no_store;
use crate::error::{ErrorCode, OAuthError};
use crate::stores::{GrantKind, GrantStore};
use crate::tokens;
use crate::validation::client_auth;
use axum::response::Response;

pub async fn revoke(call: OAuthCall) -> Response {
    let (state, tenant, ctx, headers, form) = call.parts();
    let result = async {
        let auth = client_auth::authenticate(state, tenant, headers, form, ctx).await?;
        let client_id = auth.client().spec.client_id.clone();
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        // RFC 7009 §2.1: the token must have been issued to the revoking client.
        let not_yours = || {
            OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "the token was not issued to this client",
            )
        };
        if token.len() <= 100
            && let Some(r) = state
                .store
                .find_grant(tenant.slug(), &tokens::handle_hash(token))
                .await?
                .filter(|r| {
                    r.kind == GrantKind::RefreshToken || r.kind == GrantKind::ReferenceToken
                })
        {
            if r.client_id != client_id {
                return Err(not_yours());
            }
            // RFC 7009 §2.1: revoking a refresh token revokes what was issued with it; a
            // family is the tokens of one grant (RFC 9700 §4.14.2).
            match (r.kind, &r.family) {
                (GrantKind::RefreshToken, Some(family)) => {
                    state.revoke(tenant.slug(), family, true).await?;
                }
                _ => {
                    state.revoke(tenant.slug(), &r.handle_hash, false).await?;
                }
            }
            crate::events::token_revoked(
                tenant.slug(),
                &client_id,
                &ctx.request_id,
                r.kind.as_str(),
            );
        } else if let Some(t) = tokens::access::verify(state, tenant, token).await? {
            // A JWT access token: revocable where it was recorded (tokens issued for a user).
            if t.str_claim("client_id") != Some(client_id.as_str()) {
                return Err(not_yours());
            }
            if let Some(r) = &t.record {
                state.revoke(tenant.slug(), &r.handle_hash, false).await?;
                crate::events::token_revoked(
                    tenant.slug(),
                    &client_id,
                    &ctx.request_id,
                    "access_token",
                );
            }
        }
        // RFC 7009 §2.2: 200 whether or not there was anything to revoke.
        Ok::<_, OAuthError>(json_no_store(axum::http::StatusCode::OK, b"{}".to_vec()))
    }
    .await;
    call.answer("revocation", result)
}
