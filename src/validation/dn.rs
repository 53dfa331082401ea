//! Certificate names as data, for `tls_client_auth` (RFC 8705 §2.1.2).
//!
//! A registered subject DN is written in the RFC 4514 string syntax and parsed when the tenant
//! file loads into a sequence of RDNs, each a set of (attribute type OID, value). A certificate's
//! subject is read from its DER the same way. The two are compared as data: attribute types by
//! OID, string values with their RFC 4517 equality rule after RFC 4518 string preparation, and
//! multi-valued RDNs as sets. A formatted string is never compared: a CN whose value contains
//! `, O=…` is one attribute, not two.
//!
//! SAN entries are compared as data too: DNS names label by label, IP addresses as bytes, URIs
//! exactly, email addresses with the domain case-insensitive.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use unicode_normalization::UnicodeNormalization;
use x509_parser::asn1_rs::{Any, Class, FromDer, Tag};
use x509_parser::x509::X509Name;

/// A distinguished name parsed from its RFC 4514 string form. Serialized as that string.
#[derive(Clone, PartialEq)]
pub struct DistinguishedName {
    text: String,
    /// In the order written (RFC 4514 order: the last RDN of the certificate's sequence first,
    /// though the certificate's own order is accepted too, see [`Self::matches`]).
    rdns: Vec<Rdn>,
}

/// A relative distinguished name: a set of attribute type and value pairs (X.501 §9.3).
#[derive(Debug, Clone, PartialEq)]
struct Rdn(Vec<Ava>);

#[derive(Debug, Clone, PartialEq)]
struct Ava {
    /// Dotted-decimal OID, canonical (no leading zeros).
    oid: String,
    value: AttrValue,
}

#[derive(Debug, Clone, PartialEq)]
enum AttrValue {
    /// A string-typed value (any of the ASN.1 string types), decoded.
    Text(String),
    /// Any other ASN.1 value, compared by tag and content.
    Other { class: u8, tag: u32, data: Vec<u8> },
    /// A string type whose content does not decode: matches nothing (RFC 4517 Undefined).
    Undecodable,
}

/// Why a DN string was refused (the message of a configuration error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DnError(String);

fn fail<T>(m: impl Into<String>) -> Result<T, DnError> {
    Err(DnError(m.into()))
}

impl std::fmt::Debug for DistinguishedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DistinguishedName({:?})", self.text)
    }
}

impl std::fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for DistinguishedName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for DistinguishedName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Attribute type names (RFC 4514 §3, RFC 4519, RFC 2985 and X.520), matched without regard to
/// case, with their OIDs.
const NAMES: &[(&str, &str)] = &[
    ("cn", "2.5.4.3"),
    ("commonname", "2.5.4.3"),
    ("sn", "2.5.4.4"),
    ("surname", "2.5.4.4"),
    ("serialnumber", "2.5.4.5"),
    ("c", "2.5.4.6"),
    ("countryname", "2.5.4.6"),
    ("l", "2.5.4.7"),
    ("localityname", "2.5.4.7"),
    ("st", "2.5.4.8"),
    ("stateorprovincename", "2.5.4.8"),
    ("street", "2.5.4.9"),
    ("streetaddress", "2.5.4.9"),
    ("o", "2.5.4.10"),
    ("organizationname", "2.5.4.10"),
    ("ou", "2.5.4.11"),
    ("organizationalunitname", "2.5.4.11"),
    ("title", "2.5.4.12"),
    ("businesscategory", "2.5.4.15"),
    ("postalcode", "2.5.4.17"),
    ("name", "2.5.4.41"),
    ("gn", "2.5.4.42"),
    ("givenname", "2.5.4.42"),
    ("initials", "2.5.4.43"),
    ("generationqualifier", "2.5.4.44"),
    ("dnqualifier", "2.5.4.46"),
    ("pseudonym", "2.5.4.65"),
    ("organizationidentifier", "2.5.4.97"),
    ("uid", "0.9.2342.19200300.100.1.1"),
    ("userid", "0.9.2342.19200300.100.1.1"),
    ("dc", "0.9.2342.19200300.100.1.25"),
    ("domaincomponent", "0.9.2342.19200300.100.1.25"),
    ("emailaddress", "1.2.840.113549.1.9.1"),
    ("jurisdictionc", "1.3.6.1.4.1.311.60.2.1.3"),
    ("jurisdictionst", "1.3.6.1.4.1.311.60.2.1.2"),
    ("jurisdictionl", "1.3.6.1.4.1.311.60.2.1.1"),
];

