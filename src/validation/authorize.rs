//! Authorization requests (RFC 6749 §4.1.1, OIDC Core §3.1.2.1, RFC 7636, RFC 9126, RFC 9101).
//!
//! Two kinds of failure: before the client and its redirect URI are established, the user sees
//! an error page and nobody is redirected (RFC 6749 §4.1.2.1); after, the error goes back to the
//! client's redirect URI.

use super::form::Form;
use crate::config::Client;
use crate::config::tenant::{GrantType, is_loopback};
use crate::error::{ErrorCode, InternalError, OAuthError};
use crate::keys::Alg;
use crate::registry::Tenant;
use crate::state::AppState;
use crate::stores::{ClientStore, Consumed, GrantKind, GrantStore};
use crate::tokens;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub const PAR_URN_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
const MAX_PARAM: usize = 2048;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    Query,
    Fragment,
    FormPost,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    None,
    Login,
    Consent,
    SelectAccount,
}

/// Where an error may be sent once the client and redirect URI are trusted.
#[derive(Debug, Clone)]
pub struct ErrorTarget {
    pub redirect_uri: String,
    pub response_mode: ResponseMode,
    pub state: Option<String>,
}

#[derive(Debug)]
pub enum AuthorizeError {
    /// Shown to the user; never redirected.
    Page(OAuthError),
    /// Sent to the client's redirect URI.
    Redirect(ErrorTarget, OAuthError),
    Internal(InternalError),
}

impl From<InternalError> for AuthorizeError {
    fn from(e: InternalError) -> Self {
        Self::Internal(e)
    }
}

/// An authorization request that passed every check. Only [`validate`] builds one (it is also
/// read back from the store while the user signs in).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidatedAuthorize {
    pub client_id: String,
    pub redirect_uri: String,
    pub response_mode: ResponseMode,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Vec<Prompt>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub acr_values: Vec<String>,
    pub id_token_hint_sub: Option<String>,
    pub ui_locales: Option<String>,
    /// RFC 9449 §10: the DPoP key thumbprint the code is bound to.
    #[serde(default)]
    pub dpop_jkt: Option<String>,
    /// The upstream provider to sign in with (home-realm discovery hint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_hint: Option<String>,
    #[serde(skip)]
    _sealed: Sealed,
}

#[derive(Debug, Clone, Default)]
struct Sealed;

impl ValidatedAuthorize {
    /// A device's request (RFC 8628 §3.1, already validated by `validation::device`) as the
    /// sign-in pipeline sees it: nothing to redirect to, and the consent page always shown —
    /// the user must see which client and which scopes a code gives away (§5.4).
    pub fn for_device(client_id: &str, scopes: &[String], audiences: &[String]) -> Self {
        Self {
            client_id: client_id.to_string(),
            redirect_uri: String::new(),
            response_mode: ResponseMode::Query,
            scopes: scopes.to_vec(),
            audiences: audiences.to_vec(),
            state: None,
            nonce: None,
            code_challenge: None,
            code_challenge_method: None,
            prompt: vec![Prompt::Consent],
            max_age: None,
            login_hint: None,
            acr_values: Vec::new(),
            id_token_hint_sub: None,
            ui_locales: None,
            dpop_jkt: None,
            idp_hint: None,
            _sealed: Sealed,
        }
    }

    /// A SAML AuthnRequest (already validated by `validation::saml`) as the sign-in pipeline
    /// sees it: the SP's entity id stands for the client; ForceAuthn is `prompt=login`,
    /// IsPassive `prompt=none` (SAML core §3.4.1); a RequestedAuthnContext only a second
    /// factor satisfies is `acr_values` MFA (a session without one signs in again).
    pub fn for_saml(
        entity_id: &str,
        force_authn: bool,
        is_passive: bool,
        require_mfa: bool,
    ) -> Self {
        let mut prompt = Vec::new();
        if force_authn {
            prompt.push(Prompt::Login);
        }
        if is_passive {
            prompt.push(Prompt::None);
        }
        let acr_values = if require_mfa {
            vec![crate::sessions::ACR_MFA.to_string()]
        } else {
            Vec::new()
        };
        Self {
            prompt,
            acr_values,
            ..Self::for_device(entity_id, &["openid".to_string()], &[])
        }
    }

