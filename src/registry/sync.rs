//! Keeping the registry in step with the files (the declarative source) and the database (shared
//! with other nodes): files are validated and upserted; the registry is rebuilt from the database.

use super::{Tenant, discovery};
use crate::config::ConfigError;
use crate::config::tenant::{self, TenantDefaults};
use crate::error::InternalError;
use crate::keys::ring;
use crate::state::AppState;
use crate::stores::ChangeNotice;
use crate::stores::TenantRow;
use crate::stores::TenantStore;
use crate::stores::cache::CachingClientStore;
use crate::stores::upkeep::{ChangeSource, Heard};
use aws_lc_rs::digest;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub const FILE_SOURCE: &str = "file";

/// Makes the next scan reload the provider files even if they did not change (SIGHUP: the key
/// or metadata files they name may have).
pub async fn forget_provider_files(state: &AppState) {
    state.reload.lock().await.providers = None;
}

/// A digest of every `providers/*.toml` (names and contents).
fn providers_digest(dir: &std::path::Path) -> Vec<u8> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let Ok(paths) = tenant::toml_files(dir) else {
        // Reported by `load_files`, which keeps the running providers.
        ctx.update(b"\0unreadable directory");
        return ctx.finish().as_ref().to_vec();
    };
    for path in paths {
        ctx.update(path.as_os_str().as_encoded_bytes());
        ctx.update(&[0]);
        match std::fs::read(&path) {
            Ok(bytes) => ctx.update(&bytes),
            Err(_) => ctx.update(b"\0unreadable"),
        }
        ctx.update(&[0]);
    }
    ctx.finish().as_ref().to_vec()
}

/// The outcome of one reload, for logs, the CLI and tests.
#[derive(Debug, Default)]
pub struct ReloadReport {
    pub applied: Vec<String>,
    pub removed: Vec<String>,
    pub rejected: Vec<ConfigError>,
    /// Provider files that could not be used (the rest load).
    pub provider_errors: Vec<String>,
}

