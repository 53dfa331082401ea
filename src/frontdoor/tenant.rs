//! Tenant resolution: the first path segment names the tenant (host-routed tenants had it added
//! by the front layer). Unknown tenants are answered 404 here, before any endpoint runs.

use crate::error::OAuthError;
use crate::metrics::Endpoint;
use crate::request::{CurrentTenant, RequestContext};
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;
use tracing::Instrument as _;

fn endpoint_of(route: Option<&str>) -> Endpoint {
    match route.unwrap_or_default() {
        r if r.ends_with("/.well-known/openid-configuration")
            || r.starts_with("/.well-known/oauth-authorization-server") =>
        {
            Endpoint::Discovery
        }
        r if r.ends_with("/.well-known/jwks") => Endpoint::Jwks,
        r if r.ends_with("/connect/token") => Endpoint::Token,
        _ => Endpoint::Other,
    }
}

/// Route layer of every tenant route: resolves the tenant and records its metrics.
pub async fn resolve(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let endpoint = endpoint_of(route);
    // The route's span ("POST /{tenant}/connect/token", with tenant, client and outcome), in
    // which the handler runs: DEBUG, so that it costs nothing without [telemetry] or a debug
    // log.
    let route = route.unwrap_or("-");
    let span = tracing::debug_span!(
        "endpoint",
        otel.name = %format_args!("{} {route}", req.method()),
        endpoint = route,
        tenant = tracing::field::Empty,
        client_id = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    let slug = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    // RFC 8414 §3: /.well-known/oauth-authorization-server/{slug}
    let slug = if slug == ".well-known" {
        req.uri().path().rsplit('/').next().unwrap_or_default()
    } else {
        slug
    };
    let Some(tenant) = state.registry.get(slug) else {
        let request_id = req
            .extensions()
            .get::<RequestContext>()
            .map(|c| c.request_id.clone())
            .unwrap_or_else(|| "-".into());
        crate::events::request_rejected(
            "-",
            endpoint.as_str(),
            &request_id,
            "not_found",
            "unknown tenant",
        );
        let response = OAuthError::not_found("unknown tenant").into_response();
        state.unknown_metrics.record(
            endpoint,
            response.status().as_u16(),
            start.elapsed().as_secs_f64(),
        );
        return response;
    };
    // A tenant's first RSA key is made when first needed (`keys::ring::sync_tenant`): before
    // an endpoint that may sign with it, or publish it, runs. Discovery never signs; the token
    // endpoint makes sure of the key it signs with itself (most of its requests need none).
    if !matches!(endpoint, Endpoint::Discovery | Endpoint::Token)
        && !tenant.keys.load().complete()
        && let Err(e) = crate::registry::sync::signing_keys(&state, &tenant).await
    {
        tracing::error!(tenant = %tenant.slug(), error = %e, "cannot make the tenant's keys");
        return OAuthError::from(e).into_response();
    }
    span.record("tenant", tenant.slug());
    let metrics = tenant.metrics.clone();
    req.extensions_mut().insert(CurrentTenant(tenant));
    let response = next.run(req).instrument(span.clone()).await;
    span.record("outcome", response.status().as_u16());
    metrics.record(
        endpoint,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}
