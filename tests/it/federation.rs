//! Federation: tenant `acme` brokering to tenant `globex` of the same server (OIDC), and to a
//! SAML IdP that signs real assertions (samael + xmlsec), driven through the real pages.

use crate::interactive::{
    Browser, VERIFIER, authorize_url, challenge, field, location, params, redeem, submit_consent,
    submit_login, web_params,
};
use crate::support::*;
use portcullis::federation::saml::sp::test_idp::{
    ResponseOptions, TestIdp, self_signed_key_and_cert,
};
use serde_json::Value;
use std::collections::HashMap;

pub(crate) const WEB_CB: &str = "http://127.0.0.1:9000/callback";

/// Follows an authorize request for acme-web with `extra` parameters up to the upstream:
/// returns the upstream authorization URL (after acme's start hop).
pub(crate) async fn to_upstream(
    server: &TestServer,
    b: &Browser,
    extra: &[(&str, &str)],
) -> String {
    let ch = challenge(VERIFIER);
    let mut p = web_params("st-1", &ch);
    p.extend_from_slice(extra);
    let r = b.get(&authorize_url(server, "acme", "acme-web", &p)).await;
    assert_eq!(r.status(), 303);
    let start = location(&r);
    assert!(start.contains("/acme/federation/"), "{start}");
    let r = b.get(&start).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    location(&r)
}

/// Bob signs in at globex (the upstream); returns acme's callback URL with code and state.
pub(crate) async fn bob_at_globex(b: &Browser, upstream_authorize: &str) -> String {
    assert!(
        upstream_authorize.contains("/globex/connect/authorize?"),
        "{upstream_authorize}"
    );
    let r = b.get(upstream_authorize).await;
    assert_eq!(r.status(), 303);
    let login = location(&r);
    assert!(login.contains("/globex/account/login"), "{login}");
    let r = submit_login(b, &login, "bob", "bob-password").await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let back = location(&r);
    assert!(
        back.contains("/acme/federation/globex") && back.contains("/callback?"),
        "{back}"
    );
    back
}

/// From acme's callback to the client's redirect (through acme's consent page).
pub(crate) async fn back_at_acme(b: &Browser, callback: &str) -> HashMap<String, String> {
    let r = b.get(callback).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let mut next = location(&r);
    if next.contains("/acme/account/consent") {
        let r = submit_consent(b, &next, "allow", true).await;
        assert_eq!(r.status(), 303);
        next = location(&r);
    }
    assert!(next.starts_with(WEB_CB), "{next}");
    params(&next)
}

/// The claims of a token that [`tokens_for`] verified (or that is not acme's to verify).
pub(crate) fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap()
}

/// acme-web's tokens for `code`, with the brokered id token and the access token verified
/// against acme's JWKS by an independent library (signature, issuer, audience, expiry).
pub(crate) async fn tokens_for(server: &TestServer, code: &str) -> Value {
    let r = redeem(server, code, VERIFIER).await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let (jwks, issuer) = (server.jwks("acme").await, server.url("/acme"));
    verify_jwt(t["id_token"].as_str().unwrap(), &jwks, &issuer, "acme-web");
    verify_jwt(
        t["access_token"].as_str().unwrap(),
        &jwks,
        &issuer,
        "https://api.acme.test",
    );
    t
}

#[tokio::test]
async fn acme_brokers_to_globex_and_issues_its_own_tokens_that_say_how_the_user_signed_in() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let up = to_upstream(&server, &b, &[("acr_values", "idp:globex")]).await;
    let q = params(&up);
    assert_eq!(q["client_id"], "acme-broker");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q.contains_key("nonce") && q.contains_key("state"));
    let callback = bob_at_globex(&b, &up).await;
    let back = back_at_acme(&b, &callback).await;
    assert_eq!(back["state"], "st-1");
    let t = tokens_for(&server, &back["code"]).await;
    let id = claims_of(t["id_token"].as_str().unwrap());
    assert_eq!(id["iss"], server.url("/acme"));
    assert_eq!(id["idp"], "globex");
    assert_eq!(id["amr"], serde_json::json!(["external", "pwd"]));
    let at = claims_of(t["access_token"].as_str().unwrap());
    assert_eq!(at["idp"], "globex");
    // The provisioned user carries the mapped claims.
    let info: Value = server
        .http
        .get(server.url("/acme/connect/userinfo"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["email"], "bob@globex.test");
    assert_eq!(info["name"], "Bob Builder");
    let subject = id["sub"].as_str().unwrap().to_string();
    // Upstream discovery and JWKS were fetched once; a second brokered sign-in (another
    // browser, so a fresh login at globex too) fetches nothing and lands on the same user.
    let fetched = server.state().documents.fetch_count();
    assert_eq!(fetched, 2, "discovery document and JWK Set");
    let b2 = Browser::new(&server);
    let up = to_upstream(&server, &b2, &[("idp_hint", "globex")]).await;
    let callback = bob_at_globex(&b2, &up).await;
    let back = back_at_acme(&b2, &callback).await;
    let t = tokens_for(&server, &back["code"]).await;
    assert_eq!(claims_of(t["id_token"].as_str().unwrap())["sub"], subject);
    assert_eq!(server.state().documents.fetch_count(), fetched);
    // A local sign-in says so.
    let b3 = Browser::new(&server);
    let back = crate::interactive::alice_signs_in(&server, &b3, "s").await;
    let t = tokens_for(&server, &back["code"]).await;
    assert_eq!(claims_of(t["id_token"].as_str().unwrap())["idp"], "local");
    server.stop().await;
}

#[tokio::test]
async fn home_realm_discovery_follows_the_login_hint_domain_the_typed_email_and_the_button() {
    let server = TestServer::start().await;
    // login_hint with a domain globex claims: straight to globex.
    let b = Browser::new(&server);
    let up = to_upstream(&server, &b, &[("login_hint", "bob@globex.test")]).await;
    assert!(up.contains("/globex/connect/authorize?"), "{up}");
    assert_eq!(params(&up)["login_hint"], "bob@globex.test");
    // No hint: the login page lists globex, and typing a globex address goes there.
    let b = Browser::new(&server);
    let ch = challenge(VERIFIER);
    let r = b
        .get(&authorize_url(
            &server,
            "acme",
            "acme-web",
            &web_params("s", &ch),
        ))
        .await;
    let login = location(&r);
    assert!(login.contains("/acme/account/login"), "{login}");
    let html = crate::interactive::unescape(&b.get(&login).await.text().await.unwrap());
    assert!(html.contains("Globex Corporation"), "{html}");
    assert!(html.contains("/acme/federation/globex/start?interaction="));
    let r = submit_login(&b, &login, "someone@globex.test", "").await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).contains("/acme/federation/globex/start?interaction="));
    // acr_values=idp:local keeps the local page.
    let b = Browser::new(&server);
    let mut p = web_params("s", &ch);
    p.push(("acr_values", "idp:local"));
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    assert!(location(&r).contains("/acme/account/login"));
    server.stop().await;
}

