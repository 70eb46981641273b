//! Step 2's text sources: subtitles, as timed cues. ffmpeg turns whatever text subtitles there
//! are (an uploaded `.vtt` or `.srt`, a `mov_text` or `subrip` track inside the video) into SRT,
//! so there is one parser, and it only ever reads what ffmpeg wrote.

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::programs;
use super::JobError;

/// What ffmpeg's SRT says, cue by cue: the timeline keeps them as they are.
pub use super::model::Cue;

/// Where the subtitles are: a file of their own, or the nth subtitle track of the video.
pub enum From<'a> {
    File(&'a Path),
    Track(&'a Path, usize),
}

/// Most SRT read from ffmpeg: a 2-hour film's subtitles are about 100 KB. A crafted track (one
/// whose header-stripping prefix is 50 KB per cue) can make ffmpeg write gigabytes.
pub const MAX_SRT_BYTES: usize = 8 << 20;
/// Most cues kept, and most characters of one cue: past these it is not a transcript.
pub const MAX_CUES: usize = 20_000;
pub const MAX_CUE_CHARS: usize = 1_000;

/// The cues of `from`, none starting after `until_s` (the video's length: a track may not run
/// past its picture).
pub async fn read(
    from: From<'_>,
    until_s: f64,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<Vec<Cue>, JobError> {
    let mut cmd = match from {
        From::File(file) => {
            let format = match file.extension().and_then(|e| e.to_str()) {
                Some("vtt") => "webvtt",
                _ => "srt",
            };
            let mut cmd = programs::ffmpeg("ffmpeg", programs::Input::Subtitles(format));
            cmd.args(["-loglevel", "error", "-i"]).arg(file);
            cmd
        }
        From::Track(file, n) => {
            let mut cmd = programs::ffmpeg("ffmpeg", programs::Input::Video);
            cmd.args(["-loglevel", "error", "-t", &seconds(until_s), "-i"])
                .arg(file)
                .args(["-map", &format!("0:s:{n}")]);
            cmd
        }
    };
    cmd.args(["-f", "srt", "-"]);
    let caps = programs::Caps {
        stdout: MAX_SRT_BYTES,
        stderr: 1 << 20,
    };
    let out = programs::run_capped(cmd, "ffmpeg (subtitles)", limit, cancel, caps)
        .await
        .map_err(|e| match e {
            JobError::Program { detail, .. } => JobError::Failed(format!(
                "the subtitles could not be read as SRT or WebVTT: {detail}"
            )),
            other => other,
        })?;
    let mut cues = parse_srt(&String::from_utf8_lossy(&out.stdout));
    cues.retain(|c| c.start_s <= until_s);
    Ok(cues)
}

/// A length in seconds as ffmpeg's `-t` takes it, with a second of slack for rounding.
pub fn seconds(s: f64) -> String {
    format!("{:.3}", s.max(0.0) + 1.0)
}

/// SRT as ffmpeg writes it: blocks of an index, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, text lines.
/// Formatting tags (`<i>`, `{\an8}`) are dropped; cues come back in time order.
pub fn parse_srt(text: &str) -> Vec<Cue> {
    let mut cues = Vec::new();
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    while let Some(line) = lines.next() {
        let Some((start, end)) = line.split_once("-->") else {
            continue;
        };
        let (Some(start_s), Some(end_s)) = (time(start), time(end)) else {
            continue;
        };
        let mut words = Vec::new();
        let mut chars = 0;
        for text_line in lines.by_ref() {
            if text_line.trim().is_empty() {
                break;
            }
            // Lines past the cue's limit are skipped, not gathered and cut later.
            if chars <= MAX_CUE_CHARS {
                let line = strip_tags(text_line.trim());
                chars += line.len();
                words.push(line);
            }
        }
        let text: String = words.join(" ").trim().chars().take(MAX_CUE_CHARS).collect();
        if !text.is_empty() {
            if cues.len() == MAX_CUES {
                break;
            }
            cues.push(Cue {
                start_s,
                end_s: end_s.max(start_s),
                text,
            });
        }
    }
    cues.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    cues
}

fn time(s: &str) -> Option<f64> {
    // `00:01:02,500` (SRT) or `00:01:02.500`; settings after the time (VTT) are ignored.
    let s = s.split_whitespace().next()?.replace(',', ".");
    let mut parts = s.rsplitn(3, ':');
    let secs: f64 = parts.next()?.parse().ok()?;
    let mins: f64 = parts.next()?.parse().ok()?;
    let hours: f64 = parts.next().map_or(Some(0.0), |h| h.parse().ok())?;
    let t = hours * 3600.0 + mins * 60.0 + secs;
    t.is_finite().then_some(t)
}

fn strip_tags(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut depth: Option<char> = None;
    for c in line.chars() {
        match (depth, c) {
            (None, '<') => depth = Some('>'),
            (None, '{') => depth = Some('}'),
            (Some(close), c) if c == close => depth = None,
            (None, c) => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_srt_with_tags_and_hours() {
        let srt = "1\r\n00:00:01,000 --> 00:00:02,500\r\n<i>Hello</i> there\r\nfriend\r\n\r\n\
                   2\n01:00:00,000 --> 01:00:03,000\n{\\an8}Late line\n\n3\n00:00:05,000 --> 00:00:06,000\n\n";
        let cues = parse_srt(srt);
        assert_eq!(cues.len(), 2);
        assert_eq!(
            cues[0],
            Cue {
                start_s: 1.0,
                end_s: 2.5,
                text: "Hello there friend".into()
            }
        );
        assert_eq!(cues[1].start_s, 3600.0);
        assert_eq!(cues[1].text, "Late line");
    }

    #[test]
    fn cues_are_bounded_in_number_and_length() {
        let long = "word ".repeat(5_000);
        let mut srt = String::new();
        for i in 0..(MAX_CUES + 10) {
            srt.push_str(&format!(
                "{i}\n00:00:01,000 --> 00:00:02,000\n{long}\n{long}\n\n"
            ));
        }
        let cues = parse_srt(&srt);
        assert_eq!(cues.len(), MAX_CUES);
        assert!(cues.iter().all(|c| c.text.chars().count() <= MAX_CUE_CHARS));
    }

    #[test]
    fn garbage_gives_no_cues() {
        assert!(parse_srt("not subtitles\n--> nonsense\n").is_empty());
    }
}
