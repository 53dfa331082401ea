//! Client metadata as RFC 7591 §2 (and OpenID Connect Dynamic Client Registration §2) names it,
//! read into a [`ClientDefinition`]: from a registration request (RFC 7591 §3.1, RFC 7592 §2.2)
//! or from a client ID metadata document. What is read here is only the wire form and the
//! rules of registration itself (allowed grants, methods, scopes; redirect URI shapes); the
//! definition is then checked by the tenant file's own client rules
//! (`tenant::check_client_definition`).

use crate::config::tenant::{ClientDefinition, GrantType};
use serde_json::{Map, Value};

/// What a registration may ask for.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub grant_types: &'a [GrantType],
    /// Token endpoint authentication methods, by name.
    pub auth_methods: &'a [String],
    pub scopes: &'a [String],
    /// Requested scopes outside `scopes` are dropped (a metadata document, which cannot be
    /// told) instead of refused (a registration request).
    pub narrow_scopes: bool,
    pub require_consent: bool,
}

/// RFC 7591 §3.2.2: the two ways metadata can be wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataError {
    /// `invalid_redirect_uri`
    RedirectUri(String),
    /// `invalid_client_metadata`
    Metadata(String),
}

impl MetadataError {
    pub fn description(&self) -> &str {
        match self {
            Self::RedirectUri(m) | Self::Metadata(m) => m,
        }
    }
}

/// A registration request read: the definition, the one authentication method, and the
/// metadata as registered (what RFC 7591 §3.2.1 answers and RFC 7592 §2.1 reads back).
#[derive(Debug, Clone)]
pub struct Requested {
    pub definition: ClientDefinition,
    pub auth_method: String,
    pub metadata: Map<String, Value>,
}

const MAX_URIS: usize = 32;
const MAX_TEXT: usize = 2048;