/// Attribute types whose equality rule is caseIgnoreMatch or caseIgnoreIA5Match (RFC 4519,
/// RFC 2985 §B.3.5, CA/Browser Forum EV guidelines §9.2.4): every named type above.
fn case_ignore(oid: &str) -> bool {
    NAMES.iter().any(|(_, o)| *o == oid)
}

impl DistinguishedName {
    /// Parses the RFC 4514 string syntax: `,` between RDNs, `+` between the attributes of a
    /// multi-valued RDN, `type=value` with a name from [`NAMES`] or a numeric OID, values with
    /// the escapes `\,` `\+` `\"` `\\` `\<` `\>` `\;` `\=` `\#` `\ ` and `\XX` (UTF-8 bytes), or
    /// `#` and the hex of the value's BER encoding (§2.4). Unescaped spaces around separators are
    /// ignored, as most DN writers put one after each comma.
    pub fn parse(text: &str) -> Result<Self, DnError> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let mut rdns = Vec::new();
        let mut rdn = Vec::new();
        p.skip_spaces();
        if p.at_end() {
            return fail("a distinguished name needs at least one attribute");
        }
        loop {
            p.skip_spaces();
            let oid = p.attribute_type()?;
            p.skip_spaces();
            if !p.eat(b'=') {
                return fail(format!("`=` expected after the attribute type at {}", p.i));
            }
            p.skip_spaces();
            let value = p.value()?;
            rdn.push(Ava { oid, value });
            p.skip_spaces();
            match p.next() {
                None => {
                    rdns.push(Rdn(std::mem::take(&mut rdn)));
                    break;
                }
                Some(b'+') => {}
                Some(b',') => rdns.push(Rdn(std::mem::take(&mut rdn))),
                Some(c) => {
                    return fail(format!(
                        "unexpected `{}` at {}: escape it with a backslash",
                        char::from(c),
                        p.i.saturating_sub(1)
                    ));
                }
            }
        }
        Ok(Self {
            text: text.to_string(),
            rdns,
        })
    }

    /// True if `name` (a certificate's subject) is this DN: the same RDNs in the certificate's
    /// order, or in the reverse order (RFC 4514 §2.1 writes the last RDN first; registrations
    /// are accepted either way). Each RDN is compared as a set.
    pub fn matches(&self, name: &X509Name<'_>) -> bool {
        let have: Vec<Rdn> = name
            .iter()
            .map(|rdn| {
                Rdn(rdn
                    .iter()
                    .map(|a| Ava {
                        oid: a.attr_type().to_id_string(),
                        value: value_of(a.attr_value()),
                    })
                    .collect())
            })
            .collect();
        self.matches_rdns(&have)
    }

    fn matches_rdns(&self, have: &[Rdn]) -> bool {
        let same = |want: &mut dyn Iterator<Item = &Rdn>| {
            have.len() == self.rdns.len() && have.iter().zip(want).all(|(h, w)| rdn_eq(h, w))
        };
        same(&mut self.rdns.iter()) || same(&mut self.rdns.iter().rev())
    }
}

/// X.501 §9.3: an RDN is a set; the same attributes in any order, each used once.
fn rdn_eq(a: &Rdn, b: &Rdn) -> bool {
    if a.0.len() != b.0.len() {
        return false;
    }
    let mut used = vec![false; b.0.len()];
    a.0.iter().all(|x| {
        let found =
            b.0.iter()
                .zip(used.iter_mut())
                .find(|(y, u)| !**u && ava_eq(x, y));
        match found {
            Some((_, u)) => {
                *u = true;
                true
            }
            None => false,
        }
    })
}

fn ava_eq(a: &Ava, b: &Ava) -> bool {
    if a.oid != b.oid {
        return false;
    }
    match (&a.value, &b.value) {
        (AttrValue::Text(x), AttrValue::Text(y)) if case_ignore(&a.oid) => {
            match (prepare(x), prepare(y)) {
                (Some(x), Some(y)) => x == y,
                // RFC 4517 §4.2: a value that cannot be prepared matches nothing.
                _ => false,
            }
        }
        // No known equality rule: the exact value.
        (AttrValue::Text(x), AttrValue::Text(y)) => x == y,
        (
            AttrValue::Other {
                class: c1,
                tag: t1,
                data: d1,
            },
            AttrValue::Other {
                class: c2,
                tag: t2,
                data: d2,
            },
        ) => c1 == c2 && t1 == t2 && d1 == d2,
        _ => false,
    }
}

