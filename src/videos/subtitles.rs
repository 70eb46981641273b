//! Step 2's text sources: subtitles, as timed cues. ffmpeg turns whatever text subtitles there
//! are (an uploaded `.vtt` or `.srt`, a `mov_text` or `subrip` track inside the video) into SRT,
//! so there is one parser, and it only ever reads what ffmpeg wrote.

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::programs;
use super::JobError;

#[derive(Debug, Clone, PartialEq)]
pub struct Cue {
    pub start_s: f64,
    pub end_s: f64,
    pub text: String,
}

/// Where the subtitles are: a file of their own, or the nth subtitle track of the video.
pub enum From<'a> {
    File(&'a Path),
    Track(&'a Path, usize),
}

pub async fn read(
    from: From<'_>,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<Vec<Cue>, JobError> {
    let mut cmd = programs::ffmpeg("ffmpeg");
    cmd.args(["-loglevel", "error"]);
    match from {
        From::File(file) => {
            cmd.arg("-i").arg(file);
        }
        From::Track(file, n) => {
            cmd.arg("-i").arg(file).args(["-map", &format!("0:s:{n}")]);
        }
    }
    cmd.args(["-f", "srt", "-"]);
    let out = programs::run(cmd, "ffmpeg (subtitles)", limit, cancel)
        .await
        .map_err(|e| match e {
            JobError::Program { detail, .. } => JobError::Failed(format!(
                "the subtitles could not be read as SRT or WebVTT: {detail}"
            )),
            other => other,
        })?;
    Ok(parse_srt(&String::from_utf8_lossy(&out.stdout)))
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
        for text_line in lines.by_ref() {
            if text_line.trim().is_empty() {
                break;
            }
            words.push(strip_tags(text_line.trim()));
        }
        let text = words.join(" ").trim().to_string();
        if !text.is_empty() {
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
    fn garbage_gives_no_cues() {
        assert!(parse_srt("not subtitles\n--> nonsense\n").is_empty());
    }
}
