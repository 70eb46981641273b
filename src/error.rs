//! Every failure a caller can see, and the one place that decides its HTTP status, its stable
//! code and the sentence a caller reads. Each error has a [`ErrorKind`]; each dialect renders
//! kinds in its own envelope (`respond` does the status and headers, the dialect the body),
//! naming a variant more exactly only where its vendor has a code for it (Mavera's
//! `analysis_not_completed`, OpenAI's `body_too_large`).
//! OpenAI's envelope, `{"error":{"message","type","code"}}` on one line, is the default: the real
//! FaceTo-AI client recognises it (and `context_length_exceeded`) when it reads a failed answer.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::upstream::UpstreamError;
use crate::videos::quota::Refusal;
use crate::videos::search::SearchError;
use crate::videos::LibraryError;

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
    #[error("this media link has expired or was not made by this server; ask for the video again for a fresh one")]
    LinkInvalid,
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
    #[error("the server is shutting down; try again shortly")]
    ShuttingDown,
    /// Redis, which the replicas share their limits through, is unreachable and
    /// `cluster.fail_closed` says not to serve without it.
    #[error("the replicas' shared state is unreachable and this server does not serve without it; try again shortly")]
    SharedStateDown,
    #[error("{}", upstream_message(.0))]
    Upstream(#[from] UpstreamError),
    #[error("no {what} with id `{id}`")]
    NotFound { what: &'static str, id: String },
    #[error("video `{id}` is {status}, not ready; its timeline exists once processing ends")]
    NotReady { id: String, status: &'static str },
    #[error("the video library is turned off on this server (videos.enabled)")]
    VideosDisabled,
    #[error("search by meaning is not available on this server: its embedding model (videos.embedding_model) is not installed; search by keyword works")]
    SearchByMeaningOff,
    /// The store or the disk failed; the detail is logged, the caller gets a sentence.
    #[error("the server could not store or read the data; try again shortly")]
    Storage,
    #[error("the upload arrived slower than {min_rate} bytes a second (videos.min_upload_rate) and was cut off")]
    UploadTooSlow { min_rate: u64 },
    /// An analysis asked for JSON satisfying a schema, and the model's answer did not, even
    /// after it was shown what was wrong once.
    #[error("the model's answer did not satisfy the JSON schema, even after one repair: {0}")]
    SchemaUnmet(String),
    /// `mcp.max_sessions` MCP sessions are open; a new one waits for one to close or idle out.
    #[error("too many MCP sessions are open on this server; try again shortly, or end a session you no longer use")]
    TooManySessions,
    /// A streamed answer read whole by a tool (MCP) stopped before its end; the sentence is the
    /// relay's, as a streaming caller reads it.
    #[error("the answer broke off: {0}")]
    AnswerBroke(String),
    /// A new video refused: a tenant's quota, the uploads the server takes at once, the disk.
    #[error(transparent)]
    Refused(Refusal),
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Library(error) => error.into(),
            refused => Self::Refused(refused),
        }
    }
}

impl From<LibraryError> for ApiError {
    fn from(error: LibraryError) -> Self {
        match error {
            LibraryError::NotFound(id) => Self::NotFound {
                what: "video",
                id: id.chars().take(100).collect(),
            },
            LibraryError::NotReady { id, status } => Self::NotReady { id, status },
            LibraryError::Store(_) | LibraryError::Io(_) => {
                tracing::error!(%error, "video library");
                Self::Storage
            }
        }
    }
}

/// A query string that does not fit the route's parameters: axum's sentence names the field.
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        Self::bad_request("query", rejection.body_text())
    }
}

impl From<SearchError> for ApiError {
    fn from(error: SearchError) -> Self {
        match error {
            SearchError::NoModel => Self::SearchByMeaningOff,
            SearchError::Library(e) => e.into(),
            SearchError::Embed(e) => {
                tracing::error!(error = %e, "search: embedding the query failed");
                Self::Storage
            }
        }
    }
}

/// What kind of failure, for dialects to map onto their own codes and envelopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong: a field, the body, its size.
    InvalidRequest,
    Unauthorized,
    /// What the request names (a persona, a model, a video) does not exist.
    NotFound,
    RateLimited,
    /// Too busy right now (stream cap, a full local queue, shutting down, no upstream).
    Unavailable,
    /// The upstream failed or could not be reached.
    Upstream,
    /// The upstream took too long.
    Timeout,
    /// The server itself failed (its store, its disk).
    Internal,
}

