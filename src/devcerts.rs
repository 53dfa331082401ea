//! Development certificates: a local CA, a server certificate for localhost, and a demo client
//! certificate for mTLS. Never for production; the files are git-ignored.

use crate::keys::crypto::write_private;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use std::path::Path;

pub const FILES: [&str; 6] = [
    "ca.pem",
    "ca-key.pem",
    "server.pem",
    "server-key.pem",
    "demo-client.pem",
    "demo-client-key.pem",
];

/// Subject CN of the demo client certificate.
pub const DEMO_CLIENT_CN: &str = "acme-mtls";

/// A certificate authority that can issue leaf certificates (also used by tests).
pub struct DevCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A PEM certificate and its PEM private key.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

fn err(e: rcgen::Error) -> String {
    format!("certificate generation failed: {e}")
}

impl DevCa {
    pub fn new(common_name: &str) -> Result<Self, String> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        dn.push(DnType::OrganizationName, "Portcullis development");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().map_err(err)?;
        Ok(Self {
            issuer: CertifiedIssuer::self_signed(params, key).map_err(err)?,
        })
    }

    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    pub fn der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server(&self, names: &[&str]) -> Result<Issued, String> {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .map_err(err)?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("localhost"),
        );
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params)
    }

    /// A client certificate with subject CN `cn` (and optional SANs).
    pub fn client(&self, cn: &str, sans: Vec<SanType>) -> Result<Issued, String> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Portcullis development");
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params)
    }

    pub fn issue(&self, params: CertificateParams) -> Result<Issued, String> {
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(err)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        })
    }
}

/// Writes the development CA, server and demo client certificates into `dir` unless all of them
/// are already there (or `force`). Returns true if it wrote new files.
pub fn ensure(dir: &Path, force: bool) -> Result<bool, String> {
    if !force && FILES.iter().all(|f| dir.join(f).is_file()) {
        return Ok(false);
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let ca = DevCa::new("Portcullis Development CA")?;
    let server = ca.server(&["localhost", "127.0.0.1", "::1"])?;
    let client = ca.client(DEMO_CLIENT_CN, Vec::new())?;
    let write = |name: &str, text: &str, private: bool| -> Result<(), String> {
        let path = dir.join(name);
        let r = if private {
            write_private(&path, text.as_bytes())
        } else {
            std::fs::write(&path, text)
        };
        r.map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write("ca.pem", &ca.cert_pem(), false)?;
    write("ca-key.pem", &ca.key_pem(), true)?;
    write("server.pem", &server.cert_pem, false)?;
    write("server-key.pem", &server.key_pem, true)?;
    write("demo-client.pem", &client.cert_pem, false)?;
    write("demo-client-key.pem", &client.key_pem, true)?;
    ensure_demo_jwt_key(dir, true)?;
    ensure_demo_workload_key(dir, true)?;
    Ok(true)
}

/// The demo client `acme-jwt` (private_key_jwt): its private key `acme-jwt-key.pem` (ES256,
/// PKCS#8) and its public JWK Set `acme-jwt.jwks.json`, which the tenant file reads. Returns
/// true if it wrote new files.
pub fn ensure_demo_jwt_key(dir: &Path, force: bool) -> Result<bool, String> {
    ensure_es256_key(dir, "acme-jwt-key.pem", "acme-jwt.jwks.json", force)
}

/// The demo workload: the signing key of a stand-in CI platform that issues OIDC tokens to its
/// jobs, `demo-workload-key.pem` (ES256, PKCS#8), and its public JWK Set
/// `demo-workload.jwks.json`. `portcullis workload-token` signs with the key. Returns true if it
/// wrote new files.
pub fn ensure_demo_workload_key(dir: &Path, force: bool) -> Result<bool, String> {
    ensure_es256_key(
        dir,
        "demo-workload-key.pem",
        "demo-workload.jwks.json",
        force,
    )
}

/// A new ES256 key written as a PKCS#8 PEM `key_name` (readable only by its owner) and its
/// public JWK Set `{"keys":[jwk]}` as `jwks_name`; the JWK's `kid` is the RFC 7638 thumbprint,
/// the same `kid` the key's signatures carry. Nothing is written if both files exist, unless
/// `force`.
fn ensure_es256_key(
    dir: &Path,
    key_name: &str,
    jwks_name: &str,
    force: bool,
) -> Result<bool, String> {
    let (key_path, jwks_path) = (dir.join(key_name), dir.join(jwks_name));
    if !force && key_path.is_file() && jwks_path.is_file() {
        return Ok(false);
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let der = crate::keys::signer::generate_pkcs8(crate::keys::Alg::ES256, 2048)
        .map_err(|e| e.to_string())?;
    let signer = crate::keys::Signer::from_pkcs8(crate::keys::Alg::ES256, &der)
        .map_err(|e| e.to_string())?;
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
    // RFC 7468 §10: PKCS#8 private key, base64 in lines of 64 characters.
    let mut text = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).unwrap_or_default());
        text.push('\n');
    }
    text.push_str("-----END PRIVATE KEY-----\n");
    write_private(&key_path, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", key_path.display()))?;
    let jwks = serde_json::json!({ "keys": [signer.public_jwk()] });
    std::fs::write(&jwks_path, format!("{jwks:#}\n"))
        .map_err(|e| format!("cannot write {}: {e}", jwks_path.display()))?;
    Ok(true)
}

/// A development HTTPS server for `router` on `addr` (port 0: any), with a certificate from
/// `ca` for `names`: the stand-in upstreams of the tests and benchmark tools (identity
/// providers, JWK Sets, logout receivers), which the outbound guard only reaches over https.
/// Serves until the returned task is aborted.
pub async fn serve_https(
    ca: &DevCa,
    names: &[&str],
    addr: std::net::SocketAddr,
    router: axum::Router,
) -> Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let issued = ca.server(names)?;
    let chain = vec![
        CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).map_err(|e| e.to_string())?,
    ];
    let key =
        PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).map_err(|e| e.to_string())?;
    let mut config = rustls::ServerConfig::builder_with_provider(crate::frontdoor::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| e.to_string())?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    Ok((bound, task))
}
