//! DPoP proofs (RFC 9449 §4) for bench/run, which wrk's Lua cannot sign: prints COUNT proofs for
//! `POST HTU`, one compact JWS per line, all by one fresh ES256 key, each with its own `jti` and
//! `iat` = the time it was made. Signed with the crate's own signer, on THREADS threads (default:
//! every core); a summary (count, seconds, megabytes, the key's thumbprint) goes to stderr.
//!
//! `cargo run --release --example dpop_proofs -- https://localhost:18443/acme/connect/token 100000 >proofs.txt`

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use portcullis::clock::{Clock, SystemClock};
use portcullis::keys::{Alg, Signer, signer::generate_pkcs8};
use serde_json::json;
use std::io::Write;
use std::sync::mpsc;
use std::time::Instant;

/// Proofs per batch handed from a signing thread to the writer.
const BATCH: u64 = 2048;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: dpop_proofs HTU COUNT [THREADS]";
    let htu = args.first().ok_or(usage)?.clone();
    let count: u64 = args
        .get(1)
        .ok_or(usage)?
        .parse()
        .map_err(|_| format!("COUNT is not a number\n{usage}"))?;
    let threads: u64 = match args.get(2) {
        Some(t) => t
            .parse()
            .ok()
            .filter(|t| *t > 0)
            .ok_or(format!("THREADS is not a positive number\n{usage}"))?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
    };
    if !htu.starts_with("https://") && !htu.starts_with("http://") {
        return Err(format!("HTU must be an http(s) URL\n{usage}"));
    }

    let start = Instant::now();
    let key = Signer::from_pkcs8(
        Alg::ES256,
        &generate_pkcs8(Alg::ES256, 2048).map_err(str_of)?,
    )
    .map_err(str_of)?;
    let header = json!({"typ": "dpop+jwt", "jwk": key.bare_public_jwk()});
    // jti = a random prefix for this run, then the proof's index: unique per proof and per run.
    let prefix = B64.encode(portcullis::secrets::random_bytes::<12>());

    // Batches are claimed from a shared counter and sent to the writer through a bounded channel,
    // so memory stays at a few batches per thread whatever COUNT is. Lines come out in batch
    // order per thread, not globally sorted; every index appears exactly once.
    let next = std::sync::atomic::AtomicU64::new(0);
    let (tx, rx) = mpsc::sync_channel::<Result<String, String>>(threads as usize * 2);
    let mut bytes = 0u64;
    let mut written = 0u64;
    std::thread::scope(|s| -> Result<(), String> {
        for _ in 0..threads {
            let tx = tx.clone();
            let (key, header, prefix, htu, next) = (&key, &header, &prefix, &htu, &next);
            s.spawn(move || {
                loop {
                    let first = next.fetch_add(BATCH, std::sync::atomic::Ordering::Relaxed);
                    if first >= count {
                        return;
                    }
                    let last = (first + BATCH).min(count);
                    let sent = sign_batch(key, header, htu, prefix, first..last);
                    let failed = sent.is_err();
                    if tx.send(sent).is_err() || failed {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let stdout = std::io::stdout();
        let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
        for batch in rx {
            let batch = batch?;
            bytes += batch.len() as u64;
            written += batch.bytes().filter(|b| *b == b'\n').count() as u64;
            w.write_all(batch.as_bytes()).map_err(|e| e.to_string())?;
        }
        w.flush().map_err(|e| e.to_string())
    })?;
    if written != count {
        return Err(format!("wrote {written} proofs, not {count}"));
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "dpop_proofs: {count} proofs in {secs:.2} s ({:.0}/s on {threads} threads), {:.1} MB, jkt {}",
        count as f64 / secs.max(1e-9),
        bytes as f64 / 1e6,
        key.kid
    );
    Ok(())
}

/// Proofs number `range`, one per line.
fn sign_batch(
    key: &Signer,
    header: &serde_json::Value,
    htu: &str,
    prefix: &str,
    range: std::ops::Range<u64>,
) -> Result<String, String> {
    let mut out = String::with_capacity((range.end - range.start) as usize * 460);
    for i in range {
        let claims = json!({"htm": "POST", "htu": htu, "iat": SystemClock.now(),
            "jti": format!("{prefix}.{i}")});
        out.push_str(&key.sign_with_header(header, &claims).map_err(str_of)?);
        out.push('\n');
    }
    Ok(out)
}

fn str_of(e: impl std::fmt::Display) -> String {
    e.to_string()
}
