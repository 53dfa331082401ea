//! The one mapping from protocol errors to HTTP responses (STYLE.md §4).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::borrow::Cow;

/// RFC 6749 §5.2 and friends: the `error` codes this server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    /// RFC 8707 §2
    InvalidTarget,
    /// RFC 6749 §4.1.2.1
    AccessDenied,
    UnsupportedResponseType,
    /// OIDC Core §3.1.2.6
    LoginRequired,
    ConsentRequired,
    InteractionRequired,
    /// RFC 9101 §6.2 / RFC 9126 §2.2
    InvalidRequestUri,
    InvalidRequestObject,
    /// RFC 9449 §5 / §12.2
    InvalidDpopProof,
    UseDpopNonce,
    ServerError,
    TemporarilyUnavailable,
    /// Not an OAuth code: unknown tenant or path.
    NotFound,
    /// Not an OAuth code: wrong HTTP method on a known path.
    MethodNotAllowed,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::InteractionRequired => "interaction_required",
            Self::InvalidRequestUri => "invalid_request_uri",
            Self::InvalidRequestObject => "invalid_request_object",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::NotFound => "not_found",
            // 405 carries the generic OAuth code; the status says the rest.
            Self::MethodNotAllowed => "invalid_request",
        }
    }
}

/// How the client tried to authenticate; decides the `WWW-Authenticate` challenge of a 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    None,
    Basic,
}

/// An error answered in the OAuth JSON format (RFC 6749 §5.2).
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
    pub status: StatusCode,
    pub challenge: Challenge,
    /// RFC 9449 §8: a fresh server nonce for the client's next proof (`DPoP-Nonce`).
    pub dpop_nonce: Option<String>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        let status = match code {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            code,
            description: description.into(),
            status,
            challenge: Challenge::None,
            dpop_nonce: None,
        }
    }
    pub fn with_dpop_nonce(mut self, nonce: String) -> Self {
        self.dpop_nonce = Some(nonce);
        self
    }
    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }
    /// RFC 6749 §5.2: 401 with a `WWW-Authenticate` challenge for the scheme the client used.
    pub fn invalid_client(d: impl Into<Cow<'static, str>>, challenge: Challenge) -> Self {
        Self {
            challenge,
            ..Self::new(ErrorCode::InvalidClient, d)
        }
    }
    pub fn server_error() -> Self {
        Self::new(
            ErrorCode::ServerError,
            "the server could not complete the request",
        )
    }
    pub fn invalid_grant(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, d)
    }
    pub fn not_found(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::NotFound, d)
    }
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            error: &'a str,
            error_description: &'a str,
        }
        let body = serde_json::to_vec(&Body {
            error: self.code.as_str(),
            error_description: &self.description,
        })
        .unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        // RFC 6749 §5.1/§5.2: token responses, errors included, must not be cached.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.code == ErrorCode::InvalidClient {
            let value = match self.challenge {
                Challenge::Basic => "Basic realm=\"portcullis\", charset=\"UTF-8\"",
                // RFC 6749 §5.2 only requires the header for the Authorization-header scheme; we
                // always name the scheme the endpoint accepts so generic clients know what to send.
                Challenge::None => "Basic realm=\"portcullis\"",
            };
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
        }
        if let Some(n) = self
            .dpop_nonce
            .as_deref()
            .and_then(|n| HeaderValue::from_str(n).ok())
        {
            headers.insert("dpop-nonce", n);
        }
        if self.code == ErrorCode::MethodNotAllowed {
            headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

/// Internal failures (store, crypto). Never shown to a caller beyond `server_error`.
#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("crypto: {0}")]
    Crypto(&'static str),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A bounded resource is full (e.g. the memory of single-use values): the request is
    /// refused with 503 `temporarily_unavailable` rather than served unsafely.
    #[error("at capacity: {0}")]
    AtCapacity(&'static str),
    #[error("{0}")]
    Other(String),
}

impl InternalError {
    pub fn into_oauth(self) -> OAuthError {
        self.into()
    }
}

impl From<InternalError> for OAuthError {
    fn from(e: InternalError) -> Self {
        if let InternalError::AtCapacity(d) = e {
            return OAuthError::new(ErrorCode::TemporarilyUnavailable, d);
        }
        tracing::error!(error = %e, "internal error");
        OAuthError::server_error()
    }
}
