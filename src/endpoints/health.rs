//! Operations: liveness, readiness (checks the database) and Prometheus metrics.

use crate::error::OAuthError;
use crate::frontdoor::middleware::RequestContext;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub async fn live() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "{\"status\":\"ok\"}",
    )
        .into_response()
}

pub async fn ready(State(state): State<AppState>) -> Response {
    let db = state.store.ping().await;
    let tenants = state.registry.all().len();
    match db {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            format!(
                "{{\"status\":\"ok\",\"database\":\"{}\",\"tenants\":{tenants}}}",
                state.store.engine()
            ),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "readiness: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "application/json")],
                "{\"status\":\"unavailable\",\"database\":\"down\"}",
            )
                .into_response()
        }
    }
}

/// Prometheus text format, only to callers from `server.ops_networks`.
pub async fn metrics(State(state): State<AppState>, ctx: RequestContext) -> Response {
    // In-process callers (tests through `oneshot`) have no address and are allowed.
    if ctx
        .client_ip
        .is_some_and(|ip| !state.config.is_ops_network(ip))
    {
        return OAuthError::not_found("no such endpoint").into_response();
    }
    let tenants: Vec<_> = state
        .registry
        .all()
        .iter()
        .map(|t| (t.spec.slug.clone(), t.metrics.clone()))
        .collect();
    let mut body = crate::metrics::render(&tenants, &state.unknown_metrics);
    body.push_str(&format!(
        "# HELP portcullis_upstream_document_fetches_total Upstream discovery documents, JWK Sets and SAML metadata fetched.\n\
         # TYPE portcullis_upstream_document_fetches_total counter\n\
         portcullis_upstream_document_fetches_total {}\n",
        state.federation.docs.fetch_count()
    ));
    state.connections.render_metrics(&mut body);
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}
