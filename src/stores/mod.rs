//! Persistence: sqlx on SQLite (embedded default) or PostgreSQL (shared by several nodes).
//!
//! One SQL text serves both engines (`$n` placeholders, `ON CONFLICT` upserts, integer times);
//! [`on_pool!`] compiles each query once per engine. Every method is scoped to one tenant.

pub mod cache;
mod changes;
pub mod replay;

pub use interactive::{
    BucketLimit, ConsentStore, LoginThrottleStore, SessionRecord, SessionStore, Slot,
    StoredConsent, UserStore,
};

use crate::config::Client;
use crate::config::runtime::{ChangeNotices, Database};
use crate::config::{ClientSpec, TenantSpec};
use crate::error::InternalError;
use crate::keys::{Alg, KeyRecord, KeyStamp};
use sqlx::Connection as _;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePools),
    /// The pool, and how this node announces changes to the others.
    Postgres(PgPool, ChangeNotices),
}

/// SQLite allows one writer at a time. Writers that meet a busy database sleep in SQLite's busy
/// handler (milliseconds at a time), so every write goes through one connection behind an async
/// mutex and waits its turn there (a mutex hand-over is cheaper than a pool's return path);
/// reads use a pool of their own (WAL: they never wait for the writer).
#[derive(Clone, Debug)]
pub struct SqlitePools {
    read: SqlitePool,
    write: std::sync::Arc<tokio::sync::Mutex<sqlx::SqliteConnection>>,
}

/// Runs a read with `$p` bound to whichever pool the store has.
macro_rules! on_pool {
    ($store:expr, |$p:ident| $body:expr) => {
        match $store {
            Store::Sqlite(pools) => {
                let $p = &pools.read;
                $body
            }
            Store::Postgres($p, _) => $body,
        }
    };
}

/// Runs a write (or a transaction that writes) with `$p` bound to the store's write pool.
macro_rules! on_write {
    ($store:expr, |$p:ident| $body:expr) => {
        match $store {
            Store::Sqlite(pools) => {
                let mut guard = pools.write.lock().await;
                let $p = &mut *guard;
                $body
            }
            Store::Postgres($p, _) => $body,
        }
    };
}

mod clients;
mod federation;
mod interactive;
mod saml_sps;
pub mod upkeep;

pub use changes::{CHANGES_CHANNEL, ChangeNotice};
pub use clients::{Insert, RUNTIME_SOURCE, RuntimeClientStore};
pub use federation::{FederationStore, ProviderRow, ProviderWrite};
use interactive::{SESSION_SELECT, SessionRow, session_from_row};
pub use saml_sps::{SamlSpRow, SamlSpStore};

/// A tenant row: its spec and a version that grows with every change (to it or its clients).
#[derive(Debug, Clone)]
pub struct TenantRow {
    pub spec: TenantSpec,
    pub version: i64,
    pub source: String,
}

/// What a grant row holds (`grants.kind`). Written and read only through this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantKind {
    /// A sign-in in progress (the authorization request waiting for login and consent).
    Interaction,
    /// RFC 9126: a pushed authorization request.
    Par,
    /// An RP-initiated logout waiting for the user's confirmation.
    Logout,
    /// The marker that an authorization code was redeemed (RFC 6749 §4.1.2: once only).
    CodeUsed,
    /// A JWT access token's `jti`, kept so that it can be revoked.
    AccessToken,
    /// An opaque access token (RFC 7662 introspection answers for it).
    ReferenceToken,
    RefreshToken,
    /// RFC 7523 §3: a client assertion's `jti`, single use.
    AssertionJti,
    /// RFC 6238 §5.2: a one-time code's time step, single use per user.
    TotpStep,
    /// Any other single-use value (DPoP proofs, upstream logout tokens).
    SingleUse,
    /// A sign-in sent to an upstream provider and not yet back.
    UpstreamState,
    /// A logout sent to an upstream provider and not yet back.
    UpstreamLogout,
    /// An upstream's answer waiting for the browser to come back for it.
    UpstreamResult,
    /// RFC 8628: a device authorization, pending until the user approves or denies it, then
    /// redeemed once (by the hash of its device code).
    DeviceCode,
    /// RFC 8628 §6.1: a user code, single use, naming its device authorization (by the keyed
    /// hash of the code).
    UserCode,
    /// CIBA Core §7: a backchannel authentication request, pending until the user decides,
    /// then redeemed once (by the hash of its `auth_req_id`; its subject is the user asked).
    BackchannelAuth,
    /// RFC 7591 §3: an initial access token for client registration, good for a number of
    /// registrations (its data counts the uses left).
    InitialAccessToken,
}

impl GrantKind {
    pub const ALL: [GrantKind; 17] = [
        Self::Interaction,
        Self::Par,
        Self::Logout,
        Self::CodeUsed,
        Self::AccessToken,
        Self::ReferenceToken,
        Self::RefreshToken,
        Self::AssertionJti,
        Self::TotpStep,
        Self::SingleUse,
        Self::UpstreamState,
        Self::UpstreamLogout,
        Self::UpstreamResult,
        Self::DeviceCode,
        Self::UserCode,
        Self::BackchannelAuth,
        Self::InitialAccessToken,
    ];

