//! Operations: liveness, readiness (checks the database) and Prometheus metrics.

use crate::error::OAuthError;
use crate::request::RequestContext;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::atomic::Ordering::Relaxed;

pub async fn live() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "{\"status\":\"ok\"}",
    )
        .into_response()
}

/// How long readiness waits for the database: a load balancer that asks every second or two
/// learns of an outage within that, not after the pool's acquire timeout.
const READY_DB_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);

/// Ready: the database answers and, on PostgreSQL, this node hears other nodes' change notices
/// (until then a change made elsewhere could stay unknown here until the next periodic sync).
pub async fn ready(State(state): State<AppState>) -> Response {
    let db = match tokio::time::timeout(READY_DB_TIMEOUT, state.store.ping()).await {
        Ok(r) => r,
        Err(_) => Err(crate::error::InternalError::Unavailable(
            "no answer within 1.5 s".into(),
        )),
    };
    let tenants = state.registry.len();
    match db {
        Ok(()) if !state.hears_changes() => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"status\":\"unavailable\",\"changes\":\"not subscribed\"}",
        )
            .into_response(),
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
            tracing::warn!(error = %e, "readiness: database unreachable");
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
        "# HELP portcullis_upstream_document_fetches_total Documents fetched: upstream discovery, JWK Sets (upstreams' and clients'), SAML metadata.\n\
         # TYPE portcullis_upstream_document_fetches_total counter\n\
         portcullis_upstream_document_fetches_total {}\n\
         # HELP portcullis_outbound_refused_total Outbound requests refused by the guard (not https, or an internal address).\n\
         # TYPE portcullis_outbound_refused_total counter\n\
         portcullis_outbound_refused_total {}\n",
        state.documents.fetch_count(),
        state.outbound.refused_count()
    ));
    let hashing = state.passwords.stats();
    body.push_str(&format!(
        "# HELP portcullis_password_verifications_total Password hashes computed (sign-in attempts evaluated).\n\
         # TYPE portcullis_password_verifications_total counter\n\
         portcullis_password_verifications_total {}\n\
         # HELP portcullis_password_verifications_refused_total Password verifications refused because the hashing queue was full.\n\
         # TYPE portcullis_password_verifications_refused_total counter\n\
         portcullis_password_verifications_refused_total {}\n\
         # HELP portcullis_password_verifications_abandoned_total Queued password verifications dropped unhashed because their client had gone.\n\
         # TYPE portcullis_password_verifications_abandoned_total counter\n\
         portcullis_password_verifications_abandoned_total {}\n",
        hashing.computed.load(Relaxed),
        hashing.refused.load(Relaxed),
        hashing.abandoned.load(Relaxed),
    ));
    state.connections.render_metrics(&mut body);
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}