    /// The application portal's own sign-in: no client to answer, nothing asked for but that
    /// the user signs in (`id` stands for the portal in the session's list of clients).
    pub fn for_portal(id: &str) -> Self {
        Self {
            prompt: Vec::new(),
            ..Self::for_device(id, &[], &[])
        }
    }

    /// A backchannel request (CIBA Core §7.1, already validated by `validation::backchannel`)
    /// as the sign-in pipeline sees it: for the user `subject` only (another user's session
    /// asks for a login, prefilled with `username`), with the ACRs it asks for.
    pub fn for_backchannel(
        client_id: &str,
        scopes: &[String],
        audiences: &[String],
        (subject, username): (&str, &str),
        acr_values: Vec<String>,
    ) -> Self {
        Self {
            prompt: Vec::new(),
            login_hint: Some(username.to_string()),
            id_token_hint_sub: Some(subject.to_string()),
            acr_values,
            ..Self::for_device(client_id, scopes, audiences)
        }
    }

    pub fn is_openid(&self) -> bool {
        self.scopes.iter().any(|s| s == "openid")
    }
    pub fn error_target(&self) -> ErrorTarget {
        ErrorTarget {
            redirect_uri: self.redirect_uri.clone(),
            response_mode: self.response_mode,
            state: self.state.clone(),
        }
    }
}

fn page(code: ErrorCode, d: &'static str) -> AuthorizeError {
    AuthorizeError::Page(OAuthError::new(code, d))
}

/// Parameters of a request: the query or body, replaced by a pushed request (RFC 9126) or by
/// the parameters of a request object (RFC 9101 §6.3: only those count).
pub async fn resolve_parameters(
    state: &AppState,
    tenant: &Tenant,
    form: Form,
) -> Result<(Form, bool, bool), AuthorizeError> {
    let mut via_par = false;
    let mut signed = false;
    let mut form = form;
    if let Some(request_uri) = form.get("request_uri") {
        if form.get("request").is_some() {
            return Err(page(
                ErrorCode::InvalidRequest,
                "request and request_uri cannot both be used",
            ));
        }
        let Some(handle) = request_uri.strip_prefix(PAR_URN_PREFIX) else {
            // RFC 9101 §5.2: only pushed request URIs are supported (no fetching of URLs).
            return Err(page(
                ErrorCode::InvalidRequestUri,
                "only request URIs from the pushed authorization endpoint are accepted",
            ));
        };
        let hash = tokens::handle_hash(handle);
        // RFC 9126 §2.2: a request_uri is single use.
        let record = match state
            .store
            .consume_grant(tenant.slug(), &hash, state.now(), &[])
            .await?
        {
            Consumed::Fresh(r) if r.kind == GrantKind::Par => r,
            _ => {
                return Err(page(
                    ErrorCode::InvalidRequestUri,
                    "the request_uri is unknown, expired or already used",
                ));
            }
        };
        // RFC 9126 §4: the client_id must be present and match the pushed request's client.
        if form.get("client_id") != Some(record.client_id.as_str()) {
            return Err(page(
                ErrorCode::InvalidRequestUri,
                "the request_uri was pushed by another client",
            ));
        }
        let pairs: Vec<(String, String)> =
            serde_json::from_str(&record.data).map_err(InternalError::from)?;
        form = Form::from_pairs(pairs);
        via_par = true;
        signed = form.get("_signed").is_some();
    } else if let Some(object) = form.get("request") {
        let client_id = form.get("client_id").ok_or_else(|| {
            page(
                ErrorCode::InvalidRequest,
                "client_id is required with a request object",
            )
        })?;
        let client = find_client(tenant, client_id).await?;
        form = verify_request_object(state, tenant, &client, object, &form).await?;
        signed = true;
    }
    Ok((form, via_par, signed))
}

async fn find_client(tenant: &Tenant, client_id: &str) -> Result<Arc<Client>, AuthorizeError> {
    if client_id.len() > 200 {
        return Err(page(ErrorCode::InvalidRequest, "client_id is too long"));
    }
    match tenant.clients.find_client(tenant.slug(), client_id).await? {
        Some(c) if c.spec.enabled => Ok(c),
        _ => Err(page(ErrorCode::InvalidClient, "unknown client")),
    }
}

