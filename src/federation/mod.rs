//! Federation: signing users in through upstream OpenID Connect and SAML 2.0 providers.
//!
//! A provider comes from a file (`providers/<id>.toml`, offered by the tenants that list it) or
//! from the database (added at runtime through the admin API or the CLI, per tenant). The round
//! trip is a small state machine:
//!
//! 1. The sign-in needs a login: home-realm discovery ([`home_realm`]) picks a provider, or the
//!    user picks one on the login page. The pending interaction (the downstream authorize
//!    request, bound to the browser) stays where it is.
//! 2. `begin`: a single-use upstream state record (random handle, expiring) names the
//!    interaction and holds the nonce and PKCE verifier (OIDC) or the request id (SAML).
//! 3. The upstream answers at the callback / ACS: the state is consumed once, the browser must
//!    be the one that holds the interaction, the upstream's answer is verified, and the external
//!    identity is linked to a local user (or provisioned), which finishes the login and resumes
//!    the original authorize request.

pub mod admin;
pub mod metadata;
pub mod oidc;
pub mod saml;

use crate::config::tenant::UserSpec;
use crate::error::InternalError;
use crate::registry::{Client, Tenant};
use crate::state::AppState;
use crate::stores::{FederationStore, UserStore};
use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The `idp` of users who signed in with a local account.
pub const LOCAL: &str = "local";

// ---------------------------------------------------------------------------------------------
// Provider definitions

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Oidc,
    Saml,
}

/// One upstream provider, as written in `providers/<id>.toml` or sent to the admin API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// Defaults to the file name.
    #[serde(default)]
    pub id: String,
    pub kind: ProviderKind,
    #[serde(default)]
    pub display_name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Shown as a button on the sign-in page (home-realm discovery works either way).
    #[serde(default = "yes")]
    pub listed: bool,
    /// Email domains whose users this provider signs in (home-realm discovery).
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saml: Option<SamlSpec>,
    /// Local claim = upstream claim (OIDC) or attribute name (SAML); added to the defaults.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    #[serde(default)]
    pub provisioning: Provisioning,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OidcSpec {
    pub issuer: String,
    /// Defaults to `{issuer}/.well-known/openid-configuration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_url: Option<String>,
    pub client_id: String,
    /// Inline secret: for demos only (a warning is logged). Prefer the two below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<String>,
    /// The secret sealed under the master key (dynamic providers store theirs so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_sealed: Option<String>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Also call the userinfo endpoint and merge its claims.
    #[serde(default)]
    pub fetch_userinfo: bool,
    /// `client_secret_basic` (default), `client_secret_post`, or `private_key_jwt` (RFC 7523
    /// §2.2) with `private_key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// private_key_jwt: the PKCS#8 PEM key that signs client assertions (its public key is
    /// registered upstream), and its algorithm (default ES256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_alg: Option<String>,
    /// id_token signature algorithms accepted; default RS256, PS256, ES256, EdDSA.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_algorithms: Vec<String>,
}

/// Secrets stay out of logs: only whether there is one.
impl std::fmt::Debug for OidcSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSpec")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &(self.client_secret.is_some() || self.client_secret_sealed.is_some()),
            )
            .field("client_secret_env", &self.client_secret_env)
            .field("client_secret_file", &self.client_secret_file)
            .field(
                "token_endpoint_auth_method",
                &self.token_endpoint_auth_method,
            )
            .finish_non_exhaustive()
    }
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "profile".into(), "email".into()]
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SamlSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
    /// The SP's signing key and certificate (PEM files).
    pub sp_signing_key_file: String,
    pub sp_certificate_file: String,
    /// With these, encrypted assertions are accepted (and the SP metadata offers the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_encryption_key_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_encryption_certificate_file: Option<String>,
    /// `redirect` (default) or `post` for the AuthnRequest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    #[serde(default = "default_skew")]
    pub max_clock_skew_seconds: i64,
}

