//! Cross-cutting request handling: request id, client address behind trusted proxies, host-based
//! tenant routing, body limits, timeouts, security headers.

use super::ConnectionInfo;
use crate::error::{ErrorCode, OAuthError, body_too_large};
use crate::request::{ListenerKind, RequestContext};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rustls::pki_types::CertificateDer;
use std::net::IpAddr;
use std::sync::Arc;
use tracing::Instrument;

/// The outermost layer: runs before routing, so it may rewrite the path of host-routed tenants.
pub async fn front(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let request_id: Arc<str> = Arc::from(state.next_request_id());
    let conn = req.extensions().get::<ConnectionInfo>().cloned();
    let peer_ip = conn.as_ref().map(|c| c.remote.ip());
    let trusted = peer_ip.is_some_and(|ip| state.config.is_trusted_proxy(ip));
    // Forwarded headers count only from trusted proxies. (Read in a block: a borrow of the
    // request must not live across an await, the body is not Sync.)
    let (fwd_for, fwd_proto, fwd_host, fwd_cert) = {
        let forwarded = |name: &str| -> Option<String> {
            if !trusted {
                return None;
            }
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        (
            forwarded("x-forwarded-for"),
            forwarded("x-forwarded-proto"),
            forwarded("x-forwarded-host"),
            state
                .config
                .server
                .client_cert_header
                .as_deref()
                .and_then(forwarded),
        )
    };
    let client_certs = match conn.as_ref().and_then(|c| c.peer_certificates.clone()) {
        Some(chain) => Some(chain),
        None => fwd_cert
            .as_deref()
            .and_then(forwarded_certificate)
            .map(|der| Arc::new(vec![der])),
    };
    let client_ip = fwd_for
        .and_then(|v| client_from_forwarded_for(&v, &state))
        .or(peer_ip);
    let listener = conn.as_ref().map(|c| c.listener);
    let secure = match listener {
        Some(ListenerKind::Main | ListenerKind::Mtls) => true,
        _ => fwd_proto.is_some_and(|p| p.eq_ignore_ascii_case("https")),
    };

    // Tenants with their own host names are served at the root of those hosts: route them as if
    // the path carried the slug. The issuer never comes from the Host header
    if state.registry.has_hosts() {
        let host = fwd_host
            .or_else(|| req.uri().host().map(str::to_string))
            .or_else(|| {
                req.headers()
                    .get(header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            });
        if let Some(host) = host {
            let name = host
                .rsplit_once(':')
                .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
                .map_or(host.as_str(), |(h, _)| h);
            let path = req.uri().path();
            let operational =
                path.starts_with("/health/") || path == "/metrics" || path == "/favicon.ico";
            if !operational
                && let Some(slug) = state.registry.slug_for_host(&name.to_ascii_lowercase())
            {
                let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
                if let Ok(uri) = format!("/{slug}{pq}").parse::<Uri>() {
                    *req.uri_mut() = uri;
                }
            }
        }
    }

    let max = state.config.server.max_body_bytes;
    let too_large = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > max as u64);

    let path: Arc<str> = Arc::from(req.uri().path());
    req.extensions_mut().insert(RequestContext {
        request_id: request_id.clone(),
        client_ip,
        secure,
        listener,
        path,
        client_certs,
    });
    // The request's span (and, with [telemetry], the root of its trace, continuing the
    // caller's); the tenant middleware opens the route's span inside it.
    let span = tracing::info_span!(
        "request",
        id = %request_id,
        method = %req.method(),
        path = %req.uri().path(),
        otel.kind = "server",
    );
    crate::telemetry::continue_trace(&span, req.headers());
    let mut response = if too_large {
        body_too_large()
    } else {
        let timeout = state.config.server.request_timeout;
        match tokio::time::timeout(timeout, next.run(req).instrument(span.clone())).await {
            Ok(r) => r,
            Err(_) => {
                let _enter = span.enter();
                tracing::warn!("request timed out");
                OAuthError::new(
                    ErrorCode::TemporarilyUnavailable,
                    "the request took too long",
                )
                .into_response()
            }
        }
    };
    set_security_headers(&mut response, secure, &request_id);
    response
}

/// A certificate a proxy forwarded: URL-encoded PEM (nginx `$ssl_client_escaped_cert`), or
/// Envoy's `x-forwarded-client-cert` with a `Cert="…"` element (URL-encoded PEM).
fn forwarded_certificate(value: &str) -> Option<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    let pem_encoded = match value.find("Cert=\"") {
        Some(start) => value.get(start + 6..)?.split('"').next()?,
        None => value,
    };
    let pem: String =
        form_urlencoded::parse(format!("x={}", pem_encoded.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())?;
    CertificateDer::from_pem_slice(pem.as_bytes()).ok()
}

/// Each proxy appends the address it received the request from, so the client is the right-most
/// address that is not one of our trusted proxies; anything left of it was written by the client
/// and proves nothing.
fn client_from_forwarded_for(value: &str, state: &AppState) -> Option<IpAddr> {
    let mut addresses = value.rsplit(',').map(|s| s.trim().parse::<IpAddr>().ok());
    let mut last = None;
    for ip in addresses.by_ref() {
        let ip = ip?;
        last = Some(ip);
        if !state.config.is_trusted_proxy(ip) {
            return Some(ip);
        }
    }
    last
}

fn set_security_headers(response: &mut Response, secure: bool, request_id: &str) {
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if secure {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-request-id", v);
    }
}
