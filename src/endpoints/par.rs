//! `POST /{tenant}/connect/par` (RFC 9126): an authenticated client pushes its authorization
//! request and gets a short-lived, single-use `request_uri` for it.

use super::call::OAuthCall;
use crate::error::json_no_store;
use crate::error::{ErrorCode, InternalError, OAuthError};
use crate::stores::{GrantKind, GrantRecord, GrantStore};
use crate::tokens;
use crate::validation::authorize::{self, AuthorizeError, PAR_URN_PREFIX};
use crate::validation::client_auth;
use crate::validation::form::Form;
use axum::http::StatusCode;
use axum::response::Response;

/// Client authentication parameters are not part of the stored request.
const AUTH_PARAMS: &[&str] = &[
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    // Internal marker of a verified request object; never accepted from outside.
    "_signed",
];

pub async fn par(call: OAuthCall) -> Response {
    let (state, tenant, ctx, headers, form) = call.parts();
    let result = async {
        let auth = client_auth::authenticate(state, tenant, headers, form, ctx).await?;
        let client_id = auth.client().spec.client_id.clone();
        // RFC 9126 §2.1: request_uri is not allowed in a pushed request.
        if form.get("request_uri").is_some() {
            return Err(OAuthError::invalid_request("request_uri cannot be pushed"));
        }
        if form.get("client_id").is_some_and(|id| id != client_id) {
            return Err(OAuthError::invalid_request(
                "client_id does not match the authenticated client",
            ));
        }
        // RFC 9449 §10.1: a proof at PAR binds the future code to its key (dpop_jkt).
        let proof =
            crate::validation::dpop::verify_request(state, tenant, ctx, headers, "POST", None)
                .await?;
        let mut request = Form::from_pairs(
            form.pairs()
                .iter()
                .filter(|(k, _)| !AUTH_PARAMS.contains(&k.as_str()))
                .cloned()
                .collect(),
        );
        let mut signed = false;
        if let Some(object) = request.get("request") {
            // RFC 9101 §6.3: a pushed request object is used alone, as at the authorization
            // endpoint (RFC 9126 §3).
            request =
                authorize::verify_request_object(state, tenant, auth.client(), object, &request)
                    .await
                    .map_err(to_oauth)?;
            signed = true;
        }
        let mut pairs = request.pairs().to_vec();
        if !pairs.iter().any(|(k, _)| k == "client_id") {
            pairs.push(("client_id".into(), client_id.clone()));
        }
        if let Some(p) = &proof {
            match pairs.iter().find(|(k, _)| k == "dpop_jkt") {
                Some((_, jkt)) if *jkt != p.jkt => {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidDpopProof,
                        "dpop_jkt does not match the DPoP proof",
                    ));
                }
                Some(_) => {}
                None => pairs.push(("dpop_jkt".into(), p.jkt.clone())),
            }
        }
        let request = Form::from_pairs(pairs);
        // RFC 9126 §2.1: the pushed request is validated like an authorization request, and
        // errors come back in this response, never by redirect.
        authorize::validate(tenant, &request, true, signed)
            .await
            .map_err(to_oauth)?;
        let handle = tokens::new_handle();
        let now = state.now();
        let lifetime = tenant.spec.par.lifetime;
        let data = serde_json::to_string(request.pairs()).map_err(InternalError::from)?;
        state
            .store
            .insert_grant(
                tenant.slug(),
                &GrantRecord {
                    handle_hash: tokens::handle_hash(&handle),
                    client_id,
                    data,
                    created_at: now,
                    expires_at: now + lifetime,
                    ..GrantRecord::of(GrantKind::Par)
                },
            )
            .await?;
        let body = serde_json::to_vec(&serde_json::json!({
            "request_uri": format!("{PAR_URN_PREFIX}{handle}"),
            "expires_in": lifetime,
        }))
        .map_err(InternalError::from)?;
        let mut r = json_no_store(axum::http::StatusCode::OK, body);
        *r.status_mut() = StatusCode::CREATED;
        Ok::<_, OAuthError>(r)
    }
    .await;
    call.answer("par", result)
}

fn to_oauth(e: AuthorizeError) -> OAuthError {
    match e {
        AuthorizeError::Page(e) | AuthorizeError::Redirect(_, e) => e,
        AuthorizeError::Internal(e) => e.into(),
    }
}
