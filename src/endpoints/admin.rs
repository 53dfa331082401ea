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

use crate::error::{BearerError, ErrorCode, OAuthError};
use crate::federation::admin::{self, AdminError, FileClaims, Mode};
use crate::federation::{Definition, Plain};
use crate::registry::Tenant;
use crate::request::CurrentTenant;
use crate::request::RequestContext;
use crate::state::AppState;
use crate::validation::params::{Path, Query};
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

/// The scope an access token needs for the admin API.
pub const ADMIN_SCOPE: &str = "portcullis.admin";

pub(super) fn json_response(status: StatusCode, body: Value) -> Response {
    crate::error::json_no_store(status, body.to_string().into_bytes())
}

/// A request made with a live admin token of this tenant. Extracting it authorizes the call;
/// a refusal is the RFC 6750 §3 challenge naming what was wrong.
pub struct AdminCall {
    pub(super) state: AppState,
    pub(super) tenant: Arc<Tenant>,
    /// The client the token was issued to, for the audit log.
    pub(super) caller: String,
}

impl FromRequestParts<AppState> for AdminCall {
    type Rejection = Response;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Response> {
        let CurrentTenant(tenant) = CurrentTenant::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let ctx = RequestContext::from_request_parts(parts, state)
            .await
            .unwrap_or_else(|e| match e {});
        match authorize(state, &tenant, &ctx, &parts.headers).await {
            Ok(caller) => Ok(Self {
                state: state.clone(),
                tenant,
                caller,
            }),
            Err(Refusal::Bearer(e)) => {
                if let Some(code) = e.code() {
                    crate::events::request_rejected(
                        tenant.slug(),
                        "admin",
                        &ctx.request_id,
                        code.as_str(),
                        e.reason(),
                    );
                }
                Err(e.into_response())
            }
            Err(Refusal::Internal(e)) => Err(OAuthError::from(e).into_response()),
        }
    }
}

enum Refusal {
    Bearer(BearerError),
    Internal(crate::error::InternalError),
}

/// The caller holds a live admin token of this tenant, or the refusal explains why not.
async fn authorize(
    state: &AppState,
    tenant: &Tenant,
    ctx: &RequestContext,
    headers: &HeaderMap,
) -> Result<String, Refusal> {
    let realm = tenant.spec.issuer.as_str();
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
    else {
        return Err(Refusal::Bearer(BearerError::no_credentials(realm)));
    };
    let t = match crate::tokens::access::verify(state, tenant, token).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Err(Refusal::Bearer(BearerError::invalid_token(
                realm,
                "the access token is invalid or expired",
            )));
        }
        Err(e) => return Err(Refusal::Internal(e)),
    };
    // Sender-constrained tokens need their proof; this API takes plain bearer tokens only
    // (RFC 8705 §3, RFC 9449 §7), except a certificate-bound one over its own certificate.
    if let Some(cnf) = t.claims.get("cnf") {
        let x5t = cnf.get("x5t#S256").and_then(Value::as_str);
        if cnf.get("jkt").is_some()
            || x5t.is_none_or(|b| ctx.cert_thumbprint().as_deref() != Some(b))
        {
            return Err(Refusal::Bearer(BearerError::invalid_token(
                realm,
                "this token is sender-constrained; present its proof",
            )));
        }
    }
    let scoped = t
        .str_claim("scope")
        .is_some_and(|s| s.split(' ').any(|x| x == ADMIN_SCOPE));
    if !scoped {
        return Err(Refusal::Bearer(BearerError::insufficient_scope(
            realm,
            Some(ADMIN_SCOPE),
            "the token lacks the portcullis.admin scope",
        )));
    }
    Ok(t.str_claim("client_id").unwrap_or_default().to_string())
}

pub(super) fn admin_error(e: AdminError) -> OAuthError {
    match e {
        AdminError::Invalid(m) => OAuthError::invalid_request(m),
        AdminError::Conflict(m) => OAuthError::new(ErrorCode::Conflict, m),
        AdminError::NotFound(m) => OAuthError::not_found(m),
        AdminError::Internal(e) => OAuthError::from(e),
    }
}

/// The body as a definition: values only (no file, no environment variable, no linking — the
/// type has no such fields, and unknown fields are refused).
fn parse_spec(body: &[u8], id: Option<&str>) -> Result<Definition<Plain>, OAuthError> {
    let mut spec: Definition<Plain> = serde_json::from_slice(body).map_err(|e| {
        OAuthError::invalid_request(format!("the body is not a provider definition: {e}"))
    })?;
    if let Some(id) = id {
        if spec.id.is_empty() {
            spec.id = id.to_string();
        } else if spec.id != id {
            return Err(OAuthError::invalid_request(
                "the id in the body differs from the one in the path",
            ));
        }
    }
    Ok(spec)
}

pub(super) fn json_body(headers: &HeaderMap) -> bool {
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

/// `?after=&limit=`: a page of a collection, by id after `after` (at most 500; 100 by default).
#[derive(serde::Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub(super) after: String,
    pub(super) limit: Option<i64>,
}

