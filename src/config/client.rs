//! A client at run time: its file or database definition ([`ClientSpec`]) with the secrets
//! parsed, the scopes indexed and its own trust anchors read, ready for the token endpoint.

use crate::config::ClientSpec;
use crate::config::tenant::{AuthMethod, GrantType};
use crate::error::InternalError;
use crate::secrets::SecretHash;
use std::collections::HashSet;

/// A client as the token endpoint uses it: secrets parsed, scopes indexed.
#[derive(Debug)]
pub struct Client {
    pub spec: ClientSpec,
    pub secrets: Vec<(SecretHash, Option<i64>)>,
    /// Sealed secrets (base64 of the sealed bytes) and their expiry.
    pub sealed_secrets: Vec<(Vec<u8>, Option<i64>)>,
    /// The client's own tls_client_auth trust anchors, read when the client is loaded.
    pub tls_anchors: Vec<rustls::pki_types::CertificateDer<'static>>,
    pub scopes: HashSet<String>,
    /// For a client named by the URL of its metadata document: that URL's host.
    pub document_host: Option<String>,
}

impl Client {
    pub fn from_spec(spec: ClientSpec) -> Result<Self, InternalError> {
        let secrets = spec
            .secrets
            .iter()
            .filter(|s| s.sealed.is_none())
            .map(|s| {
                SecretHash::parse(&s.hash)
                    .map(|h| (h, s.expires_at))
                    .map_err(InternalError::Other)
            })
            .collect::<Result<_, _>>()?;
        let sealed_secrets = spec
            .secrets
            .iter()
            .filter_map(|s| {
                let b64 = s
                    .sealed
                    .as_deref()?
                    .strip_prefix(crate::config::tenant::SEALED_PREFIX)?;
                let bytes =
                    base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b64)
                        .ok()?;
                Some((bytes, s.expires_at))
            })
            .collect();
        let scopes = spec.scopes.iter().cloned().collect();
        let mut tls_anchors = Vec::new();
        for path in &spec.interactive.tls_trust_anchors {
            use rustls::pki_types::pem::PemObject;
            match rustls::pki_types::CertificateDer::pem_file_iter(path) {
                Ok(certs) => tls_anchors.extend(certs.flatten()),
                Err(e) => {
                    tracing::error!(client = %spec.client_id, file = %path.display(), error = %e, "cannot read a client's trust anchor")
                }
            }
        }
        Ok(Self {
            tls_anchors,
            spec,
            secrets,
            sealed_secrets,
            scopes,
            document_host: None,
        })
    }
    pub fn allows_grant(&self, g: GrantType) -> bool {
        self.spec.grant_types.contains(&g)
    }
    pub fn allows_auth_method(&self, m: AuthMethod) -> bool {
        self.spec.auth_methods.contains(&m)
    }
}
