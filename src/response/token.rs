//! Token responses (RFC 6749 §5.1): JWT access tokens per RFC 9068, or reference tokens.

use crate::config::tenant::TokenFormat;
use crate::error::{InternalError, OAuthError, json_no_store};
use crate::protocol::token::TokenResponse;
use crate::registry::Tenant;
use crate::request::RequestContext;
use crate::state::AppState;
use crate::stores::{Consumed, GrantKind, GrantRecord, GrantStore};
use crate::tokens::{self, AccessTokenClaims, Audience};
use crate::validation::token::client_credentials::ValidatedClientCredentials;
use crate::validation::token::{Issue, ValidatedGrant};
use axum::http::StatusCode;
use axum::response::Response;

pub async fn client_credentials(
    state: &AppState,
    tenant: &Tenant,
    v: ValidatedClientCredentials,
    ctx: &RequestContext,
    dpop_jkt: Option<&str>,
) -> Result<Response, OAuthError> {
    let client = v.client();
    let now = state.now();
    let lifetime = client
        .spec
        .access_token_lifetime
        .unwrap_or(tenant.spec.tokens.access_token_lifetime);
    let scope = v.scopes().join(" ");
    let jti = tokens::new_jti();
    let claims = AccessTokenClaims {
        iss: &tenant.spec.issuer,
        // RFC 9068 §2.2: for client_credentials the subject is the client itself.
        sub: &client.spec.client_id,
        aud: Audience(v.audiences()),
        client_id: &client.spec.client_id,
        scope: &scope,
        jti: &jti,
        iat: now,
        nbf: now,
        exp: now + lifetime,
        cnf: tokens::cnf(v.cert_binding(), dpop_jkt),
    };
    let format = client
        .spec
        .access_token_format
        .unwrap_or(tenant.default_token_format());
    let access_token = match format {
        TokenFormat::Jwt => {
            let alg = tenant.spec.tokens.access_token_algorithm;
            let keys = crate::registry::sync::keys_to_sign(state, tenant, alg).await?;
            let signer = keys.signer(alg).ok_or_else(|| {
                InternalError::Other(format!("tenant {} has no active {alg} key", tenant.slug()))
            })?;
            signer.sign_jwt("at+jwt", &claims)?
        }
        TokenFormat::Reference => {
            let handle = tokens::new_handle();
            let record = GrantRecord {
                handle_hash: tokens::handle_hash(&handle),
                client_id: client.spec.client_id.clone(),
                subject: Some(client.spec.client_id.clone()),
                data: serde_json::to_string(&claims).map_err(InternalError::from)?,
                created_at: now,
                expires_at: now + lifetime,
                consumed_at: None,
                ..GrantRecord::of(GrantKind::ReferenceToken)
            };
            state.store.insert_grant(tenant.slug(), &record).await?;
            handle
        }
    };
    tenant.metrics.token_issued("client_credentials");
    crate::events::token_issued(
        tenant.slug(),
        &client.spec.client_id,
        &ctx.request_id,
        "client_credentials",
        &jti,
    );
    let body = serde_json::to_vec(&TokenResponse {
        access_token: &access_token,
        // RFC 9449 §5: a DPoP-bound token says so.
        token_type: if dpop_jkt.is_some() { "DPoP" } else { "Bearer" },
        expires_in: lifetime,
        scope: &scope,
        refresh_token: None,
        id_token: None,
        issued_token_type: None,
    })
    .map_err(InternalError::from)?;
    Ok(json_no_store(StatusCode::OK, body))
}

/// The facts a user's tokens are made of, whichever grant produced them.
struct UserGrant<'a> {
    subject: &'a str,
    scopes: &'a [String],
    audiences: &'a [String],
    auth_time: i64,
    amr: &'a [String],
    acr: &'a str,
    idp: &'a str,
    sid: &'a str,
    nonce: Option<&'a str>,
    family: &'a str,
    /// End of the refresh token family (absolute lifetime).
    absolute_expires_at: i64,
    /// RFC 8705 §3: the certificate thumbprint the tokens are bound to.
    cert_binding: Option<&'a str>,
    /// RFC 9449 §6: the DPoP key thumbprint the tokens are bound to.
    dpop_jkt: Option<&'a str>,
}

