//! `[[clients]]`: identifiers, grant types, scopes, secrets and how each client authenticates.

use super::scopes::Scopes;
use super::tokens::format_of;
use super::{
    AuthMethod, CIBA_GRANT, CibaClient, CibaMode, ClientFile, ClientSpec, GrantType,
    InteractiveSpec, KeyPath, SEALED_PREFIX, StoredSecret, TenantFile, TokenFormat, interactive,
};
use crate::config::FileRoots;
use crate::keys::Alg;
use crate::secrets::SecretHash;
use std::collections::HashSet;

pub(super) fn resolve_all(
    file: &TenantFile,
    scopes: &Scopes<'_>,
    signing_algorithms: &[Alg],
    files: &FileRoots,
    bad: &mut impl FnMut(KeyPath, String),
) -> Vec<ClientSpec> {
    let tenant = ClientContext {
        scopes,
        signing_algorithms,
        files,
        has_mtls_trust_anchors: !file.mtls.trust_anchors.is_empty(),
        extension_grants: file
            .extension_grants
            .iter()
            .map(|e| e.grant_type.as_str())
            .collect(),
        password_grant: file.password_grant.enabled,
        trusted_issuers: file
            .trusted_issuers
            .iter()
            .map(|t| t.issuer.as_str())
            .collect(),
    };
    let mut clients = Vec::new();
    let mut client_ids = HashSet::new();
    for (i, c) in file.clients.iter().enumerate() {
        let ck = KeyPath::root().key("clients").index(i);
        if !client_ids.insert(&c.client_id) {
            bad(
                ck.key("client_id"),
                format!("client `{}` is defined twice", c.client_id),
            );
        }
        clients.push(resolve(c, &ck, &tenant, bad));
    }
    clients
}

/// What a client is checked against besides its own entry: the tenant's scopes, algorithms,
/// grants and trust, whether the client comes from the tenant file or from a runtime
/// definition (then built from the stored tenant, with no file it may read).
pub(super) struct ClientContext<'a> {
    pub scopes: &'a Scopes<'a>,
    pub signing_algorithms: &'a [Alg],
    pub files: &'a FileRoots,
    pub has_mtls_trust_anchors: bool,
    /// The tenant's webhook extension grants (their `grant_type` URIs).
    pub extension_grants: Vec<&'a str>,
    pub password_grant: bool,
    /// The `iss` of each of the tenant's trusted issuers.
    pub trusted_issuers: Vec<&'a str>,
}

pub(super) fn resolve(
    c: &ClientFile,
    ck: &KeyPath,
    tenant: &ClientContext<'_>,
    bad: &mut impl FnMut(KeyPath, String),
) -> ClientSpec {
    // RFC 6749 Appendix A.1: client_id = *VSCHAR
    if c.client_id.is_empty()
        || c.client_id.len() > 200
        || !c.client_id.chars().all(|ch| (' '..='~').contains(&ch))
    {
        bad(
            ck.key("client_id"),
            "a client_id is 1-200 visible ASCII characters".into(),
        );
    }
    let (grant_types, extension_grants) = grant_types(c, ck, tenant, bad);
    check_scopes(c, ck, &grant_types, tenant.scopes, bad);
    let secrets = secrets(c, ck, bad);
    let auth_methods = auth_methods(c, ck, bad);
    check_authentication(c, ck, &secrets, &auth_methods, bad);
    let interactive = interactive::resolve(
        c,
        ck,
        tenant.files,
        &grant_types,
        tenant.signing_algorithms,
        bad,
    );
    check_method_needs(c, ck, &auth_methods, &secrets, &interactive, tenant, bad);
    let ciba = ciba(c, ck, &grant_types, bad);
    let token_exchange = super::exchange::client_exchange(c, ck, &grant_types, bad);
    let workload =
        super::exchange::client_workload(c, ck, &grant_types, &tenant.trusted_issuers, bad);
    if grant_types.contains(&GrantType::Password) && !tenant.password_grant {
        bad(
            ck.key("grant_types"),
            "the password grant is off in this tenant (RFC 9700 §2.4: it must not be used); set [password_grant] enabled = true to allow it anyway".into(),
        );
    }
    let access_token_format = c.access_token_format.as_deref().map(|v| {
        format_of(v).unwrap_or_else(|| {
            bad(
                ck.key("access_token_format"),
                "must be `jwt` or `reference`".into(),
            );
            TokenFormat::Jwt
        })
    });
    if let Some(l) = c.access_token_lifetime
        && !(1..=86_400).contains(&l)
    {
        bad(
            ck.key("access_token_lifetime"),
            "must be between 1 and 86400 seconds".into(),
        );
    }
    ClientSpec {
        client_id: c.client_id.clone(),
        client_name: c.client_name.clone(),
        enabled: c.enabled,
        secrets,
        grant_types,
        scopes: c.scopes.clone(),
        auth_methods,
        access_token_format,
        access_token_lifetime: c.access_token_lifetime,
        interactive,
        ciba,
        token_exchange,
        workload,
        extension_grants,
        runtime: None,
    }
}

