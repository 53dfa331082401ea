//! What an authorization request leads to (an interaction: Login | Consent | Proceed):
//! the decision, the pending interaction kept while the user signs in, the authorization code,
//! and the redirect back to the client (query, fragment or form_post, with `iss` per RFC 9207).

use crate::config::Client;
use crate::error::{ErrorCode, InternalError, OAuthError};
use crate::registry::Tenant;
use crate::request::RequestContext;
use crate::sessions;
use crate::state::AppState;
use crate::stores::{
    ConsentStore, GrantKind, GrantRecord, GrantStore, SessionRecord, SessionStore,
};
use crate::tokens;
use crate::ui::{ErrorPage, FormPostPage, Page};
use crate::validation::authorize::{ErrorTarget, Prompt, ResponseMode, ValidatedAuthorize};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// A session's last activity is written at most this often.
const SESSION_TOUCH_INTERVAL: i64 = 60;

/// How long a user may take to sign in and consent.
const INTERACTION_LIFETIME: i64 = 900;

/// A sign-in in progress, stored (by the hash of its id) until it ends.
#[derive(Clone, Serialize, Deserialize)]
pub struct Interaction {
    pub request: ValidatedAuthorize,
    /// Echoed by every form of this interaction.
    pub csrf: String,
    /// Hash of the browser-binding cookie of the browser that started it.
    pub bind_hash: String,
    /// The password was right and the second factor is pending.
    pub pending_subject: Option<String>,
    /// The user signed in during this interaction (satisfies prompt=login and max_age).
    pub fresh_login: bool,
    /// The user consented during this interaction.
    pub consented: bool,
    /// RFC 8628: this sign-in decides the device authorization with this hash (its device
    /// code's); it ends on a page, not with a redirect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// CIBA: this sign-in decides the backchannel request with this hash, for its user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel: Option<BackchannelStep>,
    /// SAML: this sign-in answers a service provider's AuthnRequest with a Response posted to
    /// its ACS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saml: Option<SamlStep>,
    /// The application portal's own sign-in: it ends back on the portal.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub portal: bool,
    /// Whether the store holds it: a new one is stored only when a page needs it (a single
    /// sign-on that shows no page writes nothing); one read back from the store is.
    #[serde(skip, default = "stored")]
    pub stored: bool,
}

fn stored() -> bool {
    true
}

/// Where a SAML sign-in's Response goes and what it answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SamlStep {
    pub entity_id: String,
    pub acs_url: String,
    /// The AuthnRequest's ID (`InResponseTo`); none for a sign-in the IdP started.
    pub request_id: Option<String>,
    pub relay_state: Option<String>,
    /// SAML core §3.3.2.2.1 RequestedAuthnContext: the context ranks the SP accepts
    /// (`response::saml::context_rank`); none: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_contexts: Option<Vec<u8>>,
}

/// The approvals page's decision, made once the user is signed in as the one asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackchannelStep {
    /// The hash of the request's `auth_req_id`.
    pub grant: String,
    /// The user the request is for; only they may decide it.
    pub subject: String,
    pub approve: bool,
    /// The tenant wants a second factor for approvals.
    pub require_mfa: bool,
}

/// The CSRF token and the binding hash stay out of logs.
impl std::fmt::Debug for Interaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interaction")
            .field("client_id", &self.request.client_id)
            .field("pending_subject", &self.pending_subject)
            .field("fresh_login", &self.fresh_login)
            .field("consented", &self.consented)
            .field("device", &self.device.is_some())
            .field("backchannel", &self.backchannel.is_some())
            .field("saml", &self.saml.as_ref().map(|s| &s.entity_id))
            .field("portal", &self.portal)
            .finish_non_exhaustive()
    }
}

