//! What the library stores and serves: a video, its processing status, what each step produced,
//! and its timeline. Plain data; `store` reads and writes it, `routes::videos` renders it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Processing,
    Ready,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "processing" => Self::Processing,
            "ready" => Self::Ready,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Video {
    pub id: String,
    pub object: &'static str,
    pub name: String,
    pub status: Status,
    pub error: Option<String>,
    pub source: Source,
    pub duration_s: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub has_audio: Option<bool>,
    /// Unix seconds.
    pub created_at: i64,
    pub ready_at: Option<i64>,
    pub steps: Steps,
    /// What the uploader's dialect sent beyond the video (a description, a brand...).
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub labels: serde_json::Map<String, serde_json::Value>,
    /// Whose it is: only callers of the same tenant see it.
    #[serde(skip)]
    pub tenant: String,
    #[serde(skip)]
    pub callback: Option<String>,
    /// `created_at` in milliseconds, for the dialects that count in them.
    #[serde(skip)]
    pub created_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub bytes: Option<u64>,
    pub subtitles_file: bool,
}

/// Per processing step, what it produced (or why it produced nothing). Filled in as the job
/// runs; a step not yet run is absent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Steps {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<TranscriptStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyframes: Option<CountStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocr: Option<CountStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captions: Option<CountStep>,
    /// Segment vectors for search by meaning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embeddings: Option<CountStep>,
    /// Seconds each step took (`download`, `probe`, `transcript`, `keyframes`, `ocr`,
    /// `captions`; the transcript and keyframes run side by side, `transcript_and_keyframes` is
    /// the two together), for operators sizing a machine.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub seconds: std::collections::BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TranscriptSource {
    /// The `.srt`/`.vtt` uploaded with the video.
    SubtitlesFile,
    /// A text subtitle track inside the video.
    EmbeddedSubtitles,
    SpeechToText,
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscriptStep {
    pub source: TranscriptSource,
    pub cues: usize,
    /// Why the transcript is empty or came from where it did, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountStep {
    pub count: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A stretch of the video that a prompt can cite: `[MM:SS]` at `start_s`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, sqlx::FromRow)]
pub struct Segment {
    pub start_s: f64,
    pub end_s: f64,
    pub transcript: String,
    pub on_screen_text: String,
    pub caption: String,
    /// The keyframe (index into the video's keyframes) that shows this stretch.
    pub keyframe: Option<u32>,
    /// Tokens of its text (o200k), counted when the timeline was made; `None` for timelines
    /// made before chatapi counted them.
    #[serde(skip)]
    pub tokens: Option<u32>,
    /// The transcript as it was said: each cue with its own times, in order (a player
    /// highlights the words being spoken; a range is cut at these). Empty for timelines made
    /// before chatapi kept them: `Segment::cues` then gives the transcript as one cue.
    #[serde(skip)]
    pub cues: Vec<Cue>,
}

/// Words said between two moments: a subtitle or a recognised sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cue {
    pub start_s: f64,
    pub end_s: f64,
    pub text: String,
}

impl Segment {
    /// Its cues; for a timeline made before cues were kept, the transcript as one cue.
    pub fn cues(&self) -> Vec<Cue> {
        if !self.cues.is_empty() || self.transcript.is_empty() {
            return self.cues.clone();
        }
        vec![Cue {
            start_s: self.start_s,
            end_s: self.end_s,
            text: self.transcript.clone(),
        }]
    }

    /// Its text (said, on screen, seen), as counted for `tokens`.
    pub fn text(&self) -> String {
        [&self.transcript, &self.on_screen_text, &self.caption]
            .iter()
            .filter(|t| !t.is_empty())
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Keyframe {
    #[sqlx(rename = "idx")]
    pub index: u32,
    pub time_s: f64,
    pub ocr_text: String,
    pub caption: String,
}

/// `[MM:SS]`, or `[H:MM:SS]` past the first hour.
pub fn stamp(seconds: f64) -> String {
    let total = seconds.max(0.0).floor() as u64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("[{h}:{m:02}:{s:02}]")
    } else {
        format!("[{m:02}:{s:02}]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps() {
        assert_eq!(stamp(0.0), "[00:00]");
        assert_eq!(stamp(65.9), "[01:05]");
        assert_eq!(stamp(3600.0 + 62.0), "[1:01:02]");
        assert_eq!(stamp(-3.0), "[00:00]");
    }
}
