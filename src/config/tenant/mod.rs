//! `tenants/<slug>.toml`: one tenant, a complete identity provider of its own.
//!
//! The file schema (`*File`, here) is strict; [`resolve`] checks it as a whole and turns it into
//! the runtime [`TenantSpec`] and [`ClientSpec`]s (`spec.rs`) that are stored in the database and
//! served. Each section's rules sit in their own module: `issuer` (slug, issuer, hosts), `tokens`,
//! `scopes`, `clients` (with `interactive`, the browser-facing client settings), `users`,
//! `policies` (session, login, PAR), `exchange` (trusted issuers, token exchange, workload
//! identity), `saml` (the SAML applications it serves as IdP), `branding` and `tls`.

mod branding;
mod clients;
mod directory;
mod exchange;
mod interactive;
mod issuer;
mod policies;
mod registration;
mod saml;
mod scopes;
mod spec;
mod tls;
mod tokens;
mod users;

pub use directory::{resolve_in_directory, toml_files};
pub use interactive::{check_redirect_uri, is_loopback};
pub use registration::{
    ClientDefinition, MetadataDocumentPolicy, RegistrationAccess, RegistrationPolicy,
    check_client_definition, host_matches,
};
pub use saml::{SamlSpDefinition, check_complete, check_definition, pem_certificate};
pub use spec::*;

use super::{ConfigError, FileRoots, KeyPath, from_toml_error, locate};
use serde::Deserialize;
use std::path::Path;

/// The longest `login.failure_window`: counters of failed sign-ins are swept this long after
/// their window began (and no lock holds them).
pub const MAX_LOGIN_FAILURE_WINDOW: i64 = 7 * 86_400;

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
    device: DeviceFile,
    #[serde(default)]
    ciba: CibaFile,
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
    #[serde(default)]
    trusted_issuers: Vec<TrustedIssuerFile>,
    #[serde(default)]
    password_grant: PasswordGrantFile,
    #[serde(default)]
    extension_grants: Vec<WebhookGrantFile>,
    #[serde(default)]
    saml_service_providers: Vec<SamlSpFile>,
    #[serde(default)]
    registration: registration::RegistrationFile,
    #[serde(default)]
    client_metadata_documents: registration::MetadataDocumentsFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SamlSpFile {
    entity_id: String,
    #[serde(default = "yes")]
    enabled: bool,
    display_name: Option<String>,
    logo_url: Option<String>,
    #[serde(default)]
    acs: Vec<SamlAcsFile>,
    slo_url: Option<String>,
    slo_binding: Option<String>,
    signing_certificate: Option<String>,
    signing_certificate_file: Option<String>,
    encryption_certificate: Option<String>,
    encryption_certificate_file: Option<String>,
    name_id_format: Option<String>,
    #[serde(default)]
    attributes: Vec<SamlAttributeFile>,
    #[serde(default)]
    sign_response: bool,
    #[serde(default)]
    encrypt_assertions: bool,
    #[serde(default)]
    require_signed_requests: bool,
    #[serde(default)]
    allow_sha1: bool,
    #[serde(default)]
    allow_idp_initiated: bool,
    default_relay_state: Option<String>,
    #[serde(default)]
    require_consent: bool,
    /// SAML metadata §2.4.4: the SP's metadata, fetched through the outbound guard; what the
    /// registration leaves out (ACS, certificates, NameID format) comes from there.
    metadata_url: Option<String>,
}

/// One assertion consumer service of an SP (files and the admin API alike).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SamlAcsFile {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u16>,
    #[serde(default)]
    pub default: bool,
}

/// One attribute an SP is sent (files and the admin API alike).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SamlAttributeFile {
    pub claim: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub friendly_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookGrantFile {
    grant_type: String,
    webhook_url: String,
    #[serde(default = "default_webhook_timeout")]
    timeout: u64,
}

fn default_webhook_timeout() -> u64 {
    5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustedIssuerFile {
    issuer: String,
    jwks: Option<serde_json::Value>,
    jwks_file: Option<String>,
    jwks_uri: Option<String>,
    algorithms: Option<Vec<String>>,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default = "default_max_token_age")]
    max_token_age: i64,
    #[serde(default = "default_subject_template")]
    subject_template: String,
    #[serde(default)]
    scopes: Vec<String>,
}

fn default_max_token_age() -> i64 {
    3600
}

