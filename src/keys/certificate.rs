//! The X.509 certificate a SAML peer knows a tenant's RSA signing key by (SAML metadata
//! §2.4.1.1 KeyDescriptor). Made from the key itself, self-signed, and the same on every node:
//! its serial comes from the key id, its validity from when the key starts signing, and
//! RSASSA-PKCS1-v1_5 signatures are deterministic. A rotated key brings its own certificate.

use crate::error::InternalError;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_RSA_SHA256, SerialNumber};
use rustls::pki_types::PrivatePkcs8KeyDer;

/// How long a signing certificate is valid: the key is retired long before (SAML peers rarely
/// check the validity of metadata certificates; those that do must not see it lapse).
const VALIDITY: i64 = 20 * 365 * 86_400;

/// The self-signed certificate (DER) of the RSA key `pkcs8` with id `kid`, valid from
/// `not_before` (unix time).
pub fn saml_signing_certificate(
    pkcs8: &[u8],
    kid: &str,
    not_before: i64,
) -> Result<Vec<u8>, InternalError> {
    let fail = |_| InternalError::Crypto("SAML signing certificate");
    let key = KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(pkcs8.to_vec()),
        &PKCS_RSA_SHA256,
    )
    .map_err(fail)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("Portcullis SAML signing key {kid}"),
    );
    params.distinguished_name = dn;
    let time = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t)
            .map_err(|_| InternalError::Crypto("SAML signing certificate validity"))
    };
    params.not_before = time(not_before)?;
    params.not_after = time(not_before.saturating_add(VALIDITY))?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, kid.as_bytes());
    // RFC 5280 §4.1.2.2: a positive integer of at most 20 octets.
    let mut serial = digest.as_ref().get(..16).unwrap_or_default().to_vec();
    if let Some(first) = serial.first_mut() {
        *first &= 0x7f;
    }
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok(cert.der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Alg, Signer, signer::generate_pkcs8};

    #[test]
    fn a_keys_certificate_is_the_same_every_time_and_carries_that_key() {
        let pkcs8 = generate_pkcs8(Alg::RS256, 2048).unwrap();
        let a = saml_signing_certificate(&pkcs8, "k1", 1_700_000_000).unwrap();
        let b = saml_signing_certificate(&pkcs8, "k1", 1_700_000_000).unwrap();
        assert_eq!(a, b, "every node makes the same certificate");
        let (_, cert) = x509_parser::parse_x509_certificate(&a).unwrap();
        let jwk = Signer::from_pkcs8(Alg::RS256, &pkcs8).unwrap().public_jwk();
        let rsa = match cert.public_key().parsed().unwrap() {
            x509_parser::public_key::PublicKey::RSA(r) => r,
            _ => panic!("not an RSA key"),
        };
        use base64::Engine;
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwk["n"].as_str().unwrap())
            .unwrap();
        let trimmed = rsa
            .modulus
            .iter()
            .skip_while(|b| **b == 0)
            .copied()
            .collect::<Vec<_>>();
        assert_eq!(trimmed, n);
        assert_eq!(cert.validity().not_before.timestamp(), 1_700_000_000);
        // Self-signed: the signature verifies with its own key (OpenSSL, not the signer).
        let x = openssl::x509::X509::from_der(&a).unwrap();
        assert!(x.verify(&x.public_key().unwrap()).unwrap());
    }
}
