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
    Ok(tidy(&String::from_utf8_lossy(&out.stdout)))
}

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
