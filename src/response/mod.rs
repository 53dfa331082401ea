//! `Validated*` → protocol responses.

pub mod authorize;
pub mod token;
