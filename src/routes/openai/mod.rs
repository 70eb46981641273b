//! OpenAI's dialect, so the OpenAI SDKs, LangChain, LiteLLM, Open WebUI and agent frameworks can
//! talk to a persona: `POST /v1/chat/completions` (`chat`), `POST /v1/responses` (`responses`,
//! whose encoder the video dialects reuse), `GET /v1/models` (`models`). `model` names the
//! persona. A user message may name videos (`videos`): the answer is then grounded in them and
//! cited, as in the video dialects. Shared here: request decoding that names the field at fault,
//! and OpenAI's error envelope (an unknown persona is OpenAI's `model_not_found`).

pub mod chat;
mod decode;
pub use decode::MAX_VIDEOS;
pub mod models;
pub mod responses;
mod videos;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use crate::answer::video_chat::VideoAsk;
use crate::answer::{Ask, Caller};
use crate::conversation::Message;
use crate::error::ApiError;
use crate::persona::CallerOptions;
use crate::routes::incoming::Incoming;
use crate::routes::reply::Question;
use crate::state::AppState;

/// OpenAI's routes, under its own paths.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/responses", post(responses::create))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{id}", get(models::get))
}

/// The request's `Host`, which an absolute URL of one of this server's videos carries.
fn host(request: &Request) -> Option<HeaderValue> {
    request.headers().get(header::HOST).cloned()
}

/// The decoded request as the core's question: about the videos its user messages name, if any.
async fn question(
    incoming: &Incoming,
    caller: &Caller,
    persona: String,
    messages: Vec<Message>,
    options: CallerOptions,
    videos: Vec<decode::VideoPart>,
    host: Option<&HeaderValue>,
) -> Result<Question, ApiError> {
    if videos.is_empty() {
        return Ok(Question::Plain(Ask {
            persona,
            messages,
            reference: None,
            options,
        }));
    }
    let host = host.and_then(|h| h.to_str().ok());
    Ok(Question::AboutVideos(VideoAsk {
        persona,
        videos: videos::resolve(incoming, caller, videos, host).await?,
        messages,
        options,
    }))
}

/// An error in OpenAI's envelope, as its SDKs map it onto their exception classes.
pub fn error_response(error: &ApiError) -> Response {
    error.respond(error.status(), error_body(error).to_string())
}

pub fn error_body(error: &ApiError) -> serde_json::Value {
    match error {
        ApiError::UnknownPersona(name) => json!({"error": {
            "message": format!("The model `{name}` does not exist: it is not a persona of this server."),
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }}),
        _ => error.openai_json(),
    }
}

/// A fresh id with OpenAI's prefix (`chatcmpl`, `resp`, `msg`).
pub fn new_id(prefix: &str) -> String {
    use rand::Rng;
    let n: u128 = rand::rng().random();
    format!("{prefix}-{n:032x}")
}

/// Seconds since the epoch, OpenAI's `created`.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
