//! The application portal (`/{slug}/apps`) and the IdP-initiated SAML sign-in it starts (SAML
//! profiles §4.1.5): what it lists, that it asks for a sign-in first, the unsolicited Response
//! (verified by xmlsec1 and by Portcullis's own SP module), and every way to abuse the launch.

use crate::interactive::{Browser, field, location, submit_consent, submit_login, unescape};
use crate::saml_idp::xmlsec1_verifies;
use crate::support::*;
use base64::Engine;
use portcullis::federation::saml::sp::{
    SpConfig, authn_request_redirect, new_request_id, parse_idp_metadata, verify_response,
};

const DEMO_SP: &str = "https://sp.acme.test";
const DEMO_ACS: &str = "http://127.0.0.1:9000/saml/acs";
const PAYROLL: &str = "https://payroll.acme.test";
const PAYROLL_ACS: &str = "http://127.0.0.1:9000/payroll/acs";
const PAYROLL_RELAY: &str = "https://payroll.acme.test/home?x=1&y=2";
const LEGACY: &str = "https://legacy.acme.test";
const RETIRED: &str = "https://retired.acme.test";
const GLOBEX_SP: &str = "https://sp.globex.test";

/// acme (the demo file: acme-web has an initiate_login_uri, the demo SP opted in) with more
/// applications: one more of each kind on the portal, and one of each that must not be.
fn acme() -> String {
    format!(
        r#"{ACME}
[[clients]]
client_id = "acme-hr"
client_name = "<b>HR</b> & pay"
logo_uri = "https://hr.acme.test/logo.png"
public = true
grant_types = ["authorization_code"]
scopes = ["openid"]
redirect_uris = ["https://hr.acme.test/callback"]
initiate_login_uri = "https://hr.acme.test/start?tenant=acme"
target_link_uri = "https://hr.acme.test/dashboard"

[[clients]]
client_id = "acme-off"
client_name = "Switched-off app"
enabled = false
public = true
grant_types = ["authorization_code"]
scopes = ["openid"]
redirect_uris = ["https://off.acme.test/callback"]
initiate_login_uri = "https://off.acme.test/login"

[[saml_service_providers]]
entity_id = "{PAYROLL}"
display_name = "Payroll <script>alert(1)</script>"
acs = [{{ url = "http://127.0.0.1:9000/payroll/other", index = 0 }}, {{ url = "{PAYROLL_ACS}", index = 1, default = true }}]
allow_idp_initiated = true
default_relay_state = "{PAYROLL_RELAY}"
require_consent = true

[[saml_service_providers]]
entity_id = "{LEGACY}"
display_name = "Legacy (SP-initiated only)"
acs = [{{ url = "http://127.0.0.1:9000/legacy/acs" }}]

[[saml_service_providers]]
entity_id = "{RETIRED}"
display_name = "Retired"
enabled = false
allow_idp_initiated = true
acs = [{{ url = "http://127.0.0.1:9000/retired/acs" }}]
"#
    )
}

fn globex() -> String {
    format!(
        r#"{GLOBEX}
[[saml_service_providers]]
entity_id = "{GLOBEX_SP}"
display_name = "Globex Wiki"
acs = [{{ url = "http://127.0.0.1:9000/globex/acs" }}]
allow_idp_initiated = true
"#
    )
}

async fn server(pg: bool) -> TestServer {
    TestServer::start_with(Options {
        tenants: vec![("acme", acme()), ("globex", globex())],
        postgres: pg,
        ..Default::default()
    })
    .await
}