fn default_subject_template() -> String {
    "{sub}".into()
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct PasswordGrantFile {
    /// RFC 6749 §4.3: clients may list `password` in their grant types.
    enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenExchangeFile {
    modes: Vec<String>,
    #[serde(default)]
    subject_token_audiences: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadFile {
    issuer: String,
    subject: String,
    #[serde(default)]
    claims: std::collections::BTreeMap<String, String>,
    subject_template: Option<String>,
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
#[serde(deny_unknown_fields, default)]
struct DeviceFile {
    code_lifetime: i64,
    interval: i64,
    max_failures_per_session: i64,
}

impl Default for DeviceFile {
    fn default() -> Self {
        let d = DevicePolicy::default();
        Self {
            code_lifetime: d.code_lifetime,
            interval: d.interval,
            max_failures_per_session: d.max_failures_per_session,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct CibaFile {
    request_lifetime: i64,
    interval: i64,
    binding_message_max: usize,
    require_mfa: bool,
    webhook_url: Option<String>,
}

impl Default for CibaFile {
    fn default() -> Self {
        let d = CibaPolicy::default();
        Self {
            request_lifetime: d.request_lifetime,
            interval: d.interval,
            binding_message_max: d.binding_message_max,
            require_mfa: d.require_mfa,
            webhook_url: None,
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
pub(super) struct ClientFile {
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
    /// OIDC Registration §2: the client's logo (https or an image data: URL), on the portal.
    logo_uri: Option<String>,
    /// OIDC Registration §2: where a third party (the application portal) starts a sign-in at
    /// the client (OIDC Core §4); an https URL. Lists the client on the portal.
    initiate_login_uri: Option<String>,
    /// OIDC Core §4: where the client should take the user after that sign-in; default: the
    /// origin of `initiate_login_uri`.
    target_link_uri: Option<String>,
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
    /// CIBA Core §4: `poll` or `ping`.
    backchannel_token_delivery_mode: Option<String>,
    /// CIBA Core §4: where a ping client is told that a request was decided.
    backchannel_client_notification_endpoint: Option<String>,
    /// CIBA Core §4: the client sends the user's `user_code` (here: their current one-time code).
    #[serde(default)]
    backchannel_user_code_parameter: bool,
    /// RFC 8693: `modes` (impersonation, delegation) and the audiences of the tenant's tokens
    /// it may exchange.
    token_exchange: Option<TokenExchangeFile>,
    /// Workload identity federation: no secret; a trusted issuer's JWT with matching claims.
    workload_identity: Option<WorkloadFile>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SecretFile {
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
// Resolution

/// Options from the server configuration that shape a tenant's defaults.
pub struct TenantDefaults<'a> {
    pub public_base_url: &'a str,
    pub mtls_base_url: &'a str,
    /// The files a tenant file may name (trust anchors, JWK Sets, templates, certificates).
    pub files: &'a FileRoots,
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
    let mut bad = |k: KeyPath, m: String| problems.push((k, m));
    // Checked in the order of the original single pass, so problems are listed as before.
    let names = issuer::resolve(path, &file, defaults, &mut bad);
    let algorithms = tokens::resolve_algorithms(&file.tokens, &mut bad);
    let scopes = scopes::check(&file, &mut bad);
    let trusted_issuers = exchange::trusted_issuers(&file, defaults.files, &mut bad);
    let extension_grants = exchange::webhook_grants(&file, &mut bad);
    let saml_service_providers = saml::service_providers(&file, defaults.files, &mut bad);
    let clients = clients::resolve_all(
        &file,
        &scopes,
        &algorithms.signing,
        defaults.files,
        &mut bad,
    );
    // A session's participant list names clients and SPs alike (for logout): one name, one party.
    for (i, sp) in saml_service_providers.iter().enumerate() {
        if file.clients.iter().any(|c| c.client_id == sp.entity_id) {
            bad(
                KeyPath::root()
                    .key("saml_service_providers")
                    .index(i)
                    .key("entity_id"),
                format!("`{}` is also a client_id of this tenant", sp.entity_id),
            );
        }
    }
    let trusted: Vec<&str> = trusted_issuers.iter().map(|t| t.issuer.as_str()).collect();
    let registration =
        registration::resolve_registration(&file.registration, &scopes, &trusted, &mut bad);
    let client_metadata_documents = registration::resolve_metadata_documents(
        &file.client_metadata_documents,
        &scopes,
        &mut bad,
    );
    // With metadata documents on, an https client_id names a document: no client may hold one.
    if client_metadata_documents.enabled {
        for (i, c) in file.clients.iter().enumerate() {
            if c.client_id.starts_with("https://") {
                bad(
                    KeyPath::root().key("clients").index(i).key("client_id"),
                    "with [client_metadata_documents] enabled, an https client_id names a metadata document".into(),
                );
            }
        }
    }
    let users = users::resolve(&file.users, &KeyPath::root(), &mut bad);
    policies::check_session_and_login(&file, &mut bad);
    tokens::check_lifetimes(&file.tokens, &mut bad);
    policies::check_par(&file, &mut bad);
    policies::check_device(&file, &mut bad);
    policies::check_ciba(&file, &mut bad);
    let (display_name, branding) = branding::resolve(&file, defaults.files, &mut bad);
    let mtls_trust_anchors = tls::mtls_trust_anchors(&file, defaults.files, &mut bad);
    let tls = tls::tenant_tls(&file, defaults.files, &mut bad);
    check_email_links(&file, &mut bad);

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
        tokens: tokens::policy(&file.tokens, algorithms),
        session: policies::session(&file),
        login: policies::login(&file),
        par: policies::par(&file),
        device: policies::device(&file),
        ciba: policies::ciba(&file),
        slug: file.slug,
        issuer: names.issuer,
        mtls_base_url: names.mtls_base_url,
        hosts: names.hosts,
        tls,
        api_scopes: scopes::api_scopes(file.api_scopes),
        api_resources: scopes::api_resources(file.api_resources),
        identity_resources: scopes::identity_resources(file.identity_resources),
        users,
        branding,
        mtls_trust_anchors,
        dpop_require_nonce: file.dpop.require_nonce,
        providers: file.providers,
        link_by_verified_email: file.link_by_verified_email,
        trusted_issuers,
        password_grant: file.password_grant.enabled,
        extension_grants,
        saml_service_providers,
        registration,
        client_metadata_documents,
    };
    Ok((spec, clients))
}

/// Only the tenant's file providers link by verified email.
fn check_email_links(file: &TenantFile, bad: &mut impl FnMut(KeyPath, String)) {
    let root = KeyPath::root();
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
}

/// The files `paths` name, each confined to where definitions may read (a problem each).
fn resolve_files(
    files: &FileRoots,
    key: &KeyPath,
    paths: &[String],
    bad: &mut impl FnMut(KeyPath, String),
) -> Vec<std::path::PathBuf> {
    paths
        .iter()
        .filter_map(|p| files.resolve(p).map_err(|m| bad(key.clone(), m)).ok())
        .collect()
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
mod tests;
