//! Client authentication (RFC 6749 §2.3, OIDC Core §9): `client_secret_basic`,
//! `client_secret_post`, `private_key_jwt` (RFC 7523), `tls_client_auth` and
//! `self_signed_tls_client_auth` (RFC 8705 §2), and `none` for public clients. Exactly one
//! method per request; each client lists the methods it may use.

use super::form::Form;
use crate::config::Client;
use crate::config::tenant::AuthMethod;
use crate::error::{Challenge, OAuthError};
use crate::keys::Alg;
use crate::registry::Tenant;
use crate::request::RequestContext;
use crate::state::AppState;
use crate::stores::{ClientStore, GrantKind, GrantRecord, GrantStore};
use axum::http::{HeaderMap, header};
use base64::Engine;
use serde_json::Value;
use std::sync::Arc;

const MAX_CREDENTIAL_LEN: usize = 512;
const MAX_ASSERTION_LEN: usize = 8192;
/// RFC 7523 §3: assertions are short-lived; one valid longer than this is refused.
const MAX_ASSERTION_LIFETIME: i64 = 600;
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client that proved who it is. Only [`authenticate`] builds one.
#[derive(Debug)]
pub struct AuthenticatedClient {
    client: Arc<Client>,
    method: AuthMethod,
    /// RFC 8705 §3: `x5t#S256` when the tokens issued now are bound to the client certificate.
    cert_binding: Option<String>,
}

impl AuthenticatedClient {
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }
    pub fn method(&self) -> AuthMethod {
        self.method
    }
    pub fn cert_binding(&self) -> Option<&str> {
        self.cert_binding.as_deref()
    }
}

/// What the request carries to authenticate with.
enum Credential {
    Secret(String),
    Assertion(String),
    /// Only a client_id: a public client, or a client certificate on the connection.
    ClientId,
}

struct Presented {
    client_id: String,
    credential: Credential,
    method: AuthMethod,
}

