//! `portcullis keys`: a tenant's signing keys, listed and rotated.

use super::open_store;
use crate::clock::{Clock, SystemClock};
use crate::config::ServerConfig;
use crate::keys::ring::{self, KeyPolicy};
use crate::stores::{KeyStore, TenantStore};

/// Prints the tenant's keys with their state.
pub async fn list(config: &ServerConfig, tenant: &str) -> Result<(), String> {
    run(config, tenant, None).await
}

/// Creates a successor key for each of the tenant's algorithms (signing after the propagation
/// time, or at once with `immediate`), then prints the keys.
pub async fn rotate(config: &ServerConfig, tenant: &str, immediate: bool) -> Result<(), String> {
    run(config, tenant, Some(immediate)).await
}

/// `rotate`: `Some(immediate)` to create successor keys first.
async fn run(config: &ServerConfig, tenant: &str, rotate: Option<bool>) -> Result<(), String> {
    let (store, master) = open_store(config).await?;
    let p = KeyPolicy::from(&config.keys);
    let now = SystemClock.now();
    let row = store
        .find_tenant(tenant)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no tenant `{tenant}` in the database"))?;
    if let Some(immediate) = rotate {
        let records = store.list_keys(tenant).await.map_err(|e| e.to_string())?;
        for alg in &row.spec.tokens.signing_algorithms {
            // A first RSA key is made by the server when first needed, and signs at once.
            if !records.iter().any(|r| r.alg == *alg) {
                println!("{alg}: no key yet (the server makes one when it is first needed)");
                continue;
            }
            let at = if immediate { now } else { now + p.propagation };
            let env = ring::KeyEnv {
                store: &store,
                master: &master,
                policy: &p,
            };
            let created = ring::create_key(env, tenant, *alg, &records, at, now)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "{alg}: {}",
                if created {
                    "successor key created"
                } else {
                    "another node created a key at the same moment"
                }
            );
        }
        println!("running nodes pick the change up within reload.sync_interval_seconds");
    }
    let records = store.list_keys(tenant).await.map_err(|e| e.to_string())?;
    println!(
        "{:<6} {:<44} {:>4} {:<10} {:<12} {:<12}",
        "alg", "kid", "gen", "state", "signs from", "signs until"
    );
    for r in &records {
        let state = ring::state_of(&records, r, &p, now);
        println!(
            "{:<6} {:<44} {:>4} {:<10} {:<12} {:<12}",
            r.alg,
            r.kid,
            r.generation,
            format!("{state:?}").to_lowercase(),
            r.activates_at,
            r.expires_at(&p)
        );
    }
    store.close().await;
    Ok(())
}
