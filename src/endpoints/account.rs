//! The sign-in pages: `/{tenant}/account/login` (password, then TOTP when enrolled) and
//! `/{tenant}/account/consent`. Each form carries the interaction id and its CSRF token, and
//! only the browser that started the interaction (binding cookie) may complete it.
// The helpers below return a finished page as their error: it is built once per request.
#![allow(clippy::result_large_err)]

use crate::error::{ErrorCode, InternalError, OAuthError};
use crate::frontdoor::middleware::RequestContext;
use crate::frontdoor::tenant::CurrentTenant;
use crate::registry::Tenant;
use crate::response::authorize::{Flow, Interaction, error_page};
use crate::sessions;
use crate::state::AppState;
use crate::stores::{ClientStore, ConsentStore, GrantStore, SessionStore, UserStore};
use crate::tokens;
use crate::ui::{ConsentPage, LoginPage, Page, ScopeLine, TotpPage};
use crate::users::throttle::{CodeCheck, PasswordCheck, Refused, Throttle};
use crate::validation::form::{Form, FormBody};
use crate::validation::params::Query;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

#[derive(serde::Deserialize)]
pub struct InteractionQuery {
    interaction: Option<String>,
}

pub(crate) struct Ctx {
    pub(crate) state: AppState,
    pub(crate) tenant: Arc<Tenant>,
    pub(crate) ctx: RequestContext,
    pub(crate) headers: HeaderMap,
}

impl Ctx {
    pub(crate) fn fail(&self, e: OAuthError) -> Response {
        crate::events::request_rejected(
            self.tenant.slug(),
            "account",
            &self.ctx.request_id,
            e.code.as_str(),
            &e.description,
        );
        error_page(&self.tenant, &self.ctx, &e)
    }

    pub(crate) fn internal(&self, e: InternalError) -> Response {
        tracing::error!(error = %e, "sign-in page failed");
        error_page(&self.tenant, &self.ctx, &OAuthError::server_error())
    }

    pub(crate) fn flow(&self) -> Flow<'_> {
        Flow {
            state: &self.state,
            tenant: &self.tenant,
            ctx: &self.ctx,
            headers: &self.headers,
            cookies: Vec::new(),
            consent: None,
        }
    }

    pub(crate) fn action(&self, page: &str) -> String {
        format!("{}/account/{page}", self.tenant.spec.issuer)
    }

    /// The pending interaction `id` names, if this browser started it and it is still live.
    pub(crate) async fn load(&self, id: Option<&str>) -> Result<(String, Interaction), Response> {
        let expired = || {
            self.fail(OAuthError::invalid_request(
                "this sign-in has expired or is unknown; start again from the application",
            ))
        };
        let Some(id) = id.filter(|i| i.len() == 43) else {
            return Err(expired());
        };
        let record = self
            .state
            .store
            .find_grant(self.tenant.slug(), &tokens::handle_hash(id))
            .await
            .map_err(|e| self.internal(e))?;
        let Some(record) = record.filter(|r| {
            r.kind == "interaction" && r.expires_at > self.state.now() && r.consumed_at.is_none()
        }) else {
            return Err(expired());
        };
        let interaction: Interaction =
            serde_json::from_str(&record.data).map_err(|e| self.internal(e.into()))?;
        let bound = sessions::read_cookie(&self.headers, sessions::BIND_COOKIE).is_some_and(|b| {
            aws_lc_rs::constant_time::verify_slices_are_equal(
                tokens::handle_hash(b).as_bytes(),
                interaction.bind_hash.as_bytes(),
            )
            .is_ok()
        });
        if !bound {
            return Err(self.fail(OAuthError::invalid_request(
                "this sign-in was started in another browser",
            )));
        }
        Ok((id.to_string(), interaction))
    }

    pub(crate) async fn save(&self, id: &str, i: &Interaction) -> Result<(), Response> {
        let data = serde_json::to_string(i).map_err(|e| self.internal(e.into()))?;
        self.state
            .store
            .update_grant_data(self.tenant.slug(), &tokens::handle_hash(id), &data)
            .await
            .map_err(|e| self.internal(e))
    }

    pub(crate) fn check_csrf(&self, form: &Form, i: &Interaction) -> Result<(), Response> {
        let ok = form.get("csrf").is_some_and(|c| {
            aws_lc_rs::constant_time::verify_slices_are_equal(c.as_bytes(), i.csrf.as_bytes())
                .is_ok()
        });
        if ok {
            Ok(())
        } else {
            Err(self.fail(OAuthError::invalid_request(
                "the form expired or did not come from this site; please try again",
            )))
        }
    }

    /// The enabled client of a pending interaction, or the error page.
    pub(crate) async fn interaction_client(
        &self,
        i: &Interaction,
    ) -> Result<Arc<crate::registry::Client>, Response> {
        match self
            .tenant
            .clients
            .find_client(self.tenant.slug(), &i.request.client_id)
            .await
        {
            Ok(Some(c)) if c.spec.enabled => Ok(c),
            Ok(_) => Err(self.fail(OAuthError::new(ErrorCode::InvalidClient, "unknown client"))),
            Err(e) => Err(self.internal(e)),
        }
    }

    /// The tenant's sign-in throttle, now.
    fn throttle(&self) -> Throttle {
        Throttle::new(
            &self.state.store,
            self.tenant.slug(),
            &self.tenant.spec.login,
            self.state.now(),
        )
    }

    /// "in N minutes" for a lock.
    fn retry_after(&self, refused: Refused) -> Option<String> {
        match refused {
            Refused::Locked { until } => Some(retry_text(until - self.state.now())),
            Refused::SignInEnded => None,
        }
    }

    fn login_failed(&self, username: &str, reason: &str) {
        crate::events::login_failed(
            self.tenant.slug(),
            username,
            &self.ctx.request_id,
            reason,
            &self.client_ip(),
        );
    }

    /// The sign-in used up its one-time code attempts and has been ended.
    fn sign_in_ended(&self, username: &str) -> Response {
        self.login_failed(username, "too many wrong one-time codes: sign-in ended");
        self.fail(OAuthError::invalid_request(
            "too many wrong codes: this sign-in has ended; start again from the application",
        ))
    }

    pub(crate) fn client_ip(&self) -> String {
        self.ctx
            .client_ip
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "-".into())
    }

    /// Continues the authorization request now that `session` exists (or consent was given).
    async fn resume(
        &self,
        id: String,
        interaction: Interaction,
        extra_cookies: Vec<axum::http::HeaderValue>,
    ) -> Response {
        let client = match self.interaction_client(&interaction).await {
            Ok(cl) => cl,
            Err(r) => return r,
        };
        let session = match sessions::current(&self.state, &self.tenant, &self.headers).await {
            Ok(s) => s,
            Err(e) => return self.internal(e),
        };
        let mut flow = self.flow();
        flow.cookies = extra_cookies;
        flow.proceed(
            &client,
            interaction.request.clone(),
            session,
            Some((id, interaction)),
        )
        .await
    }
}

