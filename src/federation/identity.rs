//! What an upstream vouches for: the external identity, its claims mapped to local names, what
//! ending the upstream session later needs, and how a federated sign-in fails.

use super::{Definition, Plain};
use crate::error::InternalError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An identity an upstream provider vouched for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExternalIdentity {
    pub provider: String,
    /// The upstream's own name for itself: the OIDC issuer, or the SAML IdP's entity id. Links
    /// are keyed by it (with the provider id and the subject), so a provider re-created under
    /// an old id for another upstream finds none of the old links.
    pub upstream: String,
    /// The upstream's stable subject (OIDC `sub`, SAML NameID).
    pub subject: String,
    /// Claims already mapped to local names.
    pub claims: Map<String, Value>,
    /// RFC 8176 values the upstream reported.
    pub amr: Vec<String>,
    pub acr: Option<String>,
    pub session: UpstreamSession,
}

/// What the session keeps to end the upstream session later.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct UpstreamSession {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_id_format: Option<String>,
}

/// The upstream id token stays out of logs.
impl std::fmt::Debug for UpstreamSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSession")
            .field("sid", &self.sid)
            .field("id_token", &self.id_token.is_some())
            .field("name_id_format", &self.name_id_format)
            .finish_non_exhaustive()
    }
}

/// Why a federated sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// The upstream could not be reached or answered nonsense.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// The upstream's answer (or the browser's) failed a check: a security event.
    #[error("{0}")]
    Rejected(String),
    /// The user is not allowed in (no linked account, account disabled).
    #[error("{0}")]
    Denied(String),
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// Claims every provider maps without configuration (OIDC names, and the usual SAML attribute
/// names: LDAP/eduPerson OIDs, friendly names and the WS-Federation claim URIs).
const DEFAULT_MAPPINGS: &[(&str, &[&str])] = &[
    (
        "email",
        &[
            "email",
            "mail",
            "urn:oid:0.9.2342.19200300.100.1.3",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
        ],
    ),
    ("email_verified", &["email_verified"]),
    (
        "name",
        &[
            "name",
            "displayName",
            "urn:oid:2.16.840.1.113730.3.1.241",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
            "cn",
        ],
    ),
    (
        "given_name",
        &[
            "given_name",
            "givenName",
            "urn:oid:2.5.4.42",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
        ],
    ),
    (
        "family_name",
        &[
            "family_name",
            "sn",
            "surname",
            "urn:oid:2.5.4.4",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
        ],
    ),
    (
        "preferred_username",
        &[
            "preferred_username",
            "uid",
            "urn:oid:0.9.2342.19200300.100.1.1",
        ],
    ),
    (
        "groups",
        &[
            "groups",
            "memberOf",
            "urn:oid:1.3.6.1.4.1.5923.1.5.1.1",
            "http://schemas.xmlsoap.org/claims/Group",
        ],
    ),
];

/// Maps upstream claims to local ones: the provider's own mapping first, then the defaults.
pub fn map_claims(spec: &Definition<Plain>, upstream: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (local, remote) in &spec.claims {
        if let Some(v) = upstream.get(remote) {
            out.insert(local.clone(), v.clone());
        }
    }
    for (local, names) in DEFAULT_MAPPINGS {
        if out.contains_key(*local) {
            continue;
        }
        if let Some(v) = names.iter().find_map(|n| upstream.get(*n)) {
            out.insert((*local).to_string(), v.clone());
        }
    }
    // Local names only ever hold what the mapping allowed: never `sub`, `iss` and the like.
    for reserved in [
        "sub", "iss", "aud", "exp", "iat", "nbf", "sid", "idp", "amr", "acr",
    ] {
        out.remove(reserved);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_map_by_the_providers_table_then_the_usual_names() {
        let mut spec: Definition<Plain> = serde_json::from_value(serde_json::json!({
            "id": "corp", "kind": "oidc",
            "oidc": {"issuer": "https://idp.example", "client_id": "c"}
        }))
        .unwrap();
        spec.claims
            .insert("department".into(), "urn:oid:2.5.4.11".into());
        let upstream = serde_json::json!({
            "sub": "u1",
            "urn:oid:0.9.2342.19200300.100.1.3": "ann@corp.example",
            "urn:oid:2.5.4.11": "Sales",
            "givenName": "Ann",
            "iss": "https://evil"
        });
        let m = map_claims(&spec, upstream.as_object().unwrap());
        assert_eq!(m["email"], "ann@corp.example");
        assert_eq!(m["department"], "Sales");
        assert_eq!(m["given_name"], "Ann");
        assert!(!m.contains_key("sub") && !m.contains_key("iss"));
    }
}
