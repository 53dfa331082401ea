//! SAML 2.0 AuthnRequests at `/{slug}/saml/sso` (SAML core §3.4.1), by the HTTP-Redirect
//! (bindings §3.4) or the HTTP-POST binding (§3.5). Size-bounded, no DTD or entity, from a
//! registered SP, to a registered ACS only, for this endpoint, recent, signed where the SP's
//! registration has a signing certificate, and used once.
//!
//! Until the ACS is known and trusted, a refusal is an error page; after, it is a SAML error
//! Response to that ACS ([`Refusal::ToAcs`]).

use crate::config::tenant::{SamlAcs, SamlBinding, SamlNameIdFormat, SamlSp};
use crate::error::{InternalError, OAuthError};
use crate::registry::Tenant;
use crate::state::AppState;
use base64::Engine;
use std::io::Read;

/// The longest SAMLRequest read, encoded and decoded.
const MAX_MESSAGE: usize = 64 * 1024;
/// SAML bindings §3.4.3 / §3.5.3: RelayState is at most 80 bytes.
const MAX_RELAY_STATE: usize = 80;
/// How far IssueInstant may be from now (clock skew and the user's round trip).
const ISSUE_WINDOW: i64 = 300;

const SIG_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const SIG_RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";

/// How the request arrived.
#[derive(Debug)]
pub enum Binding<'a> {
    /// The query string as received (its encoded values are what the signature covers).
    Redirect(&'a str),
    /// The form's `SAMLRequest` (or `SAMLResponse`) and `RelayState`.
    Post {
        message: Option<&'a str>,
        relay_state: Option<&'a str>,
    },
}

/// An AuthnRequest that passed every check. Only [`validate`] builds one.
#[derive(Debug, Clone)]
pub struct ValidatedSamlRequest {
    sp: SamlSp,
    acs: SamlAcs,
    request_id: String,
    relay_state: Option<String>,
    force_authn: bool,
    is_passive: bool,
    accepted_contexts: Option<Vec<u8>>,
}

impl ValidatedSamlRequest {
    pub fn sp(&self) -> &SamlSp {
        &self.sp
    }
    pub fn acs(&self) -> &SamlAcs {
        &self.acs
    }
    pub fn request_id(&self) -> &str {
        &self.request_id
    }
    pub fn relay_state(&self) -> Option<&str> {
        self.relay_state.as_deref()
    }
    /// SAML core §3.4.1: the user must sign in again.
    pub fn force_authn(&self) -> bool {
        self.force_authn
    }
    /// SAML core §3.4.1: the IdP must not show a page.
    pub fn is_passive(&self) -> bool {
        self.is_passive
    }
    /// SAML core §3.3.2.2.1: the context ranks the SP accepts; `None`: any.
    pub fn accepted_contexts(&self) -> Option<&[u8]> {
        self.accepted_contexts.as_deref()
    }
}

/// Why a request was refused.
#[derive(Debug)]
pub enum Refusal {
    /// Before the SP and its ACS are trusted: an error page.
    Page(OAuthError),
    /// A SAML error Response to the registered ACS (SAML core §3.2.2.2 status).
    ToAcs {
        acs_url: String,
        sp_entity_id: String,
        in_response_to: String,
        relay_state: Option<String>,
        status: &'static str,
        message: &'static str,
    },
    Internal(InternalError),
}

impl From<InternalError> for Refusal {
    fn from(e: InternalError) -> Self {
        Refusal::Internal(e)
    }
}

fn page(message: &'static str) -> Refusal {
    Refusal::Page(OAuthError::invalid_request(message))
}

/// The raw (still percent-encoded) value of `name` in a query string.
fn raw_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

fn url_decode(raw: &str) -> Option<String> {
    form_urlencoded::parse(format!("v={raw}").as_bytes())
        .map(|(_, v)| v.into_owned())
        .next()
}

/// A protocol message as it arrived: its XML and RelayState.
pub(crate) struct Decoded {
    pub xml: String,
    pub relay_state: Option<String>,
}

