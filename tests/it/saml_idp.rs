//! Every tenant a SAML 2.0 identity provider: its metadata and signing certificates, and the
//! service provider registrations of its file.

use crate::support::*;
use base64::Engine;
use portcullis::clock::FixedClock;
use serde_json::Value;

const T0: i64 = 1_800_000_000;

/// The RSA moduli of the tenant's published RS256 keys, by kid.
async fn rsa_moduli(s: &TestServer) -> Vec<(String, Vec<u8>)> {
    let (_, j) = s.get_json("/acme/.well-known/jwks").await;
    j["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == "RS256")
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_string(),
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(k["n"].as_str().unwrap())
                    .unwrap(),
            )
        })
        .collect()
}

/// The signing certificates of the metadata, parsed by samael (a SAML library of its own).
fn metadata_certificates(xml: &str) -> Vec<(String, Vec<u8>)> {
    let d: samael::metadata::EntityDescriptor = xml.parse().unwrap();
    let idp = &d.idp_sso_descriptors.as_ref().unwrap()[0];
    assert_eq!(
        idp.protocol_support_enumeration.as_deref(),
        Some("urn:oasis:names:tc:SAML:2.0:protocol")
    );
    idp.key_descriptors
        .iter()
        .map(|k| {
            assert_eq!(k.key_use.as_deref(), Some("signing"));
            let cert = &k.key_info.x509_data.as_ref().unwrap().certificates[0];
            let der = base64::engine::general_purpose::STANDARD
                .decode(cert)
                .unwrap();
            let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
            let modulus = match c.public_key().parsed().unwrap() {
                x509_parser::public_key::PublicKey::RSA(r) => {
                    r.modulus.iter().skip_while(|b| **b == 0).copied().collect()
                }
                _ => panic!("not an RSA key"),
            };
            (cert.clone(), modulus)
        })
        .collect()
}

fn metadata(s: &TestServer) -> String {
    let tenant = s.state().registry.get("acme").unwrap();
    portcullis::response::saml::idp_metadata(&tenant, &tenant.keys.load(), false)
}

#[tokio::test]
async fn the_metadata_names_the_tenant_and_the_certificates_of_the_signing_and_the_next_key() {
    let clock = FixedClock::new(T0);
    let s = TestServer::start_with(Options {
        clock: Some(clock.clone()),
        keys:
            "rotation_interval_seconds = 1000\npropagation_seconds = 100\nretention_seconds = 200"
                .into(),
        ..Default::default()
    })
    .await;
    let xml = metadata(&s);
    let d: samael::metadata::EntityDescriptor = xml.parse().unwrap();
    assert_eq!(d.entity_id.as_deref(), Some(s.url("/acme").as_str()));
    let idp = &d.idp_sso_descriptors.as_ref().unwrap()[0];
    let sso: Vec<(&str, &str)> = idp
        .single_sign_on_services
        .iter()
        .map(|e| (e.binding.as_str(), e.location.as_str()))
        .collect();
    let sso_url = s.url("/acme/saml/sso");
    assert_eq!(
        sso,
        vec![
            (
                "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
                sso_url.as_str()
            ),
            (
                "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
                sso_url.as_str()
            ),
        ]
    );
    assert!(
        idp.name_id_formats
            .contains(&"urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".to_string())
    );
    // One certificate now: the RS256 key that signs.
    let certs = metadata_certificates(&xml);
    let keys = rsa_moduli(&s).await;
    assert_eq!(certs.len(), 1);
    assert_eq!(
        certs[0].1, keys[0].1,
        "the certificate carries the signing key"
    );
    // Before the key rotates, its successor's certificate is published too (second).
    clock.set(T0 + 900);
    portcullis::registry::sync::refresh(s.state())
        .await
        .unwrap();
    let rotated = metadata_certificates(&metadata(&s));
    let keys = rsa_moduli(&s).await;
    assert_eq!(rotated.len(), 2, "the next key's certificate is announced");
    assert_eq!(rotated[0].0, certs[0].0, "the signing key's is unchanged");
    assert_eq!(rotated[1].1, keys[1].1, "the announced key's");
    s.stop().await;
}

