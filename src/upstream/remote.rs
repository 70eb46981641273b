//! Any OpenAI-compatible chat completions API (OpenAI, vLLM, Ollama, llama.cpp server, Groq,
//! OpenRouter...). The request body is async-openai's `CreateChatCompletionRequest`, so every
//! sampling field is spelled the way OpenAI spells it. The transport is ours: the pools of
//! `upstream::transport`, SSE framing by `upstream::sse`, and a borrowed parse of each chunk that
//! keeps the first choice's text, tool calls and finish reason, and the usage. async-openai's own
//! streaming client was not used because it moves every chunk through a spawned task and an
//! unbounded channel (a hop per chunk on the hot path) and drops the `Retry-After` header that
//! failover needs.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_openai::types::chat::{
    ChatCompletionMessageToolCall, ChatCompletionMessageToolCalls,
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestAssistantMessageContent,
    ChatCompletionRequestMessage, ChatCompletionRequestMessageContentPartImage,
    ChatCompletionRequestMessageContentPartText, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestSystemMessageContent, ChatCompletionRequestToolMessage,
    ChatCompletionRequestToolMessageContent, ChatCompletionRequestUserMessage,
    ChatCompletionRequestUserMessageContent, ChatCompletionRequestUserMessageContentPart,
    ChatCompletionStreamOptions, CreateChatCompletionRequest, FunctionCall, ImageDetail, ImageUrl,
    StopConfiguration,
};
use http::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;

use super::sse::ChunkError;
use super::transport::{Clients, Endpoint, ResponseBody};
use super::{
    ChatRequest, Event, EventStream, FinishReason, RawJson, ToolCallDelta, UpstreamError, Usage,
};
use crate::config::UpstreamConfig;
use crate::conversation::{Message, Role};

/// Error bodies are read only this far: enough for OpenAI's message, never a whole HTML page.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// `base_url` + `/chat/completions`, keeping its query: Azure OpenAI's deployments take
/// `?api-version=...`, which a string join would put before the path.
fn chat_completions_url(base_url: &str) -> Result<reqwest::Url, url::ParseError> {
    let mut url = reqwest::Url::parse(base_url)?;
    let path = format!("{}/chat/completions", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url)
}

pub struct Remote {
    name: Arc<str>,
    /// Parsed once, and checked once against the environment's proxies.
    endpoint: Endpoint,
    model: Option<String>,
    headers: HeaderMap,
    clients: Clients,
}

impl Remote {
    pub fn new(config: &UpstreamConfig, clients: Clients) -> Result<Self, String> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // What reqwest sent by default, kept so the upstream's request is as it was.
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        if !config.api_key.is_empty() {
            if let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {}", config.api_key.expose()))
            {
                v.set_sensitive(true);
                headers.insert(AUTHORIZATION, v);
            }
        }
        // Validated at load time; anything that still fails to parse is skipped, not fatal.
        for (k, v) in &config.headers {
            if let (Ok(name), Ok(mut value)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v.expose()),
            ) {
                value.set_sensitive(
                    !config
                        .plain_headers
                        .iter()
                        .any(|p| p.eq_ignore_ascii_case(k)),
                );
                headers.insert(name, value);
            }
        }
        let base_url = config.base_url.as_deref().unwrap_or_default();
        let url = chat_completions_url(base_url).map_err(|e| e.to_string())?;
        Ok(Self {
            name: Arc::from(config.name.as_str()),
            endpoint: Endpoint::new(url, &mut headers)?,
            model: config.model.clone(),
            headers,
            clients,
        })
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Sends the request; `connect` picks the pool whose connect timeout applies.
    pub async fn start(
        &self,
        request: &ChatRequest,
        connect: Duration,
    ) -> Result<EventStream, UpstreamError> {
        let body =
            serde_json::to_vec(&self.body(request)).map_err(|e| UpstreamError::Transport {
                upstream: self.name.clone(),
                detail: format!("could not encode the request: {e}"),
            })?;
        let response = self
            .clients
            .post(connect, &self.endpoint, &self.headers, body)
            .await
            .map_err(|detail| UpstreamError::Connect {
                upstream: self.name.clone(),
                detail,
            })?;
        if !response.status().is_success() {
            return Err(status_error(self.name.clone(), response).await);
        }
        Ok(events(self.name.clone(), response.into_body()))
    }

    #[allow(deprecated)] // `max_tokens` and `seed`: still what most OpenAI-compatible servers read.
    fn body(&self, request: &ChatRequest) -> CreateChatCompletionRequest {
        let s = &request.sampling;
        CreateChatCompletionRequest {
            model: request
                .model
                .clone()
                .or_else(|| self.model.clone())
                .unwrap_or_default(),
            messages: request.messages.iter().map(openai_message).collect(),
            stream: Some(true),
            temperature: s.temperature,
            top_p: s.top_p,
            n: s.n,
            max_tokens: s.max_tokens,
            presence_penalty: s.presence_penalty,
            frequency_penalty: s.frequency_penalty,
            stop: s.stop.clone().map(StopConfiguration::StringArray),
            seed: s.seed,
            tools: request.extras.tools.clone(),
            tool_choice: request.extras.tool_choice.clone(),
            parallel_tool_calls: request.extras.parallel_tool_calls,
            response_format: request.extras.response_format.clone(),
            user: request.extras.user.clone(),
            logprobs: request.extras.logprobs,
            top_logprobs: request.extras.top_logprobs,
            stream_options: request
                .include_usage
                .then_some(ChatCompletionStreamOptions {
                    include_usage: Some(true),
                    ..Default::default()
                }),
            ..Default::default()
        }
    }
}

