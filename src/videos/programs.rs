//! Running the external programs a job needs (ffprobe, ffmpeg, tesseract, speech-to-text): each
//! is a child process, so the heavy work is never on the async runtime's threads. A run is
//! bounded by `videos.step_timeout`, killed at once when its job is cancelled (the video was
//! deleted, the server is stopping), and bounded in what it may write: past `Caps::stdout` it is
//! killed and the step fails, and of its error output only the last `Caps::stderr` bytes are
//! kept (where a program says what went wrong); or its output is streamed to a blocking thread
//! (`run_reading`: decoded frames, scored as they come). `kill_on_drop` does the killing
//! whichever way the wait ends.
//!
//! Processing runs at the lowest CPU priority (`SCHED_IDLE`, and `PROCESSING_NICE` where that is
//! refused): every program started here, and the in-process work of a job (`in_background`), so
//! a call being answered on the same cores (the relay, the embedded model) goes first, and an
//! idle machine still gives processing all it has. I/O priority is left alone: the disks'
//! scheduler here and on most virtual machines (`none`) does not read it.
//!
//! ffmpeg reads only real containers (`INPUT_FORMATS`): a playlist or manifest (HLS, DASH), a
//! concat list or an image sequence names other files, and would read files of the server's
//! that are not the upload.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::JobError;

/// The demuxers an uploaded video may be read with (ffmpeg's names): containers that hold their
/// own media. Not HLS, DASH, concat, image2 and the like, which name other files; ffmpeg
/// recognises those by content, whatever the upload is called.
pub const INPUT_FORMATS: &str =
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,mpeg,ogg,flv,asf,h264,hevc,mjpeg";

/// The nice value processing runs at: the lowest priority, below everything that serves.
pub const PROCESSING_NICE: i32 = 19;

/// `videos.low_priority`, set once as the library opens (read at start only, as all of
/// `[videos]`): every program and processing thread reads it as it starts.
static LOW_PRIORITY: AtomicBool = AtomicBool::new(true);

/// Whether processing runs at `PROCESSING_NICE` (`videos.low_priority`).
pub fn set_low_priority(on: bool) {
    LOW_PRIORITY.store(on, Ordering::Relaxed);
}

/// Lowers the priority of the process or thread `id` (a child's pid, or this thread's id) to
/// `SCHED_IDLE` at `PROCESSING_NICE`. Linux keeps both per thread, and a thread starts with its
/// creator's: a program lowered as it starts runs every thread it makes at that priority. A
/// system that refuses either is logged and changes nothing else.
///
/// Nice 19 alone was not enough: it is a small share, not an order, and a request's task that
/// woke on a core running processing sometimes waited for the next scheduler tick (4 ms here):
/// speech-to-text's two threads at nice 19 took a steady load's p99 from 0.6 to 4.4–4.7 ms in
/// two runs of three, and in one its spinning threads took 82 CPU-seconds for 45. Under
/// `SCHED_IDLE` any other task preempts it on waking: p99 0.46–0.56 ms in three runs, the
/// recognition no slower.
fn lower_priority(child: Option<u32>) {
    if !LOW_PRIORITY.load(Ordering::Relaxed) {
        return;
    }
    let target = match child {
        Some(id) => match i32::try_from(id)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            Some(pid) => pid,
            // Never a pid a child has; not a reason to lower this server instead.
            None => return,
        },
        None => rustix::thread::gettid(),
    };
    if let Err(error) = rustix::process::setpriority_process(Some(target), PROCESSING_NICE) {
        tracing::warn!(%error, "could not lower processing's priority");
    }
    let param = uapi::c::sched_param { sched_priority: 0 };
    let tid = target.as_raw_nonzero().get();
    if let Err(error) = uapi::sched_setscheduler(tid, uapi::c::SCHED_IDLE, &param) {
        tracing::warn!(%error, "could not move processing to the idle scheduling class");
    }
}

/// The threads speech-to-text may use: at the lowest priority, half the cores (at least one);
/// `None` (all of them) otherwise. whisper.cpp's threads meet after every step of the model and
/// spin while they wait for each other; at the lowest priority one of them is often off its
/// core while the other spins for it. Under `chatapi-bench busy` (calls every 20 ms, the
/// embedded model answering every 5 s) two threads on two cores had spent 12.4 CPU-minutes on
/// the 10-minute talk, and were not done, where alone they take about 3.3.
pub fn speech_threads() -> Option<usize> {
    LOW_PRIORITY
        .load(Ordering::Relaxed)
        .then(|| (crate::config::cores() / 2).max(1))
}

/// Runs `work` on a thread of its own at processing's priority (`lower_priority`), off the
/// runtime and outside the blocking pool, whose threads serve requests too and could not be
/// raised back.
pub async fn in_background<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, JobError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("chatapi-processing".into())
        .spawn(move || {
            lower_priority(None);
            let _ = tx.send(work());
        })
        .map_err(|e| JobError::Internal(format!("{what}: {e}")))?;
    rx.await
        .map_err(|_| JobError::Internal(format!("{what}: its thread ended without an answer")))
}

