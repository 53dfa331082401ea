//! `tenants/<slug>.toml`: one tenant, a complete identity provider of its own.
//!
//! The file schema (`*File`) is strict; [`resolve`] checks it as a whole and turns it into the
//! runtime [`TenantSpec`] and [`ClientSpec`]s that are stored in the database and served.

use super::{ConfigError, KeyPath, from_toml_error, locate};
use crate::keys::Alg;
use crate::secrets::SecretHash;
use crate::validation::dn::{self, DistinguishedName};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

/// Replaced by `server.public_base_url` in tenant and provider files.
pub const PUBLIC_BASE_URL: &str = "${public_base_url}";

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
    #[serde(default)]
    users: Vec<UserFile>,
    #[serde(default)]
    session: SessionFile,
    #[serde(default)]
    login: LoginFile,
    #[serde(default)]
    branding: BrandingFile,
    #[serde(default)]
    par: ParFile,
    #[serde(default)]
    mtls: MtlsFile,
    #[serde(default)]
    dpop: DpopFile,
    /// Upstream providers from `providers/<id>.toml` this tenant offers.
    #[serde(default)]
    providers: Vec<String>,
    /// File providers (of `providers`) whose users may be linked to an existing local account
    /// of this tenant with the same verified email: an operator's decision, per tenant.
    #[serde(default)]
    link_by_verified_email: Vec<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct DpopFile {
    /// RFC 9449 §8: proofs must carry a server-provided nonce.
    require_nonce: bool,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct MtlsFile {
    /// PEM files of the CAs that tls_client_auth certificates must chain to (RFC 8705 §2.1).
    trust_anchors: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SessionFile {
    idle_timeout: i64,
    absolute_lifetime: i64,
    cookie_name: String,
}

impl Default for SessionFile {
    fn default() -> Self {
        Self {
            idle_timeout: 8 * 3600,
            absolute_lifetime: 24 * 3600,
            cookie_name: "portcullis.session".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LoginFile {
    max_failures_per_user: i64,
    max_failures_per_address: i64,
    failure_window: i64,
    lockout: i64,
    max_code_failures_per_interaction: i64,
}

impl Default for LoginFile {
    fn default() -> Self {
        Self {
            max_failures_per_user: 5,
            max_failures_per_address: 50,
            failure_window: 900,
            lockout: 300,
            max_code_failures_per_interaction: 5,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct BrandingFile {
    logo_url: Option<String>,
    primary_color: Option<String>,
    background_color: Option<String>,
    text_color: Option<String>,
    templates: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ParFile {
    required: bool,
    lifetime: i64,
}

impl Default for ParFile {
    fn default() -> Self {
        Self {
            required: false,
            lifetime: 60,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFile {
    username: String,
    subject: Option<String>,
    password_hash: String,
    totp_secret: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    claims: serde_json::Map<String, serde_json::Value>,
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
    authorization_code_lifetime: i64,
    id_token_lifetime: i64,
    refresh_token_absolute_lifetime: i64,
    refresh_token_sliding_lifetime: i64,
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
            // RFC 6749 §4.1.2 recommends at most ten minutes; a minute is plenty for a redirect.
            authorization_code_lifetime: 60,
            id_token_lifetime: 300,
            refresh_token_absolute_lifetime: 30 * 86_400,
            refresh_token_sliding_lifetime: 15 * 86_400,
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
    /// Secrets with which the API authenticates at the introspection endpoint.
    #[serde(default)]
    secrets: Vec<SecretFile>,
    /// Public keys with which the API signs private_key_jwt assertions there instead.
    jwks: Option<serde_json::Value>,
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
    #[serde(default)]
    public: bool,
    application_type: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    #[serde(default = "yes")]
    require_pkce: bool,
    #[serde(default)]
    allow_plain_pkce: bool,
    #[serde(default)]
    require_consent: bool,
    #[serde(default = "yes")]
    allow_remember_consent: bool,
    consent_lifetime: Option<i64>,
    #[serde(default)]
    require_par: bool,
    id_token_signed_response_alg: Option<String>,
    #[serde(default)]
    always_include_user_claims_in_id_token: bool,
    #[serde(default)]
    refresh_token_reuse: bool,
    frontchannel_logout_uri: Option<String>,
    backchannel_logout_uri: Option<String>,
    client_uri: Option<String>,
    /// Public keys for signed request objects (RFC 9101), as a JWK Set.
    jwks: Option<serde_json::Value>,
    jwks_uri: Option<String>,
    #[serde(default)]
    require_signed_request_object: bool,
    /// A JWK Set file (e.g. written by `portcullis dev-certs`), read when the tenant loads.
    jwks_file: Option<String>,
    /// RFC 8705 §2.1.2: the one subject attribute a tls_client_auth certificate must carry.
    tls_client_auth_subject_dn: Option<String>,
    tls_client_auth_san_dns: Option<String>,
    tls_client_auth_san_uri: Option<String>,
    tls_client_auth_san_ip: Option<String>,
    tls_client_auth_san_email: Option<String>,
    /// CAs for this client's tls_client_auth certificates, instead of the tenant's.
    #[serde(default)]
    tls_client_auth_trust_anchors: Vec<String>,
    /// RFC 8705 §3.4: bind access tokens to the client certificate presented, whatever the
    /// authentication method.
    #[serde(default)]
    tls_client_certificate_bound_access_tokens: bool,
    /// RFC 9449: every token request must carry a DPoP proof; tokens are always key-bound.
    #[serde(default)]
    require_dpop: bool,
    /// Upstream providers this client's users may sign in with (IdentityServer's
    /// IdentityProviderRestrictions); empty: every provider the tenant offers.
    #[serde(default)]
    identity_providers: Vec<String>,
    /// Whether the local username/password form is offered to this client's users.
    #[serde(default = "yes")]
    enable_local_login: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretFile {
    /// `sha256:…` from `portcullis clients hash-secret`.
    hash: Option<String>,
    /// `sealed:…` from `portcullis clients seal-secret`: the secret encrypted under the master
    /// key, for client_secret_jwt (an HMAC key must be known, not just its hash).
    sealed: Option<String>,
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
    #[serde(default)]
    pub users: Vec<UserSpec>,
    #[serde(default)]
    pub session: SessionPolicy,
    #[serde(default)]
    pub login: LoginPolicy,
    pub branding: crate::ui::Branding,
    #[serde(default)]
    pub par: ParPolicy,
    /// Trust anchor PEM files for tls_client_auth, resolved against the base directory.
    #[serde(default)]
    pub mtls_trust_anchors: Vec<std::path::PathBuf>,
    /// RFC 9449 §8: DPoP proofs must carry a server nonce.
    #[serde(default)]
    pub dpop_require_nonce: bool,
    /// File providers (`providers/<id>.toml`) this tenant offers.
    #[serde(default)]
    pub providers: Vec<String>,
    /// File providers whose verified emails link to existing local accounts.
    #[serde(default)]
    pub link_by_verified_email: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct SessionPolicy {
    pub idle_timeout: i64,
    pub absolute_lifetime: i64,
    pub cookie_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct LoginPolicy {
    pub max_failures_per_user: i64,
    pub max_failures_per_address: i64,
    pub failure_window: i64,
    pub lockout: i64,
    /// Wrong one-time codes after which a sign-in is abandoned (the user starts again).
    pub max_code_failures_per_interaction: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ParPolicy {
    pub required: bool,
    pub lifetime: i64,
}

/// A local user declared in the tenant file (demo users; real deployments add users to the
/// database).
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct UserSpec {
    pub subject: String,
    pub username: String,
    /// argon2id in PHC string format.
    pub password_hash: String,
    /// RFC 6238 shared secret, base32.
    pub totp_secret: Option<String>,
    pub enabled: bool,
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for UserSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSpec")
            .field("subject", &self.subject)
            .field("username", &self.username)
            .field("totp", &self.totp_secret.is_some())
            .finish_non_exhaustive()
    }
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
    #[serde(default)]
    pub authorization_code_lifetime: i64,
    #[serde(default)]
    pub id_token_lifetime: i64,
    #[serde(default)]
    pub refresh_token_absolute_lifetime: i64,
    #[serde(default)]
    pub refresh_token_sliding_lifetime: i64,
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
    /// Hashed secrets of the API (RFC 7662 §2.1: the introspection caller authenticates).
    #[serde(default)]
    pub secrets: Vec<StoredSecret>,
    /// The API's public keys for private_key_jwt at the introspection endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
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
    AuthorizationCode,
    RefreshToken,
}

impl GrantType {
    pub const ALL: &'static [GrantType] = &[
        GrantType::AuthorizationCode,
        GrantType::ClientCredentials,
        GrantType::RefreshToken,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|g| g.as_str() == s)
    }
}

/// RFC 7591 §2 `token_endpoint_auth_method` values this server implements.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// OIDC Core §9: a JWT with an HMAC under the client secret (a sealed secret).
    ClientSecretJwt,
    /// RFC 7523 §2.2 / OIDC Core §9: a JWT signed with one of the client's registered keys.
    PrivateKeyJwt,
    /// RFC 8705 §2.1: a certificate from a trusted CA with the registered subject.
    TlsClientAuth,
    /// RFC 8705 §2.2: a registered self-signed certificate.
    SelfSignedTlsClientAuth,
    /// A public client (RFC 6749 §2.1): identified by `client_id`, not authenticated.
    None,
}

impl AuthMethod {
    pub const ALL: &'static [AuthMethod] = &[
        AuthMethod::ClientSecretBasic,
        AuthMethod::ClientSecretPost,
        AuthMethod::ClientSecretJwt,
        AuthMethod::PrivateKeyJwt,
        AuthMethod::TlsClientAuth,
        AuthMethod::SelfSignedTlsClientAuth,
        AuthMethod::None,
    ];
    /// What a client holding a secret may use when its file says nothing.
    pub const SECRET: &'static [AuthMethod] =
        &[AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
            Self::None => "none",
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
    #[serde(default)]
    pub interactive: InteractiveSpec,
}

/// What a client that signs users in (authorization code flow) is registered with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct InteractiveSpec {
    pub public: bool,
    /// RFC 8252: native clients may use any port on a loopback redirect URI.
    pub native: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub require_pkce: bool,
    pub allow_plain_pkce: bool,
    pub require_consent: bool,
    pub allow_remember_consent: bool,
    pub consent_lifetime: Option<i64>,
    pub require_par: bool,
    pub id_token_alg: Option<Alg>,
    pub always_include_user_claims_in_id_token: bool,
    pub refresh_token_reuse: bool,
    pub frontchannel_logout_uri: Option<String>,
    pub backchannel_logout_uri: Option<String>,
    pub client_uri: Option<String>,
    pub jwks: Option<serde_json::Value>,
    pub jwks_uri: Option<String>,
    pub require_signed_request_object: bool,
    #[serde(default)]
    pub tls_subject: Option<TlsSubject>,
    /// The client's own trust anchors for tls_client_auth (PEM files), if any.
    #[serde(default)]
    pub tls_trust_anchors: Vec<std::path::PathBuf>,
    #[serde(default)]
    pub certificate_bound_tokens: bool,
    #[serde(default)]
    pub require_dpop: bool,
    /// Upstream providers allowed for this client; empty: all the tenant offers.
    #[serde(default)]
    pub identity_providers: Vec<String>,
    /// The local sign-in form is not offered (users must come through a provider).
    #[serde(default)]
    pub disable_local_login: bool,
}

/// RFC 8705 §2.1.2: how a tls_client_auth client's certificate is recognised (exactly one).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum TlsSubject {
    /// Parsed from the RFC 4514 string when the tenant loads; compared as RDN sequences.
    SubjectDn(DistinguishedName),
    /// A DNS name, lower case, compared label by label without regard to case.
    SanDns(String),
    /// Compared exactly.
    SanUri(String),
    /// Compared as bytes.
    SanIp(std::net::IpAddr),
    /// Local part exactly, domain without regard to case.
    SanEmail(String),
}

/// Prefix of a sealed client secret in a tenant file.
pub const SEALED_PREFIX: &str = "sealed:";

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredSecret {
    /// `sha256:…`, or empty for a sealed secret.
    pub hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
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
    /// The files a tenant file may name (trust anchors, JWK Sets, templates, certificates).
    pub files: &'a super::FileRoots,
}

const RESERVED_SLUGS: &[&str] = &["health", "metrics", ".well-known", "static", "admin"];

/// Parses and checks one tenant file, reporting every problem found (not just the first).
pub fn resolve(
    path: &Path,
    text: &str,
    defaults: &TenantDefaults<'_>,
) -> Result<(TenantSpec, Vec<ClientSpec>), Vec<ConfigError>> {
    // `${public_base_url}` names URLs of this deployment (the demo brokers between its own
    // tenants on any host and port).
    let text = &text.replace(PUBLIC_BASE_URL, defaults.public_base_url);
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
        if let Some(jwks) = &r.jwks
            && (jwks.get("keys").and_then(|k| k.as_array()).is_none()
                || jwks.to_string().contains("\"d\""))
        {
            bad(
                rk.key("jwks"),
                "a public JWK Set (an object with `keys`, no private members)".into(),
            );
        }
        for (j, sec) in r.secrets.iter().enumerate() {
            match &sec.hash {
                Some(h) => {
                    if let Err(m) = SecretHash::parse(h) {
                        bad(rk.key("secrets").index(j).key("hash"), m);
                    }
                }
                None => bad(
                    rk.key("secrets").index(j).key("hash"),
                    "an API's secrets are hashes".into(),
                ),
            }
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
                    format!(
                        "grant type `{g}` is not supported (supported: authorization_code, client_credentials, refresh_token)"
                    ),
                ),
            }
        }
        if c.public && grant_types.contains(&GrantType::ClientCredentials) {
            // RFC 6749 §4.4: only confidential clients may use client_credentials.
            bad(
                ck.key("grant_types"),
                "a public client cannot use client_credentials".into(),
            );
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
            match (&s.hash, &s.sealed) {
                (Some(hash), None) => match SecretHash::parse(hash) {
                    Ok(h) => secrets.push(StoredSecret {
                        hash: h.to_stored(),
                        sealed: None,
                        description: s.description.clone(),
                        expires_at: s.expires_at,
                    }),
                    Err(m) => bad(ck.key("secrets").index(j).key("hash"), m),
                },
                (None, Some(sealed)) if sealed.starts_with(SEALED_PREFIX) => {
                    secrets.push(StoredSecret {
                        hash: String::new(),
                        sealed: Some(sealed.clone()),
                        description: s.description.clone(),
                        expires_at: s.expires_at,
                    });
                }
                (None, Some(_)) => bad(
                    ck.key("secrets").index(j).key("sealed"),
                    format!(
                        "a sealed secret starts with `{SEALED_PREFIX}` (use `portcullis clients seal-secret`)"
                    ),
                ),
                _ => bad(
                    ck.key("secrets").index(j),
                    "give exactly one of hash and sealed".into(),
                ),
            }
        }
        let auth_methods = match &c.token_endpoint_auth_methods {
            None if c.public => vec![AuthMethod::None],
            None => AuthMethod::SECRET.to_vec(),
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(j, m)| {
                    AuthMethod::parse(m).or_else(|| {
                        bad(
                            ck.key("token_endpoint_auth_methods").index(j),
                            format!(
                                "`{m}` is not supported (client_secret_basic, client_secret_post, client_secret_jwt, private_key_jwt, tls_client_auth, self_signed_tls_client_auth, none)"
                            ),
                        );
                        None
                    })
                })
                .collect(),
        };
        if c.public {
            if !secrets.is_empty() || auth_methods != [AuthMethod::None] {
                bad(
                    ck.key("public"),
                    "a public client has no secrets and authenticates with `none` only".into(),
                );
            }
        } else if secrets.is_empty()
            && auth_methods.iter().any(|m| {
                matches!(
                    m,
                    AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
                )
            })
        {
            bad(
                ck.key("secrets"),
                "this client has no way to authenticate: add a secret, list key or certificate methods in token_endpoint_auth_methods, or set public = true"
                    .into(),
            );
        } else if auth_methods.contains(&AuthMethod::None) {
            bad(
                ck.key("token_endpoint_auth_methods"),
                "`none` is for public clients only".into(),
            );
        }
        let interactive = resolve_interactive(
            c,
            &ck,
            defaults.files,
            &grant_types,
            &signing_algorithms,
            &mut bad,
        );
        // Each key-based or certificate-based method needs what it is checked against.
        let i = &interactive;
        if auth_methods.contains(&AuthMethod::PrivateKeyJwt)
            && i.jwks.is_none()
            && i.jwks_uri.is_none()
            && c.jwks_file.is_none()
        {
            bad(
                ck.key("token_endpoint_auth_methods"),
                "private_key_jwt needs jwks, jwks_file or jwks_uri".into(),
            );
        }
        if auth_methods.contains(&AuthMethod::ClientSecretJwt)
            && !secrets.iter().any(|s| s.sealed.is_some())
        {
            bad(ck.key("token_endpoint_auth_methods"), "client_secret_jwt needs a sealed secret (`portcullis clients seal-secret`): only hashes of the other secrets are kept".into());
        }
        if auth_methods.contains(&AuthMethod::TlsClientAuth) && i.tls_subject.is_none() {
            bad(ck.key("token_endpoint_auth_methods"), "tls_client_auth needs a tls_client_auth_subject_dn or tls_client_auth_san_* setting".into());
        }
        if auth_methods.contains(&AuthMethod::TlsClientAuth) && file.mtls.trust_anchors.is_empty() {
            bad(
                ck.key("token_endpoint_auth_methods"),
                "tls_client_auth needs [mtls] trust_anchors in the tenant".into(),
            );
        }
        if auth_methods.contains(&AuthMethod::SelfSignedTlsClientAuth)
            && i.jwks.is_none()
            && i.jwks_uri.is_none()
            && c.jwks_file.is_none()
        {
            bad(ck.key("token_endpoint_auth_methods"), "self_signed_tls_client_auth needs the certificate as x5c in jwks, jwks_file or jwks_uri".into());
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
            interactive,
        });
    }

    let users = resolve_users(&file.users, &root, &mut bad);
    let session = &file.session;
    if !(60..=30 * 86_400).contains(&session.idle_timeout)
        || !(60..=365 * 86_400).contains(&session.absolute_lifetime)
    {
        bad(
            root.key("session"),
            "idle_timeout is 60 s to 30 days, absolute_lifetime 60 s to a year".into(),
        );
    }
    if session.cookie_name.is_empty()
        || !session
            .cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        bad(
            root.key("session").key("cookie_name"),
            "a cookie name is letters, digits, '-', '_' and '.'".into(),
        );
    }
    let login = &file.login;
    if login.max_failures_per_user < 1
        || login.max_failures_per_address < 1
        || login.failure_window < 1
        || login.lockout < 1
        || login.max_code_failures_per_interaction < 1
    {
        bad(
            root.key("login"),
            "every login limit must be positive".into(),
        );
    }
    if !(1..=600).contains(&t.authorization_code_lifetime) {
        bad(
            tk.key("authorization_code_lifetime"),
            "must be between 1 and 600 seconds (RFC 6749 §4.1.2)".into(),
        );
    }
    if !(1..=86_400).contains(&t.id_token_lifetime) {
        bad(
            tk.key("id_token_lifetime"),
            "must be between 1 and 86400 seconds".into(),
        );
    }
    if t.refresh_token_sliding_lifetime < 1
        || t.refresh_token_absolute_lifetime < t.refresh_token_sliding_lifetime
    {
        bad(
            tk.key("refresh_token_absolute_lifetime"),
            "refresh token lifetimes must be positive, the absolute one at least the sliding one"
                .into(),
        );
    }
    if !(1..=600).contains(&file.par.lifetime) {
        bad(
            root.key("par").key("lifetime"),
            "must be between 1 and 600 seconds (RFC 9126 §2.2)".into(),
        );
    }
    let display_name = file
        .display_name
        .clone()
        .unwrap_or_else(|| file.slug.clone());
    let mut branding = crate::ui::Branding::new(display_name.clone());
    let bk = root.key("branding");
    for (key, value, slot) in [
        (
            "primary_color",
            &file.branding.primary_color,
            &mut branding.primary_color,
        ),
        (
            "background_color",
            &file.branding.background_color,
            &mut branding.background_color,
        ),
        (
            "text_color",
            &file.branding.text_color,
            &mut branding.text_color,
        ),
    ] {
        if let Some(v) = value {
            if crate::ui::is_css_color(v) {
                *slot = v.clone();
            } else {
                bad(bk.key(key), format!("`{v}` is not a CSS colour"));
            }
        }
    }
    if let Some(logo) = &file.branding.logo_url {
        if logo.starts_with("https://") || logo.starts_with("data:image/") {
            branding.logo_url = Some(logo.clone());
        } else {
            bad(
                bk.key("logo_url"),
                "a logo is an https: or data:image/ URL".into(),
            );
        }
    }
    if let Some(dir) = &file.branding.templates {
        match defaults.files.resolve(dir) {
            Ok(path) => {
                branding.templates_dir = Some(path);
                // The override templates are loaded (and each page rendered once) now, so a
                // broken template rejects the file instead of breaking the login page later.
                if let Err(m) = crate::ui::Pages::new(&branding) {
                    bad(bk.key("templates"), m);
                }
            }
            Err(m) => bad(bk.key("templates"), m),
        }
    }
    let mtls_trust_anchors = resolve_files(
        defaults.files,
        &root.key("mtls").key("trust_anchors"),
        &file.mtls.trust_anchors,
        &mut bad,
    );
    let tls = file.tls.map(|t| {
        let tk = root.key("tls");
        let mut path = |key: &str, p: String| match defaults.files.resolve(&p) {
            Ok(full) => full.display().to_string(),
            Err(m) => {
                bad(tk.key(key), m);
                p
            }
        };
        TenantTls {
            cert: path("cert", t.cert),
            key: path("key", t.key),
        }
    });
    for id in &file.link_by_verified_email {
        if !file.providers.contains(id) {
            bad(
                root.key("link_by_verified_email"),
                format!(
                    "`{id}` is not one of this tenant's file providers (`providers`); runtime providers never link by email"
                ),
            );
        }
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
        display_name,
        slug: file.slug,
        issuer,
        mtls_base_url,
        hosts,
        tls,
        tokens: TokenPolicy {
            access_token_lifetime: t.access_token_lifetime,
            access_token_algorithm,
            id_token_algorithm,
            signing_algorithms,
            access_token_format,
            authorization_code_lifetime: t.authorization_code_lifetime,
            id_token_lifetime: t.id_token_lifetime,
            refresh_token_absolute_lifetime: t.refresh_token_absolute_lifetime,
            refresh_token_sliding_lifetime: t.refresh_token_sliding_lifetime,
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
                jwks: r.jwks,
                secrets: r
                    .secrets
                    .into_iter()
                    .filter_map(|sec| {
                        SecretHash::parse(sec.hash.as_deref()?)
                            .ok()
                            .map(|h| StoredSecret {
                                hash: h.to_stored(),
                                sealed: None,
                                description: sec.description,
                                expires_at: sec.expires_at,
                            })
                    })
                    .collect(),
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
        users,
        session: SessionPolicy {
            idle_timeout: file.session.idle_timeout,
            absolute_lifetime: file.session.absolute_lifetime,
            cookie_name: file.session.cookie_name,
        },
        login: LoginPolicy {
            max_failures_per_user: file.login.max_failures_per_user,
            max_failures_per_address: file.login.max_failures_per_address,
            failure_window: file.login.failure_window,
            lockout: file.login.lockout,
            max_code_failures_per_interaction: file.login.max_code_failures_per_interaction,
        },
        branding,
        par: ParPolicy {
            required: file.par.required,
            lifetime: file.par.lifetime,
        },
        mtls_trust_anchors,
        dpop_require_nonce: file.dpop.require_nonce,
        providers: file.providers,
        link_by_verified_email: file.link_by_verified_email,
    };
    Ok((spec, clients))
}

/// The files `paths` name, each confined to where definitions may read (a problem each).
fn resolve_files(
    files: &super::FileRoots,
    key: &KeyPath,
    paths: &[String],
    bad: &mut impl FnMut(KeyPath, String),
) -> Vec<std::path::PathBuf> {
    paths
        .iter()
        .filter_map(|p| files.resolve(p).map_err(|m| bad(key.clone(), m)).ok())
        .collect()
}

fn resolve_interactive(
    c: &ClientFile,
    ck: &KeyPath,
    files: &super::FileRoots,
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
        tls_subject: subjects.into_iter().next(),
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
    }
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

fn resolve_users(
    users: &[UserFile],
    root: &KeyPath,
    bad: &mut impl FnMut(KeyPath, String),
) -> Vec<UserSpec> {
    let mut out: Vec<UserSpec> = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let uk = root.key("users").index(i);
        let subject = u.subject.clone().unwrap_or_else(|| u.username.clone());
        if u.username.is_empty()
            || u.username.len() > 200
            || u.username.chars().any(char::is_control)
        {
            bad(
                uk.key("username"),
                "a username is 1-200 printable characters".into(),
            );
        }
        if subject.is_empty() || subject.len() > 255 {
            bad(
                uk.key("subject"),
                "a subject is 1-255 characters (OIDC Core §2)".into(),
            );
        }
        if out
            .iter()
            .any(|o| o.username == u.username || o.subject == subject)
        {
            bad(
                uk.key("username"),
                format!("user `{}` is defined twice", u.username),
            );
        }
        if let Err(m) = crate::secrets::check_password_hash(&u.password_hash) {
            bad(uk.key("password_hash"), m);
        }
        if let Some(secret) = &u.totp_secret
            && let Err(m) = crate::secrets::check_totp_secret(secret)
        {
            bad(uk.key("totp_secret"), m);
        }
        for reserved in [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "sid",
            "amr",
            "acr",
            "idp",
        ] {
            if u.claims.contains_key(reserved) {
                bad(
                    uk.key("claims").key(reserved),
                    "this claim is set by the server".into(),
                );
            }
        }
        out.push(UserSpec {
            subject,
            username: u.username.clone(),
            password_hash: u.password_hash.clone(),
            totp_secret: u.totp_secret.clone(),
            enabled: u.enabled,
            claims: u.claims.clone(),
        });
    }
    out
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

    static ROOTS: std::sync::LazyLock<crate::config::FileRoots> =
        std::sync::LazyLock::new(|| crate::config::FileRoots::under(Path::new(".")));

    fn defaults() -> TenantDefaults<'static> {
        TenantDefaults {
            public_base_url: "https://localhost:8443",
            mtls_base_url: "https://localhost:8444",
            files: &ROOTS,
        }
    }

    fn resolve_str(
        name: &str,
        text: &str,
    ) -> Result<(TenantSpec, Vec<ClientSpec>), Vec<ConfigError>> {
        resolve(Path::new(name), text, &defaults())
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
            let errors =
                resolve_str("tenants/acme.toml", &format!("{base}{setting}\n")).unwrap_err();
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
