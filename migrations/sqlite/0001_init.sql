-- Portcullis schema, version 1 (SQLite). Times are Unix seconds.
CREATE TABLE tenants (
    slug        TEXT PRIMARY KEY NOT NULL,
    spec        TEXT NOT NULL,
    source      TEXT NOT NULL,
    version     BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE clients (
    tenant      TEXT NOT NULL REFERENCES tenants (slug) ON DELETE CASCADE,
    client_id   TEXT NOT NULL,
    spec        TEXT NOT NULL,
    source      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, client_id)
);

CREATE TABLE signing_keys (
    tenant          TEXT NOT NULL,
    kid             TEXT NOT NULL,
    alg             TEXT NOT NULL,
    generation      BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    activates_at    BIGINT NOT NULL,
    public_jwk      TEXT NOT NULL,
    private_sealed  BLOB NOT NULL,
    PRIMARY KEY (tenant, kid),
    UNIQUE (tenant, alg, generation)
);

CREATE TABLE grants (
    tenant       TEXT NOT NULL,
    handle_hash  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    subject      TEXT,
    data         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    consumed_at  BIGINT,
    PRIMARY KEY (tenant, handle_hash)
);
CREATE INDEX grants_expires_at ON grants (expires_at);
