//! The tenant as a SAML 2.0 identity provider: its metadata (SAML metadata §2.4.3
//! `IDPSSODescriptor`), with the signing certificates of the RSA key that signs now and of the
//! one announced to sign next, so that service providers pick up a rotation ahead of time.

use crate::config::tenant::{SamlBinding, SamlNameIdFormat};
use crate::federation::saml::sp::xml_escape;
use crate::keys::ring::{KeySet, KeyState};
use crate::registry::Tenant;
use base64::Engine;

/// Where the tenant's SAML endpoints live, below its issuer.
pub const METADATA_PATH: &str = "/saml/metadata";
pub const SSO_PATH: &str = "/saml/sso";
pub const SLO_PATH: &str = "/saml/slo";

/// The tenant's IdP metadata document. Its entity id is the tenant's issuer; the endpoints are
/// offered with the HTTP-Redirect and HTTP-POST bindings.
pub fn idp_metadata(tenant: &Tenant, keys: &KeySet, want_signed_requests: bool) -> String {
    let issuer = xml_escape(&tenant.spec.issuer);
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" \
         xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"{issuer}\">\
         <md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         WantAuthnRequestsSigned=\"{want_signed_requests}\">"
    );
    for cert in keys
        .saml_certificates()
        .iter()
        .filter(|c| matches!(c.state, KeyState::Active | KeyState::Announced))
    {
        xml.push_str(&format!(
            "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:KeyName>{}</ds:KeyName>\
             <ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data>\
             </ds:KeyInfo></md:KeyDescriptor>",
            xml_escape(&cert.kid),
            base64::engine::general_purpose::STANDARD.encode(&cert.der)
        ));
    }
    for binding in [SamlBinding::Redirect, SamlBinding::Post] {
        xml.push_str(&format!(
            "<md:SingleLogoutService Binding=\"{}\" Location=\"{issuer}{SLO_PATH}\"/>",
            binding.urn()
        ));
    }
    for format in SamlNameIdFormat::ALL {
        xml.push_str(&format!(
            "<md:NameIDFormat>{}</md:NameIDFormat>",
            format.urn()
        ));
    }
    for binding in [SamlBinding::Redirect, SamlBinding::Post] {
        xml.push_str(&format!(
            "<md:SingleSignOnService Binding=\"{}\" Location=\"{issuer}{SSO_PATH}\"/>",
            binding.urn()
        ));
    }
    xml.push_str("</md:IDPSSODescriptor></md:EntityDescriptor>\n");
    xml
}

/// SAML core §3.2.2.2 status codes this IdP answers with.
pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
pub const STATUS_REQUESTER: &str = "urn:oasis:names:tc:SAML:2.0:status:Requester";
pub const STATUS_RESPONDER: &str = "urn:oasis:names:tc:SAML:2.0:status:Responder";
pub const STATUS_NO_PASSIVE: &str = "urn:oasis:names:tc:SAML:2.0:status:NoPassive";
pub const STATUS_REQUEST_DENIED: &str = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied";

/// SAML authn context §3.4: how the user signed in.
pub const AC_PASSWORD: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport";
/// REFEDS MFA profile: a second factor was used.
pub const AC_MFA: &str = "https://refeds.org/profile/mfa";
/// Signed in at another identity provider (named in `AuthenticatingAuthority`).
pub const AC_EXTERNAL: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified";

/// Who the assertion is about and how they signed in.
#[derive(Debug)]
pub struct Subject<'a> {
    pub name_id: &'a str,
    pub name_id_format: SamlNameIdFormat,
    /// The SSO session (`SessionIndex`, for single logout).
    pub session_index: &'a str,
    pub authn_instant: i64,
    pub authn_context: &'a str,
    /// The upstream issuer the user signed in at, if not here.
    pub authenticating_authority: Option<&'a str>,
    /// (name, NameFormat, FriendlyName, values)
    pub attributes: Vec<(&'a str, &'a str, Option<&'a str>, Vec<String>)>,
}

/// Where the Response goes and what it answers.
#[derive(Debug)]
pub struct Audience<'a> {
    pub sp_entity_id: &'a str,
    pub acs_url: &'a str,
    pub in_response_to: Option<&'a str>,
    pub sign_response: bool,
}

/// How long an assertion may be presented (SAML profiles §4.1.4.2: short).
const ASSERTION_LIFETIME: i64 = 300;

fn new_id() -> String {
    format!("_{}", crate::tokens::new_handle().replace(['-', '_'], "x"))
}

