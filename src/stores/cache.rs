//! Caching decorator in front of client lookups (STYLE.md §10): the SQL code knows nothing of
//! caching, and the cache never holds the only copy of anything. One cache per tenant
//! generation: reloading a tenant replaces it, which is the invalidation.

use super::Store;
use crate::error::InternalError;
use crate::registry::Client;
use moka::future::Cache;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct ClientCache {
    cache: Cache<String, Option<Arc<Client>>>,
}

impl std::fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCache")
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl ClientCache {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The client, from memory when possible. Unknown ids are cached too (briefly, bounded), so a
    /// flood of made-up client ids cannot turn into a flood of database queries.
    pub async fn find(
        &self,
        store: &Store,
        tenant: &str,
        client_id: &str,
    ) -> Result<Option<Arc<Client>>, InternalError> {
        if let Some(hit) = self.cache.get(client_id).await {
            return Ok(hit);
        }
        let loaded = match store.find_client(tenant, client_id).await? {
            Some(spec) => Some(Arc::new(Client::from_spec(spec)?)),
            None => None,
        };
        self.cache
            .insert(client_id.to_string(), loaded.clone())
            .await;
        Ok(loaded)
    }

    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }
}
