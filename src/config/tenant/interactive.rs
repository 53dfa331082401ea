//! The browser-facing settings of a client (`InteractiveSpec`): redirect and logout URIs, its
//! keys, its registered TLS subject, PKCE and consent.

use super::{ClientFile, GrantType, InteractiveSpec, KeyPath, TlsSubject, resolve_files};
use crate::config::FileRoots;
use crate::keys::Alg;
use crate::validation::dn::{self, DistinguishedName};

pub(super) fn resolve(
    c: &ClientFile,
    ck: &KeyPath,
    files: &FileRoots,
    grant_types: &[GrantType],
    signing_algorithms: &[Alg],
    bad: &mut impl FnMut(KeyPath, String),
) -> InteractiveSpec {
    let native = match c.application_type.as_deref() {
        None | Some("web") => false,
        Some("native") => true,
        Some(other) => {
            bad(
                ck.key("application_type"),
                format!("`{other}` is not `web` or `native`"),
            );
            false
        }
    };
    check_uris(c, ck, native, grant_types, bad);
    let id_token_alg =
        c.id_token_signed_response_alg
            .as_deref()
            .and_then(|a| match Alg::parse(a) {
                Some(alg) if signing_algorithms.contains(&alg) => Some(alg),
                _ => {
                    bad(
                        ck.key("id_token_signed_response_alg"),
                        format!("`{a}` is not in tokens.signing_algorithms"),
                    );
                    None
                }
            });
    let jwks = jwks(c, ck, files, bad);
    let (initiate_login_uri, target_link_uri) = third_party_login(c, ck, grant_types, bad);
    if let Some(u) = &c.logo_uri
        && !crate::ui::is_logo_url(u)
    {
        bad(
            ck.key("logo_uri"),
            "a logo is an https URL or a data:image/… URL".into(),
        );
    }
    let tls_subject = tls_subject(c, ck, bad);
    if let Some(l) = c.consent_lifetime
        && l < 1
    {
        bad(ck.key("consent_lifetime"), "must be positive".into());
    }
    InteractiveSpec {
        public: c.public,
        native,
        redirect_uris: c.redirect_uris.clone(),
        post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
        require_pkce: c.require_pkce || c.public,
        allow_plain_pkce: c.allow_plain_pkce,
        require_consent: c.require_consent,
        allow_remember_consent: c.allow_remember_consent,
        consent_lifetime: c.consent_lifetime,
        require_par: c.require_par,
        id_token_alg,
        always_include_user_claims_in_id_token: c.always_include_user_claims_in_id_token,
        refresh_token_reuse: c.refresh_token_reuse,
        frontchannel_logout_uri: c.frontchannel_logout_uri.clone(),
        backchannel_logout_uri: c.backchannel_logout_uri.clone(),
        client_uri: c.client_uri.clone(),
        jwks,
        jwks_uri: c.jwks_uri.clone(),
        require_signed_request_object: c.require_signed_request_object,
        tls_subject,
        tls_trust_anchors: resolve_files(
            files,
            &ck.key("tls_client_auth_trust_anchors"),
            &c.tls_client_auth_trust_anchors,
            bad,
        ),
        certificate_bound_tokens: c.tls_client_certificate_bound_access_tokens,
        require_dpop: c.require_dpop,
        identity_providers: c.identity_providers.clone(),
        disable_local_login: !c.enable_local_login,
        logo_uri: c.logo_uri.clone(),
        initiate_login_uri,
        target_link_uri,
    }
}

