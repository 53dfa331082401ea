//! `portcullis saml-sps`: SAML service providers registered at runtime (stored per tenant in
//! the database; every node picks changes up without a restart). SPs in tenant files are
//! edited there.

use super::open_store;
use crate::clock::{Clock, SystemClock};
use crate::config::ServerConfig;
use crate::federation::admin::Mode;
use crate::saml::admin;
use std::path::Path;

/// Registers (or with `replace`, replaces) an SP from a TOML file shaped like one
/// `[[saml_service_providers]]` entry of a tenant file (no `*_file` keys), or a JSON file
/// shaped like the admin API's body.
pub async fn add(
    config: &ServerConfig,
    tenant: &str,
    file: &Path,
    replace: bool,
) -> Result<(), String> {
    let body = read_definition(file)?;
    let (def, enabled) =
        admin::parse_body(&body).map_err(|e| format!("{}: {e}", file.display()))?;
    let (store, _) = open_store(config).await?;
    let result = async {
        let outbound = crate::outbound::Outbound::from_config(config).map_err(|e| e.to_string())?;
        let documents =
            crate::outbound::documents::DocCache::new(outbound, config.outbound.cache_max_bytes);
        let mode = if replace {
            Mode::CreateOrReplace
        } else {
            Mode::Create
        };
        admin::save(
            &store,
            &documents,
            tenant,
            def,
            enabled,
            mode,
            SystemClock.now(),
        )
        .await
        .map(|saved| println!("saved: {}", saved.view))
        .map_err(|e| e.to_string())
    }
    .await;
    store.close().await;
    result
}

/// The definition as JSON bytes (TOML is read into the same shape).
fn read_definition(file: &Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    if file.extension().is_some_and(|e| e == "json") {
        return Ok(text.into_bytes());
    }
    let value: toml::Value =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    serde_json::to_vec(&value).map_err(|e| format!("{}: {e}", file.display()))
}

/// Prints the tenant's runtime SPs, one a line.
pub async fn list(config: &ServerConfig, tenant: &str) -> Result<(), String> {
    let (store, _) = open_store(config).await?;
    let mut after = String::new();
    let result = loop {
        let page = match admin::list(&store, tenant, &after, 500).await {
            Ok(page) => page,
            Err(e) => break Err(e.to_string()),
        };
        for sp in &page {
            println!(
                "{}  {}  enabled={}{}",
                sp["entity_id"].as_str().unwrap_or_default(),
                sp["display_name"].as_str().unwrap_or_default(),
                sp["enabled"],
                sp["metadata_url"]
                    .as_str()
                    .map(|u| format!("  metadata_url={u}"))
                    .unwrap_or_default(),
            );
        }
        match page.last().and_then(|p| p["entity_id"].as_str()) {
            Some(last) if page.len() == 500 => after = last.to_string(),
            _ => break Ok(()),
        }
    };
    store.close().await;
    result
}

/// Prints one runtime SP as JSON.
pub async fn show(config: &ServerConfig, tenant: &str, entity_id: &str) -> Result<(), String> {
    let (store, _) = open_store(config).await?;
    let result = admin::get(&store, tenant, entity_id)
        .await
        .map(|v| println!("{v:#}"));
    store.close().await;
    result.map_err(|e| e.to_string())
}

/// Signs users in to an SP again, or refuses its requests (as an unknown SP's) without removing it.
pub async fn set_enabled(
    config: &ServerConfig,
    tenant: &str,
    entity_id: &str,
    enabled: bool,
) -> Result<(), String> {
    let (store, _) = open_store(config).await?;
    let result = admin::set_enabled(&store, tenant, entity_id, enabled, SystemClock.now())
        .await
        .map(|_| println!("{}", if enabled { "enabled" } else { "disabled" }));
    store.close().await;
    result.map_err(|e| e.to_string())
}

pub async fn remove(config: &ServerConfig, tenant: &str, entity_id: &str) -> Result<(), String> {
    let (store, _) = open_store(config).await?;
    let result = admin::remove(&store, tenant, entity_id)
        .await
        .map(|_| println!("removed"));
    store.close().await;
    result.map_err(|e| e.to_string())
}