/// Tokens signed and the grant records that must be written with them.
struct Issued {
    token_type: &'static str,
    access_token: String,
    id_token: Option<String>,
    refresh_token: Option<String>,
    records: Vec<GrantRecord>,
    lifetime: i64,
    scope: String,
}

async fn issue_user_tokens(
    state: &AppState,
    tenant: &Tenant,
    client: &crate::config::Client,
    g: &UserGrant<'_>,
) -> Result<Issued, OAuthError> {
    let now = state.now();
    let user = crate::users::directory::by_subject(&state.store, tenant, g.subject)
        .await?
        .filter(|u| u.enabled)
        .ok_or_else(|| OAuthError::invalid_grant("the user no longer exists or is disabled"))?;
    let lifetime = client
        .spec
        .access_token_lifetime
        .unwrap_or(tenant.spec.tokens.access_token_lifetime);
    let scope = g.scopes.join(" ");
    let keys = crate::registry::sync::signing_keys(state, tenant).await?;
    let mut records = Vec::new();
    let access_token = user_access_token(
        tenant,
        client,
        g,
        &scope,
        (now, lifetime),
        &keys,
        &mut records,
    )?;
    let id_token = if g.scopes.iter().any(|s| s == "openid") {
        Some(id_token(
            tenant,
            client,
            g,
            &user,
            &access_token,
            now,
            &keys,
        )?)
    } else {
        None
    };
    let refresh_token = if g.scopes.iter().any(|s| s == "offline_access")
        && client.allows_grant(crate::config::tenant::GrantType::RefreshToken)
    {
        Some(new_refresh_token(tenant, client, g, now, &mut records)?)
    } else {
        None
    };
    Ok(Issued {
        token_type: if g.dpop_jkt.is_some() {
            "DPoP"
        } else {
            "Bearer"
        },
        access_token,
        id_token,
        refresh_token,
        records,
        lifetime,
        scope,
    })
}

/// The tenant's active signing key for `alg`.
fn signer<'k>(
    tenant: &Tenant,
    keys: &'k crate::keys::KeySet,
    alg: crate::keys::Alg,
) -> Result<&'k crate::keys::Signer, InternalError> {
    keys.signer(alg).map(|s| &**s).ok_or_else(|| {
        InternalError::Other(format!("tenant {} has no active {alg} key", tenant.slug()))
    })
}

/// A user's access token (RFC 9068 JWT or reference handle), and its grant record: a JWT is
/// recorded by jti, so that revoking the family also ends it at this server's endpoints.
fn user_access_token(
    tenant: &Tenant,
    client: &crate::config::Client,
    g: &UserGrant<'_>,
    scope: &str,
    (now, lifetime): (i64, i64),
    keys: &crate::keys::KeySet,
    records: &mut Vec<GrantRecord>,
) -> Result<String, OAuthError> {
    let jti = tokens::new_jti();
    let claims = tokens::UserAccessClaims {
        iss: tenant.spec.issuer.clone(),
        sub: g.subject.to_string(),
        aud: match g.audiences {
            [] => serde_json::Value::String(tenant.default_audience.clone()),
            [one] => serde_json::Value::String(one.clone()),
            many => serde_json::json!(many),
        },
        client_id: client.spec.client_id.clone(),
        scope: scope.to_string(),
        jti: jti.clone(),
        iat: now,
        nbf: now,
        exp: now + lifetime,
        auth_time: g.auth_time,
        sid: Some(g.sid.to_string()),
        amr: g.amr.to_vec(),
        acr: Some(g.acr.to_string()),
        cnf: tokens::cnf(g.cert_binding, g.dpop_jkt),
        idp: Some(g.idp.to_string()),
    };
    let format = client
        .spec
        .access_token_format
        .unwrap_or(tenant.default_token_format());
    let record = |kind, handle_hash, data| GrantRecord {
        handle_hash,
        client_id: client.spec.client_id.clone(),
        subject: Some(g.subject.to_string()),
        data,
        created_at: now,
        expires_at: now + lifetime,
        family: Some(g.family.to_string()),
        session_id: Some(g.sid.to_string()),
        ..GrantRecord::of(kind)
    };
    Ok(match format {
        TokenFormat::Jwt => {
            records.push(record(
                GrantKind::AccessToken,
                tokens::handle_hash(&jti),
                String::new(),
            ));
            signer(tenant, keys, tenant.spec.tokens.access_token_algorithm)?
                .sign_jwt("at+jwt", &claims)?
        }
        TokenFormat::Reference => {
            let handle = tokens::new_handle();
            let data = serde_json::to_string(&claims).map_err(InternalError::from)?;
            records.push(record(
                GrantKind::ReferenceToken,
                tokens::handle_hash(&handle),
                data,
            ));
            handle
        }
    })
}

