//! Upstream documents (OIDC discovery, JWK Sets, SAML metadata) cached per URL.
//!
//! - Freshness comes from the upstream's `Cache-Control` (RFC 9111 §5.2.2.1), bounded.
//! - A document is refreshed in the background once 80 % of its freshness has passed, so logins
//!   in steady state never wait for (or cause) a fetch.
//! - When a refresh fails, the stale copy keeps serving for up to a day: an upstream outage
//!   while the cache is warm does not break logins.
//! - A forced refetch (an unknown `kid`) happens at most once a minute per URL.

use crate::error::InternalError;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest upstream document accepted.
const MAX_BYTES: usize = 512 * 1024;
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

#[derive(Debug)]
pub struct DocCache {
    http: reqwest::Client,
    entries: moka::future::Cache<String, Arc<Doc>>,
    /// URLs with a background refresh in flight.
    refreshing: moka::future::Cache<String, ()>,
    /// URLs refetched for an unknown key within the last minute.
    forced: moka::future::Cache<String, ()>,
    /// Every request made to an upstream for a document (metrics, tests, benchmark).
    fetches: Arc<AtomicU64>,
}

impl DocCache {
    pub fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            entries: moka::future::Cache::builder()
                .max_capacity(100_000)
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

    /// How many documents were fetched from upstreams since start.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The document at `url`: cached, refreshed ahead of expiry, stale on upstream failure.
    pub async fn get(&self, url: &str, now: i64) -> Result<Arc<Doc>, InternalError> {
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
                    tracing::warn!(url, error = %e, "upstream document unavailable; serving the cached copy");
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
            .map_err(|e| InternalError::Other(e.to_string()))
    }

    /// Refetches `url` now, unless that was done within the last minute (then `None`).
    pub async fn refetch(&self, url: &str, now: i64) -> Result<Option<Arc<Doc>>, InternalError> {
        if self.forced.get(url).await.is_some() {
            return Ok(None);
        }
        self.forced.insert(url.to_string(), ()).await;
        self.fetch_and_store(url, now).await.map(Some)
    }

    /// Forgets a document (a provider changed its configuration).
    pub async fn forget(&self, url: &str) {
        self.entries.invalidate(url).await;
    }

    async fn fetch_and_store(&self, url: &str, now: i64) -> Result<Arc<Doc>, InternalError> {
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
                    tracing::warn!(url = %key, error = %e, "background refresh of an upstream document failed")
                }
            }
        });
    }

    fn fetcher(&self) -> Fetcher {
        Fetcher {
            http: self.http.clone(),
            fetches: self.fetches.clone(),
        }
    }
}

struct Fetcher {
    http: reqwest::Client,
    fetches: Arc<AtomicU64>,
}

impl Fetcher {
    async fn fetch(&self, url: &str, now: i64) -> Result<Arc<Doc>, InternalError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| InternalError::Other(format!("{url}: {e}")))?;
        if !response.status().is_success() {
            return Err(InternalError::Other(format!(
                "{url} answered {}",
                response.status()
            )));
        }
        let fresh_until = now + freshness(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| InternalError::Other(format!("{url}: {e}")))?;
        if body.len() > MAX_BYTES {
            return Err(InternalError::Other(format!("{url}: document too large")));
        }
        let text: Arc<str> = String::from_utf8(body.to_vec())
            .map_err(|_| InternalError::Other(format!("{url}: not UTF-8")))?
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
    use std::sync::atomic::AtomicBool;

    /// A tiny upstream that can be switched off (answers 503).
    async fn upstream(up: Arc<AtomicBool>) -> String {
        let app = axum::Router::new().route(
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
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/doc")
    }

    #[tokio::test]
    async fn documents_are_fetched_once_refreshed_ahead_and_served_stale_during_an_outage() {
        let up = Arc::new(AtomicBool::new(true));
        let url = upstream(up.clone()).await;
        let cache = DocCache::new(reqwest::Client::new());
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
