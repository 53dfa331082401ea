//! One file per endpoint; each handler reads as extract → validate → generate → respond.

pub mod discovery;
pub mod health;
pub mod jwks;
pub mod token;