/// CIBA Core §4: the delivery mode and, for ping, the notification endpoint (https, or http on
/// a loopback host); only confidential clients (§7.1: the request is authenticated).
fn ciba(
    c: &ClientFile,
    ck: &KeyPath,
    grant_types: &[GrantType],
    bad: &mut impl FnMut(KeyPath, String),
) -> Option<CibaClient> {
    let uses = grant_types.contains(&GrantType::Ciba);
    if !uses {
        if c.backchannel_token_delivery_mode.is_some() || c.backchannel_user_code_parameter {
            bad(
                ck.key("backchannel_token_delivery_mode"),
                format!("only for clients with the grant type `{CIBA_GRANT}`"),
            );
        }
        return None;
    }
    if c.public {
        bad(
            ck.key("grant_types"),
            "a public client cannot use CIBA (CIBA Core §7.1: the request is authenticated)".into(),
        );
    }
    let mode = match c.backchannel_token_delivery_mode.as_deref() {
        Some("poll") => CibaMode::Poll,
        Some("ping") => CibaMode::Ping,
        Some(_) | None => {
            bad(
                ck.key("backchannel_token_delivery_mode"),
                "a CIBA client needs `poll` or `ping` (push is not supported)".into(),
            );
            CibaMode::Poll
        }
    };
    let endpoint = c.backchannel_client_notification_endpoint.clone();
    match (&endpoint, mode) {
        (None, CibaMode::Ping) => bad(
            ck.key("backchannel_client_notification_endpoint"),
            "a ping client needs a notification endpoint".into(),
        ),
        (Some(u), _) => {
            if let Err(m) = super::check_redirect_uri(u, false) {
                bad(ck.key("backchannel_client_notification_endpoint"), m);
            }
        }
        (None, CibaMode::Poll) => {}
    }
    Some(CibaClient {
        mode,
        notification_endpoint: endpoint,
        user_code: c.backchannel_user_code_parameter,
    })
}