fn default_skew() -> i64 {
    120
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Provisioning {
    /// Create a local user the first time an external identity signs in.
    pub jit: bool,
    /// Link to an existing local user whose email matches the upstream's verified email.
    pub link_by_verified_email: bool,
}

impl Default for Provisioning {
    fn default() -> Self {
        Self {
            jit: true,
            link_by_verified_email: false,
        }
    }
}

impl ProviderSpec {
    /// Checks the definition as a whole; every problem is reported.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if !valid_id(&self.id) {
            errors.push(format!(
                "id `{}` must be 1-64 of a-z, 0-9, `-`, `_`, `.`, and not `local`",
                self.id
            ));
        }
        for d in &self.domains {
            if d.is_empty()
                || d.len() > 253
                || *d != d.to_ascii_lowercase()
                || !d
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            {
                errors.push(format!("domain `{d}` is not a lower-case DNS name"));
            }
        }
        match (self.kind, &self.oidc, &self.saml) {
            (ProviderKind::Oidc, Some(o), None) => {
                if let Err(e) = check_url(&o.issuer) {
                    errors.push(format!("oidc.issuer: {e}"));
                }
                if let Some(u) = &o.discovery_url
                    && let Err(e) = check_url(u)
                {
                    errors.push(format!("oidc.discovery_url: {e}"));
                }
                if o.client_id.is_empty() {
                    errors.push("oidc.client_id is required".into());
                }
                let secrets = [
                    o.client_secret.is_some(),
                    o.client_secret_env.is_some(),
                    o.client_secret_file.is_some(),
                    o.client_secret_sealed.is_some(),
                ]
                .iter()
                .filter(|b| **b)
                .count();
                if secrets > 1 {
                    errors.push(
                        "give one of oidc.client_secret, client_secret_env and client_secret_file"
                            .into(),
                    );
                }
                if !o.scopes.iter().any(|s| s == "openid") {
                    errors.push("oidc.scopes must include openid".into());
                }
                match o.token_endpoint_auth_method.as_deref() {
                    None | Some("client_secret_basic" | "client_secret_post") => {
                        if o.private_key_file.is_some() {
                            errors.push("oidc.private_key_file goes with token_endpoint_auth_method = \"private_key_jwt\"".into());
                        }
                    }
                    Some("private_key_jwt") => {
                        if o.private_key_file.is_none() {
                            errors.push("private_key_jwt needs oidc.private_key_file".into());
                        }
                        if secrets > 0 {
                            errors.push("private_key_jwt takes no client secret".into());
                        }
                    }
                    Some(m) => errors.push(format!(
                        "oidc.token_endpoint_auth_method `{m}` is not client_secret_basic, client_secret_post or private_key_jwt"
                    )),
                }
                if let Some(a) = &o.private_key_alg
                    && crate::keys::Alg::parse(a).is_none()
                {
                    errors.push(format!("oidc.private_key_alg `{a}` is not supported"));
                }
                for a in &o.allowed_algorithms {
                    if crate::keys::Alg::parse(a).is_none() {
                        errors.push(format!("oidc.allowed_algorithms: `{a}` is not supported"));
                    }
                }
            }
            (ProviderKind::Saml, None, Some(s)) => {
                if s.metadata_file.is_some() == s.metadata_url.is_some() {
                    errors.push("give one of saml.metadata_file and saml.metadata_url".into());
                }
                if let Some(u) = &s.metadata_url
                    && let Err(e) = check_url(u)
                {
                    errors.push(format!("saml.metadata_url: {e}"));
                }
                if !(0..=600).contains(&s.max_clock_skew_seconds) {
                    errors.push("saml.max_clock_skew_seconds must be 0-600".into());
                }
                if let Some(b) = &s.binding
                    && b != "redirect"
                    && b != "post"
                {
                    errors.push(format!("saml.binding `{b}` is not redirect or post"));
                }
            }
            (ProviderKind::Oidc, _, _) => {
                errors.push("an oidc provider needs an [oidc] section and no [saml]".into())
            }
            (ProviderKind::Saml, _, _) => {
                errors.push("a saml provider needs a [saml] section and no [oidc]".into())
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    pub fn display(&self) -> &str {
        if self.display_name.is_empty() {
            &self.id
        } else {
            &self.display_name
        }
    }
}

pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id != LOCAL
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

/// HTTPS, or plain HTTP to a loopback host (tests, sidecars).
fn check_url(u: &str) -> Result<(), String> {
    let url = url::Url::parse(u).map_err(|_| format!("`{u}` is not an absolute URL"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")) => Ok(()),
        _ => Err(format!("`{u}` must be https")),
    }
}

/// The associated data that binds a sealed provider secret to its tenant and provider: a
/// sealed value copied into another tenant's (or provider's) definition does not open.
fn secret_aad(tenant: &str, id: &str) -> Vec<u8> {
    format!("provider-secret\0{tenant}\0{id}").into_bytes()
}

/// A provider ready to use: its definition and its resolved credentials.
pub struct Provider {
    pub spec: ProviderSpec,
    /// The tenant of a provider added at runtime (database); `None` for a file provider.
    pub owner: Option<String>,
    /// The OIDC client secret, resolved from where the definition says.
    client_secret: Option<String>,
    /// SAML: the SP keys and the IdP metadata file, read when the provider loads.
    pub saml: Option<saml::SamlMaterial>,
    /// OIDC private_key_jwt: the key that signs client assertions.
    pub assertion_signer: Option<crate::keys::Signer>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.spec.id)
            .field("kind", &self.spec.kind)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Resolves the definition's references (secret from env or file, sealed secret).
    pub fn resolve(
        spec: ProviderSpec,
        owner: Option<&str>,
        allow_inline_secret: bool,
        base_dir: &std::path::Path,
        master: &crate::keys::MasterKey,
    ) -> Result<Self, String> {
        spec.check().map_err(|e| e.join("; "))?;
        let mut client_secret = None;
        if let Some(o) = &spec.oidc {
            if let Some(s) = &o.client_secret {
                // Runtime providers seal theirs before storing; a file's inline secret is for
                // demos (development certificates on) only.
                if owner.is_none() {
                    if !allow_inline_secret {
                        return Err("an inline oidc.client_secret is refused in production (tls.dev_certs = false): use client_secret_env or client_secret_file".into());
                    }
                    tracing::warn!(provider = %spec.id, "client secret written inline in the provider file; use client_secret_env or client_secret_file outside demos");
                }
                client_secret = Some(s.clone());
            } else if let Some(var) = &o.client_secret_env {
                client_secret = Some(
                    std::env::var(var)
                        .map_err(|_| format!("environment variable {var} is not set"))?,
                );
            } else if let Some(file) = &o.client_secret_file {
                let path = base_dir.join(file);
                client_secret = Some(
                    std::fs::read_to_string(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                        .trim()
                        .to_string(),
                );
            } else if let Some(sealed) = &o.client_secret_sealed {
                let bytes = base64::Engine::decode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    sealed,
                )
                .map_err(|_| "the sealed client secret is not base64url".to_string())?;
                let plain = master
                    .open(&bytes, &secret_aad(owner.unwrap_or_default(), &spec.id))
                    .map_err(|_| "the sealed client secret does not open".to_string())?;
                client_secret = Some(
                    String::from_utf8(plain)
                        .map_err(|_| "the sealed client secret is not text".to_string())?,
                );
            }
        }
        let saml = match &spec.saml {
            Some(s) => Some(saml::SamlMaterial::load(s, base_dir)?),
            None => None,
        };
        let assertion_signer = match spec.oidc.as_ref().and_then(|o| {
            o.private_key_file
                .as_ref()
                .map(|f| (f, o.private_key_alg.as_deref()))
        }) {
            Some((file, alg)) => {
                use rustls::pki_types::pem::PemObject;
                let path = base_dir.join(file);
                let der = rustls::pki_types::PrivatePkcs8KeyDer::from_pem_file(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let alg = crate::keys::Alg::parse(alg.unwrap_or("ES256"))
                    .ok_or("unsupported private_key_alg")?;
                Some(
                    crate::keys::Signer::from_pkcs8(alg, der.secret_pkcs8_der())
                        .map_err(|e| format!("{}: {e}", path.display()))?,
                )
            }
            None => None,
        };
        Ok(Self {
            spec,
            owner: owner.map(str::to_string),
            client_secret,
            saml,
            assertion_signer,
        })
    }

    pub fn id(&self) -> &str {
        &self.spec.id
    }

    pub fn client_secret(&self) -> Option<&str> {
        self.client_secret.as_deref()
    }

    /// Where the upstream sends the browser back (OIDC redirect URI), per tenant.
    pub fn callback_url(&self, tenant: &Tenant) -> String {
        format!(
            "{}/federation/{}/callback",
            tenant.spec.issuer, self.spec.id
        )
    }
}

/// Seals an inline client secret of a definition sent to the admin API or the CLI, so the
/// database never holds it in clear.
pub fn seal_inline_secret(
    spec: &mut ProviderSpec,
    tenant: &str,
    master: &crate::keys::MasterKey,
) -> Result<(), InternalError> {
    if let Some(o) = &mut spec.oidc
        && let Some(secret) = o.client_secret.take()
    {
        let sealed = master.seal(secret.as_bytes(), &secret_aad(tenant, &spec.id))?;
        o.client_secret_sealed = Some(base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            sealed,
        ));
    }
    Ok(())
}

/// Reads `providers/*.toml`; a file that does not parse or check is reported and skipped. A file
/// (or the directory) that cannot be read right now is not a deleted one: the provider it
/// defined in `previous` stays (and the error is reported).
pub fn load_files(
    dir: &std::path::Path,
    previous: &HashMap<String, Arc<Provider>>,
    base_dir: &std::path::Path,
    master: &crate::keys::MasterKey,
    public_base_url: &str,
    allow_inline_secret: bool,
) -> (HashMap<String, Arc<Provider>>, Vec<String>) {
    let mut providers = HashMap::new();
    let mut errors = Vec::new();
    let unreadable_dir = |e: std::io::Error| {
        let kept = format!("{}: {e} (every provider kept as it was)", dir.display());
        (previous.clone(), vec![kept])
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (providers, errors),
        Err(e) => return unreadable_dir(e),
    };
    let mut paths = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => paths.push(entry.path()),
            Err(e) => return unreadable_dir(e),
        }
    }
    paths.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    paths.sort();
    for path in paths {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                if let Some(running) = previous.get(&stem) {
                    providers.insert(stem.clone(), running.clone());
                }
                errors.push(format!(
                    "{}: {e} (the running provider of that id is kept)",
                    path.display()
                ));
                continue;
            }
        };
        let text = text.replace(crate::config::tenant::PUBLIC_BASE_URL, public_base_url);
        let parsed = toml::from_str::<ProviderSpec>(&text)
            .map_err(|e| e.to_string())
            .and_then(|mut spec| {
                if spec.id.is_empty() {
                    spec.id = stem.clone();
                }
                if spec.id != stem {
                    return Err(format!("id `{}` differs from the file name", spec.id));
                }
                Provider::resolve(spec, None, allow_inline_secret, base_dir, master)
            });
        match parsed {
            Ok(p) => {
                providers.insert(p.spec.id.clone(), Arc::new(p));
            }
            Err(e) => errors.push(format!("{}: {e}", path.display())),
        }
    }
    (providers, errors)
}

