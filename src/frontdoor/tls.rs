//! rustls server configuration: aws-lc-rs provider, TLS 1.2 and 1.3, certificates chosen by SNI,
//! and on the mTLS listener a client-certificate request that proves key possession only.

use crate::config::ServerConfig;
use crate::registry::Tenant;
use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Installs aws-lc-rs as the process default (reqwest and sqlx pick it up). Idempotent.
pub fn install_default_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate found", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| format!("{}: {e}", cert.display()))
}

/// Picks the certificate by SNI: a tenant's own for its host names, else the default.
#[derive(Debug)]
pub struct SniResolver {
    default: ArcSwap<CertifiedKey>,
    by_name: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
}

impl SniResolver {
    pub fn new(default: CertifiedKey) -> Self {
        Self {
            default: ArcSwap::from_pointee(default),
            by_name: ArcSwap::from_pointee(HashMap::new()),
        }
    }

    /// Loads each tenant's certificate for its host names; a tenant whose files do not load keeps
    /// being served with the default certificate (and the problem is logged).
    pub fn set_tenant_certs(&self, config: &ServerConfig, tenants: &[Arc<Tenant>]) {
        let mut map = HashMap::new();
        for t in tenants {
            let Some(tls) = &t.spec.tls else { continue };
            match load_certified_key(&config.path(&tls.cert), &config.path(&tls.key)) {
                Ok(ck) => {
                    let ck = Arc::new(ck);
                    for h in &t.spec.hosts {
                        map.insert(h.clone(), ck.clone());
                    }
                }
                Err(e) => {
                    tracing::error!(tenant = t.slug(), error = %e, "tenant certificate not loaded; using the default")
                }
            }
        }
        self.by_name.store(Arc::new(map));
    }

    pub fn set_default(&self, ck: CertifiedKey) {
        self.default.store(Arc::new(ck));
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name() {
            let by_name = self.by_name.load();
            if !by_name.is_empty() {
                let lower = name.to_ascii_lowercase();
                if let Some(ck) = by_name.get(&lower) {
                    return Some(ck.clone());
                }
            }
        }
        Some(self.default.load_full())
    }
}

/// Accepts any client certificate whose handshake signature verifies (key possession). Whether
/// the certificate is acceptable for a client is decided by client authentication, per client
/// (RFC 8705 §2), never here.
#[derive(Debug)]
struct PossessionOnly {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for PossessionOnly {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The rustls configuration of a listener. `request_client_cert` only on the mTLS listener, so
/// browsers on the main listener are never prompted for a certificate.
pub fn server_config(
    resolver: Arc<SniResolver>,
    request_client_cert: bool,
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = if request_client_cert {
        builder.with_client_cert_verifier(Arc::new(PossessionOnly { provider }))
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
