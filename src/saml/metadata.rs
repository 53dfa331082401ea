//! A service provider's own metadata (SAML metadata §2.4.4, `SPSSODescriptor`), read from its
//! `metadata_url` with the rules every SAML message here is read with: bounded in size, no
//! DTD (hence no entity of any kind), one `EntityDescriptor` naming the registered entity id.
//! The registration's own keys override what the metadata says ([`complete`]).

use crate::config::KeyPath;
use crate::config::tenant::{
    SamlAcs, SamlBinding, SamlNameIdFormat, SamlSp, check_complete, check_redirect_uri,
    pem_certificate,
};
use base64::Engine;

/// The largest SP metadata document read.
pub const MAX_METADATA_BYTES: usize = 256 * 1024;

/// SAML metadata §2.4.1: the protocol an SSO descriptor must support.
const SAML2_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";

/// What an SP's metadata says, as far as this IdP uses it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpMetadata {
    pub entity_id: String,
    /// AssertionConsumerService endpoints: (Binding, Location, index, isDefault).
    pub acs: Vec<(String, String, usize, Option<bool>)>,
    /// PEM certificates of `KeyDescriptor use="signing"` (or without `use`: both, §2.4.1.1).
    pub signing: Vec<String>,
    /// PEM certificates of `KeyDescriptor use="encryption"` (or without `use`).
    pub encryption: Vec<String>,
    /// SingleLogoutService endpoints: (Binding, Location).
    pub slo: Vec<(String, String)>,
    pub name_id_formats: Vec<String>,
    /// §2.4.4: the SP signs its AuthnRequests.
    pub authn_requests_signed: bool,
}

/// Whether `xml` declares a DTD or an entity (never expanded here: refused).
pub fn has_dtd(xml: &str) -> bool {
    let upper = xml.to_ascii_uppercase();
    upper.contains("<!DOCTYPE") || upper.contains("<!ENTITY")
}

/// Reads an SP's metadata; `now` for its `validUntil` (SAML metadata §2.3.2).
pub fn parse(xml: &str, now: i64) -> Result<SpMetadata, String> {
    if xml.len() > MAX_METADATA_BYTES {
        return Err(format!(
            "the metadata is larger than {MAX_METADATA_BYTES} bytes"
        ));
    }
    if has_dtd(xml) {
        return Err("metadata with a DOCTYPE is refused".into());
    }
    let d: samael::metadata::EntityDescriptor = xml
        .parse()
        .map_err(|_| "the metadata is not a SAML EntityDescriptor".to_string())?;
    let entity_id = d
        .entity_id
        .clone()
        .filter(|e| !e.is_empty())
        .ok_or("the metadata's EntityDescriptor has no entityID")?;
    if d.valid_until.is_some_and(|t| t.timestamp() <= now) {
        return Err("the metadata's validUntil has passed".into());
    }
    let sp = match d.sp_sso_descriptors.as_deref() {
        Some([one]) => one,
        Some([_, _, ..]) => return Err("the metadata has more than one SPSSODescriptor".into()),
        _ => return Err("the metadata has no SPSSODescriptor".into()),
    };
    if sp.valid_until.is_some_and(|t| t.timestamp() <= now) {
        return Err("the SPSSODescriptor's validUntil has passed".into());
    }
    if !sp
        .protocol_support_enumeration
        .as_deref()
        .is_some_and(|p| p.split_whitespace().any(|x| x == SAML2_PROTOCOL))
    {
        return Err(
            "the SPSSODescriptor does not support SAML 2.0 (protocolSupportEnumeration)".into(),
        );
    }
    let mut out = SpMetadata {
        entity_id,
        authn_requests_signed: sp.authn_requests_signed.unwrap_or(false),
        name_id_formats: sp
            .name_id_formats
            .iter()
            .flatten()
            .map(|f| f.trim().to_string())
            .collect(),
        acs: sp
            .assertion_consumer_services
            .iter()
            .map(|e| (e.binding.clone(), e.location.clone(), e.index, e.is_default))
            .collect(),
        slo: sp
            .single_logout_services
            .iter()
            .flatten()
            .map(|e| (e.binding.clone(), e.location.clone()))
            .collect(),
        ..SpMetadata::default()
    };
    for k in sp.key_descriptors.iter().flatten() {
        let certs = k
            .key_info
            .x509_data
            .iter()
            .flat_map(|x| x.certificates.iter());
        for b64 in certs {
            let pem = pem_of(b64)?;
            match k.key_use.as_deref() {
                Some("signing") => out.signing.push(pem),
                Some("encryption") => out.encryption.push(pem),
                None => {
                    out.signing.push(pem.clone());
                    out.encryption.push(pem);
                }
                Some(other) => {
                    return Err(format!("a KeyDescriptor has an unknown use `{other}`"));
                }
            }
        }
    }
    Ok(out)
}

/// An `X509Certificate` (base64 DER) as PEM, checked to be one certificate.
fn pem_of(b64: &str) -> Result<String, String> {
    let compact: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| "an X509Certificate is not base64".to_string())?;
    let pem = openssl::x509::X509::from_der(&der)
        .and_then(|c| c.to_pem())
        .ok()
        .and_then(|p| String::from_utf8(p).ok())
        .filter(|p| pem_certificate(p))
        .ok_or("an X509Certificate is not an X.509 certificate")?;
    Ok(pem)
}