/// The longest a request object may be valid (RFC 9101 §10.2 asks for a short lifetime; FAPI 2.0
/// Message Signing §5.3.2.1: `exp - nbf` at most 60 minutes).
pub const REQUEST_OBJECT_MAX_LIFETIME: i64 = 3600;
/// Clock skew tolerated on a request object's `iat` and `nbf`.
const REQUEST_OBJECT_SKEW: i64 = 60;
/// JWT claims of the request object that are not authorization request parameters, and
/// parameters that may not come from a request object.
const NOT_PARAMETERS: &[&str] = &[
    "iss",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "request",
    "request_uri",
    "_signed",
];

/// RFC 9101 §6: the request object is signed with one of the client's registered keys, is short
/// lived, and is used once when it carries a `jti`. RFC 9101 §6.3: the authorization request's
/// parameters are the object's alone; outside it, only `client_id` (which chose the keys) and
/// `response_type` (OIDC Core §6.1) may appear, and must then agree with it.
pub async fn verify_request_object(
    state: &AppState,
    tenant: &Tenant,
    client: &Client,
    object: &str,
    outer: &Form,
) -> Result<Form, AuthorizeError> {
    let bad = |d: &'static str| page(ErrorCode::InvalidRequestObject, d);
    if object.len() > 16 * 1024 {
        return Err(bad("the request object is too large"));
    }
    let jwks = super::client_keys::client_jwks(state, client)
        .await
        .map_err(|_| bad("the client's keys cannot be read"))?
        .ok_or_else(|| bad("the client has no registered keys for request objects"))?;
    // `alg: none` and symmetric algorithms are never in this list (RFC 9101 §10.1).
    let verified = tokens::jws::verify(object, &jwks, &Alg::ALL)
        .map_err(|_| bad("the request object signature does not verify"))?;
    let c = &verified.claims;
    let str_claim = |k: &str| c.get(k).and_then(|v| v.as_str());
    let client_id = client.spec.client_id.as_str();
    if c.contains_key("client_id") && str_claim("client_id") != Some(client_id) {
        return Err(bad("client_id in the request object does not match"));
    }
    if outer.get("client_id").is_some_and(|id| id != client_id) {
        return Err(bad("client_id outside the request object does not match"));
    }
    // OIDC Core §6.1: response_type outside the object, when present, must be the object's;
    // RFC 9101 §4: the object carries every parameter of the request.
    if let Some(rt) = outer.get("response_type") {
        match str_claim("response_type") {
            Some(inner) if inner == rt => {}
            Some(_) => {
                return Err(bad(
                    "response_type outside the request object does not match the object's",
                ));
            }
            None => return Err(bad("the request object must carry response_type")),
        }
    }
    if c.contains_key("iss") && str_claim("iss") != Some(client_id) {
        return Err(bad("iss must be the client_id"));
    }
    let aud_ok = match c.get("aud") {
        None => true,
        Some(serde_json::Value::String(a)) => a == &tenant.spec.issuer,
        Some(serde_json::Value::Array(list)) => {
            list.iter().any(|a| a.as_str() == Some(&tenant.spec.issuer))
        }
        Some(_) => false,
    };
    if !aud_ok {
        return Err(bad("aud must be the issuer"));
    }
    let now = state.now();
    let time = |k: &str| -> Result<Option<i64>, AuthorizeError> {
        match c.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| bad("exp, nbf and iat must be integers")),
        }
    };
    // RFC 9101 §10.2: a request object is short lived; exp is required so that it cannot be
    // replayed forever and so that its jti need only be remembered until then.
    let exp = time("exp")?.ok_or_else(|| bad("the request object must carry exp"))?;
    let nbf = time("nbf")?;
    let iat = time("iat")?;
    if exp <= now {
        return Err(bad("the request object has expired"));
    }
    if nbf.is_some_and(|nbf| nbf > now + REQUEST_OBJECT_SKEW) {
        return Err(bad("the request object is not yet valid"));
    }
    if iat.is_some_and(|iat| iat > now + REQUEST_OBJECT_SKEW) {
        return Err(bad("the request object was issued in the future"));
    }
    let too_long = |from: i64| exp.saturating_sub(from) > REQUEST_OBJECT_MAX_LIFETIME;
    if too_long(now - REQUEST_OBJECT_SKEW) || nbf.is_some_and(too_long) || iat.is_some_and(too_long)
    {
        return Err(bad("the request object may be valid for one hour at most"));
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (k, v) in c {
        if NOT_PARAMETERS.contains(&k.as_str()) {
            continue;
        }
        let value = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Array(items) if k == "resource" => {
                for item in items.iter().filter_map(|i| i.as_str()) {
                    pairs.push((k.clone(), item.to_string()));
                }
                continue;
            }
            other => other.to_string(),
        };
        pairs.push((k.clone(), value));
    }
    if !c.contains_key("client_id") {
        pairs.push(("client_id".into(), client_id.to_string()));
    }
    // RFC 9101 §10.3 (replay): a jti is accepted once while the object is valid, on every node.
    if let Some(jti) = c.get("jti") {
        let jti = jti
            .as_str()
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or_else(|| bad("jti must be a string of at most 256 characters"))?;
        let first = state
            .first_use(
                tenant.slug(),
                &format!("request_object:{client_id}:{jti}"),
                exp + REQUEST_OBJECT_SKEW,
            )
            .await
            .map_err(|e| match e {
                InternalError::AtCapacity(d) => page(ErrorCode::TemporarilyUnavailable, d),
                e => AuthorizeError::Internal(e),
            })?;
        if !first {
            return Err(bad("the request object was used before"));
        }
    }
    pairs.push(("_signed".into(), "1".into()));
    Ok(Form::from_pairs(pairs))
}

