//! HTTP surface. Each dialect is a module that only decodes its requests, picks its encoder and
//! renders errors in its envelope; the core (`answer`) does the rest. What every route shares:
//! `incoming` (request id, key, caller address), `body` (size- and time-limited reads), `sse`
//! (streaming response headers). `ops` holds the endpoints for operators; `videos` is the video
//! library's own API.

pub mod body;
pub mod chatapi;
pub mod incoming;
pub mod openai;
mod ops;
pub mod sse;
pub mod videos;

use axum::extract::DefaultBodyLimit;
use axum::http::HeaderName;
use axum::routing::{get, post};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::state::AppState;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/chat", post(chatapi::chat_default))
        .route("/chat/{persona}", post(chatapi::chat_persona))
        .route("/v1/chat/completions", post(openai::chat::completions))
        .route("/v1/responses", post(openai::responses::create))
        .route("/v1/models", get(openai::models::list))
        .route("/v1/models/{id}", get(openai::models::get))
        // Uploads stream to disk under `videos.max_bytes`, not axum's in-memory body limit.
        .route(
            "/v1/videos",
            post(videos::create)
                .get(videos::list)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/videos/{id}", get(videos::get).delete(videos::delete))
        .route("/v1/videos/{id}/timeline", get(videos::timeline))
        .route("/v1/videos/{id}/keyframes/{file}", get(videos::keyframe))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .with_state(state)
        // Outermost last: the id is set (caller's or a new UUID) before the handler runs and
        // copied onto the response.
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}
