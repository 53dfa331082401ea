//! `/{tenant}/federation/{provider}/…`: the browser's round trip through an upstream provider
//! (start, OIDC callback, SAML metadata, ACS and completion), the way back after an upstream
//! logout, and the upstream's back-channel logout. The protocols are the upstream type's
//! business (src/federation/upstream.rs); these are steps of the sign-in pipeline
//! (src/endpoints/interaction.rs).

use super::interaction::{Pending, PendingInteraction, SignIn};
use crate::error::{ErrorCode, InternalError, OAuthError};
use crate::federation::{
    self, Answer, Begin, ExternalIdentity, FederationError, Provider, Reply, UpstreamState,
};
use crate::registry::Tenant;
use crate::request::CurrentTenant;
use crate::request::RequestContext;
use crate::sessions;
use crate::state::AppState;
use crate::stores::{
    Consumed, FederationStore, GrantKind, GrantRecord, GrantStore, SessionRecord, SessionStore,
};
use crate::tokens;
use crate::validation::authorize::Prompt;
use crate::validation::form::FormBody;
use crate::validation::params::{Path, Query};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The user chose (or home-realm discovery picked) a provider: off to the upstream, with a
/// single-use state that names this sign-in.
pub async fn start(
    PendingInteraction(p): PendingInteraction,
    Path((_, provider_id)): Path<(String, String)>,
) -> Response {
    let provider = match p.state.federation.find(&p.tenant, &provider_id).await {
        Ok(Some(found)) if federation::client_allows(&p.client, &provider_id) => found,
        Ok(_) => {
            return p.fail(OAuthError::invalid_request(
                "this sign-in option is not available to the application",
            ));
        }
        Err(e) => return p.internal(e),
    };
    let handle = tokens::new_handle();
    let request = &p.interaction.request;
    let begin = Begin {
        interaction: &p.id,
        login_hint: request.login_hint.as_deref(),
        force_login: request.prompt.contains(&Prompt::Login) || request.max_age == Some(0),
    };
    let (round_trip, answer) = match provider.begin(&p.state, &p.tenant, &handle, begin).await {
        Ok(x) => x,
        Err(e) => return fail_back(p, e).await,
    };
    let now = p.state.now();
    let data = match serde_json::to_string(&round_trip) {
        Ok(d) => d,
        Err(e) => return p.internal(e.into()),
    };
    let record = GrantRecord {
        handle_hash: tokens::handle_hash(&handle),
        client_id: p.interaction.request.client_id.clone(),
        data,
        created_at: now,
        expires_at: now + p.state.config.federation.state_lifetime_seconds,
        ..GrantRecord::of(GrantKind::UpstreamState)
    };
    if let Err(e) = p.state.store.insert_grant(p.tenant.slug(), &record).await {
        return p.internal(e);
    }
    match answer {
        Answer::Redirect(url) => p.redirect(&url),
        Answer::Post { url, fields } => p.tenant.pages.render(
            &crate::ui::Page::FormPost(crate::ui::FormPostPage {
                action: url,
                fields,
            }),
            StatusCode::OK,
        ),
    }
}

