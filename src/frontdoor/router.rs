//! The routes. Tenant routes sit behind tenant resolution; everything sits behind the front layer.

use super::{middleware, tenant};
use crate::endpoints::{
    admin, authorize, backchannel, client_admin, consent, device, discovery, end_session,
    federation, health, interaction, introspection, jwks, login, par, portal, registration,
    revocation, saml, saml_admin, saml_logout, token, userinfo,
};
use crate::error::OAuthError;
use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::{get, post};

/// The 405 of a POST-only endpoint, naming it (RFC 9110 §15.5.6; `Allow: POST`).
fn only_post(
    endpoint: &'static str,
) -> impl Fn() -> std::future::Ready<axum::response::Response> + Clone + Send + Sync + 'static {
    move || std::future::ready(OAuthError::only_post(endpoint).into_response())
}

pub fn app(state: AppState) -> Router {
    let tenant_routes = Router::new()
        .route(
            "/{tenant}/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route(
            "/.well-known/oauth-authorization-server/{tenant}",
            get(discovery::openid_configuration),
        )
        .route("/{tenant}/.well-known/jwks", get(jwks::jwks))
        .route("/{tenant}/saml/metadata", get(saml::metadata))
        .route(
            "/{tenant}/saml/sso",
            get(saml::sso_get).post(saml::sso_post),
        )
        .route("/{tenant}/apps", get(portal::portal))
        .route(
            "/{tenant}/apps/launch",
            post(portal::launch).fallback(interaction::post_only),
        )
        .route(
            "/{tenant}/saml/slo",
            get(saml_logout::slo_get).post(saml_logout::slo_post),
        )
        .route(
            "/{tenant}/connect/token",
            post(token::token).fallback(only_post("the token endpoint")),
        )
        .route(
            "/{tenant}/connect/authorize",
            get(authorize::get).post(authorize::post),
        )
        .route(
            "/{tenant}/connect/par",
            post(par::par).fallback(only_post("the pushed authorization request endpoint")),
        )
        .route(
            "/{tenant}/connect/deviceauthorization",
            post(device::device_authorization)
                .fallback(only_post("the device authorization endpoint")),
        )
        .route(
            "/{tenant}/connect/ciba",
            post(backchannel::backchannel_authentication)
                .fallback(only_post("the backchannel authentication endpoint")),
        )
        .route(
            "/{tenant}/approvals",
            get(backchannel::approvals).post(backchannel::approvals_submit),
        )
        .route(
            "/{tenant}/device",
            get(device::verification_form).post(device::verification_submit),
        )
        .route(
            "/{tenant}/connect/introspect",
            post(introspection::introspect).fallback(only_post("the introspection endpoint")),
        )
        .route(
            "/{tenant}/connect/revocation",
            post(revocation::revoke).fallback(only_post("the revocation endpoint")),
        )
        .route(
            "/{tenant}/connect/userinfo",
            get(userinfo::get).post(userinfo::post),
        )
        .route(
            "/{tenant}/connect/endsession",
            get(end_session::get).post(end_session::post),
        )
        .route(
            "/{tenant}/account/login",
            get(login::login_form).post(login::login_submit),
        )
        .route(
            "/{tenant}/account/login/totp",
            post(login::totp_submit).fallback(interaction::post_only),
        )
        .route(
            "/{tenant}/account/consent",
            get(consent::consent_form).post(consent::consent_submit),
        )
        .route(
            "/{tenant}/account/logout",
            post(end_session::confirm).fallback(interaction::post_only),
        )
        .route(
            "/{tenant}/admin/providers",
            get(admin::list).post(admin::create),
        )
        .route(
            "/{tenant}/admin/providers/{id}",
            get(admin::get_one)
                .put(admin::put)
                .patch(admin::patch)
                .delete(admin::delete),
        )
        .route(
            "/{tenant}/admin/clients",
            get(client_admin::list).post(client_admin::create),
        )
        .route(
            "/{tenant}/admin/clients/{client_id}",
            get(client_admin::get_one)
                .put(client_admin::put)
                .patch(client_admin::patch)
                .delete(client_admin::delete),
        )
        .route(
            "/{tenant}/admin/clients/{client_id}/secret",
            post(client_admin::rotate_secret).fallback(only_post("the secret rotation endpoint")),
        )
        .route(
            "/{tenant}/admin/initial-access-tokens",
            post(client_admin::initial_token)
                .fallback(only_post("the initial access token endpoint")),
        )
        .route(
            "/{tenant}/connect/register",
            post(registration::register).fallback(only_post("the registration endpoint")),
        )
        .route(
            "/{tenant}/connect/register/{client_id}",
            get(registration::read)
                .put(registration::update)
                .delete(registration::delete),
        )
        .route(
            "/{tenant}/admin/saml-service-providers",
            get(saml_admin::list).post(saml_admin::create),
        )
        .route(
            "/{tenant}/admin/saml-service-providers/{entity_id}",
            get(saml_admin::get_one)
                .put(saml_admin::put)
                .patch(saml_admin::patch)
                .delete(saml_admin::delete),
        )
        .route(
            "/{tenant}/federation/{provider}/start",
            get(federation::start),
        )
        .route(
            "/{tenant}/federation/{provider}/callback",
            get(federation::callback),
        )
        .route(
            "/{tenant}/federation/{provider}/complete",
            get(federation::complete),
        )
        .route(
            "/{tenant}/federation/{provider}/metadata",
            get(federation::saml_metadata),
        )
        .route(
            "/{tenant}/federation/{provider}/acs",
            post(federation::saml_acs).fallback(interaction::post_only),
        )
        .route(
            "/{tenant}/federation/{provider}/signed-out",
            get(federation::signed_out),
        )
        .route(
            "/{tenant}/federation/{provider}/backchannel-logout",
            post(federation::backchannel_logout)
                .fallback(only_post("the back-channel logout endpoint")),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            tenant::resolve,
        ));
    let routes = Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        // Browsers ask for it on every page; there is none, and that is not an error.
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
        .merge(tenant_routes)
        .fallback(|| async { OAuthError::not_found("no such endpoint").into_response() })
        .layer(DefaultBodyLimit::max(state.config.server.max_body_bytes))
        .with_state(state.clone());
    // The front layer wraps the router as a whole so that it runs before routing.
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn_with_state(
            state,
            middleware::front,
        ))
}
