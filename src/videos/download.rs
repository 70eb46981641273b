//! URL ingest: fetch a video to a local file (ffmpeg never sees a URL). Redirects are followed
//! by hand so every hop goes through `url_guard` again, and each hop connects only to the
//! addresses its check resolved. Bounded in bytes, time and hops; the body streams to disk.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::url_guard;
use super::JobError;

pub struct Limits {
    pub max_bytes: u64,
    pub timeout: Duration,
    pub max_redirects: usize,
    pub allow_private: bool,
}

/// Downloads `url` into `dest` (written beside it, renamed when complete); returns its size.
pub async fn fetch(
    url: &str,
    dest: &Path,
    limits: &Limits,
    cancel: &CancellationToken,
) -> Result<u64, JobError> {
    let part = dest.with_extension("part");
    let result = tokio::select! {
        r = tokio::time::timeout(limits.timeout, fetch_to(url, &part, limits)) => r.unwrap_or_else(|_| Err(JobError::Failed(format!(
            "the download did not finish within {}s (videos.url_timeout)", limits.timeout.as_secs()
        )))),
        () = cancel.cancelled() => Err(JobError::Cancelled),
    };
    match result {
        Ok(bytes) => {
            tokio::fs::rename(&part, dest)
                .await
                .map_err(|e| JobError::Internal(format!("saving the download: {e}")))?;
            Ok(bytes)
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            Err(e)
        }
    }
}

async fn fetch_to(url: &str, part: &Path, limits: &Limits) -> Result<u64, JobError> {
    let mut next = url.to_string();
    for _hop in 0..=limits.max_redirects {
        let checked = url_guard::check(&next, limits.allow_private)
            .await
            .map_err(|e| JobError::Failed(format!("the video URL was refused: {e}")))?;
        let client = checked
            .client()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| JobError::Internal(format!("http client: {e}")))?;
        let response = client.get(checked.url.clone()).send().await.map_err(|e| {
            JobError::Failed(format!(
                "the video URL could not be fetched: {}",
                without_url(e)
            ))
        })?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    JobError::Failed(format!(
                        "the video URL answered {status} without a Location"
                    ))
                })?;
            next = checked
                .url
                .join(location)
                .map_err(|_| {
                    JobError::Failed(format!(
                        "the video URL redirected to an invalid URL `{location}`"
                    ))
                })?
                .to_string();
            continue;
        }
        if !status.is_success() {
            return Err(JobError::Failed(format!("the video URL answered {status}")));
        }
        if response
            .content_length()
            .is_some_and(|n| n > limits.max_bytes)
        {
            return Err(too_big(limits.max_bytes));
        }
        return save(response, part, limits.max_bytes).await;
    }
    Err(JobError::Failed(format!(
        "the video URL redirected more than {} times (videos.url_max_redirects)",
        limits.max_redirects
    )))
}

async fn save(response: reqwest::Response, part: &Path, max_bytes: u64) -> Result<u64, JobError> {
    let mut file = tokio::fs::File::create(part)
        .await
        .map_err(|e| JobError::Internal(format!("creating {}: {e}", part.display())))?;
    let mut written = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk
            .map_err(|e| JobError::Failed(format!("the download broke off: {}", without_url(e))))?;
        written += chunk.len() as u64;
        if written > max_bytes {
            return Err(too_big(max_bytes));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| JobError::Internal(format!("writing the download: {e}")))?;
    }
    file.sync_all()
        .await
        .map_err(|e| JobError::Internal(format!("writing the download: {e}")))?;
    Ok(written)
}

fn too_big(max: u64) -> JobError {
    JobError::Failed(format!(
        "the video at the URL is larger than this server takes ({max} bytes, videos.max_bytes)"
    ))
}

/// reqwest's message without the URL (the caller knows it; it may carry a token).
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    match std::error::Error::source(&e) {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    }
}
