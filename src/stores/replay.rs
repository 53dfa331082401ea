//! The in-memory memory of single-use values (DPoP proof `jti`s, request object `jti`s,
//! upstream logout token `jti`s): bounded by construction and never forgetting an entry before
//! it expires. On PostgreSQL the store keeps them too, so every node agrees.
//!
//! An entry is a 128-bit keyed digest (HMAC-SHA-256 under a per-process random key, truncated)
//! of tenant and value — never the strings, whatever their length. Entries live in time slices
//! by expiry: slice `n` holds the entries that expire in `((n-1)·W, n·W]` and is dropped whole
//! once `n·W` has passed, so an entry is kept at least until its expiry and at most `W` seconds
//! longer. A hard entry cap, split over shards, is never exceeded: when a shard is full (after
//! dropping expired slices), a new value is refused — [`Admission::Full`] — rather than
//! admitted without being remembered, or remembered by forgetting another that is still valid.
//!
//! Memory bound. hashbrown keeps a `HashSet<u128>` as `2^k` buckets of 16 bytes plus `2^k + 16`
//! control bytes, at most 7/8 full, doubling when full: right after a doubling a table is 7/16
//! full, so an entry costs at most 17 × 16/7 ≈ 39 bytes. A slice costs a table header and a
//! B-tree slot (< 128 bytes with its smallest allocation); a shard has at most
//! `MAX_HORIZON / W + 1` = 241 slices. Bound: `capacity × 39 B + shards × 241 × 128 B`; the
//! default 2,000,000 entries and 64 shards: ≤ 78 MB + 2 MB (typically ~50 MB when full).
//! The moka cache this replaces allowed 5,000,000 keys of up to 256 + tenant bytes with moka's
//! per-entry overhead: gigabytes.
//!
//! Capacity in proofs per second. A DPoP entry expires `iat + 180 s` with `iat ≤ now + 60 s`,
//! plus up to `W` of slice rounding: at most 270 s in memory (210 s for a proof made now). The
//! default then holds 7,400 proofs/s sustained at the worst `iat`, 9,500/s for honest clients.
//! Each proof costs the server one P-256 (or RSA/Ed25519) verification; at this machine's bound
//! (`openssl speed ecdsap256`: 24,033 verify/s per core, 48,000/s on two) a flood fills the
//! default in about 40 s, after which new single-use values are refused with 503
//! `temporarily_unavailable` on SQLite until slices expire (on PostgreSQL the store decides).
//! Raise `[cache] replay_capacity` (≈ 13,000,000 entries, ~500 MB, covers the physical bound).

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

/// Width of a time slice, in seconds.
const SLICE: i64 = 30;
/// How far ahead an entry may expire. Callers bound their values well within it: DPoP proofs
/// (≤ 240 s), request objects (≤ 1 h + skew), upstream logout tokens (≤ 1 h + 120 s).
pub const MAX_HORIZON: i64 = 2 * 3600;
/// Entries per shard below which one shard is used (so small capacities are exact).
const MIN_SHARD: usize = 16_384;
const MAX_SHARDS: usize = 64;

/// What the memory says about a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Not seen inside its lifetime; now remembered until it expires.
    First,
    /// Seen before, and still inside its lifetime.
    Replay,
    /// Not seen, but the memory is full: it cannot be remembered, so it must not be accepted.
    Full,
}

pub struct ReplaySet {
    key: aws_lc_rs::hmac::Key,
    shards: Box<[Mutex<Shard>]>,
    shard_capacity: usize,
}

#[derive(Default)]
struct Shard {
    slices: BTreeMap<i64, HashSet<u128>>,
    len: usize,
}

impl std::fmt::Debug for ReplaySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplaySet")
            .field("shards", &self.shards.len())
            .field("shard_capacity", &self.shard_capacity)
            .finish_non_exhaustive()
    }
}

