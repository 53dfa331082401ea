//! Upstream provider definitions, by who writes them. The trust boundary is in the types:
//!
//! - [`ProviderFile`]: an operator's `providers/<id>.toml`. It may name files (only under the
//!   directories the server configuration allows, see `ServerConfig::definition_file`) and
//!   environment variables (never the server's own `PORTCULLIS_*`), which are read when the file
//!   loads; what it yields is a [`Definition<Plain>`].
//! - [`Definition<Plain>`]: what the admin API and the CLI send. Values only: it has no field that
//!   could name a file, a directory or an environment variable, and none that turns on account
//!   linking (an operator decision, made in the tenant file). Unknown fields are refused.
//! - [`Definition<Sealed>`]: what the store keeps: the same with every secret sealed under the
//!   master key, bound to its tenant and provider id. It is what the API shows (secrets as
//!   `true`), never what it accepts.

use crate::outbound::Policy;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `idp` of users who signed in with a local account.
pub const LOCAL: &str = "local";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Oidc,
    Saml,
}

/// A secret as the admin API receives it or a file yields it: write-only (it has no
/// `Serialize`, so it cannot reach an answer), kept out of `Debug`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Plain(String);

impl Plain {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Plain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A secret as the store keeps it: AES-256-GCM-SIV under the master key (base64url), bound to
/// the tenant and the provider id, so a copy in another definition does not open.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(String);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<sealed>")
    }
}

/// What the API shows for a secret: that it is set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Set;

impl Serialize for Set {
    fn serialize<Se: serde::Serializer>(&self, s: Se) -> Result<Se::Ok, Se::Error> {
        s.serialize_bool(true)
    }
}

/// One upstream provider, as sent to the admin API (`S` = [`Plain`]) or stored (`S` =
/// [`Sealed`]). On the wire it is `kind` plus an `oidc` or `saml` section (see [`Wire`]); in
/// memory the protocol and its settings are one value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    try_from = "Wire<S>",
    into = "Wire<S>",
    bound(
        serialize = "S: Serialize + Clone",
        deserialize = "S: Deserialize<'de>"
    )
)]
pub struct Definition<S> {
    /// Defaults to the file name or the path's id.
    pub id: String,
    pub display_name: String,
    pub enabled: bool,
    /// Shown as a button on the sign-in page (home-realm discovery works either way).
    pub listed: bool,
    /// Email domains whose users this provider signs in (home-realm discovery).
    pub domains: Vec<String>,
    pub protocol: Protocol<S>,
    /// Local claim = upstream claim (OIDC) or attribute name (SAML); added to the defaults.
    pub claims: BTreeMap<String, String>,
    pub provisioning: Provisioning,
}

/// The protocol an upstream speaks, with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Protocol<S> {
    Oidc(OidcDefinition<S>),
    Saml(SamlDefinition<S>),
}

/// A definition as JSON and TOML spell it: `kind = "oidc"` and an `[oidc]` section (or `saml`).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "S: Deserialize<'de>"))]
struct Wire<S> {
    #[serde(default)]
    id: String,
    kind: ProviderKind,
    #[serde(default)]
    display_name: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "yes")]
    listed: bool,
    #[serde(default)]
    domains: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oidc: Option<OidcDefinition<S>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    saml: Option<SamlDefinition<S>>,
    #[serde(default)]
    claims: BTreeMap<String, String>,
    #[serde(default)]
    provisioning: Provisioning,
}

impl<S> TryFrom<Wire<S>> for Definition<S> {
    type Error = String;
    fn try_from(w: Wire<S>) -> Result<Self, String> {
        let protocol = protocol_of(w.kind, w.oidc, w.saml)?;
        Ok(Self {
            id: w.id,
            display_name: w.display_name,
            enabled: w.enabled,
            listed: w.listed,
            domains: w.domains,
            protocol,
            claims: w.claims,
            provisioning: w.provisioning,
        })
    }
}

