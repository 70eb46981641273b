//! What serde cannot check: ranges, references between sections, well-formed URLs and
//! headers. A config that fails here is rejected whole, at start-up or on reload.

use super::{Config, ConfigError, Persona, UpstreamKind, DEFAULT_PERSONA};

/// The longest example question or answer for the embedded model, in bytes.
const MAX_EXAMPLE_BYTES: usize = 1_000;

impl Config {
    /// Checks what serde cannot: ranges, references between sections, well-formed URLs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.personas.contains_key(DEFAULT_PERSONA) {
            return Err(ConfigError::invalid(
                "personas",
                "a persona named `default` is required (it serves POST /chat)",
            ));
        }
        for (name, p) in &self.personas {
            validate_persona(name, p)?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, u) in self.upstreams.iter().enumerate() {
            let key = |field: &str| format!("upstreams[{i}].{field}");
            if u.name.is_empty() {
                return Err(ConfigError::invalid(key("name"), "must not be empty"));
            }
            if !seen.insert(u.name.as_str()) {
                return Err(ConfigError::invalid(
                    key("name"),
                    format!("`{}` is used by two upstreams", u.name),
                ));
            }
            if u.kind == UpstreamKind::Local {
                if !cfg!(feature = "local") {
                    return Err(ConfigError::invalid(
                        key("kind"),
                        "this chatapi was built without the `local` feature",
                    ));
                }
                if u.base_url.is_some() || !u.api_key.is_empty() || !u.headers.is_empty() {
                    return Err(ConfigError::invalid(
                        key("kind"),
                        "a local upstream takes no base_url, api_key or headers (see [local])",
                    ));
                }
                continue;
            }
            let Some(base_url) = &u.base_url else {
                return Err(ConfigError::invalid(key("base_url"), "is required"));
            };
            let url = reqwest::Url::parse(base_url)
                .map_err(|e| ConfigError::invalid(key("base_url"), e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(ConfigError::invalid(
                    key("base_url"),
                    format!(
                        "`{}`: scheme must be http or https",
                        super::secret::redact_url(base_url)
                    ),
                ));
            }
            for (h, v) in &u.headers {
                reqwest::header::HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                    ConfigError::invalid(key("headers"), format!("`{h}` is not a header name"))
                })?;
                reqwest::header::HeaderValue::from_str(v.expose()).map_err(|_| {
                    ConfigError::invalid(key("headers"), format!("value of `{h}` is not valid"))
                })?;
            }
            if u.model.is_none() && self.personas.values().any(|p| p.model.is_none()) {
                return Err(ConfigError::invalid(
                    key("model"),
                    "required while a persona names no model of its own",
                ));
            }
        }
        let local = &self.local;
        for (field, value) in [
            ("local.context_tokens", local.context_tokens as usize),
            ("local.parallel", local.parallel as usize),
            ("local.queue", local.queue),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(field, "must be at least 1"));
            }
        }
        if local.context_tokens < 64 {
            return Err(ConfigError::invalid(
                "local.context_tokens",
                format!(
                    "{} leaves no room for a prompt and an answer; use 256 or more",
                    local.context_tokens
                ),
            ));
        }
        for (field, value, range) in [
            ("local.temperature", local.temperature, 0.0..=2.0),
            ("local.top_p", local.top_p, 0.0..=1.0),
            ("local.repeat_penalty", local.repeat_penalty, 1.0..=2.0),
        ] {
            if !range.contains(&value) {
                return Err(ConfigError::invalid(
                    field,
                    format!("must be between {} and {}", range.start(), range.end()),
                ));
            }
        }
        let template = &local.chat_template;
        if template.len() > 64
            || !template
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err(ConfigError::invalid(
                "local.chat_template",
                "must be the name of one of llama.cpp's templates (\"gemma\", \"chatml\"...), or empty for the model's own",
            ));
        }
        if local.example_question.is_empty() != local.example_answer.is_empty() {
            return Err(ConfigError::invalid(
                "local.example_question",
                "and local.example_answer go together: set both, or leave both empty",
            ));
        }
        for (field, text) in [
            ("local.example_question", &local.example_question),
            ("local.example_answer", &local.example_answer),
        ] {
            if text.len() > MAX_EXAMPLE_BYTES {
                return Err(ConfigError::invalid(
                    field,
                    format!("must be at most {MAX_EXAMPLE_BYTES} bytes: it is in every prompt"),
                ));
            }
        }
        let l = &self.limits;
        l.trusted_proxy_nets()?;
        if l.max_body_bytes == 0 || l.max_messages == 0 || l.max_concurrent_streams == 0 {
            return Err(ConfigError::invalid(
                "limits",
                "max_body_bytes, max_messages and max_concurrent_streams must be above 0",
            ));
        }
        for (field, d) in [
            ("timeouts.connect", self.timeouts.connect),
            ("timeouts.first_token", self.timeouts.first_token),
            ("timeouts.idle", self.timeouts.idle),
            ("timeouts.total", self.timeouts.total),
            ("server.keepalive", self.server.keepalive),
            ("videos.max_duration", self.videos.max_duration),
            ("videos.url_timeout", self.videos.url_timeout),
            ("videos.step_timeout", self.videos.step_timeout),
            ("videos.job_lease", self.videos.job_lease),
        ] {
            if d.is_zero() {
                return Err(ConfigError::invalid(field, "must be longer than 0s"));
            }
        }
        if !self.server.admin_listen.is_empty() && self.server.admin_addr().is_none() {
            return Err(ConfigError::invalid(
                "server.admin_listen",
                format!(
                    "`{}` is not host:port (e.g. 127.0.0.1:9090)",
                    self.server.admin_listen
                ),
            ));
        }
        if self.server.max_connections == 0 {
            return Err(ConfigError::invalid(
                "server.max_connections",
                "must be at least 1",
            ));
        }
        for (field, value, auto) in [
            ("server.threads", self.server.threads, "half the cores"),
            (
                "local.threads",
                self.local.threads,
                "one fewer than the cores",
            ),
            (
                "local.batch_threads",
                self.local.batch_threads,
                "every core",
            ),
        ] {
            if value > super::MAX_THREADS {
                return Err(ConfigError::invalid(
                    field,
                    format!("must be at most {} (0: {auto})", super::MAX_THREADS),
                ));
            }
        }
        self.validate_videos()?;
        self.validate_cluster()?;
        self.validate_video_chat()?;
        self.validate_mcp()
    }

    fn validate_mcp(&self) -> Result<(), ConfigError> {
        let m = &self.mcp;
        if !(1..=100_000).contains(&m.max_sessions) {
            return Err(ConfigError::invalid(
                "mcp.max_sessions",
                "must be between 1 and 100000",
            ));
        }
        let idle = std::time::Duration::from_secs(10)..=std::time::Duration::from_secs(86_400);
        if !idle.contains(&m.session_idle) {
            return Err(ConfigError::invalid(
                "mcp.session_idle",
                "must be between 10s and 24h",
            ));
        }
        if let Some(host) = m
            .allowed_hosts
            .iter()
            .find(|h| h.is_empty() || h.contains(['/', ' ']))
        {
            return Err(ConfigError::invalid(
                "mcp.allowed_hosts",
                format!("`{host}` is not a host name or host:port"),
            ));
        }
        if let Some(origin) = m.allowed_origins.iter().find(|o| {
            o.as_str() != "null" && !o.starts_with("http://") && !o.starts_with("https://")
        }) {
            return Err(ConfigError::invalid(
                "mcp.allowed_origins",
                format!("`{origin}` must start with http:// or https:// (or be `null`)"),
            ));
        }
        Ok(())
    }

    fn validate_video_chat(&self) -> Result<(), ConfigError> {
        let c = &self.video_chat;
        for (dialect, persona) in [
            ("mavi", &c.mavi),
            ("memories", &c.memories),
            ("mavera", &c.mavera),
            ("reka", &c.reka),
            ("mcp", &c.mcp),
            ("digests", &c.digests),
        ] {
            if !self.personas.contains_key(persona) {
                return Err(ConfigError::invalid(
                    format!("video_chat.{dialect}"),
                    format!("`{persona}` is not a persona: add [personas.{persona}] or name one that exists"),
                ));
            }
        }
        if c.timeline_tokens < 256 {
            return Err(ConfigError::invalid(
                "video_chat.timeline_tokens",
                "must be at least 256",
            ));
        }
        if c.link_wait > std::time::Duration::from_secs(30 * 60) {
            return Err(ConfigError::invalid(
                "video_chat.link_wait",
                "must be at most 30m: a chat waits that long for a linked video at most",
            ));
        }
        Ok(())
    }

    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let c = &self.cluster;
        if !c.redis_url.is_empty() {
            if let Err(error) = redis::Client::open(c.redis_url.expose()) {
                return Err(ConfigError::invalid(
                    "cluster.redis_url",
                    format!("not a Redis URL chatapi can use (redis://host:port/db): {error}"),
                ));
            }
        }
        let db = c.database_url.expose();
        let postgres = db.starts_with("postgres://") || db.starts_with("postgresql://");
        if !db.is_empty() && !postgres {
            return Err(ConfigError::invalid(
                "cluster.database_url",
                "must be a postgres:// URL (leave it empty for SQLite in storage.dir)",
            ));
        }
        if c.redis_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "cluster.redis_timeout",
                "must be above 0",
            ));
        }
        if c.stream_lease < std::time::Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "cluster.stream_lease",
                "must be at least 1s",
            ));
        }
        Ok(())
    }

    fn validate_videos(&self) -> Result<(), ConfigError> {
        let v = &self.videos;
        if v.workers == 0 {
            return Err(ConfigError::invalid("videos.workers", "must be at least 1"));
        }
        if v.max_bytes == 0 {
            return Err(ConfigError::invalid(
                "videos.max_bytes",
                "must be at least 1",
            ));
        }
        if !(v.scene_threshold > 0.0 && v.scene_threshold < 1.0) {
            return Err(ConfigError::invalid(
                "videos.scene_threshold",
                "must be between 0 and 1 (exclusive)",
            ));
        }
        let per_minute = [
            (
                "videos.keyframes_min_per_minute",
                v.keyframes_min_per_minute,
            ),
            (
                "videos.keyframes_max_per_minute",
                v.keyframes_max_per_minute,
            ),
        ];
        for (field, value) in per_minute {
            if !(value > 0.0 && value <= 600.0) {
                return Err(ConfigError::invalid(
                    field,
                    "must be above 0 and at most 600",
                ));
            }
        }
        if v.max_keyframes == 0 {
            return Err(ConfigError::invalid(
                "videos.max_keyframes",
                "must be at least 1",
            ));
        }
        if v.max_concurrent_uploads == 0 {
            return Err(ConfigError::invalid(
                "videos.max_concurrent_uploads",
                "must be at least 1",
            ));
        }
        if v.keyframes_min_per_minute > v.keyframes_max_per_minute {
            return Err(ConfigError::invalid(
                "videos.keyframes_min_per_minute",
                "must not be above videos.keyframes_max_per_minute",
            ));
        }
        for name in &v.vision_upstreams {
            let Some(upstream) = self.upstreams.iter().find(|u| &u.name == name) else {
                return Err(ConfigError::invalid(
                    "videos.vision_upstreams",
                    format!("`{name}` is not the name of an [[upstreams]] entry"),
                ));
            };
            if upstream.kind != UpstreamKind::Remote || upstream.model.is_none() {
                return Err(ConfigError::invalid(
                    "videos.vision_upstreams",
                    format!("`{name}` must be a remote upstream with a `model` that reads images"),
                ));
            }
        }
        if v.speech_binary.as_os_str().is_empty() != v.speech_model.as_os_str().is_empty() {
            return Err(ConfigError::invalid(
                "videos.speech_model",
                "videos.speech_binary and videos.speech_model are set together or not at all",
            ));
        }
        Ok(())
    }
}

