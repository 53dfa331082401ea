//! Every request this server makes to another server goes through here: upstream discovery
//! documents, JWK Sets, token and userinfo endpoints, SAML metadata, clients' `jwks_uri`,
//! back-channel logout URIs (and webhooks later). Nothing else in the crate holds an HTTP client,
//! so a URL from a definition, a discovery document or a client registration cannot reach the
//! network any other way (DESIGN: "Trust boundaries by type").
//!
//! The rules, for every request:
//! - `https` only (the one exception: a notification endpoint a tenant file registered may be
//!   plain http to a loopback address literal), no redirects followed, no proxy from the
//!   environment;
//! - the address connected to must be public: loopback, private (RFC 1918), link-local, CGNAT
//!   (RFC 6598), unique-local (RFC 4193), multicast and the other special-purpose ranges of the
//!   IANA registries are refused unless the operator allow-lists them (`[outbound]
//!   allow_networks`). Names are checked on the addresses they resolve to, by the resolver the
//!   connection then uses, so a name that resolves to a public address for a check and to an
//!   internal one for the connection (DNS rebinding) cannot happen; IP literals are checked
//!   before any connection;
//! - bounded time (connect and total), and bodies read as a stream and cut at a limit, with
//!   `Content-Length` checked before the first byte is read.

pub mod documents;

use crate::config::ServerConfig;
use crate::error::InternalError;
use bytes::{Bytes, BytesMut};
use ipnet::IpNet;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tracing::Instrument as _;

/// Why an outbound request did not produce an answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OutboundError {
    /// The URL, or the address its host resolves to, is not one this server may reach. A
    /// security event: a definition or a document tried to point the server somewhere internal.
    #[error("refused: {0}")]
    Refused(String),
    /// The answer is larger than the limit (or says so in `Content-Length`).
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    /// The server could not be reached, timed out, or broke off.
    #[error("{0}")]
    Unreachable(String),
}

impl From<OutboundError> for InternalError {
    fn from(e: OutboundError) -> Self {
        InternalError::Other(e.to_string())
    }
}

/// An answer, read whole (within the limit).
#[derive(Debug)]
pub struct Fetched {
    pub status: reqwest::StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The addresses the guard lets through, besides public ones.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Internal networks the operator allows (internal upstreams, the demo on loopback).
    pub allow: Vec<IpNet>,
    /// Largest answer read, unless a request asks for less.
    pub max_response_bytes: usize,
}

