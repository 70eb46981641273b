//! The layers, in order: built-in defaults, the operator's file, `CHATAPI__*` environment
//! variables, then `OPENAI_API_KEY` / `OPENAI_BASE_URL`. Each layer is deserialized as it is
//! added, so an unknown key or a bad value is reported against the layer that brought it.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Config, ConfigError, Secret, UpstreamConfig, UpstreamKind, DEFAULT_TOML};

/// What the process environment contributes beyond `CHATAPI__*`; a parameter so tests need not
/// touch the real environment.
#[derive(Debug, Clone, Default)]
pub struct OpenAiEnv {
    pub api_key: Option<String>,
    pub base_url: Option<String>,
}

impl OpenAiEnv {
    pub fn from_process() -> Self {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            api_key: get("OPENAI_API_KEY"),
            base_url: get("OPENAI_BASE_URL"),
        }
    }
}

const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// An HTTPS URL on OpenAI's own API host.
fn is_openai(base_url: &str) -> bool {
    reqwest::Url::parse(base_url)
        .is_ok_and(|u| u.scheme() == "https" && u.host_str() == Some("api.openai.com"))
}

impl Config {
    /// The full start-up (and reload) path: every layer, then validation.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("CHATAPI__"))
            .collect();
        Self::load_from(file, &env, &OpenAiEnv::from_process())
    }

    pub fn load_from(
        file: Option<&Path>,
        env: &[(String, String)],
        openai: &OpenAiEnv,
    ) -> Result<Self, ConfigError> {
        use config::{Config as Layers, Environment, File, FileFormat};

        let defaults = File::from_str(DEFAULT_TOML, FileFormat::Toml);
        let mut layers = Layers::builder().add_source(defaults);
        Self::deserialize_layers(layers.clone())
            .map_err(|e| ConfigError::Defaults(e.to_string()))?;

        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            layers = layers.add_source(File::from_str(&text, FileFormat::Toml));
            Self::deserialize_layers(layers.clone()).map_err(|e| ConfigError::File {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        }

        if !env.is_empty() {
            let source = Environment::with_prefix("CHATAPI")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("auth.keys")
                .with_list_parse_key("limits.trusted_proxies")
                .source(Some(env.iter().cloned().collect()));
            layers = layers.add_source(source);
        }
        let mut config = Self::deserialize_layers(layers)
            .map_err(|e| ConfigError::Environment(e.to_string()))?;
        config.fill_from_openai_env(openai);
        config.validate()?;
        Ok(config)
    }

    fn deserialize_layers(
        layers: config::ConfigBuilder<config::builder::DefaultState>,
    ) -> Result<Self, config::ConfigError> {
        layers.build()?.try_deserialize()
    }

    fn fill_from_openai_env(&mut self, openai: &OpenAiEnv) {
        if self.upstreams.is_empty() {
            if let Some(key) = &openai.api_key {
                self.upstreams.push(UpstreamConfig {
                    name: "openai".into(),
                    kind: UpstreamKind::Remote,
                    base_url: Some(
                        openai
                            .base_url
                            .clone()
                            .unwrap_or_else(|| OPENAI_BASE_URL.into()),
                    ),
                    api_key: Secret::new(key.clone()),
                    model: Some("gpt-4o-mini".into()),
                    headers: BTreeMap::new(),
                    plain_headers: Vec::new(),
                    http2_prior_knowledge: false,
                });
            } else if self.local.enabled && cfg!(feature = "local") {
                self.upstreams.push(UpstreamConfig {
                    name: "local".into(),
                    kind: UpstreamKind::Local,
                    base_url: None,
                    api_key: Secret::default(),
                    model: None,
                    headers: BTreeMap::new(),
                    plain_headers: Vec::new(),
                    http2_prior_knowledge: false,
                });
            }
            return;
        }
        // The owner's OpenAI key goes only where OpenAI is: never to a local engine, a plain-HTTP
        // vLLM or a third party that happens to leave `api_key` empty.
        for upstream in &mut self.upstreams {
            if upstream.kind == UpstreamKind::Remote
                && upstream.api_key.is_empty()
                && upstream.base_url.as_deref().is_some_and(is_openai)
            {
                if let Some(key) = &openai.api_key {
                    upstream.api_key = Secret::new(key.clone());
                }
            }
        }
    }
}
