//! Application state shared by every request: configuration, store, clock, tenants, keys.

use crate::clock::SharedClock;
use crate::config::ServerConfig;
use crate::error::InternalError;
use crate::frontdoor::tls::SniResolver;
use crate::keys::{KeyPolicy, MasterKey};
use crate::metrics::TenantMetrics;
use crate::registry::TenantRegistry;
use crate::registry::files::FileState;
use crate::stores::{GrantKind, Store};
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct AppState(Arc<StateInner>);

#[derive(Debug)]
pub struct StateInner {
    pub config: ServerConfig,
    pub store: Store,
    pub clock: SharedClock,
    pub master: Arc<MasterKey>,
    pub key_policy: KeyPolicy,
    pub registry: TenantRegistry,
    /// Metrics of requests for tenants that do not exist.
    pub unknown_metrics: TenantMetrics,
    /// Certificates by SNI name; `None` when no TLS listener is configured.
    pub tls: Option<Arc<SniResolver>>,
    pub(crate) reload: tokio::sync::Mutex<FileState>,
    /// Serializes registry rebuilds, so a slower rebuild never replaces a newer one.
    pub(crate) refresh_lock: tokio::sync::Mutex<()>,
    pub(crate) metrics_by_slug: std::sync::Mutex<HashMap<String, Arc<TenantMetrics>>>,
    /// Every request to another server goes through this guard (src/outbound).
    pub outbound: crate::outbound::Outbound,
    /// Fetched documents: upstream discovery, JWK Sets (upstreams' and clients'), SAML metadata.
    pub documents: crate::outbound::documents::DocCache,
    /// Open client registration's requests per tenant and client address, this minute.
    pub registrations: crate::limits::WindowLimiter<(String, std::net::IpAddr)>,
    /// Client ID metadata documents (`registry::clients`).
    pub metadata_documents: crate::registry::clients::MetadataDocuments,
    /// Live grants (reference tokens, recorded access tokens) by tenant and handle hash.
    pub grants: crate::stores::cache::GrantCache,
    /// Single-use values seen recently (DPoP proof, request object and upstream logout token
    /// jtis), checked before the store: bounded, and never forgetting a value inside its
    /// lifetime (see `stores::replay` for the memory bound).
    pub seen: crate::stores::replay::ReplaySet,
    /// Upstream providers and their cached documents.
    pub federation: crate::federation::Federation,
    /// The SAML service providers registered at runtime (the tenant files' are in the tenants).
    pub service_providers: crate::saml::registry::ServiceProviders,
    /// Other nodes' change notices (PostgreSQL LISTEN/NOTIFY or the change table), subscribed before the first full
    /// sync so that no change can fall between the two; the background task takes it over.
    pub(crate) changes: tokio::sync::Mutex<Option<crate::stores::upkeep::ChangeSource>>,
    /// Whether this node hears other nodes' change notices (always on SQLite, a single-node
    /// store). `/health/ready` answers 503 until it does.
    pub(crate) hears_changes: std::sync::atomic::AtomicBool,
    /// The password hashing threads and their bounded queue.
    pub passwords: crate::users::Hashers,
    /// Connection limits and timeouts, shared by every listener and serving thread.
    pub connections: Arc<crate::frontdoor::connections::Connections>,
    pub(crate) request_id_prefix: u32,
    pub(crate) request_counter: std::sync::atomic::AtomicU64,
}

impl Deref for AppState {
    type Target = StateInner;
    fn deref(&self) -> &StateInner {
        &self.0
    }
}

/// The two guards metadata documents are fetched through: bounded to the largest document a
/// tenant may allow and a short timeout, one with the operator's allow-list, one without.
fn metadata_documents(
    config: &ServerConfig,
    outbound: &crate::outbound::Outbound,
) -> Result<crate::registry::clients::MetadataDocuments, InternalError> {
    use crate::registry::clients::{DOCUMENT_TIMEOUT, MAX_DOCUMENT_BYTES, MetadataDocuments};
    let timeout = config.outbound.timeout.min(DOCUMENT_TIMEOUT);
    let guard = |allow: Vec<ipnet::IpNet>| {
        outbound.with_policy(
            crate::outbound::Policy {
                allow,
                max_response_bytes: MAX_DOCUMENT_BYTES,
            },
            config.outbound.connect_timeout.min(timeout),
            timeout,
        )
    };
    let cache = |o| {
        Arc::new(crate::outbound::documents::DocCache::new(
            o,
            16 * 1024 * 1024,
        ))
    };
    Ok(MetadataDocuments {
        public_only: cache(guard(Vec::new())?),
        with_allow_list: cache(guard(config.outbound.allow_networks.clone())?),
    })
}

