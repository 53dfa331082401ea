//! Stores of interactive sign-in: SSO sessions, database users, consents, login throttling.

use super::Store;
use crate::config::tenant::UserSpec;
use crate::error::InternalError;

/// A server-side SSO session (the browser holds only a random handle; `sid` is public).
#[derive(Clone, PartialEq)]
pub struct SessionRecord {
    pub sid: String,
    pub handle_hash: String,
    pub subject: String,
    pub auth_time: i64,
    /// OIDC Core §2 / RFC 8176 `amr` values, space separated.
    pub amr: String,
    pub acr: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    /// Absolute end of the session.
    pub expires_at: i64,
    /// Clients that received tokens in this session (for logout notifications), space separated.
    pub clients: String,
    /// How the user signed in: `local`, or the id of the upstream provider.
    pub idp: String,
    /// The upstream provider's session id (OIDC `sid`, SAML SessionIndex), for its logout.
    pub upstream_sid: Option<String>,
    /// What logging out upstream needs, as JSON (see `federation::UpstreamSession`).
    pub upstream: Option<String>,
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("sid", &self.sid)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl SessionRecord {
    pub fn client_ids(&self) -> impl Iterator<Item = &str> {
        self.clients.split(' ').filter(|c| !c.is_empty())
    }
}

pub trait SessionStore {
    fn insert_session(
        &self,
        tenant: &str,
        s: &SessionRecord,
    ) -> impl Future<Output = Result<(), InternalError>> + Send;
    fn find_session_by_handle(
        &self,
        tenant: &str,
        handle_hash: &str,
    ) -> impl Future<Output = Result<Option<SessionRecord>, InternalError>> + Send;
    /// The session and, in the same query, the scopes its user granted `client_id` (if any).
    fn find_session_with_consent(
        &self,
        tenant: &str,
        handle_hash: &str,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<(SessionRecord, Option<StoredConsent>)>, InternalError>> + Send;
    fn find_session(
        &self,
        tenant: &str,
        sid: &str,
    ) -> impl Future<Output = Result<Option<SessionRecord>, InternalError>> + Send;
    /// Records activity and, if given, a client that received tokens in this session.
    fn touch_session(
        &self,
        tenant: &str,
        sid: &str,
        now: i64,
        client_id: Option<&str>,
    ) -> impl Future<Output = Result<(), InternalError>> + Send;
    /// Ends a session; returns it if it existed.
    fn delete_session(
        &self,
        tenant: &str,
        sid: &str,
    ) -> impl Future<Output = Result<Option<SessionRecord>, InternalError>> + Send;
    fn list_sessions(
        &self,
        tenant: &str,
        subject: &str,
    ) -> impl Future<Output = Result<Vec<SessionRecord>, InternalError>> + Send;
}

/// Granted scopes (space separated) and when the grant ends.
#[derive(Debug, Clone)]
pub struct StoredConsent {
    pub scopes: String,
    pub expires_at: Option<i64>,
}

impl StoredConsent {
    /// The granted scopes, if the grant is still in force at `now`.
    pub fn live_scopes(&self, now: i64) -> Option<Vec<String>> {
        self.expires_at
            .is_none_or(|e| e > now)
            .then(|| self.scopes.split(' ').map(str::to_string).collect())
    }
}

pub trait UserStore {
    fn find_user_by_username(
        &self,
        tenant: &str,
        username: &str,
    ) -> impl Future<Output = Result<Option<UserSpec>, InternalError>> + Send;
    fn find_user_by_subject(
        &self,
        tenant: &str,
        subject: &str,
    ) -> impl Future<Output = Result<Option<UserSpec>, InternalError>> + Send;
    fn upsert_user(
        &self,
        tenant: &str,
        user: &UserSpec,
        source: &str,
        now: i64,
    ) -> impl Future<Output = Result<(), InternalError>> + Send;
    fn delete_user(
        &self,
        tenant: &str,
        subject: &str,
    ) -> impl Future<Output = Result<bool, InternalError>> + Send;
}

pub trait ConsentStore {
    /// The scopes a user granted a client, if the grant has not expired.
    fn find_consent(
        &self,
        tenant: &str,
        subject: &str,
        client_id: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<Vec<String>>, InternalError>> + Send;
    fn upsert_consent(
        &self,
        tenant: &str,
        subject: &str,
        client_id: &str,
        scopes: &[String],
        now: i64,
        expires_at: Option<i64>,
    ) -> impl Future<Output = Result<(), InternalError>> + Send;
    fn delete_consent(
        &self,
        tenant: &str,
        subject: &str,
        client_id: &str,
    ) -> impl Future<Output = Result<bool, InternalError>> + Send;
}

/// The limit of one throttling bucket: at `max` attempts counted within `window` seconds the
/// bucket locks for `lockout` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketLimit {
    pub max: i64,
    pub window: i64,
    pub lockout: i64,
}

/// What an attempt got from one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The attempt is counted (as a failure until it is given back); `locked_until` is set when
    /// this attempt reached the limit and so locked the bucket.
    Taken { locked_until: Option<i64> },
    /// The bucket is locked until then; nothing was counted.
    Refused { until: i64 },
}

/// Failed-login counters shared by every node, by bucket (`user:<name>`, `ip:<addr>`,
/// `otp:<subject>`, `interaction:<hash>`). An attempt is counted before it is evaluated, so
/// concurrent attempts cannot all pass a check made before any of them is recorded.
pub trait LoginThrottleStore {
    /// Checks the lock and counts the attempt in one statement: refused while the bucket is
    /// locked, counted otherwise (a new window starts when the old one has passed).
    fn take_slot(
        &self,
        tenant: &str,
        bucket: &str,
        now: i64,
        limit: BucketLimit,
    ) -> impl Future<Output = Result<Slot, InternalError>> + Send;
    /// Uncounts an attempt that turned out not to be a failure. The lock goes with it when the
    /// count falls below `max`, or when this attempt was the one that set it (`set_lock`).
    fn give_back_slot(
        &self,
        tenant: &str,
        bucket: &str,
        max: i64,
        set_lock: bool,
    ) -> impl Future<Output = Result<(), InternalError>> + Send;
    /// Forgets a bucket's attempts and lock.
    fn clear_failures(
        &self,
        tenant: &str,
        bucket: &str,
    ) -> impl Future<Output = Result<(), InternalError>> + Send;
}

pub(super) const SESSION_SELECT: &str = "SELECT sid, handle_hash, subject, auth_time, amr, acr, created_at, last_seen_at, expires_at, clients, idp, upstream_sid, upstream FROM sessions";
const SESSION_COLUMNS: &str = "sid, handle_hash, subject, auth_time, amr, acr, created_at, last_seen_at, expires_at, clients, idp, upstream_sid, upstream";
pub(super) type SessionRow = (
    String,
    String,
    String,
    i64,
    String,
    String,
    i64,
    i64,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
);

pub(super) fn session_from_row(r: SessionRow) -> SessionRecord {
    let (
        sid,
        handle_hash,
        subject,
        auth_time,
        amr,
        acr,
        created_at,
        last_seen_at,
        expires_at,
        clients,
        idp,
        upstream_sid,
        upstream,
    ) = r;
    SessionRecord {
        sid,
        handle_hash,
        subject,
        auth_time,
        amr,
        acr,
        created_at,
        last_seen_at,
        expires_at,
        clients,
        idp,
        upstream_sid,
        upstream,
    }
}

impl SessionStore for Store {
    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "insert_session", db.system = self.engine(), otel.kind = "client"))]
    async fn insert_session(&self, tenant: &str, s: &SessionRecord) -> Result<(), InternalError> {
        on_write!(self, |p| {
            sqlx::query(
                "INSERT INTO sessions (tenant, sid, handle_hash, subject, auth_time, amr, acr, created_at, last_seen_at, expires_at, clients, idp, upstream_sid, upstream)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(tenant)
            .bind(&s.sid)
            .bind(&s.handle_hash)
            .bind(&s.subject)
            .bind(s.auth_time)
            .bind(&s.amr)
            .bind(&s.acr)
            .bind(s.created_at)
            .bind(s.last_seen_at)
            .bind(s.expires_at)
            .bind(&s.clients)
            .bind(&s.idp)
            .bind(&s.upstream_sid)
            .bind(&s.upstream)
            .execute(p)
            .await?;
            Ok(())
        })
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "find_session_by_handle", db.system = self.engine(), otel.kind = "client"))]
    async fn find_session_by_handle(
        &self,
        tenant: &str,
        handle_hash: &str,
    ) -> Result<Option<SessionRecord>, InternalError> {
        let row: Option<SessionRow> = on_pool!(self, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE tenant = $1 AND handle_hash = $2"
            )))
            .bind(tenant)
            .bind(handle_hash)
            .fetch_optional(p)
            .await?
        });
        Ok(row.map(session_from_row))
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "find_session_with_consent", db.system = self.engine(), otel.kind = "client"))]
    async fn find_session_with_consent(
        &self,
        tenant: &str,
        handle_hash: &str,
        client_id: &str,
    ) -> Result<Option<(SessionRecord, Option<StoredConsent>)>, InternalError> {
        type Row = (
            String,
            String,
            String,
            i64,
            String,
            String,
            i64,
            i64,
            i64,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<i64>,
        );
        let row: Option<Row> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT s.sid, s.handle_hash, s.subject, s.auth_time, s.amr, s.acr, s.created_at,
                        s.last_seen_at, s.expires_at, s.clients, s.idp, s.upstream_sid, s.upstream,
                        c.scopes, c.expires_at
                 FROM sessions s LEFT JOIN consents c
                   ON c.tenant = s.tenant AND c.subject = s.subject AND c.client_id = $3
                 WHERE s.tenant = $1 AND s.handle_hash = $2",
            )
            .bind(tenant)
            .bind(handle_hash)
            .bind(client_id)
            .fetch_optional(p)
            .await?
        });
        Ok(row.map(|r| {
            let (a, b, c, d, e, f, g, h, i, j, k, l, m, scopes, expires_at) = r;
            (
                session_from_row((a, b, c, d, e, f, g, h, i, j, k, l, m)),
                scopes.map(|scopes| StoredConsent { scopes, expires_at }),
            )
        }))
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "find_session", db.system = self.engine(), otel.kind = "client"))]
    async fn find_session(
        &self,
        tenant: &str,
        sid: &str,
    ) -> Result<Option<SessionRecord>, InternalError> {
        let row: Option<SessionRow> = on_pool!(self, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE tenant = $1 AND sid = $2"
            )))
            .bind(tenant)
            .bind(sid)
            .fetch_optional(p)
            .await?
        });
        Ok(row.map(session_from_row))
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "touch_session", db.system = self.engine(), otel.kind = "client"))]
    async fn touch_session(
        &self,
        tenant: &str,
        sid: &str,
        now: i64,
        client_id: Option<&str>,
    ) -> Result<(), InternalError> {
        on_write!(self, |p| {
            match client_id {
                None => {
                    sqlx::query(
                        "UPDATE sessions SET last_seen_at = $3 WHERE tenant = $1 AND sid = $2",
                    )
                    .bind(tenant)
                    .bind(sid)
                    .bind(now)
                    .execute(p)
                    .await?;
                }
                Some(c) => {
                    // Append the client once: the list is space separated with a leading space.
                    sqlx::query(
                        "UPDATE sessions SET last_seen_at = $3,
                             clients = CASE WHEN (clients || ' ') LIKE ('% ' || $4 || ' %') THEN clients
                                            ELSE clients || ' ' || $4 END
                         WHERE tenant = $1 AND sid = $2",
                    )
                    .bind(tenant)
                    .bind(sid)
                    .bind(now)
                    .bind(c)
                    .execute(p)
                    .await?;
                }
            }
            Ok(())
        })
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "delete_session", db.system = self.engine(), otel.kind = "client"))]
    async fn delete_session(
        &self,
        tenant: &str,
        sid: &str,
    ) -> Result<Option<SessionRecord>, InternalError> {
        let row: Option<SessionRow> = on_write!(self, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "DELETE FROM sessions WHERE tenant = $1 AND sid = $2 RETURNING {SESSION_COLUMNS}"
            )))
            .bind(tenant)
            .bind(sid)
            .fetch_optional(p)
            .await?
        });
        Ok(row.map(session_from_row))
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "list_sessions", db.system = self.engine(), otel.kind = "client"))]
    async fn list_sessions(
        &self,
        tenant: &str,
        subject: &str,
    ) -> Result<Vec<SessionRecord>, InternalError> {
        let rows: Vec<SessionRow> = on_pool!(self, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE tenant = $1 AND subject = $2 ORDER BY created_at"
            )))
            .bind(tenant)
            .bind(subject)
            .fetch_all(p)
            .await?
        });
        Ok(rows.into_iter().map(session_from_row).collect())
    }
}

