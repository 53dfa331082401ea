//! The server configuration as the rest of the code reads it (the second layer): the
//! file's sections (`super::server`) resolved into typed values — addresses parsed, networks
//! parsed, paths made absolute, durations as `Duration` (or seconds where callers compute with
//! unix times), argon2 parameters checked — after every key passed validation. Nothing outside
//! `config/` reads the file schema.

use super::server::{
    AuditSection, CacheSection, ConnectionsSection, DatabaseSection, FederationSection,
    KeysSection, OutboundSection, PathsSection, ReloadSection, ServerFile, ServerSection,
    TelemetrySection, TlsSection, err, redact_url,
};
use super::{ConfigError, FileRoots};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The resolved server configuration the rest of the code reads.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Directory relative paths are resolved against (the current directory).
    pub base_dir: PathBuf,
    pub server: Server,
    pub tls: Tls,
    pub paths: Paths,
    pub database: Database,
    pub keys: Keys,
    pub cache: Cache,
    pub passwords: Passwords,
    pub federation: Federation,
    pub outbound: Outbound,
    pub reload: Reload,
    pub cleanup: Cleanup,
    pub audit: Audit,
    pub telemetry: Telemetry,
    pub log: Log,
    pub connections: ConnectionLimits,
}

/// `[server]`: listeners, public URLs, proxies and per-request limits.
#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    pub mtls_listen: Option<SocketAddr>,
    /// Plain HTTP, for a TLS-terminating proxy.
    pub http_listen: Option<SocketAddr>,
    pub public_base_url: String,
    pub mtls_base_url: String,
    pub trusted_proxies: Vec<IpNet>,
    /// Header in which a trusted TLS-terminating proxy passes the client certificate.
    pub client_cert_header: Option<String>,
    pub ops_networks: Vec<IpNet>,
    pub shutdown_grace: Duration,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    /// Serving threads; `None`: one per CPU core.
    pub worker_threads: Option<usize>,
}

/// `[tls]`: the default server certificate.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `tls.cert` is unset: the certificate is the development one in the certs directory.
    pub default_cert: bool,
    pub dev_certs: bool,
}

/// `[paths]`, absolute.
#[derive(Debug, Clone)]
pub struct Paths {
    pub tenants_dir: PathBuf,
    pub providers_dir: PathBuf,
    pub certs_dir: PathBuf,
    pub data_dir: PathBuf,
    pub extra_file_dirs: Vec<PathBuf>,
}

/// `[database]`, with the SQLite file in the data directory when no URL is set.
#[derive(Clone)]
pub struct Database {
    pub url: String,
    pub schema: String,
    pub max_connections: u32,
    /// The most a query waits for a connection before the request is refused with 503.
    pub acquire_timeout: Duration,
    pub change_notices: ChangeNotices,
}

impl Database {
    /// A database at `url` with the defaults of every other key (four connections).
    pub fn at(url: &str, schema: &str) -> Self {
        Database {
            url: url.to_string(),
            schema: schema.to_string(),
            max_connections: 4,
            acquire_timeout: Duration::from_secs(2),
            change_notices: ChangeNotices::Notify,
        }
    }
}

/// How a node hears other nodes' changes on PostgreSQL (SQLite is one node: it hears none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeNotices {
    /// LISTEN/NOTIFY: at once, no table written.
    Notify,
    /// Each change is a row of the change table, read this often: for PostgreSQL-compatible
    /// engines without LISTEN/NOTIFY (CockroachDB, YugabyteDB) or poolers that drop it.
    Poll(Duration),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("url", &redact_url(&self.url))
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("change_notices", &self.change_notices)
            .finish()
    }
}

