//! `[[saml_service_providers]]`: the SAML 2.0 applications a tenant signs users in to, as their
//! identity provider. Each registration is checked whole when the file loads: entity id, ACS
//! endpoints (never an unregistered URL at run time), certificates (inline PEM or an operator's
//! file), NameID format and attribute mapping.
//!
//! The same checker takes the registrations made at runtime ([`SamlSpDefinition`], the admin API
//! and `portcullis saml-sps`): the same keys without the `*_file` ones. An SP with a
//! `metadata_url` is completed from its metadata (`crate::saml::metadata`), and only then
//! checked for consistency ([`check_complete`]).

use super::{
    KeyPath, SamlAcs, SamlAcsFile, SamlAttribute, SamlAttributeFile, SamlBinding, SamlNameIdFormat,
    SamlSp, SamlSpFile, TenantFile,
};
use crate::config::FileRoots;
use serde::{Deserialize, Serialize};

pub(super) fn service_providers(
    file: &TenantFile,
    files: &FileRoots,
    bad: &mut impl FnMut(KeyPath, String),
) -> Vec<SamlSp> {
    let mut out: Vec<SamlSp> = Vec::new();
    for (i, s) in file.saml_service_providers.iter().enumerate() {
        let k = KeyPath::root().key("saml_service_providers").index(i);
        if out.iter().any(|o| o.entity_id == s.entity_id) {
            bad(
                k.key("entity_id"),
                format!("`{}` is registered twice", s.entity_id),
            );
        }
        out.push(service_provider(s, Some(files), &k, bad));
    }
    out
}

/// A service provider registration as the admin API and `portcullis saml-sps` take it: the
/// keys of `[[saml_service_providers]]` without the `*_file` ones. A network caller can name
/// no file: certificates are inline PEM, or come from `metadata_url`. Unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlSpDefinition {
    pub entity_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acs: Vec<SamlAcsFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo_binding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_id_format: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<SamlAttributeFile>,
    #[serde(default)]
    pub sign_response: bool,
    #[serde(default)]
    pub encrypt_assertions: bool,
    #[serde(default)]
    pub require_signed_requests: bool,
    #[serde(default)]
    pub allow_sha1: bool,
    #[serde(default)]
    pub allow_idp_initiated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_relay_state: Option<String>,
    #[serde(default)]
    pub require_consent: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
}

impl From<SamlSpDefinition> for SamlSpFile {
    fn from(d: SamlSpDefinition) -> Self {
        SamlSpFile {
            entity_id: d.entity_id,
            display_name: d.display_name,
            logo_url: d.logo_url,
            acs: d.acs,
            slo_url: d.slo_url,
            slo_binding: d.slo_binding,
            signing_certificate: d.signing_certificate,
            signing_certificate_file: None,
            encryption_certificate: d.encryption_certificate,
            encryption_certificate_file: None,
            name_id_format: d.name_id_format,
            attributes: d.attributes,
            sign_response: d.sign_response,
            encrypt_assertions: d.encrypt_assertions,
            require_signed_requests: d.require_signed_requests,
            allow_sha1: d.allow_sha1,
            allow_idp_initiated: d.allow_idp_initiated,
            default_relay_state: d.default_relay_state,
            require_consent: d.require_consent,
            metadata_url: d.metadata_url,
            // A runtime SP is turned on and off by the admin API (`PATCH`), not in its definition.
            enabled: true,
        }
    }
}

/// Checks a runtime registration with the file loader's rules: the SP it describes, or every
/// problem as (key, message), keys relative to the registration (`acs[0].url`).
pub fn check_definition(def: &SamlSpDefinition) -> Result<SamlSp, Vec<(String, String)>> {
    let mut problems: Vec<(String, String)> = Vec::new();
    let sp = service_provider(
        &SamlSpFile::from(def.clone()),
        None,
        &KeyPath::root(),
        &mut |k: KeyPath, m: String| problems.push((k.to_string(), m)),
    );
    if problems.is_empty() {
        Ok(sp)
    } else {
        Err(problems)
    }
}

