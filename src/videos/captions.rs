//! Step 5: a sentence describing each keyframe, from a vision-capable OpenAI-compatible upstream
//! (`videos.vision_upstreams`, named from `[[upstreams]]`, tried in order for each frame with
//! `[timeouts]`' limits and `[retry]`'s policy, through `upstream`'s client). The frame goes as a
//! base64 JPEG image part of a user turn, the answer is streamed and gathered, as chat's are. No small vision model ships in a
//! package today; without an upstream the timeline says there are no captions.

use base64::Engine;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Timeouts, UpstreamKind};
use crate::conversation::{Message, Role};
use crate::upstream::{ChatRequest, Event, Upstreams};

use super::JobError;

const PROMPT: &str =
    "Describe what this video frame shows in one short sentence, for someone who cannot see it. \
Mention any people, objects, charts or slides, not the colours of the background.";
const MAX_CAPTION_CHARS: usize = 500;
const MAX_CAPTION_TOKENS: u32 = 80;

/// The vision upstreams, through the same client as chat's (retries, failover, circuit
/// breaker, metrics); their breakers are their own, so a vision model that is down does not
/// mark the same upstream down for chat, nor the other way round.
pub struct Vision {
    upstreams: Upstreams,
    timeouts: Timeouts,
}

impl Vision {
    /// The configured vision upstreams; `None` when there are none. Names were checked when the
    /// config was validated.
    pub fn from_config(config: &Config) -> Option<Self> {
        let mut vision = config.clone();
        vision.upstreams = config
            .videos
            .vision_upstreams
            .iter()
            .filter_map(|name| config.upstreams.iter().find(|u| &u.name == name))
            .filter(|u| u.kind == UpstreamKind::Remote)
            .cloned()
            .collect();
        if vision.upstreams.is_empty() {
            return None;
        }
        let upstreams = Upstreams::from_config(&vision, None)
            .map_err(|e| tracing::error!(error = %e, "vision upstreams"))
            .ok()?;
        Some(Self {
            upstreams,
            timeouts: config.timeouts,
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
        let mut request = ChatRequest {
            messages: vec![Message {
                images: vec![image],
                ..Message::new(Role::User, PROMPT)
            }],
            ..ChatRequest::default()
        };
        request.sampling.max_tokens = Some(MAX_CAPTION_TOKENS);
        let total = self.timeouts.total;
        let asked = tokio::time::timeout(total, self.ask(&request));
        let caption = tokio::select! {
            r = asked => r.unwrap_or_else(|_| Err(format!("no caption within {}s", total.as_secs()))),
            () = cancel.cancelled() => return Err(JobError::Cancelled),
        };
        caption.map_err(|why| {
            tracing::warn!(%why, "captioning a keyframe failed");
            JobError::Failed(why)
        })
    }

    async fn ask(&self, request: &ChatRequest) -> Result<String, String> {
        let opened = self
            .upstreams
            .open(request, &self.timeouts)
            .await
            .map_err(|e| e.to_string())?;
        let mut caption = String::new();
        let mut events = futures_util::stream::iter(opened.first.map(Ok)).chain(opened.rest);
        while let Some(event) = events.next().await {
            if let Event::Text(text) = event.map_err(|e| e.to_string())? {
                caption.push_str(&text);
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