/// `[keys]`: the master key and the signing keys' lifetimes. Lifetimes are seconds because the
/// key ring computes with unix times.
#[derive(Clone)]
pub struct Keys {
    /// Base64, inline (empty: none).
    pub master_key: String,
    pub master_key_file: Option<PathBuf>,
    pub rotation_interval_seconds: i64,
    pub propagation_seconds: i64,
    pub retention_seconds: i64,
    pub rsa_bits: u32,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
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

/// `[cache]`.
#[derive(Debug, Clone)]
pub struct Cache {
    pub client_capacity: u64,
    pub client_ttl: Duration,
    /// Entries of the single-use memory (`stores::replay`).
    pub replay_capacity: usize,
}

/// `[passwords]`: parameters of new hashes (checked against OWASP's minimum) and the hashing
/// threads.
#[derive(Debug, Clone)]
pub struct Passwords {
    pub argon2: argon2::Params,
    /// Threads that verify passwords; 0: one per core.
    pub hashing_threads: usize,
    /// Verifications that may wait for a hashing thread; 0: four per thread.
    pub max_queued_verifications: usize,
}

/// `[federation]`.
#[derive(Debug, Clone)]
pub struct Federation {
    /// Extra CA certificates trusted for upstream providers' HTTPS.
    pub ca_files: Vec<PathBuf>,
    /// Seconds, added to unix times: how long an upstream round trip may take.
    pub state_lifetime_seconds: i64,
}

/// `[outbound]`: requests this server makes to other servers.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// Internal networks outbound requests may reach anyway.
    pub allow_networks: Vec<IpNet>,
    pub connect_timeout: Duration,
    /// The whole request, answer included.
    pub timeout: Duration,
    pub max_response_bytes: usize,
    /// Memory for cached documents, in bytes.
    pub cache_max_bytes: u64,
}

/// `[reload]`.
#[derive(Debug, Clone)]
pub struct Reload {
    /// How often the tenants directory is scanned; `None`: never (changes need SIGHUP).
    pub watch_interval: Option<Duration>,
    pub sync_interval: Duration,
}

/// `[cleanup]`: the sweep of expired operational rows.
#[derive(Debug, Clone)]
pub struct Cleanup {
    /// How often a node sweeps (one node at a time); `None`: never (`portcullis cleanup`).
    pub interval: Option<Duration>,
    /// Rows deleted per statement (and per transaction).
    pub batch_size: i64,
}

/// `[audit]`: where security events go besides the log.
#[derive(Debug, Clone)]
pub struct Audit {
    /// JSON lines appended here.
    pub file: Option<PathBuf>,
    pub webhook: Option<AuditWebhook>,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub spool_max_bytes: u64,
}

/// Where batches of audit events are POSTed, and the `Authorization` header value they carry.
#[derive(Clone)]
pub struct AuditWebhook {
    pub url: String,
    pub authorization: Option<String>,
}

impl std::fmt::Debug for AuditWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWebhook")
            .field("url", &redact_url(&self.url))
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// `[telemetry]`: OpenTelemetry traces over OTLP/HTTP.
#[derive(Clone)]
pub struct Telemetry {
    /// The collector's traces URL (`http://collector:4318/v1/traces`); `None`: off.
    pub otlp_endpoint: Option<String>,
    pub otlp_authorization: Option<String>,
    pub service_name: String,
    pub export_interval: Duration,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field(
                "otlp_endpoint",
                &self.otlp_endpoint.as_deref().map(redact_url),
            )
            .field(
                "otlp_authorization",
                &self.otlp_authorization.as_ref().map(|_| "<redacted>"),
            )
            .field("service_name", &self.service_name)
            .field("export_interval", &self.export_interval)
            .finish()
    }
}

/// `[log]`.
#[derive(Debug, Clone)]
pub struct Log {
    pub format: LogFormat,
    /// The default filter (`RUST_LOG` wins).
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `[connections]`: bounds on client connections, for every listener of the process together.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    /// From one client address (IPv6: one /64); trusted proxies are exempt.
    pub max_connections_per_address: usize,
    /// For the TLS handshake, and again from its end to the first byte of a request.
    pub first_byte_timeout: Duration,
    /// With no request in flight.
    pub idle_timeout: Duration,
    /// HTTP/2 PING interval; `None`: never.
    pub http2_keep_alive_interval: Option<Duration>,
    pub http2_keep_alive_timeout: Duration,
}

/// At least one second: a zero interval or timeout would spin or close at once.
fn secs(s: u64) -> Duration {
    Duration::from_secs(s.max(1))
}

