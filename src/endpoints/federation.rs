//! `/{tenant}/federation/{provider}/…`: the browser's round trip through an upstream provider
//! (start, OIDC callback, SAML metadata and ACS), the way back after an upstream logout, and
//! the upstream's back-channel logout.
#![allow(clippy::result_large_err)]

use super::account::{self, Ctx};
use crate::error::{ErrorCode, InternalError, OAuthError};
use crate::federation::{
    self, ExternalIdentity, FederationError, Provider, ProviderKind, STATE_KIND, UpstreamState,
};
use crate::frontdoor::middleware::RequestContext;
use crate::frontdoor::tenant::CurrentTenant;
use crate::registry::Tenant;
use crate::response::authorize::Interaction;
use crate::sessions;
use crate::state::AppState;
use crate::stores::{
    Consumed, FederationStore, GrantRecord, GrantStore, SessionRecord, SessionStore,
};
use crate::tokens;
use crate::validation::form::FormBody;
use crate::validation::params::{Path, Query};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

#[derive(serde::Deserialize)]
pub struct StartQuery {
    interaction: Option<String>,
}

/// The user chose (or home-realm discovery picked) a provider: off to the upstream.
pub async fn start(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    Path((_, provider_id)): Path<(String, String)>,
    Query(q): Query<StartQuery>,
) -> Response {
    let c = account::extract(state, tenant, ctx, headers);
    let (id, i) = match c.load(q.interaction.as_deref()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let client = match c.interaction_client(&i).await {
        Ok(cl) => cl,
        Err(r) => return r,
    };
    let provider = match federation::find(&c.state, &c.tenant, &provider_id).await {
        Ok(Some(p)) if federation::client_allows(&client, &provider_id) => p,
        Ok(_) => {
            return c.fail(OAuthError::invalid_request(
                "this sign-in option is not available to the application",
            ));
        }
        Err(e) => return c.internal(e),
    };
    match begin(&c, &id, &i, &provider).await {
        Ok(r) => r,
        Err(e) => fail_back(c, id, i, e).await,
    }
}

/// Writes the single-use upstream state and answers with the redirect (or form) to the upstream.
async fn begin(
    c: &Ctx,
    interaction_id: &str,
    i: &Interaction,
    provider: &Provider,
) -> Result<Response, FederationError> {
    let handle = tokens::new_handle();
    let now = c.state.now();
    let force_login = i
        .request
        .prompt
        .contains(&crate::validation::authorize::Prompt::Login)
        || i.request.max_age == Some(0);
    let mut upstream = UpstreamState {
        interaction: interaction_id.to_string(),
        provider: provider.spec.id.clone(),
        nonce: None,
        code_verifier: None,
        request_id: None,
    };
    let answer = match provider.spec.kind {
        ProviderKind::Oidc => {
            let nonce = tokens::new_handle();
            let verifier = tokens::new_handle();
            let url = federation::oidc::authorization_url(
                &c.state,
                &c.tenant,
                provider,
                &handle,
                &nonce,
                &verifier,
                i.request.login_hint.as_deref(),
                force_login,
            )
            .await?;
            upstream.nonce = Some(nonce);
            upstream.code_verifier = Some(verifier);
            Answer::Redirect(url)
        }
        ProviderKind::Saml => {
            let request_id = federation::saml::new_request_id()?;
            let answer =
                federation::saml::begin(&c.state, &c.tenant, provider, &request_id, &handle)
                    .await?;
            upstream.request_id = Some(request_id);
            answer
        }
    };
    c.state
        .store
        .insert_grant(
            c.tenant.slug(),
            &GrantRecord {
                handle_hash: tokens::handle_hash(&handle),
                kind: STATE_KIND.into(),
                client_id: i.request.client_id.clone(),
                data: serde_json::to_string(&upstream).map_err(InternalError::from)?,
                created_at: now,
                expires_at: now + c.state.config.file.federation.state_lifetime_seconds,
                ..Default::default()
            },
        )
        .await?;
    Ok(match answer {
        Answer::Redirect(url) => c.flow().redirect(&url),
        Answer::Post { url, fields } => c.tenant.pages.render(
            &crate::ui::Page::FormPost(crate::ui::FormPostPage {
                action: url,
                fields,
            }),
            StatusCode::OK,
        ),
    })
}

/// How the browser goes to the upstream.
pub enum Answer {
    Redirect(String),
    /// An auto-submitted form (SAML HTTP-POST binding).
    Post {
        url: String,
        fields: Vec<(String, String)>,
    },
}

/// A failure after the interaction is known: the client hears about it through its redirect
/// URI (RFC 6749 §4.1.2.1), so the application can recover.
async fn fail_back(c: Ctx, id: String, i: Interaction, e: FederationError) -> Response {
    let (code, text) = match &e {
        FederationError::Unavailable(m) => {
            tracing::warn!(tenant = %c.tenant.slug(), error = %m, "upstream provider unavailable");
            (
                ErrorCode::TemporarilyUnavailable,
                "the identity provider is not available; try again later".to_string(),
            )
        }
        FederationError::Rejected(m) => {
            crate::events::federation_rejected(
                c.tenant.slug(),
                &c.ctx.request_id,
                m,
                &c.client_ip(),
            );
            (
                ErrorCode::AccessDenied,
                "the identity provider's answer was not accepted".to_string(),
            )
        }
        FederationError::Denied(m) => (ErrorCode::AccessDenied, m.clone()),
        FederationError::Internal(err) => return c.internal(InternalError::Other(err.to_string())),
    };
    let flow = c.flow();
    flow.end_interaction(&id).await;
    c.flow()
        .error_redirect(&i.request.error_target(), OAuthError::new(code, text))
}

/// Consumes the single-use record a handle names (upstream state, verified result, logout).
async fn consume(
    state: &AppState,
    tenant: &Tenant,
    handle: &str,
) -> Result<Consumed, InternalError> {
    state
        .store
        .consume_grant(
            tenant.slug(),
            &tokens::handle_hash(handle),
            state.now(),
            &[],
        )
        .await
}

/// Consumes the upstream state named by `handle` (single use); the interaction it belongs to
/// must be live and held by this browser.
async fn take_state(
    c: &Ctx,
    provider_id: &str,
    handle: Option<&str>,
) -> Result<(UpstreamState, String, Interaction), Response> {
    let reject = |why: &str| {
        crate::events::federation_rejected(c.tenant.slug(), &c.ctx.request_id, why, &c.client_ip());
        c.fail(OAuthError::invalid_request(
            "this sign-in response is unknown, expired or was already used; start again from the application",
        ))
    };
    let Some(handle) = handle.filter(|h| h.len() == 43) else {
        return Err(reject("missing or malformed upstream state"));
    };
    let record = match consume(&c.state, &c.tenant, handle).await {
        Ok(Consumed::Fresh(r)) if r.kind == STATE_KIND => r,
        Ok(Consumed::Replayed(_)) => return Err(reject("replayed upstream state")),
        Ok(_) => return Err(reject("unknown or expired upstream state")),
        Err(e) => return Err(c.internal(e)),
    };
    let upstream: UpstreamState =
        serde_json::from_str(&record.data).map_err(|e| c.internal(e.into()))?;
    if upstream.provider != provider_id {
        return Err(reject("upstream state of another provider"));
    }
    let (id, i) = c.load(Some(&upstream.interaction)).await?;
    Ok((upstream, id, i))
}

#[derive(serde::Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

/// OIDC: the upstream's authorization response.
pub async fn callback(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    Path((_, provider_id)): Path<(String, String)>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let c = account::extract(state, tenant, ctx, headers);
    let (upstream, id, i) = match take_state(&c, &provider_id, q.state.as_deref()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let provider = match still_offered(&c, &provider_id).await {
        Ok(p) => p,
        Err(Some(e)) => return fail_back(c, id, i, e).await,
        Err(None) => return c.internal(InternalError::Other("provider lookup failed".into())),
    };
    if let Some(err) = q.error {
        // The user declined or the upstream could not sign them in.
        let e = FederationError::Denied(format!(
            "the identity provider did not sign you in ({})",
            err.chars().take(64).collect::<String>()
        ));
        return fail_back(c, id, i, e).await;
    }
    let (Some(code), Some(nonce), Some(verifier)) = (
        q.code.as_deref().filter(|c| c.len() <= 2048),
        upstream.nonce.as_deref(),
        upstream.code_verifier.as_deref(),
    ) else {
        let e = FederationError::Rejected("authorization response without a code".into());
        return fail_back(c, id, i, e).await;
    };
    let ext = match federation::oidc::complete(
        &c.state,
        &c.tenant,
        &provider,
        code,
        q.iss.as_deref(),
        nonce,
        verifier,
    )
    .await
    {
        Ok(x) => x,
        Err(e) => return fail_back(c, id, i, e).await,
    };
    sign_in(c, id, i, &provider, ext).await
}

/// The provider of a round trip in flight, if the tenant still offers it (it may have been
/// disabled meanwhile): `Err(Some)` to tell the client, `Err(None)` for a store failure.
async fn still_offered(c: &Ctx, id: &str) -> Result<Arc<Provider>, Option<FederationError>> {
    match federation::find(&c.state, &c.tenant, id).await {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(Some(FederationError::Denied(
            "this identity provider is no longer available".into(),
        ))),
        Err(e) => {
            tracing::error!(error = %e, "provider lookup failed");
            Err(None)
        }
    }
}

/// The external identity becomes a local session, and the authorize request resumes.
pub(crate) async fn sign_in(
    c: Ctx,
    id: String,
    i: Interaction,
    provider: &Provider,
    ext: ExternalIdentity,
) -> Response {
    let subject = match federation::link_or_provision(&c.state, &c.tenant, provider, &ext).await {
        Ok(s) => s,
        Err(e) => return fail_back(c, id, i, e).await,
    };
    // RFC 8176: `external` says another provider authenticated the user; the upstream's own
    // methods follow.
    let mut amr = vec!["external".to_string()];
    for a in &ext.amr {
        if !amr.contains(a) && a.len() <= 32 {
            amr.push(a.clone());
        }
    }
    let upstream = match serde_json::to_string(&ext.session) {
        Ok(s) => s,
        Err(e) => return c.internal(e.into()),
    };
    let login = sessions::Login {
        subject,
        amr,
        acr: ext
            .acr
            .clone()
            .unwrap_or_else(|| "urn:portcullis:acr:external".into()),
        idp: provider.spec.id.clone(),
        upstream_sid: ext.session.sid.clone(),
        upstream: Some(upstream),
    };
    account::finish_login(c, id, i, login).await
}

// ---------------------------------------------------------------------------------------------
// Logout

/// Kind of the record that carries the final destination through an upstream logout.
const LOGOUT_KIND: &str = "upstream_logout";

/// Where to send the browser to end the upstream session of `session`, if its provider can:
/// the upstream comes back to `/federation/{id}/signed-out`, which continues to `then` (the
/// client's post-logout redirect, or our signed-out page).
pub async fn upstream_logout_url(
    state: &AppState,
    tenant: &Tenant,
    session: &SessionRecord,
    then: Option<&str>,
) -> Option<String> {
    if session.idp == federation::LOCAL {
        return None;
    }
    let provider = federation::find(state, tenant, &session.idp).await.ok()??;
    let upstream: federation::UpstreamSession =
        serde_json::from_str(session.upstream.as_deref()?).ok()?;
    let handle = tokens::new_handle();
    let back = format!(
        "{}/federation/{}/signed-out",
        tenant.spec.issuer, provider.spec.id
    );
    let url = match provider.spec.kind {
        ProviderKind::Oidc => {
            federation::oidc::end_session_url(state, &provider, &upstream, &back, &handle).await
        }
        ProviderKind::Saml => {
            federation::saml::logout_url(state, tenant, &provider, &upstream, &handle).await
        }
    };
    let url = match url {
        Ok(Some(u)) => u,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(tenant = %tenant.slug(), provider = %provider.spec.id, error = %e, "cannot end the upstream session");
            return None;
        }
    };
    let now = state.now();
    let record = GrantRecord {
        handle_hash: tokens::handle_hash(&handle),
        kind: LOGOUT_KIND.into(),
        data: then.unwrap_or_default().to_string(),
        created_at: now,
        expires_at: now + state.config.file.federation.state_lifetime_seconds,
        ..Default::default()
    };
    if let Err(e) = state.store.insert_grant(tenant.slug(), &record).await {
        tracing::error!(error = %e, "cannot record an upstream logout");
        return None;
    }
    Some(url)
}

#[derive(serde::Deserialize)]
pub struct SignedOutQuery {
    state: Option<String>,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

/// Back from the upstream's logout: on to where the logout was going.
pub async fn signed_out(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    Query(q): Query<SignedOutQuery>,
) -> Response {
    let handle = q.state.or(q.relay_state).filter(|h| h.len() == 43);
    let then = match handle {
        Some(h) => match consume(&state, &tenant, &h).await {
            Ok(Consumed::Fresh(r)) if r.kind == LOGOUT_KIND => r.data,
            Ok(_) => String::new(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read an upstream logout");
                String::new()
            }
        },
        None => String::new(),
    };
    if !then.is_empty() {
        let mut r = StatusCode::SEE_OTHER.into_response();
        if let Ok(v) = HeaderValue::from_str(&then) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return r;
    }
    tenant.pages.render(
        &crate::ui::Page::LoggedOut(crate::ui::LoggedOutPage {
            frontchannel_urls: Vec::new(),
            post_logout_redirect_uri: None,
            client_name: None,
        }),
        StatusCode::OK,
    )
}

/// OIDC Back-Channel Logout §2.5-2.8: the upstream ended a session; so do we (and tell our
/// clients).
pub async fn backchannel_logout(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    Path((_, provider_id)): Path<(String, String)>,
    form: Result<FormBody, Response>,
) -> Response {
    let answer = |status: StatusCode, body: &'static str| {
        let mut r = (status, body).into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    let bad = |why: &str| {
        crate::events::request_rejected(
            tenant.slug(),
            "backchannel_logout",
            &ctx.request_id,
            "invalid_request",
            why,
        );
        answer(
            StatusCode::BAD_REQUEST,
            r#"{"error":"invalid_request","error_description":"the logout token was not accepted"}"#,
        )
    };
    let Ok(FormBody(form)) = form else {
        return bad("unreadable form");
    };
    let Some(token) = form.get("logout_token").filter(|t| t.len() <= 16 * 1024) else {
        return bad("no logout_token");
    };
    let provider = match federation::find(&state, &tenant, &provider_id).await {
        Ok(Some(p)) if p.spec.kind == ProviderKind::Oidc => p,
        Ok(_) => return bad("unknown provider"),
        Err(e) => {
            tracing::error!(error = %e, "back-channel logout failed");
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"server_error"}"#,
            );
        }
    };
    let lt = match federation::oidc::verify_logout_token(&state, &provider, token).await {
        Ok(t) => t,
        Err(e) => return bad(&e.to_string()),
    };
    let key = format!("bcl:{}:{}", provider.spec.id, lt.jti);
    match state
        .first_use(tenant.slug(), &key, lt.exp.min(state.now() + 3600) + 120)
        .await
    {
        Ok(true) => {}
        Ok(false) => return bad("replayed logout token"),
        // The memory of single-use values is full: the upstream may send the token again.
        Err(InternalError::AtCapacity(_)) => {
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"error":"temporarily_unavailable"}"#,
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "back-channel logout failed");
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"server_error"}"#,
            );
        }
    }
    let ended = match end_upstream_sessions(&state, &tenant, &provider, &lt, &ctx).await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "back-channel logout failed");
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"server_error"}"#,
            );
        }
    };
    tracing::info!(target: "security", event = "upstream_logout", tenant = %tenant.slug(), provider = %provider.spec.id, sessions = ended);
    answer(StatusCode::OK, "")
}

