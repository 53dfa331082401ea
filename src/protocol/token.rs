//! Token endpoint requests (RFC 6749 §4, §6) as one enum chosen by `grant_type`.

use crate::error::{ErrorCode, OAuthError};
use crate::validation::form::Form;

#[derive(Debug)]
pub enum TokenRequest {
    /// RFC 6749 §4.4.2
    ClientCredentials(ClientCredentialsRequest),
    /// RFC 6749 §4.1.3, RFC 7636 §4.5
    AuthorizationCode(AuthorizationCodeRequest),
    /// RFC 6749 §6
    RefreshToken(RefreshTokenRequest),
    /// RFC 8628 §3.4
    DeviceCode(DeviceCodeRequest),
    /// CIBA Core §10.1: `auth_req_id` in the same shape as a device code.
    Ciba(DeviceCodeRequest),
    /// RFC 6749 §4.5: any other `grant_type` (an absolute URI, or `password`); its grant reads
    /// its own parameters (`validation::token::EXTENSION_GRANTS`).
    Extension(String),
}

pub struct DeviceCodeRequest {
    pub device_code: String,
}

impl std::fmt::Debug for DeviceCodeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCodeRequest").finish_non_exhaustive()
    }
}

pub struct AuthorizationCodeRequest {
    pub code: String,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
}

impl std::fmt::Debug for AuthorizationCodeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationCodeRequest")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

pub struct RefreshTokenRequest {
    pub refresh_token: String,
    pub scope: Option<String>,
}

impl std::fmt::Debug for RefreshTokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshTokenRequest")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
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
            Some("authorization_code") => {
                Ok(TokenRequest::AuthorizationCode(AuthorizationCodeRequest {
                    code: form
                        .get("code")
                        .ok_or_else(|| OAuthError::invalid_request("code is required"))?
                        .to_string(),
                    redirect_uri: form.get("redirect_uri").map(str::to_string),
                    code_verifier: form.get("code_verifier").map(str::to_string),
                }))
            }
            Some("refresh_token") => Ok(TokenRequest::RefreshToken(RefreshTokenRequest {
                refresh_token: form
                    .get("refresh_token")
                    .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?
                    .to_string(),
                scope: form.get("scope").map(str::to_string),
            })),
            Some(crate::tokens::user_code::DEVICE_CODE_GRANT) => {
                Ok(TokenRequest::DeviceCode(DeviceCodeRequest {
                    device_code: form
                        .get("device_code")
                        .ok_or_else(|| OAuthError::invalid_request("device_code is required"))?
                        .to_string(),
                }))
            }
            Some(crate::config::tenant::CIBA_GRANT) => Ok(TokenRequest::Ciba(DeviceCodeRequest {
                device_code: form
                    .get("auth_req_id")
                    .ok_or_else(|| OAuthError::invalid_request("auth_req_id is required"))?
                    .to_string(),
            })),
            Some(other) if other.len() <= 256 => Ok(TokenRequest::Extension(other.to_string())),
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<&'a str>,
    /// RFC 8693 §2.2.1: what a token exchange issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'a str>,
}
