//! The `portcullis` command line. No logic lives here: each command calls into the library.

use clap::{Parser, Subcommand};
use portcullis::clock::{Clock, SystemClock};
use portcullis::config::ServerConfig;
use portcullis::config::tenant::{self, TenantDefaults};
use portcullis::keys::{MasterKey, ring};
use portcullis::stores::{KeyStore, Store, TenantStore};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Multi-tenant OpenID Connect / OAuth 2.x provider and federation gateway"
)]
struct Cli {
    /// Server configuration file.
    #[arg(
        long,
        global = true,
        env = "PORTCULLIS_CONFIG",
        default_value = "config/portcullis.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default command).
    Serve,
    /// Validate the server configuration and every tenant file; print every problem.
    CheckConfig,
    /// Generate the development CA, server and demo client certificates into the certs directory.
    DevCerts {
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Signing keys of a tenant.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Client utilities.
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Tenants known to the database.
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// Local users stored in the database (users in tenant files are managed there).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// SSO sessions: list and revoke.
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Remembered consent: show and revoke.
    Consents {
        #[command(subcommand)]
        command: ConsentsCommand,
    },
    /// Upstream identity providers added at runtime (stored in the database, per tenant; every
    /// node picks changes up without a restart). Providers in providers/*.toml are edited there.
    Providers {
        #[command(subcommand)]
        command: ProvidersCommand,
    },
}

#[derive(Subcommand)]
enum ProvidersCommand {
    /// Add (or with --replace, replace) a runtime provider: from a TOML file shaped like
    /// providers/<id>.toml (the files and variables it names are read here, by the CLI, and
    /// their values stored sealed), or from a JSON file shaped like the admin API's body.
    Add {
        #[arg(long)]
        tenant: String,
        /// The definition; its id defaults to the file name.
        file: std::path::PathBuf,
        #[arg(long)]
        replace: bool,
    },
    /// The tenant's runtime providers.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Stop offering a provider (sign-ins through it are refused) without removing it.
    Disable {
        #[arg(long)]
        tenant: String,
        id: String,
    },
    Enable {
        #[arg(long)]
        tenant: String,
        id: String,
    },
    Remove {
        #[arg(long)]
        tenant: String,
        id: String,
    },
}

#[derive(Subcommand)]
enum ConsentsCommand {
    /// The scopes a user granted a client.
    Show {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        subject: String,
        #[arg(long)]
        client: String,
    },
    /// Forget a user's consent for a client: the next sign-in asks again.
    Revoke {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        subject: String,
        #[arg(long)]
        client: String,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Print the argon2id hash of a password (read from the argument or standard input).
    HashPassword { password: Option<String> },
    /// Measure how many password hashes one core computes per second (sizing, benchmarks).
    HashRate {
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Add or replace a database user; the password is read from standard input.
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        username: String,
        /// Stable subject identifier (default: the username).
        #[arg(long)]
        subject: Option<String>,
        /// Claims as a JSON object, e.g. '{"email":"a@example.com","email_verified":true}'.
        #[arg(long, default_value = "{}")]
        claims: String,
        /// Base32 TOTP secret to require a second factor.
        #[arg(long)]
        totp_secret: Option<String>,
    },
    /// Remove a database user.
    Remove {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        subject: String,
    },
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// List a user's sessions.
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        subject: String,
    },
    /// End one session (--sid) or every session of a user (--subject).
    Revoke {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        sid: Option<String>,
        #[arg(long)]
        subject: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List a tenant's keys with their state.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Create a successor key for each of the tenant's algorithms. It is announced now and signs
    /// after the propagation time, unless --immediate (for a compromised key).
    Rotate {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        immediate: bool,
    },
}

#[derive(Subcommand)]
enum ClientsCommand {
    /// Print the sealed form of a client secret (encrypted under this deployment's master key,
    /// bound to tenant and client), for clients that use client_secret_jwt. With --generate, a
    /// new high-entropy secret is made and printed with it.
    SealSecret {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        client: String,
        secret: Option<String>,
        #[arg(long)]
        generate: bool,
    },
    /// Print the stored form of a client secret (read from the argument or standard input).
    /// With --generate, create a new high-entropy secret and print it with its hash.
    HashSecret {
        secret: Option<String>,
        #[arg(long)]
        generate: bool,
    },
}

#[derive(Subcommand)]
enum TenantsCommand {
    /// List tenants with their issuer and version.
    List,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let required = std::env::var_os("PORTCULLIS_CONFIG").is_some()
        || cli.config != std::path::Path::new("config/portcullis.toml");
    let config = match ServerConfig::load(&cli.config, required) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    let _log_guard = init_logging(&config);
    portcullis::users::configure(&config.passwords.argon2);
    // Requests are served on their own threads (see `server::Listeners`); this runtime runs the
    // command, background upkeep and signal handling.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::CheckConfig => check_config(&config),
            Command::DevCerts { force } => dev_certs(&config, force),
            Command::Keys { command } => keys(&config, command).await,
            Command::Clients {
                command: ClientsCommand::HashSecret { secret, generate },
            } => hash_secret(secret, generate),
            Command::Clients {
                command:
                    ClientsCommand::SealSecret {
                        tenant,
                        client,
                        secret,
                        generate,
                    },
            } => seal_secret(&config, &tenant, &client, secret, generate).await,
            Command::Tenants {
                command: TenantsCommand::List,
            } => tenants_list(&config).await,
            Command::Users { command } => users(&config, command).await,
            Command::Sessions { command } => sessions(&config, command).await,
            Command::Consents { command } => consents(&config, command).await,
            Command::Providers { command } => providers(&config, command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to standard error (command output stays on standard out), written by a background
/// thread so that serving threads never wait on the terminal or a log pipe. Nothing is dropped:
/// when the queue is full, the writer waits. Keep the guard alive until exit (it flushes).
fn init_logging(config: &ServerConfig) -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(64 * 1024)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    if config.log.format == portcullis::config::runtime::LogFormat::Json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
    guard
}

async fn serve(config: ServerConfig) -> Result<(), String> {
    let listeners =
        portcullis::server::Listeners::bind(&config).map_err(|e| format!("cannot bind: {e}"))?;
    let running = portcullis::server::start(config, Arc::new(SystemClock), listeners).await?;
    print_banner(&running);
    portcullis::server::shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

fn print_banner(running: &portcullis::server::Running) {
    let state = &running.state;
    let cfg = &state.config;
    println!();
    println!("Portcullis is running.");
    println!("  main listener   {} (https)", running.main_addr);
    if let Some(a) = running.mtls_addr {
        println!("  mTLS listener   {a} (https, asks for client certificates)");
    }
    if let Some(a) = running.plain_addr {
        println!("  plain listener  {a} (http, for a TLS-terminating proxy)");
    }
    println!("  database        {}", state.store.engine());
    for t in state.registry.all() {
        println!("  tenant {:<10} issuer {}", t.slug(), t.spec.issuer);
    }
    if let Some(acme) = state.registry.get("acme") {
        let ca = cfg.paths.certs_dir.join("ca.pem");
        println!();
        println!("Get a token (demo client, demo secret):");
        println!(
            "  curl --cacert {} -u acme-m2m:acme-m2m-secret -d grant_type=client_credentials -d scope=api.read {}",
            ca.display(),
            acme.token_endpoint
        );
    }
    println!();
}

fn check_config(config: &ServerConfig) -> Result<(), String> {
    let files = config.file_roots();
    let defaults = TenantDefaults {
        public_base_url: &config.server.public_base_url,
        mtls_base_url: &config.server.mtls_base_url,
        files: &files,
    };
    let dir = config.paths.tenants_dir.clone();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    entries.sort();
    let mut errors = 0;
    let mut hosts: std::collections::HashMap<String, String> = Default::default();
    for path in &entries {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        match tenant::resolve(path, &text, &defaults) {
            Ok((spec, clients)) => {
                for h in &spec.hosts {
                    if let Some(other) = hosts.insert(h.clone(), spec.slug.clone()) {
                        eprintln!(
                            "{}: host `{h}` is also claimed by tenant `{other}`",
                            path.display()
                        );
                        errors += 1;
                    }
                }
                println!(
                    "ok  {} (tenant {}, {} clients, issuer {})",
                    path.display(),
                    spec.slug,
                    clients.len(),
                    spec.issuer
                );
            }
            Err(list) => {
                for e in &list {
                    eprintln!("{e}");
                }
                errors += list.len();
            }
        }
    }
    if errors > 0 {
        Err(format!("{errors} problem(s) found"))
    } else {
        Ok(())
    }
}

fn dev_certs(config: &ServerConfig, force: bool) -> Result<(), String> {
    let dir = &config.paths.certs_dir;
    let jwt = portcullis::devcerts::ensure_demo_jwt_key(dir, false)?;
    if portcullis::devcerts::ensure(dir, force)? {
        println!("wrote development certificates to {}", dir.display());
    } else if jwt {
        println!(
            "wrote the demo client key acme-jwt-key.pem to {}",
            dir.display()
        );
    } else {
        println!(
            "development certificates already exist in {} (use --force to replace them)",
            dir.display()
        );
    }
    Ok(())
}

async fn open_store(config: &ServerConfig) -> Result<(Store, MasterKey), String> {
    let store = Store::connect(&config.database.url, &config.database.schema, 2)
        .await
        .map_err(|e| e.to_string())?;
    let master = MasterKey::from_config(config).map_err(|e| e.to_string())?;
    Ok((store, master))
}

fn policy(config: &ServerConfig) -> ring::KeyPolicy {
    ring::KeyPolicy::from(&config.keys)
}

async fn keys(config: &ServerConfig, command: KeysCommand) -> Result<(), String> {
    let (store, master) = open_store(config).await?;
    let p = policy(config);
    let now = SystemClock.now();
    let tenant = match &command {
        KeysCommand::List { tenant } | KeysCommand::Rotate { tenant, .. } => tenant.clone(),
    };
    let row = store
        .find_tenant(&tenant)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no tenant `{tenant}` in the database"))?;
    if let KeysCommand::Rotate { immediate, .. } = command {
        let records = store.list_keys(&tenant).await.map_err(|e| e.to_string())?;
        for alg in &row.spec.tokens.signing_algorithms {
            let at = if immediate { now } else { now + p.propagation };
            let env = ring::KeyEnv {
                store: &store,
                master: &master,
                policy: &p,
            };
            let created = ring::create_key(env, &tenant, *alg, &records, at, now)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "{alg}: {}",
                if created {
                    "successor key created"
                } else {
                    "another node created a key at the same moment"
                }
            );
        }
        println!("running nodes pick the change up within reload.sync_interval_seconds");
    }
    let records = store.list_keys(&tenant).await.map_err(|e| e.to_string())?;
    println!(
        "{:<6} {:<44} {:>4} {:<10} {:<12} {:<12}",
        "alg", "kid", "gen", "state", "signs from", "signs until"
    );
    for r in &records {
        let state = ring::state_of(&records, r, &p, now);
        println!(
            "{:<6} {:<44} {:>4} {:<10} {:<12} {:<12}",
            r.alg,
            r.kid,
            r.generation,
            format!("{state:?}").to_lowercase(),
            r.activates_at,
            r.expires_at(&p)
        );
    }
    store.close().await;
    Ok(())
}

fn hash_secret(secret: Option<String>, generate: bool) -> Result<(), String> {
    let secret = match (secret, generate) {
        (_, true) => {
            let s = portcullis::secrets::generate_secret();
            println!("secret: {s}");
            s
        }
        (Some(s), false) => s,
        (None, false) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if secret.is_empty() {
        return Err("the secret is empty".into());
    }
    println!(
        "{}",
        portcullis::secrets::SecretHash::of(&secret).to_stored()
    );
    Ok(())
}

async fn tenants_list(config: &ServerConfig) -> Result<(), String> {
    let (store, _) = open_store(config).await?;
    for (slug, version) in store.tenant_versions().await.map_err(|e| e.to_string())? {
        if let Some(row) = store.find_tenant(&slug).await.map_err(|e| e.to_string())? {
            println!(
                "{slug:<16} v{version:<4} {:<6} {}",
                row.source, row.spec.issuer
            );
        }
    }
    store.close().await;
    Ok(())
}

fn read_line_or(arg: Option<String>) -> Result<String, String> {
    match arg {
        Some(s) => Ok(s),
        None => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            Ok(line.trim_end_matches(['\r', '\n']).to_string())
        }
    }
}

async fn users(config: &ServerConfig, command: UsersCommand) -> Result<(), String> {
    use portcullis::stores::UserStore;
    match command {
        UsersCommand::HashPassword { password } => {
            let p = read_line_or(password)?;
            if p.is_empty() {
                return Err("the password is empty".into());
            }
            println!(
                "{}",
                portcullis::users::hash_password(&p).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        UsersCommand::HashRate { seconds } => {
            let rate = portcullis::users::hash_rate(seconds).map_err(|e| e.to_string())?;
            let p = &config.passwords.argon2;
            println!(
                "{rate:.1} argon2id hashes/s on one core (m={} KiB, t={}, p={})",
                p.m_cost(),
                p.t_cost(),
                p.p_cost()
            );
            Ok(())
        }
        UsersCommand::Add {
            tenant,
            username,
            subject,
            claims,
            totp_secret,
        } => {
            let password = read_line_or(None)?;
            if password.len() < 8 {
                return Err("passwords have at least 8 characters".into());
            }
            let claims: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&claims).map_err(|e| format!("--claims: {e}"))?;
            if let Some(t) = &totp_secret {
                portcullis::users::check_totp_secret(t)?;
            }
            let user = portcullis::config::tenant::UserSpec {
                subject: subject.unwrap_or_else(|| username.clone()),
                username,
                password_hash: portcullis::users::hash_password(&password)
                    .map_err(|e| e.to_string())?,
                totp_secret,
                enabled: true,
                claims,
            };
            let (store, _) = open_store(config).await?;
            let now = portcullis::clock::Clock::now(&portcullis::clock::SystemClock);
            store
                .upsert_user(&tenant, &user, "cli", now)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "user {} ({}) saved in tenant {tenant}",
                user.username, user.subject
            );
            store.close().await;
            Ok(())
        }
        UsersCommand::Remove { tenant, subject } => {
            let (store, _) = open_store(config).await?;
            let removed = store
                .delete_user(&tenant, &subject)
                .await
                .map_err(|e| e.to_string())?;
            store.close().await;
            if removed {
                println!("removed");
                Ok(())
            } else {
                Err(format!("no database user {subject} in tenant {tenant}"))
            }
        }
    }
}

async fn providers(config: &ServerConfig, command: ProvidersCommand) -> Result<(), String> {
    use portcullis::federation::admin::{self, Mode};
    let (store, master) = open_store(config).await?;
    let now = portcullis::clock::Clock::now(&portcullis::clock::SystemClock);
    let result = match command {
        ProvidersCommand::Add {
            tenant,
            file,
            replace,
        } => {
            let mut spec = read_provider_definition(&file)?;
            if spec.id.is_empty() {
                spec.id = file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_string();
            }
            let mode = if replace {
                Mode::CreateOrReplace
            } else {
                Mode::Create
            };
            let claims = admin::FileClaims {
                domains: file_provider_domains(config, &store, &tenant).await?,
            };
            let policy =
                portcullis::outbound::Outbound::from_config(config).map_err(|e| e.to_string())?;
            admin::save(
                &store,
                &master,
                policy.policy(),
                &tenant,
                spec,
                mode,
                &claims,
                now,
            )
            .await
            .map(|saved| println!("saved: {}", saved.view))
        }
        ProvidersCommand::List { tenant } => {
            let mut after = String::new();
            loop {
                let page = admin::list(&store, &tenant, &after, 500)
                    .await
                    .map_err(|e| e.to_string())?;
                for p in &page {
                    println!(
                        "{}  {}  {}  enabled={}  domains={}",
                        p["id"].as_str().unwrap_or_default(),
                        p["kind"].as_str().unwrap_or_default(),
                        p["display_name"].as_str().unwrap_or_default(),
                        p["enabled"],
                        p["domains"]
                    );
                }
                match page.last().and_then(|p| p["id"].as_str()) {
                    Some(last) if page.len() == 500 => after = last.to_string(),
                    _ => break,
                }
            }
            Ok(())
        }
        ProvidersCommand::Disable { tenant, id } => {
            admin::set_enabled(&store, &tenant, &id, false, now)
                .await
                .map(|_| println!("disabled"))
        }
        ProvidersCommand::Enable { tenant, id } => {
            admin::set_enabled(&store, &tenant, &id, true, now)
                .await
                .map(|_| println!("enabled"))
        }
        ProvidersCommand::Remove { tenant, id } => admin::remove(&store, &tenant, &id)
            .await
            .map(|_| println!("removed")),
    };
    store.close().await;
    result.map_err(|e| e.to_string())
}

/// A runtime provider's definition from the operator's file: TOML like providers/<id>.toml,
/// whose files and environment variables the CLI reads now (their values are stored sealed;
/// nodes never read them), or JSON like the admin API's body.
fn read_provider_definition(
    file: &std::path::Path,
) -> Result<portcullis::federation::Definition<portcullis::federation::Plain>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    if file.extension().is_some_and(|e| e == "json") {
        return serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()));
    }
    let parsed: portcullis::federation::definition::ProviderFile =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let access = portcullis::federation::definition::FileAccess {
        read: &|p| std::fs::read_to_string(p).map_err(|e| format!("cannot read {p}: {e}")),
        env: &|k| std::env::var(k).ok(),
        allow_inline_secret: true,
    };
    parsed
        .load(&access)
        .map_err(|e| format!("{}: {e}", file.display()))
}

