//! `/{tenant}/account/login` (the password) and `/{tenant}/account/login/totp` (the second factor
//! of users who enrolled one): steps of the sign-in pipeline (src/endpoints/interaction.rs). The
//! throttle (src/users/throttle.rs) decides whether a password or code is checked at all.

use super::interaction::{LoginOutcome, Pending, PendingInteraction, SubmittedInteraction};
use crate::error::{InternalError, OAuthError};
use crate::sessions::{self, Login};
use crate::tokens;
use crate::ui::{LoginPage, Page, ProviderButton, TotpPage};
use crate::users::throttle::{CodeCheck, PasswordCheck, Refused, Throttle};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

/// The login page.
pub async fn login_form(PendingInteraction(p): PendingInteraction) -> Response {
    let hint = p.interaction.request.login_hint.clone().unwrap_or_default();
    login_page(&p, &hint, None, None, StatusCode::OK).await
}

/// The login form: an email whose domain a provider claims goes to that provider (home-realm
/// discovery); otherwise the password is checked.
pub async fn login_submit(s: SubmittedInteraction) -> Response {
    let (p, form) = (s.pending, s.form);
    let username = form.get("username").unwrap_or_default().trim().to_string();
    let password = form.get("password").unwrap_or_default().to_string();
    if username.contains('@') && username.len() <= 200 {
        match p
            .state
            .federation
            .provider_for_email(&p.tenant, &username)
            .await
        {
            Ok(Some(id)) if crate::federation::client_allows(&p.client, &id) => {
                return p.redirect(&start_url(&p, &id));
            }
            Ok(_) => {}
            Err(e) => return p.internal(e),
        }
    }
    if !crate::federation::local_login_allowed(&p.client) {
        return p.fail(OAuthError::invalid_request(
            "this application does not accept local accounts",
        ));
    }
    if username.is_empty() || username.len() > 200 || password.len() > 1024 {
        let error = Some("Enter your username and password.".into());
        return login_page(&p, &username, error, None, StatusCode::OK).await;
    }
    let outcome = match check_password(&p, &username, password).await {
        Ok(o) => o,
        Err(e) => return p.internal(e),
    };
    match outcome {
        LoginOutcome::SignedIn(login) => p.finish(login).await,
        LoginOutcome::NeedsSecondFactor { subject, username } => {
            let mut p = p;
            p.interaction.pending_subject = Some(subject);
            if let Err(r) = p.save().await {
                return r;
            }
            totp_page(&p, &username, None)
        }
        LoginOutcome::Wrong { locked } => {
            let error = Some("Wrong username or password.".into());
            login_page(&p, &username, error, locked, StatusCode::OK).await
        }
        LoginOutcome::Locked { retry } => {
            login_page(&p, &username, None, retry, StatusCode::OK).await
        }
        LoginOutcome::Busy => busy_page(&p, &username).await,
        LoginOutcome::Ended => p.fail(OAuthError::invalid_request(
            "this sign-in has ended; start again from the application",
        )),
    }
}

/// The password step, through the throttle: a failure slot is taken before the hash.
async fn check_password(
    p: &Pending,
    username: &str,
    password: String,
) -> Result<LoginOutcome, InternalError> {
    let user = crate::users::directory::by_username(&p.state.store, &p.tenant, username)
        .await?
        .filter(|u| u.enabled);
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let checked = throttle(p)
        .check_password(&p.state.passwords, username, &p.client_ip(), hash, password)
        .await?;
    let failed = |reason: &str| login_failed(p, username, reason);
    Ok(match checked {
        PasswordCheck::Verified => {
            let Some(user) = user else {
                return Err(InternalError::Other("verified without a user".into()));
            };
            if user.totp_secret.is_some() {
                LoginOutcome::NeedsSecondFactor {
                    subject: user.subject,
                    username: user.username,
                }
            } else {
                LoginOutcome::SignedIn(Login::local(
                    &user.subject,
                    &["pwd"],
                    sessions::ACR_PASSWORD,
                ))
            }
        }
        PasswordCheck::Wrong { locked_until } => {
            failed("wrong username or password");
            LoginOutcome::Wrong {
                locked: locked_until.map(|u| retry_text(u - p.state.now())),
            }
        }
        PasswordCheck::Refused(refused) => {
            failed("locked out");
            LoginOutcome::Locked {
                retry: retry_after(p, refused),
            }
        }
        PasswordCheck::Busy => {
            failed("password hashing queue full");
            LoginOutcome::Busy
        }
    })
}

