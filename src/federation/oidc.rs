//! Upstream OpenID Connect providers: authorization code flow with PKCE, state and nonce (OIDC
//! Core §3.1), id token validation (§3.1.3.7) against the upstream's JWK Set, optional userinfo
//! (§5.3), RP-initiated logout and back-channel logout tokens (OIDC Back-Channel Logout §2.6).
//!
//! The JOSE work is this crate's own verifier (`tokens::jws`, aws-lc-rs), the one that already
//! checks request objects and client assertions; documents come through the metadata cache.

use super::{ExternalIdentity, FederationError, Provider, UpstreamSession};
use crate::keys::Alg;
use crate::registry::Tenant;
use crate::state::AppState;
use crate::tokens::jws;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Clock skew allowed on upstream token times.
const SKEW: i64 = 120;
/// Largest upstream token or userinfo response read (the guard's limit applies too).
const MAX_RESPONSE: usize = 256 * 1024;

fn accept_json() -> reqwest::header::HeaderValue {
    reqwest::header::HeaderValue::from_static("application/json")
}

/// The parts of the upstream's discovery document this client uses (OIDC Discovery §3).
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub userinfo_endpoint: Option<String>,
    pub jwks_uri: String,
    pub end_session_endpoint: Option<String>,
    /// RFC 9207 §3: the upstream always returns `iss` with the authorization response.
    pub iss_parameter: bool,
}

fn unavailable(e: impl std::fmt::Display) -> FederationError {
    FederationError::Unavailable(e.to_string())
}

fn rejected(e: impl Into<String>) -> FederationError {
    FederationError::Rejected(e.into())
}

fn spec(p: &Provider) -> Result<&super::definition::OidcDefinition<super::Plain>, FederationError> {
    p.spec
        .oidc()
        .ok_or_else(|| unavailable("not an OIDC provider"))
}

/// The upstream's endpoints, from its (cached) discovery document.
pub async fn endpoints(state: &AppState, p: &Provider) -> Result<Endpoints, FederationError> {
    let o = spec(p)?;
    let url = o.discovery_url.clone().unwrap_or_else(|| {
        format!(
            "{}/.well-known/openid-configuration",
            o.issuer.trim_end_matches('/')
        )
    });
    let doc = state
        .documents
        .get(&url, state.now())
        .await
        .map_err(unavailable)?;
    let json = doc
        .json
        .as_deref()
        .ok_or_else(|| unavailable("discovery document is not JSON"))?;
    let s = |k: &str| json.get(k).and_then(Value::as_str).map(str::to_string);
    // OIDC Discovery §4.3: the issuer in the document is exactly the one configured.
    let issuer = s("issuer").ok_or_else(|| unavailable("discovery document without issuer"))?;
    if issuer != o.issuer {
        return Err(unavailable(format!(
            "discovery document names issuer {issuer}, not {}",
            o.issuer
        )));
    }
    // Every endpoint the document names is held to the outbound rules at once (https, no
    // internal address): the server calls three of them, and sends browsers to the others. The
    // guard checks again, on the resolved address, when it connects.
    let guarded = |k: &str| -> Result<Option<String>, FederationError> {
        match s(k) {
            None => Ok(None),
            Some(u) => match state.outbound.policy().check_url(&u) {
                Ok(_) => Ok(Some(u)),
                Err(e) => {
                    tracing::warn!(target: "security", event = "upstream_document_refused", provider = %p.spec.id, endpoint = k, error = %e);
                    Err(unavailable(format!("discovery document: {k} {e}")))
                }
            },
        }
    };
    let need =
        |k: &str| guarded(k)?.ok_or_else(|| unavailable(format!("discovery document lacks {k}")));
    Ok(Endpoints {
        authorization_endpoint: need("authorization_endpoint")?,
        token_endpoint: need("token_endpoint")?,
        jwks_uri: need("jwks_uri")?,
        userinfo_endpoint: guarded("userinfo_endpoint")?,
        end_session_endpoint: guarded("end_session_endpoint")?,
        iss_parameter: json
            .get("authorization_response_iss_parameter_supported")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        issuer,
    })
}

/// The S256 PKCE challenge of `verifier` (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    B64.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ))
}