async fn end_upstream_sessions(
    state: &AppState,
    tenant: &Arc<Tenant>,
    provider: &Provider,
    lt: &federation::oidc::LogoutToken,
    ctx: &RequestContext,
) -> Result<usize, InternalError> {
    let slug = tenant.slug();
    let mut sessions = Vec::new();
    if let Some(sid) = &lt.sid {
        sessions = state
            .store
            .sessions_by_upstream_sid(slug, &provider.spec.id, sid)
            .await?;
    } else if let Some(sub) = &lt.sub
        && let Some(local) = state
            .store
            .find_link(slug, &provider.spec.id, &lt.issuer, sub)
            .await?
    {
        sessions = state
            .store
            .list_sessions(slug, &local)
            .await?
            .into_iter()
            .filter(|s| s.idp == provider.spec.id)
            .collect();
    }
    let n = sessions.len();
    for s in sessions {
        if state.store.delete_session(slug, &s.sid).await?.is_some() {
            crate::events::logout(slug, &s.subject, &s.sid, &ctx.request_id);
            let clients = sessions::logout::session_clients(tenant, &s).await;
            sessions::logout::send_backchannel(state, tenant, &s, &clients);
        }
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// SAML

/// The SP metadata of this tenant towards a SAML provider (for the IdP's administrator).
pub async fn saml_metadata(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    Path((_, provider_id)): Path<(String, String)>,
) -> Response {
    let provider = match federation::find(&state, &tenant, &provider_id).await {
        Ok(Some(p)) if p.spec.kind == ProviderKind::Saml => p,
        Ok(_) => return OAuthError::not_found("no such SAML provider").into_response(),
        Err(e) => {
            tracing::error!(error = %e, request_id = %ctx.request_id, "SAML metadata failed");
            return OAuthError::server_error().into_response();
        }
    };
    match federation::saml::metadata_xml(&tenant, &provider) {
        Ok(xml) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/samlmetadata+xml"),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            xml,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, provider = %provider_id, "SAML metadata failed");
            OAuthError::server_error().into_response()
        }
    }
}

/// Kind of the record that carries a verified upstream identity from the ACS (a cross-site
/// POST, which brings no SameSite=Lax cookies) to `complete` (a top-level GET, which does).
const RESULT_KIND: &str = "upstream_result";

#[derive(serde::Serialize, serde::Deserialize)]
struct UpstreamResult {
    interaction: String,
    provider: String,
    identity: ExternalIdentity,
}

/// SAML HTTP-POST binding: the IdP's Response at the Assertion Consumer Service.
pub async fn saml_acs(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    Path((_, provider_id)): Path<(String, String)>,
    form: Result<FormBody, Response>,
) -> Response {
    let c = account::extract(state, tenant, ctx, headers);
    let reject = |why: String| {
        crate::events::federation_rejected(
            c.tenant.slug(),
            &c.ctx.request_id,
            &why,
            &c.client_ip(),
        );
        c.fail(OAuthError::invalid_request(
            "the identity provider's answer was not accepted; start again from the application",
        ))
    };
    let Ok(FormBody(form)) = form else {
        return reject("unreadable SAML form".into());
    };
    let Some(response) = form.get("SAMLResponse") else {
        return reject("no SAMLResponse".into());
    };
    let provider = match federation::find(&c.state, &c.tenant, &provider_id).await {
        Ok(Some(p)) if p.spec.kind == ProviderKind::Saml => p,
        Ok(_) => return reject("SAML response for an unknown provider".into()),
        Err(e) => return c.internal(e),
    };
    // SAML bindings §3.5.3: the RelayState names our round trip. Without one the response is
    // unsolicited (IdP-initiated), which has no application to return to: refused.
    let Some(relay) = form.get("RelayState").filter(|h| h.len() == 43) else {
        let why =
            match federation::saml::verify(&c.state, &c.tenant, &provider, response, None).await {
                Ok(_) => "unsolicited SAML response (no application to return to)".to_string(),
                Err(e) => e.to_string(),
            };
        return reject(why);
    };
    let upstream = match consume(&c.state, &c.tenant, relay).await {
        Ok(Consumed::Fresh(r)) if r.kind == STATE_KIND => {
            match serde_json::from_str::<UpstreamState>(&r.data) {
                Ok(u) if u.provider == provider_id => u,
                Ok(_) => return reject("SAML RelayState of another provider".into()),
                Err(e) => return c.internal(e.into()),
            }
        }
        Ok(Consumed::Replayed(_)) => return reject("replayed SAML RelayState".into()),
        Ok(_) => return reject("unknown or expired SAML RelayState".into()),
        Err(e) => return c.internal(e),
    };
    let (identity, assertion_id, keep_until) = match federation::saml::verify(
        &c.state,
        &c.tenant,
        &provider,
        response,
        upstream.request_id.as_deref(),
    )
    .await
    {
        Ok(x) => x,
        Err(e) => return reject(e.to_string()),
    };
    // One-time use of the assertion (SAML profiles §4.1.4.5), on every node.
    let now = c.state.now();
    let marker = GrantRecord {
        handle_hash: tokens::handle_hash(&format!("saml:{provider_id}:{assertion_id}")),
        kind: "single_use".into(),
        created_at: now,
        expires_at: keep_until.max(now + 60),
        consumed_at: Some(now),
        ..Default::default()
    };
    match c
        .state
        .store
        .redeem_once(c.tenant.slug(), &marker, &[])
        .await
    {
        Ok(true) => {}
        Ok(false) => return reject("replayed SAML assertion".into()),
        Err(e) => return c.internal(e),
    }
    let handle = tokens::new_handle();
    let result = UpstreamResult {
        interaction: upstream.interaction,
        provider: provider_id.clone(),
        identity,
    };
    let data = match serde_json::to_string(&result) {
        Ok(d) => d,
        Err(e) => return c.internal(e.into()),
    };
    if let Err(e) = c
        .state
        .store
        .insert_grant(
            c.tenant.slug(),
            &GrantRecord {
                handle_hash: tokens::handle_hash(&handle),
                kind: RESULT_KIND.into(),
                data,
                created_at: now,
                expires_at: now + 120,
                ..Default::default()
            },
        )
        .await
    {
        return c.internal(e);
    }
    let location = format!(
        "{}/federation/{provider_id}/complete?result={handle}",
        c.tenant.spec.issuer
    );
    c.flow().redirect(&location)
}

#[derive(serde::Deserialize)]
pub struct CompleteQuery {
    result: Option<String>,
}

/// After the ACS: the browser that holds the interaction finishes the sign-in.
pub async fn complete(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    Path((_, provider_id)): Path<(String, String)>,
    Query(q): Query<CompleteQuery>,
) -> Response {
    let c = account::extract(state, tenant, ctx, headers);
    let expired = |c: &Ctx| {
        c.fail(OAuthError::invalid_request(
            "this sign-in has expired or was already finished; start again from the application",
        ))
    };
    let Some(handle) = q.result.filter(|h| h.len() == 43) else {
        return expired(&c);
    };
    let record = match consume(&c.state, &c.tenant, &handle).await {
        Ok(Consumed::Fresh(r)) if r.kind == RESULT_KIND => r,
        Ok(_) => return expired(&c),
        Err(e) => return c.internal(e),
    };
    let result: UpstreamResult = match serde_json::from_str(&record.data) {
        Ok(r) => r,
        Err(e) => return c.internal(e.into()),
    };
    if result.provider != provider_id {
        return expired(&c);
    }
    let (id, i) = match c.load(Some(&result.interaction)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let provider = match still_offered(&c, &provider_id).await {
        Ok(p) => p,
        Err(Some(e)) => return fail_back(c, id, i, e).await,
        Err(None) => return c.internal(InternalError::Other("provider lookup failed".into())),
    };
    sign_in(c, id, i, &provider, result.identity).await
}