/// What an authorization code carries. The code is this, sealed (AES-256-GCM-SIV under a key
/// derived from the master key, bound to the tenant): nothing is written when it is issued, and
/// its single use is enforced when it is redeemed (a marker row, whose insert conflicts on replay).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeData {
    pub client_id: String,
    pub subject: String,
    /// Every token issued from this code joins this family (RFC 6749 §4.1.2).
    pub family: String,
    pub expires_at: i64,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: String,
    pub sid: String,
    /// RFC 9449 §10: the DPoP key the code must be redeemed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// How the user signed in: `local` or the upstream provider.
    #[serde(default = "local_idp")]
    pub idp: String,
}

pub fn local_idp() -> String {
    crate::federation::LOCAL.to_string()
}

/// Everything a step of the flow needs to answer.
pub struct Flow<'a> {
    pub state: &'a AppState,
    pub tenant: &'a Tenant,
    pub ctx: &'a RequestContext,
    pub headers: &'a HeaderMap,
    /// Cookies to set on whatever response this step produces.
    pub cookies: Vec<HeaderValue>,
    /// The user's consent for the client, when it was read together with the session.
    pub consent: Option<Option<crate::stores::StoredConsent>>,
}

enum Next {
    Login,
    Consent,
    Code,
}

impl Flow<'_> {
    /// Decides and answers: a login or consent page (through a pending interaction), an error
    /// for `prompt=none`, or the code.
    pub async fn proceed(
        mut self,
        client: &Client,
        request: ValidatedAuthorize,
        session: Option<SessionRecord>,
        interaction: Option<(String, Interaction)>,
    ) -> Response {
        let now = self.state.now();
        let device = interaction.as_ref().and_then(|(_, i)| i.device.clone());
        let backchannel = interaction
            .as_ref()
            .and_then(|(_, i)| i.backchannel.clone());
        let saml = interaction.as_ref().and_then(|(_, i)| i.saml.clone());
        let portal = interaction.as_ref().is_some_and(|(_, i)| i.portal);
        let next = match self
            .decide(
                client,
                &request,
                session.as_ref(),
                interaction.as_ref().map(|(_, i)| i),
                now,
            )
            .await
        {
            Ok(n) => n,
            Err(e) => return self.internal(e),
        };
        let target = request.error_target();
        match next {
            // SAML core §3.4.1 IsPassive: the SP is told that the user would have to interact.
            Next::Login | Next::Consent
                if request.prompt.contains(&Prompt::None) && saml.is_some() =>
            {
                if let Some((id, i)) = &interaction
                    && i.stored
                {
                    self.end_interaction(id).await;
                }
                match saml {
                    Some(step) => self.saml_refused(
                        &step,
                        super::saml::STATUS_NO_PASSIVE,
                        "the user must sign in or consent",
                    ),
                    None => self.internal(InternalError::Other("no SAML step".into())),
                }
            }
            Next::Login | Next::Consent if request.prompt.contains(&Prompt::None) => {
                // OIDC Core §3.1.2.6
                let code = if matches!(next, Next::Login) {
                    ErrorCode::LoginRequired
                } else {
                    ErrorCode::ConsentRequired
                };
                if let Some((id, i)) = &interaction
                    && i.stored
                {
                    self.end_interaction(id).await;
                }
                self.error_redirect(
                    &target,
                    OAuthError::new(code, "the user must interact with the provider"),
                )
            }
            Next::Login | Next::Consent => {
                let page = if matches!(next, Next::Login) {
                    "login"
                } else {
                    "consent"
                };
                // Home-realm discovery picks the way in: an upstream provider or the page.
                let realm = if matches!(next, Next::Login) {
                    match self
                        .state
                        .federation
                        .home_realm(self.tenant, client, &request)
                        .await
                    {
                        Ok(r) => r,
                        Err(e) => return self.internal(e),
                    }
                } else {
                    crate::federation::Realm::Page
                };
                let id = match interaction {
                    Some((id, i)) => {
                        // The interaction goes on: keep what this step learned (fresh login).
                        if let Err(e) = self.save_interaction(&id, &i).await {
                            return self.internal(e);
                        }
                        id
                    }
                    None => match self.begin_interaction(request, None).await {
                        Ok((id, i)) => {
                            if let Err(e) = self.save_interaction(&id, &i).await {
                                return self.internal(e);
                            }
                            id
                        }
                        Err(e) => return self.internal(e),
                    },
                };
                let location = match realm {
                    crate::federation::Realm::Provider(p) => format!(
                        "{}/federation/{p}/start?interaction={id}",
                        self.tenant.spec.issuer
                    ),
                    crate::federation::Realm::Page => format!(
                        "{}/account/{page}?interaction={id}",
                        self.tenant.spec.issuer
                    ),
                };
                self.redirect(&location)
            }
            Next::Code => {
                let Some(session) = session else {
                    return self.internal(InternalError::Other("code without session".into()));
                };
                if let Some((id, i)) = &interaction
                    && i.stored
                {
                    self.end_interaction(id).await;
                }
                if let Some(step) = backchannel {
                    return self.backchannel_decided(client, &step, &session).await;
                }
                if let Some(step) = saml {
                    return self.saml_decided(&step, &session).await;
                }
                if portal {
                    return self.portal_signed_in();
                }
                if let Some(device) = device {
                    let approval = super::device::Approval::of_session(&session);
                    return self
                        .device_decided(
                            client,
                            &device,
                            super::device::DeviceStatus::Approved(approval),
                            &session.subject,
                        )
                        .await;
                }
                match self.issue_code(client, &request, &session, now).await {
                    Ok(code) => {
                        let mut params = vec![("code", code)];
                        if let Some(s) = &request.state {
                            params.push(("state", s.clone()));
                        }
                        // RFC 9207 §2: the issuer identifies who answered.
                        params.push(("iss", self.tenant.spec.issuer.clone()));
                        self.answer_client(&target, params)
                    }
                    Err(e) => self.internal(e),
                }
            }
        }
    }

    async fn decide(
        &self,
        client: &Client,
        request: &ValidatedAuthorize,
        session: Option<&SessionRecord>,
        interaction: Option<&Interaction>,
        now: i64,
    ) -> Result<Next, InternalError> {
        let fresh_login = interaction.is_some_and(|i| i.fresh_login);
        let consented = interaction.is_some_and(|i| i.consented);
        let device = interaction.is_some_and(|i| i.device.is_some());
        let Some(session) = session else {
            return Ok(Next::Login);
        };
        if !fresh_login {
            let forced = request.prompt.contains(&Prompt::Login)
                || request.prompt.contains(&Prompt::SelectAccount);
            // OIDC Core §3.1.2.1: max_age bounds the time since the user last authenticated;
            // max_age=0 asks for a fresh login like prompt=login (errata set 2).
            let too_old = request
                .max_age
                .is_some_and(|m| m == 0 || now - session.auth_time > m);
            let other_user = request
                .id_token_hint_sub
                .as_ref()
                .is_some_and(|sub| sub != &session.subject);
            // `idp:<id>` entries are home-realm hints (IdentityServer's convention), not ACRs.
            let mut acrs = request
                .acr_values
                .iter()
                .filter(|a| !a.starts_with("idp:"))
                .peekable();
            let weaker_acr = acrs.peek().is_some() && !acrs.any(|a| a == &session.acr);
            // A hint for another provider than the session's asks for that provider's login.
            let other_idp = request
                .acr_values
                .iter()
                .find_map(|a| a.strip_prefix("idp:"))
                .or(request.idp_hint.as_deref())
                .is_some_and(|idp| idp != session.idp);
            if forced || too_old || other_user || weaker_acr || other_idp {
                return Ok(Next::Login);
            }
        }
        // RFC 8628 §5.4: a device's user always sees what the code gives away, and to whom.
        if (client.spec.interactive.require_consent || device) && !consented {
            if request.prompt.contains(&Prompt::Consent) {
                return Ok(Next::Consent);
            }
            let granted = match &self.consent {
                Some(prefetched) => prefetched.as_ref().and_then(|c| c.live_scopes(now)),
                None => {
                    self.state
                        .store
                        .find_consent(
                            self.tenant.slug(),
                            &session.subject,
                            &client.spec.client_id,
                            now,
                        )
                        .await?
                }
            };
            let covered =
                granted.is_some_and(|g| request.scopes.iter().all(|s| g.iter().any(|x| x == s)));
            if !covered {
                return Ok(Next::Consent);
            }
        }
        Ok(Next::Code)
    }

    pub(super) async fn begin_interaction(
        &mut self,
        request: ValidatedAuthorize,
        away: Option<Away>,
    ) -> Result<(String, Interaction), InternalError> {
        let portal = matches!(away, Some(Away::Portal));
        let (device, backchannel, saml) = match away {
            None | Some(Away::Portal) => (None, None, None),
            Some(Away::Device(d)) => (Some(d), None, None),
            Some(Away::Backchannel(b)) => (None, Some(b), None),
            Some(Away::Saml(s)) => (None, None, Some(s)),
        };
        // The choice on the approvals page is the consent.
        let consented = backchannel.is_some();
        let id = tokens::new_handle();
        // Reuse the browser's binding cookie, or give it one.
        let bind = match sessions::read_cookie(self.headers, sessions::BIND_COOKIE)
            .filter(|v| v.len() == 43)
        {
            Some(v) => v.to_string(),
            None => {
                let v = tokens::new_handle();
                if let Some(c) = sessions::set_cookie(
                    sessions::BIND_COOKIE,
                    &v,
                    &sessions::cookie_path(self.tenant),
                    None,
                    self.ctx.secure,
                ) {
                    self.cookies.push(c);
                }
                v
            }
        };
        let interaction = Interaction {
            request,
            csrf: tokens::new_handle(),
            bind_hash: tokens::handle_hash(&bind),
            pending_subject: None,
            fresh_login: false,
            consented,
            device,
            backchannel,
            saml,
            portal,
            stored: false,
        };
        Ok((id, interaction))
    }

    /// Stores the interaction for the pages (a new one), or what this step learned of it.
    async fn save_interaction(&self, id: &str, i: &Interaction) -> Result<(), InternalError> {
        let data = serde_json::to_string(i)?;
        if !i.stored {
            let now = self.state.now();
            let record = GrantRecord {
                handle_hash: tokens::handle_hash(id),
                client_id: i.request.client_id.clone(),
                data,
                created_at: now,
                expires_at: now + INTERACTION_LIFETIME,
                ..GrantRecord::of(GrantKind::Interaction)
            };
            return self
                .state
                .store
                .insert_grant(self.tenant.slug(), &record)
                .await;
        }
        self.state
            .store
            .update_grant_data(self.tenant.slug(), &tokens::handle_hash(id), &data)
            .await
    }

    pub(crate) async fn end_interaction(&self, id: &str) {
        if let Err(e) = self
            .state
            .store
            .delete_grant(self.tenant.slug(), &tokens::handle_hash(id))
            .await
        {
            tracing::warn!(error = %e, "could not delete a finished interaction");
        }
    }

    async fn issue_code(
        &self,
        client: &Client,
        request: &ValidatedAuthorize,
        session: &SessionRecord,
        now: i64,
    ) -> Result<String, InternalError> {
        let data = CodeData {
            client_id: client.spec.client_id.clone(),
            subject: session.subject.clone(),
            family: tokens::new_jti(),
            expires_at: now + self.tenant.spec.tokens.authorization_code_lifetime,
            redirect_uri: request.redirect_uri.clone(),
            scopes: request.scopes.clone(),
            audiences: request.audiences.clone(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            code_challenge_method: request.code_challenge_method.clone(),
            auth_time: session.auth_time,
            amr: session.amr.split(' ').map(str::to_string).collect(),
            acr: session.acr.clone(),
            sid: session.sid.clone(),
            dpop_jkt: request.dpop_jkt.clone(),
            idp: session.idp.clone(),
        };
        let sealed = self
            .state
            .master
            .seal_grant(&serde_json::to_vec(&data)?, &code_aad(self.tenant.slug()))?;
        let code =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sealed);
        let store = &self.state.store;
        // Activity is recorded to the minute (the idle timeout needs no more), and the client
        // once (for logout): a busy SSO session costs no write per sign-in.
        let known = session.client_ids().any(|c| c == client.spec.client_id);
        if !known || now - session.last_seen_at >= SESSION_TOUCH_INTERVAL {
            store
                .touch_session(
                    self.tenant.slug(),
                    &session.sid,
                    now,
                    Some(&client.spec.client_id),
                )
                .await?;
        }
        crate::events::code_issued(
            self.tenant.slug(),
            &client.spec.client_id,
            &self.ctx.request_id,
            &session.subject,
        );
        Ok(code)
    }

    /// RFC 6749 §4.1.2.1: an error to the client, with `state` and `iss` (RFC 9207).
    pub fn error_redirect(self, target: &ErrorTarget, e: OAuthError) -> Response {
        crate::events::request_rejected(
            self.tenant.slug(),
            "authorize",
            &self.ctx.request_id,
            e.code.as_str(),
            &e.description,
        );
        let mut params = vec![
            ("error", e.code.as_str().to_string()),
            ("error_description", e.description.to_string()),
        ];
        if let Some(s) = &target.state {
            params.push(("state", s.clone()));
        }
        params.push(("iss", self.tenant.spec.issuer.clone()));
        self.answer_client(target, params)
    }

    fn answer_client(self, target: &ErrorTarget, params: Vec<(&str, String)>) -> Response {
        let mut response = match target.response_mode {
            ResponseMode::FormPost => self.tenant.pages.render(
                &Page::FormPost(FormPostPage {
                    action: target.redirect_uri.clone(),
                    fields: params
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                }),
                StatusCode::OK,
            ),
            mode => {
                let mut ser = form_urlencoded::Serializer::new(String::new());
                for (k, v) in &params {
                    ser.append_pair(k, v);
                }
                let encoded = ser.finish();
                let uri = &target.redirect_uri;
                let location = if mode == ResponseMode::Fragment {
                    format!("{uri}#{encoded}")
                } else if uri.contains('?') {
                    format!("{uri}&{encoded}")
                } else {
                    format!("{uri}?{encoded}")
                };
                return self.redirect(&location);
            }
        };
        for c in self.cookies {
            response.headers_mut().append(header::SET_COOKIE, c);
        }
        response
    }

    /// 303 See Other: after a form POST the browser follows with GET.
    pub fn redirect(self, location: &str) -> Response {
        let mut r = StatusCode::SEE_OTHER.into_response();
        if let Ok(v) = HeaderValue::from_str(location) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        for c in self.cookies {
            r.headers_mut().append(header::SET_COOKIE, c);
        }
        r
    }

    pub(super) fn internal(self, e: InternalError) -> Response {
        error_page(self.tenant, self.ctx, &e.failed("authorize"))
    }
}

/// What a sign-in started away from the authorize endpoint decides.
pub(super) enum Away {
    Device(String),
    Backchannel(BackchannelStep),
    Saml(SamlStep),
    /// The application portal's sign-in: back to the portal.
    Portal,
}

/// Binds a sealed code to its purpose and tenant: a code of acme means nothing at globex.
pub fn code_aad(tenant: &str) -> Vec<u8> {
    format!("authorization_code\0{tenant}").into_bytes()
}

/// The error page (never redirects): request id shown, internals never.
pub fn error_page(tenant: &Tenant, ctx: &RequestContext, e: &OAuthError) -> Response {
    let status = if e.status.is_server_error() {
        e.status
    } else {
        StatusCode::BAD_REQUEST
    };
    tenant.pages.render(
        &Page::Error(ErrorPage {
            error: e.code.as_str().to_string(),
            description: e.description.to_string(),
            request_id: ctx.request_id.to_string(),
        }),
        status,
    )
}
