//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523 §2.1): a JWT of a
//! trusted issuer, addressed to this server, used once, is the grant. A workload client's
//! assertion must also satisfy its trust policy (it is the client's only credential).

use super::{Derived, ExtensionGrant, GrantFuture, GrantRequest, Issue, ValidatedGrant};
use crate::config::tenant::{GrantType, JWT_BEARER_GRANT};
use crate::error::{ErrorCode, OAuthError};
use crate::stores::{GrantKind, GrantRecord, GrantStore};
use crate::validation::trusted::{self, Expect, Refused};

pub const GRANT: ExtensionGrant = ExtensionGrant {
    grant_type: JWT_BEARER_GRANT,
    validate,
};

fn validate(r: GrantRequest<'_>) -> GrantFuture<'_> {
    Box::pin(async move {
        let (state, tenant) = (r.state, r.tenant);
        let client = r.client.client();
        if !client.allows_grant(GrantType::JwtBearer) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client may not use the JWT bearer grant",
            ));
        }
        let refuse = |reason: &str| {
            crate::events::grant_refused(
                tenant.slug(),
                &client.spec.client_id,
                &r.ctx.request_id,
                JWT_BEARER_GRANT,
                reason,
            );
            OAuthError::invalid_grant(format!("the assertion is refused: {reason}"))
        };
        // RFC 7523 §2.1: one assertion (the form refuses a repeated parameter).
        let assertion = r
            .form
            .get("assertion")
            .ok_or_else(|| OAuthError::invalid_request("assertion is required"))?;
        // RFC 7523 §3 items 1-5: issuer, subject, audience (this server), expiry, signature.
        let token = match trusted::verify(state, tenant, assertion, Expect::ThisServer).await {
            Ok(t) => t,
            Err(Refused::Invalid(reason)) => return Err(refuse(reason)),
            Err(Refused::Unavailable(m)) => {
                return Err(OAuthError::new(ErrorCode::TemporarilyUnavailable, m));
            }
        };
        let template = match &client.spec.workload {
            Some(policy) => {
                trusted::policy_matches(policy, &token).map_err(refuse)?;
                policy
                    .subject_template
                    .as_deref()
                    .unwrap_or(&token.issuer.subject_template)
            }
            None => &token.issuer.subject_template,
        };
        let subject = trusted::render(template, &token.claims).map_err(refuse)?;
        let ceiling = (!token.issuer.scopes.is_empty()).then_some(token.issuer.scopes.as_slice());
        let (scopes, audiences) = super::scopes_and_audiences(tenant, client, r.form, ceiling)?;
        // RFC 7523 §3 item 7: a `jti` makes the assertion single use, on every node, for as
        // long as it could be accepted.
        let Some(jti) = token
            .str_claim("jti")
            .filter(|j| !j.is_empty() && j.len() <= 256)
        else {
            return Err(refuse("the assertion has no jti"));
        };
        let exp = token
            .claims
            .get("exp")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or_default();
        let now = state.now();
        let marker = GrantRecord {
            handle_hash: crate::tokens::handle_hash(&format!(
                "jwt-bearer:{}:{jti}",
                token.issuer.issuer
            )),
            client_id: client.spec.client_id.clone(),
            created_at: now,
            expires_at: exp.max(now) + 120,
            consumed_at: Some(now),
            ..GrantRecord::of(GrantKind::AssertionJti)
        };
        if !state.store.redeem_once(tenant.slug(), &marker, &[]).await? {
            return Err(refuse("the assertion was used before"));
        }
        let mut claims = serde_json::Map::new();
        claims.insert("idp".into(), token.issuer.issuer.clone().into());
        Ok(ValidatedGrant::new(
            &r.client,
            JWT_BEARER_GRANT,
            scopes,
            audiences,
            Issue::AccessToken(Derived::about(subject, claims)),
        ))
    })
}
