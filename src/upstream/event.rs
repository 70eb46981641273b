//! What an upstream says, as events rather than bare text: every dialect needs more than the
//! words (OpenAI's callers read tool calls, `finish_reason` and `usage`; FaceTo-AI only the text),
//! so backends report all of it and each dialect's encoder keeps what its wire carries.

use std::pin::Pin;

use futures_util::Stream;

use super::UpstreamError;

/// One step of an answer. Text and tool-call deltas arrive in order; `Finish` and `Usage` come at
/// the end, and either may be missing (not every OpenAI-compatible server sends them).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Text(String),
    /// Boxed: rare, and four times the size of the others; every open stream holds an `Event`.
    ToolCall(Box<ToolCallDelta>),
    Finish(FinishReason),
    Usage(Usage),
    /// The upstream's `logprobs` for the text just before, as it sent them (OpenAI callers that
    /// asked for them get them unchanged).
    Logprobs(RawJson),
}

/// JSON an upstream sent, passed on byte for byte.
#[derive(Debug, Clone)]
pub struct RawJson(pub Box<serde_json::value::RawValue>);

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Event {
    /// Text or a tool call: what counts as the answer's first token.
    pub fn is_content(&self) -> bool {
        matches!(self, Event::Text(_) | Event::ToolCall(_))
    }
}

/// A piece of one tool call, as OpenAI streams them: the first piece of a call carries its `id`
/// and function `name`, later pieces add to `arguments`. `index` tells the calls apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCallDelta {
    pub index: u32,
    pub id: Option<String>,
    pub name: Option<String>,
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    /// A reason this server does not know, passed on as the upstream spelled it.
    Other(String),
}

impl FinishReason {
    pub fn parse(reason: &str) -> Self {
        match reason {
            "stop" => Self::Stop,
            "length" => Self::Length,
            "tool_calls" | "function_call" => Self::ToolCalls,
            "content_filter" => Self::ContentFilter,
            other => Self::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ToolCalls => "tool_calls",
            Self::ContentFilter => "content_filter",
            Self::Other(s) => s,
        }
    }
}

/// Token counts, as the upstream reported them (or as the embedded model counted them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

impl Usage {
    pub fn total_tokens(&self) -> u32 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// The events of one answer, in order. Dropping it drops the upstream request.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<Event, UpstreamError>> + Send>>;
