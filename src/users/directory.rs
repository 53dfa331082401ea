//! Who a tenant's users are, wherever they are kept: the tenant file's users (demos, static
//! accounts) first, then the database's (added with `portcullis users add`, or provisioned on
//! a first sign-in through an upstream). Token issuance, userinfo, the sign-in pages and
//! federation all look users up here.

use crate::config::tenant::UserSpec;
use crate::error::InternalError;
use crate::registry::Tenant;
use crate::stores::{Store, UserStore};

/// The user whose stable subject is `subject`.
pub async fn by_subject(
    store: &Store,
    tenant: &Tenant,
    subject: &str,
) -> Result<Option<UserSpec>, InternalError> {
    if let Some(u) = tenant.spec.users.iter().find(|u| u.subject == subject) {
        return Ok(Some(u.clone()));
    }
    store.find_user_by_subject(tenant.slug(), subject).await
}

/// The user who signs in as `username`.
pub async fn by_username(
    store: &Store,
    tenant: &Tenant,
    username: &str,
) -> Result<Option<UserSpec>, InternalError> {
    if let Some(u) = tenant.spec.users.iter().find(|u| u.username == username) {
        return Ok(Some(u.clone()));
    }
    store.find_user_by_username(tenant.slug(), username).await
}