impl ReplaySet {
    /// A memory of at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let shards = (capacity / MIN_SHARD).clamp(1, MAX_SHARDS);
        let key_bytes: [u8; 32] = crate::secrets::random_bytes();
        Self {
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key_bytes),
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            shard_capacity: capacity.div_ceil(shards),
        }
    }

    fn digest(&self, tenant: &str, value: &str) -> u128 {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.key);
        ctx.update(&(tenant.len() as u64).to_be_bytes());
        ctx.update(tenant.as_bytes());
        ctx.update(value.as_bytes());
        let tag = ctx.sign();
        let mut first = [0u8; 16];
        for (d, s) in first.iter_mut().zip(tag.as_ref()) {
            *d = *s;
        }
        u128::from_be_bytes(first)
    }

    /// Checks `value` of `tenant` and remembers it until `expires_at` (which callers keep
    /// within [`MAX_HORIZON`] of `now`; a value already expired is not remembered).
    pub fn admit(&self, tenant: &str, value: &str, expires_at: i64, now: i64) -> Admission {
        let digest = self.digest(tenant, value);
        let index = usize::try_from((digest >> 64) as u64 % self.shards.len() as u64).unwrap_or(0);
        let Some(shard) = self.shards.get(index) else {
            return Admission::Full;
        };
        // A panic cannot happen while the lock is held; recover the data if one ever did.
        let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
        shard.expire(now);
        if shard.slices.values().any(|s| s.contains(&digest)) {
            return Admission::Replay;
        }
        if expires_at <= now {
            return Admission::First;
        }
        if shard.len >= self.shard_capacity {
            return Admission::Full;
        }
        // Slice n ends at n·W ≥ expires_at: never dropped before the entry expires.
        let slice = expires_at.div_euclid(SLICE) + i64::from(expires_at.rem_euclid(SLICE) != 0);
        if shard.slices.entry(slice).or_default().insert(digest) {
            shard.len += 1;
        }
        Admission::First
    }

    /// Entries currently held (expired slices may not have been dropped yet).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Shard {
    /// Drops the slices whose end has passed.
    fn expire(&mut self, now: i64) {
        while let Some(entry) = self.slices.first_entry() {
            if entry.key().saturating_mul(SLICE) > now {
                break;
            }
            self.len = self.len.saturating_sub(entry.get().len());
            entry.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_refused_again_inside_its_window_and_other_tenants_are_separate() {
        let set = ReplaySet::new(100);
        assert_eq!(set.admit("acme", "jkt:1", 1180, 1000), Admission::First);
        assert_eq!(set.admit("acme", "jkt:1", 1180, 1000), Admission::Replay);
        assert_eq!(set.admit("acme", "jkt:1", 1180, 1179), Admission::Replay);
        assert_eq!(set.admit("globex", "jkt:1", 1180, 1000), Admission::First);
        assert_eq!(set.admit("acme", "jkt:2", 1180, 1000), Admission::First);
        // The tenant and the value are not simply concatenated.
        assert_eq!(set.admit("acm", "ejkt:1", 1180, 1000), Admission::First);
        assert_eq!(set.len(), 4);
    }

    #[test]
    fn an_entry_lives_until_its_expiry_and_at_most_one_slice_longer() {
        let set = ReplaySet::new(100);
        let expires = 1000 * SLICE + 7;
        assert_eq!(
            set.admit("t", "v", expires, expires - 180),
            Admission::First
        );
        for now in [expires - 1, expires, expires + SLICE - 8] {
            assert_eq!(
                set.admit("t", "v", expires, now),
                Admission::Replay,
                "at {now}"
            );
        }
        // Past the end of its slice, it is gone: only the new entry is held.
        assert_eq!(
            set.admit("t", "other", expires + 100, expires + SLICE),
            Admission::First
        );
        assert_eq!(set.len(), 1, "only the new entry");
        assert_eq!(
            set.admit("t", "v", expires + 2 * SLICE, expires + SLICE),
            Admission::First
        );
    }

    #[test]
    fn an_entry_expiring_on_a_slice_boundary_is_kept_until_then() {
        let set = ReplaySet::new(100);
        let expires = 50 * SLICE;
        assert_eq!(set.admit("t", "v", expires, expires - 10), Admission::First);
        assert_eq!(set.admit("t", "v", expires, expires - 1), Admission::Replay);
        assert_eq!(set.admit("t", "w", expires + 1, expires), Admission::First);
        assert_eq!(
            set.admit("t", "v", expires, expires),
            Admission::First,
            "expired"
        );
    }

    #[test]
    fn a_full_memory_refuses_new_values_but_still_recognises_replays() {
        let set = ReplaySet::new(10);
        for i in 0..10 {
            assert_eq!(set.admit("t", &i.to_string(), 500, 100), Admission::First);
        }
        assert_eq!(set.admit("t", "new", 500, 100), Admission::Full);
        for i in 0..10 {
            assert_eq!(
                set.admit("t", &i.to_string(), 500, 100),
                Admission::Replay,
                "{i}"
            );
        }
        assert_eq!(set.len(), 10);
        // Room comes back only when entries expire, never by forgetting a live one.
        assert_eq!(set.admit("t", "new", 500, 499), Admission::Full);
        assert_eq!(set.admit("t", "new", 900, 510), Admission::First);
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn expired_values_are_not_stored_and_long_values_cost_the_same() {
        let set = ReplaySet::new(10);
        assert_eq!(set.admit("t", "v", 100, 100), Admission::First);
        assert!(set.is_empty());
        let long = "j".repeat(100_000);
        assert_eq!(set.admit("t", &long, 200, 100), Admission::First);
        assert_eq!(set.admit("t", &long, 200, 100), Admission::Replay);
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn a_large_memory_is_sharded_and_its_cap_holds_overall() {
        let set = ReplaySet::new(200_000);
        assert_eq!(set.shards.len(), 12);
        let mut first = 0;
        let mut full = 0;
        for i in 0..220_000 {
            match set.admit("t", &format!("jti-{i}"), 1_000, 0) {
                Admission::First => first += 1,
                Admission::Full => full += 1,
                Admission::Replay => panic!("no value was sent twice"),
            }
        }
        assert!(first <= set.shards.len() * set.shard_capacity);
        assert!(first > 195_000, "the shards fill evenly: {first}");
        assert_eq!(first + full, 220_000);
        assert_eq!(set.len(), first);
        // Every admitted value is still known.
        let replays = (0..220_000)
            .filter(|i| set.admit("t", &format!("jti-{i}"), 1_000, 0) == Admission::Replay)
            .count();
        assert_eq!(replays, first);
    }
}
