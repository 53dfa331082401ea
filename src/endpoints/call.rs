//! What every OAuth JSON endpoint (token, PAR, device authorization, CIBA, introspection,
//! revocation) starts and ends with: the tenant, the request's context and headers and its form
//! body, extracted in one place; and one answer, in which a refusal is a security event.

use crate::error::{ErrorCode, OAuthError};
use crate::registry::Tenant;
use crate::request::{CurrentTenant, RequestContext};
use crate::state::AppState;
use crate::validation::form::{Form, FormBody};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// A POST to an OAuth endpoint, its form read.
pub struct OAuthCall {
    pub state: AppState,
    pub tenant: Arc<Tenant>,
    pub ctx: RequestContext,
    pub headers: HeaderMap,
    pub form: Form,
}

impl FromRequest<AppState> for OAuthCall {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let CurrentTenant(tenant) = CurrentTenant::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Ok(ctx) = RequestContext::from_request_parts(&mut parts, state).await;
        let headers = parts.headers.clone();
        let endpoint = parts
            .uri
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        match FormBody::from_request(Request::from_parts(parts, body), state).await {
            Ok(FormBody(form)) => Ok(Self {
                state: state.clone(),
                tenant,
                ctx,
                headers,
                form,
            }),
            Err(rejection) => {
                crate::events::request_rejected(
                    tenant.slug(),
                    &endpoint,
                    &ctx.request_id,
                    "invalid_request",
                    "unreadable body",
                );
                Err(rejection)
            }
        }
    }
}

impl OAuthCall {
    /// What a handler works with: state, tenant, context, headers, form.
    pub fn parts(&self) -> (&AppState, &Tenant, &RequestContext, &HeaderMap, &Form) {
        (
            &self.state,
            &self.tenant,
            &self.ctx,
            &self.headers,
            &self.form,
        )
    }

    /// The endpoint's answer, or its error (RFC 6749 §5.2) logged as a security event — except
    /// a failed client authentication, logged where it is decided, and a device asking whether
    /// the user has decided yet (RFC 8628 §3.5 `authorization_pending`), which is no attack.
    pub fn answer(&self, endpoint: &str, result: Result<Response, OAuthError>) -> Response {
        result.unwrap_or_else(|e| {
            if e.code != ErrorCode::InvalidClient && e.code != ErrorCode::AuthorizationPending {
                crate::events::request_rejected(
                    self.tenant.slug(),
                    endpoint,
                    &self.ctx.request_id,
                    e.code.as_str(),
                    &e.description,
                );
            }
            e.into_response()
        })
    }
}
