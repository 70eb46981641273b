//! HTTP surface. Each dialect is a module that only decodes its requests, picks its encoder and
//! renders errors in its envelope; the core (`answer`) does the rest. What every route shares:
//! `incoming` (request id, key, caller address), `body` (size- and time-limited reads), `linger`
//! (the rest of a refused body read and thrown away, so the caller reads the refusal), `sse`
//! (streaming response headers), `reply` (every chat's outline), `respond` (every other video
//! route's), `ingest` (uploads and links). Each dialect lists its own paths in its `router()`;
//! this module merges them. `ops` holds the endpoints for operators; `videos` is the video
//! library's own API; `mcp` offers the same library as MCP tools.

pub mod body;
pub mod chatapi;
mod digests;
pub mod incoming;
pub mod ingest;
mod linger;
pub mod mavera;
mod mcp;
mod media;
pub mod memories;
pub mod openai;
mod ops;
pub mod reka;
pub mod reply;
pub mod respond;
pub mod search;
pub mod sse;
pub mod videos;

use axum::http::HeaderName;
use axum::routing::get;
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::state::AppState;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Everything callers use; with no `server.admin_listen`, the operators' endpoints too.
pub fn router(state: AppState) -> Router {
    let with_ops = state.runtime().config.server.admin_addr().is_none();
    let public = Router::new()
        .merge(chatapi::router())
        .merge(openai::router())
        .merge(videos::router())
        .merge(memories::router())
        .merge(mavera::router())
        .merge(reka::router())
        .merge(mcp::router(&state))
        .merge(crate::page::router())
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
