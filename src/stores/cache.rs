//! Caching decorator in front of client lookups (a decorator, as in docs/architecture.md): the SQL code knows nothing of
//! caching, and the cache never holds the only copy of anything. Each tenant generation has its
//! own cache: reloading a tenant replaces it, which is the invalidation.

use super::ClientStore;
use crate::config::Client;
use crate::error::InternalError;
use moka::future::Cache;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct CachingClientStore<S> {
    inner: S,
    cache: Cache<String, Option<Arc<Client>>>,
}

impl<S> std::fmt::Debug for CachingClientStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingClientStore")
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl<S: ClientStore> CachingClientStore<S> {
    pub fn new(inner: S, capacity: u64, ttl: Duration) -> Self {
        Self {
            inner,
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        }
    }

    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    /// Forgets one client (a runtime client changed, here or on another node).
    pub async fn invalidate(&self, client_id: &str) {
        self.cache.invalidate(client_id).await;
    }
}

impl<S: ClientStore + Sync> ClientStore for CachingClientStore<S> {
    /// The client, from memory when possible. Unknown ids are cached too (bounded, expiring), so
    /// a flood of made-up client ids cannot become a flood of database queries.
    async fn find_client(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> Result<Option<Arc<Client>>, InternalError> {
        if !self.inner.cacheable(client_id) {
            return self.inner.find_client(tenant, client_id).await;
        }
        if let Some(hit) = self.cache.get(client_id).await {
            return Ok(hit);
        }
        let loaded = self.inner.find_client(tenant, client_id).await?;
        self.cache
            .insert(client_id.to_string(), loaded.clone())
            .await;
        Ok(loaded)
    }
}

/// Live-grant lookups (reference tokens, recorded JWT access tokens) from memory: introspection
/// and userinfo ask for the same token again and again. Entries live a short while; revocation
/// removes them at once here, and on other nodes through the store's notification
/// ([`super::Store::announce`]).
#[derive(Clone)]
pub struct GrantCache {
    cache: Cache<(String, String), Option<Arc<super::GrantRecord>>>,
}

impl std::fmt::Debug for GrantCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantCache")
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl GrantCache {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .support_invalidation_closures()
                .build(),
        }
    }

    /// The grant stored under `handle_hash`, from memory when possible.
    pub async fn find<S: super::GrantStore + Sync>(
        &self,
        store: &S,
        tenant: &str,
        handle_hash: &str,
    ) -> Result<Option<Arc<super::GrantRecord>>, InternalError> {
        let key = (tenant.to_string(), handle_hash.to_string());
        if let Some(hit) = self.cache.get(&key).await {
            return Ok(hit);
        }
        let loaded = store.find_grant(tenant, handle_hash).await?.map(Arc::new);
        self.cache.insert(key, loaded.clone()).await;
        Ok(loaded)
    }

    /// Forgets every grant (after revocation notices may have been missed).
    pub fn forget_all(&self) {
        self.cache.invalidate_all();
    }

    /// Forgets every grant issued to a client (it was removed).
    pub fn forget_client(&self, tenant: &str, client_id: &str) {
        let (tenant, client_id) = (tenant.to_string(), client_id.to_string());
        let _ = self.cache.invalidate_entries_if(move |(t, _), record| {
            *t == tenant && record.as_ref().is_some_and(|r| r.client_id == client_id)
        });
    }

    /// Forgets a grant, or every grant of a family (`key` is either).
    pub fn forget(&self, tenant: &str, key: &str) {
        let (tenant, key) = (tenant.to_string(), key.to_string());
        let _ = self.cache.invalidate_entries_if(move |(t, hash), record| {
            *t == tenant
                && (*hash == key
                    || record
                        .as_ref()
                        .is_some_and(|r| r.family.as_deref() == Some(key.as_str())))
        });
    }
}
