//! `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693): a token of this
//! tenant, or a JWT of a trusted issuer, becomes a token of this tenant for another audience,
//! with at most the scopes both the subject token and the client hold. With an actor token
//! (delegation, §1.1) the issued token names its actor in `act` (§4.1); a workload client
//! trades its platform's token for one of this tenant (its token is its credential).

use super::{Derived, ExtensionGrant, GrantFuture, GrantRequest, Issue, ValidatedGrant};
use crate::config::Client;
use crate::config::tenant::{ExchangeMode, GrantType, TOKEN_EXCHANGE_GRANT};
use crate::error::{ErrorCode, InternalError, OAuthError};
use crate::registry::Tenant;
use crate::stores::{GrantKind, GrantStore};
use crate::validation::trusted::{self, Expect, Refused};
use serde_json::{Map, Value};

pub const GRANT: ExtensionGrant = ExtensionGrant {
    grant_type: TOKEN_EXCHANGE_GRANT,
    validate,
};

/// RFC 8693 §3 token type identifiers.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const REFRESH_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:refresh_token";
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
pub const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The token types read here (RFC 8693 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenType {
    AccessToken,
    RefreshToken,
    IdToken,
    Jwt,
}

impl TokenType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            ACCESS_TOKEN_TYPE => Self::AccessToken,
            REFRESH_TOKEN_TYPE => Self::RefreshToken,
            ID_TOKEN_TYPE => Self::IdToken,
            JWT_TYPE => Self::Jwt,
            _ => return None,
        })
    }
}

/// Who a subject or actor token stands for, and what of it carries over.
#[derive(Debug)]
struct Party {
    /// Its `sub` as the token says it.
    sub: String,
    /// The token's issuer: this tenant's, or a trusted issuer's.
    iss: String,
    /// The scopes it held; `None` for another issuer's token (its scopes mean nothing here).
    scopes: Option<Vec<String>>,
    /// `auth_time`, `amr`, `acr`, `idp`, `sid`, as the token had them.
    carried: Map<String, Value>,
    /// RFC 8693 §4.1 / §4.4
    act: Option<Value>,
    may_act: Option<Value>,
    /// This tenant's access token: its expiry (an exchanged token does not outlive it).
    expires_at: Option<i64>,
    /// This tenant's user token: its family (revoking it ends the exchanged token too).
    family: Option<String>,
    /// The client this tenant issued the token to.
    client_id: Option<String>,
    /// Set for another issuer's token: that issuer's subject template and scopes.
    external: Option<(String, Vec<String>)>,
    /// The whole of another issuer's claims (for its subject template).
    external_claims: Map<String, Value>,
}

impl Party {
    /// `sub` of `iss`, with nothing held or carried over.
    fn named(sub: String, iss: String) -> Self {
        Self {
            sub,
            iss,
            scopes: None,
            carried: Map::new(),
            act: None,
            may_act: None,
            expires_at: None,
            family: None,
            client_id: None,
            external: None,
            external_claims: Map::new(),
        }
    }
}

