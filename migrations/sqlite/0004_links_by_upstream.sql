-- External identities are linked per provider, upstream and subject: the upstream is the OIDC
-- issuer or the SAML IdP's entity id. A provider re-created under an old id for another
-- upstream finds none of the old links (security review, finding 8).
CREATE TABLE external_identities_keyed (
    tenant           TEXT NOT NULL,
    provider_id      TEXT NOT NULL,
    upstream         TEXT NOT NULL,
    upstream_subject TEXT NOT NULL,
    subject          TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant, provider_id, upstream, upstream_subject)
);
-- Links of runtime providers cannot be attributed to an upstream (their definition may have
-- changed since the link was made): they are not carried over. Links of file providers keep an
-- empty upstream and are keyed on first use, by the provider the operator's file defines.
INSERT INTO external_identities_keyed
    SELECT tenant, provider_id, '', upstream_subject, subject, created_at
    FROM external_identities e
    WHERE NOT EXISTS (SELECT 1 FROM providers p WHERE p.tenant = e.tenant AND p.id = e.provider_id);
DROP TABLE external_identities;
ALTER TABLE external_identities_keyed RENAME TO external_identities;
CREATE INDEX external_identities_by_subject ON external_identities (tenant, subject);

-- Runtime provider definitions hold no file or environment references any more, their sealed
-- client secret is `client_secret` itself, and linking by email is the tenant file's decision.
UPDATE providers
    SET spec = json_remove(
        json_set(spec, '$.oidc.client_secret', json_extract(spec, '$.oidc.client_secret_sealed')),
        '$.oidc.client_secret_sealed')
    WHERE json_extract(spec, '$.oidc.client_secret_sealed') IS NOT NULL;
UPDATE providers
    SET spec = json_remove(spec, '$.provisioning.link_by_verified_email')
    WHERE json_extract(spec, '$.provisioning.link_by_verified_email') IS NOT NULL;