impl From<&ConnectionsSection> for ConnectionLimits {
    fn from(c: &ConnectionsSection) -> Self {
        Self {
            max_connections: c.max_connections.max(1),
            max_connections_per_address: c.max_connections_per_address.max(1),
            first_byte_timeout: secs(c.first_byte_timeout_seconds),
            idle_timeout: secs(c.idle_timeout_seconds),
            http2_keep_alive_interval: (c.http2_keep_alive_interval_seconds > 0)
                .then(|| secs(c.http2_keep_alive_interval_seconds)),
            http2_keep_alive_timeout: secs(c.http2_keep_alive_timeout_seconds),
        }
    }
}

/// The documented defaults (`config/portcullis.toml`).
impl Default for ConnectionLimits {
    fn default() -> Self {
        Self::from(&ConnectionsSection::default())
    }
}

impl ServerConfig {
    /// `p` against the base directory, unless absolute.
    pub fn path(&self, p: &str) -> PathBuf {
        absolute(&self.base_dir, p)
    }
    /// Where tenant and provider files may read files from.
    pub fn file_roots(&self) -> FileRoots {
        let p = &self.paths;
        let mut allowed = vec![
            p.tenants_dir.clone(),
            p.providers_dir.clone(),
            p.certs_dir.clone(),
        ];
        allowed.extend(p.extra_file_dirs.iter().cloned());
        FileRoots::new(self.base_dir.clone(), allowed, vec![p.data_dir.clone()])
    }
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.server.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
    pub fn is_ops_network(&self, ip: IpAddr) -> bool {
        self.server.ops_networks.iter().any(|n| n.contains(&ip))
    }
}

fn absolute(base_dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    }
}

/// Checks every key of `file` (all problems at once, in the order of the file's sections) and
/// resolves it.
pub(super) fn resolve(
    path: &Path,
    file: ServerFile,
    base_dir: PathBuf,
) -> Result<ServerConfig, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let s = &file.server;
    let listen = address(path, "server.listen", &s.listen, &mut errors);
    if listen.is_none() && s.listen.is_empty() {
        errors.push(err(path, "server.listen", "the main listener is required"));
    }
    let argon2 = resolve_passwords(path, &file, &mut errors);
    let mtls_listen = address(path, "server.mtls_listen", &s.mtls_listen, &mut errors);
    let http_listen = address(path, "server.http_listen", &s.http_listen, &mut errors);
    let trusted_proxies = networks(
        path,
        "server.trusted_proxies",
        &s.trusted_proxies,
        &mut errors,
    );
    let ops_networks = networks(path, "server.ops_networks", &s.ops_networks, &mut errors);
    let allow_networks = networks(
        path,
        "outbound.allow_networks",
        &file.outbound.allow_networks,
        &mut errors,
    );
    check_outbound(path, &file.outbound, &mut errors);
    check_base_urls(path, s, &mut errors);
    let log_format = match file.log.format.as_str() {
        "text" => Some(LogFormat::Text),
        "json" => Some(LogFormat::Json),
        other => {
            errors.push(err(
                path,
                "log.format",
                format!("`{other}` is neither `text` nor `json`"),
            ));
            None
        }
    };
    check_keys(path, &file.keys, &mut errors);
    check_connections(path, &file.connections, &mut errors);
    if s.max_body_bytes < 1024 {
        errors.push(err(path, "server.max_body_bytes", "must be at least 1024"));
    }
    let database = resolve_database(path, &file, &base_dir, &mut errors);
    let audit = resolve_audit(path, &base_dir, &file.audit, &mut errors);
    let telemetry = resolve_telemetry(path, &file.telemetry, &mut errors);
    let (Some(listen), Some(argon2), Some(log_format), true) =
        (listen, argon2, log_format, errors.is_empty())
    else {
        return Err(errors);
    };
    let paths = resolve_paths(&base_dir, &file.paths);
    Ok(ServerConfig {
        server: Server {
            listen,
            mtls_listen,
            http_listen,
            public_base_url: s.public_base_url.clone(),
            mtls_base_url: s.mtls_base_url.clone(),
            trusted_proxies,
            client_cert_header: Some(s.client_cert_header.clone()).filter(|h| !h.is_empty()),
            ops_networks,
            shutdown_grace: Duration::from_secs(s.shutdown_grace_seconds),
            request_timeout: Duration::from_secs(s.request_timeout_seconds),
            max_body_bytes: s.max_body_bytes,
            worker_threads: Some(s.worker_threads).filter(|n| *n > 0),
        },
        tls: resolve_tls(&base_dir, &paths, &file.tls),
        keys: resolve_keys(&base_dir, &file.keys),
        cache: resolve_cache(&file.cache),
        passwords: Passwords {
            argon2,
            hashing_threads: file.passwords.hashing_threads,
            max_queued_verifications: file.passwords.max_queued_verifications,
        },
        federation: resolve_federation(&base_dir, &file.federation),
        outbound: resolve_outbound(&file.outbound, allow_networks),
        reload: resolve_reload(&file.reload),
        cleanup: Cleanup {
            interval: (file.cleanup.interval_seconds > 0)
                .then(|| Duration::from_secs(file.cleanup.interval_seconds)),
            batch_size: i64::try_from(file.cleanup.batch_size.clamp(1, 100_000)).unwrap_or(100_000),
        },
        audit,
        telemetry,
        log: Log {
            format: log_format,
            level: file.log.level.clone(),
        },
        connections: ConnectionLimits::from(&file.connections),
        paths,
        database,
        base_dir,
    })
}