/// SAML bindings §3.4.4.1 / §3.5.4: the message `param` (`SAMLRequest`, `SAMLResponse`) read
/// from the query (DEFLATE, base64) or the form (base64), size-bounded, UTF-8, without a DTD
/// (hence without any entity, internal or external).
pub(crate) fn decode(binding: &Binding<'_>, param: &str) -> Result<Decoded, &'static str> {
    let (encoded, relay_state) = match binding {
        Binding::Redirect(q) => (
            raw_param(q, param).and_then(url_decode),
            raw_param(q, "RelayState").and_then(url_decode),
        ),
        Binding::Post {
            message,
            relay_state,
        } => (message.map(str::to_string), relay_state.map(str::to_string)),
    };
    let encoded = encoded.ok_or("the SAML message is missing")?;
    if encoded.len() > MAX_MESSAGE {
        return Err("the SAML message is too large");
    }
    if relay_state
        .as_ref()
        .is_some_and(|r| r.len() > MAX_RELAY_STATE)
    {
        return Err("RelayState is longer than 80 bytes (SAML bindings §3.4.3)");
    }
    let compact: String = encoded
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| "the SAML message is not base64")?;
    let xml_bytes = match binding {
        // SAML bindings §3.4.4.1: DEFLATE (RFC 1951), read no further than the limit.
        Binding::Redirect(_) => {
            let mut out = Vec::new();
            flate2::read::DeflateDecoder::new(bytes.as_slice())
                .take(MAX_MESSAGE as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|_| "the SAML message does not inflate")?;
            out
        }
        Binding::Post { .. } => bytes,
    };
    if xml_bytes.len() > MAX_MESSAGE {
        return Err("the SAML message is too large");
    }
    let xml = String::from_utf8(xml_bytes).map_err(|_| "the SAML message is not UTF-8")?;
    let upper = xml.to_ascii_uppercase();
    if upper.contains("<!DOCTYPE") || upper.contains("<!ENTITY") {
        return Err("a SAML message with a DOCTYPE is refused");
    }
    Ok(Decoded { xml, relay_state })
}

/// Validates an AuthnRequest; refusals after the SP is known are security events (with
/// `request_id`, the id of the HTTP request).
pub async fn validate(
    state: &AppState,
    tenant: &Tenant,
    request_id: &str,
    binding: Binding<'_>,
) -> Result<ValidatedSamlRequest, Refusal> {
    let Decoded { xml, relay_state } = decode(&binding, "SAMLRequest").map_err(page)?;
    let request: samael::schema::AuthnRequest = xml
        .parse()
        .map_err(|_| page("the SAMLRequest is not an AuthnRequest"))?;
    let issuer = request
        .issuer
        .as_ref()
        .and_then(|i| i.value.as_deref())
        .ok_or_else(|| page("the AuthnRequest names no Issuer"))?;
    let Some(sp) = crate::saml::service_provider(state, tenant, issuer).await? else {
        return Err(page(
            "the AuthnRequest's Issuer is not a service provider of this tenant",
        ));
    };
    // SAML core §3.4.1: the ACS by URL or by index, else the SP's default; only a registered
    // one, and only with the HTTP-POST binding (the Response is posted).
    let acs = match (
        &request.assertion_consumer_service_url,
        request.assertion_consumer_service_index,
    ) {
        (Some(url), None) => sp.acs.iter().find(|a| &a.url == url),
        (None, Some(i)) => sp.acs.iter().find(|a| usize::from(a.index) == i),
        (None, None) => sp.acs.iter().find(|a| a.default).or(sp.acs.first()),
        (Some(_), Some(_)) => {
            return Err(page(
                "AssertionConsumerServiceURL and AssertionConsumerServiceIndex are mutually exclusive",
            ));
        }
    }
    .ok_or_else(|| page("the assertion consumer service is not registered for this SP"))?;
    if acs.binding != SamlBinding::Post
        || request
            .protocol_binding
            .as_deref()
            .is_some_and(|b| b != SamlBinding::Post.urn())
    {
        return Err(page("responses are sent with the HTTP-POST binding only"));
    }
    let to_acs = |status: &'static str, message: &'static str| Refusal::ToAcs {
        acs_url: acs.url.clone(),
        sp_entity_id: sp.entity_id.clone(),
        in_response_to: request.id.clone(),
        relay_state: relay_state.clone(),
        status,
        message,
    };
    use crate::response::saml::STATUS_REQUESTER;
    let sso = format!("{}{}", tenant.spec.issuer, crate::response::saml::SSO_PATH);
    if request.destination.as_deref().is_some_and(|d| d != sso) {
        return Err(to_acs(
            STATUS_REQUESTER,
            "the request is for another destination",
        ));
    }
    let now = state.now();
    if (request.issue_instant.timestamp() - now).abs() > ISSUE_WINDOW {
        return Err(to_acs(
            STATUS_REQUESTER,
            "the request's IssueInstant is too far from now",
        ));
    }
    if request.id.is_empty() || request.id.len() > 256 {
        return Err(to_acs(STATUS_REQUESTER, "the request has no usable ID"));
    }
    if let Some(cert) = &sp.signing_certificate {
        // SAML bindings §3.4.5.2 / §3.5.5.2: a signed request names its Destination.
        if request.destination.is_none() {
            return Err(to_acs(
                STATUS_REQUESTER,
                "a signed request must name its Destination",
            ));
        }
        let checked = match binding {
            Binding::Redirect(q) => redirect_signature(q, "SAMLRequest", cert, sp.allow_sha1),
            Binding::Post { .. } => enveloped_signature(
                &xml,
                &request.id,
                request.signature.as_ref(),
                cert,
                sp.allow_sha1,
            ),
        };
        if let Err(why) = checked {
            tracing::warn!(target: "security", event = "saml_request_refused", tenant = %tenant.slug(), request_id, sp = %sp.entity_id, reason = why);
            return Err(to_acs(
                STATUS_REQUESTER,
                "the request's signature is missing or wrong",
            ));
        }
    }
    if let Some(format) = request
        .name_id_policy
        .as_ref()
        .and_then(|p| p.format.as_deref())
        && format != SamlNameIdFormat::Unspecified.urn()
        && format != sp.name_id_format.urn()
    {
        return Err(to_acs(
            crate::response::saml::STATUS_INVALID_NAME_ID_POLICY,
            "this SP is sent another NameID format",
        ));
    }
    let accepted_contexts = match request.requested_authn_context.as_ref() {
        None => None,
        Some(r) => Some(accepted_contexts(r).ok_or_else(|| {
            to_acs(
                crate::response::saml::STATUS_NO_AUTHN_CONTEXT,
                "no authentication context this IdP offers meets the request",
            )
        })?),
    };
    if !first_use(
        state,
        tenant,
        "saml-authn-request",
        &sp.entity_id,
        &request.id,
    )
    .await?
    {
        return Err(to_acs(STATUS_REQUESTER, "the request was used before"));
    }
    Ok(ValidatedSamlRequest {
        sp: SamlSp::clone(&sp),
        acs: acs.clone(),
        request_id: request.id.clone(),
        relay_state,
        force_authn: request.force_authn.unwrap_or(false),
        is_passive: request.is_passive.unwrap_or(false),
        accepted_contexts,
    })
}

