//! `config/portcullis.toml`: the server's own settings.
//!
//! Every key has a default (so an empty file is valid) and can be overridden by an environment
//! variable named `PORTCULLIS_<SECTION>_<KEY>` in upper case, e.g. `[database] url` →
//! `PORTCULLIS_DATABASE_URL`. Lists are comma-separated in the environment.

use super::{ConfigError, ServerConfig, from_toml_error};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerFile {
    pub server: ServerSection,
    pub tls: TlsSection,
    pub paths: PathsSection,
    pub database: DatabaseSection,
    pub keys: KeysSection,
    pub cache: CacheSection,
    pub passwords: PasswordsSection,
    pub federation: FederationSection,
    pub outbound: OutboundSection,
    pub reload: ReloadSection,
    pub cleanup: CleanupSection,
    pub audit: AuditSection,
    pub telemetry: TelemetrySection,
    pub log: LogSection,
    pub connections: ConnectionsSection,
}

/// Bounds on client connections, for every listener of the process together.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionsSection {
    /// Connections open at once, all listeners and serving threads together.
    pub max_connections: usize,
    /// Connections open at once from one client address (IPv6: one /64). Trusted proxies are
    /// exempt; the global limit still counts their connections.
    pub max_connections_per_address: usize,
    /// A new connection must finish its TLS handshake within this time, and then send the first
    /// byte of a request within this time again.
    pub first_byte_timeout_seconds: u64,
    /// A connection with no request in flight for this long is closed (HTTP/1.1 and HTTP/2).
    pub idle_timeout_seconds: u64,
    /// HTTP/2: a PING is sent after this long without a frame from the client (0: never).
    pub http2_keep_alive_interval_seconds: u64,
    /// HTTP/2: a PING not acknowledged within this time closes the connection.
    pub http2_keep_alive_timeout_seconds: u64,
}

/// Upstream identity providers (federation).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FederationSection {
    /// Extra CA certificates (PEM files) trusted for upstream providers' HTTPS, besides the
    /// system's (and the development CA while `tls.dev_certs` is on).
    pub ca_files: Vec<String>,
    /// How long a user may take at an upstream provider before the round trip expires.
    pub state_lifetime_seconds: i64,
}

/// Requests this server makes to other servers (src/outbound): upstream documents and
/// endpoints, clients' `jwks_uri`, SAML metadata, back-channel logout URIs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundSection {
    /// Internal networks (loopback, private, link-local, CGNAT, unique-local …) that outbound
    /// requests may reach anyway: internal upstreams, the demo on loopback. Public addresses
    /// need no entry.
    pub allow_networks: Vec<String>,
    pub connect_timeout_seconds: u64,
    /// The whole request, answer included.
    pub timeout_seconds: u64,
    /// Largest answer read; a larger one (or a larger Content-Length) is refused unread.
    pub max_response_bytes: usize,
    /// Memory for cached documents (discovery, JWK Sets, SAML metadata), in bytes.
    pub cache_max_bytes: u64,
}

/// argon2id parameters for new password hashes (stored hashes keep their own), and the threads
/// that verify passwords.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordsSection {
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Threads that verify passwords; 0: one per core.
    pub hashing_threads: usize,
    /// Verifications that may wait for a hashing thread; 0: four per thread. Past that, a
    /// sign-in is answered "try again" at once.
    pub max_queued_verifications: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub listen: String,
    pub mtls_listen: String,
    pub http_listen: String,
    pub public_base_url: String,
    pub mtls_base_url: String,
    pub trusted_proxies: Vec<String>,
    /// Header in which a trusted TLS-terminating proxy passes the client certificate.
    pub client_cert_header: String,
    pub ops_networks: Vec<String>,
    pub shutdown_grace_seconds: u64,
    pub request_timeout_seconds: u64,
    pub max_body_bytes: usize,
    pub worker_threads: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    pub cert: String,
    pub key: String,
    pub dev_certs: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathsSection {
    pub tenants_dir: String,
    pub providers_dir: String,
    pub certs_dir: String,
    pub data_dir: String,
    /// More directories tenant and provider files may name files in (besides tenants_dir,
    /// providers_dir and certs_dir), e.g. where an orchestrator mounts secrets.
    pub extra_file_dirs: Vec<String>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSection {
    pub url: String,
    pub schema: String,
    pub max_connections: u32,
    /// How long a query waits for a pooled connection (or for the server to accept a new
    /// one) before the request is refused with 503.
    pub acquire_timeout_seconds: u64,
    /// How nodes tell each other about changes: "notify" (LISTEN/NOTIFY) or "poll".
    pub change_notices: String,
    pub change_poll_interval_ms: u64,
}

impl std::fmt::Debug for DatabaseSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSection")
            .field("url", &redact_url(&self.url))
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout_seconds", &self.acquire_timeout_seconds)
            .field("change_notices", &self.change_notices)
            .field("change_poll_interval_ms", &self.change_poll_interval_ms)
            .finish()
    }
}