/// Opens the portal in `b` as `user`, signing in on the way; returns the page.
async fn portal_as(s: &TestServer, b: &Browser, user: &str, password: &str) -> String {
    let r = b.get(&s.url("/acme/apps")).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let login = location(&r);
    assert!(
        login.starts_with(&s.url("/acme/account/login?interaction=")),
        "{login}"
    );
    let r = submit_login(b, &login, user, password).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(location(&r), s.url("/acme/apps"), "back to the portal");
    let r = b.get(&s.url("/acme/apps")).await;
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// The SAML applications (entity ids) and OIDC links (hrefs) of a portal page.
fn listed(html: &str) -> (Vec<String>, Vec<String>) {
    let sps = html
        .split("name=\"sp\" value=\"")
        .skip(1)
        .map(|rest| unescape(rest.split('"').next().unwrap()))
        .collect();
    let links = html
        .split("<a class=\"app\" href=\"")
        .skip(1)
        .map(|rest| unescape(rest.split('"').next().unwrap()))
        .collect();
    (sps, links)
}

async fn launch(s: &TestServer, b: &Browser, csrf: &str, sp: &str) -> reqwest::Response {
    b.post(&s.url("/acme/apps/launch"), &[("csrf", csrf), ("sp", sp)])
        .await
}

/// The Response the page posts: (action, base64, XML, RelayState).
fn posted(html: &str) -> (String, String, String, Option<String>) {
    let action = unescape(
        html.split("<form id=\"form-post\" method=\"post\" action=\"")
            .nth(1)
            .unwrap_or_else(|| panic!("no form post in:\n{html}"))
            .split('"')
            .next()
            .unwrap(),
    );
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
    (action, b64, xml, relay)
}

fn idp_cert(s: &TestServer) -> Vec<u8> {
    let tenant = s.state().registry.get("acme").unwrap();
    tenant.keys.load().saml_signing_key().unwrap().1.to_vec()
}

fn now() -> i64 {
    use portcullis::clock::Clock;
    portcullis::clock::SystemClock.now()
}

/// Portcullis's own SP module as `entity_id` at `acs`, taking unsolicited Responses.
async fn sp_module(
    s: &TestServer,
    entity_id: &str,
    acs: &str,
) -> (SpConfig, portcullis::federation::saml::sp::IdpMetadata) {
    use portcullis::federation::saml::sp::test_idp::self_signed_key_and_cert;
    let xml = s
        .http
        .get(s.url("/acme/saml/metadata"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (key, cert) = self_signed_key_and_cert("sp.acme.test", false).unwrap();
    let sp = SpConfig {
        entity_id: entity_id.into(),
        acs_url: acs.into(),
        slo_url: None,
        signing_key_pem: key,
        signing_cert_pem: cert,
        encryption_key_pem: None,
        encryption_cert_pem: None,
        max_clock_skew_secs: 120,
        allow_idp_initiated: true,
    };
    (sp, parse_idp_metadata(&xml).unwrap())
}

on_both_engines!(the_portal_lists_exactly_the_opted_in_applications_of_the_tenant_escaped);
async fn the_portal_lists_exactly_the_opted_in_applications_of_the_tenant_escaped(pg: bool) {
    let s = server(pg).await;
    let b = Browser::new(&s);
    let html = portal_as(&s, &b, "alice", "alice-password").await;
    let (mut sps, links) = listed(&html);
    sps.sort();
    assert_eq!(sps, vec![PAYROLL.to_string(), DEMO_SP.to_string()]);
    let iss = form_urlencoded::byte_serialize(s.url("/acme").as_bytes()).collect::<String>();
    // By name: "<b>HR</b> & pay" sorts before "Acme Web" ('<' < 'a').
    assert_eq!(
        links,
        vec![
            format!(
                "https://hr.acme.test/start?tenant=acme&iss={iss}&target_link_uri=https%3A%2F%2Fhr.acme.test%2Fdashboard"
            ),
            // OIDC Core §4: target_link_uri defaults to the origin of initiate_login_uri.
            format!(
                "https://127.0.0.1:9000/login?iss={iss}&target_link_uri=https%3A%2F%2F127.0.0.1%3A9000%2F"
            ),
        ]
    );
    // Names and logos from the registrations, escaped; the tenant's branding.
    assert!(html.contains("Acme Wiki (SAML)"), "{html}");
    assert!(
        html.contains("&lt;b&gt;HR&lt;&#x2f;b&gt; &amp; pay"),
        "{html}"
    );
    assert!(
        html.contains("Payroll &lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{html}"
    );
    assert!(
        html.contains("src=\"https:&#x2f;&#x2f;hr.acme.test&#x2f;logo.png\""),
        "{html}"
    );
    assert!(html.contains("<h1>Acme Corporation</h1>"), "{html}");
    assert!(html.contains("#c2410c"), "the tenant's colour");
    assert!(html.contains("Alice Liddell"), "who is signed in");
    // The sign-out link leads to the tenant's logout confirmation.
    let r = b.get(&s.url("/acme/connect/endsession")).await;
    assert_eq!(r.status(), 200, "sign out");
    // Usable on a phone and without JavaScript: a viewport, plain links and forms, no script.
    assert!(html.contains("<meta name=\"viewport\""));
    assert!(!html.contains("<script"), "{html}");
    for absent in [
        "Switched-off",
        "off.acme.test",
        LEGACY,
        "Legacy",
        RETIRED,
        GLOBEX_SP,
        "Globex Wiki",
        "acme-m2m",
    ] {
        assert!(!html.contains(absent), "{absent} is not on the portal");
    }
    // globex's portal lists globex's SP only (bob signs in there).
    let g = Browser::new(&s);
    let r = g.get(&s.url("/globex/apps")).await;
    let r = submit_login(&g, &location(&r), "bob", "bob-password").await;
    assert_eq!(location(&r), s.url("/globex/apps"));
    let html = g.get(&s.url("/globex/apps")).await.text().await.unwrap();
    assert_eq!(listed(&html), (vec![GLOBEX_SP.to_string()], Vec::new()));
    s.stop().await;
}

#[tokio::test]
async fn a_tenant_without_applications_shows_the_empty_portal() {
    let s = TestServer::start_with(Options {
        tenants: vec![("acme", ACME.into()), ("globex", GLOBEX.into())],
        ..Default::default()
    })
    .await;
    let g = Browser::new(&s);
    let r = g.get(&s.url("/globex/apps")).await;
    let r = submit_login(&g, &location(&r), "bob", "bob-password").await;
    assert_eq!(location(&r), s.url("/globex/apps"));
    let html = g.get(&s.url("/globex/apps")).await.text().await.unwrap();
    assert!(html.contains("id=\"no-apps\""), "{html}");
    assert_eq!(listed(&html), (Vec::new(), Vec::new()));
    s.stop().await;
}

on_both_engines!(
    an_idp_initiated_sign_in_posts_a_signed_response_without_in_response_to_to_the_default_acs
);
async fn an_idp_initiated_sign_in_posts_a_signed_response_without_in_response_to_to_the_default_acs(
    pg: bool,
) {
    crate::security_rules::security_events::capture();
    let s = server(pg).await;
    let b = Browser::new(&s);
    let html = portal_as(&s, &b, "alice", "alice-password").await;
    let csrf = field(&html, "csrf");
    // The demo SP: one ACS, no consent: the SSO session answers at once.
    let r = launch(&s, &b, &csrf, DEMO_SP).await;
    assert_eq!(r.status(), 200);
    let events = crate::security_rules::security_events::of(&r);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "saml_response_issued" && e["sp"] == DEMO_SP),
        "{events:?}"
    );
    let (action, b64, xml, relay) = posted(&r.text().await.unwrap());
    assert_eq!(action, DEMO_ACS);
    assert_eq!(relay.as_deref(), Some("/welcome"), "the default RelayState");
    // SAML profiles §4.1.5: unsolicited, so InResponseTo appears nowhere.
    assert!(!xml.contains("InResponseTo"), "{xml}");
    assert!(
        xml.contains(&format!("Destination=\"{DEMO_ACS}\"")),
        "{xml}"
    );
    assert!(xmlsec1_verifies(&xml, "Assertion", &idp_cert(&s)), "{xml}");
    let (sp, idp) = sp_module(&s, DEMO_SP, DEMO_ACS).await;
    let a = verify_response(&sp, &idp, &b64, None, now()).unwrap();
    assert_eq!(a.in_response_to, None);
    assert_eq!(a.issuer, s.url("/acme"));
    // The same user through an SP-initiated request would get the same (persistent) NameID;
    // an SP that does not take unsolicited Responses refuses this one.
    let strict = SpConfig {
        allow_idp_initiated: false,
        ..sp.clone()
    };
    assert!(verify_response(&strict, &idp, &b64, None, now()).is_err());
    // Pressing the button again is a new sign-in: a new assertion (never one replayed), the
    // same pairwise NameID.
    let r = launch(&s, &b, &csrf, DEMO_SP).await;
    let (_, again, _, _) = posted(&r.text().await.unwrap());
    let b2 = verify_response(&sp, &idp, &again, None, now()).unwrap();
    assert_ne!(b2.assertion_id, a.assertion_id);
    assert_eq!(b2.name_id, a.name_id);
    // Payroll: two ACS, the default is the second; consent first; the RelayState is escaped in
    // the page and arrives intact.
    let r = launch(&s, &b, &csrf, PAYROLL).await;
    assert_eq!(r.status(), 303);
    let consent = location(&r);
    assert!(
        consent.starts_with(&s.url("/acme/account/consent?interaction=")),
        "{consent}"
    );
    let r = submit_consent(&b, &consent, "allow", false).await;
    assert_eq!(r.status(), 200, "{}", r.status());
    let (action, b64, xml, relay) = posted(&r.text().await.unwrap());
    assert_eq!(action, PAYROLL_ACS);
    assert_eq!(relay.as_deref(), Some(PAYROLL_RELAY));
    assert!(!xml.contains("InResponseTo"), "{xml}");
    assert!(xmlsec1_verifies(&xml, "Assertion", &idp_cert(&s)), "{xml}");
    let (sp, idp) = sp_module(&s, PAYROLL, PAYROLL_ACS).await;
    verify_response(&sp, &idp, &b64, None, now()).unwrap();
    s.stop().await;
}

on_both_engines!(a_launch_without_a_session_signs_in_first_then_posts_the_response);
async fn a_launch_without_a_session_signs_in_first_then_posts_the_response(pg: bool) {
    let s = server(pg).await;
    let b = Browser::new(&s);
    let html = portal_as(&s, &b, "alice", "alice-password").await;
    let csrf = field(&html, "csrf");
    // The SSO session ends (its cookie is gone); the portal page is still open.
    let url: reqwest::Url = s.url("/acme/").parse().unwrap();
    b.jar
        .add_cookie_str("portcullis.session=; Path=/acme; Secure", &url);
    let r = launch(&s, &b, &csrf, DEMO_SP).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let login = location(&r);
    assert!(
        login.starts_with(&s.url("/acme/account/login?interaction=")),
        "{login}"
    );
    let r = submit_login(&b, &login, "alice", "alice-password").await;
    assert_eq!(r.status(), 200);
    let (action, _, xml, relay) = posted(&r.text().await.unwrap());
    assert_eq!(action, DEMO_ACS);
    assert_eq!(relay.as_deref(), Some("/welcome"));
    assert!(!xml.contains("InResponseTo") && xml.contains("Assertion"));
    s.stop().await;
}

/// A refusal: the error page (400), no SAMLResponse, and a security event of the portal.
async fn refused(what: &str, r: reqwest::Response) -> String {
    let events = crate::security_rules::security_events::of(&r);
    assert_eq!(r.status(), 400, "{what}");
    let text = r.text().await.unwrap();
    assert!(!text.contains("SAMLResponse"), "{what}: {text}");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "request_rejected" && e["endpoint"] == "portal"),
        "{what}: {events:?}"
    );
    assert!(
        !events.iter().any(|e| e["event"] == "saml_response_issued"),
        "{what}: {events:?}"
    );
    text
}

