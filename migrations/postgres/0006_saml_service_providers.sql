-- SAML service providers registered at runtime (admin API, `portcullis saml-sps`), per tenant,
-- by entity id. `spec` is the registration as it was sent (JSON, no file names); the tenant
-- files' SPs are not here.

CREATE TABLE saml_service_providers (
    tenant      TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    enabled     BOOLEAN NOT NULL,
    spec        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, entity_id)
);
