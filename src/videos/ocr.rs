//! Step 4: on-screen text of each keyframe, with tesseract. One process per frame, one thread
//! each: the worker pool, not tesseract, decides how many cores processing takes.

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::programs;
use super::JobError;

pub async fn read(
    image: &Path,
    language: &str,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<String, JobError> {
    let mut cmd = tokio::process::Command::new("tesseract");
    cmd.arg(image)
        .args(["stdout", "-l", language, "--psm", "3"])
        .env("OMP_THREAD_LIMIT", "1");
    let out = programs::run(cmd, "tesseract", limit, cancel).await?;
    let mut text = tidy(&String::from_utf8_lossy(&out.stdout));
    if let Some((cut, _)) = text.char_indices().nth(MAX_CHARS) {
        text.truncate(cut);
    }
    Ok(text)
}

/// Most characters read from one frame: a full screen of small print is about 4,000.
const MAX_CHARS: usize = 8_000;

/// One line of words: tesseract's line breaks and stray single symbols are layout, not text.
pub fn tidy(raw: &str) -> String {
    raw.split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn tidies() {
        assert_eq!(super::tidy("  HELLO\n\n WORLD |\n\u{c}"), "HELLO WORLD");
    }
}
