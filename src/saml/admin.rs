//! Runtime SAML service providers: what the admin API and `portcullis saml-sps` share. A
//! registration arrives as values only ([`SamlSpDefinition`]: no file can be named), is checked
//! by the tenant file loader's own rules, completed from its metadata when it has a
//! `metadata_url` (fetched now, through the outbound guard: a failure is an error now, not at
//! the first sign-in), stored, and announced so that every node forgets its cached copy.

use crate::config::tenant::{SamlSpDefinition, check_definition};
use crate::error::InternalError;
use crate::federation::admin::{AdminError, Mode};
use crate::outbound::documents::DocCache;
use crate::stores::{ChangeNotice, SamlSpRow, SamlSpStore, Store, TenantStore};
use serde_json::Value;

/// What [`save`] did.
#[derive(Debug)]
pub struct Saved {
    /// The registration as the API shows it.
    pub view: Value,
    /// True when the SP was not registered before (RFC 9110 §9.3.4: 201 for a PUT that creates).
    pub created: bool,
}

/// A request body: a registration, and optionally `"enabled"`.
pub fn parse_body(body: &[u8]) -> Result<(SamlSpDefinition, Option<bool>), String> {
    let mut v: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not a service provider definition: {e}"))?;
    let enabled = match v.as_object_mut().and_then(|o| o.remove("enabled")) {
        None => None,
        Some(Value::Bool(b)) => Some(b),
        Some(_) => return Err("enabled: true or false".into()),
    };
    let def = serde_json::from_value(v)
        .map_err(|e| format!("the body is not a service provider definition: {e}"))?;
    Ok((def, enabled))
}

/// The problems of a registration as one message, each naming its key.
fn problems(p: &[(String, String)]) -> AdminError {
    AdminError::Invalid(
        p.iter()
            .map(|(k, m)| format!("{k}: {m}"))
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// Checks and stores a runtime SP of `tenant` (`enabled`: `None` keeps what a replaced
/// registration had; a new one is enabled).
pub async fn save(
    store: &Store,
    documents: &DocCache,
    tenant: &str,
    def: SamlSpDefinition,
    enabled: Option<bool>,
    mode: Mode,
    now: i64,
) -> Result<Saved, AdminError> {
    let spec = store
        .find_tenant(tenant)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no tenant {tenant}")))?
        .spec;
    if spec
        .saml_service_providers
        .iter()
        .any(|s| s.entity_id == def.entity_id)
    {
        return Err(AdminError::Conflict(format!(
            "service provider {} is registered by the tenant file; change it there",
            def.entity_id
        )));
    }
    // A session's participant list names clients and SPs alike (for logout): one name, one party.
    if crate::stores::ClientStore::find_client(store, tenant, &def.entity_id)
        .await?
        .is_some()
    {
        return Err(AdminError::Conflict(format!(
            "{} is a client_id of this tenant",
            def.entity_id
        )));
    }
    let base = check_definition(&def).map_err(|p| problems(&p))?;
    // Everything the SP needs must work now, not at the first sign-in.
    if let Some(url) = &base.metadata_url {
        // Registering (again) reads the metadata as it is now, not a cached copy.
        documents.forget(url).await;
        let doc = documents.get(url, now).await.map_err(|e| {
            AdminError::Invalid(format!("metadata_url: the metadata cannot be fetched: {e}"))
        })?;
        super::completed(&base, &doc.text, now).map_err(AdminError::Invalid)?;
    }
    let existing = store.find_saml_sp(tenant, &def.entity_id).await?;
    match (mode, &existing) {
        (Mode::Create, Some(_)) => {
            return Err(AdminError::Conflict(format!(
                "service provider {} exists",
                def.entity_id
            )));
        }
        (Mode::Replace, None) => {
            return Err(AdminError::NotFound(format!(
                "no service provider {}",
                def.entity_id
            )));
        }
        _ => {}
    }
    let enabled = enabled
        .or(existing.as_ref().map(|r| r.enabled))
        .unwrap_or(true);
    let row = SamlSpRow {
        entity_id: def.entity_id.clone(),
        enabled,
        spec: serde_json::to_string(&def).map_err(InternalError::from)?,
        updated_at: now,
    };
    store.upsert_saml_sp(tenant, &row).await?;
    announce(store, tenant, &row.entity_id).await?;
    tracing::info!(target: "security", event = "saml_sp_saved", tenant, sp = %row.entity_id, enabled);
    Ok(Saved {
        view: view_of_row(&row),
        created: existing.is_none(),
    })
}

/// Turns a runtime SP on or off (off: its requests are refused as an unknown SP's).
pub async fn set_enabled(
    store: &Store,
    tenant: &str,
    entity_id: &str,
    enabled: bool,
    now: i64,
) -> Result<Value, AdminError> {
    let row = store
        .find_saml_sp(tenant, entity_id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no service provider {entity_id}")))?;
    let row = SamlSpRow {
        enabled,
        updated_at: now,
        ..row
    };
    store.upsert_saml_sp(tenant, &row).await?;
    announce(store, tenant, entity_id).await?;
    tracing::info!(target: "security", event = "saml_sp_saved", tenant, sp = %entity_id, enabled);
    Ok(view_of_row(&row))
}

pub async fn remove(store: &Store, tenant: &str, entity_id: &str) -> Result<(), AdminError> {
    if !store.delete_saml_sp(tenant, entity_id).await? {
        return Err(AdminError::NotFound(format!(
            "no service provider {entity_id}"
        )));
    }
    announce(store, tenant, entity_id).await?;
    tracing::info!(target: "security", event = "saml_sp_removed", tenant, sp = %entity_id);
    Ok(())
}

/// One page of a tenant's runtime SPs (by entity id, after `after`).
pub async fn list(
    store: &Store,
    tenant: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<Value>, AdminError> {
    let rows = store
        .list_saml_sps(tenant, after, limit.clamp(1, 500))
        .await?;
    Ok(rows.iter().map(view_of_row).collect())
}

/// One runtime SP.
pub async fn get(store: &Store, tenant: &str, entity_id: &str) -> Result<Value, AdminError> {
    let row = store
        .find_saml_sp(tenant, entity_id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no service provider {entity_id}")))?;
    Ok(view_of_row(&row))
}

/// A stored registration as the API shows it: the definition and `enabled`.
fn view_of_row(row: &SamlSpRow) -> Value {
    let mut v = serde_json::from_str::<Value>(&row.spec)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| {
            serde_json::json!({
                "entity_id": row.entity_id,
                "unusable": "the stored registration cannot be read by this version; PUT it again",
            })
        });
    if let Some(o) = v.as_object_mut() {
        o.insert("enabled".into(), Value::Bool(row.enabled));
    }
    v
}

/// Tells every node (this one included) that a runtime SP of `tenant` changed.
async fn announce(store: &Store, tenant: &str, entity_id: &str) -> Result<(), InternalError> {
    store
        .announce(&ChangeNotice::SamlSp {
            tenant: tenant.to_string(),
            entity_id: entity_id.to_string(),
        })
        .await
}
