//! Upkeep of the operational tables: the sweep of expired rows (one node at a time, in bounded
//! batches) and the change table that nodes poll when `database.change_notices = "poll"`.

use super::{ChangeNotice, Store};
use crate::error::InternalError;
use sqlx::PgPool;
use std::collections::HashMap;

/// How long a failed sign-in counter is kept after its window started (when no lock holds it).
/// Tenants' `login.failure_window` is at most this long, so no live counter is removed.
#[cfg(test)]
const LOGIN_FAILURES_HORIZON: i64 = crate::config::tenant::MAX_LOGIN_FAILURE_WINDOW;

/// How far behind the newest change seen a poll reads again (milliseconds): a change whose
/// transaction committed this much later than its row's time is still seen. A change that
/// commits later still is caught by the periodic sync (tenants) or ends with the cache's TTL
/// (revocations, providers).
const CHANGE_MARGIN_MS: i64 = 5_000;

/// The database's clock in milliseconds (every node's change rows are stamped by it, not by the
/// nodes' clocks, which may disagree).
const DB_NOW_MS: &str = "(floor(extract(epoch from clock_timestamp()) * 1000))::bigint";

/// One kind of expired row: how to count them and how to delete one batch (`$1`: now, `$2`: the
/// batch size). A delete returns one value per row it removed, naming what it was.
struct Expired {
    table: &'static str,
    /// `SELECT <label>, COUNT(*) … GROUP BY <label>`.
    count: &'static str,
    delete: &'static str,
    postgres_only: bool,
}

/// Every sweep target. Grants: sign-ins in progress, pushed requests, logout requests, used
/// code markers, access token `jti`s, reference and refresh tokens, used client assertion
/// `jti`s, TOTP steps, single-use values, upstream states, logouts and results, device and user
/// codes, CIBA requests: each row is dead once it expired (a revoked or consumed one is kept
/// until then, to answer its replay).
const EXPIRED: &[Expired] = &[
    Expired {
        table: "grants",
        count: "SELECT kind, COUNT(*) FROM grants WHERE expires_at < $1 GROUP BY kind",
        delete: "DELETE FROM grants WHERE (tenant, handle_hash) IN
                   (SELECT tenant, handle_hash FROM grants WHERE expires_at < $1 LIMIT $2)
                 RETURNING kind",
        postgres_only: false,
    },
    Expired {
        table: "sessions",
        count: "SELECT 'sessions', COUNT(*) FROM sessions WHERE expires_at < $1",
        delete: "DELETE FROM sessions WHERE (tenant, sid) IN
                   (SELECT tenant, sid FROM sessions WHERE expires_at < $1 LIMIT $2)
                 RETURNING 'sessions'",
        postgres_only: false,
    },
    Expired {
        table: "consents",
        count: "SELECT 'consents', COUNT(*) FROM consents WHERE expires_at < $1",
        delete: "DELETE FROM consents WHERE (tenant, subject, client_id) IN
                   (SELECT tenant, subject, client_id FROM consents WHERE expires_at < $1 LIMIT $2)
                 RETURNING 'consents'",
        postgres_only: false,
    },
    Expired {
        table: "login_failures",
        count: "SELECT 'login_failures', COUNT(*) FROM login_failures
                WHERE locked_until <= $1 AND window_start < $1 - 604800",
        delete: "DELETE FROM login_failures WHERE (tenant, bucket) IN
                   (SELECT tenant, bucket FROM login_failures
                    WHERE locked_until <= $1 AND window_start < $1 - 604800 LIMIT $2)
                 RETURNING 'login_failures'",
        postgres_only: false,
    },
    // Change rows are kept 10 minutes (600,000 ms, by the database's clock): far longer than
    // any poll interval or commit delay, so no polling node misses one for its age.
    Expired {
        table: "changes",
        count: "SELECT 'changes', COUNT(*) FROM changes
                WHERE $1 >= 0 AND created_at <
                  (floor(extract(epoch from clock_timestamp()) * 1000))::bigint - 600000",
        delete: "DELETE FROM changes WHERE seq IN
                   (SELECT seq FROM changes
                    WHERE $1 >= 0 AND created_at <
                      (floor(extract(epoch from clock_timestamp()) * 1000))::bigint - 600000
                    LIMIT $2)
                 RETURNING 'changes'",
        postgres_only: true,
    },
];

/// The advisory lock under which one node at a time sweeps (an arbitrary constant).
const SWEEP_LOCK: i64 = 0x706f_7274_636c_6e75; // "portclnu"