/// The upstream authorization URL for one round trip.
#[allow(clippy::too_many_arguments)]
pub async fn authorization_url(
    state: &AppState,
    tenant: &Tenant,
    p: &Provider,
    state_value: &str,
    nonce: &str,
    verifier: &str,
    login_hint: Option<&str>,
    force_login: bool,
) -> Result<String, FederationError> {
    let o = spec(p)?;
    let e = endpoints(state, p).await?;
    let mut url = url::Url::parse(&e.authorization_endpoint).map_err(unavailable)?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &o.client_id)
            .append_pair("redirect_uri", &p.callback_url(tenant))
            .append_pair("scope", &o.scopes.join(" "))
            .append_pair("state", state_value)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &pkce_challenge(verifier))
            .append_pair("code_challenge_method", "S256");
        if let Some(h) = login_hint {
            q.append_pair("login_hint", h);
        }
        if force_login {
            q.append_pair("prompt", "login");
        }
    }
    Ok(url.into())
}

/// The allowed id token algorithms of a provider.
fn allowed_algs(o: &super::definition::OidcDefinition<super::Plain>) -> Vec<Alg> {
    if o.allowed_algorithms.is_empty() {
        Alg::ALL.to_vec()
    } else {
        o.allowed_algorithms
            .iter()
            .filter_map(|a| Alg::parse(a))
            .collect()
    }
}

/// Verifies a JWT from the upstream against its JWK Set; an unknown `kid` refetches the set
/// (at most once a minute: the upstream may have rotated).
async fn verify_upstream_jwt(
    state: &AppState,
    e: &Endpoints,
    token: &str,
    algs: &[Alg],
) -> Result<Map<String, Value>, FederationError> {
    let now = state.now();
    let doc = state
        .documents
        .get(&e.jwks_uri, now)
        .await
        .map_err(unavailable)?;
    let jwks = doc
        .json
        .clone()
        .ok_or_else(|| unavailable("JWK Set is not JSON"))?;
    match jws::verify(token, &jwks, algs) {
        Ok(v) => return Ok(v.claims),
        Err(jws::JwsError::NoKey) => {}
        Err(err) => return Err(rejected(format!("upstream token: {err}"))),
    }
    let Some(fresh) = state
        .documents
        .refetch(&e.jwks_uri, now)
        .await
        .map_err(unavailable)?
    else {
        return Err(rejected("upstream token signed with an unknown key"));
    };
    let jwks: Arc<Value> = fresh
        .json
        .clone()
        .ok_or_else(|| unavailable("JWK Set is not JSON"))?;
    jws::verify(token, &jwks, algs)
        .map(|v| v.claims)
        .map_err(|err| rejected(format!("upstream token: {err}")))
}

/// The oldest upstream token accepted in a token exchange, by its `iat`.
const MAX_EXCHANGED_AGE: i64 = 86_400;

/// A token of the upstream presented to a token exchange (RFC 8693 §2.1 subject token): a JWT
/// signed with the upstream's keys, from its issuer, addressed to this tenant (its `aud` holds
/// the client id the tenant is registered with upstream, or the tenant's issuer), unexpired.
/// The identity it names, as a sign-in through the upstream would have it.
pub async fn exchanged_identity(
    state: &AppState,
    tenant: &Tenant,
    p: &Provider,
    token: &str,
) -> Result<ExternalIdentity, FederationError> {
    let o = spec(p)?;
    let e = endpoints(state, p).await?;
    let claims = verify_upstream_jwt(state, &e, token, &allowed_algs(o)).await?;
    if claims.get("iss").and_then(Value::as_str) != Some(e.issuer.as_str()) {
        return Err(rejected("the token is from another issuer"));
    }
    let ours =
        audience_has(&claims, &o.client_id).0 || audience_has(&claims, &tenant.spec.issuer).0;
    if !ours {
        return Err(rejected("the token is meant for another audience"));
    }
    let now = state.now();
    let num = |k: &str| claims.get(k).and_then(Value::as_i64);
    if num("exp").is_none_or(|exp| exp.saturating_add(SKEW) <= now) {
        return Err(rejected("the token has expired"));
    }
    if num("iat").is_none_or(|iat| iat > now + SKEW || now - iat > MAX_EXCHANGED_AGE) {
        return Err(rejected(
            "the token has no iat, or one too old or in the future",
        ));
    }
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .ok_or_else(|| rejected("the token has no usable sub"))?
        .to_string();
    let string = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(ExternalIdentity {
        provider: p.spec.id.clone(),
        upstream: e.issuer.clone(),
        subject,
        claims: super::map_claims(&p.spec, &claims),
        amr: Vec::new(),
        acr: string("acr"),
        session: UpstreamSession::default(),
    })
}