    /// The stored name (the values of `grants.kind`; never change one without a migration).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interaction => "interaction",
            Self::Par => "par",
            Self::Logout => "logout",
            Self::CodeUsed => "code_used",
            Self::AccessToken => "access_token",
            Self::ReferenceToken => "reference_token",
            Self::RefreshToken => "refresh_token",
            Self::AssertionJti => "assertion_jti",
            Self::TotpStep => "totp_step",
            Self::SingleUse => "single_use",
            Self::UpstreamState => "upstream_state",
            Self::UpstreamLogout => "upstream_logout",
            Self::UpstreamResult => "upstream_result",
            Self::DeviceCode => "device_code",
            Self::UserCode => "user_code",
            Self::BackchannelAuth => "backchannel_auth",
            Self::InitialAccessToken => "initial_access_token",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == stored)
    }
}

/// A persisted grant: reference tokens, authorization codes, refresh tokens, pending
/// interactions, pushed authorization requests, logout requests. Stored by handle hash only.
#[derive(Clone)]
pub struct GrantRecord {
    pub handle_hash: String,
    pub kind: GrantKind,
    pub client_id: String,
    pub subject: Option<String>,
    pub data: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
    /// Grants of one family are revoked together (RFC 6749 §4.1.2, RFC 9700 §4.14.2).
    pub family: Option<String>,
    pub session_id: Option<String>,
    pub revoked_at: Option<i64>,
}

/// What happened when a single-use grant was presented.
#[derive(Debug)]
pub enum Consumed {
    /// First use: the grant is now consumed (and anything asked for was inserted with it).
    Fresh(GrantRecord),
    /// Already consumed before: a replay.
    Replayed(GrantRecord),
    /// Revoked or expired.
    Dead,
    NotFound,
}

impl GrantRecord {
    /// A record of `kind` with every other field empty, to be filled in with struct-update
    /// syntax: `GrantRecord { handle_hash, ..GrantRecord::of(GrantKind::Par) }`.
    pub fn of(kind: GrantKind) -> Self {
        Self {
            handle_hash: String::new(),
            kind,
            client_id: String::new(),
            subject: None,
            data: String::new(),
            created_at: 0,
            expires_at: 0,
            consumed_at: None,
            family: None,
            session_id: None,
            revoked_at: None,
        }
    }
}

impl std::fmt::Debug for GrantRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantRecord")
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Tenants as stored (the registry builds runtime tenants from these rows).
pub trait TenantStore {
    /// Writes a tenant and its complete client list in one transaction; clients from the same
    /// source that are no longer listed are removed. Returns true if anything changed.
    fn upsert_tenant(
        &self,
        spec: &TenantSpec,
        clients: &[ClientSpec],
        source: &str,
        now: i64,
    ) -> impl Future<Output = Result<bool, InternalError>> + Send;
    fn tenant_versions(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, i64)>, InternalError>> + Send;
    /// Every tenant of `source` as stored, in two queries: what [`TenantStore::upsert_tenant`]
    /// would write again unchanged need not be written (a restart with thousands of tenants).
    fn stored_tenants(
        &self,
        source: &str,
    ) -> impl Future<Output = Result<HashMap<String, StoredTenant>, InternalError>> + Send;
    fn find_tenant(
        &self,
        slug: &str,
    ) -> impl Future<Output = Result<Option<TenantRow>, InternalError>> + Send;
    fn delete_tenant(&self, slug: &str)
    -> impl Future<Output = Result<bool, InternalError>> + Send;
}

/// A tenant as stored by one source: its spec and its clients', as JSON.
#[derive(Default)]
pub struct StoredTenant {
    spec: String,
    clients: std::collections::BTreeMap<String, String>,
}

