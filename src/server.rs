//! Starting and stopping a node: certificates, state, listeners, background upkeep.

use crate::clock::SharedClock;
use crate::config::ServerConfig;
use crate::frontdoor::connections::Connections;
use crate::frontdoor::listener;
use crate::frontdoor::tls::{self, SniResolver};
use crate::request::ListenerKind;
use crate::state::AppState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Listening sockets, bound before the node starts (so callers can learn ephemeral ports first).
///
/// Each address is bound once per serving thread with `SO_REUSEPORT`, and the kernel spreads new
/// connections over the threads. Every serving thread runs its own single-threaded runtime: a
/// connection lives on one thread from accept to close, with no cross-thread wake-ups or work
/// stealing on the hot path (bench/run: about 40% more tokens per second than one shared
/// multi-threaded runtime on the same two cores).
pub struct Listeners {
    main: Vec<std::net::TcpListener>,
    mtls: Vec<std::net::TcpListener>,
    plain: Vec<std::net::TcpListener>,
    pub main_addr: SocketAddr,
    pub mtls_addr: Option<SocketAddr>,
    pub plain_addr: Option<SocketAddr>,
}

impl Listeners {
    /// Binds the configured addresses for `server.worker_threads` serving threads.
    pub fn bind(config: &ServerConfig) -> std::io::Result<Self> {
        Self::bind_addrs(
            config.server.listen,
            config.server.mtls_listen,
            config.server.http_listen,
            serving_threads(config),
        )
    }

    /// Binds the given addresses (port 0 picks a free port, the same for every thread).
    pub fn bind_addrs(
        main: SocketAddr,
        mtls: Option<SocketAddr>,
        plain: Option<SocketAddr>,
        threads: usize,
    ) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let (main, main_addr) = bind_group(main, threads)?;
        let (mtls, mtls_addr) = match mtls {
            Some(a) => bind_group(a, threads).map(|(v, a)| (v, Some(a)))?,
            None => (Vec::new(), None),
        };
        let (plain, plain_addr) = match plain {
            Some(a) => bind_group(a, threads).map(|(v, a)| (v, Some(a)))?,
            None => (Vec::new(), None),
        };
        Ok(Self {
            main,
            mtls,
            plain,
            main_addr,
            mtls_addr,
            plain_addr,
        })
    }
}

/// How many serving threads: `server.worker_threads`, or one per CPU core.
pub fn serving_threads(config: &ServerConfig) -> usize {
    match config.server.worker_threads {
        None => std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1),
        Some(n) => n,
    }
}

fn bind_group(
    addr: SocketAddr,
    n: usize,
) -> std::io::Result<(Vec<std::net::TcpListener>, SocketAddr)> {
    // SO_REUSEPORT would let a second server share the port silently (and split the traffic,
    // and with it in-memory state such as replay caches). A plain bind first makes an occupied
    // port an error, as a user expects.
    if addr.port() != 0 {
        drop(probe_listener(addr).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on {addr}: {e} (is another server running?)"),
            )
        })?);
    }
    let first = reuse_port_listener(addr)?;
    let actual = first.local_addr()?;
    let mut group = vec![first];
    // Without SO_REUSEPORT (non-Unix) a single socket serves every thread.
    if cfg!(unix) {
        for _ in 1..n {
            group.push(reuse_port_listener(actual)?);
        }
    }
    Ok((group, actual))
}

fn probe_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1)?;
    Ok(socket.into())
}

fn reuse_port_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// A running node.
pub struct Running {
    pub state: AppState,
    pub main_addr: SocketAddr,
    pub mtls_addr: Option<SocketAddr>,
    pub plain_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    background: JoinSet<()>,
    serving: Vec<std::thread::JoinHandle<()>>,
    /// The audit sinks, closed (every queued event written) after everything else stopped.
    audit: Option<crate::audit::Audit>,
}

impl Running {
    /// Stops accepting, drains in-flight requests (bounded by the grace period), stops upkeep.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.background.join_next().await.is_some() {}
        let serving = std::mem::take(&mut self.serving);
        let _ = tokio::task::spawn_blocking(move || {
            for t in serving {
                let _ = t.join();
            }
        })
        .await;
        self.state.store.close().await;
        if let Some(audit) = self.audit.take() {
            let _ = tokio::task::spawn_blocking(move || drop(audit)).await;
        }
    }
}

