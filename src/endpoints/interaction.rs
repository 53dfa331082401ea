//! The sign-in pipeline. Every browser step of a sign-in — the password and second-factor
//! pages, consent, the round trip through an upstream provider, and the flows to come (device
//! verification, CIBA approval, SAML IdP sign-in, BFF login) — works on a pending interaction
//! (the downstream authorize request, kept while the user signs in, bound to the browser that
//! started it). It is loaded in one place:
//!
//! - [`PendingInteraction`]: a page named by `?interaction=` (GET);
//! - [`SubmittedInteraction`]: a form that names the interaction and echoes its CSRF token
//!   (POST);
//! - [`SignIn::pending`]: an interaction named by something the step holds (an upstream state);
//!
//! each of which checks that the interaction is live, that this browser holds it (the binding
//! cookie) and that its client is enabled, and refuses with the error page (a security event);
//! and it ends in one place: [`Pending::finish`] turns a successful [`Login`] into a session and
//! resumes the authorize request; [`Pending::fail_back`] tells the client.
//!
//! A new flow adds a step (a handler that extracts one of these and answers), not a copy of this.

// A page's refusal is a finished response, built once per request.
#![allow(clippy::result_large_err)]

use crate::config::Client;
use crate::error::{ErrorCode, InternalError, OAuthError};
use crate::registry::Tenant;
use crate::request::CurrentTenant;
use crate::request::RequestContext;
use crate::response::authorize::{Flow, Interaction, error_page};
use crate::sessions::{self, Login};
use crate::state::AppState;
use crate::stores::{ClientStore, GrantKind, GrantStore, SessionStore};
use crate::tokens;
use crate::validation::form::{Form, FormBody};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// What every sign-in step works with: the state, the tenant, the request's context and
/// headers (for the cookies).
pub struct SignIn {
    pub state: AppState,
    pub tenant: Arc<Tenant>,
    pub ctx: RequestContext,
    pub headers: HeaderMap,
}

impl FromRequestParts<AppState> for SignIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let CurrentTenant(tenant) = CurrentTenant::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Ok(ctx) = RequestContext::from_request_parts(parts, state).await;
        Ok(Self {
            state: state.clone(),
            tenant,
            ctx,
            headers: parts.headers.clone(),
        })
    }
}

impl SignIn {
    /// Refuses with the error page, and logs why (a security event).
    pub fn fail(&self, e: OAuthError) -> Response {
        crate::events::request_rejected(
            self.tenant.slug(),
            "account",
            &self.ctx.request_id,
            e.code.as_str(),
            &e.description,
        );
        error_page(&self.tenant, &self.ctx, &e)
    }

    pub fn internal(&self, e: InternalError) -> Response {
        error_page(&self.tenant, &self.ctx, &e.failed("sign-in page"))
    }

