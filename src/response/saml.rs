//! The tenant as a SAML 2.0 identity provider: its metadata (SAML metadata §2.4.3
//! `IDPSSODescriptor`: single sign-on and single logout by HTTP-Redirect and HTTP-POST), with the signing certificates of the RSA key that signs now and of the
//! one announced to sign next, so that service providers pick up a rotation ahead of time.

use crate::config::tenant::{SamlBinding, SamlNameIdFormat};
use crate::federation::saml::sp::xml_escape;
use crate::keys::ring::{KeySet, KeyState};
use crate::registry::Tenant;
use base64::Engine;

/// Where the tenant's SAML endpoints live, below its issuer.
pub const METADATA_PATH: &str = "/saml/metadata";
pub const SSO_PATH: &str = "/saml/sso";

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
    // SAML metadata §2.4.2 / §2.4.3: SingleLogoutService precedes NameIDFormat, which
    // precedes SingleSignOnService.
    let slo = super::saml_logout::SLO_PATH;
    let mut endpoints = String::new();
    for binding in [SamlBinding::Redirect, SamlBinding::Post] {
        xml.push_str(&format!(
            "<md:SingleLogoutService Binding=\"{}\" Location=\"{issuer}{slo}\"/>",
            binding.urn()
        ));
        endpoints.push_str(&format!(
            "<md:SingleSignOnService Binding=\"{}\" Location=\"{issuer}{SSO_PATH}\"/>",
            binding.urn()
        ));
    }
    for format in SamlNameIdFormat::ALL {
        xml.push_str(&format!(
            "<md:NameIDFormat>{}</md:NameIDFormat>",
            format.urn()
        ));
    }
    xml.push_str(&endpoints);
    xml.push_str("</md:IDPSSODescriptor></md:EntityDescriptor>\n");
    xml
}

/// SAML core §3.2.2.2 status codes this IdP answers with.
pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
pub const STATUS_REQUESTER: &str = "urn:oasis:names:tc:SAML:2.0:status:Requester";
pub const STATUS_RESPONDER: &str = "urn:oasis:names:tc:SAML:2.0:status:Responder";
pub const STATUS_NO_PASSIVE: &str = "urn:oasis:names:tc:SAML:2.0:status:NoPassive";
pub const STATUS_REQUEST_DENIED: &str = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied";
pub const STATUS_NO_AUTHN_CONTEXT: &str = "urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext";
pub const STATUS_INVALID_NAME_ID_POLICY: &str =
    "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy";
pub const STATUS_PARTIAL_LOGOUT: &str = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout";

/// SAML authn context §3.4: how the user signed in.
pub const AC_PASSWORD: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport";
/// REFEDS MFA profile: a second factor was used.
pub const AC_MFA: &str = "https://refeds.org/profile/mfa";
/// Signed in at another identity provider (named in `AuthenticatingAuthority`) that did not
/// say how.
pub const AC_EXTERNAL: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified";
/// SAML authn context §3.4.19: a password over an unprotected channel (requested by some SPs;
/// met by any password sign-in here, all of which are over TLS).
const AC_PASSWORD_PLAIN: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:Password";

/// The classes this IdP issues, weakest first: their ranks are the indexes.
const CONTEXTS: [&str; 3] = [AC_EXTERNAL, AC_PASSWORD, AC_MFA];
pub const CONTEXT_RANKS: [u8; 3] = [0, 1, 2];

/// The rank of a class this IdP can issue (for RequestedAuthnContext comparisons, SAML core
/// §3.3.2.2.1); `None` for any other.
pub fn context_rank(class: &str) -> Option<u8> {
    match class {
        AC_PASSWORD_PLAIN => Some(1),
        c => CONTEXTS
            .iter()
            .position(|k| *k == c)
            .and_then(|i| u8::try_from(i).ok()),
    }
}

/// The ranks a session's sign-in truly meets: a local one its own (MFA also counts as a
/// password sign-in); an upstream one what the upstream reported in `amr` (RFC 8176), or only
/// "unspecified".
fn session_contexts(session: &SessionRecord) -> Vec<u8> {
    if session.idp == crate::federation::LOCAL {
        return if session.acr == crate::sessions::ACR_MFA {
            vec![1, 2]
        } else {
            vec![1]
        };
    }
    let amr: Vec<&str> = session.amr.split(' ').collect();
    let mut out = vec![0];
    if amr.contains(&"pwd") {
        out.push(1);
    }
    if amr
        .iter()
        .any(|a| matches!(*a, "mfa" | "otp" | "hwk" | "swk" | "sms"))
    {
        out.push(2);
    }
    out
}

