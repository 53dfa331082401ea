//! Automatic key rotation in the manner of IdentityServer's automatic key management.
//!
//! For each tenant and algorithm the store holds a sequence of keys (generation 0, 1, 2, …).
//! A key is *announced* (published in JWKS) from its creation, *signs* from `activates_at`
//! until `activates_at + rotation_interval`, after which it is *retired* and stays published for
//! `retention` more, then is deleted. A successor is created `propagation` before the current
//! key expires, so relying parties have seen it in JWKS before it signs anything.
//!
//! Nodes sharing a database agree without coordination: a new key is inserted as generation
//! `max + 1` under a unique (tenant, alg, generation) constraint, so of two racing nodes one
//! insert wins and both reload the winner.

use super::{Alg, MasterKey, Signer, signer};
use crate::clock::UnixTime;
use crate::error::InternalError;
use crate::stores::{KeyStore, Store};
use arc_swap::ArcSwap;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone, Copy)]
pub struct KeyPolicy {
    pub rotation_interval: i64,
    pub propagation: i64,
    pub retention: i64,
    pub rsa_bits: u32,
}

impl From<&crate::config::runtime::Keys> for KeyPolicy {
    fn from(k: &crate::config::runtime::Keys) -> Self {
        Self {
            rotation_interval: k.rotation_interval_seconds,
            propagation: k.propagation_seconds,
            retention: k.retention_seconds,
            rsa_bits: k.rsa_bits,
        }
    }
}

/// A key as stored: public JWK in clear, PKCS#8 private key sealed under the master key.
#[derive(Clone)]
pub struct KeyRecord {
    pub tenant: String,
    pub kid: String,
    pub alg: Alg,
    pub generation: i64,
    pub created_at: UnixTime,
    pub activates_at: UnixTime,
    pub public_jwk: String,
    pub private_sealed: Vec<u8>,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("tenant", &self.tenant)
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("generation", &self.generation)
            .field("activates_at", &self.activates_at)
            .finish_non_exhaustive()
    }
}

/// Where a key is in its life at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Announced,
    Active,
    Retired,
    Expired,
}

impl KeyRecord {
    pub fn expires_at(&self, p: &KeyPolicy) -> UnixTime {
        self.activates_at.saturating_add(p.rotation_interval)
    }
    pub fn removed_at(&self, p: &KeyPolicy) -> UnixTime {
        self.expires_at(p).saturating_add(p.retention)
    }
    fn aad(tenant: &str, kid: &str) -> Vec<u8> {
        format!("portcullis-key|{tenant}|{kid}").into_bytes()
    }
}

/// A tenant's stored keys in brief: what they were when a key set was built, compared with the
/// store's ([`crate::stores::KeyStore::key_stamps`]) to find key sets that another node or the
/// CLI changed. A key is only ever added (as generation `max + 1`, created now) or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyStamp {
    pub count: i64,
    /// The sum of the keys' generations.
    pub generations: i64,
    /// The latest `created_at`.
    pub newest: UnixTime,
}

impl KeyStamp {
    fn of(records: &[KeyRecord]) -> Self {
        Self {
            count: i64::try_from(records.len()).unwrap_or(i64::MAX),
            generations: records.iter().map(|r| r.generation).sum(),
            newest: records.iter().map(|r| r.created_at).max().unwrap_or(0),
        }
    }
}

/// What a node needs in memory for one tenant: the signer per algorithm and the JWKS document.
#[derive(Debug)]
pub struct KeySet {
    /// The stored keys this set was built from.
    stamp: KeyStamp,
    /// When this set stops being what [`sync_tenant`] would build: a key starts or stops
    /// signing, a successor is due, a retired key goes.
    next_change: UnixTime,
    /// Every algorithm of the tenant has its keys (a first RSA key is made when first needed:
    /// see [`sync_tenant`]).
    complete: bool,
    signers: HashMap<Alg, Arc<Signer>>,
    pub jwks: Bytes,
    /// The same JWK Set, parsed once: what our own tokens are verified against.
    pub public_keys: serde_json::Value,
    pub kids: Vec<(String, Alg, KeyState)>,
    /// The RS256 keys that sign now or will (their SAML certificates are made on first use:
    /// most tenants never need them).
    saml_keys: Vec<SamlKey>,
    saml_certificates: std::sync::OnceLock<Vec<SamlCertificate>>,
}

