//! The runtime types a tenant file resolves into, stored as JSON in the database and served.

use crate::keys::Alg;
use crate::validation::dn::DistinguishedName;
use serde::{Deserialize, Serialize};

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
    /// The device authorization grant (RFC 8628).
    #[serde(default)]
    pub device: DevicePolicy,
    /// Client-Initiated Backchannel Authentication (OpenID Connect CIBA Core 1.0).
    #[serde(default)]
    pub ciba: CibaPolicy,
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
    /// Issuers whose JWTs are accepted as subject tokens (RFC 8693) and assertions (RFC 7523).
    #[serde(default)]
    pub trusted_issuers: Vec<TrustedIssuer>,
    /// Clients may be given the resource owner password grant (RFC 6749 §4.3; RFC 9700 §2.4
    /// says it must not be used: off unless the tenant's operator says otherwise).
    #[serde(default)]
    pub password_grant: bool,
    /// Grant types of the tenant's own, decided by its webhook (RFC 6749 §4.5).
    #[serde(default)]
    pub extension_grants: Vec<WebhookGrant>,
    /// SAML 2.0 service providers the tenant is the identity provider of.
    #[serde(default)]
    pub saml_service_providers: Vec<SamlSp>,
    /// Who may register clients over the network (RFC 7591), within which limits.
    #[serde(default)]
    pub registration: super::RegistrationPolicy,
    /// Clients named by the https URL of their metadata document.
    #[serde(default)]
    pub client_metadata_documents: super::MetadataDocumentPolicy,
}

/// `[[saml_service_providers]]`: a SAML 2.0 SP registration (SAML metadata §2.4.4 in spirit).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SamlSp {
    pub entity_id: String,
    /// A disabled SP is neither signed in to nor shown on the application portal.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    pub display_name: Option<String>,
    pub logo_url: Option<String>,
    /// Assertion consumer services; a Response only ever goes to one of these.
    pub acs: Vec<SamlAcs>,
    /// Single logout service and its binding.
    pub slo: Option<(String, SamlBinding)>,
    /// PEM: the certificate whose key signs the SP's requests; with one, every request must be
    /// signed by it.
    pub signing_certificate: Option<String>,
    /// PEM: the certificate assertions are encrypted to.
    pub encryption_certificate: Option<String>,
    pub name_id_format: SamlNameIdFormat,
    pub attributes: Vec<SamlAttribute>,
    /// Sign the Response as well as the Assertion.
    pub sign_response: bool,
    pub encrypt_assertions: bool,
    pub require_signed_requests: bool,
    /// Accept (not send) SHA-1 signatures from this SP.
    pub allow_sha1: bool,
    pub allow_idp_initiated: bool,
    pub default_relay_state: Option<String>,
    pub require_consent: bool,
    /// SAML metadata §2.4.4: where the SP publishes its metadata (fetched through the outbound
    /// guard and the document cache); the registration's own keys override the metadata's.
    #[serde(default)]
    pub metadata_url: Option<String>,
    /// Whether the registration named its NameID format (else the first one the metadata lists
    /// that this IdP supports, else persistent).
    #[serde(default)]
    pub name_id_format_given: bool,
}

fn enabled_by_default() -> bool {
    true
}

impl SamlSp {
    /// Where an unsolicited Response goes (SAML profiles §4.1.5).
    pub fn default_acs(&self) -> Option<&SamlAcs> {
        default_acs(&self.acs)
    }
}

/// SAML metadata §2.2.3: the endpoint marked default, else the one with the lowest index.
pub fn default_acs(acs: &[SamlAcs]) -> Option<&SamlAcs> {
    acs.iter()
        .find(|a| a.default)
        .or_else(|| acs.iter().min_by_key(|a| a.index))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SamlAcs {
    pub url: String,
    pub binding: SamlBinding,
    pub index: u16,
    pub default: bool,
}

/// SAML bindings §3.4 (HTTP-Redirect) and §3.5 (HTTP-POST).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SamlBinding {
    Post,
    Redirect,
}

impl SamlBinding {
    pub fn urn(self) -> &'static str {
        match self {
            Self::Post => "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
            Self::Redirect => "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
        }
    }
}