/// RFC 4518 string preparation for caseIgnoreMatch: map (§2.2: controls and joiners to nothing,
/// other spaces to SPACE), case fold (RFC 3454 table B.2), NFKC (§2.3), prohibit (§2.4:
/// unassigned, private use, non-characters, surrogates, U+FFFD), then insignificant space
/// handling (§2.6.1): leading and trailing spaces dropped, inner runs of spaces made one.
/// `None` for a prohibited string.
fn prepare(s: &str) -> Option<String> {
    let prepared = if s.is_empty() {
        String::new()
    } else {
        let folded = stringprep::x520prep(s, true).ok()?;
        folded.nfkc().collect()
    };
    let words: Vec<&str> = prepared.split(' ').filter(|w| !w.is_empty()).collect();
    Some(words.join(" "))
}

/// A certificate's (or a `#hex` value's) ASN.1 value as data: the string types decoded to text.
fn value_of(any: &Any<'_>) -> AttrValue {
    let data = any.data;
    if any.class() != Class::Universal {
        return other(any);
    }
    let ascii = || {
        if data.is_ascii() {
            std::str::from_utf8(data)
                .map(|s| AttrValue::Text(s.to_string()))
                .unwrap_or(AttrValue::Undecodable)
        } else {
            AttrValue::Undecodable
        }
    };
    match any.tag() {
        Tag::Utf8String => std::str::from_utf8(data)
            .map(|s| AttrValue::Text(s.to_string()))
            .unwrap_or(AttrValue::Undecodable),
        Tag::PrintableString | Tag::Ia5String | Tag::NumericString | Tag::VisibleString => ascii(),
        // T.61 is not ASCII beyond its ASCII subset; anything else is not compared.
        Tag::TeletexString => ascii(),
        Tag::BmpString => {
            if !data.len().is_multiple_of(2) {
                return AttrValue::Undecodable;
            }
            let units = data.chunks_exact(2).map(|c| {
                u16::from_be_bytes([
                    c.first().copied().unwrap_or(0),
                    c.get(1).copied().unwrap_or(0),
                ])
            });
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .map(AttrValue::Text)
                .unwrap_or(AttrValue::Undecodable)
        }
        Tag::UniversalString => {
            if !data.len().is_multiple_of(4) {
                return AttrValue::Undecodable;
            }
            data.chunks_exact(4)
                .map(|c| {
                    let mut b = [0u8; 4];
                    b.copy_from_slice(c);
                    char::from_u32(u32::from_be_bytes(b))
                })
                .collect::<Option<String>>()
                .map(AttrValue::Text)
                .unwrap_or(AttrValue::Undecodable)
        }
        _ => other(any),
    }
}

