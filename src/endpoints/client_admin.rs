//! `/{tenant}/admin/clients`: the clients a tenant keeps in the database (not in its file),
//! managed with JSON by a client holding an admin token of that tenant (as `/admin/providers`).
//! A body is a client definition: the tenant file's client keys without those that name files
//! or extend trust; secrets are generated and shown once, in the answer that made them.
//!
//! - `GET    …/clients?after=&limit=`     — runtime clients by id (and the file clients' ids)
//! - `POST   …/clients`                   — create (201; an empty `client_id` gets a fresh one)
//! - `GET    …/clients/{client_id}`       — one client, secrets as kind and expiry only
//! - `PUT    …/clients/{client_id}`       — create or replace (secrets kept while still used)
//! - `PATCH  …/clients/{client_id}`       — `{"enabled": false}` disables, `true` enables
//! - `DELETE …/clients/{client_id}`       — remove (204); its tokens stop working at once
//! - `POST   …/clients/{client_id}/secret` — a new secret replaces the old ones
//! - `POST   …/initial-access-tokens`     — `{"uses": N, "expires_in": seconds}`: a token for
//!   RFC 7591 registration, shown once

use super::admin::{
    AdminCall, ListQuery, admin_error, enabled_in, json_body, json_response, refused_as_event,
};
use crate::clients;
use crate::config::tenant::ClientDefinition;
use crate::error::OAuthError;
use crate::federation::admin::Mode;
use crate::request::RequestContext;
use crate::validation::params::{Path, Query};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub async fn list(call: AdminCall, Query(q): Query<ListQuery>) -> Result<Response, OAuthError> {
    let AdminCall { state, tenant, .. } = call;
    let found = clients::list(&state.store, tenant.slug(), &q.after, q.limit())
        .await
        .map_err(admin_error)?;
    let next = q.next_after(&found, "client_id");
    Ok(json_response(
        StatusCode::OK,
        json!({"clients": found, "next_after": next}),
    ))
}

pub async fn create(
    call: AdminCall,
    ctx: RequestContext,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    refused_as_event(&call, &ctx, write(&call, &headers, &body, None).await)
}

