//! In-process cost of the hot paths, without TLS or the kernel: the router is called directly.
//! Shows where user-space time goes when tuning (`cargo run --release --example hot_path`).

use axum::body::Body;
use axum::http::Request;
use portcullis::clock::SystemClock;
use portcullis::config::ServerConfig;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("portcullis-hot-path-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("tenants")).map_err(|e| e.to_string())?;
    for t in ["acme", "globex"] {
        std::fs::copy(
            format!("tenants/{t}.toml"),
            dir.join("tenants").join(format!("{t}.toml")),
        )
        .map_err(|e| e.to_string())?;
    }
    let text = "[log]\nlevel = \"warn\"\n[reload]\nwatch_interval_seconds = 0\n";
    let config = ServerConfig::from_text(Path::new("hot_path.toml"), text, &|_| None, dir.clone())
        .map_err(|e| format!("{e:?}"))?;
    let state = portcullis::AppState::build(config, Arc::new(SystemClock), None)
        .await
        .map_err(|e| e.to_string())?;
    let app = portcullis::app(state.clone());

    let token = || {
        Request::post("/acme/connect/token")
            .header("authorization", "Basic YWNtZS1tMm06YWNtZS1tMm0tc2VjcmV0")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("content-length", "44")
            .body(Body::from("grant_type=client_credentials&scope=api.read"))
            .unwrap_or_default()
    };
    let discovery = || {
        Request::get("/acme/.well-known/openid-configuration")
            .body(Body::empty())
            .unwrap_or_default()
    };
    for (name, make, n) in [
        ("token", &token as &dyn Fn() -> Request<Body>, 20_000u32),
        ("discovery", &discovery, 200_000),
    ] {
        let first = app
            .clone()
            .oneshot(make())
            .await
            .map_err(|e| e.to_string())?;
        if !first.status().is_success() {
            return Err(format!("{name}: {}", first.status()));
        }
        let start = Instant::now();
        for _ in 0..n {
            let r = app
                .clone()
                .oneshot(make())
                .await
                .map_err(|e| e.to_string())?;
            let _ = axum::body::to_bytes(r.into_body(), usize::MAX).await;
        }
        println!(
            "{name:<10} {:>8.2} µs per request (in-process, one thread)",
            start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        );
    }
    // The floor: one ES256 signature over a typical access token.
    if let Some(t) = state.registry.get("acme") {
        let keys = t.keys.load();
        if let Some(signer) = keys.signer(portcullis::keys::Alg::ES256) {
            let claims = serde_json::json!({"iss": t.spec.issuer, "sub": "acme-m2m", "aud": "https://api.acme.test",
                "client_id": "acme-m2m", "scope": "api.read", "jti": "0123456789abcdefghijkl", "iat": 1, "nbf": 1, "exp": 2});
            let n = 20_000u32;
            let start = Instant::now();
            for _ in 0..n {
                let _ = signer
                    .sign_jwt("at+jwt", &claims)
                    .map_err(|e| e.to_string())?;
            }
            println!(
                "{:<10} {:>8.2} µs per signature (the floor of a token)",
                "ES256",
                start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