/// A successful Response (SAML core §3.3.3, profiles §4.1.4.2): a bearer assertion for the SP,
/// signed (and the Response too when the SP asks), as the base64 of the XML for the HTTP-POST
/// binding.
pub fn signed_response(
    tenant: &Tenant,
    keys: &KeySet,
    to: &Audience<'_>,
    who: &Subject<'_>,
    now: i64,
) -> Result<String, crate::error::InternalError> {
    use crate::federation::saml::sp::{instant, sign_enveloped_rsa};
    let fail = |e: crate::federation::saml::sp::SamlError| {
        crate::error::InternalError::Other(format!("SAML response: {e}"))
    };
    let (pkcs8, cert) = keys
        .saml_signing_key()
        .ok_or_else(|| crate::error::InternalError::Other("no SAML signing key".into()))?;
    let (issue, until) = (
        instant(now).map_err(fail)?,
        instant(now + ASSERTION_LIFETIME).map_err(fail)?,
    );
    let not_before = instant(now - 60).map_err(fail)?;
    let authn_instant = instant(who.authn_instant).map_err(fail)?;
    let issuer = xml_escape(&tenant.spec.issuer);
    let (response_id, assertion_id) = (new_id(), new_id());
    let in_response_to = to
        .in_response_to
        .map(|i| format!(" InResponseTo=\"{}\"", xml_escape(i)))
        .unwrap_or_default();
    let acs = xml_escape(to.acs_url);
    let audience = xml_escape(to.sp_entity_id);
    let mut attributes = String::new();
    if !who.attributes.is_empty() {
        attributes.push_str("<saml:AttributeStatement>");
        for (name, format, friendly, values) in &who.attributes {
            attributes.push_str(&format!(
                "<saml:Attribute Name=\"{}\" NameFormat=\"{}\"{}>",
                xml_escape(name),
                xml_escape(format),
                friendly
                    .map(|f| format!(" FriendlyName=\"{}\"", xml_escape(f)))
                    .unwrap_or_default()
            ));
            for v in values {
                attributes.push_str(&format!(
                    "<saml:AttributeValue xsi:type=\"xs:string\">{}</saml:AttributeValue>",
                    xml_escape(v)
                ));
            }
            attributes.push_str("</saml:Attribute>");
        }
        attributes.push_str("</saml:AttributeStatement>");
    }
    let authority = who
        .authenticating_authority
        .map(|a| {
            format!(
                "<saml:AuthenticatingAuthority>{}</saml:AuthenticatingAuthority>",
                xml_escape(a)
            )
        })
        .unwrap_or_default();
    let assertion = format!(
        "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" \
         xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         ID=\"{assertion_id}\" Version=\"2.0\" IssueInstant=\"{issue}\">\
         <saml:Issuer>{issuer}</saml:Issuer>{{signature}}\
         <saml:Subject><saml:NameID Format=\"{format}\" NameQualifier=\"{issuer}\" SPNameQualifier=\"{audience}\">{name_id}</saml:NameID>\
         <saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\">\
         <saml:SubjectConfirmationData NotOnOrAfter=\"{until}\" Recipient=\"{acs}\"{in_response_to}/>\
         </saml:SubjectConfirmation></saml:Subject>\
         <saml:Conditions NotBefore=\"{not_before}\" NotOnOrAfter=\"{until}\">\
         <saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions>\
         <saml:AuthnStatement AuthnInstant=\"{authn_instant}\" SessionIndex=\"{session}\">\
         <saml:AuthnContext><saml:AuthnContextClassRef>{context}</saml:AuthnContextClassRef>{authority}</saml:AuthnContext>\
         </saml:AuthnStatement>{attributes}</saml:Assertion>",
        format = who.name_id_format.urn(),
        name_id = xml_escape(who.name_id),
        session = xml_escape(who.session_index),
        context = xml_escape(who.authn_context),
    );
    let signed_assertion =
        sign_enveloped_rsa(&assertion, &assertion_id, pkcs8, cert).map_err(fail)?;
    let signed_assertion = strip_declaration(&signed_assertion);
    let response = format!(
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{response_id}\" Version=\"2.0\" \
         IssueInstant=\"{issue}\" Destination=\"{acs}\"{in_response_to}>\
         <saml:Issuer>{issuer}</saml:Issuer>{signature}\
         <samlp:Status><samlp:StatusCode Value=\"{STATUS_SUCCESS}\"/></samlp:Status>{signed_assertion}</samlp:Response>",
        signature = if to.sign_response { "{signature}" } else { "" },
    );
    let xml = if to.sign_response {
        sign_enveloped_rsa(&response, &response_id, pkcs8, cert).map_err(fail)?
    } else {
        response
    };
    Ok(base64::engine::general_purpose::STANDARD.encode(xml))
}

/// A Response that tells the SP why there is no assertion (SAML core §3.2.2.2), unsigned: it
/// grants nothing.
pub fn error_response(
    tenant: &Tenant,
    to: &Audience<'_>,
    status: &str,
    message: &str,
    now: i64,
) -> String {
    let issue = crate::federation::saml::sp::instant(now).unwrap_or_default();
    let in_response_to = to
        .in_response_to
        .map(|i| format!(" InResponseTo=\"{}\"", xml_escape(i)))
        .unwrap_or_default();
    // A second-level code under Requester/Responder where the status is one (§3.2.2.2).
    let (top, second) = match status {
        STATUS_NO_PASSIVE | STATUS_REQUEST_DENIED => (STATUS_RESPONDER, Some(status)),
        s => (s, None),
    };
    let inner = second
        .map(|s| format!("<samlp:StatusCode Value=\"{s}\"/>"))
        .unwrap_or_default();
    let xml = format!(
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" \
         IssueInstant=\"{issue}\" Destination=\"{acs}\"{in_response_to}>\
         <saml:Issuer>{issuer}</saml:Issuer><samlp:Status><samlp:StatusCode Value=\"{top}\">{inner}</samlp:StatusCode>\
         <samlp:StatusMessage>{message}</samlp:StatusMessage></samlp:Status></samlp:Response>",
        id = new_id(),
        acs = xml_escape(to.acs_url),
        issuer = xml_escape(&tenant.spec.issuer),
        message = xml_escape(message),
    );
    base64::engine::general_purpose::STANDARD.encode(xml)
}

fn strip_declaration(xml: &str) -> &str {
    match xml.trim_start().strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map_or(xml, |(_, r)| r.trim_start()),
        None => xml,
    }
}