/// The id token (OIDC Core §2, §3.1.3.6).
fn id_token(
    tenant: &Tenant,
    client: &crate::config::Client,
    g: &UserGrant<'_>,
    user: &crate::config::tenant::UserSpec,
    access_token: &str,
    now: i64,
    keys: &crate::keys::KeySet,
) -> Result<String, OAuthError> {
    let alg = client
        .spec
        .interactive
        .id_token_alg
        .unwrap_or(tenant.spec.tokens.id_token_algorithm);
    let mut c = serde_json::Map::new();
    c.insert("iss".into(), tenant.spec.issuer.clone().into());
    c.insert("sub".into(), g.subject.into());
    c.insert("aud".into(), client.spec.client_id.clone().into());
    c.insert("iat".into(), now.into());
    c.insert(
        "exp".into(),
        (now + tenant.spec.tokens.id_token_lifetime).into(),
    );
    c.insert("auth_time".into(), g.auth_time.into());
    if let Some(n) = g.nonce {
        c.insert("nonce".into(), n.into());
    }
    c.insert("sid".into(), g.sid.into());
    c.insert("amr".into(), serde_json::json!(g.amr));
    c.insert("acr".into(), g.acr.into());
    c.insert("idp".into(), g.idp.into());
    // OIDC Core §3.1.3.6 / §3.3.2.11
    c.insert(
        "at_hash".into(),
        tokens::half_hash(alg, access_token).into(),
    );
    if client
        .spec
        .interactive
        .always_include_user_claims_in_id_token
    {
        for (k, v) in tokens::user_claims(tenant, user, g.scopes) {
            c.entry(k).or_insert(v);
        }
    }
    Ok(signer(tenant, keys, alg)?.sign_jwt("JWT", &serde_json::Value::Object(c))?)
}

/// A refresh token: a handle whose record holds what the refresh grant needs (one-time use,
/// sliding lifetime within the family's absolute one).
fn new_refresh_token(
    tenant: &Tenant,
    client: &crate::config::Client,
    g: &UserGrant<'_>,
    now: i64,
    records: &mut Vec<GrantRecord>,
) -> Result<String, OAuthError> {
    let handle = tokens::new_handle();
    let data = crate::validation::token::refresh_token::RefreshData {
        scopes: g.scopes.to_vec(),
        audiences: g.audiences.to_vec(),
        auth_time: g.auth_time,
        amr: g.amr.to_vec(),
        acr: g.acr.to_string(),
        idp: g.idp.to_string(),
        sid: g.sid.to_string(),
        absolute_expires_at: g.absolute_expires_at,
        // RFC 8705 §4: confidential clients' refresh tokens are bound by client
        // authentication; public clients' to the certificate.
        cert_binding: g
            .cert_binding
            .filter(|_| client.spec.interactive.public)
            .map(str::to_string),
        // RFC 9449 §5: a public client's refresh token is bound to its DPoP key.
        dpop_jkt: g
            .dpop_jkt
            .filter(|_| client.spec.interactive.public)
            .map(str::to_string),
    };
    records.push(GrantRecord {
        handle_hash: tokens::handle_hash(&handle),
        client_id: client.spec.client_id.clone(),
        subject: Some(g.subject.to_string()),
        data: serde_json::to_string(&data).map_err(InternalError::from)?,
        created_at: now,
        expires_at: (now + tenant.spec.tokens.refresh_token_sliding_lifetime)
            .min(g.absolute_expires_at),
        family: Some(g.family.to_string()),
        session_id: Some(g.sid.to_string()),
        ..GrantRecord::of(GrantKind::RefreshToken)
    });
    Ok(handle)
}