// ---------------------------------------------------------------------------------------------
// Runtime lookups

/// Federation's share of the application state.
#[derive(Debug)]
pub struct Federation {
    /// Providers from `providers/*.toml` by id (offered by the tenants that list them).
    pub files: ArcSwap<HashMap<String, Arc<Provider>>>,
    /// Runtime providers by `tenant\0id` (`None`: known not to exist). Other nodes' changes
    /// arrive through the change channel; the TTL is the safety net.
    dynamic: moka::future::Cache<String, Option<Arc<Provider>>>,
    /// The runtime providers a tenant lists on its sign-in page.
    listed: moka::future::Cache<String, Arc<Vec<(String, String)>>>,
    /// Upstream discovery documents, JWK Sets and SAML metadata.
    pub docs: metadata::DocCache,
}

/// Prefix of a change notification for a runtime provider: `provider:<tenant> <id>`.
pub const PROVIDER_PREFIX: &str = "provider:";
/// At most this many runtime providers are shown as buttons; the rest are found by
/// home-realm discovery.
const LISTED_MAX: i64 = 20;

impl Federation {
    pub fn new(http: reqwest::Client, ttl_seconds: u64) -> Self {
        let ttl = std::time::Duration::from_secs(ttl_seconds.max(1));
        Self {
            files: ArcSwap::from_pointee(HashMap::new()),
            dynamic: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
            listed: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build(),
            docs: metadata::DocCache::new(http),
        }
    }

