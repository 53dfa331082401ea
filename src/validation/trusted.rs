//! JWTs from other security domains: the tenant's `[[trusted_issuers]]`. They are subject and
//! actor tokens of a token exchange (RFC 8693 §2.1), assertions of the JWT bearer grant
//! (RFC 7523 §2.1) and the credentials of workload clients. Keys come inline or through the
//! document cache (an unknown `kid` refetches the set, at most once a minute).

use crate::config::tenant::{IssuerKeys, TrustedIssuer, WorkloadPolicy};
use crate::registry::Tenant;
use crate::state::AppState;
use crate::tokens::jws;
use serde_json::{Map, Value};

/// Clock skew allowed on another issuer's times.
const SKEW: i64 = 60;
/// The longest external token read.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// A verified token of a trusted issuer.
#[derive(Debug)]
pub struct External<'t> {
    pub issuer: &'t TrustedIssuer,
    pub claims: Map<String, Value>,
}

impl External<'_> {
    pub fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }
}

/// Why another issuer's token was refused; `Unavailable` when its keys could not be fetched
/// (the token may be fine: the caller may try again).
#[derive(Debug)]
pub enum Refused {
    Invalid(&'static str),
    Unavailable(String),
}

/// Whose `aud` the token must carry.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// The issuer's accepted audiences (the tenant's issuer by default): subject and actor
    /// tokens, workload tokens.
    IssuerAudiences,
    /// RFC 7523 §3 item 3: this server, by its issuer or its token endpoint URL.
    ThisServer,
}

/// The `iss` of a JWT, unverified (to choose between this tenant and another issuer).
pub fn unverified_issuer(token: &str) -> Option<String> {
    let (_, claims) = jws::decode_unverified(token).ok()?;
    claims
        .get("iss")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The tenant's trusted issuer named `iss`.
pub fn issuer<'t>(tenant: &'t Tenant, iss: &str) -> Option<&'t TrustedIssuer> {
    tenant.spec.trusted_issuers.iter().find(|t| t.issuer == iss)
}

/// Verifies `token` as a JWT of one of the tenant's trusted issuers: signature with an allowed
/// algorithm, `iss`, `aud`, `exp`, `nbf`, and an `iat` no older than the issuer allows.
pub async fn verify<'t>(
    state: &AppState,
    tenant: &'t Tenant,
    token: &str,
    expect: Expect,
) -> Result<External<'t>, Refused> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Refused::Invalid("the token is too long"));
    }
    let iss = unverified_issuer(token).ok_or(Refused::Invalid("the token is not a JWT"))?;
    let issuer =
        issuer(tenant, &iss).ok_or(Refused::Invalid("the token's issuer is not trusted"))?;
    let claims = verify_signature(state, issuer, token).await?;
    check_claims(tenant, issuer, &claims, expect, state.now())?;
    Ok(External { issuer, claims })
}

pub async fn verify_signature(
    state: &AppState,
    issuer: &TrustedIssuer,
    token: &str,
) -> Result<Map<String, Value>, Refused> {
    let bad = |e: jws::JwsError| {
        Refused::Invalid(match e {
            jws::JwsError::Algorithm => "the token's algorithm is not accepted from its issuer",
            jws::JwsError::NoKey => "the token is signed with a key its issuer does not publish",
            _ => "the token's signature does not verify",
        })
    };
    let uri = match &issuer.keys {
        IssuerKeys::Jwks(jwks) => {
            return jws::verify(token, jwks, &issuer.algorithms)
                .map(|v| v.claims)
                .map_err(bad);
        }
        IssuerKeys::JwksUri(uri) => uri,
    };
    let unavailable = |e: crate::outbound::OutboundError| {
        tracing::warn!(target: "security", event = "trusted_issuer_keys_unavailable", issuer = %issuer.issuer, error = %e);
        Refused::Unavailable(format!(
            "the keys of {} could not be fetched",
            issuer.issuer
        ))
    };
    let now = state.now();
    let doc = state.documents.get(uri, now).await.map_err(unavailable)?;
    let jwks = doc
        .json
        .clone()
        .ok_or(Refused::Invalid("the issuer's JWK Set is not JSON"))?;
    match jws::verify(token, &jwks, &issuer.algorithms) {
        Ok(v) => return Ok(v.claims),
        Err(jws::JwsError::NoKey) => {}
        Err(e) => return Err(bad(e)),
    }
    // The issuer may have rotated: one refetch (the cache allows one a minute per URL).
    let Some(fresh) = state
        .documents
        .refetch(uri, now)
        .await
        .map_err(unavailable)?
    else {
        return Err(bad(jws::JwsError::NoKey));
    };
    let jwks = fresh
        .json
        .clone()
        .ok_or(Refused::Invalid("the issuer's JWK Set is not JSON"))?;
    jws::verify(token, &jwks, &issuer.algorithms)
        .map(|v| v.claims)
        .map_err(bad)
}