/// One registration (`files`: where an operator's file may name certificates; `None` for a
/// runtime one, which names none). With a `metadata_url`, what depends on the metadata is
/// checked once it is read ([`check_complete`]).
fn service_provider(
    s: &SamlSpFile,
    files: Option<&FileRoots>,
    k: &KeyPath,
    bad: &mut impl FnMut(KeyPath, String),
) -> SamlSp {
    // SAML core §8.3.6: an entity identifier is a URI of at most 1024 characters.
    if url::Url::parse(&s.entity_id).is_err() || s.entity_id.len() > 1024 {
        bad(
            k.key("entity_id"),
            "an entity id is an absolute URI of at most 1024 characters".into(),
        );
    }
    let acs = acs(s, k, bad);
    let slo = s.slo_url.as_ref().map(|u| {
        if let Err(m) = super::check_redirect_uri(u, false) {
            bad(k.key("slo_url"), m);
        }
        (
            u.clone(),
            binding(s.slo_binding.as_deref(), &k.key("slo_binding"), bad),
        )
    });
    let signing_certificate = certificate(
        s.signing_certificate.as_deref(),
        s.signing_certificate_file.as_deref(),
        files,
        k,
        "signing_certificate",
        bad,
    );
    let encryption_certificate = certificate(
        s.encryption_certificate.as_deref(),
        s.encryption_certificate_file.as_deref(),
        files,
        k,
        "encryption_certificate",
        bad,
    );
    // SAML metadata §2.4.4: fetched through the outbound guard (https only).
    if let Some(u) = &s.metadata_url
        && url::Url::parse(u).map_or(true, |p| p.scheme() != "https")
    {
        bad(
            k.key("metadata_url"),
            format!("`{u}` is not an absolute https URL"),
        );
    }
    let name_id_format = match s.name_id_format.as_deref() {
        None | Some("persistent") => SamlNameIdFormat::Persistent,
        Some("email") => SamlNameIdFormat::Email,
        Some("transient") => SamlNameIdFormat::Transient,
        Some("unspecified") => SamlNameIdFormat::Unspecified,
        Some(_) => {
            bad(
                k.key("name_id_format"),
                "`persistent` (default), `email`, `transient` or `unspecified`".into(),
            );
            SamlNameIdFormat::Persistent
        }
    };
    let attributes = attributes(s, k, bad);
    if s.allow_idp_initiated && acs.iter().all(|a| !a.default) && acs.len() > 1 {
        bad(
            k.key("acs"),
            "IdP-initiated sign-in posts to the default ACS: mark one `default = true`".into(),
        );
    }
    if s.default_relay_state.is_some() && !s.allow_idp_initiated {
        bad(
            k.key("default_relay_state"),
            "only for SPs with allow_idp_initiated".into(),
        );
    }
    // SAML bindings §3.5.3: a RelayState is at most 80 bytes.
    if s.default_relay_state.as_ref().is_some_and(|r| r.len() > 80) {
        bad(
            k.key("default_relay_state"),
            "a RelayState is at most 80 bytes (SAML bindings §3.5.3)".into(),
        );
    }
    if let Some(u) = &s.logo_url
        && !crate::ui::is_logo_url(u)
    {
        bad(
            k.key("logo_url"),
            "a logo is an https URL or a data:image/… URL".into(),
        );
    }
    let sp = SamlSp {
        entity_id: s.entity_id.clone(),
        enabled: s.enabled,
        display_name: s.display_name.clone(),
        logo_url: s.logo_url.clone(),
        acs,
        slo,
        signing_certificate,
        encryption_certificate,
        name_id_format,
        attributes,
        sign_response: s.sign_response,
        encrypt_assertions: s.encrypt_assertions,
        require_signed_requests: s.require_signed_requests,
        allow_sha1: s.allow_sha1,
        allow_idp_initiated: s.allow_idp_initiated,
        default_relay_state: s.default_relay_state.clone(),
        require_consent: s.require_consent,
        metadata_url: s.metadata_url.clone(),
        name_id_format_given: s.name_id_format.is_some(),
    };
    if sp.metadata_url.is_none() {
        check_complete(&sp, k, bad);
    }
    sp
}

/// What must hold of an SP as it is used: registered values, completed from its metadata
/// where it has one.
pub fn check_complete(sp: &SamlSp, k: &KeyPath, bad: &mut impl FnMut(KeyPath, String)) {
    if sp.acs.is_empty() {
        bad(
            k.key("acs"),
            "list at least one assertion consumer service: acs = [{ url = \"https://…\" }]".into(),
        );
    }
    if sp.acs.iter().filter(|a| a.default).count() > 1 {
        bad(k.key("acs"), "at most one ACS is the default".into());
    }
    // XML Encryption §5.5.2: the key goes to the SP with RSA-OAEP.
    if let Some(pem) = &sp.encryption_certificate
        && openssl::x509::X509::from_pem(pem.as_bytes())
            .and_then(|c| c.public_key())
            .and_then(|k| k.rsa())
            .map_or(true, |r| r.size() < 256)
    {
        bad(
            k.key("encryption_certificate"),
            "assertions are encrypted to an RSA key of at least 2048 bits".into(),
        );
    }
    if sp.encrypt_assertions && sp.encryption_certificate.is_none() {
        bad(
            k.key("encrypt_assertions"),
            "encrypting assertions needs the SP's encryption_certificate".into(),
        );
    }
    if sp.require_signed_requests && sp.signing_certificate.is_none() {
        bad(
            k.key("require_signed_requests"),
            "checking request signatures needs the SP's signing_certificate".into(),
        );
    }
    // SAML profiles §4.4.4.1: logout messages are signed; the SP's certificate checks them.
    if sp.slo.is_some() && sp.signing_certificate.is_none() {
        bad(
            k.key("slo_url"),
            "single logout needs the SP's signing_certificate (its logout messages are signed)"
                .into(),
        );
    }
    // SAML profiles §4.1.5: the unsolicited Response is posted (HTTP-POST) to the default ACS.
    if sp.allow_idp_initiated
        && super::default_acs(&sp.acs).is_some_and(|a| a.binding != SamlBinding::Post)
    {
        bad(
            k.key("acs"),
            "IdP-initiated sign-in posts the Response: the default ACS needs binding = \"post\""
                .into(),
        );
    }
}

