//! `/{tenant}/admin/providers`: runtime upstream providers of a tenant, managed with JSON by a
//! client holding an access token of that tenant with the `portcullis.admin` scope (RFC 6750
//! bearer; the token's tenant is the one managed).
//!
//! - `GET    /admin/providers?after=&limit=` — runtime providers, by id (and the file ones)
//! - `POST   /admin/providers`               — create (201), 409 if the id exists
//! - `GET    /admin/providers/{id}`          — one provider, secrets left out
//! - `PUT    /admin/providers/{id}`          — create or replace (a missing secret keeps the stored one)
//! - `PATCH  /admin/providers/{id}`          — `{"enabled": false}` disables, `true` enables
//! - `DELETE /admin/providers/{id}`          — remove (204)

#![allow(clippy::result_large_err)]

use crate::federation::admin::{self, AdminError, FileClaims, Mode};
use crate::federation::{Definition, Plain};
use crate::frontdoor::middleware::RequestContext;
use crate::frontdoor::tenant::CurrentTenant;
use crate::registry::Tenant;
use crate::state::AppState;
use crate::validation::params::{Path, Query};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The scope an access token needs for the admin API.
pub const ADMIN_SCOPE: &str = "portcullis.admin";

fn json_response(status: StatusCode, body: Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    json_response(
        status,
        json!({"error": code, "error_description": description}),
    )
}

/// RFC 6750 §3: a challenge naming what was wrong.
fn challenge(
    tenant: &Tenant,
    status: StatusCode,
    code: Option<&str>,
    description: &str,
) -> Response {
    let mut value = format!("Bearer realm=\"{}\"", tenant.spec.issuer);
    if let Some(c) = code {
        value.push_str(&format!(
            ", error=\"{c}\", error_description=\"{description}\""
        ));
        if c == "insufficient_scope" {
            value.push_str(&format!(", scope=\"{ADMIN_SCOPE}\""));
        }
    }
    let mut r = match code {
        Some(c) => error(status, c, description),
        None => status.into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// The caller holds a live admin token of this tenant, or the answer explains why not.
async fn authorize(
    state: &AppState,
    tenant: &Tenant,
    ctx: &RequestContext,
    headers: &HeaderMap,
) -> Result<String, Response> {
    let reject = |status: StatusCode, code: &'static str, why: &'static str| {
        crate::events::request_rejected(tenant.slug(), "admin", &ctx.request_id, code, why);
        challenge(tenant, status, Some(code), why)
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
    else {
        return Err(challenge(tenant, StatusCode::UNAUTHORIZED, None, ""));
    };
    let t = match crate::tokens::access::verify(state, tenant, token).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Err(reject(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the access token is invalid or expired",
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, "admin authorization failed");
            return Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "try again later",
            ));
        }
    };
    // Sender-constrained tokens need their proof; this API takes plain bearer tokens only
    // (RFC 8705 §3, RFC 9449 §7), except a certificate-bound one over its own certificate.
    if let Some(cnf) = t.claims.get("cnf") {
        let x5t = cnf.get("x5t#S256").and_then(Value::as_str);
        if cnf.get("jkt").is_some()
            || x5t.is_none_or(|b| ctx.cert_thumbprint().as_deref() != Some(b))
        {
            return Err(reject(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "this token is sender-constrained; present its proof",
            ));
        }
    }
    let scoped = t
        .str_claim("scope")
        .is_some_and(|s| s.split(' ').any(|x| x == ADMIN_SCOPE));
    if !scoped {
        return Err(reject(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "the token lacks the portcullis.admin scope",
        ));
    }
    Ok(t.str_claim("client_id").unwrap_or_default().to_string())
}

fn admin_error(e: AdminError) -> Response {
    match e {
        AdminError::Invalid(m) => error(StatusCode::BAD_REQUEST, "invalid_request", &m),
        AdminError::Conflict(m) => error(StatusCode::CONFLICT, "conflict", &m),
        AdminError::NotFound(m) => error(StatusCode::NOT_FOUND, "not_found", &m),
        AdminError::Internal(e) => {
            tracing::error!(error = %e, "admin request failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "try again later",
            )
        }
    }
}

/// The body as a definition: values only (no file, no environment variable, no linking — the
/// type has no such fields, and unknown fields are refused).
fn parse_spec(body: &[u8], id: Option<&str>) -> Result<Definition<Plain>, Response> {
    let mut spec: Definition<Plain> = serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("the body is not a provider definition: {e}"),
        )
    })?;
    if let Some(id) = id {
        if spec.id.is_empty() {
            spec.id = id.to_string();
        } else if spec.id != id {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the id in the body differs from the one in the path",
            ));
        }
    }
    Ok(spec)
}

