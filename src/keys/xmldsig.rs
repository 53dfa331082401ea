//! Enveloped XML signatures (XML-DSig 1.1 §6.6.4 enveloped-signature transform, §6.4.2
//! RSA-SHA256, over Exclusive XML Canonicalization 1.0) made with a tenant's loaded RS256
//! [`Signer`], for XML this server writes itself in its canonical form: no XML parser, no key
//! parsed per signature.
//!
//! The caller renders the signed element as Exclusive C14N (without comments) prints it after
//! the enveloped-signature transform (the `ds:Signature` left out): namespace declarations, then
//! attributes, each in lexicographic order (Canonical XML 1.0 §2.2–2.3; unqualified attributes
//! by local name), a namespace declared only where it is visibly utilized and not already
//! declared by an output ancestor (Exclusive C14N §3), no empty-element tags, and text and
//! attribute values escaped by [`c14n_text`] and [`c14n_attr`]. The digest is over exactly that
//! string.

use super::Signer;
use crate::error::InternalError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";

/// XML 1.0 §2.2 `Char`: what a document may contain at all.
fn xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn no_xml_char() -> InternalError {
    InternalError::Other(
        "a value for a signed XML document holds a character XML cannot carry".into(),
    )
}

/// Text content as Canonical XML 1.0 §2.3 prints it (`&`, `<`, `>`, CR as references), which a
/// parser reads back as the same text.
pub fn c14n_text(s: &str) -> Result<String, InternalError> {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c if xml_char(c) => out.push(c),
            _ => return Err(no_xml_char()),
        }
    }
    Ok(out)
}

/// An attribute value as Canonical XML 1.0 §2.3 prints it (`&`, `<`, `"`, TAB, LF, CR as
/// references, so that attribute-value normalization leaves them alone).
pub fn c14n_attr(s: &str) -> Result<String, InternalError> {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c if xml_char(c) => out.push(c),
            _ => return Err(no_xml_char()),
        }
    }
    Ok(out)
}

/// `SignedInfo` for one Reference to `#ref_id` (enveloped signature, then Exclusive C14N;
/// SHA-256), in canonical form when `canonical` (its own `xmlns:ds`, as the apex of what is
/// canonicalized), else as it sits inside `ds:Signature`, which declares the namespace.
fn signed_info(ref_id: &str, digest_b64: &str, canonical: bool) -> String {
    let ns = if canonical {
        format!(" xmlns:ds=\"{DSIG_NS}\"")
    } else {
        String::new()
    };
    format!(
        "<ds:SignedInfo{ns}><ds:CanonicalizationMethod Algorithm=\"{EXC_C14N}\"></ds:CanonicalizationMethod>\
         <ds:SignatureMethod Algorithm=\"{RSA_SHA256}\"></ds:SignatureMethod><ds:Reference URI=\"#{ref_id}\">\
         <ds:Transforms><ds:Transform Algorithm=\"{ENVELOPED}\"></ds:Transform>\
         <ds:Transform Algorithm=\"{EXC_C14N}\"></ds:Transform></ds:Transforms>\
         <ds:DigestMethod Algorithm=\"{SHA256}\"></ds:DigestMethod><ds:DigestValue>{digest_b64}</ds:DigestValue>\
         </ds:Reference></ds:SignedInfo>"
    )
}

/// The `ds:Signature` element (with the certificate `cert_der` in `KeyInfo`) that signs the
/// element with `ID="ref_id"` whose canonical form, without this signature, is `canonical`.
/// `signer` must be an RS256 key (RSASSA-PKCS1-v1_5 with SHA-256, XML-DSig's rsa-sha256).
pub fn enveloped_signature(
    signer: &Signer,
    cert_der: &[u8],
    ref_id: &str,
    canonical: &str,
) -> Result<String, InternalError> {
    if signer.alg != super::Alg::RS256 {
        return Err(InternalError::Crypto("XML signatures are RS256"));
    }
    let ref_id = c14n_attr(ref_id)?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    let digest_b64 = B64.encode(digest.as_ref());
    let signature = signer.sign(signed_info(&ref_id, &digest_b64, true).as_bytes())?;
    Ok(format!(
        "<ds:Signature xmlns:ds=\"{DSIG_NS}\">{}<ds:SignatureValue>{}</ds:SignatureValue>\
         <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data>\
         </ds:KeyInfo></ds:Signature>",
        signed_info(&ref_id, &digest_b64, false),
        B64.encode(signature),
        B64.encode(cert_der),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Alg;
    use crate::keys::signer::generate_pkcs8;
    use samael::crypto::{CertificateDer, Crypto, CryptoProvider};

    const KID: &str = "k1";

    fn key() -> (Signer, Vec<u8>) {
        let pkcs8 = generate_pkcs8(Alg::RS256, 2048).unwrap();
        let cert =
            crate::keys::certificate::saml_signing_certificate(&pkcs8, KID, 1_700_000_000).unwrap();
        (Signer::from_pkcs8(Alg::RS256, &pkcs8).unwrap(), cert)
    }

    /// An element in canonical form with everything that differs between a document and its
    /// canonical form: namespaces declared above where they are used, an attribute needing
    /// references, text with markup characters, a quote and a CR.
    fn document(value: &str, attr: &str, signer: &Signer, cert: &[u8]) -> String {
        let text = c14n_text(value).unwrap();
        let attr = c14n_attr(attr).unwrap();
        let body = |sig: &str, canonical: bool| {
            let (root_ns, value_ns) = if canonical {
                (
                    "",
                    " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"",
                )
            } else {
                (
                    " xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"",
                    "",
                )
            };
            format!(
                "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\"{root_ns} ID=\"_a1\" \
                 Version=\"2.0\"><saml:Issuer>https://idp.example</saml:Issuer>{sig}\
                 <saml:Attribute FriendlyName=\"{attr}\" Name=\"n\"><saml:AttributeValue{value_ns} \
                 xsi:type=\"xs:string\">{text}</saml:AttributeValue></saml:Attribute>\
                 <saml:Audience></saml:Audience></saml:Assertion>"
            )
        };
        let sig = enveloped_signature(signer, cert, "_a1", &body("", true)).unwrap();
        body(&sig, false)
    }

    #[test]
    fn xmlsec_verifies_a_signature_over_the_canonical_form_and_tampering_breaks_it() {
        let (signer, cert) = key();
        let xml = document(
            "a & b < c > d \"quoted\" 'single'\r\nnext\tline é",
            "tab\there \"q\" <lt> & amp\nLF\rCR 'apos'",
            &signer,
            &cert,
        );
        let der = CertificateDer::from(cert);
        Crypto::verify_signed_xml(&xml, &der, Some("ID")).unwrap();
        let tampered = xml.replace("next", "nexT");
        assert!(Crypto::verify_signed_xml(&tampered, &der, Some("ID")).is_err());
        let other = CertificateDer::from(key().1);
        assert!(Crypto::verify_signed_xml(&xml, &other, Some("ID")).is_err());
    }

    #[test]
    fn what_xml_cannot_carry_is_refused() {
        assert!(c14n_text("a\u{1}b").is_err());
        assert!(c14n_attr("\u{FFFE}").is_err());
        assert_eq!(c14n_text("\u{10000}").unwrap(), "\u{10000}");
    }

    #[test]
    fn only_rs256_signs() {
        let pkcs8 = generate_pkcs8(Alg::ES256, 2048).unwrap();
        let es = Signer::from_pkcs8(Alg::ES256, &pkcs8).unwrap();
        assert!(enveloped_signature(&es, b"", "_a", "<a></a>").is_err());
    }
}
