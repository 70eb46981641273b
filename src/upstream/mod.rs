//! Upstreams: where answers come from. `remote` speaks to any OpenAI-compatible API, `local` is
//! the embedded model; this module holds what every backend shares (the request, the error; the
//! event stream lives in `event`) and [`Upstreams`], which tries the configured backends in order
//! with retries, back-off and a circuit breaker until one of them produces a first event.

mod breaker;
mod event;
mod http1;
#[cfg(feature = "local")]
pub mod local;
mod remote;
mod sse;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rand::Rng;

use async_openai::types::chat::{
    ChatCompletionToolChoiceOption, ChatCompletionTools, ResponseFormat,
};

use crate::config::{Config, RetryConfig, Timeouts, UpstreamKind};
use crate::conversation::Message;
pub use crate::sampling::Sampling;
use breaker::Breaker;
pub use event::{Event, EventStream, FinishReason, RawJson, ToolCallDelta, Usage};
pub use remote::Remote;

/// OpenAI request fields beyond sampling, from callers that speak OpenAI: passed to remote
/// upstreams as they are; the embedded model honours none of them (see `Upstreams::check`).
#[derive(Debug, Clone, Default)]
pub struct Extras {
    pub tools: Option<Vec<ChatCompletionTools>>,
    pub tool_choice: Option<ChatCompletionToolChoiceOption>,
    pub parallel_tool_calls: Option<bool>,
    pub response_format: Option<ResponseFormat>,
    pub user: Option<String>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u8>,
}

/// What the persona hands to an upstream.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    /// The persona's model; `None` means the upstream's configured model.
    pub model: Option<String>,
    pub sampling: Sampling,
    pub extras: Extras,
    /// Ask the upstream to report token usage (`stream_options.include_usage`). Off for callers
    /// that do not read usage, so their upstream request is exactly what it always was.
    pub include_usage: bool,
}

/// Serialisable so replicas can share a failure under its request id (`answer::repeats::shared`).
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum UpstreamError {
    #[error("upstream {upstream}: could not connect: {detail}")]
    Connect { upstream: Arc<str>, detail: String },
    #[error("upstream {upstream}: no first token within {after:?}")]
    FirstTokenTimeout { upstream: Arc<str>, after: Duration },
    #[error("upstream {upstream}: stalled, nothing for {after:?}")]
    Idle { upstream: Arc<str>, after: Duration },
    #[error("the answer did not finish within the total deadline of {0:?}")]
    Deadline(Duration),
    #[error("upstream {upstream} answered {status}: {message}")]
    Status {
        upstream: Arc<str>,
        status: u16,
        message: String,
        code: Option<String>,
        retry_after: Option<Duration>,
    },
    #[error("upstream {upstream} sent a malformed chunk: {detail}")]
    Malformed { upstream: Arc<str>, detail: String },
    #[error("upstream {upstream} closed the stream before it finished")]
    Cut { upstream: Arc<str> },
    #[error("upstream {upstream}: {detail}")]
    Transport { upstream: Arc<str>, detail: String },
    #[error("upstream {upstream} is busy; try again shortly")]
    Busy {
        upstream: Arc<str>,
        retry_after: Duration,
    },
}

impl UpstreamError {
    /// What to do when this happens before anything reached the caller.
    fn verdict(&self) -> Verdict {
        match self {
            Self::Status { status, .. } => match *status {
                408 | 409 | 429 | 500..=599 => Verdict::Retry,
                // This upstream's key or model is wrong; another upstream may have them right.
                401 | 403 | 404 => Verdict::NextUpstream,
                // The request's own fault: every upstream would refuse it.
                _ => Verdict::Final,
            },
            Self::Deadline(_) => Verdict::Final,
            Self::Busy { .. } => Verdict::NextUpstream,
            _ => Verdict::Retry,
        }
    }

