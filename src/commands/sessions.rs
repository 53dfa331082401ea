//! `portcullis sessions` and `portcullis consents`: SSO sessions and remembered consent.

use super::open_store;
use crate::clock::{Clock, SystemClock};
use crate::config::ServerConfig;
use crate::stores::{ConsentStore, SessionStore, Store};

/// Prints a user's sessions.
pub async fn list(config: &ServerConfig, tenant: &str, subject: &str) -> Result<(), String> {
    let (store, _) = open_store(config).await?;
    let result = print_sessions(&store, tenant, subject).await;
    store.close().await;
    result
}

async fn print_sessions(store: &Store, tenant: &str, subject: &str) -> Result<(), String> {
    for s in store
        .list_sessions(tenant, subject)
        .await
        .map_err(|e| e.to_string())?
    {
        println!(
            "{}  auth_time={} last_seen={} expires={} amr={} clients={}",
            s.sid,
            s.auth_time,
            s.last_seen_at,
            s.expires_at,
            s.amr,
            s.clients.trim()
        );
    }
    Ok(())
}

/// Ends one session (`sid`) or every session of a user (`subject`): exactly one of them.
pub async fn revoke(
    config: &ServerConfig,
    tenant: &str,
    sid: Option<String>,
    subject: Option<String>,
) -> Result<(), String> {
    if sid.is_some() == subject.is_some() {
        return Err("give exactly one of --sid and --subject".into());
    }
    let (store, _) = open_store(config).await?;
    let result = revoke_in(&store, tenant, sid, subject).await;
    store.close().await;
    result
}

async fn revoke_in(
    store: &Store,
    tenant: &str,
    sid: Option<String>,
    subject: Option<String>,
) -> Result<(), String> {
    let sids: Vec<String> = match (sid, subject) {
        (Some(sid), _) => vec![sid],
        (None, subject) => store
            .list_sessions(tenant, subject.as_deref().unwrap_or_default())
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|s| s.sid)
            .collect(),
    };
    let mut n = 0;
    for sid in sids {
        if store
            .delete_session(tenant, &sid)
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {
            n += 1;
        }
    }
    println!("{n} session(s) revoked");
    Ok(())
}

/// Prints the scopes a user granted a client.
pub async fn show_consent(
    config: &ServerConfig,
    tenant: &str,
    subject: &str,
    client: &str,
) -> Result<(), String> {
    let (store, _) = open_store(config).await?;
    let found = store
        .find_consent(tenant, subject, client, SystemClock.now())
        .await
        .map_err(|e| e.to_string());
    store.close().await;
    match found? {
        Some(scopes) => {
            println!("{}", scopes.join(" "));
            Ok(())
        }
        None => Err(format!("{subject} has no remembered consent for {client}")),
    }
}

/// Forgets a user's consent for a client: the next sign-in asks again.
pub async fn revoke_consent(
    config: &ServerConfig,
    tenant: &str,
    subject: &str,
    client: &str,
) -> Result<(), String> {
    let (store, _) = open_store(config).await?;
    let deleted = store
        .delete_consent(tenant, subject, client)
        .await
        .map_err(|e| e.to_string());
    store.close().await;
    if deleted? {
        println!("consent revoked");
        Ok(())
    } else {
        Err(format!("{subject} has no remembered consent for {client}"))
    }
}