fn address(path: &Path, key: &str, v: &str, errors: &mut Vec<ConfigError>) -> Option<SocketAddr> {
    if v.is_empty() {
        return None;
    }
    match v.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            errors.push(err(
                path,
                key,
                format!("`{v}` is not an address like 0.0.0.0:8443"),
            ));
            None
        }
    }
}

fn networks(path: &Path, key: &str, list: &[String], errors: &mut Vec<ConfigError>) -> Vec<IpNet> {
    list.iter()
        .filter_map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    errors.push(err(
                        path,
                        key,
                        format!("`{s}` is not a network like 10.0.0.0/8"),
                    ))
                })
                .ok()
        })
        .collect()
}

fn check_base_urls(path: &Path, s: &ServerSection, errors: &mut Vec<ConfigError>) {
    for (key, url) in [
        ("server.public_base_url", &s.public_base_url),
        ("server.mtls_base_url", &s.mtls_base_url),
    ] {
        if !url.starts_with("https://") && !url.starts_with("http://") || url.ends_with('/') {
            errors.push(err(
                path,
                key,
                "must be an absolute http(s) URL without a trailing slash",
            ));
        }
    }
}

/// The argon2id parameters of `[passwords]`, if at least OWASP's minimum.
fn resolve_passwords(
    path: &Path,
    file: &ServerFile,
    errors: &mut Vec<ConfigError>,
) -> Option<argon2::Params> {
    let pw = &file.passwords;
    let params = argon2::Params::new(
        pw.argon2_memory_kib,
        pw.argon2_iterations,
        pw.argon2_parallelism,
        None,
    )
    .ok();
    if pw.argon2_memory_kib < 7168
        || u64::from(pw.argon2_memory_kib) * u64::from(pw.argon2_iterations) < 7168 * 5
        || !(1..=16).contains(&pw.argon2_parallelism)
        || params.is_none()
    {
        errors.push(err(
            path,
            "passwords",
            "argon2 parameters below OWASP's minimum (memory >= 7168 KiB, memory x iterations >= 35840, parallelism 1-16)",
        ));
        return None;
    }
    params
}

fn check_outbound(path: &Path, o: &OutboundSection, errors: &mut Vec<ConfigError>) {
    if o.max_response_bytes < 1024 {
        errors.push(err(
            path,
            "outbound.max_response_bytes",
            "must be at least 1024",
        ));
    }
    if o.cache_max_bytes < o.max_response_bytes as u64 {
        errors.push(err(
            path,
            "outbound.cache_max_bytes",
            "must hold at least one answer of max_response_bytes",
        ));
    }
}

