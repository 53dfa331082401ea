//! `POST /{tenant}/connect/ciba` (OpenID Connect CIBA Core 1.0 §7.1): who the client asks, for
//! what, and what the user will be shown.

use crate::config::Client;
use crate::config::tenant::UserSpec;
use crate::config::tenant::{CibaMode, GrantType};
use crate::error::{ErrorCode, InternalError, OAuthError};
use crate::registry::Tenant;
use crate::state::AppState;
use crate::users::throttle::{CodeCheck, Refused, Throttle};
use crate::validation::authorize::{self, AuthorizeError};
use crate::validation::client_auth::AuthenticatedClient;
use crate::validation::form::Form;
use crate::validation::scope;
use std::sync::Arc;

/// The longest `client_notification_token` kept (CIBA Core §7.1 sets no bound; RFC 6750 §2.1
/// tokens this long are not seen in practice).
const MAX_NOTIFICATION_TOKEN: usize = 1024;

/// A backchannel authentication request that passed every check. Only [`validate`] builds one.
pub struct ValidatedBackchannel {
    client: Arc<Client>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub subject: String,
    pub username: String,
    pub binding_message: Option<String>,
    pub expires_in: i64,
    pub notification_token: Option<String>,
    pub acr_values: Vec<String>,
}

/// The notification token is a credential of the client's: never in a log.
impl std::fmt::Debug for ValidatedBackchannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidatedBackchannel")
            .field("client_id", &self.client.spec.client_id)
            .field("subject", &self.subject)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl ValidatedBackchannel {
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }
}

