//! `[tokens]`: signing algorithms, formats and lifetimes.

use super::{KeyPath, TokenFormat, TokenPolicy, TokensFile};
use crate::keys::Alg;

/// The algorithms and default format `[tokens]` names, checked.
pub(super) struct Algorithms {
    pub signing: Vec<Alg>,
    pub access_token: Alg,
    pub id_token: Alg,
    pub access_token_format: TokenFormat,
}

pub(super) fn format_of(v: &str) -> Option<TokenFormat> {
    match v {
        "jwt" => Some(TokenFormat::Jwt),
        "reference" => Some(TokenFormat::Reference),
        _ => None,
    }
}

/// The signing algorithms, the token formats and the access token lifetime.
pub(super) fn resolve_algorithms(
    t: &TokensFile,
    bad: &mut impl FnMut(KeyPath, String),
) -> Algorithms {
    let tk = KeyPath::root().key("tokens");
    let mut signing_algorithms = Vec::new();
    for (i, a) in t.signing_algorithms.iter().enumerate() {
        match Alg::parse(a) {
            Some(alg) if !signing_algorithms.contains(&alg) => signing_algorithms.push(alg),
            Some(_) => bad(
                tk.key("signing_algorithms").index(i),
                format!("`{a}` is listed twice"),
            ),
            None => bad(
                tk.key("signing_algorithms").index(i),
                format!("`{a}` is not one of RS256, PS256, ES256, EdDSA"),
            ),
        }
    }
    if !signing_algorithms.contains(&Alg::RS256) {
        bad(
            tk.key("signing_algorithms"),
            "RS256 is required (OpenID Connect Core §15.1)".into(),
        );
    }
    let mut pick_alg = |key: &str, v: &str| -> Alg {
        match Alg::parse(v) {
            Some(a) if signing_algorithms.contains(&a) => a,
            Some(_) => {
                bad(
                    tk.key(key),
                    format!("`{v}` is not in tokens.signing_algorithms"),
                );
                Alg::RS256
            }
            None => {
                bad(
                    tk.key(key),
                    format!("`{v}` is not one of RS256, PS256, ES256, EdDSA"),
                );
                Alg::RS256
            }
        }
    };
    let access_token = pick_alg("access_token_algorithm", &t.access_token_algorithm);
    let id_token = pick_alg("id_token_algorithm", &t.id_token_algorithm);
    let access_token_format = format_of(&t.access_token_format).unwrap_or_else(|| {
        bad(
            tk.key("access_token_format"),
            "must be `jwt` or `reference`".into(),
        );
        TokenFormat::Jwt
    });
    if !(1..=86_400).contains(&t.access_token_lifetime) {
        bad(
            tk.key("access_token_lifetime"),
            "must be between 1 and 86400 seconds".into(),
        );
    }
    Algorithms {
        signing: signing_algorithms,
        access_token,
        id_token,
        access_token_format,
    }
}

/// The lifetimes of codes, ID tokens and refresh tokens.
pub(super) fn check_lifetimes(t: &TokensFile, bad: &mut impl FnMut(KeyPath, String)) {
    let tk = KeyPath::root().key("tokens");
    if !(1..=600).contains(&t.authorization_code_lifetime) {
        bad(
            tk.key("authorization_code_lifetime"),
            "must be between 1 and 600 seconds (RFC 6749 §4.1.2)".into(),
        );
    }
    if !(1..=86_400).contains(&t.id_token_lifetime) {
        bad(
            tk.key("id_token_lifetime"),
            "must be between 1 and 86400 seconds".into(),
        );
    }
    if t.refresh_token_sliding_lifetime < 1
        || t.refresh_token_absolute_lifetime < t.refresh_token_sliding_lifetime
    {
        bad(
            tk.key("refresh_token_absolute_lifetime"),
            "refresh token lifetimes must be positive, the absolute one at least the sliding one"
                .into(),
        );
    }
}

pub(super) fn policy(t: &TokensFile, a: Algorithms) -> TokenPolicy {
    TokenPolicy {
        access_token_lifetime: t.access_token_lifetime,
        access_token_algorithm: a.access_token,
        id_token_algorithm: a.id_token,
        signing_algorithms: a.signing,
        access_token_format: a.access_token_format,
        authorization_code_lifetime: t.authorization_code_lifetime,
        id_token_lifetime: t.id_token_lifetime,
        refresh_token_absolute_lifetime: t.refresh_token_absolute_lifetime,
        refresh_token_sliding_lifetime: t.refresh_token_sliding_lifetime,
    }
}