/// An RS256 key a SAML certificate can be made for.
struct SamlKey {
    kid: String,
    state: KeyState,
    activates_at: UnixTime,
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for SamlKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamlKey")
            .field("kid", &self.kid)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// A tenant's SAML signing certificate (DER) for one of its RS256 keys.
#[derive(Debug, Clone)]
pub struct SamlCertificate {
    pub kid: String,
    pub state: KeyState,
    pub der: Vec<u8>,
}

impl KeySet {
    pub fn empty() -> Self {
        Self {
            stamp: KeyStamp::default(),
            next_change: UnixTime::MIN,
            complete: false,
            signers: HashMap::new(),
            jwks: Bytes::from_static(b"{\"keys\":[]}"),
            public_keys: serde_json::json!({ "keys": [] }),
            kids: Vec::new(),
            saml_keys: Vec::new(),
            saml_certificates: std::sync::OnceLock::new(),
        }
    }
    pub fn signer(&self, alg: Alg) -> Option<&Arc<Signer>> {
        self.signers.get(&alg)
    }

    /// Whether every algorithm of the tenant has its keys here. When not, the missing one is a
    /// first RSA key not made yet: `registry::sync::signing_keys` makes it.
    pub fn complete(&self) -> bool {
        self.complete
    }

    /// Whether [`sync_tenant`] has something to do: the clock passed a change of this set, or
    /// the store's keys (`stored`) are not the ones it was built from.
    pub fn stale(&self, stored: KeyStamp, now: UnixTime) -> bool {
        now >= self.next_change || stored != self.stamp
    }

    /// The RS256 key that signs SAML messages now (PKCS#8 DER) and its certificate.
    pub fn saml_signing_key(&self) -> Option<(&[u8], &[u8])> {
        let cert = self
            .saml_certificates()
            .iter()
            .find(|c| c.state == KeyState::Active)?;
        let key = self.saml_keys.iter().find(|k| k.kid == cert.kid)?;
        Some((&key.pkcs8, &cert.der))
    }

    /// The loaded RS256 signer of the key that signs SAML messages now, and its certificate:
    /// signing with it parses no key (`keys::xmldsig`).
    pub fn saml_signer(&self) -> Option<(&Signer, &[u8])> {
        let cert = self
            .saml_certificates()
            .iter()
            .find(|c| c.state == KeyState::Active)?;
        let signer = self
            .signers
            .get(&Alg::RS256)
            .filter(|s| s.kid == cert.kid)?;
        Some((signer.as_ref(), &cert.der))
    }