fn presented(headers: &HeaderMap, form: &Form) -> Result<Presented, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, value)| value.trim());
    let post_secret = form.get("client_secret");
    let assertion = form.get("client_assertion");
    let used = [basic.is_some(), post_secret.is_some(), assertion.is_some()]
        .iter()
        .filter(|x| **x)
        .count();
    if used > 1 {
        // RFC 6749 §2.3: a client must not use more than one authentication method per request.
        return Err(OAuthError::invalid_client(
            "use exactly one client authentication method",
            if basic.is_some() {
                Challenge::Basic
            } else {
                Challenge::None
            },
        ));
    }
    if let Some(b64) = basic {
        let fail = || OAuthError::invalid_client("malformed Basic credentials", Challenge::Basic);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| fail())?;
        let decoded = String::from_utf8(decoded).map_err(|_| fail())?;
        let (id, secret) = decoded.split_once(':').ok_or_else(fail)?;
        // RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
        let id = url_decode(id).ok_or_else(fail)?;
        let secret = url_decode(secret).ok_or_else(fail)?;
        if form.get("client_id").is_some_and(|body_id| body_id != id) {
            return Err(OAuthError::invalid_request(
                "client_id in the body differs from the Authorization header",
            ));
        }
        return Ok(Presented {
            client_id: id,
            credential: Credential::Secret(secret),
            method: AuthMethod::ClientSecretBasic,
        });
    }
    if let Some(secret) = post_secret {
        return match form.get("client_id") {
            Some(id) => Ok(Presented {
                client_id: id.to_string(),
                credential: Credential::Secret(secret.to_string()),
                method: AuthMethod::ClientSecretPost,
            }),
            None => Err(OAuthError::invalid_request(
                "client_secret without client_id",
            )),
        };
    }
    if let Some(assertion) = assertion {
        // RFC 7521 §4.2: the assertion type says how to read the assertion.
        if form.get("client_assertion_type") != Some(JWT_BEARER) {
            return Err(OAuthError::invalid_client(
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                Challenge::None,
            ));
        }
        // RFC 7523 §3: the subject is the client_id (client_id in the body is optional).
        let sub = crate::tokens::jws::decode_unverified(assertion)
            .ok()
            .and_then(|(_, claims)| {
                claims
                    .get("sub")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .ok_or_else(|| {
                OAuthError::invalid_client("malformed client assertion", Challenge::None)
            })?;
        if form.get("client_id").is_some_and(|id| id != sub) {
            return Err(OAuthError::invalid_client(
                "client_id differs from the assertion's subject",
                Challenge::None,
            ));
        }
        return Ok(Presented {
            client_id: sub,
            credential: Credential::Assertion(assertion.to_string()),
            method: AuthMethod::PrivateKeyJwt,
        });
    }
    // RFC 6749 §2.1 / RFC 8705 §2: only a client_id; a certificate may come with the connection.
    match form.get("client_id") {
        Some(id) => Ok(Presented {
            client_id: id.to_string(),
            credential: Credential::ClientId,
            method: AuthMethod::None,
        }),
        None => Err(OAuthError::invalid_client(
            "client authentication is required",
            Challenge::None,
        )),
    }
}

fn url_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Authenticates the calling client of `tenant`; failures are security events. `endpoint` is
/// the URL being called (an assertion may name it as its audience).
pub async fn authenticate(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
    form: &Form,
    ctx: &RequestContext,
) -> Result<AuthenticatedClient, OAuthError> {
    let p = presented(headers, form)?;
    let challenge = if p.method == AuthMethod::ClientSecretBasic {
        Challenge::Basic
    } else {
        Challenge::None
    };
    // One answer for every failure, so callers cannot probe which client ids exist.
    let refuse = |reason: &str| {
        crate::events::client_auth_failed(tenant.slug(), &p.client_id, &ctx.request_id, reason);
        OAuthError::invalid_client("client authentication failed", challenge)
    };
    let secret_len = match &p.credential {
        Credential::Secret(s) => s.len(),
        _ => 0,
    };
    if p.client_id.is_empty()
        || p.client_id.len() > MAX_CREDENTIAL_LEN
        || secret_len > MAX_CREDENTIAL_LEN
    {
        return Err(refuse("credentials too long or empty"));
    }
    tracing::Span::current().record("client_id", p.client_id.as_str());
    let Some(client) = tenant
        .clients
        .find_client(tenant.slug(), &p.client_id)
        .await?
    else {
        if let Credential::Secret(secret) = &p.credential {
            // Spend the same hash as a known client would, so timing does not tell ids apart.
            let _ = crate::secrets::SecretHash::of("").verify(secret);
        }
        return Err(refuse("unknown client"));
    };
    if !client.spec.enabled {
        return Err(refuse("client disabled"));
    }
    let now = state.now();
    let thumbprint = ctx.cert_thumbprint();
    let method = match &p.credential {
        Credential::Secret(secret) => {
            if !client.allows_auth_method(p.method) {
                return Err(refuse("authentication method not allowed for this client"));
            }
            let hashed = client
                .secrets
                .iter()
                .filter(|(_, expires)| expires.is_none_or(|e| e > now))
                .any(|(hash, _)| hash.verify(secret));
            let sealed = !hashed
                && sealed_secrets(state, tenant, &client, now)
                    .iter()
                    .any(|plain| {
                        aws_lc_rs::constant_time::verify_slices_are_equal(plain, secret.as_bytes())
                            .is_ok()
                    });
            if !hashed && !sealed {
                return Err(refuse("wrong secret"));
            }
            p.method
        }
        Credential::Assertion(assertion) => {
            // OIDC Core §9: an HMAC means client_secret_jwt, a signature private_key_jwt.
            let hmac = crate::tokens::jws::decode_unverified(assertion)
                .ok()
                .and_then(|(h, _)| {
                    h.get("alg")
                        .and_then(Value::as_str)
                        .map(|a| a.starts_with("HS"))
                })
                .unwrap_or(false);
            let method = if hmac {
                AuthMethod::ClientSecretJwt
            } else {
                AuthMethod::PrivateKeyJwt
            };
            if !client.allows_auth_method(method) {
                return Err(refuse("authentication method not allowed for this client"));
            }
            if let Err(reason) =
                check_assertion(state, tenant, &client, assertion, method, ctx).await?
            {
                return Err(refuse(reason));
            }
            method
        }
        Credential::ClientId => {
            let chain = ctx.client_certs.as_ref().filter(|c| !c.is_empty());
            match chain {
                Some(chain) if client.allows_auth_method(AuthMethod::TlsClientAuth) => {
                    let Some(subject) = &client.spec.interactive.tls_subject else {
                        return Err(refuse("no registered certificate subject"));
                    };
                    if let Err(reason) = super::client_cert::pki_matches(
                        if client.tls_anchors.is_empty() {
                            &tenant.mtls_anchors
                        } else {
                            &client.tls_anchors
                        },
                        chain,
                        subject,
                        now,
                    ) {
                        return Err(refuse(reason));
                    }
                    AuthMethod::TlsClientAuth
                }
                Some(chain) if client.allows_auth_method(AuthMethod::SelfSignedTlsClientAuth) => {
                    let keys = super::client_keys::client_jwks(state, &client)
                        .await
                        .ok()
                        .flatten();
                    let ok = match (keys, chain.first()) {
                        (Some(jwks), Some(cert)) => {
                            super::client_cert::self_signed_matches(&jwks, cert, now)
                        }
                        _ => false,
                    };
                    if !ok {
                        return Err(refuse("the certificate is not registered for this client"));
                    }
                    AuthMethod::SelfSignedTlsClientAuth
                }
                // A workload client's credential is its platform's token, which the grant
                // carrying it checks against the trust policy; nothing else admits it.
                None if client.spec.workload.is_some() && carries_workload_token(form, ctx) => {
                    AuthMethod::None
                }
                _ if client.allows_auth_method(AuthMethod::None) => AuthMethod::None,
                Some(_) => return Err(refuse("authentication method not allowed for this client")),
                None => return Err(refuse("client authentication is required")),
            }
        }
    };
    // RFC 8705 §3: tokens of certificate-authenticated clients, and of clients registered for
    // binding that present a certificate, are bound to it.
    let cert_binding = match method {
        AuthMethod::TlsClientAuth | AuthMethod::SelfSignedTlsClientAuth => thumbprint,
        _ if client.spec.interactive.certificate_bound_tokens => thumbprint,
        _ => None,
    };
    Ok(AuthenticatedClient {
        client,
        method,
        cert_binding,
    })
}

/// RFC 7523 §3: the client assertion's signature, issuer, subject, audience, lifetime and
/// single use. `Ok(Err(reason))` is a refusal; `Err` an internal failure.
async fn check_assertion(
    state: &AppState,
    tenant: &Tenant,
    client: &Client,
    assertion: &str,
    method: AuthMethod,
    ctx: &RequestContext,
) -> Result<Result<(), &'static str>, crate::error::InternalError> {
    if assertion.len() > MAX_ASSERTION_LEN {
        return Ok(Err("assertion too long"));
    }
    let claims = if method == AuthMethod::ClientSecretJwt {
        let secrets = sealed_secrets(state, tenant, client, state.now());
        match secrets
            .iter()
            .find_map(|key| crate::tokens::jws::verify_hmac(assertion, key).ok())
        {
            Some(claims) => claims,
            None => {
                return Ok(Err(
                    "the assertion's HMAC does not verify with the client secret",
                ));
            }
        }
    } else {
        // Never `none` or a shared-secret algorithm with the client's public keys.
        match super::client_keys::verify_with_client_keys(state, client, assertion, &Alg::ALL)
            .await?
        {
            Some(v) => v.claims,
            None => return Ok(Err("the assertion is not signed by a key of this client")),
        }
    };
    let c = &claims;
    let s = |k: &str| c.get(k).and_then(Value::as_str);
    let id = client.spec.client_id.as_str();
    if s("iss") != Some(id) || s("sub") != Some(id) {
        return Ok(Err("iss and sub must be the client_id"));
    }
    // RFC 7523 §3 item 3, FAPI 2.0 §5.3.2.1: the issuer identifies us; the token endpoint URL
    // (or the endpoint called) is accepted too.
    let endpoint = format!("{}{}", tenant.spec.issuer, path_below_tenant(tenant, ctx));
    let acceptable =
        |a: &str| a == tenant.spec.issuer || a == tenant.token_endpoint || a == endpoint;
    let aud_ok = match c.get("aud") {
        Some(Value::String(a)) => acceptable(a),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(acceptable),
        _ => false,
    };
    if !aud_ok {
        return Ok(Err("the assertion's audience is not this server"));
    }
    let now = state.now();
    let Some(exp) = c.get("exp").and_then(Value::as_i64) else {
        return Ok(Err("the assertion has no exp"));
    };
    if exp <= now {
        return Ok(Err("the assertion has expired"));
    }
    if exp > now + MAX_ASSERTION_LIFETIME {
        return Ok(Err("the assertion lives too long"));
    }
    if c.get("nbf")
        .and_then(Value::as_i64)
        .is_some_and(|nbf| nbf > now + 60)
        || c.get("iat")
            .and_then(Value::as_i64)
            .is_some_and(|iat| iat > now + 60)
    {
        return Ok(Err("the assertion is not valid yet"));
    }
    let Some(jti) = s("jti").filter(|j| !j.is_empty() && j.len() <= 256) else {
        return Ok(Err("the assertion has no jti"));
    };
    // RFC 7523 §3 item 7: single use, on every node (the store decides), for its lifetime.
    let marker = GrantRecord {
        handle_hash: crate::tokens::handle_hash(&format!("assertion:{id}:{jti}")),
        client_id: id.to_string(),
        created_at: now,
        expires_at: exp + 60,
        consumed_at: Some(now),
        ..GrantRecord::of(GrantKind::AssertionJti)
    };
    if !state.store.redeem_once(tenant.slug(), &marker, &[]).await? {
        return Ok(Err("the assertion was used before"));
    }
    Ok(Ok(()))
}

