//! The tenant's SAML single logout service, `/{slug}/saml/slo` (SAML profiles §4.4), by the
//! HTTP-Redirect and HTTP-POST bindings:
//! - an SP's LogoutRequest (`SAMLRequest`): the session it names ends, the session's other
//!   participants are told, and the SP gets a LogoutResponse;
//! - an SP's LogoutResponse (`SAMLResponse`) to the IdP's LogoutRequest: the logout goes on;
//! - `?continue=` from the signed-out page once the OIDC front-channel pages have loaded.
//!
//! A LogoutRequest names the session by SessionIndex (this IdP's session id) or, without one, is
//! about the browser's current session; it ends nothing unless its NameID is the one this SP
//! was given for that session's user.

use crate::error::{InternalError, OAuthError};
use crate::registry::Tenant;
use crate::request::{CurrentTenant, RequestContext};
use crate::response::authorize::error_page;
use crate::response::saml::{STATUS_REQUESTER, STATUS_SUCCESS};
use crate::response::saml_logout::{self, Finish, LogoutChain};
use crate::sessions;
use crate::state::AppState;
use crate::stores::{SessionRecord, SessionStore};
use crate::validation::form::FormBody;
use crate::validation::saml::Binding;
use crate::validation::saml_logout::{
    LogoutRefusal, ValidatedLogoutRequest, logout_request, logout_response,
};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use std::sync::Arc;

/// Everything a logout step needs of the HTTP request.
struct Call {
    state: AppState,
    tenant: Arc<Tenant>,
    ctx: RequestContext,
    headers: HeaderMap,
}

impl Call {
    fn fail(&self, message: &str) -> Response {
        crate::events::request_rejected(
            self.tenant.slug(),
            "saml_slo",
            &self.ctx.request_id,
            "invalid_request",
            message,
        );
        error_page(
            &self.tenant,
            &self.ctx,
            &OAuthError::invalid_request(message.to_string()),
        )
    }

    fn internal(&self, e: InternalError) -> Response {
        error_page(&self.tenant, &self.ctx, &e.failed("SAML logout"))
    }
}

pub async fn slo_get(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let call = Call {
        state,
        tenant,
        ctx,
        headers,
    };
    let query = query.unwrap_or_default();
    if let Some(handle) = query.strip_prefix("continue=") {
        return resume(&call, handle).await;
    }
    let has = |p: &str| query.split('&').any(|kv| kv.starts_with(&format!("{p}=")));
    if has("SAMLRequest") {
        request(&call, Binding::Redirect(&query)).await
    } else if has("SAMLResponse") {
        response(&call, Binding::Redirect(&query)).await
    } else {
        call.fail("SAMLRequest or SAMLResponse is required")
    }
}

pub async fn slo_post(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    form: Result<FormBody, Response>,
) -> Response {
    let call = Call {
        state,
        tenant,
        ctx,
        headers,
    };
    let Ok(FormBody(form)) = form else {
        return call.fail("the form could not be read");
    };
    let relay_state = form.get("RelayState");
    match (form.get("SAMLRequest"), form.get("SAMLResponse")) {
        (Some(m), None) => {
            request(
                &call,
                Binding::Post {
                    message: Some(m),
                    relay_state,
                },
            )
            .await
        }
        (None, Some(m)) => {
            response(
                &call,
                Binding::Post {
                    message: Some(m),
                    relay_state,
                },
            )
            .await
        }
        _ => call.fail("one of SAMLRequest or SAMLResponse is required"),
    }
}

/// The front-channel pages have loaded: the logout goes on.
async fn resume(call: &Call, handle: &str) -> Response {
    match saml_logout::take(&call.state, &call.tenant, handle).await {
        // Only a chain that waits for no SP's answer goes on without one.
        Ok(Some(chain)) if chain.awaiting.is_none() => advance(call, chain, None).await,
        Ok(_) => call.fail("this logout has expired or was completed"),
        Err(e) => call.internal(e),
    }
}

async fn advance(
    call: &Call,
    chain: LogoutChain,
    clear: Option<axum::http::HeaderValue>,
) -> Response {
    match saml_logout::advance(&call.state, &call.tenant, chain, clear).await {
        Ok(r) => r,
        Err(e) => call.internal(e),
    }
}