/// A refusal that goes back to the client: its code and description.
type Refusal = (ErrorCode, &'static str);

/// Checks an authorization request (parameters already resolved).
pub async fn validate(
    tenant: &Tenant,
    form: &Form,
    via_par: bool,
    signed: bool,
) -> Result<(Arc<Client>, ValidatedAuthorize), AuthorizeError> {
    let client_id = form
        .get("client_id")
        .ok_or_else(|| page(ErrorCode::InvalidRequest, "client_id is required"))?;
    let client = find_client(tenant, client_id).await?;
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(page(
            ErrorCode::UnauthorizedClient,
            "this client may not use the authorization code flow",
        ));
    }
    let redirect_uri = registered_redirect_uri(&client, form)?;

    // From here on errors go back to the client (RFC 6749 §4.1.2.1).
    let response_mode_param = form.get("response_mode");
    let response_mode = match response_mode_param {
        None | Some("query") => ResponseMode::Query,
        Some("fragment") => ResponseMode::Fragment,
        Some("form_post") => ResponseMode::FormPost,
        Some(_) => ResponseMode::Query,
    };
    let st = form.get("state").map(str::to_string);
    let target = ErrorTarget {
        redirect_uri: redirect_uri.clone(),
        response_mode,
        state: st.clone().filter(|s| s.len() <= MAX_PARAM),
    };
    let fail =
        |(code, d): Refusal| AuthorizeError::Redirect(target.clone(), OAuthError::new(code, d));
    if st.as_ref().is_some_and(|s| s.len() > MAX_PARAM) {
        return Err(fail((ErrorCode::InvalidRequest, "state is too long")));
    }
    if response_mode_param.is_some_and(|m| !["query", "fragment", "form_post"].contains(&m)) {
        return Err(fail((
            ErrorCode::InvalidRequest,
            "unsupported response_mode",
        )));
    }
    check_flow(tenant, &client, form, via_par, signed).map_err(fail)?;
    let mut scopes = requested_scopes(&client, form).map_err(fail)?;
    let resources: Vec<String> = form.get_all("resource").map(str::to_string).collect();
    let audiences = super::scope::audiences(tenant, &mut scopes, &resources)
        .map_err(|e| AuthorizeError::Redirect(target.clone(), e))?;
    let (code_challenge, code_challenge_method) = pkce(&client, form).map_err(fail)?;
    let oidc = oidc_parameters(tenant, client_id, form).map_err(fail)?;
    Ok((
        client,
        ValidatedAuthorize {
            client_id: client_id.to_string(),
            redirect_uri,
            response_mode,
            scopes,
            audiences,
            state: st,
            nonce: oidc.nonce,
            code_challenge,
            code_challenge_method,
            prompt: oidc.prompt,
            max_age: oidc.max_age,
            login_hint: oidc.login_hint,
            acr_values: oidc.acr_values,
            id_token_hint_sub: oidc.id_token_hint_sub,
            ui_locales: oidc.ui_locales,
            dpop_jkt: oidc.dpop_jkt,
            idp_hint: oidc.idp_hint,
            _sealed: Sealed,
        },
    ))
}

