//! RP-initiated logout (OIDC RP-Initiated Logout 1.0): `GET`/`POST /{tenant}/connect/endsession`,
//! the confirmation form `POST /{tenant}/account/logout`, and the signed-out page that runs the
//! front-channel notifications.

use crate::error::{ErrorCode, InternalError, OAuthError};
use crate::registry::Tenant;
use crate::request::CurrentTenant;
use crate::request::RequestContext;
use crate::response::authorize::error_page;
use crate::response::saml_logout;
use crate::sessions::{self, logout};
use crate::state::AppState;
use crate::stores::{ClientStore, Consumed, GrantKind, GrantRecord, GrantStore, SessionRecord};
use crate::tokens;
use crate::ui::{LoggedOutPage, LogoutConfirmPage, Page};
use crate::validation::form::{Form, FormBody};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const LOGOUT_LIFETIME: i64 = 600;

#[derive(Serialize, Deserialize)]
struct LogoutRequest {
    csrf: String,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

pub async fn get(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let form = Form::parse(query.unwrap_or_default().as_bytes());
    handle(state, tenant, ctx, headers, form).await
}

pub async fn post(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    form: Result<FormBody, Response>,
) -> Response {
    let form = form
        .map(|FormBody(f)| f)
        .map_err(|_| OAuthError::invalid_request("the body is not a valid form"));
    handle(state, tenant, ctx, headers, form).await
}

fn fail(tenant: &Tenant, ctx: &RequestContext, e: OAuthError) -> Response {
    crate::events::request_rejected(
        tenant.slug(),
        "end_session",
        &ctx.request_id,
        e.code.as_str(),
        &e.description,
    );
    error_page(tenant, ctx, &e)
}

fn internal(tenant: &Tenant, ctx: &RequestContext, e: InternalError) -> Response {
    error_page(tenant, ctx, &e.failed("end session"))
}

async fn handle(
    state: AppState,
    tenant: Arc<Tenant>,
    ctx: RequestContext,
    headers: HeaderMap,
    form: Result<Form, OAuthError>,
) -> Response {
    let form = match form {
        Ok(f) => f,
        Err(e) => return fail(&tenant, &ctx, e),
    };
    // §2: the hint must be an id token we issued (to `client_id`, when given); its audience
    // names the client, which must be one of this tenant's.
    let hint = match form.get("id_token_hint").map(|h| {
        crate::validation::authorize::verify_id_token_hint(&tenant, h, form.get("client_id"))
    }) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(d)) => return fail(&tenant, &ctx, OAuthError::invalid_request(d)),
    };
    let hint_sub = hint.as_ref().map(|h| h.subject.clone());
    let client_id = form
        .get("client_id")
        .map(str::to_string)
        .or_else(|| hint.as_ref().map(|h| h.client_id.clone()));
    let client = match &client_id {
        Some(id) => match tenant.clients.find_client(tenant.slug(), id).await {
            Ok(Some(c)) => Some(c),
            Ok(None) if form.get("client_id").is_none() => {
                return fail(
                    &tenant,
                    &ctx,
                    OAuthError::invalid_request(
                        "id_token_hint was not issued to a client of this tenant",
                    ),
                );
            }
            Ok(None) => {
                return fail(
                    &tenant,
                    &ctx,
                    OAuthError::new(ErrorCode::InvalidClient, "unknown client"),
                );
            }
            Err(e) => return internal(&tenant, &ctx, e),
        },
        None => None,
    };
    let post_logout_redirect_uri = match form.get("post_logout_redirect_uri") {
        None => None,
        // §3: only a URI registered for the client, compared exactly.
        Some(u) => match &client {
            Some(c)
                if c.spec
                    .interactive
                    .post_logout_redirect_uris
                    .iter()
                    .any(|r| r == u) =>
            {
                Some(u.to_string())
            }
            _ => {
                return fail(
                    &tenant,
                    &ctx,
                    OAuthError::invalid_request(
                        "post_logout_redirect_uri is not registered for this client",
                    ),
                );
            }
        },
    };
    let request = LogoutRequest {
        csrf: tokens::new_handle(),
        client_id,
        post_logout_redirect_uri,
        state: form
            .get("state")
            .map(str::to_string)
            .filter(|s| s.len() <= 2048),
    };
    let session = match sessions::current(&state, &tenant, &headers).await {
        Ok(s) => s,
        Err(e) => return internal(&tenant, &ctx, e),
    };
    let Some(session) = session else {
        return signed_out(&state, &tenant, &ctx, None, &request, Vec::new()).await;
    };
    // A valid hint for the signed-in user is consent enough; otherwise ask (§2: the OP
    // should confirm, or a third party could sign the user out).
    if hint_sub.as_deref() == Some(session.subject.as_str()) {
        return signed_out(&state, &tenant, &ctx, Some(session), &request, Vec::new()).await;
    }
    let logout_id = tokens::new_handle();
    let now = state.now();
    let data = match serde_json::to_string(&request) {
        Ok(d) => d,
        Err(e) => return internal(&tenant, &ctx, e.into()),
    };
    if let Err(e) = state
        .store
        .insert_grant(
            tenant.slug(),
            &GrantRecord {
                handle_hash: tokens::handle_hash(&logout_id),
                client_id: request.client_id.clone().unwrap_or_default(),
                subject: Some(session.subject.clone()),
                data,
                created_at: now,
                expires_at: now + LOGOUT_LIFETIME,
                session_id: Some(session.sid.clone()),
                ..GrantRecord::of(GrantKind::Logout)
            },
        )
        .await
    {
        return internal(&tenant, &ctx, e);
    }
    tenant.pages.render(
        &Page::LogoutConfirm(LogoutConfirmPage {
            action: format!("{}/account/logout", tenant.spec.issuer),
            logout_id,
            csrf: request.csrf,
            client_name: client.and_then(|c| c.spec.client_name.clone()),
        }),
        StatusCode::OK,
    )
}

