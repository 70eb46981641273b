//! Step 3: keyframes, one per scene. `scan` finds the cuts (decoding only the stretches of the
//! video that can hold one); then each scene's picture is taken from the video, on a keyframe
//! of the encoder's where one shows the scene (a seek there decodes one frame), large enough to
//! read on-screen text from (at most 960 pixels wide), a few seeks per ffmpeg run.
//!
//! Picked: the first frame; each cut, unless the last pick is closer than the ceiling
//! (`keyframes_max_per_minute`) allows; and a frame once the last pick is further back than the
//! floor (`keyframes_min_per_minute`) allows, so a long scene still gets a picture now and then.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::programs;
use super::scan::{self, FRAME_S};
use super::scenes;
use super::JobError;

pub struct Settings {
    pub threshold: f64,
    pub min_per_minute: f64,
    pub max_per_minute: f64,
    /// The most frames one video gets, whatever its timestamps claim.
    pub max_frames: usize,
}

/// The frames written, in time order: `dir/kf-00001.jpg` is the first, at `times[0]`.
pub struct Keyframes {
    pub times: Vec<f64>,
    /// The share of the video decoded to find the cuts.
    pub decoded_share: f64,
}

pub fn file(dir: &Path, index: u32) -> PathBuf {
    dir.join(format!("kf-{:05}.jpg", index + 1))
}

/// Pictures taken per ffmpeg run (each its own seek and decoder): a process per picture would
/// cost more than the seeking, and each input's decoder holds frames while the run lasts.
const PER_RUN: usize = 8;

