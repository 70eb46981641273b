//! How every chat route runs, whatever its dialect (`chat`): the request's record and span, the
//! dialect's own start, then the answer streamed through the dialect's encoder or read whole,
//! with the request's one log line written either way. A question about videos
//! (`chat_or_video`, and `video` for the video dialects, whose questions always are) is that over
//! the grounded answer (`answer::video_chat`), every `[MM:SS]` in it checked against the
//! segments it was grounded in (`answer::citations`, through the `Checked` encoder). Also here:
//! the `{role, content}` conversation Mavera and Reka send, and the encoder of a dialect that
//! never streams.

use axum::response::Response;
use tracing::Instrument;

use super::incoming::Incoming;
use crate::access_log::Record;
use crate::answer::admission::Caller;
use crate::answer::citations::Citations;
use crate::answer::collect::{self, Whole};
use crate::answer::video_chat::{self, Cited, VideoAsk};
use crate::answer::{self, Ask, Started, UsageBasis};
use crate::conversation::{Message, Role};
use crate::error::ApiError;
use crate::relay::{self, Encoder, Failure, Settle};
use crate::upstream::Event;

/// How an answer goes back: streamed through the dialect's encoder, or read whole for the
/// dialect to wrap.
pub enum Mode<E> {
    Stream(E),
    Whole,
}

/// A chat's outcome: the streaming response, or the whole answer for the dialect to wrap, with
/// what the dialect decoded (`asked`).
pub enum Reply<T = ()> {
    Streaming(Response),
    Whole {
        whole: Whole,
        /// The prompt, to estimate usage when the upstream reported none.
        basis: Option<UsageBasis>,
        asked: T,
    },
}

/// A chat that failed, before its answer began or while it was read whole; its record writes the
/// request's log line when dropped (a dialect that answers a failure in words, as ChatAPI's
/// `speak_errors`, changes it first).
pub struct Failed {
    pub error: ApiError,
    pub record: Record,
}

/// The one outline of every chat route: the request's record (its one log line) and span, then
/// `start` (the dialect admits the caller, decodes its request and starts the answer in the
/// core, labelling the record as it learns the persona), then the answer streamed through the
/// encoder `mode` picks or read whole.
pub async fn chat<T, E: Encoder>(
    incoming: &Incoming,
    dialect: &'static str,
    persona: &str,
    start: impl AsyncFnOnce(&mut Record) -> Result<(Started, T), ApiError>,
    mode: impl FnOnce(&mut Started, &mut T) -> Mode<E>,
) -> Result<Reply<T>, Failed> {
    let mut record = incoming.record(dialect, persona);
    let span = tracing::info_span!("chat", request_id = %incoming.request_id, dialect, persona);
    let started = start(&mut record).instrument(span).await;
    let (mut started, mut asked) = match started {
        Ok(started) => started,
        Err(error) => {
            record.fail(&error);
            return Err(Failed { error, record });
        }
    };
    match mode(&mut started, &mut asked) {
        Mode::Stream(encoder) => {
            let body = relay::stream(
                started,
                encoder,
                record,
                incoming.state().hard_stop().clone(),
            );
            Ok(Reply::Streaming(super::sse::response(body)))
        }
        Mode::Whole => {
            let basis = started.usage.take();
            match collect::whole(started, &mut record, incoming.state().hard_stop()).await {
                Ok(whole) => Ok(Reply::Whole {
                    whole,
                    basis,
                    asked,
                }),
                Err(error) => Err(Failed { error, record }),
            }
        }
    }
}

/// What a video dialect decoded: the caller, what the answer stands on, whether it streams,
/// and whatever the dialect keeps for its reply (`kept`: a session, a model name).
pub struct Decoded<K> {
    pub caller: Caller,
    pub ask: VideoAsk,
    pub stream: bool,
    pub kept: K,
}

/// A video dialect's chat: `chat_or_video` with a question always about videos. `decode` admits
/// the caller and decodes its request; `make_encoder` gets the videos and segments the answer
/// stands on (for dialects that send them ahead of the text, like Memories.ai's `ref` event),
/// the prompt to count usage by, and what the dialect kept.
pub async fn video<K, E: Encoder>(
    incoming: &Incoming,
    dialect: &'static str,
    decode: impl AsyncFnOnce(&mut Record) -> Result<Decoded<K>, ApiError>,
    make_encoder: impl FnOnce(&[Cited], Option<UsageBasis>, &mut K) -> E,
) -> Result<Reply<(Vec<Cited>, K)>, Failed> {
    let about_videos = async |record: &mut Record| {
        let Decoded {
            caller,
            ask,
            stream,
            kept,
        } = decode(record).await?;
        record.label_persona(&caller.runtime.config, &ask.persona);
        Ok((caller, Question::AboutVideos(ask), (kept, stream)))
    };
    let mode = |started: &mut Started, cited: &[Cited], (kept, stream): &mut (K, bool)| {
        if *stream {
            Mode::Stream(make_encoder(cited, started.usage.take(), kept))
        } else {
            Mode::Whole
        }
    };
    Ok(
        match chat_or_video(incoming, dialect, about_videos, mode).await? {
            Reply::Whole {
                whole,
                basis,
                asked: ((kept, _), cited),
            } => Reply::Whole {
                whole,
                basis,
                asked: (cited, kept),
            },
            Reply::Streaming(response) => Reply::Streaming(response),
        },
    )
}

