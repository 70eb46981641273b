//! The response stream: upstream events in, a dialect's bytes out. The relay owns the timers
//! (keep-alive pings, the idle limit, the total deadline), shutdown and hang-up; the dialect's
//! [`Encoder`] owns the bytes (its event framing, its ping, how it ends a failed stream, its end
//! marker). Whatever happens once the first byte has gone out — the upstream errors, stalls, is
//! cut, sends garbage, a deadline passes, the server shuts down — the caller gets what was said
//! so far, the encoder's way of saying it failed, and the end marker. Dropping the stream (the
//! caller hung up) drops the upstream request with it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use bytes::Bytes;
use futures_util::{FutureExt, Stream, StreamExt};
use tokio::time::{sleep_until, Instant as TokioInstant};
use tokio_util::sync::CancellationToken;

use crate::access_log::Record;
use crate::answer::{Start, Started};
use crate::upstream::{Event, UpstreamError};

/// Work a dialect must finish before its end marker leaves (saving a conversation the client's
/// next turn will read).
pub type Settle = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How long the end marker waits on [`Encoder::settle`]; the work goes on past it, the caller
/// does not wait longer.
const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a stream that had begun did not end normally: for the encoder's last words.
#[derive(Debug, Clone, Copy)]
pub struct Failure<'a> {
    /// A stable code (`upstream_timeout`, `upstream_cut`, `shutdown`...), as in the log line.
    pub code: &'a str,
    /// One sentence a caller can read; upstream internals stay in the log.
    pub message: &'a str,
    /// The persona's `on_error_text`, for dialects that speak it.
    pub on_error_text: Option<&'a str>,
    /// The server is shutting down: not the upstream's fault, and not the persona's to excuse.
    pub shutdown: bool,
}

/// A dialect's streaming wire format. The relay calls `begin` once, `event` for each upstream
/// event, `ping` while there is nothing to say, `failed` if the answer did not complete,
/// `settle` (awaited), and `end` last, always.
pub trait Encoder: Send + 'static {
    /// Bytes that open the stream (a dialect's "response created" event); none by default.
    fn begin(&mut self) -> Option<Bytes> {
        None
    }
    /// One upstream event; `None` when this dialect carries nothing for it.
    fn event(&mut self, event: Event) -> Option<Bytes>;
    /// Keeps a quiet line open; every SSE reader ignores a comment.
    fn ping(&self) -> Bytes {
        Bytes::from_static(PING)
    }
    /// How this dialect says the answer broke off after it had begun.
    fn failed(&mut self, failure: Failure<'_>) -> Option<Bytes>;
    /// Work to finish before the end marker, so a client that acts on the marker finds it done.
    fn settle(&mut self) -> Option<Settle> {
        None
    }
    /// The end marker.
    fn end(&mut self) -> Bytes;
}

/// An SSE comment: keeps proxies from cutting a quiet stream; every SSE reader (FaceTo-AI's
/// included, which discards the line after it anyway) ignores it.
pub const PING: &[u8] = b": ping\n\n";

enum Step<T> {
    Item(T),
    Timer,
    Stop,
}

/// What ended the stream early: the outcome for the log line and the caller's sentence.
struct Ended {
    outcome: String,
    message: &'static str,
}

impl Ended {
    fn upstream(e: &UpstreamError) -> Self {
        Self {
            outcome: e.kind().1.to_string(),
            message: e.caller_message(),
        }
    }
}

