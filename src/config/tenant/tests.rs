use super::*;

static ROOTS: std::sync::LazyLock<crate::config::FileRoots> =
    std::sync::LazyLock::new(|| crate::config::FileRoots::under(Path::new(".")));

fn defaults() -> TenantDefaults<'static> {
    TenantDefaults {
        public_base_url: "https://localhost:8443",
        mtls_base_url: "https://localhost:8444",
        files: &ROOTS,
    }
}

fn resolve_str(name: &str, text: &str) -> Result<(TenantSpec, Vec<ClientSpec>), Vec<ConfigError>> {
    resolve(Path::new(name), text, &defaults())
}

#[test]
fn the_demo_tenants_resolve() {
    for (name, text) in [
        (
            "tenants/acme.toml",
            include_str!("../../../tenants/acme.toml"),
        ),
        (
            "tenants/globex.toml",
            include_str!("../../../tenants/globex.toml"),
        ),
    ] {
        let (spec, clients) = resolve_str(name, text).unwrap();
        assert_eq!(spec.issuer, format!("https://localhost:8443/{}", spec.slug));
        assert!(!clients.is_empty());
    }
}

#[test]
fn a_malformed_tls_client_auth_subject_dn_is_a_located_error() {
    let base = "slug = \"acme\"\n\n[[api_scopes]]\nname = \"api.read\"\n\n[[clients]]\nclient_id = \"m\"\ntoken_endpoint_auth_methods = [\"tls_client_auth\"]\ngrant_types = [\"client_credentials\"]\nscopes = [\"api.read\"]\n";
    for (setting, says) in [
        (
            r#"tls_client_auth_subject_dn = 'CN=m, O=a\d'"#,
            "not an escape",
        ),
        (r#"tls_client_auth_subject_dn = 'CN=m; O=a'"#, "escaped"),
        (
            r#"tls_client_auth_subject_dn = 'XYZ=m'"#,
            "unknown attribute type",
        ),
        (
            r#"tls_client_auth_san_ip = '10.0.0.300'"#,
            "not an IP address",
        ),
        (
            r#"tls_client_auth_san_dns = 'svc.acme.test.'"#,
            "trailing dot",
        ),
        (
            r#"tls_client_auth_san_email = 'acme.test'"#,
            "not an email address",
        ),
    ] {
        let errors = resolve_str("tenants/acme.toml", &format!("{base}{setting}\n")).unwrap_err();
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let key = setting.split(' ').next().unwrap();
        assert!(
            shown
                .iter()
                .any(|e| e.contains(&format!(":11: `clients[0].{key}`")) && e.contains(says)),
            "{setting}: {shown:#?}"
        );
    }
    let ok = format!(
        "{base}tls_client_auth_subject_dn = 'CN=m\\, x + OU=y, O=#0C0161'\n[mtls]\ntrust_anchors = [\"certs/ca.pem\"]\n"
    );
    let (_, clients) = resolve_str("tenants/acme.toml", &ok).unwrap();
    let subject = clients
        .first()
        .and_then(|c| c.interactive.tls_subject.clone());
    assert!(
        matches!(subject, Some(TlsSubject::SubjectDn(_))),
        "{subject:?}"
    );
}

#[test]
fn every_problem_is_reported_with_its_line_and_key() {
    let text = "slug = \"acme\"\n\n[[api_scopes]]\nname = \"api.read\"\n\n[[clients]]\nclient_id = \"c\"\ngrant_types = [\"implicit\"]\nscopes = [\"api.read\", \"nope\"]\nsecrets = [{ hash = \"plain\" }]\n";
    let errors = resolve_str("tenants/acme.toml", text).unwrap_err();
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        shown
            .iter()
            .any(|e| e.contains(":8: `clients[0].grant_types[0]`")),
        "{shown:#?}"
    );
    assert!(
        shown
            .iter()
            .any(|e| e.contains(":9: `clients[0].scopes[1]`")),
        "{shown:#?}"
    );
    assert!(
        shown
            .iter()
            .any(|e| e.contains(":10: `clients[0].secrets[0].hash`")),
        "{shown:#?}"
    );
}

#[test]
fn a_slug_must_match_its_file_name() {
    let errors = resolve_str("tenants/other.toml", "slug = \"acme\"\n").unwrap_err();
    assert_eq!(errors[0].key, "slug");
    assert_eq!(errors[0].line, Some(1));
}

#[test]
fn unknown_keys_are_rejected() {
    let errors = resolve_str("tenants/acme.toml", "slug = \"acme\"\nisuer = \"x\"\n").unwrap_err();
    assert_eq!(errors[0].line, Some(2), "{errors:?}");
}

#[test]
fn scope_tokens_follow_rfc_6749() {
    assert!(valid_scope_token("api.read"));
    assert!(!valid_scope_token("api read"));
    assert!(!valid_scope_token("a\"b"));
    assert!(!valid_scope_token(""));
}

#[test]
fn ciba_clients_are_confidential_with_a_mode_and_a_ping_client_has_an_endpoint() {
    let base = "slug = \"acme\"\n\n[[identity_resources]]\nname = \"openid\"\nclaims = [\"sub\"]\n\n[[clients]]\nclient_id = \"c\"\nsecrets = [{ hash = \"sha256:Zsxv5CP7oTQ4690W5g1DqnGwn5toTEeS1o_uDrQnPD4\" }]\ngrant_types = [\"urn:openid:params:grant-type:ciba\"]\nscopes = [\"openid\"]\n";
    for (setting, key, says) in [
        (
            "backchannel_token_delivery_mode = \"ping\"",
            "backchannel_client_notification_endpoint",
            "needs a notification endpoint",
        ),
        (
            "backchannel_token_delivery_mode = \"push\"",
            "backchannel_token_delivery_mode",
            "push is not supported",
        ),
        (
            "backchannel_token_delivery_mode = \"ping\"\nbackchannel_client_notification_endpoint = \"http://calls.acme.test/notify\"",
            "backchannel_client_notification_endpoint",
            "loopback",
        ),
    ] {
        let errors = resolve_str("tenants/acme.toml", &format!("{base}{setting}\n")).unwrap_err();
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            shown.iter().any(|e| e.contains("tenants/acme.toml:")
                && e.contains(&format!("`clients[0].{key}`"))
                && e.contains(says)),
            "{setting}: {shown:#?}"
        );
    }
    let public = base.replace(
        "secrets = [{ hash = \"sha256:Zsxv5CP7oTQ4690W5g1DqnGwn5toTEeS1o_uDrQnPD4\" }]",
        "public = true",
    );
    let errors = resolve_str(
        "tenants/acme.toml",
        &format!("{public}backchannel_token_delivery_mode = \"poll\"\n"),
    )
    .unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("a public client cannot use CIBA")),
        "{errors:#?}"
    );
    let ok = format!(
        "{base}backchannel_token_delivery_mode = \"ping\"\nbackchannel_client_notification_endpoint = \"http://127.0.0.1:9000/ciba-notify\"\n"
    );
    let (_, clients) = resolve_str("tenants/acme.toml", &ok).unwrap();
    assert_eq!(
        clients.first().and_then(|c| c.ciba.clone()).map(|c| c.mode),
        Some(CibaMode::Ping)
    );
}
