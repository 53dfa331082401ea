//! Client-Initiated Backchannel Authentication (OpenID Connect CIBA Core 1.0):
//! `POST /{tenant}/connect/ciba`, where a confidential client asks for a user's approval, and
//! `/{tenant}/approvals`, where the user sees the requests and approves or denies one — a step
//! that, once the user is signed in as the one asked, the sign-in pipeline
//! (src/endpoints/interaction.rs) completes.

use super::call::OAuthCall;
use super::interaction::SignIn;
use crate::error::{ErrorCode, OAuthError};
use crate::response::authorize::BackchannelStep;
use crate::response::device::{DeviceGrant, DeviceStatus, find_pending};
use crate::sessions;
use crate::stores::{ClientStore, GrantKind, GrantRecord, GrantStore};
use crate::ui::{ApprovalItem, ApprovalsPage, Page, ScopeLine};
use crate::validation::form::FormBody;
use crate::validation::{backchannel, client_auth};
use axum::http::{StatusCode, header};
use axum::response::Response;

/// Requests shown at most on the approvals page.
const MAX_SHOWN: i64 = 20;
/// The purpose the approvals form's CSRF token is bound to.
const APPROVALS: &str = "approvals";

/// CIBA Core §7.1: authenticate the client, validate the request, answer `auth_req_id`.
pub async fn backchannel_authentication(call: OAuthCall) -> Response {
    let (state, tenant, ctx, headers, form) = call.parts();
    let result = async {
        let auth = client_auth::authenticate(state, tenant, headers, form, ctx).await?;
        let validated =
            backchannel::validate(state, tenant, &auth, form, &ctx.client_address()).await?;
        crate::response::backchannel::authorize(state, tenant, validated, ctx).await
    }
    .await;
    call.answer("backchannel_authentication", result)
}

#[derive(serde::Deserialize)]
pub struct ApprovalsQuery {
    request: Option<String>,
}

