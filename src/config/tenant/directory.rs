//! A directory of tenant files, as the loader (`registry::sync`) and `portcullis check-config`
//! read it: which files it holds, and host names claimed across them.

use super::{ClientSpec, TenantDefaults, TenantSpec, resolve};
use crate::config::{ConfigError, KeyPath, locate};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The `*.toml` entries of a directory, sorted. A directory that does not exist has none; one
/// that cannot be read is an error, never an empty list (which would read as every file deleted).
pub fn toml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut v = Vec::new();
    for entry in entries {
        let path = entry?.path();
        // Whatever its type: an entry that is not a readable file is reported when read.
        if path.extension().is_some_and(|x| x == "toml") {
            v.push(path);
        }
    }
    v.sort();
    Ok(v)
}

/// One tenant file of a directory, resolved ([`resolve`]) and checked against the host names
/// other tenants hold: those claimed by files read before it (`claimed`, host → slug, to which
/// its own are added) and those `served_by` reports (the running tenants, if any).
pub fn resolve_in_directory(
    path: &Path,
    text: &str,
    defaults: &TenantDefaults<'_>,
    claimed: &mut HashMap<String, String>,
    served_by: &dyn Fn(&str) -> Option<String>,
) -> Result<(TenantSpec, Vec<ClientSpec>), Vec<ConfigError>> {
    let (spec, clients) = resolve(path, text, defaults)?;
    for (i, host) in spec.hosts.iter().enumerate() {
        let owner = claimed
            .get(host)
            .cloned()
            .or_else(|| served_by(host))
            .filter(|owner| *owner != spec.slug);
        if let Some(owner) = owner {
            let key = KeyPath::root().key("hosts").index(i);
            return Err(vec![ConfigError {
                file: path.to_path_buf(),
                line: locate(text, &key),
                key: key.to_string(),
                message: format!("host `{host}` already serves tenant `{owner}`"),
            }]);
        }
    }
    for host in &spec.hosts {
        claimed.insert(host.clone(), spec.slug.clone());
    }
    Ok((spec, clients))
}