/// What a sweep removed, or a dry run found, per table (grants per kind): `grants.<kind>`,
/// `sessions`, … in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept(pub std::collections::BTreeMap<String, u64>);

impl Swept {
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    fn add(&mut self, table: &str, label: &str, n: u64) {
        let key = if label == table {
            table.to_string()
        } else {
            format!("{table}.{label}")
        };
        *self.0.entry(key).or_default() += n;
    }
}

impl Store {
    fn targets(&self) -> impl Iterator<Item = &'static Expired> {
        let postgres = matches!(self, Store::Postgres(..));
        EXPIRED.iter().filter(move |e| postgres || !e.postgres_only)
    }

    /// What a sweep at `now` would remove (`portcullis cleanup --dry-run`).
    pub async fn expired_rows(&self, now: i64) -> Result<Swept, InternalError> {
        let mut out = Swept::default();
        for e in self.targets() {
            let rows: Vec<(String, i64)> = on_pool!(self, |p| {
                sqlx::query_as(e.count).bind(now).fetch_all(p).await?
            });
            for (label, n) in rows {
                out.add(e.table, &label, u64::try_from(n).unwrap_or(0));
            }
        }
        Ok(out)
    }

    /// Deletes every row expired at `now`, `batch` rows per statement, each its own short
    /// transaction (so that writers never wait long behind a sweep and a sweep never holds many
    /// locks). On PostgreSQL only one node sweeps at a time: `None` when another holds the
    /// sweep's advisory lock (a session lock: it ends with the session if that node dies).
    pub async fn sweep(&self, now: i64, batch: i64) -> Result<Option<Swept>, InternalError> {
        let batch = batch.max(1);
        let mut out = Swept::default();
        match self {
            Store::Sqlite(pools) => {
                for e in self.targets() {
                    loop {
                        // The writer is taken per batch: other writes go between two batches.
                        let labels: Vec<(String,)> = {
                            let mut w = pools.write.lock().await;
                            sqlx::query_as(e.delete)
                                .bind(now)
                                .bind(batch)
                                .fetch_all(&mut *w)
                                .await?
                        };
                        let n = labels.len();
                        for (label,) in labels {
                            out.add(e.table, &label, 1);
                        }
                        if i64::try_from(n).unwrap_or(i64::MAX) < batch {
                            break;
                        }
                    }
                }
                Ok(Some(out))
            }
            Store::Postgres(pool, _) => {
                let mut conn = pool.acquire().await?;
                let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
                    .bind(SWEEP_LOCK)
                    .fetch_one(&mut *conn)
                    .await?;
                if !locked {
                    return Ok(None);
                }
                let swept = async {
                    for e in self.targets() {
                        loop {
                            let labels: Vec<(String,)> = sqlx::query_as(e.delete)
                                .bind(now)
                                .bind(batch)
                                .fetch_all(&mut *conn)
                                .await?;
                            let n = labels.len();
                            for (label,) in labels {
                                out.add(e.table, &label, 1);
                            }
                            if i64::try_from(n).unwrap_or(i64::MAX) < batch {
                                break;
                            }
                        }
                    }
                    Ok::<_, InternalError>(())
                }
                .await;
                let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(SWEEP_LOCK)
                    .execute(&mut *conn)
                    .await;
                if unlocked.is_err() {
                    // The lock must not stay with a pooled session: closing it ends the lock.
                    conn.close_on_drop();
                }
                swept.map(|()| Some(out))
            }
        }
    }
}

/// Writes a change row (`change_notices = "poll"`), stamped by the database's clock.
pub(super) async fn record_change(
    pool: &PgPool,
    notice: &ChangeNotice,
) -> Result<(), InternalError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO changes (payload, created_at) VALUES ($1, {DB_NOW_MS})"
    )))
    .bind(notice.encode())
    .execute(pool)
    .await?;
    Ok(())
}

/// A node's reading position in the change table. Row numbers need not be dense or committed
/// in order (concurrent transactions; CockroachDB's `unique_rowid`), so a poll reads by time
/// from [`CHANGE_MARGIN_MS`] behind the newest change seen and skips the rows already applied.
#[derive(Debug)]
pub struct ChangeFeed {
    newest_ms: i64,
    /// Row number → its time, for the rows inside the margin.
    applied: HashMap<i64, i64>,
}