on_both_engines!(a_forged_or_cross_site_launch_is_refused_and_nothing_is_posted);
async fn a_forged_or_cross_site_launch_is_refused_and_nothing_is_posted(pg: bool) {
    crate::security_rules::security_events::capture();
    let s = server(pg).await;
    let b = Browser::new(&s);
    let csrf = field(&portal_as(&s, &b, "alice", "alice-password").await, "csrf");
    let url = s.url("/acme/apps/launch");
    // No token, a made-up one, and the token another browser was given.
    let r = b.post(&url, &[("sp", DEMO_SP)]).await;
    refused("no csrf", r).await;
    let r = launch(&s, &b, "forged", DEMO_SP).await;
    refused("a made-up csrf", r).await;
    let other = Browser::new(&s);
    let others = field(
        &portal_as(&s, &other, "alice", "alice-password").await,
        "csrf",
    );
    assert_ne!(others, csrf);
    let r = launch(&s, &b, &others, DEMO_SP).await;
    refused("another browser's csrf", r).await;
    // The right token, sent by another site's page (the browser names the origin).
    let cross = |origin: &'static str, site: &'static str| {
        let mut req = b
            .http
            .post(&url)
            .form(&[("csrf", csrf.as_str()), ("sp", DEMO_SP)]);
        if !origin.is_empty() {
            req = req.header("origin", origin);
        }
        if !site.is_empty() {
            req = req.header("sec-fetch-site", site);
        }
        req.send()
    };
    let r = cross("https://evil.example", "").await.unwrap();
    refused("another origin", r).await;
    let r = cross("null", "").await.unwrap();
    refused("an opaque origin", r).await;
    let r = cross("", "cross-site").await.unwrap();
    refused("Sec-Fetch-Site: cross-site", r).await;
    let r = cross("", "same-site").await.unwrap();
    refused("Sec-Fetch-Site: same-site (a sibling host)", r).await;
    let r = cross("null", "cross-site").await.unwrap();
    refused("an opaque origin, cross-site", r).await;
    // A GET that anyone could link to starts nothing.
    let r = b
        .get(&format!(
            "{url}?csrf={csrf}&sp={}",
            form_urlencoded::byte_serialize(DEMO_SP.as_bytes()).collect::<String>()
        ))
        .await;
    assert_eq!(r.status(), 405);
    assert!(!r.text().await.unwrap().contains("SAMLResponse"));
    // Oversize: an entity id beyond SAML core's 1024 characters, and a body beyond the limit.
    let long = format!("https://{}.example", "a".repeat(2000));
    let r = launch(&s, &b, &csrf, &long).await;
    refused("an oversized entity id", r).await;
    let huge = "a".repeat(2 * 1024 * 1024);
    let r = launch(&s, &b, &csrf, &huge).await;
    assert!(matches!(r.status().as_u16(), 400 | 413), "{}", r.status());
    // The same form from this origin is what works.
    let origin = s.url("");
    let origin = origin.trim_end_matches('/');
    let r = b
        .http
        .post(&url)
        .header("origin", origin)
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf", csrf.as_str()), ("sp", DEMO_SP)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("SAMLResponse"));
    // A page with referrer policy no-referrer sends `Origin: null` even to its own origin; the
    // browser's Sec-Fetch-Site says it is this one.
    let r = cross("null", "same-origin").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("SAMLResponse"));
    s.stop().await;
}

