//! One file per grant type, each ending in a sealed `Validated*` value.

pub mod authorization_code;
pub mod client_credentials;
pub mod device_code;
pub mod refresh_token;
