//! SAML 2.0 Service Provider for upstream federation (HTTP-Redirect / HTTP-POST AuthnRequest,
//! HTTP-POST Response at the ACS, HTTP-Redirect LogoutRequest), built on `samael` 0.0.22 with its
//! `xmlsec` feature.
//!
//! Signature checking and signature-wrapping defence are samael's
//! (`ServiceProvider::parse_xml_response`, which reduces the document to what a signature covers
//! before reading it); every other rule is checked again here against the caller's `now`, because
//! samael reads the wall clock and is laxer in places (it skips the audience check when an assertion
//! has no `AudienceRestriction`, and accepts any one of several `AudienceRestriction`s).
//!
//! Deviations from the API in the design brief, each forced by a rule or by samael:
//! - `new_request_id` returns `Result<String, SamlError>`: the CSPRNG call is fallible and this
//!   module never panics.
//! - `IdpMetadata` also holds the parsed `EntityDescriptor` in a private field, so it can only be
//!   built by `parse_idp_metadata`, which refuses metadata without a signing certificate (samael
//!   would otherwise skip signature verification altogether).
//! - `verify_response` decodes the base64 itself and calls `ServiceProvider::parse_xml_response`
//!   (the same code `parse_base64_response` runs) to get samael's typed error instead of a
//!   `Box<dyn Error>`.
//! - `VerifiedAssertion::not_on_or_after` is the end of the acceptance window: the earliest
//!   `NotOnOrAfter` (Conditions or bearer SubjectConfirmationData) plus `max_clock_skew_secs`. A
//!   replay cache that keeps the assertion id until then is sufficient.
//! - `test_idp::ResponseOptions` has four extra fields: `injected_assertion_first` (order of the
//!   injected assertion in the wrapping attack), `attribute_friendly_names`, `status_code` and
//!   `encrypt_with_aes128_cbc`; `ResponseOptions::valid_for` is the "Default-ish" constructor.
//! - `test_idp::TestIdp` has `generate_ec` (P-256) besides `generate` (RSA-2048), an `slo_url`, and
//!   `test_idp::self_signed_key_and_cert` makes SP keys for tests.
//!
//! Limitations:
//! - Encrypted assertions are accepted only inside a signed `Response` (samael verifies the
//!   signature before decrypting and does not verify a signature inside the decrypted assertion).
//!   IdPs that encrypt must be configured to sign the Response. Key transport: RSA-OAEP (MGF1-SHA1)
//!   or RSA-1.5; content: AES-128-GCM or AES-128-CBC (samael's set, no AES-256); the decryption key
//!   must be RSA.
//!   samael's decryption code contains slicing/unwraps that can panic on malformed ciphertext; it
//!   only runs on a Response whose signature has verified, i.e. on input from the trusted IdP.
//! - ECDSA HTTP-Redirect signatures are emitted as raw `r || s` (the XML-DSig encoding that
//!   `SigAlg=…ecdsa-sha256` names, RFC 4051 §3.3.1), not DER as samael's `sign_url` does.
//! - Metadata certificates are used as trust anchors only; their validity dates are not checked
//!   (common SAML practice) and the metadata's own signature is not verified: fetch it over a
//!   trusted channel.
//! - The caller must bound the size of the POSTed `SAMLResponse` and keep a replay cache of
//!   `assertion_id` until `not_on_or_after`.
//! - xmlsec prints to stderr on every failed signature check.

use std::fmt;
use std::io::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use flate2::Compression;
use flate2::write::DeflateEncoder;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::sign::Signer;
use openssl::x509::X509;
use samael::crypto::{AllowedSignatureAlgorithm, Crypto, CryptoProvider};
use samael::key_info::{KeyInfo, X509Data};
use samael::metadata::{
    EncryptionMethod, Endpoint, EntityDescriptor, HTTP_POST_BINDING, HTTP_REDIRECT_BINDING,
    IndexedEndpoint, KeyDescriptor, SpSsoDescriptor,
};
use samael::schema::{Assertion, Response, SubjectConfirmation};
use samael::service_provider::{Error as SpError, ServiceProvider};
use samael::traits::ToXml;

const PROTOCOL_NS: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const ASSERTION_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const DIGEST_SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const SIG_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const SIG_ECDSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";

/// Signature algorithms accepted on Responses and Assertions: no SHA-1, no SHA-224, no DSA.
const ALLOWED_SIGNATURE_ALGORITHMS: [AllowedSignatureAlgorithm; 6] = [
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// How long after its IssueInstant an assertion is still accepted (plus the configured skew).
/// The browser POSTs the Response right after the IdP issues it.
const MAX_ASSERTION_AGE_SECS: i64 = 300;

/// samael checks times against the wall clock (`Utc::now()`), which would make `now` meaningless.
/// Its windows are opened this wide so that only the checks below, against `now`, decide.
const SAMAEL_WALL_CLOCK_WINDOW_DAYS: i64 = 36_525;

/// SAML bindings §3.4.3 / §3.5.3: RelayState MUST NOT exceed 80 bytes.
const MAX_RELAY_STATE_BYTES: usize = 80;

/// Why a SAML operation failed. `Display` is a short, precise reason, safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SamlError {
    #[error("metadata is not a SAML EntityDescriptor")]
    MetadataUnparsable,
    #[error("metadata has no IdP SSO descriptor")]
    MetadataNotAnIdp,
    #[error("metadata has no signing certificate")]
    MetadataNoSigningCertificate,
    #[error("metadata certificate is not a valid X.509 certificate")]
    MetadataBadCertificate,
    #[error("metadata endpoint is not an http(s) URL")]
    MetadataBadEndpoint,
    #[error("invalid SP configuration: {0}")]
    Config(&'static str),
    #[error("invalid request id")]
    InvalidRequestId,
    #[error("IdP has no SSO endpoint for this binding")]
    NoSsoEndpoint,
    #[error("RelayState longer than 80 bytes")]
    RelayStateTooLong,
    #[error("malformed SAML response: {0}")]
    Malformed(&'static str),
    #[error("signature does not verify")]
    SignatureInvalid,
    #[error("IdP returned status {0}")]
    Status(String),
    #[error("destination mismatch")]
    DestinationMismatch,
    #[error("recipient mismatch")]
    RecipientMismatch,
    #[error("audience mismatch")]
    AudienceMismatch,
    #[error("issuer mismatch")]
    IssuerMismatch,
    #[error("unsolicited response")]
    Unsolicited,
    #[error("InResponseTo mismatch")]
    InResponseToMismatch,
    #[error("assertion expired")]
    Expired,
    #[error("assertion not yet valid")]
    NotYetValid,
    #[error("assertion issued too long ago")]
    IssuedTooLongAgo,
    #[error("no bearer subject confirmation")]
    NoBearerConfirmation,
    #[error("encrypted assertion but no decryption key configured")]
    UnexpectedEncryptedAssertion,
    #[error("assertion decryption failed")]
    DecryptionFailed,
    #[error("crypto failure: {0}")]
    Crypto(String),
}

impl From<openssl::error::ErrorStack> for SamlError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        SamlError::Crypto(e.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// IdP metadata
// ---------------------------------------------------------------------------------------------

/// An upstream IdP, from its metadata XML. Only `parse_idp_metadata` builds one, and only when the
/// metadata names at least one signing certificate.
#[derive(Clone, Debug)]
pub struct IdpMetadata {
    pub entity_id: String,
    pub sso_redirect: Option<String>,
    pub sso_post: Option<String>,
    pub slo_redirect: Option<String>,
    descriptor: EntityDescriptor,
}

/// Parses an `EntityDescriptor` with an `IDPSSODescriptor`. Refuses metadata without a usable
/// signing certificate: samael silently skips signature verification in that case.
pub fn parse_idp_metadata(xml: &str) -> Result<IdpMetadata, SamlError> {
    let descriptor: EntityDescriptor = xml.parse().map_err(|_| SamlError::MetadataUnparsable)?;
    let entity_id = descriptor
        .entity_id
        .clone()
        .filter(|id| !id.is_empty())
        .ok_or(SamlError::MetadataUnparsable)?;
    let idp_descriptors = descriptor
        .idp_sso_descriptors
        .as_deref()
        .filter(|d| !d.is_empty())
        .ok_or(SamlError::MetadataNotAnIdp)?;

    let certs = samael_sp_for_metadata(&descriptor)
        .idp_signing_certs()
        .map_err(|_| SamlError::MetadataBadCertificate)?
        .unwrap_or_default();
    if certs.is_empty() {
        return Err(SamlError::MetadataNoSigningCertificate);
    }
    for cert in &certs {
        X509::from_der(cert.der_data()).map_err(|_| SamlError::MetadataBadCertificate)?;
    }

    let endpoint = |pick: fn(&samael::metadata::IdpSsoDescriptor) -> &Vec<Endpoint>,
                    binding: &str|
     -> Result<Option<String>, SamlError> {
        idp_descriptors
            .iter()
            .flat_map(|d| pick(d).iter())
            .find(|e| e.binding == binding)
            .map(|e| http_url(&e.location))
            .transpose()
    };
    Ok(IdpMetadata {
        sso_redirect: endpoint(|d| &d.single_sign_on_services, HTTP_REDIRECT_BINDING)?,
        sso_post: endpoint(|d| &d.single_sign_on_services, HTTP_POST_BINDING)?,
        slo_redirect: endpoint(|d| &d.single_logout_services, HTTP_REDIRECT_BINDING)?,
        entity_id,
        descriptor,
    })
}

fn http_url(location: &str) -> Result<String, SamlError> {
    match url::Url::parse(location) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Ok(location.to_string()),
        _ => Err(SamlError::MetadataBadEndpoint),
    }
}

fn samael_sp_for_metadata(descriptor: &EntityDescriptor) -> ServiceProvider {
    ServiceProvider {
        idp_metadata: descriptor.clone(),
        ..ServiceProvider::default()
    }
}

// ---------------------------------------------------------------------------------------------
// SP configuration and keys
// ---------------------------------------------------------------------------------------------

/// This gateway acting as a SAML SP towards one upstream IdP.
#[derive(Clone)]
pub struct SpConfig {
    /// e.g. `https://host/acme/federation/corp-saml`
    pub entity_id: String,
    /// Assertion Consumer Service, HTTP-POST binding.
    pub acs_url: String,
    pub slo_url: Option<String>,
    /// PKCS#8 (or traditional) PEM, RSA (≥ 2048 bits) or EC P-256.
    pub signing_key_pem: String,
    pub signing_cert_pem: String,
    /// When set, `EncryptedAssertion` is accepted and decrypted, and the SP metadata advertises
    /// `encryption_cert_pem`. RSA only (samael's key transport).
    pub encryption_key_pem: Option<String>,
    pub encryption_cert_pem: Option<String>,
    /// Bounded skew applied to NotBefore / NotOnOrAfter / IssueInstant.
    pub max_clock_skew_secs: i64,
    pub allow_idp_initiated: bool,
}

impl fmt::Debug for SpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpConfig")
            .field("entity_id", &self.entity_id)
            .field("acs_url", &self.acs_url)
            .field("slo_url", &self.slo_url)
            .field("signing_key_pem", &"<redacted>")
            .field("signing_cert_pem", &"<certificate>")
            .field(
                "encryption_key_pem",
                &self.encryption_key_pem.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "encryption_cert_pem",
                &self.encryption_cert_pem.as_ref().map(|_| "<certificate>"),
            )
            .field("max_clock_skew_secs", &self.max_clock_skew_secs)
            .field("allow_idp_initiated", &self.allow_idp_initiated)
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    EcP256,
}

impl KeyKind {
    fn signature_uri(self) -> &'static str {
        match self {
            KeyKind::Rsa => SIG_RSA_SHA256,
            KeyKind::EcP256 => SIG_ECDSA_SHA256,
        }
    }
}