fn json_body(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The email domains the tenant's file providers claim (a runtime provider cannot take one).
fn file_claims(state: &AppState, tenant: &Tenant) -> FileClaims {
    let files = state.federation.files.load();
    FileClaims {
        domains: tenant
            .spec
            .providers
            .iter()
            .filter_map(|id| files.get(id))
            .flat_map(|p| p.spec.domains.iter().cloned())
            .collect(),
    }
}

async fn after_write(state: &AppState, tenant: &Tenant, id: &str) {
    state.federation.forget(tenant.slug(), id).await;
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    after: String,
    limit: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Err(r) = authorize(&state, &tenant, &ctx, &headers).await {
        return r;
    }
    let limit = q.limit.unwrap_or(100);
    match admin::list(&state.store, tenant.slug(), &q.after, limit).await {
        Ok(providers) => {
            let next = (providers.len() as i64 >= limit.clamp(1, 500))
                .then(|| providers.last().and_then(|p| p.get("id").cloned()))
                .flatten();
            let files = state.federation.files.load();
            let file_providers: Vec<Value> = tenant
                .spec
                .providers
                .iter()
                .filter_map(|id| files.get(id))
                .map(|p| p.spec.public_view())
                .collect();
            json_response(
                StatusCode::OK,
                json!({"providers": providers, "next_after": next, "file_providers": file_providers}),
            )
        }
        Err(e) => admin_error(e),
    }
}

pub async fn create(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    write_spec(&state, &tenant, &ctx, &headers, &body, None).await
}

/// POST (`id` None: create) and PUT (create or replace the provider `id`).
async fn write_spec(
    state: &AppState,
    tenant: &Tenant,
    ctx: &RequestContext,
    headers: &HeaderMap,
    body: &[u8],
    id: Option<&str>,
) -> Response {
    let caller = match authorize(state, tenant, ctx, headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !json_body(headers) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "send application/json",
        );
    }
    let spec = match parse_spec(body, id) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let pid = spec.id.clone();
    let mode = match id {
        None => Mode::Create,
        Some(_) => Mode::CreateOrReplace,
    };
    let claims = file_claims(state, tenant);
    match admin::save(
        &state.store,
        &state.master,
        state.outbound.policy(),
        tenant.slug(),
        spec,
        mode,
        &claims,
        state.now(),
    )
    .await
    {
        Ok(saved) => {
            after_write(state, tenant, &pid).await;
            let action = if saved.created { "create" } else { "replace" };
            tracing::info!(target: "security", event = "admin_change", tenant = %tenant.slug(), client_id = %caller, provider = %pid, action);
            if !saved.created {
                return json_response(StatusCode::OK, saved.view);
            }
            // RFC 9110 §9.3.4: a PUT that creates answers 201 as a POST does.
            let mut r = json_response(StatusCode::CREATED, saved.view);
            if let Ok(loc) =
                HeaderValue::from_str(&format!("{}/admin/providers/{pid}", tenant.spec.issuer))
            {
                r.headers_mut().insert(header::LOCATION, loc);
            }
            r
        }
        Err(e) => admin_error(e),
    }
}

pub async fn get_one(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    if let Err(r) = authorize(&state, &tenant, &ctx, &headers).await {
        return r;
    }
    match admin::get(&state.store, tenant.slug(), &id).await {
        Ok(v) => json_response(StatusCode::OK, v),
        Err(e) => admin_error(e),
    }
}

pub async fn put(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    write_spec(&state, &tenant, &ctx, &headers, &body, Some(&id)).await
}

pub async fn patch(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let caller = match authorize(&state, &tenant, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let enabled = serde_json::from_slice::<Value>(&body)
        .ok()
        .filter(|v| v.as_object().is_some_and(|o| o.len() == 1))
        .and_then(|v| v.get("enabled").and_then(Value::as_bool));
    let Some(enabled) = enabled else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send {\"enabled\": true} or {\"enabled\": false}",
        );
    };
    match admin::set_enabled(&state.store, tenant.slug(), &id, enabled, state.now()).await {
        Ok(v) => {
            after_write(&state, &tenant, &id).await;
            tracing::info!(target: "security", event = "admin_change", tenant = %tenant.slug(), client_id = %caller, provider = %id, action = if enabled { "enable" } else { "disable" });
            json_response(StatusCode::OK, v)
        }
        Err(e) => admin_error(e),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let caller = match authorize(&state, &tenant, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match admin::remove(&state.store, tenant.slug(), &id).await {
        Ok(()) => {
            after_write(&state, &tenant, &id).await;
            tracing::info!(target: "security", event = "admin_change", tenant = %tenant.slug(), client_id = %caller, provider = %id, action = "delete");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => admin_error(e),
    }
}
