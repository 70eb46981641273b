//! Configuration: `config/default.toml` (compiled in), then the operator's file, then
//! `CHATAPI__SECTION__KEY` environment variables, then `OPENAI_API_KEY` / `OPENAI_BASE_URL` for an
//! upstream that does not name its own. Every struct rejects unknown keys. This module holds the
//! types; `load` layers the sources (each checked on its own, so an error names the layer it
//! came from), `validate` checks what serde cannot, `secret` keeps keys out of logs.

mod load;
mod secret;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use load::OpenAiEnv;
pub use secret::{ApiKey, ScopedKey, Secret};

/// The defaults, with every option commented. Kept as a file so operators can read it.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// The persona `POST /chat` serves.
pub const DEFAULT_PERSONA: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("environment (CHATAPI__*): {0}")]
    Environment(String),
    #[error("built-in defaults: {0}")]
    Defaults(String),
    #[error("config: {key}: {problem}")]
    Invalid { key: String, problem: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub wire: WireConfig,
    pub limits: LimitsConfig,
    pub timeouts: Timeouts,
    pub retry: RetryConfig,
    pub breaker: BreakerConfig,
    pub local: LocalConfig,
    pub storage: StorageConfig,
    pub cluster: ClusterConfig,
    pub videos: VideosConfig,
    pub video_chat: VideoChatConfig,
    pub mcp: McpConfig,
    #[serde(default)]
    pub upstreams: Vec<UpstreamConfig>,
    pub personas: BTreeMap<String, Persona>,
}

/// The embedded model (built with the `local` feature).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// Serve with the embedded model when no upstream is configured and OPENAI_API_KEY is unset.
    pub enabled: bool,
    pub model_path: PathBuf,
    /// 0: one fewer than the machine's cores.
    pub threads: usize,
    /// Threads for a batch (a prompt, or several conversations decoded together); 0: every core.
    pub batch_threads: usize,
    pub context_tokens: u32,
    pub parallel: u32,
    pub queue: usize,
    /// The model's sampling where the persona leaves it unset: its model card's.
    pub temperature: f32,
    pub top_p: f32,
    pub repeat_penalty: f32,
    /// A llama.cpp template name (`gemma`, `chatml`, `llama3`...) to render conversations with
    /// instead of the model's own; empty: the model's own (a model without one is refused).
    pub chat_template: String,
    /// A question and its answer shown to the model before a plain conversation (not one about
    /// videos, which has its own shape): a small model answers in the shape it is shown. Both
    /// empty: none.
    pub example_question: String,
    pub example_answer: String,
}

/// Replicas behind one load balancer sharing their state (`crate::cluster`). Read at start only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://[:password@]host:port[/db]`: rate limits, the stream cap, request-id repeats and
    /// Memories.ai sessions shared by every replica. Empty: each replica keeps its own.
    pub redis_url: Secret,
    /// Put in front of every key chatapi writes, so two deployments can share one Redis.
    pub redis_prefix: String,
    /// The longest any request waits on one Redis call; past it, Redis counts as down.
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
    /// While Redis is down: `false` serves with each replica's own limits, `true` refuses (503).
    pub fail_closed: bool,
    /// `postgres://user:password@host:port/db`: the video library (videos, jobs, timelines,
    /// vectors, sessions) in Postgres, shared by every replica that names it, with `storage.dir`
    /// on a volume they all mount. Empty: SQLite in `storage.dir`, one machine.
    pub database_url: Secret,
    /// How long a stream's place under the shared cap outlives a replica that died holding it.
    #[serde(with = "humantime_serde")]
    pub stream_lease: Duration,
}

/// The MCP endpoint (`/mcp`) agents reach the video library through. Read at start only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    pub enabled: bool,
    /// Sessions open at once (each a task and its channels); a new one past it is refused.
    pub max_sessions: usize,
    /// A session with no request for this long is closed.
    #[serde(with = "humantime_serde")]
    pub session_idle: Duration,
    /// `Host` values the endpoint answers (a name, or `name:port`), against DNS rebinding.
    /// Empty: any host when keys are configured, loopback names only when none are.
    pub allowed_hosts: Vec<String>,
    /// Browser `Origin`s allowed to call (`https://app.example.com:443`, `http://localhost:*`).
    /// Empty: a request that carries an `Origin` is refused; MCP clients that are not browsers
    /// send none.
    pub allowed_origins: Vec<String>,
}

