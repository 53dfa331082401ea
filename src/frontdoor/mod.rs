//! The front door: listeners (own accept loop over tokio-rustls), TLS, tenant resolution,
//! cross-cutting middleware and the router.

pub mod connections;
pub mod listener;
pub mod middleware;
pub mod router;
pub mod tenant;
pub mod tls;

use rustls::pki_types::CertificateDer;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// The main HTTPS listener; never requests a client certificate.
    Main,
    /// The mTLS listener (RFC 8705 `mtls_endpoint_aliases`).
    Mtls,
    /// Plain HTTP behind a TLS-terminating proxy.
    Plain,
}

/// Facts about the connection a request came on, attached to every request as an extension.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub remote: SocketAddr,
    pub listener: ListenerKind,
    /// The certificate chain the client presented on the mTLS listener (end entity first). Only
    /// key possession has been checked; whether it authenticates a client is decided later.
    pub peer_certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
}
