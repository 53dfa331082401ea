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
            Command::Tenants {
                command: TenantsCommand::List,
            } => tenants_list(&config).await,
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
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(&config.file.log.level));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(64 * 1024)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    if config.file.log.format == "json" {
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
        let ca = cfg.certs_dir().join("ca.pem");
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
    let defaults = TenantDefaults {
        public_base_url: &config.file.server.public_base_url,
        mtls_base_url: &config.file.server.mtls_base_url,
    };
    let dir = config.tenants_dir();
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
    let dir = config.certs_dir();
    if portcullis::devcerts::ensure(&dir, force)? {
        println!("wrote development certificates to {}", dir.display());
    } else {
        println!(
            "development certificates already exist in {} (use --force to replace them)",
            dir.display()
        );
    }
    Ok(())
}

async fn open_store(config: &ServerConfig) -> Result<(Store, MasterKey), String> {
    let store = Store::connect(&config.database_url, &config.file.database.schema, 2)
        .await
        .map_err(|e| e.to_string())?;
    let k = &config.file.keys;
    let file = if k.master_key_file.is_empty() {
        String::new()
    } else {
        config.path(&k.master_key_file).display().to_string()
    };
    let master =
        MasterKey::load_or_create(&k.master_key, &file, &config.data_dir().join("master.key"))
            .map_err(|e| e.to_string())?;
    Ok((store, master))
}

fn policy(config: &ServerConfig) -> ring::KeyPolicy {
    let k = &config.file.keys;
    ring::KeyPolicy {
        rotation_interval: k.rotation_interval_seconds,
        propagation: k.propagation_seconds,
        retention: k.retention_seconds,
        rsa_bits: k.rsa_bits,
    }
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
