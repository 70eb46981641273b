//! The `chatapi` binary: parse the command line, load the config, serve.
//!
//! Shutdown, in order: SIGTERM/SIGINT stops accepting; open streams get `server.shutdown_grace`;
//! then each still open ends with `data: [DONE]`; the process exits 0 once all are written.
//! SIGHUP, or a change to the config file, reloads the config without touching open streams.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use chatapi::logging::{self, LogFormat};
use chatapi::{AppState, Config};

#[derive(Parser)]
#[command(
    version,
    about = "FaceTo-AI ChatAPI server over any OpenAI-compatible upstream"
)]
struct Cli {
    /// TOML file layered over the built-in defaults (config/default.toml).
    #[arg(long, global = true, env = "CHATAPI_CONFIG")]
    config: Option<PathBuf>,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print the effective configuration (defaults + file + environment), secrets redacted.
    CheckConfig,
    /// Speak MCP on stdin/stdout, relayed to a running chatapi's /mcp: for MCP clients that
    /// only start local processes. Needs no config; the server does the work.
    Mcp {
        /// Speak on stdin and stdout (the one transport this command has).
        #[arg(long, required = true)]
        stdio: bool,
        /// The running chatapi's MCP endpoint.
        #[arg(long, env = "CHATAPI_URL", default_value = "http://127.0.0.1:8080/mcp")]
        url: String,
        /// The key to present, as `Authorization: Bearer <key>`.
        #[arg(long, env = "CHATAPI_KEY", hide_env_values = true)]
        key: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Held for the whole run: dropping it flushes the log writer thread.
    let _log_guard = logging::init(cli.log_format);
    match cli.command {
        Some(Command::Mcp { url, key, .. }) => {
            on_runtime(None, async { bridge(&url, key.as_deref()).await })
        }
        Some(Command::CheckConfig) => match load(cli.config.as_deref()) {
            Ok(config) => check_config(&config),
            Err(code) => code,
        },
        None => match load(cli.config.as_deref()) {
            Ok(config) => on_runtime(Some(config.server.threads()), run(config, cli.config)),
            Err(code) => code,
        },
    }
}

/// Runs `work` on a multi-threaded runtime with `threads` workers (tokio's default without).
/// Built here rather than by `#[tokio::main]` because the count is the config's.
fn on_runtime(
    threads: Option<usize>,
    work: impl std::future::Future<Output = ExitCode>,
) -> ExitCode {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        builder.worker_threads(threads);
    }
    match builder.enable_all().build() {
        Ok(runtime) => runtime.block_on(work),
        Err(error) => {
            eprintln!("chatapi: cannot start the runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|error| {
        eprintln!("chatapi: {error}");
        ExitCode::from(2)
    })
}

async fn bridge(url: &str, key: Option<&str>) -> ExitCode {
    match chatapi::stdio_bridge::run(url, key).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chatapi mcp: {error}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)] // printing the config is this command's whole job
fn check_config(config: &Config) -> ExitCode {
    match config.redacted_toml() {
        Ok(text) => {
            // Comments, so the output stays a config file one can load.
            for line in chatapi::cluster::Cluster::describe(config) {
                println!("# state: {line}");
            }
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("chatapi: could not print the config: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config, path: Option<PathBuf>) -> ExitCode {
    let listen = config.server.listen;
    let state = match AppState::new(config, path.clone()).await {
        Ok(state) => state,
        Err(error) => {
            eprintln!("chatapi: {error}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(error) => {
            eprintln!("chatapi: cannot listen on {listen}: {error}");
            return ExitCode::from(2);
        }
    };
    // The bound address, not the configured one: port 0 picks a free port.
    let listen = listener.local_addr().unwrap_or(listen);
    for warning in state.runtime().config.warnings() {
        tracing::warn!("{warning}");
    }
    let upstreams = state.runtime().upstreams.health();
    if upstreams.is_empty() {
        tracing::warn!("no upstream configured: set OPENAI_API_KEY or add [[upstreams]]; /chat answers 503 until then");
    }
    tokio::spawn(chatapi::reload::on_hangup(state.clone()));
    if let Some(path) = path {
        tokio::spawn(chatapi::reload::on_file_change(state.clone(), path));
    }
    let terminate = chatapi::signals::terminate();
    tracing::info!(%listen, threads = tokio::runtime::Handle::current().metrics().num_workers(), upstreams = ?upstreams.iter().map(|u| &u.name).collect::<Vec<_>>(), "chatapi listening");
    match chatapi::serve(listener, state, terminate).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "server error");
            ExitCode::FAILURE
        }
    }
}
