//! `portcullis check-config` and `portcullis tenants`: the tenant files, checked offline by the
//! loader's own rules, and the tenants in the database.

use super::open_store;
use crate::config::tenant::{self, TenantDefaults};
use crate::config::{ConfigError, ServerConfig};
use crate::stores::TenantStore;
use std::collections::HashMap;

/// What checking the tenants directory found.
#[derive(Debug, Default)]
pub struct TenantCheck {
    /// One line per accepted file: path, slug, client count and issuer.
    pub accepted: Vec<String>,
    /// Every problem of the rejected files, as the loader reports them.
    pub problems: Vec<ConfigError>,
}

/// Checks every tenant file with the loader's rules and messages
/// ([`tenant::resolve_in_directory`], which `registry::sync::reload_files` uses too).
pub fn check_tenant_files(config: &ServerConfig) -> Result<TenantCheck, String> {
    let files = config.file_roots();
    let defaults = TenantDefaults {
        public_base_url: &config.server.public_base_url,
        mtls_base_url: &config.server.mtls_base_url,
        files: &files,
    };
    let dir = &config.paths.tenants_dir;
    let unreadable = |e: std::io::Error| format!("cannot read {}: {e}", dir.display());
    // A missing directory is an error here (the loader starts with no tenants instead).
    std::fs::read_dir(dir).map_err(unreadable)?;
    let mut check = TenantCheck::default();
    let mut claimed = HashMap::new();
    for path in tenant::toml_files(dir).map_err(unreadable)? {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        match tenant::resolve_in_directory(&path, &text, &defaults, &mut claimed, &|_| None) {
            Ok((spec, clients)) => check.accepted.push(format!(
                "ok  {} (tenant {}, {} clients, issuer {})",
                path.display(),
                spec.slug,
                clients.len(),
                spec.issuer
            )),
            Err(list) => check.problems.extend(list),
        }
    }
    Ok(check)
}

/// `portcullis check-config`: the server configuration was loaded already; checks every tenant
/// file and prints each accepted one (stdout) and each problem (stderr).
pub fn check_config(config: &ServerConfig) -> Result<(), String> {
    let check = check_tenant_files(config)?;
    for line in &check.accepted {
        println!("{line}");
    }
    for e in &check.problems {
        eprintln!("{e}");
    }
    match check.problems.len() {
        0 => Ok(()),
        n => Err(format!("{n} problem(s) found")),
    }
}

/// Prints the tenants in the database with their version, source and issuer.
pub async fn list(config: &ServerConfig) -> Result<(), String> {
    let (store, _) = open_store(config).await?;
    for (slug, version) in store.tenant_versions().await.map_err(|e| e.to_string())? {
        if let Some(row) = store.find_tenant(&slug).await.map_err(|e| e.to_string())? {
            println!(
                "{slug:<16} v{version:<4} {:<6} {}",
                row.source, row.spec.issuer
            );
        }
    }
    store.close().await;
    Ok(())
}
