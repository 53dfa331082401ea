//! The one mapping from protocol errors to HTTP responses (docs/architecture.md, "A request").

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
    /// RFC 8628 §3.5: the user has not decided yet.
    AuthorizationPending,
    /// RFC 8628 §3.5: polling faster than the interval; it grows by 5 seconds.
    SlowDown,
    /// RFC 8628 §3.5: the device code expired.
    ExpiredToken,
    /// CIBA Core §13: the hint names no user this tenant knows.
    UnknownUserId,
    /// CIBA Core §13: the binding message is too long or not text.
    InvalidBindingMessage,
    /// CIBA Core §13: the client must send the user's `user_code`.
    MissingUserCode,
    /// CIBA Core §13: the `user_code` is wrong.
    InvalidUserCode,
    ServerError,
    TemporarilyUnavailable,
    /// Not an OAuth code: unknown tenant or path.
    NotFound,
    /// Not an OAuth code: wrong HTTP method on a known path.
    MethodNotAllowed,
    /// Not an OAuth code: the admin API's write conflicts with what exists (409).
    Conflict,
    /// RFC 7591 §3.2.2: a redirect URI is not acceptable.
    InvalidRedirectUri,
    /// RFC 7591 §3.2.2: a metadata value is not acceptable.
    InvalidClientMetadata,
    /// RFC 7591 §3.2.2: the software statement is not valid.
    InvalidSoftwareStatement,
    /// RFC 7591 §3.2.2: the software statement is not approved here.
    UnapprovedSoftwareStatement,
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
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
            Self::UnknownUserId => "unknown_user_id",
            Self::InvalidBindingMessage => "invalid_binding_message",
            Self::MissingUserCode => "missing_user_code",
            Self::InvalidUserCode => "invalid_user_code",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::NotFound => "not_found",
            // 405 carries the generic OAuth code; the status says the rest.
            Self::MethodNotAllowed => "invalid_request",
            Self::Conflict => "conflict",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidSoftwareStatement => "invalid_software_statement",
            Self::UnapprovedSoftwareStatement => "unapproved_software_statement",
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
            ErrorCode::Conflict => StatusCode::CONFLICT,
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
    /// 405 for a POST-only endpoint, naming it (`endpoint`: "the token endpoint").
    pub fn only_post(endpoint: &'static str) -> Self {
        Self::new(
            ErrorCode::MethodNotAllowed,
            format!("{endpoint} accepts only POST"),
        )
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

/// Every JSON answer of the OAuth endpoints, errors and token responses alike: RFC 6749
/// §5.1/§5.2 — not to be cached.
pub fn json_no_store(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// `{"error": …, "error_description": …}`.
fn error_body(code: &str, description: &str) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        error: &'a str,
        error_description: &'a str,
    }
    serde_json::to_vec(&Body {
        error: code,
        error_description: description,
    })
    .unwrap_or_default()
}

fn insert_dpop_nonce(headers: &mut axum::http::HeaderMap, nonce: Option<&str>) {
    if let Some(n) = nonce.and_then(|n| HeaderValue::from_str(n).ok()) {
        headers.insert("dpop-nonce", n);
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = error_body(self.code.as_str(), &self.description);
        let mut response = json_no_store(self.status, body);
        let headers = response.headers_mut();
        if self.code == ErrorCode::InvalidClient {
            let value = match self.challenge {
                Challenge::Basic => "Basic realm=\"portcullis\", charset=\"UTF-8\"",
                // RFC 6749 §5.2 only requires the header for the Authorization-header scheme; we
                // always name the scheme the endpoint accepts so generic clients know what to send.
                Challenge::None => "Basic realm=\"portcullis\"",
            };
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
        }
        insert_dpop_nonce(headers, self.dpop_nonce.as_deref());
        if self.code == ErrorCode::MethodNotAllowed {
            headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        if self.code == ErrorCode::TemporarilyUnavailable {
            // RFC 9110 §10.2.3: when a 503 may be retried.
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// The scheme a protected resource names in its challenge: RFC 6750 §3 (`Bearer`) or RFC 9449
/// §7.1 (`DPoP`, with the algorithms proofs may use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    Bearer,
    Dpop,
}

/// The error codes of a protected resource: RFC 6750 §3.1, and RFC 9449 §7.1 for DPoP proofs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerErrorCode {
    /// 400: the request is malformed (a token sent twice, or in the query).
    InvalidRequest,
    /// 401: the token is expired, revoked, malformed, of another tenant or sent without its proof.
    InvalidToken,
    /// 403: the token lacks a scope the resource needs.
    InsufficientScope,
    /// 401: the DPoP proof is missing or wrong (RFC 9449 §7.1).
    InvalidDpopProof,
    /// 401: the proof must carry the server's nonce (RFC 9449 §9).
    UseDpopNonce,
}

impl BearerErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
        }
    }
    fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::InvalidToken | Self::InvalidDpopProof | Self::UseDpopNonce => {
                StatusCode::UNAUTHORIZED
            }
        }
    }
}