fn check_keys(path: &Path, k: &KeysSection, errors: &mut Vec<ConfigError>) {
    if k.rotation_interval_seconds <= 0 || k.propagation_seconds < 0 || k.retention_seconds < 0 {
        errors.push(err(path, "keys", "key lifetimes must be positive"));
    } else if k.propagation_seconds >= k.rotation_interval_seconds {
        errors.push(err(
            path,
            "keys.propagation_seconds",
            "must be shorter than keys.rotation_interval_seconds",
        ));
    }
    if !matches!(k.rsa_bits, 2048 | 3072 | 4096) {
        errors.push(err(path, "keys.rsa_bits", "must be 2048, 3072 or 4096"));
    }
}

fn check_connections(path: &Path, c: &ConnectionsSection, errors: &mut Vec<ConfigError>) {
    if c.max_connections == 0 || c.max_connections_per_address == 0 {
        errors.push(err(
            path,
            "connections",
            "max_connections and max_connections_per_address must be at least 1",
        ));
    }
    if c.first_byte_timeout_seconds == 0 || c.idle_timeout_seconds == 0 {
        errors.push(err(
            path,
            "connections",
            "first_byte_timeout_seconds and idle_timeout_seconds must be at least 1",
        ));
    }
    if c.http2_keep_alive_interval_seconds > 0 && c.http2_keep_alive_timeout_seconds == 0 {
        errors.push(err(
            path,
            "connections.http2_keep_alive_timeout_seconds",
            "must be at least 1 while http2_keep_alive_interval_seconds is set",
        ));
    }
}

