//! SAML service providers registered at runtime: the admin API and the CLI, the tenant files'
//! checks, tenant boundaries, SP metadata by URL through the outbound guard, and the effect on
//! every node.

use crate::federation::admin_token;
use crate::interactive::{Browser, location, submit_login};
use crate::saml_idp::{ACS, now, posted, sp_config};
use crate::support::*;
use portcullis::federation::saml::sp::test_idp::self_signed_key_and_cert;
use portcullis::federation::saml::sp::{
    IdpMetadata, SpConfig, VerifiedAssertion, authn_request_redirect, new_request_id,
    parse_idp_metadata, sp_metadata_xml, verify_response,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const RUNTIME_SP: &str = "https://app.runtime.test/saml";
const MAIL: &str = "urn:oid:0.9.2342.19200300.100.1.3";

fn encode(entity_id: &str) -> String {
    form_urlencoded::byte_serialize(entity_id.as_bytes()).collect()
}

fn collection(server: &TestServer, tenant: &str) -> String {
    server.url(&format!("/{tenant}/admin/saml-service-providers"))
}

/// One SP's URL: its entity id percent-encoded as one path segment.
fn one(server: &TestServer, tenant: &str, entity_id: &str) -> String {
    format!("{}/{}", collection(server, tenant), encode(entity_id))
}

/// A test SP (Portcullis's own SAML SP module) with a key of its own, posting to [`ACS`].
fn test_sp(entity_id: &str) -> SpConfig {
    let (key, cert) = self_signed_key_and_cert("app.runtime.test", false).unwrap();
    sp_config(entity_id, key, cert)
}

/// The admin API body registering `sp` with its signing certificate inline.
fn registration(sp: &SpConfig) -> Value {
    json!({
        "entity_id": sp.entity_id,
        "display_name": "Runtime app",
        "acs": [{"url": ACS, "default": true}],
        "signing_certificate": sp.signing_cert_pem,
        "attributes": [{"claim": "email", "name": MAIL, "name_format": "uri"}]
    })
}

async fn send(
    server: &TestServer,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut r = server.http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap()
}

async fn idp_of(server: &TestServer, tenant: &str) -> IdpMetadata {
    let xml = server
        .http
        .get(server.url(&format!("/{tenant}/saml/metadata")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    parse_idp_metadata(&xml).unwrap()
}

/// `url` sent to the node at `base` (two nodes of one deployment name each other's URLs).
fn at(base: &str, url: &str) -> String {
    let rest = url.splitn(4, '/').nth(3).unwrap_or_default();
    format!("{base}/{rest}")
}

/// Alice signs in to `sp` at the IdP `idp` of the node at `base`: the assertion the SP accepts.
async fn alice_signs_in(
    b: &Browser,
    base: &str,
    sp: &SpConfig,
    idp: &IdpMetadata,
) -> VerifiedAssertion {
    let id = new_request_id().unwrap();
    let url = authn_request_redirect(sp, idp, &id, "relay-7", now()).unwrap();
    let r = b.get(&at(base, &url)).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let login = at(base, &location(&r));
    assert!(login.contains("/account/login?interaction="), "{login}");
    let r = submit_login(b, &login, "alice", "alice-password").await;
    assert_eq!(r.status(), 200);
    let (b64, _, relay) = posted(&r.text().await.unwrap());
    assert_eq!(relay.as_deref(), Some("relay-7"));
    verify_response(sp, idp, &b64, Some(&id), now()).unwrap()
}

/// What the IdP at `base` answers a fresh request of `sp`: the error page's text, or the
/// SAML Response posted to the ACS (decoded), or "login" for the way to the login page.
async fn answer_to(b: &Browser, base: &str, sp: &SpConfig, idp: &IdpMetadata) -> String {
    let url = authn_request_redirect(sp, idp, &new_request_id().unwrap(), "", now()).unwrap();
    let r = b.get(&at(base, &url)).await;
    if r.status() == 303 {
        return "login".into();
    }
    let html = r.text().await.unwrap();
    if html.contains("SAMLResponse") {
        posted(&html).1
    } else {
        html
    }
}

on_both_engines!(runtime_service_providers_are_managed_through_the_admin_api_by_entity_id);
async fn runtime_service_providers_are_managed_through_the_admin_api_by_entity_id(pg: bool) {
    use reqwest::Method;
    let server = TestServer::start_with(Options {
        postgres: pg,
        ..Default::default()
    })
    .await;
    let admin = admin_token(&server, "acme", "acme-admin", "acme-admin-secret").await;
    let sp = test_sp(RUNTIME_SP);
    let url = collection(&server, "acme");
    let me = one(&server, "acme", RUNTIME_SP);
    assert!(
        me.ends_with("/https%3A%2F%2Fapp.runtime.test%2Fsaml"),
        "{me}"
    );
    // Created (enabled), with its address.
    let r = send(&server, Method::POST, &url, &admin, Some(registration(&sp))).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["location"].to_str().unwrap(), me);
    let shown: Value = r.json().await.unwrap();
    assert_eq!(shown["entity_id"], RUNTIME_SP);
    assert_eq!(shown["enabled"], true);
    // Once only.
    let r = send(&server, Method::POST, &url, &admin, Some(registration(&sp))).await;
    assert_eq!(r.status(), 409);
    // Read back by its percent-encoded entity id.
    let r = send(&server, Method::GET, &me, &admin, None).await;
    assert_eq!(r.status(), 200);
    let got: Value = r.json().await.unwrap();
    assert_eq!(got["display_name"], "Runtime app");
    assert_eq!(got["acs"][0]["url"], ACS);
    // Replaced: 200; the entity id in the body must be the path's.
    let mut renamed = registration(&sp);
    renamed["display_name"] = "Runtime app, renamed".into();
    let r = send(&server, Method::PUT, &me, &admin, Some(renamed.clone())).await;
    assert_eq!(r.status(), 200);
    let shown: Value = r.json().await.unwrap();
    assert_eq!(shown["display_name"], "Runtime app, renamed");
    let r = send(
        &server,
        Method::PUT,
        &one(&server, "acme", "https://other.runtime.test"),
        &admin,
        Some(renamed),
    )
    .await;
    assert!(
        assert_oauth_error(r, 400, "invalid_request")
            .await
            .contains("differs")
    );
    // A PUT that creates answers 201; paging by entity id.
    for n in 1..=2 {
        let other = test_sp(&format!("https://app{n}.runtime.test/saml"));
        let r = send(
            &server,
            Method::PUT,
            &one(&server, "acme", &other.entity_id),
            &admin,
            Some(registration(&other)),
        )
        .await;
        assert_eq!(r.status(), 201);
    }
    let page: Value = send(
        &server,
        Method::GET,
        &format!("{url}?limit=2"),
        &admin,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let ids = |p: &Value| -> Vec<String> {
        p["service_providers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["entity_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&page),
        [
            "https://app.runtime.test/saml",
            "https://app1.runtime.test/saml"
        ]
    );
    assert_eq!(page["file_service_providers"][0], "https://sp.acme.test");
    let next = page["next_after"].as_str().unwrap();
    let rest: Value = send(
        &server,
        Method::GET,
        &format!("{url}?limit=2&after={}", encode(next)),
        &admin,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(ids(&rest), ["https://app2.runtime.test/saml"]);
    // Disabled, enabled: PATCH takes `enabled` only.
    let r = send(
        &server,
        Method::PATCH,
        &me,
        &admin,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(r.status(), 200);
    let got: Value = send(&server, Method::GET, &me, &admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["enabled"], false);
    let r = send(
        &server,
        Method::PATCH,
        &me,
        &admin,
        Some(json!({"enabled": "yes", "display_name": "x"})),
    )
    .await;
    assert_oauth_error(r, 400, "invalid_request").await;
    // Removed.
    let r = send(&server, Method::DELETE, &me, &admin, None).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        send(&server, Method::GET, &me, &admin, None).await.status(),
        404
    );
    assert_eq!(
        send(&server, Method::DELETE, &me, &admin, None)
            .await
            .status(),
        404
    );
    server.stop().await;
}

on_both_engines!(an_sp_registered_at_runtime_signs_alice_in_until_it_is_disabled);
async fn an_sp_registered_at_runtime_signs_alice_in_until_it_is_disabled(pg: bool) {
    let server = TestServer::start_with(Options {
        postgres: pg,
        ..Default::default()
    })
    .await;
    let admin = admin_token(&server, "acme", "acme-admin", "acme-admin-secret").await;
    let sp = test_sp(RUNTIME_SP);
    let idp = idp_of(&server, "acme").await;
    let b = Browser::new(&server);
    // Unknown before it is registered.
    let before = answer_to(&b, &server.base, &sp, &idp).await;
    assert!(before.contains("not a service provider"), "{before}");
    // Opted in to IdP-initiated sign-in: on the application portal.
    let mut body = registration(&sp);
    body["display_name"] = json!("Runtime App");
    body["allow_idp_initiated"] = json!(true);
    let r = send(
        &server,
        reqwest::Method::POST,
        &collection(&server, "acme"),
        &admin,
        Some(body),
    )
    .await;
    assert_eq!(r.status(), 201);
    // The cached "unknown" was forgotten: alice signs in, and the SP accepts the Response.
    let a = alice_signs_in(&b, &server.base, &sp, &idp).await;
    let portal = b.get(&server.url("/acme/apps")).await.text().await.unwrap();
    assert!(portal.contains("Runtime App"), "{portal}");
    assert_eq!(a.issuer, server.url("/acme"));
    let mail = a.attributes.iter().find(|(n, _)| n == MAIL).unwrap();
    assert_eq!(mail.1, vec!["alice@acme.test".to_string()]);
    // Its registered certificate is checked: a request signed by another key is refused.
    let other = test_sp("https://x.runtime.test");
    let forger = SpConfig {
        signing_key_pem: other.signing_key_pem,
        signing_cert_pem: other.signing_cert_pem,
        ..sp.clone()
    };
    let refused = answer_to(&b, &server.base, &forger, &idp).await;
    assert!(
        refused.contains("status:Requester") && !refused.contains("Assertion"),
        "{refused}"
    );
    // Disabled: unknown again, at once; enabled: signed in at once (the SSO session).
    let me = one(&server, "acme", RUNTIME_SP);
    let patch = |enabled: bool| {
        send(
            &server,
            reqwest::Method::PATCH,
            &me,
            &admin,
            Some(json!({ "enabled": enabled })),
        )
    };
    assert_eq!(patch(false).await.status(), 200);
    let off = answer_to(&b, &server.base, &sp, &idp).await;
    assert!(off.contains("not a service provider"), "{off}");
    let portal = b.get(&server.url("/acme/apps")).await.text().await.unwrap();
    assert!(!portal.contains("Runtime App"), "{portal}");
    assert_eq!(patch(true).await.status(), 200);
    let on = answer_to(&b, &server.base, &sp, &idp).await;
    assert!(
        on.contains("status:Success") && on.contains("Assertion"),
        "{on}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_registration_is_checked_by_the_tenant_files_rules_and_each_problem_names_its_key() {
    let server = TestServer::start().await;
    let admin = admin_token(&server, "acme", "acme-admin", "acme-admin-secret").await;
    let url = collection(&server, "acme");
    let post = |body: Value| send(&server, reqwest::Method::POST, &url, &admin, Some(body));
    let r = post(json!({
        "entity_id": "not a uri",
        "acs": [{"url": "http://sp.example/acs"}, {"url": "https://sp.example/acs2", "index": 0, "binding": "soap"}],
        "name_id_format": "kerberos",
        "encrypt_assertions": true,
        "signing_certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "attributes": [{"claim": "email", "name": "mail", "name_format": "uri"}],
        "metadata_url": "http://sp.example/metadata"
    }))
    .await;
    let said = assert_oauth_error(r, 400, "invalid_request").await;
    for (key, text) in [
        ("entity_id", "absolute URI"),
        ("acs[0].url", "plain http"),
        ("acs[1].index", "used twice"),
        ("acs[1].binding", "`post`"),
        ("name_id_format", "persistent"),
        ("signing_certificate", "X.509"),
        ("attributes[0].name", "URI"),
        ("metadata_url", "https"),
    ] {
        assert!(said.contains(&format!("{key}: ")), "{key}: {said}");
        assert!(said.contains(text), "{text}: {said}");
    }
    // Without a metadata_url, what needs one is checked at once.
    let r =
        post(json!({"entity_id": RUNTIME_SP, "acs": [{"url": ACS}], "encrypt_assertions": true}))
            .await;
    let said = assert_oauth_error(r, 400, "invalid_request").await;
    assert!(
        said.contains("encrypt_assertions: ") && said.contains("encryption_certificate"),
        "{said}"
    );
    let r = post(json!({"entity_id": RUNTIME_SP})).await;
    assert!(
        assert_oauth_error(r, 400, "invalid_request")
            .await
            .contains("acs: ")
    );
    // A registration cannot name a server file: the keys do not exist.
    for key in ["signing_certificate_file", "encryption_certificate_file"] {
        let mut body = registration(&test_sp(RUNTIME_SP));
        body.as_object_mut().unwrap().remove("signing_certificate");
        body[key] = "/etc/passwd".into();
        let r = post(body).await;
        let said = assert_oauth_error(r, 400, "invalid_request").await;
        assert!(
            said.contains(&format!("unknown field `{key}`")),
            "{key}: {said}"
        );
    }
    // An SP of the tenant file cannot be taken, nor replaced, at runtime.
    let mut file_sp = registration(&test_sp("https://sp.acme.test"));
    file_sp["entity_id"] = "https://sp.acme.test".into();
    let r = post(file_sp.clone()).await;
    assert_eq!(r.status(), 409);
    let r = send(
        &server,
        reqwest::Method::PUT,
        &one(&server, "acme", "https://sp.acme.test"),
        &admin,
        Some(file_sp),
    )
    .await;
    assert_eq!(r.status(), 409);
    // Nor a client's id (a session's participants would be ambiguous).
    let mut twin = registration(&test_sp(RUNTIME_SP));
    twin["entity_id"] = "acme-web".into();
    let r = post(twin).await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("client_id"));
    // Oversized.
    let mut huge = registration(&test_sp(RUNTIME_SP));
    huge["display_name"] = "x".repeat(70 * 1024).into();
    let r = post(huge).await;
    assert_eq!(r.status(), 413);
    // Not JSON.
    let r = server
        .http
        .post(&url)
        .bearer_auth(&admin)
        .body("entity_id=x")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // Nothing was stored.
    let list: Value = send(&server, reqwest::Method::GET, &url, &admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["service_providers"], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn a_tenant_admin_sees_and_changes_only_its_own_tenants_sps_and_sps_stay_in_their_tenant() {
    use reqwest::Method;
    let server = TestServer::start_with(with_twin(ACME.to_string())).await;
    let acme = admin_token(&server, "acme", "acme-admin", "acme-admin-secret").await;
    let twin = admin_token(&server, "twin", "acme-admin", "acme-admin-secret").await;
    let sp = test_sp(RUNTIME_SP);
    let r = send(
        &server,
        Method::POST,
        &collection(&server, "acme"),
        &acme,
        Some(registration(&sp)),
    )
    .await;
    assert_eq!(r.status(), 201);
    // The twin's admin (same client id and secret, another tenant) sees none of it...
    let list: Value = send(
        &server,
        Method::GET,
        &collection(&server, "twin"),
        &twin,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(list["service_providers"], json!([]));
    let r = send(
        &server,
        Method::GET,
        &one(&server, "twin", RUNTIME_SP),
        &twin,
        None,
    )
    .await;
    assert_eq!(r.status(), 404);
    // ...and its token is worth nothing at acme's API, whatever the method.
    let me = one(&server, "acme", RUNTIME_SP);
    for (method, url, body) in [
        (Method::GET, collection(&server, "acme"), None),
        (Method::GET, me.clone(), None),
        (
            Method::PUT,
            me.clone(),
            Some(json!({"entity_id": RUNTIME_SP, "acs": [{"url": "https://evil.example/acs"}]})),
        ),
        (Method::PATCH, me.clone(), Some(json!({"enabled": false}))),
        (Method::DELETE, me.clone(), None),
    ] {
        let r = send(&server, method.clone(), &url, &twin, body).await;
        assert_bearer_error(&r, 401, "invalid_token");
    }
    let got: Value = send(&server, Method::GET, &me, &acme, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["enabled"], true);
    assert_eq!(got["acs"][0]["url"], ACS);
    // An SP the twin registers is unknown at acme's SSO service, and acme's at the twin's.
    let twin_sp = test_sp("https://twin-only.runtime.test/saml");
    let r = send(
        &server,
        Method::POST,
        &collection(&server, "twin"),
        &twin,
        Some(registration(&twin_sp)),
    )
    .await;
    assert_eq!(r.status(), 201);
    let b = Browser::new(&server);
    let acme_idp = idp_of(&server, "acme").await;
    let twin_idp = idp_of(&server, "twin").await;
    let at_acme = answer_to(&b, &server.base, &twin_sp, &acme_idp).await;
    assert!(at_acme.contains("not a service provider"), "{at_acme}");
    let at_twin = answer_to(&b, &server.base, &sp, &twin_idp).await;
    assert!(at_twin.contains("not a service provider"), "{at_twin}");
    // Each is known where it was registered.
    assert_eq!(
        answer_to(&b, &server.base, &twin_sp, &twin_idp).await,
        "login"
    );
    server.stop().await;
}

/// A service inside the network that nothing may make the server call: it counts connections
/// (and answers none).
async fn internal_service() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (port, hits)
}

/// SP metadata documents served by an "upstream" on 127.0.0.2 (the one internal address the
/// guarded server may reach), by path; `/hits` counts the fetches of `/md`.
async fn metadata_server(upstreams: &Upstreams, docs: Vec<(&'static str, String)>) -> String {
    let mut router = axum::Router::new();
    for (path, xml) in docs {
        router = router.route(
            path,
            axum::routing::get(move || {
                let xml = xml.clone();
                async move {
                    (
                        [
                            ("content-type", "application/samlmetadata+xml"),
                            ("cache-control", "max-age=600"),
                        ],
                        xml,
                    )
                }
            }),
        );
    }
    upstreams.serve_on("127.0.0.2", router).await
}

#[tokio::test]
async fn an_sp_registered_by_metadata_url_takes_acs_and_keys_from_it_and_an_internal_url_is_refused()
 {
    use reqwest::Method;
    crate::security_rules::security_events::capture();
    let upstreams = Upstreams::new();
    let sp = test_sp("https://md.runtime.test/saml");
    let other = test_sp("https://someone.else.test/saml");
    let md = sp_metadata_xml(&sp).unwrap();
    let base = metadata_server(
        &upstreams,
        vec![
            ("/md", md.clone()),
            ("/other", sp_metadata_xml(&other).unwrap()),
            (
                "/doctype",
                format!("<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>{md}"),
            ),
        ],
    )
    .await;
    let server = TestServer::start_with(Options {
        outbound_allow: vec!["127.0.0.2/32"],
        trusted_cas: vec![upstreams.ca_file()],
        ..Default::default()
    })
    .await;
    let admin = admin_token(&server, "acme", "acme-admin", "acme-admin-secret").await;
    let url = collection(&server, "acme");
    // Only the entity id and where its metadata is.
    let r = send(
        &server,
        Method::POST,
        &url,
        &admin,
        Some(json!({"entity_id": sp.entity_id, "metadata_url": format!("{base}/md")})),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let b = Browser::new(&server);
    let idp = idp_of(&server, "acme").await;
    // The ACS comes from the metadata (the Response is posted there), and the signing
    // certificate: the SP's requests are checked with it.
    alice_signs_in(&b, &server.base, &sp, &idp).await;
    let forger = SpConfig {
        signing_key_pem: other.signing_key_pem.clone(),
        signing_cert_pem: other.signing_cert_pem.clone(),
        ..sp.clone()
    };
    let refused = answer_to(&b, &server.base, &forger, &idp).await;
    assert!(refused.contains("status:Requester"), "{refused}");
    // A key given in the registration overrides the metadata's.
    let r = send(
        &server,
        Method::PUT,
        &one(&server, "acme", &sp.entity_id),
        &admin,
        Some(json!({
            "entity_id": sp.entity_id,
            "metadata_url": format!("{base}/md"),
            "signing_certificate": other.signing_cert_pem,
        })),
    )
    .await;
    assert_eq!(r.status(), 200);
    let now_forger = answer_to(&b, &server.base, &forger, &idp).await;
    assert!(now_forger.contains("status:Success"), "{now_forger}");
    let now_sp = answer_to(&b, &server.base, &sp, &idp).await;
    assert!(now_sp.contains("status:Requester"), "{now_sp}");
    // Metadata about another entity, with a DOCTYPE, or not there: refused, naming the key.
    for (path, says) in [
        ("/other", "not this SP's entity id"),
        ("/doctype", "DOCTYPE"),
        ("/missing", "cannot be fetched"),
    ] {
        let r = send(
            &server,
            Method::POST,
            &url,
            &admin,
            Some(json!({"entity_id": "https://new.runtime.test/saml", "metadata_url": format!("{base}{path}")})),
        )
        .await;
        let said = assert_oauth_error(r, 400, "invalid_request").await;
        assert!(
            said.contains("metadata_url: ") && said.contains(says),
            "{path}: {said}"
        );
    }
    // A tenant admin cannot make the server fetch from an internal address: by IP literal or
    // by a name that resolves to one.
    let (port, hits) = internal_service().await;
    for target in [
        format!("https://127.0.0.1:{port}/md"),
        format!("https://localhost:{port}/md"),
        "https://169.254.169.254/latest/meta-data".to_string(),
    ] {
        let r = send(
            &server,
            Method::POST,
            &url,
            &admin,
            Some(json!({"entity_id": "https://new.runtime.test/saml", "metadata_url": target})),
        )
        .await;
        // A security event says what was tried.
        let events = crate::security_rules::security_events::of(&r);
        assert!(
            events.iter().any(|e| e["event"] == "request_rejected"
                && e["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("internal address"))),
            "{events:?}"
        );
        let said = assert_oauth_error(r, 400, "invalid_request").await;
        assert!(
            said.contains("metadata_url: ") && said.contains("internal address"),
            "{target}: {said}"
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the internal service was called"
    );
    let r = send(
        &server,
        Method::GET,
        &one(&server, "acme", "https://new.runtime.test/saml"),
        &admin,
        None,
    )
    .await;
    assert_eq!(r.status(), 404, "nothing refused was stored");
    server.stop().await;
}

#[tokio::test]
async fn a_tenant_files_sp_can_come_from_its_metadata_url_and_a_bad_one_rejects_the_file() {
    let upstreams = Upstreams::new();
    let sp = test_sp("https://file-md.acme.test/saml");
    let base = metadata_server(&upstreams, vec![("/md", sp_metadata_xml(&sp).unwrap())]).await;
    let with_sp = |entity: &str, url: &str| {
        format!(
            "{ACME}\n[[saml_service_providers]]\nentity_id = \"{entity}\"\nmetadata_url = \"{url}\"\n\
             attributes = [{{ claim = \"email\", name = \"{MAIL}\", name_format = \"uri\" }}]\n"
        )
    };
    let server = TestServer::start_with(Options {
        tenants: vec![
            ("acme", with_sp(&sp.entity_id, &format!("{base}/md"))),
            ("globex", GLOBEX.to_string()),
        ],
        outbound_allow: vec!["127.0.0.2/32"],
        trusted_cas: vec![upstreams.ca_file()],
        ..Default::default()
    })
    .await;
    let b = Browser::new(&server);
    let idp = idp_of(&server, "acme").await;
    let a = alice_signs_in(&b, &server.base, &sp, &idp).await;
    assert!(a.attributes.iter().any(|(n, _)| n == MAIL));
    // The file now points another SP at an internal address: the file is refused, naming the
    // key and line, and the running tenant stays as it was.
    let (port, hits) = internal_service().await;
    write_tenant(
        server.dir.path(),
        "acme",
        &with_sp(
            "https://other.acme.test/saml",
            &format!("https://127.0.0.1:{port}/md"),
        )
        .replace("https://localhost:8443", &server.base),
    );
    let report = portcullis::registry::sync::reload_files(server.state())
        .await
        .unwrap();
    let problem = report
        .rejected
        .iter()
        .find(|p| p.key == "saml_service_providers[1].metadata_url")
        .unwrap_or_else(|| panic!("{:?}", report.rejected));
    assert!(problem.message.contains("internal address"), "{problem}");
    assert!(problem.line.is_some(), "{problem}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    let still = answer_to(&b, &server.base, &sp, &idp).await;
    assert!(still.contains("status:Success"), "{still}");
    server.stop().await;
}

#[tokio::test]
async fn an_sp_registered_through_node_a_is_used_by_node_bs_sso_service_until_disabled() {
    if postgres_url().is_none() {
        eprintln!("PORTCULLIS_TEST_POSTGRES_URL is not set: PostgreSQL part skipped");
        return;
    }
    use base64::Engine;
    // Two nodes of one deployment: one database schema, one master key, the same files. The
    // periodic sync is an hour away: only the change notice can tell node B in time.
    let schema = unique_schema();
    let keys = format!(
        "master_key = \"{}\"",
        base64::engine::general_purpose::STANDARD.encode([9u8; 32])
    );
    let node = || Options {
        postgres: true,
        postgres_schema: Some(schema.clone()),
        keys: keys.clone(),
        ..Default::default()
    };
    let a = TestServer::start_with(node()).await;
    let node_b = TestServer::start_with(node()).await;
    let sp = test_sp(RUNTIME_SP);
    let idp = idp_of(&node_b, "acme").await;
    let browser = Browser::new(&node_b);
    // Node B knows (and caches) that there is no such SP.
    let unknown = answer_to(&browser, &node_b.base, &sp, &idp).await;
    assert!(unknown.contains("not a service provider"), "{unknown}");
    // Registered through node A's admin API.
    let admin = admin_token(&a, "acme", "acme-admin", "acme-admin-secret").await;
    let r = send(
        &a,
        reqwest::Method::POST,
        &collection(&a, "acme"),
        &admin,
        Some(registration(&sp)),
    )
    .await;
    assert_eq!(r.status(), 201);
    let mut known = false;
    for _ in 0..50 {
        if answer_to(&browser, &node_b.base, &sp, &idp).await == "login" {
            known = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(known, "node B learned of the registration");
    // Alice signs in to it on node B.
    let assertion = alice_signs_in(&browser, &node_b.base, &sp, &idp).await;
    assert!(assertion.attributes.iter().any(|(n, _)| n == MAIL));
    // Disabled on node A: node B refuses it at once.
    let r = send(
        &a,
        reqwest::Method::PATCH,
        &one(&a, "acme", RUNTIME_SP),
        &admin,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(r.status(), 200);
    let mut refused = false;
    for _ in 0..50 {
        if answer_to(&browser, &node_b.base, &sp, &idp)
            .await
            .contains("not a service provider")
        {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refused, "node B stopped answering the disabled SP");
    a.stop().await;
    node_b.stop().await;
}

#[tokio::test]
async fn the_cli_registers_lists_shows_disables_and_removes_runtime_sps() {
    let server = TestServer::start().await;
    let sp = test_sp(RUNTIME_SP);
    let file = server.dir.path().join("app.toml");
    std::fs::write(
        &file,
        format!(
            "entity_id = \"{RUNTIME_SP}\"\ndisplay_name = \"Runtime app\"\nacs = [{{ url = \"{ACS}\", default = true }}]\nsigning_certificate = '''\n{}'''\n",
            sp.signing_cert_pem
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
    let path = file.to_str().unwrap();
    let (ok, out) = cli(&["saml-sps", "add", "--tenant", "acme", path]);
    assert!(ok, "{out}");
    let (ok, out) = cli(&["saml-sps", "add", "--tenant", "acme", path]);
    assert!(!ok && out.contains("exists"), "{out}");
    let (ok, out) = cli(&["saml-sps", "add", "--tenant", "acme", "--replace", path]);
    assert!(ok, "{out}");
    // The running node (SQLite) signs alice in to it.
    let b = Browser::new(&server);
    let idp = idp_of(&server, "acme").await;
    alice_signs_in(&b, &server.base, &sp, &idp).await;
    let (_, out) = cli(&["saml-sps", "list", "--tenant", "acme"]);
    assert!(
        out.contains(RUNTIME_SP) && out.contains("enabled=true"),
        "{out}"
    );
    let (ok, out) = cli(&["saml-sps", "show", "--tenant", "acme", RUNTIME_SP]);
    assert!(
        ok && out.contains("\"display_name\": \"Runtime app\""),
        "{out}"
    );
    let (ok, _) = cli(&["saml-sps", "disable", "--tenant", "acme", RUNTIME_SP]);
    assert!(ok);
    let (_, out) = cli(&["saml-sps", "list", "--tenant", "acme"]);
    assert!(out.contains("enabled=false"), "{out}");
    let (ok, _) = cli(&["saml-sps", "enable", "--tenant", "acme", RUNTIME_SP]);
    assert!(ok);
    // A definition naming a file is refused: the key does not exist.
    let bad = server.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "entity_id = \"https://bad.runtime.test\"\nacs = [{{ url = \"{ACS}\" }}]\nsigning_certificate_file = \"data/master.key\"\n"
        ),
    )
    .unwrap();
    let (ok, out) = cli(&["saml-sps", "add", "--tenant", "acme", bad.to_str().unwrap()]);
    assert!(
        !ok && out.contains("unknown field `signing_certificate_file`"),
        "{out}"
    );
    // A file SP's entity id cannot be taken.
    std::fs::write(
        &bad,
        format!("entity_id = \"https://sp.acme.test\"\nacs = [{{ url = \"{ACS}\" }}]\n"),
    )
    .unwrap();
    let (ok, out) = cli(&["saml-sps", "add", "--tenant", "acme", bad.to_str().unwrap()]);
    assert!(!ok && out.contains("tenant file"), "{out}");
    let (ok, _) = cli(&["saml-sps", "remove", "--tenant", "acme", RUNTIME_SP]);
    assert!(ok);
    let (ok, out) = cli(&["saml-sps", "remove", "--tenant", "acme", RUNTIME_SP]);
    assert!(!ok && out.contains("no service provider"), "{out}");
    server.stop().await;
}