impl UserStore for Store {
    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "find_user_by_username", db.system = self.engine(), otel.kind = "client"))]
    async fn find_user_by_username(
        &self,
        tenant: &str,
        username: &str,
    ) -> Result<Option<UserSpec>, InternalError> {
        let row: Option<(String,)> = on_pool!(self, |p| {
            sqlx::query_as("SELECT spec FROM users WHERE tenant = $1 AND username = $2")
                .bind(tenant)
                .bind(username)
                .fetch_optional(p)
                .await?
        });
        row.map(|(json,)| serde_json::from_str(&json).map_err(Into::into))
            .transpose()
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "find_user_by_subject", db.system = self.engine(), otel.kind = "client"))]
    async fn find_user_by_subject(
        &self,
        tenant: &str,
        subject: &str,
    ) -> Result<Option<UserSpec>, InternalError> {
        let row: Option<(String,)> = on_pool!(self, |p| {
            sqlx::query_as("SELECT spec FROM users WHERE tenant = $1 AND subject = $2")
                .bind(tenant)
                .bind(subject)
                .fetch_optional(p)
                .await?
        });
        row.map(|(json,)| serde_json::from_str(&json).map_err(Into::into))
            .transpose()
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "upsert_user", db.system = self.engine(), otel.kind = "client"))]
    async fn upsert_user(
        &self,
        tenant: &str,
        user: &UserSpec,
        source: &str,
        now: i64,
    ) -> Result<(), InternalError> {
        let json = serde_json::to_string(user)?;
        on_write!(self, |p| {
            sqlx::query(
                "INSERT INTO users (tenant, subject, username, spec, source, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (tenant, subject) DO UPDATE SET username = excluded.username, spec = excluded.spec,
                     source = excluded.source, updated_at = excluded.updated_at",
            )
            .bind(tenant)
            .bind(&user.subject)
            .bind(&user.username)
            .bind(&json)
            .bind(source)
            .bind(now)
            .execute(p)
            .await?;
            Ok(())
        })
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "delete_user", db.system = self.engine(), otel.kind = "client"))]
    async fn delete_user(&self, tenant: &str, subject: &str) -> Result<bool, InternalError> {
        on_write!(self, |p| {
            Ok(
                sqlx::query("DELETE FROM users WHERE tenant = $1 AND subject = $2")
                    .bind(tenant)
                    .bind(subject)
                    .execute(p)
                    .await?
                    .rows_affected()
                    > 0,
            )
        })
    }
}