/// Keyframes of `source`'s first `until_s` seconds (its length as probed: a file whose frames
/// lie far apart past its stated length is read no further, and yields no more frames than that
/// length allows).
pub async fn extract(
    source: &Path,
    dir: &Path,
    settings: &Settings,
    until_s: f64,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<Keyframes, JobError> {
    // The most the ceiling allows in that length, and never past `max_frames`.
    let allowed = ((until_s / 60.0 + 1.0) * settings.max_per_minute).ceil() as usize + 1;
    let max_frames = allowed.min(settings.max_frames).max(1);
    // Never empty: the first frame is always a pick.
    let (mut times, decoded_share) = scan(source, settings, until_s, limit, cancel).await?;
    times.truncate(max_frames);
    for (batch, chunk) in times.chunks(PER_RUN).enumerate() {
        take_pictures(source, dir, batch * PER_RUN, chunk, limit, cancel).await?;
    }
    // A seek past the last decodable frame writes nothing: that scene goes, and the files are
    // numbered again so they stay `kf-00001.jpg` onwards.
    let mut kept = Vec::with_capacity(times.len());
    for (i, (at, _)) in times.iter().enumerate() {
        let written = file(dir, i as u32);
        if !tokio::fs::try_exists(&written).await.unwrap_or(false) {
            continue;
        }
        let index = kept.len() as u32;
        if index as usize != i {
            tokio::fs::rename(&written, file(dir, index))
                .await
                .map_err(|e| JobError::Internal(format!("renaming keyframe {i}: {e}")))?;
        }
        kept.push(*at);
    }
    if kept.is_empty() {
        return Err(JobError::Failed(
            "the video's picture could not be decoded: no frame could be taken from it".into(),
        ));
    }
    Ok(Keyframes {
        times: kept,
        decoded_share,
    })
}

/// The picks as (scene start, when to take its picture), from the cuts `scan` finds, and the
/// share of the video it decoded.
async fn scan(
    source: &Path,
    settings: &Settings,
    until_s: f64,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<(Vec<(f64, f64)>, f64), JobError> {
    let scene = scan::Scene {
        threshold: settings.threshold,
        min_gap_s: 60.0 / settings.max_per_minute,
    };
    let max_gap = 60.0 / settings.min_per_minute;
    let found = scan::cuts(source, &scene, until_s, limit, cancel)
        .await
        .map_err(undecodable)?;
    let picks = with_floor(&found.cuts, max_gap, found.end_s);
    Ok((
        on_keyframes(picks, &found.steady_keys, found.end_s),
        found.decoded_share,
    ))
}

/// Each pick's picture moved onto the first steady keyframe at or after it, where that keyframe
/// still shows the same scene (before the next pick, by half a second; steady, so not in a fade
/// or a cut): a picture there decodes one frame, where one between keyframes decodes every frame
/// from the keyframe before it (half a group on average, 4 s of a 720p talk's video).
fn on_keyframes(mut picks: Vec<(f64, f64)>, keys: &[f64], end_s: f64) -> Vec<(f64, f64)> {
    let starts: Vec<f64> = picks.iter().skip(1).map(|p| p.0).chain([end_s]).collect();
    for ((_, picture), next) in picks.iter_mut().zip(starts) {
        let at = keys.partition_point(|k| *k < *picture);
        if let Some(&key) = keys.get(at) {
            if key < next - 0.5 {
                // Just past the keyframe: a seek to a time a rounding before it would decode the
                // whole group before.
                *picture = key + 0.005;
            }
        }
    }
    picks
}

/// The first frame, the cuts, and a pick wherever a scene runs past `max_gap` without one.
fn with_floor(cuts: &[scenes::Cut], max_gap: f64, end: f64) -> Vec<(f64, f64)> {
    let mut picks = vec![(0.0, 0.0)];
    let mut next = cuts.iter().peekable();
    loop {
        let last = picks.last().map_or(0.0, |p| p.0);
        match next.peek() {
            Some(cut) if cut.at_s - last <= max_gap => {
                picks.push((cut.at_s, cut.picture_s.min(end - FRAME_S).max(cut.at_s)));
                next.next();
            }
            _ if last + max_gap < end => picks.push((last + max_gap, last + max_gap)),
            _ => break,
        }
    }
    picks
}

/// The pictures of `picks` (their picture times), as keyframes `first`, `first + 1`...
async fn take_pictures(
    source: &Path,
    dir: &Path,
    first: usize,
    picks: &[(f64, f64)],
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<(), JobError> {
    let mut cmd = programs::ffmpeg("ffmpeg", programs::Input::None);
    cmd.args(["-loglevel", "error"]);
    for (_, at) in picks {
        programs::video_input(&mut cmd, source, *at);
    }
    for (i, _) in picks.iter().enumerate() {
        cmd.args(["-map", &format!("{i}:v:0"), "-frames:v", "1"])
            .args(["-vf", "scale='min(960,iw)':-2", "-q:v", "4", "-y"])
            .arg(file(dir, (first + i) as u32));
    }
    programs::run(cmd, "ffmpeg (keyframes)", limit, cancel)
        .await
        .map(|_| ())
        .map_err(undecodable)
}

/// ffmpeg's failure on the picture, as the video's sentence.
fn undecodable(e: JobError) -> JobError {
    match e {
        JobError::Program { detail, .. } => JobError::Failed(format!(
            "the video's picture could not be decoded (the file may be damaged): {detail}"
        )),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::scenes::Cut;

    #[test]
    fn a_long_scene_gets_a_picture_now_and_then() {
        let cuts = [Cut {
            at_s: 70.0,
            picture_s: 70.8,
        }];
        let picks = super::with_floor(&cuts, 30.0, 100.0);
        assert_eq!(
            picks,
            [(0.0, 0.0), (30.0, 30.0), (60.0, 60.0), (70.0, 70.8)]
        );
    }

    #[test]
    fn pictures_move_onto_keyframes_inside_their_scene() {
        let picks = vec![(0.0, 0.0), (20.0, 20.0), (30.0, 30.8)];
        let keys = [0.0, 8.3, 16.6, 24.9, 33.2];
        let pictures = |moved: Vec<(f64, f64)>| -> Vec<f64> {
            moved
                .iter()
                .map(|p| (p.1 * 1000.0).round() / 1000.0)
                .collect()
        };
        // 20 → 24.9 (still before 30); 30.8 → 33.2 (before the end).
        let moved = super::on_keyframes(picks, &keys, 40.0);
        assert_eq!(pictures(moved), [0.005, 24.905, 33.205]);
        // A keyframe past the next scene's start is no picture of this one.
        let moved = super::on_keyframes(vec![(0.0, 0.0), (2.0, 2.0)], &[0.0, 9.0], 4.0);
        assert_eq!(pictures(moved), [0.005, 2.0]);
    }
}
