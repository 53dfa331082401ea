//! Brokered-login load for bench/run (wrk cannot carry a cookie from one hop of a flow to the
//! next): CONNS workers repeat, for SECONDS, the round trip of a user whom tenant `acme` sends
//! to its upstream `globex` (tenant of the same server, OIDC):
//!
//! 1. `GET /acme/connect/authorize?…&acr_values=idp:globex` (acme-web) → 303 to acme's start
//!    (and acme's browser-binding cookie);
//! 2. `GET /acme/federation/globex/start` → 303 to globex's authorize endpoint;
//! 3. `GET /globex/connect/authorize` with bob's globex session → 303 to acme's callback;
//! 4. `GET /acme/federation/globex/callback` → acme redeems the code at globex, verifies the id
//!    token against globex's keys, calls userinfo, finds the linked user, starts a session → 303
//!    to acme-web with a code;
//! 5. `POST /acme/connect/token` → tokens. One unit = one token response.
//!
//! Set-up (once): bob signs in at globex with his password and acme-web's consent is remembered.
//! Prints `BENCH_RESULT units=N requests=N duration_us=N units_per_s=F failures=N`.
//!
//! `cargo run --release --example broker_load -- https://localhost:18443 certs/ca.pem 15 16`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const VERIFIER: &str = "bench-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
const CB: &str = "http://127.0.0.1:9000/callback";

struct Ctx {
    http: reqwest::Client,
    base: String,
    authorize: String,
}

fn location(r: &reqwest::Response) -> Result<String, String> {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| format!("no Location in a {} response", r.status()))
}

/// The value of cookie `name` set by `r`.
fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

fn field(html: &str, name: &str) -> Result<String, String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .ok_or_else(|| format!("no field {name}"))?
        + marker.len();
    Ok(html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string())
}

fn absolute(ctx: &Ctx, url: &str) -> String {
    if url.starts_with("http") {
        url.to_string()
    } else {
        format!("{}{url}", ctx.base)
    }
}

async fn get(ctx: &Ctx, url: &str, cookie: &str) -> Result<reqwest::Response, String> {
    ctx.http
        .get(absolute(ctx, url))
        .header("cookie", cookie)
        .send()
        .await
        .map_err(|e| e.to_string())
}