#[tokio::test]
async fn every_node_makes_the_same_certificate_for_a_key_on_postgresql() {
    if postgres_url().is_none() {
        eprintln!("PORTCULLIS_TEST_POSTGRES_URL is not set: PostgreSQL part skipped");
        return;
    }
    let schema = unique_schema();
    let keys = format!(
        "master_key = \"{}\"",
        base64::engine::general_purpose::STANDARD.encode([5u8; 32])
    );
    let node = || Options {
        postgres: true,
        postgres_schema: Some(schema.clone()),
        keys: keys.clone(),
        ..Default::default()
    };
    let a = TestServer::start_with(node()).await;
    let b = TestServer::start_with(node()).await;
    assert_eq!(
        metadata_certificates(&metadata(&a)),
        metadata_certificates(&metadata(&b))
    );
    a.stop().await;
    b.stop().await;
}

#[test]
fn a_service_provider_registration_is_checked_whole_with_file_line_and_key() {
    let acme = ACME.to_string()
        + "\n[[saml_service_providers]]\nentity_id = \"not a uri\"\n\
           acs = [{ url = \"http://sp.example/acs\" }, { url = \"https://sp.example/acs2\", index = 0, binding = \"soap\" }]\n\
           name_id_format = \"kerberos\"\nencrypt_assertions = true\n\
           signing_certificate = \"-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\\n\"\n\
           attributes = [{ claim = \"email\", name = \"mail\", name_format = \"uri\" }]\n\
           default_relay_state = \"/home\"\n";
    let problems = portcullis::config::tenant::resolve(
        std::path::Path::new("acme.toml"),
        &acme,
        &portcullis::config::tenant::TenantDefaults {
            public_base_url: DEMO_BASE,
            mtls_base_url: DEMO_BASE,
            files: &portcullis::config::FileRoots::new(
                std::env::temp_dir(),
                vec![std::env::temp_dir()],
                Vec::new(),
            ),
        },
    )
    .unwrap_err();
    let said: Vec<(String, String)> = problems
        .iter()
        .map(|p| (p.key.clone(), p.message.clone()))
        .collect();
    let has = |key: &str, text: &str| {
        assert!(
            said.iter().any(|(k, m)| k == key && m.contains(text)),
            "{key}: {text}: {said:#?}"
        );
    };
    has("saml_service_providers[0].entity_id", "absolute URI");
    has("saml_service_providers[0].acs[0].url", "plain http");
    has("saml_service_providers[0].acs[1].index", "used twice");
    has("saml_service_providers[0].acs[1].binding", "`post`");
    has("saml_service_providers[0].name_id_format", "persistent");
    has(
        "saml_service_providers[0].encrypt_assertions",
        "encryption_certificate",
    );
    has("saml_service_providers[0].signing_certificate", "X.509");
    has("saml_service_providers[0].attributes[0].name", "URI");
    has(
        "saml_service_providers[0].default_relay_state",
        "allow_idp_initiated",
    );
    assert!(problems.iter().all(|p| p.line.is_some()), "{said:#?}");
    // A good registration resolves.
    let good = ACME.to_string()
        + "\n[[saml_service_providers]]\nentity_id = \"https://sp.acme.test\"\n\
           acs = [{ url = \"http://127.0.0.1:9000/saml/acs\", default = true }]\n\
           attributes = [{ claim = \"email\", name = \"urn:oid:0.9.2342.19200300.100.1.3\", name_format = \"uri\", friendly_name = \"mail\" }]\n";
    let resolved = portcullis::config::tenant::resolve(
        std::path::Path::new("acme.toml"),
        &good,
        &portcullis::config::tenant::TenantDefaults {
            public_base_url: DEMO_BASE,
            mtls_base_url: DEMO_BASE,
            files: &portcullis::config::FileRoots::new(
                std::env::temp_dir(),
                vec![std::env::temp_dir()],
                Vec::new(),
            ),
        },
    );
    let errors: Vec<Value> = match &resolved {
        Ok(_) => Vec::new(),
        Err(e) => e
            .iter()
            .filter(|p| p.key.starts_with("saml_service_providers"))
            .map(|p| Value::String(p.to_string()))
            .collect(),
    };
    assert!(errors.is_empty(), "{errors:?}");
}

