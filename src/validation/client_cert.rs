//! Client certificates as client credentials (RFC 8705 §2): a chain to the tenant's trust
//! anchors with the registered subject (`tls_client_auth`), or a registered self-signed
//! certificate (`self_signed_tls_client_auth`). The TLS layer only proved key possession.

use crate::config::tenant::TlsSubject;
use base64::Engine;
use rustls::pki_types::{CertificateDer, UnixTime};
use serde_json::Value;
use std::time::Duration;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// RFC 8705 §2.1: the chain validates to a trust anchor (for client authentication, at `now`)
/// and the end entity carries the registered subject attribute.
pub fn pki_matches(
    anchors: &[CertificateDer<'static>],
    chain: &[CertificateDer<'static>],
    subject: &TlsSubject,
    now: i64,
) -> Result<(), &'static str> {
    let (end_entity, intermediates) = chain.split_first().ok_or("no certificate")?;
    let trust: Vec<_> = anchors
        .iter()
        .filter_map(|a| webpki::anchor_from_trusted_cert(a).ok())
        .collect();
    if trust.is_empty() {
        return Err("the tenant has no usable trust anchor");
    }
    let ee = webpki::EndEntityCert::try_from(end_entity).map_err(|_| "unparsable certificate")?;
    let time = UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(now).unwrap_or(0)));
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &trust,
        intermediates,
        time,
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map_err(|_| "the certificate does not chain to a trusted CA, or is expired")?;
    let (_, cert) =
        X509Certificate::from_der(end_entity.as_ref()).map_err(|_| "unparsable certificate")?;
    if subject_matches(&cert, subject) {
        Ok(())
    } else {
        Err("the certificate's subject is not the registered one")
    }
}

fn subject_matches(cert: &X509Certificate<'_>, subject: &TlsSubject) -> bool {
    let sans = || {
        cert.subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| ext.value.general_names.clone())
            .unwrap_or_default()
    };
    match subject {
        TlsSubject::SubjectDn(dn) => dn_matches(&cert.subject().to_string(), dn),
        TlsSubject::SanDns(want) => sans()
            .iter()
            .any(|n| matches!(n, GeneralName::DNSName(d) if d.eq_ignore_ascii_case(want))),
        TlsSubject::SanUri(want) => sans()
            .iter()
            .any(|n| matches!(n, GeneralName::URI(u) if u == want)),
        TlsSubject::SanEmail(want) => sans()
            .iter()
            .any(|n| matches!(n, GeneralName::RFC822Name(e) if e.eq_ignore_ascii_case(want))),
        TlsSubject::SanIp(want) => {
            let Ok(ip) = want.parse::<std::net::IpAddr>() else {
                return false;
            };
            let bytes = match ip {
                std::net::IpAddr::V4(v) => v.octets().to_vec(),
                std::net::IpAddr::V6(v) => v.octets().to_vec(),
            };
            sans()
                .iter()
                .any(|n| matches!(n, GeneralName::IPAddress(b) if *b == bytes.as_slice()))
        }
    }
}

/// Distinguished names compared attribute by attribute (type case-insensitive, values exactly),
/// in certificate order or in RFC 4514 string order (which is reversed).
fn dn_matches(cert_dn: &str, registered: &str) -> bool {
    let parts = |s: &str| -> Vec<(String, String)> {
        s.split(',')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_uppercase(), v.trim().to_string()))
            .collect()
    };
    let have = parts(cert_dn);
    let mut want = parts(registered);
    if have.is_empty() || want.is_empty() {
        return false;
    }
    if have == want {
        return true;
    }
    want.reverse();
    have == want
}

/// RFC 8705 §2.2: the presented certificate is one registered for the client (an `x5c` of its
/// JWK Set, compared by DER), and it is within its validity period.
pub fn self_signed_matches(jwks: &Value, cert: &CertificateDer<'_>, now: i64) -> bool {
    let registered = jwks
        .get("keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|k| k.get("x5c").and_then(Value::as_array)?.first()?.as_str())
        .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok());
    let mut known = false;
    for der in registered {
        if aws_lc_rs::constant_time::verify_slices_are_equal(&der, cert.as_ref()).is_ok() {
            known = true;
            break;
        }
    }
    if !known {
        return false;
    }
    X509Certificate::from_der(cert.as_ref()).is_ok_and(|(_, c)| {
        let v = c.validity();
        v.not_before.timestamp() <= now && now <= v.not_after.timestamp()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinguished_names_match_in_either_order_with_any_spacing() {
        let cert = "CN=acme-mtls, O=Portcullis development";
        assert!(dn_matches(cert, "CN=acme-mtls,O=Portcullis development"));
        assert!(dn_matches(cert, "O=Portcullis development, CN=acme-mtls"));
        assert!(dn_matches(cert, "cn=acme-mtls, o=Portcullis development"));
        assert!(!dn_matches(cert, "CN=acme-mtls"));
        assert!(!dn_matches(cert, "CN=acme-mtls2, O=Portcullis development"));
    }
}
