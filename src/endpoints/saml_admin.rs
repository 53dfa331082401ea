//! `/{tenant}/admin/saml-service-providers`: the SAML service providers a tenant registers at
//! runtime, managed with JSON by a client holding an admin token of that tenant (as
//! `/admin/providers`). An SP is addressed by its entity id, a URI, percent-encoded as one path
//! segment (`https://sp.example/saml` → `https%3A%2F%2Fsp.example%2Fsaml`).
//!
//! - `GET    …/saml-service-providers?after=&limit=` — runtime SPs by entity id (and the file ones)
//! - `POST   …/saml-service-providers`               — create (201), 409 if it exists or a file registers it
//! - `GET    …/saml-service-providers/{entity_id}`   — one SP
//! - `PUT    …/saml-service-providers/{entity_id}`   — create or replace
//! - `PATCH  …/saml-service-providers/{entity_id}`   — `{"enabled": false}` disables, `true` enables
//! - `DELETE …/saml-service-providers/{entity_id}`   — remove (204)

use super::admin::{AdminCall, ListQuery, admin_error, json_body, json_response, refused_as_event};
use crate::error::OAuthError;
use crate::federation::admin::Mode;
use crate::registry::Tenant;
use crate::request::RequestContext;
use crate::saml::admin;
use crate::state::AppState;
use crate::validation::params::{Path, Query};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

const COLLECTION: &str = "/admin/saml-service-providers";

/// `entity_id` as one path segment (an entity id is a URI: no space to become `+`).
fn segment(entity_id: &str) -> String {
    form_urlencoded::byte_serialize(entity_id.as_bytes()).collect()
}

async fn after_write(state: &AppState, tenant: &Tenant, entity_id: &str) {
    state
        .service_providers
        .forget(tenant.slug(), entity_id)
        .await;
}

pub async fn list(call: AdminCall, Query(q): Query<ListQuery>) -> Result<Response, OAuthError> {
    let AdminCall { state, tenant, .. } = call;
    let sps = admin::list(&state.store, tenant.slug(), &q.after, q.limit())
        .await
        .map_err(admin_error)?;
    let next = q.next_after(&sps, "entity_id");
    let files: Vec<&str> = tenant
        .spec
        .saml_service_providers
        .iter()
        .map(|s| s.entity_id.as_str())
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({"service_providers": sps, "next_after": next, "file_service_providers": files}),
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
    Path((_, entity_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, OAuthError> {
    refused_as_event(
        &call,
        &ctx,
        write(&call, &headers, &body, Some(&entity_id)).await,
    )
}

/// POST (`path_id` None: create) and PUT (create or replace the SP `path_id`).
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
    let (def, enabled) = admin::parse_body(body).map_err(OAuthError::invalid_request)?;
    if path_id.is_some_and(|p| p != def.entity_id) {
        return Err(OAuthError::invalid_request(
            "the entity_id in the body differs from the one in the path",
        ));
    }
    let entity_id = def.entity_id.clone();
    let mode = match path_id {
        None => Mode::Create,
        Some(_) => Mode::CreateOrReplace,
    };
    let saved = admin::save(
        &state.store,
        &state.documents,
        tenant.slug(),
        def,
        enabled,
        mode,
        state.now(),
    )
    .await
    .map_err(admin_error)?;
    after_write(state, tenant, &entity_id).await;
    let action = if saved.created { "create" } else { "replace" };
    tracing::info!(target: "security", event = "admin_change", tenant = %tenant.slug(), client_id = %caller, saml_sp = %entity_id, action);
    Ok(super::admin::stored(
        saved.view,
        saved.created,
        &format!("{}{COLLECTION}/{}", tenant.spec.issuer, segment(&entity_id)),
    ))
}

pub async fn get_one(
    call: AdminCall,
    Path((_, entity_id)): Path<(String, String)>,
) -> Result<Response, OAuthError> {
    let v = admin::get(&call.state.store, call.tenant.slug(), &entity_id)
        .await
        .map_err(admin_error)?;
    Ok(json_response(StatusCode::OK, v))
}

pub async fn patch(
    call: AdminCall,
    Path((_, entity_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let AdminCall {
        state,
        tenant,
        caller,
    } = call;
    let enabled = super::admin::enabled_in(&body)?;
    let v = admin::set_enabled(
        &state.store,
        tenant.slug(),
        &entity_id,
        enabled,
        state.now(),
    )
    .await
    .map_err(admin_error)?;
    after_write(&state, &tenant, &entity_id).await;
    tracing::info!(target: "security", event = "admin_change", tenant = %tenant.slug(), client_id = %caller, saml_sp = %entity_id, action = if enabled { "enable" } else { "disable" });
    Ok(json_response(StatusCode::OK, v))
}

pub async fn delete(
    call: AdminCall,
    Path((_, entity_id)): Path<(String, String)>,
) -> Result<Response, OAuthError> {
    let AdminCall {
        state,
        tenant,
        caller,
    } = call;
    admin::remove(&state.store, tenant.slug(), &entity_id)
        .await
        .map_err(admin_error)?;
    after_write(&state, &tenant, &entity_id).await;
    tracing::info!(target: "security", event = "admin_change", tenant = %tenant.slug(), client_id = %caller, saml_sp = %entity_id, action = "delete");
    Ok(StatusCode::NO_CONTENT.into_response())
}