pub async fn validate(
    state: &AppState,
    tenant: &Tenant,
    auth: &AuthenticatedClient,
    form: &Form,
    address: &str,
) -> Result<ValidatedBackchannel, OAuthError> {
    let client = auth.client().clone();
    let unauthorized = || {
        OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client may not use CIBA (backchannel authentication)",
        )
    };
    // CIBA Core §7.1: the request is authenticated; §4: the client is registered for the grant.
    let Some(registration) = client
        .spec
        .ciba
        .clone()
        .filter(|_| client.allows_grant(GrantType::Ciba) && !client.spec.interactive.public)
    else {
        return Err(unauthorized());
    };
    // CIBA Core §7.1.1: a signed request carries every parameter; the outer ones are ignored.
    let signed;
    let form = match form.get("request") {
        Some(object) => {
            signed = authorize::verify_request_object(state, tenant, &client, object, form)
                .await
                .map_err(|e| match e {
                    AuthorizeError::Page(e) | AuthorizeError::Redirect(_, e) => e,
                    AuthorizeError::Internal(e) => e.into(),
                })?;
            &signed
        }
        None if client.spec.interactive.require_signed_request_object => {
            return Err(OAuthError::invalid_request(
                "this client must send a signed request (`request`)",
            ));
        }
        None => form,
    };
    let mut scopes = requested_scopes(&client, form)?;
    let audiences = scope::audiences(tenant, &mut scopes, &[])?;
    let user = hinted_user(state, tenant, &client, form).await?;
    let binding_message = match form.get("binding_message") {
        None => None,
        Some(m) => {
            // CIBA Core §7.1: "relatively small … displayed on both devices".
            if m.chars().count() > tenant.spec.ciba.binding_message_max
                || m.chars().any(char::is_control)
                || m.trim().is_empty()
            {
                return Err(OAuthError::new(
                    ErrorCode::InvalidBindingMessage,
                    format!(
                        "binding_message must be 1 to {} characters of text",
                        tenant.spec.ciba.binding_message_max
                    ),
                ));
            }
            Some(m.to_string())
        }
    };
    // CIBA Core §7.1: user_code is only for clients registered to send one.
    if !registration.user_code && form.get("user_code").is_some() {
        return Err(OAuthError::invalid_request(
            "this client is not registered to send user_code",
        ));
    }
    let lifetime = tenant.spec.ciba.request_lifetime;
    let expires_in = match form.get("requested_expiry") {
        None => lifetime,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n > 0 => n.min(lifetime),
            _ => {
                return Err(OAuthError::invalid_request(
                    "requested_expiry must be a positive number of seconds",
                ));
            }
        },
    };
    let notification_token = form.get("client_notification_token").map(str::to_string);
    match (&notification_token, registration.mode) {
        (None, CibaMode::Ping) => {
            return Err(OAuthError::invalid_request(
                "client_notification_token is required in ping mode",
            ));
        }
        (Some(t), _) if t.is_empty() || t.len() > MAX_NOTIFICATION_TOKEN => {
            return Err(OAuthError::invalid_request(
                "client_notification_token must be 1 to 1024 characters",
            ));
        }
        _ => {}
    }
    let acr_values = form
        .get("acr_values")
        .map(|a| {
            a.split(' ')
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    // Last: a right code is used up, so nothing after it may refuse the request.
    if registration.user_code {
        let Some(code) = form.get("user_code") else {
            return Err(OAuthError::new(
                ErrorCode::MissingUserCode,
                "this client must send the user's user_code",
            ));
        };
        check_user_code(state, tenant, &user, address, code).await?;
    }
    Ok(ValidatedBackchannel {
        client,
        scopes,
        audiences,
        subject: user.subject,
        username: user.username,
        binding_message,
        expires_in,
        notification_token,
        acr_values,
    })
}

/// CIBA Core §7.1: `scope` is required and holds `openid`; each scope is the client's.
fn requested_scopes(client: &Client, form: &Form) -> Result<Vec<String>, OAuthError> {
    let requested = form
        .get("scope")
        .ok_or_else(|| OAuthError::invalid_request("scope is required"))?;
    let parsed = scope::parse(requested)?;
    if !parsed.contains(&"openid") {
        return Err(OAuthError::invalid_request(
            "a CIBA request is an OpenID Connect request: scope must include openid",
        ));
    }
    scope::allowed_for(client, &parsed)
}

/// CIBA Core §7.1: exactly one hint; the user it names, enabled, of this tenant. An unknown or
/// disabled user is `unknown_user_id` (§13) whichever hint named them: nothing else is said.
async fn hinted_user(
    state: &AppState,
    tenant: &Tenant,
    client: &Client,
    form: &Form,
) -> Result<UserSpec, OAuthError> {
    let hints = [
        form.get("login_hint"),
        form.get("id_token_hint"),
        form.get("login_hint_token"),
    ];
    if hints.iter().flatten().count() != 1 {
        return Err(OAuthError::invalid_request(
            "send exactly one of login_hint, id_token_hint and login_hint_token",
        ));
    }
    let unknown = || OAuthError::new(ErrorCode::UnknownUserId, "the hint names no known user");
    let user = match hints {
        [Some(name), _, _] => {
            if name.len() > 256 {
                return Err(unknown());
            }
            crate::users::directory::by_username(&state.store, tenant, name)
                .await
                .map_err(internal)?
        }
        [_, Some(token), _] => {
            // An id token this tenant issued to this client (OIDC Core §3.1.2.1; expired is fine).
            let hint = authorize::verify_id_token_hint(tenant, token, Some(&client.spec.client_id))
                .map_err(|_| unknown())?;
            crate::users::directory::by_subject(&state.store, tenant, &hint.subject)
                .await
                .map_err(internal)?
        }
        _ => {
            return Err(OAuthError::invalid_request(
                "login_hint_token is not supported: send login_hint or id_token_hint",
            ));
        }
    };
    user.filter(|u| u.enabled).ok_or_else(unknown)
}

/// CIBA Core §7.1 `user_code`: "a secret code … known only to the user but verifiable by the
/// OP" — here the user's current one-time code (RFC 6238), accepted once and throttled with the
/// account's and the address's one-time code limits.
async fn check_user_code(
    state: &AppState,
    tenant: &Tenant,
    user: &UserSpec,
    address: &str,
    code: &str,
) -> Result<(), OAuthError> {
    let invalid = |d: String| OAuthError::new(ErrorCode::InvalidUserCode, d);
    let Some(secret) = &user.totp_secret else {
        return Err(invalid("the user has no one-time code to give".into()));
    };
    if code.len() > 16 {
        return Err(invalid("the user_code is wrong".into()));
    }
    let throttle = Throttle::new(&state.store, tenant.slug(), &tenant.spec.login, state.now());
    match throttle
        .check_code_outside_sign_in(&user.subject, address, secret, code)
        .await?
    {
        CodeCheck::Accepted => Ok(()),
        CodeCheck::Wrong { locked_until: None } => Err(invalid("the user_code is wrong".into())),
        CodeCheck::Wrong {
            locked_until: Some(until),
        }
        | CodeCheck::Refused(Refused::Locked { until }) => Err(invalid(format!(
            "too many wrong codes: try again in {} seconds",
            (until - state.now()).max(1)
        ))),
        CodeCheck::Refused(Refused::SignInEnded) => Err(invalid("the user_code is wrong".into())),
    }
}

fn internal(e: InternalError) -> OAuthError {
    e.into()
}
