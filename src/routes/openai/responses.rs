//! `POST /v1/responses`, OpenAI's Responses API, text in and text out. A whole answer is a
//! `response` object; a stream is the event sequence the official SDKs' `responses.stream`
//! helper accepts: `response.created`, `response.in_progress`, `response.output_item.added`,
//! `response.content_part.added`, `response.output_text.delta`..., `response.output_text.done`,
//! `response.content_part.done`, `response.output_item.done`, `response.completed` (or
//! `response.failed` when the answer breaks off). [`ResponsesEncoder`] and [`response_object`]
//! are shared with the video dialects that answer in this shape (Mavera).

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::{BufMut, Bytes};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::decode::{self, check_ranges, content_text, Content, VideoPart};
use super::{error_response, new_id, unix_now};
use crate::access_log::Record;
use crate::answer::collect::Whole;
use crate::answer::video_chat::Cited;
use crate::answer::{Started, UsageBasis};
use crate::config::Config;
use crate::conversation::{Message, Role};
use crate::error::ApiError;
use crate::persona::CallerOptions;
use crate::relay::{Encoder, Failure};
use crate::routes::incoming::Incoming;
use crate::routes::reply::{self, Mode, Reply};
use crate::routes::sse::EventBuf;
use crate::upstream::{Event, Extras, FinishReason, Sampling, Usage};