/// `aud` holds `client_id` (a string or an array; RFC 7519 §4.1.3).
fn audience_has(claims: &Map<String, Value>, client_id: &str) -> (bool, usize) {
    match claims.get("aud") {
        Some(Value::String(a)) => (a == client_id, 1),
        Some(Value::Array(a)) => (a.iter().any(|x| x.as_str() == Some(client_id)), a.len()),
        _ => (false, 0),
    }
}

/// The callback: the code exchanged (with the PKCE verifier), the id token validated, userinfo
/// merged if configured. `iss` is the authorization response's `iss` parameter (RFC 9207).
pub async fn complete(
    state: &AppState,
    tenant: &Tenant,
    p: &Provider,
    code: &str,
    iss: Option<&str>,
    nonce: &str,
    verifier: &str,
) -> Result<ExternalIdentity, FederationError> {
    let o = spec(p)?;
    let e = endpoints(state, p).await?;
    // RFC 9207 §2.4: a mix-up defence. A wrong iss is an attack; a missing one is refused when
    // the upstream promised to send it.
    match iss {
        Some(i) if i != e.issuer => {
            return Err(rejected(
                "the authorization response came from another issuer",
            ));
        }
        None if e.iss_parameter => {
            return Err(rejected("the authorization response lacks iss"));
        }
        _ => {}
    }
    let tokens = redeem_code(state, tenant, p, &e, code, verifier).await?;
    let id_token = tokens
        .get("id_token")
        .and_then(Value::as_str)
        .ok_or_else(|| rejected("the token response has no id_token"))?;
    let claims = validate_id_token(state, o, &e, id_token, nonce).await?;
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .ok_or_else(|| rejected("id_token without a usable sub"))?
        .to_string();
    let mut upstream = claims.clone();
    if o.fetch_userinfo
        && let (Some(endpoint), Some(access_token)) = (
            &e.userinfo_endpoint,
            tokens.get("access_token").and_then(Value::as_str),
        )
    {
        let info = userinfo(state, endpoint, access_token).await?;
        // OIDC Core §5.3.4: the userinfo sub must be the id token's.
        if info.get("sub").and_then(Value::as_str) != Some(subject.as_str()) {
            return Err(rejected("userinfo is about another subject"));
        }
        for (k, v) in info {
            upstream.entry(k).or_insert(v);
        }
    }
    let strings = |k: &str| -> Vec<String> {
        claims
            .get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let string = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(ExternalIdentity {
        provider: p.spec.id.clone(),
        upstream: e.issuer.clone(),
        subject,
        claims: super::map_claims(&p.spec, &upstream),
        amr: strings("amr"),
        acr: string("acr"),
        session: UpstreamSession {
            sid: string("sid"),
            id_token: Some(id_token.to_string()),
            ..Default::default()
        },
    })
}

/// The token request (RFC 6749 §4.1.3, RFC 7636 §4.5), authenticated as the provider is
/// configured to: a signed assertion, `client_secret_post`, or Basic. The JSON answer, or why not.
async fn redeem_code(
    state: &AppState,
    tenant: &Tenant,
    p: &Provider,
    e: &Endpoints,
    code: &str,
    verifier: &str,
) -> Result<Map<String, Value>, FederationError> {
    let o = spec(p)?;
    let redirect_uri = p.callback_url(tenant);
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_verifier", verifier),
    ];
    let mut request = state.outbound.post(&e.token_endpoint).limit(MAX_RESPONSE);
    let secret = p.client_secret().unwrap_or_default();
    let assertion;
    if let Some(signer) = &p.assertion_signer {
        // RFC 7523 §2.2 / OIDC Core §9: iss = sub = client_id, aud = the token endpoint,
        // short-lived, single-use jti.
        let now = state.now();
        assertion = signer
            .sign_jwt(
                "JWT",
                &serde_json::json!({
                    "iss": o.client_id,
                    "sub": o.client_id,
                    "aud": e.token_endpoint,
                    "jti": crate::tokens::new_jti(),
                    "iat": now,
                    "exp": now + 60,
                }),
            )
            .map_err(FederationError::Internal)?;
        form.push(("client_id", &o.client_id));
        form.push((
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ));
        form.push(("client_assertion", &assertion));
    } else if o.token_endpoint_auth_method.as_deref() == Some("client_secret_post")
        || secret.is_empty()
    {
        form.push(("client_id", &o.client_id));
        if !secret.is_empty() {
            form.push(("client_secret", secret));
        }
    } else {
        // RFC 6749 §2.3.1: both parts form-urlencoded before Basic encoding.
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(&o.client_id),
            enc(secret)
        ));
        let value = reqwest::header::HeaderValue::from_str(&format!("Basic {basic}"))
            .map_err(|_| unavailable("the client credentials cannot form a header"))?;
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    let response = request
        .header(reqwest::header::ACCEPT, accept_json())
        .form(&form)
        .send()
        .await
        .map_err(unavailable)?;
    let status = response.status;
    let tokens: Map<String, Value> = serde_json::from_slice(&response.body)
        .map_err(|_| unavailable(format!("token endpoint answered {status} without JSON")))?;
    if !status.is_success() {
        let err = tokens
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        return Err(unavailable(format!(
            "token endpoint answered {status} {err}"
        )));
    }
    Ok(tokens)
}

