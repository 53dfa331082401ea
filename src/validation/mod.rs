//! Raw input → `Validated*` types (constructible only here) or an [`OAuthError`](crate::error::OAuthError).

pub mod authorize;
pub mod backchannel;
pub mod client_auth;
pub mod client_cert;
pub mod client_keys;
pub mod device;
pub mod dn;
pub mod dpop;
pub mod form;
pub mod params;
pub mod portal;
pub mod saml;
pub mod saml_logout;
pub mod scope;
pub mod token;
pub mod trusted;