    /// The SAML signing certificates of the RS256 keys that sign now (first) or will: SPs
    /// learn the next one from the metadata before it signs.
    pub fn saml_certificates(&self) -> &[SamlCertificate] {
        self.saml_certificates.get_or_init(|| {
            self.saml_keys
                .iter()
                .filter_map(|k| {
                    match super::certificate::saml_signing_certificate(
                        &k.pkcs8,
                        &k.kid,
                        k.activates_at,
                    ) {
                        Ok(der) => Some(SamlCertificate {
                            kid: k.kid.clone(),
                            state: k.state,
                            der,
                        }),
                        Err(e) => {
                            tracing::error!(kid = %k.kid, error = %e, "no SAML certificate for this key");
                            None
                        }
                    }
                })
                .collect()
        })
    }
}

/// A tenant's current key set, swapped atomically when keys change (no lock on the token path).
#[derive(Debug)]
pub struct KeyRing {
    current: ArcSwap<KeySet>,
    /// Held while the keys that were not made yet are made (one maker per tenant and node).
    pub making: tokio::sync::Mutex<()>,
}

impl Default for KeyRing {
    fn default() -> Self {
        Self {
            current: ArcSwap::from_pointee(KeySet::empty()),
            making: tokio::sync::Mutex::new(()),
        }
    }
}

impl KeyRing {
    pub fn load(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.current.load()
    }
    pub fn store(&self, set: KeySet) {
        self.current.store(Arc::new(set));
    }
}

/// The key that signs for `alg` at `now`: the most recently activated one.
fn signing_record(records: &[KeyRecord], alg: Alg, now: UnixTime) -> Option<&KeyRecord> {
    records
        .iter()
        .filter(|r| r.alg == alg && r.activates_at <= now)
        .max_by_key(|r| (r.activates_at, r.generation))
}

pub fn state_of(records: &[KeyRecord], r: &KeyRecord, p: &KeyPolicy, now: UnixTime) -> KeyState {
    if r.activates_at > now {
        KeyState::Announced
    } else if signing_record(records, r.alg, now).is_some_and(|s| s.kid == r.kid) {
        KeyState::Active
    } else if now < r.removed_at(p) {
        KeyState::Retired
    } else {
        KeyState::Expired
    }
}

/// Decides whether `alg` needs a new key at `now`, and when that key should start signing.
pub fn successor_needed(
    records: &[KeyRecord],
    alg: Alg,
    p: &KeyPolicy,
    now: UnixTime,
) -> Option<UnixTime> {
    let latest = records
        .iter()
        .filter(|r| r.alg == alg)
        .max_by_key(|r| r.generation);
    match latest {
        // First key of a tenant: nobody can have cached anything yet, so it signs at once.
        None => Some(now),
        Some(l) if l.activates_at > now => None,
        Some(l) if now >= l.expires_at(p) => Some(now),
        Some(l) if now >= l.expires_at(p) - p.propagation => Some(now + p.propagation),
        Some(_) => None,
    }
}

/// What key management works with: where keys are stored, how they are sealed, how they rotate.
#[derive(Debug, Clone, Copy)]
pub struct KeyEnv<'a> {
    pub store: &'a Store,
    pub master: &'a MasterKey,
    pub policy: &'a KeyPolicy,
}

/// The process's key generations in progress: one per core.
fn key_generation_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    })
}

/// Creates a key for `alg` as generation `max + 1`; returns false if another node won the race.
pub async fn create_key(
    env: KeyEnv<'_>,
    tenant: &str,
    alg: Alg,
    records: &[KeyRecord],
    activates_at: UnixTime,
    now: UnixTime,
) -> Result<bool, InternalError> {
    let KeyEnv {
        store,
        master,
        policy: p,
    } = env;
    // RSA key generation takes a while (about 60 ms of a core for 2048 bits): keep it off the
    // async workers, and run at most one per core at once, however many tenants ask for
    // their first key together (requests to thousands of tenants' JWK Sets must not take
    // thousands of blocking threads).
    let bits = p.rsa_bits;
    let _slot = key_generation_slots()
        .acquire()
        .await
        .map_err(|_| InternalError::Crypto("key generation slots closed"))?;
    let pkcs8 = tokio::task::spawn_blocking(move || signer::generate_pkcs8(alg, bits))
        .await
        .map_err(|_| InternalError::Crypto("key generation task"))??;
    let s = Signer::from_pkcs8(alg, &pkcs8)?;
    let generation = records
        .iter()
        .filter(|r| r.alg == alg)
        .map(|r| r.generation + 1)
        .max()
        .unwrap_or(0);
    let record = KeyRecord {
        tenant: tenant.to_string(),
        kid: s.kid.clone(),
        alg,
        generation,
        created_at: now,
        activates_at,
        public_jwk: s.public_jwk().to_string(),
        private_sealed: master.seal(&pkcs8, &KeyRecord::aad(tenant, &s.kid))?,
    };
    let inserted = store.insert_key(&record).await?;
    if inserted {
        crate::events::key_created(tenant, &record.kid, alg, activates_at);
    }
    Ok(inserted)
}