    /// Forgets what this node knows of a runtime provider (it changed here or on another node).
    pub async fn forget(&self, tenant: &str, id: &str) {
        self.dynamic.invalidate(&format!("{tenant}\0{id}")).await;
        self.listed.invalidate(tenant).await;
    }
}

/// The enabled provider `id` of `tenant`, if the tenant offers it.
pub async fn find(
    state: &AppState,
    tenant: &Tenant,
    id: &str,
) -> Result<Option<Arc<Provider>>, InternalError> {
    if !valid_id(id) {
        return Ok(None);
    }
    if tenant.spec.providers.iter().any(|p| p == id) {
        return Ok(state
            .federation
            .files
            .load()
            .get(id)
            .filter(|p| p.spec.enabled)
            .cloned());
    }
    let slug = tenant.slug().to_string();
    let key = format!("{slug}\0{id}");
    let id = id.to_string();
    let st = state.clone();
    let found = state
        .federation
        .dynamic
        .try_get_with(key, async move {
            let Some(row) = st.store.find_provider_row(&slug, &id).await? else {
                return Ok::<_, InternalError>(None);
            };
            let spec: ProviderSpec = serde_json::from_str(&row.spec)?;
            match Provider::resolve(spec, Some(&slug), false, &st.config.base_dir, &st.master) {
                Ok(p) => Ok(Some(Arc::new(p))),
                Err(e) => {
                    tracing::error!(tenant = %slug, provider = %id, error = %e, "stored provider cannot be used");
                    Ok(None)
                }
            }
        })
        .await
        .map_err(|e| InternalError::Other(e.to_string()))?;
    Ok(found.filter(|p| p.spec.enabled))
}