/// The class an assertion states. Unasked: password or MFA for a local sign-in, "unspecified"
/// for an upstream one (with `AuthenticatingAuthority`). Asked (RequestedAuthnContext): the
/// strongest the session meets among those accepted, an upstream's as its `amr` reports.
fn issued_context(session: &SessionRecord, accepted: Option<&[u8]>) -> Option<&'static str> {
    let rank = match accepted {
        None if session.idp != crate::federation::LOCAL => 0,
        None => session_contexts(session).into_iter().max()?,
        Some(a) => session_contexts(session)
            .into_iter()
            .filter(|r| a.contains(r))
            .max()?,
    };
    CONTEXTS.get(usize::from(rank)).copied()
}

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
    /// The SP's encryption certificate (PEM): the signed assertion goes out encrypted to it.
    pub encrypt_to: Option<&'a str>,
}

/// How long an assertion may be presented (SAML profiles §4.1.4.2: short).
const ASSERTION_LIFETIME: i64 = 300;

pub(crate) fn new_id() -> String {
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
    use crate::keys::xmldsig::{c14n_attr as attr, c14n_text as text, enveloped_signature};
    let fail = |e: crate::federation::saml::sp::SamlError| {
        crate::error::InternalError::Other(format!("SAML response: {e}"))
    };
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
    // The assertion is written as Exclusive C14N prints it (keys::xmldsig), so that its signature
    // is made over this very text: attributes in canonical order, no empty-element tags, C14N
    // escaping; it differs from its canonical form only where namespaces are declared (below).
    let c_irt = match to.in_response_to {
        Some(i) => format!(" InResponseTo=\"{}\"", attr(i)?),
        None => String::new(),
    };
    let (c_issuer, c_audience) = (text(&tenant.spec.issuer)?, text(to.sp_entity_id)?);
    let (c_issuer_attr, c_audience_attr) = (attr(&tenant.spec.issuer)?, attr(to.sp_entity_id)?);
    // Exclusive C14N §3 declares a namespace where it is visibly utilized: xsi on every
    // AttributeValue (its xsi:type), xs nowhere (it is only named inside a value). The document
    // declares both once, on the assertion.
    let attribute_statement = |value_ns: &str| -> Result<String, crate::error::InternalError> {
        if who.attributes.is_empty() {
            return Ok(String::new());
        }
        let mut out = String::from("<saml:AttributeStatement>");
        for (name, format, friendly, values) in &who.attributes {
            let friendly = match friendly {
                Some(f) => format!(" FriendlyName=\"{}\"", attr(f)?),
                None => String::new(),
            };
            out.push_str(&format!(
                "<saml:Attribute{friendly} Name=\"{}\" NameFormat=\"{}\">",
                attr(name)?,
                attr(format)?,
            ));
            for v in values {
                out.push_str(&format!(
                    "<saml:AttributeValue{value_ns} xsi:type=\"xs:string\">{}</saml:AttributeValue>",
                    text(v)?
                ));
            }
            out.push_str("</saml:Attribute>");
        }
        out.push_str("</saml:AttributeStatement>");
        Ok(out)
    };
    let authority = match who.authenticating_authority {
        Some(a) => format!(
            "<saml:AuthenticatingAuthority>{}</saml:AuthenticatingAuthority>",
            text(a)?
        ),
        None => String::new(),
    };
    let (c_acs, c_name_id, c_session, c_context) = (
        attr(to.acs_url)?,
        text(who.name_id)?,
        attr(who.session_index)?,
        text(who.authn_context)?,
    );
    let assertion = |root_ns: &str, attributes: &str, signature: &str| {
        format!(
            "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\"{root_ns} \
             ID=\"{assertion_id}\" IssueInstant=\"{issue}\" Version=\"2.0\">\
             <saml:Issuer>{c_issuer}</saml:Issuer>{signature}\
             <saml:Subject><saml:NameID Format=\"{format}\" NameQualifier=\"{c_issuer_attr}\" SPNameQualifier=\"{c_audience_attr}\">{c_name_id}</saml:NameID>\
             <saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\">\
             <saml:SubjectConfirmationData{c_irt} NotOnOrAfter=\"{until}\" Recipient=\"{c_acs}\"></saml:SubjectConfirmationData>\
             </saml:SubjectConfirmation></saml:Subject>\
             <saml:Conditions NotBefore=\"{not_before}\" NotOnOrAfter=\"{until}\">\
             <saml:AudienceRestriction><saml:Audience>{c_audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions>\
             <saml:AuthnStatement AuthnInstant=\"{authn_instant}\" SessionIndex=\"{c_session}\">\
             <saml:AuthnContext><saml:AuthnContextClassRef>{c_context}</saml:AuthnContextClassRef>{authority}</saml:AuthnContext>\
             </saml:AuthnStatement>{attributes}</saml:Assertion>",
            format = who.name_id_format.urn(),
        )
    };
    let doc_ns = " xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" \
                  xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"";
    let doc_attributes = attribute_statement("")?;
    let signed_assertion = match keys.saml_signer() {
        // The tenant's loaded RS256 key: no key parsed, no XML parsed.
        Some((signer, cert)) => {
            let canonical = assertion(
                "",
                &attribute_statement(" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"")?,
                "",
            );
            let signature = enveloped_signature(signer, cert, &assertion_id, &canonical)?;
            assertion(doc_ns, &doc_attributes, &signature)
        }
        // A SAML key that no longer signs JWTs (RS256 left the tenant's algorithms): xmlsec.
        None => {
            let (pkcs8, cert) = keys
                .saml_signing_key()
                .ok_or_else(|| crate::error::InternalError::Other("no SAML signing key".into()))?;
            let template = assertion(doc_ns, &doc_attributes, "{signature}");
            let signed = sign_enveloped_rsa(&template, &assertion_id, pkcs8, cert).map_err(fail)?;
            strip_declaration(&signed).to_string()
        }
    };
    let signed_assertion = signed_assertion.as_str();
    let encrypted;
    let signed_assertion = match to.encrypt_to {
        Some(cert) => {
            encrypted = encrypt_assertion(signed_assertion, cert)?;
            encrypted.as_str()
        }
        None => signed_assertion,
    };
    let response = format!(
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{response_id}\" Version=\"2.0\" \
         IssueInstant=\"{issue}\" Destination=\"{acs}\"{in_response_to}>\
         <saml:Issuer>{issuer}</saml:Issuer>{signature}\
         <samlp:Status><samlp:StatusCode Value=\"{STATUS_SUCCESS}\"/></samlp:Status>{signed_assertion}</samlp:Response>",
        signature = if to.sign_response { "{signature}" } else { "" },
    );
    let xml = if to.sign_response {
        let (pkcs8, cert) = keys
            .saml_signing_key()
            .ok_or_else(|| crate::error::InternalError::Other("no SAML signing key".into()))?;
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
    let (top, second) = second_level(status);
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

/// SAML core §3.2.2.2: a second-level code goes under the top-level one that fits it.
pub fn second_level(status: &str) -> (&str, Option<&str>) {
    match status {
        STATUS_NO_PASSIVE | STATUS_REQUEST_DENIED | STATUS_NO_AUTHN_CONTEXT => {
            (STATUS_RESPONDER, Some(status))
        }
        STATUS_INVALID_NAME_ID_POLICY => (STATUS_REQUESTER, Some(status)),
        STATUS_PARTIAL_LOGOUT => (STATUS_SUCCESS, Some(status)),
        s => (s, None),
    }
}

/// SAML core §2.3.4 `EncryptedAssertion` (XML Encryption 1.1): the signed assertion under a
/// fresh AES-256-GCM key (§5.2.4: IV ‖ ciphertext ‖ tag), the key under the SP's RSA key with
/// RSA-OAEP (§5.5.2, MGF1 with SHA-1).
fn encrypt_assertion(
    assertion: &str,
    sp_cert_pem: &str,
) -> Result<String, crate::error::InternalError> {
    use openssl::symm::{Cipher, encrypt_aead};
    let fail = |_| crate::error::InternalError::Crypto("assertion encryption");
    let cert = openssl::x509::X509::from_pem(sp_cert_pem.as_bytes()).map_err(fail)?;
    let rsa = cert.public_key().and_then(|k| k.rsa()).map_err(fail)?;
    let key: [u8; 32] = crate::secrets::random_bytes();
    let iv: [u8; 12] = crate::secrets::random_bytes();
    let mut tag = [0u8; 16];
    let ciphertext = encrypt_aead(
        Cipher::aes_256_gcm(),
        &key,
        Some(&iv),
        &[],
        assertion.as_bytes(),
        &mut tag,
    )
    .map_err(fail)?;
    let mut value = iv.to_vec();
    value.extend_from_slice(&ciphertext);
    value.extend_from_slice(&tag);
    let mut wrapped = vec![0u8; usize::try_from(rsa.size()).unwrap_or(512)];
    let n = rsa
        .public_encrypt(&key, &mut wrapped, openssl::rsa::Padding::PKCS1_OAEP)
        .map_err(fail)?;
    wrapped.truncate(n);
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    Ok(format!(
        "<saml:EncryptedAssertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\">\
         <xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\" \
         Type=\"http://www.w3.org/2001/04/xmlenc#Element\">\
         <xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2009/xmlenc11#aes256-gcm\"/>\
         <ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><xenc:EncryptedKey>\
         <xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p\">\
         <ds:DigestMethod Algorithm=\"http://www.w3.org/2000/09/xmldsig#sha1\"/></xenc:EncryptionMethod>\
         <xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>\
         <xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData>\
         </saml:EncryptedAssertion>",
        b64(&wrapped),
        b64(&value)
    ))
}

fn strip_declaration(xml: &str) -> &str {
    match xml.trim_start().strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map_or(xml, |(_, r)| r.trim_start()),
        None => xml,
    }
}

// ---------------------------------------------------------------------------------------------
// The end of a SAML sign-in: a Response posted to the SP's ACS

use super::authorize::{Away, Flow, SamlStep};
use crate::config::Client;
use crate::config::tenant::SamlSp;
use crate::stores::{SessionRecord, SessionStore};
use crate::ui::{FormPostPage, Page};
use crate::validation::authorize::ValidatedAuthorize;
use axum::http::{StatusCode, header};
use axum::response::Response;

impl Flow<'_> {
    /// An AuthnRequest was accepted: the sign-in that answers it begins (sign-in if needed,
    /// consent if the SP's registration asks for it, then the Response).
    pub async fn begin_saml(
        mut self,
        client: &Client,
        request: ValidatedAuthorize,
        session: Option<SessionRecord>,
        step: SamlStep,
    ) -> Response {
        let (id, interaction) = match self
            .begin_interaction(request.clone(), Some(Away::Saml(step)))
            .await
        {
            Ok(x) => x,
            Err(e) => return self.internal(e),
        };
        self.proceed(client, request, session, Some((id, interaction)))
            .await
    }

    /// The user is signed in (and consented where asked): the signed Response goes to the ACS.
    pub(super) async fn saml_decided(self, step: &SamlStep, session: &SessionRecord) -> Response {
        let sp = match crate::saml::service_provider(self.state, self.tenant, &step.entity_id).await
        {
            Ok(sp) => sp,
            Err(e) => return self.internal(e),
        };
        let Some(sp) = sp.as_deref() else {
            return self.saml_refused(
                step,
                STATUS_REQUEST_DENIED,
                "the SP is no longer registered",
            );
        };
        // SAML profiles §4.1.5: unsolicited only while the SP's registration opts in.
        if step.request_id.is_none() && !(sp.allow_idp_initiated && sp.enabled) {
            return self.saml_refused(
                step,
                STATUS_REQUEST_DENIED,
                "the SP does not accept IdP-initiated sign-in",
            );
        }
        let user = match crate::users::directory::by_subject(
            &self.state.store,
            self.tenant,
            &session.subject,
        )
        .await
        {
            Ok(Some(u)) if u.enabled => u,
            Ok(_) => return self.saml_refused(step, STATUS_REQUEST_DENIED, "the user is disabled"),
            Err(e) => return self.internal(e),
        };
        let name_id = match name_id(self.state, self.tenant, sp, &user, &session.sid) {
            Some(n) => n,
            None => {
                return self.saml_refused(
                    step,
                    STATUS_INVALID_NAME_ID_POLICY,
                    "the user has no value for this SP's NameID format",
                );
            }
        };
        let attributes = sp
            .attributes
            .iter()
            .filter_map(|a| {
                let values = claim_values(user.claims.get(&a.claim)?);
                (!values.is_empty()).then_some((
                    a.name.as_str(),
                    a.name_format.as_str(),
                    a.friendly_name.as_deref(),
                    values,
                ))
            })
            .collect();
        let external = session.idp != crate::federation::LOCAL;
        let Some(authn_context) = issued_context(session, step.accepted_contexts.as_deref()) else {
            return self.saml_refused(
                step,
                STATUS_NO_AUTHN_CONTEXT,
                "the sign-in does not meet the requested authentication context",
            );
        };
        let who = Subject {
            name_id: &name_id,
            name_id_format: sp.name_id_format,
            session_index: &session.sid,
            authn_instant: session.auth_time,
            authn_context,
            authenticating_authority: external.then_some(session.idp.as_str()),
            attributes,
        };
        let to = Audience {
            sp_entity_id: &sp.entity_id,
            acs_url: &step.acs_url,
            in_response_to: step.request_id.as_deref(),
            sign_response: sp.sign_response,
            encrypt_to: sp
                .encryption_certificate
                .as_deref()
                .filter(|_| sp.encrypt_assertions),
        };
        // The session's participants hear of its end (single logout, SAML profiles §4.4).
        let now = self.state.now();
        if !session.client_ids().any(|c| c == sp.entity_id)
            && let Err(e) = self
                .state
                .store
                .touch_session(self.tenant.slug(), &session.sid, now, Some(&sp.entity_id))
                .await
        {
            return self.internal(e);
        }
        let keys = self.tenant.keys.load();
        let response = match signed_response(self.tenant, &keys, &to, &who, now) {
            Ok(r) => r,
            Err(e) => return self.internal(e),
        };
        crate::events::saml_response_issued(
            self.tenant.slug(),
            &sp.entity_id,
            &self.ctx.request_id,
            &session.subject,
        );
        self.post_to_acs(step, response)
    }

    /// A SAML error Response to the ACS (SAML core §3.2.2.2): no assertion, a security event.
    pub fn saml_refused(self, step: &SamlStep, status: &str, message: &str) -> Response {
        crate::events::request_rejected(
            self.tenant.slug(),
            "saml",
            &self.ctx.request_id,
            status,
            message,
        );
        let to = Audience {
            sp_entity_id: &step.entity_id,
            acs_url: &step.acs_url,
            in_response_to: step.request_id.as_deref(),
            sign_response: false,
            encrypt_to: None,
        };
        let response = error_response(self.tenant, &to, status, message, self.state.now());
        self.post_to_acs(step, response)
    }

    /// SAML bindings §3.5.4: an auto-submitting form (with a button where scripts do not run).
    fn post_to_acs(self, step: &SamlStep, saml_response: String) -> Response {
        let mut fields = vec![("SAMLResponse".to_string(), saml_response)];
        if let Some(r) = &step.relay_state {
            fields.push(("RelayState".to_string(), r.clone()));
        }
        let mut response = self.tenant.pages.render(
            &Page::FormPost(FormPostPage {
                action: step.acs_url.clone(),
                fields,
            }),
            StatusCode::OK,
        );
        for c in self.cookies {
            response.headers_mut().append(header::SET_COOKIE, c);
        }
        response
    }
}

/// The user's NameID for `sp` in its format: persistent ones are opaque and pairwise
/// (`MasterKey::pairwise_id`), transient ones opaque and pairwise per session `sid` (so that a
/// LogoutRequest can name the session's); `None` when the user lacks the value (an email).
pub(crate) fn name_id(
    state: &crate::state::AppState,
    tenant: &Tenant,
    sp: &SamlSp,
    user: &crate::config::tenant::UserSpec,
    sid: &str,
) -> Option<String> {
    match sp.name_id_format {
        SamlNameIdFormat::Persistent => Some(state.master.pairwise_id(
            tenant.slug(),
            &sp.entity_id,
            &user.subject,
        )),
        SamlNameIdFormat::Email => user
            .claims
            .get("email")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string),
        SamlNameIdFormat::Transient => Some(format!(
            "_{}",
            state.master.pairwise_id(
                tenant.slug(),
                &sp.entity_id,
                &format!("{}\0{sid}", user.subject)
            )
        )),
        SamlNameIdFormat::Unspecified => Some(user.subject.clone()),
    }
}

/// A claim as attribute values: a string, a number or boolean in JSON, or each of an array's.
fn claim_values(v: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Number(_) | Value::Bool(_) => vec![v.to_string()],
        Value::Array(list) => list.iter().flat_map(claim_values).collect(),
        _ => Vec::new(),
    }
}