impl Policy {
    /// Whether the server may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> Result<(), String> {
        let ip = ip.to_canonical();
        if ip.is_unspecified() {
            return Err(format!("{ip} is not an address to connect to"));
        }
        if self.allow.iter().any(|n| n.contains(&ip)) || is_public(ip) {
            Ok(())
        } else {
            Err(format!(
                "{ip} is an internal address (allow it in [outbound] allow_networks if it is an internal upstream)"
            ))
        }
    }

    /// Checks a URL before anything is sent: `https`, a host, and, for an IP literal, an
    /// address the server may reach (a name is checked when it resolves).
    pub fn check_url(&self, raw: &str) -> Result<url::Url, OutboundError> {
        let url = url::Url::parse(raw)
            .map_err(|_| OutboundError::Refused("not an absolute URL".into()))?;
        if url.scheme() != "https" {
            return Err(OutboundError::Refused(format!(
                "{} URLs are not fetched; only https",
                url.scheme()
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(OutboundError::Refused(
                "URLs with credentials are not fetched".into(),
            ));
        }
        match url.host() {
            None => Err(OutboundError::Refused("the URL has no host".into())),
            Some(url::Host::Ipv4(ip)) => self
                .permits(IpAddr::V4(ip))
                .map(|()| url.clone())
                .map_err(OutboundError::Refused),
            Some(url::Host::Ipv6(ip)) => self
                .permits(IpAddr::V6(ip))
                .map(|()| url.clone())
                .map_err(OutboundError::Refused),
            Some(url::Host::Domain(_)) => Ok(url.clone()),
        }
    }
}

/// Special-purpose ranges (IANA IPv4 and IPv6 Special-Purpose Address Registries, RFC 6890)
/// that are not globally reachable, plus multicast. Addresses that embed an IPv4 address
/// (IPv4-mapped, NAT64, 6to4) are judged by the address they embed.
static NOT_PUBLIC: std::sync::LazyLock<Vec<IpNet>> = std::sync::LazyLock::new(|| {
    [
        "0.0.0.0/8",       // "this network" (RFC 791)
        "10.0.0.0/8",      // private (RFC 1918)
        "100.64.0.0/10",   // shared address space, CGNAT (RFC 6598)
        "127.0.0.0/8",     // loopback
        "169.254.0.0/16",  // link-local, cloud metadata (RFC 3927)
        "172.16.0.0/12",   // private
        "192.0.0.0/24",    // IETF protocol assignments (RFC 6890)
        "192.0.2.0/24",    // documentation (RFC 5737)
        "192.88.99.0/24",  // 6to4 relay anycast (RFC 7526)
        "192.168.0.0/16",  // private
        "198.18.0.0/15",   // benchmarking (RFC 2544)
        "198.51.100.0/24", // documentation
        "203.0.113.0/24",  // documentation
        "224.0.0.0/4",     // multicast
        "240.0.0.0/4",     // reserved, and the limited broadcast address
        "::/96",           // unspecified, loopback, IPv4-compatible (deprecated)
        "64:ff9b:1::/48",  // local-use NAT64 (RFC 8215)
        "100::/64",        // discard-only (RFC 6666)
        "2001::/23",       // IETF protocol assignments, Teredo (RFC 2928, 4380)
        "2001:db8::/32",   // documentation (RFC 3849)
        "fc00::/7",        // unique-local (RFC 4193)
        "fe80::/10",       // link-local
        "fec0::/10",       // site-local (deprecated, RFC 3879)
        "ff00::/8",        // multicast
    ]
    .iter()
    .filter_map(|n| n.parse().ok())
    .collect()
});

/// Whether `ip` is globally reachable.
pub fn is_public(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    if let IpAddr::V6(v6) = ip {
        let [s0, s1, s2, s3, s4, s5, s6, s7] = v6.segments();
        let embedded = |hi: u16, lo: u16| {
            let ([a, b], [c, d]) = (hi.to_be_bytes(), lo.to_be_bytes());
            IpAddr::from([a, b, c, d])
        };
        // NAT64 (RFC 6052): 64:ff9b::a.b.c.d
        if [s0, s1, s2, s3, s4, s5] == [0x64, 0xff9b, 0, 0, 0, 0] {
            return is_public(embedded(s6, s7));
        }
        // 6to4 (RFC 3056): 2002:aabb:ccdd::/48
        if s0 == 0x2002 {
            return is_public(embedded(s1, s2));
        }
    }
    !NOT_PUBLIC.iter().any(|n| n.contains(&ip))
}

/// Resolves names and refuses the whole answer if any address in it is not allowed: the
/// connection is then made to exactly the addresses checked here.
struct GuardedResolver {
    policy: Arc<Policy>,
}

/// The resolver's refusal, recognised again in the error reqwest returns.
#[derive(Debug)]
struct ResolveRefused(String);

impl std::fmt::Display for ResolveRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ResolveRefused {}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no address").into());
            }
            for a in &addrs {
                if let Err(why) = policy.permits(a.ip()) {
                    return Err(
                        Box::new(ResolveRefused(format!("{host} resolves to {why}")))
                            as Box<dyn std::error::Error + Send + Sync>,
                    );
                }
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The guarded outbound client. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    http: reqwest::Client,
    /// The same client without `https_only`, used only by [`Outbound::post_notification`] for
    /// plain http to a loopback address literal (no name to resolve; the policy still decides).
    loopback_http: reqwest::Client,
    policy: Arc<Policy>,
    /// The extra CA certificates trusted (a guard made with another policy trusts them too).
    roots: Vec<reqwest::Certificate>,
    /// Requests refused by the guard since start (metrics, tests).
    refused: Arc<AtomicU64>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Outbound {
    /// The guard as the server configuration describes it: its allow-list and limits; trusts
    /// the system's CAs, the configured federation CAs and, while development certificates are
    /// on, the development CA.
    pub fn from_config(config: &ServerConfig) -> Result<Self, InternalError> {
        let o = &config.outbound;
        let mut roots = Vec::new();
        let mut files = config.federation.ca_files.clone();
        if config.tls.dev_certs {
            let dev_ca = config.paths.certs_dir.join("ca.pem");
            if dev_ca.exists() {
                files.push(dev_ca);
            }
        }
        for file in files {
            let pem = std::fs::read(&file).map_err(|e| {
                InternalError::Other(format!("cannot read {}: {e}", file.display()))
            })?;
            roots.extend(
                reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| InternalError::Other(format!("{}: {e}", file.display())))?,
            );
        }
        Self::new(
            Policy {
                allow: o.allow_networks.clone(),
                max_response_bytes: o.max_response_bytes,
            },
            roots,
            o.connect_timeout,
            o.timeout,
        )
    }

    pub fn new(
        policy: Policy,
        extra_roots: Vec<reqwest::Certificate>,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Self, InternalError> {
        let policy = Arc::new(policy);
        let build = |https_only: bool, roots: Vec<reqwest::Certificate>| {
            reqwest::Client::builder()
                .https_only(https_only)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .dns_resolver(Arc::new(GuardedResolver {
                    policy: policy.clone(),
                }))
                .connect_timeout(connect_timeout)
                .timeout(timeout)
                .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
                .tls_certs_merge(roots)
                .build()
                .map_err(|e| InternalError::Other(format!("HTTP client: {e}")))
        };
        let loopback_http = build(false, Vec::new())?;
        let http = build(true, extra_roots.clone())?;
        Ok(Self {
            http,
            loopback_http,
            policy,
            roots: extra_roots,
            refused: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Another guard with the same trusted CAs, for requests that need a narrower policy or
    /// shorter timeouts (it counts its refusals with this one's).
    pub fn with_policy(
        &self,
        policy: Policy,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Self, InternalError> {
        let mut o = Self::new(policy, self.roots.clone(), connect_timeout, timeout)?;
        o.refused = self.refused.clone();
        Ok(o)
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// How many requests the guard refused since start.
    pub fn refused_count(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn get(&self, url: &str) -> OutboundRequest<'_> {
        self.request(reqwest::Method::GET, url)
    }

    pub fn post(&self, url: &str) -> OutboundRequest<'_> {
        self.request(reqwest::Method::POST, url)
    }

    /// A POST to a notification endpoint a tenant file registered: https, or plain http to a
    /// loopback address literal that the policy allows (a client on the same machine, as in the
    /// demo). Everything else is checked as for any request.
    pub fn post_notification(&self, url: &str) -> OutboundRequest<'_> {
        let loopback_http = url::Url::parse(url).ok().filter(|u| {
            u.scheme() == "http"
                && u.username().is_empty()
                && u.password().is_none()
                && match u.host() {
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    _ => false,
                }
        });
        let Some(u) = loopback_http else {
            return self.post(url);
        };
        let ip = match u.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return self.post(url),
        };
        let builder = self
            .policy
            .permits(ip)
            .map(|()| self.loopback_http.post(u.clone()))
            .map_err(OutboundError::Refused);
        OutboundRequest {
            guard: self,
            url: redact(url),
            builder,
            limit: self.policy.max_response_bytes,
        }
    }

    fn request(&self, method: reqwest::Method, url: &str) -> OutboundRequest<'_> {
        let builder = self
            .policy
            .check_url(url)
            .map(|u| self.http.request(method, u));
        OutboundRequest {
            guard: self,
            url: redact(url),
            builder,
            limit: self.policy.max_response_bytes,
        }
    }

    /// Counts and logs a refusal (a security event) on its way to the caller.
    fn observe<T>(&self, url: &str, result: Result<T, OutboundError>) -> Result<T, OutboundError> {
        if let Err(OutboundError::Refused(why)) = &result {
            self.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(target: "security", event = "outbound_refused", url, reason = %why, "outbound request refused");
        }
        result
    }
}

/// A URL as logged: scheme, host, port and path (a query may carry a secret).
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.to_string()
        }
        Err(_) => "<not a URL>".into(),
    }
}

