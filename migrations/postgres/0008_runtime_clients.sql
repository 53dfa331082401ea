-- Portcullis schema, version 8: runtime clients (admin API, CLI, registration). They live in
-- the clients table under a source of their own; each tenant counts them, so that a quota is
-- checked and taken in the statement that adds one, whatever their number.
ALTER TABLE tenants ADD COLUMN runtime_clients BIGINT NOT NULL DEFAULT 0;
