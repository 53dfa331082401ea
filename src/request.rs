//! What a handler knows about the request it serves, besides the request itself: the facts the
//! front door gathered ([`RequestContext`]) and the tenant it resolved ([`CurrentTenant`]). They
//! live below the endpoints and the front door alike, so that the endpoints never import the
//! front door that routes to them (docs/architecture.md).

use crate::error::OAuthError;
use crate::registry::Tenant;
use rustls::pki_types::CertificateDer;
use std::net::IpAddr;
use std::sync::Arc;

/// The listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// The main HTTPS listener; never requests a client certificate.
    Main,
    /// The mTLS listener (RFC 8705 `mtls_endpoint_aliases`).
    Mtls,
    /// Plain HTTP behind a TLS-terminating proxy.
    Plain,
}

/// Per-request facts every handler may need.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: Arc<str>,
    /// The client's address: the peer, or what a trusted proxy says in `X-Forwarded-For`.
    pub client_ip: Option<IpAddr>,
    /// The connection came over TLS (directly, or a trusted proxy says `X-Forwarded-Proto: https`).
    pub secure: bool,
    pub listener: Option<ListenerKind>,
    /// The request path after host routing (`/{tenant}/connect/token`).
    pub path: Arc<str>,
    /// The client certificate chain (end entity first): from the mTLS listener, or from a
    /// trusted proxy's certificate header. Only key possession (or the proxy) vouches for it.
    pub client_certs: Option<Arc<Vec<CertificateDer<'static>>>>,
}

impl RequestContext {
    /// The client's address as throttling buckets and log lines name it (`-` when unknown).
    pub fn client_address(&self) -> String {
        self.client_ip
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "-".into())
    }

    /// RFC 8705 §3.1: the base64url SHA-256 of the client certificate, `x5t#S256`.
    pub fn cert_thumbprint(&self) -> Option<String> {
        let der = self.client_certs.as_ref()?.first()?;
        Some(base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref()),
        ))
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestContext {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .unwrap_or_else(|| RequestContext {
                request_id: Arc::from("-"),
                client_ip: None,
                secure: false,
                listener: None,
                path: Arc::from(parts.uri.path()),
                client_certs: None,
            }))
    }
}

/// The tenant a request is for. Only the front door's tenant resolution creates it.
#[derive(Debug, Clone)]
pub struct CurrentTenant(pub Arc<Tenant>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for CurrentTenant {
    type Rejection = OAuthError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<CurrentTenant>()
            .cloned()
            .ok_or_else(|| OAuthError::not_found("unknown tenant"))
    }
}