/// A failure after the interaction is known: the client hears about it through its redirect
/// URI (RFC 6749 §4.1.2.1), so the application can recover.
async fn fail_back(p: Pending, e: FederationError) -> Response {
    let (code, text) = match &e {
        FederationError::Unavailable(m) => {
            tracing::warn!(tenant = %p.tenant.slug(), error = %m, "upstream provider unavailable");
            (
                ErrorCode::TemporarilyUnavailable,
                "the identity provider is not available; try again later".to_string(),
            )
        }
        FederationError::Rejected(m) => {
            crate::events::federation_rejected(
                p.tenant.slug(),
                &p.ctx.request_id,
                m,
                &p.client_ip(),
            );
            (
                ErrorCode::AccessDenied,
                "the identity provider's answer was not accepted".to_string(),
            )
        }
        FederationError::Denied(m) => (ErrorCode::AccessDenied, m.clone()),
        FederationError::Internal(err) => return p.internal(InternalError::Other(err.to_string())),
    };
    p.fail_back(OAuthError::new(code, text)).await
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

/// Consumes the upstream state `handle` names (single use), of provider `provider_id`; the
/// error page (a security event) when it names no such round trip.
async fn take_state(
    s: &SignIn,
    provider_id: &str,
    handle: Option<&str>,
) -> Result<UpstreamState, Response> {
    let Some(handle) = handle.filter(|h| h.len() == 43) else {
        return Err(unknown_round_trip(s, "missing or malformed upstream state"));
    };
    let round_trip = match consume(&s.state, &s.tenant, handle).await {
        Ok(Consumed::Fresh(r)) if r.kind == GrantKind::UpstreamState => {
            match serde_json::from_str::<UpstreamState>(&r.data) {
                Ok(u) => u,
                Err(e) => return Err(s.internal(e.into())),
            }
        }
        Ok(Consumed::Replayed(_)) => return Err(unknown_round_trip(s, "replayed upstream state")),
        Ok(_) => return Err(unknown_round_trip(s, "unknown or expired upstream state")),
        Err(e) => return Err(s.internal(e)),
    };
    if round_trip.provider() != provider_id {
        return Err(unknown_round_trip(s, "upstream state of another provider"));
    }
    Ok(round_trip)
}

#[derive(serde::Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

/// OIDC: the upstream's authorization response, in the browser that holds the sign-in.
pub async fn callback(
    s: SignIn,
    Path((_, provider_id)): Path<(String, String)>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let round_trip = match take_state(&s, &provider_id, q.state.as_deref()).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let p = match s.pending(Some(round_trip.interaction())).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let reply = Reply::Authorization {
        code: q.code.as_deref(),
        iss: q.iss.as_deref(),
        error: q.error.as_deref(),
    };
    finish_round_trip(p, &provider_id, &round_trip, reply).await
}

/// The reply checked by the provider of the round trip (if the tenant still offers it), then
/// the sign-in finishes.
async fn finish_round_trip(
    p: Pending,
    provider_id: &str,
    round_trip: &UpstreamState,
    reply: Reply<'_>,
) -> Response {
    let provider = match still_offered(&p, provider_id).await {
        Ok(found) => found,
        Err(e) => return fail_back(p, e).await,
    };
    match provider
        .complete(&p.state, &p.tenant, round_trip, reply)
        .await
    {
        Ok(ext) => sign_in(p, &provider, ext).await,
        Err(e) => fail_back(p, e).await,
    }
}

/// A state that names no round trip of this provider: the error page (a security event).
fn unknown_round_trip(s: &SignIn, why: &str) -> Response {
    crate::events::federation_rejected(s.tenant.slug(), &s.ctx.request_id, why, &s.client_ip());
    s.fail(OAuthError::invalid_request(
        "this sign-in response is unknown, expired or was already used; start again from the application",
    ))
}

/// The provider of a round trip in flight, if the tenant still offers it (it may have been
/// disabled meanwhile).
async fn still_offered(p: &Pending, id: &str) -> Result<Arc<Provider>, FederationError> {
    match p.state.federation.find(&p.tenant, id).await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(FederationError::Denied(
            "this identity provider is no longer available".into(),
        )),
        Err(e) => Err(FederationError::Internal(e)),
    }
}

/// The external identity becomes a local session, and the authorize request resumes.
async fn sign_in(p: Pending, provider: &Provider, ext: ExternalIdentity) -> Response {
    let subject = match federation::link_or_provision(&p.state, &p.tenant, provider, &ext).await {
        Ok(s) => s,
        Err(e) => return fail_back(p, e).await,
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
        Err(e) => return p.internal(e.into()),
    };
    let login = sessions::Login {
        subject,
        amr,
        acr: ext
            .acr
            .clone()
            .unwrap_or_else(|| sessions::ACR_EXTERNAL.into()),
        idp: provider.spec.id.clone(),
        upstream_sid: ext.session.sid.clone(),
        upstream: Some(upstream),
    };
    p.finish(login).await
}

