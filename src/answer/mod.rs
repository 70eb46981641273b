//! The shared core every dialect stands on: a caller already admitted (`admission`) and a
//! conversation already decoded go in; an answer that has started comes out. In between: the
//! persona (prompt, sampling, context budget), the stream slot, and opening an upstream with
//! failover. No HTTP types live here: routes decode, the core answers, `relay` (streaming) or
//! `collect` (whole answers) turn the result into what each dialect's caller reads.

pub mod admission;
pub mod citations;
pub mod collect;
pub mod digest;
pub mod repeats;
pub mod video_chat;

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use crate::access_log::Record;
use crate::config::Timeouts;
use crate::conversation::{Message, Role};
use crate::error::ApiError;
use crate::persona::{self, CallerOptions};
use crate::state::AppState;
use crate::streams::StreamSlot;
use crate::upstream::{Opened, UpstreamError};
pub use admission::Caller;

/// What a dialect decoded from its request: whose voice answers, the conversation so far, and
/// what else the caller asked for.
#[derive(Debug, Clone)]
pub struct Ask {
    /// The persona's name (`default`, or the one a route or an OpenAI `model` names).
    pub persona: String,
    pub messages: Vec<Message>,
    /// Material the answer must stand on (a video's timeline): a system message after the
    /// persona's prompt, never dropped (see `video_chat`).
    pub reference: Option<String>,
    pub options: CallerOptions,
}

/// The upstream still being opened, once the status had to be sent to keep the line alive.
pub type OpenFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Opened, UpstreamError>> + Send>>;

/// How the answer begins: already started (the usual case, the status was decided by it), or
/// still waiting on the upstream after the status had to be sent to keep the line alive.
pub enum Start {
    Opened(Opened),
    Waiting(OpenFuture),
}

/// An answer that has begun (or is about to): everything the relay or the collector needs.
pub struct Started {
    pub(crate) start: Start,
    /// Held for as long as the answer lasts: the concurrency cap counts answers, not requests.
    pub(crate) slot: StreamSlot,
    pub(crate) timeouts: Timeouts,
    pub(crate) keepalive: Duration,
    /// Spoken as a last sentence when the answer fails after it started (ChatAPI).
    pub(crate) on_error_text: Option<String>,
    /// What the prompt was, when the caller reads usage: the fallback count if the upstream
    /// reports none.
    pub usage: Option<UsageBasis>,
}

/// The prompt an answer was given, to count its usage when the upstream did not.
pub struct UsageBasis {
    model: Option<String>,
    messages: Vec<Message>,
}

impl UsageBasis {
    /// The usage to report: the upstream's when it sent one, else this prompt's estimate with
    /// `completion` (the answer's text); `None` with neither.
    pub fn or_estimate(
        basis: Option<&Self>,
        reported: Option<crate::upstream::Usage>,
        completion: &str,
    ) -> Option<crate::upstream::Usage> {
        reported.or_else(|| basis.map(|b| b.estimate(completion)))
    }

    /// Usage as OpenAI's tokenizer counts it: the prompt, and `completion` (the answer's text).
    pub fn estimate(&self, completion: &str) -> crate::upstream::Usage {
        let model = self.model.as_deref();
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        crate::upstream::Usage {
            prompt_tokens: clamp(crate::context_budget::count_prompt(model, &self.messages)),
            completion_tokens: clamp(crate::context_budget::count_text(model, completion)),
        }
    }
}