on_both_engines!(an_sp_without_the_opt_in_disabled_unknown_or_of_another_tenant_is_refused);
async fn an_sp_without_the_opt_in_disabled_unknown_or_of_another_tenant_is_refused(pg: bool) {
    crate::security_rules::security_events::capture();
    let s = server(pg).await;
    let b = Browser::new(&s);
    let csrf = field(&portal_as(&s, &b, "alice", "alice-password").await, "csrf");
    let text = refused("no opt-in", launch(&s, &b, &csrf, LEGACY).await).await;
    assert!(
        text.contains("does not accept sign-ins started here"),
        "{text}"
    );
    assert!(text.contains("unauthorized_client"), "{text}");
    for (what, sp) in [
        ("disabled", RETIRED),
        ("another tenant's", GLOBEX_SP),
        ("unknown", "https://evil.example"),
        ("an OIDC client", "acme-web"),
    ] {
        let text = refused(what, launch(&s, &b, &csrf, sp).await).await;
        assert!(
            text.contains("not a service provider of this tenant"),
            "{what}: {text}"
        );
    }
    let text = refused("nothing named", launch(&s, &b, &csrf, "").await).await;
    assert!(text.contains("name the application"), "{text}");
    // At globex, acme's SP is unknown, and acme's form token is not globex's.
    let g = Browser::new(&s);
    let r = g.get(&s.url("/globex/apps")).await;
    let r = submit_login(&g, &location(&r), "bob", "bob-password").await;
    assert_eq!(r.status(), 303);
    let gcsrf = field(
        &g.get(&s.url("/globex/apps")).await.text().await.unwrap(),
        "csrf",
    );
    let r = g
        .post(
            &s.url("/globex/apps/launch"),
            &[("csrf", gcsrf.as_str()), ("sp", DEMO_SP)],
        )
        .await;
    let text = refused("acme's SP at globex", r).await;
    assert!(
        text.contains("not a service provider of this tenant"),
        "{text}"
    );
    let r = g
        .post(
            &s.url("/globex/apps/launch"),
            &[("csrf", csrf.as_str()), ("sp", GLOBEX_SP)],
        )
        .await;
    refused("acme's token at globex", r).await;
    // The SP without the opt-in still signs users in when it asks (SP-initiated, answered with
    // InResponseTo); the disabled one does not even then.
    let (sp, idp) = sp_module(&s, LEGACY, "http://127.0.0.1:9000/legacy/acs").await;
    let id = new_request_id().unwrap();
    let r = b
        .get(&authn_request_redirect(&sp, &idp, &id, "", now()).unwrap())
        .await;
    assert_eq!(r.status(), 200);
    let (action, b64, _, _) = posted(&r.text().await.unwrap());
    assert_eq!(action, "http://127.0.0.1:9000/legacy/acs");
    let a = verify_response(&sp, &idp, &b64, Some(&id), now()).unwrap();
    assert_eq!(a.in_response_to.as_deref(), Some(id.as_str()));
    let (sp, idp) = sp_module(&s, RETIRED, "http://127.0.0.1:9000/retired/acs").await;
    let r = b
        .get(&authn_request_redirect(&sp, &idp, &new_request_id().unwrap(), "", now()).unwrap())
        .await;
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(
        !text.contains("SAMLResponse") && text.contains("not a service provider"),
        "{text}"
    );
    s.stop().await;
}

