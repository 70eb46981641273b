//! The response stream: upstream deltas in, ChatAPI events out. Whatever happens once the first
//! byte has gone out — the upstream errors, stalls, is cut, sends garbage, a deadline passes, the
//! server shuts down — the caller gets the text so far, the persona's `on_error_text` if any, and
//! `data: [DONE]`. While there is nothing to say, `: ping` comments keep proxies from cutting the
//! line. Dropping the stream (the caller hung up) drops the upstream request with it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::time::{sleep_until, Instant as TokioInstant};
use tokio_util::sync::CancellationToken;

use crate::limits::StreamSlot;
use crate::record::Record;
use crate::upstream::{Opened, UpstreamError};
use crate::wire::{Framing, PING};

pub type OpenFuture = Pin<Box<dyn Future<Output = Result<Opened, UpstreamError>> + Send>>;

/// How the answer begins: already started (the usual case, the status was decided by it), or
/// still waiting on the upstream after the status had to be sent to keep the line alive.
pub enum Start {
    Opened(Opened),
    Waiting(OpenFuture),
}

pub struct Relay {
    pub framing: Framing,
    pub keepalive: Duration,
    pub idle: Duration,
    /// Whole-answer limit, counted from when the request arrived (`record.started()`).
    pub total: Duration,
    pub on_error_text: Option<String>,
    pub hard_stop: CancellationToken,
    pub record: Record,
    /// Held for as long as the stream is open: the concurrency cap counts streams, not requests.
    pub slot: StreamSlot,
}

enum Step<T> {
    Item(T),
    Timer,
    Stop,
}

pub fn stream(relay: Relay, start: Start) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let Relay {
        framing,
        keepalive,
        idle,
        total,
        on_error_text,
        hard_stop,
        mut record,
        slot,
    } = relay;
    let deadline = record.started() + total;
    let deadline_at = TokioInstant::from_std(deadline);
    async_stream::stream! {
        let _slot = slot;
        let _open = crate::metrics::OpenStream::new();
        let stop = hard_stop.cancelled_owned();
        tokio::pin!(stop);
        let mut last_write = Instant::now();
        let mut failed = false;

        let opened = match start {
            Start::Opened(opened) => Some(opened),
            Start::Waiting(mut open) => loop {
                let wake = TokioInstant::from_std(last_write + keepalive).min(deadline_at);
                let step = tokio::select! {
                    biased;
                    r = &mut open => Step::Item(r),
                    _ = &mut stop => Step::Stop,
                    _ = sleep_until(wake) => Step::Timer,
                };
                match step {
                    Step::Item(Ok(opened)) => break Some(opened),
                    Step::Item(Err(e)) => {
                        record.finish(e.kind().1);
                        tracing::warn!(request_id = %record.request_id, error = %e, "upstream failed before the first token");
                        failed = true;
                        break None;
                    }
                    Step::Stop => {
                        record.finish("shutdown");
                        break None;
                    }
                    Step::Timer if Instant::now() >= deadline => {
                        record.finish("deadline");
                        failed = true;
                        break None;
                    }
                    Step::Timer => {
                        last_write = Instant::now();
                        yield Ok(Bytes::from_static(PING));
                    }
                }
            },
        };

        if let Some(opened) = opened {
            record.upstream = Some(opened.upstream);
            record.failed_attempts = opened.failed_attempts;
            record.upstream_wait = opened.waited;
            let mut rest = opened.rest;
            if let Some(first) = opened.first {
                record.first_token_now();
                record.deltas += 1;
                last_write = Instant::now();
                yield Ok(framing.content(&first));
            }
            let mut last_chunk = Instant::now();
            // One timer for the whole stream, re-armed only when it fires, so a chunk costs no
            // timer work: on waking we look at what is actually due.
            let timer = sleep_until(TokioInstant::from_std(last_chunk + keepalive.min(idle)).min(deadline_at));
            tokio::pin!(timer);
            loop {
                let step = tokio::select! {
                    biased;
                    item = rest.next() => Step::Item(item),
                    _ = &mut timer => Step::Timer,
                    _ = &mut stop => Step::Stop,
                };
                match step {
                    Step::Item(Some(Ok(text))) => {
                        let now = Instant::now();
                        last_chunk = now;
                        last_write = now;
                        record.deltas += 1;
                        yield Ok(framing.content(&text));
                    }
                    Step::Item(Some(Err(e))) => {
                        tracing::warn!(request_id = %record.request_id, error = %e, "upstream failed mid-answer");
                        if let Some(upstream) = &record.upstream {
                            crate::metrics::upstream_error(upstream, e.kind().1);
                        }
                        record.finish(e.kind().1);
                        failed = true;
                        break;
                    }
                    Step::Item(None) => {
                        record.finish("ok");
                        break;
                    }
                    Step::Stop => {
                        record.finish("shutdown");
                        break;
                    }
                    Step::Timer => {
                        let now = Instant::now();
                        if now >= deadline {
                            tracing::warn!(request_id = %record.request_id, error = %UpstreamError::Deadline(total), "answer cut short");
                            record.finish("deadline");
                            failed = true;
                            break;
                        }
                        if now.duration_since(last_chunk) >= idle {
                            tracing::warn!(request_id = %record.request_id, idle = ?idle, "upstream stalled mid-answer");
                            record.finish("upstream_idle");
                            failed = true;
                            break;
                        }
                        if now.duration_since(last_write) >= keepalive {
                            last_write = now;
                            yield Ok(Bytes::from_static(PING));
                        }
                        let next = (last_chunk + idle).min(last_write + keepalive);
                        timer.as_mut().reset(TokioInstant::from_std(next).min(deadline_at));
                    }
                }
            }
        }
        if failed {
            if let Some(text) = on_error_text.as_deref().filter(|t| !t.is_empty()) {
                yield Ok(framing.content(text));
            }
        }
        yield Ok(framing.done());
    }
}
