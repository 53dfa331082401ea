//! The device authorization grant (RFC 8628): `POST /{tenant}/connect/deviceauthorization`,
//! where a device asks for a code pair, and `/{tenant}/device`, where the user enters the code
//! and the sign-in pipeline (src/endpoints/interaction.rs) takes over: sign-in, consent that
//! says a device is asking, then a page that sends the user back to the device.

use super::call::OAuthCall;
use super::interaction::SignIn;
use crate::error::{ErrorCode, OAuthError};
use crate::response::device::{DeviceGrant, find_pending};
use crate::sessions;
use crate::stores::{ClientStore, Consumed, GrantStore};
use crate::tokens::user_code::UserCode;
use crate::ui::{DeviceCodePage, Page};
use crate::users::throttle::{Refused, Throttle};
use crate::validation::form::FormBody;
use crate::validation::{client_auth, device};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

/// RFC 8628 §3.1: client authentication as at the token endpoint (public clients identify
/// themselves), then `scope` and `resource`; §3.2 answers the codes.
pub async fn device_authorization(call: OAuthCall) -> Response {
    let (state, tenant, ctx, headers, form) = call.parts();
    let result = async {
        let auth = client_auth::authenticate(state, tenant, headers, form, ctx).await?;
        let validated = device::validate(tenant, &auth, form)?;
        crate::response::device::authorize(state, tenant, validated, ctx).await
    }
    .await;
    call.answer("device_authorization", result)
}

#[derive(serde::Deserialize)]
pub struct VerificationQuery {
    user_code: Option<String>,
}

/// RFC 8628 §3.3: the code entry page; `verification_uri_complete` fills the field in, and the
/// user still confirms it (§5.4: a link someone sent must not approve anything by itself).
pub async fn verification_form(
    sign_in: SignIn,
    query: Result<crate::validation::params::Query<VerificationQuery>, Response>,
) -> Response {
    let prefill = query
        .ok()
        .and_then(|crate::validation::params::Query(q)| q.user_code)
        .and_then(|c| UserCode::parse(&c))
        .map(|c| c.display())
        .unwrap_or_default();
    entry_page(&sign_in, prefill, None, StatusCode::OK)
}

