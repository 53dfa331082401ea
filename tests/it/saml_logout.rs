//! SAML single logout at the tenant as identity provider: an SP's LogoutRequest ends the session
//! and reaches the session's other SPs; the end-session endpoint reaches them too; every
//! message is signed and checked, and bad ones change nothing.

use crate::interactive::{Browser, field, location, submit_login};
use crate::saml_idp::{ACS, SP, metadata_certificates, now, posted, sp_config, xmlsec1_verifies};
use crate::support::*;
use base64::Engine;
use portcullis::federation::saml::sp::test_idp::self_signed_key_and_cert;
use portcullis::federation::saml::sp::{
    IdpMetadata, SpConfig, authn_request_redirect, instant, logout_request_redirect,
    new_request_id, parse_idp_metadata, sign_enveloped_rsa, signed_redirect_url_rsa,
    verify_response,
};
use std::io::Read;

const CRM: &str = "https://crm.acme.test";
const WIKI_SLO: &str = "http://127.0.0.1:9000/saml/slo";
const CRM_SLO: &str = "http://127.0.0.1:9001/saml/slo";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A test SP: its configuration for Portcullis's SP module and its key as PKCS#8 DER.
struct TestSp {
    config: SpConfig,
    pkcs8: Vec<u8>,
    cert_der: Vec<u8>,
}

impl TestSp {
    fn new(entity_id: &str) -> (Self, String) {
        let (key, cert) = self_signed_key_and_cert("sp.test", false).unwrap();
        let pkcs8 = openssl::pkey::PKey::private_key_from_pem(key.as_bytes())
            .unwrap()
            .private_key_to_pkcs8()
            .unwrap();
        let cert_der = openssl::x509::X509::from_pem(cert.as_bytes())
            .unwrap()
            .to_der()
            .unwrap();
        let config = sp_config(entity_id, key, cert.clone());
        (
            Self {
                config,
                pkcs8,
                cert_der,
            },
            cert,
        )
    }

    /// A LogoutResponse of this SP, by the Redirect binding (a URL) or POST (base64 XML).
    fn logout_response(&self, dest: &str, in_response_to: &str, status: &str) -> String {
        format!(
            "<samlp:LogoutResponse xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
             xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" \
             IssueInstant=\"{instant}\" Destination=\"{dest}\" InResponseTo=\"{in_response_to}\">\
             <saml:Issuer>{issuer}</saml:Issuer>{{signature}}<samlp:Status><samlp:StatusCode \
             Value=\"urn:oasis:names:tc:SAML:2.0:status:{status}\"/></samlp:Status></samlp:LogoutResponse>",
            id = new_request_id().unwrap(),
            instant = instant(now()).unwrap(),
            issuer = self.config.entity_id,
        )
    }

    fn redirect(&self, dest: &str, param: &str, xml: &str, relay: &str) -> String {
        signed_redirect_url_rsa(
            dest,
            param,
            &xml.replacen("{signature}", "", 1),
            relay,
            &self.pkcs8,
            &self.cert_der,
        )
        .unwrap()
    }

