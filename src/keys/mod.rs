//! Per-tenant signing keys: generation, JWK export, encryption at rest, automatic rotation.

pub mod certificate;
pub mod crypto;
pub mod ring;
pub mod signer;
pub mod xmldsig;

pub use crypto::MasterKey;
pub use ring::{KeyPolicy, KeyRecord, KeyRing, KeySet, KeyStamp};
pub use signer::Signer;

use serde::{Deserialize, Serialize};

/// JWS algorithms (RFC 7518 §3.1, RFC 8037) this server signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Alg {
    RS256,
    PS256,
    ES256,
    EdDSA,
}

impl Alg {
    pub const ALL: [Alg; 4] = [Alg::RS256, Alg::PS256, Alg::ES256, Alg::EdDSA];
    /// RFC 9449 §4.3 item 5 and §5.1: the algorithms a DPoP proof may use. The one list behind
    /// discovery's `dpop_signing_alg_values_supported`, the proof check and the `algs` of a
    /// DPoP challenge.
    pub const DPOP: [Alg; 4] = [Alg::ES256, Alg::RS256, Alg::PS256, Alg::EdDSA];

    /// RSA: a key takes tens of milliseconds to make (EC and Ed25519 keys, microseconds).
    pub fn is_rsa(self) -> bool {
        matches!(self, Self::RS256 | Self::PS256)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for Alg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
