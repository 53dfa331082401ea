//! Token responses (RFC 6749 §5.1): JWT access tokens per RFC 9068, or reference tokens.

use crate::config::tenant::TokenFormat;
use crate::error::{InternalError, OAuthError};
use crate::frontdoor::middleware::RequestContext;
use crate::protocol::token::TokenResponse;
use crate::registry::Tenant;
use crate::state::AppState;
use crate::stores::{GrantRecord, GrantStore};
use crate::tokens::{self, AccessTokenClaims, Audience};
use crate::validation::token::client_credentials::ValidatedClientCredentials;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

pub async fn client_credentials(
    state: &AppState,
    tenant: &Tenant,
    v: ValidatedClientCredentials,
    ctx: &RequestContext,
) -> Result<Response, OAuthError> {
    let client = v.client();
    let now = state.now();
    let lifetime = client
        .spec
        .access_token_lifetime
        .unwrap_or(tenant.spec.tokens.access_token_lifetime);
    let scope = v.scopes().join(" ");
    let jti = tokens::new_jti();
    let claims = AccessTokenClaims {
        iss: &tenant.spec.issuer,
        // RFC 9068 §2.2: for client_credentials the subject is the client itself.
        sub: &client.spec.client_id,
        aud: Audience(v.audiences()),
        client_id: &client.spec.client_id,
        scope: &scope,
        jti: &jti,
        iat: now,
        nbf: now,
        exp: now + lifetime,
    };
    let format = client
        .spec
        .access_token_format
        .unwrap_or(tenant.default_token_format());
    let access_token = match format {
        TokenFormat::Jwt => {
            let alg = tenant.spec.tokens.access_token_algorithm;
            let keys = tenant.keys.load();
            let signer = keys.signer(alg).ok_or_else(|| {
                InternalError::Other(format!("tenant {} has no active {alg} key", tenant.slug()))
            })?;
            signer.sign_jwt("at+jwt", &claims)?
        }
        TokenFormat::Reference => {
            let handle = tokens::new_handle();
            let record = GrantRecord {
                handle_hash: tokens::handle_hash(&handle),
                kind: "reference_token".into(),
                client_id: client.spec.client_id.clone(),
                subject: Some(client.spec.client_id.clone()),
                data: serde_json::to_string(&claims).map_err(InternalError::from)?,
                created_at: now,
                expires_at: now + lifetime,
                consumed_at: None,
            };
            state.store.insert_grant(tenant.slug(), &record).await?;
            handle
        }
    };
    tenant.metrics.token_issued("client_credentials");
    crate::events::token_issued(
        tenant.slug(),
        &client.spec.client_id,
        &ctx.request_id,
        "client_credentials",
        &jti,
    );
    let body = serde_json::to_vec(&TokenResponse {
        access_token: &access_token,
        token_type: "Bearer",
        expires_in: lifetime,
        scope: &scope,
    })
    .map_err(InternalError::from)?;
    Ok(no_store_json(body))
}

/// RFC 6749 §5.1: token responses carry `Cache-Control: no-store` and `Pragma: no-cache`.
pub fn no_store_json(body: Vec<u8>) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}