/// The email domains the tenant's file providers claim.
async fn file_provider_domains(
    config: &ServerConfig,
    store: &portcullis::stores::Store,
    tenant: &str,
) -> Result<Vec<String>, String> {
    use portcullis::stores::TenantStore;
    let Some(row) = store.find_tenant(tenant).await.map_err(|e| e.to_string())? else {
        return Err(format!("no tenant {tenant}"));
    };
    Ok(portcullis::federation::provider::file_domains(
        &config.paths.providers_dir,
        &row.spec.providers,
    ))
}

async fn sessions(config: &ServerConfig, command: SessionsCommand) -> Result<(), String> {
    use portcullis::stores::SessionStore;
    let (store, _) = open_store(config).await?;
    let result = match command {
        SessionsCommand::List { tenant, subject } => {
            for s in store
                .list_sessions(&tenant, &subject)
                .await
                .map_err(|e| e.to_string())?
            {
                println!(
                    "{}  auth_time={} last_seen={} expires={} amr={} clients={}",
                    s.sid,
                    s.auth_time,
                    s.last_seen_at,
                    s.expires_at,
                    s.amr,
                    s.clients.trim()
                );
            }
            Ok(())
        }
        SessionsCommand::Revoke {
            tenant,
            sid,
            subject,
        } => {
            let sids: Vec<String> = match (sid, subject) {
                (Some(sid), None) => vec![sid],
                (None, Some(subject)) => store
                    .list_sessions(&tenant, &subject)
                    .await
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .map(|s| s.sid)
                    .collect(),
                _ => return Err("give exactly one of --sid and --subject".into()),
            };
            let mut n = 0;
            for sid in sids {
                if store
                    .delete_session(&tenant, &sid)
                    .await
                    .map_err(|e| e.to_string())?
                    .is_some()
                {
                    n += 1;
                }
            }
            println!("{n} session(s) revoked");
            Ok(())
        }
    };
    store.close().await;
    result
}

