//! Integration tests: the real server (TLS listeners, SQLite or PostgreSQL, key ring) started
//! in-process on ephemeral ports. One binary for all of them; modules live in `tests/it/`.
// Test code may unwrap, expect, panic and index: a failure is a failed test (Cargo.toml's
// `[lints]` are for the server).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "it/support.rs"]
#[macro_use]
mod support;

#[path = "it/architecture.rs"]
mod architecture;
#[path = "it/attacker.rs"]
mod attacker;
#[path = "it/backchannel.rs"]
mod backchannel;
#[path = "it/client_auth.rs"]
mod client_auth;
#[path = "it/cluster.rs"]
mod cluster;
#[path = "it/device.rs"]
mod device;
#[path = "it/discovery_and_jwks.rs"]
mod discovery_and_jwks;
#[path = "it/dpop.rs"]
mod dpop;
#[path = "it/e2e.rs"]
mod e2e;
#[path = "it/federation.rs"]
mod federation;
#[path = "it/frontdoor.rs"]
mod frontdoor;
#[path = "it/interactive.rs"]
mod interactive;
#[path = "it/keys.rs"]
mod keys;
#[path = "it/onboarding.rs"]
mod onboarding;
#[path = "it/registration.rs"]
mod registration;
#[path = "it/resilience.rs"]
mod resilience;
#[path = "it/robustness.rs"]
mod robustness;
#[path = "it/saml_admin.rs"]
mod saml_admin;
#[path = "it/saml_idp.rs"]
mod saml_idp;
#[path = "it/saml_logout.rs"]
mod saml_logout;
#[path = "it/saml_portal.rs"]
mod saml_portal;
#[path = "it/security_connections.rs"]
mod security_connections;
#[path = "it/security_federation.rs"]
mod security_federation;
#[path = "it/security_operations.rs"]
mod security_operations;
#[path = "it/security_rules.rs"]
mod security_rules;
#[path = "it/security_throttling.rs"]
mod security_throttling;
#[path = "it/security_validation.rs"]
mod security_validation;
#[path = "it/store.rs"]
mod store;
#[path = "it/token.rs"]
mod token;
#[path = "it/token_exchange.rs"]
mod token_exchange;
#[path = "it/token_services.rs"]
mod token_services;
