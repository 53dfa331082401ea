//! `[tls]` and `[mtls]`: the tenant's own server certificate and the CAs its clients'
//! certificates chain to.

use super::{KeyPath, TenantFile, TenantTls, resolve_files};
use crate::config::FileRoots;
use std::path::PathBuf;

pub(super) fn mtls_trust_anchors(
    file: &TenantFile,
    files: &FileRoots,
    bad: &mut impl FnMut(KeyPath, String),
) -> Vec<PathBuf> {
    let root = KeyPath::root();
    resolve_files(
        files,
        &root.key("mtls").key("trust_anchors"),
        &file.mtls.trust_anchors,
        bad,
    )
}

pub(super) fn tenant_tls(
    file: &TenantFile,
    files: &FileRoots,
    bad: &mut impl FnMut(KeyPath, String),
) -> Option<TenantTls> {
    let root = KeyPath::root();
    file.tls.as_ref().map(|t| {
        let tk = root.key("tls");
        let mut path = |key: &str, p: String| match files.resolve(&p) {
            Ok(full) => full.display().to_string(),
            Err(m) => {
                bad(tk.key(key), m);
                p
            }
        };
        TenantTls {
            cert: path("cert", t.cert.clone()),
            key: path("key", t.key.clone()),
        }
    })
}
