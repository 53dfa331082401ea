//! Runtime clients: what the admin API, `portcullis clients` and registration (RFC 7591) share.
//! A client arrives as a [`ClientDefinition`] (values only: no file can be named), gets secrets
//! generated here (shown once, stored hashed, or sealed for client_secret_jwt), is checked by
//! the tenant file's own client rules against the stored tenant, stored under the runtime
//! source (a file client's id cannot be taken), and announced so that every node forgets its
//! cached copy.

pub mod initial_tokens;
pub mod registration;

use crate::config::ClientSpec;
use crate::config::tenant::{
    ClientDefinition, RuntimeClient, SEALED_PREFIX, StoredSecret, check_client_definition,
};
use crate::error::InternalError;
use crate::federation::admin::{AdminError, Mode};
use crate::keys::MasterKey;
use crate::stores::{RuntimeClientStore, Store, TenantStore};
use serde_json::{Value, json};

/// What [`save`] did.
pub struct Saved {
    pub view: Value,
    /// The new secret, when one was generated: shown this once.
    pub secret: Option<String>,
    pub created: bool,
}

/// The new secret stays out of `Debug`.
impl std::fmt::Debug for Saved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Saved")
            .field("view", &self.view)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("created", &self.created)
            .finish()
    }
}

/// Secrets a client authenticating with `methods` needs, generated: the secret itself (to show
/// once) and what is stored of it — its SHA-256 for client_secret_basic/post, and sealed under
/// the master key (bound to tenant and client) for client_secret_jwt, whose HMAC key must be
/// known. None when no method uses a shared secret.
pub fn generate_secrets(
    methods: &[String],
    master: &MasterKey,
    tenant: &str,
    client_id: &str,
    expires_at: Option<i64>,
) -> Result<(Option<String>, Vec<StoredSecret>), InternalError> {
    let hashed = methods
        .iter()
        .any(|m| m == "client_secret_basic" || m == "client_secret_post");
    let sealed = methods.iter().any(|m| m == "client_secret_jwt");
    if !hashed && !sealed {
        return Ok((None, Vec::new()));
    }
    let secret = crate::secrets::generate_secret();
    let mut stored = Vec::new();
    let description = Some("generated".to_string());
    if hashed {
        stored.push(StoredSecret {
            hash: crate::secrets::SecretHash::of(&secret).to_stored(),
            sealed: None,
            description: description.clone(),
            expires_at,
        });
    }
    if sealed {
        let bytes = master.seal(
            secret.as_bytes(),
            &crate::registry::sealed_secret_aad(tenant, client_id),
        )?;
        stored.push(StoredSecret {
            hash: String::new(),
            sealed: Some(format!(
                "{SEALED_PREFIX}{}",
                base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
            )),
            description,
            expires_at,
        });
    }
    Ok((Some(secret), stored))
}

/// The secrets of a client whose methods are now `methods`: those of `kept` still used, or a
/// fresh one (returned, to be shown once) when a method needs a kind it does not have.
pub fn secrets_kept_or_new(
    methods: &[String],
    kept: Vec<StoredSecret>,
    master: &MasterKey,
    tenant: &str,
    client_id: &str,
    expires_at: Option<i64>,
) -> Result<(Option<String>, Vec<StoredSecret>), InternalError> {
    let needs_hash = methods
        .iter()
        .any(|m| m == "client_secret_basic" || m == "client_secret_post");
    let needs_sealed = methods.iter().any(|m| m == "client_secret_jwt");
    let has_hash = kept.iter().any(|s| s.sealed.is_none());
    let has_sealed = kept.iter().any(|s| s.sealed.is_some());
    if (needs_hash && !has_hash) || (needs_sealed && !has_sealed) {
        return generate_secrets(methods, master, tenant, client_id, expires_at);
    }
    let kept = kept
        .into_iter()
        .filter(|s| {
            if s.sealed.is_some() {
                needs_sealed
            } else {
                needs_hash
            }
        })
        .collect();
    Ok((None, kept))
}

/// The methods a definition authenticates with (the file's defaults when it names none).
pub fn methods_of(def: &ClientDefinition) -> Vec<String> {
    match &def.token_endpoint_auth_methods {
        Some(m) => m.clone(),
        None if def.public => vec!["none".into()],
        None => vec!["client_secret_basic".into(), "client_secret_post".into()],
    }
}

/// A fresh client id: 128 random bits.
pub fn new_client_id() -> String {
    crate::tokens::new_jti()
}

