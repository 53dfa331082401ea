//! Stores of federation: providers added at runtime (with the email domains they claim for
//! home-realm discovery), external identities linked to local users, and the sessions an
//! upstream provider's logout reaches.

use super::{SESSION_SELECT, SessionRecord, SessionRow, Store, session_from_row};
use crate::config::tenant::UserSpec;
use crate::error::InternalError;
use sqlx::Connection as _;

/// A provider row as the admin API and the lookups see it.
#[derive(Debug, Clone)]
pub struct ProviderRow {
    pub id: String,
    pub enabled: bool,
    pub listed: bool,
    pub display_name: String,
    pub spec: String,
    pub updated_at: i64,
}

type ProviderTuple = (String, bool, bool, String, String, i64);

fn provider_from(r: ProviderTuple) -> ProviderRow {
    let (id, enabled, listed, display_name, spec, updated_at) = r;
    ProviderRow {
        id,
        enabled,
        listed,
        display_name,
        spec,
        updated_at,
    }
}

/// Why a provider could not be written.
#[derive(Debug)]
pub enum ProviderWrite {
    Written,
    /// Another provider of the tenant already claims this domain.
    DomainTaken(String),
}

pub trait FederationStore {
    fn find_provider_row(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<ProviderRow>, InternalError>> + Send;
    /// Providers of a tenant by id, at most `limit`, from `after` (paging); `listed_only`
    /// keeps the enabled ones shown on the sign-in page.
    fn list_provider_rows(
        &self,
        tenant: &str,
        listed_only: bool,
        after: &str,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<ProviderRow>, InternalError>> + Send;
    /// Writes a provider and the domains it claims, in one transaction.
    fn upsert_provider_row(
        &self,
        tenant: &str,
        row: &ProviderRow,
        domains: &[String],
    ) -> impl Future<Output = Result<ProviderWrite, InternalError>> + Send;
    fn delete_provider_row(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = Result<bool, InternalError>> + Send;
    /// The runtime provider that claims an email domain.
    fn provider_for_domain(
        &self,
        tenant: &str,
        domain: &str,
    ) -> impl Future<Output = Result<Option<String>, InternalError>> + Send;
    /// The local subject an external identity (provider, upstream issuer or entity id, upstream
    /// subject) is linked to.
    fn find_link(
        &self,
        tenant: &str,
        provider: &str,
        upstream: &str,
        upstream_subject: &str,
    ) -> impl Future<Output = Result<Option<String>, InternalError>> + Send;
    /// Keys a link made before links named their upstream (migration 0004) by `upstream`, and
    /// returns its local subject.
    fn adopt_legacy_link(
        &self,
        tenant: &str,
        provider: &str,
        upstream: &str,
        upstream_subject: &str,
    ) -> impl Future<Output = Result<Option<String>, InternalError>> + Send;
    /// Links an external identity; false if it was linked already (the first link wins).
    fn insert_link(
        &self,
        tenant: &str,
        provider: &str,
        upstream: &str,
        upstream_subject: &str,
        subject: &str,
        now: i64,
    ) -> impl Future<Output = Result<bool, InternalError>> + Send;
    /// Database users whose `email` claim is `email` (account linking).
    fn find_users_by_email(
        &self,
        tenant: &str,
        email: &str,
    ) -> impl Future<Output = Result<Vec<UserSpec>, InternalError>> + Send;
    /// Sessions signed in through `idp`, by upstream session id.
    fn sessions_by_upstream_sid(
        &self,
        tenant: &str,
        idp: &str,
        upstream_sid: &str,
    ) -> impl Future<Output = Result<Vec<SessionRecord>, InternalError>> + Send;
}

impl FederationStore for Store {
    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "find_provider_row", db.system = self.engine(), otel.kind = "client"))]
    async fn find_provider_row(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<ProviderRow>, InternalError> {
        let row: Option<ProviderTuple> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT id, enabled, listed, display_name, spec, updated_at FROM providers
                 WHERE tenant = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(id)
            .fetch_optional(p)
            .await?
        });
        Ok(row.map(provider_from))
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "list_provider_rows", db.system = self.engine(), otel.kind = "client"))]
    async fn list_provider_rows(
        &self,
        tenant: &str,
        listed_only: bool,
        after: &str,
        limit: i64,
    ) -> Result<Vec<ProviderRow>, InternalError> {
        let rows: Vec<ProviderTuple> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT id, enabled, listed, display_name, spec, updated_at FROM providers
                 WHERE tenant = $1 AND id > $2 AND (NOT $3 OR (enabled AND listed))
                 ORDER BY id LIMIT $4",
            )
            .bind(tenant)
            .bind(after)
            .bind(listed_only)
            .bind(limit)
            .fetch_all(p)
            .await?
        });
        Ok(rows.into_iter().map(provider_from).collect())
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "upsert_provider_row", db.system = self.engine(), otel.kind = "client"))]
    async fn upsert_provider_row(
        &self,
        tenant: &str,
        row: &ProviderRow,
        domains: &[String],
    ) -> Result<ProviderWrite, InternalError> {
        on_write!(self, |p| {
            let mut tx = p.begin().await?;
            for d in domains {
                let owner: Option<(String,)> = sqlx::query_as(
                    "SELECT provider_id FROM provider_domains WHERE tenant = $1 AND domain = $2",
                )
                .bind(tenant)
                .bind(d)
                .fetch_optional(&mut *tx)
                .await?;
                if owner.is_some_and(|(o,)| o != row.id) {
                    return Ok(ProviderWrite::DomainTaken(d.clone()));
                }
            }
            sqlx::query(
                "INSERT INTO providers (tenant, id, enabled, listed, display_name, spec, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (tenant, id) DO UPDATE SET enabled = excluded.enabled, listed = excluded.listed,
                     display_name = excluded.display_name, spec = excluded.spec, updated_at = excluded.updated_at",
            )
            .bind(tenant)
            .bind(&row.id)
            .bind(row.enabled)
            .bind(row.listed)
            .bind(&row.display_name)
            .bind(&row.spec)
            .bind(row.updated_at)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM provider_domains WHERE tenant = $1 AND provider_id = $2")
                .bind(tenant)
                .bind(&row.id)
                .execute(&mut *tx)
                .await?;
            for d in domains {
                sqlx::query(
                    "INSERT INTO provider_domains (tenant, domain, provider_id) VALUES ($1, $2, $3)",
                )
                .bind(tenant)
                .bind(d)
                .bind(&row.id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(ProviderWrite::Written)
        })
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "delete_provider_row", db.system = self.engine(), otel.kind = "client"))]
    async fn delete_provider_row(&self, tenant: &str, id: &str) -> Result<bool, InternalError> {
        on_write!(self, |p| {
            let mut tx = p.begin().await?;
            sqlx::query("DELETE FROM provider_domains WHERE tenant = $1 AND provider_id = $2")
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            // A provider re-created under this id links nothing of this one's.
            sqlx::query("DELETE FROM external_identities WHERE tenant = $1 AND provider_id = $2")
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let n = sqlx::query("DELETE FROM providers WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(n > 0)
        })
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "provider_for_domain", db.system = self.engine(), otel.kind = "client"))]
    async fn provider_for_domain(
        &self,
        tenant: &str,
        domain: &str,
    ) -> Result<Option<String>, InternalError> {
        let row: Option<(String,)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT provider_id FROM provider_domains WHERE tenant = $1 AND domain = $2",
            )
            .bind(tenant)
            .bind(domain)
            .fetch_optional(p)
            .await?
        });
        Ok(row.map(|(id,)| id))
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "find_link", db.system = self.engine(), otel.kind = "client"))]
    async fn find_link(
        &self,
        tenant: &str,
        provider: &str,
        upstream: &str,
        upstream_subject: &str,
    ) -> Result<Option<String>, InternalError> {
        let row: Option<(String,)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT subject FROM external_identities
                 WHERE tenant = $1 AND provider_id = $2 AND upstream = $3 AND upstream_subject = $4",
            )
            .bind(tenant)
            .bind(provider)
            .bind(upstream)
            .bind(upstream_subject)
            .fetch_optional(p)
            .await?
        });
        Ok(row.map(|(s,)| s))
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "adopt_legacy_link", db.system = self.engine(), otel.kind = "client"))]
    async fn adopt_legacy_link(
        &self,
        tenant: &str,
        provider: &str,
        upstream: &str,
        upstream_subject: &str,
    ) -> Result<Option<String>, InternalError> {
        let row: Option<(String,)> = on_write!(self, |p| {
            sqlx::query_as(
                "UPDATE external_identities SET upstream = $3
                 WHERE tenant = $1 AND provider_id = $2 AND upstream = '' AND upstream_subject = $4
                 RETURNING subject",
            )
            .bind(tenant)
            .bind(provider)
            .bind(upstream)
            .bind(upstream_subject)
            .fetch_optional(p)
            .await?
        });
        Ok(row.map(|(s,)| s))
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "insert_link", db.system = self.engine(), otel.kind = "client"))]
    async fn insert_link(
        &self,
        tenant: &str,
        provider: &str,
        upstream: &str,
        upstream_subject: &str,
        subject: &str,
        now: i64,
    ) -> Result<bool, InternalError> {
        on_write!(self, |p| {
            Ok(sqlx::query(
                "INSERT INTO external_identities (tenant, provider_id, upstream, upstream_subject, subject, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(tenant)
            .bind(provider)
            .bind(upstream)
            .bind(upstream_subject)
            .bind(subject)
            .bind(now)
            .execute(p)
            .await?
            .rows_affected()
                > 0)
        })
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "find_users_by_email", db.system = self.engine(), otel.kind = "client"))]
    async fn find_users_by_email(
        &self,
        tenant: &str,
        email: &str,
    ) -> Result<Vec<UserSpec>, InternalError> {
        let rows: Vec<(String,)> = match self {
            Store::Sqlite(pools) => {
                sqlx::query_as(
                    "SELECT spec FROM users WHERE tenant = $1
                     AND lower(json_extract(spec, '$.claims.email')) = lower($2) LIMIT 2",
                )
                .bind(tenant)
                .bind(email)
                .fetch_all(&pools.read)
                .await?
            }
            Store::Postgres(p, _) => {
                sqlx::query_as(
                    "SELECT spec FROM users WHERE tenant = $1
                     AND lower((spec::jsonb) -> 'claims' ->> 'email') = lower($2) LIMIT 2",
                )
                .bind(tenant)
                .bind(email)
                .fetch_all(p)
                .await?
            }
        };
        rows.into_iter()
            .map(|(json,)| serde_json::from_str(&json).map_err(Into::into))
            .collect()
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "sessions_by_upstream_sid", db.system = self.engine(), otel.kind = "client"))]
    async fn sessions_by_upstream_sid(
        &self,
        tenant: &str,
        idp: &str,
        upstream_sid: &str,
    ) -> Result<Vec<SessionRecord>, InternalError> {
        let rows: Vec<SessionRow> = on_pool!(self, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SESSION_SELECT} WHERE tenant = $1 AND idp = $2 AND upstream_sid = $3"
            )))
            .bind(tenant)
            .bind(idp)
            .bind(upstream_sid)
            .fetch_all(p)
            .await?
        });
        Ok(rows.into_iter().map(session_from_row).collect())
    }
}