    pub fn flow(&self) -> Flow<'_> {
        Flow {
            state: &self.state,
            tenant: &self.tenant,
            ctx: &self.ctx,
            headers: &self.headers,
            cookies: Vec::new(),
            consent: None,
        }
    }

    /// The URL of one of the tenant's sign-in pages.
    pub fn action(&self, page: &str) -> String {
        format!("{}/account/{page}", self.tenant.spec.issuer)
    }

    /// A CSRF token for a form that starts a sign-in (no interaction exists yet), derived from
    /// the browser's binding cookie, which another site can neither read nor set; and the cookie
    /// to set when the browser has none yet.
    pub fn browser_csrf(&self, purpose: &str) -> (String, Option<HeaderValue>) {
        let (bind, cookie) = match sessions::read_cookie(&self.headers, sessions::BIND_COOKIE)
            .filter(|v| v.len() == 43)
        {
            Some(v) => (v.to_string(), None),
            None => {
                let v = tokens::new_handle();
                let c = sessions::set_cookie(
                    sessions::BIND_COOKIE,
                    &v,
                    &sessions::cookie_path(&self.tenant),
                    None,
                    self.ctx.secure,
                );
                (v, c)
            }
        };
        (browser_token(purpose, &bind), cookie)
    }

    /// The hash of the browser's binding cookie, if `form` echoes the token
    /// [`SignIn::browser_csrf`] gave it for `purpose`.
    pub fn check_browser_csrf(&self, purpose: &str, form: &Form) -> Option<String> {
        let bind = sessions::read_cookie(&self.headers, sessions::BIND_COOKIE)
            .filter(|v| v.len() == 43)?;
        let expected = browser_token(purpose, bind);
        let sent = form.get("csrf")?;
        aws_lc_rs::constant_time::verify_slices_are_equal(sent.as_bytes(), expected.as_bytes())
            .ok()
            .map(|()| tokens::handle_hash(bind))
    }

    pub fn client_ip(&self) -> String {
        self.ctx.client_address()
    }

    /// The pending interaction `id` names, if it is live, this browser holds it and its client
    /// is enabled.
    pub async fn pending(self, id: Option<&str>) -> Result<Pending, Response> {
        let expired = |s: &Self| {
            s.fail(OAuthError::invalid_request(
                "this sign-in has expired or is unknown; start again from the application",
            ))
        };
        let Some(id) = id.filter(|i| i.len() == 43) else {
            return Err(expired(&self));
        };
        let record = match self
            .state
            .store
            .find_grant(self.tenant.slug(), &tokens::handle_hash(id))
            .await
        {
            Ok(r) => r,
            Err(e) => return Err(self.internal(e)),
        };
        let Some(record) = record.filter(|r| {
            r.kind == GrantKind::Interaction
                && r.expires_at > self.state.now()
                && r.consumed_at.is_none()
        }) else {
            return Err(expired(&self));
        };
        let interaction: Interaction = match serde_json::from_str(&record.data) {
            Ok(i) => i,
            Err(e) => return Err(self.internal(e.into())),
        };
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
        // A SAML sign-in's "client" is the service provider it answers; the portal's, the portal.
        let client = match &interaction.saml {
            None if interaction.portal => {
                crate::response::portal::as_client(&self.tenant).map(Some)
            }
            Some(step) => crate::saml::service_provider(&self.state, &self.tenant, &step.entity_id)
                .await
                .and_then(|sp| {
                    sp.as_deref()
                        .map(crate::validation::saml::as_client)
                        .transpose()
                }),
            None => {
                self.tenant
                    .clients
                    .find_client(self.tenant.slug(), &interaction.request.client_id)
                    .await
            }
        };
        let client = match client {
            Ok(Some(c)) if c.spec.enabled => c,
            Ok(_) => {
                return Err(self.fail(OAuthError::new(ErrorCode::InvalidClient, "unknown client")));
            }
            Err(e) => return Err(self.internal(e)),
        };
        Ok(Pending {
            id: id.to_string(),
            interaction,
            client,
            sign_in: self,
        })
    }
}

/// A live sign-in of this browser, with its enabled client.
pub struct Pending {
    pub sign_in: SignIn,
    /// The interaction's id (its handle; stored by its hash).
    pub id: String,
    pub interaction: Interaction,
    pub client: Arc<Client>,
}

impl std::ops::Deref for Pending {
    type Target = SignIn;
    fn deref(&self) -> &SignIn {
        &self.sign_in
    }
}

impl Pending {
    /// The client's name for the pages.
    pub fn client_name(&self) -> String {
        self.client
            .spec
            .client_name
            .clone()
            .unwrap_or_else(|| self.client.spec.client_id.clone())
    }

    /// Keeps what this step learned for the next one.
    pub async fn save(&self) -> Result<(), Response> {
        let data = match serde_json::to_string(&self.interaction) {
            Ok(d) => d,
            Err(e) => return Err(self.internal(e.into())),
        };
        self.state
            .store
            .update_grant_data(self.tenant.slug(), &tokens::handle_hash(&self.id), &data)
            .await
            .map_err(|e| self.internal(e))
    }

    /// A successful login: a new session (replacing any this browser had: no session
    /// fixation), then the authorize request goes on (to consent, or back to the client).
    pub async fn finish(mut self, login: Login) -> Response {
        let (state, tenant) = (&self.sign_in.state, &self.sign_in.tenant);
        match sessions::current(state, tenant, &self.sign_in.headers).await {
            Ok(Some(old)) => {
                if let Err(e) = state.store.delete_session(tenant.slug(), &old.sid).await {
                    return self.internal(e);
                }
            }
            Ok(None) => {}
            Err(e) => return self.internal(e),
        }
        let started = sessions::start(
            state,
            tenant,
            &login,
            &self.interaction.request.client_id,
            self.sign_in.ctx.secure,
        )
        .await;
        let (session, cookie) = match started {
            Ok(x) => x,
            Err(e) => return self.internal(e),
        };
        crate::events::login_succeeded(
            tenant.slug(),
            &login.subject,
            &self.sign_in.ctx.request_id,
            &login.amr.join(" "),
            &self.client_ip(),
        );
        // Saved by `proceed` only if the interaction goes on (to consent).
        self.interaction.pending_subject = None;
        self.interaction.fresh_login = true;
        let mut flow = self.sign_in.flow();
        flow.cookies.push(cookie);
        let request = self.interaction.request.clone();
        flow.proceed(
            &self.client,
            request,
            Some(session),
            Some((self.id, self.interaction)),
        )
        .await
    }