fn openai_message(m: &Message) -> ChatCompletionRequestMessage {
    let name = m.name.clone();
    match m.role {
        Role::System => ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
            content: ChatCompletionRequestSystemMessageContent::Text(m.content.clone()),
            name,
        }),
        Role::User => ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
            content: user_content(m),
            name,
        }),
        Role::Assistant => {
            let tool_calls = (!m.tool_calls.is_empty()).then(|| {
                m.tool_calls
                    .iter()
                    .map(|c| {
                        ChatCompletionMessageToolCalls::Function(ChatCompletionMessageToolCall {
                            id: c.id.clone(),
                            function: FunctionCall {
                                name: c.name.clone(),
                                arguments: c.arguments.clone(),
                            },
                        })
                    })
                    .collect()
            });
            // An assistant turn that only called tools has no content, not an empty one.
            let content = (!m.content.is_empty() || tool_calls.is_none())
                .then(|| ChatCompletionRequestAssistantMessageContent::Text(m.content.clone()));
            ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
                content,
                name,
                tool_calls,
                ..Default::default()
            })
        }
        Role::Tool => ChatCompletionRequestMessage::Tool(ChatCompletionRequestToolMessage {
            content: ChatCompletionRequestToolMessageContent::Text(m.content.clone()),
            tool_call_id: m.tool_call_id.clone().unwrap_or_default(),
        }),
    }
}

/// A user turn's text, and its pictures as image parts after it.
fn user_content(m: &Message) -> ChatCompletionRequestUserMessageContent {
    if m.images.is_empty() {
        return ChatCompletionRequestUserMessageContent::Text(m.content.clone());
    }
    let text = ChatCompletionRequestUserMessageContentPart::Text(
        ChatCompletionRequestMessageContentPartText {
            text: m.content.clone(),
            ..Default::default()
        },
    );
    let images = m.images.iter().map(|url| {
        ChatCompletionRequestUserMessageContentPart::ImageUrl(
            ChatCompletionRequestMessageContentPartImage {
                image_url: ImageUrl {
                    url: url.clone(),
                    detail: Some(ImageDetail::Low),
                },
                ..Default::default()
            },
        )
    });
    ChatCompletionRequestUserMessageContent::Array(std::iter::once(text).chain(images).collect())
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
}

impl ErrorDetail {
    fn code(&self) -> Option<String> {
        match &self.code {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// The longest `Retry-After` believed; anything longer is the same as "not now" to a caller.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` as seconds (`7`, `1.5`) or an HTTP date, within `0..=MAX_RETRY_AFTER`. An
/// upstream's header is never trusted to be sane: `1e300`, `-5`, `NaN` or garbage give `None`
/// or the cap, never a panic.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        return Some(
            Duration::try_from_secs_f64(secs).map_or(MAX_RETRY_AFTER, |d| d.min(MAX_RETRY_AFTER)),
        );
    }
    let when = httpdate::parse_http_date(value).ok()?;
    let wait = when
        .duration_since(std::time::SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Some(wait.min(MAX_RETRY_AFTER))
}

async fn status_error(upstream: Arc<str>, response: http::Response<ResponseBody>) -> UpstreamError {
    use futures_util::StreamExt;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let mut chunks = response.into_body();
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match chunks.next().await {
            Some(Ok(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let (message, code) = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(b) => {
            let code = b.error.code();
            (b.error.message.unwrap_or_default(), code)
        }
        Err(_) => {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
            (text.trim().to_string(), None)
        }
    };
    UpstreamError::Status {
        upstream,
        status,
        message,
        code,
        retry_after,
    }
}

/// The part of a chat completion chunk we read. Borrowed, so a text chunk costs no allocation
/// beyond the delta text that leaves this module.
#[derive(Deserialize)]
struct Chunk<'a> {
    /// With n > 1 only the first choice is passed on.
    #[serde(default, borrow, deserialize_with = "first_choice")]
    choices: Option<Choice<'a>>,
    #[serde(default)]
    usage: Option<ChunkUsage>,
    #[serde(default)]
    error: Option<ErrorDetail>,
}

/// The choice of index 0, the others read past: kept as the one it is, not in a vector.
fn first_choice<'de: 'a, 'a, D>(choices: D) -> Result<Option<Choice<'a>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct First<'a>(std::marker::PhantomData<Choice<'a>>);
    impl<'de: 'a, 'a> serde::de::Visitor<'de> for First<'a> {
        type Value = Option<Choice<'a>>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a sequence of choices")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut first = None;
            while let Some(choice) = seq.next_element::<Choice<'a>>()? {
                if first.is_none() && choice.index == 0 {
                    first = Some(choice);
                }
            }
            Ok(first)
        }
    }
    choices.deserialize_seq(First(std::marker::PhantomData))
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default)]
    index: u32,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    logprobs: Option<&'a serde_json::value::RawValue>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallChunk>>,
}

