-- Portcullis schema, version 2: interactive sign-in. Times are Unix seconds.

-- Grants of one family (an authorization code and every token issued from it, a refresh
-- token and its rotations) are revoked together.
ALTER TABLE grants ADD COLUMN family TEXT;
ALTER TABLE grants ADD COLUMN session_id TEXT;
ALTER TABLE grants ADD COLUMN revoked_at BIGINT;
CREATE INDEX grants_family ON grants (tenant, family);

CREATE TABLE sessions (
    tenant        TEXT NOT NULL,
    sid           TEXT NOT NULL,
    handle_hash   TEXT NOT NULL,
    subject       TEXT NOT NULL,
    auth_time     BIGINT NOT NULL,
    amr           TEXT NOT NULL,
    acr           TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    clients       TEXT NOT NULL,
    PRIMARY KEY (tenant, sid),
    UNIQUE (tenant, handle_hash)
);
CREATE INDEX sessions_subject ON sessions (tenant, subject);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE users (
    tenant      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    username    TEXT NOT NULL,
    spec        TEXT NOT NULL,
    source      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, subject),
    UNIQUE (tenant, username)
);

CREATE TABLE consents (
    tenant      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    PRIMARY KEY (tenant, subject, client_id)
);

CREATE TABLE login_failures (
    tenant        TEXT NOT NULL,
    bucket        TEXT NOT NULL,
    failures      BIGINT NOT NULL,
    window_start  BIGINT NOT NULL,
    locked_until  BIGINT NOT NULL,
    PRIMARY KEY (tenant, bucket)
);
