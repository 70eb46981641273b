//! Prometheus metrics, served at `GET /metrics`. Names and meanings are listed in the README; a
//! request's own are counted where its log line is written (`access_log`).
//! The recorder is process-wide (the `metrics` facade has one global), installed once.

use std::sync::OnceLock;

use metrics::{counter, gauge};
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

/// Counts a stream as open for as long as it lives.
pub struct OpenStream;

impl OpenStream {
    pub fn new() -> Self {
        gauge!("chatapi_open_streams").increment(1.0);
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
        gauge!("chatapi_open_streams").decrement(1.0);
    }
}

/// Prompt tokens given to an embedded model, and those found already in its cache.
pub fn local_prompt(upstream: &str, prompt_tokens: usize, reused_tokens: usize) {
    counter!("chatapi_local_prompt_tokens_total", "upstream" => upstream.to_string())
        .increment(prompt_tokens as u64);
    counter!("chatapi_local_reused_tokens_total", "upstream" => upstream.to_string())
        .increment(reused_tokens as u64);
}
