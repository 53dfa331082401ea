//! Caching decorator in front of client lookups (STYLE.md §10): the SQL code knows nothing of
//! caching, and the cache never holds the only copy of anything. Each tenant generation has its
//! own cache: reloading a tenant replaces it, which is the invalidation.

use super::ClientStore;
use crate::error::InternalError;
use crate::registry::Client;
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
}

impl<S: ClientStore + Sync> ClientStore for CachingClientStore<S> {
    /// The client, from memory when possible. Unknown ids are cached too (bounded, expiring), so
    /// a flood of made-up client ids cannot become a flood of database queries.
    async fn find_client(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> Result<Option<Arc<Client>>, InternalError> {
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
