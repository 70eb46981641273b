//! Every failure a caller can see, and the one place that decides its HTTP status and body.
//! Bodies are one line of OpenAI's error shape, `{"error":{"message","type","code"}}`: the real
//! FaceTo-AI client recognises it (and `context_length_exceeded`) when it reads a failed answer.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{field} {problem}")]
    BadRequest { field: String, problem: String },
    #[error("request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("request body was not received within {0:?}")]
    BodyTimeout(Duration),
    #[error("invalid or missing API key")]
    Unauthorized,
    #[error("unknown persona `{0}`")]
    UnknownPersona(String),
    #[error("too many streams open; try again shortly")]
    Overloaded { retry_after: Duration },
    #[error("rate limit exceeded for this {scope}; try again shortly")]
    RateLimited {
        scope: &'static str,
        retry_after: Duration,
    },
    #[error("no upstream is configured or available")]
    NoUpstream,
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
}

impl ApiError {
    pub fn bad_request(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::BadRequest {
            field: field.into(),
            problem: problem.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::UnknownPersona(_) => StatusCode::NOT_FOUND,
            Self::Overloaded { .. } | Self::NoUpstream => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Upstream(e) => e.status(),
        }
    }

    /// OpenAI's `type` and `code` fields.
    fn kind(&self) -> (&str, &str) {
        match self {
            Self::BadRequest { .. } => ("invalid_request_error", "invalid_request"),
            Self::BodyTooLarge { .. } => ("invalid_request_error", "body_too_large"),
            Self::BodyTimeout(_) => ("invalid_request_error", "body_timeout"),
            Self::Unauthorized => ("authentication_error", "invalid_api_key"),
            Self::UnknownPersona(_) => ("invalid_request_error", "unknown_persona"),
            Self::Overloaded { .. } => ("server_error", "overloaded"),
            Self::RateLimited { .. } => ("rate_limit_error", "rate_limit_exceeded"),
            Self::NoUpstream => ("server_error", "no_upstream"),
            Self::Upstream(e) => e.kind(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Overloaded { retry_after } | Self::RateLimited { retry_after, .. } => {
                Some(*retry_after)
            }
            Self::Upstream(e) => e.retry_after(),
            _ => None,
        }
    }

    /// The one-line JSON body, newline-terminated so a line reader sees all of it.
    pub fn body(&self) -> String {
        let (kind, code) = self.kind();
        let mut error = json!({ "message": self.to_string(), "type": kind, "code": code });
        if let Self::BadRequest { field, .. } = self {
            error["param"] = json!(field);
        }
        let mut line = json!({ "error": error }).to_string();
        line.push('\n');
        line
    }

    /// Short label for logs and metrics.
    pub fn outcome(&self) -> &str {
        self.kind().1
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), self.body()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(after) = self.retry_after() {
            let secs = after.as_secs_f64().ceil().max(1.0) as u64;
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
