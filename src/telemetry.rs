//! OpenTelemetry traces over OTLP/HTTP (JSON), off unless `[telemetry] otlp_endpoint` is set.
//!
//! The code's `tracing` spans are the traces: a `request` span per request (tenant, endpoint,
//! client id, outcome), `store` spans around database operations and `outbound` spans around
//! requests to other servers (upstream providers, JWK Sets, metadata, webhooks). The
//! OpenTelemetry layer takes spans only (events stay in the log), and the store and outbound
//! spans are at TRACE level, so that without the layer they are never created. W3C trace context
//! (`traceparent`, `tracestate`) is read from incoming requests and sent on every outbound one.
//! Metrics stay Prometheus (`/metrics`).

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The exporter of this process; dropping it exports what is left and stops.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Telemetry")
    }
}

impl Telemetry {
    /// Starts the exporter `[telemetry]` describes; `None` when no endpoint is set. Must run
    /// outside an async runtime (the exporter's HTTP client is a blocking one, on the SDK's
    /// export thread).
    pub fn start(t: &crate::config::runtime::Telemetry) -> Result<Option<Self>, String> {
        let Some(endpoint) = &t.otlp_endpoint else {
            return Ok(None);
        };
        use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
        let mut headers = std::collections::HashMap::new();
        if let Some(auth) = &t.otlp_authorization {
            headers.insert("authorization".to_string(), auth.clone());
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint.as_str())
            .with_protocol(opentelemetry_otlp::Protocol::HttpJson)
            .with_timeout(std::time::Duration::from_secs(10))
            .with_headers(headers)
            .build()
            .map_err(|e| format!("telemetry.otlp_endpoint: {e}"))?;
        let batches = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                opentelemetry_sdk::trace::BatchConfigBuilder::default()
                    .with_scheduled_delay(t.export_interval)
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batches)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(t.service_name.clone())
                    .build(),
            )
            .build();
        Ok(Some(Telemetry { provider }))
    }

    /// The layer that turns this process's spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        use tracing_subscriber::Layer as _;
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("portcullis"))
            .with_filter(tracing_subscriber::filter::filter_fn(|m| m.is_span()))
    }

    /// Exports every finished span now.
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

struct Headers<'a>(&'a mut HeaderMap);

impl Injector for Headers<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

struct ReadHeaders<'a>(&'a axum::http::HeaderMap);

impl Extractor for ReadHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The W3C trace context of `span` as headers (`traceparent`, `tracestate`) for a request to
/// another server; none when tracing is off.
pub fn trace_headers(span: &tracing::Span) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let cx = span.context();
    TraceContextPropagator::new().inject_context(&cx, &mut Headers(&mut headers));
    headers
}

/// Continues the caller's trace when a request carries W3C trace context.
pub fn continue_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&ReadHeaders(headers));
    let _ = span.set_parent(cx);
}

#[cfg(test)]
mod tests {
    #[test]
    fn without_the_layer_no_trace_context_is_sent() {
        let span = tracing::info_span!("request");
        assert!(super::trace_headers(&span).is_empty());
    }
}
