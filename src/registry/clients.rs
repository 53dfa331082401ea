//! Where a tenant's clients come from: the store (file and runtime clients alike) and, when the
//! tenant allows it, client ID metadata documents — a `client_id` that is an https URL naming a
//! JSON document of the client's metadata (the OAuth working group's "Client ID Metadata
//! Document" draft, as the Model Context Protocol's authorization spec uses it).
//!
//! A document is fetched through the outbound guard (public addresses only unless the tenant
//! allows internal ones, at most `max_bytes`, within a few seconds), cached as long as its
//! `Cache-Control` says (the document cache), and turned into a client by the same rules as a
//! registration: its `client_id` member must be the URL itself, it may authenticate with
//! `none` or `private_key_jwt` only, it gets PKCE and consent, and its scopes are narrowed to
//! the tenant's list. A refused document is remembered for a minute, so that a flood of
//! made-up URLs is not a flood of fetches.

use crate::clock::SharedClock;
use crate::config::Client;
use crate::config::metadata::{self, Rules};
use crate::config::tenant::{GrantType, TenantSpec, check_client_definition};
use crate::error::InternalError;
use crate::outbound::documents::DocCache;
use crate::stores::{ClientStore, Store};
use std::sync::Arc;
use std::time::Duration;

/// The document caches for metadata documents: one whose guard admits public addresses only,
/// one with the operator's outbound allow-list (for tenants that allow internal addresses).
#[derive(Debug, Clone)]
pub struct MetadataDocuments {
    pub public_only: Arc<DocCache>,
    pub with_allow_list: Arc<DocCache>,
}

/// The largest metadata document any tenant may allow.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// The longest a metadata document fetch may take (it holds up a sign-in).
pub const DOCUMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// A tenant's clients: the store, and metadata documents when the tenant allows them.
#[derive(Debug, Clone)]
pub struct TenantClients {
    store: Store,
    documents: Option<Arc<DocumentClients>>,
}

impl TenantClients {
    pub fn new(
        store: Store,
        spec: &TenantSpec,
        docs: &MetadataDocuments,
        clock: SharedClock,
    ) -> Self {
        let policy = &spec.client_metadata_documents;
        let documents = policy.enabled.then(|| {
            Arc::new(DocumentClients {
                spec: Arc::new(spec.clone()),
                documents: if policy.allow_internal_addresses {
                    docs.with_allow_list.clone()
                } else {
                    docs.public_only.clone()
                },
                clock,
                built: moka::future::Cache::builder()
                    .max_capacity(10_000)
                    .time_to_live(Duration::from_secs(86_400))
                    .build(),
                refused: moka::future::Cache::builder()
                    .max_capacity(10_000)
                    .time_to_live(Duration::from_secs(60))
                    .build(),
            })
        });
        Self { store, documents }
    }

    fn is_document(&self, client_id: &str) -> bool {
        self.documents.is_some() && client_id.starts_with("https://")
    }
}

impl ClientStore for TenantClients {
    fn cacheable(&self, client_id: &str) -> bool {
        !self.is_document(client_id)
    }

    async fn find_client(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> Result<Option<Arc<Client>>, InternalError> {
        match &self.documents {
            Some(d) if self.is_document(client_id) => Ok(d.find(tenant, client_id).await),
            _ => self.store.find_client(tenant, client_id).await,
        }
    }
}

#[derive(Debug)]
struct DocumentClients {
    spec: Arc<TenantSpec>,
    documents: Arc<DocCache>,
    clock: SharedClock,
    /// Clients made from documents, with the fetch time of the copy each was made from.
    built: moka::future::Cache<String, (i64, Arc<Client>)>,
    refused: moka::future::Cache<String, ()>,
}

impl DocumentClients {
    async fn find(&self, tenant: &str, url: &str) -> Option<Arc<Client>> {
        if self.refused.get(url).await.is_some() {
            return None;
        }
        match self.load(url).await {
            Ok(c) => Some(c),
            Err(why) => {
                tracing::warn!(target: "security", event = "client_metadata_document_refused", tenant, client_id = %url, reason = %why, "client metadata document refused");
                self.refused.insert(url.to_string(), ()).await;
                None
            }
        }
    }

    async fn load(&self, url: &str) -> Result<Arc<Client>, String> {
        let policy = &self.spec.client_metadata_documents;
        let parsed = url::Url::parse(url).map_err(|_| "not a URL".to_string())?;
        // The draft: an https URL with a path, no fragment; the host is the tenant's to allow.
        if parsed.path() == "/" || parsed.path().is_empty() {
            return Err("the URL has no path".into());
        }
        if !policy.admits(&parsed) {
            return Err("the host is not allowed by the tenant's client_metadata_documents".into());
        }
        let doc = self
            .documents
            .get(url, self.clock.now())
            .await
            .map_err(|e| format!("cannot be fetched: {e}"))?;
        if doc.text.len() > policy.max_bytes {
            return Err(format!("larger than {} bytes", policy.max_bytes));
        }
        if let Some((at, c)) = self.built.get(url).await
            && at == doc.fetched_at
        {
            return Ok(c);
        }
        let mut object = doc
            .json
            .as_deref()
            .and_then(|v| v.as_object())
            .cloned()
            .ok_or("not a JSON object")?;
        if object.get("client_id").and_then(|v| v.as_str()) != Some(url) {
            return Err("its client_id member is not the document's URL".into());
        }
        // Only a client without a secret: nothing can be shared with a document anyone reads.
        for k in ["client_secret", "client_secret_expires_at"] {
            if object.contains_key(k) {
                return Err(format!("it holds `{k}`"));
            }
        }
        object
            .entry("token_endpoint_auth_method")
            .or_insert_with(|| "none".into());
        let methods = ["none".to_string(), "private_key_jwt".to_string()];
        let requested = metadata::read(
            &object,
            url,
            Rules {
                grant_types: &[GrantType::AuthorizationCode, GrantType::RefreshToken],
                auth_methods: &methods,
                scopes: &policy.scopes,
                narrow_scopes: true,
                require_consent: true,
            },
        )
        .map_err(|e| e.description().to_string())?;
        let spec = check_client_definition(&requested.definition, &self.spec, Vec::new()).map_err(
            |p| {
                p.iter()
                    .map(|(k, m)| format!("{k}: {m}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        )?;
        let mut client = Client::from_spec(spec).map_err(|e| e.to_string())?;
        client.document_host = parsed.host_str().map(str::to_string);
        let client = Arc::new(client);
        self.built
            .insert(url.to_string(), (doc.fetched_at, client.clone()))
            .await;
        Ok(client)
    }
}
