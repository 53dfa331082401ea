//! SAML 2.0 single logout as the identity provider (SAML core §3.7, profiles §4.4): when a
//! session ends — at an SP's LogoutRequest or at the end-session endpoint — every other SAML SP
//! that took part in it is sent a signed LogoutRequest, one after the other through the
//! browser (profiles §4.4.3.3), each answering with a signed LogoutResponse; then the SP that
//! asked gets a signed LogoutResponse (Success, or PartialLogout if an SP did not confirm), or
//! the end-session flow goes on to the client.
//!
//! The logout in progress is a [`LogoutChain`], stored single use between steps under a
//! random handle that travels as the RelayState (SAML bindings §3.4.3: at most 80 bytes; a
//! handle is 43) and is consumed by the step that continues it, on any node.

use crate::config::tenant::{SamlBinding, SamlSp};
use crate::error::InternalError;
use crate::federation::saml::sp::{
    SamlError, instant, sign_enveloped_rsa, signed_redirect_url_rsa, xml_escape,
};
use crate::registry::Tenant;
use crate::state::AppState;
use crate::stores::{Consumed, GrantKind, GrantRecord, GrantStore};
use crate::ui::{FormPostPage, LoggedOutPage, Page};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Where the tenant's single logout service lives, below its issuer.
pub const SLO_PATH: &str = "/saml/slo";
/// How long a step of a logout may take (the user's browser at one SP).
const STEP_LIFETIME: i64 = 600;
/// SAML core §3.7.1 NotOnOrAfter of the LogoutRequests sent.
const REQUEST_LIFETIME: i64 = 300;
/// SAML core §3.7.3: why the IdP asks (the user logged out).
const REASON_USER: &str = "urn:oasis:names:tc:SAML:2.0:logout:user";

/// A logout in progress.
#[derive(Debug, Serialize, Deserialize)]
pub struct LogoutChain {
    pub subject: String,
    /// The ended session (the SessionIndex the SPs were given).
    pub sid: String,
    /// Front-channel logout pages of OIDC clients still to load (first of all).
    pub frontchannel: Vec<String>,
    /// Entity ids of SPs still to be sent a LogoutRequest.
    pub pending: Vec<String>,
    /// The LogoutRequest whose answer is awaited: the SP's entity id and the request's ID.
    pub awaiting: Option<(String, String)>,
    /// An SP did not confirm (or could not be asked).
    pub partial: bool,
    pub finish: Finish,
}

/// What happens once every SP has been told.
#[derive(Debug, Serialize, Deserialize)]
pub enum Finish {
    /// SAML core §3.7.3.2: the SP whose LogoutRequest started the logout gets its answer.
    AnswerSp {
        entity_id: String,
        in_response_to: String,
        relay_state: Option<String>,
    },
    /// The end-session flow goes on: to `redirect` (a client's post-logout redirect, or the
    /// upstream's logout), or the signed-out page.
    Done {
        redirect: Option<String>,
        client_name: Option<String>,
    },
}

/// The SAML SPs of `tenant` with a single logout service that took part in `session` (its
/// participants list names them by entity id), except `except`.
pub async fn session_sps(
    state: &AppState,
    tenant: &Tenant,
    session: &crate::stores::SessionRecord,
    except: Option<&str>,
) -> Result<Vec<String>, InternalError> {
    let mut out = Vec::new();
    for id in session.client_ids().filter(|id| Some(*id) != except) {
        // Client ids are not SP entity ids (the tenant file keeps them apart); an id that is
        // no URI names no SP.
        if url::Url::parse(id).is_err() {
            continue;
        }
        if crate::saml::service_provider(state, tenant, id)
            .await?
            .is_some_and(|sp| sp.slo.is_some())
        {
            out.push(id.to_string());
        }
    }
    Ok(out)
}

fn fail(e: SamlError) -> InternalError {
    InternalError::Other(format!("SAML logout: {e}"))
}

