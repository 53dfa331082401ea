//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592): what the
//! registration endpoint does, apart from HTTP.
//!
//! A request passes the tenant's access policy (closed, an initial access token, or open and
//! rate limited per address), has its software statement verified when it carries one (§2.3:
//! the statement's claims win), is read by the registration rules (`config::metadata`) and then
//! by the tenant file's own client rules, and is stored as a runtime client with a registration
//! record: the hash of its registration access token (RFC 7592 §1), replaced on every update.
//! Nothing is stored unless everything holds.

use super::{problems_text, secrets_kept_or_new};
use crate::config::ClientSpec;
use crate::config::metadata::{self, MetadataError, Rules};
use crate::config::tenant::{
    Registration, RegistrationAccess, RuntimeClient, check_client_definition,
};
use crate::error::InternalError;
use crate::registry::Tenant;
use crate::secrets::SecretHash;
use crate::state::AppState;
use crate::stores::{Insert, RuntimeClientStore};
use serde_json::{Map, Value};

/// The largest registration request read.
pub const MAX_BODY: usize = 64 * 1024;

/// Why a registration or management request was refused.
#[derive(Debug)]
pub enum Refusal {
    /// Registration is closed in this tenant.
    Closed,
    /// 401: the initial or registration access token is missing, unknown, used up or expired,
    /// or names another client.
    Unauthorized(&'static str),
    /// Open registration: too many requests from this address this minute.
    TooMany,
    /// The tenant holds as many registered clients as its policy allows.
    Full,
    /// RFC 7591 §3.2.2 `invalid_redirect_uri` / `invalid_client_metadata`.
    Metadata(MetadataError),
    /// RFC 7591 §3.2.2 `invalid_software_statement`.
    InvalidStatement(String),
    /// RFC 7591 §3.2.2 `unapproved_software_statement`.
    UnapprovedStatement(String),
    Internal(InternalError),
}

impl From<InternalError> for Refusal {
    fn from(e: InternalError) -> Self {
        Self::Internal(e)
    }
}

/// RFC 7591 §3.1: registers a client. `bearer` is the Authorization header's token, if any.
pub async fn register(
    state: &AppState,
    tenant: &Tenant,
    bearer: Option<&str>,
    client_ip: Option<std::net::IpAddr>,
    body: &[u8],
) -> Result<Value, Refusal> {
    let policy = &tenant.spec.registration;
    let slug = tenant.slug();
    let now = state.now();
    let token = match policy.access {
        RegistrationAccess::Closed => return Err(Refusal::Closed),
        RegistrationAccess::InitialToken => {
            let t = bearer.ok_or(Refusal::Unauthorized(
                "registration here needs an initial access token",
            ))?;
            Some(
                super::initial_tokens::check(&state.store, slug, t, now)
                    .await?
                    .map_err(Refusal::Unauthorized)?,
            )
        }
        RegistrationAccess::Open => {
            let ip = address_key(client_ip);
            if !state
                .registrations
                .admit((slug.to_string(), ip), policy.open_requests_per_minute)
                .await
            {
                return Err(Refusal::TooMany);
            }
            None
        }
    };
    let object = request_object(state, tenant, body).await?;
    if state.store.count_runtime_clients(slug).await? >= policy.max_clients {
        return Err(Refusal::Full);
    }
    let client_id = super::new_client_id();
    let (client, secret, access_token) = build(state, tenant, &object, &client_id, None, now)?;
    // Every check passed: only now is a use of the initial access token taken.
    if let Some(live) = token
        && !super::initial_tokens::take_use(&state.store, slug, live).await?
    {
        return Err(Refusal::Unauthorized(
            "the initial access token was used up",
        ));
    }
    match state
        .store
        .insert_runtime_client(slug, &client, now, policy.max_clients)
        .await?
    {
        Insert::Done => {}
        // Registrations racing for the last place: this one came second.
        Insert::Full => return Err(Refusal::Full),
        Insert::Taken => {
            return Err(Refusal::Internal(InternalError::Other(
                "a fresh client id was taken".into(),
            )));
        }
    }
    tenant.clients.invalidate(&client_id).await;
    tracing::info!(target: "security", event = "client_registered", tenant = slug, client_id = %client_id, software_id = ?object.get("software_id").and_then(|v| v.as_str()));
    Ok(answer(
        tenant,
        &client,
        secret.as_deref(),
        Some(&access_token),
    ))
}

/// The address a registration is counted under: IPv4 as it is, IPv6 by its /64 (one host's
/// usual share, within which it can pick any address).
fn address_key(ip: Option<std::net::IpAddr>) -> std::net::IpAddr {
    match ip.map(|i| i.to_canonical()) {
        Some(std::net::IpAddr::V6(v6)) => {
            let [a, b, c, d, ..] = v6.segments();
            std::net::Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0).into()
        }
        Some(v4) => v4,
        None => std::net::Ipv6Addr::UNSPECIFIED.into(),
    }
}