/// OIDC Core §4 third-party-initiated login, as the application portal uses it: the client's
/// `initiate_login_uri` (OIDC Registration §2: https) and the `target_link_uri` sent with it
/// (as registered, else the origin of `initiate_login_uri`).
fn third_party_login(
    c: &ClientFile,
    ck: &KeyPath,
    grant_types: &[GrantType],
    bad: &mut impl FnMut(KeyPath, String),
) -> (Option<String>, Option<String>) {
    let Some(initiate) = &c.initiate_login_uri else {
        if c.target_link_uri.is_some() {
            bad(
                ck.key("target_link_uri"),
                "only for clients with an initiate_login_uri".into(),
            );
        }
        return (None, None);
    };
    let key = ck.key("initiate_login_uri");
    let parsed = match url::Url::parse(initiate) {
        Ok(u) if u.scheme() == "https" && u.fragment().is_none() && u.host().is_some() => u,
        _ => {
            bad(
                key,
                format!("`{initiate}`: an https URL without a fragment (OIDC Registration §2)"),
            );
            return (None, None);
        }
    };
    if !grant_types.contains(&GrantType::AuthorizationCode) {
        bad(
            key,
            "only a client that signs users in (authorization_code) can be started from the portal"
                .into(),
        );
    }
    let target = match &c.target_link_uri {
        Some(t) => {
            if let Err(m) = check_redirect_uri(t, false) {
                bad(ck.key("target_link_uri"), m);
            }
            t.clone()
        }
        None => format!("{}/", parsed.origin().ascii_serialization()),
    };
    (Some(initiate.clone()), Some(target))
}

/// Redirect, logout and metadata URIs; PKCE for public clients.
fn check_uris(
    c: &ClientFile,
    ck: &KeyPath,
    native: bool,
    grant_types: &[GrantType],
    bad: &mut impl FnMut(KeyPath, String),
) {
    let code_flow = grant_types.contains(&GrantType::AuthorizationCode);
    if code_flow && c.redirect_uris.is_empty() {
        bad(
            ck.key("redirect_uris"),
            "an authorization_code client needs at least one redirect URI".into(),
        );
    }
    for (j, u) in c.redirect_uris.iter().enumerate() {
        if let Err(m) = check_redirect_uri(u, native) {
            bad(ck.key("redirect_uris").index(j), m);
        }
    }
    for (j, u) in c.post_logout_redirect_uris.iter().enumerate() {
        if let Err(m) = check_redirect_uri(u, native) {
            bad(ck.key("post_logout_redirect_uris").index(j), m);
        }
    }
    for (key, u) in [
        ("frontchannel_logout_uri", &c.frontchannel_logout_uri),
        ("backchannel_logout_uri", &c.backchannel_logout_uri),
        ("client_uri", &c.client_uri),
        ("jwks_uri", &c.jwks_uri),
    ] {
        if let Some(u) = u
            && let Err(m) = check_redirect_uri(u, false)
        {
            bad(ck.key(key), m);
        }
    }
    // The server itself calls these: its outbound requests are https only (src/outbound).
    for (key, u) in [
        ("backchannel_logout_uri", &c.backchannel_logout_uri),
        ("jwks_uri", &c.jwks_uri),
    ] {
        if let Some(u) = u
            && !u.starts_with("https://")
        {
            bad(
                ck.key(key),
                "must be an https URL: the server fetches it, and only over https".into(),
            );
        }
    }
    if c.public && !c.require_pkce {
        // RFC 9700 §2.1.1: public clients must use PKCE.
        bad(
            ck.key("require_pkce"),
            "a public client must use PKCE".into(),
        );
    }
}

/// The client's JWK Set: inline, or read from `jwks_file` (public keys only).
fn jwks(
    c: &ClientFile,
    ck: &KeyPath,
    files: &FileRoots,
    bad: &mut impl FnMut(KeyPath, String),
) -> Option<serde_json::Value> {
    let mut jwks = c.jwks.clone();
    if let Some(file) = &c.jwks_file {
        if jwks.is_some() || c.jwks_uri.is_some() {
            bad(
                ck.key("jwks_file"),
                "give one of jwks, jwks_file and jwks_uri".into(),
            );
        }
        match files
            .resolve(file)
            .map(|p| (std::fs::read_to_string(&p), p))
        {
            Err(m) => bad(ck.key("jwks_file"), m),
            Ok((Ok(text), path)) => match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(v) => jwks = Some(v),
                Err(e) => bad(ck.key("jwks_file"), format!("{}: {e}", path.display())),
            },
            // Not yet written (e.g. by `portcullis dev-certs` on first start): the client has
            // no keys until it is, and the tenant still loads.
            Ok((Err(_), path)) => {
                tracing::warn!(file = %path.display(), client = %c.client_id, "client JWK Set file not found; the client cannot authenticate with keys until it exists")
            }
        }
    }
    if let Some(jwks) = &jwks
        && jwks.get("keys").and_then(|k| k.as_array()).is_none()
    {
        bad(ck.key("jwks"), "a JWK Set is an object with `keys`".into());
    }
    if let Some(jwks) = &jwks
        && jwks
            .get("keys")
            .and_then(|k| k.as_array())
            .is_some_and(|keys| {
                keys.iter()
                    .any(|k| k.get("d").is_some() || k.get("k").is_some())
            })
    {
        bad(
            ck.key("jwks"),
            "a client JWK Set holds public keys only".into(),
        );
    }
    jwks
}