/// OIDC Core §3.1.3.7: the signature, then the claims.
async fn validate_id_token(
    state: &AppState,
    o: &super::definition::OidcDefinition<super::Plain>,
    e: &Endpoints,
    id_token: &str,
    nonce: &str,
) -> Result<Map<String, Value>, FederationError> {
    let claims = verify_upstream_jwt(state, e, id_token, &allowed_algs(o)).await?;
    check_id_token_claims(&claims, &e.issuer, &o.client_id, nonce, state.now())?;
    Ok(claims)
}

/// OIDC Core §3.1.3.7 items 2-11 on verified claims.
pub fn check_id_token_claims(
    claims: &Map<String, Value>,
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now: i64,
) -> Result<(), FederationError> {
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(rejected("id_token from another issuer"));
    }
    let (has_aud, auds) = audience_has(claims, client_id);
    if !has_aud {
        return Err(rejected("id_token for another audience"));
    }
    // Items 4-5: with several audiences azp is required; if present it is us.
    match claims.get("azp").and_then(Value::as_str) {
        Some(azp) if azp != client_id => {
            return Err(rejected("id_token authorized for another party"));
        }
        None if auds > 1 => return Err(rejected("id_token with several audiences and no azp")),
        _ => {}
    }
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if exp.saturating_add(SKEW) <= now {
        return Err(rejected("id_token expired"));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .unwrap_or(i64::MAX);
    if iat > now + SKEW {
        return Err(rejected("id_token issued in the future"));
    }
    let presented = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
    if aws_lc_rs::constant_time::verify_slices_are_equal(presented.as_bytes(), nonce.as_bytes())
        .is_err()
    {
        return Err(rejected("id_token nonce does not match this sign-in"));
    }
    Ok(())
}

async fn userinfo(
    state: &AppState,
    endpoint: &str,
    access_token: &str,
) -> Result<Map<String, Value>, FederationError> {
    let response = state
        .outbound
        .get(endpoint)
        .limit(MAX_RESPONSE)
        .bearer_auth(access_token)
        .header(reqwest::header::ACCEPT, accept_json())
        .send()
        .await
        .map_err(unavailable)?;
    if !response.status.is_success() {
        return Err(unavailable(format!(
            "userinfo answered {}",
            response.status
        )));
    }
    serde_json::from_slice(&response.body).map_err(|_| unavailable("userinfo is not JSON"))
}

/// Where to send the browser to end the upstream session (OIDC RP-Initiated Logout §2), if
/// the upstream has an end_session endpoint.
pub async fn end_session_url(
    state: &AppState,
    p: &Provider,
    upstream: &UpstreamSession,
    post_logout_redirect_uri: &str,
    state_value: &str,
) -> Result<Option<String>, FederationError> {
    let o = spec(p)?;
    let e = endpoints(state, p).await?;
    let Some(endpoint) = e.end_session_endpoint else {
        return Ok(None);
    };
    let mut url = url::Url::parse(&endpoint).map_err(unavailable)?;
    {
        let mut q = url.query_pairs_mut();
        if let Some(t) = &upstream.id_token {
            q.append_pair("id_token_hint", t);
        }
        q.append_pair("client_id", &o.client_id)
            .append_pair("post_logout_redirect_uri", post_logout_redirect_uri)
            .append_pair("state", state_value);
    }
    Ok(Some(url.into()))
}

/// What a valid back-channel logout token names: the upstream session, the upstream subject,
/// or both (OIDC Back-Channel Logout §2.6), and its jti.
#[derive(Debug)]
pub struct LogoutToken {
    /// The upstream's issuer (which links are keyed by).
    pub issuer: String,
    pub sid: Option<String>,
    pub sub: Option<String>,
    pub jti: String,
    pub exp: i64,
}

