//! `application/x-www-form-urlencoded` request bodies, parsed strictly (RFC 6749 §3.1, §3.2).

use crate::error::OAuthError;
use crate::error::body_too_large;
use crate::state::AppState;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// Parameters that may legitimately repeat (RFC 8707 §2 `resource`, RFC 8693 §2.1 `audience`).
const REPEATABLE: &[&str] = &["resource", "audience"];

/// A form body whose parameters each appear once (unless repeatable) and are non-empty.
#[derive(Default)]
pub struct Form {
    params: Vec<(String, String)>,
}

/// Parameter names only: values may be secrets (`client_secret`, assertions, codes).
impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.params.iter().map(|(k, _)| k))
            .finish()
    }
}

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.params
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.params
    }
    /// Parameters that were checked before (a pushed request, a verified request object).
    pub fn from_pairs(params: Vec<(String, String)>) -> Self {
        Self { params }
    }

    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut params: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(body) {
            // RFC 6749 §3.1: parameters sent without a value are treated as omitted.
            if v.is_empty() {
                continue;
            }
            if params.iter().any(|(seen, _)| *seen == k) && !REPEATABLE.contains(&k.as_ref()) {
                // RFC 6749 §3.1: request parameters must not be included more than once.
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{}` is repeated",
                    truncate(&k)
                )));
            }
            params.push((k.into_owned(), v.into_owned()));
        }
        // form_urlencoded replaces invalid UTF-8 with U+FFFD; refuse such input outright.
        if params
            .iter()
            .any(|(k, v)| k.contains('\u{FFFD}') || v.contains('\u{FFFD}'))
        {
            return Err(OAuthError::invalid_request(
                "the request body is not valid UTF-8",
            ));
        }
        Ok(Self { params })
    }
}

fn truncate(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(40).collect()
}

/// Extractor: checks the media type, enforces the body limit, parses.
pub struct FormBody(pub Form);

impl FromRequest<AppState> for FormBody {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            )
            .into_response());
        }
        let limit = state.config.server.max_body_bytes;
        let body = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| body_too_large())?;
        Form::parse(&body)
            .map(FormBody)
            .map_err(IntoResponse::into_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused_except_resource() {
        assert!(Form::parse(b"grant_type=a&grant_type=b").is_err());
        let f = Form::parse(b"resource=https%3A%2F%2Fa&resource=https%3A%2F%2Fb").unwrap();
        assert_eq!(f.get_all("resource").count(), 2);
    }

    #[test]
    fn empty_parameters_count_as_absent() {
        let f = Form::parse(b"scope=&scope=api.read").unwrap();
        assert_eq!(f.get("scope"), Some("api.read"));
    }

    #[test]
    fn debug_output_shows_names_but_never_values() {
        let f = Form::parse(b"client_id=c&client_secret=hunter2").unwrap();
        let shown = format!("{f:?}");
        assert!(
            shown.contains("client_secret") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn invalid_utf8_is_refused() {
        assert!(Form::parse(b"scope=%FF").is_err());
    }
}
