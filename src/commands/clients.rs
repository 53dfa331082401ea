//! `portcullis clients`: the stored and sealed forms of client secrets.

use super::{open_store, read_line_or};
use crate::config::ServerConfig;

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