/// An SP's LogoutRequest (SAML profiles §4.4.4.1).
async fn request(call: &Call, binding: Binding<'_>) -> Response {
    let (state, tenant) = (&call.state, &call.tenant);
    let v = match logout_request(state, tenant, &call.ctx.request_id, binding).await {
        Ok(v) => v,
        Err(LogoutRefusal::Page(m)) => return call.fail(m),
        Err(LogoutRefusal::Internal(e)) => return call.internal(e),
        Err(LogoutRefusal::ToSp {
            sp,
            in_response_to,
            relay_state,
            status,
            message,
        }) => {
            crate::events::request_rejected(
                tenant.slug(),
                "saml_slo",
                &call.ctx.request_id,
                status,
                message,
            );
            let Some((url, b)) = sp.slo.clone() else {
                return call.fail(message);
            };
            return match saml_logout::answer_sp(
                state,
                tenant,
                &sp,
                (&url, b),
                &in_response_to,
                relay_state.as_deref(),
                status,
            ) {
                Ok(r) => r,
                Err(e) => call.internal(e),
            };
        }
    };
    let Some((slo_url, slo_binding)) = v.sp.slo.clone() else {
        return call.fail("this service provider has no single logout service registered");
    };
    let answer = |status: &str| {
        saml_logout::answer_sp(
            state,
            tenant,
            &v.sp,
            (&slo_url, slo_binding),
            &v.id,
            v.relay_state.as_deref(),
            status,
        )
        .unwrap_or_else(|e| call.internal(e))
    };
    let session = match named_session(call, &v).await {
        Ok(s) => s,
        Err(e) => return call.internal(e),
    };
    let session = match session {
        Named::Ended => return answer(STATUS_SUCCESS),
        Named::Other => {
            crate::events::request_rejected(
                tenant.slug(),
                "saml_slo",
                &call.ctx.request_id,
                STATUS_REQUESTER,
                "the LogoutRequest names a session this SP's user is not in",
            );
            return answer(STATUS_REQUESTER);
        }
        Named::Live(s) => s,
    };
    let frontchannel =
        match sessions::logout::end(state, tenant, &session, &call.ctx.request_id).await {
            Ok(f) => f,
            Err(e) => return call.internal(e),
        };
    // The browser's cookie names the ended session: it goes too.
    let current = sessions::current(state, tenant, &call.headers)
        .await
        .ok()
        .flatten();
    let clear = match current {
        Some(c) if c.sid != session.sid => None,
        _ => sessions::clear_cookie(
            &tenant.spec.session.cookie_name,
            &sessions::cookie_path(tenant),
            call.ctx.secure,
        ),
    };
    let chain = LogoutChain {
        subject: session.subject.clone(),
        sid: session.sid.clone(),
        frontchannel,
        pending: match saml_logout::session_sps(state, tenant, &session, Some(&v.sp.entity_id))
            .await
        {
            Ok(p) => p,
            Err(e) => return call.internal(e),
        },
        awaiting: None,
        partial: false,
        finish: Finish::AnswerSp {
            entity_id: v.sp.entity_id.clone(),
            in_response_to: v.id.clone(),
            relay_state: v.relay_state.clone(),
        },
    };
    advance(call, chain, clear).await
}

/// What a LogoutRequest's session is.
enum Named {
    /// A live session of the user the NameID names, in which the SP took part.
    Live(Box<SessionRecord>),
    /// No such session any more (already ended or expired): nothing to do (SAML core §3.7.3.2
    /// still answers Success).
    Ended,
    /// A live session of someone else, or one the SP had no part in.
    Other,
}

async fn named_session(call: &Call, v: &ValidatedLogoutRequest) -> Result<Named, InternalError> {
    let (state, tenant) = (&call.state, &call.tenant);
    let mut candidates = Vec::new();
    if v.session_indexes.is_empty() {
        candidates.extend(sessions::current(state, tenant, &call.headers).await?);
    } else {
        for sid in v.session_indexes.iter().take(8) {
            if let Some(s) = state.store.find_session(tenant.slug(), sid).await?
                && sessions::is_live(tenant, &s, state.now())
            {
                candidates.push(s);
            }
        }
    }
    if candidates.is_empty() {
        return Ok(Named::Ended);
    }
    for s in candidates {
        if !s.client_ids().any(|c| c == v.sp.entity_id) {
            continue;
        }
        let user = crate::users::directory::by_subject(&state.store, tenant, &s.subject).await?;
        let expected =
            user.and_then(|u| crate::response::saml::name_id(state, tenant, &v.sp, &u, &s.sid));
        if expected.as_deref().is_some_and(|e| {
            aws_lc_rs::constant_time::verify_slices_are_equal(e.as_bytes(), v.name_id.as_bytes())
                .is_ok()
        }) {
            return Ok(Named::Live(Box::new(s)));
        }
    }
    Ok(Named::Other)
}

/// An SP's LogoutResponse to the IdP's LogoutRequest: the logout goes on to the next SP.
async fn response(call: &Call, binding: Binding<'_>) -> Response {
    let (state, tenant) = (&call.state, &call.tenant);
    let v = match logout_response(state, tenant, binding).await {
        Ok(v) => v,
        Err(m) => return call.fail(m),
    };
    let Some(handle) = v.relay_state.as_deref() else {
        return call.fail("the LogoutResponse carries no RelayState of this IdP");
    };
    let chain = match saml_logout::take(state, tenant, handle).await {
        Ok(Some(c)) => c,
        Ok(None) => return call.fail("this logout has expired or was completed"),
        Err(e) => return call.internal(e),
    };
    let expected = chain.awaiting.as_ref();
    if expected.is_none_or(|(sp, id)| *sp != v.sp_entity_id || *id != v.in_response_to) {
        return call.fail("the LogoutResponse does not answer this IdP's LogoutRequest");
    }
    let mut chain = chain;
    if !v.success {
        tracing::warn!(target: "security", event = "saml_logout_partial", tenant = %tenant.slug(), sp = %v.sp_entity_id);
        chain.partial = true;
    }
    advance(call, chain, None).await
}