/// One request being built; nothing is sent before [`OutboundRequest::send`].
pub struct OutboundRequest<'a> {
    guard: &'a Outbound,
    url: String,
    builder: Result<reqwest::RequestBuilder, OutboundError>,
    limit: usize,
}

impl OutboundRequest<'_> {
    fn map(mut self, f: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder) -> Self {
        self.builder = self.builder.map(f);
        self
    }

    pub fn header(self, name: HeaderName, value: HeaderValue) -> Self {
        self.map(|b| b.header(name, value))
    }

    pub fn bearer_auth(self, token: &str) -> Self {
        self.map(|b| b.bearer_auth(token))
    }

    pub fn form(self, form: &[(&str, &str)]) -> Self {
        self.map(|b| b.form(form))
    }

    /// A body of the given media type.
    pub fn body(self, content_type: &'static str, body: Vec<u8>) -> Self {
        self.map(|b| {
            b.header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body)
        })
    }

    /// Gives up after `timeout` instead of the configured request timeout.
    pub fn timeout(self, timeout: std::time::Duration) -> Self {
        self.map(|b| b.timeout(timeout))
    }

    /// Reads at most `bytes` of the answer (less than the configured maximum only).
    pub fn limit(mut self, bytes: usize) -> Self {
        self.limit = self.limit.min(bytes);
        self
    }

    /// Sends the request and reads the answer within the limit.
    pub async fn send(self) -> Result<Fetched, OutboundError> {
        let span = self.span();
        let result = match self.builder {
            Ok(b) => {
                send_capped(
                    b.headers(crate::telemetry::trace_headers(&span)),
                    self.limit,
                )
                .instrument(span)
                .await
            }
            Err(e) => Err(e),
        };
        self.guard.observe(&self.url, result)
    }

    /// Sends the request and returns the answer's status only; the body is never read (a
    /// notification whose answer's status is all that counts).
    pub async fn send_for_status(self) -> Result<reqwest::StatusCode, OutboundError> {
        let span = self.span();
        let result = match self.builder {
            Ok(b) => b
                .headers(crate::telemetry::trace_headers(&span))
                .send()
                .instrument(span)
                .await
                .map(|r| r.status())
                .map_err(classify),
            Err(e) => Err(e),
        };
        self.guard.observe(&self.url, result)
    }

    /// The request's span (a child of the caller's; traces only) and the trace context it
    /// sends along.
    fn span(&self) -> tracing::Span {
        tracing::trace_span!("outbound", url = %self.url, otel.kind = "client")
    }
}