/// SAML core §3.3.2.2.1: the ranks (`response::saml::context_rank`) of the classes this IdP
/// issues that meet a RequestedAuthnContext; `None` when none does (NoAuthnContext). Classes
/// this IdP never issues are ignored; declaration references cannot be met.
fn accepted_contexts(r: &samael::schema::RequestedAuthnContext) -> Option<Vec<u8>> {
    use crate::response::saml::{CONTEXT_RANKS, context_rank};
    use samael::schema::AuthnContextComparison as C;
    let known: Vec<u8> = r
        .authn_context_class_refs
        .iter()
        .flatten()
        .filter_map(|c| c.value.as_deref().and_then(context_rank))
        .collect();
    let (low, high) = (known.iter().min()?, known.iter().max()?);
    let accepted: Vec<u8> = CONTEXT_RANKS
        .into_iter()
        .filter(|rank| match r.comparison.as_ref().unwrap_or(&C::Exact) {
            C::Exact => known.contains(rank),
            C::Minimum => rank >= low,
            C::Better => rank > low,
            C::Maximum => rank <= high,
        })
        .collect();
    (!accepted.is_empty()).then_some(accepted)
}

/// Records that `sp` sent the message `id` (of kind `what`); false if it was seen before.
/// Single use for longer than the message could be accepted (its IssueInstant window), on every
/// node: in this node's memory of single-use values, and on PostgreSQL in the store as well.
pub(crate) async fn first_use(
    state: &AppState,
    tenant: &Tenant,
    what: &str,
    entity_id: &str,
    id: &str,
) -> Result<bool, InternalError> {
    let key = format!("saml\0{what}\0{entity_id}\0{id}");
    state
        .first_use(tenant.slug(), &key, state.now() + 2 * ISSUE_WINDOW + 60)
        .await
}

fn public_key(cert_pem: &str) -> Result<openssl::pkey::PKey<openssl::pkey::Public>, &'static str> {
    openssl::x509::X509::from_pem(cert_pem.as_bytes())
        .and_then(|c| c.public_key())
        .map_err(|_| "the SP's certificate cannot be read")
}

