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
pub(crate) fn metadata_certificates(xml: &str) -> Vec<(String, Vec<u8>)> {
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

/// The tenant file `text` resolved as `acme.toml` with the demo's base URL, its files under the
/// temporary directory.
pub(crate) fn resolve_acme(
    text: &str,
) -> Result<
    (
        portcullis::config::tenant::TenantSpec,
        Vec<portcullis::config::tenant::ClientSpec>,
    ),
    Vec<portcullis::config::ConfigError>,
> {
    portcullis::config::tenant::resolve(
        std::path::Path::new("acme.toml"),
        text,
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
    let problems = resolve_acme(&acme).unwrap_err();
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
    has("saml_service_providers[1].entity_id", "absolute URI");
    has("saml_service_providers[1].acs[0].url", "plain http");
    has("saml_service_providers[1].acs[1].index", "used twice");
    has("saml_service_providers[1].acs[1].binding", "`post`");
    has("saml_service_providers[1].name_id_format", "persistent");
    has(
        "saml_service_providers[1].encrypt_assertions",
        "encryption_certificate",
    );
    has("saml_service_providers[1].signing_certificate", "X.509");
    has("saml_service_providers[1].attributes[0].name", "URI");
    has(
        "saml_service_providers[1].default_relay_state",
        "allow_idp_initiated",
    );
    assert!(problems.iter().all(|p| p.line.is_some()), "{said:#?}");
    // A good registration resolves.
    let good = ACME.to_string()
        + "\n[[saml_service_providers]]\nentity_id = \"https://hr.acme.test\"\n\
           acs = [{ url = \"http://127.0.0.1:9000/saml/acs\", default = true }]\n\
           attributes = [{ claim = \"email\", name = \"urn:oid:0.9.2342.19200300.100.1.3\", name_format = \"uri\", friendly_name = \"mail\" }]\n";
    let resolved = resolve_acme(&good);
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
pub fn xmlsec1_verifies(xml: &str, element: &str, cert_der: &[u8]) -> bool {
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
            encrypt_to: None,
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

// ---------------------------------------------------------------------------------------------
// Single sign-on: Portcullis's own SAML SP module (its requests, its Response checks) as the
// service provider, and xmlsec1 as the independent verifier of every signature.

use crate::interactive::{Browser, field, location, submit_login};
use portcullis::federation::saml::sp::{
    IdpMetadata, SpConfig, authn_request_post, authn_request_redirect, new_request_id,
    parse_idp_metadata, verify_response,
};

pub(crate) const SP: &str = "https://wiki.acme.test";
pub(crate) const ACS: &str = "http://127.0.0.1:9000/saml/acs";

struct SamlSetup {
    server: TestServer,
    sp: SpConfig,
    idp: IdpMetadata,
    idp_cert: Vec<u8>,
}

/// acme with the demo SP registered with `sp_cert` as its signing certificate.
fn acme_with_sp(sp_cert: &str) -> String {
    format!(
        "{ACME}\n[[saml_service_providers]]\nentity_id = \"{SP}\"\ndisplay_name = \"Acme Wiki\"\n\
         acs = [{{ url = \"{ACS}\", default = true }}]\nsigning_certificate = '''\n{sp_cert}'''\n\
         attributes = [{{ claim = \"email\", name = \"urn:oid:0.9.2342.19200300.100.1.3\", name_format = \"uri\", friendly_name = \"mail\" }}, {{ claim = \"name\", name = \"displayName\" }}]\n"
    )
}

/// The test SP (Portcullis's own SAML SP module) as `entity_id`, posting to [`ACS`].
pub(crate) fn sp_config(entity_id: &str, key: String, cert: String) -> SpConfig {
    SpConfig {
        entity_id: entity_id.into(),
        acs_url: ACS.into(),
        slo_url: None,
        signing_key_pem: key,
        signing_cert_pem: cert,
        encryption_key_pem: None,
        encryption_cert_pem: None,
        max_clock_skew_secs: 120,
        allow_idp_initiated: false,
    }
}

async fn saml_setup(pg: bool) -> SamlSetup {
    use portcullis::federation::saml::sp::test_idp::self_signed_key_and_cert;
    let (key, cert) = self_signed_key_and_cert("wiki.acme.test", false).unwrap();
    let server = TestServer::start_with(Options {
        tenants: vec![
            ("acme", acme_with_sp(&cert)),
            ("globex", GLOBEX.to_string()),
        ],
        postgres: pg,
        ..Default::default()
    })
    .await;
    let xml = server
        .http
        .get(server.url("/acme/saml/metadata"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let idp = parse_idp_metadata(&xml).unwrap();
    let idp_cert = metadata_certificates(&xml)
        .first()
        .map(|(b64, _)| {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap()
        })
        .unwrap();
    let sp = sp_config(SP, key, cert);
    SamlSetup {
        server,
        sp,
        idp,
        idp_cert,
    }
}

pub(crate) fn now() -> i64 {
    use portcullis::clock::Clock;
    portcullis::clock::SystemClock.now()
}

/// The auto-submitting form's SAMLResponse (decoded) and RelayState, after checking that it
/// posts to the registered ACS.
pub(crate) fn posted(html: &str) -> (String, String, Option<String>) {
    let unescaped = crate::interactive::unescape(html);
    assert!(unescaped.contains(&format!("action=\"{ACS}\"")), "{html}");
    let b64 = field(html, "SAMLResponse");
    let xml = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&b64)
            .unwrap(),
    )
    .unwrap();
    let relay = html
        .contains("name=\"RelayState\"")
        .then(|| field(html, "RelayState"));
    (b64, xml, relay)
}

on_both_engines!(
    alice_signs_in_to_a_saml_sp_by_redirect_and_by_post_and_the_sp_accepts_the_signed_response
);
async fn alice_signs_in_to_a_saml_sp_by_redirect_and_by_post_and_the_sp_accepts_the_signed_response(
    pg: bool,
) {
    let s = saml_setup(pg).await;
    let b = Browser::new(&s.server);
    // HTTP-Redirect, signed with the SP's key: to the login page first.
    let id = new_request_id().unwrap();
    let url = authn_request_redirect(&s.sp, &s.idp, &id, "relay-1", now()).unwrap();
    let r = b.get(&url).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let login = location(&r);
    assert!(
        login.contains("/acme/account/login?interaction="),
        "{login}"
    );
    let r = submit_login(&b, &login, "alice", "alice-password").await;
    assert_eq!(r.status(), 200);
    let (b64, xml, relay) = posted(&r.text().await.unwrap());
    assert_eq!(relay.as_deref(), Some("relay-1"));
    // The SP's own checks: signature, issuer, audience, recipient, InResponseTo, times.
    let a = verify_response(&s.sp, &s.idp, &b64, Some(&id), now()).unwrap();
    assert_eq!(a.issuer, s.server.url("/acme"));
    assert_eq!(
        a.name_id_format.as_deref(),
        Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent")
    );
    assert!(
        !a.name_id.contains("alice"),
        "a persistent NameID is opaque"
    );
    let mail = a
        .attributes
        .iter()
        .find(|(n, _)| n == "urn:oid:0.9.2342.19200300.100.1.3")
        .unwrap();
    assert_eq!(mail.1, vec!["alice@acme.test".to_string()]);
    assert!(xml.contains("PasswordProtectedTransport"), "{xml}");
    assert!(xmlsec1_verifies(&xml, "Assertion", &s.idp_cert), "{xml}");
    // The same request again: refused, as a SAML error Response to the ACS.
    let r = b.get(&url).await;
    let (_, xml, _) = posted(&r.text().await.unwrap());
    assert!(xml.contains("status:Requester"), "{xml}");
    assert!(xml.contains("used before"), "{xml}");
    assert!(!xml.contains("Assertion"), "{xml}");
    // HTTP-POST, signed inside: the SSO session answers at once, with the same NameID.
    let id2 = new_request_id().unwrap();
    let (dest, request) = authn_request_post(&s.sp, &s.idp, &id2, now()).unwrap();
    assert_eq!(dest, s.server.url("/acme/saml/sso"));
    let r = b
        .post(
            &dest,
            &[("SAMLRequest", request.as_str()), ("RelayState", "r2")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let resume = location(&r);
    assert!(resume.contains("/acme/saml/sso?resume="), "{resume}");
    let r = b.get(&resume).await;
    assert_eq!(r.status(), 200);
    let (b64, xml, relay) = posted(&r.text().await.unwrap());
    assert_eq!(relay.as_deref(), Some("r2"));
    let again = verify_response(&s.sp, &s.idp, &b64, Some(&id2), now()).unwrap();
    assert_eq!(
        again.name_id, a.name_id,
        "persistent: the same for the same SP"
    );
    assert!(xmlsec1_verifies(&xml, "Assertion", &s.idp_cert));
    // The resume link is single use.
    let r = b.get(&resume).await;
    assert_eq!(r.status(), 400);
    s.server.stop().await;
}

on_both_engines!(bad_authn_requests_get_an_error_page_or_a_saml_error_and_nothing_is_issued);
async fn bad_authn_requests_get_an_error_page_or_a_saml_error_and_nothing_is_issued(pg: bool) {
    crate::security_rules::security_events::capture();
    use flate2::Compression;
    use flate2::write::DeflateEncoder;
    use std::io::Write;
    let s = saml_setup(pg).await;
    let b = Browser::new(&s.server);
    let sso = s.server.url("/acme/saml/sso");
    let redirect = |xml: &str| {
        let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
        e.write_all(xml.as_bytes()).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(e.finish().unwrap());
        format!(
            "{sso}?SAMLRequest={}",
            form_urlencoded::byte_serialize(b64.as_bytes()).collect::<String>()
        )
    };
    let request = |issuer: &str, acs: &str, extra: &str| {
        let instant = portcullis::federation::saml::sp::instant(now()).unwrap();
        format!(
            "{extra}<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
             xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{}\" Version=\"2.0\" \
             IssueInstant=\"{instant}\" Destination=\"{sso}\" AssertionConsumerServiceURL=\"{acs}\">\
             <saml:Issuer>{issuer}</saml:Issuer></samlp:AuthnRequest>",
            new_request_id().unwrap()
        )
    };
    // Unknown SP, unregistered ACS, DOCTYPE, garbage: error pages, never a post to anyone.
    for (xml, says) in [
        (
            request("https://evil.example", ACS, ""),
            "not a service provider",
        ),
        (
            request(SP, "https://evil.example/acs", ""),
            "not registered",
        ),
        (
            request(
                SP,
                ACS,
                "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>",
            ),
            "DOCTYPE",
        ),
        ("<nonsense/>".to_string(), "not an AuthnRequest"),
    ] {
        let r = b.get(&redirect(&xml)).await;
        let text = r.text().await.unwrap();
        assert!(!text.contains("SAMLResponse"), "{text}");
        assert!(text.contains(says), "{says}: {text}");
    }
    // Registered SP and ACS, but unsigned (the SP registered a signing certificate): a SAML
    // error Response to the ACS, with no assertion.
    let r = b.get(&redirect(&request(SP, ACS, ""))).await;
    let (_, xml, _) = posted(&r.text().await.unwrap());
    assert!(
        xml.contains("status:Requester") && !xml.contains("Assertion"),
        "{xml}"
    );
    // Signed by another key: the same.
    use portcullis::federation::saml::sp::test_idp::self_signed_key_and_cert;
    let (other_key, other_cert) = self_signed_key_and_cert("other", false).unwrap();
    let forger = SpConfig {
        signing_key_pem: other_key,
        signing_cert_pem: other_cert,
        ..s.sp.clone()
    };
    let url =
        authn_request_redirect(&forger, &s.idp, &new_request_id().unwrap(), "", now()).unwrap();
    let r = b.get(&url).await;
    // A security event names the reason (the SP is only told the request was refused).
    let events = crate::security_rules::security_events::of(&r);
    assert!(
        events.iter().any(|e| e["event"] == "saml_request_refused"
            && e["reason"]
                .as_str()
                .is_some_and(|x| x.contains("does not verify"))),
        "{events:?}"
    );
    let (_, xml, _) = posted(&r.text().await.unwrap());
    assert!(
        xml.contains("status:Requester") && !xml.contains("Assertion"),
        "{xml}"
    );
    // acme's SP at globex: not a service provider there (an error page, nothing posted).
    let url = authn_request_redirect(&s.sp, &s.idp, &new_request_id().unwrap(), "", now())
        .unwrap()
        .replace("/acme/saml/sso", "/globex/saml/sso");
    let r = b.get(&url).await;
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("not a service provider of this tenant") && !text.contains("SAMLResponse"),
        "{text}"
    );
    // A deflate bomb (a small request that inflates beyond 64 KiB) is not inflated further.
    let bomb = request(SP, ACS, &" ".repeat(200 * 1024));
    let r = b.get(&redirect(&bomb)).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("too large"));
    // An oversized POST.
    let huge = "A".repeat(70 * 1024);
    let r = b.post(&sso, &[("SAMLRequest", huge.as_str())]).await;
    assert!(matches!(r.status().as_u16(), 400 | 413), "{}", r.status());
    s.server.stop().await;
}

on_both_engines!(
    bob_signs_in_at_globex_over_oidc_and_reaches_the_saml_sp_with_an_external_authn_context
);
async fn bob_signs_in_at_globex_over_oidc_and_reaches_the_saml_sp_with_an_external_authn_context(
    pg: bool,
) {
    let s = saml_setup(pg).await;
    let b = Browser::new(&s.server);
    let id = new_request_id().unwrap();
    let url = authn_request_redirect(&s.sp, &s.idp, &id, "", now()).unwrap();
    let r = b.get(&url).await;
    let login = location(&r);
    let interaction = login.split("interaction=").nth(1).unwrap();
    // The login page's globex button: OIDC upstream, SAML downstream.
    let r = b
        .get(&s.server.url(&format!(
            "/acme/federation/globex/start?interaction={interaction}"
        )))
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let callback = crate::federation::bob_at_globex(&b, &location(&r)).await;
    let r = b.get(&callback).await;
    assert_eq!(r.status(), 200);
    let (b64, xml, _) = posted(&r.text().await.unwrap());
    let a = verify_response(&s.sp, &s.idp, &b64, Some(&id), now()).unwrap();
    let mail = a
        .attributes
        .iter()
        .find(|(n, _)| n == "urn:oid:0.9.2342.19200300.100.1.3")
        .unwrap();
    assert_eq!(mail.1, vec!["bob@globex.test".to_string()]);
    assert!(xml.contains("ac:classes:unspecified"), "{xml}");
    assert!(
        xml.contains("<saml:AuthenticatingAuthority>globex</saml:AuthenticatingAuthority>"),
        "{xml}"
    );
    assert!(xmlsec1_verifies(&xml, "Assertion", &s.idp_cert));
    s.server.stop().await;
}

#[tokio::test]
async fn the_demo_sp_of_acme_signs_alice_in_with_its_documented_attributes() {
    use portcullis::federation::saml::sp::test_idp::self_signed_key_and_cert;
    let server = TestServer::start().await;
    let xml = server
        .http
        .get(server.url("/acme/saml/metadata"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let idp = parse_idp_metadata(&xml).unwrap();
    // The demo SP registered no signing certificate: its requests need no signature (this SP
    // module signs anyway; the signature is not what lets it in).
    let (key, cert) = self_signed_key_and_cert("sp.acme.test", false).unwrap();
    let sp = sp_config("https://sp.acme.test", key, cert);
    let b = Browser::new(&server);
    let id = new_request_id().unwrap();
    let r = b
        .get(&authn_request_redirect(&sp, &idp, &id, "", now()).unwrap())
        .await;
    let r = submit_login(&b, &location(&r), "alice", "alice-password").await;
    let (b64, _, _) = posted(&r.text().await.unwrap());
    let a = verify_response(&sp, &idp, &b64, Some(&id), now()).unwrap();
    let names: Vec<&str> = a.attributes.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"urn:oid:0.9.2342.19200300.100.1.3"),
        "{names:?}"
    );
    assert!(
        names.contains(&"urn:oid:2.16.840.1.113730.3.1.241"),
        "{names:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_encrypted_assertion_opens_only_with_the_sps_key_and_is_still_signed_inside() {
    use portcullis::federation::saml::sp::test_idp::self_signed_key_and_cert;
    use portcullis::response::saml::{AC_PASSWORD, Audience, Subject, signed_response};
    let s = TestServer::start().await;
    let tenant = s.state().registry.get("acme").unwrap();
    let keys = tenant.keys.load();
    let idp_cert = keys.saml_signing_key().unwrap().1.to_vec();
    let (sp_key, sp_cert) = self_signed_key_and_cert("sp.acme.test", false).unwrap();
    let who = Subject {
        name_id: "opaque-9",
        name_id_format: portcullis::config::tenant::SamlNameIdFormat::Persistent,
        session_index: "sid-2",
        authn_instant: 1_800_000_000,
        authn_context: AC_PASSWORD,
        authenticating_authority: None,
        attributes: vec![(
            "mail",
            "urn:oasis:names:tc:SAML:2.0:attrname-format:basic",
            None,
            vec!["alice@acme.test".into()],
        )],
    };
    let to = Audience {
        sp_entity_id: "https://sp.acme.test",
        acs_url: ACS,
        in_response_to: Some("_req-9"),
        sign_response: true,
        encrypt_to: Some(&sp_cert),
    };
    let b64 = signed_response(&tenant, &keys, &to, &who, 1_800_000_000).unwrap();
    let xml = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap();
    assert!(
        xml.contains("EncryptedAssertion") && xml.contains("aes256-gcm"),
        "{xml}"
    );
    assert!(
        !xml.contains("opaque-9") && !xml.contains("alice@acme.test"),
        "{xml}"
    );
    // The Response's own signature covers the encrypted assertion.
    assert!(xmlsec1_verifies(&xml, "Response", &idp_cert), "{xml}");
    // xmlsec1 decrypts it with the SP's key; inside, the assertion's signature holds.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sp-key.pem"), &sp_key).unwrap();
    std::fs::write(dir.path().join("doc.xml"), &xml).unwrap();
    let out = std::process::Command::new("xmlsec1")
        .args(["--decrypt", "--privkey-pem"])
        .arg(dir.path().join("sp-key.pem"))
        .arg(dir.path().join("doc.xml"))
        .output()
        .expect("xmlsec1");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let opened = String::from_utf8(out.stdout).unwrap();
    assert!(
        opened.contains(">opaque-9<") && opened.contains(">alice@acme.test<"),
        "{opened}"
    );
    assert!(
        xmlsec1_verifies(&opened, "Assertion", &idp_cert),
        "{opened}"
    );
    // Another key does not open it.
    let (other_key, _) = self_signed_key_and_cert("other", false).unwrap();
    std::fs::write(dir.path().join("other-key.pem"), &other_key).unwrap();
    let out = std::process::Command::new("xmlsec1")
        .args(["--decrypt", "--privkey-pem"])
        .arg(dir.path().join("other-key.pem"))
        .arg(dir.path().join("doc.xml"))
        .output()
        .expect("xmlsec1");
    assert!(!out.status.success());
    s.stop().await;
}

/// An AuthnRequest from the wiki (signed by the Redirect binding) that asks for `context`.
fn request_with_context(s: &SamlSetup, id: &str, context: &str) -> String {
    let sso = s.server.url("/acme/saml/sso");
    let xml = format!(
        "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" \
         IssueInstant=\"{}\" Destination=\"{sso}\" AssertionConsumerServiceURL=\"{ACS}\">\
         <saml:Issuer>{SP}</saml:Issuer>{context}</samlp:AuthnRequest>",
        portcullis::federation::saml::sp::instant(now()).unwrap()
    );
    let pkcs8 = openssl::pkey::PKey::private_key_from_pem(s.sp.signing_key_pem.as_bytes())
        .unwrap()
        .private_key_to_pkcs8()
        .unwrap();
    let cert = openssl::x509::X509::from_pem(s.sp.signing_cert_pem.as_bytes())
        .unwrap()
        .to_der()
        .unwrap();
    portcullis::federation::saml::sp::signed_redirect_url_rsa(
        &sso,
        "SAMLRequest",
        &xml,
        "",
        &pkcs8,
        &cert,
    )
    .unwrap()
}

fn requested(comparison: &str, classes: &[&str]) -> String {
    let refs: String = classes
        .iter()
        .map(|c| format!("<saml:AuthnContextClassRef>{c}</saml:AuthnContextClassRef>"))
        .collect();
    format!(
        "<samlp:RequestedAuthnContext Comparison=\"{comparison}\">{refs}</samlp:RequestedAuthnContext>"
    )
}

const PPT: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport";
const REFEDS_MFA: &str = "https://refeds.org/profile/mfa";

on_both_engines!(
    a_requested_authn_context_is_met_with_a_second_factor_or_answered_no_authn_context
);
async fn a_requested_authn_context_is_met_with_a_second_factor_or_answered_no_authn_context(
    pg: bool,
) {
    let s = saml_setup(pg).await;
    let b = Browser::new(&s.server);
    // A password sign-in meets "exactly PasswordProtectedTransport".
    let id = new_request_id().unwrap();
    let r = b
        .get(&request_with_context(&s, &id, &requested("exact", &[PPT])))
        .await;
    let r = submit_login(&b, &location(&r), "alice", "alice-password").await;
    let (b64, xml, _) = posted(&r.text().await.unwrap());
    verify_response(&s.sp, &s.idp, &b64, Some(&id), now()).unwrap();
    assert!(
        xml.contains(&format!("<saml:AuthnContextClassRef>{PPT}<")),
        "{xml}"
    );
    // MFA: her password session is not enough, she signs in again; without a second factor
    // (she has none) the SP is told NoAuthnContext, with no assertion.
    let id = new_request_id().unwrap();
    let r = b
        .get(&request_with_context(
            &s,
            &id,
            &requested("minimum", &[REFEDS_MFA]),
        ))
        .await;
    assert_eq!(r.status(), 303, "a fresh sign-in");
    let r = submit_login(&b, &location(&r), "alice", "alice-password").await;
    let (_, xml, _) = posted(&r.text().await.unwrap());
    assert!(xml.contains("status:Responder"), "{xml}");
    assert!(xml.contains("status:NoAuthnContext"), "{xml}");
    assert!(!xml.contains("Assertion"), "{xml}");
    // A class this IdP never issues (Kerberos): NoAuthnContext at once, no page.
    let id = new_request_id().unwrap();
    let kerberos = requested(
        "exact",
        &["urn:oasis:names:tc:SAML:2.0:ac:classes:Kerberos"],
    );
    let r = b.get(&request_with_context(&s, &id, &kerberos)).await;
    assert_eq!(r.status(), 200);
    let (_, xml, _) = posted(&r.text().await.unwrap());
    assert!(xml.contains("status:NoAuthnContext"), "{xml}");
    // "Better than a password" for carol, who has a TOTP: the assertion says MFA.
    let carol = Browser::new(&s.server);
    let id = new_request_id().unwrap();
    let r = carol
        .get(&request_with_context(&s, &id, &requested("better", &[PPT])))
        .await;
    let r = submit_login(&carol, &location(&r), "carol", "carol-password").await;
    let html = r.text().await.unwrap();
    let code = portcullis::users::totp_code("CPVGE6YPNPBBTGYVKT2AOU537SU3URFN", now()).unwrap();
    let r = carol
        .post(
            &s.server.url("/acme/account/login/totp"),
            &[
                ("interaction", &field(&html, "interaction")),
                ("csrf", &field(&html, "csrf")),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let (b64, xml, _) = posted(&r.text().await.unwrap());
    verify_response(&s.sp, &s.idp, &b64, Some(&id), now()).unwrap();
    assert!(
        xml.contains(&format!("<saml:AuthnContextClassRef>{REFEDS_MFA}<")),
        "{xml}"
    );
    s.server.stop().await;
}
