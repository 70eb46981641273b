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

#[cfg(test)]
mod tests {
    use super::super::testing::{file, load, refusal};
    use super::super::*;
    use std::time::Duration;

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
        let err = refusal("[server\nlisten=");
        assert!(err.starts_with("config file "), "{err}");
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
}
