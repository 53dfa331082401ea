//! The application portal: `GET /{slug}/apps` lists, for the signed-in user, the tenant's
//! applications that can be started from here (signing in first when nobody is), and
//! `POST /{slug}/apps/launch` starts a SAML application with an IdP-initiated sign-in (SAML
//! profiles §4.1.5) through the sign-in pipeline.
//!
//! The launch is a POST with the browser-bound CSRF token of the portal page, from this origin,
//! not a GET that any page could link to or load in an image: an unsolicited Response is a
//! fresh assertion the SP never asked for, and a cross-site request that could make a signed-in
//! browser post one to an SP of the attacker's choosing would sign the user in there unawares
//! (and, where the SP keeps its own session, out of the one they had). Only the user's own
//! click on the portal starts one.

use super::interaction::SignIn;
use crate::error::{ErrorCode, OAuthError};
use crate::response::authorize::error_page;
use crate::response::portal::{LAUNCH_PATH, applications, idp_initiated_step};
use crate::sessions;
use crate::stores::SessionRecord;
use crate::ui::{Page, PortalPage};
use crate::validation::form::FormBody;
use crate::validation::portal::{idp_initiated, same_origin};
use axum::http::{StatusCode, header};
use axum::response::Response;

/// The purpose the portal's CSRF token is bound to.
const PORTAL: &str = "portal";

/// The portal page; a sign-in first when nobody is signed in.
pub async fn portal(sign_in: SignIn) -> Response {
    let session = match sessions::current(&sign_in.state, &sign_in.tenant, &sign_in.headers).await {
        Ok(s) => s,
        Err(e) => return sign_in.internal(e),
    };
    let Some(session) = session else {
        return sign_in.flow().begin_portal().await;
    };
    let user = match user_of(&sign_in, &session).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let (state, tenant) = (&sign_in.state, &sign_in.tenant);
    let apps = match applications(state, tenant).await {
        Ok(a) => a,
        Err(e) => return sign_in.internal(e),
    };
    let (csrf, cookie) = sign_in.browser_csrf(PORTAL);
    let mut response = tenant.pages.render(
        &Page::Portal(PortalPage {
            action: format!("{}{LAUNCH_PATH}", tenant.spec.issuer),
            csrf,
            user,
            sign_out: format!("{}/connect/endsession", tenant.spec.issuer),
            apps,
        }),
        StatusCode::OK,
    );
    if let Some(c) = cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// A SAML application's button on the portal: an unsolicited Response to the SP, once the user
/// is signed in (and has consented, where the SP asks for consent).
pub async fn launch(sign_in: SignIn, form: Result<FormBody, Response>) -> Response {
    let Ok(FormBody(form)) = form else {
        return refuse(
            &sign_in,
            OAuthError::invalid_request("the form could not be read"),
        );
    };
    if let Err(e) = same_origin(&sign_in.tenant, &sign_in.headers) {
        return refuse(&sign_in, e);
    }
    if sign_in.check_browser_csrf(PORTAL, &form).is_none() {
        return refuse(
            &sign_in,
            OAuthError::invalid_request(
                "the form expired or did not come from this site; open your applications again",
            ),
        );
    }
    let launch = match idp_initiated(&sign_in.state, &sign_in.tenant, form.get("sp")).await {
        Ok(l) => l,
        Err(e) => return refuse(&sign_in, e),
    };
    let session = match sessions::current(&sign_in.state, &sign_in.tenant, &sign_in.headers).await {
        Ok(s) => s,
        Err(e) => return sign_in.internal(e),
    };
    if let Some(s) = &session
        && let Err(r) = user_of(&sign_in, s).await
    {
        return r;
    }
    let client = match crate::validation::saml::as_client(launch.sp()) {
        Ok(c) => c,
        Err(e) => return sign_in.internal(e),
    };
    let request = crate::validation::authorize::ValidatedAuthorize::for_saml(
        &launch.sp().entity_id,
        false,
        false,
        false,
    );
    sign_in
        .flow()
        .begin_saml(&client, request, session, idp_initiated_step(&launch))
        .await
}

/// The signed-in user's name for the page; a disabled (or removed) user is refused.
async fn user_of(sign_in: &SignIn, session: &SessionRecord) -> Result<String, Response> {
    match crate::users::directory::by_subject(
        &sign_in.state.store,
        &sign_in.tenant,
        &session.subject,
    )
    .await
    {
        Ok(Some(u)) if u.enabled => Ok(u
            .claims
            .get("name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or(&u.username)
            .to_string()),
        Ok(_) => Err(refuse(
            sign_in,
            OAuthError::new(ErrorCode::AccessDenied, "this account is disabled"),
        )),
        Err(e) => Err(sign_in.internal(e)),
    }
}

/// The error page, and a security event naming the portal.
fn refuse(sign_in: &SignIn, e: OAuthError) -> Response {
    crate::events::request_rejected(
        sign_in.tenant.slug(),
        "portal",
        &sign_in.ctx.request_id,
        e.code.as_str(),
        &e.description,
    );
    error_page(&sign_in.tenant, &sign_in.ctx, &e)
}