impl Config {
    /// What is valid but probably a mistake: logged at start-up and after a reload, and listed
    /// in `/readyz`, so an operator sees it without reading the code.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.auth.keys.is_empty() && !self.server.listen.ip().is_loopback() {
            warnings.push(format!(
                "no API keys (auth.keys) while listening on {}: anyone who can reach it can spend your upstreams",
                self.server.listen
            ));
        }
        if self.server.admin_listen.is_empty() && !self.server.listen.ip().is_loopback() {
            warnings.push(format!(
                "/metrics and /readyz are served on {} to anyone who reaches it; set server.admin_listen to an inner address",
                self.server.listen
            ));
        }
        if self.wire.compact {
            warnings.push(
                "wire.compact is on: the real FaceTo-AI client sets aside every `data:` line without a space and says nothing"
                    .to_string(),
            );
        }
        warnings
    }
}

fn validate_persona(name: &str, p: &Persona) -> Result<(), ConfigError> {
    let key = |field: &str| format!("personas.{name}.{field}");
    let sampling = crate::sampling::Sampling {
        temperature: p.temperature,
        top_p: p.top_p,
        n: p.n,
        max_tokens: p.max_tokens,
        presence_penalty: p.presence_penalty,
        frequency_penalty: p.frequency_penalty,
        ..Default::default()
    };
    sampling
        .check()
        .map_err(|(field, problem)| ConfigError::invalid(key(field), problem))?;
    if let Some(stop) = &p.stop {
        if stop.len() > 4 || stop.iter().any(String::is_empty) {
            return Err(ConfigError::invalid(
                key("stop"),
                "at most 4 sequences, none empty",
            ));
        }
    }
    let t = &p.timeouts;
    for (field, d) in [
        ("timeouts.connect", t.connect),
        ("timeouts.first_token", t.first_token),
        ("timeouts.idle", t.idle),
        ("timeouts.total", t.total),
    ] {
        if d.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::invalid(key(field), "must be longer than 0s"));
        }
    }
    if p.context_tokens > 0 && p.max_tokens.unwrap_or(0) >= p.context_tokens {
        return Err(ConfigError::invalid(
            key("context_tokens"),
            "must be larger than max_tokens",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{load, refusal};
    use super::super::*;
    use super::MAX_EXAMPLE_BYTES;
    use std::time::Duration;

    #[test]
    fn persona_typo_is_rejected() {
        let err = refusal("[personas.default]\ntemprature = 0.5\n");
        assert!(err.contains("temprature"), "{err}");
    }

    #[test]
    fn a_chat_template_is_a_name() {
        let err = refusal("[local]\nchat_template = \"{% for m in messages %}\"\n");
        assert!(err.contains("local.chat_template"), "{err}");
        assert!(load("[local]\nchat_template = \"gemma\"\n").is_ok());
    }

    #[test]
    fn the_example_exchange_is_whole_and_short() {
        let err = refusal("[local]\nexample_answer = \"\"\n");
        assert!(err.contains("local.example_question"), "{err}");
        let long = "x".repeat(MAX_EXAMPLE_BYTES + 1);
        let err = refusal(&format!("[local]\nexample_answer = \"{long}\"\n"));
        assert!(err.contains("local.example_answer"), "{err}");
        assert!(load("[local]\nexample_question = \"\"\nexample_answer = \"\"\n").is_ok());
    }

    #[test]
    fn serving_threads_are_bounded_and_default_to_half_the_cores() {
        let err = refusal("[server]\nthreads = 100000\n");
        assert!(err.contains("server.threads"), "{err}");
        let auto = load("").unwrap().server.threads();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(auto, cores.div_ceil(2));
        assert_eq!(load("[server]\nthreads = 3\n").unwrap().server.threads(), 3);
    }

    #[test]
    fn the_models_threads_are_bounded_and_batches_get_every_core() {
        for field in ["threads", "batch_threads"] {
            let err = refusal(&format!("[local]\n{field} = 100000\n"));
            assert!(err.contains(&format!("local.{field}")), "{err}");
            assert!(err.contains("at most 1024"), "{err}");
        }
        let local = load("").unwrap().local;
        let cores = cores();
        assert_eq!(local.threads(), cores.saturating_sub(1).max(1));
        assert_eq!(local.batch_threads(), cores);
        let set = load("[local]\nthreads = 3\nbatch_threads = 5\n")
            .unwrap()
            .local;
        assert_eq!((set.threads(), set.batch_threads()), (3, 5));
    }

    #[test]
    fn a_linked_videos_wait_is_bounded() {
        let err = refusal("[video_chat]\nlink_wait = \"2h\"\n");
        assert!(err.contains("video_chat.link_wait"), "{err}");
        let ok = load("[video_chat]\nlink_wait = \"30s\"\n").unwrap();
        assert_eq!(ok.video_chat.link_wait, Duration::from_secs(30));
    }

    #[test]
    fn out_of_range_sampling_is_rejected() {
        let err = refusal("[personas.default]\ntemperature = 3.5\n");
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
        let err = refusal("[limits]\ntrusted_proxies = [\"10.0.0.0/99\"]\n");
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
        let err = refusal("[personas.default]\ntimeouts = { total = \"0s\" }\n");
        assert!(err.contains("personas.default.timeouts.total"), "{err}");
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
            let err = refusal(text);
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
            let err = refusal(text);
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
            let err = refusal(text);
            assert!(err.contains(key), "{text}: {err}");
        }
        let err = refusal(&format!("{local}[videos]\nvision_upstreams = [\"here\"]\n"));
        assert!(err.contains("must be a remote upstream"), "{err}");
    }

    #[test]
    fn upstream_without_model_needs_persona_model() {
        let err = refusal("[[upstreams]]\nname = \"a\"\nbase_url = \"http://x/v1\"\n");
        assert!(err.contains("upstreams[0].model"), "{err}");
    }
}
