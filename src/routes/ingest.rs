//! Upload intake, shared by every route that adds a video (native and dialects alike): a
//! multipart body streamed to disk under `videos.max_bytes` and `videos.min_upload_rate`, its
//! text parts bounded, its subtitles taken; a link checked by `url_guard`; a callback URL
//! checked the same way. Errors are `ApiError`s; each dialect renders them in its own envelope.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;
use tokio::io::AsyncWriteExt;

use super::incoming::Incoming;
use crate::error::ApiError;
use crate::videos::model::Video;
use crate::videos::{url_guard, Library, LibraryError, Owner, Staging, Upload};

/// Largest subtitles file taken with an upload.
const MAX_SUBTITLES_BYTES: u64 = 10 << 20;
pub const MAX_NAME_CHARS: usize = 256;
/// Largest text part (a name, a description) taken with an upload.
const MAX_TEXT_PART_BYTES: usize = 64 << 10;
/// Most parts in one upload: the video, subtitles and a few text parts.
const MAX_PARTS: usize = 32;

pub fn is_multipart(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("multipart/form-data"))
}

/// An upload that has arrived in full: the video on disk, and the text parts the route takes.
pub struct Received {
    staging: Option<Staging>,
    bytes: u64,
    /// The file part's name, reduced to its last path component (pymavi sends the path it was
    /// given): only ever a label, never a path.
    pub file_name: Option<String>,
    subtitles: Option<&'static str>,
    pub text: BTreeMap<String, String>,
}

/// What a multipart upload may carry besides the video (`file`) and `subtitles`.
pub struct Parts<'a> {
    /// The text parts this route takes; any other part is a 400 that names it.
    pub text: &'a [&'a str],
    /// Whether the video itself may be left out (Reka: a form with `video_url` instead).
    pub file_optional: bool,
}

/// Reads a multipart body, streaming the video to disk as it arrives (a 2 GB upload never sits
/// in memory); over `videos.max_bytes` it is refused with 413 while still arriving, and slower
/// than `videos.min_upload_rate` it is cut off. Each upload holds one of
/// `videos.max_concurrent_uploads` places while it arrives, and is refused up front when its
/// tenant is over a quota or the disk is nearly full.
pub async fn receive(
    library: &Library,
    incoming: &Incoming,
    request: Request,
    parts: &Parts<'_>,
    tenant: &str,
) -> Result<Received, ApiError> {
    let max = library.config().max_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // The multipart framing and a subtitles file come on top of the video itself.
    if declared.is_some_and(|len| len > max.saturating_add(MAX_SUBTITLES_BYTES + (1 << 20))) {
        return Err(too_large(max));
    }
    let _place = library.admit_upload(tenant, declared.unwrap_or(0)).await?;
    let mut multipart = Multipart::from_request(request, incoming.state())
        .await
        .map_err(|e| ApiError::bad_request("body", e.body_text()))?;
    let staging = library.staging().await?;
    let pace = Pace {
        idle: incoming.runtime.config.limits.body_timeout,
        min_rate: library.config().min_upload_rate,
        started: std::time::Instant::now(),
        received: Default::default(),
    };
    let (bytes, file_name, subtitles, text) =
        read_parts(&mut multipart, &staging, parts, max, &pace).await?;
    let Some(bytes) = bytes else {
        if parts.file_optional {
            // No video: the text parts are all there is; the staging folder goes with it.
            return Ok(Received {
                staging: None,
                bytes: 0,
                file_name: None,
                subtitles: None,
                text,
            });
        }
        return Err(ApiError::bad_request(
            "file",
            "is missing: send the video as a `file` part",
        ));
    };
    if bytes == 0 {
        return Err(ApiError::bad_request("file", "is empty (0 bytes)"));
    }
    Ok(Received {
        staging: Some(staging),
        bytes,
        file_name,
        subtitles,
        text,
    })
}

/// How fast an upload must come: no gap longer than `idle`, and `min_rate` bytes a second on
/// average once `idle` has passed.
struct Pace {
    idle: Duration,
    min_rate: u64,
    started: std::time::Instant,
    /// Bytes of every part so far.
    received: std::sync::atomic::AtomicU64,
}

impl Pace {
    fn check(&self, more: usize) -> Result<(), ApiError> {
        use std::sync::atomic::Ordering::Relaxed;
        let received = self.received.fetch_add(more as u64, Relaxed) + more as u64;
        let elapsed = self.started.elapsed();
        let Some(past_grace) = elapsed.checked_sub(self.idle) else {
            return Ok(());
        };
        let owed = (past_grace.as_secs_f64() * self.min_rate as f64) as u64;
        if received < owed {
            return Err(ApiError::UploadTooSlow {
                min_rate: self.min_rate,
            });
        }
        Ok(())
    }
}

