//! The outline of every video library route (native and dialects): admit the caller, reach the
//! library, read the body, run the handler, render its error in the dialect's envelope, and
//! write the request's one log line.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::de::DeserializeOwned;

use super::incoming::Incoming;
use crate::answer::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::videos::Library;

/// Runs a handler, renders its error with `render` (the dialect's envelope), and writes the
/// request's log line.
pub async fn respond(
    incoming: &Incoming,
    route: &'static str,
    render: fn(&ApiError) -> Response,
    handler: impl std::future::Future<Output = Result<Response, ApiError>>,
) -> Response {
    let started = std::time::Instant::now();
    let (response, outcome) = match handler.await {
        Ok(response) => (response, "ok".to_string()),
        Err(error) => (render(&error), error.code().to_string()),
    };
    tracing::info!(
        request_id = %incoming.request_id,
        route,
        status = response.status().as_u16(),
        duration_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        %outcome,
        "videos"
    );
    response
}

/// What a library route does first: admit the caller, then reach the library (absent when
/// `videos.enabled` is off).
pub async fn admit_to_library<'s>(
    incoming: &Incoming,
    state: &'s AppState,
) -> Result<(Caller, &'s Library), ApiError> {
    let caller = incoming.admit().await?;
    Ok((caller, state.library()?))
}

/// `admit_to_library`, for a route whose body is JSON of the shape `shape` (named in the error
/// when it is not). A refused caller's body is never read.
pub async fn admit_with_json<'s, T: DeserializeOwned>(
    incoming: &Incoming,
    state: &'s AppState,
    headers: &HeaderMap,
    body: Body,
    shape: &str,
) -> Result<(Caller, &'s Library, T), ApiError> {
    let (caller, bytes) = super::body::admitted(incoming, headers, body).await?;
    let library = state.library()?;
    Ok((caller, library, super::body::json(&bytes, shape)?))
}