/// Brings a tenant's keys up to date at `now` (create successors, delete expired keys) and
/// builds the in-memory key set. Safe to run on every node at once.
///
/// A tenant's first RSA key is made only when `all` asks for every key (when one is first
/// needed: a JWK Set, an RSA signature, SAML): it takes tens of milliseconds of one core, which
/// ten thousand tenants that may never use it would spend at start. It has no propagation delay
/// to respect either way: no one can have cached a JWK Set without it, since a JWK Set is only
/// served complete. Every other key (a first EC key, successors, RSA ones included) is made as
/// the clock says.
pub async fn sync_tenant(
    env: KeyEnv<'_>,
    tenant: &str,
    algs: &[Alg],
    now: UnixTime,
    all: bool,
) -> Result<KeySet, InternalError> {
    let KeyEnv {
        store,
        master,
        policy: p,
    } = env;
    let mut records = store.list_keys(tenant).await?;
    let mut changed = false;
    for r in &records {
        if state_of(&records, r, p, now) == KeyState::Expired {
            store.delete_key(tenant, &r.kid).await?;
            changed = true;
        }
    }
    if changed {
        records = store.list_keys(tenant).await?;
        changed = false;
    }
    for &alg in algs {
        let first = !records.iter().any(|r| r.alg == alg);
        if first && alg.is_rsa() && !all {
            continue;
        }
        if let Some(activates_at) = successor_needed(&records, alg, p, now) {
            create_key(env, tenant, alg, &records, activates_at, now).await?;
            changed = true;
        }
    }
    if changed {
        records = store.list_keys(tenant).await?;
    }
    build_set(&records, master, algs, p, now)
}

/// The first moment after `now` at which the key set of `records` changes by the clock alone
/// (see [`state_of`] and [`successor_needed`]); `now` if an algorithm has no key yet (except
/// RSA, whose first key is made when needed).
fn next_change(records: &[KeyRecord], algs: &[Alg], p: &KeyPolicy, now: UnixTime) -> UnixTime {
    if algs
        .iter()
        .any(|a| !a.is_rsa() && !records.iter().any(|r| r.alg == *a))
    {
        return now;
    }
    records
        .iter()
        .flat_map(|r| {
            [
                r.activates_at,
                r.expires_at(p).saturating_sub(p.propagation),
                r.expires_at(p),
                r.removed_at(p),
            ]
        })
        .filter(|t| *t > now)
        .min()
        .unwrap_or(UnixTime::MAX)
}