/// Reads every tenant file; valid changed files are upserted, invalid ones are reported and
/// leave the running tenant untouched. A file deleted while running removes its tenant; a file
/// (or the directory) that cannot be read right now (too many open files, no permission, ...)
/// is not a deleted one and leaves its tenant untouched too.
pub async fn reload_files(state: &AppState) -> Result<ReloadReport, InternalError> {
    let mut files = state.reload.lock().await;
    let mut report = ReloadReport::default();
    let dir = state.config.paths.tenants_dir.clone();
    let files_allowed = state.config.file_roots();
    let defaults = TenantDefaults {
        public_base_url: &state.config.server.public_base_url,
        mtls_base_url: &state.config.server.mtls_base_url,
        files: &files_allowed,
    };
    let paths = match tenant::toml_files(&dir) {
        Ok(paths) => Some(paths),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot read the tenants directory: every tenant stays as it is");
            None
        }
    };
    let mut now_seen = HashMap::new();
    let mut claimed: HashMap<String, String> = HashMap::new();
    let scan_started = crate::clock::SystemClock::file_time();
    // The first scan (at start) writes only the tenants whose files differ from the store.
    let stored = if files.scanned {
        HashMap::new()
    } else {
        state.store.stored_tenants(FILE_SOURCE).await?
    };
    for path in paths.iter().flatten() {
        let stat = std::fs::metadata(path)
            .ok()
            .and_then(|m| super::files::Stat::of(&m));
        if let (Some(previous), Some(stat)) = (files.seen.get(path), stat)
            && previous.unchanged(stat)
        {
            now_seen.insert(path.clone(), previous.clone());
            continue;
        }
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            // Deleted since the directory was listed: removed below like any deleted file.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                // A file that cannot be read right now is not a deleted file: keep what it was.
                tracing::warn!(file = %path.display(), error = %e, "cannot read tenant file: the tenant stays as it is");
                if let Some(previous) = files.seen.get(path) {
                    now_seen.insert(path.clone(), previous.clone());
                }
                continue;
            }
        };
        let digest = digest::digest(&digest::SHA256, text.as_bytes())
            .as_ref()
            .to_vec();
        let unchanged = files.seen.get(path).is_some_and(|p| p.digest == digest);
        now_seen.insert(
            path.clone(),
            super::files::Seen {
                digest,
                stat: stat.map(|s| (s, scan_started)),
            },
        );
        if unchanged {
            continue;
        }
        let resolved =
            match tenant::resolve_in_directory(path, &text, &defaults, &mut claimed, &|host| {
                state.registry.slug_for_host(host)
            }) {
                // SPs with a metadata_url: their metadata must be had and usable now.
                Ok((spec, clients)) => {
                    let problems =
                        crate::saml::check_file_metadata(state, path, &text, &spec).await;
                    if problems.is_empty() {
                        Ok((spec, clients))
                    } else {
                        Err(problems)
                    }
                }
                Err(e) => Err(e),
            };
        match resolved {
            Ok((spec, clients)) => {
                let same = stored
                    .get(&spec.slug)
                    .is_some_and(|t| t.is(&spec, &clients));
                let changed = !same
                    && state
                        .store
                        .upsert_tenant(&spec, &clients, FILE_SOURCE, state.now())
                        .await?;
                if changed {
                    crate::events::tenant_loaded(&spec.slug, &path.display().to_string());
                }
                report.applied.push(spec.slug);
            }
            Err(errors) => {
                crate::events::config_rejected(&path.display().to_string(), errors.len());
                for e in &errors {
                    tracing::error!("{e}");
                }
                report.rejected.extend(errors);
            }
        }
    }
    if paths.is_none() {
        // Nothing was read: nothing is known to be gone.
        now_seen = std::mem::take(&mut files.seen);
    } else if files.scanned {
        for gone in files.seen.keys().filter(|p| !now_seen.contains_key(*p)) {
            let Some(slug) = gone.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if let Some(row) = state.store.find_tenant(slug).await?
                && row.source == FILE_SOURCE
            {
                state.store.delete_tenant(slug).await?;
                tracing::warn!(tenant = slug, file = %gone.display(), "tenant file removed: tenant removed");
                report.removed.push(slug.to_string());
            }
        }
    }
    files.seen = now_seen;
    files.scanned = true;
    // Provider files are loaded again only when one of them changed (or after SIGHUP).
    let providers_dir = state.config.paths.providers_dir.clone();
    let digest = providers_digest(&providers_dir);
    if files.providers.as_ref() != Some(&digest) {
        let loaded = crate::federation::load_files(
            &providers_dir,
            &state.federation.files.load(),
            &files_allowed,
            &state.config.server.public_base_url,
            state.config.tls.dev_certs,
            state.outbound.policy(),
        );
        for e in &loaded.errors {
            tracing::error!("provider file rejected: {e}");
        }
        report.provider_errors = loaded.errors;
        state.federation.files.store(Arc::new(loaded.providers));
        files.providers = Some(digest);
    }
    drop(files);
    refresh(state).await?;
    Ok(report)
}

/// Rebuilds every tenant whose database version changed, and brings the keys of every tenant
/// up to date whose key set the clock or the store changed (rotation; keys another node or the
/// CLI made). Runs at start, after reloads, on change notices and every
/// `reload.sync_interval_seconds`: with nothing changed it costs two queries, whatever the
/// number of tenants.
pub async fn refresh(state: &AppState) -> Result<(), InternalError> {
    use crate::stores::KeyStore;
    let _serial = state.refresh_lock.lock().await;
    let versions = state.store.tenant_versions().await?;
    let stamps = state.store.key_stamps().await?;
    let now = state.now();
    let mut tenants = Vec::with_capacity(versions.len());
    let mut changed = false;
    for (slug, version) in &versions {
        let previous = state.registry.get(slug);
        let stored_keys = stamps.get(slug).copied().unwrap_or_default();
        match previous {
            Some(t) if t.version == *version => {
                if t.keys.load().stale(stored_keys, now) {
                    sync_keys(state, &t).await?;
                }
                tenants.push(t);
            }
            _ => {
                let Some(row) = state.store.find_tenant(slug).await? else {
                    continue;
                };
                let t = Arc::new(build_tenant(state, row, previous.as_deref()));
                sync_keys(state, &t).await?;
                tenants.push(t);
                changed = true;
            }
        }
    }
    if changed || tenants.len() != state.registry.len() {
        if let Some(tls) = &state.tls {
            tls.set_tenant_certs(&state.config, &tenants);
        }
        state.registry.replace(tenants);
    }
    Ok(())
}