/// Reads `m` as the metadata of client `client_id`. Unknown members are ignored (RFC 7591 §2:
/// "MUST ignore any client metadata it does not understand").
pub fn read(
    m: &Map<String, Value>,
    client_id: &str,
    rules: Rules<'_>,
) -> Result<Requested, MetadataError> {
    let bad = |m: String| MetadataError::Metadata(m);
    let mut out = Map::new();
    let application_type = text(m, "application_type")?.unwrap_or("web");
    let native = match application_type {
        "web" => false,
        "native" => true,
        other => {
            return Err(bad(format!(
                "application_type `{other}` is not web or native"
            )));
        }
    };
    out.insert("application_type".into(), application_type.into());

    let redirect_uris = uri_list(m, "redirect_uris", native)?;
    let post_logout_redirect_uris = uri_list(m, "post_logout_redirect_uris", native)?;

    // RFC 7591 §2: defaults are client_secret_basic, ["authorization_code"] and ["code"].
    let auth_method = text(m, "token_endpoint_auth_method")?
        .unwrap_or("client_secret_basic")
        .to_string();
    if !rules.auth_methods.contains(&auth_method) {
        return Err(bad(format!(
            "token_endpoint_auth_method `{auth_method}` is not allowed here (allowed: {})",
            rules.auth_methods.join(", ")
        )));
    }
    let grant_names =
        strings(m, "grant_types")?.unwrap_or_else(|| vec!["authorization_code".into()]);
    let mut grant_types = Vec::new();
    for g in &grant_names {
        match GrantType::parse(g) {
            Some(gt) if rules.grant_types.contains(&gt) => grant_types.push(gt),
            _ => {
                return Err(bad(format!(
                    "grant type `{g}` is not supported for registered clients here"
                )));
            }
        }
    }
    let response_types = strings(m, "response_types")?.unwrap_or_else(|| {
        if grant_types.contains(&GrantType::AuthorizationCode) {
            vec!["code".into()]
        } else {
            Vec::new()
        }
    });
    for r in &response_types {
        if r != "code" {
            return Err(bad(format!(
                "response type `{r}` is not supported (only `code`: RFC 9700 §2.1.2)"
            )));
        }
    }
    // RFC 7591 §2.1: `code` goes with authorization_code, and the other way round.
    let code = response_types.iter().any(|r| r == "code");
    if code != grant_types.contains(&GrantType::AuthorizationCode) {
        return Err(bad(
            "response_types and grant_types disagree: `code` needs authorization_code and authorization_code needs `code` (RFC 7591 §2.1)".into(),
        ));
    }
    if grant_types.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
        return Err(MetadataError::RedirectUri(
            "redirect_uris: a client of the authorization code grant registers at least one".into(),
        ));
    }
    let public = auth_method == "none";
    if public && grant_types.contains(&GrantType::ClientCredentials) {
        return Err(bad(
            "a client without credentials (`none`) cannot use client_credentials (RFC 6749 §4.4)"
                .into(),
        ));
    }

    let scopes = match text(m, "scope")? {
        None => rules.scopes.to_vec(),
        Some(s) => {
            let mut v = Vec::new();
            for scope in s.split(' ').filter(|x| !x.is_empty()) {
                if rules.scopes.iter().any(|a| a == scope) {
                    if !v.iter().any(|x| x == scope) {
                        v.push(scope.to_string());
                    }
                } else if !rules.narrow_scopes {
                    return Err(bad(format!(
                        "scope `{scope}` cannot be registered here (allowed: {})",
                        rules.scopes.join(" ")
                    )));
                }
            }
            v
        }
    };

    let jwks = match m.get("jwks") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(o)) if o.get("keys").is_some_and(Value::is_array) => Some(v.clone()),
        Some(_) => return Err(bad("jwks: a JWK Set object with a `keys` array".into())),
    };
    let jwks_uri = https_uri(m, "jwks_uri")?;
    if jwks.is_some() && jwks_uri.is_some() {
        // RFC 7591 §2: "MUST NOT both be present in the same request".
        return Err(bad(
            "jwks and jwks_uri must not both be present (RFC 7591 §2)".into(),
        ));
    }
    let client_name = text(m, "client_name")?.map(str::to_string);
    let client_uri = https_uri(m, "client_uri")?;
    let logo_uri = https_uri(m, "logo_uri")?;
    let policy_uri = https_uri(m, "policy_uri")?;
    let tos_uri = https_uri(m, "tos_uri")?;
    let backchannel_logout_uri = https_uri(m, "backchannel_logout_uri")?;
    let frontchannel_logout_uri = https_uri(m, "frontchannel_logout_uri")?;
    let contacts = strings(m, "contacts")?;
    let dpop = flag(m, "dpop_bound_access_tokens")?;
    let bound = flag(m, "tls_client_certificate_bound_access_tokens")?;
    let require_par = flag(m, "require_pushed_authorization_requests")?;
    let id_token_alg = text(m, "id_token_signed_response_alg")?.map(str::to_string);
    let tls = |k: &str| text(m, k).map(|v| v.map(str::to_string));
    let subject_dn = tls("tls_client_auth_subject_dn")?;
    let san_dns = tls("tls_client_auth_san_dns")?;
    let san_uri = tls("tls_client_auth_san_uri")?;
    let san_ip = tls("tls_client_auth_san_ip")?;
    let san_email = tls("tls_client_auth_san_email")?;
    let software_id = text(m, "software_id")?;
    let software_version = text(m, "software_version")?;
    let signing_alg = text(m, "token_endpoint_auth_signing_alg")?;

    let definition = ClientDefinition {
        client_id: client_id.to_string(),
        client_name: client_name.clone(),
        grant_types: grant_names.clone(),
        scopes: scopes.clone(),
        token_endpoint_auth_methods: Some(vec![auth_method.clone()]),
        public,
        application_type: Some(application_type.to_string()),
        redirect_uris: redirect_uris.clone(),
        post_logout_redirect_uris: post_logout_redirect_uris.clone(),
        require_consent: rules.require_consent,
        allow_remember_consent: true,
        require_par,
        id_token_signed_response_alg: id_token_alg.clone(),
        frontchannel_logout_uri: frontchannel_logout_uri.clone(),
        backchannel_logout_uri: backchannel_logout_uri.clone(),
        client_uri: client_uri.clone(),
        logo_uri: logo_uri.clone(),
        jwks: jwks.clone(),
        jwks_uri: jwks_uri.clone(),
        tls_client_auth_subject_dn: subject_dn.clone(),
        tls_client_auth_san_dns: san_dns.clone(),
        tls_client_auth_san_uri: san_uri.clone(),
        tls_client_auth_san_ip: san_ip.clone(),
        tls_client_auth_san_email: san_email.clone(),
        tls_client_certificate_bound_access_tokens: bound,
        require_dpop: dpop,
        ..ClientDefinition::default()
    };

    let mut put = |k: &str, v: Value| {
        out.insert(k.into(), v);
    };
    put("redirect_uris", redirect_uris.into());
    put("grant_types", grant_names.into());
    put("response_types", response_types.into());
    put("token_endpoint_auth_method", auth_method.clone().into());
    put("scope", scopes.join(" ").into());
    for (k, v) in [
        ("client_name", client_name),
        ("client_uri", client_uri),
        ("logo_uri", logo_uri),
        ("policy_uri", policy_uri),
        ("tos_uri", tos_uri),
        ("jwks_uri", jwks_uri),
        ("backchannel_logout_uri", backchannel_logout_uri),
        ("frontchannel_logout_uri", frontchannel_logout_uri),
        ("id_token_signed_response_alg", id_token_alg),
        ("tls_client_auth_subject_dn", subject_dn),
        ("tls_client_auth_san_dns", san_dns),
        ("tls_client_auth_san_uri", san_uri),
        ("tls_client_auth_san_ip", san_ip),
        ("tls_client_auth_san_email", san_email),
        ("software_id", software_id.map(str::to_string)),
        ("software_version", software_version.map(str::to_string)),
        (
            "token_endpoint_auth_signing_alg",
            signing_alg.map(str::to_string),
        ),
    ] {
        if let Some(v) = v {
            put(k, v.into());
        }
    }
    if !post_logout_redirect_uris.is_empty() {
        put(
            "post_logout_redirect_uris",
            post_logout_redirect_uris.into(),
        );
    }
    if let Some(c) = contacts {
        put("contacts", c.into());
    }
    if let Some(j) = jwks {
        put("jwks", j);
    }
    for (k, v) in [
        ("dpop_bound_access_tokens", dpop),
        ("tls_client_certificate_bound_access_tokens", bound),
        ("require_pushed_authorization_requests", require_par),
    ] {
        if v {
            put(k, true.into());
        }
    }
    Ok(Requested {
        definition,
        auth_method,
        metadata: out,
    })
}

