//! SAML service providers registered at runtime, per tenant, by entity id (the tenant files'
//! SPs live in the tenant spec).

use super::Store;
use crate::error::InternalError;

/// A stored registration: the definition as JSON (`config::tenant::SamlSpDefinition`).
#[derive(Debug, Clone)]
pub struct SamlSpRow {
    pub entity_id: String,
    pub enabled: bool,
    pub spec: String,
    pub updated_at: i64,
}

type SamlSpTuple = (String, bool, String, i64);

fn row_from(r: SamlSpTuple) -> SamlSpRow {
    let (entity_id, enabled, spec, updated_at) = r;
    SamlSpRow {
        entity_id,
        enabled,
        spec,
        updated_at,
    }
}

pub trait SamlSpStore {
    fn find_saml_sp(
        &self,
        tenant: &str,
        entity_id: &str,
    ) -> impl Future<Output = Result<Option<SamlSpRow>, InternalError>> + Send;
    /// Registrations of a tenant by entity id, at most `limit`, after `after` (paging).
    fn list_saml_sps(
        &self,
        tenant: &str,
        after: &str,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<SamlSpRow>, InternalError>> + Send;
    fn upsert_saml_sp(
        &self,
        tenant: &str,
        row: &SamlSpRow,
    ) -> impl Future<Output = Result<(), InternalError>> + Send;
    fn delete_saml_sp(
        &self,
        tenant: &str,
        entity_id: &str,
    ) -> impl Future<Output = Result<bool, InternalError>> + Send;
}

impl SamlSpStore for Store {
    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "find_saml_sp", db.system = self.engine(), otel.kind = "client"))]
    async fn find_saml_sp(
        &self,
        tenant: &str,
        entity_id: &str,
    ) -> Result<Option<SamlSpRow>, InternalError> {
        let row: Option<SamlSpTuple> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT entity_id, enabled, spec, updated_at FROM saml_service_providers
                 WHERE tenant = $1 AND entity_id = $2",
            )
            .bind(tenant)
            .bind(entity_id)
            .fetch_optional(p)
            .await?
        });
        Ok(row.map(row_from))
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "list_saml_sps", db.system = self.engine(), otel.kind = "client"))]
    async fn list_saml_sps(
        &self,
        tenant: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<SamlSpRow>, InternalError> {
        let rows: Vec<SamlSpTuple> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT entity_id, enabled, spec, updated_at FROM saml_service_providers
                 WHERE tenant = $1 AND entity_id > $2 ORDER BY entity_id LIMIT $3",
            )
            .bind(tenant)
            .bind(after)
            .bind(limit)
            .fetch_all(p)
            .await?
        });
        Ok(rows.into_iter().map(row_from).collect())
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "upsert_saml_sp", db.system = self.engine(), otel.kind = "client"))]
    async fn upsert_saml_sp(&self, tenant: &str, row: &SamlSpRow) -> Result<(), InternalError> {
        on_write!(self, |p| {
            sqlx::query(
                "INSERT INTO saml_service_providers (tenant, entity_id, enabled, spec, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (tenant, entity_id) DO UPDATE SET enabled = excluded.enabled,
                     spec = excluded.spec, updated_at = excluded.updated_at",
            )
            .bind(tenant)
            .bind(&row.entity_id)
            .bind(row.enabled)
            .bind(&row.spec)
            .bind(row.updated_at)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    #[tracing::instrument(level = "trace", name = "store", skip_all, fields(op = "delete_saml_sp", db.system = self.engine(), otel.kind = "client"))]
    async fn delete_saml_sp(&self, tenant: &str, entity_id: &str) -> Result<bool, InternalError> {
        on_write!(self, |p| {
            let n = sqlx::query(
                "DELETE FROM saml_service_providers WHERE tenant = $1 AND entity_id = $2",
            )
            .bind(tenant)
            .bind(entity_id)
            .execute(p)
            .await?
            .rows_affected();
            Ok(n > 0)
        })
    }
}
