//! Upstream providers as one type. Whatever protocol a provider speaks, a round trip through it
//! is the same three steps, and the endpoints never ask which protocol it is:
//!
//! - [`Provider::begin`]: the state to keep for the round trip and where the browser goes (a
//!   redirect, or an auto-submitted form for the SAML HTTP-POST binding);
//! - [`Provider::complete`]: the upstream's reply, checked against that state, becomes an
//!   [`ExternalIdentity`];
//! - [`Provider::logout_url`]: where to send the browser to end the upstream session.

use super::definition::Protocol;
use super::{ExternalIdentity, FederationError, Provider, UpstreamSession, oidc, saml};
use crate::registry::Tenant;
use crate::state::AppState;
use crate::stores::{GrantKind, GrantRecord, GrantStore};
use crate::tokens;
use serde::{Deserialize, Serialize};

/// How the browser goes to the upstream.
pub enum Answer {
    Redirect(String),
    /// An auto-submitted form (SAML HTTP-POST binding).
    Post {
        url: String,
        fields: Vec<(String, String)>,
    },
}

/// What a round trip keeps until the upstream answers.
#[derive(Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "lowercase")]
pub enum UpstreamState {
    /// OIDC Core §3.1.2.1 `nonce` and RFC 7636 `code_verifier` of the authorization request.
    Oidc {
        interaction: String,
        provider: String,
        nonce: String,
        code_verifier: String,
    },
    /// The AuthnRequest ID the Response must be `InResponseTo`.
    Saml {
        interaction: String,
        provider: String,
        request_id: String,
    },
}

impl UpstreamState {
    /// The pending interaction this round trip belongs to.
    pub fn interaction(&self) -> &str {
        match self {
            Self::Oidc { interaction, .. } | Self::Saml { interaction, .. } => interaction,
        }
    }

    pub fn provider(&self) -> &str {
        match self {
            Self::Oidc { provider, .. } | Self::Saml { provider, .. } => provider,
        }
    }
}

/// The nonce and the PKCE verifier stay out of logs.
impl std::fmt::Debug for UpstreamState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Oidc { provider, .. } => f
                .debug_struct("UpstreamState::Oidc")
                .field("provider", provider)
                .finish_non_exhaustive(),
            Self::Saml {
                provider,
                request_id,
                ..
            } => f
                .debug_struct("UpstreamState::Saml")
                .field("provider", provider)
                .field("request_id", request_id)
                .finish_non_exhaustive(),
        }
    }
}

/// What the downstream request asks of the upstream sign-in.
pub struct Begin<'a> {
    /// The pending interaction the round trip belongs to.
    pub interaction: &'a str,
    pub login_hint: Option<&'a str>,
    /// `prompt=login` or `max_age=0` downstream: the upstream must authenticate again.
    pub force_login: bool,
}

/// The upstream's reply, as the browser brought it back.
pub enum Reply<'a> {
    /// An OIDC authorization response at the callback (RFC 6749 §4.1.2, RFC 9207 `iss`).
    Authorization {
        code: Option<&'a str>,
        iss: Option<&'a str>,
        /// RFC 6749 §4.1.2.1: the upstream did not sign the user in.
        error: Option<&'a str>,
    },
    /// A SAML Response at the Assertion Consumer Service (HTTP-POST binding).
    SamlResponse(&'a str),
}

