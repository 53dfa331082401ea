//! Local users: argon2id password hashes (verified off the async threads), RFC 6238 TOTP.
//!
//! A tenant's users come from its file (demo users, in the tenant spec) and from the database.

use crate::config::tenant::UserSpec;
use crate::error::InternalError;
use argon2::{Argon2, PasswordHash, PasswordHasher};

pub mod directory;
mod hashers;
pub mod throttle;

use crate::secrets::{TOTP_STEP, totp};
pub use crate::secrets::{check_password_hash, check_totp_secret};
pub use hashers::{Busy, HashStats, Hashers};

/// The argon2id parameters new hashes get (`[passwords]` in the server configuration).
static PARAMS: std::sync::OnceLock<argon2::Params> = std::sync::OnceLock::new();

/// Sets the parameters of new hashes; the first call wins (once per process, at start).
pub fn configure(params: &argon2::Params) {
    let _ = PARAMS.set(params.clone());
}

fn params() -> argon2::Params {
    PARAMS.get().cloned().unwrap_or_else(|| {
        // The shipped default (config/portcullis.toml), for code that runs without a config.
        argon2::Params::new(12_288, 3, 1, None).unwrap_or_default()
    })
}

/// Hashes a password with argon2id and the configured parameters.
pub fn hash_password(password: &str) -> Result<String, InternalError> {
    let salt: [u8; 16] = crate::secrets::random_bytes();
    Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        params(),
    )
    .hash_password_with_salt(password.as_bytes(), &salt)
    .map(|h| h.to_string())
    .map_err(|_| InternalError::Crypto("argon2 hashing failed"))
}

/// A fixed hash to spend the same time on when the user does not exist, so timing does not
/// reveal which usernames are real.
pub(crate) static DECOY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("decoy").unwrap_or_default());

/// Verifies `password` against a PHC argon2id string (constant-time comparison), in `blocks`.
pub(crate) fn verify_with(phc: &str, password: &[u8], blocks: &mut Vec<argon2::Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    if parsed.algorithm.as_str() != "argon2id" {
        return false;
    }
    let Ok(params) = argon2::Params::try_from(&parsed) else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let argon = Argon2::new(argon2::Algorithm::Argon2id, version, params.clone());
    blocks.resize(params.block_count(), argon2::Block::default());
    let mut out = vec![0u8; expected.len()];
    argon
        .hash_password_into_with_memory(password, salt.as_ref(), &mut out, &mut blocks[..])
        .is_ok()
        && aws_lc_rs::constant_time::verify_slices_are_equal(&out, expected.as_bytes()).is_ok()
}

/// Password verifications one core computes per second with the parameters new hashes get:
/// the same code path a login takes (what bounds password logins; `portcullis users
/// hash-rate` prints it).
pub fn hash_rate(seconds: f64) -> Result<f64, InternalError> {
    let hash = hash_password("benchmark-password")?;
    let mut blocks = Vec::new();
    let start = std::time::Instant::now();
    let mut n = 0u32;
    while start.elapsed().as_secs_f64() < seconds || n == 0 {
        if !verify_with(&hash, b"benchmark-password", &mut blocks) {
            return Err(InternalError::Crypto("argon2 verification failed"));
        }
        n += 1;
    }
    Ok(f64::from(n) / start.elapsed().as_secs_f64())
}

/// The time step a code matched (for single-use bookkeeping), or `None`.
pub fn verify_totp(secret_b32: &str, code: &str, now: i64) -> Option<u64> {
    let t = totp(secret_b32).ok()?;
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = u64::try_from(now).ok()?;
    let step = now / TOTP_STEP;
    // Check each step of the window on its own, to learn which one matched.
    [step, step.saturating_sub(1), step + 1]
        .into_iter()
        .find(|s| {
            aws_lc_rs::constant_time::verify_slices_are_equal(
                t.generate(s * TOTP_STEP).as_bytes(),
                code.as_bytes(),
            )
            .is_ok()
        })
}

/// The code an authenticator shows at `now` (tests and the README's demo instructions).
pub fn totp_code(secret_b32: &str, now: i64) -> Option<String> {
    Some(totp(secret_b32).ok()?.generate(u64::try_from(now).ok()?))
}

/// A user as the login and token code sees it, wherever it is stored.
#[derive(Debug, Clone)]
pub struct User {
    pub spec: UserSpec,
}

impl User {
    pub fn subject(&self) -> &str {
        &self.spec.subject
    }
    pub fn has_totp(&self) -> bool {
        self.spec.totp_secret.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_hash_is_an_argon2id_phc_string() {
        check_password_hash(&hash_password("correct horse").unwrap()).unwrap();
    }

    #[test]
    fn only_argon2id_hashes_are_accepted() {
        assert!(check_password_hash("sha256:abc").is_err());
        assert!(check_password_hash(&DECOY_HASH).is_ok());
    }

    #[test]
    fn rfc_6238_test_vector_sha1() {
        // RFC 6238 Appendix B: secret "12345678901234567890", T = 59 → 94287082 (8 digits);
        // the 6-digit code is its last six digits.
        let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        assert_eq!(totp_code(secret, 59).as_deref(), Some("287082"));
        assert_eq!(verify_totp(secret, "287082", 59), Some(1));
        assert_eq!(
            verify_totp(secret, "287082", 59 + 30),
            Some(1),
            "one step late is accepted"
        );
        assert_eq!(verify_totp(secret, "287082", 59 + 90), None);
        assert_eq!(verify_totp(secret, "28708", 59), None);
    }
}