#[tokio::test]
async fn a_forged_replayed_or_foreign_browser_callback_is_refused() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let up = to_upstream(&server, &b, &[("acr_values", "idp:globex")]).await;
    let callback = bob_at_globex(&b, &up).await;
    // Forged state.
    let forged = callback.replace(&params(&callback)["state"], &"A".repeat(43));
    let r = b.get(&forged).await;
    assert_page_error(r, 400, "invalid_request").await;
    // Another browser presenting the real callback: the state is consumed by that attempt,
    // and the sign-in stays bound to the browser that started it.
    let other = Browser::new(&server);
    let r = other.get(&callback).await;
    let why = assert_page_error(r, 400, "invalid_request").await;
    assert!(why.contains("another browser"), "{why}");
    // Replayed: the state is single use.
    let r = b.get(&callback).await;
    assert_page_error(r, 400, "invalid_request").await;
    server.stop().await;
}

#[tokio::test]
async fn an_id_token_with_another_nonce_a_mixed_up_issuer_or_an_upstream_refusal_ends_in_access_denied()
 {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let up = to_upstream(&server, &b, &[("acr_values", "idp:globex")]).await;
    // The upstream is asked with another nonce than the one acme remembers.
    let nonce = params(&up)["nonce"].clone();
    let tampered = up.replace(&format!("nonce={nonce}"), "nonce=another-nonce");
    let callback = bob_at_globex(&b, &tampered).await;
    let r = b.get(&callback).await;
    assert_eq!(r.status(), 303);
    let back = location(&r);
    assert!(back.starts_with(WEB_CB), "{back}");
    assert_eq!(params(&back)["error"], "access_denied");
    assert_eq!(params(&back)["state"], "st-1");
    // RFC 9207 §2.4: an authorization response naming another issuer is a mix-up attempt.
    let b = Browser::new(&server);
    let up = to_upstream(&server, &b, &[("acr_values", "idp:globex")]).await;
    let callback = bob_at_globex(&b, &up).await;
    let iss = params(&callback)["iss"].clone();
    assert_eq!(iss, server.url("/globex"));
    let enc = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let mixed = callback.replace(&enc(&iss), &enc("https://evil.example"));
    assert_ne!(mixed, callback);
    let r = b.get(&mixed).await;
    assert_eq!(params(&location(&r))["error"], "access_denied");
    // The upstream says no.
    let b = Browser::new(&server);
    let up = to_upstream(&server, &b, &[("acr_values", "idp:globex")]).await;
    let st = params(&up)["state"].clone();
    let r = b
        .get(&server.url(&format!(
            "/acme/federation/globex/callback?error=access_denied&state={st}"
        )))
        .await;
    assert_eq!(params(&location(&r))["error"], "access_denied");
    server.stop().await;
}

