//! The outline of every video library route (native and dialects): run the handler (which
//! admits the caller and reaches the library through `Incoming`), render its error in the
//! dialect's envelope, and write the request's one log line.

use axum::response::Response;

use super::incoming::Incoming;
use crate::error::ApiError;

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
