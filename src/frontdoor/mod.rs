//! The front door: listeners (own accept loop over tokio-rustls), TLS, tenant resolution,
//! cross-cutting middleware and the router.

pub mod connections;
pub mod listener;
pub mod middleware;
pub mod router;
pub mod tenant;
pub mod tls;

use crate::request::ListenerKind;
use rustls::pki_types::CertificateDer;
use std::net::SocketAddr;
use std::sync::Arc;

/// Facts about the connection a request came on, attached to every request as an extension.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub remote: SocketAddr,
    pub listener: ListenerKind,
    /// The certificate chain the client presented on the mTLS listener (end entity first). Only
    /// key possession has been checked; whether it authenticates a client is decided later.
    pub peer_certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
}
