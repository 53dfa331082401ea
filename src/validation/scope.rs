//! Scope parsing (RFC 6749 §3.3).

use crate::config::tenant::valid_scope_token;
use crate::error::{ErrorCode, OAuthError};

/// Splits a `scope` value into distinct scope tokens, in request order.
pub fn parse(scope: &str) -> Result<Vec<&str>, OAuthError> {
    let mut out: Vec<&str> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !valid_scope_token(s) {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "the scope value is malformed",
            ));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}
