//! Home-realm discovery: which way in a sign-in takes — an upstream provider named by a hint,
//! the provider that claims the user's email domain, the client's only provider, or the
//! sign-in page.

use super::{Federation, LOCAL, client_allows, local_login_allowed};
use crate::config::Client;
use crate::error::InternalError;
use crate::registry::Tenant;
use crate::stores::FederationStore;

/// What home-realm discovery decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Realm {
    /// Send the browser to this provider.
    Provider(String),
    /// Show the sign-in page.
    Page,
}

impl Federation {
    /// The provider that claims the domain of `email` for `tenant`, if any.
    pub async fn provider_for_email(
        &self,
        tenant: &Tenant,
        email: &str,
    ) -> Result<Option<String>, InternalError> {
        let Some((_, domain)) = email.rsplit_once('@') else {
            return Ok(None);
        };
        let domain = domain.trim().to_ascii_lowercase();
        if domain.is_empty() || domain.len() > 253 {
            return Ok(None);
        }
        let files = self.files.load();
        for id in &tenant.spec.providers {
            if let Some(p) = files.get(id)
                && p.spec.domains.contains(&domain)
            {
                return Ok(Some(id.clone()));
            }
        }
        self.store.provider_for_domain(tenant.slug(), &domain).await
    }

    /// Home-realm discovery, in this order: an explicit hint (`acr_values=idp:<id>` as
    /// IdentityServer reads it, or `idp_hint`); the domain of `login_hint`; the client's only
    /// provider when it allows no local login; otherwise the sign-in page.
    pub async fn home_realm(
        &self,
        tenant: &Tenant,
        client: &Client,
        request: &crate::validation::authorize::ValidatedAuthorize,
    ) -> Result<Realm, InternalError> {
        let hint = request
            .acr_values
            .iter()
            .find_map(|a| a.strip_prefix("idp:"))
            .or(request.idp_hint.as_deref());
        if let Some(id) = hint {
            if id == LOCAL {
                return Ok(Realm::Page);
            }
            if client_allows(client, id) && self.find(tenant, id).await?.is_some() {
                return Ok(Realm::Provider(id.to_string()));
            }
            tracing::info!(tenant = %tenant.slug(), provider = id, "idp hint names no provider this client may use; showing the sign-in page");
        }
        if let Some(hint) = &request.login_hint
            && let Some(id) = self.provider_for_email(tenant, hint).await?
            && client_allows(client, &id)
            && self.find(tenant, &id).await?.is_some()
        {
            return Ok(Realm::Provider(id));
        }
        if !local_login_allowed(client) {
            let only: Vec<&String> = client
                .spec
                .interactive
                .identity_providers
                .iter()
                .filter(|i| *i != LOCAL)
                .collect();
            if let [one] = only.as_slice() {
                return Ok(Realm::Provider((*one).clone()));
            }
        }
        Ok(Realm::Page)
    }
}