/// The JSON holds secret hashes and sealed secrets: `Debug` names the clients only.
impl std::fmt::Debug for StoredTenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTenant")
            .field("spec", &format_args!("<{} bytes>", self.spec.len()))
            .field("clients", &self.clients.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl StoredTenant {
    /// Whether `upsert_tenant(spec, clients, …)` would change nothing.
    pub fn is(&self, spec: &TenantSpec, clients: &[ClientSpec]) -> bool {
        let same_spec = serde_json::to_string(spec).is_ok_and(|j| j == self.spec);
        same_spec
            && clients.len() == self.clients.len()
            && clients.iter().all(|c| {
                self.clients
                    .get(&c.client_id)
                    .is_some_and(|stored| serde_json::to_string(c).is_ok_and(|j| j == *stored))
            })
    }
}

/// Clients of one tenant, looked up by id.
pub trait ClientStore {
    /// Whether a decorator may keep this client's answer in memory (false for a client that
    /// keeps its own freshness, such as one named by a metadata document).
    fn cacheable(&self, _client_id: &str) -> bool {
        true
    }
    fn find_client(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<Arc<Client>>, InternalError>> + Send;
}

/// A tenant's signing keys (private parts sealed).
pub trait KeyStore {
    fn list_keys(
        &self,
        tenant: &str,
    ) -> impl Future<Output = Result<Vec<KeyRecord>, InternalError>> + Send;
    /// Every tenant's keys in brief (one query for all tenants): a stamp that changes when a
    /// key is added or removed, by this node, another node or the CLI.
    fn key_stamps(
        &self,
    ) -> impl Future<Output = Result<HashMap<String, KeyStamp>, InternalError>> + Send;
    /// Inserts a key unless that (tenant, alg, generation) exists; true if this call inserted it.
    fn insert_key(&self, r: &KeyRecord)
    -> impl Future<Output = Result<bool, InternalError>> + Send;
    fn delete_key(
        &self,
        tenant: &str,
        kid: &str,
    ) -> impl Future<Output = Result<(), InternalError>> + Send;
}

/// Persisted grants (reference tokens; later codes, refresh tokens, consents), by handle hash.
pub trait GrantStore {
    fn insert_grant(
        &self,
        tenant: &str,
        g: &GrantRecord,
    ) -> impl Future<Output = Result<(), InternalError>> + Send;
    fn find_grant(
        &self,
        tenant: &str,
        handle_hash: &str,
    ) -> impl Future<Output = Result<Option<GrantRecord>, InternalError>> + Send;
    /// Marks a live single-use grant consumed and, in the same transaction, inserts `then`
    /// (e.g. the tokens issued from a code). Nothing is inserted unless this use is the first.
    fn consume_grant(
        &self,
        tenant: &str,
        handle_hash: &str,
        now: i64,
        then: &[GrantRecord],
    ) -> impl Future<Output = Result<Consumed, InternalError>> + Send;
    /// Inserts `marker` (the record that a single-use credential was used) and `then` in one
    /// statement. False, with `then` written but to be revoked by the caller, when the marker
    /// existed: the credential was used before.
    fn redeem_once(
        &self,
        tenant: &str,
        marker: &GrantRecord,
        then: &[GrantRecord],
    ) -> impl Future<Output = Result<bool, InternalError>> + Send;
    /// Revokes one grant; true if it was live.
    fn revoke_grant(
        &self,
        tenant: &str,
        handle_hash: &str,
        now: i64,
    ) -> impl Future<Output = Result<bool, InternalError>> + Send;
    /// Revokes every grant of a family; returns how many were live.
    fn revoke_family(
        &self,
        tenant: &str,
        family: &str,
        now: i64,
    ) -> impl Future<Output = Result<u64, InternalError>> + Send;
    fn update_grant_data(
        &self,
        tenant: &str,
        handle_hash: &str,
        data: &str,
    ) -> impl Future<Output = Result<(), InternalError>> + Send;
    fn delete_grant(
        &self,
        tenant: &str,
        handle_hash: &str,
    ) -> impl Future<Output = Result<(), InternalError>> + Send;
    /// The live, unconsumed grants of `kind` about `subject`, newest first (at most `limit`).
    fn live_grants_of(
        &self,
        tenant: &str,
        subject: &str,
        kind: GrantKind,
        now: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<GrantRecord>, InternalError>> + Send;
    /// Replaces a live grant's data if it still is `expected` (compare and set); false when
    /// another writer changed it first, or it was consumed or revoked.
    fn swap_grant_data(
        &self,
        tenant: &str,
        handle_hash: &str,
        expected: &str,
        data: &str,
    ) -> impl Future<Output = Result<bool, InternalError>> + Send;
}

fn migrator(sqls: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        sqls.iter()
            .map(|(v, d, sql)| {
                Migration::new(
                    *v,
                    (*d).into(),
                    MigrationType::Simple,
                    sqlx::SqlStr::from_static(sql),
                    false,
                )
            })
            .collect(),
    )
}

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "interactive",
        include_str!("../../migrations/sqlite/0002_interactive.sql"),
    ),
    (
        3,
        "federation",
        include_str!("../../migrations/sqlite/0003_federation.sql"),
    ),
    (
        4,
        "links_by_upstream",
        include_str!("../../migrations/sqlite/0004_links_by_upstream.sql"),
    ),
    (
        5,
        "backchannel",
        include_str!("../../migrations/sqlite/0005_backchannel.sql"),
    ),
    (
        6,
        "saml_service_providers",
        include_str!("../../migrations/sqlite/0006_saml_service_providers.sql"),
    ),
    (
        7,
        "upkeep",
        include_str!("../../migrations/sqlite/0007_upkeep.sql"),
    ),
    (
        8,
        "runtime_clients",
        include_str!("../../migrations/sqlite/0008_runtime_clients.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "interactive",
        include_str!("../../migrations/postgres/0002_interactive.sql"),
    ),
    (
        3,
        "federation",
        include_str!("../../migrations/postgres/0003_federation.sql"),
    ),
    (
        4,
        "links_by_upstream",
        include_str!("../../migrations/postgres/0004_links_by_upstream.sql"),
    ),
    (
        5,
        "backchannel",
        include_str!("../../migrations/postgres/0005_backchannel.sql"),
    ),
    (
        6,
        "saml_service_providers",
        include_str!("../../migrations/postgres/0006_saml_service_providers.sql"),
    ),
    (
        7,
        "upkeep",
        include_str!("../../migrations/postgres/0007_upkeep.sql"),
    ),
    (
        8,
        "runtime_clients",
        include_str!("../../migrations/postgres/0008_runtime_clients.sql"),
    ),
];

/// Creates the schema (when one is named) and runs the migrations, one node at a time.
///
/// `CREATE SCHEMA IF NOT EXISTS` is not atomic: two sessions that both find the schema missing
/// both insert it, and the second fails on `pg_namespace_nspname_index` (SQLSTATE 23505). sqlx's
/// migration lock does not cover it: it is taken only once the migrator runs, after the schema
/// exists. So the whole preparation runs on one session holding a session-level advisory lock of
/// its own: the nodes that start together line up there, the first creates and migrates, the
/// others find everything done. The migrator takes sqlx's own (database-wide) lock inside ours,
/// never the other way round, so the two cannot deadlock. A session-level lock ends with its
/// session, even if this node dies holding it.
async fn prepare_postgres(options: &PgConnectOptions, schema: &str) -> Result<(), InternalError> {
    let mut conn = sqlx::PgConnection::connect_with(options).await?;
    let prepared = async {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(PREPARE_LOCK)
            .execute(&mut conn)
            .await?;
        if !schema.is_empty() {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
            )))
            .execute(&mut conn)
            .await?;
        }
        migrator(POSTGRES_MIGRATIONS).run(&mut conn).await?;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(PREPARE_LOCK)
            .execute(&mut conn)
            .await?;
        Ok::<_, InternalError>(())
    }
    .await;
    // Closing the session also releases the lock when a step above failed.
    let _ = conn.close().await;
    prepared
}