/// A database URL without its password (`postgres://user:secret@host` → `postgres://user:***@host`).
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = url.get(scheme + 3..at).unwrap_or_default();
            match userinfo.split_once(':') {
                Some((user, _)) => format!(
                    "{}{user}:***{}",
                    url.get(..scheme + 3).unwrap_or_default(),
                    url.get(at..).unwrap_or_default()
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysSection {
    pub master_key: String,
    pub master_key_file: String,
    pub rotation_interval_seconds: i64,
    pub propagation_seconds: i64,
    pub retention_seconds: i64,
    pub rsa_bits: u32,
}

impl std::fmt::Debug for KeysSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeysSection")
            .field(
                "master_key",
                &if self.master_key.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("master_key_file", &self.master_key_file)
            .field("rotation_interval_seconds", &self.rotation_interval_seconds)
            .field("propagation_seconds", &self.propagation_seconds)
            .field("retention_seconds", &self.retention_seconds)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    pub client_capacity: u64,
    pub client_ttl_seconds: u64,
    /// Entries of the single-use memory (DPoP proof, request object and logout token jtis);
    /// at most ~39 bytes each (`stores::replay`).
    pub replay_capacity: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadSection {
    pub watch_interval_seconds: u64,
    pub sync_interval_seconds: u64,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySection {
    pub otlp_endpoint: String,
    pub otlp_authorization: String,
    pub service_name: String,
    pub export_interval_ms: u64,
}

impl std::fmt::Debug for TelemetrySection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetrySection")
            .field("otlp_endpoint", &redact_url(&self.otlp_endpoint))
            .field(
                "otlp_authorization",
                &if self.otlp_authorization.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("service_name", &self.service_name)
            .field("export_interval_ms", &self.export_interval_ms)
            .finish()
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    pub file: String,
    pub webhook_url: String,
    pub webhook_authorization: String,
    pub batch_size: u64,
    pub flush_interval_ms: u64,
    pub spool_max_bytes: u64,
}

impl std::fmt::Debug for AuditSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSection")
            .field("file", &self.file)
            .field("webhook_url", &redact_url(&self.webhook_url))
            .field(
                "webhook_authorization",
                &if self.webhook_authorization.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("batch_size", &self.batch_size)
            .field("flush_interval_ms", &self.flush_interval_ms)
            .field("spool_max_bytes", &self.spool_max_bytes)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CleanupSection {
    pub interval_seconds: u64,
    pub batch_size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    pub format: String,
    pub level: String,
}

impl Default for ServerFile {
    fn default() -> Self {
        Self {
            server: ServerSection {
                listen: "0.0.0.0:8443".into(),
                mtls_listen: "0.0.0.0:8444".into(),
                http_listen: String::new(),
                public_base_url: "https://localhost:8443".into(),
                mtls_base_url: "https://localhost:8444".into(),
                trusted_proxies: Vec::new(),
                client_cert_header: String::new(),
                ops_networks: vec![
                    "127.0.0.0/8".into(),
                    "::1/128".into(),
                    "10.0.0.0/8".into(),
                    "172.16.0.0/12".into(),
                    "192.168.0.0/16".into(),
                ],
                shutdown_grace_seconds: 20,
                request_timeout_seconds: 30,
                max_body_bytes: 64 * 1024,
                worker_threads: 0,
            },
            tls: TlsSection {
                cert: String::new(),
                key: String::new(),
                dev_certs: true,
            },
            paths: PathsSection {
                tenants_dir: "tenants".into(),
                providers_dir: "providers".into(),
                certs_dir: "certs".into(),
                data_dir: "data".into(),
                extra_file_dirs: vec!["secrets".into(), "templates".into()],
            },
            database: DatabaseSection {
                url: String::new(),
                schema: String::new(),
                max_connections: 16,
                acquire_timeout_seconds: 2,
                change_notices: "notify".into(),
                change_poll_interval_ms: 1000,
            },
            keys: KeysSection {
                master_key: String::new(),
                master_key_file: String::new(),
                // IdentityServer's automatic key management defaults: rotate every 90 days,
                // announce 14 days ahead, keep publishing 14 days after retirement.
                rotation_interval_seconds: 90 * 86_400,
                propagation_seconds: 14 * 86_400,
                retention_seconds: 14 * 86_400,
                rsa_bits: 2048,
            },
            cache: CacheSection {
                client_capacity: 100_000,
                client_ttl_seconds: 300,
                // ≤ 80 MB; ~9,500 DPoP proofs a second sustained (see stores::replay).
                replay_capacity: 2_000_000,
            },
            // One of OWASP's equivalent argon2id settings (Password Storage Cheat Sheet): 12 MiB,
            // 3 passes. Same strength as 19 MiB × 2, but two hashes at once still fit a 32 MiB
            // shared cache, so a 2-core machine verifies nearly twice as many per second.
            passwords: PasswordsSection {
                argon2_memory_kib: 12_288,
                argon2_iterations: 3,
                argon2_parallelism: 1,
                hashing_threads: 0,
                max_queued_verifications: 0,
            },
            federation: FederationSection {
                ca_files: Vec::new(),
                state_lifetime_seconds: 600,
            },
            outbound: OutboundSection {
                allow_networks: Vec::new(),
                connect_timeout_seconds: 5,
                timeout_seconds: 10,
                max_response_bytes: 1024 * 1024,
                cache_max_bytes: 64 * 1024 * 1024,
            },
            reload: ReloadSection {
                watch_interval_seconds: 2,
                sync_interval_seconds: 10,
            },
            cleanup: CleanupSection {
                interval_seconds: 60,
                batch_size: 1000,
            },
            audit: AuditSection {
                file: String::new(),
                webhook_url: String::new(),
                webhook_authorization: String::new(),
                batch_size: 100,
                flush_interval_ms: 1000,
                spool_max_bytes: 1 << 30,
            },
            telemetry: TelemetrySection {
                otlp_endpoint: String::new(),
                otlp_authorization: String::new(),
                service_name: "portcullis".into(),
                export_interval_ms: 5000,
            },
            log: LogSection {
                format: "text".into(),
                level: "info".into(),
            },
            // Half of a 20,000 descriptor limit (`ulimit -n`) for clients: the rest stays for the
            // database pool, outbound HTTPS, files, and connections just accepted over the limit
            // (each is closed at once, but takes a descriptor until then).
            connections: ConnectionsSection {
                max_connections: 10_000,
                max_connections_per_address: 1_000,
                first_byte_timeout_seconds: 10,
                idle_timeout_seconds: 60,
                http2_keep_alive_interval_seconds: 30,
                http2_keep_alive_timeout_seconds: 10,
            },
        }
    }
}

macro_rules! section_defaults {
    ($($ty:ident => $field:ident),* $(,)?) => {
        $(impl Default for $ty {
            fn default() -> Self {
                ServerFile::default().$field
            }
        })*
    };
}

section_defaults!(
    ServerSection => server,
    TlsSection => tls,
    PathsSection => paths,
    DatabaseSection => database,
    KeysSection => keys,
    CacheSection => cache,
    PasswordsSection => passwords,
    FederationSection => federation,
    OutboundSection => outbound,
    ReloadSection => reload,
    CleanupSection => cleanup,
    AuditSection => audit,
    TelemetrySection => telemetry,
    LogSection => log,
    ConnectionsSection => connections,
);

impl ServerConfig {
    /// Loads the file at `path` (a missing file means all defaults only when `required` is false),
    /// applies environment overrides and resolves.
    pub fn load(path: &Path, required: bool) -> Result<Self, Vec<ConfigError>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(vec![err(path, "", format!("cannot read: {e}"))]),
        };
        let base_dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Self::from_text(path, &text, &|k| std::env::var(k).ok(), base_dir)
    }

    pub fn from_text(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        base_dir: PathBuf,
    ) -> Result<Self, Vec<ConfigError>> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| vec![from_toml_error(path, text, &e)])?;
        apply_env(&mut table, env).map_err(|e| vec![err(path, &e.0, e.1)])?;
        let file: ServerFile = table
            .try_into()
            .map_err(|e: toml::de::Error| vec![conversion_error(path, text, env, &e)])?;
        super::runtime::resolve(path, file, base_dir)
    }
}

/// A value of the wrong type or range, located: converting the parsed table loses the spans,
/// so the text is read again for its own error, else the environment override that causes it
/// is named.
fn conversion_error(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    e: &toml::de::Error,
) -> ConfigError {
    if let Err(in_text) = toml::from_str::<ServerFile>(text) {
        return from_toml_error(path, text, &in_text);
    }
    for (section, key, _) in known_keys() {
        let name = env_name(&section, &key);
        if env(&name).is_none() {
            continue;
        }
        let only = |k: &str| if k == name { env(k) } else { None };
        let Ok(mut table) = toml::from_str::<toml::Table>(text) else {
            break;
        };
        if apply_env(&mut table, &only).is_ok()
            && let Err(e) = table.try_into::<ServerFile>()
        {
            return err(
                path,
                &format!("{section}.{key}"),
                format!("{name}: {}", e.message().trim()),
            );
        }
    }
    err(path, "environment", e.message().trim())
}

pub(super) fn err(file: &Path, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        file: file.to_path_buf(),
        line: None,
        key: key.to_string(),
        message: message.into(),
    }
}

