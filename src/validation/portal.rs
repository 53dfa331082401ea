//! What the application portal's browser asks for: an IdP-initiated SAML sign-in (SAML profiles
//! §4.1.5, an unsolicited Response) to one of the tenant's service providers.
//!
//! Such a sign-in hands the SP a fresh assertion it never asked for, so it is started only by a
//! form of the portal (a POST with the browser-bound CSRF token, checked by the endpoint) from
//! this origin; nothing in it is chosen by the request but the SP: the ACS is the SP's default
//! one and the RelayState its registered `default_relay_state`.

use crate::config::tenant::{SamlBinding, SamlSp};
use crate::error::{ErrorCode, OAuthError};
use crate::registry::Tenant;
use axum::http::{HeaderMap, header};

/// SAML core §8.3.6: an entity id has at most 1024 characters.
const MAX_ENTITY_ID: usize = 1024;

/// An IdP-initiated sign-in the tenant allows. Only [`idp_initiated`] builds one.
#[derive(Debug, Clone)]
pub struct ValidatedLaunch {
    sp: SamlSp,
    acs_url: String,
}

impl ValidatedLaunch {
    pub fn sp(&self) -> &SamlSp {
        &self.sp
    }
    /// The SP's default ACS (SAML metadata §2.2.3), HTTP-POST.
    pub fn acs_url(&self) -> &str {
        &self.acs_url
    }
    /// The SP's registered RelayState (SAML bindings §3.5.3), if any.
    pub fn relay_state(&self) -> Option<&str> {
        self.sp.default_relay_state.as_deref()
    }
}

/// The portal's launch request for the SP `entity_id`: a service provider of this tenant
/// (another tenant's is unknown here), enabled, that opted in (`allow_idp_initiated`).
pub async fn idp_initiated(
    state: &crate::state::AppState,
    tenant: &Tenant,
    entity_id: Option<&str>,
) -> Result<ValidatedLaunch, OAuthError> {
    let entity_id = entity_id
        .filter(|e| !e.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("name the application to sign in to"))?;
    if entity_id.len() > MAX_ENTITY_ID {
        return Err(OAuthError::invalid_request(
            "the application's name is too long",
        ));
    }
    let sp = crate::saml::service_provider(state, tenant, entity_id)
        .await
        .map_err(|e| e.failed("SAML SP lookup"))?
        .ok_or_else(|| {
            OAuthError::invalid_request("the application is not a service provider of this tenant")
        })?;
    // SAML profiles §4.1.5: unsolicited Responses only where the SP's registration opts in.
    if !sp.allow_idp_initiated {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this application does not accept sign-ins started here (IdP-initiated sign-in is off for it)",
        ));
    }
    let acs = sp
        .default_acs()
        .filter(|a| a.binding == SamlBinding::Post)
        .ok_or_else(|| {
            OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this application has no assertion consumer service for the HTTP-POST binding",
            )
        })?;
    Ok(ValidatedLaunch {
        acs_url: acs.url.clone(),
        sp: sp.as_ref().clone(),
    })
}

/// A state-changing form of the portal comes from the tenant's own pages: where the browser
/// says where a request comes from (Fetch Metadata `Sec-Fetch-Site`, `Origin`), it must be this
/// origin. `Origin: null` is what a page whose referrer policy is `no-referrer` sends even to
/// its own origin (Fetch §3.1, serializing a request origin): taken only with the browser's
/// `Sec-Fetch-Site: same-origin`. Browsers that send neither are held to the CSRF token alone.
pub fn same_origin(tenant: &Tenant, headers: &HeaderMap) -> Result<(), OAuthError> {
    let refused = || OAuthError::invalid_request("the form did not come from this site");
    let own = url::Url::parse(&tenant.spec.issuer)
        .map(|u| u.origin().ascii_serialization())
        .map_err(|_| refused())?;
    let site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
    if site.is_some_and(|s| s != b"same-origin") {
        return Err(refused());
    }
    match headers.get(header::ORIGIN).map(|v| v.as_bytes()) {
        None => Ok(()),
        Some(o) if o == own.as_bytes() => Ok(()),
        Some(b"null") if site == Some(b"same-origin") => Ok(()),
        Some(_) => Err(refused()),
    }
}