fn is_conflict(e: &InternalError) -> bool {
    matches!(e, InternalError::Database(sqlx::Error::Database(db))
        if db.code().is_some_and(|c| crate::error::is_conflict_code(&c)))
}

/// How many times a write that lost a serialization or deadlock conflict is run in all.
const CONFLICT_ATTEMPTS: u32 = 5;

/// Runs `op` again (up to [`CONFLICT_ATTEMPTS`] times in all, with a short growing, jittered
/// pause) while it fails with SQLSTATE 40001 or 40P01. PostgreSQL at SERIALIZABLE, CockroachDB
/// and YugabyteDB report conflicts between concurrent transactions this way and expect the
/// client to retry; every retried operation here is one whole transaction (or one statement),
/// so a retry never repeats half of one. A conflict that outlasts the attempts is
/// [`InternalError::is_unavailable`]: 503, not 500.
async fn retry_conflicts<T, F, Fut>(what: &'static str, mut op: F) -> Result<T, InternalError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, InternalError>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if attempt < CONFLICT_ATTEMPTS && is_conflict(&e) => {
                tracing::debug!(error = %e, what, attempt, "write conflict: retrying");
                let [noise] = crate::secrets::random_bytes::<1>();
                let jitter = u64::from(noise % 8);
                let pause = (2u64 << attempt) + jitter;
                tokio::time::sleep(Duration::from_millis(pause)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The advisory lock key under which nodes create the schema and migrate (an arbitrary constant,
/// distinct from sqlx's, which is derived from the database name).
const PREPARE_LOCK: i64 = 0x706f_7274_6375_6c6c; // "portcull"

impl Store {
    /// Connects (creating the SQLite file or the PostgreSQL schema when missing) and migrates.
    pub async fn connect(db: &Database) -> Result<Self, InternalError> {
        let Database {
            url,
            schema,
            max_connections,
            acquire_timeout,
            change_notices,
        } = db;
        let max_connections = *max_connections;
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            if let Some(dir) = options.get_filename().parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|e| {
                    InternalError::Other(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            let mut write =
                <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options).await?;
            migrator(SQLITE_MIGRATIONS).run(&mut write).await?;
            let read = SqlitePoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(*acquire_timeout)
                .connect_with(options)
                .await?;
            let write = std::sync::Arc::new(tokio::sync::Mutex::new(write));
            return Ok(Store::Sqlite(SqlitePools { read, write }));
        }
        let mut options = PgConnectOptions::from_str(url)?;
        if !schema.is_empty() {
            if !schema
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(InternalError::Other(
                    "database.schema may hold only letters, digits and _".into(),
                ));
            }
            options = options.options([("search_path", schema)]);
        }
        prepare_postgres(&options, schema).await?;
        // A down server refuses connections: the pool tries again until `acquire_timeout`,
        // then the request is refused with 503 (`is_unavailable`), never held longer.
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(*acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Store::Postgres(pool, *change_notices))
    }

    pub fn engine(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(..) => "postgres",
        }
    }

    pub async fn ping(&self) -> Result<(), InternalError> {
        on_pool!(self, |p| sqlx::query("SELECT 1")
            .execute(p)
            .await
            .map(|_| ())
            .map_err(Into::into))
    }

    /// Tells every node about a change, so that cached copies go at once. PostgreSQL only
    /// (LISTEN/NOTIFY, or a row of the change table that nodes poll); a single SQLite node has
    /// only its own caches.
    pub async fn announce(&self, notice: &ChangeNotice) -> Result<(), InternalError> {
        match self {
            Store::Sqlite(_) => {}
            Store::Postgres(p, ChangeNotices::Notify) => {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANGES_CHANNEL)
                    .bind(notice.encode())
                    .execute(p)
                    .await?;
            }
            Store::Postgres(p, ChangeNotices::Poll(_)) => upkeep::record_change(p, notice).await?,
        }
        Ok(())
    }

    /// How this node hears other nodes' changes: `None` on SQLite (one node).
    pub fn change_notices(&self) -> Option<ChangeNotices> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(_, n) => Some(*n),
        }
    }

    /// Waits for change notifications from other nodes, if the store can deliver them
    /// (PostgreSQL with `change_notices = "notify"`).
    pub async fn change_listener(&self) -> Option<sqlx::postgres::PgListener> {
        let Store::Postgres(pool, ChangeNotices::Notify) = self else {
            return None;
        };
        let mut listener = match sqlx::postgres::PgListener::connect_with(pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for change notices (not ready until this node can)");
                return None;
            }
        };
        match listener.listen(CHANGES_CHANNEL).await {
            Ok(()) => Some(listener),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for change notices (not ready until this node can)");
                None
            }
        }
    }

    pub async fn close(&self) {
        match self {
            Store::Sqlite(p) => {
                // The writer closes when the last clone of the store is dropped.
                let _ = &p.write;
                p.read.close().await;
            }
            Store::Postgres(p, _) => p.close().await,
        }
    }
}

