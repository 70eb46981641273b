//! Step 3: keyframes at scene changes, in one decoding pass. Scenes are scored on a small,
//! slow copy of the picture (5 frames a second, at most 960 pixels wide: decoding at full size
//! and rate costs as much as speech-to-text), and the frames picked are written as JPEGs from
//! that same pass, large enough to read on-screen text from.
//!
//! ffmpeg's `select` keeps: the first frame; a frame whose scene score is over the threshold,
//! unless the last pick is closer than the ceiling allows; and a frame once the last pick is
//! further back than the floor allows. `showinfo` prints each kept frame's time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::programs;
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
}

pub fn file(dir: &Path, index: u32) -> PathBuf {
    dir.join(format!("kf-{:05}.jpg", index + 1))
}

/// Frames of `source`'s first `until_s` seconds (its length as probed: a file whose frames lie
/// far apart past its stated length is read no further, and yields no more frames than that
/// length allows).
pub async fn extract(
    source: &Path,
    dir: &Path,
    settings: &Settings,
    until_s: f64,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<Keyframes, JobError> {
    // The most the floor and the ceiling allow in that length, and never past `max_frames`.
    let allowed = ((until_s / 60.0 + 1.0) * settings.max_per_minute).ceil() as usize + 1;
    let max_frames = allowed.min(settings.max_frames).max(1);
    let min_gap = 60.0 / settings.max_per_minute;
    let max_gap = 60.0 / settings.min_per_minute;
    let select = format!(
        "select='eq(n\\,0)+gt(scene\\,{t})*gte(t-prev_selected_t\\,{min_gap})+gte(t-prev_selected_t\\,{max_gap})'",
        t = settings.threshold
    );
    // `trim` right after `fps`: a file whose next frame lies hours after its stated end would
    // otherwise have `fps` repeat the last frame up to it (1,334 keyframes from three frames),
    // whatever `-t` says about reading.
    let filter = format!(
        "fps=5,trim=end={},scale='min(960,iw)':-2,{select},showinfo",
        super::subtitles::seconds(until_s)
    );
    let mut cmd = programs::ffmpeg("ffmpeg", programs::Input::Video);
    // The deblocking filter only makes frames prettier; scenes are scored on a small copy, and
    // skipping it saves about a third of the decoding (9.7 s instead of 14.3 s for 120 s of a
    // 720p, 3 Mb/s talk).
    cmd.args([
        "-loglevel",
        "info",
        "-nostats",
        "-threads",
        "0",
        "-skip_loop_filter",
        "all",
        "-t",
        &super::subtitles::seconds(until_s),
        "-i",
    ])
    .arg(source)
    // Audio, subtitles and data left in make a null-ish output fail ("Too many packets
    // buffered"), and cost decoding for nothing.
    .args([
        "-an",
        "-sn",
        "-dn",
        "-vf",
        &filter,
        "-fps_mode",
        "vfr",
        "-frames:v",
        &max_frames.to_string(),
        "-q:v",
        "4",
        "-y",
    ])
    .arg(dir.join("kf-%05d.jpg"));
    // The kept frames' times are in the error output, one `showinfo` line (~300 bytes) each,
    // among whatever warnings a damaged file makes the decoder write.
    let caps = programs::Caps {
        stdout: (max_frames * 1024).max(4 << 20),
        stderr: 1 << 20,
        keep: Some("Parsed_showinfo"),
    };
    let out = programs::run_capped(cmd, "ffmpeg (keyframes)", limit, cancel, caps)
        .await
        .map_err(|e| match e {
            JobError::Program { detail, .. } => JobError::Failed(format!(
                "the video's picture could not be decoded (the file may be damaged): {detail}"
            )),
            other => other,
        })?;
    let times = shown_times(&String::from_utf8_lossy(&out.kept));
    let written = (0..).take_while(|&i| file(dir, i).exists()).count();
    if times.is_empty() || written != times.len() {
        return Err(JobError::Failed(format!(
            "the video's picture could not be decoded: {written} frames written for {} picked",
            times.len()
        )));
    }
    Ok(Keyframes { times })
}

/// `pts_time:` of each `showinfo` line.
fn shown_times(stderr: &str) -> Vec<f64> {
    stderr
        .lines()
        .filter(|l| l.contains("Parsed_showinfo"))
        .filter_map(|l| l.split("pts_time:").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|t| t.parse::<f64>().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_showinfo_times() {
        let log = "[Parsed_showinfo_3 @ 0x55] config in time_base: 1/5\n\
                   [Parsed_showinfo_3 @ 0x55] n:   0 pts:      0 pts_time:0       duration:1\n\
                   [Parsed_showinfo_3 @ 0x55] n:   1 pts:     20 pts_time:4.2     duration:1\n\
                   frame=    2 fps=0.0\n";
        assert_eq!(super::shown_times(log), vec![0.0, 4.2]);
    }
}