type Parsed = (
    Option<u64>,
    Option<String>,
    Option<&'static str>,
    BTreeMap<String, String>,
);

async fn read_parts(
    multipart: &mut Multipart,
    staging: &Staging,
    parts: &Parts<'_>,
    max: u64,
    pace: &Pace,
) -> Result<Parsed, ApiError> {
    let (mut bytes, mut file_name, mut subtitles) = (None, None, None);
    let mut text = BTreeMap::new();
    let mut count = 0;
    while let Some(field) = next(multipart.next_field(), pace.idle).await? {
        count += 1;
        if count > MAX_PARTS {
            return Err(ApiError::bad_request(
                "body",
                format!("has more than {MAX_PARTS} parts"),
            ));
        }
        let part = field.name().unwrap_or_default().to_string();
        match part.as_str() {
            "file" => {
                if bytes.is_some() {
                    return Err(ApiError::bad_request(
                        "file",
                        "was sent twice; send one video per upload",
                    ));
                }
                file_name = field.file_name().map(base_name);
                bytes = Some(save(field, &staging.source(), max, pace, "file").await?);
            }
            "subtitles" => {
                let ext = field
                    .file_name()
                    .and_then(|f| f.rsplit_once('.'))
                    .map(|(_, ext)| ext.to_ascii_lowercase());
                let ext = match ext.as_deref() {
                    Some("srt") => "srt",
                    Some("vtt") => "vtt",
                    _ => {
                        return Err(ApiError::bad_request(
                            "subtitles",
                            "must be a file named .srt or .vtt",
                        ))
                    }
                };
                save(
                    field,
                    &staging.subtitles(ext),
                    MAX_SUBTITLES_BYTES,
                    pace,
                    "subtitles",
                )
                .await?;
                subtitles = Some(ext);
            }
            name if parts.text.contains(&name) => {
                let value = text_part(field, pace, &part).await?;
                text.insert(part, value);
            }
            other => {
                let mut takes = vec!["file", "subtitles"];
                takes.extend(parts.text);
                return Err(ApiError::bad_request(
                    other.to_string(),
                    format!("is not a part this endpoint takes ({})", takes.join(", ")),
                ));
            }
        }
    }
    Ok((bytes, file_name, subtitles, text))
}

impl Received {
    /// Whether a video came with it (a Reka form may bring a `video_url` instead).
    pub fn has_file(&self) -> bool {
        self.bytes > 0
    }

    /// Files it as a new video of `owner`, named `name`, else by its file name.
    pub async fn add(
        self,
        library: &Library,
        name: Option<String>,
        owner: &Owner,
    ) -> Result<Video, ApiError> {
        let name = match name {
            Some(name) => checked_name(&name)?,
            None => self.file_name.clone().unwrap_or_default(),
        };
        let staging = self.staging.ok_or_else(|| {
            ApiError::bad_request("file", "is missing: send the video as a `file` part")
        })?;
        // Its real size, now that it is in (the first check had only what the caller declared).
        library.admit(&owner.tenant, self.bytes).await?;
        let upload = Upload {
            name: if name.trim().is_empty() {
                "video".into()
            } else {
                name
            },
            bytes: self.bytes,
            subtitles: self.subtitles,
        };
        library
            .add_upload(staging, upload, owner)
            .await
            .map_err(ApiError::from)
    }
}

/// Queues a video to be fetched from `url`, after `url_guard` let it through; named `name`, else
/// by the URL's last path segment. `field` names the request field the URL came in.
pub async fn add_link(
    library: &Library,
    url: &str,
    field: &str,
    name: Option<String>,
    owner: &Owner,
) -> Result<Video, ApiError> {
    library.admit(&owner.tenant, 0).await?;
    let checked = url_guard::check(url, library.config().allow_private_urls)
        .await
        .map_err(|e| ApiError::bad_request(field.to_string(), e.to_string()))?;
    let name = match name {
        Some(name) => checked_name(&name)?,
        None => checked
            .url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .filter(|s| !s.is_empty())
            .unwrap_or("video")
            .chars()
            .take(MAX_NAME_CHARS)
            .collect(),
    };
    library
        .add_url(checked.url.as_str(), &name, owner)
        .await
        .map_err(ApiError::from)
}