impl TenantStore for Store {
    /// Writes a tenant and its complete client list in one transaction; clients from the same
    /// source that are no longer listed are removed. Returns true if anything changed.
    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "upsert_tenant", db.system = self.engine(), otel.kind = "client"))]
    async fn upsert_tenant(
        &self,
        spec: &TenantSpec,
        clients: &[ClientSpec],
        source: &str,
        now: i64,
    ) -> Result<bool, InternalError> {
        let spec_json = serde_json::to_string(spec)?;
        let mut client_json = Vec::with_capacity(clients.len());
        for c in clients {
            client_json.push((c.client_id.as_str(), serde_json::to_string(c)?));
        }
        let changed: bool = on_write!(self, |p| {
            let mut tx = p.begin().await?;
            let mut changed = sqlx::query(
                "INSERT INTO tenants (slug, spec, source, version, updated_at) VALUES ($1, $2, $3, 1, $4)
                 ON CONFLICT (slug) DO UPDATE SET spec = excluded.spec, source = excluded.source,
                     version = tenants.version + 1, updated_at = excluded.updated_at
                 WHERE tenants.spec <> excluded.spec OR tenants.source <> excluded.source",
            )
            .bind(&spec.slug)
            .bind(&spec_json)
            .bind(source)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            let mut clients_changed = false;
            for (id, json) in &client_json {
                clients_changed |= sqlx::query(
                    "INSERT INTO clients (tenant, client_id, spec, source, updated_at) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (tenant, client_id) DO UPDATE SET spec = excluded.spec, source = excluded.source,
                         updated_at = excluded.updated_at
                     WHERE clients.spec <> excluded.spec OR clients.source <> excluded.source",
                )
                .bind(&spec.slug)
                .bind(*id)
                .bind(json)
                .bind(source)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0;
            }
            let existing: Vec<(String,)> =
                sqlx::query_as("SELECT client_id FROM clients WHERE tenant = $1 AND source = $2")
                    .bind(&spec.slug)
                    .bind(source)
                    .fetch_all(&mut *tx)
                    .await?;
            for (id,) in existing {
                if !client_json.iter().any(|(c, _)| *c == id) {
                    sqlx::query("DELETE FROM clients WHERE tenant = $1 AND client_id = $2")
                        .bind(&spec.slug)
                        .bind(&id)
                        .execute(&mut *tx)
                        .await?;
                    clients_changed = true;
                }
            }
            if clients_changed && !changed {
                sqlx::query(
                    "UPDATE tenants SET version = version + 1, updated_at = $2 WHERE slug = $1",
                )
                .bind(&spec.slug)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                changed = true;
            }
            tx.commit().await?;
            Ok::<bool, InternalError>(changed)
        })?;
        if changed {
            self.announce(&ChangeNotice::Tenant(spec.slug.clone()))
                .await?;
        }
        Ok(changed)
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "tenant_versions", db.system = self.engine(), otel.kind = "client"))]
    async fn tenant_versions(&self) -> Result<Vec<(String, i64)>, InternalError> {
        on_pool!(self, |p| Ok(sqlx::query_as(
            "SELECT slug, version FROM tenants ORDER BY slug"
        )
        .fetch_all(p)
        .await?))
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "stored_tenants", db.system = self.engine(), otel.kind = "client"))]
    async fn stored_tenants(
        &self,
        source: &str,
    ) -> Result<HashMap<String, StoredTenant>, InternalError> {
        let tenants: Vec<(String, String)> = on_pool!(self, |p| {
            sqlx::query_as("SELECT slug, spec FROM tenants WHERE source = $1")
                .bind(source)
                .fetch_all(p)
                .await?
        });
        let clients: Vec<(String, String, String)> = on_pool!(self, |p| {
            sqlx::query_as("SELECT tenant, client_id, spec FROM clients WHERE source = $1")
                .bind(source)
                .fetch_all(p)
                .await?
        });
        let mut out: HashMap<String, StoredTenant> = tenants
            .into_iter()
            .map(|(slug, spec)| {
                (
                    slug,
                    StoredTenant {
                        spec,
                        ..StoredTenant::default()
                    },
                )
            })
            .collect();
        for (tenant, client_id, spec) in clients {
            out.entry(tenant)
                .or_default()
                .clients
                .insert(client_id, spec);
        }
        Ok(out)
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "find_tenant", db.system = self.engine(), otel.kind = "client"))]
    async fn find_tenant(&self, slug: &str) -> Result<Option<TenantRow>, InternalError> {
        let row: Option<(String, i64, String)> = on_pool!(self, |p| {
            sqlx::query_as("SELECT spec, version, source FROM tenants WHERE slug = $1")
                .bind(slug)
                .fetch_optional(p)
                .await?
        });
        match row {
            None => Ok(None),
            Some((spec, version, source)) => Ok(Some(TenantRow {
                spec: serde_json::from_str(&spec)?,
                version,
                source,
            })),
        }
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "delete_tenant", db.system = self.engine(), otel.kind = "client"))]
    async fn delete_tenant(&self, slug: &str) -> Result<bool, InternalError> {
        let deleted: bool = on_write!(self, |p| {
            let mut tx = p.begin().await?;
            sqlx::query("DELETE FROM clients WHERE tenant = $1")
                .bind(slug)
                .execute(&mut *tx)
                .await?;
            let n = sqlx::query("DELETE FROM tenants WHERE slug = $1")
                .bind(slug)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok::<bool, InternalError>(n > 0)
        })?;
        if deleted {
            self.announce(&ChangeNotice::Tenant(slug.to_string()))
                .await?;
        }
        Ok(deleted)
    }
}

