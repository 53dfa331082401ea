//! A provider ready to use: its definition (secrets in memory, opened), its SAML material
//! parsed, its client-assertion key loaded. Built the same way from a file definition and from a
//! stored runtime definition.

use super::definition::{Definition, FileAccess, Plain, ProviderFile};
use super::saml;
use crate::outbound::Policy;
use crate::registry::Tenant;
use std::collections::HashMap;
use std::sync::Arc;

pub struct Provider {
    pub spec: Definition<Plain>,
    /// The tenant of a provider added at runtime (database); `None` for a file provider.
    pub owner: Option<String>,
    /// SAML: the SP keys and, when given as XML, the IdP metadata.
    pub saml: Option<saml::SamlMaterial>,
    /// OIDC private_key_jwt: the key that signs client assertions.
    pub assertion_signer: Option<crate::keys::Signer>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.spec.id)
            .field("kind", &self.spec.kind())
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Checks a definition and prepares what signing in with it needs. The messages name the
    /// definition's fields, never a path or an operating-system error.
    pub fn new(
        spec: Definition<Plain>,
        owner: Option<&str>,
        outbound: &Policy,
    ) -> Result<Self, String> {
        spec.check(outbound).map_err(|e| e.join("; "))?;
        let saml = match spec.saml() {
            Some(s) => Some(saml::SamlMaterial::load(s)?),
            None => None,
        };
        let assertion_signer = match spec.oidc().and_then(|o| {
            o.private_key
                .as_ref()
                .map(|k| (k, o.private_key_alg.as_deref()))
        }) {
            Some((pem, alg)) => {
                use rustls::pki_types::pem::PemObject;
                let der =
                    rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.expose().as_bytes())
                        .map_err(|_| {
                            "oidc.private_key is not a PKCS#8 PEM private key".to_string()
                        })?;
                let alg = crate::keys::Alg::parse(alg.unwrap_or("ES256"))
                    .ok_or("unsupported private_key_alg")?;
                Some(
                    crate::keys::Signer::from_pkcs8(alg, der.secret_pkcs8_der())
                        .map_err(|_| format!("oidc.private_key is not a usable {alg} key"))?,
                )
            }
            None => None,
        };
        Ok(Self {
            spec,
            owner: owner.map(str::to_string),
            saml,
            assertion_signer,
        })
    }

    pub fn id(&self) -> &str {
        &self.spec.id
    }

    pub fn client_secret(&self) -> Option<&str> {
        self.spec
            .oidc()
            .and_then(|o| o.client_secret.as_ref())
            .map(Plain::expose)
    }

    /// Where the upstream sends the browser back (OIDC redirect URI), per tenant.
    pub fn callback_url(&self, tenant: &Tenant) -> String {
        format!(
            "{}/federation/{}/callback",
            tenant.spec.issuer, self.spec.id
        )
    }
}

/// What loading the provider files found.
#[derive(Default)]
pub struct Loaded {
    pub providers: HashMap<String, Arc<Provider>>,
    pub errors: Vec<String>,
}

/// Reads `providers/*.toml`; a file that does not parse or check is reported and skipped.
/// Files the definitions name are read through `files` (confined to the allowed directories).
/// A file (or the directory) that cannot be read right now is not a deleted one: the provider
/// it defined in `previous` stays (and the error is reported).
pub fn load_files(
    dir: &std::path::Path,
    previous: &HashMap<String, Arc<Provider>>,
    files: &crate::config::FileRoots,
    public_base_url: &str,
    allow_inline_secret: bool,
    outbound: &Policy,
) -> Loaded {
    let mut loaded = Loaded::default();
    let unreadable_dir = |e: std::io::Error| Loaded {
        providers: previous.clone(),
        errors: vec![format!(
            "{}: {e} (every provider kept as it was)",
            dir.display()
        )],
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return loaded,
        Err(e) => return unreadable_dir(e),
    };
    let mut paths = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => paths.push(entry.path()),
            Err(e) => return unreadable_dir(e),
        }
    }
    paths.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    paths.sort();
    let access = FileAccess {
        read: &|p| files.read(p),
        env: &|k| std::env::var(k).ok(),
        allow_inline_secret,
    };
    for path in paths {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                if let Some(running) = previous.get(&stem) {
                    loaded.providers.insert(stem.clone(), running.clone());
                }
                loaded.errors.push(format!(
                    "{}: {e} (the running provider of that id is kept)",
                    path.display()
                ));
                continue;
            }
        };
        let text = text.replace(crate::config::tenant::PUBLIC_BASE_URL, public_base_url);
        let parsed = toml::from_str::<ProviderFile>(&text)
            .map_err(|e| e.to_string())
            .and_then(|mut file| {
                if file.id.is_empty() {
                    file.id = stem.clone();
                }
                if file.id != stem {
                    return Err(format!("id `{}` differs from the file name", file.id));
                }
                Provider::new(file.load(&access)?, None, outbound)
            });
        match parsed {
            Ok(p) => {
                loaded.providers.insert(p.spec.id.clone(), Arc::new(p));
            }
            Err(e) => loaded.errors.push(format!("{}: {e}", path.display())),
        }
    }
    loaded
}

/// The email domains the provider files `ids` claim, read from `dir` without resolving
/// anything else (the CLI's view of what runtime providers may not claim).
pub fn file_domains(dir: &std::path::Path, ids: &[String]) -> Vec<String> {
    ids.iter()
        .filter_map(|id| std::fs::read_to_string(dir.join(format!("{id}.toml"))).ok())
        .filter_map(|text| toml::from_str::<ProviderFile>(&text).ok())
        .flat_map(|f| f.domains)
        .collect()
}