/// The client's sealed secrets, opened (unexpired ones only).
fn sealed_secrets(state: &AppState, tenant: &Tenant, client: &Client, now: i64) -> Vec<Vec<u8>> {
    let aad = crate::registry::sealed_secret_aad(tenant.slug(), &client.spec.client_id);
    client
        .sealed_secrets
        .iter()
        .filter(|(_, expires)| expires.is_none_or(|e| e > now))
        .filter_map(|(sealed, _)| state.master.open(sealed, &aad).ok())
        .collect()
}

/// A token request of a grant that verifies a workload client's token against its trust
/// policy (token exchange, JWT bearer) — the only requests a workload client may make.
fn carries_workload_token(form: &Form, ctx: &RequestContext) -> bool {
    use crate::config::tenant::{JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT};
    ctx.path.ends_with(crate::registry::discovery::TOKEN_PATH)
        && matches!(
            form.get("grant_type"),
            Some(TOKEN_EXCHANGE_GRANT | JWT_BEARER_GRANT)
        )
}

/// The path of the called endpoint below the tenant (`/connect/token`, …), for the audience.
fn path_below_tenant<'a>(tenant: &Tenant, ctx: &'a RequestContext) -> &'a str {
    let prefix_len = tenant.slug().len() + 1;
    ctx.path.get(prefix_len..).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_url_decoded() {
        assert_eq!(url_decode("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(url_decode("%zz"), None);
        assert_eq!(url_decode("%4"), None);
    }

    mod robust {
        use super::*;
        use crate::error::ErrorCode;
        use crate::robustness_tests::{config, form_body};
        use axum::http::HeaderValue;
        use base64::engine::general_purpose::STANDARD;
        use proptest::prelude::*;

        /// `Authorization` values: arbitrary bytes, other schemes, and Basic with any payload.
        fn authorization() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..200),
                (
                    "(?i)(basic|bearer|dpop|basicx)",
                    "[ \t]{0,3}",
                    "(?s).{0,80}"
                )
                    .prop_map(|(s, sp, v)| format!("{s}{sp}{v}").into_bytes()),
                ("(?s).{0,40}", "(?s).{0,40}", "[:]?").prop_map(|(id, secret, sep)| {
                    format!("Basic {}", STANDARD.encode(format!("{id}{sep}{secret}"))).into_bytes()
                }),
                proptest::collection::vec(any::<u8>(), 0..60).prop_map(|b| format!(
                    "Basic {}",
                    STANDARD.encode(b)
                )
                .into_bytes()),
            ]
        }

        proptest! {
            #![proptest_config(config(512))]

            /// RFC 6749 §2.3.1: the form-urlencoding of Basic credentials is undone exactly.
            #[test]
            fn robust_basic_credentials_url_decode_what_clients_encode(s in "(?s).{0,60}") {
                let encoded: String = form_urlencoded::byte_serialize(s.as_bytes()).collect();
                prop_assert_eq!(url_decode(&encoded), Some(s));
            }

            /// Any Authorization header with any body: credentials, or `invalid_client` /
            /// `invalid_request` (a 4xx), never a panic.
            #[test]
            fn robust_any_authorization_header_yields_credentials_or_a_client_error(
                value in authorization(),
                body in form_body(),
                raw in "(?s).{0,40}",
            ) {
                let _ = url_decode(&raw);
                let Ok(form) = Form::parse(&body) else { return Ok(()) };
                let mut headers = HeaderMap::new();
                if let Ok(v) = HeaderValue::from_bytes(&value) {
                    headers.insert(header::AUTHORIZATION, v);
                }
                if let Err(e) = presented(&headers, &form) {
                    prop_assert!(matches!(e.code, ErrorCode::InvalidClient | ErrorCode::InvalidRequest));
                    prop_assert!(e.status.is_client_error());
                }
            }
        }
    }
}