/// Whether `client` may use provider `id` (IdentityServer's IdentityProviderRestrictions).
pub fn client_allows(client: &Client, id: &str) -> bool {
    let allowed = &client.spec.interactive.identity_providers;
    allowed.is_empty() || allowed.iter().any(|a| a == id)
}

/// Whether `client` offers the local sign-in form.
pub fn local_login_allowed(client: &Client) -> bool {
    !client.spec.interactive.disable_local_login && client_allows_local(client)
}

fn client_allows_local(client: &Client) -> bool {
    let allowed = &client.spec.interactive.identity_providers;
    allowed.is_empty() || allowed.iter().any(|a| a == LOCAL)
}

/// The providers shown as buttons to `client`'s users: (id, display name).
pub async fn offered(
    state: &AppState,
    tenant: &Tenant,
    client: &Client,
) -> Result<Vec<(String, String)>, InternalError> {
    let mut out = Vec::new();
    let restricted = &client.spec.interactive.identity_providers;
    if !restricted.is_empty() {
        for id in restricted.iter().filter(|i| *i != LOCAL) {
            if let Some(p) = find(state, tenant, id).await? {
                out.push((p.spec.id.clone(), p.spec.display().to_string()));
            }
        }
        return Ok(out);
    }
    let files = state.federation.files.load();
    for id in &tenant.spec.providers {
        if let Some(p) = files.get(id).filter(|p| p.spec.enabled && p.spec.listed) {
            out.push((p.spec.id.clone(), p.spec.display().to_string()));
        }
    }
    let slug = tenant.slug().to_string();
    let store = state.store.clone();
    let dynamic = state
        .federation
        .listed
        .try_get_with(slug.clone(), async move {
            let rows = store
                .list_provider_rows(&slug, true, "", LISTED_MAX)
                .await?;
            Ok::<_, InternalError>(Arc::new(
                rows.into_iter()
                    .map(|r| {
                        let name = if r.display_name.is_empty() {
                            r.id.clone()
                        } else {
                            r.display_name
                        };
                        (r.id, name)
                    })
                    .collect::<Vec<_>>(),
            ))
        })
        .await
        .map_err(|e| InternalError::Other(e.to_string()))?;
    out.extend(dynamic.iter().cloned());
    Ok(out)
}