impl Provider {
    /// Starts a round trip whose state will be kept under `handle` (the OIDC `state`, the SAML
    /// RelayState): the state, and where the browser goes.
    pub async fn begin(
        &self,
        state: &AppState,
        tenant: &Tenant,
        handle: &str,
        b: Begin<'_>,
    ) -> Result<(UpstreamState, Answer), FederationError> {
        let (interaction, provider) = (b.interaction.to_string(), self.spec.id.clone());
        match &self.spec.protocol {
            Protocol::Oidc(_) => {
                let nonce = tokens::new_handle();
                let code_verifier = tokens::new_handle();
                let url = oidc::authorization_url(
                    state,
                    tenant,
                    self,
                    handle,
                    &nonce,
                    &code_verifier,
                    b.login_hint,
                    b.force_login,
                )
                .await?;
                let st = UpstreamState::Oidc {
                    interaction,
                    provider,
                    nonce,
                    code_verifier,
                };
                Ok((st, Answer::Redirect(url)))
            }
            Protocol::Saml(_) => {
                let request_id = saml::new_request_id()?;
                let answer = saml::begin(state, tenant, self, &request_id, handle).await?;
                let st = UpstreamState::Saml {
                    interaction,
                    provider,
                    request_id,
                };
                Ok((st, answer))
            }
        }
    }

    /// Checks the upstream's reply against the round trip it answers.
    pub async fn complete(
        &self,
        state: &AppState,
        tenant: &Tenant,
        round_trip: &UpstreamState,
        reply: Reply<'_>,
    ) -> Result<ExternalIdentity, FederationError> {
        if round_trip.provider() != self.spec.id {
            return Err(FederationError::Rejected(
                "upstream state of another provider".into(),
            ));
        }
        match (round_trip, reply) {
            (
                UpstreamState::Oidc {
                    nonce,
                    code_verifier,
                    ..
                },
                Reply::Authorization { code, iss, error },
            ) => {
                if let Some(err) = error {
                    // The user declined or the upstream could not sign them in.
                    return Err(FederationError::Denied(format!(
                        "the identity provider did not sign you in ({})",
                        err.chars().take(64).collect::<String>()
                    )));
                }
                let Some(code) = code.filter(|c| c.len() <= 2048) else {
                    return Err(FederationError::Rejected(
                        "authorization response without a code".into(),
                    ));
                };
                oidc::complete(state, tenant, self, code, iss, nonce, code_verifier).await
            }
            (UpstreamState::Saml { request_id, .. }, Reply::SamlResponse(response)) => {
                let (identity, assertion_id, keep_until) =
                    saml::verify(state, tenant, self, response, Some(request_id)).await?;
                // One-time use of the assertion (SAML profiles §4.1.4.5), on every node.
                let now = state.now();
                let marker = GrantRecord {
                    handle_hash: tokens::handle_hash(&format!(
                        "saml:{}:{assertion_id}",
                        self.spec.id
                    )),
                    created_at: now,
                    expires_at: keep_until.max(now + 60),
                    consumed_at: Some(now),
                    ..GrantRecord::of(GrantKind::SingleUse)
                };
                if !state.store.redeem_once(tenant.slug(), &marker, &[]).await? {
                    return Err(FederationError::Rejected("replayed SAML assertion".into()));
                }
                Ok(identity)
            }
            _ => Err(FederationError::Rejected(
                "the reply is not of the protocol of its round trip".into(),
            )),
        }
    }

    /// The SP metadata this tenant publishes towards the provider, for providers that read it
    /// (SAML: its administrator registers the SP from it).
    pub fn sp_metadata(&self, tenant: &Tenant) -> Option<Result<String, FederationError>> {
        match &self.spec.protocol {
            Protocol::Saml(_) => Some(saml::metadata_xml(tenant, self)),
            Protocol::Oidc(_) => None,
        }
    }

    /// Where to send the browser to end the upstream session, if the upstream can: it comes
    /// back to `back` with `handle` (the OIDC `state`, the SAML RelayState).
    pub async fn logout_url(
        &self,
        state: &AppState,
        tenant: &Tenant,
        upstream: &UpstreamSession,
        back: &str,
        handle: &str,
    ) -> Result<Option<String>, FederationError> {
        match &self.spec.protocol {
            Protocol::Oidc(_) => oidc::end_session_url(state, self, upstream, back, handle).await,
            Protocol::Saml(_) => saml::logout_url(state, tenant, self, upstream, handle).await,
        }
    }
}
