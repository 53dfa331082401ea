//! SAML 2.0 single logout messages from service providers, at `/{slug}/saml/slo` (SAML core
//! §3.7, profiles §4.4): a LogoutRequest an SP sends to end the user's session, and the
//! LogoutResponse an SP answers the IdP's LogoutRequest with. Both bindings (Redirect, POST);
//! decoded by the same size-bounded, DTD-free reader as AuthnRequests; from a registered SP with
//! a single logout service; signed by its registered key (profiles §4.4.4.1: logout messages are
//! signed); for this endpoint, recent, and (requests) used once.

use super::saml::{Binding, Decoded, decode, enveloped_signature, redirect_signature};
use crate::config::tenant::SamlSp;
use crate::error::InternalError;
use crate::registry::Tenant;
use crate::state::AppState;
use serde::Deserialize;

/// How far IssueInstant may be from now.
const ISSUE_WINDOW: i64 = 300;

/// Only this module makes the validated types.
#[derive(Debug)]
struct Sealed;

/// A LogoutRequest that passed every check. Only [`logout_request`] builds one.
#[derive(Debug)]
pub struct ValidatedLogoutRequest {
    pub sp: SamlSp,
    pub id: String,
    pub name_id: String,
    /// SAML core §3.7.1: the sessions to end (this IdP's session ids); none: the current one.
    pub session_indexes: Vec<String>,
    pub relay_state: Option<String>,
    _sealed: Sealed,
}

/// A LogoutResponse that passed every check. Only [`logout_response`] builds one.
#[derive(Debug)]
pub struct ValidatedLogoutResponse {
    pub sp_entity_id: String,
    pub in_response_to: String,
    /// Top-level status Success (SAML core §3.2.2.2).
    pub success: bool,
    pub relay_state: Option<String>,
    _sealed: Sealed,
}

/// Why a logout message was refused.
#[derive(Debug)]
pub enum LogoutRefusal {
    /// Before the SP is trusted: an error page.
    Page(&'static str),
    /// A LogoutResponse with an error status to the SP's registered SLO service.
    ToSp {
        sp: Box<SamlSp>,
        in_response_to: String,
        relay_state: Option<String>,
        status: &'static str,
        message: &'static str,
    },
    Internal(InternalError),
}

impl From<InternalError> for LogoutRefusal {
    fn from(e: InternalError) -> Self {
        LogoutRefusal::Internal(e)
    }
}

#[derive(Deserialize)]
struct Text {
    #[serde(rename = "$value")]
    value: Option<String>,
}

#[derive(Deserialize)]
struct LogoutRequestXml {
    #[serde(rename = "@ID")]
    id: String,
    #[serde(rename = "@Version")]
    version: String,
    #[serde(rename = "@IssueInstant")]
    issue_instant: String,
    #[serde(rename = "@Destination")]
    destination: Option<String>,
    #[serde(rename = "@NotOnOrAfter")]
    not_on_or_after: Option<String>,
    #[serde(rename = "Issuer")]
    issuer: Option<Text>,
    #[serde(rename = "Signature")]
    signature: Option<samael::signature::Signature>,
    #[serde(rename = "NameID")]
    name_id: Option<Text>,
    #[serde(rename = "EncryptedID")]
    encrypted_id: Option<serde::de::IgnoredAny>,
    #[serde(rename = "SessionIndex", default)]
    session_index: Vec<Text>,
}

#[derive(Deserialize)]
struct StatusCodeXml {
    #[serde(rename = "@Value")]
    value: String,
}

#[derive(Deserialize)]
struct StatusXml {
    #[serde(rename = "StatusCode")]
    code: StatusCodeXml,
}

#[derive(Deserialize)]
struct LogoutResponseXml {
    #[serde(rename = "@ID")]
    id: String,
    #[serde(rename = "@Version")]
    version: String,
    #[serde(rename = "@IssueInstant")]
    issue_instant: String,
    #[serde(rename = "@Destination")]
    destination: Option<String>,
    #[serde(rename = "@InResponseTo")]
    in_response_to: Option<String>,
    #[serde(rename = "Issuer")]
    issuer: Option<Text>,
    #[serde(rename = "Signature")]
    signature: Option<samael::signature::Signature>,
    #[serde(rename = "Status")]
    status: StatusXml,
}

/// The local name of the document's root element.
fn root_name(xml: &str) -> Option<String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event().ok()? {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                return String::from_utf8(e.local_name().as_ref().to_vec()).ok();
            }
            quick_xml::events::Event::Eof => return None,
            _ => {}
        }
    }
}