impl ChangeFeed {
    /// Starts at the database's present: whatever changed before is in the sync that follows.
    pub async fn start(store: &Store) -> Result<Self, InternalError> {
        let Store::Postgres(pool, _) = store else {
            return Err(InternalError::Other(
                "the change table is PostgreSQL's".into(),
            ));
        };
        let (now,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {DB_NOW_MS}")))
            .fetch_one(pool)
            .await?;
        Ok(ChangeFeed {
            newest_ms: now,
            applied: HashMap::new(),
        })
    }

    /// The notices recorded since the last poll, oldest first. The rows from the margin on are
    /// read in pages ordered by (time, row number), each page after the last row of the one
    /// before, so that a burst larger than a page is read whole.
    pub async fn poll(&mut self, store: &Store) -> Result<Vec<ChangeNotice>, InternalError> {
        let Store::Postgres(pool, _) = store else {
            return Ok(Vec::new());
        };
        const PAGE: i64 = 1000;
        let mut after = (self.newest_ms.saturating_sub(CHANGE_MARGIN_MS), i64::MIN);
        let mut out = Vec::new();
        loop {
            let rows: Vec<(i64, i64, String)> = sqlx::query_as(
                "SELECT seq, created_at, payload FROM changes
                 WHERE (created_at, seq) > ($1, $2)
                 ORDER BY created_at, seq LIMIT $3",
            )
            .bind(after.0)
            .bind(after.1)
            .bind(PAGE)
            .fetch_all(pool)
            .await?;
            let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= PAGE;
            for (seq, at, payload) in rows {
                after = (at, seq);
                self.newest_ms = self.newest_ms.max(at);
                if self.applied.insert(seq, at).is_some() {
                    continue;
                }
                match ChangeNotice::parse(&payload) {
                    Some(n) => out.push(n),
                    None => tracing::warn!(payload, "unreadable change row ignored"),
                }
            }
            if !full {
                break;
            }
        }
        let keep_from = self.newest_ms.saturating_sub(CHANGE_MARGIN_MS);
        self.applied.retain(|_, at| *at >= keep_from);
        Ok(out)
    }
}

/// Where a node hears other nodes' changes (PostgreSQL only).
#[derive(Debug)]
pub enum ChangeSource {
    Listen(sqlx::postgres::PgListener),
    Poll(ChangeFeed, std::time::Duration),
}

/// What waiting on a [`ChangeSource`] brought.
pub enum Heard {
    Notices(Vec<ChangeNotice>),
    /// The listener lost its connection and subscribed again on a new one: whatever was
    /// announced in between is lost.
    Interrupted,
    /// The source is gone (the database is unreachable): subscribe again.
    Lost(InternalError),
}

impl ChangeSource {
    /// Waits for the next notices.
    pub async fn next(&mut self, store: &Store) -> Heard {
        match self {
            ChangeSource::Listen(l) => match l.try_recv().await {
                Ok(Some(n)) => match ChangeNotice::parse(n.payload()) {
                    Some(n) => Heard::Notices(vec![n]),
                    None => {
                        tracing::warn!(payload = n.payload(), "unreadable change notice ignored");
                        Heard::Notices(Vec::new())
                    }
                },
                Ok(None) => Heard::Interrupted,
                Err(e) => Heard::Lost(e.into()),
            },
            ChangeSource::Poll(feed, every) => {
                tokio::time::sleep(*every).await;
                match feed.poll(store).await {
                    Ok(v) => Heard::Notices(v),
                    Err(e) => Heard::Lost(e),
                }
            }
        }
    }
}

impl Store {
    /// Subscribes to other nodes' changes as `database.change_notices` says; `None` on SQLite
    /// or when the database cannot be reached (try again later).
    pub async fn subscribe(&self) -> Option<ChangeSource> {
        match self.change_notices()? {
            crate::config::runtime::ChangeNotices::Notify => {
                self.change_listener().await.map(ChangeSource::Listen)
            }
            crate::config::runtime::ChangeNotices::Poll(every) => {
                match ChangeFeed::start(self).await {
                    Ok(feed) => Some(ChangeSource::Poll(feed, every)),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the change table (not ready until this node can)");
                        None
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_login_failures_horizon_in_the_sql_is_the_constant() {
        for e in super::EXPIRED
            .iter()
            .filter(|e| e.table == "login_failures")
        {
            let n = super::LOGIN_FAILURES_HORIZON.to_string();
            assert!(e.count.contains(&n) && e.delete.contains(&n));
        }
    }
}