/// The next step of `chain`: a front-channel page, a LogoutRequest to the next SP, or the end.
/// `clear` is the header that clears the session cookie, set on this step's response.
pub async fn advance(
    state: &AppState,
    tenant: &Tenant,
    mut chain: LogoutChain,
    clear: Option<HeaderValue>,
) -> Result<Response, InternalError> {
    let mut response = step(state, tenant, &mut chain).await?;
    if let Some(c) = clear {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn step(
    state: &AppState,
    tenant: &Tenant,
    chain: &mut LogoutChain,
) -> Result<Response, InternalError> {
    chain.awaiting = None;
    if !chain.frontchannel.is_empty() {
        // OIDC Front-Channel Logout 1.0 §2: the clients' pages load in iframes; the page then
        // comes back here for the rest.
        let urls = std::mem::take(&mut chain.frontchannel);
        let handle = save(state, tenant, chain).await?;
        return Ok(tenant.pages.render(
            &Page::LoggedOut(LoggedOutPage {
                frontchannel_urls: urls,
                post_logout_redirect_uri: Some(format!(
                    "{}{SLO_PATH}?continue={handle}",
                    tenant.spec.issuer
                )),
                client_name: None,
                return_automatically: true,
            }),
            StatusCode::OK,
        ));
    }
    while !chain.pending.is_empty() {
        let entity_id = chain.pending.remove(0);
        let Some(sp) = crate::saml::service_provider(state, tenant, &entity_id).await? else {
            continue;
        };
        let sp = sp.as_ref();
        let Some((slo_url, binding)) = sp.slo.clone() else {
            continue;
        };
        let user =
            crate::users::directory::by_subject(&state.store, tenant, &chain.subject).await?;
        let Some(name_id) =
            user.and_then(|u| crate::response::saml::name_id(state, tenant, sp, &u, &chain.sid))
        else {
            chain.partial = true;
            continue;
        };
        let id = crate::response::saml::new_id();
        let now = state.now();
        let xml = logout_request_xml(tenant, sp, &slo_url, &id, &name_id, &chain.sid, now)?;
        chain.awaiting = Some((entity_id, id.clone()));
        let handle = save(state, tenant, chain).await?;
        crate::events::saml_logout_sent(tenant.slug(), &sp.entity_id, &chain.sid);
        return deliver(
            tenant,
            &slo_url,
            binding,
            "SAMLRequest",
            &xml,
            &id,
            Some(&handle),
        );
    }
    match &chain.finish {
        Finish::AnswerSp {
            entity_id,
            in_response_to,
            relay_state,
        } => {
            let sp = crate::saml::service_provider(state, tenant, entity_id).await?;
            let Some((sp, (slo_url, binding))) = sp.and_then(|s| {
                let slo = s.slo.clone()?;
                Some((s, slo))
            }) else {
                return Ok(signed_out_page(tenant, None, None));
            };
            let status = if chain.partial {
                crate::response::saml::STATUS_PARTIAL_LOGOUT
            } else {
                crate::response::saml::STATUS_SUCCESS
            };
            answer_sp(
                state,
                tenant,
                &sp,
                (&slo_url, binding),
                in_response_to,
                relay_state.as_deref(),
                status,
            )
        }
        Finish::Done {
            redirect,
            client_name,
        } => Ok(
            match redirect
                .as_deref()
                .and_then(|u| HeaderValue::from_str(u).ok())
            {
                Some(location) => {
                    let mut r = StatusCode::SEE_OTHER.into_response();
                    r.headers_mut().insert(header::LOCATION, location);
                    r
                }
                None => signed_out_page(tenant, None, client_name.clone()),
            },
        ),
    }
}

fn signed_out_page(
    tenant: &Tenant,
    redirect: Option<String>,
    client_name: Option<String>,
) -> Response {
    tenant.pages.render(
        &Page::LoggedOut(LoggedOutPage {
            frontchannel_urls: Vec::new(),
            post_logout_redirect_uri: redirect,
            client_name,
            return_automatically: false,
        }),
        StatusCode::OK,
    )
}

/// A signed LogoutResponse to `sp`'s single logout service (SAML core §3.7.3.2).
pub fn answer_sp(
    state: &AppState,
    tenant: &Tenant,
    sp: &SamlSp,
    (slo_url, binding): (&str, SamlBinding),
    in_response_to: &str,
    relay_state: Option<&str>,
    status: &str,
) -> Result<Response, InternalError> {
    let id = crate::response::saml::new_id();
    let xml = logout_response_xml(tenant, slo_url, &id, in_response_to, status, state.now())?;
    tracing::info!(target: "security", event = "saml_logout_answered", tenant = %tenant.slug(), sp = %sp.entity_id, status);
    deliver(
        tenant,
        slo_url,
        binding,
        "SAMLResponse",
        &xml,
        &id,
        relay_state,
    )
}

/// Stores the chain for its next step; returns the handle (the RelayState).
async fn save(
    state: &AppState,
    tenant: &Tenant,
    chain: &LogoutChain,
) -> Result<String, InternalError> {
    let handle = crate::tokens::new_handle();
    let now = state.now();
    let record = GrantRecord {
        handle_hash: crate::tokens::handle_hash(&handle),
        subject: Some(chain.subject.clone()),
        session_id: Some(chain.sid.clone()),
        data: serde_json::to_string(chain)?,
        created_at: now,
        expires_at: now + STEP_LIFETIME,
        ..GrantRecord::of(GrantKind::Logout)
    };
    state.store.insert_grant(tenant.slug(), &record).await?;
    Ok(handle)
}

/// Takes the chain `handle` names (once: a second use finds nothing).
pub async fn take(
    state: &AppState,
    tenant: &Tenant,
    handle: &str,
) -> Result<Option<LogoutChain>, InternalError> {
    if handle.len() != 43 {
        return Ok(None);
    }
    let hash = crate::tokens::handle_hash(handle);
    match state
        .store
        .consume_grant(tenant.slug(), &hash, state.now(), &[])
        .await?
    {
        Consumed::Fresh(r) if r.kind == GrantKind::Logout => {
            Ok(serde_json::from_str::<LogoutChain>(&r.data).ok())
        }
        _ => Ok(None),
    }
}

/// Sends a signed message to an SP: HTTP-Redirect (bindings §3.4: a query signature) or
/// HTTP-POST (§3.5: an enveloped signature, an auto-submitting form).
fn deliver(
    tenant: &Tenant,
    destination: &str,
    binding: SamlBinding,
    param: &str,
    xml: &str,
    id: &str,
    relay_state: Option<&str>,
) -> Result<Response, InternalError> {
    let keys = tenant.keys.load();
    let (pkcs8, cert) = keys
        .saml_signing_key()
        .ok_or_else(|| InternalError::Other("no SAML signing key".into()))?;
    match binding {
        SamlBinding::Redirect => {
            let url = signed_redirect_url_rsa(
                destination,
                param,
                &xml.replacen("{signature}", "", 1),
                relay_state.unwrap_or_default(),
                pkcs8,
                cert,
            )
            .map_err(fail)?;
            let mut r = StatusCode::SEE_OTHER.into_response();
            r.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_str(&url)
                    .map_err(|_| InternalError::Other("SLO URL is not a header value".into()))?,
            );
            Ok(r)
        }
        SamlBinding::Post => {
            let signed = sign_enveloped_rsa(xml, id, pkcs8, cert).map_err(fail)?;
            let mut fields = vec![(
                param.to_string(),
                base64::engine::general_purpose::STANDARD.encode(signed),
            )];
            if let Some(r) = relay_state {
                fields.push(("RelayState".to_string(), r.to_string()));
            }
            Ok(tenant.pages.render(
                &Page::FormPost(FormPostPage {
                    action: destination.to_string(),
                    fields,
                }),
                StatusCode::OK,
            ))
        }
    }
}

/// SAML core §3.7.1: a LogoutRequest naming the user as `sp` knows them and the session; the
/// `{signature}` placeholder sits after Issuer (§5.4.1).
fn logout_request_xml(
    tenant: &Tenant,
    sp: &SamlSp,
    destination: &str,
    id: &str,
    name_id: &str,
    sid: &str,
    now: i64,
) -> Result<String, InternalError> {
    let issuer = xml_escape(&tenant.spec.issuer);
    Ok(format!(
        "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" \
         IssueInstant=\"{issue}\" NotOnOrAfter=\"{until}\" Destination=\"{destination}\" Reason=\"{REASON_USER}\">\
         <saml:Issuer>{issuer}</saml:Issuer>{{signature}}\
         <saml:NameID Format=\"{format}\" NameQualifier=\"{issuer}\" SPNameQualifier=\"{audience}\">{name_id}</saml:NameID>\
         <samlp:SessionIndex>{sid}</samlp:SessionIndex></samlp:LogoutRequest>",
        issue = instant(now).map_err(fail)?,
        until = instant(now + REQUEST_LIFETIME).map_err(fail)?,
        destination = xml_escape(destination),
        format = sp.name_id_format.urn(),
        audience = xml_escape(&sp.entity_id),
        name_id = xml_escape(name_id),
        sid = xml_escape(sid),
    ))
}

/// SAML core §3.7.2 / §3.6.1: a LogoutResponse with `status` (a second-level code under the
/// top-level one that fits it).
fn logout_response_xml(
    tenant: &Tenant,
    destination: &str,
    id: &str,
    in_response_to: &str,
    status: &str,
    now: i64,
) -> Result<String, InternalError> {
    let (top, second) = crate::response::saml::second_level(status);
    let inner = second
        .map(|s| format!("<samlp:StatusCode Value=\"{s}\"/>"))
        .unwrap_or_default();
    Ok(format!(
        "<samlp:LogoutResponse xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" \
         IssueInstant=\"{issue}\" Destination=\"{destination}\" InResponseTo=\"{in_response_to}\">\
         <saml:Issuer>{issuer}</saml:Issuer>{{signature}}\
         <samlp:Status><samlp:StatusCode Value=\"{top}\">{inner}</samlp:StatusCode></samlp:Status>\
         </samlp:LogoutResponse>",
        issue = instant(now).map_err(fail)?,
        destination = xml_escape(destination),
        in_response_to = xml_escape(in_response_to),
        issuer = xml_escape(&tenant.spec.issuer),
    ))
}
