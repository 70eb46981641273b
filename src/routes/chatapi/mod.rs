//! The FaceTo-AI ChatAPI dialect: `POST /chat` and `POST /chat/{persona}`, a body of
//! `{"messages":[...]}` (decoded by `request`), and an answer of `data: {"content":"..."}` events
//! ending in `data: [DONE]` (`framing`). The HTTP status is held back until the first token, so
//! an upstream that fails before saying anything gets its own status; if the upstream is slow to
//! start, the status is sent after `server.keepalive` so pings can keep the line open.

mod framing;
mod request;

use super::incoming::Incoming;
use super::reply::{Failed, Mode, Reply};
use crate::access_log::Record;
use crate::answer::{self, Ask};
use crate::config::DEFAULT_PERSONA;
use crate::error::{ApiError, ErrorKind};
use crate::state::AppState;
use axum::extract::{Path, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
pub use framing::Framing;

const DIALECT: &str = "chatapi";

/// `POST /chat` (the default persona) and `POST /chat/{persona}`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/chat", post(chat_default))
        .route("/chat/{persona}", post(chat_persona))
}

pub async fn chat_default(incoming: Incoming, request: Request) -> Response {
    chat(DEFAULT_PERSONA.to_string(), incoming, request).await
}

pub async fn chat_persona(
    Path(persona): Path<String>,
    incoming: Incoming,
    request: Request,
) -> Response {
    chat(persona, incoming, request).await
}

async fn chat(persona: String, incoming: Incoming, request: Request) -> Response {
    let persona_name = persona.clone();
    let framing = || Framing::new(incoming.runtime.config.wire.compact);
    let start = async |record: &mut Record| {
        let (caller, bytes) = super::body::admitted_to_answer(&incoming, request).await?;
        let messages = request::messages(&bytes, caller.runtime.config.limits.max_messages)?;
        let ask = Ask {
            persona,
            messages,
            reference: None,
            options: Default::default(),
        };
        Ok((
            answer::start(incoming.state(), &caller, ask, record).await?,
            (),
        ))
    };
    let reply = super::reply::chat(&incoming, DIALECT, &persona_name, start, |_, _| {
        Mode::Stream(framing())
    });
    match reply.await {
        Ok(Reply::Streaming(response)) => response,
        // Never asked for; framed as one event all the same.
        Ok(Reply::Whole { whole, .. }) => {
            let bytes = [framing().content(&whole.text), framing().done()];
            super::sse::response(futures_util::stream::iter(
                bytes.map(Ok::<_, std::convert::Infallible>),
            ))
        }
        Err(Failed { error, mut record }) => match spoken_error(&incoming, &persona_name, &error) {
            Some(text) => {
                record.status = 200;
                let bytes = [framing().content(&text), framing().done()];
                let stream =
                    futures_util::stream::iter(bytes.map(Ok::<_, std::convert::Infallible>));
                super::sse::response(stream)
            }
            None => error.into_response(),
        },
    }
}

/// With the persona's `speak_errors`, a failure of the model (not of the caller's request) is
/// answered as the persona's own `on_error_text`: FaceTo-AI speaks it like any answer.
fn spoken_error(incoming: &Incoming, persona: &str, error: &ApiError) -> Option<String> {
    let p = incoming.runtime.config.personas.get(persona)?;
    // The model's failure, not the caller's: an upstream error that is not the request's own
    // fault (its kind says which), or no capacity to answer at all.
    let model_failed = match error {
        ApiError::Upstream(_) => error.kind() != ErrorKind::InvalidRequest,
        other => other.kind() == ErrorKind::Unavailable,
    };
    (p.speak_errors && model_failed)
        .then(|| p.on_error_text.clone())
        .flatten()
        .filter(|t| !t.is_empty())
}