fn other(any: &Any<'_>) -> AttrValue {
    AttrValue::Other {
        class: any.class() as u8,
        tag: any.tag().0,
        data: any.data.to_vec(),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    /// RFC 4514 §3: `descr` (a name, case-insensitive) or `numericoid`.
    fn attribute_type(&mut self) -> Result<String, DnError> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
        {
            self.i += 1;
        }
        let word =
            std::str::from_utf8(self.s.get(start..self.i).unwrap_or_default()).unwrap_or_default();
        if word.is_empty() {
            return fail(format!("an attribute type is expected at {start}"));
        }
        if word.as_bytes().first().is_some_and(u8::is_ascii_digit) {
            // numericoid = number 1*( DOT number ), number = DIGIT / ( LDIGIT 1*DIGIT )
            let ok = word.split('.').count() >= 2
                && word.split('.').all(|n| {
                    !n.is_empty()
                        && n.bytes().all(|b| b.is_ascii_digit())
                        && (n == "0" || !n.starts_with('0'))
                });
            return if ok {
                Ok(word.to_string())
            } else {
                fail(format!("`{word}` is not a numeric OID"))
            };
        }
        let lower = word.to_ascii_lowercase();
        match NAMES.iter().find(|(n, _)| *n == lower) {
            Some((_, oid)) => Ok((*oid).to_string()),
            None => fail(format!(
                "unknown attribute type `{word}`: write its numeric OID (e.g. 2.5.4.3=…)"
            )),
        }
    }

    fn value(&mut self) -> Result<AttrValue, DnError> {
        if self.eat(b'#') {
            return self.hex_value();
        }
        let mut bytes: Vec<u8> = Vec::new();
        // Length of `bytes` up to the last character that is not an unescaped space: trailing
        // unescaped spaces are not part of the value (RFC 4514 §2.4 escapes significant ones).
        let mut significant = 0;
        while let Some(c) = self.peek() {
            match c {
                b',' | b'+' => break,
                b'\\' => {
                    self.i += 1;
                    let Some(e) = self.next() else {
                        return fail("a value ends with a lone backslash");
                    };
                    if b" \"#+,;<=>\\".contains(&e) {
                        bytes.push(e);
                    } else if e.is_ascii_hexdigit() {
                        let Some(h) = self.next().filter(u8::is_ascii_hexdigit) else {
                            return fail(format!(
                                "`\\{}` at {} is not an escape: use `\\XX` with two hex digits",
                                char::from(e),
                                self.i.saturating_sub(2)
                            ));
                        };
                        bytes.push((hex(e) << 4) | hex(h));
                    } else {
                        return fail(format!(
                            "`\\{}` at {} is not an escape (escape only , + \" \\ < > ; = # and space, or write \\XX)",
                            char::from(e),
                            self.i.saturating_sub(2)
                        ));
                    }
                    significant = bytes.len();
                }
                b'"' | b';' | b'<' | b'>' | 0 => {
                    return fail(format!(
                        "`{}` at {} must be escaped with a backslash",
                        char::from(c),
                        self.i
                    ));
                }
                b' ' => {
                    self.i += 1;
                    bytes.push(c);
                }
                _ => {
                    self.i += 1;
                    bytes.push(c);
                    significant = bytes.len();
                }
            }
        }
        // Trailing unescaped spaces belong to the separator, not the value.
        let unescaped_tail = bytes.len() - significant;
        self.i -= unescaped_tail;
        bytes.truncate(significant);
        String::from_utf8(bytes)
            .map(AttrValue::Text)
            .or_else(|_| fail("an escaped value is not valid UTF-8"))
    }

    /// RFC 4514 §2.4: `#` and the hex of the BER encoding of the value.
    fn hex_value(&mut self) -> Result<AttrValue, DnError> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
            self.i += 1;
        }
        let digits = self.s.get(start..self.i).unwrap_or_default();
        if digits.is_empty() || !digits.len().is_multiple_of(2) {
            return fail(format!(
                "`#` at {} needs hex pairs",
                start.saturating_sub(1)
            ));
        }
        let der: Vec<u8> = digits
            .chunks_exact(2)
            .map(|p| {
                (hex(p.first().copied().unwrap_or(b'0')) << 4)
                    | hex(p.get(1).copied().unwrap_or(b'0'))
            })
            .collect();
        match Any::from_der(&der) {
            Ok(([], any)) => match value_of(&any) {
                AttrValue::Undecodable => fail("the `#` value is a string that does not decode"),
                v => Ok(v),
            },
            _ => fail("the `#` value is not one BER-encoded value"),
        }
    }
}

fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Subject alternative names (RFC 5280 §4.2.1.6), compared as data.

/// A DNS name as registered: LDH labels (underscore tolerated), no empty label, no trailing
/// dot, no wildcard, at most 253 characters (RFC 1035 §2.3.4). Returns the error message.
pub fn check_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("a DNS name is 1-253 characters".into());
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!(
                "`{name}` has an empty or over-long label (no trailing dot, no `..`)"
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "`{name}` is not a DNS name of letters, digits and `-` (write IDNs as A-labels)"
            ));
        }
    }
    Ok(())
}

/// RFC 5280 §7.2 / RFC 4343: DNS names compare case-insensitively, label by label. The
/// presented name must have the same labels; an empty label (a trailing dot, `..`) never
/// matches, and neither does a wildcard.
pub fn dns_name_matches(presented: &str, registered: &str) -> bool {
    let p: Vec<&str> = presented.split('.').collect();
    let r: Vec<&str> = registered.split('.').collect();
    p.len() == r.len()
        && p.iter()
            .zip(&r)
            .all(|(a, b)| !a.is_empty() && a.eq_ignore_ascii_case(b))
}