fn tls_subject(
    c: &ClientFile,
    ck: &KeyPath,
    bad: &mut impl FnMut(KeyPath, String),
) -> Option<TlsSubject> {
    // RFC 8705 §2.1.2: the registered subject, parsed now so that it is compared as data.
    let mut subjects: Vec<TlsSubject> = Vec::new();
    if let Some(s) = &c.tls_client_auth_subject_dn {
        match DistinguishedName::parse(s) {
            Ok(dn) => subjects.push(TlsSubject::SubjectDn(dn)),
            Err(e) => bad(
                ck.key("tls_client_auth_subject_dn"),
                format!("not a distinguished name (RFC 4514 string syntax): {e}"),
            ),
        }
    }
    if let Some(s) = &c.tls_client_auth_san_dns {
        match dn::check_dns_name(s) {
            Ok(()) => subjects.push(TlsSubject::SanDns(s.to_ascii_lowercase())),
            Err(m) => bad(ck.key("tls_client_auth_san_dns"), m),
        }
    }
    if let Some(s) = &c.tls_client_auth_san_uri {
        match url::Url::parse(s) {
            Ok(_) => subjects.push(TlsSubject::SanUri(s.clone())),
            Err(_) => bad(
                ck.key("tls_client_auth_san_uri"),
                format!("`{s}` is not an absolute URI"),
            ),
        }
    }
    if let Some(s) = &c.tls_client_auth_san_ip {
        match s.parse::<std::net::IpAddr>() {
            Ok(ip) => subjects.push(TlsSubject::SanIp(ip)),
            Err(_) => bad(
                ck.key("tls_client_auth_san_ip"),
                format!("`{s}` is not an IP address"),
            ),
        }
    }
    if let Some(s) = &c.tls_client_auth_san_email {
        match dn::check_email(s) {
            Ok(()) => subjects.push(TlsSubject::SanEmail(s.clone())),
            Err(m) => bad(ck.key("tls_client_auth_san_email"), m),
        }
    }
    let given = [
        c.tls_client_auth_subject_dn.is_some(),
        c.tls_client_auth_san_dns.is_some(),
        c.tls_client_auth_san_uri.is_some(),
        c.tls_client_auth_san_ip.is_some(),
        c.tls_client_auth_san_email.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        bad(
            ck.key("tls_client_auth_subject_dn"),
            "give exactly one tls_client_auth subject setting (RFC 8705 §2.1.2)".into(),
        );
    }
    subjects.into_iter().next()
}

/// RFC 6749 §3.1.2: an absolute URI without fragment. Plain http only to a loopback host
/// (RFC 8252 §7.3); other schemes only for native clients (RFC 8252 §7.1).
pub fn check_redirect_uri(u: &str, native: bool) -> Result<(), String> {
    let parsed = url::Url::parse(u).map_err(|_| format!("`{u}` is not an absolute URI"))?;
    if parsed.fragment().is_some() {
        return Err(format!("`{u}` must not have a fragment (RFC 6749 §3.1.2)"));
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        "http" => Err(format!(
            "`{u}`: plain http is allowed only for loopback hosts"
        )),
        _ if native => Ok(()),
        _ => Err(format!("`{u}`: only native clients may use custom schemes")),
    }
}

pub fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}
