//! Runtime ("dynamic") providers: what the admin API and `portcullis providers` share. A
//! definition arrives as values only ([`Definition<Plain>`]: no file, no environment variable,
//! no account linking), is checked as a whole (keys parsed, SAML metadata read) before it is
//! stored, its secrets sealed under the master key; every node learns of the change
//! (PostgreSQL NOTIFY, and the lookup cache's TTL as the safety net).

use super::{Definition, Plain, Provider, Sealed};
use crate::error::InternalError;
use crate::keys::MasterKey;
use crate::outbound::Policy;
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

/// What a tenant's file providers already hold: their ids and the email domains they claim.
#[derive(Debug, Default)]
pub struct FileClaims {
    pub domains: Vec<String>,
}

/// What [`save`] did.
#[derive(Debug)]
pub struct Saved {
    /// The provider as the API shows it (secrets only as `true`).
    pub view: Value,
    /// True when the provider did not exist before (RFC 9110 §9.3.4: 201 for a PUT that creates).
    pub created: bool,
}

/// Checks and stores a runtime provider of `tenant`.
#[allow(clippy::too_many_arguments)]
pub async fn save(
    store: &Store,
    master: &MasterKey,
    outbound: &Policy,
    tenant: &str,
    spec: Definition<Plain>,
    mode: Mode,
    file_claims: &FileClaims,
    now: i64,
) -> Result<Saved, AdminError> {
    if file_provider_ids(store, tenant).await?.contains(&spec.id) {
        return Err(AdminError::Conflict(format!(
            "provider {} is defined by a file; change it there",
            spec.id
        )));
    }
    if let Some(d) = spec
        .domains
        .iter()
        .find(|d| file_claims.domains.contains(d))
    {
        return Err(AdminError::Conflict(format!(
            "domain {d} already belongs to a file provider of this tenant"
        )));
    }
    spec.check(outbound)
        .map_err(|e| AdminError::Invalid(e.join("; ")))?;
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
    let previous = existing
        .as_ref()
        .and_then(|row| serde_json::from_str::<Definition<Sealed>>(&row.spec).ok());
    let sealed = spec.seal(tenant, master, previous.as_ref())?;
    // Everything the provider needs must work now, not at the first sign-in.
    let opened = sealed
        .clone()
        .open(tenant, master)
        .map_err(AdminError::Invalid)?;
    Provider::new(opened, Some(tenant), outbound).map_err(AdminError::Invalid)?;
    let row = ProviderRow {
        id: sealed.id.clone(),
        enabled: sealed.enabled,
        listed: sealed.listed,
        display_name: sealed.display_name.clone(),
        spec: serde_json::to_string(&sealed).map_err(InternalError::from)?,
        updated_at: now,
    };
    match store
        .upsert_provider_row(tenant, &row, &sealed.domains)
        .await?
    {
        ProviderWrite::Written => {}
        ProviderWrite::DomainTaken(d) => {
            return Err(AdminError::Conflict(format!(
                "domain {d} already belongs to another provider of this tenant"
            )));
        }
    }
    announce(store, tenant, &sealed.id).await?;
    tracing::info!(target: "security", event = "provider_saved", tenant, provider = %sealed.id, enabled = sealed.enabled);
    Ok(Saved {
        view: sealed.public_view(),
        created: existing.is_none(),
    })
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
    let mut spec: Definition<Sealed> =
        serde_json::from_str(&row.spec).map_err(InternalError::from)?;
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
    announce(store, tenant, id).await?;
    tracing::info!(target: "security", event = "provider_saved", tenant, provider = %id, enabled);
    Ok(spec.public_view())
}

pub async fn remove(store: &Store, tenant: &str, id: &str) -> Result<(), AdminError> {
    if !store.delete_provider_row(tenant, id).await? {
        return Err(AdminError::NotFound(format!("no provider {id}")));
    }
    announce(store, tenant, id).await?;
    tracing::info!(target: "security", event = "provider_removed", tenant, provider = %id);
    Ok(())
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
    Ok(rows.iter().map(|r| view_of_row(&r.id, &r.spec)).collect())
}

/// One runtime provider.
pub async fn get(store: &Store, tenant: &str, id: &str) -> Result<Value, AdminError> {
    let row = store
        .find_provider_row(tenant, id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no provider {id}")))?;
    Ok(view_of_row(&row.id, &row.spec))
}

/// A stored definition as the API shows it; one this version cannot read (written by an
/// older version with file references, say) is shown as such, to be replaced.
fn view_of_row(id: &str, spec: &str) -> Value {
    match serde_json::from_str::<Definition<Sealed>>(spec) {
        Ok(d) => d.public_view(),
        Err(_) => serde_json::json!({
            "id": id,
            "unusable": "the stored definition cannot be read by this version; PUT it again",
        }),
    }
}

/// Tells the other nodes that a runtime provider of `tenant` changed.
async fn announce(store: &Store, tenant: &str, id: &str) -> Result<(), InternalError> {
    store
        .announce(&crate::stores::ChangeNotice::Provider {
            tenant: tenant.to_string(),
            id: id.to_string(),
        })
        .await
}
