-- External identities are linked per provider, upstream and subject: the upstream is the OIDC
-- issuer or the SAML IdP's entity id. A provider re-created under an old id for another
-- upstream finds none of the old links (security review, finding 8).
ALTER TABLE external_identities ADD COLUMN upstream TEXT NOT NULL DEFAULT '';
-- Links of runtime providers cannot be attributed to an upstream (their definition may have
-- changed since the link was made): they are not carried over. Links of file providers keep an
-- empty upstream and are keyed on first use, by the provider the operator's file defines.
DELETE FROM external_identities e
    WHERE EXISTS (SELECT 1 FROM providers p WHERE p.tenant = e.tenant AND p.id = e.provider_id);
ALTER TABLE external_identities DROP CONSTRAINT external_identities_pkey;
ALTER TABLE external_identities ADD PRIMARY KEY (tenant, provider_id, upstream, upstream_subject);
ALTER TABLE external_identities ALTER COLUMN upstream DROP DEFAULT;

-- Runtime provider definitions hold no file or environment references any more, their sealed
-- client secret is `client_secret` itself, and linking by email is the tenant file's decision.
UPDATE providers
    SET spec = jsonb_set(spec::jsonb #- '{oidc,client_secret_sealed}', '{oidc,client_secret}',
                         spec::jsonb #> '{oidc,client_secret_sealed}')::text
    WHERE spec::jsonb #> '{oidc,client_secret_sealed}' IS NOT NULL;
UPDATE providers
    SET spec = (spec::jsonb #- '{provisioning,link_by_verified_email}')::text
    WHERE spec::jsonb #> '{provisioning,link_by_verified_email}' IS NOT NULL;