fn check_claims(
    tenant: &Tenant,
    issuer: &TrustedIssuer,
    claims: &Map<String, Value>,
    expect: Expect,
    now: i64,
) -> Result<(), Refused> {
    let num = |k: &str| claims.get(k).and_then(Value::as_i64);
    // RFC 7519 §4.1.4 / RFC 7523 §3 item 4: an expiry is required, and it has not passed.
    let exp = num("exp").ok_or(Refused::Invalid("the token has no exp"))?;
    if exp + SKEW <= now {
        return Err(Refused::Invalid("the token has expired"));
    }
    if num("nbf").is_some_and(|nbf| nbf > now + SKEW) {
        return Err(Refused::Invalid("the token is not valid yet"));
    }
    let iat = num("iat").ok_or(Refused::Invalid("the token has no iat"))?;
    if iat > now + SKEW {
        return Err(Refused::Invalid("the token was issued in the future"));
    }
    if now - iat > issuer.max_token_age || exp - now > issuer.max_token_age {
        return Err(Refused::Invalid(
            "the token is older or lives longer than its issuer's max_token_age",
        ));
    }
    let acceptable = |a: &str| match expect {
        Expect::IssuerAudiences if issuer.audiences.is_empty() => a == tenant.spec.issuer,
        Expect::IssuerAudiences => issuer.audiences.iter().any(|x| x == a),
        Expect::ThisServer => a == tenant.spec.issuer || a == tenant.token_endpoint,
    };
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => acceptable(a),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(acceptable),
        _ => false,
    };
    if !aud_ok {
        return Err(Refused::Invalid("the token is meant for another audience"));
    }
    if claims
        .get("sub")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(Refused::Invalid("the token has no sub"));
    }
    Ok(())
}

/// Whether a workload token satisfies its client's trust policy: the issuer, `sub` and every
/// named claim (each a pattern where `*` stands for any run of characters).
pub fn policy_matches(policy: &WorkloadPolicy, token: &External<'_>) -> Result<(), &'static str> {
    if token.issuer.issuer != policy.issuer {
        return Err("the token is not from the client's workload issuer");
    }
    if !token
        .str_claim("sub")
        .is_some_and(|s| glob(&policy.subject, s))
    {
        return Err("the token's sub does not match the client's trust policy");
    }
    for (name, pattern) in &policy.claims {
        if !token.str_claim(name).is_some_and(|v| glob(pattern, v)) {
            return Err("a claim of the token does not match the client's trust policy");
        }
    }
    Ok(())
}

/// `pattern` matches `value` exactly, where each `*` matches any run of characters (none
/// included). No other character is special.
pub fn glob(pattern: &str, value: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut rest) = value.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: the whole value was the prefix.
        return rest.is_empty();
    };
    for p in middle {
        match rest.find(p) {
            Some(i) => rest = rest.get(i + p.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Fills `{claim}` placeholders of a (checked) template from the token's claims: strings as
/// they are, numbers and booleans in JSON; a missing or structured claim is a refusal.
pub fn render(template: &str, claims: &Map<String, Value>) -> Result<String, &'static str> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(rest.get(..open).unwrap_or_default());
        let after = rest.get(open + 1..).unwrap_or_default();
        let close = after.find('}').ok_or("malformed subject template")?;
        let name = after.get(..close).unwrap_or_default();
        match claims.get(name) {
            Some(Value::String(s)) => out.push_str(s),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => out.push_str(&v.to_string()),
            _ => return Err("the token lacks a claim the subject is made of"),
        }
        rest = after.get(close + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    if out.is_empty() || out.len() > 255 {
        return Err("the subject made from the token is empty or too long");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glob_star_matches_any_run_and_nothing_else_is_special() {
        let p = "repo:acme/app:ref:refs/heads/*";
        assert!(glob(p, "repo:acme/app:ref:refs/heads/main"));
        assert!(glob(p, "repo:acme/app:ref:refs/heads/"));
        assert!(!glob(p, "repo:acme/app:ref:refs/tags/v1"));
        assert!(!glob(p, "repo:acme/app2:ref:refs/heads/main"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
        assert!(!glob("exact", "inexact"));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(glob("a*b*c", "abc"));
        assert!(!glob("a*b*c", "acb"));
        assert!(glob("*", ""));
        assert!(!glob("ab*ba", "aba"));
        assert!(glob("a.b?", "a.b?"));
        assert!(!glob("a.b", "axb"));
    }

    mod robust {
        use super::*;
        use crate::robustness_tests::config;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(config(512))]

            /// Any pattern against any value: an answer, never a panic; a pattern without `*`
            /// matches only itself, and `*` alone everything.
            #[test]
            fn robust_globs_answer_for_any_pattern_and_value(p in "(?s).{0,24}", v in "(?s).{0,24}") {
                let m = glob(&p, &v);
                if !p.contains('*') {
                    prop_assert_eq!(m, p == v);
                }
                prop_assert!(glob("*", &v));
                let (prefix, suffix) = (format!("{v}*"), format!("*{v}"));
                prop_assert!(glob(&prefix, &v) && glob(&suffix, &v));
            }

            /// Any template over any claims: a subject or a refusal, never a panic.
            #[test]
            fn robust_templates_render_or_refuse(t in "(?s).{0,40}", sub in "(?s).{0,300}") {
                let mut claims = Map::new();
                claims.insert("sub".into(), sub.into());
                if let Ok(s) = render(&t, &claims) {
                    prop_assert!(!s.is_empty() && s.len() <= 255);
                }
            }
        }
    }

    #[test]
    fn a_subject_is_rendered_from_string_and_number_claims_only() {
        let claims: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "sub": "repo:acme/app", "run": 7, "groups": ["a"]
        }))
        .unwrap();
        assert_eq!(
            render("ci:{sub}#{run}", &claims).unwrap(),
            "ci:repo:acme/app#7"
        );
        assert!(render("{groups}", &claims).is_err());
        assert!(render("{missing}", &claims).is_err());
    }
}