/// The SP `base` (a registration with a `metadata_url`) completed from its metadata: ACS
/// endpoints, certificates and NameID format where the registration gives none, and
/// `AuthnRequestsSigned`; then checked as any registration is ([`check_complete`]). Problems
/// are reported under `k` (`metadata_url` for what the metadata says).
pub fn complete(
    base: &SamlSp,
    md: &SpMetadata,
    k: &KeyPath,
    bad: &mut impl FnMut(KeyPath, String),
) -> SamlSp {
    let at = k.key("metadata_url");
    let mut sp = base.clone();
    // SAML metadata §2.3.2: the metadata is about this entity, or it says nothing about it.
    if md.entity_id != base.entity_id {
        bad(
            at.clone(),
            format!(
                "the metadata is about `{}`, not this SP's entity id",
                md.entity_id
            ),
        );
        return sp;
    }
    if sp.acs.is_empty() {
        // SAML bindings §3.4 / §3.5: the bindings this IdP speaks; others (artifact, PAOS)
        // are left out.
        for (binding, location, index, is_default) in &md.acs {
            let binding = match binding.as_str() {
                b if b == SamlBinding::Post.urn() => SamlBinding::Post,
                b if b == SamlBinding::Redirect.urn() => SamlBinding::Redirect,
                _ => continue,
            };
            if let Err(m) = check_redirect_uri(location, false) {
                bad(at.clone(), format!("AssertionConsumerService {index}: {m}"));
                continue;
            }
            let Ok(index) = u16::try_from(*index) else {
                bad(
                    at.clone(),
                    format!("AssertionConsumerService index {index} is too large"),
                );
                continue;
            };
            if sp.acs.iter().any(|a| a.index == index) {
                bad(
                    at.clone(),
                    format!("AssertionConsumerService index {index} is used twice"),
                );
                continue;
            }
            sp.acs.push(SamlAcs {
                url: location.clone(),
                binding,
                index,
                default: is_default.unwrap_or(false),
            });
        }
        if sp.acs.is_empty() {
            bad(
                at.clone(),
                "the metadata has no AssertionConsumerService with the HTTP-POST or HTTP-Redirect binding"
                    .into(),
            );
        }
    }
    if sp.signing_certificate.is_none() {
        sp.signing_certificate = md.signing.first().cloned();
    }
    if sp.encryption_certificate.is_none() {
        sp.encryption_certificate = md.encryption.first().cloned();
    }
    if !sp.name_id_format_given
        && let Some(f) = md.name_id_formats.iter().find_map(|urn| {
            SamlNameIdFormat::ALL
                .into_iter()
                .find(|f| f.urn() == urn && *f != SamlNameIdFormat::Unspecified)
        })
    {
        sp.name_id_format = f;
    }
    // SAML metadata §2.4.4: an SP that says it signs its requests has them checked.
    sp.require_signed_requests |= md.authn_requests_signed;
    check_complete(&sp, k, bad);
    sp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(entity: &str, extra_sp: &str, extra_root: &str) -> String {
        format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity}" {extra_root}><md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" AuthnRequestsSigned="false">{extra_sp}<md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat><md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact" Location="https://sp.example/art" index="0"/><md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://sp.example/acs" index="1" isDefault="true"/></md:SPSSODescriptor></md:EntityDescriptor>"#
        )
    }

    #[test]
    fn metadata_gives_what_the_registration_leaves_out() {
        let md = parse(&metadata("https://sp.example", "", ""), 0).unwrap();
        let base = crate::config::tenant::check_definition(
            &serde_json::from_value(serde_json::json!({
                "entity_id": "https://sp.example",
                "metadata_url": "https://sp.example/md"
            }))
            .unwrap(),
        )
        .unwrap();
        let mut problems = Vec::new();
        let sp = complete(&base, &md, &KeyPath::root(), &mut |k, m| {
            problems.push(format!("{k}: {m}"))
        });
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(sp.acs.len(), 1, "the artifact binding is left out");
        assert_eq!(sp.acs[0].url, "https://sp.example/acs");
        assert_eq!(sp.acs[0].index, 1);
        assert!(sp.acs[0].default);
        assert_eq!(sp.name_id_format, SamlNameIdFormat::Email);
    }

    #[test]
    fn metadata_with_a_doctype_another_entity_or_too_old_is_refused() {
        let xml = metadata("https://sp.example", "", "");
        assert!(
            parse(&format!("<!DOCTYPE x [<!ENTITY e \"x\">]>{xml}"), 0)
                .unwrap_err()
                .contains("DOCTYPE")
        );
        assert!(
            parse(
                &metadata(
                    "https://sp.example",
                    "",
                    "validUntil=\"2001-01-01T00:00:00Z\""
                ),
                1_800_000_000
            )
            .unwrap_err()
            .contains("validUntil")
        );
        assert!(
            parse(&" ".repeat(MAX_METADATA_BYTES + 1), 0)
                .unwrap_err()
                .contains("larger")
        );
        let md = parse(&metadata("https://other.example", "", ""), 0).unwrap();
        let base = crate::config::tenant::check_definition(
            &serde_json::from_value(serde_json::json!({
                "entity_id": "https://sp.example",
                "metadata_url": "https://sp.example/md"
            }))
            .unwrap(),
        )
        .unwrap();
        let mut problems = Vec::new();
        complete(&base, &md, &KeyPath::root(), &mut |k, m| {
            problems.push(format!("{k}: {m}"))
        });
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("metadata_url:") && p.contains("other.example")),
            "{problems:?}"
        );
    }
}
