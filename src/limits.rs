//! Fixed-window request counters in memory, per key (e.g. a tenant and a client address): the
//! cheap first line against floods of requests that write (open client registration). One
//! node's count: several nodes each allow the limit.

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

#[derive(Debug)]
pub struct WindowLimiter<K: Hash + Eq + Send + Sync + 'static> {
    windows: moka::future::Cache<K, Arc<AtomicU32>>,
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> WindowLimiter<K> {
    /// Counters that start at the first request of a key and last `window`.
    pub fn new(window: Duration, capacity: u64) -> Self {
        Self {
            windows: moka::future::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(window)
                .build(),
        }
    }

    /// Counts a request of `key`; false when it is over `limit` in the current window.
    pub async fn admit(&self, key: K, limit: u32) -> bool {
        let counter = self
            .windows
            .get_with(key, async { Arc::new(AtomicU32::new(0)) })
            .await;
        counter.fetch_add(1, Ordering::Relaxed) < limit
    }
}

#[cfg(test)]
mod tests {
    use super::WindowLimiter;
    use std::time::Duration;

    #[tokio::test]
    async fn a_key_is_admitted_up_to_its_limit_and_others_are_counted_apart() {
        let l = WindowLimiter::new(Duration::from_secs(60), 100);
        assert!(l.admit("a", 2).await);
        assert!(l.admit("a", 2).await);
        assert!(!l.admit("a", 2).await);
        assert!(l.admit("b", 2).await);
    }
}
