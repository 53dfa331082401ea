//! Client authentication at the token endpoint: `client_secret_basic` (RFC 6749 §2.3.1) and
//! `client_secret_post`. Exactly one method per request (RFC 6749 §2.3).

use super::form::Form;
use crate::config::tenant::AuthMethod;
use crate::error::{Challenge, OAuthError};
use crate::frontdoor::middleware::RequestContext;
use crate::registry::{Client, Tenant};
use crate::state::AppState;
use crate::stores::ClientStore;
use axum::http::{HeaderMap, header};
use base64::Engine;
use std::sync::Arc;

const MAX_CREDENTIAL_LEN: usize = 512;

/// A client that proved who it is. Only [`authenticate`] builds one.
#[derive(Debug)]
pub struct AuthenticatedClient {
    client: Arc<Client>,
    method: AuthMethod,
}

impl AuthenticatedClient {
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }
    pub fn method(&self) -> AuthMethod {
        self.method
    }
}

struct Presented {
    client_id: String,
    secret: String,
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
    match (basic, post_secret) {
        // RFC 6749 §2.3 / §5.2: more than one authentication mechanism is invalid_request.
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "use exactly one client authentication method",
        )),
        (Some(b64), None) => {
            let fail =
                || OAuthError::invalid_client("malformed Basic credentials", Challenge::Basic);
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
            Ok(Presented {
                client_id: id,
                secret,
                method: AuthMethod::ClientSecretBasic,
            })
        }
        (None, Some(secret)) => match form.get("client_id") {
            Some(id) => Ok(Presented {
                client_id: id.to_string(),
                secret: secret.to_string(),
                method: AuthMethod::ClientSecretPost,
            }),
            None => Err(OAuthError::invalid_request(
                "client_secret without client_id",
            )),
        },
        // RFC 6749 §2.1 / §3.2.1: a public client only identifies itself.
        (None, None) => match form.get("client_id") {
            Some(id) => Ok(Presented {
                client_id: id.to_string(),
                secret: String::new(),
                method: AuthMethod::None,
            }),
            None => Err(OAuthError::invalid_client(
                "client authentication is required",
                Challenge::None,
            )),
        },
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

/// Authenticates the calling client of `tenant`; failures are security events.
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
    if p.client_id.is_empty()
        || p.client_id.len() > MAX_CREDENTIAL_LEN
        || p.secret.len() > MAX_CREDENTIAL_LEN
    {
        return Err(refuse("credentials too long or empty"));
    }
    let Some(client) = tenant
        .clients
        .find_client(tenant.slug(), &p.client_id)
        .await?
    else {
        // Spend the same hash as a known client would, so timing does not tell ids apart.
        let _ = crate::secrets::SecretHash::of("").verify(&p.secret);
        return Err(refuse("unknown client"));
    };
    if !client.spec.enabled {
        return Err(refuse("client disabled"));
    }
    if !client.allows_auth_method(p.method) {
        return Err(refuse("authentication method not allowed for this client"));
    }
    if p.method == AuthMethod::None {
        // allows_auth_method(None) holds only for public clients (checked at config load).
        return Ok(AuthenticatedClient {
            client,
            method: p.method,
        });
    }
    let now = state.now();
    let ok = client
        .secrets
        .iter()
        .filter(|(_, expires)| expires.is_none_or(|e| e > now))
        .any(|(hash, _)| hash.verify(&p.secret));
    if !ok {
        return Err(refuse("wrong secret"));
    }
    Ok(AuthenticatedClient {
        client,
        method: p.method,
    })
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
    if let Some(resource) = tenant
        .spec
        .api_resources
        .iter()
        .find(|r| r.name == p.client_id && !r.secrets.is_empty())
    {
        let now = state.now();
        let ok = p.method != AuthMethod::None
            && p.secret.len() <= MAX_CREDENTIAL_LEN
            && resource
                .secrets
                .iter()
                .filter(|s| s.expires_at.is_none_or(|e| e > now))
                .filter_map(|s| crate::secrets::SecretHash::parse(&s.hash).ok())
                .any(|h| h.verify(&p.secret));
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
