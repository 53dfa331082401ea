//! Path segments and query strings read into typed values: axum's `Path` and `Query` whose
//! rejections speak OAuth (`invalid_request` as JSON) instead of axum's plain
//! text, so that a malformed URL (invalid UTF-8 in a percent-encoded segment, a parameter of the
//! wrong type) gets the protocol's error like any other bad input.

use crate::error::OAuthError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// Typed path parameters (`axum::extract::Path`).
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Self(v))
            .map_err(|_| OAuthError::invalid_request("the URL path is malformed").into_response())
    }
}

/// Typed query parameters (`axum::extract::Query`).
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(|_| {
                OAuthError::invalid_request("the query string is malformed").into_response()
            })
    }
}
