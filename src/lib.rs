//! chatapi: the server a FaceTo-AI room owner registers as the room's "ChatAPI", and a gateway
//! that speaks other dialects over the same personas and upstreams.
//!
//! A request travels one way through these modules:
//!
//! - `routes` — the HTTP surface, one module per dialect. Each only decodes its request (for
//!   ChatAPI, `routes::chatapi::request`), picks its encoder (`routes::chatapi::Framing`) and
//!   renders errors in its envelope. `routes::incoming` reads the key and caller address (and
//!   admits through them, reaching the library and a JSON body),
//!   `routes::body` reads bodies within each route's limits (and decodes JSON ones),
//!   `routes::linger` drains what a refused caller is still sending; `routes::reply` is every
//!   chat route's outline (record, span, the dialect's start, then stream or read whole; for
//!   the video dialects, grounded and its stamps checked), `routes::respond` every other video
//!   route's (run, render, log), `routes::ingest` takes uploads and links, `routes::media` serves
//!   a video's source (HTTP Range) and keyframes to a key or a signed link (`auth::media_link`);
//!   `routes::ops` serves health, readiness and metrics (on `server.admin_listen` alone when that
//!   is set). `page` is the page at `/` (watch, search, chat in a browser), compiled in.
//!   `routes::mcp` is the video library as MCP tools for agents at `/mcp` (through `rmcp`);
//!   `stdio_bridge` is `chatapi mcp --stdio`, relaying a local client to it.
//! - `answer` — the core every dialect shares, with no HTTP in it: `answer::admission` (per-IP
//!   limit, `auth` key check, per-key limit; with replicas, the shared stream place), then `answer::start` (persona, stream slot, context
//!   budget, upstream open with failover); `answer::collect` reads a whole answer for dialects
//!   that do not stream; `answer::digest` makes summaries, chapters, highlights, gists and
//!   analyses of a whole video (map over stretches, reduce), served by `routes::digests`.
//! - `persona` — the owner's system prompt, sampling knobs and name rules; `context_budget`
//!   drops the oldest turns when a long call would overflow the model's window; `sampling` holds
//!   the knobs' ranges, one rule for a persona's config and a caller's request.
//! - `upstream` — the configured backends (`remote` OpenAI-compatible APIs, reached through
//!   `upstream::transport`'s connector and pools, HTTP/1.1 spoken by `upstream::http1` on the
//!   answer's task; their event streams `upstream::sse` splits; and
//!   the embedded `local` model), tried in order with retries,
//!   back-off and a circuit breaker; each answer is a stream of `upstream::Event`s (text,
//!   tool-call pieces, finish reason, usage).
//! - `relay` — turns that stream into the response body through a dialect's `relay::Encoder`:
//!   timeouts, keep-alive pings, shutdown and hang-up are the relay's, the bytes the encoder's.
//!
//! - `videos` — the video library: uploads and URL ingest, offline processing (ffprobe,
//!   subtitles or speech-to-text, keyframes at the cuts `videos::scan` finds, OCR; every
//!   program bounded by `videos::programs`, every addition by `videos::quota`) into a timeline
//!   of segments and their timed cues, kept in a store (SQLite, or Postgres for replicas);
//!   served natively by `routes::videos`, and to the video dialects (`routes::memories` for
//!   MAVI/Memories.ai v1.0 and v1.2, `routes::mavera`, `routes::reka`). Their chats go through
//!   `answer::video_chat` (the caller's videos, the budget) and `videos::excerpt` (the timeline,
//!   cut to the question and stamped `[MM:SS]`, and for the embedded model the moment that best
//!   answers) into the same core; `answer::citations` checks every stamp of the answer, and holds
//!   the embedded model's answer whole, replacing one not grounded in the timeline with that
//!   moment, quoted. `videos::search` finds moments by
//!   meaning (`videos::embed`, the model; `videos::vectors`, the in-memory index) and by keyword
//!   (FTS5 in `videos::store`), served by `routes::search` and each dialect's search route.
//!
//! Beside the path: `server` (the accept loop and phased shutdown), `config` (layered TOML + env,
//! unknown keys rejected), `state` (the swappable runtime and shared limits), `error` (every
//! failure's status, kind and code, in one place), `access_log` + `metrics` (one log line per
//! request, Prometheus), `logging` (log output set-up; `logging::batched`, the thread that
//! writes lines a batch at a time; `logging::fields`, a text line's fields), `signals`
//! (shutdown), `reload` (SIGHUP and config-file changes). Shared state, one module per concern,
//! each with its in-process and its Redis half: `rate` (rate limits; `rate::shared`), `streams`
//! (the stream cap; its leases in `cluster::streams`, which the Redis connection renews),
//! `answer::repeats` (request-id repeats; `answer::repeats::shared`); `cluster` holds the Redis
//! connection, the one-round-trip admission script and Memories.ai sessions, with this process's
//! own state as the fallback.
//!
//! Beside the crate, workspace members of their own: `whisper/` (`chatapi-whisper`, the
//! speech-to-text program each video's processing starts) and `bench/` (`chatapi-bench`, every
//! measured figure in the README, with its mock upstream).

mod access_log;
mod answer;
mod auth;
pub mod cluster;
pub mod config;
pub mod context_budget;
pub mod conversation;
mod error;
pub mod logging;
mod metrics;
mod page;
mod persona;
mod rate;
mod relay;
pub mod reload;
mod routes;
mod sampling;
mod server;
pub mod signals;
mod state;
pub mod stdio_bridge;
mod streams;
pub mod upstream;
pub mod videos;

pub use config::Config;
pub use server::serve;
pub use state::AppState;

/// The router, for callers that bring their own server loop.
pub fn app(state: AppState) -> axum::Router {
    routes::router(state)
}