pub fn stream<E: Encoder>(
    started: Started,
    mut encoder: E,
    mut record: Record,
    hard_stop: CancellationToken,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let Started {
        start,
        slot,
        timeouts,
        keepalive,
        on_error_text,
        ..
    } = started;
    let (idle, total) = (timeouts.idle, timeouts.total);
    let deadline = record.started() + total;
    let deadline_at = TokioInstant::from_std(deadline);
    let one_worker = tokio::runtime::Handle::try_current()
        .is_ok_and(|runtime| runtime.metrics().num_workers() == 1);
    async_stream::stream! {
        let _slot = slot;
        let _open = crate::metrics::OpenStream::new();
        let stop = hard_stop.cancelled_owned();
        tokio::pin!(stop);
        let mut last_write = Instant::now();
        let mut failed: Option<Ended> = None;
        if let Some(bytes) = encoder.begin() {
            yield Ok(bytes);
        }

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
                        failed = Some(Ended::upstream(&e));
                        break None;
                    }
                    Step::Stop => {
                        record.finish("shutdown");
                        failed = Some(Ended { outcome: "shutdown".into(), message: SHUTDOWN });
                        break None;
                    }
                    Step::Timer if Instant::now() >= deadline => {
                        record.finish("deadline");
                        failed = Some(Ended { outcome: "deadline".into(), message: DEADLINE });
                        break None;
                    }
                    Step::Timer => {
                        last_write = Instant::now();
                        yield Ok(encoder.ping());
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
                if let Some(bytes) = encoded(&mut encoder, &mut record, first) {
                    last_write = Instant::now();
                    yield Ok(bytes);
                }
            }
            let mut last_chunk = Instant::now();
            // One timer for the whole stream, re-armed only when it fires, so a chunk costs no
            // timer work: on waking we look at what is actually due.
            let timer = sleep_until(TokioInstant::from_std(last_chunk + keepalive.min(idle)).min(deadline_at));
            tokio::pin!(timer);
            // An item the burst below took from the stream but could not send with it.
            let mut held = None;
            loop {
                let step = match held.take() {
                    Some(item) => Step::Item(item),
                    None => tokio::select! {
                        biased;
                        item = rest.next() => Step::Item(item),
                        _ = &mut timer => Step::Timer,
                        _ = &mut stop => Step::Stop,
                    },
                };
                match step {
                    Step::Item(Some(Ok(event))) => {
                        let now = Instant::now();
                        last_chunk = now;
                        let mut out = encoded(&mut encoder, &mut record, event);
                        // What the upstream has already sent goes out in the same write: one
                        // system call for a burst, not one per event (nginx writes what it read
                        // too). Only what is ready now: nothing waits for more. A lone event is
                        // sent as it is; a burst is gathered into one buffer, each byte copied
                        // once.
                        let mut gathered: Option<bytes::BytesMut> = None;
                        let mut burst = 0;
                        let mut turns = 0;
                        while burst < BURST_EVENTS {
                            match rest.next().now_or_never() {
                                Some(Some(Ok(event))) => {
                                    burst += 1;
                                    turns = 0;
                                    if let Some(more) = encoded(&mut encoder, &mut record, event) {
                                        let first = out.take().unwrap_or_default();
                                        gathered
                                            .get_or_insert_with(|| bytes::BytesMut::from(&first[..]))
                                            .extend_from_slice(&more);
                                    }
                                }
                                Some(other) => {
                                    held = Some(other);
                                    break;
                                }
                                None if turns == TURNS_PER_GAP => break,
                                None => {
                                    turns += 1;
                                    turn(one_worker).await;
                                }
                            }
                        }
                        if let Some(bytes) = gathered.map(bytes::BytesMut::freeze).or(out) {
                            last_write = now;
                            yield Ok(bytes);
                        }
                    }
                    Step::Item(Some(Err(e))) => {
                        tracing::warn!(request_id = %record.request_id, error = %e, "upstream failed mid-answer");
                        if let Some(upstream) = &record.upstream {
                            crate::metrics::upstream_error(upstream, e.kind().1);
                        }
                        record.finish(e.kind().1);
                        failed = Some(Ended::upstream(&e));
                        break;
                    }
                    Step::Item(None) => {
                        record.finish("ok");
                        break;
                    }
                    Step::Stop => {
                        record.finish("shutdown");
                        failed = Some(Ended { outcome: "shutdown".into(), message: SHUTDOWN });
                        break;
                    }
                    Step::Timer => {
                        let now = Instant::now();
                        if now >= deadline {
                            tracing::warn!(request_id = %record.request_id, error = %UpstreamError::Deadline(total), "answer cut short");
                            record.finish("deadline");
                            failed = Some(Ended { outcome: "deadline".into(), message: DEADLINE });
                            break;
                        }
                        if now.duration_since(last_chunk) >= idle {
                            tracing::warn!(request_id = %record.request_id, idle = ?idle, "upstream stalled mid-answer");
                            record.finish("upstream_idle");
                            failed = Some(Ended { outcome: "upstream_idle".into(), message: IDLE });
                            break;
                        }
                        if now.duration_since(last_write) >= keepalive {
                            last_write = now;
                            yield Ok(encoder.ping());
                        }
                        let next = (last_chunk + idle).min(last_write + keepalive);
                        timer.as_mut().reset(TokioInstant::from_std(next).min(deadline_at));
                    }
                }
            }
        }
        if let Some(ended) = &failed {
            let failure = Failure {
                code: &ended.outcome,
                message: ended.message,
                on_error_text: on_error_text.as_deref().filter(|t| !t.is_empty()),
                shutdown: ended.outcome == "shutdown",
            };
            if let Some(bytes) = encoder.failed(failure) {
                yield Ok(bytes);
            }
        }
        if let Some(work) = encoder.settle() {
            let work = tokio::spawn(work);
            if tokio::time::timeout(SETTLE_WAIT, work).await.is_err() {
                tracing::warn!(request_id = %record.request_id, "end marker sent before the answer's bookkeeping finished");
            }
        }
        yield Ok(encoder.end());
    }
}

/// Most events one write carries: a burst is sent whole, a flood in pieces.
const BURST_EVENTS: usize = 64;

/// Scheduler turns a gap in a burst gets before what was gathered goes out. An h2c upstream's
/// connection (hyper's client) and the embedded model are read by tasks of their own, which hand
/// the answer over one chunk at a time: the next event of a burst already read reaches the relay
/// two turns later (measured with hyper 1.12), and a turn costs far less than a write of its
/// own. An HTTP/1.1 upstream is read by the relay itself (`upstream::http1`); for it, 0, 1 or
/// 2 turns made no difference to the first token beyond the noise (25 clients, README).
const TURNS_PER_GAP: u8 = 2;

/// Lets the runtime run what else is ready, then comes back. On a runtime of one worker, a
/// wake of our own: straight to the back of the queue, no system call. With several, tokio's
/// `yield_now`, which waits for the worker's next look at its I/O rather than waking an idle
/// worker to steal the task (a system call, and the stream's two tasks on two threads).
async fn turn(one_worker: bool) {
    if !one_worker {
        return tokio::task::yield_now().await;
    }
    let mut woken = false;
    std::future::poll_fn(|cx| {
        if woken {
            return std::task::Poll::Ready(());
        }
        woken = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// One event through the dialect's encoder, counted in the request's record.
fn encoded<E: Encoder>(encoder: &mut E, record: &mut Record, event: Event) -> Option<Bytes> {
    if event.is_content() {
        record.first_token_now();
        record.deltas += 1;
    }
    encoder.event(event)
}

const SHUTDOWN: &str = "The server is shutting down; the answer was cut short.";
const DEADLINE: &str = "The answer did not finish within the time allowed.";
const IDLE: &str = "The model stopped sending in the middle of the answer.";