impl AppState {
    /// Connects to the database, loads the master key and prepares the handles; the tenants are
    /// loaded afterwards (`registry::sync::reload_files`). `tls` is the certificate resolver of
    /// the TLS listeners, if any.
    pub async fn build(
        config: ServerConfig,
        clock: SharedClock,
        tls: Option<Arc<SniResolver>>,
    ) -> Result<Self, InternalError> {
        crate::users::configure(&config.passwords.argon2);
        let passwords = crate::users::Hashers::start(
            config.passwords.hashing_threads,
            config.passwords.max_queued_verifications,
        );
        let store = Store::connect(&config.database).await?;
        // Subscribe first, sync second: a change another node makes from here on is either in
        // the first sync or announced to this node (and then applied by the background task).
        let changes = store.subscribe().await;
        let hears_changes = matches!(store, Store::Sqlite(_)) || changes.is_some();
        let master = MasterKey::from_config(&config)?;
        let key_policy = KeyPolicy::from(&config.keys);
        let grants = crate::stores::cache::GrantCache::new(
            config.cache.client_capacity,
            std::time::Duration::from_secs(30),
        );
        let outbound = crate::outbound::Outbound::from_config(&config)?;
        let documents = crate::outbound::documents::DocCache::new(
            outbound.clone(),
            config.outbound.cache_max_bytes,
        );
        let metadata_documents = metadata_documents(&config, &outbound)?;
        let master = Arc::new(master);
        let federation = crate::federation::Federation::new(
            store.clone(),
            master.clone(),
            outbound.policy().clone(),
            config.reload.sync_interval.as_secs(),
        );
        let service_providers = crate::saml::registry::ServiceProviders::new(
            store.clone(),
            config.reload.sync_interval.as_secs(),
        );
        let seen = crate::stores::replay::ReplaySet::new(config.cache.replay_capacity);
        let connections = Arc::new(crate::frontdoor::connections::Connections::new(
            &config.connections,
            config.server.trusted_proxies.clone(),
        ));
        let state = AppState(Arc::new(StateInner {
            connections,
            config,
            store,
            clock,
            master,
            key_policy,
            registry: TenantRegistry::default(),
            unknown_metrics: TenantMetrics::default(),
            tls,
            reload: tokio::sync::Mutex::new(FileState::default()),
            refresh_lock: tokio::sync::Mutex::new(()),
            metrics_by_slug: std::sync::Mutex::new(HashMap::new()),
            outbound,
            documents,
            metadata_documents,
            registrations: crate::limits::WindowLimiter::new(
                std::time::Duration::from_secs(60),
                100_000,
            ),
            federation,
            service_providers,
            changes: tokio::sync::Mutex::new(changes),
            hears_changes: std::sync::atomic::AtomicBool::new(hears_changes),
            passwords,
            grants,
            seen,
            request_id_prefix: u32::from_be_bytes(crate::secrets::random_bytes()),
            request_counter: std::sync::atomic::AtomicU64::new(0),
        }));
        Ok(state)
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Whether this node hears other nodes' change notices (see [`StateInner::hears_changes`]).
    pub fn hears_changes(&self) -> bool {
        self.hears_changes
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// True the first time `key` is presented in `tenant` (until `expires_at`, at most
    /// `stores::replay::MAX_HORIZON` ahead). One node keeps the answer in memory; several nodes
    /// on PostgreSQL also agree through the store. When the memory is full, the store alone
    /// answers on PostgreSQL; on SQLite the value is refused ([`InternalError::AtCapacity`]),
    /// never accepted without being remembered.
    pub async fn first_use(
        &self,
        tenant: &str,
        key: &str,
        expires_at: i64,
    ) -> Result<bool, InternalError> {
        use crate::stores::replay::{Admission, MAX_HORIZON};
        let now = self.now();
        if expires_at > now.saturating_add(MAX_HORIZON) {
            return Err(InternalError::Other(
                "a single-use value cannot be remembered that long".into(),
            ));
        }
        let postgres = matches!(&self.store, crate::stores::Store::Postgres(..));
        match self.seen.admit(tenant, key, expires_at, now) {
            Admission::Replay => return Ok(false),
            Admission::First => {}
            Admission::Full => {
                tracing::warn!(target: "security", event = "replay_memory_full", tenant, capacity = self.config.cache.replay_capacity);
                if !postgres {
                    return Err(InternalError::AtCapacity(
                        "too many single-use values are in use; try again shortly",
                    ));
                }
            }
        }
        if postgres {
            use crate::stores::GrantStore;
            let marker = crate::stores::GrantRecord {
                handle_hash: crate::tokens::handle_hash(&format!("once:{key}")),
                created_at: now,
                expires_at,
                consumed_at: Some(now),
                ..crate::stores::GrantRecord::of(GrantKind::SingleUse)
            };
            return self.store.redeem_once(tenant, &marker, &[]).await;
        }
        Ok(true)
    }

    /// Revokes a grant or a family (`family: true`) and makes every node forget cached copies.
    pub async fn revoke(
        &self,
        tenant: &str,
        key: &str,
        family: bool,
    ) -> Result<u64, InternalError> {
        use crate::stores::GrantStore;
        let now = self.now();
        let n = if family {
            self.store.revoke_family(tenant, key, now).await?
        } else {
            u64::from(self.store.revoke_grant(tenant, key, now).await?)
        };
        self.grants.forget(tenant, key);
        self.store
            .announce(&crate::stores::ChangeNotice::Revoked {
                tenant: tenant.to_string(),
                key: key.to_string(),
            })
            .await?;
        Ok(n)
    }

    pub fn next_request_id(&self) -> String {
        let n = self
            .request_counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{:08x}{:08x}", self.request_id_prefix, n)
    }
}