/// Creates successor keys and retires old ones as the clock says; swaps in the new key set.
pub async fn sync_keys(state: &AppState, t: &Tenant) -> Result<(), InternalError> {
    // Not while `signing_keys` makes a first key: a set listed before it could replace its.
    let _one = t.keys.making.lock().await;
    let all = false;
    t.keys.store(make_keys(state, t, all).await?);
    Ok(())
}

/// The tenant's keys, every one it signs with made: what a JWK Set, a signature or SAML
/// metadata is made from. A first RSA key is made here, on first need, once per tenant and
/// node (another node may make it at the same moment: one insert wins, both use it). Once
/// made, every later set of this node has it: a caller may make sure of the keys here and
/// load them later.
pub async fn signing_keys(
    state: &AppState,
    t: &Tenant,
) -> Result<arc_swap::Guard<Arc<ring::KeySet>>, InternalError> {
    let keys = t.keys.load();
    if keys.complete() {
        return Ok(keys);
    }
    drop(keys);
    let _one = t.keys.making.lock().await;
    let keys = t.keys.load();
    if keys.complete() {
        return Ok(keys);
    }
    drop(keys);
    let all = true;
    t.keys.store(make_keys(state, t, all).await?);
    Ok(t.keys.load())
}

/// The tenant's keys with a signing key for `alg`: [`signing_keys`] only if that key is a
/// first RSA key not made yet (an ES256 token needs no RSA key made first).
pub async fn keys_to_sign(
    state: &AppState,
    t: &Tenant,
    alg: crate::keys::Alg,
) -> Result<arc_swap::Guard<Arc<ring::KeySet>>, InternalError> {
    let keys = t.keys.load();
    if keys.complete() || keys.signer(alg).is_some() {
        return Ok(keys);
    }
    drop(keys);
    signing_keys(state, t).await
}

async fn make_keys(state: &AppState, t: &Tenant, all: bool) -> Result<ring::KeySet, InternalError> {
    let env = ring::KeyEnv {
        store: &state.store,
        master: &state.master,
        policy: &state.key_policy,
    };
    ring::sync_tenant(
        env,
        t.slug(),
        &t.spec.tokens.signing_algorithms,
        state.now(),
        all,
    )
    .await
}

fn build_tenant(state: &AppState, row: TenantRow, previous: Option<&Tenant>) -> Tenant {
    let spec = row.spec;
    let metrics = {
        let mut m = state
            .metrics_by_slug
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        m.entry(spec.slug.clone()).or_default().clone()
    };
    let mut audiences_by_scope: HashMap<String, Vec<String>> = HashMap::new();
    for r in &spec.api_resources {
        for s in &r.scopes {
            audiences_by_scope
                .entry(s.clone())
                .or_default()
                .push(r.name.clone());
        }
    }
    let cache = &state.config.cache;
    let pages = crate::ui::Pages::new(&spec.branding).unwrap_or_else(|e| {
        // The files were checked when loaded; if the templates changed since, serve defaults.
        tracing::error!(tenant = %spec.slug, error = %e, "tenant templates unusable; using the defaults");
        let mut plain = spec.branding.clone();
        plain.templates_dir = None;
        crate::ui::Pages::new(&plain).unwrap_or_else(|_| crate::ui::Pages::fallback())
    });
    let mut mtls_anchors = Vec::new();
    for path in &spec.mtls_trust_anchors {
        use rustls::pki_types::pem::PemObject;
        match rustls::pki_types::CertificateDer::pem_file_iter(path) {
            Ok(certs) => mtls_anchors.extend(certs.flatten()),
            Err(e) => {
                tracing::error!(tenant = %spec.slug, file = %path.display(), error = %e, "cannot read an mTLS trust anchor")
            }
        }
    }
    Tenant {
        mtls_anchors,
        pages: Arc::new(pages),
        discovery: Bytes::from(
            discovery::document(&spec, state.config.server.mtls_listen.is_some()).to_string(),
        ),
        token_endpoint: format!("{}{}", spec.issuer, discovery::TOKEN_PATH),
        default_audience: format!("{}/resources", spec.issuer),
        keys: previous.map(|p| p.keys.clone()).unwrap_or_default(),
        clients: CachingClientStore::new(
            super::clients::TenantClients::new(
                state.store.clone(),
                &spec,
                &state.metadata_documents,
                state.clock.clone(),
            ),
            cache.client_capacity,
            cache.client_ttl,
        ),
        metrics,
        audiences_by_scope,
        version: row.version,
        spec,
    }
}

