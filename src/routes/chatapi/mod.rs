//! The FaceTo-AI ChatAPI dialect: `POST /chat` and `POST /chat/{persona}`, a body of
//! `{"messages":[...]}` (decoded by `request`), and an answer of `data: {"content":"..."}` events
//! ending in `data: [DONE]` (`framing`). The HTTP status is held back until the first token, so
//! an upstream that fails before saying anything gets its own status; if the upstream is slow to
//! start, the status is sent after `server.keepalive` so pings can keep the line open.

mod framing;
mod request;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::incoming::Incoming;
use crate::answer::{self, Ask};
use crate::config::DEFAULT_PERSONA;
use crate::relay;
use crate::state::AppState;
pub use framing::Framing;

const DIALECT: &str = "chatapi";

pub async fn chat_default(
    State(state): State<AppState>,
    incoming: Incoming,
    headers: HeaderMap,
    body: Body,
) -> Response {
    chat(state, DEFAULT_PERSONA.to_string(), incoming, headers, body).await
}

pub async fn chat_persona(
    State(state): State<AppState>,
    Path(persona): Path<String>,
    incoming: Incoming,
    headers: HeaderMap,
    body: Body,
) -> Response {
    chat(state, persona, incoming, headers, body).await
}

async fn chat(
    state: AppState,
    persona: String,
    incoming: Incoming,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut record = incoming.record(DIALECT, &persona);
    let span = tracing::info_span!("chat", request_id = %incoming.request_id, persona = %persona);
    let started = async {
        let caller = incoming.admit()?;
        let limits = &caller.runtime.config.limits;
        let bytes =
            super::body::read(body, &headers, limits.max_body_bytes, limits.body_timeout).await?;
        let messages = request::messages(&bytes, limits.max_messages)?;
        let ask = Ask {
            persona,
            messages,
            options: Default::default(),
        };
        answer::start(&state, &caller, ask, &mut record).await
    }
    .instrument(span)
    .await;
    match started {
        Ok(started) => {
            let framing = Framing::new(incoming.runtime.config.wire.compact);
            let stream = relay::stream(started, framing, record, state.hard_stop().clone());
            super::sse::response(stream)
        }
        Err(error) => {
            record.fail(&error);
            error.into_response()
        }
    }
}
