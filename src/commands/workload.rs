//! `portcullis workload-token`: the demo stand-in for a CI platform's OIDC token (what a job
//! gets from its platform's documented one-liner), signed with the demo workload key that
//! `portcullis dev-certs` writes beside its public JWK Set `demo-workload.jwks.json`.

use crate::clock::{Clock, SystemClock, UnixTime};
use crate::config::ServerConfig;
use crate::keys::{Alg, Signer};
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// The issuer of demo workload tokens unless `--issuer` names another.
pub const DEFAULT_ISSUER: &str = "https://ci.acme.test";
/// Seconds a demo workload token is valid unless `--lifetime` says otherwise.
pub const DEFAULT_LIFETIME: u64 = 300;
/// The longest `--lifetime` accepted: an hour.
pub const MAX_LIFETIME: u64 = 3600;
/// The demo workload key in the certs directory.
pub const KEY_FILE: &str = "demo-workload-key.pem";

/// The claims this command sets itself (RFC 7519 §4.1); `--claim` cannot replace them.
const REGISTERED: [&str; 7] = ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"];

/// What `portcullis workload-token` was asked for.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkloadTokenArgs {
    /// The workload's subject (`sub`).
    #[arg(long)]
    pub subject: String,
    /// The token's issuer (`iss`).
    #[arg(long, default_value = DEFAULT_ISSUER)]
    pub issuer: String,
    /// The token's audience (`aud`); default: `<server.public_base_url>/acme`.
    #[arg(long)]
    pub audience: Option<String>,
    /// An extra string claim as name=value (repeatable).
    #[arg(long = "claim", value_name = "NAME=VALUE")]
    pub claims: Vec<String>,
    /// Seconds until `exp` (1 to 3600).
    #[arg(long, default_value_t = DEFAULT_LIFETIME)]
    pub lifetime: u64,
    /// The ES256 PKCS#8 PEM key; default: demo-workload-key.pem in the certs directory.
    #[arg(long)]
    pub key: Option<PathBuf>,
}

/// Prints one demo workload token, and nothing else, on standard output.
pub fn workload_token(config: &ServerConfig, args: &WorkloadTokenArgs) -> Result<(), String> {
    let token = mint(config, args, SystemClock.now())?;
    println!("{token}");
    Ok(())
}

/// A compact JWS (RFC 7515 §7.1) with the header `{"alg":"ES256","typ":"JWT","kid":…}`, the
/// `kid` being the RFC 7638 thumbprint of the key (as in `demo-workload.jwks.json`), over the
/// claims `iss`, `sub`, `aud`, `iat`, `nbf`, `exp` and a random `jti`, plus each `--claim`.
pub fn mint(
    config: &ServerConfig,
    args: &WorkloadTokenArgs,
    now: UnixTime,
) -> Result<String, String> {
    if args.subject.is_empty() {
        return Err("--subject must not be empty".into());
    }
    if !(1..=MAX_LIFETIME).contains(&args.lifetime) {
        return Err(format!(
            "--lifetime must be between 1 and {MAX_LIFETIME} seconds"
        ));
    }
    let extra = parse_claims(&args.claims)?;
    let audience = args
        .audience
        .clone()
        .unwrap_or_else(|| format!("{}/acme", config.server.public_base_url));
    let key_path = args
        .key
        .clone()
        .unwrap_or_else(|| config.paths.certs_dir.join(KEY_FILE));
    let signer = load_signer(&key_path)?;
    // The lifetime is at most MAX_LIFETIME, so it fits.
    let lifetime = i64::try_from(args.lifetime).unwrap_or(i64::MAX);
    // RFC 7519 §4.1: the registered claims.
    let mut claims = Map::new();
    claims.insert("iss".into(), Value::String(args.issuer.clone()));
    claims.insert("sub".into(), Value::String(args.subject.clone()));
    claims.insert("aud".into(), Value::String(audience));
    claims.insert("iat".into(), now.into());
    claims.insert("nbf".into(), now.into());
    claims.insert("exp".into(), now.saturating_add(lifetime).into());
    claims.insert("jti".into(), Value::String(crate::tokens::new_jti()));
    for (name, value) in extra {
        claims.insert(name, Value::String(value));
    }
    signer
        .sign_jwt("JWT", &Value::Object(claims))
        .map_err(|e| format!("cannot sign the token: {e}"))
}

/// The `--claim name=value` arguments, in order. A claim without `=`, with an empty name, named
/// twice, or naming a claim this command sets itself is refused.
fn parse_claims(args: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(args.len());
    for arg in args {
        let Some((name, value)) = arg.split_once('=') else {
            return Err(format!("--claim {arg:?}: expected name=value"));
        };
        if name.is_empty() {
            return Err(format!("--claim {arg:?}: the claim name is empty"));
        }
        if REGISTERED.contains(&name) {
            return Err(format!(
                "--claim {name}: this command sets {name} itself (use the option for it)"
            ));
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(format!("--claim {name}: given twice"));
        }
        out.push((name.to_string(), value.to_string()));
    }
    Ok(out)
}

