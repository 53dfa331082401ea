//! TEST HELPER, not for production: a minimal SAML IdP that issues real, signed (and optionally
//! encrypted) Responses, with switches for every malformed or hostile case (forged and wrapped
//! signatures, tampering after signing). It exists so the gateway's tests can run a full SAML
//! login in-process.
//!
//! Built only for tests: `cfg(test)` for the library's own unit tests, the `test-idp` cargo
//! feature for the integration tests (Cargo.toml turns it on through the crate's dev-dependency
//! on itself). The release binary must not contain it: `scripts/test` builds the binary as
//! shipped and fails when [`SHIPPED_MARKER`] is found in it.

use super::{
    ASSERTION_NS, B64, BEARER, HTTP_POST_BINDING, HTTP_REDIRECT_BINDING, PROTOCOL_NS,
    STATUS_SUCCESS, SamlError, SigningKey, new_request_id, saml_instant, xml_escape,
};
use base64::Engine as _;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::{Padding, Rsa};
use openssl::symm::{Cipher, encrypt, encrypt_aead};
use openssl::x509::{X509, X509NameBuilder};

/// Bytes that only this module puts into a binary: `scripts/test` fails when the binary built as
/// shipped contains them, and `tests/it/architecture.rs` checks that a test build does (so the
/// search can find them). `#[used]` keeps the static through linking although nothing reads it.
#[used]
pub static SHIPPED_MARKER: [u8; 37] = *b"portcullis:saml-test-idp:not-for-prod";

/// A fresh key pair and self-signed certificate: `(PKCS#8 key PEM, certificate PEM)`.
/// `ec` selects P-256 instead of RSA-2048. Handy for `SpConfig` in tests.
pub fn self_signed_key_and_cert(
    common_name: &str,
    ec: bool,
) -> Result<(String, String), SamlError> {
    let (pkey, cert) = generate_key_and_cert(common_name, ec)?;
    let key_pem = String::from_utf8(pkey.private_key_to_pem_pkcs8()?)
        .map_err(|_| SamlError::Crypto("PEM is not UTF-8".into()))?;
    let cert_pem = String::from_utf8(cert.to_pem()?)
        .map_err(|_| SamlError::Crypto("PEM is not UTF-8".into()))?;
    Ok((key_pem, cert_pem))
}

fn generate_key_and_cert(common_name: &str, ec: bool) -> Result<(PKey<Private>, X509), SamlError> {
    let pkey = if ec {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        PKey::from_ec_key(EcKey::generate(&group)?)?
    } else {
        PKey::from_rsa(Rsa::generate(2048)?)?
    };
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, common_name)?;
    let name = name.build();
    let mut serial = BigNum::new()?;
    serial.rand(127, openssl::bn::MsbOption::MAYBE_ZERO, false)?;
    let mut builder = X509::builder()?;
    builder.set_version(2)?;
    builder.set_serial_number(serial.to_asn1_integer()?.as_ref())?;
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(&name)?;
    builder.set_pubkey(&pkey)?;
    builder.set_not_before(Asn1Time::days_from_now(0)?.as_ref())?;
    builder.set_not_after(Asn1Time::days_from_now(3650)?.as_ref())?;
    builder.sign(&pkey, MessageDigest::sha256())?;
    Ok((pkey, builder.build()))
}

/// A test IdP with its own signing key and self-signed certificate.
pub struct TestIdp {
    pub entity_id: String,
    pub sso_url: String,
    pub slo_url: String,
    key: SigningKey,
}