/// SAML bindings §3.4.4.1: the signature over `SAMLRequest=…&RelayState=…&SigAlg=…` (or
/// `SAMLResponse=…`), the values exactly as they were sent.
pub(crate) fn redirect_signature(
    query: &str,
    param: &str,
    cert_pem: &str,
    allow_sha1: bool,
) -> Result<(), &'static str> {
    let sig_alg_raw = raw_param(query, "SigAlg").ok_or("no SigAlg")?;
    let sig_alg = url_decode(sig_alg_raw).ok_or("SigAlg is malformed")?;
    let digest = match sig_alg.as_str() {
        SIG_RSA_SHA256 => openssl::hash::MessageDigest::sha256(),
        SIG_RSA_SHA1 if allow_sha1 => openssl::hash::MessageDigest::sha1(),
        SIG_RSA_SHA1 => return Err("SHA-1 signatures are not accepted from this SP"),
        _ => return Err("the signature algorithm is not accepted"),
    };
    let signature = raw_param(query, "Signature")
        .and_then(url_decode)
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .ok_or("no Signature")?;
    let mut signed = format!("{param}={}", raw_param(query, param).unwrap_or_default());
    if let Some(r) = raw_param(query, "RelayState") {
        signed.push_str(&format!("&RelayState={r}"));
    }
    signed.push_str(&format!("&SigAlg={sig_alg_raw}"));
    let key = public_key(cert_pem)?;
    let mut verifier = openssl::sign::Verifier::new(digest, &key).map_err(|_| "verifier")?;
    verifier.update(signed.as_bytes()).map_err(|_| "verifier")?;
    match verifier.verify(&signature) {
        Ok(true) => Ok(()),
        _ => Err("the query signature does not verify with the SP's certificate"),
    }
}

/// SAML bindings §3.5.4: an enveloped signature of the message itself (its Reference is the
/// root's ID, `root_id`, and it is the only signature), verified with the SP's certificate.
pub(crate) fn enveloped_signature(
    xml: &str,
    root_id: &str,
    signature: Option<&samael::signature::Signature>,
    cert_pem: &str,
    allow_sha1: bool,
) -> Result<(), &'static str> {
    let signature = signature.ok_or("the message is not signed")?;
    let reference = signature
        .signed_info
        .reference
        .first()
        .and_then(|r| r.uri.as_deref());
    if signature.signed_info.reference.len() != 1 || reference != Some(&format!("#{root_id}")) {
        return Err("the signature does not cover the message");
    }
    if xml.matches("SignatureValue>").count() > 2 {
        return Err("more than one signature");
    }
    use samael::signature::SignatureAlgorithm;
    match &signature.signed_info.signature_method.algorithm {
        SignatureAlgorithm::RsaSha256 | SignatureAlgorithm::Sha256RsaMGF1 => {}
        SignatureAlgorithm::Unsupported(a) if a == SIG_RSA_SHA1 && allow_sha1 => {}
        SignatureAlgorithm::Unsupported(a) if a == SIG_RSA_SHA1 => {
            return Err("SHA-1 signatures are not accepted from this SP");
        }
        _ => return Err("the signature algorithm is not accepted"),
    }
    let der = openssl::x509::X509::from_pem(cert_pem.as_bytes())
        .and_then(|c| c.to_der())
        .map_err(|_| "the SP's certificate cannot be read")?;
    use samael::crypto::CryptoProvider;
    samael::crypto::Crypto::verify_signed_xml(xml.as_bytes(), &der.into(), Some("ID"))
        .map_err(|_| "the signature does not verify with the SP's certificate")
}

/// The sign-in pipeline's view of an SP: a client named by its entity id that signs users in
/// (its display name on the pages, its consent setting), with nothing to authenticate with.
pub fn as_client(sp: &SamlSp) -> Result<std::sync::Arc<crate::config::Client>, InternalError> {
    use crate::config::tenant::{ClientSpec, GrantType, InteractiveSpec};
    Ok(std::sync::Arc::new(crate::config::Client::from_spec(
        ClientSpec {
            client_id: sp.entity_id.clone(),
            client_name: sp.display_name.clone(),
            enabled: sp.enabled,
            secrets: Vec::new(),
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: vec!["openid".into()],
            auth_methods: Vec::new(),
            access_token_format: None,
            access_token_lifetime: None,
            interactive: InteractiveSpec {
                require_consent: sp.require_consent,
                allow_remember_consent: true,
                ..Default::default()
            },
            ciba: None,
            token_exchange: None,
            workload: None,
            extension_grants: Vec::new(),
            runtime: None,
        },
    )?))
}
