//! One file per grant type (STYLE.md §2).

pub mod authorization_code;
pub mod client_credentials;
pub mod refresh_token;