/// The code entry form (CSRF-protected by the browser's binding cookie, which it gets here).
fn entry_page(
    sign_in: &SignIn,
    user_code: String,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let (csrf, cookie) = sign_in.browser_csrf(ENTRY);
    let mut response = sign_in.tenant.pages.render(
        &Page::DeviceCode(DeviceCodePage {
            action: crate::response::device::verification_uri(&sign_in.tenant),
            csrf,
            user_code,
            error,
        }),
        status,
    );
    if let Some(c) = cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// The purpose the entry form's CSRF token is bound to.
const ENTRY: &str = "device entry";

/// RFC 8628 §3.3: the user submitted a code. Wrong codes are throttled per browser and per
/// address (§5.1); a right one is used up here and starts the sign-in that decides it.
pub async fn verification_submit(sign_in: SignIn, form: Result<FormBody, Response>) -> Response {
    let Ok(FormBody(form)) = form else {
        return sign_in.fail(OAuthError::invalid_request("the form could not be read"));
    };
    let Some(browser) = sign_in.check_browser_csrf(ENTRY, &form) else {
        return sign_in.fail(OAuthError::invalid_request(
            "the form expired or did not come from this site; please try again",
        ));
    };
    let typed = form.get("user_code").unwrap_or_default();
    let shown_back: String = typed.chars().take(32).collect();
    let (state, tenant) = (&sign_in.state, &sign_in.tenant);
    let throttle = Throttle::new(&state.store, tenant.slug(), &tenant.spec.login, state.now());
    let address = sign_in.client_ip();
    let attempt = match throttle
        .begin_user_code_attempt(
            &browser,
            &address,
            tenant.spec.device.max_failures_per_session,
        )
        .await
    {
        Ok(Ok(a)) => a,
        Ok(Err(refused)) => {
            let until = match refused {
                Refused::Locked { until } => until,
                Refused::SignInEnded => state.now(),
            };
            crate::events::user_code_rejected(
                tenant.slug(),
                &sign_in.ctx.request_id,
                "locked",
                &address,
            );
            return locked_page(&sign_in, until);
        }
        Err(e) => return sign_in.internal(e),
    };
    let found = match redeem_user_code(&sign_in, typed).await {
        Ok(f) => f,
        Err(e) => {
            // Nothing was checked: the attempt is not a failure.
            if let Err(e) = attempt.withdrawn().await {
                tracing::warn!(error = %e, "could not give back a throttle slot");
            }
            return sign_in.internal(e);
        }
    };
    let Some((device_hash, client_id, grant)) = found else {
        let failure = match attempt.failed().await {
            Ok(f) => f,
            Err(e) => return sign_in.internal(e),
        };
        crate::events::user_code_rejected(
            tenant.slug(),
            &sign_in.ctx.request_id,
            "unknown, expired or used",
            &address,
        );
        if let Some(until) = failure.locked_until {
            return locked_page(&sign_in, until);
        }
        return entry_page(
            &sign_in,
            shown_back,
            Some("That code is not right, has expired or was already used. Check the code on your device.".into()),
            StatusCode::BAD_REQUEST,
        );
    };
    if let Err(e) = attempt.succeeded().await {
        return sign_in.internal(e);
    }
    let client = match tenant.clients.find_client(tenant.slug(), &client_id).await {
        Ok(Some(c)) if c.spec.enabled => c,
        Ok(_) => {
            return sign_in.fail(OAuthError::new(ErrorCode::InvalidClient, "unknown client"));
        }
        Err(e) => return sign_in.internal(e),
    };
    let session = match sessions::current(state, tenant, &sign_in.headers).await {
        Ok(s) => s,
        Err(e) => return sign_in.internal(e),
    };
    let request = crate::validation::authorize::ValidatedAuthorize::for_device(
        &client.spec.client_id,
        &grant.scopes,
        &grant.audiences,
    );
    sign_in
        .flow()
        .begin_device(&client, request, session, device_hash)
        .await
}

/// Uses up the user code `typed` names, if it is live at this tenant and its device
/// authorization is still pending: the device's hash, client and grant.
async fn redeem_user_code(
    sign_in: &SignIn,
    typed: &str,
) -> Result<Option<(String, String, DeviceGrant)>, crate::error::InternalError> {
    let Some(code) = UserCode::parse(typed) else {
        return Ok(None);
    };
    let (state, tenant) = (&sign_in.state, &sign_in.tenant);
    let hash = state.master.user_code_hash(tenant.slug(), &code);
    let record = match state
        .store
        .consume_grant(tenant.slug(), &hash, state.now(), &[])
        .await?
    {
        Consumed::Fresh(r) if r.kind == crate::stores::GrantKind::UserCode => r,
        _ => return Ok(None),
    };
    let Some((device, grant)) = find_pending(state, tenant, &record.data).await? else {
        return Ok(None);
    };
    if device.client_id != record.client_id || device.kind != crate::stores::GrantKind::DeviceCode {
        return Ok(None);
    }
    Ok(Some((device.handle_hash, device.client_id, grant)))
}

/// Too many wrong codes: the error page says when to try again (429, `Retry-After`).
fn locked_page(sign_in: &SignIn, until: i64) -> Response {
    let seconds = (until - sign_in.state.now()).max(1);
    let mut response = crate::response::authorize::error_page(
        &sign_in.tenant,
        &sign_in.ctx,
        &OAuthError::new(
            ErrorCode::AccessDenied,
            format!(
                "Too many wrong codes. Try again {}.",
                super::login::retry_text(seconds)
            ),
        )
        .with_status(StatusCode::TOO_MANY_REQUESTS),
    );
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}