impl ConsentStore for Store {
    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "find_consent", db.system = self.engine(), otel.kind = "client"))]
    async fn find_consent(
        &self,
        tenant: &str,
        subject: &str,
        client_id: &str,
        now: i64,
    ) -> Result<Option<Vec<String>>, InternalError> {
        let row: Option<(String, Option<i64>)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT scopes, expires_at FROM consents WHERE tenant = $1 AND subject = $2 AND client_id = $3",
            )
            .bind(tenant)
            .bind(subject)
            .bind(client_id)
            .fetch_optional(p)
            .await?
        });
        Ok(row
            .filter(|(_, expires)| expires.is_none_or(|e| e > now))
            .map(|(scopes, _)| scopes.split(' ').map(str::to_string).collect()))
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "upsert_consent", db.system = self.engine(), otel.kind = "client"))]
    async fn upsert_consent(
        &self,
        tenant: &str,
        subject: &str,
        client_id: &str,
        scopes: &[String],
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<(), InternalError> {
        let scopes = scopes.join(" ");
        on_write!(self, |p| {
            sqlx::query(
                "INSERT INTO consents (tenant, subject, client_id, scopes, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (tenant, subject, client_id) DO UPDATE SET scopes = excluded.scopes,
                     created_at = excluded.created_at, expires_at = excluded.expires_at",
            )
            .bind(tenant)
            .bind(subject)
            .bind(client_id)
            .bind(&scopes)
            .bind(now)
            .bind(expires_at)
            .execute(p)
            .await?;
            Ok(())
        })
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "delete_consent", db.system = self.engine(), otel.kind = "client"))]
    async fn delete_consent(
        &self,
        tenant: &str,
        subject: &str,
        client_id: &str,
    ) -> Result<bool, InternalError> {
        on_write!(self, |p| {
            Ok(sqlx::query(
                "DELETE FROM consents WHERE tenant = $1 AND subject = $2 AND client_id = $3",
            )
            .bind(tenant)
            .bind(subject)
            .bind(client_id)
            .execute(p)
            .await?
            .rows_affected()
                > 0)
        })
    }
}

