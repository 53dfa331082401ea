//! The OpenID Provider Metadata document (OIDC Discovery 1.0 §3, RFC 8414 §2), computed once
//! per tenant version and served as bytes.

use crate::config::TenantSpec;
use crate::config::tenant::AuthMethod;
use serde_json::{Value, json};

pub const JWKS_PATH: &str = "/.well-known/jwks";
pub const TOKEN_PATH: &str = "/connect/token";

/// Only what this server implements today is advertised: a client that trusts discovery must
/// never be sent to an endpoint that does not exist.
pub fn document(spec: &TenantSpec, mtls_listener: bool) -> Value {
    let issuer = &spec.issuer;
    let mut scopes: Vec<&str> = spec
        .identity_resources
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    scopes.extend(spec.api_scopes.iter().map(|s| s.name.as_str()));
    let mut claims: Vec<&str> = spec
        .identity_resources
        .iter()
        .flat_map(|r| r.claims.iter().map(String::as_str))
        .collect();
    claims.extend(["iss", "sub", "aud", "exp", "iat"]);
    claims.sort_unstable();
    claims.dedup();
    let algs: Vec<&str> = spec
        .tokens
        .signing_algorithms
        .iter()
        .map(|a| a.as_str())
        .collect();
    let mut doc = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": AuthMethod::ALL.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        "scopes_supported": scopes,
        "claims_supported": claims,
        // OIDC Discovery §3 requires these three; no response type is served yet (the authorize
        // endpoint is not built), so the list is honestly empty.
        "response_types_supported": [],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
    });
    // RFC 8705 §5: the same endpoints on the listener that asks for client certificates; only
    // when that listener runs, or a client following the alias would find nothing there.
    if mtls_listener && let Value::Object(m) = &mut doc {
        m.insert(
            "mtls_endpoint_aliases".into(),
            json!({ "token_endpoint": format!("{}{TOKEN_PATH}", spec.mtls_base_url) }),
        );
    }
    doc
}
