//! `[[trusted_issuers]]`, and the clients' `token_exchange` and `workload_identity` settings:
//! whose tokens this tenant takes in exchange for its own (RFC 8693, RFC 7523 §2.1).

use super::{
    ClientFile, ExchangeMode, GrantType, IssuerKeys, KeyPath, TenantFile, TokenExchangeClient,
    TrustedIssuer, WebhookGrant, WorkloadPolicy,
};
use crate::config::FileRoots;
use crate::keys::Alg;

pub(super) fn trusted_issuers(
    file: &TenantFile,
    files: &FileRoots,
    bad: &mut impl FnMut(KeyPath, String),
) -> Vec<TrustedIssuer> {
    let mut out: Vec<TrustedIssuer> = Vec::new();
    for (i, t) in file.trusted_issuers.iter().enumerate() {
        let k = KeyPath::root().key("trusted_issuers").index(i);
        if url::Url::parse(&t.issuer).is_err() {
            bad(k.key("issuer"), "an issuer is an absolute URL".into());
        }
        if out.iter().any(|o| o.issuer == t.issuer) {
            bad(
                k.key("issuer"),
                format!("issuer `{}` is trusted twice", t.issuer),
            );
        }
        let keys = match (&t.jwks, &t.jwks_file, &t.jwks_uri) {
            (Some(v), None, None) => IssuerKeys::Jwks(v.clone()),
            (None, Some(f), None) => IssuerKeys::Jwks(read_jwks(files, f, &k, bad)),
            (None, None, Some(u)) => {
                if !u.starts_with("https://") {
                    bad(k.key("jwks_uri"), "a JWK Set is fetched over https".into());
                }
                IssuerKeys::JwksUri(u.clone())
            }
            _ => {
                bad(
                    k.key("jwks"),
                    "give exactly one of jwks, jwks_file and jwks_uri".into(),
                );
                IssuerKeys::Jwks(serde_json::json!({ "keys": [] }))
            }
        };
        if let IssuerKeys::Jwks(v) = &keys {
            check_public_jwks(v, &k, bad);
        }
        let algorithms = match &t.algorithms {
            None => Alg::ALL.to_vec(),
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(j, a)| {
                    Alg::parse(a).or_else(|| {
                        bad(
                            k.key("algorithms").index(j),
                            format!("`{a}` is not one of RS256, PS256, ES256, EdDSA"),
                        );
                        None
                    })
                })
                .collect(),
        };
        if algorithms.is_empty() {
            bad(k.key("algorithms"), "list at least one algorithm".into());
        }
        if !(30..=86_400).contains(&t.max_token_age) {
            bad(
                k.key("max_token_age"),
                "must be between 30 and 86400 seconds".into(),
            );
        }
        if let Err(m) = check_template(&t.subject_template) {
            bad(k.key("subject_template"), m);
        }
        for (j, s) in t.scopes.iter().enumerate() {
            let known = file.api_scopes.iter().any(|a| &a.name == s)
                || file.identity_resources.iter().any(|r| &r.name == s);
            if !known {
                bad(
                    k.key("scopes").index(j),
                    format!("scope `{s}` is not defined in this tenant"),
                );
            }
        }
        out.push(TrustedIssuer {
            issuer: t.issuer.clone(),
            keys,
            algorithms,
            audiences: t.audiences.clone(),
            max_token_age: t.max_token_age,
            subject_template: t.subject_template.clone(),
            scopes: t.scopes.clone(),
        });
    }
    out
}

/// RFC 6749 §4.5: an extension grant type is an absolute URI; it may not shadow a grant this
/// server implements. The webhook is called over https (or plain http on a loopback address,
/// for a hook on the same machine).
pub(super) fn webhook_grants(
    file: &TenantFile,
    bad: &mut impl FnMut(KeyPath, String),
) -> Vec<WebhookGrant> {
    let mut out: Vec<WebhookGrant> = Vec::new();
    for (i, g) in file.extension_grants.iter().enumerate() {
        let k = KeyPath::root().key("extension_grants").index(i);
        let absolute = url::Url::parse(&g.grant_type).is_ok() && g.grant_type.len() <= 256;
        if !absolute || GrantType::parse(&g.grant_type).is_some() {
            bad(
                k.key("grant_type"),
                "an extension grant type is an absolute URI (RFC 6749 §4.5) that no built-in grant uses".into(),
            );
        }
        if out.iter().any(|o| o.grant_type == g.grant_type) {
            bad(k.key("grant_type"), "defined twice".into());
        }
        if let Err(m) = super::check_redirect_uri(&g.webhook_url, false) {
            bad(k.key("webhook_url"), m);
        }
        if !(1..=30).contains(&g.timeout) {
            bad(k.key("timeout"), "between 1 and 30 seconds".into());
        }
        out.push(WebhookGrant {
            grant_type: g.grant_type.clone(),
            webhook_url: g.webhook_url.clone(),
            timeout: g.timeout,
        });
    }
    out
}

fn read_jwks(
    files: &FileRoots,
    file: &str,
    k: &KeyPath,
    bad: &mut impl FnMut(KeyPath, String),
) -> serde_json::Value {
    let empty = serde_json::json!({ "keys": [] });
    match files.resolve(file) {
        Err(m) => {
            bad(k.key("jwks_file"), m);
            empty
        }
        Ok(path) => match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                bad(k.key("jwks_file"), format!("{}: {e}", path.display()));
                empty
            }),
            // Not yet written (e.g. by `portcullis dev-certs` on first start): no token of this
            // issuer verifies until it is, and the tenant still loads.
            Err(_) => {
                tracing::warn!(file = %path.display(), "trusted issuer JWK Set file not found; its tokens are refused until it exists");
                empty
            }
        },
    }
}

