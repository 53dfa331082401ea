//! `tenants/<slug>.toml`: one tenant, a complete identity provider of its own.
//!
//! The file schema (`*File`) is strict; [`resolve`] checks it as a whole and turns it into the
//! runtime [`TenantSpec`] and [`ClientSpec`]s that are stored in the database and served.

use super::{ConfigError, KeyPath, from_toml_error, locate};
use crate::keys::Alg;
use crate::secrets::SecretHash;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

// ---------------------------------------------------------------------------------------------
// File schema

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantFile {
    slug: String,
    display_name: Option<String>,
    issuer: Option<String>,
    #[serde(default)]
    hosts: Vec<String>,
    tls: Option<TlsFile>,
    #[serde(default)]
    tokens: TokensFile,
    #[serde(default)]
    api_scopes: Vec<ApiScopeFile>,
    #[serde(default)]
    api_resources: Vec<ApiResourceFile>,
    #[serde(default)]
    identity_resources: Vec<IdentityResourceFile>,
    #[serde(default)]
    clients: Vec<ClientFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert: String,
    key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TokensFile {
    access_token_lifetime: i64,
    access_token_algorithm: String,
    id_token_algorithm: String,
    signing_algorithms: Vec<String>,
    access_token_format: String,
    mtls_base_url: Option<String>,
}

impl Default for TokensFile {
    fn default() -> Self {
        Self {
            access_token_lifetime: 3600,
            access_token_algorithm: "ES256".into(),
            // OIDC Core §15.1: RS256 is the algorithm every relying party can verify.
            id_token_algorithm: "RS256".into(),
            signing_algorithms: vec!["RS256".into(), "ES256".into()],
            access_token_format: "jwt".into(),
            mtls_base_url: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiScopeFile {
    name: String,
    display_name: Option<String>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiResourceFile {
    name: String,
    display_name: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    require_resource_indicator: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityResourceFile {
    name: String,
    display_name: Option<String>,
    #[serde(default)]
    claims: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    client_id: String,
    client_name: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    secrets: Vec<SecretFile>,
    #[serde(default)]
    grant_types: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    token_endpoint_auth_methods: Option<Vec<String>>,
    access_token_format: Option<String>,
    access_token_lifetime: Option<i64>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretFile {
    hash: String,
    description: Option<String>,
    /// Unix time after which the secret no longer authenticates.
    expires_at: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Runtime types (stored as JSON in the database)

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TenantSpec {
    pub slug: String,
    pub display_name: String,
    pub issuer: String,
    pub mtls_base_url: String,
    pub hosts: Vec<String>,
    pub tls: Option<TenantTls>,
    pub tokens: TokenPolicy,
    pub api_scopes: Vec<ApiScope>,
    pub api_resources: Vec<ApiResource>,
    pub identity_resources: Vec<IdentityResource>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TenantTls {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenPolicy {
    pub access_token_lifetime: i64,
    pub access_token_algorithm: Alg,
    pub id_token_algorithm: Alg,
    pub signing_algorithms: Vec<Alg>,
    pub access_token_format: TokenFormat,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TokenFormat {
    Jwt,
    Reference,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiScope {
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiResource {
    /// The audience (`aud`) value, e.g. `https://api.acme.test`.
    pub name: String,
    pub display_name: Option<String>,
    pub scopes: Vec<String>,
    pub require_resource_indicator: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IdentityResource {
    pub name: String,
    pub display_name: Option<String>,
    pub claims: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    ClientCredentials,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "client_credentials" => Some(Self::ClientCredentials),
            _ => None,
        }
    }
}

/// RFC 7591 §2 `token_endpoint_auth_method` values this server implements.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
}

impl AuthMethod {
    pub const ALL: &'static [AuthMethod] =
        &[AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|m| m.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClientSpec {
    pub client_id: String,
    pub client_name: Option<String>,
    pub enabled: bool,
    pub secrets: Vec<StoredSecret>,
    pub grant_types: Vec<GrantType>,
    pub scopes: Vec<String>,
    pub auth_methods: Vec<AuthMethod>,
    pub access_token_format: Option<TokenFormat>,
    pub access_token_lifetime: Option<i64>,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredSecret {
    pub hash: String,
    pub description: Option<String>,
    pub expires_at: Option<i64>,
}

impl std::fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSecret")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------------
// Resolution

/// Options from the server configuration that shape a tenant's defaults.
pub struct TenantDefaults<'a> {
    pub public_base_url: &'a str,
    pub mtls_base_url: &'a str,
}

const RESERVED_SLUGS: &[&str] = &["health", "metrics", ".well-known", "static", "admin"];

/// Parses and checks one tenant file, reporting every problem found (not just the first).
pub fn resolve(
    path: &Path,
    text: &str,
    defaults: &TenantDefaults<'_>,
) -> Result<(TenantSpec, Vec<ClientSpec>), Vec<ConfigError>> {
    let file: TenantFile =
        toml::from_str(text).map_err(|e| vec![from_toml_error(path, text, &e)])?;
    let mut problems: Vec<(KeyPath, String)> = Vec::new();
    let root = KeyPath::root();
    let mut bad = |k: KeyPath, m: String| problems.push((k, m));

    // Slug: the file stem, a path segment and a database key.
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if file.slug != stem {
        bad(
            root.key("slug"),
            format!("slug `{}` must equal the file name `{stem}`", file.slug),
        );
    }
    if !valid_slug(&file.slug) || RESERVED_SLUGS.contains(&file.slug.as_str()) {
        bad(root.key("slug"), "a slug is 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit, and not reserved".into());
    }

    let issuer = file
        .issuer
        .clone()
        .unwrap_or_else(|| format!("{}/{}", defaults.public_base_url, file.slug));
    // OIDC Discovery §3 / RFC 8414 §2: https, no query or fragment.
    if !issuer.starts_with("https://") || issuer.contains(['?', '#']) || issuer.ends_with('/') {
        bad(
            root.key("issuer"),
            "the issuer must be an https URL without query, fragment or trailing slash".into(),
        );
    }
    let mtls_base_url = file
        .tokens
        .mtls_base_url
        .clone()
        .unwrap_or_else(|| format!("{}/{}", defaults.mtls_base_url, file.slug));

    let mut hosts = Vec::new();
    for (i, h) in file.hosts.iter().enumerate() {
        let h = h.to_ascii_lowercase();
        if h.is_empty()
            || !h
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            bad(
                root.key("hosts").index(i),
                format!("`{h}` is not a host name"),
            );
        }
        hosts.push(h);
    }

    let t = &file.tokens;
    let tk = root.key("tokens");
    let mut signing_algorithms = Vec::new();
    for (i, a) in t.signing_algorithms.iter().enumerate() {
        match Alg::parse(a) {
            Some(alg) if !signing_algorithms.contains(&alg) => signing_algorithms.push(alg),
            Some(_) => bad(
                tk.key("signing_algorithms").index(i),
                format!("`{a}` is listed twice"),
            ),
            None => bad(
                tk.key("signing_algorithms").index(i),
                format!("`{a}` is not one of RS256, PS256, ES256, EdDSA"),
            ),
        }
    }
    if !signing_algorithms.contains(&Alg::RS256) {
        bad(
            tk.key("signing_algorithms"),
            "RS256 is required (OpenID Connect Core §15.1)".into(),
        );
    }
    let mut pick_alg = |key: &str, v: &str| -> Alg {
        match Alg::parse(v) {
            Some(a) if signing_algorithms.contains(&a) => a,
            Some(_) => {
                bad(
                    tk.key(key),
                    format!("`{v}` is not in tokens.signing_algorithms"),
                );
                Alg::RS256
            }
            None => {
                bad(
                    tk.key(key),
                    format!("`{v}` is not one of RS256, PS256, ES256, EdDSA"),
                );
                Alg::RS256
            }
        }
    };
    let access_token_algorithm = pick_alg("access_token_algorithm", &t.access_token_algorithm);
    let id_token_algorithm = pick_alg("id_token_algorithm", &t.id_token_algorithm);
    let format_of = |v: &str| match v {
        "jwt" => Some(TokenFormat::Jwt),
        "reference" => Some(TokenFormat::Reference),
        _ => None,
    };
    let access_token_format = format_of(&t.access_token_format).unwrap_or_else(|| {
        bad(
            tk.key("access_token_format"),
            "must be `jwt` or `reference`".into(),
        );
        TokenFormat::Jwt
    });
    if !(1..=86_400).contains(&t.access_token_lifetime) {
        bad(
            tk.key("access_token_lifetime"),
            "must be between 1 and 86400 seconds".into(),
        );
    }

    // Scopes: one namespace for API scopes and identity resources.
    let mut scope_names: HashSet<&str> = HashSet::new();
    for (i, s) in file.api_scopes.iter().enumerate() {
        if !valid_scope_token(&s.name) {
            bad(
                root.key("api_scopes").index(i).key("name"),
                format!("`{}` is not a valid scope token (RFC 6749 §3.3)", s.name),
            );
        }
        if !scope_names.insert(&s.name) {
            bad(
                root.key("api_scopes").index(i).key("name"),
                format!("scope `{}` is defined twice", s.name),
            );
        }
    }
    let mut identity_scopes: HashSet<&str> = HashSet::new();
    for (i, r) in file.identity_resources.iter().enumerate() {
        if !valid_scope_token(&r.name) {
            bad(
                root.key("identity_resources").index(i).key("name"),
                format!("`{}` is not a valid scope token", r.name),
            );
        }
        if !scope_names.insert(&r.name) {
            bad(
                root.key("identity_resources").index(i).key("name"),
                format!("scope `{}` is defined twice", r.name),
            );
        }
        identity_scopes.insert(&r.name);
    }
    let mut resource_names = HashSet::new();
    for (i, r) in file.api_resources.iter().enumerate() {
        let rk = root.key("api_resources").index(i);
        if !resource_names.insert(&r.name) {
            bad(
                rk.key("name"),
                format!("API resource `{}` is defined twice", r.name),
            );
        }
        // RFC 8707 §2: a resource indicator is an absolute URI without a fragment.
        if !r.name.contains(':') || r.name.contains('#') {
            bad(
                rk.key("name"),
                format!(
                    "`{}` must be an absolute URI without fragment (RFC 8707 §2)",
                    r.name
                ),
            );
        }
        for (j, s) in r.scopes.iter().enumerate() {
            if !file.api_scopes.iter().any(|a| &a.name == s) {
                bad(
                    rk.key("scopes").index(j),
                    format!("scope `{s}` is not defined in api_scopes"),
                );
            }
        }
    }

    // Clients.
    let mut clients = Vec::new();
    let mut client_ids = HashSet::new();
    for (i, c) in file.clients.iter().enumerate() {
        let ck = root.key("clients").index(i);
        if !client_ids.insert(&c.client_id) {
            bad(
                ck.key("client_id"),
                format!("client `{}` is defined twice", c.client_id),
            );
        }
        // RFC 6749 Appendix A.1: client_id = *VSCHAR
        if c.client_id.is_empty()
            || c.client_id.len() > 200
            || !c.client_id.chars().all(|ch| (' '..='~').contains(&ch))
        {
            bad(
                ck.key("client_id"),
                "a client_id is 1-200 visible ASCII characters".into(),
            );
        }
        let mut grant_types = Vec::new();
        for (j, g) in c.grant_types.iter().enumerate() {
            match GrantType::parse(g) {
                Some(gt) => grant_types.push(gt),
                None => bad(
                    ck.key("grant_types").index(j),
                    format!("grant type `{g}` is not supported (supported: client_credentials)"),
                ),
            }
        }
        if c.grant_types.is_empty() {
            bad(
                ck.key("grant_types"),
                "a client needs at least one grant type".into(),
            );
        }
        for (j, s) in c.scopes.iter().enumerate() {
            if !scope_names.contains(s.as_str()) {
                bad(
                    ck.key("scopes").index(j),
                    format!("scope `{s}` is not defined in this tenant"),
                );
            } else if identity_scopes.contains(s.as_str())
                && grant_types == [GrantType::ClientCredentials]
            {
                bad(
                    ck.key("scopes").index(j),
                    format!(
                        "identity scope `{s}` makes no sense for a client_credentials-only client"
                    ),
                );
            }
        }
        let mut secrets = Vec::new();
        for (j, s) in c.secrets.iter().enumerate() {
            match SecretHash::parse(&s.hash) {
                Ok(h) => secrets.push(StoredSecret {
                    hash: h.to_stored(),
                    description: s.description.clone(),
                    expires_at: s.expires_at,
                }),
                Err(m) => bad(ck.key("secrets").index(j).key("hash"), m),
            }
        }
        let auth_methods = match &c.token_endpoint_auth_methods {
            None => AuthMethod::ALL.to_vec(),
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(j, m)| {
                    AuthMethod::parse(m).or_else(|| {
                        bad(
                            ck.key("token_endpoint_auth_methods").index(j),
                            format!(
                                "`{m}` is not supported (client_secret_basic, client_secret_post)"
                            ),
                        );
                        None
                    })
                })
                .collect(),
        };
        if secrets.is_empty() {
            bad(
                ck.key("secrets"),
                "this client has no way to authenticate: add a secret".into(),
            );
        }
        let access_token_format = c.access_token_format.as_deref().map(|v| {
            format_of(v).unwrap_or_else(|| {
                bad(
                    ck.key("access_token_format"),
                    "must be `jwt` or `reference`".into(),
                );
                TokenFormat::Jwt
            })
        });
        if let Some(l) = c.access_token_lifetime
            && !(1..=86_400).contains(&l)
        {
            bad(
                ck.key("access_token_lifetime"),
                "must be between 1 and 86400 seconds".into(),
            );
        }
        clients.push(ClientSpec {
            client_id: c.client_id.clone(),
            client_name: c.client_name.clone(),
            enabled: c.enabled,
            secrets,
            grant_types,
            scopes: c.scopes.clone(),
            auth_methods,
            access_token_format,
            access_token_lifetime: c.access_token_lifetime,
        });
    }

    if !problems.is_empty() {
        return Err(problems
            .into_iter()
            .map(|(key, message)| ConfigError {
                file: path.to_path_buf(),
                line: locate(text, &key),
                key: key.to_string(),
                message,
            })
            .collect());
    }
    let spec = TenantSpec {
        display_name: file
            .display_name
            .clone()
            .unwrap_or_else(|| file.slug.clone()),
        slug: file.slug,
        issuer,
        mtls_base_url,
        hosts,
        tls: file.tls.map(|t| TenantTls {
            cert: t.cert,
            key: t.key,
        }),
        tokens: TokenPolicy {
            access_token_lifetime: t.access_token_lifetime,
            access_token_algorithm,
            id_token_algorithm,
            signing_algorithms,
            access_token_format,
        },
        api_scopes: file
            .api_scopes
            .into_iter()
            .map(|s| ApiScope {
                name: s.name,
                display_name: s.display_name,
                description: s.description,
            })
            .collect(),
        api_resources: file
            .api_resources
            .into_iter()
            .map(|r| ApiResource {
                name: r.name,
                display_name: r.display_name,
                scopes: r.scopes,
                require_resource_indicator: r.require_resource_indicator,
            })
            .collect(),
        identity_resources: file
            .identity_resources
            .into_iter()
            .map(|r| IdentityResource {
                name: r.name,
                display_name: r.display_name,
                claims: r.claims,
            })
            .collect(),
    };
    Ok((spec, clients))
}

pub fn valid_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

/// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
pub fn valid_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: TenantDefaults<'static> = TenantDefaults {
        public_base_url: "https://localhost:8443",
        mtls_base_url: "https://localhost:8444",
    };

    fn resolve_str(
        name: &str,
        text: &str,
    ) -> Result<(TenantSpec, Vec<ClientSpec>), Vec<ConfigError>> {
        resolve(Path::new(name), text, &DEFAULTS)
    }

    #[test]
    fn the_demo_tenants_resolve() {
        for (name, text) in [
            ("tenants/acme.toml", include_str!("../../tenants/acme.toml")),
            (
                "tenants/globex.toml",
                include_str!("../../tenants/globex.toml"),
            ),
        ] {
            let (spec, clients) = resolve_str(name, text).unwrap();
            assert_eq!(spec.issuer, format!("https://localhost:8443/{}", spec.slug));
            assert!(!clients.is_empty());
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_line_and_key() {
        let text = "slug = \"acme\"\n\n[[api_scopes]]\nname = \"api.read\"\n\n[[clients]]\nclient_id = \"c\"\ngrant_types = [\"password\"]\nscopes = [\"api.read\", \"nope\"]\nsecrets = [{ hash = \"plain\" }]\n";
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
        let errors =
            resolve_str("tenants/acme.toml", "slug = \"acme\"\nisuer = \"x\"\n").unwrap_err();
        assert_eq!(errors[0].line, Some(2), "{errors:?}");
    }

    #[test]
    fn scope_tokens_follow_rfc_6749() {
        assert!(valid_scope_token("api.read"));
        assert!(!valid_scope_token("api read"));
        assert!(!valid_scope_token("a\"b"));
        assert!(!valid_scope_token(""));
    }
}
