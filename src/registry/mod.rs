//! The tenants this node serves, as immutable runtime objects swapped atomically on change.

pub mod clients;
pub mod discovery;
pub mod files;
pub mod sync;

use crate::config::tenant::{TenantSpec, TokenFormat};
use crate::keys::KeyRing;
use crate::metrics::TenantMetrics;
use crate::stores::cache::CachingClientStore;
use arc_swap::ArcSwap;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;

/// One tenant, ready to serve: everything the hot paths need is precomputed here.
#[derive(Debug)]
pub struct Tenant {
    pub spec: TenantSpec,
    pub version: i64,
    pub keys: Arc<KeyRing>,
    pub clients: CachingClientStore<clients::TenantClients>,
    pub metrics: Arc<TenantMetrics>,
    /// The OpenID Provider Metadata document (OIDC Discovery §3), serialized once.
    pub discovery: Bytes,
    pub token_endpoint: String,
    /// API scope → audiences of the API resources that include it.
    pub audiences_by_scope: HashMap<String, Vec<String>>,
    /// Default audience when no API resource matches (IdentityServer's `{issuer}/resources`).
    pub default_audience: String,
    /// The tenant's pages (its branding and template overrides, loaded once).
    pub pages: Arc<crate::ui::Pages>,
    /// CAs that tls_client_auth certificates must chain to (RFC 8705 §2.1).
    pub mtls_anchors: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl Tenant {
    pub fn slug(&self) -> &str {
        &self.spec.slug
    }
    pub fn default_token_format(&self) -> TokenFormat {
        self.spec.tokens.access_token_format
    }
}

#[derive(Debug, Default)]
struct Snapshot {
    by_slug: HashMap<String, Arc<Tenant>>,
    by_host: HashMap<String, String>,
}

/// All tenants, readable without locks.
#[derive(Debug, Default)]
pub struct TenantRegistry {
    current: ArcSwap<Snapshot>,
}

impl TenantRegistry {
    pub fn get(&self, slug: &str) -> Option<Arc<Tenant>> {
        self.current.load().by_slug.get(slug).cloned()
    }

    /// The slug of the tenant served at the root of `host` (host name without port).
    pub fn slug_for_host(&self, host: &str) -> Option<String> {
        let snapshot = self.current.load();
        if snapshot.by_host.is_empty() {
            return None;
        }
        snapshot.by_host.get(host).cloned()
    }

    pub fn has_hosts(&self) -> bool {
        !self.current.load().by_host.is_empty()
    }

    /// How many tenants are served.
    pub fn len(&self) -> usize {
        self.current.load().by_slug.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn all(&self) -> Vec<Arc<Tenant>> {
        let mut v: Vec<_> = self.current.load().by_slug.values().cloned().collect();
        v.sort_by(|a, b| a.spec.slug.cmp(&b.spec.slug));
        v
    }

    /// Replaces the set of tenants (the caller builds every changed tenant first).
    pub fn replace(&self, tenants: Vec<Arc<Tenant>>) {
        let mut by_slug = HashMap::new();
        let mut by_host = HashMap::new();
        for t in tenants {
            for h in &t.spec.hosts {
                by_host.insert(h.clone(), t.spec.slug.clone());
            }
            by_slug.insert(t.spec.slug.clone(), t);
        }
        self.current.store(Arc::new(Snapshot { by_slug, by_host }));
    }
}

/// The associated data that binds a sealed client secret to its tenant and client.
pub fn sealed_secret_aad(tenant: &str, client_id: &str) -> Vec<u8> {
    format!("client-secret\0{tenant}\0{client_id}").into_bytes()
}