/// A SAML timestamp (SAML core §1.3.3) as unix seconds.
fn unix(instant: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(instant)
        .ok()
        .map(|t| t.timestamp())
}

/// The SLO endpoint messages must be addressed to.
fn slo_url(tenant: &Tenant) -> String {
    format!(
        "{}{}",
        tenant.spec.issuer,
        crate::response::saml_logout::SLO_PATH
    )
}

/// The signature of a message from `sp` by either binding.
fn signed_by(
    binding: &Binding<'_>,
    param: &str,
    xml: &str,
    root_id: &str,
    signature: Option<&samael::signature::Signature>,
    sp: &SamlSp,
) -> Result<(), &'static str> {
    let cert = sp
        .signing_certificate
        .as_deref()
        .ok_or("the SP has no signing certificate")?;
    match binding {
        Binding::Redirect(q) => redirect_signature(q, param, cert, sp.allow_sha1),
        Binding::Post { .. } => enveloped_signature(xml, root_id, signature, cert, sp.allow_sha1),
    }
}

/// Validates an SP's LogoutRequest. Refusals after the SP is known go back to it as a
/// LogoutResponse (and are security events, with `request_id`, the HTTP request's id).
pub async fn logout_request(
    state: &AppState,
    tenant: &Tenant,
    request_id: &str,
    binding: Binding<'_>,
) -> Result<ValidatedLogoutRequest, LogoutRefusal> {
    let Decoded { xml, relay_state } =
        decode(&binding, "SAMLRequest").map_err(LogoutRefusal::Page)?;
    if root_name(&xml).as_deref() != Some("LogoutRequest") {
        return Err(LogoutRefusal::Page(
            "the SAMLRequest is not a LogoutRequest",
        ));
    }
    let request: LogoutRequestXml = quick_xml::de::from_str(&xml)
        .map_err(|_| LogoutRefusal::Page("the LogoutRequest is malformed"))?;
    let issuer = request
        .issuer
        .as_ref()
        .and_then(|i| i.value.as_deref())
        .ok_or(LogoutRefusal::Page("the LogoutRequest names no Issuer"))?;
    let sp = crate::saml::service_provider(state, tenant, issuer)
        .await?
        .ok_or(LogoutRefusal::Page(
            "the LogoutRequest's Issuer is not a service provider of this tenant",
        ))?;
    let sp = sp.as_ref();
    if sp.slo.is_none() {
        return Err(LogoutRefusal::Page(
            "this service provider has no single logout service registered",
        ));
    }
    let refuse = |message: &'static str| {
        tracing::warn!(target: "security", event = "saml_logout_refused", tenant = %tenant.slug(), request_id, sp = %sp.entity_id, reason = message);
        LogoutRefusal::ToSp {
            sp: Box::new(sp.clone()),
            in_response_to: request.id.clone(),
            relay_state: relay_state.clone(),
            status: crate::response::saml::STATUS_REQUESTER,
            message,
        }
    };
    if request.version != "2.0" {
        return Err(LogoutRefusal::ToSp {
            sp: Box::new(sp.clone()),
            in_response_to: request.id.clone(),
            relay_state,
            status: "urn:oasis:names:tc:SAML:2.0:status:VersionMismatch",
            message: "only SAML 2.0",
        });
    }
    if request.id.is_empty() || request.id.len() > 256 {
        return Err(refuse("the request has no usable ID"));
    }
    // SAML bindings §3.4.5.2 / §3.5.5.2: a signed message names its Destination, this endpoint.
    if request.destination.as_deref() != Some(slo_url(tenant).as_str()) {
        return Err(refuse("the request is for another destination"));
    }
    let now = state.now();
    if unix(&request.issue_instant).is_none_or(|t| (t - now).abs() > ISSUE_WINDOW) {
        return Err(refuse("the request's IssueInstant is too far from now"));
    }
    // SAML core §3.7.1: NotOnOrAfter, the time the request expires.
    if let Some(limit) = &request.not_on_or_after
        && unix(limit).is_none_or(|t| now >= t)
    {
        return Err(refuse("the request has expired"));
    }
    if let Err(why) = signed_by(
        &binding,
        "SAMLRequest",
        &xml,
        &request.id,
        request.signature.as_ref(),
        sp,
    ) {
        tracing::warn!(target: "security", event = "saml_logout_refused", tenant = %tenant.slug(), request_id, sp = %sp.entity_id, reason = why);
        return Err(refuse("the request's signature is missing or wrong"));
    }
    if request.encrypted_id.is_some() {
        return Err(refuse("encrypted NameIDs are not accepted"));
    }
    let name_id = request
        .name_id
        .and_then(|n| n.value)
        .ok_or_else(|| refuse("the request names no NameID"))?;
    if !super::saml::first_use(
        state,
        tenant,
        "saml-logout-request",
        &sp.entity_id,
        &request.id,
    )
    .await?
    {
        return Err(refuse("the request was used before"));
    }
    Ok(ValidatedLogoutRequest {
        sp: sp.clone(),
        id: request.id,
        name_id,
        session_indexes: request
            .session_index
            .into_iter()
            .filter_map(|s| s.value)
            .collect(),
        relay_state,
        _sealed: Sealed,
    })
}