    fn post(&self, xml: &str) -> String {
        let id = xml
            .split("ID=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        B64.encode(sign_enveloped_rsa(xml, id, &self.pkcs8, &self.cert_der).unwrap())
    }
}

struct Setup {
    server: TestServer,
    wiki: TestSp,
    crm: TestSp,
    idp: IdpMetadata,
    idp_cert: Vec<u8>,
}

/// acme with two SPs that take part in single logout: the wiki by Redirect, the CRM by POST.
async fn setup(pg: bool) -> Setup {
    setup_with(pg, ACME.to_string(), Vec::new()).await
}

/// [`setup`] from the tenant file `acme`, trusting `trusted_cas` for outbound calls.
async fn setup_with(pg: bool, acme: String, trusted_cas: Vec<std::path::PathBuf>) -> Setup {
    let (wiki, wiki_cert) = TestSp::new(SP);
    let (crm, crm_cert) = TestSp::new(CRM);
    let tenant = format!(
        "{acme}\n[[saml_service_providers]]\nentity_id = \"{SP}\"\n\
         acs = [{{ url = \"{ACS}\", default = true }}]\nslo_url = \"{WIKI_SLO}\"\nslo_binding = \"redirect\"\n\
         signing_certificate = '''\n{wiki_cert}'''\n\
         [[saml_service_providers]]\nentity_id = \"{CRM}\"\nname_id_format = \"transient\"\n\
         acs = [{{ url = \"{ACS}\", default = true }}]\nslo_url = \"{CRM_SLO}\"\n\
         signing_certificate = '''\n{crm_cert}'''\n"
    );
    let server = TestServer::start_with(Options {
        tenants: vec![("acme", tenant), ("globex", GLOBEX.to_string())],
        postgres: pg,
        trusted_cas,
        ..Default::default()
    })
    .await;
    let xml = get_text(&server.http, &server.url("/acme/saml/metadata")).await;
    let idp = parse_idp_metadata(&xml).unwrap();
    let idp_cert = B64.decode(&metadata_certificates(&xml)[0].0).unwrap();
    Setup {
        server,
        wiki,
        crm,
        idp,
        idp_cert,
    }
}

/// What an SP keeps of a sign-in: the NameID and the SessionIndex.
struct SignedIn {
    name_id: String,
    session_index: String,
}

/// Signs in to `sp` (with the password if the browser has no session yet).
async fn sign_in(s: &Setup, b: &Browser, sp: &TestSp) -> SignedIn {
    let id = new_request_id().unwrap();
    let url = authn_request_redirect(&sp.config, &s.idp, &id, "", now()).unwrap();
    let mut r = b.get(&url).await;
    if r.status() == 303 {
        r = submit_login(b, &location(&r), "alice", "alice-password").await;
    }
    assert_eq!(r.status(), 200);
    let (b64, _, _) = posted(&r.text().await.unwrap());
    let a = verify_response(&sp.config, &s.idp, &b64, Some(&id), now()).unwrap();
    SignedIn {
        name_id: a.name_id,
        session_index: a.session_index.unwrap(),
    }
}

/// True when the browser still has a session (an AuthnRequest is answered at once).
async fn has_session(s: &Setup, b: &Browser) -> bool {
    let id = new_request_id().unwrap();
    let url = authn_request_redirect(&s.wiki.config, &s.idp, &id, "", now()).unwrap();
    b.get(&url).await.status() == 200
}

/// The query of a Redirect-binding message from the IdP, after checking its signature (SAML
/// bindings §3.4.4.1) with an independent verifier (OpenSSL, not the code that signed it):
/// (the message's XML, RelayState).
fn redirected(url: &str, param: &str, idp_cert: &[u8]) -> (String, Option<String>) {
    let query = url.split_once('?').unwrap().1;
    let raw = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
    };
    let decode = |v: &str| {
        form_urlencoded::parse(format!("v={v}").as_bytes())
            .next()
            .unwrap()
            .1
            .into_owned()
    };
    let mut signed = format!("{param}={}", raw(param).unwrap());
    if let Some(r) = raw("RelayState") {
        signed.push_str(&format!("&RelayState={r}"));
    }
    signed.push_str(&format!("&SigAlg={}", raw("SigAlg").unwrap()));
    assert_eq!(
        decode(raw("SigAlg").unwrap()),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    );
    let key = openssl::x509::X509::from_der(idp_cert)
        .unwrap()
        .public_key()
        .unwrap();
    let mut v = openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
    v.update(signed.as_bytes()).unwrap();
    let signature = B64.decode(decode(raw("Signature").unwrap())).unwrap();
    assert!(v.verify(&signature).unwrap(), "the IdP's query signature");
    let deflated = B64.decode(decode(raw(param).unwrap())).unwrap();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(deflated.as_slice())
        .read_to_string(&mut xml)
        .unwrap();
    (xml, raw("RelayState").map(decode))
}