/// SAML core §8.3: how the subject is named to an SP.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SamlNameIdFormat {
    /// §8.3.7: opaque, stable, pairwise per SP.
    Persistent,
    /// §8.3.2: the user's email address.
    Email,
    /// §8.3.8: new for every sign-in.
    Transient,
    /// §8.3.1: the user's subject identifier.
    Unspecified,
}

impl SamlNameIdFormat {
    pub const ALL: [SamlNameIdFormat; 4] = [
        Self::Persistent,
        Self::Email,
        Self::Transient,
        Self::Unspecified,
    ];
    pub fn urn(self) -> &'static str {
        match self {
            Self::Persistent => "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            Self::Email => "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
            Self::Transient => "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
            Self::Unspecified => "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
        }
    }
}

/// One attribute of the AttributeStatement: a user claim under the SP's name for it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SamlAttribute {
    pub claim: String,
    pub name: String,
    /// The NameFormat URI (SAML core §8.2).
    pub name_format: String,
    pub friendly_name: Option<String>,
}

/// `[[extension_grants]]`: a `grant_type` URI whose requests a webhook of the tenant decides.
/// The webhook gets the request's parameters (never the client's credentials) in a JSON body,
/// authenticated by a JWT the tenant signs, and answers a subject or a refusal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WebhookGrant {
    pub grant_type: String,
    pub webhook_url: String,
    /// Seconds the webhook has to answer; then the client is told `temporarily_unavailable`.
    pub timeout: u64,
}

/// `[[trusted_issuers]]`: another security domain whose JWTs this tenant accepts in exchange
/// for its own tokens (RFC 8693 §2.1 subject and actor tokens, RFC 7523 §2.1 assertions).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrustedIssuer {
    /// The `iss` of its tokens, compared exactly.
    pub issuer: String,
    pub keys: IssuerKeys,
    /// Signature algorithms accepted from it (asymmetric only).
    pub algorithms: Vec<Alg>,
    /// Accepted `aud` values (one must be present); the tenant's issuer by default.
    pub audiences: Vec<String>,
    /// The oldest token accepted, by its `iat` (seconds); a token without `iat` is refused.
    pub max_token_age: i64,
    /// The issued token's `sub`, from the external token's claims (`{sub}`, `{iss}`, any
    /// string claim by name).
    pub subject_template: String,
    /// The scopes its tokens may be exchanged for; empty: whatever the client may have.
    pub scopes: Vec<String>,
}

/// Where a trusted issuer's public keys come from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum IssuerKeys {
    /// A JWK Set, inline or read from an operator's file when the tenant loads.
    Jwks(serde_json::Value),
    /// Fetched through the outbound guard and the document cache; an unknown `kid` refetches
    /// at most once a minute.
    JwksUri(String),
}

/// RFC 8693 §1.1: what a client may do with another party's token.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeMode {
    /// The issued token is the subject's own (no `act`).
    Impersonation,
    /// The issued token names its actor in `act` (RFC 8693 §4.1).
    Delegation,
}

/// A client's token exchange registration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenExchangeClient {
    pub modes: Vec<ExchangeMode>,
    /// This tenant's tokens the client may exchange: those whose `aud` holds one of these (or
    /// the client's own id, as an id token's does).
    pub subject_token_audiences: Vec<String>,
}

/// Workload identity federation: a client with no secret that authenticates by presenting a
/// JWT of `issuer` (a trusted issuer) whose claims match.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkloadPolicy {
    pub issuer: String,
    /// A pattern for `sub`: exact, or with `*` standing for any run of characters.
    pub subject: String,
    /// Further claims that must match (string claims, same patterns).
    pub claims: std::collections::BTreeMap<String, String>,
    /// The issued token's `sub`; the trusted issuer's template when absent.
    pub subject_template: Option<String>,
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

/// `[device]`: the device authorization grant (RFC 8628).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DevicePolicy {
    /// How long a device code and its user code live (RFC 8628 §3.2 `expires_in`).
    pub code_lifetime: i64,
    /// The polling interval a device is told (RFC 8628 §3.2 `interval`); 0 lets it poll at
    /// will (no `slow_down`).
    pub interval: i64,
    /// Wrong user codes one browser may enter before it must wait (RFC 8628 §5.1).
    pub max_failures_per_session: i64,
}

impl Default for DevicePolicy {
    fn default() -> Self {
        Self {
            code_lifetime: 600,
            interval: 5,
            max_failures_per_session: 5,
        }
    }
}