/// Everything that goes into one Response. Start from `ResponseOptions::valid_for` and change
/// one field to produce a bad case.
#[derive(Clone, Debug)]
pub struct ResponseOptions {
    pub destination: String,
    pub recipient: String,
    pub audience: String,
    pub in_response_to: Option<String>,
    pub name_id: String,
    pub attributes: Vec<(String, Vec<String>)>,
    /// Attribute Name -> FriendlyName.
    pub attribute_friendly_names: Vec<(String, String)>,
    pub issue_instant: i64,
    pub not_before: i64,
    pub not_on_or_after: i64,
    pub assertion_id: String,
    pub session_index: Option<String>,
    pub status_code: String,
    pub sign_response: bool,
    pub sign_assertion: bool,
    /// After signing, inject an unsigned assertion for this NameID (signature wrapping).
    pub wrap_with_unsigned_assertion: Option<String>,
    /// Put the injected assertion before (true) or after (false) the signed one.
    pub injected_assertion_first: bool,
    /// After signing, change the NameID text.
    pub tamper_after_signing: bool,
    /// Encrypt the assertion (RSA-OAEP + AES-128-GCM) for this certificate (PEM).
    pub encrypt_for_cert_pem: Option<String>,
    /// Use AES-128-CBC (PKCS#7-style padding) instead of AES-128-GCM.
    pub encrypt_with_aes128_cbc: bool,
}

impl ResponseOptions {
    /// A valid response for `acs_url` / `audience`: signed assertion, unsigned Response,
    /// issued at `now`, valid for five minutes.
    pub fn valid_for(
        acs_url: &str,
        audience: &str,
        in_response_to: Option<&str>,
        name_id: &str,
        now: i64,
    ) -> Result<Self, SamlError> {
        Ok(ResponseOptions {
            destination: acs_url.to_string(),
            recipient: acs_url.to_string(),
            audience: audience.to_string(),
            in_response_to: in_response_to.map(str::to_string),
            name_id: name_id.to_string(),
            attributes: Vec::new(),
            attribute_friendly_names: Vec::new(),
            issue_instant: now,
            not_before: now,
            not_on_or_after: now + 300,
            assertion_id: new_request_id()?,
            session_index: Some(new_request_id()?),
            status_code: STATUS_SUCCESS.to_string(),
            sign_response: false,
            sign_assertion: true,
            wrap_with_unsigned_assertion: None,
            injected_assertion_first: false,
            tamper_after_signing: false,
            encrypt_for_cert_pem: None,
            encrypt_with_aes128_cbc: false,
        })
    }
}

impl TestIdp {
    /// Fresh RSA-2048 key and self-signed certificate.
    pub fn generate(entity_id: &str, sso_url: &str) -> Result<TestIdp, SamlError> {
        Self::generate_with(entity_id, sso_url, false)
    }

    /// Fresh EC P-256 key and self-signed certificate.
    pub fn generate_ec(entity_id: &str, sso_url: &str) -> Result<TestIdp, SamlError> {
        Self::generate_with(entity_id, sso_url, true)
    }

    fn generate_with(entity_id: &str, sso_url: &str, ec: bool) -> Result<TestIdp, SamlError> {
        let (pkey, cert) = generate_key_and_cert("Portcullis test IdP", ec)?;
        Ok(TestIdp {
            entity_id: entity_id.to_string(),
            sso_url: sso_url.to_string(),
            slo_url: format!("{}/slo", sso_url.trim_end_matches('/')),
            key: SigningKey::from_parts(pkey, &cert)?,
        })
    }

    /// IDPSSODescriptor with a signing KeyDescriptor, SSO (Redirect + POST), SLO (Redirect).
    pub fn metadata_xml(&self) -> String {
        let key = format!(
            r#"<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#,
            B64.encode(&self.key.cert_der)
        );
        self.metadata(&key)
    }

    /// The same metadata without any KeyDescriptor (must be refused by the SP).
    pub fn metadata_xml_without_certificate(&self) -> String {
        self.metadata("")
    }