/// What is kept of a program's output.
#[derive(Clone, Copy)]
pub struct Caps {
    /// Past this, the program is killed and the step fails.
    pub stdout: usize,
    /// Only the last this many bytes are kept.
    pub stderr: usize,
}

impl Caps {
    /// For programs whose standard output is a short answer (ffprobe's JSON, tesseract's text).
    pub const SMALL: Caps = Caps {
        stdout: 4 << 20,
        stderr: 1 << 20,
    };
}

pub struct Output {
    pub stdout: Vec<u8>,
}

/// What ffmpeg is asked to read.
pub enum Input<'a> {
    /// An uploaded video: only `INPUT_FORMATS`.
    Video,
    /// A subtitles file, read as exactly this format (`srt`, `webvtt`).
    Subtitles(&'a str),
    /// Inputs the caller adds itself (`video_input`).
    None,
}

/// `ffmpeg`/`ffprobe` with the flags every run wants: no stdin, no banner, only local files (its
/// network protocols off, so a crafted file cannot make it fetch anything), and only the
/// demuxers `input` allows. Callers add `-i` next, so the input options here apply to it.
pub fn ffmpeg(program: &str, input: Input<'_>) -> Command {
    let mut cmd = Command::new(program);
    if program == "ffmpeg" {
        // ffprobe never reads stdin and has no such flag.
        cmd.arg("-nostdin");
    }
    cmd.args(["-hide_banner", "-protocol_whitelist", "file"]);
    match input {
        Input::Video => {
            cmd.args(["-format_whitelist", INPUT_FORMATS]);
        }
        Input::Subtitles(format) => {
            cmd.args(["-format_whitelist", format, "-f", format]);
        }
        Input::None => {}
    }
    cmd
}

pub async fn run(
    cmd: Command,
    what: &'static str,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<Output, JobError> {
    run_capped(cmd, what, limit, cancel, Caps::SMALL).await
}

pub async fn run_capped(
    cmd: Command,
    what: &'static str,
    limit: Duration,
    cancel: &CancellationToken,
    caps: Caps,
) -> Result<Output, JobError> {
    let stdout = supervise(cmd, what, limit, cancel, caps.stderr, |out| {
        head(out, caps.stdout, what)
    });
    Ok(Output {
        stdout: stdout.await?,
    })
}

/// Runs `cmd` with its standard output handed to `consume` on a thread of its own (at
/// processing's priority, `in_background`) as it arrives
/// (a stream of decoded frames is read and scored there, never held whole nor worked on on the
/// runtime); bounded in time and cancellable as `run` is. Killing the program ends the stream,
/// so `consume` ends with it.
pub async fn run_reading<T: Send + 'static>(
    cmd: Command,
    what: &'static str,
    limit: Duration,
    cancel: &CancellationToken,
    consume: impl FnOnce(&mut std::fs::File) -> T + Send + 'static,
) -> Result<T, JobError> {
    let internal = move |e: &dyn std::fmt::Display| JobError::Internal(format!("{what}: {e}"));
    supervise(
        cmd,
        what,
        limit,
        cancel,
        Caps::SMALL.stderr,
        |out| async move {
            let mut out = std::fs::File::from(out.into_owned_fd().map_err(|e| internal(&e))?);
            in_background(what, move || consume(&mut out)).await
        },
    )
    .await
}

/// Starts `cmd` (no input, its outputs piped, killed when dropped), has `read` take its standard
/// output while the last `stderr_cap` bytes of its error output are kept, and bounds the whole
/// run by `limit` and `cancel`. A `read` that fails ends the run at once (the program is killed).
async fn supervise<T, F>(
    mut cmd: Command,
    what: &'static str,
    limit: Duration,
    cancel: &CancellationToken,
    stderr_cap: usize,
    read: impl FnOnce(tokio::process::ChildStdout) -> F,
) -> Result<T, JobError>
where
    F: std::future::Future<Output = Result<T, JobError>>,
{
    // The files it is given, as given: a program names them in its errors, and a relative
    // storage folder (`storage.dir = "data"`) makes no path that starts with `/`.
    let given: Vec<String> = cmd
        .as_std()
        .get_args()
        .filter_map(|a| a.to_str())
        .filter(|a| a.contains('/'))
        .map(str::to_string)
        .collect();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| JobError::Missing {
        what,
        detail: e.to_string(),
    })?;
    // Microseconds after exec, before any program here starts its worker threads.
    lower_priority(child.id());
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(JobError::Internal(format!("{what}: no pipes")));
    };
    let ran = async {
        let (out, err) = tokio::try_join!(read(stdout), tail(stderr, stderr_cap))?;
        let status = child
            .wait()
            .await
            .map_err(|e| JobError::Internal(format!("{what}: {e}")))?;
        Ok::<_, JobError>((status, out, err))
    };
    let (status, out, stderr) = tokio::select! {
        ran = ran => ran?,
        () = tokio::time::sleep(limit) => return Err(JobError::Failed(format!(
            "{what} took longer than {}s (videos.step_timeout)", limit.as_secs()
        ))),
        () = cancel.cancelled() => return Err(JobError::Cancelled),
    };
    if !status.success() {
        let detail = given.iter().fold(last_line(&stderr), |line, file| {
            line.replace(file, "the file")
        });
        return Err(JobError::Program { what, detail });
    }
    Ok(out)
}