/// `[ciba]`: backchannel authentication requests and how users learn of them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CibaPolicy {
    /// The longest a request lives (CIBA Core §7.3 `expires_in`); `requested_expiry` may
    /// shorten it.
    pub request_lifetime: i64,
    /// The polling interval clients are told (CIBA Core §7.3 `interval`).
    pub interval: i64,
    /// The longest `binding_message` shown to a user (CIBA Core §7.1), in characters.
    pub binding_message_max: usize,
    /// Approving a request needs a second factor (a sign-in with `mfa` if the session has none).
    pub require_mfa: bool,
    /// Where each new request is announced (a signed JWT, POSTed), besides the approvals page.
    pub webhook_url: Option<String>,
}

impl Default for CibaPolicy {
    fn default() -> Self {
        Self {
            request_lifetime: 300,
            interval: 5,
            binding_message_max: 64,
            require_mfa: false,
            webhook_url: None,
        }
    }
}

/// CIBA Core §5: how a client learns that a request was decided.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CibaMode {
    Poll,
    Ping,
}

/// A client's CIBA registration (CIBA Core §4).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CibaClient {
    pub mode: CibaMode,
    pub notification_endpoint: Option<String>,
    /// CIBA Core §7.1: every request carries the user's `user_code`.
    #[serde(default)]
    pub user_code: bool,
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
    /// RFC 8628 §3.4
    DeviceCode,
    /// CIBA Core §10.1
    Ciba,
    /// RFC 8693 §2.1
    TokenExchange,
    /// RFC 7523 §2.1
    JwtBearer,
    /// RFC 6749 §4.3 (legacy; only where the tenant allows it)
    Password,
}

/// RFC 8693 §2.1: the token exchange grant.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 7523 §2.1: a JWT as an authorization grant.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// CIBA Core §10.1: the `grant_type` a client redeems an `auth_req_id` with.
pub const CIBA_GRANT: &str = "urn:openid:params:grant-type:ciba";

impl GrantType {
    pub const ALL: &'static [GrantType] = &[
        GrantType::AuthorizationCode,
        GrantType::ClientCredentials,
        GrantType::RefreshToken,
        GrantType::DeviceCode,
        GrantType::Ciba,
        GrantType::TokenExchange,
        GrantType::JwtBearer,
        GrantType::Password,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::DeviceCode => crate::tokens::user_code::DEVICE_CODE_GRANT,
            Self::Ciba => CIBA_GRANT,
            Self::TokenExchange => TOKEN_EXCHANGE_GRANT,
            Self::JwtBearer => JWT_BEARER_GRANT,
            Self::Password => "password",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
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
    pub(super) fn parse(s: &str) -> Option<Self> {
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciba: Option<CibaClient>,
    /// RFC 8693: how this client may exchange tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_exchange: Option<TokenExchangeClient>,
    /// Authenticates by a trusted issuer's JWT instead of a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadPolicy>,
    /// The tenant's webhook extension grants this client may use (their `grant_type` URIs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension_grants: Vec<String>,
    /// Set for a client that lives in the database only (admin API, CLI, registration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeClient>,
}

/// How a runtime client was defined.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RuntimeClient {
    /// The definition as given (or as registration made it), for reading back and replacing.
    pub definition: super::ClientDefinition,
    pub created_at: i64,
    /// Set for a client that registered itself (RFC 7591).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration: Option<Registration>,
}

/// A registered client's registration (RFC 7591 §3.2.1, RFC 7592 §1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Registration {
    /// SHA-256 of the registration access token (`sha256:…`); replaced on every update.
    pub access_token_hash: String,
    pub issued_at: i64,
    /// 0: the secret does not expire.
    pub secret_expires_at: i64,
    /// The client metadata as registered and answered (secrets left out).
    pub metadata: serde_json::Value,
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
    /// OIDC Registration §2 `logo_uri`: shown on the application portal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    /// OIDC Core §4 third-party-initiated login: where the application portal sends the user
    /// (with `iss` and `target_link_uri`); a client without one is not on the portal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiate_login_uri: Option<String>,
    /// OIDC Core §4 `target_link_uri`, resolved: as registered, else the origin of
    /// `initiate_login_uri`. Set exactly when `initiate_login_uri` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_link_uri: Option<String>,
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