/// The problems of a definition as one message, each naming its key.
pub fn problems_text(p: &[(String, String)]) -> String {
    p.iter()
        .map(|(k, m)| format!("{k}: {m}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Checks and stores a runtime client of `tenant` (an empty `client_id` gets a fresh one;
/// `enabled`: `None` keeps what a replaced client had, a new one is enabled). A replaced client
/// keeps its secrets when its methods still use them; a secret is generated (and returned) only
/// when it needs one and has none.
pub async fn save(
    store: &Store,
    master: &MasterKey,
    tenant: &str,
    mut def: ClientDefinition,
    enabled: Option<bool>,
    mode: Mode,
    now: i64,
) -> Result<Saved, AdminError> {
    let spec = store
        .find_tenant(tenant)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no tenant {tenant}")))?
        .spec;
    if def.client_id.is_empty() {
        def.client_id = new_client_id();
    }
    let existing = store.runtime_client(tenant, &def.client_id).await?;
    if existing.is_none()
        && crate::stores::ClientStore::find_client(store, tenant, &def.client_id)
            .await?
            .is_some()
    {
        return Err(AdminError::Conflict(format!(
            "client {} is defined by the tenant file; change it there",
            def.client_id
        )));
    }
    match (mode, &existing) {
        (Mode::Create, Some(_)) => {
            return Err(AdminError::Conflict(format!(
                "client {} exists",
                def.client_id
            )));
        }
        (Mode::Replace, None) => {
            return Err(AdminError::NotFound(format!("no client {}", def.client_id)));
        }
        _ => {}
    }
    let kept = existing
        .as_ref()
        .map(|e| e.secrets.clone())
        .unwrap_or_default();
    let (secret, secrets) = secrets_kept_or_new(
        &methods_of(&def),
        kept,
        master,
        tenant,
        &def.client_id,
        None,
    )?;
    let mut client = check_client_definition(&def, &spec, secrets)
        .map_err(|p| AdminError::Invalid(problems_text(&p)))?;
    client.enabled = enabled
        .or(existing.as_ref().map(|e| e.enabled))
        .unwrap_or(true);
    client.runtime = Some(RuntimeClient {
        definition: def,
        created_at: existing
            .as_ref()
            .and_then(|e| e.runtime.as_ref())
            .map_or(now, |r| r.created_at),
        registration: existing
            .as_ref()
            .and_then(|e| e.runtime.as_ref())
            .and_then(|r| r.registration.clone()),
    });
    let created = existing.is_none();
    // The admin's own clients are counted, not limited: the registration quota is for clients
    // that register themselves.
    let written = if created {
        store
            .insert_runtime_client(tenant, &client, now, i64::MAX)
            .await?
            == crate::stores::Insert::Done
    } else {
        store.replace_runtime_client(tenant, &client, now).await?
    };
    if !written {
        return Err(AdminError::Conflict(format!(
            "client id {} is taken (a client of the tenant file cannot be replaced here)",
            client.client_id
        )));
    }
    tracing::info!(target: "security", event = "client_saved", tenant, client_id = %client.client_id, enabled = client.enabled, created);
    Ok(Saved {
        view: view(&client),
        secret,
        created,
    })
}

/// Replaces a runtime client's secrets by a fresh one (the old ones stop at once).
pub async fn rotate_secret(
    store: &Store,
    master: &MasterKey,
    tenant: &str,
    client_id: &str,
    now: i64,
) -> Result<Saved, AdminError> {
    let mut client = found(store, tenant, client_id).await?;
    let (secret, secrets) =
        generate_secrets(&methods_of_spec(&client), master, tenant, client_id, None)?;
    let Some(secret) = secret else {
        return Err(AdminError::Invalid(format!(
            "client {client_id} authenticates without a shared secret"
        )));
    };
    client.secrets = secrets;
    if !store.replace_runtime_client(tenant, &client, now).await? {
        return Err(AdminError::NotFound(format!("no client {client_id}")));
    }
    tracing::info!(target: "security", event = "client_secret_rotated", tenant, client_id);
    Ok(Saved {
        view: view(&client),
        secret: Some(secret),
        created: false,
    })
}

fn methods_of_spec(c: &ClientSpec) -> Vec<String> {
    c.auth_methods
        .iter()
        .map(|m| m.as_str().to_string())
        .collect()
}

async fn found(store: &Store, tenant: &str, client_id: &str) -> Result<ClientSpec, AdminError> {
    store
        .runtime_client(tenant, client_id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no client {client_id}")))
}

/// Turns a runtime client on or off (off: refused as an unknown client's requests are).
pub async fn set_enabled(
    store: &Store,
    tenant: &str,
    client_id: &str,
    enabled: bool,
    now: i64,
) -> Result<Value, AdminError> {
    let mut client = found(store, tenant, client_id).await?;
    client.enabled = enabled;
    if !store.replace_runtime_client(tenant, &client, now).await? {
        return Err(AdminError::NotFound(format!("no client {client_id}")));
    }
    tracing::info!(target: "security", event = "client_saved", tenant, client_id, enabled, created = false);
    Ok(view(&client))
}

/// Removes a runtime client; its refresh and reference tokens stop working at once.
pub async fn remove(
    store: &Store,
    tenant: &str,
    client_id: &str,
    now: i64,
) -> Result<(), AdminError> {
    if !store.delete_runtime_client(tenant, client_id, now).await? {
        return Err(AdminError::NotFound(format!("no client {client_id}")));
    }
    tracing::info!(target: "security", event = "client_removed", tenant, client_id);
    Ok(())
}

pub async fn get(store: &Store, tenant: &str, client_id: &str) -> Result<Value, AdminError> {
    Ok(view(&found(store, tenant, client_id).await?))
}

/// One page of a tenant's runtime clients (by id, after `after`).
pub async fn list(
    store: &Store,
    tenant: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<Value>, AdminError> {
    let rows = store
        .list_runtime_clients(tenant, after, limit.clamp(1, 500))
        .await?;
    Ok(rows.iter().map(view).collect())
}

/// A runtime client as the admin API shows it: its definition, `enabled`, whether it registered
/// itself, and of its secrets only their kind and expiry.
pub fn view(c: &ClientSpec) -> Value {
    let mut v = c
        .runtime
        .as_ref()
        .and_then(|r| serde_json::to_value(&r.definition).ok())
        .unwrap_or_else(|| json!({"client_id": c.client_id}));
    if let Some(o) = v.as_object_mut() {
        o.insert("enabled".into(), c.enabled.into());
        o.insert(
            "registered".into(),
            c.runtime
                .as_ref()
                .is_some_and(|r| r.registration.is_some())
                .into(),
        );
        o.insert(
            "secrets".into(),
            c.secrets
                .iter()
                .map(|s| {
                    json!({
                        "kind": if s.sealed.is_some() { "sealed" } else { "hashed" },
                        "expires_at": s.expires_at,
                    })
                })
                .collect::<Vec<_>>()
                .into(),
        );
    }
    v
}