/// An upstream's own message is passed on only when it is about the caller's request (a prompt
/// too long for the model, say); anything else stays in the log line.
fn upstream_message(e: &UpstreamError) -> String {
    match e {
        UpstreamError::Status { message, .. }
            if e.status() == StatusCode::BAD_REQUEST && !message.is_empty() =>
        {
            message.clone()
        }
        _ => e.caller_message().to_string(),
    }
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
            Self::LinkInvalid => StatusCode::FORBIDDEN,
            Self::UnknownPersona(_) => StatusCode::NOT_FOUND,
            Self::Overloaded { .. }
            | Self::NoUpstream
            | Self::ShuttingDown
            | Self::SharedStateDown
            | Self::TooManySessions => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Upstream(e) => e.status(),
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::NotReady { .. } => StatusCode::CONFLICT,
            Self::VideosDisabled | Self::SearchByMeaningOff => StatusCode::SERVICE_UNAVAILABLE,
            Self::Storage => StatusCode::INTERNAL_SERVER_ERROR,
            Self::SchemaUnmet(_) | Self::AnswerBroke(_) => StatusCode::BAD_GATEWAY,
            Self::UploadTooSlow { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Refused(Refusal::Busy) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Refused(Refusal::DiskFull) => StatusCode::INSUFFICIENT_STORAGE,
            Self::Refused(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::BadRequest { .. } | Self::BodyTooLarge { .. } | Self::BodyTimeout(_) => {
                ErrorKind::InvalidRequest
            }
            Self::Unauthorized | Self::LinkInvalid => ErrorKind::Unauthorized,
            Self::UnknownPersona(_) | Self::NotFound { .. } => ErrorKind::NotFound,
            Self::NotReady { .. } => ErrorKind::InvalidRequest,
            Self::VideosDisabled | Self::SearchByMeaningOff => ErrorKind::Unavailable,
            Self::Storage => ErrorKind::Internal,
            Self::SchemaUnmet(_) | Self::AnswerBroke(_) => ErrorKind::Upstream,
            Self::UploadTooSlow { .. } => ErrorKind::InvalidRequest,
            Self::Refused(Refusal::Busy | Refusal::DiskFull) => ErrorKind::Unavailable,
            Self::Refused(_) => ErrorKind::RateLimited,
            Self::RateLimited { .. } => ErrorKind::RateLimited,
            Self::Overloaded { .. }
            | Self::NoUpstream
            | Self::ShuttingDown
            | Self::SharedStateDown
            | Self::TooManySessions => ErrorKind::Unavailable,
            Self::Upstream(e) => match e.status() {
                StatusCode::TOO_MANY_REQUESTS => ErrorKind::RateLimited,
                StatusCode::BAD_REQUEST => ErrorKind::InvalidRequest,
                StatusCode::GATEWAY_TIMEOUT => ErrorKind::Timeout,
                StatusCode::SERVICE_UNAVAILABLE => ErrorKind::Unavailable,
                _ => ErrorKind::Upstream,
            },
        }
    }

    /// OpenAI's `type` and `code` fields; the code is also the outcome in logs and metrics.
    pub fn openai_type_and_code(&self) -> (&str, &str) {
        match self {
            Self::BadRequest { .. } => ("invalid_request_error", "invalid_request"),
            Self::BodyTooLarge { .. } => ("invalid_request_error", "body_too_large"),
            Self::BodyTimeout(_) => ("invalid_request_error", "body_timeout"),
            Self::Unauthorized => ("authentication_error", "invalid_api_key"),
            Self::LinkInvalid => ("authentication_error", "media_link_invalid"),
            Self::UnknownPersona(_) => ("invalid_request_error", "unknown_persona"),
            Self::Overloaded { .. } => ("server_error", "overloaded"),
            Self::RateLimited { .. } => ("rate_limit_error", "rate_limit_exceeded"),
            Self::NoUpstream => ("server_error", "no_upstream"),
            Self::ShuttingDown => ("server_error", "shutting_down"),
            Self::SharedStateDown => ("server_error", "shared_state_unavailable"),
            Self::Upstream(e) => e.kind(),
            Self::NotFound { .. } => ("invalid_request_error", "not_found"),
            Self::NotReady { .. } => ("invalid_request_error", "video_not_ready"),
            Self::VideosDisabled => ("server_error", "videos_disabled"),
            Self::SearchByMeaningOff => ("server_error", "search_by_meaning_unavailable"),
            Self::Storage => ("server_error", "storage_error"),
            Self::SchemaUnmet(_) => ("server_error", "schema_unmet"),
            Self::AnswerBroke(_) => ("server_error", "answer_broke_off"),
            Self::TooManySessions => ("server_error", "too_many_sessions"),
            Self::UploadTooSlow { .. } => ("invalid_request_error", "body_timeout"),
            Self::Refused(Refusal::Busy) => ("server_error", "uploads_busy"),
            Self::Refused(Refusal::DiskFull) => ("server_error", "insufficient_storage"),
            Self::Refused(_) => ("rate_limit_error", "quota_exceeded"),
        }
    }

    /// The stable code: what a program branches on, and the outcome in logs and metrics.
    pub fn code(&self) -> &str {
        self.openai_type_and_code().1
    }

    /// The request field at fault, when there is one.
    pub fn param(&self) -> Option<&str> {
        match self {
            Self::BadRequest { field, .. } => Some(field),
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Overloaded { retry_after } | Self::RateLimited { retry_after, .. } => {
                Some(*retry_after)
            }
            Self::Upstream(e) => e.retry_after(),
            Self::SharedStateDown => Some(Duration::from_secs(1)),
            Self::Refused(Refusal::Busy) | Self::TooManySessions => Some(Duration::from_secs(5)),
            _ => None,
        }
    }

    /// OpenAI's envelope as a JSON value.
    pub fn openai_json(&self) -> serde_json::Value {
        let (kind, code) = self.openai_type_and_code();
        let mut error = json!({ "message": self.to_string(), "type": kind, "code": code });
        if let Some(param) = self.param() {
            error["param"] = json!(param);
        }
        json!({ "error": error })
    }

    /// OpenAI's envelope on one line, newline-terminated so a line reader sees all of it.
    pub fn body(&self) -> String {
        let mut line = self.openai_json().to_string();
        line.push('\n');
        line
    }

    /// Short label for logs and metrics.
    pub fn outcome(&self) -> &str {
        self.code()
    }

    /// A response with this error's status and `Retry-After`, and `body` in a dialect's envelope.
    pub fn respond(&self, status: StatusCode, body: String) -> Response {
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(after) = self.retry_after() {
            let secs = after.as_secs_f64().ceil().clamp(1.0, 86_400.0) as u64;
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.respond(self.status(), self.body())
    }
}
