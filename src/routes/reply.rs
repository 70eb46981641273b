//! How every video dialect's chat route runs once it has decoded its request: the grounded
//! answer starts (`answer::grounded`), then streams through the dialect's encoder or is read
//! whole, with the request's log line written either way.

use axum::response::Response;
use tracing::Instrument;

use super::incoming::Incoming;
use crate::answer::admission::Caller;
use crate::answer::collect::{self, Whole};
use crate::answer::video_chat::{self, Cited, VideoAsk};
use crate::answer::UsageBasis;
use crate::conversation::{Message, Role};
use crate::error::ApiError;
use crate::relay::{self, Encoder};
use crate::state::AppState;

/// A chat's outcome: the streaming response, or the whole answer for the dialect to wrap.
pub enum Reply {
    Streaming(Response),
    Whole {
        whole: Whole,
        /// The prompt, to estimate usage when the upstream reported none.
        basis: Option<UsageBasis>,
    },
}

/// `make_encoder` gets the videos and segments the answer stands on (for dialects that send
/// them ahead of the text, like Memories.ai's `ref` event), and the prompt to count usage by.
pub async fn run<E: Encoder>(
    state: &AppState,
    incoming: &Incoming,
    dialect: &'static str,
    caller: &Caller,
    ask: VideoAsk,
    stream: bool,
    make_encoder: impl FnOnce(&[Cited], Option<UsageBasis>) -> E,
) -> Result<Reply, ApiError> {
    let mut record = incoming.record(dialect, &ask.persona);
    let span = tracing::info_span!("chat", request_id = %incoming.request_id, dialect);
    let started = video_chat::start(state, caller, ask, &mut record)
        .instrument(span)
        .await;
    let (mut started, cited) = match started {
        Ok(started) => started,
        Err(error) => {
            record.fail(&error);
            return Err(error);
        }
    };
    let basis = started.usage.take();
    if stream {
        let encoder = make_encoder(&cited, basis);
        let body = relay::stream(started, encoder, record, state.hard_stop().clone());
        return Ok(Reply::Streaming(super::sse::response(body)));
    }
    let whole = collect::whole(started, &mut record, state.hard_stop()).await?;
    Ok(Reply::Whole { whole, basis })
}

/// A `{role, content}` message as Mavera and Reka send them.
#[derive(serde::Deserialize)]
pub struct TextMessage {
    role: String,
    content: String,
}

/// The conversation, checked: known roles, ending with the user's question.
pub fn conversation(messages: Vec<TextMessage>) -> Result<Vec<Message>, ApiError> {
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.into_iter().enumerate() {
        let role = match m.role.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "system" => Role::System,
            other => {
                return Err(ApiError::bad_request(
                    format!("messages[{i}].role"),
                    format!("`{other}` is not one of user, assistant, system"),
                ))
            }
        };
        out.push(Message::new(role, m.content));
    }
    if out.last().map(|m| m.role) != Some(Role::User) {
        return Err(ApiError::bad_request(
            "messages",
            "must end with a user message",
        ));
    }
    Ok(out)
}

/// The encoder of a dialect that never streams (Reka): `run` with `stream: false` never uses it.
pub struct Unstreamed;

impl Encoder for Unstreamed {
    fn event(&mut self, _: crate::upstream::Event) -> Option<bytes::Bytes> {
        None
    }
    fn failed(&mut self, _: crate::relay::Failure<'_>) -> Option<bytes::Bytes> {
        None
    }
    fn end(&mut self) -> bytes::Bytes {
        bytes::Bytes::new()
    }
}