/// The one answer of a protected resource (userinfo, the admin API and every later one) that
/// refuses a request: its status, its `WWW-Authenticate` challenge and, with a code, a JSON body.
#[derive(Debug, Clone)]
pub struct BearerError {
    /// The tenant's issuer: the challenge's `realm`.
    realm: String,
    scheme: AuthScheme,
    /// `None`: the request carried no credentials at all, so the challenge names no error
    /// (RFC 6750 §3.1).
    code: Option<BearerErrorCode>,
    description: Cow<'static, str>,
    /// The scope the resource needs, named in an `insufficient_scope` challenge (RFC 6750 §3).
    scope: Option<&'static str>,
    dpop_nonce: Option<String>,
    /// What the security log says (more than the caller is told), if it differs.
    reason: Option<Cow<'static, str>>,
}

impl BearerError {
    /// 401 with a bare challenge: no credentials were sent (RFC 6750 §3.1).
    pub fn no_credentials(realm: &str) -> Self {
        Self {
            realm: realm.to_string(),
            scheme: AuthScheme::Bearer,
            code: None,
            description: Cow::Borrowed(""),
            scope: None,
            dpop_nonce: None,
            reason: None,
        }
    }
    pub fn new(
        realm: &str,
        code: BearerErrorCode,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            code: Some(code),
            description: description.into(),
            ..Self::no_credentials(realm)
        }
    }
    pub fn invalid_request(realm: &str, description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(realm, BearerErrorCode::InvalidRequest, description)
    }
    pub fn invalid_token(realm: &str, description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(realm, BearerErrorCode::InvalidToken, description)
    }
    /// 403 naming the scope needed, when there is one to name.
    pub fn insufficient_scope(
        realm: &str,
        scope: Option<&'static str>,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            scope,
            ..Self::new(realm, BearerErrorCode::InsufficientScope, description)
        }
    }
    /// The challenge names this scheme (a DPoP-bound token is answered with `DPoP`).
    pub fn scheme(mut self, scheme: AuthScheme) -> Self {
        self.scheme = scheme;
        self
    }
    /// RFC 9449 §9: a fresh nonce for the client's next proof.
    pub fn with_dpop_nonce(mut self, nonce: Option<String>) -> Self {
        self.dpop_nonce = nonce;
        self
    }
    /// Why, for the security log only (the caller sees the description).
    pub fn because(mut self, reason: impl Into<Cow<'static, str>>) -> Self {
        self.reason = Some(reason.into());
        self
    }
    pub fn code(&self) -> Option<BearerErrorCode> {
        self.code
    }
    /// What the security log records: the reason, or else the description.
    pub fn reason(&self) -> &str {
        self.reason.as_deref().unwrap_or(&self.description)
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3, RFC 9449 §7.1).
    fn challenge(&self) -> String {
        let mut value = match self.scheme {
            AuthScheme::Bearer => format!("Bearer realm=\"{}\"", self.realm),
            AuthScheme::Dpop => {
                let algs: Vec<&str> = crate::keys::Alg::DPOP.map(|a| a.as_str()).to_vec();
                format!("DPoP realm=\"{}\", algs=\"{}\"", self.realm, algs.join(" "))
            }
        };
        if let Some(code) = self.code {
            value.push_str(&format!(
                ", error=\"{}\", error_description=\"{}\"",
                code.as_str(),
                self.description
            ));
            if let (BearerErrorCode::InsufficientScope, Some(scope)) = (code, self.scope) {
                value.push_str(&format!(", scope=\"{scope}\""));
            }
        }
        value
    }
}

impl std::fmt::Display for BearerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(c) => write!(f, "{}: {}", c.as_str(), self.description),
            None => f.write_str("no credentials"),
        }
    }
}

impl IntoResponse for BearerError {
    fn into_response(self) -> Response {
        let challenge = HeaderValue::from_str(&self.challenge()).ok();
        let mut response = match self.code {
            Some(code) => {
                json_no_store(code.status(), error_body(code.as_str(), &self.description))
            }
            None => {
                let mut r = StatusCode::UNAUTHORIZED.into_response();
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                r
            }
        };
        let headers = response.headers_mut();
        if let Some(v) = challenge {
            headers.insert(header::WWW_AUTHENTICATE, v);
        }
        insert_dpop_nonce(headers, self.dpop_nonce.as_deref());
        response
    }
}

