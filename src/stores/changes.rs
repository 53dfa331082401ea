//! What one node tells the others when something cached may have changed (PostgreSQL
//! LISTEN/NOTIFY on [`CHANGES_CHANNEL`]). The wire form is written and read only here.

/// The PostgreSQL notification channel of [`ChangeNotice`]s.
pub const CHANGES_CHANNEL: &str = "portcullis_changes";

const REVOKED_PREFIX: &str = "revoked:";
const PROVIDER_PREFIX: &str = "provider:";
const SAML_SP_PREFIX: &str = "saml-sp:";
const CLIENT_PREFIX: &str = "client:";

/// One change notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeNotice {
    /// A tenant (its spec, clients or keys) changed: wire form `<tenant>`.
    Tenant(String),
    /// A grant, or a family of grants, was revoked (`key` is a handle hash or a family id):
    /// `revoked:<tenant> <key>`.
    Revoked { tenant: String, key: String },
    /// A runtime upstream provider was written, disabled or removed: `provider:<tenant> <id>`.
    Provider { tenant: String, id: String },
    /// A runtime SAML service provider was written, disabled or removed:
    /// `saml-sp:<tenant> <entity id>` (an entity id is a URI: it holds no space).
    SamlSp { tenant: String, entity_id: String },
    /// A runtime client was registered, changed or removed: `client:<tenant> <client id>`
    /// (a client id may hold spaces: it is everything after the first).
    Client { tenant: String, client_id: String },
}

impl ChangeNotice {
    /// The payload sent on the channel.
    pub fn encode(&self) -> String {
        match self {
            Self::Tenant(slug) => slug.clone(),
            Self::Revoked { tenant, key } => format!("{REVOKED_PREFIX}{tenant} {key}"),
            Self::Provider { tenant, id } => format!("{PROVIDER_PREFIX}{tenant} {id}"),
            Self::SamlSp { tenant, entity_id } => format!("{SAML_SP_PREFIX}{tenant} {entity_id}"),
            Self::Client { tenant, client_id } => format!("{CLIENT_PREFIX}{tenant} {client_id}"),
        }
    }

    /// Reads a payload. A notice with a known prefix but no second part reads as nothing; any
    /// other payload names a tenant (tenant slugs hold no `:` and no space).
    pub fn parse(payload: &str) -> Option<Self> {
        let pair = |rest: &str| {
            rest.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        };
        if let Some(rest) = payload.strip_prefix(REVOKED_PREFIX) {
            let (tenant, key) = pair(rest)?;
            Some(Self::Revoked { tenant, key })
        } else if let Some(rest) = payload.strip_prefix(PROVIDER_PREFIX) {
            let (tenant, id) = pair(rest)?;
            Some(Self::Provider { tenant, id })
        } else if let Some(rest) = payload.strip_prefix(SAML_SP_PREFIX) {
            let (tenant, entity_id) = pair(rest)?;
            Some(Self::SamlSp { tenant, entity_id })
        } else if let Some(rest) = payload.strip_prefix(CLIENT_PREFIX) {
            let (tenant, client_id) = pair(rest)?;
            Some(Self::Client { tenant, client_id })
        } else {
            Some(Self::Tenant(payload.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ChangeNotice;

    #[test]
    fn every_notice_reads_back_as_itself() {
        for n in [
            ChangeNotice::Tenant("acme".into()),
            ChangeNotice::Revoked {
                tenant: "acme".into(),
                key: "3q2-7w".into(),
            },
            ChangeNotice::Provider {
                tenant: "acme".into(),
                id: "corp-oidc".into(),
            },
            ChangeNotice::SamlSp {
                tenant: "acme".into(),
                entity_id: "https://sp.acme.test/saml?x=1".into(),
            },
            ChangeNotice::Client {
                tenant: "acme".into(),
                client_id: "a client id with spaces".into(),
            },
        ] {
            assert_eq!(ChangeNotice::parse(&n.encode()), Some(n));
        }
    }

    #[test]
    fn a_notice_missing_its_second_part_reads_as_nothing() {
        assert_eq!(ChangeNotice::parse("revoked:acme"), None);
        assert_eq!(ChangeNotice::parse("provider:acme"), None);
        assert_eq!(ChangeNotice::parse("saml-sp:acme"), None);
        assert_eq!(ChangeNotice::parse("client:acme"), None);
    }
}
