//! One file per endpoint; each handler reads as extract → validate → generate → respond.

pub mod admin;
pub mod authorize;
pub mod backchannel;
pub mod call;
pub mod client_admin;
pub mod consent;
pub mod device;
pub mod discovery;
pub mod end_session;
pub mod federation;
pub mod health;
pub mod interaction;
pub mod introspection;
pub mod jwks;
pub mod login;
pub mod par;
pub mod portal;
pub mod registration;
pub mod revocation;
pub mod saml;
pub mod saml_admin;
pub mod saml_logout;
pub mod token;
pub mod userinfo;