/// The provider that claims the domain of `email` for `tenant`, if any.
pub async fn provider_for_email(
    state: &AppState,
    tenant: &Tenant,
    email: &str,
) -> Result<Option<String>, InternalError> {
    let Some((_, domain)) = email.rsplit_once('@') else {
        return Ok(None);
    };
    let domain = domain.trim().to_ascii_lowercase();
    if domain.is_empty() || domain.len() > 253 {
        return Ok(None);
    }
    let files = state.federation.files.load();
    for id in &tenant.spec.providers {
        if let Some(p) = files.get(id)
            && p.spec.domains.contains(&domain)
        {
            return Ok(Some(id.clone()));
        }
    }
    state
        .store
        .provider_for_domain(tenant.slug(), &domain)
        .await
}

/// What home-realm discovery decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Realm {
    /// Send the browser to this provider.
    Provider(String),
    /// Show the sign-in page.
    Page,
}

/// Home-realm discovery, in this order: an explicit hint (`acr_values=idp:<id>` as
/// IdentityServer reads it, or `idp_hint`); the domain of `login_hint`; the client's only
/// provider when it allows no local login; otherwise the sign-in page.
pub async fn home_realm(
    state: &AppState,
    tenant: &Tenant,
    client: &Client,
    request: &crate::validation::authorize::ValidatedAuthorize,
) -> Result<Realm, InternalError> {
    let hint = request
        .acr_values
        .iter()
        .find_map(|a| a.strip_prefix("idp:"))
        .or(request.idp_hint.as_deref());
    if let Some(id) = hint {
        if id == LOCAL {
            return Ok(Realm::Page);
        }
        if client_allows(client, id) && find(state, tenant, id).await?.is_some() {
            return Ok(Realm::Provider(id.to_string()));
        }
        tracing::info!(tenant = %tenant.slug(), provider = id, "idp hint names no provider this client may use; showing the sign-in page");
    }
    if let Some(hint) = &request.login_hint
        && let Some(id) = provider_for_email(state, tenant, hint).await?
        && client_allows(client, &id)
        && find(state, tenant, &id).await?.is_some()
    {
        return Ok(Realm::Provider(id));
    }
    if !local_login_allowed(client) {
        let only: Vec<&String> = client
            .spec
            .interactive
            .identity_providers
            .iter()
            .filter(|i| *i != LOCAL)
            .collect();
        if let [one] = only.as_slice() {
            return Ok(Realm::Provider((*one).clone()));
        }
    }
    Ok(Realm::Page)
}

// ---------------------------------------------------------------------------------------------
// The round trip

/// What the upstream state record holds (kind `upstream_state`, keyed by the hash of the
/// `state` / RelayState value, single use, expiring).
#[derive(Serialize, Deserialize)]
pub struct UpstreamState {
    /// The pending interaction this round trip belongs to.
    pub interaction: String,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_verifier: Option<String>,
    /// SAML: the AuthnRequest ID the response must be InResponseTo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// The nonce and the PKCE verifier stay out of logs.
impl std::fmt::Debug for UpstreamState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamState")
            .field("provider", &self.provider)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

pub const STATE_KIND: &str = "upstream_state";

/// An identity an upstream provider vouched for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExternalIdentity {
    pub provider: String,
    /// The upstream's stable subject (OIDC `sub`, SAML NameID).
    pub subject: String,
    /// Claims already mapped to local names.
    pub claims: Map<String, Value>,
    /// RFC 8176 values the upstream reported.
    pub amr: Vec<String>,
    pub acr: Option<String>,
    pub session: UpstreamSession,
}

/// What the session keeps to end the upstream session later.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct UpstreamSession {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_id_format: Option<String>,
}

/// The upstream id token stays out of logs.
impl std::fmt::Debug for UpstreamSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSession")
            .field("sid", &self.sid)
            .field("id_token", &self.id_token.is_some())
            .field("name_id_format", &self.name_id_format)
            .finish_non_exhaustive()
    }
}