fn user_token_response(
    tenant: &Tenant,
    client_id: &str,
    ctx: &RequestContext,
    grant: &str,
    issued: &Issued,
) -> Result<Response, OAuthError> {
    tenant.metrics.token_issued(grant);
    crate::events::token_issued(tenant.slug(), client_id, &ctx.request_id, grant, "-");
    let body = serde_json::to_vec(&TokenResponse {
        access_token: &issued.access_token,
        token_type: issued.token_type,
        expires_in: issued.lifetime,
        scope: &issued.scope,
        refresh_token: issued.refresh_token.as_deref(),
        id_token: issued.id_token.as_deref(),
        issued_token_type: None,
    })
    .map_err(InternalError::from)?;
    Ok(json_no_store(StatusCode::OK, body))
}

/// RFC 6749 §4.1.4: tokens for a code, written in the same statement that records its use.
pub async fn authorization_code(
    state: &AppState,
    tenant: &Tenant,
    v: crate::validation::token::authorization_code::ValidatedCode,
    ctx: &RequestContext,
    dpop_jkt: Option<&str>,
) -> Result<Response, OAuthError> {
    let data = v.data();
    // RFC 9449 §10: a code requested with dpop_jkt is redeemed only with that key.
    if let Some(expected) = &data.dpop_jkt
        && dpop_jkt != Some(expected.as_str())
    {
        return Err(OAuthError::new(
            crate::error::ErrorCode::InvalidDpopProof,
            if dpop_jkt.is_none() {
                "the code is bound to a DPoP key: send a proof made with it"
            } else {
                "the code is bound to another DPoP key"
            },
        ));
    }
    let now = state.now();
    let issued = issue_user_tokens(
        state,
        tenant,
        v.client(),
        &UserGrant {
            subject: &data.subject,
            scopes: &data.scopes,
            audiences: &data.audiences,
            auth_time: data.auth_time,
            amr: &data.amr,
            acr: &data.acr,
            idp: &data.idp,
            sid: &data.sid,
            nonce: data.nonce.as_deref(),
            family: &data.family,
            absolute_expires_at: now + tenant.spec.tokens.refresh_token_absolute_lifetime,
            cert_binding: v.cert_binding(),
            dpop_jkt,
        },
    )
    .await?;
    let marker = GrantRecord {
        handle_hash: v.code_hash().to_string(),
        client_id: data.client_id.clone(),
        subject: Some(data.subject.clone()),
        created_at: now,
        expires_at: data.expires_at,
        consumed_at: Some(now),
        family: Some(data.family.clone()),
        session_id: Some(data.sid.clone()),
        ..GrantRecord::of(GrantKind::CodeUsed)
    };
    if !state
        .store
        .redeem_once(tenant.slug(), &marker, &issued.records)
        .await?
    {
        // RFC 6749 §4.1.2: a second redemption revokes everything issued from the code,
        // including what this attempt just wrote.
        crate::validation::token::authorization_code::revoke_family(state, tenant, &marker, ctx)
            .await?;
        return Err(OAuthError::invalid_grant(
            "the code is invalid, expired or already used",
        ));
    }
    user_token_response(tenant, &data.client_id, ctx, "authorization_code", &issued)
}

