//! `grant_type=password` (RFC 6749 §4.3), for legacy clients only: RFC 9700 §2.4 says it must
//! not be used (the client sees the password, and no second factor or upstream provider fits
//! in it). A tenant allows it explicitly; then local users sign in with the same argon2id
//! check, throttle and lockout as the login page, and an account with a second factor is
//! refused (a password alone must not get past MFA).

use super::{ExtensionGrant, GrantFuture, GrantRequest, Issue, SignedIn, ValidatedGrant};
use crate::config::tenant::GrantType;
use crate::error::{ErrorCode, OAuthError};
use crate::users::throttle::{PasswordCheck, Throttle};

pub const GRANT: ExtensionGrant = ExtensionGrant {
    grant_type: "password",
    validate,
};

/// Longest username or password read (as the login form).
const MAX_FIELD: usize = 1024;

fn validate(r: GrantRequest<'_>) -> GrantFuture<'_> {
    Box::pin(async move {
        let (state, tenant, ctx) = (r.state, r.tenant, r.ctx);
        let client = r.client.client();
        // Not offered (nor advertised) where the tenant did not turn it on.
        if !tenant.spec.password_grant {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "this grant type is not supported",
            ));
        }
        if !client.allows_grant(GrantType::Password) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client may not use the password grant",
            ));
        }
        let field = |name: &str| {
            r.form
                .get(name)
                .filter(|v| !v.is_empty() && v.len() <= MAX_FIELD)
                .ok_or_else(|| {
                    OAuthError::invalid_request(format!(
                        "{name} is required (at most {MAX_FIELD} bytes)"
                    ))
                })
        };
        let (username, password) = (field("username")?, field("password")?);
        let (scopes, audiences) = super::scopes_and_audiences(tenant, client, r.form, None)?;
        let user = crate::users::directory::by_username(&state.store, tenant, username)
            .await?
            .filter(|u| u.enabled);
        let address = ctx.client_address();
        let throttle = Throttle::new(&state.store, tenant.slug(), &tenant.spec.login, state.now());
        let checked = throttle
            .check_password(
                &state.passwords,
                username,
                &address,
                user.as_ref().map(|u| u.password_hash.clone()),
                password.to_string(),
            )
            .await?;
        let failed = |reason: &str| {
            crate::events::login_failed(tenant.slug(), username, &ctx.request_id, reason, &address);
        };
        // RFC 6749 §5.2: wrong credentials are `invalid_grant`; one answer for an unknown user
        // and a wrong password.
        let user = match (checked, user) {
            (PasswordCheck::Verified, Some(user)) => user,
            (PasswordCheck::Verified | PasswordCheck::Wrong { .. }, _) => {
                failed("wrong username or password (password grant)");
                return Err(OAuthError::invalid_grant("wrong username or password"));
            }
            (PasswordCheck::Refused(_), _) => {
                failed("locked out (password grant)");
                return Err(OAuthError::invalid_grant(
                    "too many failed sign-ins: try again later",
                ));
            }
            (PasswordCheck::Busy, _) => {
                return Err(OAuthError::new(
                    ErrorCode::TemporarilyUnavailable,
                    "the server is busy checking passwords: try again shortly",
                ));
            }
        };
        if user.totp_secret.is_some() {
            failed("second factor required (password grant)");
            return Err(OAuthError::invalid_grant(
                "this account signs in with a second factor, which the password grant cannot ask for: sign in through the authorization code flow",
            ));
        }
        crate::events::login_succeeded(
            tenant.slug(),
            &user.subject,
            &ctx.request_id,
            "pwd",
            &address,
        );
        Ok(ValidatedGrant::new(
            &r.client,
            GRANT.grant_type,
            scopes,
            audiences,
            Issue::SignIn(SignedIn {
                subject: user.subject,
                amr: vec!["pwd".into()],
                acr: crate::sessions::ACR_PASSWORD.into(),
                idp: crate::federation::LOCAL.into(),
            }),
        ))
    })
}