/// Why a federated sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// The upstream could not be reached or answered nonsense.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// The upstream's answer (or the browser's) failed a check: a security event.
    #[error("{0}")]
    Rejected(String),
    /// The user is not allowed in (no linked account, account disabled).
    #[error("{0}")]
    Denied(String),
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// Claims every provider maps without configuration (OIDC names, and the usual SAML attribute
/// names: LDAP/eduPerson OIDs, friendly names and the WS-Federation claim URIs).
const DEFAULT_MAPPINGS: &[(&str, &[&str])] = &[
    (
        "email",
        &[
            "email",
            "mail",
            "urn:oid:0.9.2342.19200300.100.1.3",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
        ],
    ),
    ("email_verified", &["email_verified"]),
    (
        "name",
        &[
            "name",
            "displayName",
            "urn:oid:2.16.840.1.113730.3.1.241",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
            "cn",
        ],
    ),
    (
        "given_name",
        &[
            "given_name",
            "givenName",
            "urn:oid:2.5.4.42",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
        ],
    ),
    (
        "family_name",
        &[
            "family_name",
            "sn",
            "surname",
            "urn:oid:2.5.4.4",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
        ],
    ),
    (
        "preferred_username",
        &[
            "preferred_username",
            "uid",
            "urn:oid:0.9.2342.19200300.100.1.1",
        ],
    ),
    (
        "groups",
        &[
            "groups",
            "memberOf",
            "urn:oid:1.3.6.1.4.1.5923.1.5.1.1",
            "http://schemas.xmlsoap.org/claims/Group",
        ],
    ),
];

/// Maps upstream claims to local ones: the provider's own mapping first, then the defaults.
pub fn map_claims(spec: &ProviderSpec, upstream: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (local, remote) in &spec.claims {
        if let Some(v) = upstream.get(remote) {
            out.insert(local.clone(), v.clone());
        }
    }
    for (local, names) in DEFAULT_MAPPINGS {
        if out.contains_key(*local) {
            continue;
        }
        if let Some(v) = names.iter().find_map(|n| upstream.get(*n)) {
            out.insert((*local).to_string(), v.clone());
        }
    }
    // Local names only ever hold what the mapping allowed: never `sub`, `iss` and the like.
    for reserved in [
        "sub", "iss", "aud", "exp", "iat", "nbf", "sid", "idp", "amr", "acr",
    ] {
        out.remove(reserved);
    }
    out
}

/// The username a provisioned user gets: unique per provider and upstream subject.
fn provisioned_username(provider: &str, upstream_subject: &str) -> String {
    let mut s = format!("{provider}:{upstream_subject}");
    if s.len() > 200 {
        let digest = crate::tokens::handle_hash(upstream_subject);
        s = format!("{provider}:{digest}");
    }
    s
}

