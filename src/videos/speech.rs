//! Step 2's last resort: speech-to-text. The recogniser is a program of its own (whisper.cpp
//! vendors the same ggml as the embedded chat model, so the two cannot share one binary). Its
//! contract: `PROGRAM --model MODEL --language LANG --output-srt OUT.srt AUDIO.wav`, where the
//! audio is 16 kHz mono PCM; it writes the cues it heard as SRT and exits 0.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::programs;
use super::subtitles::{self, Cue};
use super::JobError;

/// The program to run: a bare name is looked for beside the server's own binary first (where
/// `cargo build` and the image put `chatapi-whisper`), then on `PATH`.
pub fn locate(program: &Path) -> PathBuf {
    let bare = program.components().count() == 1;
    if bare {
        let beside = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join(program)));
        if let Some(beside) = beside.filter(|p| p.is_file()) {
            return beside;
        }
    }
    program.to_path_buf()
}

pub struct Recogniser<'a> {
    pub program: &'a Path,
    pub model: &'a Path,
    pub language: &'a str,
}

/// The cues heard in `source`'s first `until_s` seconds (its length: nothing past it is read).
pub async fn transcribe(
    recogniser: &Recogniser<'_>,
    source: &Path,
    dir: &Path,
    until_s: f64,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<Vec<Cue>, JobError> {
    let audio = dir.join("audio.wav");
    let srt = dir.join("speech.srt");
    let until = subtitles::seconds(until_s);
    let mut extract = programs::ffmpeg("ffmpeg", programs::Input::Video);
    extract
        .args(["-loglevel", "error", "-t", &until, "-i"])
        .arg(source)
        .args([
            "-vn",
            "-sn",
            "-dn",
            "-ac",
            "1",
            "-ar",
            "16000",
            "-c:a",
            "pcm_s16le",
            // The output's own bound too: a gap in the timestamps is filled with silence.
            "-t",
            &until,
            "-y",
        ])
        .arg(&audio);
    programs::run(extract, "ffmpeg (audio)", limit, cancel).await?;
    let mut recognise = tokio::process::Command::new(recogniser.program);
    recognise
        .arg("--model")
        .arg(recogniser.model)
        .args(["--language", recogniser.language, "--output-srt"])
        .arg(&srt)
        .arg(&audio);
    // Read by `chatapi-whisper`; any other recogniser may ignore it.
    if let Some(threads) = programs::speech_threads() {
        recognise.env("CHATAPI_WHISPER_THREADS", threads.to_string());
    }
    let result = programs::run(recognise, "speech-to-text", limit, cancel).await;
    let _ = tokio::fs::remove_file(&audio).await;
    result?;
    let written = tokio::fs::metadata(&srt)
        .await
        .map_err(|e| JobError::Internal(format!("speech-to-text wrote no SRT: {e}")))?
        .len();
    if written > subtitles::MAX_SRT_BYTES as u64 {
        let _ = tokio::fs::remove_file(&srt).await;
        return Err(JobError::Failed(format!(
            "speech-to-text wrote more than {} MiB of transcript; the file is not one this server processes",
            subtitles::MAX_SRT_BYTES >> 20
        )));
    }
    let text = tokio::fs::read_to_string(&srt)
        .await
        .map_err(|e| JobError::Internal(format!("speech-to-text wrote no SRT: {e}")))?;
    let _ = tokio::fs::remove_file(&srt).await;
    let mut cues = subtitles::parse_srt(&text);
    cues.retain(|c| c.start_s <= until_s);
    Ok(cues)
}
