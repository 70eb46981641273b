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
    pub context_tokens: u32,
    pub parallel: u32,
    pub queue: usize,
    /// The model's sampling where the persona leaves it unset: its model card's.
    pub temperature: f32,
    pub top_p: f32,
    pub repeat_penalty: f32,
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
    /// Most tokens of timeline one chat carries; a persona's `context_tokens` can lower it.
    pub timeline_tokens: u32,
    /// Room kept for the answer when the persona sets no `max_tokens`.
    pub answer_tokens: u32,
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
}

impl ServerConfig {
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
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    fn file(text: &str) -> tempfile_lite::TempFile {
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

    fn load(text: &str) -> Result<Config, ConfigError> {
        let f = file(text);
        Config::load_from(Some(&f.0), &[], &OpenAiEnv::default())
    }

    #[test]
    fn defaults_load_and_validate() {
        let c = Config::load_from(None, &[], &OpenAiEnv::default()).unwrap();
        assert_eq!(c.server.listen.port(), 8080);
        assert!(!c.wire.compact);
        assert_eq!(c.limits.max_body_bytes, 1 << 20);
        assert_eq!(c.timeouts.first_token, Duration::from_secs(25));
        // No key, no upstream: the embedded model, when it is built in.
        assert_eq!(c.upstreams.len(), usize::from(cfg!(feature = "local")));
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let f = file("[server]\nlistn = \"0.0.0.0:1\"\n");
        let err = Config::load_from(Some(&f.0), &[], &OpenAiEnv::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(&f.0.display().to_string()), "{err}");
        assert!(err.contains("listn"), "{err}");
    }

    #[test]
    fn malformed_file_is_an_error_naming_it() {
        let err = load("[server\nlisten=").unwrap_err().to_string();
        assert!(err.starts_with("config file "), "{err}");
    }

    #[test]
    fn persona_typo_is_rejected() {
        let err = load("[personas.default]\ntemprature = 0.5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("temprature"), "{err}");
    }

    #[test]
    fn out_of_range_sampling_is_rejected() {
        let err = load("[personas.default]\ntemperature = 3.5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("personas.default.temperature"), "{err}");
    }

    #[test]
    fn trusted_proxies_parse_and_a_bad_one_is_named() {
        let env = vec![(
            "CHATAPI__LIMITS__TRUSTED_PROXIES".to_string(),
            "127.0.0.1,10.0.0.0/8".to_string(),
        )];
        let c = Config::load_from(None, &env, &OpenAiEnv::default()).unwrap();
        let nets = c.limits.trusted_proxy_nets().unwrap();
        assert_eq!(nets.len(), 2);
        assert!(nets[1].contains(&"10.9.8.7".parse::<std::net::IpAddr>().unwrap()));
        let err = load("[limits]\ntrusted_proxies = [\"10.0.0.0/99\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("limits.trusted_proxies") && err.contains("10.0.0.0/99"),
            "{err}"
        );
    }

    #[test]
    fn persona_timeouts_override_and_zero_is_rejected() {
        let c = load(
            "[personas.quick]\ntimeouts = { connect = \"100ms\", idle = \"2s\" }\n[personas.same]\ntimeouts = { connect = \"5s\" }\n",
        )
        .unwrap();
        let quick = c.timeouts.with(&c.personas["quick"].timeouts);
        assert_eq!(quick.connect, Duration::from_millis(100));
        assert_eq!(quick.idle, Duration::from_secs(2));
        assert_eq!(quick.first_token, c.timeouts.first_token);
        assert_eq!(
            c.connect_timeouts(),
            [Duration::from_millis(100), Duration::from_secs(5)],
            "one HTTP client per distinct connect timeout"
        );
        let err = load("[personas.default]\ntimeouts = { total = \"0s\" }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("personas.default.timeouts.total"), "{err}");
    }

    #[test]
    fn environment_overrides_file_and_unknown_env_key_fails() {
        let env = vec![
            ("CHATAPI__WIRE__COMPACT".to_string(), "true".to_string()),
            ("CHATAPI__AUTH__KEYS".to_string(), "a,b".to_string()),
        ];
        let c = Config::load_from(None, &env, &OpenAiEnv::default()).unwrap();
        assert!(c.wire.compact);
        assert_eq!(c.auth.keys, vec![ApiKey::from("a"), ApiKey::from("b")]);

        let bad = vec![("CHATAPI__WIRE__COMPAKT".to_string(), "true".to_string())];
        let err = Config::load_from(None, &bad, &OpenAiEnv::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("environment") && err.contains("compakt"),
            "{err}"
        );
    }

    #[test]
    fn openai_env_fills_an_upstream() {
        let openai = OpenAiEnv {
            api_key: Some("sk-test".into()),
            base_url: Some("http://127.0.0.1:9/v1".into()),
        };
        let c = Config::load_from(None, &[], &openai).unwrap();
        assert_eq!(c.upstreams.len(), 1);
        assert_eq!(c.upstreams[0].api_key.expose(), "sk-test");
        assert_eq!(
            c.upstreams[0].base_url.as_deref(),
            Some("http://127.0.0.1:9/v1")
        );
    }

    #[test]
    fn redacted_output_hides_secrets() {
        let c = load(
            "[auth]\nkeys = [\"topsecret\"]\n[[upstreams]]\nname = \"a\"\nbase_url = \"http://x/v1\"\napi_key = \"sk-hidden\"\nmodel = \"m\"\n",
        )
        .unwrap();
        let out = c.redacted_toml().unwrap();
        assert!(
            !out.contains("topsecret") && !out.contains("sk-hidden"),
            "{out}"
        );
        assert!(out.contains("<redacted>"));
        assert!(!format!("{c:?}").contains("sk-hidden"));
    }

    #[test]
    fn header_values_are_secrets_unless_marked_plain() {
        let c = load(
            "[[upstreams]]\nname = \"azure\"\nbase_url = \"https://x.openai.azure.com/openai/deployments/d?api-version=2024-10-21\"\nmodel = \"m\"\nheaders = { \"api-key\" = \"azure-secret\", \"OpenAI-Organization\" = \"org-visible\" }\nplain_headers = [\"openai-organization\"]\n",
        )
        .unwrap();
        let out = c.redacted_toml().unwrap();
        assert!(!out.contains("azure-secret"), "{out}");
        assert!(out.contains("org-visible"), "{out}");
        assert!(!format!("{c:?}").contains("azure-secret"));
    }

    #[test]
    fn the_openai_key_goes_only_where_openai_is() {
        let openai = OpenAiEnv {
            api_key: Some("sk-owner".into()),
            base_url: None,
        };
        let f = file("[[upstreams]]\nname = \"openai\"\nbase_url = \"https://api.openai.com/v1\"\nmodel = \"m\"\n[[upstreams]]\nname = \"vllm\"\nbase_url = \"http://10.0.0.5:8000/v1\"\nmodel = \"m\"\n[[upstreams]]\nname = \"local\"\nkind = \"local\"\n");
        let c = Config::load_from(Some(&f.0), &[], &openai).unwrap();
        assert_eq!(c.upstreams[0].api_key.expose(), "sk-owner");
        assert!(
            c.upstreams[1].api_key.is_empty(),
            "a third party never gets it"
        );
        assert!(c.upstreams[2].api_key.is_empty(), "nor the embedded model");
        // The README's compose path: config/example.toml with the key set starts.
        let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
        Config::load_from(Some(&example), &[], &openai).unwrap();
    }

    #[test]
    fn an_open_public_server_and_compact_framing_are_warned_about() {
        let c = Config::load_from(None, &[], &OpenAiEnv::default()).unwrap();
        assert!(
            c.warnings().is_empty(),
            "the defaults: loopback, spaced framing"
        );
        let env = vec![
            (
                "CHATAPI__SERVER__LISTEN".to_string(),
                "0.0.0.0:8080".to_string(),
            ),
            ("CHATAPI__WIRE__COMPACT".to_string(), "true".to_string()),
        ];
        let c = Config::load_from(None, &env, &OpenAiEnv::default()).unwrap();
        let w = c.warnings().join("\n");
        assert!(w.contains("auth.keys") && w.contains("wire.compact"), "{w}");
        let keyed = [
            env,
            vec![("CHATAPI__AUTH__KEYS".to_string(), "k".to_string())],
        ]
        .concat();
        let c = Config::load_from(None, &keyed, &OpenAiEnv::default()).unwrap();
        let w = c.warnings().join("\n");
        assert!(!w.contains("auth.keys"), "keys set: {w}");
        assert!(
            w.contains("wire.compact") && w.contains("server.admin_listen"),
            "{w}"
        );
    }

    #[test]
    fn nonsense_local_settings_are_rejected_by_name() {
        for (text, key) in [
            ("[local]\nqueue = 0\n", "local.queue"),
            ("[local]\ncontext_tokens = 0\n", "local.context_tokens"),
            ("[local]\nparallel = 0\n", "local.parallel"),
            ("[local]\ncontext_tokens = 16\n", "local.context_tokens"),
        ] {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn nonsense_cluster_settings_are_rejected_by_name() {
        for (text, key) in [
            (
                "[cluster]\nredis_url = \"localhost:6379\"\n",
                "cluster.redis_url",
            ),
            (
                "[cluster]\nredis_timeout = \"0s\"\n",
                "cluster.redis_timeout",
            ),
            (
                "[cluster]\nstream_lease = \"100ms\"\n",
                "cluster.stream_lease",
            ),
            (
                "[cluster]\ndatabase_url = \"mysql://db/chatapi\"\n",
                "cluster.database_url",
            ),
            ("[cluster]\nredis_urls = \"redis://r\"\n", "redis_urls"),
        ] {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
        let ok = load("[cluster]\nredis_url = \"redis://:pw@cache:6380/2\"\ndatabase_url = \"postgres://u:p@db/chatapi\"\n");
        assert!(ok.is_ok(), "{:?}", ok.err());
    }

    #[test]
    fn nonsense_video_settings_are_rejected_by_name() {
        let local = "[[upstreams]]\nname = \"here\"\nkind = \"local\"\n";
        for (text, key) in [
            ("[videos]\nworkers = 0\n", "videos.workers"),
            ("[videos]\nmax_bytes = 0\n", "videos.max_bytes"),
            ("[videos]\njob_lease = \"0s\"\n", "videos.job_lease"),
            (
                "[videos]\nscene_threshold = 1.5\n",
                "videos.scene_threshold",
            ),
            (
                "[videos]\nkeyframes_min_per_minute = 30.0\n",
                "videos.keyframes_min_per_minute",
            ),
            ("[videos]\nspeech_model = \"\"\n", "videos.speech_model"),
            (
                "[videos]\nvision_upstreams = [\"nope\"]\n",
                "videos.vision_upstreams",
            ),
            ("[videos]\nwrokers = 2\n", "wrokers"),
        ] {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
        let err = load(&format!("{local}[videos]\nvision_upstreams = [\"here\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be a remote upstream"), "{err}");
    }

    #[test]
    fn upstream_without_model_needs_persona_model() {
        let err = load("[[upstreams]]\nname = \"a\"\nbase_url = \"http://x/v1\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("upstreams[0].model"), "{err}");
    }
}