pub async fn put(
    call: AdminCall,
    ctx: RequestContext,
    headers: HeaderMap,
    Path((_, client_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, OAuthError> {
    refused_as_event(
        &call,
        &ctx,
        write(&call, &headers, &body, Some(&client_id)).await,
    )
}

/// A body: a client definition, and optionally `"enabled"`.
fn parse_body(body: &[u8]) -> Result<(ClientDefinition, Option<bool>), OAuthError> {
    let bad = |e: String| {
        OAuthError::invalid_request(format!("the body is not a client definition: {e}"))
    };
    let mut v: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let enabled = match v.as_object_mut().and_then(|o| o.remove("enabled")) {
        None => None,
        Some(Value::Bool(b)) => Some(b),
        Some(_) => return Err(OAuthError::invalid_request("enabled: true or false")),
    };
    let def = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
    Ok((def, enabled))
}

/// POST (`path_id` None: create) and PUT (create or replace the client `path_id`).
async fn write(
    call: &AdminCall,
    headers: &HeaderMap,
    body: &[u8],
    path_id: Option<&str>,
) -> Result<Response, OAuthError> {
    let AdminCall {
        state,
        tenant,
        caller,
    } = call;
    if !json_body(headers) {
        return Err(OAuthError::invalid_request("send application/json")
            .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
    let (mut def, enabled) = parse_body(body)?;
    if let Some(id) = path_id {
        if def.client_id.is_empty() {
            def.client_id = id.to_string();
        } else if def.client_id != id {
            return Err(OAuthError::invalid_request(
                "the client_id in the body differs from the one in the path",
            ));
        }
    }
    let mode = match path_id {
        None => Mode::Create,
        Some(_) => Mode::CreateOrReplace,
    };
    let saved = clients::save(
        &state.store,
        &state.master,
        tenant.slug(),
        def,
        enabled,
        mode,
        state.now(),
    )
    .await
    .map_err(admin_error)?;
    let id = saved
        .view
        .get("client_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    tenant.clients.invalidate(&id).await;
    let action = if saved.created { "create" } else { "replace" };
    tracing::info!(target: "security", event = "admin_change", tenant = %tenant.slug(), client_id = %caller, client = %id, action);
    let location = format!(
        "{}/admin/clients/{}",
        tenant.spec.issuer,
        form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    );
    Ok(super::admin::stored(
        with_secret(saved.view, saved.secret),
        saved.created,
        &location,
    ))
}

/// The view, with a secret made by this call (the only time it is shown).
fn with_secret(mut view: Value, secret: Option<String>) -> Value {
    if let (Some(s), Some(o)) = (secret, view.as_object_mut()) {
        o.insert("client_secret".into(), s.into());
    }
    view
}

pub async fn get_one(
    call: AdminCall,
    Path((_, client_id)): Path<(String, String)>,
) -> Result<Response, OAuthError> {
    let v = clients::get(&call.state.store, call.tenant.slug(), &client_id)
        .await
        .map_err(admin_error)?;
    Ok(json_response(StatusCode::OK, v))
}

pub async fn patch(
    call: AdminCall,
    Path((_, client_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let AdminCall {
        state,
        tenant,
        caller,
    } = call;
    let enabled = enabled_in(&body)?;
    let v = clients::set_enabled(
        &state.store,
        tenant.slug(),
        &client_id,
        enabled,
        state.now(),
    )
    .await
    .map_err(admin_error)?;
    tenant.clients.invalidate(&client_id).await;
    tracing::info!(target: "security", event = "admin_change", tenant = %tenant.slug(), client_id = %caller, client = %client_id, action = if enabled { "enable" } else { "disable" });
    Ok(json_response(StatusCode::OK, v))
}

pub async fn delete(
    call: AdminCall,
    Path((_, client_id)): Path<(String, String)>,
) -> Result<Response, OAuthError> {
    let AdminCall {
        state,
        tenant,
        caller,
    } = call;
    clients::remove(&state.store, tenant.slug(), &client_id, state.now())
        .await
        .map_err(admin_error)?;
    crate::registry::sync::forget_client(&state, tenant.slug(), &client_id).await;
    tracing::info!(target: "security", event = "admin_change", tenant = %tenant.slug(), client_id = %caller, client = %client_id, action = "delete");
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn rotate_secret(
    call: AdminCall,
    Path((_, client_id)): Path<(String, String)>,
) -> Result<Response, OAuthError> {
    let AdminCall {
        state,
        tenant,
        caller,
    } = call;
    let saved = clients::rotate_secret(
        &state.store,
        &state.master,
        tenant.slug(),
        &client_id,
        state.now(),
    )
    .await
    .map_err(admin_error)?;
    tenant.clients.invalidate(&client_id).await;
    tracing::info!(target: "security", event = "admin_change", tenant = %tenant.slug(), client_id = %caller, client = %client_id, action = "rotate_secret");
    Ok(json_response(
        StatusCode::OK,
        with_secret(saved.view, saved.secret),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct InitialTokenRequest {
    #[serde(default = "one")]
    uses: u32,
    #[serde(default = "a_day")]
    expires_in: i64,
}

fn one() -> u32 {
    1
}

fn a_day() -> i64 {
    86_400
}

pub async fn initial_token(call: AdminCall, body: Bytes) -> Result<Response, OAuthError> {
    let AdminCall {
        state,
        tenant,
        caller,
    } = call;
    let req: InitialTokenRequest = if body.is_empty() {
        InitialTokenRequest {
            uses: one(),
            expires_in: a_day(),
        }
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            OAuthError::invalid_request(format!(
                "send {{\"uses\": N, \"expires_in\": seconds}}: {e}"
            ))
        })?
    };
    let issued = clients::initial_tokens::issue(
        &state.store,
        tenant.slug(),
        req.uses,
        req.expires_in,
        state.now(),
    )
    .await
    .map_err(admin_error)?;
    tracing::info!(target: "security", event = "admin_change", tenant = %tenant.slug(), client_id = %caller, action = "initial_access_token");
    Ok(json_response(
        StatusCode::CREATED,
        json!({
            "initial_access_token": issued.token,
            "uses": issued.uses,
            "expires_at": issued.expires_at,
        }),
    ))
}
