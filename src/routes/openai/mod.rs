//! OpenAI's dialect, so the OpenAI SDKs, LangChain, LiteLLM, Open WebUI and agent frameworks can
//! talk to a persona: `POST /v1/chat/completions` (`chat`), `POST /v1/responses` (`responses`,
//! whose encoder the video dialects reuse), `GET /v1/models` (`models`). `model` names the
//! persona. Shared here: request decoding that names the field at fault, and OpenAI's error
//! envelope (an unknown persona is OpenAI's `model_not_found`).

pub mod chat;
mod decode;
pub mod models;
pub mod responses;

use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// OpenAI's routes, under its own paths.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/responses", post(responses::create))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{id}", get(models::get))
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
