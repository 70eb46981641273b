//! Reading a request body whole, within a size and a time limit that each route chooses (a
//! conversation's JSON and a video upload have very different limits). A slow or oversized body
//! is refused before anything else is spent on it.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::incoming::Incoming;
use crate::answer::Caller;
use crate::error::ApiError;

/// What every JSON route does first: admit the caller, then read its body within
/// `limits.max_body_bytes` and `limits.body_timeout` (a refused caller's body is never read).
pub async fn admitted(
    incoming: &Incoming,
    request: Request,
) -> Result<(Caller, bytes::Bytes), ApiError> {
    with_body(incoming.admit().await?, request).await
}

/// `admitted`, for a route that answers with an upstream (see `Incoming::admit_to_answer`).
pub async fn admitted_to_answer(
    incoming: &Incoming,
    request: Request,
) -> Result<(Caller, bytes::Bytes), ApiError> {
    with_body(incoming.admit_to_answer().await?, request).await
}

async fn with_body(caller: Caller, request: Request) -> Result<(Caller, bytes::Bytes), ApiError> {
    let (head, body) = request.into_parts();
    let bytes = within_limits(body, &head.headers, &caller.runtime.config.limits).await?;
    Ok((caller, bytes))
}

/// A body read whole within `limits.max_body_bytes` and `limits.body_timeout`, the limits of
/// every route that takes JSON or a form.
pub async fn within_limits(
    body: Body,
    headers: &HeaderMap,
    limits: &crate::config::LimitsConfig,
) -> Result<bytes::Bytes, ApiError> {
    read(body, headers, limits.max_body_bytes, limits.body_timeout).await
}

pub async fn read(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    timeout: Duration,
) -> Result<bytes::Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    let collect = Limited::new(body, limit).collect();
    match tokio::time::timeout(timeout, collect).await {
        Err(_) => Err(ApiError::BodyTimeout(timeout)),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::BodyTooLarge { limit })
        }
        Ok(Err(e)) => Err(ApiError::bad_request(
            "body",
            format!("could not be read: {e}"),
        )),
    }
}

/// A JSON body of the shape `shape` (named in the error when it is not).
pub fn json<T: serde::de::DeserializeOwned>(bytes: &[u8], shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("body", format!("must be {shape}: {e}")))
}