/// A callback URL, checked now (so a refused one is the caller's 400, not a silent failure
/// later) and again on every delivery.
pub async fn checked_callback(
    library: &Library,
    url: Option<String>,
    field: &str,
) -> Result<Option<String>, ApiError> {
    let Some(url) = url.filter(|u| !u.trim().is_empty()) else {
        return Ok(None);
    };
    url_guard::check(&url, library.config().allow_private_urls)
        .await
        .map_err(|e| ApiError::bad_request(field.to_string(), e.to_string()))?;
    Ok(Some(url))
}

/// A form's fields, multipart (with or without a video) or `application/x-www-form-urlencoded`
/// (text only), for the dialects that take either.
pub async fn receive_form(
    library: &Library,
    incoming: &Incoming,
    request: Request,
    parts: &Parts<'_>,
    tenant: &str,
) -> Result<Received, ApiError> {
    if is_multipart(&request) {
        return receive(library, incoming, request, parts, tenant).await;
    }
    let (head, body) = request.into_parts();
    let bytes =
        super::body::within_limits(body, &head.headers, &incoming.runtime.config.limits).await?;
    let mut text = BTreeMap::new();
    for (key, value) in url::form_urlencoded::parse(&bytes) {
        if !parts.text.contains(&key.as_ref()) {
            return Err(ApiError::bad_request(
                key.into_owned(),
                format!(
                    "is not a field this endpoint takes ({})",
                    parts.text.join(", ")
                ),
            ));
        }
        text.insert(key.into_owned(), value.into_owned());
    }
    Ok(Received {
        staging: None,
        bytes: 0,
        file_name: None,
        subtitles: None,
        text,
    })
}

pub fn checked_name(name: &str) -> Result<String, ApiError> {
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::bad_request(
            "name",
            format!("is longer than {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(name.trim().to_string())
}

/// The last component of a path a client sent as a file name, `/` or `\` separated.
fn base_name(name: &str) -> String {
    name.rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .take(MAX_NAME_CHARS)
        .collect()
}

/// One multipart step, with the body's idle limit: a caller that stops sending is let go.
async fn next<T>(
    step: impl std::future::Future<Output = Result<T, axum::extract::multipart::MultipartError>>,
    idle: Duration,
) -> Result<T, ApiError> {
    match tokio::time::timeout(idle, step).await {
        Err(_) => Err(ApiError::BodyTimeout(idle)),
        Ok(Err(e)) => Err(ApiError::bad_request("body", e.body_text())),
        Ok(Ok(v)) => Ok(v),
    }
}

/// A text part, read chunk by chunk and refused the moment it passes `MAX_TEXT_PART_BYTES`: a
/// part of hundreds of MiB (with chunked encoding nothing declares its size) is never held.
async fn text_part(
    mut field: axum::extract::multipart::Field<'_>,
    pace: &Pace,
    part: &str,
) -> Result<String, ApiError> {
    let mut value = Vec::new();
    while let Some(chunk) = next(field.chunk(), pace.idle).await? {
        pace.check(chunk.len())?;
        if value.len() + chunk.len() > MAX_TEXT_PART_BYTES {
            return Err(ApiError::bad_request(
                part.to_string(),
                format!("is longer than {MAX_TEXT_PART_BYTES} bytes"),
            ));
        }
        value.extend_from_slice(&chunk);
    }
    String::from_utf8(value)
        .map_err(|_| ApiError::bad_request(part.to_string(), "is not UTF-8 text"))
}

async fn save(
    mut field: axum::extract::multipart::Field<'_>,
    path: &std::path::Path,
    max: u64,
    pace: &Pace,
    part: &str,
) -> Result<u64, ApiError> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| ApiError::from(LibraryError::from(e)))?;
    let mut written = 0u64;
    while let Some(chunk) = next(field.chunk(), pace.idle).await? {
        written += chunk.len() as u64;
        pace.check(chunk.len())?;
        if written > max {
            return Err(if part == "file" {
                too_large(max)
            } else {
                ApiError::bad_request(part.to_string(), format!("is larger than {max} bytes"))
            });
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| ApiError::from(LibraryError::from(e)))?;
    }
    file.sync_all()
        .await
        .map_err(|e| ApiError::from(LibraryError::from(e)))?;
    Ok(written)
}

fn too_large(max: u64) -> ApiError {
    ApiError::BodyTooLarge {
        limit: usize::try_from(max).unwrap_or(usize::MAX),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_sent_path_is_only_a_name() {
        assert_eq!(super::base_name("../clips/a.mp4"), "a.mp4");
        assert_eq!(super::base_name("C:\\v\\b.mp4"), "b.mp4");
        assert_eq!(super::base_name("c.mp4"), "c.mp4");
    }
}