const DIALECT: &str = "openai-responses";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponsesBody {
    model: String,
    input: Input,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    max_output_tokens: Option<u32>,
    #[serde(default)]
    user: Option<String>,
    // Accepted, without effect: chatapi stores nothing, has one tier, and answers in text.
    #[serde(default, rename = "metadata")]
    _metadata: Option<Value>,
    #[serde(default, rename = "store")]
    _store: Option<bool>,
    #[serde(default, rename = "service_tier")]
    _service_tier: Option<Value>,
    #[serde(default, rename = "truncation")]
    _truncation: Option<Value>,
    #[serde(default, rename = "parallel_tool_calls")]
    _parallel_tool_calls: Option<bool>,
    #[serde(default)]
    text: Option<TextOptions>,
    // Known, not supported: refused by name.
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    previous_response_id: Option<Value>,
    #[serde(default)]
    conversation: Option<Value>,
    #[serde(default)]
    reasoning: Option<Value>,
    #[serde(default)]
    include: Option<Value>,
    #[serde(default)]
    background: Option<bool>,
    #[serde(default)]
    prompt: Option<Value>,
    #[serde(default)]
    top_logprobs: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Input {
    Text(String),
    Items(Vec<InputItem>),
}

#[derive(Debug, Deserialize)]
struct InputItem {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
struct TextOptions {
    #[serde(default)]
    format: Option<Value>,
    #[serde(default, rename = "verbosity")]
    _verbosity: Option<Value>,
}

/// A Responses request, decoded: the conversation (instructions first), the options, streaming.
pub struct ResponsesAsk {
    pub persona: String,
    pub messages: Vec<Message>,
    /// The videos the user messages name (`input_video` parts): the answer is grounded in them.
    pub videos: Vec<VideoPart>,
    pub options: CallerOptions,
    pub stream: bool,
}

impl ResponsesBody {
    fn into_ask(self, max_messages: usize) -> Result<ResponsesAsk, ApiError> {
        let refused = [
            (
                "tools",
                self.tools.as_ref().is_some_and(|t| !t.is_empty()) || self.tool_choice.is_some(),
            ),
            (
                "previous_response_id",
                self.previous_response_id.is_some() || self.conversation.is_some(),
            ),
            ("reasoning", self.reasoning.is_some()),
            ("include", self.include.is_some()),
            ("background", self.background.unwrap_or(false)),
            ("prompt", self.prompt.is_some()),
            ("top_logprobs", self.top_logprobs.is_some()),
        ];
        if let Some((field, _)) = refused.iter().find(|(_, set)| *set) {
            return Err(ApiError::bad_request(
                *field,
                "is not supported by chatapi; leave it out",
            ));
        }
        if let Some(format) = self.text.as_ref().and_then(|t| t.format.as_ref()) {
            if format.get("type").and_then(Value::as_str) != Some("text") {
                return Err(ApiError::bad_request(
                    "text.format",
                    "only `text` is supported",
                ));
            }
        }
        if self.model.is_empty() {
            return Err(ApiError::bad_request("model", "must name a persona"));
        }
        let mut messages = Vec::new();
        let mut videos = Vec::new();
        if let Some(instructions) = self.instructions.filter(|i| !i.is_empty()) {
            messages.push(Message::new(Role::System, instructions));
        }
        match self.input {
            Input::Text(text) => messages.push(Message::new(Role::User, text)),
            Input::Items(items) => {
                if items.is_empty() {
                    return Err(ApiError::bad_request("input", "must not be empty"));
                }
                for (i, item) in items.into_iter().enumerate() {
                    messages.push(input_message(i, item, &mut videos)?);
                }
            }
        }
        decode::check_video_count(&videos, "input")?;
        if messages.len() > max_messages {
            return Err(ApiError::bad_request(
                "input",
                format!(
                    "has {} items, more than the limit of {max_messages}",
                    messages.len()
                ),
            ));
        }
        let sampling = Sampling {
            temperature: self.temperature,
            top_p: self.top_p,
            max_tokens: self.max_output_tokens,
            ..Sampling::default()
        };
        check_ranges(&sampling).map_err(|e| match e {
            ApiError::BadRequest { field, problem } if field == "max_tokens" => {
                ApiError::bad_request("max_output_tokens", problem)
            }
            other => other,
        })?;
        Ok(ResponsesAsk {
            persona: self.model,
            messages,
            videos,
            options: CallerOptions {
                sampling,
                extras: Extras {
                    user: self.user,
                    ..Extras::default()
                },
                // A response always carries its usage.
                include_usage: true,
            },
            stream: self.stream.unwrap_or(false),
        })
    }
}

fn input_message(
    i: usize,
    item: InputItem,
    videos: &mut Vec<VideoPart>,
) -> Result<Message, ApiError> {
    let field = |f: &str| format!("input[{i}].{f}");
    if let Some(kind) = item.kind.as_deref().filter(|k| *k != "message") {
        return Err(ApiError::bad_request(
            field("type"),
            format!("`{kind}` items are not supported, only messages"),
        ));
    }
    let role = match item.role.as_deref() {
        Some("system" | "developer") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some(other) => {
            return Err(ApiError::bad_request(
                field("role"),
                format!("`{other}` is not one of system, developer, user, assistant"),
            ))
        }
        None => return Err(ApiError::bad_request(field("role"), "is required")),
    };
    let content = item
        .content
        .ok_or_else(|| ApiError::bad_request(field("content"), "is required"))?;
    let text = content_text(
        content,
        &field("content"),
        &["input_text", "output_text", "text"],
        (role == Role::User).then_some(videos),
    )?;
    Ok(Message::new(role, text))
}

/// Who serves the Responses API on a route: OpenAI's own (`model` names the persona) or a video
/// vendor's (Mavera's `/api/v1/responses`: its persona from `[video_chat]`, `model` only echoed
/// back), and the envelope its errors go out in.
pub struct Door {
    pub dialect: &'static str,
    pub persona: fn(&Config) -> Option<&str>,
    pub error: fn(&ApiError) -> Response,
}

const OPENAI: Door = Door {
    dialect: DIALECT,
    persona: |_| None,
    error: error_response,
};

pub async fn create(incoming: Incoming, request: Request) -> Response {
    serve(incoming, request, &OPENAI).await
}

/// `POST …/responses` through `door`.
pub async fn serve(incoming: Incoming, request: Request, door: &Door) -> Response {
    let host = super::host(&request);
    let decode = async |record: &mut Record| {
        let (caller, bytes) = crate::routes::body::admitted_to_answer(&incoming, request).await?;
        let config = &caller.runtime.config;
        let ask = decode::json::<ResponsesBody>(&bytes)?.into_ask(config.limits.max_messages)?;
        let persona = (door.persona)(config).map_or_else(|| ask.persona.clone(), str::to_string);
        record.label_persona(config, &persona);
        let asked = (ask.persona, ask.stream);
        let question = super::question(
            &incoming,
            &caller,
            persona,
            ask.messages,
            ask.options,
            ask.videos,
            host.as_ref(),
        )
        .await?;
        Ok((caller, question, asked))
    };
    let mode = |started: &mut Started, _: &[Cited], (model, stream): &mut (String, bool)| {
        if *stream {
            Mode::Stream(ResponsesEncoder::new(model, started.usage.take()))
        } else {
            Mode::Whole
        }
    };
    match reply::chat_or_video(&incoming, door.dialect, decode, mode).await {
        Ok(Reply::Streaming(response)) => response,
        Ok(Reply::Whole {
            whole,
            basis,
            asked: ((model, _), _),
        }) => whole_response(&model, &whole, basis.as_ref()),
        Err(failed) => (door.error)(&failed.error),
    }
}

/// A whole answer as a completed Responses object (here and Mavera's chat), with its usage.
pub fn whole_response(model: &str, whole: &Whole, basis: Option<&UsageBasis>) -> Response {
    let usage = UsageBasis::or_estimate(basis, whole.usage, &whole.text).unwrap_or_default();
    let finish = whole.finish_reason.clone().unwrap_or(FinishReason::Stop);
    Json(response_object(
        &ResponseIds::new(),
        model,
        Status::Done(&finish),
        &whole.text,
        Some(usage),
    ))
    .into_response()
}

/// The ids one response uses throughout its stream.
#[derive(Clone)]
pub struct ResponseIds {
    pub response: String,
    pub message: String,
    pub created_at: u64,
}

impl ResponseIds {
    pub fn new() -> Self {
        Self {
            response: new_id("resp"),
            message: new_id("msg"),
            created_at: unix_now(),
        }
    }
}

impl Default for ResponseIds {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a response stands.
pub enum Status<'a> {
    InProgress,
    /// Finished, for this reason (`length` makes it `incomplete`).
    Done(&'a FinishReason),
    Failed {
        code: &'a str,
        message: &'a str,
    },
}

fn output_message(ids: &ResponseIds, text: &str, completed: bool) -> Value {
    json!({
        "type": "message",
        "id": ids.message,
        "status": if completed { "completed" } else { "in_progress" },
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    })
}

/// A `response` object, as the API returns it whole and as lifecycle events carry it.
pub fn response_object(
    ids: &ResponseIds,
    model: &str,
    status: Status<'_>,
    text: &str,
    usage: Option<Usage>,
) -> Value {
    let (status, output, error, incomplete) = match status {
        Status::InProgress => ("in_progress", json!([]), Value::Null, Value::Null),
        Status::Done(FinishReason::Length) => (
            "incomplete",
            json!([output_message(ids, text, true)]),
            Value::Null,
            json!({"reason": "max_output_tokens"}),
        ),
        Status::Done(_) => (
            "completed",
            json!([output_message(ids, text, true)]),
            Value::Null,
            Value::Null,
        ),
        Status::Failed { code, message } => (
            "failed",
            json!([]),
            json!({"code": code, "message": message}),
            Value::Null,
        ),
    };
    json!({
        "id": ids.response,
        "object": "response",
        "created_at": ids.created_at,
        "status": status,
        "error": error,
        "incomplete_details": incomplete,
        "instructions": null,
        "max_output_tokens": null,
        "model": model,
        "output": output,
        "parallel_tool_calls": false,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": false,
        "temperature": null,
        "text": {"format": {"type": "text"}},
        "tool_choice": "none",
        "tools": [],
        "top_p": null,
        "truncation": "disabled",
        "usage": usage.map(|u| json!({
            "input_tokens": u.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": u.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": u.total_tokens(),
        })),
        "user": null,
        "metadata": {},
    })
}

/// The Responses event stream, one output message with one text part.
pub struct ResponsesEncoder {
    ids: ResponseIds,
    model: String,
    sequence: u64,
    text: String,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    basis: Option<UsageBasis>,
    failed: bool,
    buf: EventBuf,
}

impl ResponsesEncoder {
    pub fn new(model: &str, basis: Option<UsageBasis>) -> Self {
        Self {
            ids: ResponseIds::new(),
            model: model.to_string(),
            sequence: 0,
            text: String::new(),
            finish: None,
            usage: None,
            basis,
            failed: false,
            buf: EventBuf::default(),
        }
    }

    /// One `event:` + `data:` pair; `fields` gain `type` and `sequence_number`.
    fn sse_event(&mut self, kind: &str, mut fields: Value) -> String {
        fields["type"] = json!(kind);
        fields["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        format!("event: {kind}\ndata: {fields}\n\n")
    }

    /// `response.output_text.delta`, the one event per upstream piece, written from a struct:
    /// building a `Value` map per piece made this route cost twice `/chat`'s CPU per request.
    /// The bytes are what `sse_event` writes (a map's keys come out sorted), tested below.
    fn text_delta(&mut self, delta: &str) -> Option<Bytes> {
        #[derive(Serialize)]
        struct TextDelta<'a> {
            content_index: u8,
            delta: &'a str,
            item_id: &'a str,
            logprobs: [(); 0],
            output_index: u8,
            sequence_number: u64,
            #[serde(rename = "type")]
            kind: &'static str,
        }
        const KIND: &str = "response.output_text.delta";
        let fields = TextDelta {
            content_index: 0,
            delta,
            item_id: &self.ids.message,
            logprobs: [],
            output_index: 0,
            sequence_number: self.sequence,
            kind: KIND,
        };
        let event = self.buf.event(160 + delta.len(), |out| {
            out.put_slice(b"event: ");
            out.put_slice(KIND.as_bytes());
            out.put_slice(b"\ndata: ");
            let mut writer = out.writer();
            // Cannot fail: no map keys to refuse, every string is already UTF-8, and the
            // writer is memory.
            let _ = serde_json::to_writer(&mut writer, &fields);
            writer.into_inner().put_slice(b"\n\n");
        });
        self.sequence += 1;
        Some(event)
    }

    fn part(&self, text: &str) -> Value {
        json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    }
}

impl Encoder for ResponsesEncoder {
    fn begin(&mut self) -> Option<Bytes> {
        let created = response_object(&self.ids, &self.model, Status::InProgress, "", None);
        let mut out = self.sse_event("response.created", json!({"response": created}));
        out += &self.sse_event("response.in_progress", json!({"response": created}));
        let mut item = output_message(&self.ids, "", false);
        item["content"] = json!([]);
        out += &self.sse_event(
            "response.output_item.added",
            json!({"output_index": 0, "item": item}),
        );
        let part = self.part("");
        out += &self.sse_event(
            "response.content_part.added",
            json!({"item_id": self.ids.message, "output_index": 0, "content_index": 0, "part": part}),
        );
        Some(Bytes::from(out))
    }

    fn event(&mut self, event: Event) -> Option<Bytes> {
        match event {
            Event::Text(delta) => {
                self.text.push_str(&delta);
                self.text_delta(&delta)
            }
            // Tools and logprobs are refused at the door; nothing else arrives here.
            Event::ToolCall(_) | Event::Logprobs(_) => None,
            Event::Finish(reason) => {
                self.finish = Some(reason);
                None
            }
            Event::Usage(usage) => {
                self.usage = Some(usage);
                None
            }
        }
    }

    fn failed(&mut self, failure: Failure<'_>) -> Option<Bytes> {
        self.failed = true;
        let status = Status::Failed {
            code: failure.code,
            message: failure.message,
        };
        let response = response_object(&self.ids, &self.model, status, &self.text, None);
        Some(Bytes::from(
            self.sse_event("response.failed", json!({"response": response})),
        ))
    }

    fn end(&mut self) -> Bytes {
        if self.failed {
            return Bytes::new();
        }
        let text = std::mem::take(&mut self.text);
        let (id, part) = (self.ids.message.clone(), self.part(&text));
        let mut out = self.sse_event(
            "response.output_text.done",
            json!({"item_id": id, "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
        );
        out += &self.sse_event(
            "response.content_part.done",
            json!({"item_id": id, "output_index": 0, "content_index": 0, "part": part}),
        );
        let item = output_message(&self.ids, &text, true);
        out += &self.sse_event(
            "response.output_item.done",
            json!({"output_index": 0, "item": item}),
        );
        let usage = UsageBasis::or_estimate(self.basis.as_ref(), self.usage, &text);
        let finish = self.finish.take().unwrap_or(FinishReason::Stop);
        let response = response_object(&self.ids, &self.model, Status::Done(&finish), &text, usage);
        let kind = if finish == FinishReason::Length {
            "response.incomplete"
        } else {
            "response.completed"
        };
        out += &self.sse_event(kind, json!({"response": response}));
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(bytes: &Bytes) -> Vec<(String, Value)> {
        std::str::from_utf8(bytes)
            .unwrap()
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (kind, data) = e.split_once('\n').unwrap();
                let kind = kind.strip_prefix("event: ").unwrap().to_string();
                let data = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                (kind, data)
            })
            .collect()
    }

    #[test]
    fn a_stream_is_the_lifecycle_the_sdk_expects() {
        let mut e = ResponsesEncoder::new("default", None);
        let mut all = events(&e.begin().unwrap());
        all.extend(events(&e.event(Event::Text("Hel".into())).unwrap()));
        all.extend(events(&e.event(Event::Text("lo".into())).unwrap()));
        e.event(Event::Usage(Usage {
            prompt_tokens: 3,
            completion_tokens: 2,
        }));
        all.extend(events(&e.end()));
        let kinds: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (i, (kind, data)) in all.iter().enumerate() {
            assert_eq!(data["type"], kind.as_str());
            assert_eq!(data["sequence_number"], i);
        }
        let done = &all.last().unwrap().1["response"];
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(done["usage"]["total_tokens"], 5);
        assert_eq!(done["id"], all[0].1["response"]["id"]);
    }

    #[test]
    fn a_delta_is_written_byte_for_byte_as_the_value_path_writes_it() {
        let mut typed = ResponsesEncoder::new("default", None);
        let mut mapped = ResponsesEncoder::new("default", None);
        mapped.ids = typed.ids.clone();
        typed.begin();
        mapped.begin();
        for delta in ["Hel", "lo \"you\"\n\u{7}\u{1F600}", ""] {
            let fields = json!({"item_id": mapped.ids.message, "output_index": 0, "content_index": 0, "delta": delta, "logprobs": []});
            let want = mapped.sse_event("response.output_text.delta", fields);
            let got = typed.event(Event::Text(delta.into())).unwrap();
            assert_eq!(std::str::from_utf8(&got).unwrap(), want);
        }
    }
}
