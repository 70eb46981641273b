//! chatapi: the server a FaceTo-AI room owner registers as the room's "ChatAPI".
//!
//! A request travels one way through these modules:
//!
//! - `routes` — the HTTP surface. `routes::chatapi` reads FaceTo-AI's `{"messages":[...]}` and
//!   answers `data: {"content":"..."}` events; `routes::ops` serves health, readiness, metrics.
//! - `auth`, `limits` — bearer keys; rate limits per key and per IP. Checked before anything else.
//! - `validate` — the body becomes a list of `conversation::Message`, or a 4xx naming the field.
//! - `persona` — the owner's system prompt, sampling knobs and name rules; `context` drops the
//!   oldest turns when a long call would overflow the model's window.
//! - `upstream` — tries the configured OpenAI-compatible backends in order (retries, back-off,
//!   circuit breaker) until one produces a first token; yields a stream of text deltas.
//! - `relay` — turns that stream into the response body: timeouts, keep-alive pings, a clean
//!   `[DONE]` whatever happens; `wire` is the exact byte framing.
//!
//! Beside the path: `server` (the accept loop and phased shutdown), `config` (layered TOML + env,
//! unknown keys rejected), `state` (the swappable runtime and shared limits), `error` (every
//! failure's status and JSON body, in one place), `record` + `metrics` + `telemetry` (one log line
//! per request, Prometheus), `signals` (shutdown), `reload` (SIGHUP and config-file changes).

pub mod auth;
pub mod config;
pub mod context;
pub mod conversation;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod persona;
pub mod record;
pub mod relay;
pub mod reload;
pub mod routes;
pub mod server;
pub mod signals;
pub mod state;
pub mod telemetry;
pub mod upstream;
pub mod validate;
pub mod wire;

pub use config::Config;
pub use server::serve;
pub use state::AppState;

/// The router, for callers that bring their own server loop.
pub fn app(state: AppState) -> axum::Router {
    routes::router(state)
}
