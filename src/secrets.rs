//! Secrets and their stored forms. Client secrets: stored as hashes, compared in constant
//! time, never logged. User secrets: the formats a password hash (argon2id PHC) and a TOTP
//! secret (base32) must have — checked when a tenant file loads and when users are added.
//!
//! Generated client secrets carry 256 bits of entropy, so a single SHA-256 is the right hash
//! (a slow password hash buys nothing against a search space of 2^256 and costs every token
//! request). User passwords are a different matter and use argon2id.

use aws_lc_rs::{constant_time, digest, rand::SecureRandom, rand::SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

const SHA256_PREFIX: &str = "sha256:";

/// Checks that a stored password hash is an argon2id PHC string this server can verify.
pub fn check_password_hash(phc: &str) -> Result<(), String> {
    let parsed = argon2::PasswordHash::new(phc).map_err(|_| {
        "not a PHC password hash (use `portcullis users hash-password`)".to_string()
    })?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err("password hashes must be argon2id".into());
    }
    Ok(())
}

/// RFC 6238 parameters every authenticator app supports: SHA-1, 6 digits, 30 s steps.
pub(crate) const TOTP_STEP: u64 = 30;

/// The TOTP generator of a base32 secret.
pub(crate) fn totp(secret_b32: &str) -> Result<totp_rs::TOTP, String> {
    let bytes = totp_rs::Secret::Encoded(secret_b32.trim_end_matches('=').to_ascii_uppercase())
        .to_bytes()
        .map_err(|_| "the TOTP secret is not base32".to_string())?;
    // One step of skew each way (RFC 6238 §5.2 recommends at most one).
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, TOTP_STEP, bytes)
        .map_err(|e| format!("unusable TOTP secret: {e}"))
}

/// Checks that a TOTP secret is base32 and long enough to use.
pub fn check_totp_secret(secret_b32: &str) -> Result<(), String> {
    totp(secret_b32).map(|_| ())
}

/// A stored secret hash, e.g. `sha256:3q2-7w…`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash {
    digest: [u8; 32],
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

impl SecretHash {
    /// Parses the stored form; the only accepted scheme today is `sha256:<base64url>`.
    pub fn parse(stored: &str) -> Result<Self, String> {
        let encoded = stored
            .strip_prefix(SHA256_PREFIX)
            .ok_or_else(|| format!("secret hash must start with `{SHA256_PREFIX}` (use `portcullis clients hash-secret`)"))?;
        let bytes = B64
            .decode(encoded)
            .map_err(|_| "secret hash is not base64url".to_string())?;
        let digest: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "secret hash must be 32 bytes".to_string())?;
        Ok(Self { digest })
    }

    pub fn of(secret: &str) -> Self {
        let d = digest::digest(&digest::SHA256, secret.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Self { digest: out }
    }

    /// Constant-time comparison of a presented secret with this hash.
    pub fn verify(&self, presented: &str) -> bool {
        let candidate = digest::digest(&digest::SHA256, presented.as_bytes());
        constant_time::verify_slices_are_equal(candidate.as_ref(), &self.digest).is_ok()
    }

    pub fn to_stored(&self) -> String {
        format!("{SHA256_PREFIX}{}", B64.encode(self.digest))
    }
}

/// A fresh high-entropy secret (256 bits, base64url).
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    // SystemRandom only fails if the OS has no randomness; nothing sensible can continue then.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        tracing::error!("the operating system's random number generator failed");
        std::process::abort();
    }
    B64.encode(bytes)
}

/// Random bytes for identifiers (jti, handles, request ids).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        tracing::error!("the operating system's random number generator failed");
        std::process::abort();
    }
    bytes
}

/// A short, non-reversible tag for logging a token or code ("logged by a short hash at most").
pub fn log_tag(value: &str) -> String {
    let d = digest::digest(&digest::SHA256, value.as_bytes());
    B64.encode(d.as_ref().get(..6).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_verifies_against_its_own_hash_only() {
        let h = SecretHash::parse(&SecretHash::of("acme-m2m-secret").to_stored()).unwrap();
        assert!(h.verify("acme-m2m-secret"));
        assert!(!h.verify("acme-m2m-secreT"));
        assert!(!h.verify(""));
    }

    #[test]
    fn a_hash_without_a_scheme_is_refused() {
        assert!(SecretHash::parse("plain-text").is_err());
        assert!(SecretHash::parse("sha256:AAAA").is_err());
    }

    #[test]
    fn debug_output_never_shows_the_digest() {
        assert_eq!(format!("{:?}", SecretHash::of("x")), "SecretHash(..)");
    }
}