/// A private signing key with its certificate. No `Debug`: it holds a secret.
struct SigningKey {
    pkey: PKey<Private>,
    kind: KeyKind,
    cert_der: Vec<u8>,
}

impl SigningKey {
    /// The IdP's RSA key (PKCS#8 DER) and its certificate.
    fn rsa(pkcs8: &[u8], cert_der: &[u8]) -> Result<Self, SamlError> {
        let pkey = PKey::private_key_from_pkcs8(pkcs8)?;
        if pkey.id() != Id::RSA {
            return Err(SamlError::Config("the IdP signing key must be RSA"));
        }
        Ok(SigningKey {
            pkey,
            kind: KeyKind::Rsa,
            cert_der: cert_der.to_vec(),
        })
    }
    fn from_pem(key_pem: &str, cert_pem: &str) -> Result<Self, SamlError> {
        let pkey = PKey::private_key_from_pem(key_pem.as_bytes())
            .map_err(|_| SamlError::Config("signing key is not a PEM private key"))?;
        let kind = key_kind(&pkey)?;
        let cert = X509::from_pem(cert_pem.as_bytes())
            .map_err(|_| SamlError::Config("signing certificate is not a PEM certificate"))?;
        if !cert.public_key()?.public_eq(&pkey) {
            return Err(SamlError::Config(
                "signing certificate does not match signing key",
            ));
        }
        Ok(SigningKey {
            pkey,
            kind,
            cert_der: cert.to_der()?,
        })
    }

    /// For the test IdP, which makes its own key and certificate.
    #[cfg(any(test, feature = "test-idp"))]
    fn from_parts(pkey: PKey<Private>, cert: &X509) -> Result<Self, SamlError> {
        Ok(SigningKey {
            kind: key_kind(&pkey)?,
            cert_der: cert.to_der()?,
            pkey,
        })
    }

    /// Fills in the first `<ds:Signature>` template in `xml` (see `signature_template`): an
    /// enveloped XML-DSig over the element its Reference names by `ID`.
    fn sign_xml(&self, xml: &str) -> Result<String, SamlError> {
        let der = self.pkey.private_key_to_der()?;
        Crypto::sign_xml(xml, &der).map_err(|e| SamlError::Crypto(e.to_string()))
    }

    /// Raw signature for the HTTP-Redirect binding (SAML bindings §3.4.4.1). ECDSA is `r || s`.
    fn sign_raw(&self, data: &[u8]) -> Result<Vec<u8>, SamlError> {
        let mut signer = Signer::new(MessageDigest::sha256(), &self.pkey)?;
        signer.update(data)?;
        let sig = signer.sign_to_vec()?;
        match self.kind {
            KeyKind::Rsa => Ok(sig),
            KeyKind::EcP256 => {
                let sig = EcdsaSig::from_der(&sig)?;
                let mut raw = sig.r().to_vec_padded(32)?;
                raw.extend(sig.s().to_vec_padded(32)?);
                Ok(raw)
            }
        }
    }

    fn signature_template(&self, ref_id: &str) -> String {
        signature_template(ref_id, self.kind, &self.cert_der)
    }
}

/// Checks an SP's keys and certificates as they will be used: the signing key (RSA ≥ 2048 or
/// EC P-256) matching its certificate, and the optional RSA encryption key and certificate.
pub fn check_sp_keys(
    signing_key_pem: &str,
    signing_cert_pem: &str,
    encryption: Option<(&str, &str)>,
) -> Result<(), SamlError> {
    SigningKey::from_pem(signing_key_pem, signing_cert_pem)?;
    if let Some((key, cert)) = encryption {
        let pkey = PKey::private_key_from_pem(key.as_bytes())
            .map_err(|_| SamlError::Config("encryption key is not a PEM private key"))?;
        if pkey.id() != Id::RSA {
            return Err(SamlError::Config("encryption key must be RSA"));
        }
        let cert = X509::from_pem(cert.as_bytes())
            .map_err(|_| SamlError::Config("encryption certificate is not a PEM certificate"))?;
        if !cert.public_key()?.public_eq(&pkey) {
            return Err(SamlError::Config(
                "encryption certificate does not match encryption key",
            ));
        }
    }
    Ok(())
}

fn key_kind(pkey: &PKey<Private>) -> Result<KeyKind, SamlError> {
    match pkey.id() {
        Id::RSA if pkey.bits() >= 2048 => Ok(KeyKind::Rsa),
        Id::RSA => Err(SamlError::Config("RSA key shorter than 2048 bits")),
        Id::EC => {
            let curve = pkey.ec_key()?.group().curve_name();
            if curve == Some(Nid::X9_62_PRIME256V1) {
                Ok(KeyKind::EcP256)
            } else {
                Err(SamlError::Config("EC key is not on P-256"))
            }
        }
        _ => Err(SamlError::Config("key is neither RSA nor EC P-256")),
    }
}