/// The form the IdP posts to an SP's SLO service: (XML, RelayState), after checking the action.
fn posted_to(html: &str, action: &str, param: &str) -> (String, Option<String>) {
    let unescaped = crate::interactive::unescape(html);
    assert!(
        unescaped.contains(&format!("action=\"{action}\"")),
        "{html}"
    );
    let xml = String::from_utf8(B64.decode(field(html, param)).unwrap()).unwrap();
    let relay = html
        .contains("name=\"RelayState\"")
        .then(|| field(html, "RelayState"));
    (xml, relay)
}

fn attr<'x>(xml: &'x str, name: &str) -> &'x str {
    xml.split(&format!("{name}=\""))
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
}

fn element<'x>(xml: &'x str, name: &str) -> &'x str {
    xml.split(name)
        .nth(1)
        .unwrap()
        .split_once('>')
        .unwrap()
        .1
        .split('<')
        .next()
        .unwrap()
}

on_both_engines!(
    alice_logs_out_at_one_sp_and_the_other_sp_of_her_session_is_told_before_the_answer
);
async fn alice_logs_out_at_one_sp_and_the_other_sp_of_her_session_is_told_before_the_answer(
    pg: bool,
) {
    let s = setup(pg).await;
    let b = Browser::new(&s.server);
    let at_wiki = sign_in(&s, &b, &s.wiki).await;
    let at_crm = sign_in(&s, &b, &s.crm).await;
    assert_eq!(
        at_wiki.session_index, at_crm.session_index,
        "one SSO session"
    );
    // The wiki's signed LogoutRequest (Redirect binding).
    let url = logout_request_redirect(
        &s.wiki.config,
        &s.idp,
        &at_wiki.name_id,
        Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"),
        Some(&at_wiki.session_index),
        "wiki-relay",
        now(),
    )
    .unwrap()
    .unwrap();
    let wiki_request_id = attr(&redirected_request(&url), "ID").to_string();
    let r = b.get(&url).await;
    assert_eq!(r.status(), 200);
    // The CRM (HTTP-POST) is sent a LogoutRequest naming her as the CRM knows her.
    let (xml, relay) = posted_to(&r.text().await.unwrap(), CRM_SLO, "SAMLRequest");
    assert!(
        xmlsec1_verifies(&xml, "LogoutRequest", &s.idp_cert),
        "{xml}"
    );
    assert_eq!(element(&xml, "<saml:NameID"), at_crm.name_id);
    assert_eq!(element(&xml, "<samlp:SessionIndex"), at_crm.session_index);
    assert_eq!(attr(&xml, "Destination"), CRM_SLO);
    let relay = relay.unwrap();
    assert!(relay.len() <= 80);
    // The session is over already: the browser is asked to sign in again.
    assert!(!has_session(&s, &b).await);
    // A LogoutResponse signed by another key does not answer it.
    let (forger, _) = TestSp::new(CRM);
    let forged =
        forger.logout_response(&s.server.url("/acme/saml/slo"), attr(&xml, "ID"), "Success");
    let r = b
        .post(
            &s.server.url("/acme/saml/slo"),
            &[
                ("SAMLResponse", &forger.post(&forged)),
                ("RelayState", &relay),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("signature"));
    // The CRM's own answer (HTTP-POST, signed inside) lets the logout go on to the wiki's answer.
    let answer =
        s.crm
            .logout_response(&s.server.url("/acme/saml/slo"), attr(&xml, "ID"), "Success");
    let form = [
        ("SAMLResponse", s.crm.post(&answer)),
        ("RelayState", relay.clone()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = b.post(&s.server.url("/acme/saml/slo"), &form).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let to_wiki = location(&r);
    assert!(
        to_wiki.starts_with(&format!("{WIKI_SLO}?SAMLResponse=")),
        "{to_wiki}"
    );
    let (xml, relay) = redirected(&to_wiki, "SAMLResponse", &s.idp_cert);
    assert_eq!(relay.as_deref(), Some("wiki-relay"));
    assert_eq!(attr(&xml, "InResponseTo"), wiki_request_id);
    assert!(xml.contains("status:Success\""), "{xml}");
    assert!(!xml.contains("PartialLogout"), "{xml}");
    // The CRM's answer again: the logout it belonged to is over.
    let r = b.post(&s.server.url("/acme/saml/slo"), &form).await;
    assert_eq!(r.status(), 400);
    s.server.stop().await;
}

/// The XML of a Redirect-binding request (its signature is checked elsewhere).
fn redirected_request(url: &str) -> String {
    let raw = url
        .split("SAMLRequest=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let b64 = form_urlencoded::parse(format!("v={raw}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(B64.decode(b64).unwrap().as_slice())
        .read_to_string(&mut xml)
        .unwrap();
    xml
}

on_both_engines!(signing_out_at_the_end_session_endpoint_sends_the_saml_sps_signed_logout_requests);
async fn signing_out_at_the_end_session_endpoint_sends_the_saml_sps_signed_logout_requests(
    pg: bool,
) {
    let s = setup(pg).await;
    let b = Browser::new(&s.server);
    let at_wiki = sign_in(&s, &b, &s.wiki).await;
    let r = b.get(&s.server.url("/acme/connect/endsession")).await;
    let html = r.text().await.unwrap();
    let r = b
        .post(
            &s.server.url("/acme/account/logout"),
            &[
                ("logout_id", &field(&html, "logout_id")),
                ("csrf", &field(&html, "csrf")),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().contains("Max-Age=0")),
        "the session cookie goes"
    );
    let to_wiki = location(&r);
    let (xml, relay) = redirected(&to_wiki, "SAMLRequest", &s.idp_cert);
    assert!(xml.starts_with("<samlp:LogoutRequest"), "{xml}");
    assert_eq!(element(&xml, "<saml:NameID"), at_wiki.name_id);
    assert_eq!(element(&xml, "<samlp:SessionIndex"), at_wiki.session_index);
    assert!(xml.contains(&format!(
        "<saml:Issuer>{}</saml:Issuer>",
        s.server.url("/acme")
    )));
    // The wiki answers (Redirect binding); the signed-out page follows.
    let answer =
        s.wiki
            .logout_response(&s.server.url("/acme/saml/slo"), attr(&xml, "ID"), "Success");
    let url = s.wiki.redirect(
        &s.server.url("/acme/saml/slo"),
        "SAMLResponse",
        &answer,
        &relay.unwrap(),
    );
    let r = b.get(&url).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("signed out")
    );
    assert!(!has_session(&s, &b).await);
    // A logout in progress is no end-session confirmation (a 400, not a server error).
    sign_in(&s, &b, &s.wiki).await;
    let r = b.get(&s.server.url("/acme/connect/endsession")).await;
    let html = r.text().await.unwrap();
    let r = b
        .post(
            &s.server.url("/acme/account/logout"),
            &[
                ("logout_id", &field(&html, "logout_id")),
                ("csrf", &field(&html, "csrf")),
            ],
        )
        .await;
    let (_, relay) = redirected(&location(&r), "SAMLRequest", &s.idp_cert);
    let r = b
        .post(
            &s.server.url("/acme/account/logout"),
            &[("logout_id", relay.as_deref().unwrap()), ("csrf", "x")],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("unknown logout request"));
    s.server.stop().await;
}

on_both_engines!(a_saml_logout_reaches_the_oidc_clients_of_the_session_front_and_back);
async fn a_saml_logout_reaches_the_oidc_clients_of_the_session_front_and_back(pg: bool) {
    let upstreams = crate::support::Upstreams::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(4);
    let app = axum::Router::new().route(
        "/backchannel-logout",
        axum::routing::post(move |body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body).await;
                "ok"
            }
        }),
    );
    let receiver = upstreams.serve(app).await;
    let acme = ACME.replace(
        "backchannel_logout_uri = \"https://127.0.0.1:9000/backchannel-logout\"",
        &format!(
            "backchannel_logout_uri = \"{receiver}/backchannel-logout\"\n\
             frontchannel_logout_uri = \"http://127.0.0.1:9000/frontchannel-logout\""
        ),
    );
    let s = setup_with(pg, acme, vec![upstreams.ca_file()]).await;
    let b = Browser::new(&s.server);
    // One session: acme-web (OIDC) first, then the wiki (SAML) by single sign-on.
    crate::interactive::alice_signs_in(&s.server, &b, "st").await;
    let at_wiki = sign_in(&s, &b, &s.wiki).await;
    let url = logout_request_redirect(
        &s.wiki.config,
        &s.idp,
        &at_wiki.name_id,
        None,
        Some(&at_wiki.session_index),
        "",
        now(),
    )
    .unwrap()
    .unwrap();
    let r = b.get(&url).await;
    // Front-channel first: the client's logout page in an iframe, then on to the rest.
    assert_eq!(r.status(), 200);
    let html = crate::interactive::unescape(&r.text().await.unwrap());
    assert!(html.contains("frontchannel-logout?iss="), "{html}");
    let next = html
        .split(&s.server.url("/acme/saml/slo?continue="))
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    // Back-channel: a logout token for the session, in the background.
    let body = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(body.starts_with("logout_token="), "{body}");
    let r = b
        .get(&s.server.url(&format!("/acme/saml/slo?continue={next}")))
        .await;
    assert_eq!(r.status(), 303);
    let (xml, _) = redirected(&location(&r), "SAMLResponse", &s.idp_cert);
    assert!(xml.contains("status:Success"), "{xml}");
    // The continue link is single use.
    let r = b
        .get(&s.server.url(&format!("/acme/saml/slo?continue={next}")))
        .await;
    assert_eq!(r.status(), 400);
    s.server.stop().await;
}

