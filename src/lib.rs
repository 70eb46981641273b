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
//! Beside the path: `config` (layered TOML + env, unknown keys rejected), `state` (the swappable
//! runtime and shared limits), `error` (every failure's status and JSON body, in one place),
//! `record` + `metrics` + `telemetry` (one log line per request, Prometheus), `signals` (shutdown),
//! `reload` (SIGHUP and config-file changes).

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
pub mod signals;
pub mod state;
pub mod telemetry;
pub mod upstream;
pub mod validate;
pub mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

pub use config::Config;
pub use state::AppState;

/// The router, for callers that bring their own server loop.
pub fn app(state: AppState) -> axum::Router {
    routes::router(state)
}

/// Serves on `listener` until `shutdown` resolves, then shuts down in phases:
/// 1. stop accepting connections (idle keep-alive connections close);
/// 2. let open streams run for `server.shutdown_grace`;
/// 3. end every stream still open with `data: [DONE]`;
/// 4. return once the last response is written.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    metrics::install();
    let grace = state.runtime().config.server.shutdown_grace;
    let hard_stop = state.hard_stop().clone();
    let housekeeping = tokio::spawn({
        let state = state.clone();
        async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                state.runtime().rate_limits.shrink();
            }
        }
    });
    // Without TCP_NODELAY each small event waits on the client's delayed ACK (~40 ms on Linux).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = routes::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!(grace = ?grace, "shutting down: no new connections; open streams get the grace period");
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                tracing::info!("grace period over: ending open streams");
                hard_stop.cancel();
            });
        })
        .await;
    housekeeping.abort();
    result
}
