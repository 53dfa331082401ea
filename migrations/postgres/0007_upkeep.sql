-- Portcullis schema, version 7: upkeep. Times are Unix seconds unless named otherwise.

-- Change notices for nodes that poll instead of LISTEN (database.change_notices = "poll").
-- created_at is the database's clock in milliseconds; rows are swept after 10 minutes.
CREATE TABLE changes (
    seq         BIGSERIAL PRIMARY KEY,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX changes_created_at ON changes (created_at);

-- The sweep finds expired consents by their expiry.
CREATE INDEX consents_expires_at ON consents (expires_at);