/// Everything up to the first event: persona, stream slot, context budget, upstream. Waits for
/// the upstream's first event at most `server.keepalive`, so the caller's status can still say
/// how the upstream failed; past that the answer is handed over still waiting (`Start::Waiting`)
/// and the relay keeps the line alive with pings.
pub async fn start(
    state: &AppState,
    caller: &Caller,
    ask: Ask,
    record: &mut Record,
) -> Result<Started, ApiError> {
    let runtime = caller.runtime.clone();
    let config = &runtime.config;
    let persona = config
        .personas
        .get(&ask.persona)
        .ok_or_else(|| ApiError::UnknownPersona(ask.persona.clone()))?;
    let window = config.limits.repeat_window;
    let failures = state.recent_failures();
    // Every answering route admits with `admit_to_answer`; a caller admitted otherwise has no
    // shared place, and only this replica's cap would hold it (tests run with the assertion).
    let reserved = caller.take_reserved();
    debug_assert!(
        reserved.is_some(),
        "answer::start needs a caller admitted with admit_to_answer"
    );
    let reserved = reserved.unwrap_or_default();
    let slot = state
        .streams()
        .try_open(config.limits.max_concurrent_streams)?;
    let slot = match reserved.lease {
        Some(lease) => slot.with_lease(lease),
        None => slot,
    };
    let scope = caller.repeat_scope.as_deref();
    let plain = ask.reference.is_none();
    let (mut request, applied) = persona::apply(persona, ask.messages, ask.reference, ask.options);
    if plain && runtime.upstreams.all_local() {
        shown_an_example(&mut request.messages, &config.local);
    }
    record.dropped_turns = applied.dropped_turns;
    if runtime.upstreams.is_empty() {
        return Err(ApiError::NoUpstream);
    }
    runtime
        .upstreams
        .check(&request)
        .map_err(|(field, problem)| ApiError::bad_request(field, problem))?;
    if let Some(failed) = repeats::repeated(failures, scope, reserved.failed, &request, window) {
        record.repeated = true;
        return Err(ApiError::Upstream(failed));
    }
    let usage = request.include_usage.then(|| UsageBasis {
        model: request.model.clone(),
        messages: request.messages.clone(),
    });

    let timeouts = config.timeouts.with(&persona.timeouts);
    let keepalive = config.server.keepalive;
    let upstreams = runtime.clone();
    // Shared with the attempt, so a failure can still be told apart from another request's.
    let request = Arc::new(request);
    let asked = request.clone();
    let mut open: OpenFuture = Box::pin(
        async move { upstreams.upstreams.open(&asked, &timeouts).await }
            .instrument(tracing::Span::current()),
    );
    let hold = keepalive.min(timeouts.total);
    let start = tokio::select! {
        opened = &mut open => match opened {
            Ok(opened) => Start::Opened(opened),
            Err(error) => {
                repeats::shared::remember(state.cluster(), failures, scope, &request, &error, window)
                    .await;
                return Err(error.into());
            }
        },
        _ = tokio::time::sleep(hold) => Start::Waiting(open),
    };
    Ok(Started {
        start,
        slot,
        timeouts,
        keepalive,
        on_error_text: persona.on_error_text.clone(),
        usage,
    })
}

/// The embedded model's example exchange (`local.example_question`/`example_answer`), put
/// after the system messages: a small model answers a plain question in the shape it is shown.
fn shown_an_example(messages: &mut Vec<Message>, local: &crate::config::LocalConfig) {
    if local.example_question.is_empty() {
        return;
    }
    let at = messages
        .iter()
        .position(|m| m.role != Role::System)
        .unwrap_or(messages.len());
    messages.splice(
        at..at,
        [
            Message::new(Role::User, local.example_question.as_str()),
            Message::new(Role::Assistant, local.example_answer.as_str()),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_goes_after_the_system_messages_and_only_when_set() {
        let defaults = crate::config::Config::load_from(None, &[], &Default::default());
        let mut local = defaults.expect("the compiled-in defaults load").local;
        let mut messages = vec![
            Message::new(Role::System, "persona"),
            Message::new(Role::User, "What is the capital of Italy?"),
        ];
        shown_an_example(&mut messages, &local);
        let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [Role::System, Role::User, Role::Assistant, Role::User]
        );
        assert_eq!(messages[1].content, local.example_question);
        assert_eq!(messages[3].content, "What is the capital of Italy?");

        local.example_question.clear();
        local.example_answer.clear();
        let mut plain = vec![Message::new(Role::User, "Hi")];
        shown_an_example(&mut plain, &local);
        assert_eq!(plain.len(), 1);
    }
}
