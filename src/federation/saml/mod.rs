//! SAML 2.0 upstreams: the gateway is a Service Provider per tenant and provider (entity id
//! `{issuer}/federation/{id}`, ACS `…/acs`, SLO `…/signed-out`). The protocol work is in
//! [`sp`] (samael with xmlsec); this module binds it to providers, tenants and the cache.

pub mod sp;

use super::definition::{Plain, SamlDefinition};
use super::upstream::Answer;
use super::{ExternalIdentity, FederationError, Provider, UpstreamSession};
use crate::registry::Tenant;
use crate::state::AppState;
use serde_json::{Map, Value};
use std::sync::Arc;

impl From<sp::SamlError> for FederationError {
    fn from(e: sp::SamlError) -> Self {
        FederationError::Rejected(format!("SAML: {e}"))
    }
}

/// The SP's keys and, when the definition gives it as XML, the IdP's metadata: checked when
/// the provider loads.
#[derive(Clone)]
pub struct SamlMaterial {
    signing_key_pem: String,
    signing_cert_pem: String,
    encryption_key_pem: Option<String>,
    encryption_cert_pem: Option<String>,
    /// Parsed metadata from `metadata_xml` (URL metadata comes through the cache).
    inline_metadata: Option<Arc<sp::IdpMetadata>>,
}

impl std::fmt::Debug for SamlMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamlMaterial").finish_non_exhaustive()
    }
}

impl SamlMaterial {
    /// Takes the SAML part of a definition. IdP metadata without a signing certificate is
    /// refused here (samael would otherwise skip signature verification), and so are keys and
    /// certificates that are not PEM.
    pub fn load(s: &SamlDefinition<Plain>) -> Result<Self, String> {
        let inline_metadata = match &s.metadata_xml {
            Some(xml) => Some(Arc::new(
                sp::parse_idp_metadata(xml).map_err(|e| format!("saml.metadata_xml: {e}"))?,
            )),
            None => None,
        };
        let Some(signing_key) = &s.sp_signing_key else {
            return Err("saml.sp_signing_key is required".into());
        };
        let material = Self {
            signing_key_pem: signing_key.expose().to_string(),
            signing_cert_pem: s.sp_certificate.clone(),
            encryption_key_pem: s.sp_encryption_key.as_ref().map(|k| k.expose().to_string()),
            encryption_cert_pem: s.sp_encryption_certificate.clone(),
            inline_metadata,
        };
        let encryption = match (&material.encryption_key_pem, &material.encryption_cert_pem) {
            (Some(k), Some(c)) => Some((k.as_str(), c.as_str())),
            (None, None) => None,
            _ => {
                return Err(
                    "give both saml.sp_encryption_key and sp_encryption_certificate".into(),
                );
            }
        };
        // The SP's keys must work now, not at the first sign-in.
        sp::check_sp_keys(
            &material.signing_key_pem,
            &material.signing_cert_pem,
            encryption,
        )
        .map_err(|e| format!("saml SP keys: {e}"))?;
        Ok(material)
    }
}

fn material(p: &Provider) -> Result<(&SamlDefinition<Plain>, &SamlMaterial), FederationError> {
    match (p.spec.saml(), &p.saml) {
        (Some(s), Some(m)) => Ok((s, m)),
        _ => Err(FederationError::Unavailable("not a SAML provider".into())),
    }
}

/// This tenant's SP towards provider `p`.
pub fn sp_config(tenant: &Tenant, p: &Provider) -> Result<sp::SpConfig, FederationError> {
    let (s, m) = material(p)?;
    let base = format!("{}/federation/{}", tenant.spec.issuer, p.spec.id);
    Ok(sp::SpConfig {
        acs_url: format!("{base}/acs"),
        slo_url: Some(format!("{base}/signed-out")),
        entity_id: base,
        signing_key_pem: m.signing_key_pem.clone(),
        signing_cert_pem: m.signing_cert_pem.clone(),
        encryption_key_pem: m.encryption_key_pem.clone(),
        encryption_cert_pem: m.encryption_cert_pem.clone(),
        max_clock_skew_secs: s.max_clock_skew_seconds,
        // Unsolicited responses have no application to return to: always refused.
        allow_idp_initiated: false,
    })
}

