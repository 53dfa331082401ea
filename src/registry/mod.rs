//! The tenants this node serves, as immutable runtime objects swapped atomically on change.

pub mod discovery;
pub mod sync;

use crate::config::ClientSpec;
use crate::config::tenant::{AuthMethod, GrantType, TenantSpec, TokenFormat};
use crate::error::InternalError;
use crate::keys::KeyRing;
use crate::metrics::TenantMetrics;
use crate::secrets::SecretHash;
use crate::stores::Store;
use crate::stores::cache::CachingClientStore;
use arc_swap::ArcSwap;
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A client as the token endpoint uses it: secrets parsed, scopes indexed.
#[derive(Debug)]
pub struct Client {
    pub spec: ClientSpec,
    pub secrets: Vec<(SecretHash, Option<i64>)>,
    /// Sealed secrets (base64 of the sealed bytes) and their expiry.
    pub sealed_secrets: Vec<(Vec<u8>, Option<i64>)>,
    /// The client's own tls_client_auth trust anchors, read when the client is loaded.
    pub tls_anchors: Vec<rustls::pki_types::CertificateDer<'static>>,
    pub scopes: HashSet<String>,
}

impl Client {
    pub fn from_spec(spec: ClientSpec) -> Result<Self, InternalError> {
        let secrets = spec
            .secrets
            .iter()
            .filter(|s| s.sealed.is_none())
            .map(|s| {
                SecretHash::parse(&s.hash)
                    .map(|h| (h, s.expires_at))
                    .map_err(InternalError::Other)
            })
            .collect::<Result<_, _>>()?;
        let sealed_secrets = spec
            .secrets
            .iter()
            .filter_map(|s| {
                let b64 = s
                    .sealed
                    .as_deref()?
                    .strip_prefix(crate::config::tenant::SEALED_PREFIX)?;
                let bytes =
                    base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b64)
                        .ok()?;
                Some((bytes, s.expires_at))
            })
            .collect();
        let scopes = spec.scopes.iter().cloned().collect();
        let mut tls_anchors = Vec::new();
        for path in &spec.interactive.tls_trust_anchors {
            use rustls::pki_types::pem::PemObject;
            match rustls::pki_types::CertificateDer::pem_file_iter(path) {
                Ok(certs) => tls_anchors.extend(certs.flatten()),
                Err(e) => {
                    tracing::error!(client = %spec.client_id, file = %path.display(), error = %e, "cannot read a client's trust anchor")
                }
            }
        }
        Ok(Self {
            tls_anchors,
            spec,
            secrets,
            sealed_secrets,
            scopes,
        })
    }
    pub fn allows_grant(&self, g: GrantType) -> bool {
        self.spec.grant_types.contains(&g)
    }
    pub fn allows_auth_method(&self, m: AuthMethod) -> bool {
        self.spec.auth_methods.contains(&m)
    }
}

/// One tenant, ready to serve: everything the hot paths need is precomputed here.
#[derive(Debug)]
pub struct Tenant {
    pub spec: TenantSpec,
    pub version: i64,
    pub keys: Arc<KeyRing>,
    pub clients: CachingClientStore<Store>,
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