fn text<'m>(m: &'m Map<String, Value>, k: &str) -> Result<Option<&'m str>, MetadataError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= MAX_TEXT && !s.chars().any(char::is_control) => {
            Ok(Some(s))
        }
        Some(_) => Err(MetadataError::Metadata(format!(
            "{k}: a string of at most {MAX_TEXT} characters"
        ))),
    }
}

fn flag(m: &Map<String, Value>, k: &str) -> Result<bool, MetadataError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(MetadataError::Metadata(format!("{k}: true or false"))),
    }
}

fn strings(m: &Map<String, Value>, k: &str) -> Result<Option<Vec<String>>, MetadataError> {
    let wrong = || MetadataError::Metadata(format!("{k}: an array of at most {MAX_URIS} strings"));
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) if a.len() <= MAX_URIS => a
            .iter()
            .map(|v| match v {
                Value::String(s) if s.len() <= MAX_TEXT => Ok(s.clone()),
                _ => Err(wrong()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(wrong()),
    }
}

/// An https URL (RFC 7591 §2: `logo_uri`, `client_uri`, `policy_uri`, `tos_uri`, `jwks_uri`).
fn https_uri(m: &Map<String, Value>, k: &str) -> Result<Option<String>, MetadataError> {
    let Some(u) = text(m, k)? else {
        return Ok(None);
    };
    match url::Url::parse(u) {
        Ok(p) if p.scheme() == "https" && p.host().is_some() && p.fragment().is_none() => {
            Ok(Some(u.to_string()))
        }
        _ => Err(MetadataError::Metadata(format!(
            "{k}: an https URL without a fragment"
        ))),
    }
}

/// Redirect URIs as registration admits them (RFC 6749 §3.1.2, RFC 8252 §7, RFC 9700 §2.1):
/// absolute, no fragment, no wildcard; https, or http on a loopback IP literal (RFC 8252
/// §7.3; `localhost` is not: §8.3), or for a native client a private-use scheme in reverse
/// domain form (RFC 8252 §7.1).
fn uri_list(m: &Map<String, Value>, k: &str, native: bool) -> Result<Vec<String>, MetadataError> {
    let list = strings(m, k)
        .map_err(|e| MetadataError::RedirectUri(e.description().to_string()))?
        .unwrap_or_default();
    for u in &list {
        check_registered_redirect(u, native)
            .map_err(|why| MetadataError::RedirectUri(format!("{k}: `{u}` {why}")))?;
    }
    Ok(list)
}

pub fn check_registered_redirect(u: &str, native: bool) -> Result<(), &'static str> {
    if u.contains('*') {
        return Err("has a wildcard: redirect URIs are matched exactly");
    }
    let p = url::Url::parse(u).map_err(|_| "is not an absolute URI")?;
    if p.fragment().is_some() || u.contains('#') {
        return Err("has a fragment (RFC 6749 §3.1.2)");
    }
    if !p.username().is_empty() || p.password().is_some() {
        return Err("carries credentials");
    }
    match p.scheme() {
        "https" if p.host().is_some() => Ok(()),
        "http" => match p.host() {
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() => Ok(()),
            Some(url::Host::Ipv6(ip)) if ip.is_loopback() => Ok(()),
            _ => Err("is plain http to a host that is not a loopback address (RFC 8252 §7.3)"),
        },
        s if native && s.contains('.') => Ok(()),
        _ if native => Err("uses a private-use scheme not in reverse domain form (RFC 8252 §7.1)"),
        _ => Err("must be https (or http on a loopback address)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> (Vec<GrantType>, Vec<String>, Vec<String>) {
        (
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            vec![
                "client_secret_basic".into(),
                "none".into(),
                "private_key_jwt".into(),
            ],
            vec!["openid".into(), "profile".into()],
        )
    }

    fn read_json(v: Value) -> Result<Requested, MetadataError> {
        let (g, a, s) = rules();
        read(
            v.as_object().unwrap(),
            "c1",
            Rules {
                grant_types: &g,
                auth_methods: &a,
                scopes: &s,
                narrow_scopes: false,
                require_consent: true,
            },
        )
    }

    #[test]
    fn defaults_are_a_confidential_code_client_with_the_allowed_scopes() {
        let r = read_json(json!({"redirect_uris": ["https://app.example/cb"]})).unwrap();
        assert_eq!(r.auth_method, "client_secret_basic");
        assert_eq!(r.definition.grant_types, ["authorization_code"]);
        assert_eq!(r.definition.scopes, ["openid", "profile"]);
        assert_eq!(r.metadata["response_types"], json!(["code"]));
        assert!(r.definition.require_consent);
    }

    #[test]
    fn redirect_uris_with_fragments_wildcards_or_plain_http_are_refused() {
        for u in [
            "https://app.example/cb#x",
            "https://*.example/cb",
            "http://app.example/cb",
            "http://localhost/cb",
            "com.example.app:/cb",
        ] {
            let e = read_json(json!({"redirect_uris": [u]})).unwrap_err();
            assert!(matches!(e, MetadataError::RedirectUri(_)), "{u}: {e:?}");
        }
        assert!(read_json(json!({"redirect_uris": ["http://127.0.0.1:9000/callback"]})).is_ok());
        assert!(
            read_json(
                json!({"redirect_uris": ["com.example.app:/cb"], "application_type": "native"})
            )
            .is_ok()
        );
    }

    #[test]
    fn inconsistent_or_unknown_grants_and_both_key_sources_are_refused() {
        let cases = [
            json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["implicit"]}),
            json!({"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]}),
            json!({"grant_types": ["refresh_token"], "response_types": ["code"]}),
            json!({"redirect_uris": ["https://a.example/cb"], "jwks": {"keys": []}, "jwks_uri": "https://a.example/jwks"}),
            json!({"redirect_uris": ["https://a.example/cb"], "scope": "openid admin"}),
            json!({"redirect_uris": ["https://a.example/cb"], "logo_uri": "http://a.example/logo.png"}),
            json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "tls_client_auth"}),
            json!({"redirect_uris": 7}),
        ];
        for c in cases {
            assert!(read_json(c.clone()).is_err(), "{c}");
        }
    }
}