/// The IdP's metadata: from its file, or from its URL through the cache.
pub async fn idp_metadata(
    state: &AppState,
    p: &Provider,
) -> Result<Arc<sp::IdpMetadata>, FederationError> {
    let (s, m) = material(p)?;
    if let Some(md) = &m.inline_metadata {
        return Ok(md.clone());
    }
    let url = s
        .metadata_url
        .as_deref()
        .ok_or_else(|| FederationError::Unavailable("no metadata".into()))?;
    let doc = state
        .documents
        .get(url, state.now())
        .await
        .map_err(|e| FederationError::Unavailable(e.to_string()))?;
    sp::parse_idp_metadata(&doc.text)
        .map(Arc::new)
        .map_err(|e| FederationError::Unavailable(format!("IdP metadata: {e}")))
}

pub fn new_request_id() -> Result<String, FederationError> {
    Ok(sp::new_request_id()?)
}

/// The signed AuthnRequest, by the provider's binding.
pub async fn begin(
    state: &AppState,
    tenant: &Tenant,
    p: &Provider,
    request_id: &str,
    relay_state: &str,
) -> Result<Answer, FederationError> {
    let (s, _) = material(p)?;
    let sp = sp_config(tenant, p)?;
    let idp = idp_metadata(state, p).await?;
    let now = state.now();
    if s.binding.as_deref() == Some("post") {
        let (url, request) = sp::authn_request_post(&sp, &idp, request_id, now)?;
        return Ok(Answer::Post {
            url,
            fields: vec![
                ("SAMLRequest".into(), request),
                ("RelayState".into(), relay_state.into()),
            ],
        });
    }
    Ok(Answer::Redirect(sp::authn_request_redirect(
        &sp,
        &idp,
        request_id,
        relay_state,
        now,
    )?))
}

/// SP metadata for the IdP's administrator.
pub fn metadata_xml(tenant: &Tenant, p: &Provider) -> Result<String, FederationError> {
    Ok(sp::sp_metadata_xml(&sp_config(tenant, p)?)?)
}

/// Verifies a POSTed SAMLResponse against the request it answers; the identity it asserts and
/// the time until which its assertion id must be remembered (one-time use).
pub async fn verify(
    state: &AppState,
    tenant: &Tenant,
    p: &Provider,
    saml_response: &str,
    request_id: Option<&str>,
) -> Result<(ExternalIdentity, String, i64), FederationError> {
    let sp = sp_config(tenant, p)?;
    let idp = idp_metadata(state, p).await?;
    let idp_entity_id = idp.entity_id.clone();
    let (response, request_id, now) = (
        saml_response.to_string(),
        request_id.map(str::to_string),
        state.now(),
    );
    // XML signature work off the async workers; and a panic inside the XML/crypto libraries
    // (samael's decryption has unwraps) ends this sign-in, not the connection's task.
    let a = tokio::task::spawn_blocking(move || {
        sp::verify_response(&sp, &idp, &response, request_id.as_deref(), now)
    })
    .await
    .map_err(|_| FederationError::Rejected("SAML: the response could not be processed".into()))??;
    let mut upstream = Map::new();
    for (name, values) in &a.attributes {
        let v = match values.as_slice() {
            [one] => Value::String(one.clone()),
            many => Value::Array(many.iter().cloned().map(Value::String).collect()),
        };
        upstream.entry(name.clone()).or_insert(v);
    }
    if a.name_id.is_empty() || a.name_id.len() > 255 {
        return Err(FederationError::Rejected("SAML: unusable NameID".into()));
    }
    Ok((
        ExternalIdentity {
            provider: p.spec.id.clone(),
            upstream: idp_entity_id,
            subject: a.name_id.clone(),
            claims: super::map_claims(&p.spec, &upstream),
            amr: Vec::new(),
            acr: None,
            session: UpstreamSession {
                sid: a.session_index.clone(),
                name_id: Some(a.name_id.clone()),
                name_id_format: a.name_id_format.clone(),
                ..Default::default()
            },
        },
        a.assertion_id.clone(),
        a.not_on_or_after,
    ))
}

/// A signed LogoutRequest to the IdP's SingleLogout endpoint, if it has one.
pub async fn logout_url(
    state: &AppState,
    tenant: &Tenant,
    p: &Provider,
    upstream: &UpstreamSession,
    relay_state: &str,
) -> Result<Option<String>, FederationError> {
    let Some(name_id) = &upstream.name_id else {
        return Ok(None);
    };
    let sp = sp_config(tenant, p)?;
    let idp = idp_metadata(state, p).await?;
    Ok(sp::logout_request_redirect(
        &sp,
        &idp,
        name_id,
        upstream.name_id_format.as_deref(),
        upstream.sid.as_deref(),
        relay_state,
        state.now(),
    )?)
}
