//! Scopes and resources: `api_scopes`, `identity_resources` and `api_resources`, one namespace
//! for API scopes and identity resources.

use super::{
    ApiResource, ApiResourceFile, ApiScope, ApiScopeFile, IdentityResource, IdentityResourceFile,
    KeyPath, StoredSecret, TenantFile, valid_scope_token,
};
use crate::secrets::SecretHash;
use std::collections::HashSet;

/// The scope names a tenant defines, for checking its clients.
pub(super) struct Scopes<'a> {
    /// API scopes and identity resources.
    pub names: HashSet<&'a str>,
    pub identity: HashSet<&'a str>,
}

pub(super) fn check<'a>(file: &'a TenantFile, bad: &mut impl FnMut(KeyPath, String)) -> Scopes<'a> {
    let root = KeyPath::root();
    let mut scope_names: HashSet<&str> = HashSet::new();
    for (i, s) in file.api_scopes.iter().enumerate() {
        if !valid_scope_token(&s.name) {
            bad(
                root.key("api_scopes").index(i).key("name"),
                format!("`{}` is not a valid scope token (RFC 6749 §3.3)", s.name),
            );
        }
        if !scope_names.insert(&s.name) {
            bad(
                root.key("api_scopes").index(i).key("name"),
                format!("scope `{}` is defined twice", s.name),
            );
        }
    }
    let mut identity_scopes: HashSet<&str> = HashSet::new();
    for (i, r) in file.identity_resources.iter().enumerate() {
        if !valid_scope_token(&r.name) {
            bad(
                root.key("identity_resources").index(i).key("name"),
                format!("`{}` is not a valid scope token", r.name),
            );
        }
        if !scope_names.insert(&r.name) {
            bad(
                root.key("identity_resources").index(i).key("name"),
                format!("scope `{}` is defined twice", r.name),
            );
        }
        identity_scopes.insert(&r.name);
    }
    check_api_resources(file, bad);
    Scopes {
        names: scope_names,
        identity: identity_scopes,
    }
}

fn check_api_resources(file: &TenantFile, bad: &mut impl FnMut(KeyPath, String)) {
    let mut resource_names = HashSet::new();
    for (i, r) in file.api_resources.iter().enumerate() {
        let rk = KeyPath::root().key("api_resources").index(i);
        if !resource_names.insert(&r.name) {
            bad(
                rk.key("name"),
                format!("API resource `{}` is defined twice", r.name),
            );
        }
        // RFC 8707 §2: a resource indicator is an absolute URI without a fragment.
        if !r.name.contains(':') || r.name.contains('#') {
            bad(
                rk.key("name"),
                format!(
                    "`{}` must be an absolute URI without fragment (RFC 8707 §2)",
                    r.name
                ),
            );
        }
        if let Some(jwks) = &r.jwks
            && (jwks.get("keys").and_then(|k| k.as_array()).is_none()
                || jwks.to_string().contains("\"d\""))
        {
            bad(
                rk.key("jwks"),
                "a public JWK Set (an object with `keys`, no private members)".into(),
            );
        }
        for (j, sec) in r.secrets.iter().enumerate() {
            match &sec.hash {
                Some(h) => {
                    if let Err(m) = SecretHash::parse(h) {
                        bad(rk.key("secrets").index(j).key("hash"), m);
                    }
                }
                None => bad(
                    rk.key("secrets").index(j).key("hash"),
                    "an API's secrets are hashes".into(),
                ),
            }
        }
        for (j, s) in r.scopes.iter().enumerate() {
            if !file.api_scopes.iter().any(|a| &a.name == s) {
                bad(
                    rk.key("scopes").index(j),
                    format!("scope `{s}` is not defined in api_scopes"),
                );
            }
        }
    }
}

pub(super) fn api_scopes(scopes: Vec<ApiScopeFile>) -> Vec<ApiScope> {
    scopes
        .into_iter()
        .map(|s| ApiScope {
            name: s.name,
            display_name: s.display_name,
            description: s.description,
        })
        .collect()
}

pub(super) fn api_resources(resources: Vec<ApiResourceFile>) -> Vec<ApiResource> {
    resources
        .into_iter()
        .map(|r| ApiResource {
            name: r.name,
            display_name: r.display_name,
            scopes: r.scopes,
            require_resource_indicator: r.require_resource_indicator,
            jwks: r.jwks,
            secrets: r
                .secrets
                .into_iter()
                .filter_map(|sec| {
                    SecretHash::parse(sec.hash.as_deref()?)
                        .ok()
                        .map(|h| StoredSecret {
                            hash: h.to_stored(),
                            sealed: None,
                            description: sec.description,
                            expires_at: sec.expires_at,
                        })
                })
                .collect(),
        })
        .collect()
}

pub(super) fn identity_resources(resources: Vec<IdentityResourceFile>) -> Vec<IdentityResource> {
    resources
        .into_iter()
        .map(|r| IdentityResource {
            name: r.name,
            display_name: r.display_name,
            claims: r.claims,
        })
        .collect()
}