/// Why a token was not accepted: a refusal (`invalid_grant`), or keys that could not be had.
enum Bad {
    Token(&'static str),
    Unavailable(String),
    Internal(InternalError),
}

impl From<InternalError> for Bad {
    fn from(e: InternalError) -> Self {
        Bad::Internal(e)
    }
}

impl From<Refused> for Bad {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Invalid(m) => Bad::Token(m),
            Refused::Unavailable(m) => Bad::Unavailable(m),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Subject,
    Actor,
}

/// Keys this server carries from a user token into the one it exchanges for.
const CARRIED: &[&str] = &["auth_time", "amr", "acr", "idp", "sid"];

fn validate(r: GrantRequest<'_>) -> GrantFuture<'_> {
    Box::pin(async move {
        let tenant = r.tenant;
        let client = r.client.client();
        if !client.allows_grant(GrantType::TokenExchange) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client may not use token exchange",
            ));
        }
        let form = r.form;
        let refuse = |which: &str, reason: &str| {
            crate::events::grant_refused(
                tenant.slug(),
                &client.spec.client_id,
                &r.ctx.request_id,
                TOKEN_EXCHANGE_GRANT,
                &format!("{which}: {reason}"),
            );
            OAuthError::invalid_grant(format!("the {which} is refused: {reason}"))
        };
        let answer = |which: &str, bad: Bad| match bad {
            Bad::Token(reason) => refuse(which, reason),
            Bad::Unavailable(m) => OAuthError::new(ErrorCode::TemporarilyUnavailable, m),
            Bad::Internal(e) => e.into(),
        };
        // RFC 8693 §2.1: the subject token and its type are required; an actor token comes
        // with its type, and a type never comes alone.
        let subject_token = form
            .get("subject_token")
            .ok_or_else(|| OAuthError::invalid_request("subject_token is required"))?;
        let subject_type = token_type(form.get("subject_token_type"), "subject_token_type")?;
        let actor = match (form.get("actor_token"), form.get("actor_token_type")) {
            (Some(t), Some(ty)) => Some((t, token_type(Some(ty), "actor_token_type")?)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(OAuthError::invalid_request(
                    "actor_token_type is required with actor_token",
                ));
            }
            (None, Some(_)) => {
                return Err(OAuthError::invalid_request(
                    "actor_token_type without actor_token",
                ));
            }
        };
        if subject_token.len() > trusted::MAX_TOKEN_LEN
            || actor.is_some_and(|(t, _)| t.len() > trusted::MAX_TOKEN_LEN)
        {
            return Err(OAuthError::invalid_request("the token is too long"));
        }
        // RFC 8693 §2.1: this server issues access tokens (as JWTs when asked for `jwt`).
        let issued_token_type = match form.get("requested_token_type") {
            None | Some(ACCESS_TOKEN_TYPE) => ACCESS_TOKEN_TYPE,
            Some(JWT_TYPE) => JWT_TYPE,
            Some(_) => {
                return Err(OAuthError::invalid_request(
                    "requested_token_type: this server issues access tokens (access_token or jwt)",
                ));
            }
        };

        if let Some(policy) = &client.spec.workload {
            // The workload's token is its credential: it must satisfy the trust policy.
            if actor.is_some() {
                return Err(OAuthError::invalid_request(
                    "a workload client exchanges its own token, with no actor token",
                ));
            }
            if subject_type == TokenType::RefreshToken {
                return Err(refuse(
                    "subject token",
                    "a workload presents its platform's JWT",
                ));
            }
            let token = trusted::verify(r.state, tenant, subject_token, Expect::IssuerAudiences)
                .await
                .map_err(|e| answer("subject token", e.into()))?;
            trusted::policy_matches(policy, &token).map_err(|m| refuse("subject token", m))?;
            let template = policy
                .subject_template
                .as_deref()
                .unwrap_or(&token.issuer.subject_template);
            let subject =
                trusted::render(template, &token.claims).map_err(|m| refuse("subject token", m))?;
            let ceiling =
                (!token.issuer.scopes.is_empty()).then_some(token.issuer.scopes.as_slice());
            let (scopes, audiences) = super::scopes_and_audiences(tenant, client, form, ceiling)?;
            let mut claims = Map::new();
            claims.insert("idp".into(), token.issuer.issuer.clone().into());
            return Ok(ValidatedGrant::new(
                &r.client,
                TOKEN_EXCHANGE_GRANT,
                scopes,
                audiences,
                Issue::AccessToken(Derived {
                    issued_token_type: Some(issued_token_type),
                    ..Derived::about(subject, claims)
                }),
            ));
        }

        let Some(registration) = &client.spec.token_exchange else {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client may not use token exchange",
            ));
        };
        // RFC 8693 §1.1: with an actor, delegation; without, impersonation if the client may,
        // else the client itself is the actor.
        let may = |m| registration.modes.contains(&m);
        if actor.is_some() && !may(ExchangeMode::Delegation) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client may not act for others (delegation): exchange without an actor token",
            ));
        }
        let subject = read(&r, client, subject_token, subject_type, Role::Subject)
            .await
            .map_err(|e| answer("subject token", e))?;
        let actor = match actor {
            Some((token, ty)) => Some(
                read(&r, client, token, ty, Role::Actor)
                    .await
                    .map_err(|e| answer("actor token", e))?,
            ),
            None => None,
        };
        let acting = match &actor {
            Some(a) => Some((a.sub.clone(), a.iss.clone())),
            None if may(ExchangeMode::Impersonation) => None,
            None => Some((client.spec.client_id.clone(), tenant.spec.issuer.clone())),
        };
        // RFC 8693 §4.4: a subject token that names who may act for it is exchanged only by
        // that party.
        if let Some(may_act) = &subject.may_act {
            let (sub, iss) = acting
                .clone()
                .unwrap_or_else(|| (client.spec.client_id.clone(), tenant.spec.issuer.clone()));
            let named = may_act.get("sub").and_then(Value::as_str) == Some(sub.as_str())
                && may_act
                    .get("iss")
                    .and_then(Value::as_str)
                    .is_none_or(|i| i == iss);
            if !named {
                return Err(refuse(
                    "actor token",
                    "the subject token's may_act does not name this actor",
                ));
            }
        }
        let ceiling = match (&subject.scopes, &subject.external) {
            (Some(held), _) => Some(held.clone()),
            (None, Some((_, scopes))) if !scopes.is_empty() => Some(scopes.clone()),
            (None, _) => None,
        };
        let (scopes, audiences) =
            super::scopes_and_audiences(tenant, client, form, ceiling.as_deref())?;
        let subject_id = match &subject.external {
            Some((template, _)) => trusted::render(template, &subject.external_claims)
                .map_err(|m| refuse("subject token", m))?,
            None => subject.sub.clone(),
        };
        let mut claims = subject.carried;
        if subject.external.is_some() {
            claims.insert("idp".into(), subject.iss.clone().into());
        }
        // RFC 8693 §4.1: the current actor, with the subject token's actor chain nested in it.
        let act = match acting {
            Some((sub, iss)) => {
                let mut a = Map::new();
                a.insert("sub".into(), sub.into());
                if iss != tenant.spec.issuer {
                    a.insert("iss".into(), iss.into());
                }
                if let Some(prior) = subject.act {
                    a.insert("act".into(), prior);
                }
                Some(Value::Object(a))
            }
            None => subject.act,
        };
        if let Some(act) = act {
            claims.insert("act".into(), act);
        }
        Ok(ValidatedGrant::new(
            &r.client,
            TOKEN_EXCHANGE_GRANT,
            scopes,
            audiences,
            Issue::AccessToken(Derived {
                subject: subject_id,
                claims,
                not_after: subject.expires_at,
                family: subject.family,
                issued_token_type: Some(issued_token_type),
            }),
        ))
    })
}

