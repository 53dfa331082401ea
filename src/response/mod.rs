//! `Validated*` → protocol responses.

pub mod authorize;
pub mod device;
pub mod token;
