//! `portcullis providers`: upstream identity providers added at runtime (stored per tenant in
//! the database; every node picks changes up without a restart).

use super::open_store;
use crate::clock::{Clock, SystemClock};
use crate::config::ServerConfig;
use crate::federation::admin::{self, Mode};
use crate::stores::{Store, TenantStore};
use std::path::Path;

/// Adds (or with `replace`, replaces) a runtime provider from a TOML file shaped like
/// providers/<id>.toml or a JSON file shaped like the admin API's body; its id defaults to the
/// file name.
pub async fn add(
    config: &ServerConfig,
    tenant: &str,
    file: &Path,
    replace: bool,
) -> Result<(), String> {
    let (store, master) = open_store(config).await?;
    let now = SystemClock.now();
    let result = async {
        let mut spec = read_provider_definition(file)?;
        if spec.id.is_empty() {
            spec.id = file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
        }
        let mode = if replace {
            Mode::CreateOrReplace
        } else {
            Mode::Create
        };
        let claims = admin::FileClaims {
            domains: file_provider_domains(config, &store, tenant).await?,
        };
        let policy = crate::outbound::Outbound::from_config(config).map_err(|e| e.to_string())?;
        admin::save(
            &store,
            &master,
            policy.policy(),
            tenant,
            spec,
            mode,
            &claims,
            now,
        )
        .await
        .map(|saved| println!("saved: {}", saved.view))
        .map_err(|e| e.to_string())
    }
    .await;
    store.close().await;
    result
}

/// Prints the tenant's runtime providers.
pub async fn list(config: &ServerConfig, tenant: &str) -> Result<(), String> {
    let (store, _) = open_store(config).await?;
    let mut after = String::new();
    let result = loop {
        let page = match admin::list(&store, tenant, &after, 500).await {
            Ok(page) => page,
            Err(e) => break Err(e.to_string()),
        };
        for p in &page {
            println!(
                "{}  {}  {}  enabled={}  domains={}",
                p["id"].as_str().unwrap_or_default(),
                p["kind"].as_str().unwrap_or_default(),
                p["display_name"].as_str().unwrap_or_default(),
                p["enabled"],
                p["domains"]
            );
        }
        match page.last().and_then(|p| p["id"].as_str()) {
            Some(last) if page.len() == 500 => after = last.to_string(),
            _ => break Ok(()),
        }
    };
    store.close().await;
    result
}

/// Offers a provider again, or stops offering it (sign-ins through it are refused) without
/// removing it.
pub async fn set_enabled(
    config: &ServerConfig,
    tenant: &str,
    id: &str,
    enabled: bool,
) -> Result<(), String> {
    let (store, _) = open_store(config).await?;
    let result = admin::set_enabled(&store, tenant, id, enabled, SystemClock.now())
        .await
        .map(|_| println!("{}", if enabled { "enabled" } else { "disabled" }));
    store.close().await;
    result.map_err(|e| e.to_string())
}

pub async fn remove(config: &ServerConfig, tenant: &str, id: &str) -> Result<(), String> {
    let (store, _) = open_store(config).await?;
    let result = admin::remove(&store, tenant, id)
        .await
        .map(|_| println!("removed"));
    store.close().await;
    result.map_err(|e| e.to_string())
}

/// A runtime provider's definition from the operator's file: TOML like providers/<id>.toml,
/// whose files and environment variables the CLI reads now (their values are stored sealed;
/// nodes never read them), or JSON like the admin API's body.
fn read_provider_definition(
    file: &std::path::Path,
) -> Result<crate::federation::Definition<crate::federation::Plain>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    if file.extension().is_some_and(|e| e == "json") {
        return serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()));
    }
    let parsed: crate::federation::definition::ProviderFile =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let access = crate::federation::definition::FileAccess {
        read: &|p| std::fs::read_to_string(p).map_err(|e| format!("cannot read {p}: {e}")),
        env: &|k| std::env::var(k).ok(),
        allow_inline_secret: true,
    };
    parsed
        .load(&access)
        .map_err(|e| format!("{}: {e}", file.display()))
}

/// The email domains the tenant's file providers claim.
async fn file_provider_domains(
    config: &ServerConfig,
    store: &Store,
    tenant: &str,
) -> Result<Vec<String>, String> {
    let Some(row) = store.find_tenant(tenant).await.map_err(|e| e.to_string())? else {
        return Err(format!("no tenant {tenant}"));
    };
    Ok(crate::federation::provider::file_domains(
        &config.paths.providers_dir,
        &row.spec.providers,
    ))
}
