-- Portcullis schema, version 7: upkeep. Times are Unix seconds.

-- The sweep finds expired consents by their expiry. (The change table is PostgreSQL's: one
-- SQLite node has no other node to tell.)
CREATE INDEX consents_expires_at ON consents (expires_at);