/// The protocol a `kind` and its sections describe: exactly the section the kind names.
fn protocol_of<S>(
    kind: ProviderKind,
    oidc: Option<OidcDefinition<S>>,
    saml: Option<SamlDefinition<S>>,
) -> Result<Protocol<S>, String> {
    match (kind, oidc, saml) {
        (ProviderKind::Oidc, Some(o), None) => Ok(Protocol::Oidc(o)),
        (ProviderKind::Saml, None, Some(s)) => Ok(Protocol::Saml(s)),
        (ProviderKind::Oidc, _, _) => {
            Err("an oidc provider needs an oidc section and no saml".into())
        }
        (ProviderKind::Saml, _, _) => {
            Err("a saml provider needs a saml section and no oidc".into())
        }
    }
}

impl<S> From<Definition<S>> for Wire<S> {
    fn from(d: Definition<S>) -> Self {
        let kind = d.kind();
        let (oidc, saml) = match d.protocol {
            Protocol::Oidc(o) => (Some(o), None),
            Protocol::Saml(s) => (None, Some(s)),
        };
        Self {
            id: d.id,
            kind,
            display_name: d.display_name,
            enabled: d.enabled,
            listed: d.listed,
            domains: d.domains,
            oidc,
            saml,
            claims: d.claims,
            provisioning: d.provisioning,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, bound(deserialize = "S: Deserialize<'de>"))]
pub struct OidcDefinition<S> {
    pub issuer: String,
    /// Defaults to `{issuer}/.well-known/openid-configuration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_url: Option<String>,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<S>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Also call the userinfo endpoint and merge its claims.
    #[serde(default)]
    pub fetch_userinfo: bool,
    /// `client_secret_basic` (default), `client_secret_post`, or `private_key_jwt` (RFC 7523
    /// §2.2) with `private_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// private_key_jwt: the PKCS#8 PEM key that signs client assertions (its public key is
    /// registered upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<S>,
    /// Its algorithm (default ES256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_alg: Option<String>,
    /// id_token signature algorithms accepted; default RS256, PS256, ES256, EdDSA.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_algorithms: Vec<String>,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "profile".into(), "email".into()]
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, bound(deserialize = "S: Deserialize<'de>"))]
pub struct SamlDefinition<S> {
    /// The IdP's metadata: fetched from this URL (through the outbound guard, cached) …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
    /// … or given as XML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_xml: Option<String>,
    /// The SP's signing key (PEM) and certificate (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_signing_key: Option<S>,
    pub sp_certificate: String,
    /// With these, encrypted assertions are accepted (and the SP metadata offers the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_encryption_key: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_encryption_certificate: Option<String>,
    /// `redirect` (default) or `post` for the AuthnRequest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    #[serde(default = "default_skew")]
    pub max_clock_skew_seconds: i64,
}

fn default_skew() -> i64 {
    120
}

/// What happens the first time an external identity signs in. Linking to an existing local
/// account by verified email is not here: it is the operator's decision, per tenant, in the
/// tenant file (`link_by_verified_email`), and only for file providers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Provisioning {
    /// Create a local user the first time an external identity signs in.
    pub jit: bool,
}

impl Default for Provisioning {
    fn default() -> Self {
        Self { jit: true }
    }
}