/// RFC 7592 §2.1: the client's registration, for the holder of its registration access token.
pub async fn read(
    state: &AppState,
    tenant: &Tenant,
    client_id: &str,
    bearer: Option<&str>,
) -> Result<Value, Refusal> {
    let client = authorized(state, tenant, client_id, bearer).await?;
    Ok(answer(tenant, &client, None, None))
}

/// RFC 7592 §2.2: replaces the client's metadata (members left out are removed); the
/// registration access token is replaced, and the answer carries the new one.
pub async fn update(
    state: &AppState,
    tenant: &Tenant,
    client_id: &str,
    bearer: Option<&str>,
    body: &[u8],
) -> Result<Value, Refusal> {
    let old = authorized(state, tenant, client_id, bearer).await?;
    let object = request_object(state, tenant, body).await?;
    // RFC 7592 §2.2: the client_id is included and matches; a client_secret sent must be the
    // current one.
    if object.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err(Refusal::Metadata(MetadataError::Metadata(
            "client_id: the request names the client it updates (RFC 7592 §2.2)".into(),
        )));
    }
    if let Some(sent) = object.get("client_secret") {
        let matches = sent.as_str().is_some_and(|s| {
            old.secrets.iter().any(|h| {
                h.sealed.is_none() && SecretHash::parse(&h.hash).is_ok_and(|h| h.verify(s))
            })
        });
        if !matches {
            return Err(Refusal::Metadata(MetadataError::Metadata(
                "client_secret: not the client's current secret (RFC 7592 §2.2)".into(),
            )));
        }
    }
    let now = state.now();
    let (client, secret, access_token) = build(state, tenant, &object, client_id, Some(&old), now)?;
    if !state
        .store
        .replace_runtime_client(tenant.slug(), &client, now)
        .await?
    {
        return Err(Refusal::Unauthorized("the client is not registered"));
    }
    tenant.clients.invalidate(client_id).await;
    tracing::info!(target: "security", event = "client_registration_updated", tenant = tenant.slug(), client_id);
    Ok(answer(
        tenant,
        &client,
        secret.as_deref(),
        Some(&access_token),
    ))
}

/// RFC 7592 §2.3: removes the client; its tokens stop working at once.
pub async fn delete(
    state: &AppState,
    tenant: &Tenant,
    client_id: &str,
    bearer: Option<&str>,
) -> Result<(), Refusal> {
    authorized(state, tenant, client_id, bearer).await?;
    if !state
        .store
        .delete_runtime_client(tenant.slug(), client_id, state.now())
        .await?
    {
        return Err(Refusal::Unauthorized("the client is not registered"));
    }
    crate::registry::sync::forget_client(state, tenant.slug(), client_id).await;
    tracing::info!(target: "security", event = "client_registration_deleted", tenant = tenant.slug(), client_id);
    Ok(())
}

