//! The runtime SAML service providers this node knows: registrations read from the store on
//! first use and kept, checked, in a cache that other nodes' change notices invalidate (the
//! TTL is the safety net); and SPs completed from their metadata, kept while the metadata
//! document they were made from is the cached one.

use crate::config::tenant::{SamlSp, SamlSpDefinition, check_definition};
use crate::error::InternalError;
use crate::outbound::documents::Doc;
use crate::stores::{SamlSpStore, Store};
use std::sync::Arc;

/// A runtime registration, checked.
#[derive(Debug)]
pub struct Registered {
    pub sp: SamlSp,
    pub enabled: bool,
}

/// An SP completed from its metadata: what it was made from, and the result.
#[derive(Debug)]
pub(super) struct Completed {
    pub(super) base: SamlSp,
    pub(super) doc: Arc<Doc>,
    pub(super) sp: Arc<SamlSp>,
}

#[derive(Debug)]
pub struct ServiceProviders {
    store: Store,
    /// Runtime registrations by `tenant\0entity id` (`None`: none).
    runtime: moka::future::Cache<String, Option<Arc<Registered>>>,
    /// SPs with a `metadata_url`, completed, by `tenant\0entity id`.
    pub(super) completed: moka::future::Cache<String, Arc<Completed>>,
}

pub(super) fn key(tenant: &str, entity_id: &str) -> String {
    format!("{tenant}\0{entity_id}")
}

impl ServiceProviders {
    pub fn new(store: Store, ttl_seconds: u64) -> Self {
        let ttl = std::time::Duration::from_secs(ttl_seconds.max(1));
        Self {
            store,
            runtime: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
            completed: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The runtime registration `entity_id` of `tenant`, enabled or not.
    pub async fn runtime(
        &self,
        tenant: &str,
        entity_id: &str,
    ) -> Result<Option<Arc<Registered>>, InternalError> {
        if entity_id.is_empty() || entity_id.len() > 1024 {
            return Ok(None);
        }
        let (slug, id) = (tenant.to_string(), entity_id.to_string());
        self.runtime
            .try_get_with(key(tenant, entity_id), async move {
                let Some(row) = self.store.find_saml_sp(&slug, &id).await? else {
                    return Ok::<_, InternalError>(None);
                };
                let checked = serde_json::from_str::<SamlSpDefinition>(&row.spec)
                    .map_err(|e| format!("the stored registration does not parse: {e}"))
                    .and_then(|d| {
                        check_definition(&d).map_err(|p| {
                            p.iter()
                                .map(|(k, m)| format!("{k}: {m}"))
                                .collect::<Vec<_>>()
                                .join("; ")
                        })
                    });
                match checked {
                    Ok(sp) => Ok(Some(Arc::new(Registered {
                        sp,
                        enabled: row.enabled,
                    }))),
                    Err(e) => {
                        tracing::error!(tenant = %slug, sp = %id, error = %e, "stored SAML SP cannot be used");
                        Ok(None)
                    }
                }
            })
            .await
            .map_err(|e| InternalError::shared(&e))
    }

    /// Forgets what this node knows of a runtime SP (it changed here or on another node).
    pub async fn forget(&self, tenant: &str, entity_id: &str) {
        let k = key(tenant, entity_id);
        self.runtime.invalidate(&k).await;
        self.completed.invalidate(&k).await;
    }

    /// Forgets every runtime SP (change notices may have been missed).
    pub fn forget_all(&self) {
        self.runtime.invalidate_all();
        self.completed.invalidate_all();
    }
}
