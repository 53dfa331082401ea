//! The `portcullis` command line: argument parsing only. Each command's body is in the library
//! (`portcullis::commands`).

use clap::{Parser, Subcommand};
use portcullis::commands::{
    self, cleanup, clients, keys, providers, saml_sps, serve, sessions, tenants, users, workload,
};
use portcullis::config::ServerConfig;
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Print a demo workload token: a JWT signed with the demo workload key (certs directory,
    /// from dev-certs), as a CI platform's OIDC token for a job. Only the token is printed.
    WorkloadToken(workload::WorkloadTokenArgs),
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
    /// SAML service providers registered at runtime (stored in the database, per tenant; every
    /// node picks changes up without a restart). SPs in tenant files are edited there.
    #[command(name = "saml-sps")]
    SamlSps {
        #[command(subcommand)]
        command: SamlSpsCommand,
    },
    /// Delete expired operational rows now (sign-ins in progress, used code and assertion
    /// markers, expired tokens, sessions, device and CIBA requests, upstream round trips), as
    /// every node does every `cleanup.interval_seconds`; prints what went, per table.
    Cleanup {
        /// Only count what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum SamlSpsCommand {
    /// Register (or with --replace, replace) an SP: from a TOML file shaped like one
    /// [[saml_service_providers]] entry (certificates inline or from metadata_url; no *_file
    /// keys), or from a JSON file shaped like the admin API's body.
    Add {
        #[arg(long)]
        tenant: String,
        file: std::path::PathBuf,
        #[arg(long)]
        replace: bool,
    },
    /// The tenant's runtime SPs.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// One runtime SP, as JSON.
    Show {
        #[arg(long)]
        tenant: String,
        entity_id: String,
    },
    /// Refuse an SP's requests (as an unknown SP's) without removing it.
    Disable {
        #[arg(long)]
        tenant: String,
        entity_id: String,
    },
    Enable {
        #[arg(long)]
        tenant: String,
        entity_id: String,
    },
    Remove {
        #[arg(long)]
        tenant: String,
        entity_id: String,
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
    /// Create (or with --replace, replace) a client kept in the database: from a JSON file
    /// shaped like the admin API's body, or a TOML file shaped like one [[clients]] entry
    /// without secrets or file keys. A generated secret is printed once.
    Add {
        #[arg(long)]
        tenant: String,
        file: std::path::PathBuf,
        #[arg(long)]
        replace: bool,
    },
    /// List the clients kept in the database (file clients are in the tenant file).
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Print one database client as JSON (secrets as kind and expiry only).
    Show {
        #[arg(long)]
        tenant: String,
        client_id: String,
    },
    /// Refuse a database client's requests without removing it.
    Disable {
        #[arg(long)]
        tenant: String,
        client_id: String,
    },
    Enable {
        #[arg(long)]
        tenant: String,
        client_id: String,
    },
    /// Remove a database client; its refresh and reference tokens stop working at once.
    Remove {
        #[arg(long)]
        tenant: String,
        client_id: String,
    },
    /// Replace a database client's secrets by a new one, printed once.
    RotateSecret {
        #[arg(long)]
        tenant: String,
        client_id: String,
    },
    /// Print an initial access token for client registration (RFC 7591 §3), for tenants whose
    /// [registration] access is "initial_token".
    InitialToken {
        #[arg(long)]
        tenant: String,
        /// How many registrations it authorizes.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// How long it lives: seconds, or 30m, 12h, 7d.
        #[arg(long, default_value = "1d")]
        expires: String,
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
    let _log_guard = commands::init_logging(&config);
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
    let command = cli.command.unwrap_or(Command::Serve);
    match runtime.block_on(run(config, command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: ServerConfig, command: Command) -> Result<(), String> {
    let c = &config;
    match command {
        Command::Serve => serve::serve(config).await,
        Command::Cleanup { dry_run } => cleanup::cleanup(c, dry_run).await,
        Command::CheckConfig => tenants::check_config(c),
        Command::DevCerts { force } => serve::dev_certs(c, force),
        Command::WorkloadToken(args) => workload::workload_token(c, &args),
        Command::Keys {
            command: KeysCommand::List { tenant },
        } => keys::list(c, &tenant).await,
        Command::Keys {
            command: KeysCommand::Rotate { tenant, immediate },
        } => keys::rotate(c, &tenant, immediate).await,
        Command::Clients { command } => match command {
            ClientsCommand::HashSecret { secret, generate } => {
                clients::hash_secret(secret, generate)
            }
            ClientsCommand::SealSecret {
                tenant,
                client,
                secret,
                generate,
            } => clients::seal_secret(c, &tenant, &client, secret, generate).await,
            ClientsCommand::Add {
                tenant,
                file,
                replace,
            } => clients::add(c, &tenant, &file, replace).await,
            ClientsCommand::List { tenant } => clients::list(c, &tenant).await,
            ClientsCommand::Show { tenant, client_id } => {
                clients::show(c, &tenant, &client_id).await
            }
            ClientsCommand::Disable { tenant, client_id } => {
                clients::set_enabled(c, &tenant, &client_id, false).await
            }
            ClientsCommand::Enable { tenant, client_id } => {
                clients::set_enabled(c, &tenant, &client_id, true).await
            }
            ClientsCommand::Remove { tenant, client_id } => {
                clients::remove(c, &tenant, &client_id).await
            }
            ClientsCommand::RotateSecret { tenant, client_id } => {
                clients::rotate_secret(c, &tenant, &client_id).await
            }
            ClientsCommand::InitialToken {
                tenant,
                uses,
                expires,
            } => clients::initial_token(c, &tenant, uses, &expires).await,
        },
        Command::Tenants {
            command: TenantsCommand::List,
        } => tenants::list(c).await,
        Command::Users { command } => match command {
            UsersCommand::HashPassword { password } => users::hash_password(password),
            UsersCommand::HashRate { seconds } => users::hash_rate(c, seconds),
            UsersCommand::Add {
                tenant,
                username,
                subject,
                claims,
                totp_secret,
            } => {
                let new = users::NewUser {
                    tenant,
                    username,
                    subject,
                    claims,
                    totp_secret,
                };
                users::add(c, new).await
            }
            UsersCommand::Remove { tenant, subject } => users::remove(c, &tenant, &subject).await,
        },
        Command::Sessions { command } => match command {
            SessionsCommand::List { tenant, subject } => sessions::list(c, &tenant, &subject).await,
            SessionsCommand::Revoke {
                tenant,
                sid,
                subject,
            } => sessions::revoke(c, &tenant, sid, subject).await,
        },
        Command::Consents { command } => match command {
            ConsentsCommand::Show {
                tenant,
                subject,
                client,
            } => sessions::show_consent(c, &tenant, &subject, &client).await,
            ConsentsCommand::Revoke {
                tenant,
                subject,
                client,
            } => sessions::revoke_consent(c, &tenant, &subject, &client).await,
        },
        Command::Providers { command } => match command {
            ProvidersCommand::Add {
                tenant,
                file,
                replace,
            } => providers::add(c, &tenant, &file, replace).await,
            ProvidersCommand::List { tenant } => providers::list(c, &tenant).await,
            ProvidersCommand::Disable { tenant, id } => {
                providers::set_enabled(c, &tenant, &id, false).await
            }
            ProvidersCommand::Enable { tenant, id } => {
                providers::set_enabled(c, &tenant, &id, true).await
            }
            ProvidersCommand::Remove { tenant, id } => providers::remove(c, &tenant, &id).await,
        },
        Command::SamlSps { command } => match command {
            SamlSpsCommand::Add {
                tenant,
                file,
                replace,
            } => saml_sps::add(c, &tenant, &file, replace).await,
            SamlSpsCommand::List { tenant } => saml_sps::list(c, &tenant).await,
            SamlSpsCommand::Show { tenant, entity_id } => {
                saml_sps::show(c, &tenant, &entity_id).await
            }
            SamlSpsCommand::Disable { tenant, entity_id } => {
                saml_sps::set_enabled(c, &tenant, &entity_id, false).await
            }
            SamlSpsCommand::Enable { tenant, entity_id } => {
                saml_sps::set_enabled(c, &tenant, &entity_id, true).await
            }
            SamlSpsCommand::Remove { tenant, entity_id } => {
                saml_sps::remove(c, &tenant, &entity_id).await
            }
        },
    }
}