/// Validates a back-channel logout token (OIDC Back-Channel Logout §2.6).
pub async fn verify_logout_token(
    state: &AppState,
    p: &Provider,
    token: &str,
) -> Result<LogoutToken, FederationError> {
    let o = spec(p)?;
    let e = endpoints(state, p).await?;
    let (header, _) =
        jws::decode_unverified(token).map_err(|_| rejected("malformed logout token"))?;
    // §2.4 / RFC 8725 §3.11: explicit typing, when present, says logout+jwt.
    if let Some(t) = header.get("typ").and_then(Value::as_str)
        && !t.eq_ignore_ascii_case("logout+jwt")
        && !t.eq_ignore_ascii_case("application/logout+jwt")
        && !t.eq_ignore_ascii_case("JWT")
    {
        return Err(rejected("logout token of the wrong type"));
    }
    let claims = verify_upstream_jwt(state, &e, token, &allowed_algs(o)).await?;
    let now = state.now();
    if claims.get("iss").and_then(Value::as_str) != Some(e.issuer.as_str()) {
        return Err(rejected("logout token from another issuer"));
    }
    if !audience_has(&claims, &o.client_id).0 {
        return Err(rejected("logout token for another audience"));
    }
    let iat = claims.get("iat").and_then(Value::as_i64).unwrap_or(0);
    if iat > now + SKEW || iat < now - 600 {
        return Err(rejected("logout token too old or from the future"));
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .unwrap_or(iat + 600);
    if exp.saturating_add(SKEW) <= now {
        return Err(rejected("logout token expired"));
    }
    let event = claims
        .get("events")
        .and_then(Value::as_object)
        .is_some_and(|ev| ev.contains_key("http://schemas.openid.net/event/backchannel-logout"));
    if !event {
        return Err(rejected(
            "logout token without the back-channel logout event",
        ));
    }
    if claims.contains_key("nonce") {
        return Err(rejected("a logout token must not carry a nonce"));
    }
    let sid = claims
        .get("sid")
        .and_then(Value::as_str)
        .map(str::to_string);
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .map(str::to_string);
    if sid.is_none() && sub.is_none() {
        return Err(rejected("logout token names neither sid nor sub"));
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| rejected("logout token without jti"))?
        .to_string();
    Ok(LogoutToken {
        issuer: e.issuer,
        sid,
        sub,
        jti,
        exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn id_tokens_must_be_for_us_from_our_issuer_fresh_and_carry_our_nonce() {
        let ok = serde_json::json!({"iss": "https://up", "aud": "me", "exp": 2000, "iat": 1000, "nonce": "n", "sub": "u"});
        let check = |v: Value| check_id_token_claims(&claims(v), "https://up", "me", "n", 1500);
        assert!(check(ok.clone()).is_ok());
        let with = |k: &str, x: Value| {
            let mut v = ok.clone();
            v[k] = x;
            check(v).unwrap_err().to_string()
        };
        assert_eq!(
            with("iss", "https://evil".into()),
            "id_token from another issuer"
        );
        assert_eq!(with("aud", "other".into()), "id_token for another audience");
        assert_eq!(
            with("aud", serde_json::json!(["me", "other"])),
            "id_token with several audiences and no azp"
        );
        assert_eq!(
            with("azp", "other".into()),
            "id_token authorized for another party"
        );
        assert_eq!(with("exp", 1000.into()), "id_token expired");
        assert_eq!(with("iat", 9000.into()), "id_token issued in the future");
        assert_eq!(
            with("nonce", "m".into()),
            "id_token nonce does not match this sign-in"
        );
        let mut no_nonce = ok.clone();
        no_nonce.as_object_mut().unwrap().remove("nonce");
        assert!(check(no_nonce).is_err());
        let mut several = ok.clone();
        several["aud"] = serde_json::json!(["me", "other"]);
        several["azp"] = "me".into();
        assert!(check(several).is_ok());
    }

    #[test]
    fn the_pkce_challenge_is_the_base64url_sha256_of_the_verifier() {
        // RFC 7636 §4.2 (value computed independently, with Python's hashlib).
        assert_eq!(
            pkce_challenge("dBjftJeZ4CZP-OfAwZlkX0dqtbKXWZ7xjeQs3ALpqzMaybeMoreRandom123"),
            "MFKp0zJc6ldNJA6pVb55IdFo03OikW4X-znT1W78roE"
        );
    }
}
