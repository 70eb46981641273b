//! Finding a video's cuts while decoding as little of it as can hold one. Decoding is what the
//! scene pass costs (a 720p talk: about 0.05 s of one core per second of video), and most of a
//! video's frames are needed only to place a cut that its keyframes already show is there:
//!
//! 1. the keyframes' times, from the file's packets (nothing decoded);
//! 2. the keyframes alone decoded, as thumbnails (about one frame in 250);
//! 3. every stretch between two keyframes that differ — or that lie further apart than
//!    `MAX_UNSEEN`, or that ends the video — decoded at 5 frames a second and scored by
//!    `scenes::Detector`, from its first keyframe to just past its last.
//!
//! A video whose keyframes come every 2 s or more often (an all-intra file, a phone's short
//! groups), or where most stretches changed (or more than one every `SECONDS_PER_STRETCH`), is
//! decoded whole instead, as is one whose keyframes cannot be listed: the stretches would cost as
//! much, in more runs.

use std::io::{BufRead, Read};
use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::programs;
use super::scenes::{self, Cut, Detector};
use super::JobError;

/// The scored thumbnails come this often.
pub const FRAME_S: f64 = 0.2;
/// Two keyframes further apart than this are not trusted to show every cut between them (a cut
/// and a cut back between them look like nothing happened).
const MAX_UNSEEN: f64 = 11.0;
/// Keyframes closer together than this on average are not worth surveying.
const MIN_MEAN_GAP: f64 = 2.0;
/// Past this share of the video in changed stretches, it is decoded whole.
const MOST: f64 = 0.7;
/// More than one stretch per this many seconds, and it is decoded whole too: each stretch is a
/// program started (about 0.1 s of a core), and a file whose every other group of pictures
/// changes would otherwise start thousands. A talk with a slide every 20 s has one per 20 s.
const SECONDS_PER_STRETCH: f64 = 10.0;
/// A stretch is decoded this far past its last keyframe, so a cut on that keyframe (where an
/// encoder puts one) is scored against the frames before it.
const PAST: f64 = 0.6;

pub struct Scan {
    pub cuts: Vec<Cut>,
    /// Where the picture ends (as decoded, or as probed when only stretches were).
    pub end_s: f64,
    /// The keyframes that look like the keyframe after them (the scene holds still there: no
    /// cut, no fade), by time: a picture taken on one decodes one frame, not a group of them.
    pub steady_keys: Vec<f64>,
    /// The share of the video decoded at 5 frames a second (1.0: all of it).
    pub decoded_share: f64,
}

pub struct Scene {
    /// `videos.scene_threshold`.
    pub threshold: f64,
    /// The least time between two cuts kept.
    pub min_gap_s: f64,
}