/// The confirmation form.
pub async fn confirm(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    form: Result<FormBody, Response>,
) -> Response {
    let Ok(FormBody(form)) = form else {
        return fail(
            &tenant,
            &ctx,
            OAuthError::invalid_request("the form could not be read"),
        );
    };
    let Some(id) = form.get("logout_id").filter(|i| i.len() == 43) else {
        return fail(
            &tenant,
            &ctx,
            OAuthError::invalid_request("unknown logout request"),
        );
    };
    let record = match state
        .store
        .consume_grant(tenant.slug(), &tokens::handle_hash(id), state.now(), &[])
        .await
    {
        Ok(Consumed::Fresh(r)) if r.kind == GrantKind::Logout => r,
        Ok(_) => {
            return fail(
                &tenant,
                &ctx,
                OAuthError::invalid_request("this logout request has expired; sign out again"),
            );
        }
        Err(e) => return internal(&tenant, &ctx, e),
    };
    // A logout record of another kind (a SAML logout in progress) is not a confirmation.
    let Ok(request) = serde_json::from_str::<LogoutRequest>(&record.data) else {
        return fail(
            &tenant,
            &ctx,
            OAuthError::invalid_request("unknown logout request"),
        );
    };
    let csrf_ok = form.get("csrf").is_some_and(|c| {
        aws_lc_rs::constant_time::verify_slices_are_equal(c.as_bytes(), request.csrf.as_bytes())
            .is_ok()
    });
    if !csrf_ok {
        return fail(
            &tenant,
            &ctx,
            OAuthError::invalid_request("the form did not come from this site"),
        );
    }
    let session = match sessions::current(&state, &tenant, &headers).await {
        Ok(s) => s.filter(|s| Some(&s.sid) == record.session_id.as_ref()),
        Err(e) => return internal(&tenant, &ctx, e),
    };
    signed_out(&state, &tenant, &ctx, session, &request, Vec::new()).await
}

