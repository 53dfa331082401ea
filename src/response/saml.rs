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