on_both_engines!(a_disabled_user_gets_neither_the_portal_nor_an_assertion);
async fn a_disabled_user_gets_neither_the_portal_nor_an_assertion(pg: bool) {
    use portcullis::stores::UserStore;
    crate::security_rules::security_events::capture();
    let s = server(pg).await;
    let mut dave = portcullis::config::tenant::UserSpec {
        subject: "dave".into(),
        username: "dave".into(),
        password_hash: portcullis::users::hash_password("dave-password").unwrap(),
        totp_secret: None,
        enabled: true,
        claims: serde_json::from_str(r#"{"name":"Dave","email":"dave@acme.test"}"#).unwrap(),
    };
    let store = &s.state().store;
    store
        .upsert_user("acme", &dave, "test", now())
        .await
        .unwrap();
    let b = Browser::new(&s);
    let html = portal_as(&s, &b, "dave", "dave-password").await;
    assert!(html.contains("Dave"), "{html}");
    let csrf = field(&html, "csrf");
    dave.enabled = false;
    store
        .upsert_user("acme", &dave, "test", now())
        .await
        .unwrap();
    let text = refused("the portal", b.get(&s.url("/acme/apps")).await).await;
    assert!(text.contains("disabled"), "{text}");
    let text = refused("a launch", launch(&s, &b, &csrf, DEMO_SP).await).await;
    assert!(text.contains("disabled"), "{text}");
    s.stop().await;
}

#[test]
fn portal_registrations_are_checked_with_file_line_and_key() {
    let resolve = |extra: &str| crate::saml_idp::resolve_acme(&format!("{ACME}\n{extra}"));
    // The demo file itself: allow_idp_initiated, default_relay_state and initiate_login_uri
    // are built, so accepted.
    assert!(resolve("").is_ok());
    let problems = resolve(
        r#"
[[clients]]
client_id = "bad-portal"
public = true
grant_types = ["authorization_code"]
scopes = ["openid"]
redirect_uris = ["http://127.0.0.1:9000/cb"]
initiate_login_uri = "http://app.example/login"
logo_uri = "javascript:alert(1)"

[[clients]]
client_id = "bad-target"
secrets = [{ hash = "sha256:Zsxv5CP7oTQ4690W5g1DqnGwn5toTEeS1o_uDrQnPD4" }]
grant_types = ["client_credentials"]
scopes = ["api.read"]
target_link_uri = "https://app.example/"

[[clients]]
client_id = "m2m-portal"
secrets = [{ hash = "sha256:Zsxv5CP7oTQ4690W5g1DqnGwn5toTEeS1o_uDrQnPD4" }]
grant_types = ["client_credentials"]
scopes = ["api.read"]
initiate_login_uri = "https://app.example/login"

[[saml_service_providers]]
entity_id = "https://two.acme.test"
acs = [{ url = "https://two.acme.test/a" }, { url = "https://two.acme.test/b" }]
allow_idp_initiated = true
default_relay_state = "https://two.acme.test/a-relay-state-that-is-much-longer-than-eighty-bytes-as-bindings-allow"
logo_url = "http://two.acme.test/logo.png"

[[saml_service_providers]]
entity_id = "https://redirect-only.acme.test"
acs = [{ url = "https://redirect-only.acme.test/acs", binding = "redirect" }]
allow_idp_initiated = true
"#,
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
    let c = |i: usize| format!("clients[{}]", 12 + i);
    has(&format!("{}.initiate_login_uri", c(0)), "https");
    has(&format!("{}.logo_uri", c(0)), "https URL");
    has(&format!("{}.target_link_uri", c(1)), "initiate_login_uri");
    has(
        &format!("{}.initiate_login_uri", c(2)),
        "authorization_code",
    );
    has("saml_service_providers[1].acs", "default = true");
    has("saml_service_providers[1].default_relay_state", "80 bytes");
    has("saml_service_providers[1].logo_url", "https URL");
    has("saml_service_providers[2].acs", "binding = \"post\"");
    assert!(problems.iter().all(|p| p.line.is_some()), "{said:#?}");
}

#[tokio::test]
async fn an_sp_whose_opt_in_is_withdrawn_during_the_sign_in_gets_an_error_response_not_an_assertion()
 {
    let s = server(false).await;
    let b = Browser::new(&s);
    let csrf = field(&portal_as(&s, &b, "alice", "alice-password").await, "csrf");
    let url: reqwest::Url = s.url("/acme/").parse().unwrap();
    b.jar
        .add_cookie_str("portcullis.session=; Path=/acme; Secure", &url);
    let r = launch(&s, &b, &csrf, DEMO_SP).await;
    assert_eq!(r.status(), 303);
    let login = location(&r);
    // While alice is on the login page, the operator takes the demo SP off the portal.
    let withdrawn = acme().replace(
        "allow_idp_initiated = true\ndefault_relay_state = \"/welcome\"\n",
        "",
    );
    assert_ne!(withdrawn, acme());
    write_tenant(s.dir.path(), "acme", &withdrawn);
    let report = portcullis::registry::sync::reload_files(s.state())
        .await
        .unwrap();
    assert_eq!(report.applied, ["acme"]);
    let r = submit_login(&b, &login, "alice", "alice-password").await;
    assert_eq!(r.status(), 200);
    let (action, _, xml, _) = posted(&r.text().await.unwrap());
    assert_eq!(action, DEMO_ACS);
    assert!(
        xml.contains("status:RequestDenied")
            && xml.contains("does not accept IdP-initiated")
            && !xml.contains("Assertion"),
        "{xml}"
    );
    let (sps, _) = listed(&b.get(&s.url("/acme/apps")).await.text().await.unwrap());
    assert!(!sps.contains(&DEMO_SP.to_string()), "{sps:?}");
    s.stop().await;
}