impl ClientStore for Store {
    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "find_client", db.system = self.engine(), otel.kind = "client"))]
    async fn find_client(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> Result<Option<Arc<Client>>, InternalError> {
        let row: Option<(String,)> = on_pool!(self, |p| {
            sqlx::query_as("SELECT spec FROM clients WHERE tenant = $1 AND client_id = $2")
                .bind(tenant)
                .bind(client_id)
                .fetch_optional(p)
                .await?
        });
        match row {
            Some((json,)) => Ok(Some(Arc::new(Client::from_spec(serde_json::from_str(
                &json,
            )?)?))),
            None => Ok(None),
        }
    }
}

impl Store {
    /// The ids of a tenant's clients, sorted (for the start banner and operators).
    pub async fn client_ids(&self, tenant: &str) -> Result<Vec<String>, InternalError> {
        let rows: Vec<(String,)> = on_pool!(self, |p| {
            sqlx::query_as("SELECT client_id FROM clients WHERE tenant = $1 ORDER BY client_id")
                .bind(tenant)
                .fetch_all(p)
                .await?
        });
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// The tenant's clients that the application portal may list (those registered with an
    /// `initiate_login_uri`, enabled or not: the caller decides), by client id, at most `limit`.
    pub async fn portal_clients(
        &self,
        tenant: &str,
        limit: i64,
    ) -> Result<Vec<Arc<Client>>, InternalError> {
        // A prefilter on the stored JSON; the spec itself decides below.
        let rows: Vec<(String,)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT spec FROM clients WHERE tenant = $1 AND spec LIKE '%\"initiate_login_uri\":%'
                 ORDER BY client_id LIMIT $2",
            )
            .bind(tenant)
            .bind(limit)
            .fetch_all(p)
            .await?
        });
        let mut out = Vec::with_capacity(rows.len());
        for (json,) in rows {
            let spec: crate::config::ClientSpec = serde_json::from_str(&json)?;
            if spec.interactive.initiate_login_uri.is_some() {
                out.push(Arc::new(Client::from_spec(spec)?));
            }
        }
        Ok(out)
    }
}

impl KeyStore for Store {
    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "list_keys", db.system = self.engine(), otel.kind = "client"))]
    async fn list_keys(&self, tenant: &str) -> Result<Vec<KeyRecord>, InternalError> {
        type Row = (String, String, i64, i64, i64, String, Vec<u8>);
        let rows: Vec<Row> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT kid, alg, generation, created_at, activates_at, public_jwk, private_sealed
                 FROM signing_keys WHERE tenant = $1 ORDER BY alg, generation",
            )
            .bind(tenant)
            .fetch_all(p)
            .await?
        });
        rows.into_iter()
            .map(
                |(kid, alg, generation, created_at, activates_at, public_jwk, private_sealed)| {
                    Ok(KeyRecord {
                        tenant: tenant.to_string(),
                        alg: Alg::parse(&alg).ok_or_else(|| {
                            InternalError::Other(format!("unknown key algorithm {alg}"))
                        })?,
                        kid,
                        generation,
                        created_at,
                        activates_at,
                        public_jwk,
                        private_sealed,
                    })
                },
            )
            .collect()
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "key_stamps", db.system = self.engine(), otel.kind = "client"))]
    async fn key_stamps(&self) -> Result<HashMap<String, KeyStamp>, InternalError> {
        let rows: Vec<(String, i64, i64, i64)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT tenant, COUNT(*), CAST(SUM(generation) AS BIGINT), MAX(created_at)
                 FROM signing_keys GROUP BY tenant",
            )
            .fetch_all(p)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(tenant, count, generations, newest)| {
                (
                    tenant,
                    KeyStamp {
                        count,
                        generations,
                        newest,
                    },
                )
            })
            .collect())
    }

    /// Inserts a key unless that (tenant, alg, generation) exists; true if this call inserted it.
    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "insert_key", db.system = self.engine(), otel.kind = "client"))]
    async fn insert_key(&self, r: &KeyRecord) -> Result<bool, InternalError> {
        let inserted: bool = on_write!(self, |p| {
            Ok::<bool, InternalError>(sqlx::query(
                "INSERT INTO signing_keys (tenant, kid, alg, generation, created_at, activates_at, public_jwk, private_sealed)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            )
            .bind(&r.tenant)
            .bind(&r.kid)
            .bind(r.alg.as_str())
            .bind(r.generation)
            .bind(r.created_at)
            .bind(r.activates_at)
            .bind(&r.public_jwk)
            .bind(&r.private_sealed)
            .execute(p)
            .await?
            .rows_affected()
                > 0)
        })?;
        if inserted {
            self.announce(&ChangeNotice::Tenant(r.tenant.clone()))
                .await?;
        }
        Ok(inserted)
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "delete_key", db.system = self.engine(), otel.kind = "client"))]
    async fn delete_key(&self, tenant: &str, kid: &str) -> Result<(), InternalError> {
        on_write!(self, |p| {
            sqlx::query("DELETE FROM signing_keys WHERE tenant = $1 AND kid = $2")
                .bind(tenant)
                .bind(kid)
                .execute(p)
                .await?;
            Ok(())
        })
    }
}

