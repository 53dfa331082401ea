//! `Validated*` → protocol responses.

pub mod token;
