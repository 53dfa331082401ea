-- CIBA: a user's pending backchannel authentication requests, for the approvals page. Partial,
-- so that the other grants (every access token's jti among them) cost no index write.
CREATE INDEX grants_backchannel_by_subject ON grants (tenant, subject, created_at)
    WHERE kind = 'backchannel_auth';
