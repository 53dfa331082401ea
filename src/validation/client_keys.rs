//! A client's public keys (request objects; later private_key_jwt and DPoP binding): inline in
//! its registration, or from its `jwks_uri` through a cache.

use crate::error::InternalError;
use crate::registry::Client;
use crate::state::AppState;
use serde_json::Value;
use std::sync::Arc;

const MAX_JWKS_BYTES: usize = 64 * 1024;

/// Verifies a JWS with the client's keys. With keys from `jwks_uri`, a `kid` the cached set
/// does not know triggers one refetch (at most once a minute per URI: the client may have
/// rotated; an attacker must not make us hammer its URI).
pub async fn verify_with_client_keys(
    state: &AppState,
    client: &Client,
    jws: &str,
    allowed: &[crate::keys::Alg],
) -> Result<Option<crate::tokens::jws::Verified>, InternalError> {
    let Some(jwks) = client_jwks(state, client).await? else {
        return Ok(None);
    };
    match crate::tokens::jws::verify(jws, &jwks, allowed) {
        Ok(v) => return Ok(Some(v)),
        Err(crate::tokens::jws::JwsError::NoKey) => {}
        Err(_) => return Ok(None),
    }
    let Some(uri) = &client.spec.interactive.jwks_uri else {
        return Ok(None);
    };
    if state.jwks_refetched.get(uri).await.is_some() {
        return Ok(None);
    }
    state.jwks_refetched.insert(uri.clone(), ()).await;
    state.jwks_cache.invalidate(uri).await;
    let Some(jwks) = client_jwks(state, client).await? else {
        return Ok(None);
    };
    Ok(crate::tokens::jws::verify(jws, &jwks, allowed).ok())
}

pub async fn client_jwks(
    state: &AppState,
    client: &Client,
) -> Result<Option<Arc<Value>>, InternalError> {
    let i = &client.spec.interactive;
    if let Some(jwks) = &i.jwks {
        return Ok(Some(Arc::new(jwks.clone())));
    }
    let Some(uri) = &i.jwks_uri else {
        return Ok(None);
    };
    let now = state.now();
    if let Some((jwks, fresh_until)) = state.jwks_cache.get(uri).await {
        if fresh_until > now {
            return Ok(Some(jwks));
        }
        state.jwks_cache.invalidate(uri).await;
    }
    let http = state.http.clone();
    let (jwks, _) = state
        .jwks_cache
        .try_get_with(uri.clone(), async move {
            let response = http
                .get(uri.as_str())
                .send()
                .await
                .map_err(|e| InternalError::Other(format!("jwks_uri: {e}")))?;
            if !response.status().is_success() {
                return Err(InternalError::Other(format!(
                    "jwks_uri answered {}",
                    response.status()
                )));
            }
            let fresh_until = now + crate::federation::metadata::freshness(response.headers());
            let body = response
                .bytes()
                .await
                .map_err(|e| InternalError::Other(format!("jwks_uri: {e}")))?;
            if body.len() > MAX_JWKS_BYTES {
                return Err(InternalError::Other("jwks_uri document too large".into()));
            }
            let v: Value = serde_json::from_slice(&body)?;
            Ok((Arc::new(v), fresh_until))
        })
        .await
        .map_err(|e| InternalError::Other(e.to_string()))?;
    Ok(Some(jwks))
}