fn check_public_jwks(v: &serde_json::Value, k: &KeyPath, bad: &mut impl FnMut(KeyPath, String)) {
    match v.get("keys").and_then(|k| k.as_array()) {
        None => bad(k.key("jwks"), "a JWK Set is an object with `keys`".into()),
        Some(keys)
            if keys
                .iter()
                .any(|j| j.get("d").is_some() || j.get("k").is_some()) =>
        {
            bad(
                k.key("jwks"),
                "a trusted issuer's JWK Set holds public keys only".into(),
            )
        }
        Some(_) => {}
    }
}

/// A subject template: text with `{claim}` placeholders (claim names of letters, digits, `_`,
/// `-`, `.`), at least one of them, balanced braces.
pub fn check_template(t: &str) -> Result<(), String> {
    let mut rest = t;
    let mut placeholders = 0;
    while let Some(open) = rest.find('{') {
        let after = rest.get(open + 1..).unwrap_or_default();
        let Some(close) = after.find('}') else {
            return Err("a `{` without its `}`".into());
        };
        let name = after.get(..close).unwrap_or_default();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(format!("`{{{name}}}` is not a claim name"));
        }
        placeholders += 1;
        rest = after.get(close + 1..).unwrap_or_default();
    }
    if rest.contains('}') {
        return Err("a `}` without its `{`".into());
    }
    if placeholders == 0 {
        return Err("name at least one claim, e.g. `{sub}`".into());
    }
    Ok(())
}

pub(super) fn client_exchange(
    c: &ClientFile,
    ck: &KeyPath,
    grant_types: &[GrantType],
    bad: &mut impl FnMut(KeyPath, String),
) -> Option<TokenExchangeClient> {
    let uses = grant_types.contains(&GrantType::TokenExchange);
    let Some(t) = &c.token_exchange else {
        if uses && c.workload_identity.is_none() {
            bad(
                ck.key("token_exchange"),
                "a token exchange client says what it may do: token_exchange = { modes = [\"impersonation\"] }, [\"delegation\"] or both".into(),
            );
        }
        return None;
    };
    if !uses {
        bad(
            ck.key("token_exchange"),
            format!(
                "only for clients with the grant type `{}`",
                GrantType::TokenExchange.as_str()
            ),
        );
    }
    if c.public {
        bad(
            ck.key("grant_types"),
            "a public client cannot exchange tokens (it could not be held to what it exchanges)"
                .into(),
        );
    }
    let mut modes = Vec::new();
    for (j, m) in t.modes.iter().enumerate() {
        match m.as_str() {
            "impersonation" => modes.push(ExchangeMode::Impersonation),
            "delegation" => modes.push(ExchangeMode::Delegation),
            _ => bad(
                ck.key("token_exchange").key("modes").index(j),
                "`impersonation` or `delegation`".into(),
            ),
        }
    }
    if t.modes.is_empty() {
        bad(
            ck.key("token_exchange").key("modes"),
            "list `impersonation`, `delegation` or both".into(),
        );
    }
    Some(TokenExchangeClient {
        modes,
        subject_token_audiences: t.subject_token_audiences.clone(),
    })
}

pub(super) fn client_workload(
    c: &ClientFile,
    ck: &KeyPath,
    grant_types: &[GrantType],
    trusted_issuers: &[&str],
    bad: &mut impl FnMut(KeyPath, String),
) -> Option<WorkloadPolicy> {
    let w = c.workload_identity.as_ref()?;
    let k = ck.key("workload_identity");
    if !trusted_issuers.contains(&w.issuer.as_str()) {
        bad(
            k.key("issuer"),
            format!("`{}` is not one of this tenant's trusted_issuers", w.issuer),
        );
    }
    if grant_types
        .iter()
        .any(|g| !matches!(g, GrantType::TokenExchange | GrantType::JwtBearer))
    {
        bad(
            ck.key("grant_types"),
            "a workload client uses only the token exchange and JWT bearer grants (its token is its credential)".into(),
        );
    }
    if c.token_exchange.is_some() {
        bad(
            ck.key("token_exchange"),
            "a workload client exchanges only its own token: no token_exchange settings".into(),
        );
    }
    if w.subject.is_empty() || w.subject == "*" {
        bad(
            k.key("subject"),
            "name the subjects this client stands for (a `*` alone would trust every token of the issuer)".into(),
        );
    }
    if let Some(t) = &w.subject_template
        && let Err(m) = check_template(t)
    {
        bad(k.key("subject_template"), m);
    }
    Some(WorkloadPolicy {
        issuer: w.issuer.clone(),
        subject: w.subject.clone(),
        claims: w.claims.clone(),
        subject_template: w.subject_template.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::check_template;

    #[test]
    fn a_subject_template_names_claims_in_braces() {
        assert!(check_template("{sub}").is_ok());
        assert!(check_template("ci:{repository}:{ref}").is_ok());
        assert!(check_template("plain").is_err());
        assert!(check_template("{sub").is_err());
        assert!(check_template("sub}").is_err());
        assert!(check_template("{}").is_err());
        assert!(check_template("{a b}").is_err());
    }
}