#[derive(Deserialize)]
struct ToolCallChunk {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionChunk>,
}

#[derive(Deserialize)]
struct FunctionChunk {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct ChunkUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

/// What one SSE event held, passed on in this order: text, tool calls, finish, usage.
#[derive(Debug, Default, PartialEq)]
struct Parsed {
    done: bool,
    text: Option<String>,
    logprobs: Option<RawJson>,
    tool_calls: Vec<ToolCallDelta>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
}

impl Parsed {
    /// The next event not yet passed on.
    fn next_event(&mut self) -> Option<Event> {
        if let Some(text) = self.text.take() {
            return Some(Event::Text(text));
        }
        if let Some(logprobs) = self.logprobs.take() {
            return Some(Event::Logprobs(logprobs));
        }
        if !self.tool_calls.is_empty() {
            return Some(Event::ToolCall(Box::new(self.tool_calls.remove(0))));
        }
        if let Some(reason) = self.finish.take() {
            return Some(Event::Finish(reason));
        }
        self.usage.take().map(Event::Usage)
    }
}

fn parse_event(upstream: &Arc<str>, data: &str) -> Result<Parsed, UpstreamError> {
    if data == "[DONE]" {
        return Ok(Parsed {
            done: true,
            ..Parsed::default()
        });
    }
    let chunk: Chunk<'_> = serde_json::from_str(data).map_err(|e| UpstreamError::Malformed {
        upstream: upstream.clone(),
        detail: e.to_string(),
    })?;
    if let Some(error) = chunk.error {
        return Err(UpstreamError::Status {
            upstream: upstream.clone(),
            status: 500,
            code: error.code(),
            message: error.message.unwrap_or_default(),
            retry_after: None,
        });
    }
    let mut parsed = Parsed {
        usage: chunk.usage.map(|u| Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
        }),
        ..Parsed::default()
    };
    if let Some(choice) = chunk.choices {
        parsed.finish = choice.finish_reason.map(|r| FinishReason::parse(&r));
        parsed.logprobs = choice
            .logprobs
            .filter(|raw| raw.get() != "null")
            .map(|raw| RawJson(raw.to_owned()));
        if let Some(delta) = choice.delta {
            parsed.text = delta.content.filter(|t| !t.is_empty()).map(Cow::into_owned);
            parsed.tool_calls = delta
                .tool_calls
                .unwrap_or_default()
                .into_iter()
                .map(|call| {
                    let (name, arguments) = call
                        .function
                        .map(|f| (f.name, f.arguments.unwrap_or_default()))
                        .unwrap_or_default();
                    ToolCallDelta {
                        index: call.index,
                        id: call.id,
                        name,
                        arguments,
                    }
                })
                .collect();
        }
    }
    Ok(parsed)
}

fn events(upstream: Arc<str>, body: ResponseBody) -> EventStream {
    Box::pin(Events {
        sse: super::sse::DataEvents::new(body),
        upstream,
        pending: Parsed::default(),
        finished: false,
        ended: false,
    })
}

pin_project_lite::pin_project! {
    /// The upstream's SSE events as [`Event`]s. Written as a plain `Stream` rather than a
    /// generator: it lives as long as the answer, and a generator keeps a slot for everything
    /// live across each of its `yield`s (measured: 1,032 bytes per open stream against this
    /// struct's ~330).
    struct Events<S> {
        #[pin]
        sse: S,
        upstream: Arc<str>,
        // What the last SSE event held that is not passed on yet.
        pending: Parsed,
        // An upstream that said why it finished and then closed without `[DONE]` has finished.
        finished: bool,
        ended: bool,
    }
}

