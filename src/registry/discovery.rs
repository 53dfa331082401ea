//! The OpenID Provider Metadata document (OIDC Discovery 1.0 §3, RFC 8414 §2), computed once
//! per tenant version and served as bytes.

use crate::config::TenantSpec;
use crate::config::tenant::AuthMethod;
use serde_json::{Value, json};

pub const JWKS_PATH: &str = "/.well-known/jwks";
pub const TOKEN_PATH: &str = "/connect/token";
pub const AUTHORIZE_PATH: &str = "/connect/authorize";
pub const USERINFO_PATH: &str = "/connect/userinfo";
pub const PAR_PATH: &str = "/connect/par";
pub const END_SESSION_PATH: &str = "/connect/endsession";
pub const INTROSPECTION_PATH: &str = "/connect/introspect";
pub const REVOCATION_PATH: &str = "/connect/revocation";
pub const DEVICE_AUTHORIZATION_PATH: &str = "/connect/deviceauthorization";
pub const BACKCHANNEL_PATH: &str = "/connect/ciba";
pub const REGISTRATION_PATH: &str = "/connect/register";
/// RFC 8628 §3.3: where the user enters the code.
pub const DEVICE_VERIFICATION_PATH: &str = "/device";

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
    let mut grants = vec![
        "authorization_code",
        "client_credentials",
        "refresh_token",
        crate::tokens::user_code::DEVICE_CODE_GRANT,
        crate::config::tenant::CIBA_GRANT,
        crate::config::tenant::TOKEN_EXCHANGE_GRANT,
        crate::config::tenant::JWT_BEARER_GRANT,
    ];
    // RFC 9700 §2.4: advertised only where the tenant's operator turned it on.
    if spec.password_grant {
        grants.push("password");
    }
    grants.sort_unstable();
    let mut doc = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "authorization_endpoint": format!("{issuer}{AUTHORIZE_PATH}"),
        "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
        "userinfo_endpoint": format!("{issuer}{USERINFO_PATH}"),
        "end_session_endpoint": format!("{issuer}{END_SESSION_PATH}"),
        // RFC 8414 §2
        "introspection_endpoint": format!("{issuer}{INTROSPECTION_PATH}"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint": format!("{issuer}{REVOCATION_PATH}"),
        "revocation_endpoint_auth_methods_supported": AuthMethod::ALL.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        // RFC 9126 §5
        "pushed_authorization_request_endpoint": format!("{issuer}{PAR_PATH}"),
        "require_pushed_authorization_requests": spec.par.required,
        // RFC 8628 §4
        "device_authorization_endpoint": format!("{issuer}{DEVICE_AUTHORIZATION_PATH}"),
        // CIBA Core §4
        "backchannel_authentication_endpoint": format!("{issuer}{BACKCHANNEL_PATH}"),
        "backchannel_token_delivery_modes_supported": ["poll", "ping"],
        "backchannel_authentication_request_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA"],
        // A user_code is the user's current one-time code (RFC 6238), throttled like one.
        "backchannel_user_code_parameter_supported": true,
        "grant_types_supported": grants,
        "token_endpoint_auth_methods_supported": AuthMethod::ALL.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        // RFC 7523: assertions are signed with asymmetric keys only.
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA"],
        // RFC 8705 §3.3
        "tls_client_certificate_bound_access_tokens": true,
        // RFC 9449 §5.1
        "dpop_signing_alg_values_supported": crate::keys::Alg::DPOP.map(|a| a.as_str()),
        "scopes_supported": scopes,
        "claims_supported": claims,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "acr_values_supported": [crate::sessions::ACR_PASSWORD, crate::sessions::ACR_MFA],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        // RFC 9101 §10.5 / OIDC Discovery §3
        "request_parameter_supported": true,
        "request_uri_parameter_supported": true,
        "require_request_uri_registration": true,
        "request_object_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA"],
        // RFC 9207 §3
        "authorization_response_iss_parameter_supported": true,
        "claims_parameter_supported": false,
        "frontchannel_logout_supported": true,
        "frontchannel_logout_session_supported": true,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    });
    if let Value::Object(m) = &mut doc {
        // RFC 8414 §2: advertised only where a client can register.
        if spec.registration.access != crate::config::tenant::RegistrationAccess::Closed {
            m.insert(
                "registration_endpoint".into(),
                format!("{issuer}{REGISTRATION_PATH}").into(),
            );
        }
        // The Client ID Metadata Document draft's discovery member.
        if spec.client_metadata_documents.enabled {
            m.insert("client_id_metadata_document_supported".into(), true.into());
        }
    }
    // RFC 8705 §5: the same endpoints on the listener that asks for client certificates; only
    // when that listener runs, or a client following the alias would find nothing there.
    if mtls_listener && let Value::Object(m) = &mut doc {
        m.insert(
            "mtls_endpoint_aliases".into(),
            json!({
                "token_endpoint": format!("{}{TOKEN_PATH}", spec.mtls_base_url),
                "pushed_authorization_request_endpoint": format!("{}{PAR_PATH}", spec.mtls_base_url),
                "userinfo_endpoint": format!("{}{USERINFO_PATH}", spec.mtls_base_url),
                "introspection_endpoint": format!("{}{INTROSPECTION_PATH}", spec.mtls_base_url),
                "revocation_endpoint": format!("{}{REVOCATION_PATH}", spec.mtls_base_url),
                "device_authorization_endpoint": format!("{}{DEVICE_AUTHORIZATION_PATH}", spec.mtls_base_url),
                "backchannel_authentication_endpoint": format!("{}{BACKCHANNEL_PATH}", spec.mtls_base_url),
            }),
        );
    }
    doc
}
