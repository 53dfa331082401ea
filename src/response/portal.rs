//! The application portal (Duende IdentityServer's client application portal, with the
//! tenant's SAML applications beside its OIDC clients): what it lists, how each application is
//! started, and the portal's own sign-in through the pipeline.
//!
//! - An OIDC client is listed when it registered an `initiate_login_uri`; starting it is a link
//!   there with `iss` and `target_link_uri` (OIDC Core §4, third-party-initiated login): the
//!   client then sends an ordinary authorization request, which the SSO session answers.
//! - A SAML SP is listed when it opted in to IdP-initiated sign-in (`allow_idp_initiated`);
//!   starting it is a form posted back here, which ends in an unsolicited Response (SAML
//!   profiles §4.1.5) through the sign-in pipeline (`Flow::begin_saml`, no `InResponseTo`).

use super::authorize::{Away, Flow, SamlStep};
use crate::config::Client;
use crate::config::tenant::{ClientSpec, GrantType, InteractiveSpec};
use crate::error::InternalError;
use crate::registry::Tenant;
use crate::state::AppState;
use crate::ui::{Launch, PortalApp};
use crate::validation::authorize::ValidatedAuthorize;
use crate::validation::portal::ValidatedLaunch;
use axum::response::Response;
use std::sync::Arc;

/// Where the portal lives, below the tenant's issuer.
pub const PORTAL_PATH: &str = "/apps";
/// Where its SAML applications' forms are posted.
pub const LAUNCH_PATH: &str = "/apps/launch";
/// Clients read for one portal page, at most.
const MAX_CLIENTS: i64 = 200;

pub fn portal_url(tenant: &Tenant) -> String {
    format!("{}{PORTAL_PATH}", tenant.spec.issuer)
}

/// The pipeline's view of the portal: a "client" named by the portal's URL (which no tenant
/// client's sign-in is mistaken for: the interaction says it is the portal's), without consent.
pub fn as_client(tenant: &Tenant) -> Result<Arc<Client>, InternalError> {
    Ok(Arc::new(Client::from_spec(ClientSpec {
        client_id: portal_url(tenant),
        client_name: Some("your applications".into()),
        enabled: true,
        secrets: Vec::new(),
        grant_types: vec![GrantType::AuthorizationCode],
        scopes: Vec::new(),
        auth_methods: Vec::new(),
        access_token_format: None,
        access_token_lifetime: None,
        interactive: InteractiveSpec::default(),
        ciba: None,
        token_exchange: None,
        workload: None,
        extension_grants: Vec::new(),
        runtime: None,
    })?))
}

/// The applications of the tenant that can be started from the portal: enabled OIDC clients
/// with an `initiate_login_uri` and enabled SAML SPs (of the file, or registered at runtime)
/// that allow IdP-initiated sign-in, by name.
pub async fn applications(
    state: &AppState,
    tenant: &Tenant,
) -> Result<Vec<PortalApp>, InternalError> {
    let mut apps = Vec::new();
    for client in state
        .store
        .portal_clients(tenant.slug(), MAX_CLIENTS)
        .await?
    {
        let spec = &client.spec;
        let i = &spec.interactive;
        let (true, Some(initiate), Some(target)) = (
            spec.enabled,
            i.initiate_login_uri.as_deref(),
            i.target_link_uri.as_deref(),
        ) else {
            continue;
        };
        let Some(href) = third_party_login(&tenant.spec.issuer, initiate, target) else {
            continue;
        };
        let name = spec.client_name.as_deref().unwrap_or(&spec.client_id);
        apps.push(PortalApp::new(
            name,
            i.logo_uri.as_deref(),
            Launch::Link { href },
        ));
    }
    for sp in tenant
        .spec
        .saml_service_providers
        .iter()
        .filter(|s| s.enabled && s.allow_idp_initiated)
    {
        let name = sp.display_name.as_deref().unwrap_or(&sp.entity_id);
        apps.push(PortalApp::new(
            name,
            sp.logo_url.as_deref(),
            Launch::Saml {
                sp: sp.entity_id.clone(),
            },
        ));
    }
    // The SPs registered at runtime (the admin API), enabled and opted in.
    use crate::stores::SamlSpStore;
    for row in state
        .store
        .list_saml_sps(tenant.slug(), "", MAX_CLIENTS)
        .await?
        .into_iter()
        .filter(|r| r.enabled)
    {
        let Ok(def) = serde_json::from_str::<crate::config::tenant::SamlSpDefinition>(&row.spec)
        else {
            continue;
        };
        if !def.allow_idp_initiated {
            continue;
        }
        let name = def.display_name.as_deref().unwrap_or(&row.entity_id);
        apps.push(PortalApp::new(
            name,
            def.logo_url.as_deref(),
            Launch::Saml {
                sp: row.entity_id.clone(),
            },
        ));
    }
    apps.sort_by_key(|a| a.name.to_lowercase());
    Ok(apps)
}

/// OIDC Core §4: the client's login initiation URI with `iss` (REQUIRED) and
/// `target_link_uri`, added to whatever query it has.
fn third_party_login(issuer: &str, initiate: &str, target: &str) -> Option<String> {
    let mut url = url::Url::parse(initiate).ok()?;
    url.query_pairs_mut()
        .append_pair("iss", issuer)
        .append_pair("target_link_uri", target);
    Some(url.into())
}

impl Flow<'_> {
    /// Nobody is signed in at the portal: a sign-in that ends back there.
    pub async fn begin_portal(mut self) -> Response {
        let client = match as_client(self.tenant) {
            Ok(c) => c,
            Err(e) => return self.internal(e),
        };
        let request = ValidatedAuthorize::for_portal(&client.spec.client_id);
        let (id, interaction) = match self
            .begin_interaction(request.clone(), Some(Away::Portal))
            .await
        {
            Ok(x) => x,
            Err(e) => return self.internal(e),
        };
        self.proceed(&client, request, None, Some((id, interaction)))
            .await
    }

    /// The portal's sign-in ended: back to the portal (with the new session's cookie).
    pub(super) fn portal_signed_in(self) -> Response {
        let to = portal_url(self.tenant);
        self.redirect(&to)
    }
}

/// The sign-in pipeline's step for an IdP-initiated sign-in: the Response goes to the SP's
/// default ACS with its registered RelayState, and answers no request (SAML profiles §4.1.5).
pub fn idp_initiated_step(launch: &ValidatedLaunch) -> SamlStep {
    SamlStep {
        entity_id: launch.sp().entity_id.clone(),
        acs_url: launch.acs_url().to_string(),
        request_id: None,
        relay_state: launch.relay_state().map(str::to_string),
        accepted_contexts: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_initiation_url_keeps_its_query_and_adds_iss_and_target_link_uri() {
        let u = third_party_login(
            "https://idp.example/acme",
            "https://app.example/login?from=portal",
            "https://app.example/",
        )
        .unwrap();
        assert_eq!(
            u,
            "https://app.example/login?from=portal&iss=https%3A%2F%2Fidp.example%2Facme&target_link_uri=https%3A%2F%2Fapp.example%2F"
        );
    }
}
