-- Federation: upstream providers added at runtime, external identities linked to local users,
-- and how a session was signed in.

CREATE TABLE providers (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    enabled     BOOLEAN NOT NULL,
    listed      BOOLEAN NOT NULL,
    display_name TEXT NOT NULL,
    spec        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);

-- Home-realm discovery: an email domain names at most one provider per tenant.
CREATE TABLE provider_domains (
    tenant      TEXT NOT NULL,
    domain      TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    PRIMARY KEY (tenant, domain)
);
CREATE INDEX provider_domains_by_provider ON provider_domains (tenant, provider_id);

CREATE TABLE external_identities (
    tenant           TEXT NOT NULL,
    provider_id      TEXT NOT NULL,
    upstream_subject TEXT NOT NULL,
    subject          TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant, provider_id, upstream_subject)
);
CREATE INDEX external_identities_by_subject ON external_identities (tenant, subject);

-- Account linking by verified email looks users up by their email claim.
CREATE INDEX users_by_email ON users (tenant, (lower((spec::jsonb) -> 'claims' ->> 'email')));

ALTER TABLE sessions ADD COLUMN idp TEXT NOT NULL DEFAULT 'local';
ALTER TABLE sessions ADD COLUMN upstream_sid TEXT;
-- What logging out upstream needs (OIDC id token; SAML NameID and SessionIndex), as JSON.
ALTER TABLE sessions ADD COLUMN upstream TEXT;
CREATE INDEX sessions_by_upstream ON sessions (tenant, idp, upstream_sid);