on_both_engines!(bad_logout_requests_are_refused_and_end_no_session);
async fn bad_logout_requests_are_refused_and_end_no_session(pg: bool) {
    crate::security_rules::security_events::capture();
    let s = setup(pg).await;
    let b = Browser::new(&s.server);
    let at_wiki = sign_in(&s, &b, &s.wiki).await;
    let slo = s.server.url("/acme/saml/slo");
    let request = |name_id: &str, session: &str, extra: &str| {
        format!(
            "{extra}<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
             xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{}\" Version=\"2.0\" \
             IssueInstant=\"{}\" Destination=\"{slo}\"><saml:Issuer>{SP}</saml:Issuer>{{signature}}\
             <saml:NameID>{name_id}</saml:NameID><samlp:SessionIndex>{session}</samlp:SessionIndex>\
             </samlp:LogoutRequest>",
            new_request_id().unwrap(),
            instant(now()).unwrap()
        )
    };
    // The wiki is told no, by a signed LogoutResponse with a Requester status.
    let refused = |r: &reqwest::Response| {
        assert_eq!(r.status(), 303);
        let (xml, _) = redirected(&location(r), "SAMLResponse", &s.idp_cert);
        assert!(xml.contains("status:Requester"), "{xml}");
    };
    let good = request(&at_wiki.name_id, &at_wiki.session_index, "");
    // Unsigned (the Redirect binding without Signature).
    let unsigned = {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut e, good.replacen("{signature}", "", 1).as_bytes()).unwrap();
        let b64 = B64.encode(e.finish().unwrap());
        format!(
            "{slo}?SAMLRequest={}",
            form_urlencoded::byte_serialize(b64.as_bytes()).collect::<String>()
        )
    };
    let r = b.get(&unsigned).await;
    refused(&r);
    // Signed by another key.
    let (forger, _) = TestSp::new(SP);
    let r = b
        .get(&forger.redirect(&slo, "SAMLRequest", &good, ""))
        .await;
    refused(&r);
    let events = crate::security_rules::security_events::of(&r);
    assert!(
        events.iter().any(|e| e["event"] == "saml_logout_refused"),
        "{events:?}"
    );
    // Another user's NameID for her session, and her NameID for a session the wiki had no
    // part in (another browser, signed in to the CRM only).
    let r = b
        .get(&s.wiki.redirect(
            &slo,
            "SAMLRequest",
            &request("someone-else", &at_wiki.session_index, ""),
            "",
        ))
        .await;
    refused(&r);
    let other = Browser::new(&s.server);
    let at_crm = sign_in(&s, &other, &s.crm).await;
    let r = b
        .get(&s.wiki.redirect(
            &slo,
            "SAMLRequest",
            &request(&at_wiki.name_id, &at_crm.session_index, ""),
            "",
        ))
        .await;
    refused(&r);
    // A DOCTYPE, garbage, an oversized message: error pages.
    let doctype = request(
        &at_wiki.name_id,
        &at_wiki.session_index,
        "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>",
    );
    let r = b
        .post(&slo, &[("SAMLRequest", &s.wiki.post(&doctype))])
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("DOCTYPE"));
    let r = b
        .post(&slo, &[("SAMLRequest", &B64.encode("<nonsense/>"))])
        .await;
    assert_eq!(r.status(), 400);
    let huge = "A".repeat(70 * 1024);
    let r = b.post(&slo, &[("SAMLRequest", huge.as_str())]).await;
    assert!(matches!(r.status().as_u16(), 400 | 413), "{}", r.status());
    // The wiki's request at another tenant: not one of its SPs.
    let r = b
        .get(
            &s.wiki
                .redirect(&s.server.url("/globex/saml/slo"), "SAMLRequest", &good, ""),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("not a service provider of this tenant")
    );
    // Nothing ended: both sessions are alive.
    assert!(has_session(&s, &b).await);
    assert!(sign_in(&s, &other, &s.crm).await.session_index == at_crm.session_index);
    // The good request (HTTP-POST, signed inside) ends it; its replay is refused.
    let signed = s.wiki.post(&good);
    let r = b.post(&slo, &[("SAMLRequest", &signed)]).await;
    assert_eq!(r.status(), 303);
    let (xml, _) = redirected(&location(&r), "SAMLResponse", &s.idp_cert);
    assert!(xml.contains("status:Success"), "{xml}");
    assert!(!has_session(&s, &b).await);
    let r = b.post(&slo, &[("SAMLRequest", &signed)]).await;
    refused(&r);
    // The CRM-only session of the other browser lives on.
    assert!(sign_in(&s, &other, &s.crm).await.session_index == at_crm.session_index);
    s.server.stop().await;
}

