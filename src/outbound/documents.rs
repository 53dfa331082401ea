//! Fetched documents (OIDC discovery, JWK Sets of upstreams and of clients, SAML metadata)
//! cached per URL, fetched only through the outbound guard.
//!
//! - Freshness comes from the server's `Cache-Control` (RFC 9111 §5.2.2.1), bounded.
//! - A document is refreshed in the background once 80 % of its freshness has passed, so logins
//!   in steady state never wait for (or cause) a fetch.
//! - When a refresh fails, the stale copy keeps serving for up to a day: an upstream outage
//!   while the cache is warm does not break logins.
//! - A forced refetch (an unknown `kid`) happens at most once a minute per URL.
//! - The cache is bounded by bytes (`[outbound] cache_max_bytes`), each document by the guard's
//!   response limit.

use super::{Outbound, OutboundError};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How long a stale document may serve while its upstream cannot be reached.
const MAX_STALE: i64 = 86_400;

/// One fetched document.
#[derive(Debug)]
pub struct Doc {
    pub text: Arc<str>,
    /// The document as JSON, when it is JSON.
    pub json: Option<Arc<Value>>,
    pub fetched_at: i64,
    pub fresh_until: i64,
}

impl Doc {
    /// What the document costs the cache: its text, an allowance for its parsed JSON (serde's
    /// tree of maps and strings takes a few times the text), and the entry itself.
    fn weight(&self, url: &str) -> u32 {
        let parsed = if self.json.is_some() { 3 } else { 0 };
        let bytes = self.text.len().saturating_mul(1 + parsed) + url.len() + 256;
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

#[derive(Debug)]
pub struct DocCache {
    outbound: Outbound,
    entries: moka::future::Cache<String, Arc<Doc>>,
    /// URLs with a background refresh in flight.
    refreshing: moka::future::Cache<String, ()>,
    /// URLs refetched for an unknown key within the last minute.
    forced: moka::future::Cache<String, ()>,
    /// Every request made for a document (metrics, tests, benchmark).
    fetches: Arc<AtomicU64>,
}

impl DocCache {
    /// A cache of at most `max_bytes` (by [`Doc::weight`]).
    pub fn new(outbound: Outbound, max_bytes: u64) -> Self {
        Self {
            outbound,
            entries: moka::future::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|url: &String, doc: &Arc<Doc>| doc.weight(url))
                .time_to_live(std::time::Duration::from_secs(
                    u64::try_from(86_400 + MAX_STALE).unwrap_or(172_800),
                ))
                .build(),
            refreshing: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(30))
                .build(),
            forced: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(60))
                .build(),
            fetches: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many documents were fetched since start.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The document at `url`: cached, refreshed ahead of expiry, stale on upstream failure.
    pub async fn get(&self, url: &str, now: i64) -> Result<Arc<Doc>, OutboundError> {
        if let Some(doc) = self.entries.get(url).await {
            if doc.fresh_until > now {
                let age = now - doc.fetched_at;
                let life = doc.fresh_until - doc.fetched_at;
                if age * 5 >= life * 4 && self.refreshing.get(url).await.is_none() {
                    self.refresh_in_background(url, now).await;
                }
                return Ok(doc);
            }
            return match self.fetch_and_store(url, now).await {
                Ok(fresh) => Ok(fresh),
                Err(e) if now < doc.fresh_until + MAX_STALE => {
                    tracing::warn!(url, error = %e, "document unavailable; serving the cached copy");
                    Ok(doc)
                }
                Err(e) => Err(e),
            };
        }
        let this = self.fetcher();
        let key = url.to_string();
        self.entries
            .try_get_with(key.clone(), async move { this.fetch(&key, now).await })
            .await
            .map_err(|e| (*e).clone())
    }

    /// Refetches `url` now, unless that was done within the last minute (then `None`).
    pub async fn refetch(&self, url: &str, now: i64) -> Result<Option<Arc<Doc>>, OutboundError> {
        if self.forced.get(url).await.is_some() {
            return Ok(None);
        }
        self.forced.insert(url.to_string(), ()).await;
        Ok(Some(self.fetch_and_store(url, now).await?))
    }

    /// Forgets a document (a provider changed its configuration).
    pub async fn forget(&self, url: &str) {
        self.entries.invalidate(url).await;
    }

    async fn fetch_and_store(&self, url: &str, now: i64) -> Result<Arc<Doc>, OutboundError> {
        let doc = self.fetcher().fetch(url, now).await?;
        self.entries.insert(url.to_string(), doc.clone()).await;
        Ok(doc)
    }

    async fn refresh_in_background(&self, url: &str, now: i64) {
        self.refreshing.insert(url.to_string(), ()).await;
        let this = self.fetcher();
        let entries = self.entries.clone();
        let key = url.to_string();
        tokio::spawn(async move {
            match this.fetch(&key, now).await {
                Ok(doc) => entries.insert(key, doc).await,
                Err(e) => {
                    tracing::warn!(url = %key, error = %e, "background refresh of a document failed")
                }
            }
        });
    }

    fn fetcher(&self) -> Fetcher {
        Fetcher {
            outbound: self.outbound.clone(),
            fetches: self.fetches.clone(),
        }
    }
}

struct Fetcher {
    outbound: Outbound,
    fetches: Arc<AtomicU64>,
}

impl Fetcher {
    async fn fetch(&self, url: &str, now: i64) -> Result<Arc<Doc>, OutboundError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let response = self.outbound.get(url).send().await?;
        if !response.status.is_success() {
            return Err(OutboundError::Unreachable(format!(
                "{url} answered {}",
                response.status
            )));
        }
        let fresh_until = now + freshness(&response.headers);
        let text: Arc<str> = String::from_utf8(response.body.to_vec())
            .map_err(|_| OutboundError::Unreachable(format!("{url}: not UTF-8")))?
            .into();
        let json = serde_json::from_str::<Value>(&text).ok().map(Arc::new);
        Ok(Arc::new(Doc {
            text,
            json,
            fetched_at: now,
            fresh_until,
        }))
    }
}

