//! The end of a sign-in started away from the authorize endpoint: a device's (RFC 8628) or a
//! backchannel request's (CIBA). It begins like any pending interaction and ends with the
//! decision written into the pending grant and a page, instead of a code and a redirect.

use super::authorize::{Away, BackchannelStep, Flow, error_page};
use crate::config::Client;
use crate::error::{ErrorCode, OAuthError};
use crate::registry::Tenant;
use crate::state::AppState;
use crate::stores::{GrantKind, GrantStore, SessionRecord};
use crate::ui::{DeviceDonePage, Page};
use crate::validation::authorize::ValidatedAuthorize;
use axum::http::{StatusCode, header};
use axum::response::Response;

impl Flow<'_> {
    /// RFC 8628 §3.3: the user entered the code of a pending device authorization; the
    /// sign-in that decides it begins (sign-in if needed, then consent, then a page).
    pub async fn begin_device(
        self,
        client: &Client,
        request: ValidatedAuthorize,
        session: Option<SessionRecord>,
        device_hash: String,
    ) -> Response {
        let away = Away::Device(device_hash);
        self.begin_away(client, request, session, away).await
    }

    /// CIBA: the user chose on the approvals page; once signed in as the user asked (with a
    /// second factor if the tenant wants one), the choice is written. The choice on that page
    /// was the consent: it showed the client, the scopes and the binding message.
    pub async fn begin_backchannel(
        self,
        client: &Client,
        request: ValidatedAuthorize,
        session: Option<SessionRecord>,
        step: BackchannelStep,
    ) -> Response {
        let away = Away::Backchannel(step);
        self.begin_away(client, request, session, away).await
    }

    async fn begin_away(
        mut self,
        client: &Client,
        request: ValidatedAuthorize,
        session: Option<SessionRecord>,
        away: Away,
    ) -> Response {
        let (id, interaction) = match self.begin_interaction(request.clone(), Some(away)).await {
            Ok(x) => x,
            Err(e) => return self.internal(e),
        };
        self.proceed(client, request, session, Some((id, interaction)))
            .await
    }

    /// The user is signed in: the backchannel request is decided if they are the one asked
    /// and signed in strongly enough.
    pub(super) async fn backchannel_decided(
        self,
        client: &Client,
        step: &BackchannelStep,
        session: &SessionRecord,
    ) -> Response {
        let refused = if session.subject != step.subject {
            Some("this request is for another user: sign in as that user to decide it")
        } else if step.approve && step.require_mfa && session.acr != crate::sessions::ACR_MFA {
            Some("approving needs a second factor, and this account has none")
        } else {
            None
        };
        if let Some(why) = refused {
            crate::events::request_rejected(
                self.tenant.slug(),
                "approvals",
                &self.ctx.request_id,
                ErrorCode::AccessDenied.as_str(),
                why,
            );
            let mut response = error_page(
                self.tenant,
                self.ctx,
                &OAuthError::new(ErrorCode::AccessDenied, why),
            );
            // A sign-in that just happened keeps its session.
            for c in self.cookies {
                response.headers_mut().append(header::SET_COOKIE, c);
            }
            return response;
        }
        let status = if step.approve {
            super::device::DeviceStatus::Approved(super::device::Approval::of_session(session))
        } else {
            super::device::DeviceStatus::Denied
        };
        let subject = session.subject.clone();
        let notify = super::backchannel::Notify::of(self.state, self.tenant, client);
        let grant = step.grant.clone();
        let response = self.device_decided(client, &grant, status, &subject).await;
        if response.status() == StatusCode::OK {
            notify.decided(&grant).await;
        }
        response
    }

    /// The device sign-in ended: the decision is written and the user told to go back to the
    /// device (or that it is too late).
    pub async fn device_decided(
        self,
        client: &Client,
        device_hash: &str,
        status: super::device::DeviceStatus,
        subject: &str,
    ) -> Response {
        let approved = matches!(status, super::device::DeviceStatus::Approved(_));
        let backchannel = status_is_backchannel(self.state, self.tenant, device_hash).await;
        let written =
            match super::device::decide(self.state, self.tenant, device_hash, status).await {
                Ok(w) => w,
                Err(e) => return self.internal(e),
            };
        if written {
            crate::events::device_decided(
                self.tenant.slug(),
                &client.spec.client_id,
                &self.ctx.request_id,
                subject,
                approved,
            );
        }
        let mut response = self.tenant.pages.render(
            &Page::DeviceDone(DeviceDonePage {
                client_name: client
                    .spec
                    .client_name
                    .clone()
                    .unwrap_or_else(|| client.spec.client_id.clone()),
                approved: approved && written,
                expired: !written,
                backchannel,
            }),
            if written {
                StatusCode::OK
            } else {
                StatusCode::BAD_REQUEST
            },
        );
        for c in self.cookies {
            response.headers_mut().append(header::SET_COOKIE, c);
        }
        response
    }
}

/// Whether the pending grant is a backchannel request (for the wording of the last page).
async fn status_is_backchannel(state: &AppState, tenant: &Tenant, hash: &str) -> bool {
    matches!(
        state.store.find_grant(tenant.slug(), hash).await,
        Ok(Some(r)) if r.kind == GrantKind::BackchannelAuth
    )
}