fn build_set(
    records: &[KeyRecord],
    master: &MasterKey,
    algs: &[Alg],
    p: &KeyPolicy,
    now: UnixTime,
) -> Result<KeySet, InternalError> {
    let mut signers = HashMap::new();
    for &alg in algs {
        if let Some(r) = signing_record(records, alg, now) {
            let pkcs8 = master.open(&r.private_sealed, &KeyRecord::aad(&r.tenant, &r.kid))?;
            signers.insert(alg, Arc::new(Signer::from_pkcs8(alg, &pkcs8)?));
        }
    }
    // JWKS: signing keys first, then announced, then retired ones (RFC 7517 §5).
    let mut published: Vec<(&KeyRecord, KeyState)> = records
        .iter()
        .map(|r| (r, state_of(records, r, p, now)))
        .filter(|(_, s)| *s != KeyState::Expired)
        .collect();
    let rank = |s: KeyState| match s {
        KeyState::Active => 0,
        KeyState::Announced => 1,
        _ => 2,
    };
    published.sort_by_key(|(r, s)| (rank(*s), r.alg, std::cmp::Reverse(r.generation)));
    let mut keys = Vec::with_capacity(published.len());
    for (r, _) in &published {
        keys.push(serde_json::from_str::<serde_json::Value>(&r.public_jwk)?);
    }
    let public_keys = serde_json::json!({ "keys": keys });
    let jwks = Bytes::from(serde_json::to_vec(&public_keys)?);
    let kids = published
        .iter()
        .map(|(r, s)| (r.kid.clone(), r.alg, *s))
        .collect();
    let mut saml_keys = Vec::new();
    for (r, state) in &published {
        if r.alg == Alg::RS256 && matches!(state, KeyState::Active | KeyState::Announced) {
            saml_keys.push(SamlKey {
                kid: r.kid.clone(),
                state: *state,
                activates_at: r.activates_at,
                pkcs8: master.open(&r.private_sealed, &KeyRecord::aad(&r.tenant, &r.kid))?,
            });
        }
    }
    Ok(KeySet {
        stamp: KeyStamp::of(records),
        next_change: next_change(records, algs, p, now),
        complete: algs.iter().all(|a| records.iter().any(|r| r.alg == *a)),
        signers,
        jwks,
        public_keys,
        kids,
        saml_keys,
        saml_certificates: std::sync::OnceLock::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: KeyPolicy = KeyPolicy {
        rotation_interval: 100,
        propagation: 10,
        retention: 20,
        rsa_bits: 2048,
    };

    fn rec(kid: &str, generation: i64, activates_at: i64) -> KeyRecord {
        KeyRecord {
            tenant: "t".into(),
            kid: kid.into(),
            alg: Alg::ES256,
            generation,
            created_at: activates_at,
            activates_at,
            public_jwk: "{}".into(),
            private_sealed: vec![],
        }
    }

    #[test]
    fn the_first_key_signs_at_once_and_its_successor_is_announced_ahead() {
        assert_eq!(successor_needed(&[], Alg::ES256, &P, 0), Some(0));
        let one = [rec("a", 0, 0)];
        assert_eq!(successor_needed(&one, Alg::ES256, &P, 89), None);
        assert_eq!(successor_needed(&one, Alg::ES256, &P, 90), Some(100));
        let two = [rec("a", 0, 0), rec("b", 1, 100)];
        assert_eq!(
            successor_needed(&two, Alg::ES256, &P, 95),
            None,
            "a successor is already announced"
        );
        assert_eq!(state_of(&two, &two[1], &P, 95), KeyState::Announced);
        assert_eq!(state_of(&two, &two[0], &P, 95), KeyState::Active);
        assert_eq!(state_of(&two, &two[1], &P, 100), KeyState::Active);
        assert_eq!(state_of(&two, &two[0], &P, 100), KeyState::Retired);
        assert_eq!(state_of(&two, &two[0], &P, 119), KeyState::Retired);
        assert_eq!(state_of(&two, &two[0], &P, 120), KeyState::Expired);
    }

    #[test]
    fn a_key_set_is_stale_when_a_key_changes_state_or_the_store_holds_other_keys() {
        let one = [rec("a", 0, 0)];
        // Successor due at 90 (expiry 100 − propagation 10).
        assert_eq!(next_change(&one, &[Alg::ES256], &P, 0), 90);
        assert_eq!(next_change(&one, &[Alg::ES256, Alg::EdDSA], &P, 0), 0);
        // A first RSA key is made when needed, not by the clock.
        assert_eq!(next_change(&one, &[Alg::ES256, Alg::RS256], &P, 0), 90);
        let two = [rec("a", 0, 0), rec("b", 1, 100)];
        // b signs at 100; a goes at 120; b's successor is due at 190.
        assert_eq!(next_change(&two, &[Alg::ES256], &P, 95), 100);
        assert_eq!(next_change(&two, &[Alg::ES256], &P, 100), 120);
        assert_eq!(next_change(&two, &[Alg::ES256], &P, 120), 190);
        assert_ne!(KeyStamp::of(&one), KeyStamp::of(&two));
        assert_ne!(KeyStamp::of(&two[1..]), KeyStamp::of(&two));
        assert_eq!(KeyStamp::of(&two), KeyStamp::of(&two.clone()));
    }

    #[test]
    fn a_key_ring_left_alone_too_long_gets_a_key_that_signs_at_once() {
        assert_eq!(
            successor_needed(&[rec("a", 0, 0)], Alg::ES256, &P, 500),
            Some(500)
        );
    }
}