fn decryption_key(sp: &SpConfig) -> Result<Option<PKey<Private>>, SamlError> {
    let Some(pem) = &sp.encryption_key_pem else {
        return Ok(None);
    };
    let pkey = PKey::private_key_from_pem(pem.as_bytes())
        .map_err(|_| SamlError::Config("encryption key is not a PEM private key"))?;
    if pkey.id() != Id::RSA {
        return Err(SamlError::Config("encryption key must be RSA"));
    }
    Ok(Some(pkey))
}

fn cert_der_from_pem(pem: &str, what: &'static str) -> Result<Vec<u8>, SamlError> {
    Ok(X509::from_pem(pem.as_bytes())
        .map_err(|_| SamlError::Config(what))?
        .to_der()?)
}

// ---------------------------------------------------------------------------------------------
// SP metadata
// ---------------------------------------------------------------------------------------------

/// `EntityDescriptor` with an `SPSSODescriptor`: AuthnRequestsSigned and WantAssertionsSigned,
/// the signing (and, if configured, encryption) certificate, the ACS (HTTP-POST) and, if set, the
/// SLO endpoint (HTTP-Redirect).
pub fn sp_metadata_xml(sp: &SpConfig) -> Result<String, SamlError> {
    let signing = SigningKey::from_pem(&sp.signing_key_pem, &sp.signing_cert_pem)?;
    let mut key_descriptors = vec![key_descriptor("signing", &signing.cert_der, None)];
    if sp.encryption_key_pem.is_some() {
        let pem = sp.encryption_cert_pem.as_deref().ok_or(SamlError::Config(
            "encryption key set without encryption certificate",
        ))?;
        let der = cert_der_from_pem(pem, "encryption certificate is not a PEM certificate")?;
        // Content algorithms that samael can decrypt, strongest first (metadata §2.4.1.1).
        let methods = [
            "http://www.w3.org/2009/xmlenc11#aes128-gcm",
            "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
            "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
        ]
        .into_iter()
        .map(|algorithm| EncryptionMethod {
            algorithm: algorithm.to_string(),
        })
        .collect();
        key_descriptors.push(key_descriptor("encryption", &der, Some(methods)));
    }

    let descriptor = EntityDescriptor {
        entity_id: Some(sp.entity_id.clone()),
        sp_sso_descriptors: Some(vec![SpSsoDescriptor {
            protocol_support_enumeration: Some(PROTOCOL_NS.to_string()),
            key_descriptors: Some(key_descriptors),
            single_logout_services: sp.slo_url.as_ref().map(|slo| {
                vec![Endpoint {
                    binding: HTTP_REDIRECT_BINDING.to_string(),
                    location: slo.clone(),
                    response_location: None,
                }]
            }),
            authn_requests_signed: Some(true),
            want_assertions_signed: Some(true),
            assertion_consumer_services: vec![IndexedEndpoint {
                binding: HTTP_POST_BINDING.to_string(),
                location: sp.acs_url.clone(),
                response_location: None,
                index: 0,
                is_default: Some(true),
            }],
            ..SpSsoDescriptor::default()
        }]),
        ..EntityDescriptor::default()
    };
    descriptor
        .to_string()
        .map_err(|e| SamlError::Crypto(format!("metadata serialisation: {e}")))
}

fn key_descriptor(
    key_use: &str,
    cert_der: &[u8],
    encryption_methods: Option<Vec<EncryptionMethod>>,
) -> KeyDescriptor {
    KeyDescriptor {
        key_use: Some(key_use.to_string()),
        key_info: KeyInfo {
            id: None,
            x509_data: Some(X509Data {
                certificates: vec![B64.encode(cert_der)],
            }),
        },
        encryption_methods,
    }
}

// ---------------------------------------------------------------------------------------------
// AuthnRequest / LogoutRequest
// ---------------------------------------------------------------------------------------------

/// 128-bit random request id, `_` followed by 32 hex digits (an xsd:ID / NCName).
pub fn new_request_id() -> Result<String, SamlError> {
    let mut bytes = [0u8; 16];
    openssl::rand::rand_bytes(&mut bytes)?;
    let mut id = String::with_capacity(33);
    id.push('_');
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    Ok(id)
}

/// HTTP-Redirect binding: the IdP SSO URL with SAMLRequest, RelayState, SigAlg and Signature
/// (SAML bindings §3.4.4.1), signed with the SP key.
pub fn authn_request_redirect(
    sp: &SpConfig,
    idp: &IdpMetadata,
    request_id: &str,
    relay_state: &str,
    now: i64,
) -> Result<String, SamlError> {
    let destination = idp
        .sso_redirect
        .as_deref()
        .ok_or(SamlError::NoSsoEndpoint)?;
    let key = SigningKey::from_pem(&sp.signing_key_pem, &sp.signing_cert_pem)?;
    // Bindings §3.4.4.1: no XML signature inside a message sent with the Redirect binding.
    let xml = authn_request_xml(sp, destination, request_id, now, None)?;
    signed_redirect_url(destination, "SAMLRequest", &xml, relay_state, &key)
}

/// HTTP-POST binding: (destination URL, base64 `SAMLRequest` carrying an enveloped XML signature).
pub fn authn_request_post(
    sp: &SpConfig,
    idp: &IdpMetadata,
    request_id: &str,
    now: i64,
) -> Result<(String, String), SamlError> {
    let destination = idp.sso_post.as_deref().ok_or(SamlError::NoSsoEndpoint)?;
    let key = SigningKey::from_pem(&sp.signing_key_pem, &sp.signing_cert_pem)?;
    let template = key.signature_template(request_id);
    let xml = authn_request_xml(sp, destination, request_id, now, Some(&template))?;
    let signed = key.sign_xml(&xml)?;
    Ok((destination.to_string(), B64.encode(signed)))
}