/// Validates an SP's LogoutResponse to a LogoutRequest of this IdP; the caller matches
/// `in_response_to` and the SP against the request it sent.
pub async fn logout_response(
    state: &AppState,
    tenant: &Tenant,
    binding: Binding<'_>,
) -> Result<ValidatedLogoutResponse, &'static str> {
    let Decoded { xml, relay_state } = decode(&binding, "SAMLResponse")?;
    if root_name(&xml).as_deref() != Some("LogoutResponse") {
        return Err("the SAMLResponse is not a LogoutResponse");
    }
    let response: LogoutResponseXml =
        quick_xml::de::from_str(&xml).map_err(|_| "the LogoutResponse is malformed")?;
    let issuer = response
        .issuer
        .as_ref()
        .and_then(|i| i.value.as_deref())
        .ok_or("the LogoutResponse names no Issuer")?;
    let sp = crate::saml::service_provider(state, tenant, issuer)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "SAML SP lookup failed");
            "the service provider cannot be read now"
        })?
        .filter(|sp| sp.slo.is_some())
        .ok_or("the LogoutResponse's Issuer is not a service provider with single logout")?;
    let sp = sp.as_ref();
    if response.version != "2.0" {
        return Err("only SAML 2.0");
    }
    if response
        .destination
        .as_deref()
        .is_some_and(|d| d != slo_url(tenant))
    {
        return Err("the response is for another destination");
    }
    if unix(&response.issue_instant).is_none_or(|t| (t - state.now()).abs() > ISSUE_WINDOW) {
        return Err("the response's IssueInstant is too far from now");
    }
    signed_by(
        &binding,
        "SAMLResponse",
        &xml,
        &response.id,
        response.signature.as_ref(),
        sp,
    )?;
    let in_response_to = response
        .in_response_to
        .ok_or("the LogoutResponse answers no request")?;
    Ok(ValidatedLogoutResponse {
        sp_entity_id: sp.entity_id.clone(),
        in_response_to,
        success: response.status.code.value == crate::response::saml::STATUS_SUCCESS,
        relay_state,
        _sealed: Sealed,
    })
}