    /// The status the caller gets when this happens before the first token.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            Self::Status { status: 429, .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Status {
                status: 400 | 404 | 413 | 422,
                ..
            } => StatusCode::BAD_REQUEST,
            Self::FirstTokenTimeout { .. } | Self::Idle { .. } | Self::Deadline(_) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    /// OpenAI's `type` and `code`. An upstream's own code (`context_length_exceeded`) is passed on:
    /// the FaceTo-AI client recognises it.
    pub fn kind(&self) -> (&str, &str) {
        match self {
            Self::Status {
                status: 429, code, ..
            } => (
                "rate_limit_error",
                code.as_deref().unwrap_or("rate_limit_exceeded"),
            ),
            Self::Status {
                status: 400..=499,
                code,
                ..
            } if self.status() == axum::http::StatusCode::BAD_REQUEST => (
                "invalid_request_error",
                code.as_deref().unwrap_or("upstream_rejected"),
            ),
            Self::Status { .. } => ("upstream_error", "upstream_error"),
            Self::Connect { .. } => ("upstream_error", "upstream_unreachable"),
            Self::FirstTokenTimeout { .. } | Self::Idle { .. } | Self::Deadline(_) => {
                ("timeout_error", "upstream_timeout")
            }
            Self::Malformed { .. } => ("upstream_error", "upstream_malformed"),
            Self::Cut { .. } | Self::Transport { .. } => ("upstream_error", "upstream_cut"),
            Self::Busy { .. } => ("server_error", "overloaded"),
        }
    }

    /// One sentence for the caller: what went wrong, never which upstream or what it said (that
    /// goes to the log line).
    pub fn caller_message(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "The model's server could not be reached.",
            Self::FirstTokenTimeout { .. } => "The model did not start answering in time.",
            Self::Idle { .. } => "The model stopped sending in the middle of the answer.",
            Self::Deadline(_) => "The answer did not finish within the time allowed.",
            Self::Status { status: 429, .. } => {
                "The model's server is rate limiting; try again shortly."
            }
            Self::Status { .. } => "The model's server refused the request.",
            Self::Malformed { .. } => "The model's server sent an answer that could not be read.",
            Self::Cut { .. } | Self::Transport { .. } => {
                "The connection to the model's server broke."
            }
            Self::Busy { .. } => "The model is busy; try again shortly.",
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            Self::Busy { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Retry,
    NextUpstream,
    Final,
}

/// An answer that has started: its first event is in hand (or the upstream finished with none).
pub struct Opened {
    pub upstream: Arc<str>,
    pub first: Option<Event>,
    pub rest: EventStream,
    /// Attempts that failed before this one (retries and failovers).
    pub failed_attempts: u32,
    /// Time spent waiting on upstreams for this first delta, failed attempts included.
    pub waited: Duration,
}

enum Backend {
    Remote(Box<Remote>),
    #[cfg(feature = "local")]
    /// Shared with the runtime a reload replaces, when the reload leaves it unchanged.
    Local(Arc<local::Local>),
}

/// What a request asks for that the embedded model cannot do.
fn unsupported_locally(request: &ChatRequest) -> Option<(&'static str, &'static str)> {
    const NOT_LOCAL: &str = "is not supported by the embedded model";
    let e = &request.extras;
    if e.tools.as_ref().is_some_and(|t| !t.is_empty()) || e.tool_choice.is_some() {
        return Some(("tools", NOT_LOCAL));
    }
    if request
        .messages
        .iter()
        .any(|m| m.role == crate::conversation::Role::Tool || !m.tool_calls.is_empty())
    {
        return Some((
            "messages",
            "with tool calls or tool results are not supported by the embedded model",
        ));
    }
    if request.messages.iter().any(|m| !m.images.is_empty()) {
        return Some((
            "messages",
            "with images are not supported by the embedded model",
        ));
    }
    if request.sampling.n.is_some_and(|n| n > 1) {
        return Some(("n", "above 1 is not supported by the embedded model"));
    }
    if matches!(&e.response_format, Some(f) if *f != ResponseFormat::Text) {
        return Some(("response_format", NOT_LOCAL));
    }
    if e.logprobs == Some(true) || e.top_logprobs.is_some() {
        return Some(("logprobs", NOT_LOCAL));
    }
    None
}

impl Backend {
    fn is_local(&self) -> bool {
        match self {
            Backend::Remote(_) => false,
            #[cfg(feature = "local")]
            Backend::Local(_) => true,
        }
    }

    /// A backend that cannot honour the request is passed over in failover.
    fn serves(&self, request: &ChatRequest) -> bool {
        !self.is_local() || unsupported_locally(request).is_none()
    }

    fn name(&self) -> &Arc<str> {
        match self {
            Backend::Remote(r) => r.name(),
            #[cfg(feature = "local")]
            Backend::Local(l) => l.name(),
        }
    }

    async fn start(
        &self,
        request: &ChatRequest,
        timeouts: &Timeouts,
    ) -> Result<EventStream, UpstreamError> {
        match self {
            Backend::Remote(r) => r.start(request, timeouts.connect).await,
            #[cfg(feature = "local")]
            Backend::Local(l) => l.start(request).await,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("could not build the HTTP client for upstreams: {0}")]
    HttpClient(#[from] transport::ClientError),
    #[error("upstream {upstream}: base_url: {detail}")]
    Url { upstream: String, detail: String },
    #[cfg(feature = "local")]
    #[error(transparent)]
    Local(#[from] local::LocalError),
}

struct Member {
    backend: Backend,
    /// Shared with the next runtime when a reload leaves this upstream (and the breaker's
    /// settings) unchanged: a reload does not close an open circuit.
    breaker: Arc<Breaker>,
    config: crate::config::UpstreamConfig,
    breaker_settings: (u32, Duration),
}

/// The configured upstreams, in order, and the policy for moving between them.
pub struct Upstreams {
    members: Vec<Member>,
    retry: RetryConfig,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct UpstreamHealth {
    pub name: String,
    pub available: bool,
}

impl Upstreams {
    /// `previous`: the upstreams being replaced (on reload). An embedded model whose name and
    /// settings are unchanged is kept, not loaded again.
    pub fn from_config(config: &Config, previous: Option<&Upstreams>) -> Result<Self, BuildError> {
        let connects = config.connect_timeouts();
        let http1 = transport::Clients::build(&connects, false)?;
        let h2c = transport::Clients::build(&connects, true)?;
        let mut members = Vec::with_capacity(config.upstreams.len());
        for u in &config.upstreams {
            let backend = match u.kind {
                UpstreamKind::Remote => {
                    let clients = if u.http2_prior_knowledge {
                        &h2c
                    } else {
                        &http1
                    };
                    Backend::Remote(Box::new(Remote::new(u, clients.clone()).map_err(
                        |detail| BuildError::Url {
                            upstream: u.name.clone(),
                            detail,
                        },
                    )?))
                }
                #[cfg(feature = "local")]
                UpstreamKind::Local => {
                    let settings = local::LocalSettings::from_config(&config.local);
                    let kept = previous.and_then(|p| p.local_serving(&u.name, &settings));
                    match kept {
                        Some(local) => Backend::Local(local),
                        None => Backend::Local(Arc::new(local::Local::load(&u.name, settings)?)),
                    }
                }
                // Rejected by config validation in builds without the engine.
                #[cfg(not(feature = "local"))]
                UpstreamKind::Local => continue,
            };
            let breaker_settings = (config.breaker.failures, config.breaker.cooldown);
            let breaker = previous
                .and_then(|p| {
                    p.members
                        .iter()
                        .find(|m| m.config == *u && m.breaker_settings == breaker_settings)
                })
                .map(|m| m.breaker.clone())
                .unwrap_or_else(|| Arc::new(Breaker::new(breaker_settings.0, breaker_settings.1)));
            members.push(Member {
                backend,
                breaker,
                config: u.clone(),
                breaker_settings,
            });
        }
        Ok(Self {
            members,
            retry: config.retry.clone(),
        })
    }

    #[cfg(feature = "local")]
    fn local_serving(
        &self,
        name: &str,
        settings: &local::LocalSettings,
    ) -> Option<Arc<local::Local>> {
        self.members.iter().find_map(|m| match &m.backend {
            Backend::Local(l) if l.serves(name, settings) => Some(l.clone()),
            _ => None,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every upstream is the embedded model: a prompt must fit its context.
    pub fn all_local(&self) -> bool {
        !self.members.is_empty() && self.members.iter().all(|m| m.backend.is_local())
    }

    /// Whether some configured upstream can honour everything `request` asks for. The embedded
    /// model has no tools, one choice, and no structured output; asking it for any of them is the
    /// caller's error (a field named), never silently dropped. `Err((field, problem))`.
    pub fn check(&self, request: &ChatRequest) -> Result<(), (&'static str, &'static str)> {
        let unsupported = unsupported_locally(request);
        match unsupported {
            Some(problem) if self.members.iter().all(|m| m.backend.is_local()) => Err(problem),
            _ => Ok(()),
        }
    }

    pub fn health(&self) -> Vec<UpstreamHealth> {
        self.members
            .iter()
            .map(|m| UpstreamHealth {
                name: m.backend.name().to_string(),
                available: m.breaker.allows(),
            })
            .collect()
    }

    /// Tries each upstream in order until one produces its first event. Before that point nothing
    /// has reached the caller, so a failure can still be retried or failed over; the first
    /// retryable error is not final until every upstream has had its turn.
    pub async fn open(
        &self,
        request: &ChatRequest,
        timeouts: &Timeouts,
    ) -> Result<Opened, UpstreamError> {
        let started = std::time::Instant::now();
        let mut last_error = None;
        let mut failed_attempts = 0;
        // While every breaker is open, try them anyway: refusing all traffic would be worse.
        let all_open = self.members.iter().all(|m| !m.breaker.allows());
        for member in &self.members {
            if !member.backend.serves(request) || (!all_open && !member.breaker.try_call()) {
                continue;
            }
            if failed_attempts > 0 {
                crate::metrics::failover();
            }
            for attempt in 0..=self.retry.attempts {
                match first_event(&member.backend, request, timeouts).await {
                    Ok((first, rest)) => {
                        member.breaker.success();
                        return Ok(Opened {
                            upstream: member.backend.name().clone(),
                            first,
                            rest,
                            failed_attempts,
                            waited: started.elapsed(),
                        });
                    }
                    Err(error) => {
                        failed_attempts += 1;
                        let verdict = error.verdict();
                        if verdict == Verdict::Final {
                            member.breaker.neither();
                            return Err(error);
                        }
                        // A full local queue says nothing about the engine's health.
                        if matches!(error, UpstreamError::Busy { .. }) {
                            member.breaker.neither();
                        } else {
                            member.breaker.failure();
                        }
                        crate::metrics::upstream_error(member.backend.name(), error.kind().1);
                        tracing::warn!(upstream = %member.backend.name(), attempt, %error, "upstream attempt failed");
                        let wait = self.backoff(attempt, error.retry_after());
                        last_error = Some(error);
                        match wait {
                            Some(wait)
                                if verdict == Verdict::Retry && attempt < self.retry.attempts =>
                            {
                                crate::metrics::retry();
                                tokio::time::sleep(wait).await
                            }
                            // Asked to wait longer than we may: the next upstream is better.
                            _ => break,
                        }
                    }
                }
            }
        }
        Err(last_error.unwrap_or_else(|| UpstreamError::Connect {
            upstream: Arc::from("none"),
            detail: "no upstream is configured".into(),
        }))
    }

    /// Exponential back-off with full jitter; an upstream's `Retry-After` wins when we can afford
    /// it, and `None` means "do not wait here at all, move on".
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if let Some(after) = retry_after {
            return (after <= self.retry.max_backoff).then_some(after);
        }
        let ceiling = self
            .retry
            .backoff
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.retry.max_backoff);
        let jittered = rand::rng().random_range(0.0..=1.0) * ceiling.as_secs_f64();
        Some(Duration::from_secs_f64(jittered))
    }
}

/// Starts one attempt and waits, within `timeouts.first_token`, for its first event.
async fn first_event(
    backend: &Backend,
    request: &ChatRequest,
    timeouts: &Timeouts,
) -> Result<(Option<Event>, EventStream), UpstreamError> {
    let limit = timeouts.first_token;
    let attempt = async {
        let mut stream = backend.start(request, timeouts).await?;
        match stream.next().await {
            Some(Ok(first)) => Ok((Some(first), stream)),
            Some(Err(e)) => Err(e),
            None => Ok((None, stream)),
        }
    };
    tokio::time::timeout(limit, attempt)
        .await
        .map_err(|_| UpstreamError::FirstTokenTimeout {
            upstream: backend.name().clone(),
            after: limit,
        })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::{Message, Role, ToolCall};

    fn asking(edit: impl FnOnce(&mut ChatRequest)) -> Option<&'static str> {
        let mut request = ChatRequest {
            messages: vec![Message::new(Role::User, "hi")],
            ..ChatRequest::default()
        };
        edit(&mut request);
        unsupported_locally(&request).map(|(field, _)| field)
    }

    #[test]
    fn the_embedded_model_refuses_what_it_cannot_honour_by_name() {
        assert_eq!(asking(|_| {}), None);
        assert_eq!(asking(|r| r.sampling.n = Some(1)), None);
        assert_eq!(asking(|r| r.sampling.n = Some(2)), Some("n"));
        assert_eq!(
            asking(|r| r.extras.tools = Some(vec![serde_json::from_value(
                serde_json::json!({"type": "function", "function": {"name": "f"}})
            )
            .unwrap()])),
            Some("tools")
        );
        assert_eq!(
            asking(|r| r.messages[0].tool_calls = vec![ToolCall::default()]),
            Some("messages")
        );
        assert_eq!(
            asking(|r| r.extras.response_format = Some(ResponseFormat::JsonObject)),
            Some("response_format")
        );
        assert_eq!(
            asking(|r| r.extras.response_format = Some(ResponseFormat::Text)),
            None
        );
    }
}