    /// Continues the authorize request with this browser's session (after consent).
    pub async fn resume(self) -> Response {
        let session = match sessions::current(
            &self.sign_in.state,
            &self.sign_in.tenant,
            &self.sign_in.headers,
        )
        .await
        {
            Ok(s) => s,
            Err(e) => return self.internal(e),
        };
        let request = self.interaction.request.clone();
        self.sign_in
            .flow()
            .proceed(
                &self.client,
                request,
                session,
                Some((self.id, self.interaction)),
            )
            .await
    }

    /// Ends the sign-in and tells the client through its redirect URI (RFC 6749 §4.1.2.1), so
    /// that the application can recover.
    /// A device's sign-in has no redirect URI: the device learns it was denied (RFC 8628 §3.5
    /// `access_denied`) and the user is told on a page.
    pub async fn fail_back(self, e: OAuthError) -> Response {
        let flow = self.sign_in.flow();
        flow.end_interaction(&self.id).await;
        // A backchannel approval that fails to sign in decides nothing: anyone could otherwise
        // deny another user's request by failing a login.
        if self.interaction.backchannel.is_some() || self.interaction.portal {
            return self.sign_in.fail(e);
        }
        // A SAML sign-in tells the SP with an error Response (SAML core §3.2.2.2).
        if let Some(step) = &self.interaction.saml {
            let status = if e.code == ErrorCode::AccessDenied {
                crate::response::saml::STATUS_REQUEST_DENIED
            } else {
                crate::response::saml::STATUS_RESPONDER
            };
            return self
                .sign_in
                .flow()
                .saml_refused(step, status, &e.description);
        }
        if let Some(device) = &self.interaction.device {
            crate::events::request_rejected(
                self.tenant.slug(),
                "device",
                &self.ctx.request_id,
                e.code.as_str(),
                &e.description,
            );
            let subject = self.interaction.pending_subject.clone().unwrap_or_default();
            return self
                .sign_in
                .flow()
                .device_decided(
                    &self.client,
                    device,
                    crate::response::device::DeviceStatus::Denied,
                    &subject,
                )
                .await;
        }
        let target = self.interaction.request.error_target();
        self.sign_in.flow().error_redirect(&target, e)
    }

    /// A redirect to another step of this sign-in (or to an upstream).
    pub fn redirect(&self, location: &str) -> Response {
        self.sign_in.flow().redirect(location)
    }
}

/// How a login step ended.
pub enum LoginOutcome {
    /// The user is who they said: finish the sign-in with this login.
    SignedIn(Login),
    /// The password was right; the second factor of this user is still to come.
    NeedsSecondFactor { subject: String, username: String },
    /// A wrong password or code; `locked` says when to try again if this failure locked.
    Wrong { locked: Option<String> },
    /// Refused without a check: locked out (when to try again), or nothing to show.
    Locked { retry: Option<String> },
    /// The sign-in has ended (too many wrong codes): start again from the application.
    Ended,
    /// The check could not run now (every hashing thread busy): try again in a moment.
    Busy,
}

/// A sign-in page named by `?interaction=`.
pub struct PendingInteraction(pub Pending);

#[derive(serde::Deserialize)]
struct InteractionQuery {
    interaction: Option<String>,
}

impl FromRequestParts<AppState> for PendingInteraction {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let sign_in = SignIn::from_request_parts(parts, state).await?;
        let q =
            crate::validation::params::Query::<InteractionQuery>::from_request_parts(parts, state)
                .await
                .map(|crate::validation::params::Query(q)| q.interaction)
                .unwrap_or_default();
        sign_in.pending(q.as_deref()).await.map(Self)
    }
}

/// A sign-in form: it names the interaction and echoes its CSRF token.
pub struct SubmittedInteraction {
    pub pending: Pending,
    pub form: Form,
}

impl FromRequest<AppState> for SubmittedInteraction {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let sign_in = SignIn::from_request_parts(&mut parts, state).await?;
        let req = Request::from_parts(parts, body);
        let Ok(FormBody(form)) = FormBody::from_request(req, state).await else {
            return Err(sign_in.fail(OAuthError::invalid_request("the form could not be read")));
        };
        let pending = sign_in.pending(form.get("interaction")).await?;
        let csrf_ok = form.get("csrf").is_some_and(|c| {
            aws_lc_rs::constant_time::verify_slices_are_equal(
                c.as_bytes(),
                pending.interaction.csrf.as_bytes(),
            )
            .is_ok()
        });
        if !csrf_ok {
            return Err(pending.fail(OAuthError::invalid_request(
                "the form expired or did not come from this site; please try again",
            )));
        }
        Ok(Self { pending, form })
    }
}

fn browser_token(purpose: &str, bind: &str) -> String {
    tokens::handle_hash(&format!("{purpose}\0{bind}"))
}

/// Answers a GET on a POST-only page path with a plain 405.
pub async fn post_only() -> Response {
    let mut r = StatusCode::METHOD_NOT_ALLOWED.into_response();
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    r
}