/// Who calls the introspection endpoint (RFC 7662 §2.1): an API resource with its own secret,
/// or a confidential client.
#[derive(Debug)]
pub enum Introspector {
    Resource(String),
    Client(Arc<Client>),
}

/// Authenticates an introspection caller: an API resource of `tenant` whose name is the
/// presented id, else a confidential client (public clients may not introspect).
pub async fn authenticate_introspector(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
    form: &Form,
    ctx: &RequestContext,
) -> Result<Introspector, OAuthError> {
    let p = presented(headers, form)?;
    let challenge = if p.method == AuthMethod::ClientSecretBasic {
        Challenge::Basic
    } else {
        Challenge::None
    };
    let secret = match &p.credential {
        Credential::Secret(s) => Some(s.as_str()),
        _ => None,
    };
    // An API may sign an assertion instead (private_key_jwt with the API's registered keys).
    if let Credential::Assertion(assertion) = &p.credential
        && let Some(resource) = tenant
            .spec
            .api_resources
            .iter()
            .find(|r| r.name == p.client_id && r.jwks.is_some())
    {
        let as_client = Client::from_spec(crate::config::ClientSpec {
            client_id: resource.name.clone(),
            client_name: None,
            enabled: true,
            secrets: Vec::new(),
            grant_types: Vec::new(),
            scopes: Vec::new(),
            auth_methods: vec![AuthMethod::PrivateKeyJwt],
            access_token_format: None,
            access_token_lifetime: None,
            interactive: crate::config::tenant::InteractiveSpec {
                jwks: resource.jwks.clone(),
                ..Default::default()
            },
            ciba: None,
            token_exchange: None,
            workload: None,
            extension_grants: Vec::new(),
            runtime: None,
        })?;
        if let Err(reason) = check_assertion(
            state,
            tenant,
            &as_client,
            assertion,
            AuthMethod::PrivateKeyJwt,
            ctx,
        )
        .await?
        {
            crate::events::client_auth_failed(tenant.slug(), &p.client_id, &ctx.request_id, reason);
            return Err(OAuthError::invalid_client(
                "client authentication failed",
                challenge,
            ));
        }
        return Ok(Introspector::Resource(resource.name.clone()));
    }
    if let Some(resource) = tenant
        .spec
        .api_resources
        .iter()
        .find(|r| r.name == p.client_id && !r.secrets.is_empty())
    {
        let now = state.now();
        let ok = secret.is_some_and(|secret| {
            secret.len() <= MAX_CREDENTIAL_LEN
                && resource
                    .secrets
                    .iter()
                    .filter(|s| s.expires_at.is_none_or(|e| e > now))
                    .filter_map(|s| crate::secrets::SecretHash::parse(&s.hash).ok())
                    .any(|h| h.verify(secret))
        });
        if !ok {
            crate::events::client_auth_failed(
                tenant.slug(),
                &p.client_id,
                &ctx.request_id,
                "wrong API resource secret",
            );
            return Err(OAuthError::invalid_client(
                "client authentication failed",
                challenge,
            ));
        }
        return Ok(Introspector::Resource(resource.name.clone()));
    }
    let auth = authenticate(state, tenant, headers, form, ctx).await?;
    if auth.method() == AuthMethod::None {
        crate::events::client_auth_failed(
            tenant.slug(),
            &p.client_id,
            &ctx.request_id,
            "public client at introspection",
        );
        return Err(OAuthError::invalid_client(
            "client authentication failed",
            challenge,
        ));
    }
    Ok(Introspector::Client(auth.client().clone()))
}