fn acs(s: &SamlSpFile, k: &KeyPath, bad: &mut impl FnMut(KeyPath, String)) -> Vec<SamlAcs> {
    let mut out: Vec<SamlAcs> = Vec::new();
    for (j, a) in s.acs.iter().enumerate() {
        let ak = k.key("acs").index(j);
        if let Err(m) = super::check_redirect_uri(&a.url, false) {
            bad(ak.key("url"), m);
        }
        let index = a.index.unwrap_or(u16::try_from(j).unwrap_or(u16::MAX));
        if out.iter().any(|o| o.index == index) {
            bad(ak.key("index"), format!("index {index} is used twice"));
        }
        out.push(SamlAcs {
            url: a.url.clone(),
            binding: binding(a.binding.as_deref(), &ak.key("binding"), bad),
            index,
            default: a.default,
        });
    }
    out
}

fn binding(value: Option<&str>, k: &KeyPath, bad: &mut impl FnMut(KeyPath, String)) -> SamlBinding {
    match value {
        None | Some("post") => SamlBinding::Post,
        Some("redirect") => SamlBinding::Redirect,
        Some(_) => {
            bad(k.clone(), "`post` (default) or `redirect`".into());
            SamlBinding::Post
        }
    }
}

/// A certificate given inline (PEM) or in an operator's file, as PEM text; checked to be one
/// X.509 certificate. A runtime registration (`files` is `None`) names no file.
fn certificate(
    inline: Option<&str>,
    file: Option<&str>,
    files: Option<&FileRoots>,
    k: &KeyPath,
    name: &str,
    bad: &mut impl FnMut(KeyPath, String),
) -> Option<String> {
    let file_key = format!("{name}_file");
    let pem = match (inline, file, files) {
        (Some(p), None, _) => p.to_string(),
        (None, Some(_), None) => {
            bad(
                k.key(&file_key),
                "a runtime registration names no file; give the PEM inline".into(),
            );
            return None;
        }
        (None, Some(f), Some(files)) => match files
            .resolve(f)
            .and_then(|p| std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display())))
        {
            Ok(text) => text,
            Err(m) => {
                bad(k.key(&file_key), m);
                return None;
            }
        },
        (None, None, _) => return None,
        (Some(_), Some(_), _) => {
            bad(k.key(name), format!("give one of {name} and {file_key}"));
            return None;
        }
    };
    if pem_certificate(&pem) {
        Some(pem)
    } else {
        bad(
            k.key(name),
            "one X.509 certificate in PEM (-----BEGIN CERTIFICATE-----)".into(),
        );
        None
    }
}

/// Whether `pem` is exactly one X.509 certificate.
pub fn pem_certificate(pem: &str) -> bool {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    match CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<Vec<_>, _>>() {
        Ok(certs) => {
            certs.len() == 1
                && certs
                    .first()
                    .is_some_and(|c| x509_parser::parse_x509_certificate(c).is_ok())
        }
        Err(_) => false,
    }
}

fn attributes(
    s: &SamlSpFile,
    k: &KeyPath,
    bad: &mut impl FnMut(KeyPath, String),
) -> Vec<SamlAttribute> {
    let mut out: Vec<SamlAttribute> = Vec::new();
    for (j, a) in s.attributes.iter().enumerate() {
        let ak = k.key("attributes").index(j);
        let name_format = match a.name_format.as_deref() {
            None | Some("unspecified") => {
                "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified".to_string()
            }
            Some("uri") => "urn:oasis:names:tc:SAML:2.0:attrname-format:uri".to_string(),
            Some("basic") => "urn:oasis:names:tc:SAML:2.0:attrname-format:basic".to_string(),
            Some(_) => {
                bad(
                    ak.key("name_format"),
                    "`unspecified` (default), `uri` or `basic`".into(),
                );
                String::new()
            }
        };
        if a.name.is_empty() || a.claim.is_empty() {
            bad(ak.clone(), "an attribute maps a `claim` to a `name`".into());
        }
        // SAML core §2.7.3.1: a name with the URI format is a URI (`urn:oid:…`).
        if a.name_format.as_deref() == Some("uri") && url::Url::parse(&a.name).is_err() {
            bad(
                ak.key("name"),
                "with name_format = \"uri\" the name is a URI, e.g. urn:oid:0.9.2342.19200300.100.1.3"
                    .into(),
            );
        }
        if out.iter().any(|o| o.name == a.name) {
            bad(ak.key("name"), format!("`{}` is mapped twice", a.name));
        }
        out.push(SamlAttribute {
            claim: a.claim.clone(),
            name: a.name.clone(),
            name_format,
            friendly_name: a.friendly_name.clone(),
        });
    }
    out
}