/// Background upkeep: file watching, SIGHUP, multi-node sync, and the sweep of expired rows
/// (a task of its own). Ends when `shutdown` fires.
pub async fn run_background(state: AppState, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let sweeper = tokio::spawn(run_cleanup(state.clone(), shutdown.clone()));
    let watch = state.config.reload.watch_interval;
    let mut watch_tick = tokio::time::interval(watch.unwrap_or(Duration::from_secs(1)));
    // The first full sync ran at start, after subscribing to change notices: the next is one
    // interval away.
    let sync_period = state.config.reload.sync_interval;
    let mut sync_tick =
        tokio::time::interval_at(tokio::time::Instant::now() + sync_period, sync_period);
    watch_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    sync_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    // On PostgreSQL, other nodes announce changes at once (LISTEN/NOTIFY, or rows of the change
    // table polled every `database.change_poll_interval_ms`); the periodic sync stays as the safety net
    // for a lost notification or connection. The subscription was made before the first sync
    // (`AppState::build`); one that failed or broke is made again here.
    let mut changes = state.changes.lock().await.take();
    let postgres = matches!(state.store, crate::stores::Store::Postgres(..));
    let mut resubscribe_tick = tokio::time::interval(Duration::from_secs(1));
    resubscribe_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Tenant notices come in bursts (a node that starts announces every tenant and key it
    // makes): the first is applied at once, those that follow within TENANT_NOTICE_DELAY
    // by one refresh at its end.
    let mut tenant_refresh: Option<tokio::time::Instant> = None;
    let mut last_tenant_refresh: Option<tokio::time::Instant> = None;
    loop {
        let subscribed = changes.is_some();
        let heard = async {
            match changes.as_mut() {
                Some(source) => source.next(&state.store).await,
                None => std::future::pending().await,
            }
        };
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<Option<()>>();
        let subscription = tokio::select! {
            _ = shutdown.changed() => break,
            _ = watch_tick.tick(), if watch.is_some() => {
                log_reload(reload_files(&state).await);
                Subscription::Unchanged
            }
            _ = hangup => {
                tracing::info!("SIGHUP: reloading configuration");
                forget_provider_files(&state).await;
                log_reload(reload_files(&state).await);
                Subscription::Unchanged
            }
            h = heard => match h {
                Heard::Notices(notices) => {
                    let mut tenants = false;
                    for n in notices {
                        tenants |= apply_notice(&state, n).await;
                    }
                    if tenants {
                        let now = tokio::time::Instant::now();
                        match last_tenant_refresh {
                            Some(last) if now < last + TENANT_NOTICE_DELAY => {
                                tenant_refresh.get_or_insert(last + TENANT_NOTICE_DELAY);
                            }
                            _ => {
                                last_tenant_refresh = Some(now);
                                if let Err(e) = refresh(&state).await {
                                    tracing::error!(error = %e, "sync with the database failed");
                                }
                            }
                        }
                    }
                    Subscription::Unchanged
                }
                Heard::Interrupted => {
                    // Whatever was announced while the listener reconnected is lost, so sync
                    // everything.
                    tracing::warn!("change notifications interrupted; subscribed again");
                    resync(&state).await;
                    Subscription::Unchanged
                }
                Heard::Lost(e) => {
                    tracing::warn!(error = %e, "change notifications lost; not ready until subscribed again");
                    Subscription::Lost
                }
            },
            _ = resubscribe_tick.tick(), if postgres && !subscribed => {
                match state.store.subscribe().await {
                    Some(source) => Subscription::Made(source),
                    None => Subscription::Unchanged,
                }
            }
            _ = tokio::time::sleep_until(tenant_refresh.unwrap_or_else(tokio::time::Instant::now)),
                if tenant_refresh.is_some() =>
            {
                tenant_refresh = None;
                last_tenant_refresh = Some(tokio::time::Instant::now());
                if let Err(e) = refresh(&state).await {
                    tracing::error!(error = %e, "sync with the database failed");
                }
                Subscription::Unchanged
            }
            _ = sync_tick.tick() => {
                if let Err(e) = refresh(&state).await {
                    tracing::error!(error = %e, "sync with the database failed");
                }
                Subscription::Unchanged
            }
        };
        match subscription {
            Subscription::Unchanged => {}
            Subscription::Lost => {
                state.hears_changes.store(false, Ordering::Release);
                changes = None;
            }
            Subscription::Made(source) => {
                // Subscribed first, synced second: nothing announced meanwhile is missed.
                changes = Some(source);
                resync(&state).await;
                state.hears_changes.store(true, Ordering::Release);
                tracing::info!("hearing change notices again");
            }
        }
    }
    let _ = sweeper.await;
}

/// The sweep of expired rows, every `cleanup.interval_seconds` (one node at a time on
/// PostgreSQL); a task of its own, so that a long backlog never delays change notices.
async fn run_cleanup(state: AppState, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let Some(every) = state.config.cleanup.interval else {
        return;
    };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
        }
        let sweep = state
            .store
            .sweep(state.now(), state.config.cleanup.batch_size);
        tokio::select! {
            _ = shutdown.changed() => return,
            r = sweep => match r {
                Ok(Some(swept)) if swept.total() > 0 => {
                    tracing::info!(rows = swept.total(), detail = ?swept.0, "expired rows swept");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sweeping expired rows failed"),
            }
        }
    }
}

