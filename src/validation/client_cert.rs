//! Client certificates as client credentials (RFC 8705 §2): a chain to the tenant's trust
//! anchors with the registered subject (`tls_client_auth`), or a registered self-signed
//! certificate (`self_signed_tls_client_auth`). The TLS layer only proved key possession.

use super::dn;
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

/// RFC 8705 §2.1.2: the registered subject, compared as data (see `validation::dn`): the
/// subject DN as RDN sequences, a SAN entry of the registered kind by its value.
fn subject_matches(cert: &X509Certificate<'_>, subject: &TlsSubject) -> bool {
    let sans = || {
        cert.subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| ext.value.general_names.clone())
            .unwrap_or_default()
    };
    match subject {
        TlsSubject::SubjectDn(dn) => dn.matches(cert.subject()),
        TlsSubject::SanDns(want) => sans()
            .iter()
            .any(|n| matches!(n, GeneralName::DNSName(d) if dn::dns_name_matches(d, want))),
        TlsSubject::SanUri(want) => sans()
            .iter()
            .any(|n| matches!(n, GeneralName::URI(u) if u == want)),
        TlsSubject::SanEmail(want) => sans()
            .iter()
            .any(|n| matches!(n, GeneralName::RFC822Name(e) if dn::email_matches(e, want))),
        TlsSubject::SanIp(want) => sans()
            .iter()
            .any(|n| matches!(n, GeneralName::IPAddress(b) if dn::ip_matches(b, *want))),
    }
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
    use crate::validation::dn::DistinguishedName;

    /// A certificate with `dn` (in certificate order) and `sans`, parsed back.
    fn cert(dn: &[(rcgen::DnType, &str)], sans: Vec<rcgen::SanType>) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            params.distinguished_name.push(t.clone(), *v);
        }
        params.subject_alt_names = sans;
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn matches(der: &[u8], subject: TlsSubject) -> bool {
        let (_, c) = X509Certificate::from_der(der).unwrap();
        subject_matches(&c, &subject)
    }

    fn dn(s: &str) -> TlsSubject {
        TlsSubject::SubjectDn(DistinguishedName::parse(s).unwrap())
    }

    #[test]
    fn distinguished_names_match_in_either_order_with_any_spacing() {
        use rcgen::DnType::{CommonName as CN, OrganizationName as O};
        let der = cert(&[(CN, "acme-mtls"), (O, "Portcullis development")], vec![]);
        assert!(matches(&der, dn("CN=acme-mtls,O=Portcullis development")));
        assert!(matches(&der, dn("O=Portcullis development, CN=acme-mtls")));
        assert!(matches(&der, dn("cn=acme-mtls, o=Portcullis development")));
        assert!(matches(
            &der,
            dn("CN = ACME-mtls , O = portcullis  development")
        ));
        assert!(!matches(&der, dn("CN=acme-mtls")));
        assert!(!matches(
            &der,
            dn("CN=acme-mtls2, O=Portcullis development")
        ));
        assert!(!matches(&der, dn("CN=acme-mtls+O=Portcullis development")));
        let spoof = cert(&[(CN, "acme-mtls, O=Portcullis development")], vec![]);
        assert!(!matches(
            &spoof,
            dn("CN=acme-mtls, O=Portcullis development")
        ));
        assert!(matches(
            &spoof,
            dn(r"CN=acme-mtls\, O=Portcullis development")
        ));
    }

    #[test]
    fn san_entries_match_as_data() {
        let der = cert(
            &[],
            vec![
                rcgen::SanType::DnsName("Svc.Acme.Test".try_into().unwrap()),
                rcgen::SanType::IpAddress("10.1.2.3".parse().unwrap()),
                rcgen::SanType::URI("https://svc.acme.test/id".try_into().unwrap()),
                rcgen::SanType::Rfc822Name("Ops@ACME.test".try_into().unwrap()),
            ],
        );
        assert!(matches(&der, TlsSubject::SanDns("svc.acme.test".into())));
        assert!(!matches(&der, TlsSubject::SanDns("acme.test".into())));
        assert!(matches(
            &der,
            TlsSubject::SanIp("10.1.2.3".parse().unwrap())
        ));
        assert!(!matches(
            &der,
            TlsSubject::SanIp("10.1.2.4".parse().unwrap())
        ));
        assert!(matches(
            &der,
            TlsSubject::SanUri("https://svc.acme.test/id".into())
        ));
        assert!(!matches(
            &der,
            TlsSubject::SanUri("https://SVC.acme.test/id".into())
        ));
        assert!(matches(&der, TlsSubject::SanEmail("Ops@acme.test".into())));
        assert!(!matches(&der, TlsSubject::SanEmail("ops@acme.test".into())));
        // A trailing dot is no way around the registered name.
        let dotted = cert(
            &[],
            vec![rcgen::SanType::DnsName(
                "svc.acme.test.".try_into().unwrap(),
            )],
        );
        assert!(!matches(
            &dotted,
            TlsSubject::SanDns("svc.acme.test".into())
        ));
    }
}