/// Verifies the enveloped signature of the element `element` (`Assertion` or `Response`) in
/// `xml` with the `xmlsec1` command line, an independent verifier, against `cert_der` only.
fn xmlsec1_verifies(xml: &str, element: &str, cert_der: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::engine::general_purpose::STANDARD.encode(cert_der)
    );
    std::fs::write(dir.path().join("cert.pem"), pem).unwrap();
    std::fs::write(dir.path().join("doc.xml"), xml).unwrap();
    let ns = if element == "Assertion" {
        "urn:oasis:names:tc:SAML:2.0:assertion"
    } else {
        "urn:oasis:names:tc:SAML:2.0:protocol"
    };
    let out = std::process::Command::new("xmlsec1")
        .args(["--verify", "--enabled-reference-uris", "same-doc"])
        .arg("--id-attr:ID")
        .arg(format!("{ns}:{element}"))
        .arg("--node-name")
        .arg(format!("{ns}:{element}"))
        .arg("--pubkey-cert-pem")
        .arg(dir.path().join("cert.pem"))
        .arg(dir.path().join("doc.xml"))
        .output()
        .expect("xmlsec1 (apt install xmlsec1)");
    out.status.success()
}

#[tokio::test]
async fn a_response_carries_an_assertion_that_an_independent_verifier_accepts_and_tampering_breaks()
{
    let s = TestServer::start().await;
    let tenant = s.state().registry.get("acme").unwrap();
    let keys = tenant.keys.load();
    let (_, cert) = keys.saml_signing_key().unwrap();
    let cert = cert.to_vec();
    use portcullis::response::saml::{AC_PASSWORD, Audience, Subject, signed_response};
    let who = Subject {
        name_id: "opaque-7",
        name_id_format: portcullis::config::tenant::SamlNameIdFormat::Persistent,
        session_index: "sid-1",
        authn_instant: 1_800_000_000,
        authn_context: AC_PASSWORD,
        authenticating_authority: None,
        attributes: vec![(
            "urn:oid:0.9.2342.19200300.100.1.3",
            "urn:oasis:names:tc:SAML:2.0:attrname-format:uri",
            Some("mail"),
            vec!["alice@acme.test".into()],
        )],
    };
    for sign_response in [false, true] {
        let to = Audience {
            sp_entity_id: "https://sp.acme.test",
            acs_url: "http://127.0.0.1:9000/saml/acs",
            in_response_to: Some("_req-1"),
            sign_response,
        };
        let b64 = signed_response(&tenant, &keys, &to, &who, 1_800_000_000).unwrap();
        let xml = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap();
        assert!(xml.contains("InResponseTo=\"_req-1\""), "{xml}");
        assert!(xml.contains(">alice@acme.test<"), "{xml}");
        assert!(xmlsec1_verifies(&xml, "Assertion", &cert), "{xml}");
        assert_eq!(xmlsec1_verifies(&xml, "Response", &cert), sign_response);
        // Another name in the signed assertion: the signature no longer holds.
        let forged = xml.replace(">opaque-7<", ">admin<");
        assert!(!xmlsec1_verifies(&forged, "Assertion", &cert));
        // samael, the SAML library the SP side uses, reads it as a Response.
        let parsed: samael::schema::Response = xml.parse().unwrap();
        assert_eq!(
            parsed.issuer.unwrap().value.as_deref(),
            Some(s.url("/acme").as_str())
        );
    }
    s.stop().await;
}
