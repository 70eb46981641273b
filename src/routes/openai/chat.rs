//! `POST /v1/chat/completions`, streaming or not, as OpenAI's SDKs expect it. A stream is
//! `chat.completion.chunk` events with one `id`: the first delta carries the role (with the
//! first text, so the first token costs one write, not two), text and tool-call pieces follow as
//! the upstream sends them, the last chunk carries `finish_reason`,
//! the usage chunk follows when `stream_options.include_usage` asks, then `data: [DONE]`. A
//! stream that breaks after it began ends with an `{"error":{...}}` event (the SDKs raise it as
//! an `APIError`) and `[DONE]`. A whole answer is a `chat.completion` with `usage`.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Value};

use super::decode::{self, ChatCompletionBody};
use super::{error_response, new_id, unix_now};
use crate::access_log::Record;
use crate::answer::video_chat::Cited;
use crate::answer::{collect, Started, UsageBasis};
use crate::relay::{Encoder, Failure};
use crate::routes::incoming::Incoming;
use crate::routes::reply::{self, Mode, Reply};
use crate::routes::sse::EventBuf;
use crate::upstream::{Event, FinishReason, ToolCallDelta, Usage};

const DIALECT: &str = "openai";

pub async fn completions(incoming: Incoming, request: Request) -> Response {
    let host = super::host(&request);
    let decode = async |record: &mut Record| {
        let (caller, bytes) = crate::routes::body::admitted_to_answer(&incoming, request).await?;
        let max_messages = caller.runtime.config.limits.max_messages;
        let ask = decode::json::<ChatCompletionBody>(&bytes)?.into_ask(max_messages)?;
        record.label_persona(&caller.runtime.config, &ask.persona);
        let asked = (ask.persona.clone(), ask.stream, ask.stream_usage);
        let question = super::question(
            &incoming,
            &caller,
            ask.persona,
            ask.messages,
            ask.options,
            ask.videos,
            host.as_ref(),
        )
        .await?;
        Ok((caller, question, asked))
    };
    let mode = |started: &mut Started,
                _: &[Cited],
                (model, stream, stream_usage): &mut (String, bool, bool)| {
        if *stream {
            Mode::Stream(ChunkEncoder::new(
                model,
                *stream_usage,
                started.usage.take(),
            ))
        } else {
            Mode::Whole
        }
    };
    match reply::chat_or_video(&incoming, DIALECT, decode, mode).await {
        Ok(Reply::Streaming(response)) => response,
        Ok(Reply::Whole {
            whole,
            basis,
            asked: ((model, ..), _),
        }) => Json(completion(&model, whole, basis.as_ref())).into_response(),
        Err(failed) => error_response(&failed.error),
    }
}

/// A whole `chat.completion`.
fn completion(model: &str, whole: collect::Whole, basis: Option<&UsageBasis>) -> Value {
    let usage = UsageBasis::or_estimate(basis, whole.usage, &whole.text).unwrap_or_default();
    let finish = whole
        .finish_reason
        .unwrap_or(if whole.tool_calls.is_empty() {
            FinishReason::Stop
        } else {
            FinishReason::ToolCalls
        });
    let mut message = json!({
        "role": "assistant",
        "content": (!whole.text.is_empty() || whole.tool_calls.is_empty()).then_some(&whole.text),
        "refusal": null,
    });
    if !whole.tool_calls.is_empty() {
        message["tool_calls"] = whole
            .tool_calls
            .iter()
            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
    }
    json!({
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": unix_now(),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish.as_str(),
            "logprobs": (!whole.logprobs.is_empty()).then(|| json!({"content": whole.logprobs}))}],
        "usage": usage_json(usage),
    })
}

pub fn usage_json(u: Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens(),
    })
}

/// Streams `chat.completion.chunk` events. Each chunk is the same JSON head (id, created, model)
/// built once, then the choice; a text chunk costs the text's escaping, in a buffer kept for the
/// stream.
pub struct ChunkEncoder {
    /// `data: {"id":...,"model":...,` — everything before `"choices"`.
    head: Bytes,
    buf: EventBuf,
    /// The role goes in the first delta, whatever it carries.
    role_sent: bool,
    finished: bool,
    /// Usage is sent last, after the finish chunk, when the caller asked for it.
    stream_usage: bool,
    usage: Option<Usage>,
    /// For counting usage when the upstream reports none: the prompt, and the text so far.
    basis: Option<UsageBasis>,
    text: String,
}

impl ChunkEncoder {
    pub fn new(model: &str, stream_usage: bool, basis: Option<UsageBasis>) -> Self {
        let head = format!(
            "data: {{\"id\":{},\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":{},",
            Value::from(new_id("chatcmpl")),
            unix_now(),
            Value::from(model),
        );
        Self {
            head: Bytes::from(head),
            buf: EventBuf::default(),
            role_sent: false,
            finished: false,
            stream_usage,
            usage: None,
            basis: basis.filter(|_| stream_usage),
            text: String::new(),
        }
    }

