//! HTTP surface. Each dialect is a module that only decodes its requests, picks its encoder and
//! renders errors in its envelope; the core (`answer`) does the rest. What every route shares:
//! `incoming` (request id, key, caller address), `body` (size- and time-limited reads), `linger`
//! (the rest of a refused body read and thrown away, so the caller reads the refusal), `sse`
//! (streaming response headers). `ops` holds the endpoints for operators; `videos` is the video
//! library's own API.

pub mod body;
pub mod chatapi;
pub mod incoming;
pub mod ingest;
mod linger;
pub mod mavera;
pub mod memories;
pub mod openai;
mod ops;
pub mod reka;
pub mod reply;
pub mod respond;
pub mod search;
pub mod sse;
pub mod videos;

use axum::extract::DefaultBodyLimit;
use axum::http::HeaderName;
use axum::routing::{delete, get, post};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::state::AppState;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The video dialects' routes, under each vendor's own paths.
fn video_dialects() -> Router<AppState> {
    use memories::{mavi, v1_2};
    let v1_0 = "/api/serve/video";
    let v12 = "/serve/api/v1";
    Router::new()
        .route(
            &format!("{v1_0}/upload"),
            post(mavi::upload).layer(DefaultBodyLimit::disable()),
        )
        .route(&format!("{v1_0}/uploadUrl"), post(mavi::upload_url))
        .route(&format!("{v1_0}/searchDB"), get(mavi::search_db))
        .route(&format!("{v1_0}/delete"), delete(mavi::delete))
        .route(&format!("{v1_0}/chat"), post(mavi::chat))
        .route(&format!("{v1_0}/searchAI"), post(mavi::search_ai))
        .route(
            &format!("{v1_0}/searchVideoFragment"),
            post(mavi::search_video_fragment),
        )
        .route(
            &format!("{v12}/upload"),
            post(v1_2::upload).layer(DefaultBodyLimit::disable()),
        )
        .route(&format!("{v12}/upload_url"), post(v1_2::upload_url))
        .route(&format!("{v12}/list_videos"), post(v1_2::list_videos))
        .route(&format!("{v12}/delete_videos"), post(v1_2::delete_videos))
        .route(&format!("{v12}/chat"), post(v1_2::chat))
        .route(&format!("{v12}/chat_stream"), post(v1_2::chat_stream))
        .route(&format!("{v12}/search"), post(v1_2::search))
        .route(
            "/api/v1/video-analyses",
            post(mavera::create)
                .get(mavera::list)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/v1/video-analyses/{id}",
            get(mavera::get).delete(mavera::delete),
        )
        .route("/api/v1/video-analyses/{id}/chat", post(mavera::chat))
        .route(
            "/v2/videos",
            post(reka::create)
                .get(reka::list)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/v2/videos/{id}", get(reka::get).delete(reka::delete))
        .route("/v2/videos/{id}/features/plan", post(reka::plan))
        .route("/v2/videos/{id}/features/{feature}", post(reka::trigger))
        .route("/v2/videos/{id}/transcript", get(reka::transcript))
        .route("/v2/videos/{id}/captions", get(reka::captions))
        .route("/v2/chat", post(reka::chat))
        .route("/v2/search", post(reka::search))
}

/// Everything callers use; with no `server.admin_listen`, the operators' endpoints too.
pub fn router(state: AppState) -> Router {
    let with_ops = state.runtime().config.server.admin_addr().is_none();
    let public = Router::new()
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
        .route("/v1/search", post(search::search))
        .merge(video_dialects())
        // A liveness probe says nothing about the server: it stays where load balancers look.
        .route("/healthz", get(ops::healthz));
    let public = if with_ops {
        public.merge(ops())
    } else {
        public
    };
    layered(public.with_state(state))
}

/// The operators' endpoints alone, for `server.admin_listen`.
pub fn admin_router(state: AppState) -> Router {
    let admin = ops().route("/healthz", get(ops::healthz));
    layered(admin.with_state(state))
}

/// What tells about the server: personas, upstreams, counts, warnings.
fn ops() -> Router<AppState> {
    Router::new()
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
}

/// What every request goes through: its body wrapped to linger, its request id.
fn layered(router: Router) -> Router {
    // Outermost last: the id is set (caller's or a new UUID) before the handler runs and copied
    // onto the response.
    router
        .layer(axum::middleware::map_request(linger::wrap))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}