/// The second factor (RFC 6238), after the password.
pub async fn totp_submit(s: SubmittedInteraction) -> Response {
    let (p, form) = (s.pending, s.form);
    let Some(subject) = p.interaction.pending_subject.clone() else {
        return p.fail(OAuthError::invalid_request(
            "sign in with your password first",
        ));
    };
    let user = match crate::users::directory::by_subject(&p.state.store, &p.tenant, &subject).await
    {
        Ok(Some(u)) if u.enabled => u,
        Ok(_) => return p.fail(OAuthError::invalid_request("unknown user")),
        Err(e) => return p.internal(e),
    };
    let Some(secret) = user.totp_secret.clone() else {
        return p.fail(OAuthError::invalid_request("no second factor is enrolled"));
    };
    let code = form.get("code").unwrap_or_default();
    let checked = throttle(&p)
        .check_code(
            &subject,
            &tokens::handle_hash(&p.id),
            &p.client_ip(),
            &secret,
            code,
        )
        .await;
    let outcome = match checked {
        Ok(CodeCheck::Accepted) => LoginOutcome::SignedIn(Login::local(
            &subject,
            &["pwd", "otp", "mfa"],
            sessions::ACR_MFA,
        )),
        Ok(CodeCheck::Wrong { locked_until }) => {
            login_failed(&p, &user.username, "wrong or reused one-time code");
            LoginOutcome::Wrong {
                locked: locked_until.map(|u| retry_text(u - p.state.now())),
            }
        }
        Ok(CodeCheck::Refused(Refused::SignInEnded)) => {
            login_failed(
                &p,
                &user.username,
                "too many wrong one-time codes: sign-in ended",
            );
            LoginOutcome::Ended
        }
        Ok(CodeCheck::Refused(refused)) => {
            login_failed(&p, &user.username, "locked out");
            LoginOutcome::Locked {
                retry: retry_after(&p, refused),
            }
        }
        Err(e) => return p.internal(e),
    };
    match outcome {
        LoginOutcome::SignedIn(login) => p.finish(login).await,
        LoginOutcome::Wrong { locked } => {
            let mut text =
                "That code is not valid. Enter the current code from your authenticator app."
                    .to_string();
            if let Some(retry) = locked {
                text = format!("{text} Too many attempts: try again {retry}.");
            }
            totp_page(&p, &user.username, Some(text))
        }
        LoginOutcome::Locked { retry } => {
            let text = retry.map(|r| format!("Too many attempts. Try again {r}."));
            totp_page(&p, &user.username, text)
        }
        LoginOutcome::Ended => p.fail(OAuthError::invalid_request(
            "too many wrong codes: this sign-in has ended; start again from the application",
        )),
        LoginOutcome::NeedsSecondFactor { .. } | LoginOutcome::Busy => p.internal(
            InternalError::Other("unexpected second-factor outcome".into()),
        ),
    }
}

/// The tenant's sign-in throttle, now.
fn throttle(p: &Pending) -> Throttle {
    Throttle::new(
        &p.state.store,
        p.tenant.slug(),
        &p.tenant.spec.login,
        p.state.now(),
    )
}

/// "in N minutes" for a lock.
fn retry_after(p: &Pending, refused: Refused) -> Option<String> {
    match refused {
        Refused::Locked { until } => Some(retry_text(until - p.state.now())),
        Refused::SignInEnded => None,
    }
}

pub(super) fn retry_text(seconds: i64) -> String {
    let minutes = (seconds + 59) / 60;
    if minutes <= 1 {
        "in a minute".into()
    } else {
        format!("in {minutes} minutes")
    }
}

fn login_failed(p: &Pending, username: &str, reason: &str) {
    crate::events::login_failed(
        p.tenant.slug(),
        username,
        &p.ctx.request_id,
        reason,
        &p.client_ip(),
    );
}

/// Where the browser goes to sign in with upstream provider `id`.
fn start_url(p: &Pending, id: &str) -> String {
    format!(
        "{}/federation/{id}/start?interaction={}",
        p.tenant.spec.issuer, p.id
    )
}

async fn login_page(
    p: &Pending,
    username: &str,
    error: Option<String>,
    locked: Option<String>,
    status: StatusCode,
) -> Response {
    let providers = match p.state.federation.offered(&p.tenant, &p.client).await {
        Ok(list) => list,
        Err(e) => return p.internal(e),
    };
    p.tenant.pages.render(
        &Page::Login(LoginPage {
            action: p.action("login"),
            interaction: p.id.clone(),
            csrf: p.interaction.csrf.clone(),
            username: username.to_string(),
            client_name: p.client_name(),
            error,
            locked_until: locked,
            local: crate::federation::local_login_allowed(&p.client),
            providers: providers
                .into_iter()
                .map(|(id, name)| ProviderButton {
                    url: start_url(p, &id),
                    name,
                })
                .collect(),
        }),
        status,
    )
}

/// The password could not be checked now (every hashing thread busy and the queue full): the
/// login page again, as 503 with Retry-After (RFC 9110 §15.6.4, §10.2.3), so that the user (or
/// the browser) simply submits again; nothing was counted against the account.
async fn busy_page(p: &Pending, username: &str) -> Response {
    let error = "Too many sign-ins are being checked right now. Please try again in a moment.";
    let mut r = login_page(
        p,
        username,
        Some(error.into()),
        None,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    if r.status() == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

fn totp_page(p: &Pending, username: &str, error: Option<String>) -> Response {
    p.tenant.pages.render(
        &Page::Totp(TotpPage {
            action: p.action("login/totp"),
            interaction: p.id.clone(),
            csrf: p.interaction.csrf.clone(),
            username: username.to_string(),
            error,
        }),
        StatusCode::OK,
    )
}