/// Ends the session (if any), notifies its clients, and shows the signed-out page.
async fn signed_out(
    state: &AppState,
    tenant: &Tenant,
    ctx: &RequestContext,
    session: Option<SessionRecord>,
    request: &LogoutRequest,
    mut frontchannel: Vec<String>,
) -> Response {
    let mut clear = None;
    let mut upstream_logout = None;
    if let Some(s) = session {
        // A brokered session ends upstream too, where the provider supports it; the upstream
        // comes back to us and we continue to the client's post-logout redirect.
        let then = request
            .post_logout_redirect_uri
            .as_ref()
            .map(|u| with_state(u, request.state.as_deref()));
        upstream_logout =
            crate::endpoints::federation::upstream_logout_url(state, tenant, &s, then.as_deref())
                .await;
        match logout::end(state, tenant, &s, &ctx.request_id).await {
            Ok(urls) => frontchannel.extend(urls),
            Err(e) => return internal(tenant, ctx, e),
        }
        clear = sessions::clear_cookie(
            &tenant.spec.session.cookie_name,
            &sessions::cookie_path(tenant),
            ctx.secure,
        );
        // SAML profiles §4.4.3: the session's SAML SPs are sent LogoutRequests through the
        // browser first; the flow then goes on as below.
        let sps = match saml_logout::session_sps(state, tenant, &s, None).await {
            Ok(sps) => sps,
            Err(e) => return internal(tenant, ctx, e),
        };
        if !sps.is_empty() {
            let client_name = client_name(tenant, request).await;
            let chain = saml_logout::LogoutChain {
                subject: s.subject.clone(),
                sid: s.sid.clone(),
                frontchannel,
                pending: sps,
                awaiting: None,
                partial: false,
                finish: saml_logout::Finish::Done {
                    redirect: upstream_logout.or_else(|| {
                        request
                            .post_logout_redirect_uri
                            .as_ref()
                            .map(|u| with_state(u, request.state.as_deref()))
                    }),
                    client_name,
                },
            };
            return match saml_logout::advance(state, tenant, chain, clear).await {
                Ok(r) => r,
                Err(e) => internal(tenant, ctx, e),
            };
        }
    }
    let redirect = upstream_logout.or_else(|| {
        request
            .post_logout_redirect_uri
            .as_ref()
            .map(|u| with_state(u, request.state.as_deref()))
    });
    // §3: with a valid post_logout_redirect_uri the browser goes back to the client (through
    // the upstream's logout, for a brokered session) on its own: at once when no front-channel
    // iframe must load; otherwise the page returns once they have (Front-Channel Logout 1.0 §4).
    let return_automatically = request.post_logout_redirect_uri.is_some();
    if return_automatically
        && frontchannel.is_empty()
        && let Some(location) = redirect
            .as_deref()
            .and_then(|u| HeaderValue::from_str(u).ok())
    {
        return see_other(location, clear);
    }
    let client_name = client_name(tenant, request).await;
    let mut r = tenant.pages.render(
        &Page::LoggedOut(LoggedOutPage {
            frontchannel_urls: frontchannel,
            post_logout_redirect_uri: redirect,
            client_name,
            return_automatically,
        }),
        StatusCode::OK,
    );
    if let Some(c) = clear {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

/// The display name of the client that asked for the logout.
async fn client_name(tenant: &Tenant, request: &LogoutRequest) -> Option<String> {
    match &request.client_id {
        Some(id) => tenant
            .clients
            .find_client(tenant.slug(), id)
            .await
            .ok()
            .flatten()
            .and_then(|c| c.spec.client_name.clone()),
        None => None,
    }
}

/// 303 See Other to `location`, clearing the session cookie when one was ended.
fn see_other(location: HeaderValue, clear: Option<HeaderValue>) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    let h = r.headers_mut();
    h.insert(header::LOCATION, location);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(c) = clear {
        h.append(header::SET_COOKIE, c);
    }
    r
}

/// `uri` with `state` added to its query (OIDC RP-Initiated Logout §3).
fn with_state(uri: &str, state: Option<&str>) -> String {
    match state {
        Some(st) => {
            let sep = if uri.contains('?') { '&' } else { '?' };
            let q = form_urlencoded::Serializer::new(String::new())
                .append_pair("state", st)
                .finish();
            format!("{uri}{sep}{q}")
        }
        None => uri.to_string(),
    }
}
