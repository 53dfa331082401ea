//! A tenant's names: its slug, issuer, mTLS base URL and host names.

use super::{KeyPath, RESERVED_SLUGS, TenantDefaults, TenantFile, valid_slug};
use std::path::Path;

pub(super) struct Names {
    pub issuer: String,
    pub mtls_base_url: String,
    pub hosts: Vec<String>,
}

pub(super) fn resolve(
    path: &Path,
    file: &TenantFile,
    defaults: &TenantDefaults<'_>,
    bad: &mut impl FnMut(KeyPath, String),
) -> Names {
    let root = KeyPath::root();
    // Slug: the file stem, a path segment and a database key.
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if file.slug != stem {
        bad(
            root.key("slug"),
            format!("slug `{}` must equal the file name `{stem}`", file.slug),
        );
    }
    if !valid_slug(&file.slug) || RESERVED_SLUGS.contains(&file.slug.as_str()) {
        bad(root.key("slug"), "a slug is 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit, and not reserved".into());
    }

    let issuer = file
        .issuer
        .clone()
        .unwrap_or_else(|| format!("{}/{}", defaults.public_base_url, file.slug));
    // OIDC Discovery §3 / RFC 8414 §2: https, no query or fragment.
    if !issuer.starts_with("https://") || issuer.contains(['?', '#']) || issuer.ends_with('/') {
        bad(
            root.key("issuer"),
            "the issuer must be an https URL without query, fragment or trailing slash".into(),
        );
    }
    let mtls_base_url = file
        .tokens
        .mtls_base_url
        .clone()
        .unwrap_or_else(|| format!("{}/{}", defaults.mtls_base_url, file.slug));

    let mut hosts = Vec::new();
    for (i, h) in file.hosts.iter().enumerate() {
        let h = h.to_ascii_lowercase();
        if h.is_empty()
            || !h
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            bad(
                root.key("hosts").index(i),
                format!("`{h}` is not a host name"),
            );
        }
        hosts.push(h);
    }
    Names {
        issuer,
        mtls_base_url,
        hosts,
    }
}