/// How long a fetched document is used: the server's `Cache-Control: max-age` (RFC 9111
/// §5.2.2.1), within bounds that neither hammer the upstream nor keep a rotated-out key long.
pub fn freshness(headers: &reqwest::header::HeaderMap) -> i64 {
    const DEFAULT: i64 = 300;
    let Some(cc) = headers
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
    else {
        return DEFAULT;
    };
    let directives: Vec<&str> = cc.split(',').map(str::trim).collect();
    if directives
        .iter()
        .any(|d| d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("no-cache"))
    {
        return 60;
    }
    directives
        .iter()
        .find_map(|d| d.strip_prefix("max-age="))
        .and_then(|v| v.parse::<i64>().ok())
        .map_or(DEFAULT, |v| v.clamp(60, 86_400))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::testing::https_upstream;
    use std::sync::atomic::AtomicBool;

    /// A tiny upstream that can be switched off (answers 503).
    fn switchable(up: Arc<AtomicBool>) -> axum::Router {
        axum::Router::new().route(
            "/doc",
            axum::routing::get(move || {
                let up = up.clone();
                async move {
                    if up.load(Ordering::Relaxed) {
                        (
                            axum::http::StatusCode::OK,
                            [("cache-control", "max-age=100")],
                            r#"{"issuer":"x"}"#,
                        )
                    } else {
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            [("cache-control", "no-store")],
                            "down",
                        )
                    }
                }
            }),
        )
    }

    #[tokio::test]
    async fn documents_are_fetched_once_refreshed_ahead_and_served_stale_during_an_outage() {
        let up = Arc::new(AtomicBool::new(true));
        let (base, outbound) = https_upstream(switchable(up.clone()), 1024).await;
        let url = format!("{base}/doc");
        let cache = DocCache::new(outbound, 1 << 20);
        let doc = cache.get(&url, 1_000).await.unwrap();
        assert_eq!(doc.json.as_deref().unwrap()["issuer"], "x");
        assert_eq!(doc.fresh_until, 1_100);
        cache.get(&url, 1_010).await.unwrap();
        assert_eq!(
            cache.fetch_count(),
            1,
            "a fresh document is not fetched again"
        );
        // Past 80 % of its freshness: served from cache, refreshed in the background.
        cache.get(&url, 1_085).await.unwrap();
        for _ in 0..100 {
            if cache.fetch_count() == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(cache.fetch_count(), 2);
        // The upstream goes down after the document expired: the stale copy still serves.
        up.store(false, Ordering::Relaxed);
        let stale = cache.get(&url, 5_000).await.unwrap();
        assert_eq!(stale.json.as_deref().unwrap()["issuer"], "x");
        // A forced refetch is rate limited.
        assert!(cache.refetch(&url, 5_001).await.is_err());
        assert!(cache.refetch(&url, 5_002).await.unwrap().is_none());
        // Too stale: the failure shows.
        assert!(cache.get(&url, 200_000).await.is_err());
    }

    #[tokio::test]
    async fn the_cache_holds_no_more_bytes_than_its_bound() {
        let big = "x".repeat(10_000);
        let router = axum::Router::new().route(
            "/{n}",
            axum::routing::get(move || {
                let big = big.clone();
                async move { big }
            }),
        );
        let (base, outbound) = https_upstream(router, 1 << 20).await;
        let cache = DocCache::new(outbound, 50_000);
        for n in 0..20 {
            cache.get(&format!("{base}/{n}"), 1_000).await.unwrap();
        }
        cache.entries.run_pending_tasks().await;
        assert!(
            cache.entries.weighted_size() <= 50_000,
            "{} bytes cached",
            cache.entries.weighted_size()
        );
        assert!(cache.entries.entry_count() < 20);
    }

    #[test]
    fn documents_stay_as_long_as_cache_control_says_within_bounds() {
        use reqwest::header::{CACHE_CONTROL, HeaderMap, HeaderValue};
        let with = |cc: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(CACHE_CONTROL, HeaderValue::from_static(cc));
            h
        };
        assert_eq!(freshness(&HeaderMap::new()), 300);
        assert_eq!(freshness(&with("public, max-age=3600")), 3600);
        assert_eq!(freshness(&with("max-age=5")), 60);
        assert_eq!(freshness(&with("max-age=99999999")), 86_400);
        assert_eq!(freshness(&with("no-store")), 60);
    }
}
