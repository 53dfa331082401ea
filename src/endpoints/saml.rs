//! The tenant as a SAML 2.0 identity provider: its metadata (`/{slug}/saml/metadata`) and its
//! single sign-on service (`/{slug}/saml/sso`, HTTP-Redirect and HTTP-POST bindings).
//!
//! An SP's HTTP-POST arrives cross-site, without the SSO session cookie (SameSite=Lax): the
//! validated request waits (single use, a minute) while the browser comes back with a GET,
//! which carries the cookie.

use super::interaction::SignIn;
use crate::request::CurrentTenant;
use crate::response::authorize::SamlStep;
use crate::response::saml::{Audience, SSO_PATH, error_response, idp_metadata};
use crate::stores::{Consumed, GrantKind, GrantRecord, GrantStore};
use crate::ui::{FormPostPage, Page};
use crate::validation::form::FormBody;
use crate::validation::saml::{Binding, Refusal, ValidatedSamlRequest, as_client};
use axum::extract::RawQuery;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// How long a POSTed request waits for the browser's GET.
const RESUME_LIFETIME: i64 = 60;

pub async fn metadata(CurrentTenant(tenant): CurrentTenant) -> Response {
    let keys = tenant.keys.load();
    // SAML metadata §2.4.3: true only when every SP's requests must be signed.
    let sps = &tenant.spec.saml_service_providers;
    let want_signed = !sps.is_empty() && sps.iter().all(|sp| sp.signing_certificate.is_some());
    let xml = idp_metadata(&tenant, &keys, want_signed);
    let mut r = (StatusCode::OK, xml).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/samlmetadata+xml"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

/// What a POSTed request leaves for the GET that resumes it.
#[derive(Serialize, Deserialize)]
struct Waiting {
    step: SamlStep,
    force_authn: bool,
    is_passive: bool,
}

/// SAML bindings §3.4: HTTP-Redirect (`SAMLRequest` in the query), or the GET that resumes a
/// POSTed request (`resume`).
pub async fn sso_get(sign_in: SignIn, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    if let Some(handle) = query.strip_prefix("resume=") {
        return resume(sign_in, handle).await;
    }
    match crate::validation::saml::validate(
        &sign_in.state,
        &sign_in.tenant,
        &sign_in.ctx.request_id,
        Binding::Redirect(&query),
    )
    .await
    {
        Ok(v) => begin(sign_in, waiting(&v)).await,
        Err(r) => refused(&sign_in, r),
    }
}

/// SAML bindings §3.5: HTTP-POST. Validated now; signed in after the browser's GET.
pub async fn sso_post(sign_in: SignIn, form: Result<FormBody, Response>) -> Response {
    let Ok(FormBody(form)) = form else {
        return sign_in.fail(crate::error::OAuthError::invalid_request(
            "the form could not be read",
        ));
    };
    let binding = Binding::Post {
        message: form.get("SAMLRequest"),
        relay_state: form.get("RelayState"),
    };
    let v = match crate::validation::saml::validate(
        &sign_in.state,
        &sign_in.tenant,
        &sign_in.ctx.request_id,
        binding,
    )
    .await
    {
        Ok(v) => v,
        Err(r) => return refused(&sign_in, r),
    };
    let handle = crate::tokens::new_handle();
    let now = sign_in.state.now();
    let data = match serde_json::to_string(&waiting(&v)) {
        Ok(d) => d,
        Err(e) => return sign_in.internal(e.into()),
    };
    let record = GrantRecord {
        handle_hash: crate::tokens::handle_hash(&handle),
        client_id: v.sp().entity_id.clone(),
        data,
        created_at: now,
        expires_at: now + RESUME_LIFETIME,
        ..GrantRecord::of(GrantKind::SingleUse)
    };
    if let Err(e) = sign_in
        .state
        .store
        .insert_grant(sign_in.tenant.slug(), &record)
        .await
    {
        return sign_in.internal(e);
    }
    let location = format!("{}{SSO_PATH}?resume={handle}", sign_in.tenant.spec.issuer);
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn waiting(v: &ValidatedSamlRequest) -> Waiting {
    Waiting {
        step: SamlStep {
            entity_id: v.sp().entity_id.clone(),
            acs_url: v.acs().url.clone(),
            request_id: Some(v.request_id().to_string()),
            relay_state: v.relay_state().map(str::to_string),
            accepted_contexts: v.accepted_contexts().map(<[u8]>::to_vec),
        },
        force_authn: v.force_authn(),
        is_passive: v.is_passive(),
    }
}

async fn resume(sign_in: SignIn, handle: &str) -> Response {
    let (state, tenant) = (&sign_in.state, &sign_in.tenant);
    let gone = || {
        sign_in.fail(crate::error::OAuthError::invalid_request(
            "this sign-in request expired or was used; start again from the application",
        ))
    };
    if handle.len() > 64 {
        return gone();
    }
    let hash = crate::tokens::handle_hash(handle);
    let record = match state
        .store
        .consume_grant(tenant.slug(), &hash, state.now(), &[])
        .await
    {
        Ok(Consumed::Fresh(r)) if r.kind == GrantKind::SingleUse => r,
        Ok(_) => return gone(),
        Err(e) => return sign_in.internal(e),
    };
    match serde_json::from_str::<Waiting>(&record.data) {
        Ok(w) => begin(sign_in, w).await,
        Err(_) => gone(),
    }
}

async fn begin(sign_in: SignIn, w: Waiting) -> Response {
    let sp = match crate::saml::service_provider(&sign_in.state, &sign_in.tenant, &w.step.entity_id)
        .await
    {
        Ok(sp) => sp,
        Err(e) => return sign_in.internal(e),
    };
    let Some(sp) = sp.as_deref() else {
        return sign_in.fail(crate::error::OAuthError::invalid_request(
            "the service provider is no longer registered",
        ));
    };
    let client = match as_client(sp) {
        Ok(c) => c,
        Err(e) => return sign_in.internal(e),
    };
    let session =
        match crate::sessions::current(&sign_in.state, &sign_in.tenant, &sign_in.headers).await {
            Ok(s) => s,
            Err(e) => return sign_in.internal(e),
        };
    // Only MFA is accepted: a session without it signs in again (SAML core §3.3.2.2.1).
    let require_mfa = w
        .step
        .accepted_contexts
        .as_deref()
        .is_some_and(|a| a.iter().all(|r| *r >= 2));
    let request = crate::validation::authorize::ValidatedAuthorize::for_saml(
        &sp.entity_id,
        w.force_authn,
        w.is_passive,
        require_mfa,
    );
    sign_in
        .flow()
        .begin_saml(&client, request, session, w.step)
        .await
}

/// A refused request: an error page, or a SAML error Response to the registered ACS.
fn refused(sign_in: &SignIn, r: Refusal) -> Response {
    match r {
        Refusal::Page(e) => sign_in.fail(e),
        Refusal::Internal(e) => sign_in.internal(e),
        Refusal::ToAcs {
            acs_url,
            sp_entity_id,
            in_response_to,
            relay_state,
            status,
            message,
        } => {
            crate::events::request_rejected(
                sign_in.tenant.slug(),
                "saml",
                &sign_in.ctx.request_id,
                status,
                message,
            );
            let to = Audience {
                sp_entity_id: &sp_entity_id,
                acs_url: &acs_url,
                in_response_to: Some(&in_response_to),
                sign_response: false,
                encrypt_to: None,
            };
            let xml = error_response(&sign_in.tenant, &to, status, message, sign_in.state.now());
            let mut fields = vec![("SAMLResponse".to_string(), xml)];
            if let Some(r) = relay_state {
                fields.push(("RelayState".to_string(), r));
            }
            sign_in.tenant.pages.render(
                &Page::FormPost(FormPostPage {
                    action: acs_url,
                    fields,
                }),
                StatusCode::OK,
            )
        }
    }
}