impl<S> Definition<S> {
    /// The same definition with each secret replaced by `f(secret)`.
    pub fn map_secrets<T, E>(
        self,
        mut f: impl FnMut(&'static str, S) -> Result<T, E>,
    ) -> Result<Definition<T>, E> {
        let protocol = match self.protocol {
            Protocol::Oidc(o) => Protocol::Oidc(OidcDefinition {
                client_secret: o.client_secret.map(|s| f("client_secret", s)).transpose()?,
                private_key: o.private_key.map(|s| f("private_key", s)).transpose()?,
                issuer: o.issuer,
                discovery_url: o.discovery_url,
                client_id: o.client_id,
                scopes: o.scopes,
                fetch_userinfo: o.fetch_userinfo,
                token_endpoint_auth_method: o.token_endpoint_auth_method,
                private_key_alg: o.private_key_alg,
                allowed_algorithms: o.allowed_algorithms,
            }),
            Protocol::Saml(s) => Protocol::Saml(SamlDefinition {
                sp_signing_key: s
                    .sp_signing_key
                    .map(|k| f("sp_signing_key", k))
                    .transpose()?,
                sp_encryption_key: s
                    .sp_encryption_key
                    .map(|k| f("sp_encryption_key", k))
                    .transpose()?,
                metadata_url: s.metadata_url,
                metadata_xml: s.metadata_xml,
                sp_certificate: s.sp_certificate,
                sp_encryption_certificate: s.sp_encryption_certificate,
                binding: s.binding,
                max_clock_skew_seconds: s.max_clock_skew_seconds,
            }),
        };
        Ok(Definition {
            id: self.id,
            display_name: self.display_name,
            enabled: self.enabled,
            listed: self.listed,
            domains: self.domains,
            protocol,
            claims: self.claims,
            provisioning: self.provisioning,
        })
    }

    pub fn kind(&self) -> ProviderKind {
        match self.protocol {
            Protocol::Oidc(_) => ProviderKind::Oidc,
            Protocol::Saml(_) => ProviderKind::Saml,
        }
    }

    /// The OIDC settings, for an OIDC provider.
    pub fn oidc(&self) -> Option<&OidcDefinition<S>> {
        match &self.protocol {
            Protocol::Oidc(o) => Some(o),
            Protocol::Saml(_) => None,
        }
    }

    /// The SAML settings, for a SAML provider.
    pub fn saml(&self) -> Option<&SamlDefinition<S>> {
        match &self.protocol {
            Protocol::Saml(s) => Some(s),
            Protocol::Oidc(_) => None,
        }
    }

    pub fn display(&self) -> &str {
        if self.display_name.is_empty() {
            &self.id
        } else {
            &self.display_name
        }
    }

    /// The upstream's own name for itself, as far as the definition says: the OIDC issuer (the
    /// SAML entity id comes from the metadata).
    pub fn issuer(&self) -> Option<&str> {
        self.oidc().map(|o| o.issuer.as_str())
    }

    /// Checks the definition as a whole; every problem is reported. URLs must be https, and an
    /// IP-literal host must be one the outbound guard lets through.
    pub fn check(&self, outbound: &Policy) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        let url = |key: &str, u: &str, errors: &mut Vec<String>| {
            if let Err(e) = outbound.check_url(u) {
                errors.push(format!("{key}: {e}"));
            }
        };
        if !valid_id(&self.id) {
            errors.push(format!(
                "id `{}` must be 1-64 of a-z, 0-9, `-`, `_`, `.`, and not `local`",
                self.id.chars().take(80).collect::<String>()
            ));
        }
        if self.display_name.len() > 200 {
            errors.push("display_name is longer than 200 bytes".into());
        }
        if self.domains.len() > 100 {
            errors.push("more than 100 domains".into());
        }
        for d in &self.domains {
            if !valid_domain(d) {
                errors.push(format!(
                    "domain `{}` is not a lower-case DNS name",
                    d.chars().take(80).collect::<String>()
                ));
            }
        }
        match &self.protocol {
            Protocol::Oidc(o) => {
                url("oidc.issuer", &o.issuer, &mut errors);
                if let Some(u) = &o.discovery_url {
                    url("oidc.discovery_url", u, &mut errors);
                }
                if o.client_id.is_empty() {
                    errors.push("oidc.client_id is required".into());
                }
                if !o.scopes.iter().any(|s| s == "openid") {
                    errors.push("oidc.scopes must include openid".into());
                }
                match o.token_endpoint_auth_method.as_deref() {
                    None | Some("client_secret_basic" | "client_secret_post") => {
                        if o.private_key.is_some() {
                            errors.push("oidc.private_key goes with token_endpoint_auth_method = \"private_key_jwt\"".into());
                        }
                    }
                    Some("private_key_jwt") => {
                        if o.private_key.is_none() {
                            errors.push("private_key_jwt needs oidc.private_key".into());
                        }
                        if o.client_secret.is_some() {
                            errors.push("private_key_jwt takes no client secret".into());
                        }
                    }
                    Some(_) => errors.push(
                        "oidc.token_endpoint_auth_method is not client_secret_basic, client_secret_post or private_key_jwt".into(),
                    ),
                }
                if let Some(a) = &o.private_key_alg
                    && crate::keys::Alg::parse(a).is_none()
                {
                    errors.push("oidc.private_key_alg is not supported".into());
                }
                if o.allowed_algorithms
                    .iter()
                    .any(|a| crate::keys::Alg::parse(a).is_none())
                {
                    errors.push("oidc.allowed_algorithms names an unsupported algorithm".into());
                }
            }
            Protocol::Saml(s) => {
                if s.metadata_xml.is_some() == s.metadata_url.is_some() {
                    errors.push("give one of saml.metadata_url and saml.metadata_xml".into());
                }
                if let Some(u) = &s.metadata_url {
                    url("saml.metadata_url", u, &mut errors);
                }
                if s.sp_signing_key.is_none() {
                    errors.push("saml.sp_signing_key is required".into());
                }
                if s.sp_encryption_key.is_some() != s.sp_encryption_certificate.is_some() {
                    errors.push(
                        "give both saml.sp_encryption_key and saml.sp_encryption_certificate, or neither"
                            .into(),
                    );
                }
                if !(0..=600).contains(&s.max_clock_skew_seconds) {
                    errors.push("saml.max_clock_skew_seconds must be 0-600".into());
                }
                if let Some(b) = &s.binding
                    && b != "redirect"
                    && b != "post"
                {
                    errors.push("saml.binding is not redirect or post".into());
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl Definition<Plain> {
    /// Seals every secret for the store. A secret the definition leaves out is taken from
    /// `previous` (a replacement without a secret keeps the stored one).
    pub fn seal(
        self,
        tenant: &str,
        master: &crate::keys::MasterKey,
        previous: Option<&Definition<Sealed>>,
    ) -> Result<Definition<Sealed>, crate::error::InternalError> {
        let aad = secret_aad(tenant, &self.id);
        let mut sealed = self.map_secrets(|_, p: Plain| {
            master
                .seal(p.0.as_bytes(), &aad)
                .map(|b| Sealed(base64::Engine::encode(&B64, b)))
        })?;
        match (
            &mut sealed.protocol,
            previous.filter(|p| p.id == sealed.id).map(|p| &p.protocol),
        ) {
            (Protocol::Oidc(o), Some(Protocol::Oidc(po))) => {
                keep(&mut o.client_secret, &po.client_secret);
                keep(&mut o.private_key, &po.private_key);
            }
            (Protocol::Saml(s), Some(Protocol::Saml(ps))) => {
                keep(&mut s.sp_signing_key, &ps.sp_signing_key);
                keep(&mut s.sp_encryption_key, &ps.sp_encryption_key);
            }
            _ => {}
        }
        Ok(sealed)
    }
}

fn keep(slot: &mut Option<Sealed>, previous: &Option<Sealed>) {
    if slot.is_none() {
        slot.clone_from(previous);
    }
}

impl Definition<Sealed> {
    /// Opens the secrets of a stored definition of `tenant`.
    pub fn open(
        self,
        tenant: &str,
        master: &crate::keys::MasterKey,
    ) -> Result<Definition<Plain>, String> {
        let aad = secret_aad(tenant, &self.id);
        self.map_secrets(|field, s: Sealed| {
            let bytes = base64::Engine::decode(&B64, s.0.as_bytes())
                .map_err(|_| format!("the sealed {field} is not base64url"))?;
            let plain = master
                .open(&bytes, &aad)
                .map_err(|_| format!("the sealed {field} does not open"))?;
            String::from_utf8(plain)
                .map(Plain)
                .map_err(|_| format!("the sealed {field} is not text"))
        })
    }
}

impl<S: Clone> Definition<S> {
    /// The definition as the admin API shows it (a stored one, or a file provider's): each
    /// secret only as `true`.
    pub fn public_view(&self) -> serde_json::Value {
        self.clone()
            .map_secrets(|_, _| Ok::<_, std::convert::Infallible>(Set))
            .ok()
            .and_then(|d| serde_json::to_value(d).ok())
            .unwrap_or(serde_json::Value::Null)
    }
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The associated data that binds a sealed provider secret to its tenant and provider: a
/// sealed value copied into another tenant's (or provider's) definition does not open.
fn secret_aad(tenant: &str, id: &str) -> Vec<u8> {
    format!("provider-secret\0{tenant}\0{id}").into_bytes()
}

pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id != LOCAL
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-'))
        && d.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

// ---------------------------------------------------------------------------------------------
// Operator files

/// `providers/<id>.toml`: the operator's definition. Secrets come inline (demos only), from an
/// environment variable or from a file; keys, certificates and metadata from files. Paths are
/// relative to the directory Portcullis runs in and must lie under the directories the server
/// configuration allows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    #[serde(default)]
    pub id: String,
    pub kind: ProviderKind,
    #[serde(default)]
    pub display_name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "yes")]
    pub listed: bool,
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub oidc: Option<OidcFile>,
    #[serde(default)]
    pub saml: Option<SamlFile>,
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    #[serde(default)]
    pub provisioning: Provisioning,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcFile {
    pub issuer: String,
    #[serde(default)]
    pub discovery_url: Option<String>,
    pub client_id: String,
    /// Inline secret: for demos only (a warning is logged; refused without development
    /// certificates). Prefer the two below.
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub client_secret_env: Option<String>,
    #[serde(default)]
    pub client_secret_file: Option<String>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub fetch_userinfo: bool,
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub private_key_file: Option<String>,
    #[serde(default)]
    pub private_key_alg: Option<String>,
    #[serde(default)]
    pub allowed_algorithms: Vec<String>,
}

/// Secrets stay out of logs: only where they come from.
impl std::fmt::Debug for OidcFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcFile")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.is_some())
            .field("client_secret_env", &self.client_secret_env)
            .field("client_secret_file", &self.client_secret_file)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlFile {
    #[serde(default)]
    pub metadata_file: Option<String>,
    #[serde(default)]
    pub metadata_url: Option<String>,
    pub sp_signing_key_file: String,
    pub sp_certificate_file: String,
    #[serde(default)]
    pub sp_encryption_key_file: Option<String>,
    #[serde(default)]
    pub sp_encryption_certificate_file: Option<String>,
    #[serde(default)]
    pub binding: Option<String>,
    #[serde(default = "default_skew")]
    pub max_clock_skew_seconds: i64,
}

/// What loading a provider file may read: files through `read` (which confines paths), and
/// environment variables through `env`.
pub struct FileAccess<'a> {
    pub read: &'a dyn Fn(&str) -> Result<String, String>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Inline secrets are for demos: allowed only with development certificates.
    pub allow_inline_secret: bool,
}

impl ProviderFile {
    /// Reads what the file refers to and yields the definition it describes.
    pub fn load(self, access: &FileAccess<'_>) -> Result<Definition<Plain>, String> {
        let oidc = match self.oidc {
            None => None,
            Some(o) => {
                let sources = [
                    o.client_secret.is_some(),
                    o.client_secret_env.is_some(),
                    o.client_secret_file.is_some(),
                ]
                .iter()
                .filter(|b| **b)
                .count();
                if sources > 1 {
                    return Err(
                        "give one of oidc.client_secret, client_secret_env and client_secret_file"
                            .into(),
                    );
                }
                let client_secret = if let Some(s) = o.client_secret {
                    if !access.allow_inline_secret {
                        return Err("an inline oidc.client_secret is refused in production (tls.dev_certs = false): use client_secret_env or client_secret_file".into());
                    }
                    tracing::warn!(provider = %self.id, "client secret written inline in the provider file; use client_secret_env or client_secret_file outside demos");
                    Some(Plain(s))
                } else if let Some(var) = &o.client_secret_env {
                    // The server's own settings (database URL, master key) are not secrets a
                    // provider may borrow.
                    if var.to_ascii_uppercase().starts_with("PORTCULLIS_") {
                        return Err(
                            "oidc.client_secret_env may not name a PORTCULLIS_ variable".into()
                        );
                    }
                    Some(Plain((access.env)(var).ok_or_else(|| {
                        format!("environment variable {var} is not set")
                    })?))
                } else if let Some(file) = &o.client_secret_file {
                    Some(Plain(
                        (access.read)(file)
                            .map_err(|e| format!("oidc.client_secret_file: {e}"))?
                            .trim()
                            .to_string(),
                    ))
                } else {
                    None
                };
                let private_key = o
                    .private_key_file
                    .as_deref()
                    .map(|f| (access.read)(f).map(Plain))
                    .transpose()
                    .map_err(|e| format!("oidc.private_key_file: {e}"))?;
                Some(OidcDefinition {
                    issuer: o.issuer,
                    discovery_url: o.discovery_url,
                    client_id: o.client_id,
                    client_secret,
                    scopes: o.scopes,
                    fetch_userinfo: o.fetch_userinfo,
                    token_endpoint_auth_method: o.token_endpoint_auth_method,
                    private_key,
                    private_key_alg: o.private_key_alg,
                    allowed_algorithms: o.allowed_algorithms,
                })
            }
        };
        let saml = match self.saml {
            None => None,
            Some(s) => {
                let read =
                    |key: &str, f: &str| (access.read)(f).map_err(|e| format!("saml.{key}: {e}"));
                Some(SamlDefinition {
                    metadata_xml: s
                        .metadata_file
                        .as_deref()
                        .map(|f| read("metadata_file", f))
                        .transpose()?,
                    metadata_url: s.metadata_url,
                    sp_signing_key: Some(Plain(read(
                        "sp_signing_key_file",
                        &s.sp_signing_key_file,
                    )?)),
                    sp_certificate: read("sp_certificate_file", &s.sp_certificate_file)?,
                    sp_encryption_key: s
                        .sp_encryption_key_file
                        .as_deref()
                        .map(|f| read("sp_encryption_key_file", f).map(Plain))
                        .transpose()?,
                    sp_encryption_certificate: s
                        .sp_encryption_certificate_file
                        .as_deref()
                        .map(|f| read("sp_encryption_certificate_file", f))
                        .transpose()?,
                    binding: s.binding,
                    max_clock_skew_seconds: s.max_clock_skew_seconds,
                })
            }
        };
        Ok(Definition {
            id: self.id,
            display_name: self.display_name,
            enabled: self.enabled,
            listed: self.listed,
            domains: self.domains,
            protocol: protocol_of(self.kind, oidc, saml)?,
            claims: self.claims,
            provisioning: self.provisioning,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::default()
    }

    fn oidc_of(d: &mut Definition<Plain>) -> &mut OidcDefinition<Plain> {
        match &mut d.protocol {
            Protocol::Oidc(o) => o,
            Protocol::Saml(_) => panic!("not oidc"),
        }
    }

    fn oidc(id: &str) -> Definition<Plain> {
        serde_json::from_value(serde_json::json!({
            "id": id, "kind": "oidc",
            "oidc": {"issuer": "https://idp.example", "client_id": "c", "client_secret": "s3cret"}
        }))
        .unwrap()
    }

    #[test]
    fn definitions_are_checked_as_a_whole() {
        assert!(oidc("corp").check(&policy()).is_ok());
        assert!(oidc("local").check(&policy()).is_err());
        assert!(oidc("Bad Id").check(&policy()).is_err());
        let mut p = oidc("corp");
        oidc_of(&mut p).issuer = "http://idp.example".into();
        p.domains = vec!["Corp.Example".into()];
        assert_eq!(p.check(&policy()).unwrap_err().len(), 2);
        let mut p = oidc("corp");
        oidc_of(&mut p).issuer = "https://169.254.169.254".into();
        assert!(
            p.check(&policy()).is_err(),
            "an internal literal is refused"
        );
        let kind_without_its_section = serde_json::from_value::<Definition<Plain>>(
            serde_json::json!({"id": "corp", "kind": "saml", "oidc": {"issuer": "https://idp.example", "client_id": "c"}}),
        );
        assert!(kind_without_its_section.is_err());
    }

    #[test]
    fn what_the_network_sends_cannot_name_a_file_an_environment_variable_or_linking() {
        for (field, value) in [
            ("client_secret_file", "data/master.key"),
            ("client_secret_env", "PORTCULLIS_DATABASE_URL"),
            ("private_key_file", "certs/server-key.pem"),
            ("client_secret_sealed", "AAAA"),
        ] {
            let r = serde_json::from_value::<Definition<Plain>>(serde_json::json!({
                "id": "evil", "kind": "oidc",
                "oidc": {"issuer": "https://idp.example", "client_id": "c", field: value}
            }));
            let e = r.unwrap_err().to_string();
            assert!(e.contains("unknown field"), "{field}: {e}");
        }
        for field in [
            "metadata_file",
            "sp_signing_key_file",
            "sp_certificate_file",
            "sp_encryption_key_file",
        ] {
            let r = serde_json::from_value::<Definition<Plain>>(serde_json::json!({
                "id": "evil", "kind": "saml",
                "saml": {"metadata_url": "https://idp.example/md", "sp_certificate": "x", field: "/etc/passwd"}
            }));
            assert!(r.is_err(), "{field}");
        }
        let r = serde_json::from_value::<Definition<Plain>>(serde_json::json!({
            "id": "evil", "kind": "oidc",
            "oidc": {"issuer": "https://idp.example", "client_id": "c"},
            "provisioning": {"jit": true, "link_by_verified_email": true}
        }));
        assert!(r.unwrap_err().to_string().contains("unknown field"));
    }

    #[test]
    fn stored_secrets_are_sealed_bound_to_their_tenant_and_never_shown() {
        let master = crate::keys::MasterKey::from_bytes(&[3u8; 32]).unwrap();
        let sealed = oidc("corp").seal("acme", &master, None).unwrap();
        let stored = serde_json::to_string(&sealed).unwrap();
        assert!(!stored.contains("s3cret"), "{stored}");
        assert!(!format!("{sealed:?}").contains("s3cret"));
        assert!(!format!("{:?}", oidc("corp")).contains("s3cret"));
        let view = sealed.public_view();
        assert_eq!(view["oidc"]["client_secret"], true);
        let opened = sealed.clone().open("acme", &master).unwrap();
        assert_eq!(
            opened
                .oidc()
                .unwrap()
                .client_secret
                .as_ref()
                .unwrap()
                .expose(),
            "s3cret"
        );
        // Copied into another tenant, or under another id, it does not open.
        assert!(sealed.clone().open("globex", &master).is_err());
        let mut moved = sealed.clone();
        moved.id = "other".into();
        assert!(moved.open("acme", &master).is_err());
        // A replacement without a secret keeps the stored one.
        let mut again = oidc("corp");
        oidc_of(&mut again).client_secret = None;
        let kept = again.seal("acme", &master, Some(&sealed)).unwrap();
        assert_eq!(
            kept.open("acme", &master)
                .unwrap()
                .oidc()
                .unwrap()
                .client_secret
                .as_ref()
                .unwrap()
                .expose(),
            "s3cret"
        );
    }

    #[test]
    fn a_provider_file_cannot_borrow_the_servers_own_environment() {
        let file: ProviderFile = toml::from_str(
            "kind = \"oidc\"\n[oidc]\nissuer = \"https://idp.example\"\nclient_id = \"c\"\nclient_secret_env = \"PORTCULLIS_KEYS_MASTER_KEY\"\n",
        )
        .unwrap();
        let access = FileAccess {
            read: &|_| Err("no files".into()),
            env: &|_| Some("the master key".into()),
            allow_inline_secret: false,
        };
        assert!(file.load(&access).unwrap_err().contains("PORTCULLIS_"));
    }
}