/// The redirect URI, exactly as registered (RFC 9700 §4.1.3); a mismatch is shown on a page,
/// never sent to the unregistered URI.
fn registered_redirect_uri(client: &Client, form: &Form) -> Result<String, AuthorizeError> {
    let registered = &client.spec.interactive.redirect_uris;
    match form.get("redirect_uri") {
        Some(u) if redirect_uri_matches(registered, u, client.spec.interactive.native) => {
            Ok(u.to_string())
        }
        Some(_) => Err(page(
            ErrorCode::InvalidRequest,
            "the redirect_uri is not registered for this client",
        )),
        // RFC 6749 §3.1.2.3: may be omitted when exactly one is registered (OIDC requires it).
        None if registered.len() == 1 && !has_openid(form) => {
            Ok(registered.first().cloned().unwrap_or_default())
        }
        None => Err(page(ErrorCode::InvalidRequest, "redirect_uri is required")),
    }
}

/// How the request came and what it asks for: PAR and signed request objects where required,
/// and the code flow only.
fn check_flow(
    tenant: &Tenant,
    client: &Client,
    form: &Form,
    via_par: bool,
    signed: bool,
) -> Result<(), Refusal> {
    // RFC 9126 §5: PAR may be required per tenant or per client.
    if !via_par && (tenant.spec.par.required || client.spec.interactive.require_par) {
        return Err((
            ErrorCode::InvalidRequest,
            "this client must use pushed authorization requests",
        ));
    }
    if !signed && client.spec.interactive.require_signed_request_object {
        return Err((
            ErrorCode::InvalidRequest,
            "this client must send a signed request object",
        ));
    }
    match form.get("response_type") {
        None => Err((ErrorCode::InvalidRequest, "response_type is required")),
        Some("code") => Ok(()),
        Some(_) => Err((
            ErrorCode::UnsupportedResponseType,
            "only response_type=code is supported",
        )),
    }
}

/// Scopes: each must be allowed for the client; `openid` makes it an OIDC request.
fn requested_scopes(client: &Client, form: &Form) -> Result<Vec<String>, Refusal> {
    let requested = form
        .get("scope")
        .ok_or((ErrorCode::InvalidScope, "scope is required"))?;
    let parsed = super::scope::parse(requested)
        .map_err(|_| (ErrorCode::InvalidScope, "the scope value is malformed"))?;
    let mut scopes: Vec<String> = Vec::with_capacity(parsed.len());
    for s in parsed {
        if !client.scopes.contains(s) {
            return Err((
                ErrorCode::InvalidScope,
                "a requested scope is not allowed for this client",
            ));
        }
        if s == "offline_access" && !client.allows_grant(GrantType::RefreshToken) {
            return Err((
                ErrorCode::InvalidScope,
                "offline_access needs the refresh_token grant",
            ));
        }
        scopes.push(s.to_string());
    }
    Ok(scopes)
}

/// The PKCE challenge and its method (RFC 7636).
fn pkce(client: &Client, form: &Form) -> Result<(Option<String>, Option<String>), Refusal> {
    let code_challenge = form.get("code_challenge").map(str::to_string);
    // RFC 7636 §4.3: the challenge method defaults to `plain`, which we refuse unless allowed.
    let method = match (&code_challenge, form.get("code_challenge_method")) {
        (None, Some(_)) => {
            return Err((
                ErrorCode::InvalidRequest,
                "code_challenge_method without code_challenge",
            ));
        }
        (None, None) if client.spec.interactive.require_pkce => {
            return Err((
                ErrorCode::InvalidRequest,
                "PKCE is required: send code_challenge with code_challenge_method=S256",
            ));
        }
        (None, None) => None,
        (Some(c), m) => {
            // RFC 7636 §4.2: 43-128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
            if !(43..=128).contains(&c.len())
                || !c
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
            {
                return Err((ErrorCode::InvalidRequest, "malformed code_challenge"));
            }
            match m.unwrap_or("plain") {
                "S256" => Some("S256".to_string()),
                "plain" if client.spec.interactive.allow_plain_pkce => Some("plain".to_string()),
                "plain" => {
                    return Err((
                        ErrorCode::InvalidRequest,
                        "code_challenge_method plain is not allowed: use S256",
                    ));
                }
                _ => {
                    return Err((
                        ErrorCode::InvalidRequest,
                        "unsupported code_challenge_method",
                    ));
                }
            }
        }
    };
    Ok((code_challenge, method))
}

