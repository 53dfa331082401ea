//! Encryption of private keys at rest: AES-256-GCM under the master key, bound to tenant and kid.

use crate::error::InternalError;
use aws_lc_rs::aead::{
    AES_256_GCM, AES_256_GCM_SIV, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as STANDARD_NO_PAD_URL;
use std::path::Path;

/// The 256-bit key that encrypts every tenant's private signing keys.
pub struct MasterKey {
    key: LessSafeKey,
    /// Derived key for self-contained grants (authorization codes): AES-256-GCM-SIV, so even a
    /// repeated random nonce after billions of codes reveals nothing but equal plaintexts.
    grant_key: LessSafeKey,
    /// Derived key that makes DPoP server nonces (RFC 9449 §8) without storing them.
    nonce_key: aws_lc_rs::hmac::Key,
    /// Keys the stored hashes of RFC 8628 user codes.
    user_code_key: aws_lc_rs::hmac::Key,
    /// Makes pairwise subject identifiers (SAML persistent NameIDs).
    pairwise_key: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, InternalError> {
        if bytes.len() != 32 {
            return Err(InternalError::Other(
                "the master key must be 32 bytes".into(),
            ));
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| InternalError::Crypto("master key"))?;
        // RFC 5869: a separate key per purpose, derived from the master key.
        let prk =
            aws_lc_rs::hkdf::Salt::new(aws_lc_rs::hkdf::HKDF_SHA256, b"portcullis").extract(bytes);
        let mut derived = [0u8; 32];
        prk.expand(&[b"portcullis grants v1"], &AES_256_GCM_SIV)
            .and_then(|okm| okm.fill(&mut derived))
            .map_err(|_| InternalError::Crypto("key derivation"))?;
        let grant_key = UnboundKey::new(&AES_256_GCM_SIV, &derived)
            .map_err(|_| InternalError::Crypto("grant key"))?;
        let mut nonce_bytes = [0u8; 32];
        prk.expand(&[b"portcullis dpop nonces v1"], &AES_256_GCM_SIV)
            .and_then(|okm| okm.fill(&mut nonce_bytes))
            .map_err(|_| InternalError::Crypto("key derivation"))?;
        let mut user_code_bytes = [0u8; 32];
        prk.expand(&[b"portcullis user codes v1"], &AES_256_GCM_SIV)
            .and_then(|okm| okm.fill(&mut user_code_bytes))
            .map_err(|_| InternalError::Crypto("key derivation"))?;
        let mut pairwise_bytes = [0u8; 32];
        prk.expand(&[b"portcullis pairwise ids v1"], &AES_256_GCM_SIV)
            .and_then(|okm| okm.fill(&mut pairwise_bytes))
            .map_err(|_| InternalError::Crypto("key derivation"))?;
        Ok(Self {
            key: LessSafeKey::new(key),
            pairwise_key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &pairwise_bytes),
            grant_key: LessSafeKey::new(grant_key),
            nonce_key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &nonce_bytes),
            user_code_key: aws_lc_rs::hmac::Key::new(
                aws_lc_rs::hmac::HMAC_SHA256,
                &user_code_bytes,
            ),
        })
    }

    pub fn from_base64(text: &str) -> Result<Self, InternalError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| InternalError::Other("the master key is not base64".into()))?;
        Self::from_bytes(&bytes)
    }

    /// The key `[keys]` names (inline or in a file), else the development key in the data
    /// directory (created if missing).
    pub fn from_config(config: &crate::config::ServerConfig) -> Result<Self, InternalError> {
        let k = &config.keys;
        let file = k
            .master_key_file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_default();
        Self::load_or_create(
            &k.master_key,
            &file,
            &config.paths.data_dir.join("master.key"),
        )
    }

    /// Reads a configured key, or creates a development key file with a warning.
    pub fn load_or_create(
        inline: &str,
        file: &str,
        dev_path: &Path,
    ) -> Result<Self, InternalError> {
        if !inline.is_empty() {
            return Self::from_base64(inline);
        }
        if !file.is_empty() {
            let text = std::fs::read_to_string(file).map_err(|e| {
                InternalError::Other(format!("cannot read master key file {file}: {e}"))
            })?;
            return Self::from_base64(&text);
        }
        if let Ok(text) = std::fs::read_to_string(dev_path) {
            tracing::warn!(path = %dev_path.display(), "using the development master key; set PORTCULLIS_KEYS_MASTER_KEY in production");
            return Self::from_base64(&text);
        }
        let bytes: [u8; 32] = crate::secrets::random_bytes();
        if let Some(dir) = dev_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                InternalError::Other(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        write_private(dev_path, STANDARD.encode(bytes).as_bytes()).map_err(|e| {
            InternalError::Other(format!("cannot write {}: {e}", dev_path.display()))
        })?;
        tracing::warn!(path = %dev_path.display(), "generated a development master key; set PORTCULLIS_KEYS_MASTER_KEY in production");
        Self::from_bytes(&bytes)
    }

    /// nonce ‖ ciphertext ‖ tag, authenticated together with `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, InternalError> {
        let nonce_bytes: [u8; NONCE_LEN] = crate::secrets::random_bytes();
        let mut out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                &mut out,
            )
            .map_err(|_| InternalError::Crypto("seal"))?;
        let mut sealed = nonce_bytes.to_vec();
        sealed.extend_from_slice(&out);
        Ok(sealed)
    }

    /// A MAC of `message` under the nonce key (base64url, 128 bits).
    pub fn nonce_mac(&self, message: &[u8]) -> String {
        let tag = aws_lc_rs::hmac::sign(&self.nonce_key, message);
        let bytes = tag.as_ref();
        STANDARD_NO_PAD_URL.encode(bytes.get(..16).unwrap_or(bytes))
    }

    /// A subject's identifier for one relying party of one tenant (SAML core §8.3.7 persistent
    /// NameID): stable, opaque, and unlinkable across relying parties without the master key.
    pub fn pairwise_id(&self, tenant: &str, party: &str, subject: &str) -> String {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.pairwise_key);
        for part in [tenant, party, subject] {
            ctx.update(part.as_bytes());
            ctx.update(&[0]);
        }
        let tag = ctx.sign();
        let bytes = tag.as_ref();
        STANDARD_NO_PAD_URL.encode(bytes.get(..16).unwrap_or(bytes))
    }

    /// How a user code is stored (RFC 8628 §6.1): a MAC under a key derived from the master
    /// key, bound to the tenant. Without the master key, a database leak does not give the 2^35
    /// codes away to a search, and a code of one tenant finds nothing at another.
    pub fn user_code_hash(
        &self,
        tenant: &str,
        code: &crate::tokens::user_code::UserCode,
    ) -> String {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.user_code_key);
        ctx.update(tenant.as_bytes());
        ctx.update(&[0]);
        ctx.update(code.as_str().as_bytes());
        STANDARD_NO_PAD_URL.encode(ctx.sign().as_ref())
    }

    /// Seals a self-contained grant (nonce ‖ ciphertext ‖ tag) under the derived grant key.
    pub fn seal_grant(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, InternalError> {
        let nonce_bytes: [u8; NONCE_LEN] = crate::secrets::random_bytes();
        let mut out = plaintext.to_vec();
        self.grant_key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                &mut out,
            )
            .map_err(|_| InternalError::Crypto("seal"))?;
        let mut sealed = nonce_bytes.to_vec();
        sealed.extend_from_slice(&out);
        Ok(sealed)
    }

    /// Opens what [`seal_grant`](Self::seal_grant) sealed with the same `aad`; `None` if it
    /// was forged, altered, or sealed for something else.
    pub fn open_grant(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        let (nonce, ciphertext) = sealed.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = ciphertext.to_vec();
        let plain = self
            .grant_key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, InternalError> {
        let (nonce, ciphertext) = sealed
            .split_at_checked(NONCE_LEN)
            .ok_or(InternalError::Crypto("sealed key too short"))?;
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| InternalError::Crypto("nonce"))?;
        let mut buf = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| {
                InternalError::Crypto("a signing key does not decrypt: wrong master key?")
            })?;
        Ok(plain.to_vec())
    }
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options.open(path)?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_the_same_key_and_binding() {
        let k = MasterKey::from_bytes(&[7u8; 32]).unwrap();
        let sealed = k.seal(b"private", b"acme|kid1").unwrap();
        assert_eq!(k.open(&sealed, b"acme|kid1").unwrap(), b"private");
        assert!(
            k.open(&sealed, b"globex|kid1").is_err(),
            "a key moved to another tenant must not open"
        );
        let other = MasterKey::from_bytes(&[8u8; 32]).unwrap();
        assert!(other.open(&sealed, b"acme|kid1").is_err());
        assert!(k.open(&sealed[..5], b"acme|kid1").is_err());
    }

    #[test]
    fn a_user_code_hash_depends_on_the_code_the_tenant_and_the_master_key() {
        use crate::tokens::user_code::UserCode;
        let k = MasterKey::from_bytes(&[7u8; 32]).unwrap();
        let code = UserCode::parse("BCDF-GHJK").unwrap();
        let h = k.user_code_hash("acme", &code);
        assert_eq!(
            h,
            k.user_code_hash("acme", &UserCode::parse("bcdfghjk").unwrap())
        );
        assert_ne!(h, k.user_code_hash("globex", &code), "tenant-bound");
        assert_ne!(
            h,
            k.user_code_hash("acme", &UserCode::parse("BCDF-GHJL").unwrap())
        );
        let other = MasterKey::from_bytes(&[8u8; 32]).unwrap();
        assert_ne!(h, other.user_code_hash("acme", &code), "keyed");
        assert!(!h.contains("BCDFGHJK"));
    }
}