/// Adds an uploaded video as the next input of a command with several: only `INPUT_FORMATS`,
/// read from `at_s` on, by one decoding thread (each thread of each input holds frames of its
/// own: sixteen 720p inputs with a thread per core took the process tree from 430 to 709 MiB).
pub fn video_input(cmd: &mut Command, source: &std::path::Path, at_s: f64) {
    cmd.args(["-format_whitelist", INPUT_FORMATS, "-threads", "1"])
        .args(["-ss", &format!("{at_s:.3}"), "-i"])
        .arg(source);
}

/// All of `from`, or an error once it passes `cap` bytes (the program is then killed, as the
/// run's future is dropped).
async fn head(
    mut from: impl AsyncRead + Unpin,
    cap: usize,
    what: &str,
) -> Result<Vec<u8>, JobError> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        let n = from
            .read(&mut buf)
            .await
            .map_err(|e| JobError::Internal(format!("{what}: reading its output: {e}")))?;
        if n == 0 {
            return Ok(out);
        }
        if out.len() + n > cap {
            return Err(JobError::Failed(format!(
                "{what} wrote more than {} MiB; the file is not one this server processes",
                cap >> 20
            )));
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// The last `cap` bytes of `from`, read to its end (so the program never blocks on a full pipe).
async fn tail(mut from: impl AsyncRead + Unpin, cap: usize) -> Result<Vec<u8>, JobError> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        let n = from.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() > cap.saturating_mul(2) {
            out.drain(..out.len() - cap);
        }
    }
}

/// The last non-empty line of a program's error output: where ffmpeg and friends say what went
/// wrong. Paths in it are left out: a caller reads this sentence, and the server's own file
/// paths are none of its business (the log has the whole output).
pub fn last_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no error message");
    without_paths(line).chars().take(300).collect()
}

/// `text` with every absolute path (a word starting with `/`, up to a `:` or white space)
/// replaced by `the file`.
pub fn without_paths(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('/') {
        let starts_word = at == 0
            || rest[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_whitespace() || "'\"(`[".contains(c));
        if !starts_word {
            out.push_str(&rest[..=at]);
            rest = &rest[at + 1..];
            continue;
        }
        out.push_str(&rest[..at]);
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || c == ':' || c == '\'' || c == '"' || c == ')')
            .map_or(rest.len(), |n| at + n);
        out.push_str("the file");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_not_told() {
        assert_eq!(
            last_line(b"x\n/var/lib/chatapi/videos/vid_1/source: Invalid data found when processing input\n"),
            "the file: Invalid data found when processing input"
        );
        assert_eq!(
            without_paths("1/2 of 'a/b' at /tmp/x"),
            "1/2 of 'a/b' at the file"
        );
    }

    #[tokio::test]
    async fn the_files_a_program_was_given_are_not_told() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo \"$0: Invalid argument\" >&2; exit 1",
            "data/videos/vid_1/source",
        ]);
        let err = run(
            cmd,
            "sh",
            Duration::from_secs(30),
            &CancellationToken::new(),
        )
        .await
        .err()
        .unwrap();
        assert!(
            matches!(&err, JobError::Program { detail, .. } if detail == "the file: Invalid argument"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn output_past_its_cap_kills_the_program() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "yes chatapi"]);
        let caps = Caps {
            stdout: 1 << 20,
            stderr: 1 << 10,
        };
        let cancel = CancellationToken::new();
        let started = std::time::Instant::now();
        let err = run_capped(cmd, "yes", Duration::from_secs(30), &cancel, caps)
            .await
            .err()
            .unwrap();
        assert!(
            matches!(&err, JobError::Failed(why) if why.contains("more than 1 MiB")),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn only_the_tail_of_the_error_output_is_kept() {
        let caps = Caps {
            stdout: 1 << 20,
            stderr: 1 << 16,
        };
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "head -c 3000000 /dev/zero | tr '\\0' x >&2; echo >&2; echo last words >&2; exit 3",
        ]);
        let err = run_capped(
            cmd,
            "sh",
            Duration::from_secs(30),
            &CancellationToken::new(),
            caps,
        )
        .await
        .err()
        .unwrap();
        assert!(
            matches!(&err, JobError::Program { detail, .. } if detail == "last words"),
            "{err}"
        );
    }
}
