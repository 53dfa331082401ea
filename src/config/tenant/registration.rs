//! Clients that do not come from the tenant file: `[registration]` (who may register clients
//! over the network, RFC 7591, and within which limits), `[client_metadata_documents]` (clients
//! named by the URL of their metadata document) and [`ClientDefinition`], the one shape a client
//! takes when it arrives over the network (admin API, CLI, registration): the file's keys
//! without those that name files, trust or a workload identity, checked by the file's own
//! rules ([`check_client_definition`]).

use super::clients::{ClientContext, resolve};
use super::scopes::Scopes;
use super::{ClientFile, ClientSpec, GrantType, KeyPath, TenantSpec, valid_scope_token};
use crate::config::FileRoots;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// File schema

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RegistrationFile {
    /// `closed`, `initial_token` or `open`.
    access: String,
    allowed_grant_types: Vec<String>,
    allowed_scopes: Option<Vec<String>>,
    allowed_auth_methods: Vec<String>,
    require_consent: bool,
    secret_lifetime: i64,
    open_requests_per_minute: u32,
    max_clients: i64,
    software_statement_issuers: Vec<String>,
    require_software_statement: bool,
}

impl Default for RegistrationFile {
    fn default() -> Self {
        Self {
            access: "closed".into(),
            allowed_grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            allowed_scopes: None,
            allowed_auth_methods: vec![
                "client_secret_basic".into(),
                "client_secret_post".into(),
                "private_key_jwt".into(),
                "none".into(),
            ],
            require_consent: true,
            secret_lifetime: 0,
            open_requests_per_minute: 10,
            max_clients: 10_000,
            software_statement_issuers: Vec::new(),
            require_software_statement: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct MetadataDocumentsFile {
    enabled: bool,
    allow_hosts: Vec<String>,
    deny_hosts: Vec<String>,
    allow_internal_addresses: bool,
    scopes: Option<Vec<String>>,
    max_bytes: usize,
}

impl Default for MetadataDocumentsFile {
    fn default() -> Self {
        Self {
            enabled: false,
            allow_hosts: Vec::new(),
            deny_hosts: Vec::new(),
            allow_internal_addresses: false,
            scopes: None,
            max_bytes: 5 * 1024,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Resolved policies

/// Who may call the registration endpoint (RFC 7591 §3: "closed" answers every request 401).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationAccess {
    #[default]
    Closed,
    /// RFC 7591 §3: an initial access token (`portcullis clients initial-token`, admin API).
    InitialToken,
    /// Anyone, rate limited per client address.
    Open,
}

/// `[registration]`, resolved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct RegistrationPolicy {
    pub access: RegistrationAccess,
    pub allowed_grant_types: Vec<GrantType>,
    pub allowed_scopes: Vec<String>,
    /// Stored names (`client_secret_basic` …, `none`).
    pub allowed_auth_methods: Vec<String>,
    pub require_consent: bool,
    /// Seconds a generated secret lives; 0: until rotated.
    pub secret_lifetime: i64,
    pub open_requests_per_minute: u32,
    /// Registered (runtime) clients the tenant may hold.
    pub max_clients: i64,
    /// Trusted issuers (of `[[trusted_issuers]]`) whose software statements are approved.
    pub software_statement_issuers: Vec<String>,
    pub require_software_statement: bool,
}

/// `[client_metadata_documents]`, resolved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct MetadataDocumentPolicy {
    pub enabled: bool,
    /// Host patterns (`host`, `*.domain`, either with `:port`); empty: every host.
    pub allow_hosts: Vec<String>,
    pub deny_hosts: Vec<String>,
    /// Documents may be fetched from addresses the operator's outbound allow-list admits
    /// (without it: public addresses only).
    pub allow_internal_addresses: bool,
    pub scopes: Vec<String>,
    pub max_bytes: usize,
}

impl MetadataDocumentPolicy {
    /// Whether the document at `url` may name a client here: https, a host and no fragment,
    /// and a host the patterns admit (a deny pattern wins).
    pub fn admits(&self, url: &url::Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let port = url.port_or_known_default();
        let hit = |p: &String| host_matches(p, host, port);
        url.scheme() == "https"
            && url.fragment().is_none()
            && !self.deny_hosts.iter().any(hit)
            && (self.allow_hosts.is_empty() || self.allow_hosts.iter().any(hit))
    }
}

/// `pattern` is `host`, `*.domain` (any name below it) or either with `:port` (without: any
/// port). Case-insensitive.
pub fn host_matches(pattern: &str, host: &str, port: Option<u16>) -> bool {
    let (p_host, p_port) = match pattern.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
            Ok(n) => (h, Some(n)),
            Err(_) => (pattern, None),
        },
        _ => (pattern, None),
    };
    if p_port.is_some_and(|pp| Some(pp) != port) {
        return false;
    }
    let host = host.to_ascii_lowercase();
    let p_host = p_host.to_ascii_lowercase();
    match p_host.strip_prefix("*.") {
        Some(domain) => host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
        None => host == p_host,
    }
}

fn valid_host_pattern(p: &str) -> bool {
    let host = p.rsplit_once(':').map_or(
        p,
        |(h, port)| {
            if port.parse::<u16>().is_ok() { h } else { p }
        },
    );
    let name = host.strip_prefix("*.").unwrap_or(host);
    !name.is_empty()
        && !name.contains('*')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
}

pub(super) fn resolve_registration(
    file: &RegistrationFile,
    scopes: &Scopes<'_>,
    trusted_issuers: &[&str],
    bad: &mut impl FnMut(KeyPath, String),
) -> RegistrationPolicy {
    let k = KeyPath::root().key("registration");
    let access = match file.access.as_str() {
        "closed" => RegistrationAccess::Closed,
        "initial_token" => RegistrationAccess::InitialToken,
        "open" => RegistrationAccess::Open,
        other => {
            bad(
                k.key("access"),
                format!("`{other}` is not `closed`, `initial_token` or `open`"),
            );
            RegistrationAccess::Closed
        }
    };
    let mut allowed_grant_types = Vec::new();
    for (i, g) in file.allowed_grant_types.iter().enumerate() {
        match GrantType::parse(g) {
            Some(
                gt @ (GrantType::AuthorizationCode
                | GrantType::RefreshToken
                | GrantType::ClientCredentials
                | GrantType::DeviceCode),
            ) => allowed_grant_types.push(gt),
            _ => bad(
                k.key("allowed_grant_types").index(i),
                format!(
                    "`{g}` cannot be registered (authorization_code, refresh_token, client_credentials, urn:ietf:params:oauth:grant-type:device_code)"
                ),
            ),
        }
    }
    let allowed_scopes = scope_list(
        file.allowed_scopes.as_deref(),
        scopes,
        &k.key("allowed_scopes"),
        bad,
    );
    for (i, m) in file.allowed_auth_methods.iter().enumerate() {
        if !matches!(
            m.as_str(),
            "client_secret_basic"
                | "client_secret_post"
                | "client_secret_jwt"
                | "private_key_jwt"
                | "tls_client_auth"
                | "self_signed_tls_client_auth"
                | "none"
        ) {
            bad(
                k.key("allowed_auth_methods").index(i),
                format!("`{m}` is not a token endpoint authentication method"),
            );
        }
    }
    for (i, iss) in file.software_statement_issuers.iter().enumerate() {
        if !trusted_issuers.contains(&iss.as_str()) {
            bad(
                k.key("software_statement_issuers").index(i),
                format!("`{iss}` is not one of this tenant's trusted_issuers"),
            );
        }
    }
    if file.require_software_statement && file.software_statement_issuers.is_empty() {
        bad(
            k.key("require_software_statement"),
            "name the software_statement_issuers whose statements are approved".into(),
        );
    }
    if !(0..=366 * 86_400).contains(&file.secret_lifetime) {
        bad(
            k.key("secret_lifetime"),
            "0 (until rotated) to a year in seconds".into(),
        );
    }
    if file.open_requests_per_minute == 0 {
        bad(
            k.key("open_requests_per_minute"),
            "at least 1 (use access = \"closed\" to refuse every registration)".into(),
        );
    }
    if file.max_clients < 1 {
        bad(k.key("max_clients"), "at least 1".into());
    }
    RegistrationPolicy {
        access,
        allowed_grant_types,
        allowed_scopes,
        allowed_auth_methods: file.allowed_auth_methods.clone(),
        require_consent: file.require_consent,
        secret_lifetime: file.secret_lifetime,
        open_requests_per_minute: file.open_requests_per_minute,
        max_clients: file.max_clients,
        software_statement_issuers: file.software_statement_issuers.clone(),
        require_software_statement: file.require_software_statement,
    }
}

pub(super) fn resolve_metadata_documents(
    file: &MetadataDocumentsFile,
    scopes: &Scopes<'_>,
    bad: &mut impl FnMut(KeyPath, String),
) -> MetadataDocumentPolicy {
    let k = KeyPath::root().key("client_metadata_documents");
    for (key, list) in [
        ("allow_hosts", &file.allow_hosts),
        ("deny_hosts", &file.deny_hosts),
    ] {
        for (i, p) in list.iter().enumerate() {
            if !valid_host_pattern(p) {
                bad(
                    k.key(key).index(i),
                    format!(
                        "`{p}` is not a host pattern (`host`, `*.domain`, with or without `:port`)"
                    ),
                );
            }
        }
    }
    if !(256..=64 * 1024).contains(&file.max_bytes) {
        bad(k.key("max_bytes"), "256 to 65536 bytes".into());
    }
    MetadataDocumentPolicy {
        enabled: file.enabled,
        allow_hosts: file.allow_hosts.clone(),
        deny_hosts: file.deny_hosts.clone(),
        allow_internal_addresses: file.allow_internal_addresses,
        scopes: scope_list(file.scopes.as_deref(), scopes, &k.key("scopes"), bad),
        max_bytes: file.max_bytes,
    }
}

/// The scopes listed (each defined in the tenant), or by default the tenant's identity scopes.
fn scope_list(
    listed: Option<&[String]>,
    scopes: &Scopes<'_>,
    k: &KeyPath,
    bad: &mut impl FnMut(KeyPath, String),
) -> Vec<String> {
    match listed {
        None => {
            let mut v: Vec<String> = scopes.identity.iter().map(|s| s.to_string()).collect();
            v.sort();
            v
        }
        Some(list) => {
            for (i, s) in list.iter().enumerate() {
                if !scopes.names.contains(s.as_str()) {
                    bad(
                        k.clone().index(i),
                        format!("scope `{s}` is not defined in this tenant"),
                    );
                }
            }
            list.to_vec()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Clients defined over the network

/// A client as the admin API, the CLI and registration define it: values only. Compared with
/// a `[[clients]]` entry it has no secrets (they are generated), no `jwks_file` or trust-anchor
/// files, no workload identity and no token exchange: what names a file or extends trust stays
/// with the operator's files.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClientDefinition {
    /// Empty: a fresh one is made (or the path's, for a PUT).
    #[serde(default)]
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_lifetime: Option<i64>,
    #[serde(default)]
    pub public: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub require_consent: bool,
    #[serde(default = "yes")]
    pub allow_remember_consent: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_lifetime: Option<i64>,
    #[serde(default)]
    pub require_par: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<String>,
    #[serde(default)]
    pub refresh_token_reuse: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontchannel_logout_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiate_login_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub require_signed_request_object: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_subject_dn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_dns: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_email: Option<String>,
    #[serde(default)]
    pub tls_client_certificate_bound_access_tokens: bool,
    #[serde(default)]
    pub require_dpop: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_providers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_token_delivery_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_client_notification_endpoint: Option<String>,
}

fn yes() -> bool {
    true
}

impl From<&ClientDefinition> for ClientFile {
    fn from(d: &ClientDefinition) -> Self {
        ClientFile {
            client_id: d.client_id.clone(),
            client_name: d.client_name.clone(),
            enabled: true,
            secrets: Vec::new(),
            grant_types: d.grant_types.clone(),
            scopes: d.scopes.clone(),
            token_endpoint_auth_methods: d.token_endpoint_auth_methods.clone(),
            access_token_format: d.access_token_format.clone(),
            access_token_lifetime: d.access_token_lifetime,
            public: d.public,
            application_type: d.application_type.clone(),
            redirect_uris: d.redirect_uris.clone(),
            post_logout_redirect_uris: d.post_logout_redirect_uris.clone(),
            // RFC 9700 §2.1.1: PKCE for every client that can be given one; S256 only.
            require_pkce: true,
            allow_plain_pkce: false,
            require_consent: d.require_consent,
            allow_remember_consent: d.allow_remember_consent,
            consent_lifetime: d.consent_lifetime,
            require_par: d.require_par,
            id_token_signed_response_alg: d.id_token_signed_response_alg.clone(),
            always_include_user_claims_in_id_token: false,
            refresh_token_reuse: d.refresh_token_reuse,
            frontchannel_logout_uri: d.frontchannel_logout_uri.clone(),
            backchannel_logout_uri: d.backchannel_logout_uri.clone(),
            client_uri: d.client_uri.clone(),
            logo_uri: d.logo_uri.clone(),
            initiate_login_uri: d.initiate_login_uri.clone(),
            target_link_uri: None,
            jwks: d.jwks.clone(),
            jwks_uri: d.jwks_uri.clone(),
            require_signed_request_object: d.require_signed_request_object,
            jwks_file: None,
            tls_client_auth_subject_dn: d.tls_client_auth_subject_dn.clone(),
            tls_client_auth_san_dns: d.tls_client_auth_san_dns.clone(),
            tls_client_auth_san_uri: d.tls_client_auth_san_uri.clone(),
            tls_client_auth_san_ip: d.tls_client_auth_san_ip.clone(),
            tls_client_auth_san_email: d.tls_client_auth_san_email.clone(),
            tls_client_auth_trust_anchors: Vec::new(),
            tls_client_certificate_bound_access_tokens: d
                .tls_client_certificate_bound_access_tokens,
            require_dpop: d.require_dpop,
            identity_providers: d.identity_providers.clone(),
            enable_local_login: true,
            backchannel_token_delivery_mode: d.backchannel_token_delivery_mode.clone(),
            backchannel_client_notification_endpoint: d
                .backchannel_client_notification_endpoint
                .clone(),
            backchannel_user_code_parameter: false,
            token_exchange: None,
            workload_identity: None,
        }
    }
}

/// Checks a network-supplied client against the stored tenant by the tenant file's own rules,
/// and resolves it (no secrets yet: the caller adds the ones it generates). Every problem is
/// returned, each with its key.
pub fn check_client_definition(
    def: &ClientDefinition,
    spec: &TenantSpec,
    secrets: Vec<super::StoredSecret>,
) -> Result<ClientSpec, Vec<(String, String)>> {
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut bad = |k: KeyPath, m: String| problems.push((k.to_string(), m));
    let scopes = Scopes {
        names: spec
            .api_scopes
            .iter()
            .map(|s| s.name.as_str())
            .chain(spec.identity_resources.iter().map(|r| r.name.as_str()))
            .collect(),
        identity: spec
            .identity_resources
            .iter()
            .map(|r| r.name.as_str())
            .collect(),
    };
    // A runtime client names no file: nothing is readable.
    let no_files = FileRoots::new(std::path::PathBuf::new(), Vec::new(), Vec::new());
    let context = ClientContext {
        scopes: &scopes,
        signing_algorithms: &spec.tokens.signing_algorithms,
        files: &no_files,
        has_mtls_trust_anchors: !spec.mtls_trust_anchors.is_empty(),
        extension_grants: spec
            .extension_grants
            .iter()
            .map(|e| e.grant_type.as_str())
            .collect(),
        password_grant: spec.password_grant,
        trusted_issuers: spec
            .trusted_issuers
            .iter()
            .map(|t| t.issuer.as_str())
            .collect(),
    };
    let mut file = ClientFile::from(def);
    // The secrets are the server's own (generated, hashed or sealed): only their presence
    // matters to the rules.
    file.secrets = secrets
        .iter()
        .map(|s| super::SecretFile {
            hash: (!s.hash.is_empty()).then(|| s.hash.clone()),
            sealed: s.sealed.clone(),
            description: s.description.clone(),
            expires_at: s.expires_at,
        })
        .collect();
    let spec = resolve(&file, &KeyPath::root(), &context, &mut bad);
    for (i, s) in def.scopes.iter().enumerate() {
        if !valid_scope_token(s) {
            bad(
                KeyPath::root().key("scopes").index(i),
                "not a scope token".into(),
            );
        }
    }
    if problems.is_empty() {
        Ok(spec)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::{MetadataDocumentPolicy, host_matches};

    #[test]
    fn a_document_url_is_admitted_by_an_allow_pattern_unless_a_deny_pattern_matches() {
        let policy = MetadataDocumentPolicy {
            enabled: true,
            allow_hosts: vec!["*.tools.example".into(), "localhost".into()],
            deny_hosts: vec!["evil.tools.example".into()],
            ..MetadataDocumentPolicy::default()
        };
        let admits = |u: &str| policy.admits(&url::Url::parse(u).unwrap());
        assert!(admits("https://mcp.tools.example/client.json"));
        assert!(admits("https://localhost:9443/client.json"));
        assert!(!admits("https://evil.tools.example/client.json"));
        assert!(!admits("https://tools.example.attacker.test/client.json"));
        assert!(!admits("http://mcp.tools.example/client.json"));
        assert!(!admits("https://mcp.tools.example/client.json#x"));
        let any = MetadataDocumentPolicy::default();
        assert!(any.admits(&url::Url::parse("https://anywhere.example/c.json").unwrap()));
    }

    #[test]
    fn host_patterns_match_names_below_a_wildcard_and_ports_only_when_given() {
        assert!(host_matches("localhost", "localhost", Some(8443)));
        assert!(host_matches("localhost", "LOCALHOST", Some(1)));
        assert!(host_matches("localhost:9443", "localhost", Some(9443)));
        assert!(!host_matches("localhost:9443", "localhost", Some(443)));
        assert!(host_matches("*.example.com", "mcp.example.com", Some(443)));
        assert!(host_matches("*.example.com", "a.b.example.com", Some(443)));
        assert!(!host_matches("*.example.com", "example.com", Some(443)));
        assert!(!host_matches("*.example.com", "evilexample.com", Some(443)));
        assert!(!host_matches(
            "example.com",
            "example.com.evil.test",
            Some(443)
        ));
    }
}
