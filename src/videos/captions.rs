//! Step 5: a sentence describing each keyframe, from a vision-capable OpenAI-compatible upstream
//! (`videos.vision_upstreams`, named from `[[upstreams]]`, tried in order for each frame with
//! `[timeouts]`' connect and total limits). The frame goes as a base64 JPEG image part, the
//! answer is streamed and gathered, as chat's answers are. No small vision model ships in a
//! package today; without an upstream the timeline says there are no captions.

use std::time::Duration;

use base64::Engine;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Secret, UpstreamKind};

use super::JobError;

const PROMPT: &str =
    "Describe what this video frame shows in one short sentence, for someone who cannot see it. \
Mention any people, objects, charts or slides, not the colours of the background.";
const MAX_CAPTION_CHARS: usize = 500;

struct Endpoint {
    name: String,
    url: reqwest::Url,
    api_key: Secret,
    headers: Vec<(String, Secret)>,
    model: String,
}

pub struct Vision {
    endpoints: Vec<Endpoint>,
    client: reqwest::Client,
    total: Duration,
}

impl Vision {
    /// The configured vision upstreams; `None` when there are none. Names were checked when the
    /// config was validated.
    pub fn from_config(config: &Config) -> Option<Self> {
        let endpoints: Vec<Endpoint> = config
            .videos
            .vision_upstreams
            .iter()
            .filter_map(|name| config.upstreams.iter().find(|u| &u.name == name))
            .filter(|u| u.kind == UpstreamKind::Remote)
            .filter_map(|u| {
                Some(Endpoint {
                    name: u.name.clone(),
                    url: crate::upstream::chat_completions_url(u.base_url.as_deref()?).ok()?,
                    api_key: u.api_key.clone(),
                    headers: u
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    model: u.model.clone()?,
                })
            })
            .collect();
        if endpoints.is_empty() {
            return None;
        }
        let client = reqwest::Client::builder()
            .connect_timeout(config.timeouts.connect)
            .build()
            .ok()?;
        Some(Self {
            endpoints,
            client,
            total: config.timeouts.total,
        })
    }

    /// A caption for one JPEG, from the first upstream that gives one; the last failure if none does.
    pub async fn caption(
        &self,
        jpeg: &[u8],
        cancel: &CancellationToken,
    ) -> Result<String, JobError> {
        let image = format!(
            "data:image/jpeg;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(jpeg)
        );
        let mut last = String::new();
        for endpoint in &self.endpoints {
            let attempt = tokio::time::timeout(self.total, self.ask(endpoint, &image));
            let result = tokio::select! {
                r = attempt => r.unwrap_or_else(|_| Err(format!("no answer within {}s", self.total.as_secs()))),
                () = cancel.cancelled() => return Err(JobError::Cancelled),
            };
            match result {
                Ok(caption) => return Ok(caption),
                Err(why) => {
                    tracing::warn!(upstream = %endpoint.name, %why, "captioning a keyframe failed");
                    last = format!("upstream {}: {why}", endpoint.name);
                }
            }
        }
        Err(JobError::Failed(last))
    }

    async fn ask(&self, endpoint: &Endpoint, image: &str) -> Result<String, String> {
        let body = json!({
            "model": endpoint.model,
            "stream": true,
            "max_tokens": 80,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": PROMPT},
                {"type": "image_url", "image_url": {"url": image, "detail": "low"}},
            ]}],
        });
        let mut request = self
            .client
            .post(endpoint.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if !endpoint.api_key.is_empty() {
            request = request.bearer_auth(endpoint.api_key.expose());
        }
        for (name, value) in &endpoint.headers {
            request = request.header(name, value.expose());
        }
        let response = request
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("answered {status}"));
        }
        let mut events = response.bytes_stream().eventsource();
        let mut caption = String::new();
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| format!("the stream broke: {e}"))?;
            if event.data.trim() == "[DONE]" {
                break;
            }
            let chunk: Value =
                serde_json::from_str(&event.data).map_err(|e| format!("not a chat chunk: {e}"))?;
            if let Some(text) = chunk["choices"][0]["delta"]["content"].as_str() {
                caption.push_str(text);
            }
            if caption.len() > MAX_CAPTION_CHARS * 4 {
                break;
            }
        }
        let caption: String = caption
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(MAX_CAPTION_CHARS)
            .collect();
        if caption.is_empty() {
            return Err("gave an empty caption".into());
        }
        Ok(caption)
    }
}
