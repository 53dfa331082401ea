//! `/{tenant}/account/consent`: the user allows (optionally remembering it) or denies what the
//! application asks for — a step of the sign-in pipeline (src/endpoints/interaction.rs).

use super::interaction::{Pending, PendingInteraction, SubmittedInteraction};
use crate::error::{ErrorCode, OAuthError};
use crate::sessions;
use crate::stores::ConsentStore;
use crate::ui::{ConsentPage, Page, ScopeLine};
use axum::http::StatusCode;
use axum::response::Response;

/// The consent page: the application, the scopes (identity first) and the APIs it asks for.
pub async fn consent_form(PendingInteraction(p): PendingInteraction) -> Response {
    let (identity_scopes, api_scopes) = scope_lines(&p);
    let spec = &p.tenant.spec;
    let resources = p
        .interaction
        .request
        .audiences
        .iter()
        .map(|a| {
            spec.api_resources
                .iter()
                .find(|r| &r.name == a)
                .and_then(|r| r.display_name.clone())
                .unwrap_or_else(|| a.clone())
        })
        .collect();
    p.tenant.pages.render(
        &Page::Consent(ConsentPage {
            action: p.action("consent"),
            interaction: p.id.clone(),
            csrf: p.interaction.csrf.clone(),
            client_name: p.client_name(),
            client_uri: p.client.spec.interactive.client_uri.clone(),
            identity_scopes,
            api_scopes,
            resources,
            // RFC 8628 §5.4: a device's request is confirmed each time.
            allow_remember: p.client.spec.interactive.allow_remember_consent
                && p.interaction.device.is_none(),
            device: p.interaction.device.is_some(),
            client_host: p.client.document_host.clone(),
        }),
        StatusCode::OK,
    )
}

/// The scopes of the request as the page shows them: identity scopes, then API scopes.
fn scope_lines(p: &Pending) -> (Vec<ScopeLine>, Vec<ScopeLine>) {
    let spec = &p.tenant.spec;
    let mut identity_scopes = Vec::new();
    let mut api_scopes = Vec::new();
    for s in &p.interaction.request.scopes {
        if let Some(r) = spec.identity_resources.iter().find(|r| &r.name == s) {
            identity_scopes.push(ScopeLine {
                name: s.clone(),
                display_name: r.display_name.clone().unwrap_or_else(|| match s.as_str() {
                    "openid" => "Your user identifier".into(),
                    other => other.to_string(),
                }),
                description: None,
            });
        } else if let Some(a) = spec.api_scopes.iter().find(|a| &a.name == s) {
            api_scopes.push(ScopeLine {
                name: s.clone(),
                display_name: a.display_name.clone().unwrap_or_else(|| s.clone()),
                description: a.description.clone(),
            });
        } else if s == "offline_access" {
            api_scopes.push(ScopeLine {
                name: s.clone(),
                display_name: "Stay signed in (offline access)".into(),
                description: Some("The application may keep access while you are away.".into()),
            });
        }
    }
    (identity_scopes, api_scopes)
}

/// The user's decision: allow (and the authorize request goes on), or deny (RFC 6749
/// §4.1.2.1 `access_denied` to the client).
pub async fn consent_submit(s: SubmittedInteraction) -> Response {
    let (mut p, form) = (s.pending, s.form);
    let session = match sessions::current(&p.state, &p.tenant, &p.headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return p.fail(OAuthError::invalid_request("sign in first")),
        Err(e) => return p.internal(e),
    };
    match form.get("decision") {
        Some("allow") => {}
        Some("deny") => {
            let denied = OAuthError::new(ErrorCode::AccessDenied, "the user denied the request");
            return p.fail_back(denied).await;
        }
        _ => return p.fail(OAuthError::invalid_request("choose allow or deny")),
    }
    let interactive = &p.client.spec.interactive;
    if form.get("remember") == Some("on")
        && interactive.allow_remember_consent
        && p.interaction.device.is_none()
    {
        let now = p.state.now();
        let expires = interactive.consent_lifetime.map(|l| now + l);
        let stored = p
            .state
            .store
            .upsert_consent(
                p.tenant.slug(),
                &session.subject,
                &p.client.spec.client_id,
                &p.interaction.request.scopes,
                now,
                expires,
            )
            .await;
        if let Err(e) = stored {
            return p.internal(e);
        }
    }
    p.interaction.consented = true;
    if let Err(r) = p.save().await {
        return r;
    }
    p.resume().await
}
