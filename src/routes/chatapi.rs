//! The FaceTo-AI ChatAPI dialect: `POST /chat` and `POST /chat/{persona}`, a body of
//! `{"messages":[...]}`, and an answer of `data: {"content":"..."}` events ending in
//! `data: [DONE]` (framing in `wire`). The HTTP status is held back until the first token, so an
//! upstream that fails before saying anything gets its own status; if the upstream is slow to
//! start, the status is sent after `server.keepalive` so pings can keep the line open.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tracing::Instrument;

use super::REQUEST_ID;
use crate::config::{Timeouts, DEFAULT_PERSONA};
use crate::error::ApiError;
use crate::limits::StreamSlot;
use crate::record::Record;
use crate::relay::{self, OpenFuture, Relay, Start};
use crate::state::AppState;
use crate::wire::Framing;
use crate::{auth, persona, validate};

pub async fn chat_default(State(state): State<AppState>, request: Request) -> Response {
    chat(state, DEFAULT_PERSONA, request).await
}

pub async fn chat_persona(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    chat(state, &name, request).await
}

async fn chat(state: AppState, persona_name: &str, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    // Present when served through `crate::serve`; absent under a bare router (tests, embedding).
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied();
    let request_id = headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let span = tracing::info_span!("chat", request_id = %request_id, persona = %persona_name);
    let mut record = Record::new(request_id, persona_name);
    let peer_ip = peer.map(|ConnectInfo(addr)| addr.ip());
    match answer(&state, persona_name, peer_ip, &headers, body, &mut record)
        .instrument(span)
        .await
    {
        Ok(ready) => {
            let relay = Relay {
                framing: ready.framing,
                keepalive: ready.keepalive,
                idle: ready.timeouts.idle,
                total: ready.timeouts.total,
                on_error_text: ready.on_error_text,
                hard_stop: state.hard_stop().clone(),
                record,
                slot: ready.slot,
            };
            sse(relay::stream(relay, ready.start))
        }
        Err(error) => {
            record.status = error.status().as_u16();
            record.finish(error.outcome());
            error.into_response()
        }
    }
}

/// A request that passed every check and whose answer has begun (or is about to).
struct Ready {
    start: Start,
    slot: StreamSlot,
    timeouts: Timeouts,
    keepalive: Duration,
    framing: Framing,
    on_error_text: Option<String>,
}

/// Everything up to the first token: check, persona, upstream. Returns how to build the stream.
async fn answer(
    state: &AppState,
    persona_name: &str,
    peer_ip: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    body: Body,
    record: &mut Record,
) -> Result<Ready, ApiError> {
    let runtime = state.runtime();
    let config = &runtime.config;
    let key = auth::check(&config.auth.keys, headers)?;
    let persona = config
        .personas
        .get(persona_name)
        .ok_or_else(|| ApiError::UnknownPersona(persona_name.to_string()))?;
    runtime.rate_limits.check(key, peer_ip, headers)?;
    let slot = state
        .streams()
        .try_open(config.limits.max_concurrent_streams)?;
    let bytes = read_body(body, headers, config).await?;
    let messages = validate::messages(&bytes, config.limits.max_messages)?;
    let (request, applied) = persona::apply(persona, messages);
    record.dropped_turns = applied.dropped_turns;
    if runtime.upstreams.is_empty() {
        return Err(ApiError::NoUpstream);
    }

    let timeouts = config.timeouts.with(&persona.timeouts);
    let keepalive = config.server.keepalive;
    let upstreams = runtime.clone();
    let mut open: OpenFuture = Box::pin(
        async move { upstreams.upstreams.open(&request, &timeouts).await }
            .instrument(tracing::Span::current()),
    );
    let hold = keepalive.min(timeouts.total);
    let start = tokio::select! {
        opened = &mut open => Start::Opened(opened?),
        _ = tokio::time::sleep(hold) => Start::Waiting(open),
    };
    Ok(Ready {
        start,
        slot,
        timeouts,
        keepalive,
        framing: Framing::new(config.wire.compact),
        on_error_text: persona.on_error_text.clone(),
    })
}

/// Reads the whole body within the size and time limits; a slow or oversized body never holds a
/// stream slot for long.
async fn read_body(
    body: Body,
    headers: &HeaderMap,
    config: &crate::config::Config,
) -> Result<bytes::Bytes, ApiError> {
    let limit = config.limits.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    let collect = Limited::new(body, limit).collect();
    match tokio::time::timeout(config.limits.body_timeout, collect).await {
        Err(_) => Err(ApiError::BodyTimeout(config.limits.body_timeout)),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::BodyTooLarge { limit })
        }
        Ok(Err(e)) => Err(ApiError::bad_request(
            "body",
            format!("could not be read: {e}"),
        )),
    }
}

fn sse(
    stream: impl futures_util::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>>
        + Send
        + 'static,
) -> Response {
    let mut response = Body::from_stream(stream).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx and friends buffer responses unless told not to; a buffered stream is a silent avatar.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
