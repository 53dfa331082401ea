//! A client's public keys (request objects; later private_key_jwt and DPoP binding): inline in
//! its registration, or from its `jwks_uri` through a cache.

use crate::config::Client;
use crate::error::InternalError;
use crate::state::AppState;
use serde_json::Value;
use std::sync::Arc;

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
    let fresh = match state.documents.refetch(uri, state.now()).await {
        Ok(Some(fresh)) => fresh,
        Ok(None) => return Ok(None),
        Err(e) => {
            unreachable_keys(client, &e);
            return Ok(None);
        }
    };
    let Some(jwks) = fresh.json.clone() else {
        return Ok(None);
    };
    Ok(crate::tokens::jws::verify(jws, &jwks, allowed).ok())
}

/// The client's JWK Set: inline in its registration, or from its `jwks_uri` through the
/// document cache (fetched by the outbound guard, fresh as its Cache-Control says).
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
    // A client whose keys cannot be fetched cannot authenticate with them: its problem, not
    // the server's (invalid_client rather than server_error).
    match state.documents.get(uri, state.now()).await {
        Ok(doc) => Ok(doc.json.clone()),
        Err(e) => {
            unreachable_keys(client, &e);
            Ok(None)
        }
    }
}

fn unreachable_keys(client: &Client, e: &crate::outbound::OutboundError) {
    tracing::warn!(target: "security", event = "client_keys_unavailable", client_id = %client.spec.client_id, error = %e, "the client's jwks_uri could not be fetched");
}
