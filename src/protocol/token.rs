//! Token endpoint requests (RFC 6749 §4, §6) as one enum chosen by `grant_type`.

use crate::error::{ErrorCode, OAuthError};
use crate::validation::form::Form;

#[derive(Debug)]
pub enum TokenRequest {
    /// RFC 6749 §4.4.2
    ClientCredentials(ClientCredentialsRequest),
}

#[derive(Debug)]
pub struct ClientCredentialsRequest {
    pub scope: Option<String>,
    /// RFC 8707 §2: zero or more `resource` parameters.
    pub resources: Vec<String>,
}

impl TokenRequest {
    pub fn parse(form: &Form) -> Result<Self, OAuthError> {
        match form.get("grant_type") {
            None => Err(OAuthError::invalid_request("grant_type is required")),
            Some("client_credentials") => {
                Ok(TokenRequest::ClientCredentials(ClientCredentialsRequest {
                    scope: form.get("scope").map(str::to_string),
                    resources: form.get_all("resource").map(str::to_string).collect(),
                }))
            }
            Some(_) => Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "this grant type is not supported",
            )),
        }
    }
}

/// RFC 6749 §5.1
#[derive(Debug, serde::Serialize)]
pub struct TokenResponse<'a> {
    pub access_token: &'a str,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub scope: &'a str,
}
