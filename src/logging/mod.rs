//! Logging: human-readable lines by default, one JSON object per line with `--log-format json`.
//! `RUST_LOG` filters as usual (default `info`). Message contents are never logged. Lines are
//! written by one thread, a batch at a time (`batched`); a text line's fields are written by
//! `fields`, as tracing-subscriber's default writes them but cheaper.

mod batched;
mod fields;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the subscriber. Lines are written by a dedicated thread, so the per-request line
/// never blocks a runtime thread on a slow stderr; the returned guard flushes it.
pub fn init(format: LogFormat) -> batched::Guard {
    // llama.cpp narrates every model load at info level; its warnings are what an operator needs.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,llama-cpp-2=warn"));
    let (writer, guard) = batched::writer(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // Colour codes only for a person at a terminal, never in files or log collectors.
        .with_ansi(std::io::stderr().is_terminal());
    // A second init (tests build many servers in one process) is harmless.
    let _ = match format {
        LogFormat::Text => builder.fmt_fields(fields::PlainFields).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    guard
}