/// The ES256 signer of a PKCS#8 PEM key file.
fn load_signer(path: &std::path::Path) -> Result<Signer, String> {
    let pem = match std::fs::read(path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "{} does not exist: run `portcullis dev-certs` first",
                path.display()
            ));
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let der = PrivatePkcs8KeyDer::from_pem_slice(&pem)
        .map_err(|e| format!("{}: not a PKCS#8 PEM private key: {e}", path.display()))?;
    Signer::from_pkcs8(Alg::ES256, der.secret_pkcs8_der())
        .map_err(|e| format!("{}: not an ES256 (P-256) key: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::jws;
    use std::path::Path;

    const NOW: UnixTime = 1_700_000_000;

    fn config(base_dir: &Path) -> ServerConfig {
        ServerConfig::from_text(
            Path::new("portcullis.toml"),
            "",
            &|_| None,
            base_dir.to_path_buf(),
        )
        .unwrap()
    }

    fn args(subject: &str) -> WorkloadTokenArgs {
        WorkloadTokenArgs {
            subject: subject.into(),
            issuer: DEFAULT_ISSUER.into(),
            audience: None,
            claims: Vec::new(),
            lifetime: DEFAULT_LIFETIME,
            key: None,
        }
    }

    fn jwks(certs: &Path) -> Value {
        let text = std::fs::read_to_string(certs.join("demo-workload.jwks.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn a_minted_workload_token_verifies_against_the_written_jwks_with_the_asked_claims() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let certs = config.paths.certs_dir.clone();
        assert!(crate::devcerts::ensure_demo_workload_key(&certs, false).unwrap());
        let mut a = args("repo:acme/widgets:ref:refs/heads/main");
        a.claims = vec![
            "repository=acme/widgets".into(),
            "ref=refs/heads/main".into(),
        ];
        a.lifetime = 120;

        let token = mint(&config, &a, NOW).unwrap();

        let jwks = jwks(&certs);
        let verified = jws::verify(&token, &jwks, &[Alg::ES256]).unwrap();
        assert_eq!(verified.header["alg"], "ES256");
        assert_eq!(verified.header["typ"], "JWT");
        assert_eq!(verified.header["kid"], jwks["keys"][0]["kid"]);
        let c = &verified.claims;
        assert_eq!(c["iss"], "https://ci.acme.test");
        assert_eq!(c["sub"], "repo:acme/widgets:ref:refs/heads/main");
        assert_eq!(c["aud"], "https://localhost:8443/acme");
        assert_eq!(c["iat"], NOW);
        assert_eq!(c["nbf"], NOW);
        assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 120);
        assert_eq!(c["repository"], "acme/widgets");
        assert_eq!(c["ref"], "refs/heads/main");
        assert!(!c["jti"].as_str().unwrap().is_empty());
    }

    #[test]
    fn the_written_jwks_names_the_key_by_its_thumbprint() {
        let dir = tempfile::tempdir().unwrap();
        crate::devcerts::ensure_demo_workload_key(dir.path(), false).unwrap();
        let signer = load_signer(&dir.path().join(KEY_FILE)).unwrap();
        let jwks = jwks(dir.path());
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
        assert_eq!(jwks["keys"][0]["kid"], signer.kid.as_str());
        assert_eq!(jwks["keys"][0]["alg"], "ES256");
        assert!(jwks["keys"][0].get("d").is_none());
    }

    #[test]
    fn an_explicit_issuer_audience_and_key_are_used() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("elsewhere");
        crate::devcerts::ensure_demo_workload_key(&keys, false).unwrap();
        let mut a = args("job-7");
        a.issuer = "https://ci.other.test".into();
        a.audience = Some("https://login.example/globex".into());
        a.key = Some(keys.join(KEY_FILE));

        let token = mint(&config(dir.path()), &a, NOW).unwrap();

        let c = jws::verify(&token, &jwks(&keys), &[Alg::ES256])
            .unwrap()
            .claims;
        assert_eq!(c["iss"], "https://ci.other.test");
        assert_eq!(c["aud"], "https://login.example/globex");
    }

    #[test]
    fn a_claim_without_an_equals_sign_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        crate::devcerts::ensure_demo_workload_key(&config.paths.certs_dir, false).unwrap();
        let mut a = args("job-7");
        a.claims = vec!["repository".into()];
        let e = mint(&config, &a, NOW).unwrap_err();
        assert!(e.contains("expected name=value"), "{e}");
    }

    #[test]
    fn a_claim_may_not_replace_a_registered_one() {
        for claim in ["sub=someone-else", "exp=9999999999", "=x"] {
            assert!(parse_claims(&[claim.into()]).is_err(), "{claim}");
        }
        assert!(parse_claims(&["a=1".into(), "a=2".into()]).is_err());
        assert_eq!(
            parse_claims(&["url=https://x.test/?a=b".into()]).unwrap(),
            vec![("url".to_string(), "https://x.test/?a=b".to_string())]
        );
    }

    #[test]
    fn a_lifetime_outside_one_second_to_an_hour_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        crate::devcerts::ensure_demo_workload_key(&config.paths.certs_dir, false).unwrap();
        for lifetime in [0, MAX_LIFETIME + 1] {
            let mut a = args("job-7");
            a.lifetime = lifetime;
            assert!(mint(&config, &a, NOW).is_err(), "{lifetime}");
        }
    }

    #[test]
    fn a_missing_key_asks_for_dev_certs() {
        let dir = tempfile::tempdir().unwrap();
        let e = mint(&config(dir.path()), &args("job-7"), NOW).unwrap_err();
        assert!(e.contains("run `portcullis dev-certs` first"), "{e}");
    }
}