/// The environment variable that overrides `section.key`.
pub fn env_name(section: &str, key: &str) -> String {
    format!(
        "PORTCULLIS_{}_{}",
        section.to_ascii_uppercase(),
        key.to_ascii_uppercase()
    )
}

/// Every `(section, key)` the file knows, with its default value (the shape env values take).
pub fn known_keys() -> Vec<(String, String, toml::Value)> {
    let mut out = Vec::new();
    if let Ok(toml::Value::Table(defaults)) = toml::Value::try_from(ServerFile::default()) {
        for (section, v) in defaults {
            if let toml::Value::Table(keys) = v {
                for (k, d) in keys {
                    out.push((section.clone(), k, d));
                }
            }
        }
    }
    out
}

fn apply_env(
    table: &mut toml::Table,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    for (section, key, default) in known_keys() {
        let name = env_name(&section, &key);
        let Some(raw) = env(&name) else { continue };
        let value = match default {
            toml::Value::String(_) => toml::Value::String(raw),
            toml::Value::Integer(_) => toml::Value::Integer(raw.trim().parse().map_err(|_| {
                (
                    format!("{section}.{key}"),
                    format!("{name} must be an integer"),
                )
            })?),
            toml::Value::Boolean(_) => toml::Value::Boolean(raw.trim().parse().map_err(|_| {
                (
                    format!("{section}.{key}"),
                    format!("{name} must be true or false"),
                )
            })?),
            toml::Value::Array(_) => toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_string()))
                    .collect(),
            ),
            _ => continue,
        };
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(t) = entry {
            t.insert(key, value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<ServerConfig, Vec<ConfigError>> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        ServerConfig::from_text(
            Path::new("portcullis.toml"),
            text,
            &move |k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
            PathBuf::from("/srv"),
        )
    }

    #[test]
    fn an_empty_file_gives_the_documented_defaults() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.server.listen.to_string(), "0.0.0.0:8443");
        assert_eq!(c.server.mtls_listen.unwrap().to_string(), "0.0.0.0:8444");
        assert!(c.server.http_listen.is_none());
        assert_eq!(c.database.url, "sqlite:///srv/data/portcullis.db?mode=rwc");
    }

    #[test]
    fn upkeep_audit_and_trace_settings_are_checked_and_refused_with_their_key() {
        for (text, key) in [
            (
                "[database]\nacquire_timeout_seconds = 0\n",
                "database.acquire_timeout_seconds",
            ),
            (
                "[database]\nchange_notices = \"gossip\"\n",
                "database.change_notices",
            ),
            (
                "[database]\nchange_notices = \"poll\"\nchange_poll_interval_ms = 0\n",
                "database.change_poll_interval_ms",
            ),
            // Audit events carry request ids and client ids: only over TLS.
            (
                "[audit]\nwebhook_url = \"http://siem.example/in\"\n",
                "audit.webhook_url",
            ),
            (
                "[audit]\nwebhook_url = \"not a url\"\n",
                "audit.webhook_url",
            ),
            ("[audit]\nbatch_size = 0\n", "audit"),
            (
                "[telemetry]\notlp_endpoint = \"ftp://collector/v1/traces\"\n",
                "telemetry.otlp_endpoint",
            ),
            ("[telemetry]\nservice_name = \"\"\n", "telemetry"),
        ] {
            let errors = load(text, &[]).expect_err(text);
            assert!(errors.iter().any(|e| e.key == key), "{text}: {errors:?}");
        }
        let c = load(
            "[database]\nchange_notices = \"poll\"\nchange_poll_interval_ms = 250\n\
             [audit]\nwebhook_url = \"https://siem.example/in\"\nwebhook_authorization = \"Bearer s3cret\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.database.change_notices,
            super::super::runtime::ChangeNotices::Poll(std::time::Duration::from_millis(250))
        );
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "the webhook's credential is redacted"
        );
    }

    #[test]
    fn environment_variables_override_every_kind_of_key() {
        let c = load(
            "[database]\nurl = \"sqlite::memory:\"\n",
            &[
                (
                    "PORTCULLIS_DATABASE_URL",
                    "postgres://postgres@127.0.0.1/test",
                ),
                ("PORTCULLIS_SERVER_SHUTDOWN_GRACE_SECONDS", "3"),
                (
                    "PORTCULLIS_SERVER_TRUSTED_PROXIES",
                    "10.0.0.0/8, 192.168.1.1",
                ),
                ("PORTCULLIS_TLS_DEV_CERTS", "false"),
            ],
        )
        .unwrap();
        assert_eq!(c.database.url, "postgres://postgres@127.0.0.1/test");
        assert_eq!(c.server.shutdown_grace, std::time::Duration::from_secs(3));
        assert_eq!(c.server.trusted_proxies.len(), 2);
        assert!(!c.tls.dev_certs);
    }

    #[test]
    fn the_file_resolves_into_typed_paths_durations_and_limits() {
        let c = load(
            "[server]\nrequest_timeout_seconds = 7\nclient_cert_header = \"\"\nworker_threads = 0\n\
             [paths]\ncerts_dir = \"/etc/portcullis/certs\"\n[reload]\nwatch_interval_seconds = 0\n\
             [log]\nformat = \"json\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.server.request_timeout, std::time::Duration::from_secs(7));
        assert_eq!(c.server.client_cert_header, None);
        assert_eq!(c.server.worker_threads, None);
        assert_eq!(c.paths.tenants_dir, PathBuf::from("/srv/tenants"));
        assert_eq!(
            c.tls.cert,
            PathBuf::from("/etc/portcullis/certs/server.pem"),
            "an unset tls.cert is the development certificate in certs_dir"
        );
        assert!(c.tls.default_cert);
        assert_eq!(c.reload.watch_interval, None, "0 turns file watching off");
        assert_eq!(c.log.format, super::super::runtime::LogFormat::Json);
        assert_eq!(c.passwords.argon2.m_cost(), 12_288);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_line() {
        let errors = load("[server]\nlisten = \"0.0.0.0:1\"\nlisten_typo = 1\n", &[]).unwrap_err();
        assert_eq!(errors[0].line, Some(3), "{errors:?}");
        assert!(errors[0].message.contains("listen_typo"), "{errors:?}");
    }

    #[test]
    fn debug_output_never_shows_the_database_password_or_master_key() {
        let c = load(
            "[database]\nurl = \"postgres://portcullis:s3cret@db/p\"\n[keys]\nmaster_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n",
            &[],
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("AAAAAAAA"),
            "{shown}"
        );
        assert!(shown.contains("postgres://portcullis:***@db/p"), "{shown}");
    }

    #[test]
    fn every_key_in_the_shipped_file_is_known_and_documented() {
        let shipped = include_str!("../../config/portcullis.toml");
        load(shipped, &[]).unwrap();
        for (section, key, _) in known_keys() {
            let needle = format!("{key} =");
            assert!(
                shipped.contains(&needle),
                "config/portcullis.toml does not document {section}.{key}"
            );
            assert!(
                shipped.contains(&env_name(&section, &key)),
                "no env name documented for {section}.{key}"
            );
        }
    }
}
