//! Clients that live in the database only: created by the admin API, the CLI or registration
//! (RFC 7591). They share the `clients` table with the tenant files' clients, under a source of
//! their own, so that a file's upsert (which removes only its own source's clients) never
//! touches them, and they cannot take a file client's id.

use super::{ChangeNotice, Store};
use crate::config::ClientSpec;
use crate::error::InternalError;
use sqlx::Connection as _;

/// The `clients.source` of clients created at run time.
pub const RUNTIME_SOURCE: &str = "runtime";

/// What [`RuntimeClientStore::insert_runtime_client`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    Done,
    /// The id is taken, by a file client or a runtime one: nothing written.
    Taken,
    /// The tenant holds `limit` runtime clients already (or is gone): nothing written.
    Full,
}

pub trait RuntimeClientStore {
    /// Inserts a runtime client if the tenant holds fewer than `limit` (counted and taken in
    /// the same transaction, so that racing inserts cannot pass it together).
    fn insert_runtime_client(
        &self,
        tenant: &str,
        spec: &ClientSpec,
        now: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Insert, InternalError>> + Send;
    /// Replaces a runtime client; false when there is no runtime client of that id.
    fn replace_runtime_client(
        &self,
        tenant: &str,
        spec: &ClientSpec,
        now: i64,
    ) -> impl Future<Output = Result<bool, InternalError>> + Send;
    /// Deletes a runtime client and, in the same transaction, revokes every grant issued to it
    /// (refresh and reference tokens, recorded access tokens, codes in flight) and its
    /// consents. False when there was no runtime client of that id.
    fn delete_runtime_client(
        &self,
        tenant: &str,
        client_id: &str,
        now: i64,
    ) -> impl Future<Output = Result<bool, InternalError>> + Send;
    /// A runtime client (`None` for a file client or an unknown id).
    fn runtime_client(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<ClientSpec>, InternalError>> + Send;
    /// A tenant's runtime clients by id, at most `limit`, after `after` (paging).
    fn list_runtime_clients(
        &self,
        tenant: &str,
        after: &str,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<ClientSpec>, InternalError>> + Send;
    /// How many runtime clients the tenant holds (one row read).
    fn count_runtime_clients(
        &self,
        tenant: &str,
    ) -> impl Future<Output = Result<i64, InternalError>> + Send;
}

impl RuntimeClientStore for Store {
    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "insert_runtime_client", db.system = self.engine(), otel.kind = "client"))]
    async fn insert_runtime_client(
        &self,
        tenant: &str,
        spec: &ClientSpec,
        now: i64,
        limit: i64,
    ) -> Result<Insert, InternalError> {
        let json = serde_json::to_string(spec)?;
        let outcome: Insert = on_write!(self, |p| {
            let mut tx = p.begin().await?;
            let counted = sqlx::query(
                "UPDATE tenants SET runtime_clients = runtime_clients + 1
                 WHERE slug = $1 AND runtime_clients < $2",
            )
            .bind(tenant)
            .bind(limit)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if !counted {
                return Ok(Insert::Full);
            }
            let inserted = sqlx::query(
                "INSERT INTO clients (tenant, client_id, spec, source, updated_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, client_id) DO NOTHING",
            )
            .bind(tenant)
            .bind(&spec.client_id)
            .bind(&json)
            .bind(RUNTIME_SOURCE)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if !inserted {
                return Ok(Insert::Taken);
            }
            tx.commit().await?;
            Ok::<Insert, InternalError>(Insert::Done)
        })?;
        if outcome == Insert::Done {
            announce(self, tenant, &spec.client_id).await?;
        }
        Ok(outcome)
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "replace_runtime_client", db.system = self.engine(), otel.kind = "client"))]
    async fn replace_runtime_client(
        &self,
        tenant: &str,
        spec: &ClientSpec,
        now: i64,
    ) -> Result<bool, InternalError> {
        let json = serde_json::to_string(spec)?;
        let replaced = on_write!(self, |p| {
            sqlx::query(
                "UPDATE clients SET spec = $3, updated_at = $4
                 WHERE tenant = $1 AND client_id = $2 AND source = $5",
            )
            .bind(tenant)
            .bind(&spec.client_id)
            .bind(&json)
            .bind(now)
            .bind(RUNTIME_SOURCE)
            .execute(p)
            .await?
            .rows_affected()
                > 0
        });
        if replaced {
            announce(self, tenant, &spec.client_id).await?;
        }
        Ok(replaced)
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "delete_runtime_client", db.system = self.engine(), otel.kind = "client"))]
    async fn delete_runtime_client(
        &self,
        tenant: &str,
        client_id: &str,
        now: i64,
    ) -> Result<bool, InternalError> {
        let deleted: bool = on_write!(self, |p| {
            let mut tx = p.begin().await?;
            let n = sqlx::query(
                "DELETE FROM clients WHERE tenant = $1 AND client_id = $2 AND source = $3",
            )
            .bind(tenant)
            .bind(client_id)
            .bind(RUNTIME_SOURCE)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                sqlx::query(
                    "UPDATE tenants SET runtime_clients = runtime_clients - 1
                     WHERE slug = $1 AND runtime_clients > 0",
                )
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE grants SET revoked_at = $3
                     WHERE tenant = $1 AND client_id = $2 AND revoked_at IS NULL",
                )
                .bind(tenant)
                .bind(client_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM consents WHERE tenant = $1 AND client_id = $2")
                    .bind(tenant)
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<bool, InternalError>(n > 0)
        })?;
        if deleted {
            announce(self, tenant, client_id).await?;
        }
        Ok(deleted)
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "runtime_client", db.system = self.engine(), otel.kind = "client"))]
    async fn runtime_client(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> Result<Option<ClientSpec>, InternalError> {
        let row: Option<(String,)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT spec FROM clients WHERE tenant = $1 AND client_id = $2 AND source = $3",
            )
            .bind(tenant)
            .bind(client_id)
            .bind(RUNTIME_SOURCE)
            .fetch_optional(p)
            .await?
        });
        row.map(|(json,)| serde_json::from_str(&json).map_err(InternalError::from))
            .transpose()
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "list_runtime_clients", db.system = self.engine(), otel.kind = "client"))]
    async fn list_runtime_clients(
        &self,
        tenant: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<ClientSpec>, InternalError> {
        let rows: Vec<(String,)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT spec FROM clients WHERE tenant = $1 AND source = $2 AND client_id > $3
                 ORDER BY client_id LIMIT $4",
            )
            .bind(tenant)
            .bind(RUNTIME_SOURCE)
            .bind(after)
            .bind(limit)
            .fetch_all(p)
            .await?
        });
        rows.into_iter()
            .map(|(json,)| serde_json::from_str(&json).map_err(InternalError::from))
            .collect()
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "count_runtime_clients", db.system = self.engine(), otel.kind = "client"))]
    async fn count_runtime_clients(&self, tenant: &str) -> Result<i64, InternalError> {
        let n: Option<(i64,)> = on_pool!(self, |p| {
            sqlx::query_as("SELECT runtime_clients FROM tenants WHERE slug = $1")
                .bind(tenant)
                .fetch_optional(p)
                .await?
        });
        Ok(n.map_or(0, |(n,)| n))
    }
}

/// Tells every node that a client of `tenant` changed: its cached copy goes, and with it any
/// cached grant issued to it.
async fn announce(store: &Store, tenant: &str, client_id: &str) -> Result<(), InternalError> {
    store
        .announce(&ChangeNotice::Client {
            tenant: tenant.to_string(),
            client_id: client_id.to_string(),
        })
        .await
}