/// 413: the body is larger than `[server] max_body_bytes`.
pub fn body_too_large() -> Response {
    OAuthError::invalid_request("the request body is too large")
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
        .into_response()
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
    /// An unavailable database ([`InternalError::is_unavailable`]) as a cache that shares one
    /// load among waiting requests reports it to each of them.
    #[error("database: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Other(String),
}

impl InternalError {
    pub fn into_oauth(self) -> OAuthError {
        self.into()
    }

    /// This error as told to every request that waited for one shared load: the text, and
    /// whether the database was unavailable.
    pub fn shared(e: &InternalError) -> InternalError {
        if e.is_unavailable() {
            InternalError::Unavailable(e.to_string())
        } else {
            InternalError::Other(e.to_string())
        }
    }

    /// The database cannot answer now but may soon: it cannot be reached (connection refused,
    /// reset or lost, no connection free within `database.acquire_timeout_seconds`), it is
    /// shutting down or starting, or a transaction lost a serialization or deadlock conflict
    /// more times than the store retries it. Such a request is refused with 503
    /// `temporarily_unavailable` (RFC 6749 §4.1.2.1, §5.2 as extended by the registry), which
    /// a client may retry, never with 500 `server_error`.
    pub fn is_unavailable(&self) -> bool {
        match self {
            InternalError::Database(e) => database_unavailable(e),
            InternalError::AtCapacity(_) | InternalError::Unavailable(_) => true,
            _ => false,
        }
    }

    /// The protocol error for this failure of `what` (logged with it): 503
    /// `temporarily_unavailable` when [`Self::is_unavailable`], else 500 `server_error`.
    pub fn failed(self, what: &'static str) -> OAuthError {
        if let InternalError::AtCapacity(d) = self {
            return OAuthError::new(ErrorCode::TemporarilyUnavailable, d);
        }
        if self.is_unavailable() {
            tracing::warn!(error = %self, what, "database unavailable: refused with 503");
            return OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the service is temporarily unavailable; try again shortly",
            );
        }
        tracing::error!(error = %self, what, "internal error");
        OAuthError::server_error()
    }
}

impl From<InternalError> for OAuthError {
    fn from(e: InternalError) -> Self {
        e.failed("request")
    }
}

/// Whether a database error means "not now" rather than "never": the server cannot be reached
/// or is going away (PostgreSQL SQLSTATE class 08 connection exception, 57P01-57P03 shutdown
/// and startup, 53300 too many connections), no pooled connection came free in time, or a
/// transaction lost a serialization or deadlock conflict (40001, 40P01) more often than
/// `stores::retry_conflicts` retries it.
fn database_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08")
                || matches!(&*c, "57P01" | "57P02" | "57P03" | "53300")
                || is_conflict_code(&c)
        }),
        _ => false,
    }
}

/// SQLSTATE 40001 (serialization_failure) and 40P01 (deadlock_detected): the transaction was
/// rolled back and may simply be run again.
pub(crate) fn is_conflict_code(code: &str) -> bool {
    matches!(code, "40001" | "40P01")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge_of(r: &Response) -> &str {
        r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap()
    }

    #[test]
    fn a_request_without_credentials_gets_a_bare_challenge_and_no_body() {
        let r = BearerError::no_credentials("https://id.example/acme").into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(challenge_of(&r), "Bearer realm=\"https://id.example/acme\"");
        assert!(r.headers().get(header::CONTENT_TYPE).is_none());
    }

    #[test]
    fn a_missing_scope_is_403_and_the_challenge_names_the_scope() {
        let r = BearerError::insufficient_scope("https://i", Some("portcullis.admin"), "no")
            .into_response();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            challenge_of(&r),
            "Bearer realm=\"https://i\", error=\"insufficient_scope\", error_description=\"no\", scope=\"portcullis.admin\""
        );
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn a_dpop_challenge_lists_the_algorithms_discovery_lists_and_carries_the_nonce() {
        let r = BearerError::new("https://i", BearerErrorCode::UseDpopNonce, "nonce")
            .scheme(AuthScheme::Dpop)
            .with_dpop_nonce(Some("n-1".into()))
            .into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(
            challenge_of(&r)
                .starts_with("DPoP realm=\"https://i\", algs=\"ES256 RS256 PS256 EdDSA\"")
        );
        assert_eq!(r.headers()["dpop-nonce"], "n-1");
    }

    #[test]
    fn the_405_of_a_post_only_endpoint_names_it() {
        let e = OAuthError::only_post("the revocation endpoint");
        assert_eq!(e.description, "the revocation endpoint accepts only POST");
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "POST");
    }
}
