//! One file per grant type, each ending in a sealed `Validated*` value.
//!
//! The grants of RFC 6749 and RFC 8628 have their own request types (`protocol::token`). Every
//! other grant is an [`ExtensionGrant`]: a `grant_type` URI and a function from the request to
//! a [`ValidatedGrant`] (the facts a token is made of), which one response generator issues. A
//! new grant is one file here that exports its `GRANT`, listed in [`EXTENSION_GRANTS`].

pub mod authorization_code;
pub mod client_credentials;
pub mod device_code;
pub mod jwt_bearer;
pub mod password;
pub mod refresh_token;
pub mod token_exchange;
pub mod webhook;

use crate::config::Client;
use crate::error::OAuthError;
use crate::registry::Tenant;
use crate::request::RequestContext;
use crate::state::AppState;
use crate::validation::client_auth::AuthenticatedClient;
use crate::validation::form::Form;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What an extension grant is given: the authenticated client and the whole request.
pub struct GrantRequest<'a> {
    pub state: &'a AppState,
    pub tenant: &'a Tenant,
    pub client: AuthenticatedClient,
    pub form: &'a Form,
    pub ctx: &'a RequestContext,
}

pub type GrantFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ValidatedGrant, OAuthError>> + Send + 'a>>;

/// A grant type beyond RFC 6749's own: its `grant_type` URI and its validation.
pub struct ExtensionGrant {
    pub grant_type: &'static str,
    pub validate: for<'a> fn(GrantRequest<'a>) -> GrantFuture<'a>,
}

/// The extension grants this server implements.
pub const EXTENSION_GRANTS: &[ExtensionGrant] =
    &[token_exchange::GRANT, jwt_bearer::GRANT, password::GRANT];

/// Validates a request of an extension grant: one this server implements, or one of the
/// tenant's webhook grants; any other `grant_type` is `unsupported_grant_type` (RFC 6749 §5.2).
pub async fn extension(
    r: GrantRequest<'_>,
    grant_type: &str,
) -> Result<ValidatedGrant, OAuthError> {
    if let Some(g) = EXTENSION_GRANTS.iter().find(|g| g.grant_type == grant_type) {
        return (g.validate)(r).await;
    }
    let tenant = r.tenant;
    match tenant
        .spec
        .extension_grants
        .iter()
        .find(|g| g.grant_type == grant_type)
    {
        Some(g) => webhook::validate(r, g).await,
        None => Err(OAuthError::new(
            crate::error::ErrorCode::UnsupportedGrantType,
            "this grant type is not supported",
        )),
    }
}

/// What the tokens of an extension grant are made of. Only validation builds one.
#[derive(Debug)]
pub struct ValidatedGrant {
    client: Arc<Client>,
    grant_type: Cow<'static, str>,
    cert_binding: Option<String>,
    scopes: Vec<String>,
    audiences: Vec<String>,
    issue: Issue,
}

/// Which tokens are issued.
#[derive(Debug)]
pub enum Issue {
    /// A user signed in just now: access, id (with `openid`) and refresh tokens (with
    /// `offline_access`), as at the end of the code flow.
    SignIn(SignedIn),
    /// One access token about a subject another token stood for (RFC 8693 §2.2.1).
    AccessToken(Derived),
}

#[derive(Debug)]
pub struct SignedIn {
    pub subject: String,
    pub amr: Vec<String>,
    pub acr: String,
    pub idp: String,
}

#[derive(Debug)]
pub struct Derived {
    pub subject: String,
    /// Claims carried over or added: `act`, `idp`, `auth_time`, `amr`, `acr`, `sid`.
    pub claims: Map<String, Value>,
    /// The issued token expires no later than this (the subject token's expiry).
    pub not_after: Option<i64>,
    /// The family the subject token belongs to, so that revoking it ends this token too.
    pub family: Option<String>,
    /// RFC 8693 §2.2.1 `issued_token_type` (token exchange only).
    pub issued_token_type: Option<&'static str>,
}

impl Derived {
    /// A token about `subject` with `claims`, capped by nothing but its lifetime.
    pub fn about(subject: String, claims: Map<String, Value>) -> Self {
        Self {
            subject,
            claims,
            not_after: None,
            family: None,
            issued_token_type: None,
        }
    }
}

impl ValidatedGrant {
    pub(crate) fn new(
        client: &AuthenticatedClient,
        grant_type: impl Into<Cow<'static, str>>,
        scopes: Vec<String>,
        audiences: Vec<String>,
        issue: Issue,
    ) -> Self {
        Self {
            client: client.client().clone(),
            grant_type: grant_type.into(),
            cert_binding: client.cert_binding().map(str::to_string),
            scopes,
            audiences,
            issue,
        }
    }
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }
    pub fn grant_type(&self) -> &str {
        &self.grant_type
    }
    /// RFC 8705 §3: the certificate thumbprint the tokens are bound to.
    pub fn cert_binding(&self) -> Option<&str> {
        self.cert_binding.as_deref()
    }
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }
    pub fn issue(&self) -> &Issue {
        &self.issue
    }
}

/// The scopes a grant yields: those asked for (each one the client may have and within
/// `ceiling`, else `invalid_scope`), or without `scope` every scope of the client within
/// `ceiling`; then narrowed to the audiences (RFC 8707), which must be known resources.
/// `ceiling` is what the subject token held (`None`: no limit beyond the client's).
pub fn scopes_and_audiences(
    tenant: &Tenant,
    client: &Client,
    form: &Form,
    ceiling: Option<&[String]>,
) -> Result<(Vec<String>, Vec<String>), OAuthError> {
    let within = |s: &str| ceiling.is_none_or(|c| c.iter().any(|x| x == s));
    let mut scopes: Vec<String> = match form.get("scope") {
        None => client
            .spec
            .scopes
            .iter()
            .filter(|s| within(s))
            .cloned()
            .collect(),
        Some(requested) => {
            let mut v = Vec::new();
            for s in crate::validation::scope::parse(requested)? {
                // RFC 8693 §2.2.2 / RFC 6749 §5.2: never wider than the client or the subject.
                if !client.scopes.contains(s) || !within(s) {
                    return Err(OAuthError::new(
                        crate::error::ErrorCode::InvalidScope,
                        "a requested scope is beyond what the client or the subject token holds",
                    ));
                }
                v.push(s.to_string());
            }
            v
        }
    };
    // RFC 8693 §2.1: `audience` names a target as `resource` does; here both are API
    // resource names of the tenant (anything else is `invalid_target`).
    let targets: Vec<String> = form
        .get_all("resource")
        .chain(form.get_all("audience"))
        .map(str::to_string)
        .collect();
    let mut audiences = crate::validation::scope::audiences(tenant, &mut scopes, &targets)?;
    if scopes.is_empty() {
        return Err(OAuthError::new(
            crate::error::ErrorCode::InvalidScope,
            "no scope can be granted for this request",
        ));
    }
    if audiences.is_empty() {
        audiences.push(tenant.default_audience.clone());
    }
    Ok((scopes, audiences))
}