#[test]
fn single_logout_needs_the_sps_signing_certificate_and_an_sp_is_named_unlike_any_client() {
    let tenant = format!(
        "{ACME}\n[[saml_service_providers]]\nentity_id = \"{SP}\"\n\
         acs = [{{ url = \"{ACS}\" }}]\nslo_url = \"{WIKI_SLO}\"\n"
    );
    let problems = crate::saml_idp::resolve_acme(&tenant).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.key == "saml_service_providers[1].slo_url"
                && p.message.contains("signing_certificate")),
        "{problems:?}"
    );
    // An SP named like a client: a session's participants would be ambiguous.
    let twin = format!(
        "{ACME}\n[[saml_service_providers]]\nentity_id = \"urn:acme:twin\"\n\
         acs = [{{ url = \"{ACS}\" }}]\n[[clients]]\nclient_id = \"urn:acme:twin\"\n\
         grant_types = [\"client_credentials\"]\nsecrets = [{{ hash = \"sha256:iRczT2z1BWu_vNWDkEQIhZoTsXxk_d6Q4WHSKOUIco4\" }}]\nscopes = [\"api.read\"]\n"
    );
    let problems = crate::saml_idp::resolve_acme(&twin).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.key == "saml_service_providers[1].entity_id"
                && p.message.contains("also a client_id")),
        "{problems:?}"
    );
}