impl<S> futures_util::Stream for Events<super::sse::DataEvents<S>>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, String>>,
{
    type Item = Result<Event, UpstreamError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let mut this = self.project();
        loop {
            if let Some(event) = this.pending.next_event() {
                return Poll::Ready(Some(Ok(event)));
            }
            if *this.ended {
                return Poll::Ready(None);
            }
            let upstream = &*this.upstream;
            let read = this
                .sse
                .as_mut()
                .poll_read(cx, |data| parse_event(upstream, data));
            let failure = match futures_util::ready!(read) {
                Some(Ok(Ok(parsed))) if parsed.done => {
                    *this.ended = true;
                    None
                }
                Some(Ok(Ok(parsed))) => {
                    *this.finished |= parsed.finish.is_some();
                    *this.pending = parsed;
                    None
                }
                Some(Ok(Err(e))) => Some(e),
                Some(Err(ChunkError::Transport(detail))) => Some(UpstreamError::Transport {
                    upstream: this.upstream.clone(),
                    detail,
                }),
                Some(Err(e)) => Some(UpstreamError::Malformed {
                    upstream: this.upstream.clone(),
                    detail: e.to_string(),
                }),
                None if *this.finished => {
                    *this.ended = true;
                    None
                }
                None => Some(UpstreamError::Cut {
                    upstream: this.upstream.clone(),
                }),
            };
            if let Some(error) = failure {
                *this.ended = true;
                return Poll::Ready(Some(Err(error)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(data: &str) -> Result<Parsed, UpstreamError> {
        parse_event(&Arc::from("t"), data)
    }

    fn text(data: &str) -> Option<String> {
        parse(data).unwrap().text
    }

    #[test]
    fn chunk_parsing() {
        assert_eq!(
            text(
                r#"{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi \"there\"\n"},"finish_reason":null}]}"#
            ),
            Some("Hi \"there\"\n".into())
        );
        assert_eq!(
            parse(r#"{"choices":[{"index":0,"delta":{"role":"assistant"}}]}"#).unwrap(),
            Parsed::default()
        );
        assert_eq!(
            text(r#"{"choices":[{"index":0,"delta":{"content":""}}]}"#),
            None
        );
        assert_eq!(
            text(
                r#"{"choices":[{"index":1,"delta":{"content":"b"}},{"index":0,"delta":{"content":"a"}}]}"#
            ),
            Some("a".into())
        );
        assert_eq!(
            parse(r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#)
                .unwrap()
                .usage,
            Some(Usage { prompt_tokens: 3, completion_tokens: 2 })
        );
        assert!(parse("[DONE]").unwrap().done);
        assert!(matches!(
            parse("{not json"),
            Err(UpstreamError::Malformed { .. })
        ));
        assert!(matches!(
            parse(r#"{"error":{"message":"overloaded","code":"server_error"}}"#),
            Err(UpstreamError::Status { .. })
        ));
    }

    #[test]
    fn the_endpoint_keeps_the_base_urls_query() {
        let url = |b: &str| chat_completions_url(b).unwrap().to_string();
        assert_eq!(
            url("https://api.openai.com/v1"),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            url("http://h:8000/v1/"),
            "http://h:8000/v1/chat/completions"
        );
        assert_eq!(
            url("https://x.openai.azure.com/openai/deployments/gpt4o?api-version=2024-10-21"),
            "https://x.openai.azure.com/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21"
        );
    }

    #[test]
    fn absurd_retry_after_values_never_panic() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(" 1.5 "),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("1e300"), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("99999999999999999999"),
            Some(MAX_RETRY_AFTER)
        );
        for bad in ["-5", "NaN", "inf", "-inf", "", "soon", "1e"] {
            assert_eq!(parse_retry_after(bad), None, "{bad}");
        }
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO),
            "a date in the past: now"
        );
        let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        assert!(parse_retry_after(&later).is_some_and(|d| d <= Duration::from_secs(30)));
    }

    #[test]
    fn logprobs_are_kept_as_sent() {
        let mut p = parse(r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":{"content":[{"token":"Hi","logprob":-0.25}]}}]}"#).unwrap();
        assert_eq!(p.next_event(), Some(Event::Text("Hi".into())));
        match p.next_event() {
            Some(Event::Logprobs(raw)) => assert!(raw.0.get().contains("-0.25"), "{}", raw.0.get()),
            other => panic!("{other:?}"),
        }
        let p =
            parse(r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null}]}"#).unwrap();
        assert!(p.logprobs.is_none());
    }

    #[test]
    fn finish_and_tool_calls_are_read() {
        let p = parse(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#).unwrap();
        assert_eq!(p.finish, Some(FinishReason::Length));
        let p = parse(r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"ci"}}]}}]}"#).unwrap();
        let mut p = p;
        assert_eq!(
            p.next_event(),
            Some(Event::ToolCall(Box::new(ToolCallDelta {
                index: 0,
                id: Some("call_1".into()),
                name: Some("weather".into()),
                arguments: "{\"ci".into(),
            })))
        );
        assert_eq!(p.next_event(), None);
    }
}
