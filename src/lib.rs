//! Portcullis: a multi-tenant OpenID Connect / OAuth 2.x provider and federation gateway.
//!
//! The request flow and the layers are described in `docs/architecture.md`; in short:
//! front door (TLS, tenant resolution) → endpoint → validation → response generation.
//!
//! The crate's lints (no unsafe code; no unwrap, expect, panic or slice indexing) are in
//! Cargo.toml's `[lints]`, so that they cover the binary too. The unit tests may unwrap:
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod audit;
pub mod clients;
pub mod clock;
pub mod commands;
pub mod config;
pub mod devcerts;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod federation;
pub mod frontdoor;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod outbound;
pub mod protocol;
pub mod registry;
pub mod request;
pub mod response;
pub mod saml;
pub mod secrets;
pub mod server;
pub mod sessions;
pub mod state;
pub mod stores;
pub mod telemetry;
pub mod tokens;
pub mod ui;
pub mod users;
pub mod validation;

#[cfg(test)]
mod robustness_tests;

pub use frontdoor::router::app;
pub use state::AppState;
