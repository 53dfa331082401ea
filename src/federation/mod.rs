//! Federation: signing users in through upstream OpenID Connect and SAML 2.0 providers.
//!
//! - [`definition`]: what a provider is, by who writes it (operator file, admin API, store);
//! - [`provider`]: a definition made ready to use, and the provider files;
//! - [`upstream`]: the upstream type — begin, complete, log out — whatever the protocol
//!   ([`oidc`], [`saml`]);
//! - `realm`: home-realm discovery; `linking`: which local user an external identity is;
//!   `identity`: what an upstream vouches for; [`admin`]: runtime providers;
//! - this file: the providers a tenant offers, found by id (files, then the database through a
//!   cache that other nodes' changes invalidate).
//!
//! A provider comes from a file (`providers/<id>.toml`, offered by the tenants that list it) or
//! from the database (added at runtime through the admin API or the CLI, per tenant). The round
//! trip is a small state machine:
//!
//! 1. The sign-in needs a login: home-realm discovery ([`Federation::home_realm`]) picks a provider, or the
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
mod identity;
mod linking;
pub mod oidc;
pub mod provider;
mod realm;
pub mod saml;
pub mod upstream;

pub use definition::{Definition, LOCAL, Plain, ProviderKind, Sealed, valid_id};
pub use identity::{ExternalIdentity, FederationError, UpstreamSession, map_claims};
pub use linking::link_or_provision;
pub use provider::{Provider, load_files};
pub use realm::Realm;
pub use upstream::{Answer, Begin, Reply, UpstreamState};

use crate::config::Client;
use crate::error::InternalError;
use crate::keys::MasterKey;
use crate::outbound::Policy;
use crate::registry::Tenant;
use crate::stores::{FederationStore, Store};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;

// ---------------------------------------------------------------------------------------------
// Runtime lookups

/// The upstream providers this node knows: the file ones, and the runtime ones read from the
/// store (and opened with the master key) on first use.
#[derive(Debug)]
pub struct Federation {
    store: Store,
    master: Arc<MasterKey>,
    /// Where runtime providers' documents may be fetched from.
    policy: Policy,
    /// Providers from `providers/*.toml` by id (offered by the tenants that list them).
    pub files: ArcSwap<HashMap<String, Arc<Provider>>>,
    /// Runtime providers by `tenant\0id` (`None`: known not to exist). Other nodes' changes
    /// arrive through the change channel; the TTL is the safety net.
    dynamic: moka::future::Cache<String, Option<Arc<Provider>>>,
    /// The runtime providers a tenant lists on its sign-in page.
    listed: moka::future::Cache<String, Arc<Vec<(String, String)>>>,
    /// A tenant's runtime OIDC providers by upstream issuer (token exchange finds a subject
    /// token's provider by its `iss`).
    issuers: moka::future::Cache<String, Arc<HashMap<String, String>>>,
}

/// At most this many runtime providers are shown as buttons; the rest are found by
/// home-realm discovery.
const LISTED_MAX: i64 = 20;

