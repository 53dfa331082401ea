//! The tenant as a SAML identity provider: the service providers it signs users in to.
//!
//! - [`service_provider`]: the one way to find an SP of a tenant by entity id — the tenant
//!   file's, else an enabled runtime one; completed from its metadata when it has a
//!   `metadata_url`;
//! - [`registry`]: the runtime SPs this node knows (a cache that change notices invalidate);
//! - [`metadata`]: an SP's own metadata, read with the hardened XML rules;
//! - [`admin`]: runtime registrations (the admin API and `portcullis saml-sps`).

pub mod admin;
pub mod metadata;
pub mod registry;

use crate::config::KeyPath;
use crate::config::tenant::SamlSp;
use crate::error::InternalError;
use crate::registry::Tenant;
use crate::state::AppState;
use std::sync::Arc;

/// The SP `entity_id` of `tenant`: the one its file registers, else its enabled runtime
/// registration; `None` if neither. An SP with a `metadata_url` comes completed from the
/// metadata the document cache holds (fetched through the outbound guard, refreshed by its
/// freshness rules); metadata that cannot be had or used is an error, not an unknown SP.
pub async fn service_provider(
    state: &AppState,
    tenant: &Tenant,
    entity_id: &str,
) -> Result<Option<Arc<SamlSp>>, InternalError> {
    let runtime;
    let base = match tenant
        .spec
        .saml_service_providers
        .iter()
        .find(|s| s.entity_id == entity_id)
    {
        // A file SP turned off is off: its entity id is not a runtime SP's either.
        Some(sp) if !sp.enabled => return Ok(None),
        Some(sp) => sp,
        None => {
            runtime = state
                .service_providers
                .runtime(tenant.slug(), entity_id)
                .await?;
            match &runtime {
                Some(r) if r.enabled => &r.sp,
                _ => return Ok(None),
            }
        }
    };
    let Some(url) = &base.metadata_url else {
        return Ok(Some(Arc::new(base.clone())));
    };
    let doc = state
        .documents
        .get(url, state.now())
        .await
        .map_err(|e| InternalError::Other(format!("metadata of SAML SP {entity_id}: {e}")))?;
    let key = registry::key(tenant.slug(), entity_id);
    let cache = &state.service_providers.completed;
    if let Some(c) = cache.get(&key).await
        && Arc::ptr_eq(&c.doc, &doc)
        && c.base == *base
    {
        return Ok(Some(c.sp.clone()));
    }
    let sp = completed(base, &doc.text, state.now())
        .map_err(|e| InternalError::Other(format!("metadata of SAML SP {entity_id}: {e}")))?;
    let sp = Arc::new(sp);
    cache
        .insert(
            key,
            Arc::new(registry::Completed {
                base: base.clone(),
                doc,
                sp: sp.clone(),
            }),
        )
        .await;
    Ok(Some(sp))
}

/// The problems of the SPs of a tenant file whose metadata cannot be fetched through the
/// outbound guard or does not complete them (keys as in the file: `saml_service_providers[0].…`).
pub async fn check_file_metadata(
    state: &AppState,
    path: &std::path::Path,
    text: &str,
    spec: &crate::config::tenant::TenantSpec,
) -> Vec<crate::config::ConfigError> {
    let mut out = Vec::new();
    for (i, sp) in spec.saml_service_providers.iter().enumerate() {
        let Some(url) = &sp.metadata_url else {
            continue;
        };
        let k = KeyPath::root().key("saml_service_providers").index(i);
        let mut problems: Vec<(KeyPath, String)> = Vec::new();
        match state.documents.get(url, state.now()).await {
            Err(e) => problems.push((
                k.key("metadata_url"),
                format!("the metadata cannot be fetched: {e}"),
            )),
            Ok(doc) => match metadata::parse(&doc.text, state.now()) {
                Err(e) => problems.push((k.key("metadata_url"), e)),
                Ok(md) => {
                    metadata::complete(sp, &md, &k, &mut |k, m| problems.push((k, m)));
                }
            },
        }
        out.extend(problems.into_iter().map(|(key, message)| {
            crate::config::ConfigError {
                file: path.to_path_buf(),
                line: crate::config::locate(text, &key)
                    .or_else(|| crate::config::locate(text, &k.key("metadata_url"))),
                key: key.to_string(),
                message,
            }
        }));
    }
    out
}

/// `base` completed from the metadata `xml`, or every problem (key: message).
pub fn completed(base: &SamlSp, xml: &str, now: i64) -> Result<SamlSp, String> {
    let md = metadata::parse(xml, now).map_err(|e| format!("metadata_url: {e}"))?;
    let mut problems = Vec::new();
    let sp = metadata::complete(base, &md, &KeyPath::root(), &mut |k, m| {
        problems.push(format!("{k}: {m}"))
    });
    if problems.is_empty() {
        Ok(sp)
    } else {
        Err(problems.join("; "))
    }
}
