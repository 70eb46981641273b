//! Whole answers, for dialects that do not stream (OpenAI with `stream: false`, Reka's chat...):
//! the same started answer the relay would stream, read to its end under the same idle limit,
//! total deadline and shutdown, with tool-call pieces merged into whole calls. Nothing has been
//! sent to the caller yet, so any failure is still a proper HTTP error.

use std::time::Instant;

use futures_util::StreamExt;
use tokio::time::{sleep_until, Instant as TokioInstant};
use tokio_util::sync::CancellationToken;

use super::{Start, Started};
use crate::access_log::Record;
use crate::conversation::ToolCall;
use crate::error::ApiError;
use crate::upstream::{Event, FinishReason, ToolCallDelta, UpstreamError, Usage};

/// A finished answer.
#[derive(Debug, Clone, Default)]
pub struct Whole {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    /// `None` when the upstream did not say (it ended cleanly all the same).
    pub finish_reason: Option<FinishReason>,
    /// `None` when the upstream did not report it.
    pub usage: Option<Usage>,
    /// The upstream's `logprobs.content` entries of every chunk, in order (when asked for).
    pub logprobs: Vec<serde_json::Value>,
}

impl Whole {
    fn add(&mut self, event: Event) {
        match event {
            Event::Text(text) => self.text.push_str(&text),
            Event::ToolCall(delta) => self.add_tool_call(*delta),
            Event::Finish(reason) => self.finish_reason = Some(reason),
            Event::Usage(usage) => self.usage = Some(usage),
            Event::Logprobs(raw) => {
                if let Ok(serde_json::Value::Object(mut chunk)) = serde_json::from_str(raw.0.get())
                {
                    if let Some(serde_json::Value::Array(entries)) = chunk.remove("content") {
                        self.logprobs.extend(entries);
                    }
                }
            }
        }
    }

    fn add_tool_call(&mut self, delta: ToolCallDelta) {
        let at = delta.index as usize;
        // Indexes come in order from 0; a gap would be the upstream's bug, filled with empties.
        if self.tool_calls.len() <= at {
            self.tool_calls.resize_with(at + 1, ToolCall::default);
        }
        let call = &mut self.tool_calls[at];
        if let Some(id) = delta.id {
            call.id = id;
        }
        if let Some(name) = delta.name {
            call.name.push_str(&name);
        }
        call.arguments.push_str(&delta.arguments);
    }
}

pub async fn whole(
    started: Started,
    record: &mut Record,
    hard_stop: &CancellationToken,
) -> Result<Whole, ApiError> {
    let result = read(started, record, hard_stop).await;
    match &result {
        Ok(_) => record.finish("ok"),
        Err(e) => {
            record.status = e.status().as_u16();
            record.finish(e.outcome());
        }
    }
    result
}

async fn read(
    started: Started,
    record: &mut Record,
    hard_stop: &CancellationToken,
) -> Result<Whole, ApiError> {
    let Started {
        start,
        slot: _slot,
        timeouts,
        ..
    } = started;
    let deadline = TokioInstant::from_std(record.started() + timeouts.total);
    let past_deadline = || ApiError::Upstream(UpstreamError::Deadline(timeouts.total));
    let opened = match start {
        Start::Opened(opened) => opened,
        Start::Waiting(open) => tokio::select! {
            opened = open => opened?,
            _ = sleep_until(deadline) => return Err(past_deadline()),
            _ = hard_stop.cancelled() => return Err(ApiError::ShuttingDown),
        },
    };
    record.upstream = Some(opened.upstream.clone());
    record.failed_attempts = opened.failed_attempts;
    record.upstream_wait = opened.waited;
    let mut whole = Whole::default();
    let mut rest = opened.rest;
    let mut next = opened.first;
    loop {
        if let Some(event) = next.take() {
            if event.is_content() {
                record.first_token_now();
                record.deltas += 1;
            }
            whole.add(event);
        }
        let idle_until = TokioInstant::from_std(Instant::now() + timeouts.idle).min(deadline);
        let item = tokio::select! {
            item = rest.next() => item,
            _ = sleep_until(idle_until) => {
                return Err(if idle_until >= deadline {
                    past_deadline()
                } else {
                    ApiError::Upstream(UpstreamError::Idle {
                        upstream: opened.upstream.clone(),
                        after: timeouts.idle,
                    })
                });
            }
            _ = hard_stop.cancelled() => return Err(ApiError::ShuttingDown),
        };
        match item {
            Some(Ok(event)) => next = Some(event),
            Some(Err(e)) => {
                crate::metrics::upstream_error(&opened.upstream, e.kind().1);
                return Err(e.into());
            }
            None => return Ok(whole),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_call_pieces_join_into_calls() {
        let mut w = Whole::default();
        let piece = |index, id: Option<&str>, name: Option<&str>, args: &str| {
            Event::ToolCall(Box::new(ToolCallDelta {
                index,
                id: id.map(Into::into),
                name: name.map(Into::into),
                arguments: args.into(),
            }))
        };
        w.add(piece(0, Some("call_a"), Some("weather"), ""));
        w.add(piece(0, None, None, "{\"city\":"));
        w.add(piece(1, Some("call_b"), Some("time"), "{}"));
        w.add(piece(0, None, None, "\"Oslo\"}"));
        w.add(Event::Finish(FinishReason::ToolCalls));
        assert_eq!(
            w.tool_calls,
            vec![
                ToolCall {
                    id: "call_a".into(),
                    name: "weather".into(),
                    arguments: "{\"city\":\"Oslo\"}".into()
                },
                ToolCall {
                    id: "call_b".into(),
                    name: "time".into(),
                    arguments: "{}".into()
                }
            ]
        );
        assert_eq!(w.finish_reason, Some(FinishReason::ToolCalls));
    }
}