impl ListQuery {
    pub(super) fn limit(&self) -> i64 {
        self.limit.unwrap_or(100)
    }

    /// The id to ask for the next page with: the last of a full page.
    pub(super) fn next_after(&self, page: &[Value], id: &str) -> Option<Value> {
        (page.len() as i64 >= self.limit().clamp(1, 500))
            .then(|| page.last().and_then(|v| v.get(id).cloned()))
            .flatten()
    }
}

/// A refused write is a security event (what a tenant admin tried, e.g. an internal URL or a
/// file path), besides the answer.
pub(super) fn refused_as_event(
    call: &AdminCall,
    ctx: &RequestContext,
    r: Result<Response, OAuthError>,
) -> Result<Response, OAuthError> {
    if let Err(e) = &r {
        crate::events::request_rejected(
            call.tenant.slug(),
            "admin",
            &ctx.request_id,
            e.code.as_str(),
            &e.description,
        );
    }
    r
}

pub async fn list(call: AdminCall, Query(q): Query<ListQuery>) -> Result<Response, OAuthError> {
    let AdminCall { state, tenant, .. } = call;
    let providers = admin::list(&state.store, tenant.slug(), &q.after, q.limit())
        .await
        .map_err(admin_error)?;
    let next = q.next_after(&providers, "id");
    let files = state.federation.files.load();
    let file_providers: Vec<Value> = tenant
        .spec
        .providers
        .iter()
        .filter_map(|id| files.get(id))
        .map(|p| p.spec.public_view())
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({"providers": providers, "next_after": next, "file_providers": file_providers}),
    ))
}

pub async fn create(
    call: AdminCall,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    write_spec(call, &headers, &body, None).await
}

pub async fn put(
    call: AdminCall,
    headers: HeaderMap,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, OAuthError> {
    write_spec(call, &headers, &body, Some(&id)).await
}

/// POST (`id` None: create) and PUT (create or replace the provider `id`).
async fn write_spec(
    call: AdminCall,
    headers: &HeaderMap,
    body: &[u8],
    id: Option<&str>,
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
    let spec = parse_spec(body, id)?;
    let pid = spec.id.clone();
    let mode = match id {
        None => Mode::Create,
        Some(_) => Mode::CreateOrReplace,
    };
    let claims = file_claims(&state, &tenant);
    let saved = admin::save(
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
    .map_err(admin_error)?;
    after_write(&state, &tenant, &pid).await;
    let action = if saved.created { "create" } else { "replace" };
    tracing::info!(target: "security", event = "admin_change", tenant = %tenant.slug(), client_id = %caller, provider = %pid, action);
    Ok(stored(
        saved.view,
        saved.created,
        &format!("{}/admin/providers/{pid}", tenant.spec.issuer),
    ))
}

/// The answer to a PUT or POST that stored `view`: 200, or 201 with its `location` when it
/// created it (RFC 9110 §9.3.4: a PUT that creates answers 201 as a POST does).
pub(super) fn stored(view: Value, created: bool, location: &str) -> Response {
    if !created {
        return json_response(StatusCode::OK, view);
    }
    let mut r = json_response(StatusCode::CREATED, view);
    if let Ok(loc) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, loc);
    }
    r
}

/// The body of a PATCH, the only change it makes: `{"enabled": true}` or `{"enabled": false}`.
pub(super) fn enabled_in(body: &[u8]) -> Result<bool, OAuthError> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(|v| v.as_object().is_some_and(|o| o.len() == 1))
        .and_then(|v| v.get("enabled").and_then(Value::as_bool))
        .ok_or_else(|| {
            OAuthError::invalid_request("send {\"enabled\": true} or {\"enabled\": false}")
        })
}

pub async fn get_one(
    call: AdminCall,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, OAuthError> {
    let v = admin::get(&call.state.store, call.tenant.slug(), &id)
        .await
        .map_err(admin_error)?;
    Ok(json_response(StatusCode::OK, v))
}

pub async fn patch(
    call: AdminCall,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let AdminCall {
        state,
        tenant,
        caller,
    } = call;
    let enabled = enabled_in(&body)?;
    let v = admin::set_enabled(&state.store, tenant.slug(), &id, enabled, state.now())
        .await
        .map_err(admin_error)?;
    after_write(&state, &tenant, &id).await;
    tracing::info!(target: "security", event = "admin_change", tenant = %tenant.slug(), client_id = %caller, provider = %id, action = if enabled { "enable" } else { "disable" });
    Ok(json_response(StatusCode::OK, v))
}

pub async fn delete(
    call: AdminCall,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, OAuthError> {
    let AdminCall {
        state,
        tenant,
        caller,
    } = call;
    admin::remove(&state.store, tenant.slug(), &id)
        .await
        .map_err(admin_error)?;
    after_write(&state, &tenant, &id).await;
    tracing::info!(target: "security", event = "admin_change", tenant = %tenant.slug(), client_id = %caller, provider = %id, action = "delete");
    Ok(StatusCode::NO_CONTENT.into_response())
}
