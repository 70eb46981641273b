//! Step 1: what the file is, decided by `ffprobe` reading it, never by its name or content type.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::programs;
use super::JobError;

#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub duration_s: f64,
    pub width: u32,
    pub height: u32,
    pub has_audio: bool,
    /// Degrees clockwise the player turns the picture; ffmpeg applies it when decoding.
    pub rotation: i32,
    /// The index, among subtitle streams, of the first text subtitle track.
    pub text_subtitle_track: Option<usize>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    streams: Vec<RawStream>,
    format: Option<RawFormat>,
}

#[derive(Deserialize)]
struct RawStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    duration: Option<String>,
    #[serde(default)]
    tags: std::collections::HashMap<String, String>,
    #[serde(default)]
    side_data_list: Vec<serde_json::Value>,
    #[serde(default)]
    disposition: std::collections::HashMap<String, i64>,
}

#[derive(Deserialize)]
struct RawFormat {
    duration: Option<String>,
}

/// Subtitle codecs that are text (ffmpeg can turn them into SRT); bitmap ones (PGS, DVD) are not.
const TEXT_SUBTITLES: &[&str] = &["subrip", "srt", "mov_text", "webvtt", "ass", "ssa", "text"];

pub async fn probe(
    file: &Path,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<Probe, JobError> {
    let mut cmd = programs::ffmpeg("ffprobe", programs::Input::Video);
    cmd.args([
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
    ])
    .arg(file);
    let out = programs::run(cmd, "ffprobe", limit, cancel).await.map_err(|e| match e {
        JobError::Program { detail, .. } => JobError::Failed(format!(
            "the file is not a video this server can read (it may be truncated or not a video at all): {detail}"
        )),
        other => other,
    })?;
    parse(&out.stdout)
}

pub fn parse(json: &[u8]) -> Result<Probe, JobError> {
    let raw: Raw = serde_json::from_slice(json)
        .map_err(|e| JobError::Internal(format!("ffprobe printed JSON it should not: {e}")))?;
    let is = |s: &RawStream, kind: &str| s.codec_type.as_deref() == Some(kind);
    // A cover picture in an audio file is a "video" stream with the attached_pic disposition.
    let video = raw
        .streams
        .iter()
        .find(|s| is(s, "video") && s.disposition.get("attached_pic").copied().unwrap_or(0) == 0)
        .ok_or_else(|| {
            JobError::Failed(if raw.streams.iter().any(|s| is(s, "audio")) {
                "the file has sound but no picture (audio only); upload a video".to_string()
            } else {
                "the file has no video stream; upload a video file".to_string()
            })
        })?;
    let duration_s = raw
        .format
        .as_ref()
        .and_then(|f| f.duration.as_deref())
        .or(video.duration.as_deref())
        .and_then(|d| d.parse::<f64>().ok())
        .filter(|d| d.is_finite() && *d > 0.0)
        .ok_or_else(|| {
            JobError::Failed(
                "the video's length cannot be read; the file may be truncated".to_string(),
            )
        })?;
    let rotation = video
        .side_data_list
        .iter()
        .find_map(|d| d.get("rotation").and_then(serde_json::Value::as_i64))
        .or_else(|| video.tags.get("rotate").and_then(|r| r.parse().ok()))
        .unwrap_or(0) as i32;
    let (mut width, mut height) = (video.width.unwrap_or(0), video.height.unwrap_or(0));
    if rotation.rem_euclid(180) == 90 {
        std::mem::swap(&mut width, &mut height);
    }
    let text_subtitle_track = raw
        .streams
        .iter()
        .filter(|s| is(s, "subtitle"))
        .position(|s| {
            s.codec_name
                .as_deref()
                .is_some_and(|c| TEXT_SUBTITLES.contains(&c))
        });
    Ok(Probe {
        duration_s,
        width,
        height,
        has_audio: raw.streams.iter().any(|s| is(s, "audio")),
        rotation,
        text_subtitle_track,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_phone_video_turned_on_its_side() {
        let json = br#"{"streams":[
            {"codec_type":"video","codec_name":"h264","width":1920,"height":1080,
             "side_data_list":[{"side_data_type":"Display Matrix","rotation":-90}]},
            {"codec_type":"audio","codec_name":"aac"},
            {"codec_type":"subtitle","codec_name":"hdmv_pgs_subtitle"},
            {"codec_type":"subtitle","codec_name":"mov_text"}],
            "format":{"duration":"12.5"}}"#;
        let p = parse(json).unwrap();
        assert_eq!((p.width, p.height, p.rotation), (1080, 1920, -90));
        assert!(p.has_audio);
        assert_eq!(p.duration_s, 12.5);
        assert_eq!(p.text_subtitle_track, Some(1));
    }

    #[test]
    fn audio_with_cover_art_is_not_a_video() {
        let json = br#"{"streams":[
            {"codec_type":"audio","codec_name":"mp3"},
            {"codec_type":"video","codec_name":"mjpeg","disposition":{"attached_pic":1}}],
            "format":{"duration":"3.0"}}"#;
        let JobError::Failed(why) = parse(json).unwrap_err() else {
            panic!()
        };
        assert!(why.contains("audio only"), "{why}");
    }
}