async fn post(
    ctx: &Ctx,
    url: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> Result<reqwest::Response, String> {
    ctx.http
        .post(absolute(ctx, url))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .map_err(|e| e.to_string())
}

/// Bob signs in at globex through acme once; returns his globex session cookie.
async fn set_up(ctx: &Ctx) -> Result<String, String> {
    let r = get(ctx, &ctx.authorize, "").await?;
    let bind = set_cookie(&r, "portcullis.bind").ok_or("no acme binding cookie")?;
    let acme_bind = format!("portcullis.bind={bind}");
    let r = get(ctx, &location(&r)?, &acme_bind).await?;
    let r = get(ctx, &location(&r)?, "").await?;
    let globex_bind = format!(
        "portcullis.bind={}",
        set_cookie(&r, "portcullis.bind").ok_or("no globex binding cookie")?
    );
    let login = location(&r)?;
    let page = get(ctx, &login, &globex_bind)
        .await?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    let action = login.split('?').next().unwrap_or_default().to_string();
    let r = post(
        ctx,
        &action,
        &globex_bind,
        &[
            ("interaction", &field(&page, "interaction")?),
            ("csrf", &field(&page, "csrf")?),
            ("username", "bob"),
            ("password", "bob-password"),
        ],
    )
    .await?;
    let session = set_cookie(&r, "portcullis.session").ok_or("bob did not sign in at globex")?;
    let r = get(ctx, &location(&r)?, &acme_bind).await?;
    let next = location(&r)?;
    if next.contains("/account/consent") {
        let acme_session = set_cookie(&r, "portcullis.session").unwrap_or_default();
        let cookie = format!("{acme_bind}; portcullis.session={acme_session}");
        let page = get(ctx, &next, &cookie)
            .await?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        let action = next.split('?').next().unwrap_or_default().to_string();
        let r = post(
            ctx,
            &action,
            &cookie,
            &[
                ("interaction", &field(&page, "interaction")?),
                ("csrf", &field(&page, "csrf")?),
                ("decision", "allow"),
                ("remember", "on"),
            ],
        )
        .await?;
        if !location(&r)?.starts_with(CB) {
            return Err("consent did not lead back to acme-web".into());
        }
    }
    Ok(format!("portcullis.session={session}"))
}

/// One brokered login; the number of requests it took.
async fn unit(ctx: &Ctx, globex: &str) -> Result<u64, String> {
    let r = get(ctx, &ctx.authorize, "").await?;
    let bind = format!(
        "portcullis.bind={}",
        set_cookie(&r, "portcullis.bind").ok_or("no binding cookie")?
    );
    let r = get(ctx, &location(&r)?, &bind).await?;
    let r = get(ctx, &location(&r)?, globex).await?;
    let callback = location(&r)?;
    if !callback.contains("/acme/federation/globex/callback") {
        return Err(format!("globex did not answer at once: {callback}"));
    }
    let r = get(ctx, &callback, &bind).await?;
    let back = location(&r)?;
    let code = back
        .strip_prefix(&format!("{CB}?code="))
        .and_then(|rest| rest.split('&').next())
        .ok_or_else(|| format!("no code: {back}"))?
        .to_string();
    let r = ctx
        .http
        .post(format!("{}/acme/connect/token", ctx.base))
        .basic_auth("acme-web", Some("acme-web-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != 200 {
        return Err(format!("token endpoint answered {}", r.status()));
    }
    Ok(5)
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: broker_load BASE_URL CA_PEM SECONDS CONNS";
    let base = args.first().ok_or(usage)?.trim_end_matches('/').to_string();
    let ca = std::fs::read(args.get(1).ok_or(usage)?).map_err(|e| e.to_string())?;
    let seconds: u64 = args.get(2).ok_or(usage)?.parse().map_err(|_| usage)?;
    let conns: usize = args.get(3).ok_or(usage)?.parse().map_err(|_| usage)?;
    let challenge = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, VERIFIER.as_bytes()),
    );
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).map_err(|e| e.to_string())?)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(conns * 2)
        .build()
        .map_err(|e| e.to_string())?;
    let ctx = Arc::new(Ctx {
        http,
        authorize: format!(
            "{base}/acme/connect/authorize?client_id=acme-web&response_type=code\
             &redirect_uri=http%3A%2F%2F127.0.0.1%3A9000%2Fcallback&scope=openid%20profile%20email\
             &state=bench&nonce=bench&code_challenge={challenge}&code_challenge_method=S256\
             &acr_values=idp%3Aglobex"
        ),
        base,
    });
    let globex = Arc::new(set_up(&ctx).await?);
    let units = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for _ in 0..conns {
        let (ctx, globex, units, requests, failures) = (
            ctx.clone(),
            globex.clone(),
            units.clone(),
            requests.clone(),
            failures.clone(),
        );
        workers.push(tokio::spawn(async move {
            while Instant::now() < end {
                match unit(&ctx, &globex).await {
                    Ok(n) => {
                        units.fetch_add(1, Ordering::Relaxed);
                        requests.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => {
                        if failures.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("failure: {e}");
                        }
                    }
                }
            }
        }));
    }
    for w in workers {
        w.await.map_err(|e| e.to_string())?;
    }
    let elapsed = started.elapsed();
    let u = units.load(Ordering::Relaxed);
    println!(
        "BENCH_RESULT units={u} requests={} duration_us={} units_per_s={:.1} failures={}",
        requests.load(Ordering::Relaxed),
        elapsed.as_micros(),
        u as f64 / elapsed.as_secs_f64(),
        failures.load(Ordering::Relaxed)
    );
    Ok(())
}