fn token_type(value: Option<&str>, name: &str) -> Result<TokenType, OAuthError> {
    let v = value.ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))?;
    // RFC 8693 §2.2.2: a token type the server does not support is `invalid_request`.
    TokenType::parse(v).ok_or_else(|| {
        OAuthError::invalid_request(format!(
            "{name}: this server accepts access_token, refresh_token, id_token and jwt tokens"
        ))
    })
}

/// Reads a subject or actor token: one of this tenant's (by its issuer, or a reference or
/// refresh handle), else a trusted issuer's JWT.
async fn read(
    r: &GrantRequest<'_>,
    client: &Client,
    token: &str,
    ty: TokenType,
    role: Role,
) -> Result<Party, Bad> {
    let tenant = r.tenant;
    let iss = trusted::unverified_issuer(token);
    let ours = iss.as_deref().is_none_or(|i| i == tenant.spec.issuer);
    if !ours {
        if ty == TokenType::RefreshToken {
            return Err(Bad::Token("a refresh token is one of this tenant's"));
        }
        if let Some(iss) = iss.as_deref()
            && trusted::issuer(tenant, iss).is_none()
        {
            return upstream_token(r, iss, token, role).await;
        }
        let t = trusted::verify(r.state, tenant, token, Expect::IssuerAudiences).await?;
        let sub = t.str_claim("sub").unwrap_or_default().to_string();
        return Ok(Party {
            act: t.claims.get("act").cloned(),
            may_act: t.claims.get("may_act").cloned(),
            external: Some((t.issuer.subject_template.clone(), t.issuer.scopes.clone())),
            external_claims: t.claims,
            ..Party::named(sub, t.issuer.issuer.clone())
        });
    }
    let party = match ty {
        TokenType::RefreshToken => refresh_token(r, client, token, role).await?,
        TokenType::AccessToken => access_token(r, token).await?,
        TokenType::IdToken => id_token(tenant, token, r.state.now())?,
        TokenType::Jwt => match access_token(r, token).await {
            Ok(p) => p,
            Err(Bad::Token(_)) => id_token(tenant, token, r.state.now())?,
            Err(e) => return Err(e),
        },
    };
    // Which of this tenant's tokens a client may present: as the subject, one addressed to
    // it (its `aud` holds the client or one of its registered subject audiences); as the
    // actor, one issued to it (the client proves who acts).
    match role {
        Role::Subject => {
            let allowed = |a: &str| {
                a == client.spec.client_id
                    || client
                        .spec
                        .token_exchange
                        .as_ref()
                        .is_some_and(|t| t.subject_token_audiences.iter().any(|x| x == a))
            };
            let addressed = party.client_id.as_deref() == Some(client.spec.client_id.as_str())
                && ty == TokenType::RefreshToken
                || party.carried.get("aud").is_some_and(|aud| match aud {
                    Value::String(a) => allowed(a),
                    Value::Array(list) => list.iter().filter_map(Value::as_str).any(allowed),
                    _ => false,
                });
            if !addressed {
                return Err(Bad::Token("the token is not addressed to this client"));
            }
        }
        Role::Actor => {
            if party.client_id.as_deref() != Some(client.spec.client_id.as_str()) {
                return Err(Bad::Token("the actor token was not issued to this client"));
            }
        }
    }
    let mut party = party;
    party.carried.remove("aud");
    Ok(party)
}