/// The registered client `client_id` of this tenant, if `bearer` is its registration access
/// token. Every failure reads the same: an unknown client, a file client, a client registered
/// by the admin API or another client's token (RFC 7592 §2.1: 401, nothing revealed).
async fn authorized(
    state: &AppState,
    tenant: &Tenant,
    client_id: &str,
    bearer: Option<&str>,
) -> Result<ClientSpec, Refusal> {
    const WRONG: &str = "the registration access token is not valid for this client";
    let token = bearer.ok_or(Refusal::Unauthorized("send the registration access token"))?;
    let client = state
        .store
        .runtime_client(tenant.slug(), client_id)
        .await?
        .ok_or(Refusal::Unauthorized(WRONG))?;
    let valid = client
        .runtime
        .as_ref()
        .and_then(|r| r.registration.as_ref())
        .and_then(|r| SecretHash::parse(&r.access_token_hash).ok())
        .is_some_and(|h| h.verify(token));
    if valid {
        Ok(client)
    } else {
        Err(Refusal::Unauthorized(WRONG))
    }
}

/// The request body as a metadata object, with a software statement's claims applied.
async fn request_object(
    state: &AppState,
    tenant: &Tenant,
    body: &[u8],
) -> Result<Map<String, Value>, Refusal> {
    let bad = |m: &str| Refusal::Metadata(MetadataError::Metadata(m.to_string()));
    if body.len() > MAX_BODY {
        return Err(bad("the request is too large"));
    }
    let mut object = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return Err(bad("the request is not a JSON object")),
        Err(_) => return Err(bad("the request is not JSON")),
    };
    let policy = &tenant.spec.registration;
    match object.remove("software_statement") {
        None | Some(Value::Null) if policy.require_software_statement => {
            return Err(Refusal::UnapprovedStatement(
                "this tenant registers only software with a software statement".into(),
            ));
        }
        None | Some(Value::Null) => {}
        Some(Value::String(jwt)) => {
            for (k, v) in software_statement(state, tenant, &jwt).await? {
                object.insert(k, v);
            }
        }
        Some(_) => {
            return Err(Refusal::InvalidStatement(
                "software_statement: a signed JWT".into(),
            ));
        }
    }
    Ok(object)
}

/// RFC 7591 §2.3: a software statement is a JWT signed by an issuer the tenant approves for
/// statements (one of its trusted issuers). Its claims, less the JWT's own, are metadata.
async fn software_statement(
    state: &AppState,
    tenant: &Tenant,
    jwt: &str,
) -> Result<Map<String, Value>, Refusal> {
    use crate::validation::trusted;
    let iss = trusted::unverified_issuer(jwt)
        .ok_or_else(|| Refusal::InvalidStatement("the software statement is not a JWT".into()))?;
    let approved = tenant
        .spec
        .registration
        .software_statement_issuers
        .contains(&iss);
    let issuer = trusted::issuer(tenant, &iss)
        .filter(|_| approved)
        .ok_or_else(|| {
            Refusal::UnapprovedStatement(format!(
                "software statements of `{iss}` are not approved here"
            ))
        })?;
    let mut claims = trusted::verify_signature(state, issuer, jwt)
        .await
        .map_err(|e| match e {
            trusted::Refused::Invalid(m) => Refusal::InvalidStatement(m.to_string()),
            trusted::Refused::Unavailable(m) => Refusal::Internal(InternalError::Unavailable(m)),
        })?;
    let now = state.now();
    if claims
        .get("exp")
        .is_some_and(|e| e.as_i64().is_none_or(|e| e <= now))
    {
        return Err(Refusal::InvalidStatement(
            "the software statement expired".into(),
        ));
    }
    if claims
        .get("iat")
        .is_some_and(|t| t.as_i64().is_none_or(|t| t > now + 60))
    {
        return Err(Refusal::InvalidStatement(
            "the software statement is issued in the future".into(),
        ));
    }
    for k in ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"] {
        claims.remove(k);
    }
    Ok(claims)
}