/// Makes sure the default certificate exists (generating development certificates if allowed).
pub fn prepare_certificates(config: &ServerConfig) -> Result<Arc<SniResolver>, String> {
    let (tls, certs_dir) = (&config.tls, &config.paths.certs_dir);
    if tls.dev_certs && tls.default_cert && crate::devcerts::ensure(certs_dir, false)? {
        tracing::warn!(dir = %certs_dir.display(), "generated development certificates (set tls.dev_certs = false in production)");
    }
    if tls.dev_certs && crate::devcerts::ensure_demo_jwt_key(certs_dir, false)? {
        tracing::warn!(dir = %certs_dir.display(), "generated the demo client key acme-jwt-key.pem");
    }
    if tls.dev_certs && crate::devcerts::ensure_demo_workload_key(certs_dir, false)? {
        tracing::warn!(dir = %certs_dir.display(), "generated the demo workload key demo-workload-key.pem");
    }
    Ok(Arc::new(SniResolver::new(tls::load_certified_key(
        &config.tls.cert,
        &config.tls.key,
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
    let grace = config.server.shutdown_grace;
    let state = AppState::build(config, clock, Some(resolver.clone()))
        .await
        .map_err(|e| e.to_string())?;
    // The tenant files are read, checked and stored before the first request is served.
    crate::registry::sync::reload_files(&state)
        .await
        .map_err(|e| e.to_string())?;
    let router = crate::app(state.clone());
    state.connections.warn_if_above_file_limit();
    let (shutdown, rx) = watch::channel(false);
    let main_cfg = tls::server_config(resolver.clone(), false).map_err(|e| e.to_string())?;
    let mtls_cfg = tls::server_config(resolver, true).map_err(|e| e.to_string())?;
    let Listeners {
        mut main,
        mut mtls,
        mut plain,
        main_addr,
        mtls_addr,
        plain_addr,
    } = listeners;
    let mut serving = Vec::with_capacity(main.len());
    for i in 0..main.len() {
        let sockets = [
            (main.pop(), ListenerKind::Main, Some(main_cfg.clone())),
            (mtls.pop(), ListenerKind::Mtls, Some(mtls_cfg.clone())),
            (plain.pop(), ListenerKind::Plain, None),
        ];
        let (router, rx) = (router.clone(), rx.clone());
        let connections = state.connections.clone();
        let thread = std::thread::Builder::new()
            .name(format!("portcullis-serve-{i}"))
            .spawn(move || serve_thread(sockets, router, rx, grace, connections))
            .map_err(|e| format!("cannot start a serving thread: {e}"))?;
        serving.push(thread);
    }
    let audit = crate::audit::open(&state.config)?;
    let mut background = JoinSet::new();
    background.spawn(crate::registry::sync::run_background(
        state.clone(),
        rx.clone(),
    ));
    background.spawn(crate::audit::deliver(state.clone(), rx));
    Ok(Running {
        state,
        main_addr,
        mtls_addr,
        plain_addr,
        shutdown,
        background,
        serving,
        audit,
    })
}

type Socket = (
    Option<std::net::TcpListener>,
    ListenerKind,
    Option<Arc<rustls::ServerConfig>>,
);

/// One serving thread: a single-threaded runtime accepting on its own sockets. `connections` is
/// the node's, shared with the other threads, so its limits hold for the whole process.
fn serve_thread(
    sockets: [Socket; 3],
    router: axum::Router,
    rx: watch::Receiver<bool>,
    grace: Duration,
    connections: Arc<Connections>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start a serving runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let mut loops = JoinSet::new();
        for (socket, kind, tls) in sockets {
            let Some(socket) = socket else { continue };
            match TcpListener::from_std(socket) {
                Ok(l) => {
                    loops.spawn(listener::serve(
                        l,
                        kind,
                        tls.map(Into::into),
                        router.clone(),
                        rx.clone(),
                        grace,
                        connections.clone(),
                    ));
                }
                Err(e) => tracing::error!(error = %e, listener = ?kind, "cannot listen"),
            }
        }
        while loops.join_next().await.is_some() {}
    });
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
