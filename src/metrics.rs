//! Prometheus metrics with lock-free cells: requests, latency histograms and errors by tenant and
//! endpoint, tokens issued by grant. Cells live with the tenant (carried across reloads), so
//! recording is a handful of atomic adds.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Discovery,
    Jwks,
    Token,
    Other,
}

impl Endpoint {
    pub const ALL: [Endpoint; 4] = [
        Endpoint::Discovery,
        Endpoint::Jwks,
        Endpoint::Token,
        Endpoint::Other,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Discovery => "discovery",
            Self::Jwks => "jwks",
            Self::Token => "token",
            Self::Other => "other",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// The `tenant` label of requests for tenants that do not exist.
const UNKNOWN: &str = "_unknown";

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default)]
struct EndpointCells {
    requests: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    sum_micros: AtomicU64,
}

#[derive(Debug, Default)]
pub struct TenantMetrics {
    endpoints: [EndpointCells; 4],
    tokens_client_credentials: AtomicU64,
}

impl TenantMetrics {
    pub fn record(&self, endpoint: Endpoint, status: u16, seconds: f64) {
        let Some(c) = self.endpoints.get(endpoint.index()) else {
            return;
        };
        c.requests.fetch_add(1, Relaxed);
        if (400..500).contains(&status) {
            c.client_errors.fetch_add(1, Relaxed);
        } else if status >= 500 {
            c.server_errors.fetch_add(1, Relaxed);
        }
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b)
            && let Some(b) = c.buckets.get(i)
        {
            b.fetch_add(1, Relaxed);
        }
        c.sum_micros.fetch_add((seconds * 1e6) as u64, Relaxed);
    }

    pub fn token_issued(&self, grant_type: &str) {
        if grant_type == "client_credentials" {
            self.tokens_client_credentials.fetch_add(1, Relaxed);
        }
    }

    /// Appends this tenant's samples to the four metric families (kept apart so that each
    /// family's lines stay together, as the exposition format requires).
    fn render(&self, tenant: &str, f: &mut [String; 4]) {
        let [requests, errors, durations, tokens] = f;
        for e in Endpoint::ALL {
            let Some(c) = self.endpoints.get(e.index()) else {
                continue;
            };
            let n = c.requests.load(Relaxed);
            if n == 0 {
                continue;
            }
            let l = format!("tenant=\"{tenant}\",endpoint=\"{}\"", e.as_str());
            let _ = writeln!(requests, "portcullis_requests_total{{{l}}} {n}");
            let _ = writeln!(
                errors,
                "portcullis_request_errors_total{{{l},class=\"4xx\"}} {}",
                c.client_errors.load(Relaxed)
            );
            let _ = writeln!(
                errors,
                "portcullis_request_errors_total{{{l},class=\"5xx\"}} {}",
                c.server_errors.load(Relaxed)
            );
            let mut cumulative = 0;
            for (b, cell) in BUCKETS.iter().zip(c.buckets.iter()) {
                cumulative += cell.load(Relaxed);
                let _ = writeln!(
                    durations,
                    "portcullis_request_duration_seconds_bucket{{{l},le=\"{b}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                durations,
                "portcullis_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {n}"
            );
            let _ = writeln!(
                durations,
                "portcullis_request_duration_seconds_sum{{{l}}} {}",
                c.sum_micros.load(Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                durations,
                "portcullis_request_duration_seconds_count{{{l}}} {n}"
            );
        }
        if tenant == UNKNOWN {
            return; // no tokens are ever issued for a tenant that does not exist
        }
        let issued = self.tokens_client_credentials.load(Relaxed);
        let _ = writeln!(
            tokens,
            "portcullis_tokens_issued_total{{tenant=\"{tenant}\",grant_type=\"client_credentials\"}} {issued}"
        );
    }
}

/// Renders the Prometheus text exposition format (version 0.0.4).
pub fn render(
    tenants: &[(String, std::sync::Arc<TenantMetrics>)],
    unknown: &TenantMetrics,
) -> String {
    let mut families: [String; 4] = Default::default();
    for (slug, m) in tenants {
        m.render(slug, &mut families);
    }
    unknown.render(UNKNOWN, &mut families);
    let headers = [
        "# HELP portcullis_requests_total Requests by tenant and endpoint.\n# TYPE portcullis_requests_total counter\n",
        "# HELP portcullis_request_errors_total Error responses by tenant, endpoint and class.\n# TYPE portcullis_request_errors_total counter\n",
        "# HELP portcullis_request_duration_seconds Request latency.\n# TYPE portcullis_request_duration_seconds histogram\n",
        "# HELP portcullis_tokens_issued_total Tokens issued by tenant and grant type.\n# TYPE portcullis_tokens_issued_total counter\n",
    ];
    let mut out = String::with_capacity(families.iter().map(String::len).sum::<usize>() + 600);
    for (h, body) in headers.iter().zip(families.iter()) {
        out.push_str(h);
        out.push_str(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn each_metric_family_is_one_group_and_unknown_tenants_issue_no_tokens() {
        let acme = Arc::new(TenantMetrics::default());
        acme.record(Endpoint::Token, 200, 0.002);
        acme.token_issued("client_credentials");
        let unknown = TenantMetrics::default();
        unknown.record(Endpoint::Discovery, 404, 0.0001);
        let text = render(&[("acme".into(), acme)], &unknown);
        // The exposition format wants every line of a family together, after its TYPE line.
        let families: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                l.split(['{', ' '])
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches("_bucket")
                    .trim_end_matches("_sum")
                    .trim_end_matches("_count")
            })
            .collect();
        let mut seen: Vec<&str> = Vec::new();
        for f in families {
            if seen.last() != Some(&f) {
                assert!(!seen.contains(&f), "family {f} is split:\n{text}");
                seen.push(f);
            }
        }
        assert!(text.contains(
            "portcullis_tokens_issued_total{tenant=\"acme\",grant_type=\"client_credentials\"} 1"
        ));
        assert!(
            text.contains(
                "portcullis_requests_total{tenant=\"_unknown\",endpoint=\"discovery\"} 1"
            )
        );
        assert!(!text.contains("portcullis_tokens_issued_total{tenant=\"_unknown\""));
    }
}