// ---------------------------------------------------------------------------------------------
// Logout

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
    let provider = state.federation.find(tenant, &session.idp).await.ok()??;
    let upstream: federation::UpstreamSession =
        serde_json::from_str(session.upstream.as_deref()?).ok()?;
    let handle = tokens::new_handle();
    let back = format!(
        "{}/federation/{}/signed-out",
        tenant.spec.issuer, provider.spec.id
    );
    let url = match provider
        .logout_url(state, tenant, &upstream, &back, &handle)
        .await
    {
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
        data: then.unwrap_or_default().to_string(),
        created_at: now,
        expires_at: now + state.config.federation.state_lifetime_seconds,
        ..GrantRecord::of(GrantKind::UpstreamLogout)
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
            Ok(Consumed::Fresh(r)) if r.kind == GrantKind::UpstreamLogout => r.data,
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
            return_automatically: false,
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
    let provider = match state.federation.find(&tenant, &provider_id).await {
        Ok(Some(p)) => p,
        Ok(None) => return bad("unknown provider"),
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
    Path((_, provider_id)): Path<(String, String)>,
) -> Response {
    let metadata = match state.federation.find(&tenant, &provider_id).await {
        Ok(Some(p)) => p.sp_metadata(&tenant),
        Ok(None) => None,
        Err(e) => return e.failed("SAML metadata").into_response(),
    };
    match metadata {
        Some(Ok(xml)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/samlmetadata+xml"),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            xml,
        )
            .into_response(),
        None => OAuthError::not_found("no such SAML provider").into_response(),
        Some(Err(e)) => {
            tracing::error!(error = %e, provider = %provider_id, "SAML metadata failed");
            OAuthError::server_error().into_response()
        }
    }
}

// A verified upstream identity goes from the ACS (a cross-site POST, which brings no
// SameSite=Lax cookies) to `complete` (a top-level GET, which does) in a `GrantKind::UpstreamResult`
// record.

#[derive(serde::Serialize, serde::Deserialize)]
struct UpstreamResult {
    interaction: String,
    provider: String,
    identity: ExternalIdentity,
}

/// SAML HTTP-POST binding: the IdP's Response at the Assertion Consumer Service. The POST is
/// cross-site, so it brings no cookies: the reply is checked here and the browser continues to
/// `complete`, where its binding cookie is.
pub async fn saml_acs(
    s: SignIn,
    Path((_, provider_id)): Path<(String, String)>,
    form: Result<FormBody, Response>,
) -> Response {
    let reject = |why: String| {
        crate::events::federation_rejected(
            s.tenant.slug(),
            &s.ctx.request_id,
            &why,
            &s.client_ip(),
        );
        s.fail(OAuthError::invalid_request(
            "the identity provider's answer was not accepted; start again from the application",
        ))
    };
    let Ok(FormBody(form)) = form else {
        return reject("unreadable SAML form".into());
    };
    let Some(response) = form.get("SAMLResponse") else {
        return reject("no SAMLResponse".into());
    };
    let provider = match s.state.federation.find(&s.tenant, &provider_id).await {
        Ok(Some(p)) => p,
        Ok(None) => return reject("SAML response for an unknown provider".into()),
        Err(e) => return s.internal(e),
    };
    // SAML bindings §3.5.3: the RelayState names our round trip. Without one the response is
    // unsolicited (IdP-initiated), which has no application to return to: refused.
    let Some(relay) = form.get("RelayState").filter(|h| h.len() == 43) else {
        let why =
            match federation::saml::verify(&s.state, &s.tenant, &provider, response, None).await {
                Ok(_) => "unsolicited SAML response (no application to return to)".to_string(),
                Err(e) => e.to_string(),
            };
        return reject(why);
    };
    let round_trip = match consume(&s.state, &s.tenant, relay).await {
        Ok(Consumed::Fresh(r)) if r.kind == GrantKind::UpstreamState => {
            match serde_json::from_str::<UpstreamState>(&r.data) {
                Ok(u) if u.provider() == provider_id => u,
                Ok(_) => return reject("SAML RelayState of another provider".into()),
                Err(e) => return s.internal(e.into()),
            }
        }
        Ok(Consumed::Replayed(_)) => return reject("replayed SAML RelayState".into()),
        Ok(_) => return reject("unknown or expired SAML RelayState".into()),
        Err(e) => return s.internal(e),
    };
    let identity = match provider
        .complete(
            &s.state,
            &s.tenant,
            &round_trip,
            Reply::SamlResponse(response),
        )
        .await
    {
        Ok(x) => x,
        Err(FederationError::Internal(e)) => return s.internal(e),
        Err(e) => return reject(e.to_string()),
    };
    let handle = tokens::new_handle();
    let result = UpstreamResult {
        interaction: round_trip.interaction().to_string(),
        provider: provider_id.clone(),
        identity,
    };
    let data = match serde_json::to_string(&result) {
        Ok(d) => d,
        Err(e) => return s.internal(e.into()),
    };
    let now = s.state.now();
    let record = GrantRecord {
        handle_hash: tokens::handle_hash(&handle),
        data,
        created_at: now,
        expires_at: now + 120,
        ..GrantRecord::of(GrantKind::UpstreamResult)
    };
    if let Err(e) = s.state.store.insert_grant(s.tenant.slug(), &record).await {
        return s.internal(e);
    }
    let location = format!(
        "{}/federation/{provider_id}/complete?result={handle}",
        s.tenant.spec.issuer
    );
    s.flow().redirect(&location)
}

#[derive(serde::Deserialize)]
pub struct CompleteQuery {
    result: Option<String>,
}

/// After the ACS: the browser that holds the interaction finishes the sign-in.
pub async fn complete(
    s: SignIn,
    Path((_, provider_id)): Path<(String, String)>,
    Query(q): Query<CompleteQuery>,
) -> Response {
    let expired = |s: &SignIn| {
        s.fail(OAuthError::invalid_request(
            "this sign-in has expired or was already finished; start again from the application",
        ))
    };
    let Some(handle) = q.result.filter(|h| h.len() == 43) else {
        return expired(&s);
    };
    let record = match consume(&s.state, &s.tenant, &handle).await {
        Ok(Consumed::Fresh(r)) if r.kind == GrantKind::UpstreamResult => r,
        Ok(_) => return expired(&s),
        Err(e) => return s.internal(e),
    };
    let result: UpstreamResult = match serde_json::from_str(&record.data) {
        Ok(r) => r,
        Err(e) => return s.internal(e.into()),
    };
    if result.provider != provider_id {
        return expired(&s);
    }
    let p = match s.pending(Some(&result.interaction)).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let provider = match still_offered(&p, &provider_id).await {
        Ok(found) => found,
        Err(e) => return fail_back(p, e).await,
    };
    sign_in(p, &provider, result.identity).await
}
