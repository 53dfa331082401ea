//! The tenant's own grant types (RFC 6749 §4.5), decided by its webhook. The webhook is POSTed
//! the request's parameters (never the client's credentials) as JSON, with a JWT the tenant
//! signs (audience: the webhook's URL; `body_sha256`: the body's hash), and answers
//! `{"subject": …, "scope"?: …, "claims"?: {…}}` to grant, or an RFC 6749 §5.2 error object to
//! refuse. A webhook that is slow, unreachable or answers anything else grants nothing: the
//! client is told `temporarily_unavailable`.

use super::{Derived, GrantRequest, Issue, ValidatedGrant};
use crate::config::tenant::WebhookGrant;
use crate::error::{ErrorCode, InternalError, OAuthError};
use base64::Engine;
use serde_json::{Map, Value, json};

/// The largest webhook answer read.
const MAX_ANSWER: usize = 64 * 1024;
/// Parameters never sent to the webhook: the client's credentials.
const WITHHELD: &[&str] = &["client_secret", "client_assertion", "client_assertion_type"];
/// Claims the webhook may not set: the ones this server makes.
const RESERVED: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "client_id",
    "scope",
    "cnf",
];

pub async fn validate(
    r: GrantRequest<'_>,
    grant: &WebhookGrant,
) -> Result<ValidatedGrant, OAuthError> {
    let (state, tenant) = (r.state, r.tenant);
    let client = r.client.client();
    if !client.spec.extension_grants.contains(&grant.grant_type) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client may not use this grant type",
        ));
    }
    let (scopes, audiences) = super::scopes_and_audiences(tenant, client, r.form, None)?;
    let mut parameters = Map::new();
    for (name, value) in r.form.pairs() {
        if WITHHELD.contains(&name.as_str()) {
            continue;
        }
        match parameters.get_mut(name) {
            Some(Value::Array(list)) => list.push(value.clone().into()),
            Some(one) => *one = json!([one.clone(), value]),
            None => {
                parameters.insert(name.clone(), value.clone().into());
            }
        }
    }
    let body = serde_json::to_vec(&json!({
        "grant_type": grant.grant_type,
        "tenant": tenant.slug(),
        "client_id": client.spec.client_id,
        "scope": scopes.join(" "),
        "audience": audiences,
        "parameters": parameters,
    }))
    .map_err(InternalError::from)?;
    // The JWT is signed with the tenant's access token key, made first if it is a first RSA key.
    crate::registry::sync::keys_to_sign(r.state, tenant, tenant.spec.tokens.access_token_algorithm)
        .await?;
    let jwt = request_jwt(r.state, tenant, grant, &client.spec.client_id, &body)?;
    let unavailable = |why: &str| {
        crate::events::grant_refused(
            tenant.slug(),
            &client.spec.client_id,
            &r.ctx.request_id,
            &grant.grant_type,
            why,
        );
        OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            "the grant could not be decided: try again later",
        )
    };
    let answer = state
        .outbound
        .post_notification(&grant.webhook_url)
        .timeout(std::time::Duration::from_secs(grant.timeout))
        .limit(MAX_ANSWER)
        .bearer_auth(&jwt)
        .body("application/json", body)
        .send()
        .await
        .map_err(|e| unavailable(&format!("webhook unreachable: {e}")))?;
    let Ok(Value::Object(mut decided)) = serde_json::from_slice::<Value>(&answer.body) else {
        return Err(unavailable("the webhook did not answer a JSON object"));
    };
    // A refusal: the webhook's RFC 6749 §5.2 error, where it is one a client may be told.
    if let Some(code) = decided.get("error").and_then(Value::as_str) {
        let code = match code {
            "invalid_request" => ErrorCode::InvalidRequest,
            "invalid_scope" => ErrorCode::InvalidScope,
            "unauthorized_client" => ErrorCode::UnauthorizedClient,
            "access_denied" => ErrorCode::AccessDenied,
            _ => ErrorCode::InvalidGrant,
        };
        let description = decided
            .get("error_description")
            .and_then(Value::as_str)
            .filter(|d| d.len() <= 256 && d.chars().all(|c| (' '..='~').contains(&c)))
            .unwrap_or("the grant was refused")
            .to_string();
        crate::events::grant_refused(
            tenant.slug(),
            &client.spec.client_id,
            &r.ctx.request_id,
            &grant.grant_type,
            &format!("refused by the webhook: {description}"),
        );
        return Err(OAuthError::new(code, description));
    }
    if !answer.status.is_success() {
        return Err(unavailable(&format!(
            "the webhook answered {}",
            answer.status
        )));
    }
    let subject = match decided.remove("subject") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 255 => s,
        _ => return Err(unavailable("the webhook's answer has no subject")),
    };
    // The webhook may narrow the scopes, never widen them.
    let scopes = match decided.get("scope") {
        None => scopes,
        Some(Value::String(s)) => {
            let granted: Vec<String> = s
                .split(' ')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect();
            if granted.is_empty() || granted.iter().any(|g| !scopes.contains(g)) {
                return Err(unavailable(
                    "the webhook granted a scope beyond the request",
                ));
            }
            granted
        }
        Some(_) => return Err(unavailable("the webhook's scope is not a string")),
    };
    let claims = match decided.remove("claims") {
        None => Map::new(),
        Some(Value::Object(c)) if c.keys().all(|k| !RESERVED.contains(&k.as_str())) => c,
        Some(_) => {
            return Err(unavailable(
                "the webhook's claims are not an object, or set a claim this server makes",
            ));
        }
    };
    Ok(ValidatedGrant::new(
        &r.client,
        grant.grant_type.clone(),
        scopes,
        audiences,
        Issue::AccessToken(Derived::about(subject, claims)),
    ))
}

/// The webhook call's credential: a short-lived JWT of the tenant (verifiable with its JWKS)
/// for the webhook's URL, bound to the body by its SHA-256.
fn request_jwt(
    state: &crate::state::AppState,
    tenant: &crate::registry::Tenant,
    grant: &WebhookGrant,
    client_id: &str,
    body: &[u8],
) -> Result<String, InternalError> {
    let now = state.now();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    let claims = json!({
        "iss": tenant.spec.issuer,
        "aud": grant.webhook_url,
        "iat": now,
        "exp": now + 60,
        "jti": crate::tokens::new_jti(),
        "sub": client_id,
        "client_id": client_id,
        "grant_type": grant.grant_type,
        "body_sha256": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()),
    });
    let keys = tenant.keys.load();
    let signer = keys
        .signer(tenant.spec.tokens.access_token_algorithm)
        .ok_or_else(|| {
            InternalError::Other(format!("tenant {} has no signing key", tenant.slug()))
        })?;
    signer.sign_jwt("grant-webhook+jwt", &claims)
}