/// Where the video library keeps its database and files. Read at start only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub dir: PathBuf,
}

/// Chat about videos, in the video dialects: who answers, and how much timeline one chat takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoChatConfig {
    /// The persona each dialect answers with.
    pub mavi: String,
    pub memories: String,
    pub mavera: String,
    pub reka: String,
    /// The persona that answers the MCP tool `ask_about_videos`.
    pub mcp: String,
    /// The persona that makes summaries, chapters, highlights, gists and analyses, unless the
    /// request names another.
    pub digests: String,
    /// Most tokens of timeline one chat carries; a persona's `context_tokens` can lower it.
    pub timeline_tokens: u32,
    /// Room kept for the answer when the persona sets no `max_tokens`.
    pub answer_tokens: u32,
    /// How long an OpenAI-route chat waits for a video it added from a link to be processed
    /// before answering that it is not ready yet.
    #[serde(with = "humantime_serde")]
    pub link_wait: Duration,
}

/// The video library (`/v1/videos`). Read at start only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideosConfig {
    pub enabled: bool,
    pub max_bytes: u64,
    #[serde(with = "humantime_serde")]
    pub max_duration: Duration,
    pub workers: usize,
    /// Processing at the lowest CPU priority (`SCHED_IDLE` and
    /// `videos::programs::PROCESSING_NICE`; speech-to-text on half the cores).
    pub low_priority: bool,
    /// Let URL ingest and callbacks reach loopback, private, link-local and metadata addresses.
    pub allow_private_urls: bool,
    #[serde(with = "humantime_serde")]
    pub url_timeout: Duration,
    pub url_max_redirects: usize,
    /// Longest run of any one external program (ffprobe, ffmpeg, tesseract, speech-to-text).
    #[serde(with = "humantime_serde")]
    pub step_timeout: Duration,
    /// How long a worker's claim on a job lasts without being renewed; a job whose worker died
    /// is taken up again after this.
    #[serde(with = "humantime_serde")]
    pub job_lease: Duration,
    pub scene_threshold: f64,
    pub keyframes_min_per_minute: f64,
    pub keyframes_max_per_minute: f64,
    pub ocr: bool,
    pub ocr_language: String,
    pub speech_language: String,
    /// The speech-to-text program and its model; empty: no speech-to-text.
    pub speech_binary: PathBuf,
    pub speech_model: PathBuf,
    /// The sentence-embedding model's folder (search by meaning); empty: keyword search only.
    pub embedding_model: PathBuf,
    /// Upstreams (by name, remote, with a `model`) that caption keyframes, in failover order.
    pub vision_upstreams: Vec<String>,
    /// The most keyframes one video gets, whatever its length or timestamps claim.
    pub max_keyframes: usize,
    /// An upload slower than this (bytes a second, on average, after `limits.body_timeout`) is
    /// cut off: one byte every few seconds would otherwise hold a connection for ever.
    pub min_upload_rate: u64,
    /// Uploads being received at once, across all callers; over it: 503 with Retry-After.
    pub max_concurrent_uploads: usize,
    /// Under this much free disk below `storage.dir`, uploads and links are refused with 507.
    pub min_free_disk: u64,
    /// Per tenant (every key of one tenant together): videos kept, bytes of video kept, and
    /// videos waiting or being processed. 0: no limit.
    pub tenant_max_videos: u64,
    pub tenant_max_bytes: u64,
    pub tenant_max_queued: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamKind {
    /// An OpenAI-compatible HTTP API.
    #[default]
    Remote,
    /// The embedded model, with the `[local]` settings.
    Local,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    #[serde(with = "humantime_serde")]
    pub keepalive: Duration,
    /// Also accept HTTP/2 without TLS (h2c) from callers; HTTP/1.1 only when off.
    pub http2: bool,
    /// How often the config file is checked for changes; 0 turns watching off.
    #[serde(with = "humantime_serde")]
    pub watch_config: Duration,
    /// Where `/metrics` and `/readyz` are served instead of `listen` (`host:port`); empty: on
    /// `listen`, with everything else. Read at start only.
    pub admin_listen: String,
    /// Connections open at once; past it new ones wait in the kernel's backlog. Read at start.
    pub max_connections: usize,
    /// Threads that serve requests (tokio's workers); 0: half the cores, at least one. Read at
    /// start.
    pub threads: usize,
}