/// A token of one of the tenant's upstream OIDC providers. As the subject, it stands for the
/// local user the upstream identity is linked to (linked or provisioned now, exactly as a
/// sign-in through that provider would); as the actor, for the upstream identity itself.
async fn upstream_token(
    r: &GrantRequest<'_>,
    iss: &str,
    token: &str,
    role: Role,
) -> Result<Party, Bad> {
    use crate::federation::FederationError;
    let (state, tenant) = (r.state, r.tenant);
    let Some(provider) = state.federation.oidc_by_issuer(tenant, iss).await? else {
        return Err(Bad::Token("the token's issuer is not trusted"));
    };
    let identity = crate::federation::oidc::exchanged_identity(state, tenant, &provider, token)
        .await
        .map_err(|e| match e {
            FederationError::Unavailable(m) => Bad::Unavailable(m),
            FederationError::Internal(e) => Bad::Internal(e),
            FederationError::Rejected(m) | FederationError::Denied(m) => {
                tracing::warn!(target: "security", event = "upstream_token_refused", tenant = %tenant.slug(), provider = %provider.spec.id, reason = %m);
                Bad::Token("the upstream token does not verify")
            }
        })?;
    let sub = match role {
        Role::Actor => identity.subject.clone(),
        Role::Subject => crate::federation::link_or_provision(state, tenant, &provider, &identity)
            .await
            .map_err(|e| match e {
                FederationError::Unavailable(m) => Bad::Unavailable(m),
                FederationError::Internal(e) => Bad::Internal(e),
                FederationError::Rejected(_) | FederationError::Denied(_) => {
                    Bad::Token("the upstream identity may not sign in to this tenant")
                }
            })?,
    };
    let mut carried = Map::new();
    carried.insert("idp".into(), provider.spec.id.clone().into());
    Ok(Party {
        carried,
        ..Party::named(sub, identity.upstream)
    })
}