    fn metadata(&self, key_descriptor: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}"><md:IDPSSODescriptor WantAuthnRequestsSigned="true" protocolSupportEnumeration="{PROTOCOL_NS}">{key_descriptor}<md:SingleLogoutService Binding="{HTTP_REDIRECT_BINDING}" Location="{slo}"/><md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified</md:NameIDFormat><md:SingleSignOnService Binding="{HTTP_REDIRECT_BINDING}" Location="{sso}"/><md:SingleSignOnService Binding="{HTTP_POST_BINDING}" Location="{sso}"/></md:IDPSSODescriptor></md:EntityDescriptor>"#,
            entity = xml_escape(&self.entity_id),
            slo = xml_escape(&self.slo_url),
            sso = xml_escape(&self.sso_url),
        )
    }

    /// A base64 `SAMLResponse` built from `o`.
    pub fn response(&self, o: &ResponseOptions) -> Result<String, SamlError> {
        let mut assertion = self.assertion_xml(o, &o.name_id, &o.assertion_id, o.sign_assertion)?;
        if o.sign_assertion {
            assertion = strip_xml_declaration(&self.key.sign_xml(&assertion)?).to_string();
        }
        if let Some(cert_pem) = &o.encrypt_for_cert_pem {
            assertion = encrypt_assertion(&assertion, cert_pem, o.encrypt_with_aes128_cbc)?;
        }

        let response_id = new_request_id()?;
        let in_response_to = o
            .in_response_to
            .as_ref()
            .map(|id| format!(r#" InResponseTo="{}""#, xml_escape(id)))
            .unwrap_or_default();
        let signature = if o.sign_response {
            self.key.signature_template(&response_id)
        } else {
            String::new()
        };
        let mut xml = format!(
            r#"<samlp:Response xmlns:samlp="{PROTOCOL_NS}" xmlns:saml="{ASSERTION_NS}" ID="{response_id}" Version="2.0" IssueInstant="{instant}" Destination="{destination}"{in_response_to}><saml:Issuer>{issuer}</saml:Issuer>{signature}<samlp:Status><samlp:StatusCode Value="{status}"/></samlp:Status>{assertion}</samlp:Response>"#,
            instant = saml_instant(o.issue_instant)?,
            destination = xml_escape(&o.destination),
            issuer = xml_escape(&self.entity_id),
            status = xml_escape(&o.status_code),
        );
        if o.sign_response {
            xml = self.key.sign_xml(&xml)?;
        }

        if let Some(evil_name) = &o.wrap_with_unsigned_assertion {
            let injected = self.assertion_xml(o, evil_name, &new_request_id()?, false)?;
            let at = if o.injected_assertion_first {
                xml.find("<saml:Assertion")
                    .or_else(|| xml.find("<saml:EncryptedAssertion"))
            } else {
                xml.rfind("</samlp:Response>")
            };
            let at = at.ok_or(SamlError::Malformed("no place to inject an assertion"))?;
            xml.insert_str(at, &injected);
        }
        if o.tamper_after_signing {
            let original = format!(">{}</saml:NameID>", xml_escape(&o.name_id));
            xml = xml.replacen(&original, ">mallory@evil.example</saml:NameID>", 1);
        }
        Ok(B64.encode(xml))
    }

    fn assertion_xml(
        &self,
        o: &ResponseOptions,
        name_id: &str,
        assertion_id: &str,
        with_signature_template: bool,
    ) -> Result<String, SamlError> {
        let instant = saml_instant(o.issue_instant)?;
        let not_before = saml_instant(o.not_before)?;
        let not_on_or_after = saml_instant(o.not_on_or_after)?;
        let signature = if with_signature_template {
            self.key.signature_template(assertion_id)
        } else {
            String::new()
        };
        let in_response_to = o
            .in_response_to
            .as_ref()
            .map(|id| format!(r#" InResponseTo="{}""#, xml_escape(id)))
            .unwrap_or_default();
        let session_index = o
            .session_index
            .as_ref()
            .map(|s| format!(r#" SessionIndex="{}""#, xml_escape(s)))
            .unwrap_or_default();
        let mut attributes = String::new();
        for (name, values) in &o.attributes {
            let friendly = o
                .attribute_friendly_names
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, f)| format!(r#" FriendlyName="{}""#, xml_escape(f)))
                .unwrap_or_default();
            attributes.push_str(&format!(
                r#"<saml:Attribute Name="{}"{friendly} NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri">"#,
                xml_escape(name)
            ));
            for value in values {
                attributes.push_str(&format!(
                    r#"<saml:AttributeValue xsi:type="xs:string">{}</saml:AttributeValue>"#,
                    xml_escape(value)
                ));
            }
            attributes.push_str("</saml:Attribute>");
        }
        let attribute_statement = if attributes.is_empty() {
            String::new()
        } else {
            format!("<saml:AttributeStatement>{attributes}</saml:AttributeStatement>")
        };
        Ok(format!(
            r#"<saml:Assertion xmlns:saml="{ASSERTION_NS}" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ID="{id}" Version="2.0" IssueInstant="{instant}"><saml:Issuer>{issuer}</saml:Issuer>{signature}<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified">{name_id}</saml:NameID><saml:SubjectConfirmation Method="{BEARER}"><saml:SubjectConfirmationData NotOnOrAfter="{not_on_or_after}" Recipient="{recipient}"{in_response_to}/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{not_before}" NotOnOrAfter="{not_on_or_after}"><saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="{instant}"{session_index}><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>{attribute_statement}</saml:Assertion>"#,
            id = xml_escape(assertion_id),
            issuer = xml_escape(&self.entity_id),
            name_id = xml_escape(name_id),
            recipient = xml_escape(&o.recipient),
            audience = xml_escape(&o.audience),
        ))
    }
}

/// XML Encryption: RSA-OAEP-MGF1P key transport; AES-128-GCM (IV || ciphertext || tag) or
/// AES-128-CBC (IV || ciphertext, PKCS#7-style padding, which XML Encryption §5.2 allows).
fn encrypt_assertion(assertion: &str, cert_pem: &str, cbc: bool) -> Result<String, SamlError> {
    let cert = X509::from_pem(cert_pem.as_bytes())?;
    let rsa = cert.public_key()?.rsa()?;
    let mut key = [0u8; 16];
    openssl::rand::rand_bytes(&mut key)?;
    let (algorithm, value) = if cbc {
        let mut iv = [0u8; 16];
        openssl::rand::rand_bytes(&mut iv)?;
        let ciphertext = encrypt(Cipher::aes_128_cbc(), &key, Some(&iv), assertion.as_bytes())?;
        let mut value = iv.to_vec();
        value.extend(ciphertext);
        ("http://www.w3.org/2001/04/xmlenc#aes128-cbc", value)
    } else {
        let mut iv = [0u8; 12];
        openssl::rand::rand_bytes(&mut iv)?;
        let mut tag = [0u8; 16];
        let ciphertext = encrypt_aead(
            Cipher::aes_128_gcm(),
            &key,
            Some(&iv),
            &[],
            assertion.as_bytes(),
            &mut tag,
        )?;
        let mut value = iv.to_vec();
        value.extend(ciphertext);
        value.extend(tag);
        ("http://www.w3.org/2009/xmlenc11#aes128-gcm", value)
    };
    let mut wrapped = vec![0u8; rsa.size() as usize];
    let n = rsa.public_encrypt(&key, &mut wrapped, Padding::PKCS1_OAEP)?;
    wrapped.truncate(n);
    Ok(format!(
        r#"<saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Type="http://www.w3.org/2001/04/xmlenc#Element"><xenc:EncryptionMethod Algorithm="{algorithm}"/><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"/><xenc:CipherData><xenc:CipherValue>{key}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue>{value}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData></saml:EncryptedAssertion>"#,
        key = B64.encode(wrapped),
        value = B64.encode(value),
    ))
}

/// Drops a leading `<?xml …?>` declaration so a signed element can be embedded in another document.
fn strip_xml_declaration(xml: &str) -> &str {
    let trimmed = xml.trim_start();
    if trimmed.starts_with("<?xml")
        && let Some(end) = trimmed.find("?>")
    {
        return trimmed.get(end + 2..).unwrap_or_default().trim_start();
    }
    trimmed
}