impl LoginThrottleStore for Store {
    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "take_slot", db.system = self.engine(), otel.kind = "client"))]
    async fn take_slot(
        &self,
        tenant: &str,
        bucket: &str,
        now: i64,
        limit: BucketLimit,
    ) -> Result<Slot, InternalError> {
        // One statement: a locked bucket is left alone (the upsert's WHERE, so no row comes
        // back); otherwise the attempt is counted, and reaching `max` sets the lock.
        let taken: Option<(i64,)> = on_write!(self, |p| {
            sqlx::query_as(
                "INSERT INTO login_failures (tenant, bucket, failures, window_start, locked_until)
                 VALUES ($1, $2, 1, $3, CASE WHEN 1 >= $5 THEN $3 + $6 ELSE 0 END)
                 ON CONFLICT (tenant, bucket) DO UPDATE SET
                     failures = CASE WHEN login_failures.window_start + $4 <= $3 THEN 1
                                     ELSE login_failures.failures + 1 END,
                     window_start = CASE WHEN login_failures.window_start + $4 <= $3 THEN $3
                                         ELSE login_failures.window_start END,
                     locked_until = CASE
                         WHEN (CASE WHEN login_failures.window_start + $4 <= $3 THEN 1
                                    ELSE login_failures.failures + 1 END) >= $5 THEN $3 + $6
                         ELSE login_failures.locked_until END
                 WHERE login_failures.locked_until <= $3
                 RETURNING locked_until",
            )
            .bind(tenant)
            .bind(bucket)
            .bind(now)
            .bind(limit.window)
            .bind(limit.max)
            .bind(limit.lockout)
            .fetch_optional(p)
            .await?
        });
        if let Some((until,)) = taken {
            return Ok(Slot::Taken {
                locked_until: Some(until).filter(|u| *u > now),
            });
        }
        // Refused: the decision is made; this read only tells until when.
        let until: Option<(i64,)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT locked_until FROM login_failures WHERE tenant = $1 AND bucket = $2",
            )
            .bind(tenant)
            .bind(bucket)
            .fetch_optional(p)
            .await?
        });
        Ok(Slot::Refused {
            until: until.map_or(now, |(u,)| u.max(now)),
        })
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "give_back_slot", db.system = self.engine(), otel.kind = "client"))]
    async fn give_back_slot(
        &self,
        tenant: &str,
        bucket: &str,
        max: i64,
        set_lock: bool,
    ) -> Result<(), InternalError> {
        on_write!(self, |p| {
            sqlx::query(
                "UPDATE login_failures SET
                     failures = CASE WHEN failures > 0 THEN failures - 1 ELSE 0 END,
                     locked_until = CASE WHEN failures - 1 < $3 OR $4 THEN 0 ELSE locked_until END
                 WHERE tenant = $1 AND bucket = $2",
            )
            .bind(tenant)
            .bind(bucket)
            .bind(max)
            .bind(set_lock)
            .execute(p)
            .await?;
            Ok(())
        })
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "clear_failures", db.system = self.engine(), otel.kind = "client"))]
    async fn clear_failures(&self, tenant: &str, bucket: &str) -> Result<(), InternalError> {
        on_write!(self, |p| {
            sqlx::query("DELETE FROM login_failures WHERE tenant = $1 AND bucket = $2")
                .bind(tenant)
                .bind(bucket)
                .execute(p)
                .await?;
            Ok(())
        })
    }
}