    /// One chunk whose `choices` (or whatever follows the head) is `rest`, a JSON fragment.
    fn chunk(&mut self, rest: impl FnOnce(&mut BytesMut)) -> Bytes {
        let head = &self.head;
        self.buf.event(head.len() + 96, |buf| {
            buf.put_slice(head);
            rest(buf);
            buf.put_slice(b"}\n\n");
        })
    }

    fn delta(&mut self, mut delta: Value, finish: Option<&str>) -> Bytes {
        if !std::mem::replace(&mut self.role_sent, true) {
            delta["role"] = json!("assistant");
        }
        let choices =
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
        self.chunk(|b| {
            b.put_slice(b"\"choices\":");
            b.put_slice(choices.to_string().as_bytes());
        })
    }

    fn text_chunk(&mut self, text: &str) -> Bytes {
        let open: &[u8] = if std::mem::replace(&mut self.role_sent, true) {
            b"\"choices\":[{\"index\":0,\"delta\":{\"content\":"
        } else {
            b"\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":"
        };
        self.chunk(|b| {
            b.put_slice(open);
            let mut w = b.writer();
            // Writing a &str into memory cannot fail.
            let _ = serde_json::to_writer(&mut w, text);
            w.into_inner()
                .put_slice(b"},\"logprobs\":null,\"finish_reason\":null}]");
        })
    }

    fn tool_chunk(&mut self, call: &ToolCallDelta) -> Bytes {
        let mut piece = json!({"index": call.index, "function": {"arguments": call.arguments}});
        if let Some(id) = &call.id {
            piece["id"] = json!(id);
            piece["type"] = json!("function");
        }
        if let Some(name) = &call.name {
            piece["function"]["name"] = json!(name);
        }
        self.delta(json!({"tool_calls": [piece]}), None)
    }
}

impl Encoder for ChunkEncoder {
    fn event(&mut self, event: Event) -> Option<Bytes> {
        match event {
            Event::Text(text) => {
                if self.basis.is_some() {
                    self.text.push_str(&text);
                }
                Some(self.text_chunk(&text))
            }
            Event::ToolCall(call) => Some(self.tool_chunk(&call)),
            Event::Finish(reason) => {
                self.finished = true;
                Some(self.delta(json!({}), Some(reason.as_str())))
            }
            Event::Usage(usage) => {
                self.usage = Some(usage);
                None
            }
            // Passed on as the upstream sent them, in a chunk of their own.
            Event::Logprobs(raw) => Some(self.chunk(|b| {
                b.put_slice(b"\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":");
                b.put_slice(raw.0.get().as_bytes());
                b.put_slice(b",\"finish_reason\":null}]");
            })),
        }
    }

    fn failed(&mut self, failure: Failure<'_>) -> Option<Bytes> {
        // The stream did not finish: no finish chunk, no usage, only the error.
        self.finished = true;
        self.stream_usage = false;
        let error = json!({"error": {"message": failure.message, "type": "server_error", "code": failure.code}});
        Some(Bytes::from(format!("data: {error}\n\n")))
    }

    fn end(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        if !self.role_sent {
            // Nothing was said at all: the role still comes first, with empty content.
            out.put_slice(&self.delta(json!({"content": ""}), None));
        }
        if !self.finished {
            // The upstream ended cleanly without saying why: it stopped.
            out.put_slice(&self.delta(json!({}), Some("stop")));
        }
        if self.stream_usage {
            let usage = UsageBasis::or_estimate(self.basis.as_ref(), self.usage, &self.text)
                .unwrap_or_default();
            out.put_slice(&self.chunk(|b| {
                b.put_slice(b"\"choices\":[],\"usage\":");
                b.put_slice(usage_json(usage).to_string().as_bytes());
            }));
        }
        out.put_slice(b"data: [DONE]\n\n");
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(bytes: &Bytes) -> Vec<Value> {
        std::str::from_utf8(bytes)
            .unwrap()
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }

    #[test]
    fn chunks_share_an_id_and_end_with_finish_usage_and_done() {
        let mut e = ChunkEncoder::new("tutor", true, None);
        assert!(e.begin().is_none());
        let first = data(&e.event(Event::Text("Hi \"x\"".into())).unwrap())[0].clone();
        assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(first["choices"][0]["delta"]["content"], "Hi \"x\"");
        let text = data(&e.event(Event::Text("!".into())).unwrap())[0].clone();
        assert_eq!(text["choices"][0]["delta"].get("role"), None);
        assert_eq!(text["id"], first["id"]);
        assert_eq!(text["model"], "tutor");
        assert_eq!(text["object"], "chat.completion.chunk");
        assert!(e
            .event(Event::Usage(Usage {
                prompt_tokens: 4,
                completion_tokens: 2
            }))
            .is_none());
        let end = e.end();
        assert!(end.ends_with(b"data: [DONE]\n\n"));
        let tail = data(&end);
        assert_eq!(tail[0]["choices"][0]["finish_reason"], "stop");
        assert_eq!(tail[1]["usage"]["total_tokens"], 6);
        assert_eq!(tail[1]["choices"], json!([]));
    }
}