/// The OpenID Connect parameters of the request (OIDC Core §3.1.2.1) and the hints.
struct OidcParameters {
    nonce: Option<String>,
    prompt: Vec<Prompt>,
    max_age: Option<i64>,
    id_token_hint_sub: Option<String>,
    login_hint: Option<String>,
    dpop_jkt: Option<String>,
    ui_locales: Option<String>,
    idp_hint: Option<String>,
    acr_values: Vec<String>,
}

fn oidc_parameters(
    tenant: &Tenant,
    client_id: &str,
    form: &Form,
) -> Result<OidcParameters, Refusal> {
    let nonce = form.get("nonce").map(str::to_string);
    if nonce.as_ref().is_some_and(|n| n.len() > MAX_PARAM) {
        return Err((ErrorCode::InvalidRequest, "nonce is too long"));
    }
    let prompt = prompt(form)?;
    let max_age = match form.get("max_age") {
        None => None,
        Some(v) => Some(v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or((
            ErrorCode::InvalidRequest,
            "max_age must be a non-negative integer",
        ))?),
    };
    // OIDC Core §3.1.2.1: an id token this server issued to this client.
    let id_token_hint_sub = match form.get("id_token_hint") {
        None => None,
        Some(hint) => Some(
            verify_id_token_hint(tenant, hint, Some(client_id))
                .map_err(|d| (ErrorCode::InvalidRequest, d))?
                .subject,
        ),
    };
    let short = |name: &str| -> Result<Option<String>, Refusal> {
        match form.get(name) {
            Some(v) if v.len() > 512 => Err((ErrorCode::InvalidRequest, "a parameter is too long")),
            v => Ok(v.map(str::to_string)),
        }
    };
    let login_hint = short("login_hint")?;
    // RFC 9449 §10: a JWK thumbprint is 43 base64url characters (SHA-256).
    let dpop_jkt = match form.get("dpop_jkt") {
        None => None,
        Some(j)
            if j.len() == 43
                && j.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Some(j.to_string())
        }
        Some(_) => return Err((ErrorCode::InvalidRequest, "malformed dpop_jkt")),
    };
    let ui_locales = short("ui_locales")?;
    let idp_hint = short("idp_hint")?;
    let acr_values = short("acr_values")?
        .map(|v| {
            v.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(OidcParameters {
        nonce,
        prompt,
        max_age,
        id_token_hint_sub,
        login_hint,
        dpop_jkt,
        ui_locales,
        idp_hint,
        acr_values,
    })
}

/// `prompt`: known values, each once; `none` alone (OIDC Core §3.1.2.1).
fn prompt(form: &Form) -> Result<Vec<Prompt>, Refusal> {
    let mut prompt = Vec::new();
    for p in form
        .get("prompt")
        .unwrap_or_default()
        .split(' ')
        .filter(|p| !p.is_empty())
    {
        let value = match p {
            "none" => Prompt::None,
            "login" => Prompt::Login,
            "consent" => Prompt::Consent,
            "select_account" => Prompt::SelectAccount,
            _ => return Err((ErrorCode::InvalidRequest, "unsupported prompt value")),
        };
        if !prompt.contains(&value) {
            prompt.push(value);
        }
    }
    if prompt.contains(&Prompt::None) && prompt.len() > 1 {
        return Err((
            ErrorCode::InvalidRequest,
            "prompt=none cannot be combined with other values",
        ));
    }
    Ok(prompt)
}

fn has_openid(form: &Form) -> bool {
    form.get("scope")
        .is_some_and(|s| s.split(' ').any(|x| x == "openid"))
}

/// RFC 6749 §3.1.2.3 and RFC 9700 §4.1.3: exact string comparison. RFC 8252 §7.3: native
/// clients may vary the port of a loopback IP redirect URI.
pub fn redirect_uri_matches(registered: &[String], presented: &str, native: bool) -> bool {
    if registered.iter().any(|r| r == presented) {
        return true;
    }
    if !native {
        return false;
    }
    let Ok(p) = url::Url::parse(presented) else {
        return false;
    };
    if p.scheme() != "http" || !is_loopback(&p) || p.fragment().is_some() {
        return false;
    }
    registered.iter().any(|r| {
        url::Url::parse(r).is_ok_and(|mut r| {
            if r.scheme() != "http" || !is_loopback(&r) {
                return false;
            }
            let _ = r.set_port(p.port());
            r.as_str() == p.as_str()
        })
    })
}

/// A verified `id_token_hint`: whose and for which client.
#[derive(Debug, Clone)]
pub struct IdTokenHint {
    pub subject: String,
    pub client_id: String,
}

/// An id token this tenant issued (expired ones are fine: OIDC Core §3.1.2.1, RP-Initiated
/// Logout §2), and nothing else it signs with the same keys: the header's `typ` is `JWT`, as in
/// every id token this server makes (`response::token`) — not `at+jwt` (RFC 9068 §2.1) nor
/// `logout+jwt` (Back-Channel Logout §2.4) — it has no `events` (a logout token's), and its one
/// audience is a client: `client_id` when the caller knows it. The error is the description.
pub fn verify_id_token_hint(
    tenant: &Tenant,
    hint: &str,
    client_id: Option<&str>,
) -> Result<IdTokenHint, &'static str> {
    const NOT_OURS: &str = "id_token_hint is not an id token of this issuer";
    if hint.len() > 16 * 1024 {
        return Err(NOT_OURS);
    }
    let keys = tenant.keys.load();
    let v = tokens::jws::verify(
        hint,
        &keys.public_keys,
        &tenant.spec.tokens.signing_algorithms,
    )
    .map_err(|_| NOT_OURS)?;
    let typ = v.header.get("typ").and_then(|t| t.as_str());
    // RFC 7515 §4.1.9: typ compares without regard to case.
    if !typ.is_some_and(|t| t.eq_ignore_ascii_case("JWT")) || v.claims.contains_key("events") {
        return Err("id_token_hint is not an id token");
    }
    if v.claims.get("iss").and_then(|i| i.as_str()) != Some(tenant.spec.issuer.as_str()) {
        return Err(NOT_OURS);
    }
    let audience = match v.claims.get("aud") {
        Some(serde_json::Value::String(a)) => Some(a.as_str()),
        Some(serde_json::Value::Array(list)) if list.len() == 1 => {
            list.first().and_then(|a| a.as_str())
        }
        _ => None,
    }
    .ok_or("id_token_hint has no single audience")?;
    if client_id.is_some_and(|c| c != audience) {
        return Err("id_token_hint was issued to another client");
    }
    let subject = v
        .claims
        .get("sub")
        .and_then(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .ok_or(NOT_OURS)?;
    Ok(IdTokenHint {
        subject: subject.to_string(),
        client_id: audience.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_match_exactly() {
        let reg = vec!["https://app.example/cb".to_string()];
        assert!(redirect_uri_matches(&reg, "https://app.example/cb", false));
        assert!(!redirect_uri_matches(
            &reg,
            "https://app.example/cb/",
            false
        ));
        assert!(!redirect_uri_matches(
            &reg,
            "https://app.example/cb?x=1",
            false
        ));
        assert!(!redirect_uri_matches(&reg, "https://APP.example/cb", false));
    }

    #[test]
    fn native_clients_may_vary_the_loopback_port_only() {
        let reg = vec!["http://127.0.0.1/cb".to_string()];
        assert!(redirect_uri_matches(
            &reg,
            "http://127.0.0.1:51000/cb",
            true
        ));
        assert!(!redirect_uri_matches(
            &reg,
            "http://127.0.0.1:51000/cb",
            false
        ));
        assert!(!redirect_uri_matches(
            &reg,
            "http://127.0.0.1:51000/other",
            true
        ));
        assert!(!redirect_uri_matches(
            &reg,
            "http://evil.example:51000/cb",
            true
        ));
    }
}
