//! `GET`/`POST /{tenant}/connect/authorize` (RFC 6749 §3.1, OIDC Core §3.1.2.1).

use crate::error::OAuthError;
use crate::request::CurrentTenant;
use crate::request::RequestContext;
use crate::response::authorize::{Flow, error_page};
use crate::sessions;
use crate::state::AppState;
use crate::validation::authorize::{self, AuthorizeError};
use crate::validation::form::{Form, FormBody};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;

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
    let form = match form {
        Ok(FormBody(f)) => Ok(f),
        Err(_) => Err(OAuthError::invalid_request(
            "the request body is not a valid form",
        )),
    };
    handle(state, tenant, ctx, headers, form).await
}

async fn handle(
    state: AppState,
    tenant: std::sync::Arc<crate::registry::Tenant>,
    ctx: RequestContext,
    headers: HeaderMap,
    form: Result<Form, OAuthError>,
) -> Response {
    let mut flow = Flow {
        state: &state,
        tenant: &tenant,
        ctx: &ctx,
        headers: &headers,
        cookies: Vec::new(),
        consent: None,
    };
    let result = async {
        let form = form.map_err(AuthorizeError::Page)?;
        let (form, via_par, signed) = authorize::resolve_parameters(&state, &tenant, form).await?;
        let (client, request) = authorize::validate(&tenant, &form, via_par, signed).await?;
        // One query: the session and the user's consent for this client.
        let found =
            sessions::current_with_consent(&state, &tenant, &headers, &client.spec.client_id)
                .await?;
        Ok::<_, AuthorizeError>((client, request, found))
    }
    .await;
    match result {
        Ok((client, request, found)) => {
            let session = found.map(|(session, consent)| {
                flow.consent = Some(consent);
                session
            });
            flow.proceed(&client, request, session, None).await
        }
        Err(AuthorizeError::Redirect(target, e)) => flow.error_redirect(&target, e),
        Err(AuthorizeError::Page(e)) => {
            crate::events::request_rejected(
                tenant.slug(),
                "authorize",
                &ctx.request_id,
                e.code.as_str(),
                &e.description,
            );
            error_page(&tenant, &ctx, &e)
        }
        Err(AuthorizeError::Internal(e)) => error_page(&tenant, &ctx, &e.failed("authorize")),
    }
}