/// Reads the metadata by the tenant's registration policy and makes the client: generated
/// secrets (kept from `old` when its methods still use them) and a new registration access
/// token (returned, to be shown once).
#[allow(clippy::type_complexity)]
fn build(
    state: &AppState,
    tenant: &Tenant,
    object: &Map<String, Value>,
    client_id: &str,
    old: Option<&ClientSpec>,
    now: i64,
) -> Result<(ClientSpec, Option<String>, String), Refusal> {
    let policy = &tenant.spec.registration;
    let requested = metadata::read(
        object,
        client_id,
        Rules {
            grant_types: &policy.allowed_grant_types,
            auth_methods: &policy.allowed_auth_methods,
            scopes: &policy.allowed_scopes,
            narrow_scopes: false,
            require_consent: policy.require_consent,
        },
    )
    .map_err(Refusal::Metadata)?;
    let secret_expires_at = if policy.secret_lifetime > 0 {
        now + policy.secret_lifetime
    } else {
        0
    };
    let kept = old.map(|o| o.secrets.clone()).unwrap_or_default();
    let (secret, secrets) = secrets_kept_or_new(
        std::slice::from_ref(&requested.auth_method),
        kept,
        &state.master,
        tenant.slug(),
        client_id,
        (secret_expires_at > 0).then_some(secret_expires_at),
    )?;
    let mut client = check_client_definition(&requested.definition, &tenant.spec, secrets)
        .map_err(|p| {
            let text = problems_text(&p);
            if p.iter().any(|(k, _)| k.contains("redirect_uris")) {
                Refusal::Metadata(MetadataError::RedirectUri(text))
            } else {
                Refusal::Metadata(MetadataError::Metadata(text))
            }
        })?;
    let access_token = crate::tokens::new_handle();
    let previous = old.and_then(|o| o.runtime.as_ref());
    let issued_at = previous
        .and_then(|r| r.registration.as_ref())
        .map_or(now, |r| r.issued_at);
    let secret_expires_at = match (&secret, previous.and_then(|r| r.registration.as_ref())) {
        (None, Some(r)) => r.secret_expires_at,
        _ => secret_expires_at,
    };
    client.runtime = Some(RuntimeClient {
        definition: requested.definition,
        created_at: previous.map_or(now, |r| r.created_at),
        registration: Some(Registration {
            access_token_hash: SecretHash::of(&access_token).to_stored(),
            issued_at,
            secret_expires_at,
            metadata: Value::Object(requested.metadata),
        }),
    });
    Ok((client, secret, access_token))
}

/// RFC 7591 §3.2.1 / RFC 7592 §3: the registered metadata and the server's own members.
fn answer(
    tenant: &Tenant,
    client: &ClientSpec,
    secret: Option<&str>,
    access_token: Option<&str>,
) -> Value {
    let registration = client
        .runtime
        .as_ref()
        .and_then(|r| r.registration.as_ref());
    let mut out = registration
        .and_then(|r| r.metadata.as_object().cloned())
        .unwrap_or_default();
    out.insert("client_id".into(), client.client_id.clone().into());
    if let Some(r) = registration {
        out.insert("client_id_issued_at".into(), r.issued_at.into());
        if !client.secrets.is_empty() {
            out.insert(
                "client_secret_expires_at".into(),
                r.secret_expires_at.into(),
            );
        }
    }
    if let Some(s) = secret {
        out.insert("client_secret".into(), s.into());
    }
    if let Some(t) = access_token {
        out.insert("registration_access_token".into(), t.into());
    }
    out.insert(
        "registration_client_uri".into(),
        client_uri(tenant, &client.client_id).into(),
    );
    Value::Object(out)
}

/// Where a registered client is managed (RFC 7592 §1).
pub fn client_uri(tenant: &Tenant, client_id: &str) -> String {
    let id: String = form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    format!(
        "{}{}/{id}",
        tenant.spec.issuer,
        crate::registry::discovery::REGISTRATION_PATH
    )
}

#[cfg(test)]
mod tests {
    use super::address_key;

    #[test]
    fn ipv6_addresses_of_one_slash_64_count_together_and_ipv4_ones_apart() {
        let k = |s: &str| address_key(Some(s.parse().unwrap()));
        assert_eq!(k("2001:db8:1:2::1"), k("2001:db8:1:2:ffff::9"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        assert_ne!(k("192.0.2.1"), k("192.0.2.2"));
        assert_eq!(k("::ffff:192.0.2.1"), k("192.0.2.1"));
    }
}