const GRANT_COLUMNS: &str = "handle_hash, kind, client_id, subject, data, created_at, expires_at, consumed_at, family, session_id, revoked_at";

type GrantRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

fn grant_from_row(r: GrantRow) -> Result<GrantRecord, InternalError> {
    let (
        handle_hash,
        kind,
        client_id,
        subject,
        data,
        created_at,
        expires_at,
        consumed_at,
        family,
        session_id,
        revoked_at,
    ) = r;
    let kind = GrantKind::parse(&kind)
        .ok_or_else(|| InternalError::Other(format!("unknown grant kind `{kind}`")))?;
    Ok(GrantRecord {
        handle_hash,
        kind,
        client_id,
        subject,
        data,
        created_at,
        expires_at,
        consumed_at,
        family,
        session_id,
        revoked_at,
    })
}

const INSERT_GRANT: &str = "INSERT INTO grants (tenant, handle_hash, kind, client_id, subject, data, created_at, expires_at, consumed_at, family, session_id, revoked_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

macro_rules! bind_grant {
    ($q:expr, $tenant:expr, $g:expr) => {
        $q.bind($tenant)
            .bind(&$g.handle_hash)
            .bind($g.kind.as_str())
            .bind(&$g.client_id)
            .bind(&$g.subject)
            .bind(&$g.data)
            .bind($g.created_at)
            .bind($g.expires_at)
            .bind($g.consumed_at)
            .bind(&$g.family)
            .bind(&$g.session_id)
            .bind($g.revoked_at)
    };
}

impl GrantStore for Store {
    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "insert_grant", db.system = self.engine(), otel.kind = "client"))]
    async fn insert_grant(&self, tenant: &str, g: &GrantRecord) -> Result<(), InternalError> {
        on_write!(self, |p| {
            bind_grant!(sqlx::query(INSERT_GRANT), tenant, g)
                .execute(p)
                .await?;
            Ok(())
        })
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "find_grant", db.system = self.engine(), otel.kind = "client"))]
    async fn find_grant(
        &self,
        tenant: &str,
        handle_hash: &str,
    ) -> Result<Option<GrantRecord>, InternalError> {
        let row: Option<GrantRow> = on_pool!(self, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {GRANT_COLUMNS} FROM grants WHERE tenant = $1 AND handle_hash = $2"
            )))
            .bind(tenant)
            .bind(handle_hash)
            .fetch_optional(p)
            .await?
        });
        row.map(grant_from_row).transpose()
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "consume_grant", db.system = self.engine(), otel.kind = "client"))]
    async fn consume_grant(
        &self,
        tenant: &str,
        handle_hash: &str,
        now: i64,
        then: &[GrantRecord],
    ) -> Result<Consumed, InternalError> {
        retry_conflicts("consume grant", || {
            self.consume_grant_once(tenant, handle_hash, now, then)
        })
        .await
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "redeem_once", db.system = self.engine(), otel.kind = "client"))]
    async fn redeem_once(
        &self,
        tenant: &str,
        marker: &GrantRecord,
        then: &[GrantRecord],
    ) -> Result<bool, InternalError> {
        retry_conflicts("single-use marker", || {
            self.redeem_once_now(tenant, marker, then)
        })
        .await
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "revoke_grant", db.system = self.engine(), otel.kind = "client"))]
    async fn revoke_grant(
        &self,
        tenant: &str,
        handle_hash: &str,
        now: i64,
    ) -> Result<bool, InternalError> {
        on_write!(self, |p| {
            Ok(sqlx::query(
                "UPDATE grants SET revoked_at = $3
                 WHERE tenant = $1 AND handle_hash = $2 AND revoked_at IS NULL",
            )
            .bind(tenant)
            .bind(handle_hash)
            .bind(now)
            .execute(p)
            .await?
            .rows_affected()
                > 0)
        })
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "revoke_family", db.system = self.engine(), otel.kind = "client"))]
    async fn revoke_family(
        &self,
        tenant: &str,
        family: &str,
        now: i64,
    ) -> Result<u64, InternalError> {
        on_write!(self, |p| {
            Ok(sqlx::query(
                "UPDATE grants SET revoked_at = $3
                 WHERE tenant = $1 AND family = $2 AND revoked_at IS NULL",
            )
            .bind(tenant)
            .bind(family)
            .bind(now)
            .execute(p)
            .await?
            .rows_affected())
        })
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "update_grant_data", db.system = self.engine(), otel.kind = "client"))]
    async fn update_grant_data(
        &self,
        tenant: &str,
        handle_hash: &str,
        data: &str,
    ) -> Result<(), InternalError> {
        on_write!(self, |p| {
            sqlx::query("UPDATE grants SET data = $3 WHERE tenant = $1 AND handle_hash = $2")
                .bind(tenant)
                .bind(handle_hash)
                .bind(data)
                .execute(p)
                .await?;
            Ok(())
        })
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "delete_grant", db.system = self.engine(), otel.kind = "client"))]
    async fn delete_grant(&self, tenant: &str, handle_hash: &str) -> Result<(), InternalError> {
        on_write!(self, |p| {
            sqlx::query("DELETE FROM grants WHERE tenant = $1 AND handle_hash = $2")
                .bind(tenant)
                .bind(handle_hash)
                .execute(p)
                .await?;
            Ok(())
        })
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "live_grants_of", db.system = self.engine(), otel.kind = "client"))]
    async fn live_grants_of(
        &self,
        tenant: &str,
        subject: &str,
        kind: GrantKind,
        now: i64,
        limit: i64,
    ) -> Result<Vec<GrantRecord>, InternalError> {
        let rows: Vec<GrantRow> = on_pool!(self, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {GRANT_COLUMNS} FROM grants
                 WHERE tenant = $1 AND subject = $2 AND kind = $3 AND expires_at > $4
                   AND consumed_at IS NULL AND revoked_at IS NULL
                 ORDER BY created_at DESC LIMIT $5"
            )))
            .bind(tenant)
            .bind(subject)
            .bind(kind.as_str())
            .bind(now)
            .bind(limit)
            .fetch_all(p)
            .await?
        });
        rows.into_iter().map(grant_from_row).collect()
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "swap_grant_data", db.system = self.engine(), otel.kind = "client"))]
    async fn swap_grant_data(
        &self,
        tenant: &str,
        handle_hash: &str,
        expected: &str,
        data: &str,
    ) -> Result<bool, InternalError> {
        on_write!(self, |p| {
            Ok(sqlx::query(
                "UPDATE grants SET data = $4
                 WHERE tenant = $1 AND handle_hash = $2 AND data = $3
                   AND consumed_at IS NULL AND revoked_at IS NULL",
            )
            .bind(tenant)
            .bind(handle_hash)
            .bind(expected)
            .bind(data)
            .execute(p)
            .await?
            .rows_affected()
                == 1)
        })
    }
}