/// What a chat route decoded: a plain question, or one grounded in videos.
pub enum Question {
    Plain(Ask),
    AboutVideos(VideoAsk),
}

/// `chat` for a question that may be about videos: a plain one starts as any other; one about
/// videos is grounded (`answer::video_chat`) and every stamp in its answer checked, streamed or
/// whole. `decode` admits the caller and decodes its request; `mode` also gets the videos and
/// segments the answer stands on (none for a plain question), which the reply carries back.
pub async fn chat_or_video<T, E: Encoder>(
    incoming: &Incoming,
    dialect: &'static str,
    decode: impl AsyncFnOnce(&mut Record) -> Result<(Caller, Question, T), ApiError>,
    mode: impl FnOnce(&mut Started, &[Cited], &mut T) -> Mode<E>,
) -> Result<Reply<(T, Vec<Cited>)>, Failed> {
    let start = async |record: &mut Record| {
        let (caller, question, asked) = decode(record).await?;
        match question {
            Question::Plain(ask) => {
                let started = answer::start(incoming.state(), &caller, ask, record).await?;
                Ok((started, (asked, Vec::new(), None)))
            }
            Question::AboutVideos(ask) => {
                let (started, grounded) =
                    video_chat::start(incoming.state(), &caller, ask, record).await?;
                Ok((started, (asked, grounded.cited, Some(grounded.check))))
            }
        }
    };
    let mode = |started: &mut Started,
                (asked, cited, citations): &mut (T, Vec<Cited>, Option<Citations>)| {
        match mode(started, cited, asked) {
            Mode::Stream(inner) => Mode::Stream(Checked {
                inner,
                citations: citations.take(),
            }),
            // The citations stay for the whole text, below.
            Mode::Whole => Mode::Whole,
        }
    };
    Ok(match chat(incoming, dialect, "", start, mode).await? {
        Reply::Whole {
            mut whole,
            basis,
            asked: (asked, cited, citations),
        } => {
            if let Some(citations) = citations {
                whole.text = citations.whole(&whole.text);
            }
            Reply::Whole {
                whole,
                basis,
                asked: (asked, cited),
            }
        }
        Reply::Streaming(response) => Reply::Streaming(response),
    })
}

/// A dialect's encoder with every stamp in the text checked on its way through, when the answer
/// is grounded in videos (`citations`; else the events pass as they are): only a stamp in
/// progress is held back, and what is held goes out before anything that ends the text.
struct Checked<E> {
    inner: E,
    citations: Option<Citations>,
}

impl<E: Encoder> Checked<E> {
    /// What the check still holds, through the dialect's encoder.
    fn rest(&mut self) -> Option<bytes::Bytes> {
        let rest = self.citations.as_mut()?.finish();
        (!rest.is_empty())
            .then(|| self.inner.event(Event::Text(rest)))
            .flatten()
    }
}

fn joined(a: Option<bytes::Bytes>, b: Option<bytes::Bytes>) -> Option<bytes::Bytes> {
    match (a, b) {
        (Some(a), Some(b)) => Some([a, b].concat().into()),
        (a, b) => a.or(b),
    }
}

impl<E: Encoder> Encoder for Checked<E> {
    fn begin(&mut self) -> Option<bytes::Bytes> {
        self.inner.begin()
    }
    fn event(&mut self, event: Event) -> Option<bytes::Bytes> {
        let Some(citations) = self.citations.as_mut() else {
            return self.inner.event(event);
        };
        match event {
            Event::Text(text) => {
                let text = citations.feed(&text);
                (!text.is_empty())
                    .then(|| self.inner.event(Event::Text(text)))
                    .flatten()
            }
            // Logprobs and usage come between text pieces; a finish or a tool call ends the text.
            Event::Logprobs(_) | Event::Usage(_) => self.inner.event(event),
            other => {
                let rest = self.rest();
                joined(rest, self.inner.event(other))
            }
        }
    }
    fn ping(&self) -> bytes::Bytes {
        self.inner.ping()
    }
    fn failed(&mut self, failure: Failure<'_>) -> Option<bytes::Bytes> {
        let rest = self.rest();
        joined(rest, self.inner.failed(failure))
    }
    fn settle(&mut self) -> Option<Settle> {
        self.inner.settle()
    }
    fn end(&mut self) -> bytes::Bytes {
        let rest = self.rest();
        joined(rest, Some(self.inner.end())).unwrap_or_default()
    }
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