pub(crate) fn extract(
    state: AppState,
    tenant: Arc<Tenant>,
    ctx: RequestContext,
    headers: HeaderMap,
) -> Ctx {
    Ctx {
        state,
        tenant,
        ctx,
        headers,
    }
}

async fn login_page(
    c: &Ctx,
    id: &str,
    i: &Interaction,
    username: &str,
    error: Option<String>,
    locked: Option<String>,
) -> Response {
    render_login(c, id, i, username, error, locked, StatusCode::OK).await
}

/// The password could not be checked now (every hashing thread busy and the queue full): the
/// login page again, as 503 with Retry-After (RFC 9110 §15.6.4, §10.2.3), so that the user (or
/// the browser) simply submits again; nothing was counted against the account.
async fn busy_page(c: &Ctx, id: &str, i: &Interaction, username: &str) -> Response {
    let error = "Too many sign-ins are being checked right now. Please try again in a moment.";
    let mut r = render_login(
        c,
        id,
        i,
        username,
        Some(error.into()),
        None,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    if r.status() == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut().insert(
            header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
    }
    r
}

async fn render_login(
    c: &Ctx,
    id: &str,
    i: &Interaction,
    username: &str,
    error: Option<String>,
    locked: Option<String>,
    status: StatusCode,
) -> Response {
    let client = match c.interaction_client(i).await {
        Ok(cl) => cl,
        Err(r) => return r,
    };
    let providers = match crate::federation::offered(&c.state, &c.tenant, &client).await {
        Ok(p) => p,
        Err(e) => return c.internal(e),
    };
    c.tenant.pages.render(
        &Page::Login(LoginPage {
            action: c.action("login"),
            interaction: id.to_string(),
            csrf: i.csrf.clone(),
            username: username.to_string(),
            client_name: client
                .spec
                .client_name
                .clone()
                .unwrap_or_else(|| client.spec.client_id.clone()),
            error,
            locked_until: locked,
            local: crate::federation::local_login_allowed(&client),
            providers: providers
                .into_iter()
                .map(|(pid, name)| crate::ui::ProviderButton {
                    url: format!(
                        "{}/federation/{pid}/start?interaction={id}",
                        c.tenant.spec.issuer
                    ),
                    name,
                })
                .collect(),
        }),
        status,
    )
}

fn retry_text(seconds: i64) -> String {
    let minutes = (seconds + 59) / 60;
    if minutes <= 1 {
        "in a minute".into()
    } else {
        format!("in {minutes} minutes")
    }
}

pub async fn login_form(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    Query(q): Query<InteractionQuery>,
) -> Response {
    let c = extract(state, tenant, ctx, headers);
    let (id, i) = match c.load(q.interaction.as_deref()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let hint = i.request.login_hint.clone().unwrap_or_default();
    login_page(&c, &id, &i, &hint, None, None).await
}

pub async fn login_submit(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    form: Result<FormBody, Response>,
) -> Response {
    let c = extract(state, tenant, ctx, headers);
    let Ok(FormBody(form)) = form else {
        return c.fail(OAuthError::invalid_request("the form could not be read"));
    };
    let (id, mut i) = match c.load(form.get("interaction")).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(r) = c.check_csrf(&form, &i) {
        return r;
    }
    let username = form.get("username").unwrap_or_default().trim().to_string();
    let password = form.get("password").unwrap_or_default().to_string();
    let client = match c.interaction_client(&i).await {
        Ok(cl) => cl,
        Err(r) => return r,
    };
    // Home-realm discovery: a work email whose domain a provider claims goes to that provider.
    if username.contains('@') && username.len() <= 200 {
        match crate::federation::provider_for_email(&c.state, &c.tenant, &username).await {
            Ok(Some(p)) if crate::federation::client_allows(&client, &p) => {
                let location = format!(
                    "{}/federation/{p}/start?interaction={id}",
                    c.tenant.spec.issuer
                );
                return c.flow().redirect(&location);
            }
            Ok(_) => {}
            Err(e) => return c.internal(e),
        }
    }
    if !crate::federation::local_login_allowed(&client) {
        return c.fail(OAuthError::invalid_request(
            "this application does not accept local accounts",
        ));
    }
    if username.is_empty() || username.len() > 200 || password.len() > 1024 {
        return login_page(
            &c,
            &id,
            &i,
            &username,
            Some("Enter your username and password.".into()),
            None,
        )
        .await;
    }
    let user = match find_user(&c, &username).await {
        Ok(u) => u.filter(|u| u.enabled),
        Err(e) => return c.internal(e),
    };
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let checked = c
        .throttle()
        .check_password(
            &c.state.passwords,
            &username,
            &c.client_ip(),
            hash,
            password,
        )
        .await;
    match checked {
        Ok(PasswordCheck::Verified) => {}
        Ok(PasswordCheck::Wrong { locked_until }) => {
            c.login_failed(&username, "wrong username or password");
            let error = Some("Wrong username or password.".into());
            let locked = locked_until.map(|u| retry_text(u - c.state.now()));
            return login_page(&c, &id, &i, &username, error, locked).await;
        }
        Ok(PasswordCheck::Refused(refused)) => {
            c.login_failed(&username, "locked out");
            let locked = c.retry_after(refused);
            return login_page(&c, &id, &i, &username, None, locked).await;
        }
        Ok(PasswordCheck::Busy) => {
            c.login_failed(&username, "password hashing queue full");
            return busy_page(&c, &id, &i, &username).await;
        }
        Err(e) => return c.internal(e),
    }
    let Some(user) = user else {
        return c.internal(InternalError::Other("verified without a user".into()));
    };
    if user.totp_secret.is_some() {
        i.pending_subject = Some(user.subject.clone());
        if let Err(r) = c.save(&id, &i).await {
            return r;
        }
        return totp_page(&c, &id, &i, &user.username, None);
    }
    finish_login(
        c,
        id,
        i,
        sessions::Login::local(&user.subject, &["pwd"], ACR_PASSWORD),
    )
    .await
}

pub const ACR_PASSWORD: &str = "urn:portcullis:acr:pwd";
pub const ACR_MFA: &str = "urn:portcullis:acr:mfa";

fn totp_page(
    c: &Ctx,
    id: &str,
    i: &Interaction,
    username: &str,
    error: Option<String>,
) -> Response {
    c.tenant.pages.render(
        &Page::Totp(TotpPage {
            action: c.action("login/totp"),
            interaction: id.to_string(),
            csrf: i.csrf.clone(),
            username: username.to_string(),
            error,
        }),
        StatusCode::OK,
    )
}

pub async fn totp_submit(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    form: Result<FormBody, Response>,
) -> Response {
    let c = extract(state, tenant, ctx, headers);
    let Ok(FormBody(form)) = form else {
        return c.fail(OAuthError::invalid_request("the form could not be read"));
    };
    let (id, i) = match c.load(form.get("interaction")).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(r) = c.check_csrf(&form, &i) {
        return r;
    }
    let Some(subject) = i.pending_subject.clone() else {
        return c.fail(OAuthError::invalid_request(
            "sign in with your password first",
        ));
    };
    let user = match find_subject(&c, &subject).await {
        Ok(Some(u)) if u.enabled => u,
        Ok(_) => return c.fail(OAuthError::invalid_request("unknown user")),
        Err(e) => return c.internal(e),
    };
    let Some(secret) = user.totp_secret.clone() else {
        return c.fail(OAuthError::invalid_request("no second factor is enrolled"));
    };
    let code = form.get("code").unwrap_or_default();
    let checked = c
        .throttle()
        .check_code(
            &subject,
            &tokens::handle_hash(&id),
            &c.client_ip(),
            &secret,
            code,
        )
        .await;
    match checked {
        Ok(CodeCheck::Accepted) => {}
        Ok(CodeCheck::Wrong { locked_until }) => {
            c.login_failed(&user.username, "wrong or reused one-time code");
            let mut text =
                "That code is not valid. Enter the current code from your authenticator app."
                    .to_string();
            if let Some(until) = locked_until {
                let retry = retry_text(until - c.state.now());
                text = format!("{text} Too many attempts: try again {retry}.");
            }
            return totp_page(&c, &id, &i, &user.username, Some(text));
        }
        Ok(CodeCheck::Refused(Refused::SignInEnded)) => return c.sign_in_ended(&user.username),
        Ok(CodeCheck::Refused(refused)) => {
            c.login_failed(&user.username, "locked out");
            let text = c
                .retry_after(refused)
                .map(|r| format!("Too many attempts. Try again {r}."));
            return totp_page(&c, &id, &i, &user.username, text);
        }
        Err(e) => return c.internal(e),
    }
    finish_login(
        c,
        id,
        i,
        sessions::Login::local(&subject, &["pwd", "otp", "mfa"], ACR_MFA),
    )
    .await
}

pub(crate) async fn finish_login(
    c: Ctx,
    id: String,
    mut i: Interaction,
    login: sessions::Login,
) -> Response {
    // A new sign-in replaces any session this browser had (no session fixation).
    match sessions::current(&c.state, &c.tenant, &c.headers).await {
        Ok(Some(old)) => {
            if let Err(e) = c
                .state
                .store
                .delete_session(c.tenant.slug(), &old.sid)
                .await
            {
                return c.internal(e);
            }
        }
        Ok(None) => {}
        Err(e) => return c.internal(e),
    }
    let (session, cookie) = match sessions::start(
        &c.state,
        &c.tenant,
        &login,
        &i.request.client_id,
        c.ctx.secure,
    )
    .await
    {
        Ok(x) => x,
        Err(e) => return c.internal(e),
    };
    crate::events::login_succeeded(
        c.tenant.slug(),
        &login.subject,
        &c.ctx.request_id,
        &login.amr.join(" "),
        &c.client_ip(),
    );
    // Saved by `proceed` only if the interaction goes on (to consent).
    i.pending_subject = None;
    i.fresh_login = true;
    let client = match c.interaction_client(&i).await {
        Ok(cl) => cl,
        Err(r) => return r,
    };
    let mut flow = c.flow();
    flow.cookies.push(cookie);
    flow.proceed(&client, i.request.clone(), Some(session), Some((id, i)))
        .await
}

async fn find_user(
    c: &Ctx,
    username: &str,
) -> Result<Option<crate::config::tenant::UserSpec>, InternalError> {
    if let Some(u) = c.tenant.spec.users.iter().find(|u| u.username == username) {
        return Ok(Some(u.clone()));
    }
    c.state
        .store
        .find_user_by_username(c.tenant.slug(), username)
        .await
}

pub async fn find_subject_in(
    state: &AppState,
    tenant: &Tenant,
    subject: &str,
) -> Result<Option<crate::config::tenant::UserSpec>, InternalError> {
    if let Some(u) = tenant.spec.users.iter().find(|u| u.subject == subject) {
        return Ok(Some(u.clone()));
    }
    state
        .store
        .find_user_by_subject(tenant.slug(), subject)
        .await
}

async fn find_subject(
    c: &Ctx,
    subject: &str,
) -> Result<Option<crate::config::tenant::UserSpec>, InternalError> {
    find_subject_in(&c.state, &c.tenant, subject).await
}

pub async fn consent_form(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    Query(q): Query<InteractionQuery>,
) -> Response {
    let c = extract(state, tenant, ctx, headers);
    let (id, i) = match c.load(q.interaction.as_deref()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let client = match c.interaction_client(&i).await {
        Ok(cl) => cl,
        Err(r) => return r,
    };
    let spec = &c.tenant.spec;
    let mut identity_scopes = Vec::new();
    let mut api_scopes = Vec::new();
    for s in &i.request.scopes {
        if let Some(r) = spec.identity_resources.iter().find(|r| &r.name == s) {
            identity_scopes.push(ScopeLine {
                name: s.clone(),
                display_name: r.display_name.clone().unwrap_or_else(|| match s.as_str() {
                    "openid" => "Your user identifier".into(),
                    other => other.to_string(),
                }),
                description: None,
            });
        } else if let Some(a) = spec.api_scopes.iter().find(|a| &a.name == s) {
            api_scopes.push(ScopeLine {
                name: s.clone(),
                display_name: a.display_name.clone().unwrap_or_else(|| s.clone()),
                description: a.description.clone(),
            });
        } else if s == "offline_access" {
            api_scopes.push(ScopeLine {
                name: s.clone(),
                display_name: "Stay signed in (offline access)".into(),
                description: Some("The application may keep access while you are away.".into()),
            });
        }
    }
    let resources = i
        .request
        .audiences
        .iter()
        .map(|a| {
            spec.api_resources
                .iter()
                .find(|r| &r.name == a)
                .and_then(|r| r.display_name.clone())
                .unwrap_or_else(|| a.clone())
        })
        .collect();
    c.tenant.pages.render(
        &Page::Consent(ConsentPage {
            action: c.action("consent"),
            interaction: id,
            csrf: i.csrf.clone(),
            client_name: client
                .spec
                .client_name
                .clone()
                .unwrap_or_else(|| client.spec.client_id.clone()),
            client_uri: client.spec.interactive.client_uri.clone(),
            identity_scopes,
            api_scopes,
            resources,
            allow_remember: client.spec.interactive.allow_remember_consent,
        }),
        StatusCode::OK,
    )
}

pub async fn consent_submit(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ctx: RequestContext,
    headers: HeaderMap,
    form: Result<FormBody, Response>,
) -> Response {
    let c = extract(state, tenant, ctx, headers);
    let Ok(FormBody(form)) = form else {
        return c.fail(OAuthError::invalid_request("the form could not be read"));
    };
    let (id, mut i) = match c.load(form.get("interaction")).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(r) = c.check_csrf(&form, &i) {
        return r;
    }
    let session = match sessions::current(&c.state, &c.tenant, &c.headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return c.fail(OAuthError::invalid_request("sign in first")),
        Err(e) => return c.internal(e),
    };
    match form.get("decision") {
        Some("allow") => {}
        Some("deny") => {
            let target = i.request.error_target();
            if let Err(e) = c
                .state
                .store
                .delete_grant(c.tenant.slug(), &tokens::handle_hash(&id))
                .await
            {
                return c.internal(e);
            }
            // RFC 6749 §4.1.2.1
            return c.flow().error_redirect(
                &target,
                OAuthError::new(ErrorCode::AccessDenied, "the user denied the request"),
            );
        }
        _ => return c.fail(OAuthError::invalid_request("choose allow or deny")),
    }
    let remember = form.get("remember") == Some("on");
    let client = match c.interaction_client(&i).await {
        Ok(cl) => cl,
        Err(r) => return r,
    };
    if remember && client.spec.interactive.allow_remember_consent {
        let now = c.state.now();
        let expires = client.spec.interactive.consent_lifetime.map(|l| now + l);
        if let Err(e) = c
            .state
            .store
            .upsert_consent(
                c.tenant.slug(),
                &session.subject,
                &client.spec.client_id,
                &i.request.scopes,
                now,
                expires,
            )
            .await
        {
            return c.internal(e);
        }
    }
    i.consented = true;
    if let Err(r) = c.save(&id, &i).await {
        return r;
    }
    c.resume(id, i, Vec::new()).await
}

/// Answers a GET on a POST-only page path with a plain 405.
pub async fn post_only() -> Response {
    let mut r = StatusCode::METHOD_NOT_ALLOWED.into_response();
    r.headers_mut()
        .insert(header::ALLOW, axum::http::HeaderValue::from_static("POST"));
    r
}
