//! Running the external programs a job needs (ffprobe, ffmpeg, tesseract, speech-to-text): each
//! is a child process, so the heavy work is never on the async runtime's threads. A run is
//! bounded by `videos.step_timeout` and killed at once when its job is cancelled (the video was
//! deleted, the server is stopping): `kill_on_drop` does it whichever way the wait ends.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::JobError;

pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// `ffmpeg`/`ffprobe` with the flags every run wants: no stdin, no banner, and only local files
/// (its network protocols off, so a crafted file cannot make it fetch anything).
pub fn ffmpeg(program: &str) -> Command {
    let mut cmd = Command::new(program);
    if program == "ffmpeg" {
        // ffprobe never reads stdin and has no such flag.
        cmd.arg("-nostdin");
    }
    cmd.args(["-hide_banner", "-protocol_whitelist", "file"]);
    cmd
}

pub async fn run(
    mut cmd: Command,
    what: &'static str,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<Output, JobError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| JobError::Missing {
        what,
        detail: e.to_string(),
    })?;
    let output = tokio::select! {
        out = child.wait_with_output() => out.map_err(|e| JobError::Internal(format!("{what}: {e}")))?,
        () = tokio::time::sleep(limit) => return Err(JobError::Failed(format!(
            "{what} took longer than {}s (videos.step_timeout)", limit.as_secs()
        ))),
        () = cancel.cancelled() => return Err(JobError::Cancelled),
    };
    if !output.status.success() {
        return Err(JobError::Program {
            what,
            detail: last_line(&output.stderr),
        });
    }
    Ok(Output {
        stdout: output.stdout,
        stderr: output.stderr,
    })
}

/// The last non-empty line of a program's error output: where ffmpeg and friends say what went
/// wrong.
pub fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no error message")
        .chars()
        .take(300)
        .collect()
}