/// The client's grant types: those this server implements, and the tenant's webhook
/// extension grants (by their URI).
fn grant_types(
    c: &ClientFile,
    ck: &KeyPath,
    tenant: &ClientContext<'_>,
    bad: &mut impl FnMut(KeyPath, String),
) -> (Vec<GrantType>, Vec<String>) {
    let mut grant_types = Vec::new();
    let mut extension = Vec::new();
    for (j, g) in c.grant_types.iter().enumerate() {
        match GrantType::parse(g) {
            Some(gt) => grant_types.push(gt),
            None if tenant.extension_grants.contains(&g.as_str()) => {
                extension.push(g.clone());
            }
            None => bad(
                ck.key("grant_types").index(j),
                format!(
                    "grant type `{g}` is not supported (supported: {}, and the tenant's [[extension_grants]])",
                    GrantType::ALL
                        .iter()
                        .map(|g| g.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    }
    if c.public && grant_types.contains(&GrantType::ClientCredentials) {
        // RFC 6749 §4.4: only confidential clients may use client_credentials.
        bad(
            ck.key("grant_types"),
            "a public client cannot use client_credentials".into(),
        );
    }
    if c.grant_types.is_empty() {
        bad(
            ck.key("grant_types"),
            "a client needs at least one grant type".into(),
        );
    }
    (grant_types, extension)
}

fn check_scopes(
    c: &ClientFile,
    ck: &KeyPath,
    grant_types: &[GrantType],
    scopes: &Scopes<'_>,
    bad: &mut impl FnMut(KeyPath, String),
) {
    for (j, s) in c.scopes.iter().enumerate() {
        if !scopes.names.contains(s.as_str()) {
            bad(
                ck.key("scopes").index(j),
                format!("scope `{s}` is not defined in this tenant"),
            );
        } else if scopes.identity.contains(s.as_str())
            && grant_types == [GrantType::ClientCredentials]
        {
            bad(
                ck.key("scopes").index(j),
                format!("identity scope `{s}` makes no sense for a client_credentials-only client"),
            );
        }
    }
}

fn secrets(
    c: &ClientFile,
    ck: &KeyPath,
    bad: &mut impl FnMut(KeyPath, String),
) -> Vec<StoredSecret> {
    let mut secrets = Vec::new();
    for (j, s) in c.secrets.iter().enumerate() {
        match (&s.hash, &s.sealed) {
            (Some(hash), None) => match SecretHash::parse(hash) {
                Ok(h) => secrets.push(StoredSecret {
                    hash: h.to_stored(),
                    sealed: None,
                    description: s.description.clone(),
                    expires_at: s.expires_at,
                }),
                Err(m) => bad(ck.key("secrets").index(j).key("hash"), m),
            },
            (None, Some(sealed)) if sealed.starts_with(SEALED_PREFIX) => {
                secrets.push(StoredSecret {
                    hash: String::new(),
                    sealed: Some(sealed.clone()),
                    description: s.description.clone(),
                    expires_at: s.expires_at,
                });
            }
            (None, Some(_)) => bad(
                ck.key("secrets").index(j).key("sealed"),
                format!(
                    "a sealed secret starts with `{SEALED_PREFIX}` (use `portcullis clients seal-secret`)"
                ),
            ),
            _ => bad(
                ck.key("secrets").index(j),
                "give exactly one of hash and sealed".into(),
            ),
        }
    }
    secrets
}

fn auth_methods(
    c: &ClientFile,
    ck: &KeyPath,
    bad: &mut impl FnMut(KeyPath, String),
) -> Vec<AuthMethod> {
    match &c.token_endpoint_auth_methods {
        None if c.public => vec![AuthMethod::None],
        // The workload's JWT is its credential (checked by the grant that carries it).
        None if c.workload_identity.is_some() => Vec::new(),
        None => AuthMethod::SECRET.to_vec(),
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(j, m)| {
                AuthMethod::parse(m).or_else(|| {
                    bad(
                        ck.key("token_endpoint_auth_methods").index(j),
                        format!(
                            "`{m}` is not supported (client_secret_basic, client_secret_post, client_secret_jwt, private_key_jwt, tls_client_auth, self_signed_tls_client_auth, none)"
                        ),
                    );
                    None
                })
            })
            .collect(),
    }
}

/// A public client authenticates with `none` only; a confidential one has a way to.
fn check_authentication(
    c: &ClientFile,
    ck: &KeyPath,
    secrets: &[StoredSecret],
    auth_methods: &[AuthMethod],
    bad: &mut impl FnMut(KeyPath, String),
) {
    if c.workload_identity.is_some() {
        if !secrets.is_empty() || !auth_methods.is_empty() || c.public {
            bad(
                ck.key("workload_identity"),
                "a workload client authenticates with its platform's token only: no secrets, token_endpoint_auth_methods or public".into(),
            );
        }
    } else if c.public {
        if !secrets.is_empty() || auth_methods != [AuthMethod::None] {
            bad(
                ck.key("public"),
                "a public client has no secrets and authenticates with `none` only".into(),
            );
        }
    } else if secrets.is_empty()
        && auth_methods.iter().any(|m| {
            matches!(
                m,
                AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
            )
        })
    {
        bad(
            ck.key("secrets"),
            "this client has no way to authenticate: add a secret, list key or certificate methods in token_endpoint_auth_methods, or set public = true"
                .into(),
        );
    } else if auth_methods.contains(&AuthMethod::None) {
        bad(
            ck.key("token_endpoint_auth_methods"),
            "`none` is for public clients only".into(),
        );
    }
}

/// Each key-based or certificate-based method needs what it is checked against.
fn check_method_needs(
    c: &ClientFile,
    ck: &KeyPath,
    auth_methods: &[AuthMethod],
    secrets: &[StoredSecret],
    i: &InteractiveSpec,
    tenant: &ClientContext<'_>,
    bad: &mut impl FnMut(KeyPath, String),
) {
    let has_keys = i.jwks.is_some() || i.jwks_uri.is_some() || c.jwks_file.is_some();
    if auth_methods.contains(&AuthMethod::PrivateKeyJwt) && !has_keys {
        bad(
            ck.key("token_endpoint_auth_methods"),
            "private_key_jwt needs jwks, jwks_file or jwks_uri".into(),
        );
    }
    if auth_methods.contains(&AuthMethod::ClientSecretJwt)
        && !secrets.iter().any(|s| s.sealed.is_some())
    {
        bad(ck.key("token_endpoint_auth_methods"), "client_secret_jwt needs a sealed secret (`portcullis clients seal-secret`): only hashes of the other secrets are kept".into());
    }
    if auth_methods.contains(&AuthMethod::TlsClientAuth) && i.tls_subject.is_none() {
        bad(
            ck.key("token_endpoint_auth_methods"),
            "tls_client_auth needs a tls_client_auth_subject_dn or tls_client_auth_san_* setting"
                .into(),
        );
    }
    if auth_methods.contains(&AuthMethod::TlsClientAuth) && !tenant.has_mtls_trust_anchors {
        bad(
            ck.key("token_endpoint_auth_methods"),
            "tls_client_auth needs [mtls] trust_anchors in the tenant".into(),
        );
    }
    if auth_methods.contains(&AuthMethod::SelfSignedTlsClientAuth) && !has_keys {
        bad(ck.key("token_endpoint_auth_methods"), "self_signed_tls_client_auth needs the certificate as x5c in jwks, jwks_file or jwks_uri".into());
    }
}