/// The cuts in `source`'s first `until_s` seconds.
pub async fn cuts(
    source: &Path,
    scene: &Scene,
    until_s: f64,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<Scan, JobError> {
    let keys = match key_times(source, until_s, limit, cancel).await {
        Ok(keys) => keys,
        // The whole decode below says what is wrong with the file, if anything is.
        Err(JobError::Program { .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    if let Some(Plan {
        stretches,
        steady: steady_keys,
    }) = changed(source, scene, &keys, until_s, limit, cancel).await?
    {
        let decoded: f64 = stretches.iter().map(|(a, b)| b - a).sum();
        tracing::debug!(
            keyframes = keys.len(),
            stretches = stretches.len(),
            decoded_share = decoded / until_s,
            "scene scan: only the stretches that changed"
        );
        let mut cuts = Vec::new();
        for (from, to) in stretches {
            let (found, _) = score(source, scene, from, to - from, limit, cancel).await?;
            cuts.extend(found);
        }
        return Ok(Scan {
            cuts: spaced(cuts, scene.min_gap_s),
            end_s: until_s,
            steady_keys,
            decoded_share: decoded / until_s,
        });
    }
    tracing::debug!(keyframes = keys.len(), "scene scan: the whole video");
    let (cuts, frames) = score(source, scene, 0.0, until_s, limit, cancel).await?;
    if frames == 0 {
        return Err(JobError::Failed(
            "the video's picture could not be decoded: no frame in it".into(),
        ));
    }
    Ok(Scan {
        cuts: spaced(cuts, scene.min_gap_s),
        end_s: frames as f64 * FRAME_S,
        steady_keys: Vec::new(),
        decoded_share: 1.0,
    })
}

/// What to decode, from the keyframes decoded alone; `None` where the video is better decoded
/// whole.
async fn changed(
    source: &Path,
    scene: &Scene,
    keys: &[f64],
    until_s: f64,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<Option<Plan>, JobError> {
    if keys.len() < 2 || until_s / (keys.len() as f64) < MIN_MEAN_GAP {
        return Ok(None);
    }
    let Some(thumbs) = key_thumbnails(source, until_s, keys.len(), limit, cancel).await? else {
        return Ok(None);
    };
    let frames: Vec<&[u8]> = thumbs.chunks_exact(scenes::FRAME_BYTES).collect();
    Ok(plan(keys, until_s, |i| {
        scenes::differ(frames[i], frames[i + 1], scene.threshold)
    }))
}

/// What to decode: the stretches, `(from, to)` in seconds, merged; and the steady keyframes.
struct Plan {
    stretches: Vec<(f64, f64)>,
    steady: Vec<f64>,
}

/// The plan, given the keyframes and whether keyframe `i` differs from the next (`differs(i)`);
/// `None` where decoding the video whole costs no more.
fn plan(keys: &[f64], until_s: f64, differs: impl Fn(usize) -> bool) -> Option<Plan> {
    let mut stretches: Vec<(f64, f64)> = Vec::new();
    let mut steady = Vec::new();
    for (i, &from) in keys.iter().enumerate() {
        let (to, look) = match keys.get(i + 1) {
            Some(&next) => (next, next - from > MAX_UNSEEN || differs(i)),
            None => (until_s, true),
        };
        if !look {
            steady.push(from);
            continue;
        }
        let to = (to + PAST).min(until_s);
        match stretches.last_mut() {
            Some(last) if last.1 >= from => last.1 = to,
            _ => stretches.push((from, to)),
        }
    }
    let covered: f64 = stretches.iter().map(|(a, b)| b - a).sum();
    let worth =
        covered <= MOST * until_s && stretches.len() as f64 <= until_s / SECONDS_PER_STRETCH + 1.0;
    worth.then_some(Plan { stretches, steady })
}

/// The times of the keyframes in the first `until_s` seconds, from the start of the file (as
/// `-ss` counts), in order. Read from the packets as they stream: a long video lists hundreds
/// of thousands, of which only the keyframes are kept.
async fn key_times(
    source: &Path,
    until_s: f64,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<Vec<f64>, JobError> {
    let until = super::subtitles::seconds(until_s);
    let mut cmd = programs::ffmpeg("ffprobe", programs::Input::Video);
    cmd.args(["-v", "error", "-select_streams", "v:0"])
        .args(["-read_intervals", &format!("%+{until}")])
        .args(["-show_entries", "packet=pts_time,flags:format=start_time"])
        .args(["-of", "csv", "-i"])
        .arg(source);
    // Bounded by what can be used: no more than one keyframe every tenth of a second.
    let most = (until_s * 10.0) as usize + 2;
    let listed = programs::run_reading(cmd, "ffprobe (keyframes)", limit, cancel, move |out| {
        let mut keys = Vec::new();
        let mut start = 0.0;
        let mut out = std::io::BufReader::new(out);
        let mut line = Vec::with_capacity(64);
        loop {
            line.clear();
            // A line is a few numbers; one longer than this is cut, and its rest read as lines.
            match std::io::Read::by_ref(&mut out)
                .take(256)
                .read_until(b'\n', &mut line)
            {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            let mut fields = text.trim_end().split(',');
            match (fields.next(), fields.next(), fields.next()) {
                (Some("packet"), Some(pts), Some(flags)) if flags.starts_with('K') => {
                    if let Ok(t) = pts.parse::<f64>() {
                        if keys.len() < most {
                            keys.push(t);
                        }
                    }
                }
                (Some("format"), Some(s), _) => start = s.parse().unwrap_or(0.0),
                _ => {}
            }
        }
        (keys, start)
    });
    let (mut keys, start) = listed.await?;
    for k in &mut keys {
        *k -= start;
    }
    keys.retain(|k| k.is_finite() && (0.0..until_s).contains(k));
    keys.sort_by(f64::total_cmp);
    keys.dedup_by(|a, b| (*a - *b).abs() < 1e-3);
    Ok(keys)
}

/// The keyframes decoded alone, as thumbnails one after another; `None` when they are not
/// `expected` of them (the decoder and the packets disagree on which frames are keyframes).
async fn key_thumbnails(
    source: &Path,
    until_s: f64,
    expected: usize,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<Option<Vec<u8>>, JobError> {
    let until = super::subtitles::seconds(until_s);
    let mut cmd = programs::ffmpeg("ffmpeg", programs::Input::Video);
    cmd.args(["-loglevel", "error", "-skip_frame", "nokey"])
        .args(["-skip_loop_filter", "all", "-t", &until, "-i"])
        .arg(source)
        .args(["-an", "-sn", "-dn", "-fps_mode", "passthrough", "-vf"])
        .arg(thumbnail_filter())
        .args(["-f", "rawvideo", "-"]);
    let read = programs::run_reading(cmd, "ffmpeg (keyframes)", limit, cancel, move |out| {
        let mut all = Vec::new();
        let mut frame = vec![0u8; scenes::FRAME_BYTES];
        // One more than expected is enough to know they disagree.
        while all.len() <= expected * scenes::FRAME_BYTES && out.read_exact(&mut frame).is_ok() {
            all.extend_from_slice(&frame);
        }
        all
    });
    let thumbs = match read.await {
        Ok(thumbs) => thumbs,
        Err(JobError::Program { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok((thumbs.len() == expected * scenes::FRAME_BYTES).then_some(thumbs))
}

/// `length_s` seconds of `source` from `from_s`, decoded at 5 frames a second into thumbnails
/// scored as they come: the cuts (in the video's time) and the frames scored.
async fn score(
    source: &Path,
    scene: &Scene,
    from_s: f64,
    length_s: f64,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<(Vec<Cut>, usize), JobError> {
    let length = super::subtitles::seconds(length_s);
    // `trim` right after `fps`: a file whose next frame lies hours after its stated end would
    // otherwise have `fps` repeat the last frame up to it, whatever `-t` says about reading.
    let filter = format!("fps=5,trim=end={length},{}", thumbnail_filter());
    let mut cmd = programs::ffmpeg("ffmpeg", programs::Input::Video);
    // The deblocking filter only makes frames prettier, and thumbnails are scored: skipping it
    // saves about a third of the decoding (9.7 s instead of 14.3 s for 120 s of a 720p talk).
    cmd.args(["-loglevel", "error", "-threads", "0"])
        .args(["-skip_loop_filter", "all"]);
    if from_s > 0.0 {
        cmd.args(["-ss", &format!("{from_s:.3}")]);
    }
    cmd.args(["-t", &length, "-i"])
        .arg(source)
        .args(["-an", "-sn", "-dn", "-vf", &filter, "-f", "rawvideo", "-"]);
    let (threshold, min_gap) = (scene.threshold, scene.min_gap_s);
    let scored = programs::run_reading(cmd, "ffmpeg (scenes)", limit, cancel, move |out| {
        let mut detector = Detector::new(threshold, min_gap);
        let mut frame = vec![0u8; scenes::FRAME_BYTES];
        let mut n = 0usize;
        while out.read_exact(&mut frame).is_ok() {
            // To the millisecond: a timeline says 20.2 s, not 20.200000000000003.
            let at = ((from_s + n as f64 * FRAME_S) * 1000.0).round() / 1000.0;
            detector.frame(at, &frame);
            n += 1;
        }
        (detector.cuts(), n)
    });
    scored.await
}

fn thumbnail_filter() -> String {
    format!(
        "scale={}:{}:flags=area,format=rgb24",
        scenes::WIDTH,
        scenes::HEIGHT
    )
}

/// `cuts` in order, none closer than `min_gap_s` to the one before or to the video's start.
fn spaced(mut cuts: Vec<Cut>, min_gap_s: f64) -> Vec<Cut> {
    cuts.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    let mut last = 0.0;
    cuts.retain(|c| {
        let keep = c.at_s - last >= min_gap_s;
        if keep {
            last = c.at_s;
        }
        keep
    });
    cuts
}

#[cfg(test)]
mod tests {
    use super::plan;

    #[test]
    fn a_talk_decodes_only_the_groups_where_its_slides_change() {
        // A keyframe every 8.3 s, a slide every 20 s, ten minutes.
        let keys: Vec<f64> = (0..73).map(|i| f64::from(i) * 8.3).collect();
        let slide = |t: f64| (t / 20.0).floor();
        let super::Plan { stretches, steady } =
            plan(&keys, 600.0, |i| slide(keys[i]) != slide(keys[i + 1])).unwrap();
        let covered: f64 = stretches.iter().map(|(a, b)| b - a).sum();
        assert!((0.4..0.5).contains(&(covered / 600.0)), "{covered}");
        // Every slide change lies in a stretch; a steady keyframe shows the slide the next one
        // does.
        for change in (1..30).map(|k| f64::from(k) * 20.0) {
            assert!(stretches.iter().any(|(a, b)| (*a..=*b).contains(&change)));
        }
        assert!(steady.iter().all(|k| slide(*k) == slide(k + 8.3)));
        assert_eq!(steady.len() + 30, keys.len());
    }

    #[test]
    fn a_file_changing_every_other_group_is_decoded_whole() {
        // Keyframes every 2.1 s, every other one different: thousands of programs otherwise.
        let keys: Vec<f64> = (0..3400).map(|i| f64::from(i) * 2.1).collect();
        assert!(plan(&keys, 7140.0, |i| i % 2 == 0).is_none());
        // Most of it changing: as costly in stretches as whole.
        let keys: Vec<f64> = (0..60).map(|i| f64::from(i) * 10.0).collect();
        assert!(plan(&keys, 600.0, |i| i % 5 != 0).is_none());
    }

    #[test]
    fn keyframes_far_apart_are_looked_between_whatever_they_show() {
        // A keyframe 20 s after the first, then every 5 s, nothing changing: the long gap and the
        // end are decoded, nothing else.
        let keys: Vec<f64> = [0.0]
            .into_iter()
            .chain((0..36).map(|i| 20.0 + f64::from(i) * 5.0))
            .collect();
        let stretches = plan(&keys, 200.0, |_| false).unwrap().stretches;
        assert_eq!(stretches, [(0.0, 20.6), (195.0, 200.0)]);
    }
}
