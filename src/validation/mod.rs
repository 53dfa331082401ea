//! Raw input → `Validated*` types (constructible only here) or an [`OAuthError`](crate::error::OAuthError).

pub mod client_auth;
pub mod form;
pub mod scope;
pub mod token;
