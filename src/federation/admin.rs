//! Runtime ("dynamic") providers: what the admin API and `portcullis providers` share. A
//! provider is checked as a whole (its references resolved, SAML metadata read) before it is
//! stored; an inline client secret is sealed under the master key; every node learns of the
//! change (PostgreSQL NOTIFY, and the lookup cache's TTL as the safety net).

use super::{Provider, ProviderSpec};
use crate::error::InternalError;
use crate::keys::MasterKey;
use crate::stores::{FederationStore, ProviderRow, ProviderWrite, Store, TenantStore};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// Whether a provider is being created or replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Replace,
    CreateOrReplace,
}

/// The file providers `tenant` lists (their ids cannot be taken by runtime providers).
async fn file_provider_ids(store: &Store, tenant: &str) -> Result<Vec<String>, AdminError> {
    let row = store
        .find_tenant(tenant)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no tenant {tenant}")))?;
    Ok(row.spec.providers)
}

/// Checks and stores a runtime provider of `tenant`; returns what was stored, secrets left out.
pub async fn save(
    store: &Store,
    master: &MasterKey,
    base_dir: &std::path::Path,
    tenant: &str,
    mut spec: ProviderSpec,
    mode: Mode,
    now: i64,
) -> Result<Value, AdminError> {
    if file_provider_ids(store, tenant).await?.contains(&spec.id) {
        return Err(AdminError::Conflict(format!(
            "provider {} is defined by a file; change it there",
            spec.id
        )));
    }
    let existing = store.find_provider_row(tenant, &spec.id).await?;
    match (mode, &existing) {
        (Mode::Create, Some(_)) => {
            return Err(AdminError::Conflict(format!("provider {} exists", spec.id)));
        }
        (Mode::Replace, None) => {
            return Err(AdminError::NotFound(format!("no provider {}", spec.id)));
        }
        _ => {}
    }
    // A replacement without a secret keeps the stored one.
    if let (Some(row), Some(o)) = (&existing, spec.oidc.as_mut())
        && o.client_secret.is_none()
        && o.client_secret_env.is_none()
        && o.client_secret_file.is_none()
        && o.client_secret_sealed.is_none()
        && let Ok(old) = serde_json::from_str::<ProviderSpec>(&row.spec)
        && let Some(old_oidc) = old.oidc
    {
        o.client_secret_sealed = old_oidc.client_secret_sealed;
    }
    if spec
        .oidc
        .as_ref()
        .is_some_and(|o| o.client_secret_sealed.is_some() && existing.is_none())
    {
        return Err(AdminError::Invalid(
            "send client_secret; client_secret_sealed is written by the server".into(),
        ));
    }
    super::seal_inline_secret(&mut spec, tenant, master)?;
    // Everything the provider refers to must resolve now, not at the first sign-in.
    Provider::resolve(spec.clone(), Some(tenant), false, base_dir, master)
        .map_err(AdminError::Invalid)?;
    let row = ProviderRow {
        id: spec.id.clone(),
        enabled: spec.enabled,
        listed: spec.listed,
        display_name: spec.display_name.clone(),
        spec: serde_json::to_string(&spec).map_err(InternalError::from)?,
        updated_at: now,
    };
    match store
        .upsert_provider_row(tenant, &row, &spec.domains)
        .await?
    {
        ProviderWrite::Written => {}
        ProviderWrite::DomainTaken(d) => {
            return Err(AdminError::Conflict(format!(
                "domain {d} already belongs to another provider of this tenant"
            )));
        }
    }
    store.announce_provider(tenant, &spec.id).await?;
    tracing::info!(target: "security", event = "provider_saved", tenant, provider = %spec.id, enabled = spec.enabled);
    Ok(public_view(&spec))
}

/// Turns a runtime provider on or off.
pub async fn set_enabled(
    store: &Store,
    tenant: &str,
    id: &str,
    enabled: bool,
    now: i64,
) -> Result<Value, AdminError> {
    let row = store
        .find_provider_row(tenant, id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no provider {id}")))?;
    let mut spec: ProviderSpec = serde_json::from_str(&row.spec).map_err(InternalError::from)?;
    spec.enabled = enabled;
    let new = ProviderRow {
        enabled,
        spec: serde_json::to_string(&spec).map_err(InternalError::from)?,
        updated_at: now,
        ..row
    };
    store
        .upsert_provider_row(tenant, &new, &spec.domains)
        .await?;
    store.announce_provider(tenant, id).await?;
    tracing::info!(target: "security", event = "provider_saved", tenant, provider = %id, enabled);
    Ok(public_view(&spec))
}

pub async fn remove(store: &Store, tenant: &str, id: &str) -> Result<(), AdminError> {
    if !store.delete_provider_row(tenant, id).await? {
        return Err(AdminError::NotFound(format!("no provider {id}")));
    }
    store.announce_provider(tenant, id).await?;
    tracing::info!(target: "security", event = "provider_removed", tenant, provider = %id);
    Ok(())
}

/// A provider as the API shows it: never a secret.
pub fn public_view(spec: &ProviderSpec) -> Value {
    let mut v = serde_json::to_value(spec).unwrap_or(Value::Null);
    if let Some(o) = v.get_mut("oidc").and_then(Value::as_object_mut) {
        let has_secret =
            o.remove("client_secret_sealed").is_some() || o.remove("client_secret").is_some();
        o.insert(
            "has_client_secret".into(),
            Value::Bool(
                has_secret
                    || o.contains_key("client_secret_env")
                    || o.contains_key("client_secret_file"),
            ),
        );
    }
    v
}

/// One page of a tenant's runtime providers (by id, after `after`).
pub async fn list(
    store: &Store,
    tenant: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<Value>, AdminError> {
    let rows = store
        .list_provider_rows(tenant, false, after, limit.clamp(1, 500))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| serde_json::from_str::<ProviderSpec>(&r.spec).ok())
        .map(|s| public_view(&s))
        .collect())
}

/// One runtime provider.
pub async fn get(store: &Store, tenant: &str, id: &str) -> Result<Value, AdminError> {
    let row = store
        .find_provider_row(tenant, id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no provider {id}")))?;
    let spec: ProviderSpec = serde_json::from_str(&row.spec).map_err(InternalError::from)?;
    Ok(public_view(&spec))
}
