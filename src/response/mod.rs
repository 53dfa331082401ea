//! `Validated*` → protocol responses.

pub mod authorize;
pub mod away;
pub mod backchannel;
pub mod device;
pub mod portal;
pub mod saml;
pub mod saml_logout;
pub mod token;