/// The requests waiting for the signed-in user; or the one request a notification's link
/// names (the user signs in when deciding it).
pub async fn approvals(
    sign_in: SignIn,
    query: Result<crate::validation::params::Query<ApprovalsQuery>, Response>,
) -> Response {
    let named = query
        .ok()
        .and_then(|crate::validation::params::Query(q)| q.request);
    let (state, tenant) = (&sign_in.state, &sign_in.tenant);
    let session = match sessions::current(state, tenant, &sign_in.headers).await {
        Ok(s) => s,
        Err(e) => return sign_in.internal(e),
    };
    let records: Vec<GrantRecord> = match (&named, &session) {
        (Some(id), _) => match pending(&sign_in, id).await {
            Ok(Some((record, _))) => vec![record],
            Ok(None) => Vec::new(),
            Err(r) => return r,
        },
        (None, Some(s)) => match state
            .store
            .live_grants_of(
                tenant.slug(),
                &s.subject,
                GrantKind::BackchannelAuth,
                state.now(),
                MAX_SHOWN,
            )
            .await
        {
            Ok(r) => r,
            Err(e) => return sign_in.internal(e),
        },
        (None, None) => Vec::new(),
    };
    let mut requests = Vec::with_capacity(records.len());
    for record in records {
        match item(&sign_in, &record).await {
            Ok(Some(i)) => requests.push(i),
            Ok(None) => {}
            Err(r) => return r,
        }
    }
    let (csrf, cookie) = sign_in.browser_csrf(APPROVALS);
    let mut response = tenant.pages.render(
        &Page::Approvals(ApprovalsPage {
            action: format!(
                "{}{}",
                tenant.spec.issuer,
                crate::response::backchannel::APPROVALS_PATH
            ),
            csrf,
            signed_in: session.is_some() || named.is_some(),
            requests,
        }),
        StatusCode::OK,
    );
    if let Some(c) = cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// A pending backchannel request by its id on the page (the hash of its `auth_req_id`).
async fn pending(
    sign_in: &SignIn,
    id: &str,
) -> Result<Option<(GrantRecord, DeviceGrant)>, Response> {
    if id.len() != 43 {
        return Ok(None);
    }
    match find_pending(&sign_in.state, &sign_in.tenant, id).await {
        Ok(Some((r, g))) if r.kind == GrantKind::BackchannelAuth && g.backchannel.is_some() => {
            Ok(Some((r, g)))
        }
        Ok(_) => Ok(None),
        Err(e) => Err(sign_in.internal(e)),
    }
}

/// One request as the page shows it (None: no longer pending, or its client is gone).
async fn item(sign_in: &SignIn, record: &GrantRecord) -> Result<Option<ApprovalItem>, Response> {
    let Ok(grant) = serde_json::from_str::<DeviceGrant>(&record.data) else {
        return Ok(None);
    };
    let (DeviceStatus::Pending, Some(details)) = (&grant.status, &grant.backchannel) else {
        return Ok(None);
    };
    let tenant = &sign_in.tenant;
    let client = match tenant
        .clients
        .find_client(tenant.slug(), &record.client_id)
        .await
    {
        Ok(Some(c)) if c.spec.enabled => c,
        Ok(_) => return Ok(None),
        Err(e) => return Err(sign_in.internal(e)),
    };
    let spec = &tenant.spec;
    let scopes = grant
        .scopes
        .iter()
        .map(|s| {
            let display = spec
                .identity_resources
                .iter()
                .find(|r| &r.name == s)
                .and_then(|r| r.display_name.clone())
                .or_else(|| {
                    spec.api_scopes
                        .iter()
                        .find(|a| &a.name == s)
                        .and_then(|a| a.display_name.clone())
                })
                .unwrap_or_else(|| s.clone());
            ScopeLine {
                name: s.clone(),
                display_name: display,
                description: None,
            }
        })
        .collect();
    Ok(Some(ApprovalItem {
        id: record.handle_hash.clone(),
        client_name: client
            .spec
            .client_name
            .clone()
            .unwrap_or_else(|| client.spec.client_id.clone()),
        username: details.username.clone(),
        binding_message: details.binding_message.clone(),
        scopes,
        minutes_left: ((record.expires_at - sign_in.state.now()) + 59) / 60,
    }))
}

/// The user's choice: once they are signed in as the user asked (and with a second factor if
/// the tenant wants one), it is written, and a ping client is told.
pub async fn approvals_submit(sign_in: SignIn, form: Result<FormBody, Response>) -> Response {
    let Ok(FormBody(form)) = form else {
        return sign_in.fail(OAuthError::invalid_request("the form could not be read"));
    };
    if sign_in.check_browser_csrf(APPROVALS, &form).is_none() {
        return sign_in.fail(OAuthError::invalid_request(
            "the form expired or did not come from this site; please try again",
        ));
    }
    let approve = match form.get("decision") {
        Some("approve") => true,
        Some("deny") => false,
        _ => return sign_in.fail(OAuthError::invalid_request("choose approve or deny")),
    };
    let id = form.get("request").unwrap_or_default();
    let (record, grant) = match pending(&sign_in, id).await {
        Ok(Some(x)) => x,
        Ok(None) => {
            return sign_in.fail(OAuthError::invalid_request(
                "this request expired or was already answered",
            ));
        }
        Err(r) => return r,
    };
    let (state, tenant) = (&sign_in.state, &sign_in.tenant);
    let client = match tenant
        .clients
        .find_client(tenant.slug(), &record.client_id)
        .await
    {
        Ok(Some(c)) if c.spec.enabled => c,
        Ok(_) => {
            return sign_in.fail(OAuthError::new(ErrorCode::InvalidClient, "unknown client"));
        }
        Err(e) => return sign_in.internal(e),
    };
    let Some((subject, details)) = record.subject.clone().zip(grant.backchannel) else {
        return sign_in.fail(OAuthError::invalid_request("this request names no user"));
    };
    let session = match sessions::current(state, tenant, &sign_in.headers).await {
        Ok(s) => s,
        Err(e) => return sign_in.internal(e),
    };
    let require_mfa = tenant.spec.ciba.require_mfa;
    let acr_values = if require_mfa && approve {
        vec![sessions::ACR_MFA.to_string()]
    } else {
        details.acr_values
    };
    let request = crate::validation::authorize::ValidatedAuthorize::for_backchannel(
        &client.spec.client_id,
        &grant.scopes,
        &grant.audiences,
        (&subject, &details.username),
        acr_values,
    );
    let step = BackchannelStep {
        grant: record.handle_hash,
        subject,
        approve,
        require_mfa,
    };
    sign_in
        .flow()
        .begin_backchannel(&client, request, session, step)
        .await
}