async fn consents(config: &ServerConfig, command: ConsentsCommand) -> Result<(), String> {
    use portcullis::stores::ConsentStore;
    let (store, _) = open_store(config).await?;
    let now = portcullis::clock::Clock::now(&portcullis::clock::SystemClock);
    let result = match command {
        ConsentsCommand::Show {
            tenant,
            subject,
            client,
        } => match store
            .find_consent(&tenant, &subject, &client, now)
            .await
            .map_err(|e| e.to_string())?
        {
            Some(scopes) => {
                println!("{}", scopes.join(" "));
                Ok(())
            }
            None => Err(format!("{subject} has no remembered consent for {client}")),
        },
        ConsentsCommand::Revoke {
            tenant,
            subject,
            client,
        } => {
            if store
                .delete_consent(&tenant, &subject, &client)
                .await
                .map_err(|e| e.to_string())?
            {
                println!("consent revoked");
                Ok(())
            } else {
                Err(format!("{subject} has no remembered consent for {client}"))
            }
        }
    };
    store.close().await;
    result
}

async fn seal_secret(
    config: &ServerConfig,
    tenant: &str,
    client: &str,
    secret: Option<String>,
    generate: bool,
) -> Result<(), String> {
    let secret = if generate {
        let s = portcullis::secrets::generate_secret();
        println!("secret: {s}");
        s
    } else {
        read_line_or(secret)?
    };
    // RFC 7518 §3.2: an HS256 key has at least 256 bits.
    if secret.len() < 32 {
        return Err("a secret for client_secret_jwt has at least 32 characters".into());
    }
    let (store, master) = open_store(config).await?;
    store.close().await;
    let sealed = master
        .seal(
            secret.as_bytes(),
            &portcullis::registry::sealed_secret_aad(tenant, client),
        )
        .map_err(|e| e.to_string())?;
    println!(
        "{}{}",
        portcullis::config::tenant::SEALED_PREFIX,
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sealed)
    );
    Ok(())
}