fn resolve_database(
    path: &Path,
    file: &ServerFile,
    base_dir: &Path,
    errors: &mut Vec<ConfigError>,
) -> Database {
    let DatabaseSection {
        url,
        schema,
        max_connections,
        acquire_timeout_seconds,
        change_notices,
        change_poll_interval_ms,
    } = &file.database;
    let change_notices = match change_notices.as_str() {
        "notify" => ChangeNotices::Notify,
        "poll" if *change_poll_interval_ms > 0 => {
            ChangeNotices::Poll(Duration::from_millis(*change_poll_interval_ms))
        }
        "poll" => {
            errors.push(err(
                path,
                "database.change_poll_interval_ms",
                "must be at least 1 when change_notices is \"poll\"",
            ));
            ChangeNotices::Notify
        }
        _ => {
            errors.push(err(
                path,
                "database.change_notices",
                "must be \"notify\" or \"poll\"",
            ));
            ChangeNotices::Notify
        }
    };
    if *acquire_timeout_seconds == 0 {
        errors.push(err(
            path,
            "database.acquire_timeout_seconds",
            "must be at least 1",
        ));
    }
    let url = if url.is_empty() {
        let db = absolute(base_dir, &file.paths.data_dir);
        format!("sqlite://{}?mode=rwc", db.join("portcullis.db").display())
    } else {
        url.clone()
    };
    if !(url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://"))
    {
        errors.push(err(
            path,
            "database.url",
            "must start with sqlite:, postgres:// or postgresql://",
        ));
    }
    Database {
        url,
        schema: schema.clone(),
        max_connections: *max_connections,
        acquire_timeout: Duration::from_secs((*acquire_timeout_seconds).max(1)),
        change_notices,
    }
}

fn resolve_paths(base_dir: &Path, p: &PathsSection) -> Paths {
    Paths {
        tenants_dir: absolute(base_dir, &p.tenants_dir),
        providers_dir: absolute(base_dir, &p.providers_dir),
        certs_dir: absolute(base_dir, &p.certs_dir),
        data_dir: absolute(base_dir, &p.data_dir),
        extra_file_dirs: p
            .extra_file_dirs
            .iter()
            .map(|d| absolute(base_dir, d))
            .collect(),
    }
}

fn resolve_tls(base_dir: &Path, paths: &Paths, t: &TlsSection) -> Tls {
    let or_default = |v: &str, default: &str| {
        if v.is_empty() {
            paths.certs_dir.join(default)
        } else {
            absolute(base_dir, v)
        }
    };
    Tls {
        cert: or_default(&t.cert, "server.pem"),
        key: or_default(&t.key, "server-key.pem"),
        default_cert: t.cert.is_empty(),
        dev_certs: t.dev_certs,
    }
}

fn resolve_keys(base_dir: &Path, k: &KeysSection) -> Keys {
    Keys {
        master_key: k.master_key.clone(),
        master_key_file: Some(&k.master_key_file)
            .filter(|f| !f.is_empty())
            .map(|f| absolute(base_dir, f)),
        rotation_interval_seconds: k.rotation_interval_seconds,
        propagation_seconds: k.propagation_seconds,
        retention_seconds: k.retention_seconds,
        rsa_bits: k.rsa_bits,
    }
}

fn resolve_cache(c: &CacheSection) -> Cache {
    Cache {
        client_capacity: c.client_capacity,
        client_ttl: Duration::from_secs(c.client_ttl_seconds),
        replay_capacity: usize::try_from(c.replay_capacity).unwrap_or(usize::MAX),
    }
}

fn resolve_federation(base_dir: &Path, f: &FederationSection) -> Federation {
    Federation {
        ca_files: f.ca_files.iter().map(|c| absolute(base_dir, c)).collect(),
        state_lifetime_seconds: f.state_lifetime_seconds,
    }
}

fn resolve_outbound(o: &OutboundSection, allow_networks: Vec<IpNet>) -> Outbound {
    Outbound {
        allow_networks,
        connect_timeout: secs(o.connect_timeout_seconds),
        timeout: secs(o.timeout_seconds),
        max_response_bytes: o.max_response_bytes,
        cache_max_bytes: o.cache_max_bytes,
    }
}

fn resolve_audit(
    path: &Path,
    base_dir: &Path,
    a: &AuditSection,
    errors: &mut Vec<ConfigError>,
) -> Audit {
    let webhook = (!a.webhook_url.is_empty()).then(|| AuditWebhook {
        url: a.webhook_url.clone(),
        authorization: Some(a.webhook_authorization.clone()).filter(|s| !s.is_empty()),
    });
    if let Some(w) = &webhook
        && !url::Url::parse(&w.url).is_ok_and(|u| u.scheme() == "https" && u.host().is_some())
    {
        errors.push(err(path, "audit.webhook_url", "must be an https URL"));
    }
    if a.batch_size == 0 || a.flush_interval_ms == 0 {
        errors.push(err(
            path,
            "audit",
            "batch_size and flush_interval_ms must be at least 1",
        ));
    }
    Audit {
        file: Some(&a.file)
            .filter(|f| !f.is_empty())
            .map(|f| absolute(base_dir, f)),
        webhook,
        batch_size: usize::try_from(a.batch_size.clamp(1, 10_000)).unwrap_or(100),
        flush_interval: Duration::from_millis(a.flush_interval_ms.max(1)),
        spool_max_bytes: a.spool_max_bytes,
    }
}

fn resolve_telemetry(
    path: &Path,
    t: &TelemetrySection,
    errors: &mut Vec<ConfigError>,
) -> Telemetry {
    let endpoint = Some(t.otlp_endpoint.clone()).filter(|e| !e.is_empty());
    if let Some(e) = &endpoint
        && !url::Url::parse(e)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
    {
        errors.push(err(
            path,
            "telemetry.otlp_endpoint",
            "must be an http or https URL (the collector's traces URL, e.g. http://collector:4318/v1/traces)",
        ));
    }
    if t.service_name.is_empty() || t.export_interval_ms == 0 {
        errors.push(err(
            path,
            "telemetry",
            "service_name must not be empty and export_interval_ms must be at least 1",
        ));
    }
    Telemetry {
        otlp_endpoint: endpoint,
        otlp_authorization: Some(t.otlp_authorization.clone()).filter(|a| !a.is_empty()),
        service_name: t.service_name.clone(),
        export_interval: Duration::from_millis(t.export_interval_ms.max(1)),
    }
}

fn resolve_reload(r: &ReloadSection) -> Reload {
    Reload {
        watch_interval: (r.watch_interval_seconds > 0).then(|| secs(r.watch_interval_seconds)),
        sync_interval: secs(r.sync_interval_seconds),
    }
}