#[tokio::test]
async fn logging_out_at_globex_ends_the_brokered_session_at_acme_through_back_channel_logout() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let up = to_upstream(&server, &b, &[("acr_values", "idp:globex")]).await;
    let callback = bob_at_globex(&b, &up).await;
    back_at_acme(&b, &callback).await;
    let ch = challenge(VERIFIER);
    let mut silent = web_params("s", &ch);
    silent.push(("prompt", "none"));
    let silent = authorize_url(&server, "acme", "acme-web", &silent);
    let r = b.get(&silent).await;
    assert!(params(&location(&r)).contains_key("code"), "SSO at acme");
    // Bob logs out at globex (confirmation page, then the form).
    let r = b.get(&server.url("/globex/connect/endsession")).await;
    let html = r.text().await.unwrap();
    let r = b
        .post(
            &server.url("/globex/account/logout"),
            &[
                ("logout_id", &field(&html, "logout_id")),
                ("csrf", &field(&html, "csrf")),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    // Globex's logout token reaches acme in the background.
    let mut ended = false;
    for _ in 0..50 {
        let r = b.get(&silent).await;
        if params(&location(&r)).get("error").map(String::as_str) == Some("login_required") {
            ended = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ended, "the acme session ended");
    server.stop().await;
}

#[tokio::test]
async fn logging_out_at_acme_continues_to_globex_to_end_the_upstream_session() {
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let up = to_upstream(&server, &b, &[("acr_values", "idp:globex")]).await;
    let callback = bob_at_globex(&b, &up).await;
    let back = back_at_acme(&b, &callback).await;
    let t = tokens_for(&server, &back["code"]).await;
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", t["id_token"].as_str().unwrap())
        .append_pair("post_logout_redirect_uri", "http://127.0.0.1:9000/")
        .append_pair("state", "bye")
        .finish();
    let r = b
        .get(&server.url(&format!("/acme/connect/endsession?{q}")))
        .await;
    // Acme continues to globex's end_session with bob's globex id token, at once (no
    // front-channel iframe to load: RP-Initiated Logout 1.0 §3).
    assert_eq!(r.status(), 303);
    let url = location(&r);
    assert!(
        url.starts_with(&server.url("/globex/connect/endsession?")),
        "continues to globex: {url}"
    );
    let q = params(&url);
    assert!(q.contains_key("id_token_hint"));
    assert_eq!(
        q["post_logout_redirect_uri"],
        server.url("/acme/federation/globex/signed-out")
    );
    // Globex ends its session and comes back at once; acme continues to the client.
    let r = b.get(&url).await;
    assert_eq!(r.status(), 303, "globex returns to acme");
    let back_at = location(&r);
    assert!(
        back_at.starts_with(&server.url("/acme/federation/globex/signed-out?")),
        "globex returns to acme: {back_at}"
    );
    let r = b.get(&back_at).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "http://127.0.0.1:9000/?state=bye");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// SAML

struct Saml {
    server: TestServer,
    idp: TestIdp,
    acs: String,
    entity: String,
    /// The SP's encryption certificate, when the provider takes encrypted assertions.
    enc_cert: Option<String>,
}

/// acme offers `corp` (SAML), whose metadata and SP keys are files.
async fn saml_server(metadata: impl Fn(&TestIdp) -> String, encrypted_post: bool) -> Saml {
    let idp =
        TestIdp::generate("https://idp.corp.example", "https://idp.corp.example/sso").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = self_signed_key_and_cert("acme sp", false).unwrap();
    let md = metadata(&idp);
    let files = dir.path().to_path_buf();
    std::fs::write(files.join("corp-idp.xml"), md).unwrap();
    std::fs::write(files.join("sp-key.pem"), key).unwrap();
    std::fs::write(files.join("sp.pem"), cert).unwrap();
    let f = |n: &str| files.join(n).display().to_string();
    let mut provider = format!(
        "kind = \"saml\"\ndisplay_name = \"Corp\"\ndomains = [\"corp.example\"]\n[saml]\nmetadata_file = \"{}\"\nsp_signing_key_file = \"{}\"\nsp_certificate_file = \"{}\"\n",
        f("corp-idp.xml"),
        f("sp-key.pem"),
        f("sp.pem")
    );
    let mut enc_cert = None;
    if encrypted_post {
        let (key, cert) = self_signed_key_and_cert("acme sp encryption", false).unwrap();
        std::fs::write(files.join("sp-enc-key.pem"), key).unwrap();
        std::fs::write(files.join("sp-enc.pem"), &cert).unwrap();
        provider.push_str(&format!(
            "binding = \"post\"\nsp_encryption_key_file = \"{}\"\nsp_encryption_certificate_file = \"{}\"\n",
            f("sp-enc-key.pem"),
            f("sp-enc.pem")
        ));
        enc_cert = Some(cert);
    }
    let server = TestServer::start_with(Options {
        tenants: vec![
            (
                "acme",
                ACME.replace(
                    "providers = [\"globex\"]",
                    "providers = [\"globex\", \"corp\"]",
                ),
            ),
            ("globex", GLOBEX.to_string()),
        ],
        providers: vec![("globex", GLOBEX_PROVIDER.to_string()), ("corp", provider)],
        readable_dirs: vec![dir.path().to_path_buf()],
        ..Default::default()
    })
    .await;
    std::mem::forget(dir);
    let entity = server.url("/acme/federation/corp");
    Saml {
        acs: format!("{entity}/acs"),
        entity,
        server,
        idp,
        enc_cert,
    }
}

/// Starts a sign-in through corp: the RelayState and the AuthnRequest ID.
async fn saml_start(s: &Saml, b: &Browser) -> (String, String) {
    let up = to_upstream(&s.server, b, &[("idp_hint", "corp")]).await;
    assert!(up.starts_with("https://idp.corp.example/sso?"), "{up}");
    let q = params(&up);
    assert!(q.contains_key("Signature") && q.contains_key("SigAlg"));
    let deflated = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        &q["SAMLRequest"],
    )
    .unwrap();
    let mut xml = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::DeflateDecoder::new(deflated.as_slice()),
        &mut xml,
    )
    .unwrap();
    let id = xml
        .split("ID=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    (q["RelayState"].clone(), id.to_string())
}

fn now() -> i64 {
    use portcullis::clock::Clock;
    portcullis::clock::SystemClock.now()
}

async fn post_acs(s: &Saml, b: &Browser, response: &str, relay: Option<&str>) -> reqwest::Response {
    let mut form = vec![("SAMLResponse", response)];
    if let Some(r) = relay {
        form.push(("RelayState", r));
    }
    b.post(&s.acs, &form).await
}

#[tokio::test]
async fn saml_brokering_verifies_real_signed_assertions_and_refuses_every_forgery() {
    let s = saml_server(|idp| idp.metadata_xml(), false).await;
    // SP metadata for the IdP's administrator.
    let (status, _) = (200, ());
    let md = s
        .server
        .http
        .get(format!("{}/metadata", s.entity))
        .send()
        .await
        .unwrap();
    assert_eq!(md.status(), status);
    assert!(md.text().await.unwrap().contains(&s.acs));

    let b = Browser::new(&s.server);
    let (relay, id) = saml_start(&s, &b).await;
    let mut o = ResponseOptions::valid_for(&s.acs, &s.entity, Some(&id), "ann@corp.example", now())
        .unwrap();
    o.attributes = vec![
        (
            "urn:oid:0.9.2342.19200300.100.1.3".into(),
            vec!["ann@corp.example".into()],
        ),
        ("displayName".into(), vec!["Ann Corp".into()]),
    ];
    let response = s.idp.response(&o).unwrap();
    let r = post_acs(&s, &b, &response, Some(&relay)).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let complete = location(&r);
    let back = back_at_acme(&b, &complete).await;
    let t = tokens_for(&s.server, &back["code"]).await;
    let id_token = claims_of(t["id_token"].as_str().unwrap());
    assert_eq!(id_token["idp"], "corp");
    assert_eq!(id_token["amr"], serde_json::json!(["external"]));
    let info: Value = s
        .server
        .http
        .get(s.server.url("/acme/connect/userinfo"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["email"], "ann@corp.example");
    assert_eq!(info["name"], "Ann Corp");
    // Logging out at acme continues to the IdP's SingleLogout with a signed LogoutRequest.
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", t["id_token"].as_str().unwrap())
        .finish();
    let r = b
        .get(&s.server.url(&format!("/acme/connect/endsession?{q}")))
        .await;
    let html = crate::interactive::unescape(&r.text().await.unwrap());
    let slo = html
        .split(['"', '\''])
        .find(|x| x.contains("SAMLRequest="))
        .expect("continues to the IdP's SingleLogout");
    assert!(slo.starts_with(&s.idp.slo_url), "{slo}");
    assert!(slo.contains("Signature=") && slo.contains("RelayState="));
    // The same POST again: the RelayState was used.
    let r = post_acs(&s, &b, &response, Some(&relay)).await;
    assert_page_error(r, 400, "invalid_request").await;
    // The same assertion in a new round trip (another browser): its ID was used.
    let b = Browser::new(&s.server);
    let (relay, id) = saml_start(&s, &b).await;
    let mut again = o.clone();
    again.in_response_to = Some(id.clone());
    let r = post_acs(&s, &b, &s.idp.response(&again).unwrap(), Some(&relay)).await;
    assert_page_error(r, 400, "invalid_request").await;

    // Each forgery in a fresh round trip.
    type Bad = Box<dyn Fn(&mut ResponseOptions, &Saml)>;
    let cases: Vec<(&str, Bad)> = vec![
        (
            "signature wrapping (injected unsigned assertion)",
            Box::new(|o, _| o.wrap_with_unsigned_assertion = Some("admin@corp.example".into())),
        ),
        (
            "signature wrapping, injected first",
            Box::new(|o, _| {
                o.wrap_with_unsigned_assertion = Some("admin@corp.example".into());
                o.injected_assertion_first = true;
            }),
        ),
        (
            "content changed after signing",
            Box::new(|o, _| o.tamper_after_signing = true),
        ),
        (
            "another audience",
            Box::new(|o, _| o.audience = "https://other.example/sp".into()),
        ),
        (
            "expired",
            Box::new(|o, _| {
                o.issue_instant -= 3600;
                o.not_before -= 3600;
                o.not_on_or_after = now() - 600;
            }),
        ),
        (
            "another destination",
            Box::new(|o, _| o.destination = "https://other.example/acs".into()),
        ),
        (
            "another request",
            Box::new(|o, _| o.in_response_to = Some("_0123456789abcdef".into())),
        ),
        ("unsigned", Box::new(|o, _| o.sign_assertion = false)),
    ];
    for (what, change) in cases {
        let b = Browser::new(&s.server);
        let (relay, id) = saml_start(&s, &b).await;
        let mut bad =
            ResponseOptions::valid_for(&s.acs, &s.entity, Some(&id), "ann@corp.example", now())
                .unwrap();
        bad.assertion_id = format!(
            "_{}",
            portcullis::tokens::new_jti().replace(['-', '_'], "x")
        );
        change(&mut bad, &s);
        let r = post_acs(&s, &b, &s.idp.response(&bad).unwrap(), Some(&relay)).await;
        assert_eq!(r.status(), 400, "{what}");
        assert_page_error(r, 400, "invalid_request").await;
    }
    // Signed by another IdP's key.
    let b = Browser::new(&s.server);
    let (relay, id) = saml_start(&s, &b).await;
    let rogue =
        TestIdp::generate("https://idp.corp.example", "https://idp.corp.example/sso").unwrap();
    let o = ResponseOptions::valid_for(&s.acs, &s.entity, Some(&id), "ann@corp.example", now())
        .unwrap();
    let r = post_acs(&s, &b, &rogue.response(&o).unwrap(), Some(&relay)).await;
    assert_page_error(r, 400, "invalid_request").await;
    // Unsolicited (IdP-initiated: no InResponseTo). Every refusal answers the same page; the
    // security log says which rule refused.
    use crate::security_rules::security_events;
    security_events::capture();
    let o = ResponseOptions::valid_for(&s.acs, &s.entity, None, "ann@corp.example", now()).unwrap();
    let unsolicited = s.idp.response(&o).unwrap();
    let r = post_acs(&s, &b, &unsolicited, None).await;
    let events = security_events::of(&r);
    assert_page_error(r, 400, "invalid_request").await;
    let reason = |events: &[Value]| {
        events
            .iter()
            .find(|e| e["event"] == "federation_rejected")
            .map(|e| e["reason"].clone())
    };
    assert_eq!(reason(&events), Some("SAML: unsolicited response".into()));
    // Inside a live round trip of this browser (its valid RelayState): still refused, as a
    // response to no request of ours (profiles §4.1.4.2), not for the RelayState.
    let b = Browser::new(&s.server);
    let (relay, _) = saml_start(&s, &b).await;
    let r = post_acs(&s, &b, &unsolicited, Some(&relay)).await;
    let events = security_events::of(&r);
    assert_page_error(r, 400, "invalid_request").await;
    assert_eq!(reason(&events), Some("SAML: InResponseTo mismatch".into()));
    s.server.stop().await;
}

#[tokio::test]
async fn idp_metadata_without_a_signing_certificate_is_refused_when_the_provider_loads() {
    let s = saml_server(|idp| idp.metadata_xml_without_certificate(), false).await;
    let tenant = s.server.state().registry.get("acme").unwrap();
    assert!(
        s.server
            .state()
            .federation
            .find(&tenant, "corp")
            .await
            .unwrap()
            .is_none()
    );
    let b = Browser::new(&s.server);
    let ch = challenge(VERIFIER);
    let mut p = web_params("s", &ch);
    p.push(("idp_hint", "corp"));
    let r = b
        .get(&authorize_url(&s.server, "acme", "acme-web", &p))
        .await;
    assert!(
        location(&r).contains("/acme/account/login"),
        "falls back to the page"
    );
    s.server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Dynamic providers (admin API)

pub(crate) async fn admin_token(
    server: &TestServer,
    tenant: &str,
    client: &str,
    secret: &str,
) -> String {
    let t = server
        .token_json(
            tenant,
            client,
            secret,
            &[("grant_type", "client_credentials")],
        )
        .await;
    t["access_token"].as_str().unwrap().to_string()
}

pub(crate) fn dynamic_globex(upstream_base: &str) -> Value {
    serde_json::json!({
        "id": "globex-dyn",
        "kind": "oidc",
        "display_name": "Globex (added at runtime)",
        "domains": ["dyn.globex.test"],
        "oidc": {
            "issuer": format!("{upstream_base}/globex"),
            "client_id": "acme-broker",
            "client_secret": "acme-broker-secret",
            "fetch_userinfo": true
        }
    })
}

/// Globex also accepts acme-broker's redirect URI for the runtime provider `globex-dyn`.
pub(crate) fn globex_with_dynamic_redirect() -> String {
    GLOBEX.replace(
        "redirect_uris = [\"${public_base_url}/acme/federation/globex/callback\"]",
        "redirect_uris = [\"${public_base_url}/acme/federation/globex/callback\", \"${public_base_url}/acme/federation/globex-dyn/callback\"]",
    )
}

#[tokio::test]
async fn the_admin_api_wants_an_admin_token_of_its_tenant_and_checks_what_it_stores() {
    let server = TestServer::start().await;
    let url = server.url("/acme/admin/providers");
    let admin = admin_token(&server, "acme", "acme-admin", "acme-admin-secret").await;
    let m2m = admin_token(&server, "acme", "acme-m2m", "acme-m2m-secret").await;
    let globex = admin_token(&server, "globex", "globex-m2m", "globex-m2m-secret").await;
    let post =
        |token: &str, body: Value| server.http.post(&url).bearer_auth(token).json(&body).send();
    let spec = dynamic_globex(&server.base);
    // No token, a token without the scope, another tenant's token.
    let r = server.http.post(&url).json(&spec).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let r = post(&m2m, spec.clone()).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    let r = post(&globex, spec.clone()).await.unwrap();
    assert_bearer_error(&r, 401, "invalid_token");
    // A DPoP-bound admin token without its proof (RFC 9449 §7) is refused.
    let k = crate::dpop::key();
    let token_url = server.url("/acme/connect/token");
    let bound: Value = server
        .http
        .post(&token_url)
        .basic_auth("acme-admin", Some("acme-admin-secret"))
        .header(
            "DPoP",
            crate::dpop::proof(&k, "POST", &token_url, serde_json::json!({})),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bound["token_type"], "DPoP");
    let r = post(bound["access_token"].as_str().unwrap(), spec.clone())
        .await
        .unwrap();
    assert_bearer_error(&r, 401, "invalid_token");
    // Malformed and invalid definitions change nothing.
    let mut bad = spec.clone();
    bad["oidc"]["issuer"] = "http://idp.example".into();
    let r = post(&admin, bad).await.unwrap();
    assert_oauth_error(r, 400, "invalid_request").await;
    let r = post(&admin, serde_json::json!({"id": "x", "kind": "ldap"}))
        .await
        .unwrap();
    assert_oauth_error(r, 400, "invalid_request").await;
    let mut file_id = spec.clone();
    file_id["id"] = "globex".into();
    assert_eq!(post(&admin, file_id).await.unwrap().status(), 409);
    // Created; the secret is sealed and never shown.
    let r = post(&admin, spec.clone()).await.unwrap();
    assert_eq!(r.status(), 201);
    let shown: Value = r.json().await.unwrap();
    assert_eq!(shown["oidc"]["client_secret"], true);
    assert!(!shown.to_string().contains("acme-broker-secret"));
    assert_eq!(post(&admin, spec.clone()).await.unwrap().status(), 409);
    let list: Value = server
        .http
        .get(&url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["providers"][0]["id"], "globex-dyn");
    assert_eq!(list["file_providers"][0]["id"], "globex");
    // A domain can belong to one provider of the tenant.
    let mut other = spec.clone();
    other["id"] = "other".into();
    assert_eq!(post(&admin, other).await.unwrap().status(), 409);
    // Replaced without a secret: the stored secret stays.
    let one = format!("{url}/globex-dyn");
    let mut changed = spec.clone();
    changed["display_name"] = "Globex, renamed".into();
    changed["oidc"]
        .as_object_mut()
        .unwrap()
        .remove("client_secret");
    let r = server
        .http
        .put(&one)
        .bearer_auth(&admin)
        .json(&changed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let shown: Value = r.json().await.unwrap();
    assert_eq!(shown["display_name"], "Globex, renamed");
    assert_eq!(shown["oidc"]["client_secret"], true);
    // Disable, then delete.
    let r = server
        .http
        .patch(&one)
        .bearer_auth(&admin)
        .json(&serde_json::json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = server
        .http
        .delete(&one)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = server
        .http
        .get(&one)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    server.stop().await;
}

/// A `portcullis serve` process of a deployment on PostgreSQL (the README's multi-node setup).
pub(crate) struct Node {
    pub(crate) child: tokio::process::Child,
    pub(crate) addr: std::net::SocketAddr,
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `portcullis serve` in `dir` (tenants/, providers/; certs/ shared by the nodes),
/// listening on its own port, with the deployment's public URL `public`.
pub(crate) async fn serve_process(
    dir: &std::path::Path,
    public: &str,
    port: u16,
    schema: &str,
    master: &str,
) -> Node {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("serve")
        .current_dir(dir)
        .env_remove("PORTCULLIS_CONFIG")
        .env("PORTCULLIS_SERVER_LISTEN", format!("127.0.0.1:{port}"))
        .env("PORTCULLIS_SERVER_MTLS_LISTEN", "")
        .env("PORTCULLIS_SERVER_PUBLIC_BASE_URL", public)
        .env("PORTCULLIS_SERVER_SHUTDOWN_GRACE_SECONDS", "1")
        .env("PORTCULLIS_DATABASE_URL", postgres_url().unwrap())
        .env("PORTCULLIS_DATABASE_SCHEMA", schema)
        .env("PORTCULLIS_KEYS_MASTER_KEY", master)
        // Only a notification can carry a change to the other node within this test.
        .env("PORTCULLIS_RELOAD_SYNC_INTERVAL_SECONDS", "3600")
        .env("PORTCULLIS_RELOAD_WATCH_INTERVAL_SECONDS", "0")
        .env("PORTCULLIS_LOG_LEVEL", "warn")
        // The nodes broker to their own globex tenant over loopback.
        .env("PORTCULLIS_OUTBOUND_ALLOW_NETWORKS", "127.0.0.0/8,::1/128")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut node = Node { child, addr };
    for _ in 0..300 {
        if dir.join("certs/ca.pem").exists() {
            let http = client_for(&dir.join("certs/ca.pem"), &[("localhost", addr)], None);
            if let Ok(r) = http
                .get(format!("https://localhost:{port}/health/ready"))
                .send()
                .await
                && r.status() == 200
            {
                return node;
            }
        }
        assert!(
            node.child.try_wait().unwrap().is_none(),
            "portcullis serve exited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("portcullis serve did not become ready");
}

#[tokio::test]
async fn a_provider_added_on_one_node_signs_users_in_on_the_other_until_it_is_disabled() {
    if postgres_url().is_none() {
        eprintln!("PORTCULLIS_TEST_POSTGRES_URL is not set: PostgreSQL part skipped");
        return;
    }
    use base64::Engine;
    // Two server processes of one deployment: one database, one master key, the same files,
    // and one public URL (node B's, as a load balancer would present one).
    let dir = tempfile::tempdir().unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let public = format!("https://localhost:{port_b}");
    write_tenant(dir.path(), "acme", ACME);
    write_tenant(dir.path(), "globex", &globex_with_dynamic_redirect());
    std::fs::create_dir_all(dir.path().join("providers")).unwrap();
    std::fs::write(dir.path().join("providers/globex.toml"), GLOBEX_PROVIDER).unwrap();
    let schema = unique_schema();
    let master = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let a = serve_process(dir.path(), &public, port_a, &schema, &master).await;
    let b = serve_process(dir.path(), &public, port_b, &schema, &master).await;
    let ca = dir.path().join("certs/ca.pem");
    let to_a = client_for(&ca, &[("localhost", a.addr)], None);
    let a_url = |p: &str| format!("https://localhost:{port_a}{p}");
    let b_url = |p: &str| format!("{public}{p}");
    // The admin adds the provider on node A.
    let t: Value = to_a
        .post(a_url("/acme/connect/token"))
        .basic_auth("acme-admin", Some("acme-admin-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin = t["access_token"].as_str().unwrap().to_string();
    let r = to_a
        .post(a_url("/acme/admin/providers"))
        .bearer_auth(&admin)
        .json(&dynamic_globex(&public))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    // On node B, home-realm discovery finds it by domain, and bob signs in through it.
    let ch = challenge(VERIFIER);
    let authorize = |extra: (&str, &str)| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("client_id", "acme-web");
        for (k, v) in web_params("st-1", &ch) {
            q.append_pair(k, v);
        }
        q.append_pair(extra.0, extra.1);
        b_url(&format!("/acme/connect/authorize?{}", q.finish()))
    };
    let browser = Browser::at(&ca, b.addr);
    let r = browser
        .get(&authorize(("login_hint", "bob@dyn.globex.test")))
        .await;
    let start = location(&r);
    assert!(
        start.contains("/acme/federation/globex-dyn/start"),
        "{start}"
    );
    let r = browser.get(&start).await;
    let r = browser.get(&location(&r)).await;
    let r = submit_login(&browser, &location(&r), "bob", "bob-password").await;
    let callback = location(&r);
    assert!(
        callback.contains("/acme/federation/globex-dyn/callback"),
        "{callback}"
    );
    let back = back_at_acme(&browser, &callback).await;
    let to_b = client_for(&ca, &[("localhost", b.addr)], None);
    let t: Value = to_b
        .post(b_url("/acme/connect/token"))
        .basic_auth("acme-web", Some("acme-web-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", back["code"].as_str()),
            ("redirect_uri", WEB_CB),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwks: Value = to_b
        .get(b_url("/acme/.well-known/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = verify_jwt(
        t["id_token"].as_str().unwrap(),
        &jwks,
        &b_url("/acme"),
        "acme-web",
    );
    assert_eq!(id["idp"], "globex-dyn");
    // Disabled on node A: node B refuses it at once (the notification; its lookup cache and
    // periodic sync would keep it for an hour).
    let r = to_a
        .patch(a_url("/acme/admin/providers/globex-dyn"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut refused = false;
    for _ in 0..50 {
        let browser = Browser::at(&ca, b.addr);
        let r = browser.get(&authorize(("idp_hint", "globex-dyn"))).await;
        if location(&r).contains("/acme/account/login") {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refused, "node B stopped offering the disabled provider");
    // The CLI sees the same provider, and removes it.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("PORTCULLIS_CONFIG")
            .env("PORTCULLIS_DATABASE_URL", postgres_url().unwrap())
            .env("PORTCULLIS_DATABASE_SCHEMA", &schema)
            .env("PORTCULLIS_KEYS_MASTER_KEY", &master)
            .env("PORTCULLIS_LOG_LEVEL", "error")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = cli(&["providers", "list", "--tenant", "acme"]);
    assert!(
        listed.contains("globex-dyn") && listed.contains("enabled=false"),
        "{listed}"
    );
    cli(&["providers", "remove", "--tenant", "acme", "globex-dyn"]);
    assert!(!cli(&["providers", "list", "--tenant", "acme"]).contains("globex-dyn"));
    drop((a, b));
}

#[tokio::test]
async fn the_cli_adds_lists_disables_and_removes_runtime_providers() {
    let server = TestServer::start().await;
    let file = server.dir.path().join("corp.toml");
    std::fs::write(
        &file,
        format!(
            "kind = \"oidc\"\ndisplay_name = \"Corp\"\ndomains = [\"corp.example\"]\n[oidc]\nissuer = \"{}/globex\"\nclient_id = \"acme-broker\"\nclient_secret = \"s3cret-value\"\n",
            server.base
        ),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(args)
            .current_dir(server.dir.path())
            .env_remove("PORTCULLIS_CONFIG")
            .env("PORTCULLIS_LOG_LEVEL", "error")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = cli(&[
        "providers",
        "add",
        "--tenant",
        "acme",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert!(!out.contains("s3cret-value"), "the secret is never printed");
    let (ok, out) = cli(&[
        "providers",
        "add",
        "--tenant",
        "acme",
        file.to_str().unwrap(),
    ]);
    assert!(!ok && out.contains("exists"), "{out}");
    let (_, out) = cli(&["providers", "list", "--tenant", "acme"]);
    assert!(
        out.contains("corp") && out.contains("enabled=true"),
        "{out}"
    );
    // The running node (SQLite) finds it by domain.
    let tenant = server.state().registry.get("acme").unwrap();
    assert_eq!(
        server
            .state()
            .federation
            .provider_for_email(&tenant, "ann@corp.example")
            .await
            .unwrap()
            .as_deref(),
        Some("corp")
    );
    let (ok, _) = cli(&["providers", "disable", "--tenant", "acme", "corp"]);
    assert!(ok);
    let (_, out) = cli(&["providers", "list", "--tenant", "acme"]);
    assert!(out.contains("enabled=false"), "{out}");
    let (ok, _) = cli(&["providers", "remove", "--tenant", "acme", "corp"]);
    assert!(ok);
    let (ok, out) = cli(&["providers", "remove", "--tenant", "acme", "corp"]);
    assert!(!ok && out.contains("no provider"), "{out}");
    server.stop().await;
}

#[tokio::test]
async fn thousands_of_runtime_providers_leave_the_login_page_short_and_are_found_by_domain() {
    use portcullis::stores::{FederationStore, ProviderRow};
    let server = TestServer::start().await;
    let st = server.state();
    for i in 0..2000 {
        let id = format!("corp-{i:04}");
        let spec = serde_json::json!({
            "id": id, "kind": "oidc", "domains": [format!("{id}.example")],
            "oidc": {"issuer": format!("https://{id}.example"), "client_id": "c"}
        });
        let row = ProviderRow {
            id: id.clone(),
            enabled: true,
            listed: true,
            display_name: id.to_uppercase(),
            spec: spec.to_string(),
            updated_at: 1,
        };
        st.store
            .upsert_provider_row("acme", &row, &[format!("{id}.example")])
            .await
            .unwrap();
    }
    // Home-realm discovery goes straight to the one provider for the domain.
    let b = Browser::new(&server);
    let ch = challenge(VERIFIER);
    let mut p = web_params("s", &ch);
    p.push(("login_hint", "ann@corp-1999.example"));
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    assert!(location(&r).contains("/acme/federation/corp-1999/start"));
    // The page lists a bounded number of buttons.
    let b = Browser::new(&server);
    let r = b
        .get(&authorize_url(
            &server,
            "acme",
            "acme-web",
            &web_params("s", &ch),
        ))
        .await;
    let html = crate::interactive::unescape(&b.get(&location(&r)).await.text().await.unwrap());
    let buttons = html.matches("/federation/").count();
    assert!((2..=21).contains(&buttons), "{buttons} buttons");
    server.stop().await;
}

#[tokio::test]
async fn private_key_jwt_upstream_and_linking_by_verified_email_without_just_in_time_users() {
    use portcullis::keys::{Alg, Signer, signer::generate_pkcs8};
    use portcullis::stores::UserStore;
    let keys = tempfile::tempdir().unwrap();
    let der = generate_pkcs8(Alg::ES256, 2048).unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der)
    );
    let key_file = keys.path().join("broker-key.pem");
    std::fs::write(&key_file, pem).unwrap();
    let jwk = Signer::from_pkcs8(Alg::ES256, &der).unwrap().public_jwk();
    let jwks_file = keys.path().join("broker.jwks.json");
    std::fs::write(&jwks_file, serde_json::json!({ "keys": [jwk] }).to_string()).unwrap();
    let globex = format!(
        "{GLOBEX}\n[[clients]]\nclient_id = \"acme-broker-jwt\"\ngrant_types = [\"authorization_code\"]\nscopes = [\"openid\", \"profile\", \"email\"]\ntoken_endpoint_auth_methods = [\"private_key_jwt\"]\njwks_file = \"{}\"\nredirect_uris = [\"${{public_base_url}}/acme/federation/globex-jwt/callback\"]\n",
        jwks_file.display()
    );
    let provider = format!(
        "kind = \"oidc\"\n[oidc]\nissuer = \"${{public_base_url}}/globex\"\nclient_id = \"acme-broker-jwt\"\ntoken_endpoint_auth_method = \"private_key_jwt\"\nprivate_key_file = \"{}\"\nfetch_userinfo = true\n[provisioning]\njit = false\n",
        key_file.display()
    );
    // Linking by verified email is the tenant operator's decision, for a file provider.
    let server = TestServer::start_with(Options {
        tenants: vec![
            (
                "acme",
                ACME.replace(
                    "providers = [\"globex\"]",
                    "providers = [\"globex\", \"globex-jwt\"]\nlink_by_verified_email = [\"globex-jwt\"]",
                ),
            ),
            ("globex", globex),
        ],
        providers: vec![
            ("globex", GLOBEX_PROVIDER.to_string()),
            ("globex-jwt", provider),
        ],
        readable_dirs: vec![keys.path().to_path_buf()],
        ..Default::default()
    })
    .await;
    // No acme account with bob's email yet, and no just-in-time users: refused.
    let b = Browser::new(&server);
    let up = to_upstream(&server, &b, &[("idp_hint", "globex-jwt")]).await;
    assert_eq!(params(&up)["client_id"], "acme-broker-jwt");
    let callback = bob_at_globex(&b, &up).await;
    let r = b.get(&callback).await;
    let back = location(&r);
    assert_eq!(params(&back)["error"], "access_denied", "{back}");
    // An acme account with the same (verified upstream) email: linked, and the sign-in is its.
    let user = portcullis::config::tenant::UserSpec {
        subject: "acme-bob".into(),
        username: "bob.acme".into(),
        password_hash: String::new(),
        totp_secret: None,
        enabled: true,
        claims: serde_json::json!({"email": "bob@globex.test", "email_verified": true})
            .as_object()
            .cloned()
            .unwrap(),
    };
    server
        .state()
        .store
        .upsert_user("acme", &user, "test", 1)
        .await
        .unwrap();
    let b = Browser::new(&server);
    let up = to_upstream(&server, &b, &[("idp_hint", "globex-jwt")]).await;
    let callback = bob_at_globex(&b, &up).await;
    let back = back_at_acme(&b, &callback).await;
    let t = tokens_for(&server, &back["code"]).await;
    let id = claims_of(t["id_token"].as_str().unwrap());
    assert_eq!(id["sub"], "acme-bob");
    assert_eq!(id["idp"], "globex-jwt");
    server.stop().await;
}

/// One brokered sign-in of bob at acme through globex with a fresh browser; acme's id token.
async fn brokered_sign_in(server: &TestServer) -> Value {
    let b = Browser::new(server);
    let up = to_upstream(server, &b, &[("acr_values", "idp:globex")]).await;
    let callback = bob_at_globex(&b, &up).await;
    let back = back_at_acme(&b, &callback).await;
    let t = tokens_for(server, &back["code"]).await;
    claims_of(t["id_token"].as_str().unwrap())
}

#[tokio::test]
async fn a_rotated_upstream_key_is_fetched_once_when_its_kid_first_appears() {
    use portcullis::keys::ring::{KeyEnv, create_key};
    use portcullis::stores::KeyStore;
    let server = TestServer::start().await;
    brokered_sign_in(&server).await;
    let docs = &server.state().documents;
    let warm = docs.fetch_count();
    // Globex replaces its signing keys at once (as for a compromised key).
    let st = server.state();
    let records = st.store.list_keys("globex").await.unwrap();
    let now = st.now();
    for alg in [portcullis::keys::Alg::RS256, portcullis::keys::Alg::ES256] {
        let env = KeyEnv {
            store: &st.store,
            master: &st.master,
            policy: &st.key_policy,
        };
        assert!(
            create_key(env, "globex", alg, &records, now, now)
                .await
                .unwrap()
        );
    }
    portcullis::registry::sync::refresh(st).await.unwrap();
    // The id token now has a kid acme's cached JWK Set lacks: one refetch, and the sign-in works.
    assert_eq!(brokered_sign_in(&server).await["idp"], "globex");
    assert_eq!(docs.fetch_count(), warm + 1, "the JWK Set refetched once");
    brokered_sign_in(&server).await;
    assert_eq!(docs.fetch_count(), warm + 1, "and not again");
    server.stop().await;
}

#[tokio::test]
async fn saml_post_binding_and_encrypted_assertions_work_end_to_end() {
    let s = saml_server(|idp| idp.metadata_xml(), true).await;
    // The SP metadata offers the encryption key.
    let md = s
        .server
        .http
        .get(format!("{}/metadata", s.entity))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(md.contains("use=\"encryption\""), "{md}");
    // HTTP-POST binding: an auto-submitted form carries the signed AuthnRequest.
    let b = Browser::new(&s.server);
    let ch = challenge(VERIFIER);
    let mut p = web_params("st-1", &ch);
    p.push(("idp_hint", "corp"));
    let r = b
        .get(&authorize_url(&s.server, "acme", "acme-web", &p))
        .await;
    let r = b.get(&location(&r)).await;
    assert_eq!(r.status(), 200);
    let html = crate::interactive::unescape(&r.text().await.unwrap());
    assert!(
        html.contains("action=\"https://idp.corp.example/sso\""),
        "{html}"
    );
    let request = field(&html, "SAMLRequest");
    let relay = field(&html, "RelayState");
    let xml = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &request).unwrap(),
    )
    .unwrap();
    assert!(
        xml.contains("<ds:Signature") || xml.contains("Signature"),
        "{xml}"
    );
    let id = xml
        .split("ID=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    // The IdP encrypts the assertion for the SP (and signs the Response).
    let mut o =
        ResponseOptions::valid_for(&s.acs, &s.entity, Some(id), "ann@corp.example", now()).unwrap();
    o.sign_response = true;
    o.encrypt_for_cert_pem = s.enc_cert.clone();
    let response = s.idp.response(&o).unwrap();
    assert!(
        String::from_utf8(
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &response).unwrap()
        )
        .unwrap()
        .contains("EncryptedAssertion")
    );
    let r = post_acs(&s, &b, &response, Some(&relay)).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let back = back_at_acme(&b, &location(&r)).await;
    let t = tokens_for(&s.server, &back["code"]).await;
    assert_eq!(claims_of(t["id_token"].as_str().unwrap())["idp"], "corp");
    s.server.stop().await;
}

#[tokio::test]
async fn provider_files_are_reloaded_when_they_change_and_only_then() {
    let server = TestServer::start().await;
    let st = server.state();
    let globex = |st: &portcullis::AppState| st.federation.files.load().get("globex").cloned();
    let before = globex(st).unwrap();
    // Nothing changed: the loaded providers are the very same objects.
    portcullis::registry::sync::reload_files(st).await.unwrap();
    assert!(std::sync::Arc::ptr_eq(&before, &globex(st).unwrap()));
    // A changed file is loaded again; a broken one is reported and left out.
    let file = server.dir.path().join("providers/globex.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("Globex Corporation", "Globex Inc.")).unwrap();
    std::fs::write(
        server.dir.path().join("providers/broken.toml"),
        "kind = \"ldap\"\n",
    )
    .unwrap();
    let report = portcullis::registry::sync::reload_files(st).await.unwrap();
    assert_eq!(globex(st).unwrap().spec.display_name, "Globex Inc.");
    assert_eq!(
        report.provider_errors.len(),
        1,
        "{:?}",
        report.provider_errors
    );
    assert!(st.federation.files.load().get("broken").is_none());
    server.stop().await;
}

#[tokio::test]
async fn back_channel_logout_tokens_must_be_the_upstreams_for_us_with_the_event_and_are_used_once()
{
    use portcullis::keys::Alg;
    let server = TestServer::start().await;
    let b = Browser::new(&server);
    let up = to_upstream(&server, &b, &[("acr_values", "idp:globex")]).await;
    let callback = bob_at_globex(&b, &up).await;
    back_at_acme(&b, &callback).await;
    let sign = |tenant: &str, claims: &Value| {
        let t = server.state().registry.get(tenant).unwrap();
        let keys = t.keys.load();
        keys.signer(Alg::RS256)
            .unwrap()
            .sign_jwt("logout+jwt", claims)
            .unwrap()
    };
    let now = server.state().now();
    let good = serde_json::json!({
        "iss": server.url("/globex"), "aud": "acme-broker", "iat": now, "exp": now + 120,
        "jti": "logout-1", "sub": "bob",
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}}
    });
    let endpoint = server.url("/acme/federation/globex/backchannel-logout");
    let post = |token: String| {
        server
            .http
            .post(&endpoint)
            .form(&[("logout_token", token)])
            .send()
    };
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let without = |keys: &[&str]| {
        let mut c = good.clone();
        for k in keys {
            c.as_object_mut().unwrap().remove(*k);
        }
        c
    };
    // OIDC Back-Channel Logout §2.6: each of these is refused with 400 and ends nothing.
    let bad = [
        (
            "another audience",
            sign("globex", &with("aud", "someone-else".into())),
        ),
        (
            "another issuer",
            sign("globex", &with("iss", server.url("/acme").into())),
        ),
        ("signed by another key", sign("acme", &good)),
        ("without the event", sign("globex", &without(&["events"]))),
        ("with a nonce", sign("globex", &with("nonce", "n".into()))),
        ("neither sid nor sub", sign("globex", &without(&["sub"]))),
        ("without jti", sign("globex", &without(&["jti"]))),
        ("too old", sign("globex", &with("iat", (now - 3600).into()))),
        ("not a JWT", "garbage".to_string()),
    ];
    for (what, token) in bad {
        let r = post(token).await.unwrap();
        assert_eq!(r.status(), 400, "{what}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{what}");
    }
    let ch = challenge(VERIFIER);
    let mut silent = web_params("s", &ch);
    silent.push(("prompt", "none"));
    let silent = authorize_url(&server, "acme", "acme-web", &silent);
    assert!(params(&location(&b.get(&silent).await)).contains_key("code"));
    // The right token, by upstream subject, ends bob's brokered session; it works once.
    let token = sign("globex", &good);
    assert_eq!(post(token.clone()).await.unwrap().status(), 200);
    // Replayed.
    assert_oauth_error(post(token).await.unwrap(), 400, "invalid_request").await;
    assert_eq!(
        params(&location(&b.get(&silent).await))["error"],
        "login_required"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_clients_provider_restrictions_hold_on_every_way_in() {
    // acme-web: local accounts only; acme-spa: globex only, no local form.
    let acme = ACME
        .replace(
            "client_id = \"acme-web\"",
            "client_id = \"acme-web\"\nidentity_providers = [\"local\"]",
        )
        .replace(
            "client_id = \"acme-spa\"",
            "client_id = \"acme-spa\"\nidentity_providers = [\"globex\"]\nenable_local_login = false",
        );
    let server = TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.to_string())],
        ..Default::default()
    })
    .await;
    let ch = challenge(VERIFIER);
    // A hint for a provider the client may not use keeps the local page, without buttons.
    let b = Browser::new(&server);
    let mut p = web_params("s", &ch);
    p.push(("acr_values", "idp:globex"));
    let r = b.get(&authorize_url(&server, "acme", "acme-web", &p)).await;
    let login = location(&r);
    assert!(login.contains("/acme/account/login"), "{login}");
    let html = b.get(&login).await.text().await.unwrap();
    assert!(!html.contains("federation"), "no provider buttons");
    // Nor does the start URL, typed by hand, or a globex address typed into the form.
    let interaction = params(&login)["interaction"].clone();
    let r = b
        .get(&server.url(&format!(
            "/acme/federation/globex/start?interaction={interaction}"
        )))
        .await;
    assert_page_error(r, 400, "invalid_request").await;
    let r = submit_login(&b, &login, "bob@globex.test", "x").await;
    assert_eq!(r.status(), 200, "the local form answers: wrong password");
    // A client with one provider and no local form goes straight there, and the local form
    // is refused even when posted by hand.
    let b = Browser::new(&server);
    let q = [
        ("response_type", "code"),
        ("redirect_uri", "http://127.0.0.1:9000/spa/callback"),
        ("scope", "openid"),
        ("code_challenge", ch.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let r = b.get(&authorize_url(&server, "acme", "acme-spa", &q)).await;
    let start = location(&r);
    assert!(start.contains("/acme/federation/globex/start"), "{start}");
    let interaction = params(&start)["interaction"].clone();
    let login = server.url(&format!("/acme/account/login?interaction={interaction}"));
    let html = b.get(&login).await.text().await.unwrap();
    assert!(!html.contains("name=\"password\""), "no local form");
    // The page carries no form to copy the CSRF token from: take it from the interaction.
    use portcullis::stores::GrantStore;
    let record = server
        .state()
        .store
        .find_grant("acme", &portcullis::tokens::handle_hash(&interaction))
        .await
        .unwrap()
        .unwrap();
    let csrf = serde_json::from_str::<Value>(&record.data).unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_string();
    let r = b
        .post(
            &server.url("/acme/account/login"),
            &[
                ("interaction", interaction.as_str()),
                ("csrf", csrf.as_str()),
                ("username", "alice"),
                ("password", "alice-password"),
            ],
        )
        .await;
    let why = assert_page_error(r, 400, "invalid_request").await;
    assert!(why.contains("does not accept local accounts"), "{why}");
    server.stop().await;
}