/// RFC 6749 §6: new tokens for a refresh token; the old one is consumed unless the client
/// is configured to reuse refresh tokens.
pub async fn refresh_token(
    state: &AppState,
    tenant: &Tenant,
    v: crate::validation::token::refresh_token::ValidatedRefresh,
    ctx: &RequestContext,
    dpop_jkt: Option<&str>,
) -> Result<Response, OAuthError> {
    let record = v.record();
    let data = v.data();
    // RFC 9449 §5: a key-bound refresh token needs a proof with the same key. A missing proof
    // or a valid proof of another key is not an invalid proof (`invalid_dpop_proof`): the
    // refresh token is not usable by this sender, RFC 6749 §5.2 `invalid_grant`.
    if let Some(expected) = &data.dpop_jkt
        && dpop_jkt != Some(expected.as_str())
    {
        return Err(OAuthError::invalid_grant(if dpop_jkt.is_none() {
            "the refresh token is bound to a DPoP key: send a proof made with it"
        } else {
            "the refresh token is bound to another DPoP key"
        }));
    }
    let family = record.family.clone().unwrap_or_else(tokens::new_jti);
    let subject = record.subject.clone().unwrap_or_default();
    let reuse = v.client().spec.interactive.refresh_token_reuse;
    let mut issued = issue_user_tokens(
        state,
        tenant,
        v.client(),
        &UserGrant {
            subject: &subject,
            scopes: v.scopes(),
            audiences: &data.audiences,
            auth_time: data.auth_time,
            amr: &data.amr,
            acr: &data.acr,
            idp: &data.idp,
            sid: &data.sid,
            nonce: None,
            family: &family,
            absolute_expires_at: data.absolute_expires_at,
            cert_binding: v.cert_binding().or(data.cert_binding.as_deref()),
            dpop_jkt: dpop_jkt.or(data.dpop_jkt.as_deref()),
        },
    )
    .await?;
    if reuse {
        issued.records.retain(|r| r.kind != GrantKind::RefreshToken);
        issued.refresh_token = None;
        for r in &issued.records {
            state.store.insert_grant(tenant.slug(), r).await?;
        }
    } else {
        match state
            .store
            .consume_grant(
                tenant.slug(),
                &record.handle_hash,
                state.now(),
                &issued.records,
            )
            .await?
        {
            Consumed::Fresh(_) => {}
            Consumed::Replayed(r) => {
                crate::validation::token::authorization_code::revoke_family(state, tenant, &r, ctx)
                    .await?;
                return Err(OAuthError::invalid_grant(
                    "the refresh token was already used",
                ));
            }
            Consumed::Dead | Consumed::NotFound => {
                return Err(OAuthError::invalid_grant("the refresh token is invalid"));
            }
        }
    }
    user_token_response(
        tenant,
        &v.client().spec.client_id,
        ctx,
        "refresh_token",
        &issued,
    )
}

/// RFC 8628 §3.5 (and CIBA Core §11): tokens for an approved device authorization (or
/// backchannel request), written in the same transaction that consumes it (a second redemption
/// finds it consumed and gets nothing).
pub async fn device_code(
    state: &AppState,
    tenant: &Tenant,
    v: crate::validation::token::device_code::ValidatedDeviceCode,
    ctx: &RequestContext,
    dpop_jkt: Option<&str>,
) -> Result<Response, OAuthError> {
    let now = state.now();
    let approval = v.approval();
    let family = tokens::new_jti();
    let issued = issue_user_tokens(
        state,
        tenant,
        v.client(),
        &UserGrant {
            subject: &approval.subject,
            scopes: v.scopes(),
            audiences: v.audiences(),
            auth_time: approval.auth_time,
            amr: &approval.amr,
            acr: &approval.acr,
            idp: &approval.idp,
            sid: &approval.sid,
            nonce: None,
            family: &family,
            absolute_expires_at: now + tenant.spec.tokens.refresh_token_absolute_lifetime,
            cert_binding: v.cert_binding(),
            dpop_jkt,
        },
    )
    .await?;
    match state
        .store
        .consume_grant(tenant.slug(), &v.record().handle_hash, now, &issued.records)
        .await?
    {
        Consumed::Fresh(_) => {}
        _ => {
            return Err(OAuthError::invalid_grant(
                "the grant is invalid or was already used",
            ));
        }
    }
    let grant = if v.record().kind == GrantKind::BackchannelAuth {
        crate::config::tenant::CIBA_GRANT
    } else {
        crate::tokens::user_code::DEVICE_CODE_GRANT
    };
    user_token_response(tenant, &v.client().spec.client_id, ctx, grant, &issued)
}