async fn send_capped(
    builder: reqwest::RequestBuilder,
    limit: usize,
) -> Result<Fetched, OutboundError> {
    let mut response = builder.send().await.map_err(classify)?;
    if response
        .content_length()
        .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Err(OutboundError::TooLarge(limit));
    }
    let status = response.status();
    let headers = std::mem::take(response.headers_mut());
    let expected = response
        .content_length()
        .map_or(8 * 1024, |n| usize::try_from(n).unwrap_or(limit).min(limit));
    let mut body = BytesMut::with_capacity(expected.min(limit));
    while let Some(chunk) = response.chunk().await.map_err(classify)? {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(OutboundError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        status,
        headers,
        body: body.freeze(),
    })
}

/// A reqwest error as the guard reports it: the resolver's refusal stays a refusal.
fn classify(e: reqwest::Error) -> OutboundError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<ResolveRefused>() {
            return OutboundError::Refused(r.0.clone());
        }
        source = s.source();
    }
    if e.is_timeout() {
        return OutboundError::Unreachable("timed out".into());
    }
    // reqwest's Display names the URL, and its sources say what failed.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    OutboundError::Unreachable(text)
}

/// An https upstream on loopback for unit tests, and a guard that may reach it.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub async fn https_upstream(router: axum::Router, max_bytes: usize) -> (String, Outbound) {
        crate::frontdoor::tls::install_default_provider();
        let ca = crate::devcerts::DevCa::new("test CA").unwrap();
        let (addr, _task) = crate::devcerts::serve_https(
            &ca,
            &["127.0.0.1"],
            "127.0.0.1:0".parse().unwrap(),
            router,
        )
        .await
        .unwrap();
        let root = reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).unwrap();
        let outbound = Outbound::new(
            Policy {
                allow: vec!["127.0.0.0/8".parse().unwrap()],
                max_response_bytes: max_bytes,
            },
            vec![root],
            Duration::from_secs(2),
            Duration::from_secs(5),
        )
        .unwrap();
        (format!("https://{addr}"), outbound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testing::https_upstream;

    fn policy(allow: &[&str]) -> Policy {
        Policy {
            allow: allow.iter().map(|n| n.parse().unwrap()).collect(),
            max_response_bytes: 1024,
        }
    }

    #[test]
    fn internal_addresses_are_not_public() {
        for internal in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2001:db8::1",
        ] {
            let ip: IpAddr = internal.parse().unwrap();
            assert!(!is_public(ip), "{internal} must not count as public");
        }
        for public in [
            "93.184.215.14",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "64:ff9b::101:101",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(is_public(ip), "{public} is public");
        }
    }

    #[test]
    fn internal_urls_are_refused_unless_the_operator_allows_their_network() {
        let p = policy(&[]);
        for url in [
            "http://idp.example/",
            "https://127.0.0.1/",
            "https://10.0.0.1/.well-known/openid-configuration",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::1]:8443/",
            "https://[::ffff:7f00:1]/",
            "https://0x7f.1/",
            "https://2130706433/",
            "https://user:pw@idp.example/",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(
                matches!(p.check_url(url), Err(OutboundError::Refused(_))),
                "{url} must be refused"
            );
        }
        assert!(p.check_url("https://idp.example/x").is_ok());
        assert!(p.check_url("https://93.184.215.14/x").is_ok());
        let allowed = policy(&["127.0.0.0/8"]);
        assert!(allowed.check_url("https://127.0.0.1:8443/x").is_ok());
        assert!(allowed.check_url("https://[::ffff:127.0.0.1]/x").is_ok());
        assert!(allowed.check_url("https://10.0.0.1/x").is_err());
        assert!(allowed.check_url("http://127.0.0.1/x").is_err());
        assert!(allowed.permits("0.0.0.0".parse().unwrap()).is_err());
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_an_internal_address_is_refused_when_it_is_resolved() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while listener.accept().await.is_ok() {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        let guard = Outbound::new(
            policy(&[]),
            Vec::new(),
            Duration::from_secs(2),
            Duration::from_secs(2),
        )
        .unwrap();
        let r = guard
            .get(&format!("https://localhost:{port}/doc"))
            .send()
            .await;
        assert!(matches!(r, Err(OutboundError::Refused(_))), "{r:?}");
        assert_eq!(guard.refused_count(), 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(accepted.load(Ordering::Relaxed), 0, "nothing connected");
    }

    /// An upstream that answers `/declared` with a large Content-Length, `/endless` with a body
    /// that never ends (chunked, no length), `/small` with 10 bytes, `/moved` with a redirect.
    fn hostile() -> axum::Router {
        use axum::body::Body;
        use axum::response::IntoResponse;
        axum::Router::new()
            .route(
                "/declared",
                axum::routing::get(|| async {
                    ([("content-length", "1500000000")], "short").into_response()
                }),
            )
            .route(
                "/endless",
                axum::routing::get(|| async {
                    let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
                    let stream = futures_util::stream::repeat_with(move || {
                        Ok::<_, std::io::Error>(chunk.clone())
                    });
                    Body::from_stream(stream).into_response()
                }),
            )
            .route("/small", axum::routing::get(|| async { "0123456789" }))
            .route(
                "/moved",
                axum::routing::get(|| async {
                    axum::response::Redirect::temporary("https://127.0.0.1:1/").into_response()
                }),
            )
    }

    #[tokio::test]
    async fn answers_are_cut_at_the_limit_and_a_declared_length_is_refused_unread() {
        let (base, guard) = https_upstream(hostile(), 100_000).await;
        let started = std::time::Instant::now();
        let r = guard.get(&format!("{base}/declared")).send().await;
        assert!(matches!(r, Err(OutboundError::TooLarge(100_000))), "{r:?}");
        let r = guard.get(&format!("{base}/endless")).send().await;
        assert!(matches!(r, Err(OutboundError::TooLarge(100_000))), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "cut, not read");
        let r = guard.get(&format!("{base}/small")).send().await.unwrap();
        assert_eq!(&r.body[..], b"0123456789");
        let r = guard.get(&format!("{base}/small")).limit(5).send().await;
        assert!(matches!(r, Err(OutboundError::TooLarge(5))), "{r:?}");
    }

    #[tokio::test]
    async fn redirects_are_answers_not_instructions() {
        let (base, guard) = https_upstream(hostile(), 1024).await;
        let r = guard.get(&format!("{base}/moved")).send().await.unwrap();
        assert_eq!(r.status, 307, "the redirect is returned, not followed");
    }

    #[test]
    fn logged_urls_lose_their_query_and_credentials() {
        assert_eq!(
            redact("https://u:p@idp.example/x?secret=1#f"),
            "https://idp.example/x"
        );
    }
}