/// One of this tenant's access tokens, live (unexpired, unrevoked).
async fn access_token(r: &GrantRequest<'_>, token: &str) -> Result<Party, Bad> {
    let Some(at) = crate::tokens::access::verify(r.state, r.tenant, token).await? else {
        return Err(Bad::Token("not a live access token of this tenant"));
    };
    let scopes = at
        .str_claim("scope")
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let family = at.record.as_ref().and_then(|rec| rec.family.clone());
    let mut carried: Map<String, Value> = CARRIED
        .iter()
        .filter_map(|k| at.claims.get(*k).map(|v| ((*k).to_string(), v.clone())))
        .collect();
    if let Some(aud) = at.claims.get("aud") {
        carried.insert("aud".into(), aud.clone());
    }
    Ok(Party {
        scopes: Some(scopes),
        act: at.claims.get("act").cloned(),
        may_act: at.claims.get("may_act").cloned(),
        expires_at: at.claims.get("exp").and_then(Value::as_i64),
        family,
        client_id: at.str_claim("client_id").map(str::to_string),
        carried,
        ..Party::named(
            at.str_claim("sub").unwrap_or_default().to_string(),
            r.tenant.spec.issuer.clone(),
        )
    })
}

/// One of this tenant's refresh tokens, live, of the calling client only (RFC 6749 §6: a
/// refresh token is bound to its client). It is not used up: the exchange rotates nothing.
async fn refresh_token(
    r: &GrantRequest<'_>,
    client: &Client,
    token: &str,
    role: Role,
) -> Result<Party, Bad> {
    let invalid = Bad::Token("not a live refresh token of this client");
    if role == Role::Actor || token.len() > 100 {
        return Err(invalid);
    }
    let Some(record) = r
        .state
        .store
        .find_grant(r.tenant.slug(), &crate::tokens::handle_hash(token))
        .await?
        .filter(|rec| rec.kind == GrantKind::RefreshToken)
    else {
        return Err(invalid);
    };
    if record.client_id != client.spec.client_id
        || record.revoked_at.is_some()
        || record.consumed_at.is_some()
        || record.expires_at <= r.state.now()
    {
        return Err(invalid);
    }
    let data: super::refresh_token::RefreshData =
        serde_json::from_str(&record.data).map_err(InternalError::from)?;
    let mut carried = Map::new();
    carried.insert("auth_time".into(), data.auth_time.into());
    carried.insert("amr".into(), serde_json::json!(data.amr));
    carried.insert("acr".into(), data.acr.into());
    carried.insert("idp".into(), data.idp.into());
    carried.insert("sid".into(), data.sid.into());
    Ok(Party {
        scopes: Some(data.scopes),
        carried,
        family: record.family.clone(),
        client_id: Some(record.client_id.clone()),
        ..Party::named(
            record.subject.clone().unwrap_or_default(),
            r.tenant.spec.issuer.clone(),
        )
    })
}

/// One of this tenant's id tokens, unexpired (OIDC Core §2: `typ` JWT, one audience: the
/// client it was issued to).
fn id_token(tenant: &Tenant, token: &str, now: i64) -> Result<Party, Bad> {
    let hint = crate::validation::authorize::verify_id_token_hint(tenant, token, None)
        .map_err(|_| Bad::Token("not an id token of this tenant"))?;
    let (_, claims) = crate::tokens::jws::decode_unverified(token)
        .map_err(|_| Bad::Token("not an id token of this tenant"))?;
    if claims
        .get("exp")
        .and_then(Value::as_i64)
        .is_none_or(|exp| exp <= now)
    {
        return Err(Bad::Token("the id token has expired"));
    }
    let mut carried: Map<String, Value> = CARRIED
        .iter()
        .filter_map(|k| claims.get(*k).map(|v| ((*k).to_string(), v.clone())))
        .collect();
    carried.insert("aud".into(), hint.client_id.clone().into());
    Ok(Party {
        // No scopes: an id token says who the user is, not what they allowed (the client's
        // scopes and the request bound the result).
        carried,
        client_id: Some(hint.client_id),
        ..Party::named(hint.subject, tenant.spec.issuer.clone())
    })
}
