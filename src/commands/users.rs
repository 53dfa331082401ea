//! `portcullis users`: password hashes and the users stored in the database.

use super::{open_store, read_line_or};
use crate::clock::{Clock, SystemClock};
use crate::config::ServerConfig;
use crate::config::tenant::UserSpec;
use crate::stores::UserStore;

/// Prints the argon2id hash of a password (the argument or a line of standard input).
pub fn hash_password(password: Option<String>) -> Result<(), String> {
    let p = read_line_or(password)?;
    if p.is_empty() {
        return Err("the password is empty".into());
    }
    println!(
        "{}",
        crate::users::hash_password(&p).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// Prints how many hashes one core computes per second with the configured parameters.
pub fn hash_rate(config: &ServerConfig, seconds: f64) -> Result<(), String> {
    let rate = crate::users::hash_rate(seconds).map_err(|e| e.to_string())?;
    let p = &config.passwords.argon2;
    println!(
        "{rate:.1} argon2id hashes/s on one core (m={} KiB, t={}, p={})",
        p.m_cost(),
        p.t_cost(),
        p.p_cost()
    );
    Ok(())
}

/// A database user to add; the password is read from standard input.
pub struct NewUser {
    pub tenant: String,
    pub username: String,
    /// Default: the username.
    pub subject: Option<String>,
    /// A JSON object.
    pub claims: String,
    pub totp_secret: Option<String>,
}

/// Adds or replaces a database user.
pub async fn add(config: &ServerConfig, new: NewUser) -> Result<(), String> {
    let NewUser {
        tenant,
        username,
        subject,
        claims,
        totp_secret,
    } = new;
    let password = read_line_or(None)?;
    if password.len() < 8 {
        return Err("passwords have at least 8 characters".into());
    }
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&claims).map_err(|e| format!("--claims: {e}"))?;
    if let Some(t) = &totp_secret {
        crate::users::check_totp_secret(t)?;
    }
    let user = UserSpec {
        subject: subject.unwrap_or_else(|| username.clone()),
        username,
        password_hash: crate::users::hash_password(&password).map_err(|e| e.to_string())?,
        totp_secret,
        enabled: true,
        claims,
    };
    let (store, _) = open_store(config).await?;
    let now = SystemClock.now();
    store
        .upsert_user(&tenant, &user, "cli", now)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "user {} ({}) saved in tenant {tenant}",
        user.username, user.subject
    );
    store.close().await;
    Ok(())
}

/// Removes a database user.
pub async fn remove(config: &ServerConfig, tenant: &str, subject: &str) -> Result<(), String> {
    let (store, _) = open_store(config).await?;
    let removed = store
        .delete_user(tenant, subject)
        .await
        .map_err(|e| e.to_string())?;
    store.close().await;
    if removed {
        println!("removed");
        Ok(())
    } else {
        Err(format!("no database user {subject} in tenant {tenant}"))
    }
}
