//! Which local user an external identity signs in as: the linked one; a local account with the
//! same verified email, where the tenant's operator trusts the (file) provider for it; or a user
//! provisioned just in time. Links are keyed by provider, upstream and upstream subject.

use super::{ExternalIdentity, FederationError, Provider};
use crate::config::tenant::UserSpec;
use crate::error::InternalError;
use crate::registry::Tenant;
use crate::state::AppState;
use crate::stores::{FederationStore, UserStore};
use serde_json::Value;

/// The username a provisioned user gets: unique per provider and upstream subject.
fn provisioned_username(provider: &str, upstream_subject: &str) -> String {
    let mut s = format!("{provider}:{upstream_subject}");
    if s.len() > 200 {
        let digest = crate::tokens::handle_hash(upstream_subject);
        s = format!("{provider}:{digest}");
    }
    s
}

/// Links `ext` to the local user `subject`; false when the identity was linked already (by
/// another request that got there first).
async fn link(
    state: &AppState,
    slug: &str,
    ext: &ExternalIdentity,
    subject: &str,
    now: i64,
) -> Result<bool, crate::error::InternalError> {
    state
        .store
        .insert_link(
            slug,
            &ext.provider,
            &ext.upstream,
            &ext.subject,
            subject,
            now,
        )
        .await
}

/// The local user an external identity signs in as: the linked one; or, when the tenant's
/// operator trusts this (file) provider to link by verified email, the one local user with that
/// email (linked now); or a new user (linked now). Returns the user's subject.
pub async fn link_or_provision(
    state: &AppState,
    tenant: &Tenant,
    provider: &Provider,
    ext: &ExternalIdentity,
) -> Result<String, FederationError> {
    let slug = tenant.slug();
    let now = state.now();
    let username = provisioned_username(&ext.provider, &ext.subject);
    if let Some(subject) = find_link(state, tenant, provider, ext).await? {
        let user = crate::users::directory::by_subject(&state.store, tenant, &subject).await?;
        let Some(mut user) = user.filter(|u| u.enabled) else {
            return Err(FederationError::Denied(
                "the account linked to this identity is disabled or gone".into(),
            ));
        };
        // A provisioned user's claims follow the upstream's.
        let provisioned =
            user.username == username || user.username.starts_with(&format!("{username}~"));
        if provisioned && user.claims != ext.claims {
            user.claims = ext.claims.clone();
            state
                .store
                .upsert_user(slug, &user, "federation", now)
                .await?;
        }
        return Ok(subject);
    }
    if links_by_email(tenant, provider)
        && ext.claims.get("email_verified") == Some(&Value::Bool(true))
        && let Some(email) = ext.claims.get("email").and_then(Value::as_str)
    {
        let mut candidates: Vec<UserSpec> = tenant
            .spec
            .users
            .iter()
            .filter(|u| {
                u.claims
                    .get("email")
                    .and_then(Value::as_str)
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .cloned()
            .collect();
        candidates.extend(state.store.find_users_by_email(slug, email).await?);
        // Exactly one local account, or nothing is linked (ambiguity is not guessed at).
        if let [user] = candidates.as_slice()
            && user.enabled
        {
            if link(state, slug, ext, &user.subject, now).await? {
                tracing::info!(target: "security", event = "account_linked", tenant = slug, provider = %ext.provider, subject = %user.subject, "external identity linked by verified email");
            }
            return Ok(user.subject.clone());
        }
    }
    if !provider.spec.provisioning.jit {
        return Err(FederationError::Denied(
            "there is no account for this identity here; ask an administrator to create one".into(),
        ));
    }
    // The username of an earlier user of this provider id (its links gone with a removed
    // provider) stays that user's: the new one gets a suffix.
    let username = if state
        .store
        .find_user_by_username(slug, &username)
        .await?
        .is_some()
    {
        let suffix: String = crate::tokens::new_jti().chars().take(8).collect();
        format!("{username}~{suffix}")
    } else {
        username
    };
    let user = UserSpec {
        subject: crate::tokens::new_jti(),
        username,
        password_hash: String::new(),
        totp_secret: None,
        enabled: true,
        claims: ext.claims.clone(),
    };
    state
        .store
        .upsert_user(slug, &user, "federation", now)
        .await?;
    if link(state, slug, ext, &user.subject, now).await? {
        tracing::info!(target: "security", event = "user_provisioned", tenant = slug, provider = %ext.provider, subject = %user.subject, "user created on first sign-in");
        return Ok(user.subject);
    }
    // Another request linked this identity first: use its user, drop ours.
    state.store.delete_user(slug, &user.subject).await?;
    state
        .store
        .find_link(slug, &ext.provider, &ext.upstream, &ext.subject)
        .await?
        .ok_or_else(|| FederationError::Internal(InternalError::Other("link vanished".into())))
}

/// Whether the tenant's operator trusts `provider` to link by verified email: a file provider
/// the tenant file names in `link_by_verified_email`. A runtime provider never is: whoever holds
/// the tenant's admin token could point it at an upstream that asserts anyone's email.
fn links_by_email(tenant: &Tenant, provider: &Provider) -> bool {
    provider.owner.is_none()
        && tenant
            .spec
            .link_by_verified_email
            .contains(&provider.spec.id)
}

/// The local user linked to `ext`. Links made before links were keyed by the upstream (an
/// empty upstream) are honoured for file providers only, whose upstream the operator fixed, and
/// are keyed by it on first use.
async fn find_link(
    state: &AppState,
    tenant: &Tenant,
    provider: &Provider,
    ext: &ExternalIdentity,
) -> Result<Option<String>, InternalError> {
    let slug = tenant.slug();
    if let Some(s) = state
        .store
        .find_link(slug, &ext.provider, &ext.upstream, &ext.subject)
        .await?
    {
        return Ok(Some(s));
    }
    if provider.owner.is_some() {
        return Ok(None);
    }
    state
        .store
        .adopt_legacy_link(slug, &ext.provider, &ext.upstream, &ext.subject)
        .await
}