/// HTTP-Redirect LogoutRequest (SAML core §3.7.1) to the IdP's SLO endpoint, signed; `None` if the
/// IdP has no HTTP-Redirect SLO endpoint.
pub fn logout_request_redirect(
    sp: &SpConfig,
    idp: &IdpMetadata,
    name_id: &str,
    name_id_format: Option<&str>,
    session_index: Option<&str>,
    relay_state: &str,
    now: i64,
) -> Result<Option<String>, SamlError> {
    let Some(destination) = idp.slo_redirect.as_deref() else {
        return Ok(None);
    };
    let key = SigningKey::from_pem(&sp.signing_key_pem, &sp.signing_cert_pem)?;
    let id = new_request_id()?;
    let format_attr = name_id_format
        .map(|f| format!(r#" Format="{}""#, xml_escape(f)))
        .unwrap_or_default();
    let session = session_index
        .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", xml_escape(s)))
        .unwrap_or_default();
    let xml = format!(
        r#"<samlp:LogoutRequest xmlns:samlp="{PROTOCOL_NS}" xmlns:saml="{ASSERTION_NS}" ID="{id}" Version="2.0" IssueInstant="{instant}" Destination="{dest}"><saml:Issuer>{issuer}</saml:Issuer><saml:NameID{format_attr}>{name_id}</saml:NameID>{session}</samlp:LogoutRequest>"#,
        instant = saml_instant(now)?,
        dest = xml_escape(destination),
        issuer = xml_escape(&sp.entity_id),
        name_id = xml_escape(name_id),
    );
    signed_redirect_url(destination, "SAMLRequest", &xml, relay_state, &key).map(Some)
}

fn authn_request_xml(
    sp: &SpConfig,
    destination: &str,
    request_id: &str,
    now: i64,
    signature: Option<&str>,
) -> Result<String, SamlError> {
    if !is_ncname(request_id) {
        return Err(SamlError::InvalidRequestId);
    }
    // Core §3.4.1; the signature goes right after Issuer (schema order).
    Ok(format!(
        r#"<samlp:AuthnRequest xmlns:samlp="{PROTOCOL_NS}" xmlns:saml="{ASSERTION_NS}" ID="{request_id}" Version="2.0" IssueInstant="{instant}" Destination="{dest}" AssertionConsumerServiceURL="{acs}" ProtocolBinding="{HTTP_POST_BINDING}"><saml:Issuer>{issuer}</saml:Issuer>{sig}<samlp:NameIDPolicy AllowCreate="true"/></samlp:AuthnRequest>"#,
        instant = saml_instant(now)?,
        dest = xml_escape(destination),
        acs = xml_escape(&sp.acs_url),
        issuer = xml_escape(&sp.entity_id),
        sig = signature.unwrap_or_default(),
    ))
}

/// Bindings §3.4.4.1: DEFLATE, base64, then sign `SAMLRequest=…&RelayState=…&SigAlg=…` exactly
/// as it appears (URL-encoded) in the query string.
fn signed_redirect_url(
    destination: &str,
    parameter: &str,
    xml: &str,
    relay_state: &str,
    key: &SigningKey,
) -> Result<String, SamlError> {
    if relay_state.len() > MAX_RELAY_STATE_BYTES {
        return Err(SamlError::RelayStateTooLong);
    }
    let mut deflater = DeflateEncoder::new(Vec::new(), Compression::default());
    deflater
        .write_all(xml.as_bytes())
        .map_err(|e| SamlError::Crypto(e.to_string()))?;
    let deflated = deflater
        .finish()
        .map_err(|e| SamlError::Crypto(e.to_string()))?;

    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair(parameter, &B64.encode(deflated));
    if !relay_state.is_empty() {
        query.append_pair("RelayState", relay_state);
    }
    query.append_pair("SigAlg", key.kind.signature_uri());
    let signed_part = query.finish();
    let signature = B64.encode(key.sign_raw(signed_part.as_bytes())?);
    let signature = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("Signature", &signature)
        .finish();
    let separator = if destination.contains('?') { '&' } else { '?' };
    Ok(format!("{destination}{separator}{signed_part}&{signature}"))
}

// ---------------------------------------------------------------------------------------------
// Response verification
// ---------------------------------------------------------------------------------------------

/// What a verified assertion says. Only `verify_response` builds one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// For the caller's one-time-use check (profiles §4.1.4.5).
    pub assertion_id: String,
    pub issuer: String,
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub session_index: Option<String>,
    /// Attribute Name -> values, plus FriendlyName -> values as a second entry when present.
    pub attributes: Vec<(String, Vec<String>)>,
    /// Unix seconds: the end of the acceptance window (earliest NotOnOrAfter + skew). Keep the
    /// assertion id in the replay cache until then.
    pub not_on_or_after: i64,
    pub in_response_to: Option<String>,
    /// Private, so that only `verify_response` can build one (a verified value can only come from the verifier).
    sealed: Sealed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Sealed;

/// Verifies an HTTP-POST `SAMLResponse` (base64) at the ACS. `expected_request_id` `None` means
/// unsolicited (IdP-initiated), refused unless `sp.allow_idp_initiated`.
pub fn verify_response(
    sp: &SpConfig,
    idp: &IdpMetadata,
    saml_response_b64: &str,
    expected_request_id: Option<&str>,
    now: i64,
) -> Result<VerifiedAssertion, SamlError> {
    let compact: String = saml_response_b64
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let bytes = B64
        .decode(compact)
        .map_err(|_| SamlError::Malformed("SAMLResponse is not base64"))?;
    let xml = std::str::from_utf8(&bytes)
        .map_err(|_| SamlError::Malformed("SAMLResponse is not UTF-8"))?;
    // The envelope rules are checked first: they can only refuse, and this gives the precise
    // reason (e.g. the IdP's error status on an unsigned error Response). Nothing in the envelope
    // is trusted for identity: it is unsigned when only the assertion is signed.
    let envelope: Response = xml
        .parse()
        .map_err(|_| SamlError::Malformed("not a single-assertion SAML Response"))?;
    if expected_request_id.is_none() && !sp.allow_idp_initiated {
        return Err(SamlError::Unsolicited);
    }
    check_envelope(sp, idp, &envelope, expected_request_id)?;

    let samael_sp = samael_sp(sp, idp, expected_request_id.is_none())?;
    let possible_ids = expected_request_id.map(|id| [id]);
    // Signature (Response or Assertion) against the metadata certificates with the allowed
    // algorithms, reduction to the signed content (defeats signature wrapping), decryption, and
    // samael's own checks. The returned assertion is the signed one (or the one inside the
    // signed Response).
    let assertion = samael_sp
        .parse_xml_response(xml, possible_ids.as_ref().map(|ids| &ids[..]))
        .map_err(map_samael_error)?;

    // The verified assertion must be the Response's own (only) Assertion child, not one hidden
    // elsewhere beside an injected one (signature wrapping). An encrypted one was inside the
    // signed Response, which samael verified before decrypting.
    match (&envelope.assertion, &envelope.encrypted_assertion) {
        (Some(direct), None) if direct.id == assertion.id => {}
        (None, Some(_)) => {}
        _ => return Err(SamlError::Malformed("assertion is not the Response's own")),
    }
    check_assertion(sp, idp, &assertion, expected_request_id, now)
}

fn samael_sp(
    sp: &SpConfig,
    idp: &IdpMetadata,
    unsolicited: bool,
) -> Result<ServiceProvider, SamlError> {
    let window = Duration::days(SAMAEL_WALL_CLOCK_WINDOW_DAYS);
    let samael_sp = ServiceProvider {
        entity_id: Some(sp.entity_id.clone()),
        key: decryption_key(sp)?,
        acs_url: Some(sp.acs_url.clone()),
        slo_url: sp.slo_url.clone(),
        idp_metadata: idp.descriptor.clone(),
        allow_idp_initiated: unsolicited,
        max_issue_delay: window,
        max_clock_skew: window,
        allowed_signature_algorithms: Some(ALLOWED_SIGNATURE_ALGORITHMS.to_vec()),
        ..ServiceProvider::default()
    };
    // Belt and braces: samael verifies nothing when it finds no certificate.
    match samael_sp.idp_signing_certs() {
        Ok(Some(certs)) if !certs.is_empty() => Ok(samael_sp),
        _ => Err(SamlError::MetadataNoSigningCertificate),
    }
}

fn map_samael_error(e: SpError) -> SamlError {
    match e {
        SpError::FailedToValidateSignature | SpError::CryptoXmlError(_) => {
            SamlError::SignatureInvalid
        }
        SpError::DestinationValidationError { .. } => SamlError::DestinationMismatch,
        SpError::AssertionRecipientMismatch { .. } => SamlError::RecipientMismatch,
        SpError::AssertionConditionAudienceRestrictionFailed { .. } => SamlError::AudienceMismatch,
        SpError::AssertionIssuerMismatch { .. } | SpError::ResponseIssuerMismatch { .. } => {
            SamlError::IssuerMismatch
        }
        SpError::AssertionInResponseToInvalid { .. }
        | SpError::ResponseInResponseToInvalid { .. } => SamlError::InResponseToMismatch,
        SpError::ResponseBadStatusCode { code } => SamlError::Status(code),
        SpError::AssertionExpired { .. }
        | SpError::ResponseExpired { .. }
        | SpError::AssertionConditionExpired { .. }
        | SpError::AssertionSubjectConfirmationExpired { .. } => SamlError::Expired,
        SpError::AssertionConditionExpiredBefore { .. }
        | SpError::AssertionSubjectConfirmationExpiredBefore { .. } => SamlError::NotYetValid,
        SpError::AssertionBearerSubjectConfirmationMissing
        | SpError::AssertionSubjectConfirmationMissing => SamlError::NoBearerConfirmation,
        SpError::MissingPrivateKeySP => SamlError::UnexpectedEncryptedAssertion,
        SpError::MissingEncryptedKeyInfo
        | SpError::MissingEncryptedValueInfo
        | SpError::EncryptedAssertionKeyMethodUnsupported { .. }
        | SpError::EncryptedAssertionValueMethodUnsupported { .. }
        | SpError::EncryptedAssertionInvalid
        | SpError::EncryptedAssertionsNotYetSupported
        | SpError::FailedToDecryptAssertion
        | SpError::UnsupportedKey => SamlError::DecryptionFailed,
        SpError::FailedToParseSamlResponse(_)
        | SpError::FailedToParseSamlAssertion(_)
        | SpError::DeserializeResponseError
        | SpError::UnexpectedError => SamlError::Malformed("response rejected by samael"),
        other => SamlError::Crypto(other.to_string()),
    }
}

/// Response-level rules (core §3.2.2, profiles §4.1.4.3). The envelope may be unsigned.
fn check_envelope(
    sp: &SpConfig,
    idp: &IdpMetadata,
    envelope: &Response,
    expected_request_id: Option<&str>,
) -> Result<(), SamlError> {
    let code = envelope
        .status
        .as_ref()
        .and_then(|s| s.status_code.value.as_deref())
        .ok_or(SamlError::Malformed("Response has no StatusCode"))?;
    if code != STATUS_SUCCESS {
        return Err(SamlError::Status(code.to_string()));
    }
    // Bindings §3.5.5.2: the Destination must be the location the message was received at.
    if envelope.destination.as_deref() != Some(sp.acs_url.as_str()) {
        return Err(SamlError::DestinationMismatch);
    }
    if let Some(issuer) = &envelope.issuer
        && issuer.value.as_deref() != Some(idp.entity_id.as_str())
    {
        return Err(SamlError::IssuerMismatch);
    }
    // Profiles §4.1.4.2 / §4.1.5: unsolicited responses carry no InResponseTo.
    if envelope.in_response_to.as_deref() != expected_request_id {
        return Err(SamlError::InResponseToMismatch);
    }
    Ok(())
}

/// Assertion rules (core §2.5.1, profiles §4.1.4.2), against `now`.
fn check_assertion(
    sp: &SpConfig,
    idp: &IdpMetadata,
    assertion: &Assertion,
    expected_request_id: Option<&str>,
    now: i64,
) -> Result<VerifiedAssertion, SamlError> {
    let skew = sp.max_clock_skew_secs.max(0);
    if assertion.issuer.value.as_deref() != Some(idp.entity_id.as_str()) {
        return Err(SamlError::IssuerMismatch);
    }
    let issued = assertion.issue_instant.timestamp();
    if issued > now.saturating_add(skew) {
        return Err(SamlError::NotYetValid);
    }
    if issued.saturating_add(MAX_ASSERTION_AGE_SECS + skew) < now {
        return Err(SamlError::IssuedTooLongAgo);
    }

    // Core §2.5.1.2 and §2.5.1.4: every AudienceRestriction must name this SP.
    let conditions = assertion
        .conditions
        .as_ref()
        .ok_or(SamlError::AudienceMismatch)?;
    let restrictions = conditions
        .audience_restrictions
        .as_deref()
        .filter(|r| !r.is_empty())
        .ok_or(SamlError::AudienceMismatch)?;
    if !restrictions
        .iter()
        .all(|r| r.audience.iter().any(|a| a == &sp.entity_id))
    {
        return Err(SamlError::AudienceMismatch);
    }
    check_window(
        conditions.not_before.map(|t| t.timestamp()),
        conditions.not_on_or_after.map(|t| t.timestamp()),
        now,
        skew,
    )?;

    let subject = assertion
        .subject
        .as_ref()
        .ok_or(SamlError::Malformed("assertion has no Subject"))?;
    let name_id = subject
        .name_id
        .as_ref()
        .filter(|n| !n.value.trim().is_empty())
        .ok_or(SamlError::Malformed("assertion has no NameID"))?;

    // Profiles §4.1.4.2: at least one bearer SubjectConfirmation that satisfies every rule.
    let mut first_error = None;
    let mut confirmation_end = None;
    let bearers = subject
        .subject_confirmations
        .iter()
        .flatten()
        .filter(|c| c.method.as_deref() == Some(BEARER));
    for confirmation in bearers {
        match check_bearer(sp, confirmation, expected_request_id, now, skew) {
            Ok(end) => {
                confirmation_end = Some(end);
                break;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let confirmation_end =
        confirmation_end.ok_or(first_error.unwrap_or(SamlError::NoBearerConfirmation))?;
    let end = conditions
        .not_on_or_after
        .map(|t| t.timestamp().min(confirmation_end))
        .unwrap_or(confirmation_end);

    let session_index = assertion
        .authn_statements
        .iter()
        .flatten()
        .find_map(|s| s.session_index.clone());
    let mut attributes = Vec::new();
    for attribute in assertion
        .attribute_statements
        .iter()
        .flatten()
        .flat_map(|s| s.attributes.iter())
    {
        let values: Vec<String> = attribute
            .values
            .iter()
            .filter_map(|v| v.value.clone())
            .collect();
        if let Some(name) = &attribute.name {
            attributes.push((name.clone(), values.clone()));
        }
        if let Some(friendly) = &attribute.friendly_name
            && attribute.name.as_ref() != Some(friendly)
        {
            attributes.push((friendly.clone(), values));
        }
    }

    Ok(VerifiedAssertion {
        assertion_id: assertion.id.clone(),
        issuer: idp.entity_id.clone(),
        name_id: name_id.value.clone(),
        name_id_format: name_id.format.clone(),
        session_index,
        attributes,
        not_on_or_after: end.saturating_add(skew),
        in_response_to: expected_request_id.map(str::to_string),
        sealed: Sealed,
    })
}

/// Returns the confirmation's NotOnOrAfter (unix seconds).
fn check_bearer(
    sp: &SpConfig,
    confirmation: &SubjectConfirmation,
    expected_request_id: Option<&str>,
    now: i64,
    skew: i64,
) -> Result<i64, SamlError> {
    let data = confirmation
        .subject_confirmation_data
        .as_ref()
        .ok_or(SamlError::NoBearerConfirmation)?;
    if data.recipient.as_deref() != Some(sp.acs_url.as_str()) {
        return Err(SamlError::RecipientMismatch);
    }
    let not_on_or_after = data
        .not_on_or_after
        .map(|t| t.timestamp())
        .ok_or(SamlError::NoBearerConfirmation)?;
    check_window(
        data.not_before.map(|t| t.timestamp()),
        Some(not_on_or_after),
        now,
        skew,
    )?;
    if data.in_response_to.as_deref() != expected_request_id {
        return Err(SamlError::InResponseToMismatch);
    }
    Ok(not_on_or_after)
}

/// NotBefore is inclusive, NotOnOrAfter exclusive (core §2.5.1.2), each widened by `skew`.
fn check_window(
    not_before: Option<i64>,
    not_on_or_after: Option<i64>,
    now: i64,
    skew: i64,
) -> Result<(), SamlError> {
    if let Some(nb) = not_before
        && now.saturating_add(skew) < nb
    {
        return Err(SamlError::NotYetValid);
    }
    if let Some(noa) = not_on_or_after
        && now.saturating_sub(skew) >= noa
    {
        return Err(SamlError::Expired);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// XML helpers
// ---------------------------------------------------------------------------------------------

fn saml_instant(unix: i64) -> Result<String, SamlError> {
    DateTime::<Utc>::from_timestamp(unix, 0)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .ok_or(SamlError::Config("time out of range"))
}

/// Escapes text for an XML attribute value or element content.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// xsd:ID is an NCName; this accepts the ASCII subset, which is all this module generates.
fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Enveloped-signature template (exclusive C14N, SHA-256 digest) for the element with `ID=ref_id`;
/// xmlsec fills in DigestValue and SignatureValue.
fn signature_template(ref_id: &str, kind: KeyKind, cert_der: &[u8]) -> String {
    format!(
        r##"<ds:Signature xmlns:ds="{DSIG_NS}"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="{EXC_C14N}"/><ds:SignatureMethod Algorithm="{alg}"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="{ENVELOPED}"/><ds:Transform Algorithm="{EXC_C14N}"/></ds:Transforms><ds:DigestMethod Algorithm="{DIGEST_SHA256}"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"##,
        alg = kind.signature_uri(),
        id = xml_escape(ref_id),
        cert = B64.encode(cert_der),
    )
}

/// Signs the element whose `ID` is `ref_id` in `xml`, which holds the `{signature}`
/// placeholder where the enveloped `<ds:Signature>` goes (after the element's `Issuer`, SAML core
/// §5.4.1): RSA-SHA256 over exclusive C14N, with the certificate in `KeyInfo`. `pkcs8` is the
/// RSA private key (PKCS#8 DER), `cert_der` its certificate.
pub fn sign_enveloped_rsa(
    xml: &str,
    ref_id: &str,
    pkcs8: &[u8],
    cert_der: &[u8],
) -> Result<String, SamlError> {
    let key = SigningKey::rsa(pkcs8, cert_der)?;
    let xml = xml.replacen("{signature}", &key.signature_template(ref_id), 1);
    key.sign_xml(&xml)
}

/// HTTP-Redirect binding (bindings §3.4.4.1): `destination` with `parameter` (`SAMLRequest` or
/// `SAMLResponse`) holding `xml` deflated, RelayState (none when empty), SigAlg and the
/// RSA-SHA256 Signature by `pkcs8`.
pub fn signed_redirect_url_rsa(
    destination: &str,
    parameter: &str,
    xml: &str,
    relay_state: &str,
    pkcs8: &[u8],
    cert_der: &[u8],
) -> Result<String, SamlError> {
    let key = SigningKey::rsa(pkcs8, cert_der)?;
    signed_redirect_url(destination, parameter, xml, relay_state, &key)
}

/// The SAML timestamp of a unix time (SAML core §1.3.3: UTC, no fractions here).
pub fn instant(unix: i64) -> Result<String, SamlError> {
    saml_instant(unix)
}

// ---------------------------------------------------------------------------------------------
// Test IdP: for tests only (`cfg(test)`, or the `test-idp` feature the integration tests turn on);
// absent from the release binary.
// ---------------------------------------------------------------------------------------------

#[cfg(any(test, feature = "test-idp"))]
pub mod test_idp;

#[cfg(test)]
mod tests {
    use super::test_idp::{ResponseOptions, TestIdp, self_signed_key_and_cert};
    use super::*;
    use std::io::Read as _;
    use std::sync::OnceLock;

    const NOW: i64 = 1_900_000_000;
    const SP_ENTITY: &str = "https://gw.example/acme/federation/corp-saml";
    const ACS: &str = "https://gw.example/acme/federation/corp-saml/acs";
    const IDP_ENTITY: &str = "https://idp.example/saml";
    const IDP_SSO: &str = "https://idp.example/saml/sso";
    const REQUEST_ID: &str = "_0123456789abcdef0123456789abcdef";

    struct Fixture {
        idp: TestIdp,
        other_idp: TestIdp,
        sp: SpConfig,
        metadata: IdpMetadata,
    }

    fn fixture() -> &'static Fixture {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        FIXTURE.get_or_init(|| {
            let idp = TestIdp::generate(IDP_ENTITY, IDP_SSO).unwrap();
            let other_idp = TestIdp::generate(IDP_ENTITY, IDP_SSO).unwrap();
            let (signing_key_pem, signing_cert_pem) =
                self_signed_key_and_cert("sp", false).unwrap();
            let (enc_key, enc_cert) = self_signed_key_and_cert("sp-enc", false).unwrap();
            let sp = SpConfig {
                entity_id: SP_ENTITY.into(),
                acs_url: ACS.into(),
                slo_url: Some(format!("{SP_ENTITY}/slo")),
                signing_key_pem,
                signing_cert_pem,
                encryption_key_pem: Some(enc_key),
                encryption_cert_pem: Some(enc_cert),
                max_clock_skew_secs: 60,
                allow_idp_initiated: false,
            };
            let metadata = parse_idp_metadata(&idp.metadata_xml()).unwrap();
            Fixture {
                idp,
                other_idp,
                sp,
                metadata,
            }
        })
    }

    fn options() -> ResponseOptions {
        ResponseOptions::valid_for(ACS, SP_ENTITY, Some(REQUEST_ID), "alice@corp.example", NOW)
            .unwrap()
    }

    fn verify(o: &ResponseOptions) -> Result<VerifiedAssertion, SamlError> {
        let f = fixture();
        let response = f.idp.response(o).unwrap();
        verify_response(&f.sp, &f.metadata, &response, Some(REQUEST_ID), NOW)
    }

    #[test]
    fn a_valid_signed_assertion_verifies_and_yields_name_id_attributes_and_session_index() {
        let mut o = options();
        o.session_index = Some("_session-1".into());
        o.attributes = vec![
            (
                "urn:oid:0.9.2342.19200300.100.1.3".into(),
                vec!["alice@corp.example".into()],
            ),
            ("groups".into(), vec!["admins".into(), "staff".into()]),
        ];
        o.attribute_friendly_names =
            vec![("urn:oid:0.9.2342.19200300.100.1.3".into(), "mail".into())];
        let v = verify(&o).unwrap();
        assert_eq!(v.name_id, "alice@corp.example");
        assert_eq!(
            v.name_id_format.as_deref(),
            Some("urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified")
        );
        assert_eq!(v.session_index.as_deref(), Some("_session-1"));
        assert_eq!(v.issuer, IDP_ENTITY);
        assert_eq!(v.assertion_id, o.assertion_id);
        assert_eq!(v.in_response_to.as_deref(), Some(REQUEST_ID));
        assert_eq!(v.not_on_or_after, NOW + 300 + 60);
        assert_eq!(
            v.attributes,
            vec![
                (
                    "urn:oid:0.9.2342.19200300.100.1.3".to_string(),
                    vec!["alice@corp.example".to_string()]
                ),
                ("mail".to_string(), vec!["alice@corp.example".to_string()]),
                (
                    "groups".to_string(),
                    vec!["admins".to_string(), "staff".to_string()]
                ),
            ]
        );
    }

    #[test]
    fn a_signed_response_with_an_unsigned_assertion_verifies() {
        let mut o = options();
        o.sign_response = true;
        o.sign_assertion = false;
        assert_eq!(verify(&o).unwrap().name_id, "alice@corp.example");
    }

    #[test]
    fn a_response_with_both_response_and_assertion_signed_verifies() {
        let mut o = options();
        o.sign_response = true;
        assert_eq!(verify(&o).unwrap().name_id, "alice@corp.example");
    }

    #[test]
    fn an_ec_p256_idp_signature_verifies() {
        let f = fixture();
        let idp = TestIdp::generate_ec(IDP_ENTITY, IDP_SSO).unwrap();
        let metadata = parse_idp_metadata(&idp.metadata_xml()).unwrap();
        let mut o = options();
        o.sign_response = true;
        let response = idp.response(&o).unwrap();
        let v = verify_response(&f.sp, &metadata, &response, Some(REQUEST_ID), NOW).unwrap();
        assert_eq!(v.name_id, "alice@corp.example");
    }

    #[test]
    fn an_unsigned_response_is_refused() {
        let mut o = options();
        o.sign_assertion = false;
        assert_eq!(verify(&o), Err(SamlError::SignatureInvalid));
    }

    #[test]
    fn metadata_without_a_certificate_is_refused() {
        let f = fixture();
        let err = parse_idp_metadata(&f.idp.metadata_xml_without_certificate()).unwrap_err();
        assert_eq!(err, SamlError::MetadataNoSigningCertificate);
        assert_eq!(err.to_string(), "metadata has no signing certificate");
    }

    #[test]
    fn idp_metadata_yields_entity_id_and_endpoints() {
        let m = &fixture().metadata;
        assert_eq!(m.entity_id, IDP_ENTITY);
        assert_eq!(m.sso_redirect.as_deref(), Some(IDP_SSO));
        assert_eq!(m.sso_post.as_deref(), Some(IDP_SSO));
        assert_eq!(
            m.slo_redirect.as_deref(),
            Some("https://idp.example/saml/sso/slo")
        );
    }

    #[test]
    fn garbage_metadata_is_refused() {
        assert_eq!(
            parse_idp_metadata("<html/>").unwrap_err(),
            SamlError::MetadataUnparsable
        );
    }

    /// XML signature wrapping (an unsigned assertion injected beside the signed one): the
    /// Response must carry exactly one assertion, so it is refused before any signature work,
    /// and the injected identity never comes out.
    fn assert_wrapping_is_refused_as_a_second_assertion(o: &ResponseOptions) {
        assert_eq!(
            verify(o),
            Err(SamlError::Malformed("not a single-assertion SAML Response"))
        );
    }

    #[test]
    fn signature_wrapping_with_the_injected_assertion_after_the_signed_one_is_refused() {
        let mut o = options();
        o.wrap_with_unsigned_assertion = Some("mallory@evil.example".into());
        assert_wrapping_is_refused_as_a_second_assertion(&o);
    }

    #[test]
    fn signature_wrapping_with_the_injected_assertion_before_the_signed_one_is_refused() {
        let mut o = options();
        o.wrap_with_unsigned_assertion = Some("mallory@evil.example".into());
        o.injected_assertion_first = true;
        assert_wrapping_is_refused_as_a_second_assertion(&o);
    }

    #[test]
    fn signature_wrapping_of_a_signed_response_is_refused() {
        let mut o = options();
        o.sign_response = true;
        o.sign_assertion = false;
        o.wrap_with_unsigned_assertion = Some("mallory@evil.example".into());
        o.injected_assertion_first = true;
        assert_wrapping_is_refused_as_a_second_assertion(&o);
    }

    #[test]
    fn content_tampered_after_signing_is_refused() {
        let mut o = options();
        o.tamper_after_signing = true;
        assert_eq!(verify(&o), Err(SamlError::SignatureInvalid));
        o.sign_response = true;
        o.sign_assertion = false;
        assert_eq!(verify(&o), Err(SamlError::SignatureInvalid));
    }

    #[test]
    fn a_wrong_audience_is_refused() {
        let mut o = options();
        o.audience = "https://other-sp.example".into();
        assert_eq!(verify(&o), Err(SamlError::AudienceMismatch));
    }

    #[test]
    fn a_wrong_destination_is_refused() {
        let mut o = options();
        o.destination = "https://evil.example/acs".into();
        assert_eq!(verify(&o), Err(SamlError::DestinationMismatch));
        o.sign_response = true;
        assert_eq!(verify(&o), Err(SamlError::DestinationMismatch));
    }

    #[test]
    fn a_wrong_recipient_is_refused() {
        let mut o = options();
        o.recipient = "https://evil.example/acs".into();
        assert_eq!(verify(&o), Err(SamlError::RecipientMismatch));
    }

    #[test]
    fn an_assertion_expired_beyond_the_skew_is_refused() {
        let mut o = options();
        o.issue_instant = NOW - 200;
        o.not_before = NOW - 200;
        o.not_on_or_after = NOW - 61;
        assert_eq!(verify(&o), Err(SamlError::Expired));
        assert_eq!(SamlError::Expired.to_string(), "assertion expired");
    }

    #[test]
    fn an_assertion_expired_within_the_skew_is_accepted() {
        let mut o = options();
        o.issue_instant = NOW - 200;
        o.not_before = NOW - 200;
        o.not_on_or_after = NOW - 59;
        assert!(verify(&o).is_ok());
    }

    #[test]
    fn an_assertion_issued_too_long_ago_is_refused() {
        let mut o = options();
        o.issue_instant = NOW - 3600;
        o.not_before = NOW - 3600;
        o.not_on_or_after = NOW + 3600;
        assert_eq!(verify(&o), Err(SamlError::IssuedTooLongAgo));
    }

    #[test]
    fn a_not_yet_valid_assertion_is_refused() {
        let mut o = options();
        o.issue_instant = NOW + 120;
        o.not_before = NOW + 120;
        o.not_on_or_after = NOW + 600;
        assert_eq!(verify(&o), Err(SamlError::NotYetValid));
    }

    #[test]
    fn an_in_response_to_mismatch_is_refused() {
        let mut o = options();
        o.in_response_to = Some("_someone-elses-request".into());
        assert_eq!(verify(&o), Err(SamlError::InResponseToMismatch));
    }

    #[test]
    fn an_unsolicited_response_is_refused_unless_idp_initiated_login_is_allowed() {
        let f = fixture();
        let mut o = options();
        o.in_response_to = None;
        let response = f.idp.response(&o).unwrap();
        assert_eq!(
            verify_response(&f.sp, &f.metadata, &response, None, NOW),
            Err(SamlError::Unsolicited)
        );
        let mut sp = f.sp.clone();
        sp.allow_idp_initiated = true;
        let v = verify_response(&sp, &f.metadata, &response, None, NOW).unwrap();
        assert_eq!(v.in_response_to, None);
        // A response to some other request is not an unsolicited one.
        let solicited = f.idp.response(&options()).unwrap();
        assert_eq!(
            verify_response(&sp, &f.metadata, &solicited, None, NOW),
            Err(SamlError::InResponseToMismatch)
        );
    }

    #[test]
    fn a_response_signed_by_another_key_is_refused() {
        let f = fixture();
        let response = f.other_idp.response(&options()).unwrap();
        assert_eq!(
            verify_response(&f.sp, &f.metadata, &response, Some(REQUEST_ID), NOW),
            Err(SamlError::SignatureInvalid)
        );
    }

    #[test]
    fn a_response_from_another_issuer_is_refused() {
        let f = fixture();
        let idp = TestIdp::generate("https://other-idp.example", IDP_SSO).unwrap();
        // Metadata claims IDP_ENTITY but carries this IdP's certificate.
        let metadata = parse_idp_metadata(
            &idp.metadata_xml()
                .replace("https://other-idp.example", IDP_ENTITY),
        )
        .unwrap();
        let response = idp.response(&options()).unwrap();
        assert_eq!(
            verify_response(&f.sp, &metadata, &response, Some(REQUEST_ID), NOW),
            Err(SamlError::IssuerMismatch)
        );
    }

    #[test]
    fn a_non_success_status_is_refused() {
        let mut o = options();
        o.status_code = "urn:oasis:names:tc:SAML:2.0:status:Requester".into();
        o.sign_assertion = false;
        assert_eq!(
            verify(&o),
            Err(SamlError::Status(
                "urn:oasis:names:tc:SAML:2.0:status:Requester".into()
            ))
        );
    }

    #[test]
    fn an_encrypted_assertion_decrypts_when_the_sp_has_the_key() {
        let f = fixture();
        let mut o = options();
        o.sign_response = true;
        o.encrypt_for_cert_pem = f.sp.encryption_cert_pem.clone();
        o.attributes = vec![("mail".into(), vec!["alice@corp.example".into()])];
        let v = verify(&o).unwrap();
        assert_eq!(v.name_id, "alice@corp.example");
        assert_eq!(
            v.attributes,
            vec![("mail".to_string(), vec!["alice@corp.example".to_string()])]
        );

        let mut sp = f.sp.clone();
        sp.encryption_key_pem = None;
        let response = f.idp.response(&o).unwrap();
        assert_eq!(
            verify_response(&sp, &f.metadata, &response, Some(REQUEST_ID), NOW),
            Err(SamlError::UnexpectedEncryptedAssertion)
        );
    }

    #[test]
    fn an_aes128_cbc_encrypted_assertion_decrypts() {
        let f = fixture();
        let mut o = options();
        o.sign_response = true;
        o.encrypt_for_cert_pem = f.sp.encryption_cert_pem.clone();
        o.encrypt_with_aes128_cbc = true;
        for name in ["alice@corp.example", "bob@corp.example.", "carol"] {
            o.name_id = name.into();
            assert_eq!(verify(&o).unwrap().name_id, name);
        }
    }

    #[test]
    fn an_encrypted_assertion_in_an_unsigned_response_is_refused() {
        let f = fixture();
        let mut o = options();
        o.encrypt_for_cert_pem = f.sp.encryption_cert_pem.clone();
        assert_eq!(verify(&o), Err(SamlError::SignatureInvalid));
    }

    /// Splits the query at `&Signature=` and verifies it with the SP certificate (bindings §3.4.4.1).
    fn redirect_signature_verifies(url: &str, cert_pem: &str) -> bool {
        let (_, query) = url.split_once('?').unwrap();
        let (signed, signature) = query.split_once("&Signature=").unwrap();
        let signature: String = url::form_urlencoded::parse(format!("s={signature}").as_bytes())
            .next()
            .unwrap()
            .1
            .into_owned();
        let mut signature = B64.decode(signature).unwrap();
        let key = X509::from_pem(cert_pem.as_bytes())
            .unwrap()
            .public_key()
            .unwrap();
        if key.id() == Id::EC {
            let (r, s) = signature.split_at(32);
            let sig = EcdsaSig::from_private_components(
                openssl::bn::BigNum::from_slice(r).unwrap(),
                openssl::bn::BigNum::from_slice(s).unwrap(),
            )
            .unwrap();
            signature = sig.to_der().unwrap();
        }
        let mut verifier = openssl::sign::Verifier::new(MessageDigest::sha256(), &key).unwrap();
        verifier.update(signed.as_bytes()).unwrap();
        verifier.verify(&signature).unwrap()
    }

    fn query_param(url: &str, name: &str) -> Option<String> {
        url::Url::parse(url)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    fn inflate(b64: &str) -> String {
        let mut out = String::new();
        flate2::read::DeflateDecoder::new(&B64.decode(b64).unwrap()[..])
            .read_to_string(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn the_redirect_url_carries_a_signature_that_verifies_with_the_sp_certificate() {
        let f = fixture();
        let url = authn_request_redirect(&f.sp, &f.metadata, REQUEST_ID, "st+ate/&=", NOW).unwrap();
        assert!(url.starts_with(&format!("{IDP_SSO}?SAMLRequest=")));
        assert!(redirect_signature_verifies(&url, &f.sp.signing_cert_pem));
        assert_eq!(
            query_param(&url, "RelayState").as_deref(),
            Some("st+ate/&=")
        );
        assert_eq!(query_param(&url, "SigAlg").as_deref(), Some(SIG_RSA_SHA256));

        let xml = inflate(&query_param(&url, "SAMLRequest").unwrap());
        let request: samael::schema::AuthnRequest = xml.parse().unwrap();
        assert_eq!(request.id, REQUEST_ID);
        assert_eq!(request.assertion_consumer_service_url.as_deref(), Some(ACS));
        assert_eq!(request.destination.as_deref(), Some(IDP_SSO));
        assert_eq!(request.issuer_value().as_deref(), Some(SP_ENTITY));
        assert_eq!(request.issue_instant.timestamp(), NOW);

        let tampered = url.replace("RelayState=", "RelayState=x");
        assert!(!redirect_signature_verifies(
            &tampered,
            &f.sp.signing_cert_pem
        ));
    }

    #[test]
    fn an_ec_p256_sp_key_signs_redirects_as_raw_r_and_s() {
        let f = fixture();
        let (key, cert) = self_signed_key_and_cert("sp-ec", true).unwrap();
        let mut sp = f.sp.clone();
        sp.signing_key_pem = key;
        sp.signing_cert_pem = cert;
        let url = authn_request_redirect(&sp, &f.metadata, REQUEST_ID, "", NOW).unwrap();
        assert_eq!(
            query_param(&url, "SigAlg").as_deref(),
            Some(SIG_ECDSA_SHA256)
        );
        assert_eq!(query_param(&url, "RelayState"), None);
        assert!(redirect_signature_verifies(&url, &sp.signing_cert_pem));
    }

    #[test]
    fn an_overlong_relay_state_is_refused() {
        let f = fixture();
        let relay = "r".repeat(81);
        assert_eq!(
            authn_request_redirect(&f.sp, &f.metadata, REQUEST_ID, &relay, NOW),
            Err(SamlError::RelayStateTooLong)
        );
    }

    #[test]
    fn a_request_id_that_is_not_an_xsd_id_is_refused() {
        let f = fixture();
        assert_eq!(
            authn_request_redirect(&f.sp, &f.metadata, "1\"><x", "", NOW),
            Err(SamlError::InvalidRequestId)
        );
    }

    #[test]
    fn new_request_ids_are_128_bit_xsd_ids() {
        let a = new_request_id().unwrap();
        let b = new_request_id().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 33);
        assert!(is_ncname(&a));
    }

    #[test]
    fn the_post_authn_request_carries_an_enveloped_signature_by_the_sp_key() {
        let f = fixture();
        let (destination, b64) = authn_request_post(&f.sp, &f.metadata, REQUEST_ID, NOW).unwrap();
        assert_eq!(destination, IDP_SSO);
        let xml = String::from_utf8(B64.decode(b64).unwrap()).unwrap();
        let request: samael::schema::AuthnRequest = xml.parse().unwrap();
        assert_eq!(request.id, REQUEST_ID);
        assert!(request.signature.is_some());
        let cert = X509::from_pem(f.sp.signing_cert_pem.as_bytes()).unwrap();
        let der = samael::crypto::CertificateDer::from(cert.to_der().unwrap());
        Crypto::verify_signed_xml(&xml, &der, Some("ID")).unwrap();
        let tampered = xml.replace(ACS, "https://evil.example/acs");
        assert!(Crypto::verify_signed_xml(&tampered, &der, Some("ID")).is_err());
    }

    #[test]
    fn the_logout_request_url_is_signed_and_names_the_session() {
        let f = fixture();
        let url = logout_request_redirect(
            &f.sp,
            &f.metadata,
            "alice@corp.example",
            Some("urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"),
            Some("_session-1"),
            "",
            NOW,
        )
        .unwrap()
        .unwrap();
        assert!(url.starts_with("https://idp.example/saml/sso/slo?SAMLRequest="));
        assert!(redirect_signature_verifies(&url, &f.sp.signing_cert_pem));
        let xml = inflate(&query_param(&url, "SAMLRequest").unwrap());
        assert!(xml.contains(r#"<saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified">alice@corp.example</saml:NameID><samlp:SessionIndex>_session-1</samlp:SessionIndex>"#));

        let mut no_slo = f.metadata.clone();
        no_slo.slo_redirect = None;
        assert_eq!(
            logout_request_redirect(&f.sp, &no_slo, "alice", None, None, "", NOW),
            Ok(None)
        );
    }

    #[test]
    fn sp_metadata_parses_back_with_samael_and_names_the_acs_and_keys() {
        let f = fixture();
        let xml = sp_metadata_xml(&f.sp).unwrap();
        let parsed: EntityDescriptor = xml.parse().unwrap();
        assert_eq!(parsed.entity_id.as_deref(), Some(SP_ENTITY));
        let sp = &parsed.sp_sso_descriptors.unwrap()[0];
        assert_eq!(sp.authn_requests_signed, Some(true));
        assert_eq!(sp.want_assertions_signed, Some(true));
        assert_eq!(sp.assertion_consumer_services[0].location, ACS);
        assert_eq!(sp.assertion_consumer_services[0].binding, HTTP_POST_BINDING);
        let slo = sp.single_logout_services.as_ref().unwrap();
        assert_eq!(slo[0].binding, HTTP_REDIRECT_BINDING);
        let uses: Vec<_> = sp
            .key_descriptors
            .as_ref()
            .unwrap()
            .iter()
            .map(|k| k.key_use.clone().unwrap())
            .collect();
        assert_eq!(uses, vec!["signing", "encryption"]);
    }

    #[test]
    fn samael_alone_returns_the_signed_assertion_of_a_wrapped_response() {
        let f = fixture();
        for injected_first in [false, true] {
            let mut o = options();
            o.wrap_with_unsigned_assertion = Some("mallory@evil.example".into());
            o.injected_assertion_first = injected_first;
            let xml = String::from_utf8(B64.decode(f.idp.response(&o).unwrap()).unwrap()).unwrap();
            let samael_sp = samael_sp(&f.sp, &f.metadata, false).unwrap();
            let assertion = samael_sp
                .parse_xml_response(&xml, Some(&[REQUEST_ID]))
                .unwrap();
            assert_eq!(
                assertion.subject.unwrap().name_id.unwrap().value,
                "alice@corp.example"
            );
        }
    }

    #[test]
    fn a_signed_assertion_hidden_in_extensions_beside_an_injected_one_is_refused() {
        let f = fixture();
        let o = options();
        let xml = String::from_utf8(B64.decode(f.idp.response(&o).unwrap()).unwrap()).unwrap();
        let start = xml.find("<saml:Assertion").unwrap();
        let end = xml.rfind("</samlp:Response>").unwrap();
        let signed = xml[start..end].to_string();
        let sig_start = signed.find("<ds:Signature").unwrap();
        let sig_end = signed.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
        let evil = format!("{}{}", &signed[..sig_start], &signed[sig_end..])
            .replace("alice@corp.example", "mallory@evil.example")
            .replace(&o.assertion_id, "_evil");
        let wrapped = xml.replace(
            &signed,
            &format!("<samlp:Extensions>{signed}</samlp:Extensions>{evil}"),
        );
        let result = verify_response(
            &f.sp,
            &f.metadata,
            &B64.encode(wrapped),
            Some(REQUEST_ID),
            NOW,
        );
        assert_eq!(
            result,
            Err(SamlError::Malformed("assertion is not the Response's own"))
        );
    }

    #[test]
    fn sp_config_debug_redacts_keys() {
        let f = fixture();
        let debug = format!("{:?}", f.sp);
        assert!(!debug.contains("PRIVATE KEY"));
        assert!(debug.contains("<redacted>"));
    }
}
