//! The bodies of the `portcullis` commands; `main.rs` parses the arguments and calls these.
//! A layer below the HTTP endpoints: nothing here uses them (tests/it/architecture.rs).

pub mod cleanup;
pub mod clients;
pub mod keys;
pub mod providers;
pub mod saml_sps;
pub mod serve;
pub mod sessions;
pub mod tenants;
pub mod users;
pub mod workload;

use crate::config::ServerConfig;
use crate::config::runtime::LogFormat;
use crate::keys::MasterKey;
use crate::stores::Store;

/// Logs go to standard error (command output stays on standard out), written by a background
/// thread so that serving threads never wait on the terminal or a log pipe. Nothing is dropped:
/// when the queue is full, the writer waits. Keep the guard alive until exit (it flushes).
/// What keeps the log and the trace exporter running; dropping it flushes both.
pub struct Logging {
    _log: tracing_appender::non_blocking::WorkerGuard,
    _telemetry: Option<crate::telemetry::Telemetry>,
}

pub fn init_logging(config: &ServerConfig) -> Logging {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(64 * 1024)
        .finish(std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(true)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    // The log's level filters the log only: the audit trail ([audit]) takes every security
    // event, whatever the log keeps.
    let log = if config.log.format == LogFormat::Json {
        fmt.json().flatten_event(true).with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    // Traces, when a collector is configured (before any runtime starts: the exporter's
    // client is a blocking one). A configuration that cannot start it is reported, not fatal.
    let telemetry = match crate::telemetry::Telemetry::start(&config.telemetry) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("warning: traces are off: {e}");
            None
        }
    };
    tracing_subscriber::registry()
        .with(log)
        .with(crate::audit::layer())
        .with(telemetry.as_ref().map(|t| t.layer()))
        .init();
    Logging {
        _log: guard,
        _telemetry: telemetry,
    }
}

/// The database and master key this configuration names (for commands run beside a node).
pub(crate) async fn open_store(config: &ServerConfig) -> Result<(Store, MasterKey), String> {
    let database = crate::config::runtime::Database {
        max_connections: 2,
        ..config.database.clone()
    };
    let store = Store::connect(&database).await.map_err(|e| e.to_string())?;
    let master = MasterKey::from_config(config).map_err(|e| e.to_string())?;
    Ok((store, master))
}

/// The argument, or a line read from standard input.
pub(crate) fn read_line_or(arg: Option<String>) -> Result<String, String> {
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
