//! Prometheus metrics, served at `GET /metrics`. Names and meanings are listed in the README; a
//! request's own are counted where its log line is written (`access_log`).
//! The recorder is process-wide (the `metrics` facade has one global), installed once.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Seconds; from sub-millisecond overhead up to the 120 s a FaceTo-AI attempt may last.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 120.0,
];

pub fn install() {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .ok()?
            .build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).ok()?;
        Some(handle)
    });
}

pub fn render() -> String {
    HANDLE
        .get()
        .and_then(|h| h.as_ref())
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

pub fn upstream_error(upstream: &str, kind: &str) {
    counter!("chatapi_upstream_errors_total", "upstream" => upstream.to_string(), "kind" => kind.to_string()).increment(1);
}

pub fn failover() {
    counter!("chatapi_failovers_total").increment(1);
}

pub fn retry() {
    counter!("chatapi_retries_total").increment(1);
}

/// A metric every request records, by its handle: taken from the recorder at its first use
/// once ours is installed, so a request costs no lookup by name and labels (seven a request were
/// about 1 % of a streamed answer's instructions, by callgrind), and a metric still appears at
/// its first use. Before `install` (a bare router in tests) the facade records nowhere, and
/// neither does this.
struct Handle<T: 'static> {
    taken: OnceLock<T>,
    take: fn() -> T,
}

impl<T> Handle<T> {
    const fn new(take: fn() -> T) -> Self {
        Self {
            taken: OnceLock::new(),
            take,
        }
    }

    fn get(&self) -> Option<&T> {
        matches!(HANDLE.get(), Some(Some(_))).then(|| self.taken.get_or_init(self.take))
    }
}

static DELTAS: Handle<Counter> = Handle::new(|| counter!("chatapi_deltas_total"));
static CLIENT_HANGUPS: Handle<Counter> = Handle::new(|| counter!("chatapi_client_hangups_total"));
static FAILED_ATTEMPTS: Handle<Counter> = Handle::new(|| counter!("chatapi_failed_attempts_total"));
static FIRST_TOKEN: Handle<Histogram> =
    Handle::new(|| histogram!("chatapi_time_to_first_token_seconds"));
static OVERHEAD: Handle<Histogram> = Handle::new(|| histogram!("chatapi_overhead_seconds"));
static STREAM_DURATION: Handle<Histogram> =
    Handle::new(|| histogram!("chatapi_stream_duration_seconds"));
static OPEN_STREAMS: Handle<Gauge> = Handle::new(|| gauge!("chatapi_open_streams"));

/// One request's end, as its log line tells it (`access_log`).
pub struct Ended<'a> {
    pub persona: &'a str,
    pub upstream: &'a str,
    pub outcome: &'a str,
    pub deltas: u32,
    /// The first token's time, and the part of it spent waiting on the upstream.
    pub first_token: Option<(Duration, Duration)>,
    /// The stream's whole time, for a request answered with one.
    pub streamed: Option<Duration>,
    pub hung_up: bool,
    pub failed_attempts: u32,
}

pub fn request(ended: &Ended<'_>) {
    // Labelled by what the caller chose among configured names: looked up by them.
    counter!("chatapi_requests_total", "persona" => ended.persona.to_string(), "upstream" => ended.upstream.to_string(), "outcome" => ended.outcome.to_string()).increment(1);
    if let Some(deltas) = DELTAS.get() {
        deltas.increment(u64::from(ended.deltas));
    }
    // Each handle is taken only when there is something to record: a metric appears at its
    // first use, as it did when recorded by name.
    if let Some((ttft, waited)) = ended.first_token {
        if let Some(first_token) = FIRST_TOKEN.get() {
            first_token.record(ttft.as_secs_f64());
        }
        if let Some(overhead) = OVERHEAD.get() {
            overhead.record(ttft.saturating_sub(waited).as_secs_f64());
        }
    }
    if let Some(streamed) = ended.streamed {
        if let Some(duration) = STREAM_DURATION.get() {
            duration.record(streamed.as_secs_f64());
        }
    }
    if ended.hung_up {
        if let Some(hangups) = CLIENT_HANGUPS.get() {
            hangups.increment(1);
        }
    }
    if ended.failed_attempts > 0 {
        if let Some(failed) = FAILED_ATTEMPTS.get() {
            failed.increment(u64::from(ended.failed_attempts));
        }
    }
}

/// Counts a stream as open for as long as it lives.
pub struct OpenStream;

impl OpenStream {
    pub fn new() -> Self {
        if let Some(open) = OPEN_STREAMS.get() {
            open.increment(1.0);
        }
        Self
    }
}

impl Default for OpenStream {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        if let Some(open) = OPEN_STREAMS.get() {
            open.decrement(1.0);
        }
    }
}

/// Prompt tokens given to an embedded model, and those found already in its cache.
pub fn local_prompt(upstream: &str, prompt_tokens: usize, reused_tokens: usize) {
    counter!("chatapi_local_prompt_tokens_total", "upstream" => upstream.to_string())
        .increment(prompt_tokens as u64);
    counter!("chatapi_local_reused_tokens_total", "upstream" => upstream.to_string())
        .increment(reused_tokens as u64);
}
