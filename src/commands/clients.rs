//! `portcullis clients`: the stored and sealed forms of client secrets for tenant files, and
//! the clients that live in the database (as the admin API manages them; every node picks
//! changes up without a restart), and initial access tokens for registration.

use super::{open_store, read_line_or};
use crate::clock::{Clock, SystemClock};
use crate::config::ServerConfig;
use crate::federation::admin::Mode;
use crate::stores::TenantStore;

/// Prints the stored form of a client secret (with --generate, a new secret first).
pub fn hash_secret(secret: Option<String>, generate: bool) -> Result<(), String> {
    let secret = match (secret, generate) {
        (_, true) => {
            let s = crate::secrets::generate_secret();
            println!("secret: {s}");
            s
        }
        (Some(s), false) => s,
        (None, false) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if secret.is_empty() {
        return Err("the secret is empty".into());
    }
    println!("{}", crate::secrets::SecretHash::of(&secret).to_stored());
    Ok(())
}

/// Prints the sealed form of a client secret for client_secret_jwt (encrypted under this
/// deployment's master key, bound to tenant and client).
pub async fn seal_secret(
    config: &ServerConfig,
    tenant: &str,
    client: &str,
    secret: Option<String>,
    generate: bool,
) -> Result<(), String> {
    let secret = if generate {
        let s = crate::secrets::generate_secret();
        println!("secret: {s}");
        s
    } else {
        read_line_or(secret)?
    };
    // RFC 7518 §3.2: an HS256 key has at least 256 bits.
    if secret.len() < 32 {
        return Err("a secret for client_secret_jwt has at least 32 characters".into());
    }
    let (store, master) = open_store(config).await?;
    store.close().await;
    let sealed = master
        .seal(
            secret.as_bytes(),
            &crate::registry::sealed_secret_aad(tenant, client),
        )
        .map_err(|e| e.to_string())?;
    println!(
        "{}{}",
        crate::config::tenant::SEALED_PREFIX,
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sealed)
    );
    Ok(())
}

/// Creates (or with `replace`, replaces) a runtime client from a JSON file shaped like the
/// admin API's body, or a TOML file shaped like one `[[clients]]` entry without the keys that
/// name files. A generated secret is printed once.
pub async fn add(
    config: &ServerConfig,
    tenant: &str,
    file: &std::path::Path,
    replace: bool,
) -> Result<(), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut value: serde_json::Value = if file.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?
    } else {
        let t: toml::Value =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        serde_json::to_value(t).map_err(|e| format!("{}: {e}", file.display()))?
    };
    let enabled = value
        .as_object_mut()
        .and_then(|o| o.remove("enabled"))
        .map(|v| v.as_bool().ok_or("enabled: true or false"))
        .transpose()?;
    let def: crate::config::tenant::ClientDefinition =
        serde_json::from_value(value).map_err(|e| format!("{}: {e}", file.display()))?;
    let mode = if replace {
        Mode::CreateOrReplace
    } else {
        Mode::Create
    };
    with_store(config, |store, master| async move {
        let saved = crate::clients::save(
            &store,
            &master,
            tenant,
            def,
            enabled,
            mode,
            SystemClock.now(),
        )
        .await
        .map_err(|e| e.to_string())?;
        if let Some(s) = &saved.secret {
            println!("client_secret: {s}    (shown once; only its hash is stored)");
        }
        println!("saved: {}", saved.view);
        Ok(())
    })
    .await
}

/// Prints the tenant's runtime clients, one a line.
pub async fn list(config: &ServerConfig, tenant: &str) -> Result<(), String> {
    with_store(config, |store, _| async move {
        let mut after = String::new();
        loop {
            let page = crate::clients::list(&store, tenant, &after, 500)
                .await
                .map_err(|e| e.to_string())?;
            for c in &page {
                println!(
                    "{}  {}  enabled={}  registered={}",
                    c["client_id"].as_str().unwrap_or_default(),
                    c["client_name"].as_str().unwrap_or_default(),
                    c["enabled"],
                    c["registered"],
                );
            }
            match page.last().and_then(|c| c["client_id"].as_str()) {
                Some(last) if page.len() == 500 => after = last.to_string(),
                _ => return Ok(()),
            }
        }
    })
    .await
}

pub async fn show(config: &ServerConfig, tenant: &str, client_id: &str) -> Result<(), String> {
    with_store(config, |store, _| async move {
        let v = crate::clients::get(&store, tenant, client_id)
            .await
            .map_err(|e| e.to_string())?;
        println!("{v:#}");
        Ok(())
    })
    .await
}

pub async fn set_enabled(
    config: &ServerConfig,
    tenant: &str,
    client_id: &str,
    enabled: bool,
) -> Result<(), String> {
    with_store(config, |store, _| async move {
        crate::clients::set_enabled(&store, tenant, client_id, enabled, SystemClock.now())
            .await
            .map_err(|e| e.to_string())?;
        println!("{}", if enabled { "enabled" } else { "disabled" });
        Ok(())
    })
    .await
}

/// Removes a runtime client; its refresh and reference tokens stop working at once.
pub async fn remove(config: &ServerConfig, tenant: &str, client_id: &str) -> Result<(), String> {
    with_store(config, |store, _| async move {
        crate::clients::remove(&store, tenant, client_id, SystemClock.now())
            .await
            .map_err(|e| e.to_string())?;
        println!("removed");
        Ok(())
    })
    .await
}

pub async fn rotate_secret(
    config: &ServerConfig,
    tenant: &str,
    client_id: &str,
) -> Result<(), String> {
    with_store(config, |store, master| async move {
        let saved =
            crate::clients::rotate_secret(&store, &master, tenant, client_id, SystemClock.now())
                .await
                .map_err(|e| e.to_string())?;
        if let Some(s) = saved.secret {
            println!("client_secret: {s}    (shown once; only its hash is stored)");
        }
        Ok(())
    })
    .await
}

/// Prints a new initial access token for client registration (RFC 7591 §3).
pub async fn initial_token(
    config: &ServerConfig,
    tenant: &str,
    uses: u32,
    expires: &str,
) -> Result<(), String> {
    let lifetime = crate::clients::initial_tokens::parse_lifetime(expires)?;
    with_store(config, |store, _| async move {
        if store
            .find_tenant(tenant)
            .await
            .map_err(|e| e.to_string())?
            .is_none()
        {
            return Err(format!("no tenant {tenant}"));
        }
        let issued = crate::clients::initial_tokens::issue(
            &store,
            tenant,
            uses,
            lifetime,
            SystemClock.now(),
        )
        .await
        .map_err(|e| e.to_string())?;
        println!("{}", issued.token);
        eprintln!(
            "good for {} registration(s) until unix time {}; shown once",
            issued.uses, issued.expires_at
        );
        Ok(())
    })
    .await
}

/// Runs `f` with an open store and the master key, and closes the store whatever happened.
async fn with_store<F, Fut>(config: &ServerConfig, f: F) -> Result<(), String>
where
    F: FnOnce(crate::stores::Store, std::sync::Arc<crate::keys::MasterKey>) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let (store, master) = open_store(config).await?;
    let result = f(store.clone(), std::sync::Arc::new(master)).await;
    store.close().await;
    result
}