/// Tokens for an extension grant (token exchange, JWT bearer, password): a signed-in user's
/// tokens, or one access token about the subject another token stood for (RFC 8693 §2.2.1).
pub async fn extension(
    state: &AppState,
    tenant: &Tenant,
    v: ValidatedGrant,
    ctx: &RequestContext,
    dpop_jkt: Option<&str>,
) -> Result<Response, OAuthError> {
    let derived = match v.issue() {
        Issue::SignIn(s) => {
            let now = state.now();
            let (family, sid) = (tokens::new_jti(), tokens::new_jti());
            let issued = issue_user_tokens(
                state,
                tenant,
                v.client(),
                &UserGrant {
                    subject: &s.subject,
                    scopes: v.scopes(),
                    audiences: v.audiences(),
                    auth_time: now,
                    amr: &s.amr,
                    acr: &s.acr,
                    idp: &s.idp,
                    sid: &sid,
                    nonce: None,
                    family: &family,
                    absolute_expires_at: now + tenant.spec.tokens.refresh_token_absolute_lifetime,
                    cert_binding: v.cert_binding(),
                    dpop_jkt,
                },
            )
            .await?;
            for r in &issued.records {
                state.store.insert_grant(tenant.slug(), r).await?;
            }
            return user_token_response(
                tenant,
                &v.client().spec.client_id,
                ctx,
                v.grant_type(),
                &issued,
            );
        }
        Issue::AccessToken(d) => d,
    };
    let client = v.client();
    let now = state.now();
    let lifetime = client
        .spec
        .access_token_lifetime
        .unwrap_or(tenant.spec.tokens.access_token_lifetime);
    // An exchanged token does not outlive the access token it came from.
    let exp = derived
        .not_after
        .map_or(now + lifetime, |n| n.min(now + lifetime));
    let scope = v.scopes().join(" ");
    let jti = tokens::new_jti();
    let mut claims = serde_json::Map::new();
    claims.insert("iss".into(), tenant.spec.issuer.clone().into());
    claims.insert("sub".into(), derived.subject.clone().into());
    claims.insert(
        "aud".into(),
        match v.audiences() {
            [one] => one.clone().into(),
            many => serde_json::json!(many),
        },
    );
    claims.insert("client_id".into(), client.spec.client_id.clone().into());
    claims.insert("scope".into(), scope.clone().into());
    claims.insert("jti".into(), jti.clone().into());
    claims.insert("iat".into(), now.into());
    claims.insert("nbf".into(), now.into());
    claims.insert("exp".into(), exp.into());
    for (k, val) in &derived.claims {
        claims.entry(k.clone()).or_insert_with(|| val.clone());
    }
    if let Some(cnf) = tokens::cnf(v.cert_binding(), dpop_jkt) {
        claims.insert("cnf".into(), cnf);
    }
    let sid = derived
        .claims
        .get("sid")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    let record = |kind, handle_hash, data| GrantRecord {
        handle_hash,
        client_id: client.spec.client_id.clone(),
        subject: Some(derived.subject.clone()),
        data,
        created_at: now,
        expires_at: exp,
        family: derived.family.clone(),
        session_id: sid.clone(),
        ..GrantRecord::of(kind)
    };
    let format =
        if derived.issued_token_type == Some(crate::validation::token::token_exchange::JWT_TYPE) {
            TokenFormat::Jwt
        } else {
            client
                .spec
                .access_token_format
                .unwrap_or(tenant.default_token_format())
        };
    let claims = serde_json::Value::Object(claims);
    let access_token = match format {
        TokenFormat::Jwt => {
            // A token with `sid` is checked against its record where it is presented
            // (`tokens::access`), so that revoking its family or session ends it.
            if sid.is_some() {
                state
                    .store
                    .insert_grant(
                        tenant.slug(),
                        &record(
                            GrantKind::AccessToken,
                            tokens::handle_hash(&jti),
                            String::new(),
                        ),
                    )
                    .await?;
            }
            let alg = tenant.spec.tokens.access_token_algorithm;
            let keys = crate::registry::sync::keys_to_sign(state, tenant, alg).await?;
            signer(tenant, &keys, alg)?.sign_jwt("at+jwt", &claims)?
        }
        TokenFormat::Reference => {
            let handle = tokens::new_handle();
            let data = serde_json::to_string(&claims).map_err(InternalError::from)?;
            state
                .store
                .insert_grant(
                    tenant.slug(),
                    &record(
                        GrantKind::ReferenceToken,
                        tokens::handle_hash(&handle),
                        data,
                    ),
                )
                .await?;
            handle
        }
    };
    tenant.metrics.token_issued(v.grant_type());
    crate::events::token_issued(
        tenant.slug(),
        &client.spec.client_id,
        &ctx.request_id,
        v.grant_type(),
        &jti,
    );
    let body = serde_json::to_vec(&TokenResponse {
        access_token: &access_token,
        token_type: if dpop_jkt.is_some() { "DPoP" } else { "Bearer" },
        expires_in: exp - now,
        scope: &scope,
        refresh_token: None,
        id_token: None,
        issued_token_type: derived.issued_token_type,
    })
    .map_err(InternalError::from)?;
    Ok(json_no_store(StatusCode::OK, body))
}