/// The most threads (serving, or the embedded model's) a config may ask for: beyond any
/// machine's cores, a typo.
pub const MAX_THREADS: usize = 1_024;

impl LocalConfig {
    /// Threads that decode one token at a time: one fewer than the cores by default. Measured on
    /// a 2-core machine, one thread beat two when another process shared it: a second thread's
    /// share of a single token is smaller than the wait to hand it over.
    pub fn threads(&self) -> usize {
        match self.threads {
            0 => cores().saturating_sub(1).max(1),
            n => n,
        }
    }

    /// Threads for a batch (a prompt, or several callers' next tokens decoded together): every
    /// core by default. There a second thread pays: four callers at once went from 1.3x one
    /// caller's tokens/s to 2.3x, and a short prompt's first token from 134-201 ms to 82-97 ms
    /// (`chatapi-bench local`, 2 cores).
    pub fn batch_threads(&self) -> usize {
        match self.batch_threads {
            0 => cores(),
            n => n,
        }
    }
}

/// The cores this process may run on: what every "0 means" thread default is counted from.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl ServerConfig {
    /// How many threads serve requests. Half the cores by default: the rest is the embedded
    /// model's, video processing's and the kernel's network work, and every idle worker is one
    /// more that the scheduler wakes when a stream's two tasks hand work to each other (with
    /// one thread on two cores the added first-token time halved, `chatapi-bench floor`).
    pub fn threads(&self) -> usize {
        match self.threads {
            0 => cores().div_ceil(2),
            n => n,
        }
    }

    /// The admin address, when one is set (checked at load).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listen.parse().ok()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub keys: Vec<ApiKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireConfig {
    pub compact: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_body_bytes: usize,
    pub max_messages: usize,
    pub max_concurrent_streams: usize,
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    pub per_key_per_minute: u32,
    pub per_key_burst: u32,
    pub per_ip_per_minute: u32,
    pub per_ip_burst: u32,
    /// Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` names the real caller.
    pub trusted_proxies: Vec<String>,
    /// How long an upstream failure is answered again, without going upstream, to a request
    /// with the same `x-request-id` (a client's retry); 0 turns it off.
    #[serde(with = "humantime_serde")]
    pub repeat_window: Duration,
}

impl LimitsConfig {
    /// `trusted_proxies`, parsed; a bare address is a block of one.
    pub fn trusted_proxy_nets(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.trusted_proxies
            .iter()
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError::invalid(
                            "limits.trusted_proxies",
                            format!("`{p}` is neither an IP address nor a CIDR block"),
                        )
                    })
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    #[serde(with = "humantime_serde")]
    pub connect: Duration,
    #[serde(with = "humantime_serde")]
    pub first_token: Duration,
    #[serde(with = "humantime_serde")]
    pub idle: Duration,
    #[serde(with = "humantime_serde")]
    pub total: Duration,
}

/// A persona's own timeouts; unset ones fall back to `[timeouts]`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutOverrides {
    #[serde(default, with = "humantime_serde")]
    pub connect: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub first_token: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub idle: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub total: Option<Duration>,
}