/// What one turn of the background loop did to the change subscription.
enum Subscription {
    Unchanged,
    Lost,
    Made(ChangeSource),
}

/// How long tenant notices that follow one another closely are gathered into one refresh.
const TENANT_NOTICE_DELAY: Duration = Duration::from_millis(100);

/// Applies one change notice from another node; true for a tenant notice, which the caller
/// answers with a [`refresh`] (one for a burst of them).
async fn apply_notice(state: &AppState, notice: ChangeNotice) -> bool {
    match notice {
        ChangeNotice::Provider { tenant, id } => state.federation.forget(&tenant, &id).await,
        ChangeNotice::SamlSp { tenant, entity_id } => {
            state.service_providers.forget(&tenant, &entity_id).await
        }
        ChangeNotice::Revoked { tenant, key } => state.grants.forget(&tenant, &key),
        ChangeNotice::Client { tenant, client_id } => {
            forget_client(state, &tenant, &client_id).await
        }
        ChangeNotice::Tenant(slug) => {
            tracing::debug!(tenant = %slug, "change announced by a node");
            return true;
        }
    }
    false
}

/// Forgets a runtime client that changed (here or on another node), and every cached grant
/// issued to it (a removed client's tokens end at once).
pub async fn forget_client(state: &AppState, tenant: &str, client_id: &str) {
    if let Some(t) = state.registry.get(tenant) {
        t.clients.invalidate(client_id).await;
    }
    state.grants.forget_client(tenant, client_id);
}

/// Catches up after notices may have been missed: tenants from the database, and no cached
/// grant that a missed revocation could have ended, nor runtime provider a missed change did.
async fn resync(state: &AppState) {
    state.grants.forget_all();
    state.federation.forget_all();
    state.service_providers.forget_all();
    for t in state.registry.all() {
        t.clients.invalidate_all();
    }
    if let Err(e) = refresh(state).await {
        tracing::error!(error = %e, "sync with the database failed");
    }
}

fn log_reload(r: Result<ReloadReport, InternalError>) {
    match r {
        Ok(report) => {
            if !report.applied.is_empty() {
                tracing::info!(tenants = ?report.applied, "tenant files applied");
            }
        }
        Err(e) => tracing::error!(error = %e, "reloading tenant files failed"),
    }
}
