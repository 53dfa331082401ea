//! Application state shared by every request: configuration, store, clock, tenants, keys.

use crate::clock::SharedClock;
use crate::config::ServerConfig;
use crate::error::InternalError;
use crate::frontdoor::tls::SniResolver;
use crate::keys::{KeyPolicy, MasterKey};
use crate::metrics::TenantMetrics;
use crate::registry::TenantRegistry;
use crate::registry::sync::FileState;
use crate::stores::Store;
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
    pub master: MasterKey,
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
    /// Outbound HTTP (client JWKS, logout notifications): no redirects followed (SSRF).
    pub http: reqwest::Client,
    /// Live grants (reference tokens, recorded access tokens) by tenant and handle hash.
    pub grants: crate::stores::cache::GrantCache,
    /// Client key sets fetched from `jwks_uri`, with the time until which they are fresh.
    pub jwks_cache: moka::future::Cache<String, (Arc<serde_json::Value>, i64)>,
    /// Single-use values seen recently (DPoP proof jtis), checked before the store. Sized so
    /// that it never fills below ~20,000 proofs a second sustained (an entry lives the proof
    /// window plus skew): a full cache could drop entries, and replays must stay visible.
    pub seen: moka::future::Cache<String, ()>,
    /// `jwks_uri`s refetched for an unknown `kid` within the last minute (the rate limit).
    pub jwks_refetched: moka::future::Cache<String, ()>,
    /// Upstream providers and their cached documents.
    pub federation: crate::federation::Federation,
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

/// Outbound HTTP: no redirects followed (SSRF), bounded time; trusts the system's CAs, the
/// configured federation CAs and, while development certificates are on, the development CA.
fn outbound_client(config: &ServerConfig) -> Result<reqwest::Client, InternalError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")));
    let mut files: Vec<std::path::PathBuf> = config
        .file
        .federation
        .ca_files
        .iter()
        .map(|f| config.path(f))
        .collect();
    if config.file.tls.dev_certs {
        let dev_ca = config.certs_dir().join("ca.pem");
        if dev_ca.exists() {
            files.push(dev_ca);
        }
    }
    for file in files {
        let pem = std::fs::read(&file)
            .map_err(|e| InternalError::Other(format!("cannot read {}: {e}", file.display())))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| InternalError::Other(format!("{}: {e}", file.display())))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| InternalError::Other(format!("HTTP client: {e}")))
}

impl AppState {
    /// Connects to the database, loads the master key and the tenant files, and prepares every
    /// tenant's keys. `tls` is the certificate resolver of the TLS listeners, if any.
    pub async fn build(
        config: ServerConfig,
        clock: SharedClock,
        tls: Option<Arc<SniResolver>>,
    ) -> Result<Self, InternalError> {
        crate::users::configure(&config.file.passwords);
        let store = Store::connect(
            &config.database_url,
            &config.file.database.schema,
            config.file.database.max_connections,
        )
        .await?;
        let k = &config.file.keys;
        let master = MasterKey::load_or_create(
            &k.master_key,
            &if k.master_key_file.is_empty() {
                String::new()
            } else {
                config.path(&k.master_key_file).display().to_string()
            },
            &config.data_dir().join("master.key"),
        )?;
        let key_policy = KeyPolicy {
            rotation_interval: k.rotation_interval_seconds,
            propagation: k.propagation_seconds,
            retention: k.retention_seconds,
            rsa_bits: k.rsa_bits,
        };
        let grants = crate::stores::cache::GrantCache::new(
            config.file.cache.client_capacity,
            std::time::Duration::from_secs(30),
        );
        let http = outbound_client(&config)?;
        let federation = crate::federation::Federation::new(
            http.clone(),
            config.file.reload.sync_interval_seconds.max(1),
        );
        let connections = Arc::new(crate::frontdoor::connections::Connections::new(
            &config.file.connections,
            config.trusted_proxies.clone(),
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
            http,
            federation,
            grants,
            seen: moka::future::Cache::builder()
                .max_capacity(5_000_000)
                .time_to_live(std::time::Duration::from_secs(
                    u64::try_from(crate::validation::dpop::PROOF_WINDOW + 120).unwrap_or(420),
                ))
                .build(),
            jwks_refetched: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(std::time::Duration::from_secs(60))
                .build(),
            jwks_cache: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(std::time::Duration::from_secs(86_400))
                .build(),
            request_id_prefix: u32::from_be_bytes(crate::secrets::random_bytes()),
            request_counter: std::sync::atomic::AtomicU64::new(0),
        }));
        crate::registry::sync::reload_files(&state).await?;
        Ok(state)
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// True the first time `key` is presented in `tenant` (until `expires_at`). One node keeps
    /// the answer in memory; several nodes on PostgreSQL also agree through the store.
    pub async fn first_use(
        &self,
        tenant: &str,
        key: &str,
        expires_at: i64,
    ) -> Result<bool, InternalError> {
        let entry = self
            .seen
            .entry(format!("{tenant}\0{key}"))
            .or_insert(())
            .await;
        if !entry.is_fresh() {
            return Ok(false);
        }
        if let crate::stores::Store::Postgres(_) = &self.store {
            use crate::stores::GrantStore;
            let now = self.now();
            let marker = crate::stores::GrantRecord {
                handle_hash: crate::tokens::handle_hash(&format!("once:{key}")),
                kind: "single_use".into(),
                created_at: now,
                expires_at,
                consumed_at: Some(now),
                ..Default::default()
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
        self.store.announce_revoked(tenant, key).await?;
        Ok(n)
    }

    pub fn next_request_id(&self) -> String {
        let n = self
            .request_counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{:08x}{:08x}", self.request_id_prefix, n)
    }
}