/// The single attempts that [`retry_conflicts`] repeats.
impl Store {
    /// One transaction: marks the grant consumed and writes `then`, or reads why not.
    async fn consume_grant_once(
        &self,
        tenant: &str,
        handle_hash: &str,
        now: i64,
        then: &[GrantRecord],
    ) -> Result<Consumed, InternalError> {
        on_write!(self, |p| {
            let mut tx = p.begin().await?;
            // One statement decides the race: only the first use finds consumed_at empty.
            let fresh: Option<GrantRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE grants SET consumed_at = $3
                 WHERE tenant = $1 AND handle_hash = $2 AND consumed_at IS NULL
                   AND revoked_at IS NULL AND expires_at > $3
                 RETURNING {GRANT_COLUMNS}"
            )))
            .bind(tenant)
            .bind(handle_hash)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = fresh {
                for g in then {
                    bind_grant!(sqlx::query(INSERT_GRANT), tenant, g)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                return Ok(Consumed::Fresh(grant_from_row(row)?));
            }
            let existing: Option<GrantRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {GRANT_COLUMNS} FROM grants WHERE tenant = $1 AND handle_hash = $2"
            )))
            .bind(tenant)
            .bind(handle_hash)
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(match existing.map(grant_from_row).transpose()? {
                None => Consumed::NotFound,
                Some(g) if g.consumed_at.is_some() => Consumed::Replayed(g),
                Some(_) => Consumed::Dead,
            })
        })
    }

    /// One statement inserts the marker and `then`; fewer rows than given means the marker
    /// was there already.
    async fn redeem_once_now(
        &self,
        tenant: &str,
        marker: &GrantRecord,
        then: &[GrantRecord],
    ) -> Result<bool, InternalError> {
        // One multi-row INSERT: atomic, one round trip. Only the marker can conflict (the other
        // handles are fresh random values), so fewer rows than given means a replay.
        let rows = 1 + then.len();
        let mut sql = String::from(
            "INSERT INTO grants (tenant, handle_hash, kind, client_id, subject, data, created_at, expires_at, consumed_at, family, session_id, revoked_at) VALUES ",
        );
        for r in 0..rows {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for c in 0..12 {
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${}", r * 12 + c + 1));
            }
            sql.push(')');
        }
        sql.push_str(" ON CONFLICT DO NOTHING");
        let inserted = on_write!(self, |p| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            q = bind_grant!(q, tenant, marker);
            for g in then {
                q = bind_grant!(q, tenant, g);
            }
            q.execute(p).await?.rows_affected()
        });
        Ok(usize::try_from(inserted).unwrap_or(0) == rows)
    }
}

#[cfg(test)]
mod tests {
    use super::GrantKind;

    #[test]
    fn a_stored_tenant_debugs_without_its_secrets() {
        let t = super::StoredTenant {
            spec: "{\"slug\":\"acme\"}".into(),
            clients: [(
                "acme-m2m".to_string(),
                "{\"secrets\":[{\"hash\":\"sha256:SECRET-HASH\"}]}".to_string(),
            )]
            .into(),
        };
        let shown = format!("{t:?}");
        assert!(shown.contains("acme-m2m"), "{shown}");
        assert!(
            !shown.contains("SECRET-HASH") && !shown.contains("slug"),
            "{shown}"
        );
    }

    #[test]
    fn every_grant_kind_reads_back_as_itself_and_unknown_kinds_do_not_read() {
        for k in GrantKind::ALL {
            assert_eq!(GrantKind::parse(k.as_str()), Some(k));
        }
        let names: std::collections::HashSet<_> =
            GrantKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names.len(),
            GrantKind::ALL.len(),
            "stored names are distinct"
        );
        assert_eq!(GrantKind::parse("authorization_code"), None);
    }
}