impl Timeouts {
    pub fn with(self, overrides: &TimeoutOverrides) -> Self {
        Self {
            connect: overrides.connect.unwrap_or(self.connect),
            first_token: overrides.first_token.unwrap_or(self.first_token),
            idle: overrides.idle.unwrap_or(self.idle),
            total: overrides.total.unwrap_or(self.total),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    pub attempts: u32,
    #[serde(with = "humantime_serde")]
    pub backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    pub failures: u32,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub name: String,
    #[serde(default)]
    pub kind: UpstreamKind,
    /// Required for `remote`.
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub api_key: Secret,
    #[serde(default)]
    pub model: Option<String>,
    /// Extra request headers. Their values are secrets (Azure's `api-key` is one), redacted by
    /// `check-config`, unless named in `plain_headers`.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Headers whose values `check-config` may show (`OpenAI-Organization`, say).
    #[serde(default)]
    pub plain_headers: Vec<String>,
    /// Speak HTTP/2 without TLS (h2c) from the first byte: many streams share one connection.
    #[serde(default)]
    pub http2_prior_knowledge: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemMessages {
    /// Pass the caller's system messages on, after the persona's own prompt.
    #[default]
    Keep,
    /// Only the persona's prompt speaks as `system`.
    Drop,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persona {
    #[serde(default)]
    pub system_prompt: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub n: Option<u8>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub presence_penalty: Option<f32>,
    #[serde(default)]
    pub frequency_penalty: Option<f32>,
    #[serde(default)]
    pub stop: Option<Vec<String>>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub system_messages: SystemMessages,
    #[serde(default)]
    pub on_error_text: Option<String>,
    /// ChatAPI: a failure before the first token is answered 200 with `on_error_text` spoken
    /// and `[DONE]`, so the avatar apologises in its own voice instead of FaceTo-AI's error.
    #[serde(default)]
    pub speak_errors: bool,
    #[serde(default)]
    pub context_tokens: u32,
    #[serde(default)]
    pub timeouts: TimeoutOverrides,
    /// Which OpenAI request fields a caller may set, where its dialect carries them (the OpenAI
    /// routes); unset: all of them. The persona's own values win wherever it sets one.
    #[serde(default)]
    pub caller_may_set: Option<Vec<CallerParam>>,
}

/// An OpenAI request field a persona may leave to its callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerParam {
    Temperature,
    TopP,
    N,
    /// `max_tokens` and `max_completion_tokens`.
    MaxTokens,
    PresencePenalty,
    FrequencyPenalty,
    Stop,
    Seed,
    ResponseFormat,
    /// `tools`, `tool_choice` and `parallel_tool_calls`.
    Tools,
    User,
    /// `logprobs` and `top_logprobs`.
    Logprobs,
}

impl Persona {
    pub fn caller_may_set(&self, param: CallerParam) -> bool {
        self.caller_may_set
            .as_ref()
            .is_none_or(|allowed| allowed.contains(&param))
    }
}

impl Config {
    /// Every connect timeout a request may use: the global one and each persona's own, sorted,
    /// without repeats.
    pub fn connect_timeouts(&self) -> Vec<Duration> {
        let mut all: Vec<Duration> = std::iter::once(self.timeouts.connect)
            .chain(self.personas.values().filter_map(|p| p.timeouts.connect))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The effective configuration as TOML, secrets redacted (`chatapi check-config`): keys,
    /// and upstream header values not listed in that upstream's `plain_headers`.
    pub fn redacted_toml(&self) -> Result<String, toml::ser::Error> {
        let mut value = toml::Value::try_from(self)?;
        let upstreams = value
            .get_mut("upstreams")
            .and_then(toml::Value::as_array_mut);
        for (shown, config) in upstreams.into_iter().flatten().zip(&self.upstreams) {
            if let (Some(url), Some(table)) = (&config.base_url, shown.as_table_mut()) {
                table.insert(
                    "base_url".into(),
                    toml::Value::String(secret::redact_url(url)),
                );
            }
            let Some(headers) = shown.get_mut("headers").and_then(toml::Value::as_table_mut) else {
                continue;
            };
            for (name, value) in headers.iter_mut() {
                if config
                    .plain_headers
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(name))
                {
                    if let Some(real) = config.headers.get(name) {
                        *value = toml::Value::String(real.expose().to_string());
                    }
                }
            }
        }
        toml::to_string_pretty(&value)
    }
}

#[cfg(test)]
mod testing {
    //! What the config's tests share: a config file that exists while the test runs.
    use super::*;
    use std::io::Write;

    pub(super) fn file(text: &str) -> tempfile_lite::TempFile {
        tempfile_lite::TempFile::with(text)
    }

    /// Minimal temp file helper so the unit tests need no extra crate.
    mod tempfile_lite {
        use std::path::PathBuf;
        pub struct TempFile(pub PathBuf);
        impl TempFile {
            pub fn with(text: &str) -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let path = std::env::temp_dir().join(format!(
                    "chatapi-config-{}-{}.toml",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                let mut f = std::fs::File::create(&path).unwrap();
                super::Write::write_all(&mut f, text.as_bytes()).unwrap();
                Self(path)
            }
        }
        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    pub(super) fn load(text: &str) -> Result<Config, ConfigError> {
        let f = file(text);
        Config::load_from(Some(&f.0), &[], &OpenAiEnv::default())
    }

    /// Why the config `text` is refused (the test fails if it is taken).
    pub(super) fn refusal(text: &str) -> String {
        match load(text) {
            Ok(_) => panic!("taken, though it should be refused:\n{text}"),
            Err(e) => e.to_string(),
        }
    }
}