impl Federation {
    pub fn new(store: Store, master: Arc<MasterKey>, policy: Policy, ttl_seconds: u64) -> Self {
        let ttl = std::time::Duration::from_secs(ttl_seconds.max(1));
        Self {
            store,
            master,
            policy,
            files: ArcSwap::from_pointee(HashMap::new()),
            dynamic: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
            issuers: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build(),
            listed: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The enabled provider `id` of `tenant`, if the tenant offers it.
    pub async fn find(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<Option<Arc<Provider>>, InternalError> {
        if !valid_id(id) {
            return Ok(None);
        }
        if tenant.spec.providers.iter().any(|p| p == id) {
            return Ok(self
                .files
                .load()
                .get(id)
                .filter(|p| p.spec.enabled)
                .cloned());
        }
        let slug = tenant.slug().to_string();
        let key = format!("{slug}\0{id}");
        let id = id.to_string();
        let found = self
            .dynamic
            .try_get_with(key, async move {
                let Some(row) = self.store.find_provider_row(&slug, &id).await? else {
                    return Ok::<_, InternalError>(None);
                };
                let opened = serde_json::from_str::<Definition<Sealed>>(&row.spec)
                    .map_err(|e| format!("the stored definition does not parse: {e}"))
                    .and_then(|d| d.open(&slug, &self.master))
                    .and_then(|d| Provider::new(d, Some(&slug), &self.policy));
                match opened {
                    Ok(p) => Ok(Some(Arc::new(p))),
                    Err(e) => {
                        tracing::error!(tenant = %slug, provider = %id, error = %e, "stored provider cannot be used");
                        Ok(None)
                    }
                }
            })
            .await
            .map_err(|e| InternalError::shared(&e))?;
        Ok(found.filter(|p| p.spec.enabled))
    }

    /// The providers shown as buttons to `client`'s users: (id, display name).
    pub async fn offered(
        &self,
        tenant: &Tenant,
        client: &Client,
    ) -> Result<Vec<(String, String)>, InternalError> {
        let mut out = Vec::new();
        let restricted = &client.spec.interactive.identity_providers;
        if !restricted.is_empty() {
            for id in restricted.iter().filter(|i| *i != LOCAL) {
                if let Some(p) = self.find(tenant, id).await? {
                    out.push((p.spec.id.clone(), p.spec.display().to_string()));
                }
            }
            return Ok(out);
        }
        let files = self.files.load();
        for id in &tenant.spec.providers {
            if let Some(p) = files.get(id).filter(|p| p.spec.enabled && p.spec.listed) {
                out.push((p.spec.id.clone(), p.spec.display().to_string()));
            }
        }
        let slug = tenant.slug().to_string();
        let store = self.store.clone();
        let dynamic = self
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
            .map_err(|e| InternalError::shared(&e))?;
        out.extend(dynamic.iter().cloned());
        Ok(out)
    }

    /// The enabled OIDC provider of `tenant` whose upstream issuer is `iss`: one of the
    /// tenant's file providers, or a runtime one (found through a per-tenant index of issuers,
    /// built on first use and forgotten with the providers).
    pub async fn oidc_by_issuer(
        &self,
        tenant: &Tenant,
        iss: &str,
    ) -> Result<Option<Arc<Provider>>, InternalError> {
        {
            let files = self.files.load();
            let file = tenant
                .spec
                .providers
                .iter()
                .filter_map(|id| files.get(id))
                .find(|p| p.spec.enabled && p.spec.oidc().is_some_and(|o| o.issuer == iss));
            if let Some(p) = file {
                return Ok(Some(p.clone()));
            }
        }
        let slug = tenant.slug().to_string();
        let store = self.store.clone();
        let index = self
            .issuers
            .try_get_with(slug.clone(), async move {
                let mut by_issuer = HashMap::new();
                let mut after = String::new();
                loop {
                    let rows = store.list_provider_rows(&slug, false, &after, 500).await?;
                    let Some(last) = rows.last() else { break };
                    after = last.id.clone();
                    for r in rows {
                        if let Ok(d) = serde_json::from_str::<Definition<Sealed>>(&r.spec)
                            && let Some(o) = d.oidc()
                        {
                            by_issuer.entry(o.issuer.clone()).or_insert(r.id);
                        }
                    }
                }
                Ok::<_, InternalError>(Arc::new(by_issuer))
            })
            .await
            .map_err(|e| InternalError::shared(&e))?;
        match index.get(iss) {
            Some(id) => self.find(tenant, id).await,
            None => Ok(None),
        }
    }

    /// Forgets every runtime provider this node knows (change notices may have been missed).
    pub fn forget_all(&self) {
        self.dynamic.invalidate_all();
        self.listed.invalidate_all();
        self.issuers.invalidate_all();
    }

    /// Forgets what this node knows of a runtime provider (it changed here or on another node).
    pub async fn forget(&self, tenant: &str, id: &str) {
        self.dynamic.invalidate(&format!("{tenant}\0{id}")).await;
        self.listed.invalidate(tenant).await;
        self.issuers.invalidate(tenant).await;
    }
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
