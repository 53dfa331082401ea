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
pub mod definition;
pub mod oidc;
pub mod provider;
pub mod saml;
pub mod upstream;

pub use definition::{Definition, LOCAL, Plain, ProviderKind, Sealed, valid_id};
pub use provider::{Provider, load_files};
pub use upstream::{Answer, Begin, Reply, STATE_KIND, UpstreamState};

use crate::config::tenant::UserSpec;
use crate::error::InternalError;
use crate::registry::{Client, Tenant};
use crate::state::AppState;
use crate::stores::{FederationStore, UserStore};
use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

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
}

/// Prefix of a change notification for a runtime provider: `provider:<tenant> <id>`.
pub const PROVIDER_PREFIX: &str = "provider:";
/// At most this many runtime providers are shown as buttons; the rest are found by
/// home-realm discovery.
const LISTED_MAX: i64 = 20;

impl Federation {
    pub fn new(ttl_seconds: u64) -> Self {
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
        }
    }

    /// Forgets every runtime provider this node knows (change notices may have been missed).
    pub fn forget_all(&self) {
        self.dynamic.invalidate_all();
        self.listed.invalidate_all();
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
            let opened = serde_json::from_str::<Definition<Sealed>>(&row.spec)
                .map_err(|e| format!("the stored definition does not parse: {e}"))
                .and_then(|d| d.open(&slug, &st.master))
                .and_then(|d| Provider::new(d, Some(&slug), st.outbound.policy()));
            match opened {
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

/// An identity an upstream provider vouched for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExternalIdentity {
    pub provider: String,
    /// The upstream's own name for itself: the OIDC issuer, or the SAML IdP's entity id. Links
    /// are keyed by it (with the provider id and the subject), so a provider re-created under
    /// an old id for another upstream finds none of the old links.
    pub upstream: String,
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
pub fn map_claims(spec: &Definition<Plain>, upstream: &Map<String, Value>) -> Map<String, Value> {
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

/// The local user an external identity signs in as: the linked one; or, when the tenant's
/// operator trusts this (file) provider to link by verified email, the one local user with that
/// email (linked now); or a new user (linked now). Returns the user's subject.
pub async fn link_or_provision(
    state: &AppState,
    tenant: &Tenant,
    provider: &Provider,
    ext: &ExternalIdentity,
) -> Result<String, FederationError> {
    let slug = tenant.slug();
    let now = state.now();
    let username = provisioned_username(&ext.provider, &ext.subject);
    if let Some(subject) = find_link(state, tenant, provider, ext).await? {
        let user = crate::users::directory::by_subject(&state.store, tenant, &subject).await?;
        let Some(mut user) = user.filter(|u| u.enabled) else {
            return Err(FederationError::Denied(
                "the account linked to this identity is disabled or gone".into(),
            ));
        };
        // A provisioned user's claims follow the upstream's.
        let provisioned =
            user.username == username || user.username.starts_with(&format!("{username}~"));
        if provisioned && user.claims != ext.claims {
            user.claims = ext.claims.clone();
            state
                .store
                .upsert_user(slug, &user, "federation", now)
                .await?;
        }
        return Ok(subject);
    }
    if links_by_email(tenant, provider)
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
                .insert_link(
                    slug,
                    &ext.provider,
                    &ext.upstream,
                    &ext.subject,
                    &user.subject,
                    now,
                )
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
    // The username of an earlier user of this provider id (its links gone with a removed
    // provider) stays that user's: the new one gets a suffix.
    let username = if state
        .store
        .find_user_by_username(slug, &username)
        .await?
        .is_some()
    {
        let suffix: String = crate::tokens::new_jti().chars().take(8).collect();
        format!("{username}~{suffix}")
    } else {
        username
    };
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
        .insert_link(
            slug,
            &ext.provider,
            &ext.upstream,
            &ext.subject,
            &user.subject,
            now,
        )
        .await?
    {
        tracing::info!(target: "security", event = "user_provisioned", tenant = slug, provider = %ext.provider, subject = %user.subject, "user created on first sign-in");
        return Ok(user.subject);
    }
    // Another request linked this identity first: use its user, drop ours.
    state.store.delete_user(slug, &user.subject).await?;
    state
        .store
        .find_link(slug, &ext.provider, &ext.upstream, &ext.subject)
        .await?
        .ok_or_else(|| FederationError::Internal(InternalError::Other("link vanished".into())))
}

/// Whether the tenant's operator trusts `provider` to link by verified email: a file provider
/// the tenant file names in `link_by_verified_email`. A runtime provider never is: whoever holds
/// the tenant's admin token could point it at an upstream that asserts anyone's email.
fn links_by_email(tenant: &Tenant, provider: &Provider) -> bool {
    provider.owner.is_none()
        && tenant
            .spec
            .link_by_verified_email
            .contains(&provider.spec.id)
}

/// The local user linked to `ext`. Links made before links were keyed by the upstream (an
/// empty upstream) are honoured for file providers only, whose upstream the operator fixed, and
/// are keyed by it on first use.
async fn find_link(
    state: &AppState,
    tenant: &Tenant,
    provider: &Provider,
    ext: &ExternalIdentity,
) -> Result<Option<String>, InternalError> {
    let slug = tenant.slug();
    if let Some(s) = state
        .store
        .find_link(slug, &ext.provider, &ext.upstream, &ext.subject)
        .await?
    {
        return Ok(Some(s));
    }
    if provider.owner.is_some() {
        return Ok(None);
    }
    state
        .store
        .adopt_legacy_link(slug, &ext.provider, &ext.upstream, &ext.subject)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_map_by_the_providers_table_then_the_usual_names() {
        let mut spec: Definition<Plain> = serde_json::from_value(serde_json::json!({
            "id": "corp", "kind": "oidc",
            "oidc": {"issuer": "https://idp.example", "client_id": "c"}
        }))
        .unwrap();
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