/// The local user an external identity signs in as: the linked one; or, when the provider
/// allows it, the local user with the same verified email (linked now); or a new user (linked
/// now). Returns the user's subject.
pub async fn link_or_provision(
    state: &AppState,
    tenant: &Tenant,
    provider: &Provider,
    ext: &ExternalIdentity,
) -> Result<String, FederationError> {
    let slug = tenant.slug();
    let now = state.now();
    let username = provisioned_username(&ext.provider, &ext.subject);
    if let Some(subject) = state
        .store
        .find_link(slug, &ext.provider, &ext.subject)
        .await?
    {
        let user = crate::endpoints::account::find_subject_in(state, tenant, &subject).await?;
        let Some(mut user) = user.filter(|u| u.enabled) else {
            return Err(FederationError::Denied(
                "the account linked to this identity is disabled or gone".into(),
            ));
        };
        // A provisioned user's claims follow the upstream's.
        if user.username == username && user.claims != ext.claims {
            user.claims = ext.claims.clone();
            state
                .store
                .upsert_user(slug, &user, "federation", now)
                .await?;
        }
        return Ok(subject);
    }
    if provider.spec.provisioning.link_by_verified_email
        && ext.claims.get("email_verified") == Some(&Value::Bool(true))
        && let Some(email) = ext.claims.get("email").and_then(Value::as_str)
    {
        let mut candidates: Vec<UserSpec> = tenant
            .spec
            .users
            .iter()
            .filter(|u| {
                u.claims
                    .get("email")
                    .and_then(Value::as_str)
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .cloned()
            .collect();
        candidates.extend(state.store.find_users_by_email(slug, email).await?);
        // Exactly one local account, or nothing is linked (ambiguity is not guessed at).
        if let [user] = candidates.as_slice()
            && user.enabled
        {
            if state
                .store
                .insert_link(slug, &ext.provider, &ext.subject, &user.subject, now)
                .await?
            {
                tracing::info!(target: "security", event = "account_linked", tenant = slug, provider = %ext.provider, subject = %user.subject, "external identity linked by verified email");
            }
            return Ok(user.subject.clone());
        }
    }
    if !provider.spec.provisioning.jit {
        return Err(FederationError::Denied(
            "there is no account for this identity here; ask an administrator to create one".into(),
        ));
    }
    let user = UserSpec {
        subject: crate::tokens::new_jti(),
        username,
        password_hash: String::new(),
        totp_secret: None,
        enabled: true,
        claims: ext.claims.clone(),
    };
    state
        .store
        .upsert_user(slug, &user, "federation", now)
        .await?;
    if state
        .store
        .insert_link(slug, &ext.provider, &ext.subject, &user.subject, now)
        .await?
    {
        tracing::info!(target: "security", event = "user_provisioned", tenant = slug, provider = %ext.provider, subject = %user.subject, "user created on first sign-in");
        return Ok(user.subject);
    }
    // Another request linked this identity first: use its user, drop ours.
    state.store.delete_user(slug, &user.subject).await?;
    state
        .store
        .find_link(slug, &ext.provider, &ext.subject)
        .await?
        .ok_or_else(|| FederationError::Internal(InternalError::Other("link vanished".into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc(id: &str) -> ProviderSpec {
        toml::from_str(&format!(
            "id = \"{id}\"\nkind = \"oidc\"\n[oidc]\nissuer = \"https://idp.example\"\nclient_id = \"c\"\n"
        ))
        .unwrap()
    }

    #[test]
    fn provider_definitions_are_checked_as_a_whole() {
        assert!(oidc("corp").check().is_ok());
        assert!(oidc("local").check().is_err());
        assert!(oidc("Bad Id").check().is_err());
        let mut p = oidc("corp");
        p.oidc.as_mut().unwrap().issuer = "http://idp.example".into();
        p.domains = vec!["Corp.Example".into()];
        assert_eq!(p.check().unwrap_err().len(), 2);
        let mut p = oidc("corp");
        p.kind = ProviderKind::Saml;
        assert!(p.check().is_err());
    }

    #[test]
    fn inline_secrets_are_for_demos_and_runtime_secrets_are_sealed() {
        let master = crate::keys::MasterKey::from_bytes(&[3u8; 32]).unwrap();
        let dir = std::path::Path::new(".");
        let mut spec = oidc("corp");
        spec.oidc.as_mut().unwrap().client_secret = Some("s3cret".into());
        assert!(Provider::resolve(spec.clone(), None, false, dir, &master).is_err());
        let p = Provider::resolve(spec.clone(), None, true, dir, &master).unwrap();
        assert_eq!(p.client_secret(), Some("s3cret"));
        // What the admin API stores: sealed, bound to the provider id, opened when loaded.
        seal_inline_secret(&mut spec, "acme", &master).unwrap();
        let o = spec.oidc.as_ref().unwrap();
        assert!(o.client_secret.is_none() && o.client_secret_sealed.is_some());
        assert!(!serde_json::to_string(&spec).unwrap().contains("s3cret"));
        assert!(!format!("{spec:?}").contains("s3cret"));
        let p = Provider::resolve(spec.clone(), Some("acme"), false, dir, &master).unwrap();
        assert_eq!(p.client_secret(), Some("s3cret"));
        // Copied into another tenant, or under another id, it does not open.
        assert!(Provider::resolve(spec.clone(), Some("globex"), false, dir, &master).is_err());
        spec.id = "other".into();
        assert!(Provider::resolve(spec, Some("acme"), false, dir, &master).is_err());
    }

    #[test]
    fn claims_map_by_the_providers_table_then_the_usual_names() {
        let mut spec = oidc("corp");
        spec.claims
            .insert("department".into(), "urn:oid:2.5.4.11".into());
        let upstream = serde_json::json!({
            "sub": "u1",
            "urn:oid:0.9.2342.19200300.100.1.3": "ann@corp.example",
            "urn:oid:2.5.4.11": "Sales",
            "givenName": "Ann",
            "iss": "https://evil"
        });
        let m = map_claims(&spec, upstream.as_object().unwrap());
        assert_eq!(m["email"], "ann@corp.example");
        assert_eq!(m["department"], "Sales");
        assert_eq!(m["given_name"], "Ann");
        assert!(!m.contains_key("sub") && !m.contains_key("iss"));
    }
}