/// An email address as registered: `local@domain` with a DNS domain.
pub fn check_email(address: &str) -> Result<(), String> {
    match address.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !local.contains('@') => {
            check_dns_name(domain)
        }
        _ => Err(format!(
            "`{address}` is not an email address (local@domain)"
        )),
    }
}

/// RFC 5280 §7.5: the local part compares exactly, the domain case-insensitively.
pub fn email_matches(presented: &str, registered: &str) -> bool {
    match (presented.rsplit_once('@'), registered.rsplit_once('@')) {
        (Some((pl, pd)), Some((rl, rd))) => pl == rl && dns_name_matches(pd, rd),
        _ => false,
    }
}

/// An IP address SAN (4 or 16 octets) against the registered address, byte for byte.
pub fn ip_matches(presented: &[u8], registered: std::net::IpAddr) -> bool {
    match registered {
        std::net::IpAddr::V4(v) => presented == v.octets(),
        std::net::IpAddr::V6(v) => presented == v.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> DistinguishedName {
        DistinguishedName::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn text(oid: &str, v: &str) -> Ava {
        Ava {
            oid: oid.into(),
            value: AttrValue::Text(v.into()),
        }
    }

    const CN: &str = "2.5.4.3";
    const O: &str = "2.5.4.10";
    const OU: &str = "2.5.4.11";

    /// A certificate-order name of single-valued RDNs.
    fn name(avas: &[(&str, &str)]) -> Vec<Rdn> {
        avas.iter().map(|(o, v)| Rdn(vec![text(o, v)])).collect()
    }

    #[test]
    fn the_string_form_parses_into_rdns_of_oids_and_values() {
        let dn = parse("CN=acme-mtls, O=Portcullis development");
        assert_eq!(
            dn.rdns,
            vec![
                Rdn(vec![text(CN, "acme-mtls")]),
                Rdn(vec![text(O, "Portcullis development")])
            ]
        );
        // Names are case-insensitive; numeric OIDs are taken as they are.
        assert_eq!(parse("cn=a,2.5.4.10=b").rdns, parse("CN=a,O=b").rdns);
        assert_eq!(parse("commonName=a").rdns, parse("CN=a").rdns);
    }

    #[test]
    fn escapes_keep_separators_inside_one_value() {
        let dn = parse(r"CN=acme-mtls\, O=Portcullis development");
        assert_eq!(
            dn.rdns,
            vec![Rdn(vec![text(CN, "acme-mtls, O=Portcullis development")])]
        );
        assert_eq!(
            parse(r#"CN=a\+b\"c\\d\<\>\;\=\#"#).rdns,
            vec![Rdn(vec![text(CN, r#"a+b"c\d<>;=#"#)])]
        );
        // \XX is a UTF-8 byte; hex digits of either case.
        assert_eq!(
            parse(r"CN=caf\C3\a9").rdns,
            vec![Rdn(vec![text(CN, "café")])]
        );
        // Escaped spaces are part of the value; unescaped ones around separators are not.
        assert_eq!(
            parse(r"CN=\ a\ ,O= b ").rdns,
            vec![Rdn(vec![text(CN, " a ")]), Rdn(vec![text(O, "b")])]
        );
        // `=` may appear unescaped inside a value.
        assert_eq!(parse("CN=a=b").rdns, vec![Rdn(vec![text(CN, "a=b")])]);
    }

    #[test]
    fn a_plus_joins_the_attributes_of_one_rdn() {
        assert_eq!(
            parse("CN=a + O=b, OU=c").rdns,
            vec![
                Rdn(vec![text(CN, "a"), text(O, "b")]),
                Rdn(vec![text(OU, "c")])
            ]
        );
    }

    #[test]
    fn hex_values_are_ber_encodings() {
        // #0C03616263: UTF8String "abc"; #130161: PrintableString "a".
        assert_eq!(parse("CN=#0C03616263").rdns, parse("CN=abc").rdns);
        assert_eq!(parse("CN=#130161").rdns, parse("CN=a").rdns);
        // An OCTET STRING stays binary.
        assert_eq!(
            parse("2.5.4.45=#04020102").rdns,
            vec![Rdn(vec![Ava {
                oid: "2.5.4.45".into(),
                value: AttrValue::Other {
                    class: 0,
                    tag: 4,
                    data: vec![1, 2]
                }
            }])]
        );
    }

    #[test]
    fn malformed_names_are_refused_with_a_reason() {
        for bad in [
            "",
            "   ",
            "CN",
            "CN=a,",
            "CN=a,,O=b",
            "=a",
            "XX=a",
            "CN=a\\",
            r"CN=a\q",
            r"CN=a\4",
            r"CN=\ff",
            "CN=a;O=b",
            "CN=\"a\"",
            "CN=<a>",
            "CN=#",
            "CN=#0C",
            "CN=#0C0361",
            "CN=#0C036162636465",
            "1.02.3=a",
            "1=a",
        ] {
            assert!(DistinguishedName::parse(bad).is_err(), "{bad:?} must fail");
        }
    }

    #[test]
    fn a_dn_matches_in_certificate_order_or_reversed_but_not_otherwise() {
        let dn = parse("CN=acme-mtls, O=Portcullis development, OU=ops");
        let cert = name(&[
            (CN, "acme-mtls"),
            (O, "Portcullis development"),
            (OU, "ops"),
        ]);
        assert!(dn.matches_rdns(&cert));
        let reversed = name(&[
            (OU, "ops"),
            (O, "Portcullis development"),
            (CN, "acme-mtls"),
        ]);
        assert!(dn.matches_rdns(&reversed));
        let shuffled = name(&[
            (O, "Portcullis development"),
            (CN, "acme-mtls"),
            (OU, "ops"),
        ]);
        assert!(!dn.matches_rdns(&shuffled));
        assert!(!dn.matches_rdns(&cert[..2]));
        assert!(!dn.matches_rdns(&[]));
    }

    #[test]
    fn a_value_containing_the_text_of_another_name_is_one_attribute() {
        let dn = parse("CN=acme-mtls, O=Portcullis development");
        let spoof = name(&[(CN, "acme-mtls, O=Portcullis development")]);
        assert!(!dn.matches_rdns(&spoof));
        let spoof = name(&[(CN, "acme-mtls+O=Portcullis development")]);
        assert!(!dn.matches_rdns(&spoof));
        // …and the escaped registration names exactly that one attribute.
        let escaped = parse(r"CN=acme-mtls\, O=Portcullis development");
        assert!(escaped.matches_rdns(&name(&[(CN, "acme-mtls, O=Portcullis development")])));
        assert!(!escaped.matches_rdns(&name(&[(CN, "acme-mtls"), (O, "Portcullis development")])));
    }

    #[test]
    fn multi_valued_rdns_compare_as_sets_and_never_as_separate_rdns() {
        let dn = parse("CN=a+O=b");
        assert!(dn.matches_rdns(&[Rdn(vec![text(O, "b"), text(CN, "a")])]));
        assert!(dn.matches_rdns(&[Rdn(vec![text(CN, "a"), text(O, "b")])]));
        assert!(!dn.matches_rdns(&name(&[(CN, "a"), (O, "b")])));
        assert!(!parse("CN=a,O=b").matches_rdns(&[Rdn(vec![text(CN, "a"), text(O, "b")])]));
        // Each attribute is used once: {CN=a, CN=a} is not {CN=a, O=b}.
        assert!(!dn.matches_rdns(&[Rdn(vec![text(CN, "a"), text(CN, "a")])]));
        assert!(!parse("CN=a+CN=a").matches_rdns(&[Rdn(vec![text(CN, "a"), text(O, "b")])]));
    }

    #[test]
    fn string_values_compare_without_case_and_insignificant_spaces() {
        let dn = parse("CN=Acme  MTLS, O=Portcullis development");
        assert!(dn.matches_rdns(&name(&[
            (CN, "  acme mtls "),
            (O, "PORTCULLIS\u{00A0}DEVELOPMENT")
        ])));
        // Soft hyphens and zero-width spaces are mapped to nothing (RFC 4518 §2.2); NFKC makes
        // a full-width letter its ASCII letter (§2.3).
        assert!(dn.matches_rdns(&name(&[
            (CN, "ac\u{00AD}me m\u{200B}tls"),
            (O, "Portcullis developmen\u{FF54}")
        ])));
        // Spaces inside a word are significant; other letters are other letters.
        assert!(!dn.matches_rdns(&name(&[(CN, "ac me mtls"), (O, "Portcullis development")])));
        assert!(!dn.matches_rdns(&name(&[(CN, "acme mtl5"), (O, "Portcullis development")])));
        // Prohibited characters (private use) match nothing.
        assert!(!parse("CN=\u{E000}").matches_rdns(&name(&[(CN, "\u{E000}")])));
        // Unknown attribute types compare exactly.
        assert!(parse("1.2.3.4=Ab").matches_rdns(&name(&[("1.2.3.4", "Ab")])));
        assert!(!parse("1.2.3.4=Ab").matches_rdns(&name(&[("1.2.3.4", "ab")])));
        // The type counts: the same value under another type is another attribute.
        assert!(!parse("CN=a").matches_rdns(&name(&[(OU, "a")])));
    }

    #[test]
    fn certificate_string_types_decode_to_the_same_text() {
        use x509_parser::asn1_rs::Header;
        let utf8 = Any::new(
            Header::new(Class::Universal, false, Tag::Utf8String, 2.into()),
            b"ab",
        );
        let printable = Any::new(
            Header::new(Class::Universal, false, Tag::PrintableString, 2.into()),
            b"AB",
        );
        let bmp = Any::new(
            Header::new(Class::Universal, false, Tag::BmpString, 4.into()),
            &[0, b'a', 0, b'b'],
        );
        let universal = Any::new(
            Header::new(Class::Universal, false, Tag::UniversalString, 8.into()),
            &[0, 0, 0, b'a', 0, 0, 0, b'B'],
        );
        let odd_bmp = Any::new(
            Header::new(Class::Universal, false, Tag::BmpString, 3.into()),
            &[0, b'a', 0],
        );
        let want = parse("CN=ab");
        for any in [utf8, printable, bmp, universal] {
            let have = vec![Rdn(vec![Ava {
                oid: CN.into(),
                value: value_of(&any),
            }])];
            assert!(want.matches_rdns(&have), "{any:?}");
        }
        assert_eq!(value_of(&odd_bmp), AttrValue::Undecodable);
        let have = vec![Rdn(vec![Ava {
            oid: CN.into(),
            value: AttrValue::Undecodable,
        }])];
        assert!(!want.matches_rdns(&have));
    }

    #[test]
    fn the_registered_text_round_trips_through_serde() {
        let dn = parse(r"CN=a\, b, O=c");
        let json = serde_json::to_string(&dn).unwrap();
        assert_eq!(json, r#""CN=a\\, b, O=c""#);
        let back: DistinguishedName = serde_json::from_str(&json).unwrap();
        assert_eq!(back, dn);
        assert!(serde_json::from_str::<DistinguishedName>(r#""CN=a;""#).is_err());
    }

    #[test]
    fn dns_names_compare_as_labels() {
        assert!(dns_name_matches("svc.acme.test", "svc.acme.test"));
        assert!(dns_name_matches("SVC.Acme.TEST", "svc.acme.test"));
        assert!(!dns_name_matches("svc.acme.test.", "svc.acme.test"));
        assert!(!dns_name_matches("svc..acme.test", "svc.acme.test"));
        assert!(!dns_name_matches("*.acme.test", "svc.acme.test"));
        assert!(!dns_name_matches("svc.acme.test.evil", "svc.acme.test"));
        assert!(!dns_name_matches("xsvc.acme.test", "svc.acme.test"));
        assert!(check_dns_name("svc.acme.test").is_ok());
        for bad in [
            "",
            "svc.acme.test.",
            "a..b",
            "*.acme.test",
            "bücher.example",
            "a b",
        ] {
            assert!(check_dns_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_compare_the_domain_without_case_and_the_local_part_exactly() {
        assert!(email_matches("Ops@ACME.test", "Ops@acme.test"));
        assert!(!email_matches("ops@acme.test", "Ops@acme.test"));
        assert!(!email_matches("ops@acme.test.", "ops@acme.test"));
        assert!(!email_matches("ops@evil@acme.test", "ops@acme.test"));
        assert!(check_email("ops@acme.test").is_ok());
        assert!(check_email("acme.test").is_err());
        assert!(check_email("@acme.test").is_err());
    }

    #[test]
    fn ip_addresses_compare_as_bytes() {
        let v4: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        assert!(ip_matches(&[10, 1, 2, 3], v4));
        assert!(!ip_matches(&[10, 1, 2, 4], v4));
        // An IPv4-mapped IPv6 address is another SAN.
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..].copy_from_slice(&[10, 1, 2, 3]);
        assert!(!ip_matches(&mapped, v4));
        let v6: std::net::IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert!(ip_matches(&mapped, v6));
    }
}
