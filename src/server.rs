//! Starting and stopping a node: certificates, state, listeners, background upkeep.

use crate::clock::SharedClock;
use crate::config::ServerConfig;
use crate::frontdoor::ListenerKind;
use crate::frontdoor::listener;
use crate::frontdoor::tls::{self, SniResolver};
use crate::state::AppState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Listeners bound before the node starts (so callers can learn ephemeral ports first).
pub struct Listeners {
    pub main: std::net::TcpListener,
    pub mtls: Option<std::net::TcpListener>,
    pub plain: Option<std::net::TcpListener>,
}

impl Listeners {
    pub fn bind(config: &ServerConfig) -> std::io::Result<Self> {
        let bind = |a: SocketAddr| -> std::io::Result<std::net::TcpListener> {
            let l = std::net::TcpListener::bind(a)?;
            l.set_nonblocking(true)?;
            Ok(l)
        };
        Ok(Self {
            main: bind(config.listen)?,
            mtls: config.mtls_listen.map(bind).transpose()?,
            plain: config.http_listen.map(bind).transpose()?,
        })
    }
}

/// A running node.
pub struct Running {
    pub state: AppState,
    pub main_addr: SocketAddr,
    pub mtls_addr: Option<SocketAddr>,
    pub plain_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Running {
    /// Stops accepting, drains in-flight requests (bounded by the grace period), stops upkeep.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        self.state.store.close().await;
    }
}

/// Makes sure the default certificate exists (generating development certificates if allowed).
pub fn prepare_certificates(config: &ServerConfig) -> Result<Arc<SniResolver>, String> {
    let (cert, key) = (config.server_cert_path(), config.server_key_path());
    if config.file.tls.dev_certs
        && config.file.tls.cert.is_empty()
        && crate::devcerts::ensure(&config.certs_dir(), false)?
    {
        tracing::warn!(dir = %config.certs_dir().display(), "generated development certificates (set tls.dev_certs = false in production)");
    }
    Ok(Arc::new(SniResolver::new(tls::load_certified_key(
        &cert, &key,
    )?)))
}

/// Starts a node on already-bound listeners.
pub async fn start(
    config: ServerConfig,
    clock: SharedClock,
    listeners: Listeners,
) -> Result<Running, String> {
    tls::install_default_provider();
    let resolver = prepare_certificates(&config)?;
    let grace = Duration::from_secs(config.file.server.shutdown_grace_seconds);
    let state = AppState::build(config, clock, Some(resolver.clone()))
        .await
        .map_err(|e| e.to_string())?;
    let router = crate::app(state.clone());
    let (shutdown, rx) = watch::channel(false);
    let mut tasks = JoinSet::new();

    let main_cfg = tls::server_config(resolver.clone(), false).map_err(|e| e.to_string())?;
    let to_tokio = |l: std::net::TcpListener| TcpListener::from_std(l).map_err(|e| e.to_string());
    let main = to_tokio(listeners.main)?;
    let main_addr = main.local_addr().map_err(|e| e.to_string())?;
    tasks.spawn(listener::serve(
        main,
        ListenerKind::Main,
        Some(main_cfg.into()),
        router.clone(),
        rx.clone(),
        grace,
    ));

    let mut mtls_addr = None;
    if let Some(l) = listeners.mtls {
        let cfg = tls::server_config(resolver, true).map_err(|e| e.to_string())?;
        let l = to_tokio(l)?;
        mtls_addr = l.local_addr().ok();
        tasks.spawn(listener::serve(
            l,
            ListenerKind::Mtls,
            Some(cfg.into()),
            router.clone(),
            rx.clone(),
            grace,
        ));
    }
    let mut plain_addr = None;
    if let Some(l) = listeners.plain {
        let l = to_tokio(l)?;
        plain_addr = l.local_addr().ok();
        tasks.spawn(listener::serve(
            l,
            ListenerKind::Plain,
            None,
            router,
            rx.clone(),
            grace,
        ));
    }
    tasks.spawn(crate::registry::sync::run_background(state.clone(), rx));
    Ok(Running {
        state,
        main_addr,
        mtls_addr,
        plain_addr,
        shutdown,
        tasks,
    })
}

/// Waits for SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
