//! The one log line and the metrics of a request. A `Record` travels with the request, into the
//! response stream when there is one, and reports when dropped — so a caller that hangs up still
//! gets its line, with outcome `client_gone`.

use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Record {
    pub request_id: String,
    pub persona: String,
    /// Which front door the request came through (`chatapi`, `openai`...).
    pub dialect: &'static str,
    pub upstream: Option<Arc<str>>,
    pub status: u16,
    started: Instant,
    pub first_token: Option<Duration>,
    pub deltas: u32,
    pub failed_attempts: u32,
    pub dropped_turns: usize,
    /// Set when the request ends on its own; `None` at drop means the caller left first.
    pub outcome: Option<String>,
    /// Time spent waiting on the upstream, so the overhead metric can leave it out.
    pub upstream_wait: Duration,
    /// A retry of a request id whose upstream failure was answered again without going upstream.
    pub repeated: bool,
}

impl Record {
    pub fn new(request_id: String, persona: &str, dialect: &'static str) -> Self {
        Self {
            request_id,
            persona: persona.to_string(),
            dialect,
            upstream: None,
            status: 200,
            started: Instant::now(),
            first_token: None,
            deltas: 0,
            failed_attempts: 0,
            dropped_turns: 0,
            outcome: None,
            upstream_wait: Duration::ZERO,
            repeated: false,
        }
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn first_token_now(&mut self) {
        if self.first_token.is_none() {
            self.first_token = Some(self.started.elapsed());
        }
    }

    pub fn finish(&mut self, outcome: impl Into<String>) {
        if self.outcome.is_none() {
            self.outcome = Some(outcome.into());
        }
    }

    /// Labels the request with `persona` if it is configured, else `unknown`: a caller must not
    /// be able to mint metric series by inventing names.
    pub fn label_persona(&mut self, config: &crate::config::Config, persona: &str) {
        self.persona = if config.personas.contains_key(persona) {
            persona.to_string()
        } else {
            "unknown".to_string()
        };
    }

    /// The request was refused or failed before its answer began.
    pub fn fail(&mut self, error: &crate::error::ApiError) {
        self.status = error.status().as_u16();
        self.finish(error.outcome());
    }
}

impl Record {
    /// The request's metrics (names and meanings in the README), beside its log line.
    fn count(&self, outcome: &str, duration: Duration) {
        crate::metrics::request(&crate::metrics::Ended {
            persona: &self.persona,
            upstream: self.upstream.as_deref().unwrap_or("none"),
            outcome,
            deltas: self.deltas,
            first_token: self.first_token.map(|ttft| (ttft, self.upstream_wait)),
            streamed: (self.status == 200).then_some(duration),
            hung_up: self.outcome.is_none(),
            failed_attempts: self.failed_attempts,
        });
    }
}

/// Milliseconds to the microsecond: `29.243`, not `29.242561000000002`, in the log line.
fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl Drop for Record {
    fn drop(&mut self) {
        let duration = self.started.elapsed();
        let outcome = self.outcome.as_deref().unwrap_or("client_gone");
        let upstream = self.upstream.as_deref().unwrap_or("-");
        let ttft_ms = self.first_token.map(millis);
        tracing::info!(
            request_id = %self.request_id,
            dialect = self.dialect,
            persona = %self.persona,
            upstream,
            status = self.status,
            ttft_ms,
            deltas = self.deltas,
            duration_ms = millis(duration),
            failed_attempts = self.failed_attempts,
            dropped_turns = self.dropped_turns,
            repeated = self.repeated,
            outcome,
            "chat"
        );
        self.count(outcome, duration);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_milliseconds_stop_at_the_microsecond() {
        assert_eq!(millis(std::time::Duration::from_nanos(29_242_561)), 29.243);
        assert_eq!(millis(std::time::Duration::from_secs(2)), 2000.0);
    }
}
