//! The video library's own API, which the video dialects map onto: `POST /v1/videos` (a
//! multipart upload, or JSON `{"url","name"}`), `GET /v1/videos` (newest first, paged, by
//! status), `GET /v1/videos/{id}`, `/timeline`, `/keyframes/{n}.jpg`, `DELETE /v1/videos/{id}`.
//! Errors in OpenAI's envelope, keys as on every route.

use std::time::Duration;

use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::incoming::Incoming;
use super::openai::error_response;
use crate::error::ApiError;
use crate::state::AppState;
use crate::videos::model::{stamp, Status};
use crate::videos::store::Page;
use crate::videos::{url_guard, Library, LibraryError, Upload};

/// Largest subtitles file taken with an upload.
const MAX_SUBTITLES_BYTES: u64 = 10 << 20;
const MAX_NAME_CHARS: usize = 256;

pub async fn create(
    State(state): State<AppState>,
    incoming: Incoming,
    request: Request,
) -> Response {
    respond(&incoming, "create", async {
        incoming.admit()?;
        let library = library(&state)?;
        let is_multipart = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("multipart/form-data"));
        let video = if is_multipart {
            upload(library, &incoming, request, &state).await?
        } else {
            link(library, &incoming, request).await?
        };
        Ok((StatusCode::ACCEPTED, Json(video)).into_response())
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Link {
    url: String,
    #[serde(default)]
    name: Option<String>,
}

async fn link(library: &Library, incoming: &Incoming, request: Request) -> Result<Value, ApiError> {
    let limits = &incoming.runtime.config.limits;
    let (parts, body) = request.into_parts();
    let bytes = super::body::read(
        body,
        &parts.headers,
        limits.max_body_bytes,
        limits.body_timeout,
    )
    .await?;
    let link: Link = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(
            "body",
            format!("must be multipart/form-data with a `file` part, or JSON {{\"url\": ..., \"name\": ...}}: {e}"),
        )
    })?;
    let checked = url_guard::check(&link.url, library.config().allow_private_urls)
        .await
        .map_err(|e| ApiError::bad_request("url", e.to_string()))?;
    let name = match link.name {
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
    let video = library
        .add_url(checked.url.as_str(), &name)
        .await
        .map_err(storage)?;
    Ok(json!(video))
}

/// Streams the parts to disk as they arrive (a 2 GB upload never sits in memory); over
/// `videos.max_bytes` it is refused with 413 while still arriving.
async fn upload(
    library: &Library,
    incoming: &Incoming,
    request: Request,
    state: &AppState,
) -> Result<Value, ApiError> {
    let max = library.config().max_bytes;
    let idle = incoming.runtime.config.limits.body_timeout;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // The multipart framing and a subtitles file come on top of the video itself.
    if declared.is_some_and(|len| len > max.saturating_add(MAX_SUBTITLES_BYTES + (1 << 20))) {
        return Err(too_large(max));
    }
    let mut multipart = Multipart::from_request(request, state)
        .await
        .map_err(|e| ApiError::bad_request("body", e.body_text()))?;
    let staging = library.staging().await.map_err(storage)?;
    let (mut bytes, mut name, mut subtitles) = (None, None, None);
    while let Some(field) = next(multipart.next_field(), idle).await? {
        let part = field.name().unwrap_or_default().to_string();
        match part.as_str() {
            "file" => {
                if bytes.is_some() {
                    return Err(ApiError::bad_request(
                        "file",
                        "was sent twice; send one video per upload",
                    ));
                }
                let file_name = field.file_name().map(str::to_string);
                bytes = Some(save(field, &staging.source(), max, idle, "file").await?);
                if name.is_none() {
                    name = file_name;
                }
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
                    idle,
                    "subtitles",
                )
                .await?;
                subtitles = Some(ext);
            }
            "name" => {
                let text = next(field.text(), idle).await?;
                name = Some(checked_name(&text)?);
            }
            other => {
                return Err(ApiError::bad_request(
                    other.to_string(),
                    "is not a part this endpoint takes (file, subtitles, name)",
                ))
            }
        }
    }
    let bytes = bytes.ok_or_else(|| {
        ApiError::bad_request("file", "is missing: send the video as a `file` part")
    })?;
    if bytes == 0 {
        return Err(ApiError::bad_request("file", "is empty (0 bytes)"));
    }
    let upload = Upload {
        name: name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "video".into()),
        bytes,
        subtitles,
    };
    let video = library.add_upload(staging, upload).await.map_err(storage)?;
    Ok(json!(video))
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

async fn save(
    mut field: axum::extract::multipart::Field<'_>,
    path: &std::path::Path,
    max: u64,
    idle: Duration,
    part: &str,
) -> Result<u64, ApiError> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| storage(e.into()))?;
    let mut written = 0u64;
    while let Some(chunk) = next(field.chunk(), idle).await? {
        written += chunk.len() as u64;
        if written > max {
            return Err(if part == "file" {
                too_large(max)
            } else {
                ApiError::bad_request(part.to_string(), format!("is larger than {max} bytes"))
            });
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| storage(e.into()))?;
    }
    file.sync_all().await.map_err(|e| storage(e.into()))?;
    Ok(written)
}

fn too_large(max: u64) -> ApiError {
    ApiError::BodyTooLarge {
        limit: usize::try_from(max).unwrap_or(usize::MAX),
    }
}

fn checked_name(name: &str) -> Result<String, ApiError> {
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::bad_request(
            "name",
            format!("is longer than {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(name.trim().to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    offset: Option<u32>,
}

pub async fn list(
    State(state): State<AppState>,
    incoming: Incoming,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    respond(&incoming, "list", async {
        incoming.admit()?;
        let library = library(&state)?;
        let Query(query) = query.map_err(|e| ApiError::bad_request("query", e.body_text()))?;
        let status = match query.status.as_deref() {
            None => None,
            Some(s) => Some(Status::parse(s).ok_or_else(|| {
                ApiError::bad_request(
                    "status",
                    format!("`{s}` is not one of queued, processing, ready, failed"),
                )
            })?),
        };
        let limit = query.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::bad_request("limit", "must be between 1 and 100"));
        }
        let page = Page {
            status,
            limit,
            offset: query.offset.unwrap_or(0),
        };
        let (videos, has_more) = library.list(&page).await.map_err(storage)?;
        Ok(Json(json!({"object": "list", "data": videos, "has_more": has_more})).into_response())
    })
    .await
}

pub async fn get(
    State(state): State<AppState>,
    incoming: Incoming,
    Path(id): Path<String>,
) -> Response {
    respond(&incoming, "get", async {
        incoming.admit()?;
        let video = existing(library(&state)?, &id).await?;
        Ok(Json(video).into_response())
    })
    .await
}

pub async fn timeline(
    State(state): State<AppState>,
    incoming: Incoming,
    Path(id): Path<String>,
) -> Response {
    respond(&incoming, "timeline", async {
        incoming.admit()?;
        let library = library(&state)?;
        let video = existing(library, &id).await?;
        if video.status != Status::Ready {
            return Err(ApiError::NotReady {
                id,
                status: video.status.as_str(),
            });
        }
        let segments = library.timeline(&id).await.map_err(storage)?;
        let segments: Vec<Value> = segments
            .into_iter()
            .map(|s| {
                json!({
                    "stamp": stamp(s.start_s),
                    "start_s": s.start_s,
                    "end_s": s.end_s,
                    "transcript": s.transcript,
                    "on_screen_text": s.on_screen_text,
                    "caption": s.caption,
                    "keyframe": s.keyframe,
                })
            })
            .collect();
        let keyframes = library.keyframes(&id).await.map_err(storage)?;
        Ok(Json(json!({
            "object": "video.timeline",
            "video_id": video.id,
            "duration_s": video.duration_s,
            "steps": video.steps,
            "keyframes": keyframes,
            "segments": segments,
        }))
        .into_response())
    })
    .await
}

pub async fn keyframe(
    State(state): State<AppState>,
    incoming: Incoming,
    Path((id, file)): Path<(String, String)>,
) -> Response {
    respond(&incoming, "keyframe", async {
        incoming.admit()?;
        let library = library(&state)?;
        let index = file
            .strip_suffix(".jpg")
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "keyframe",
                    format!("`{file}` is not a keyframe: ask for `N.jpg`, N from 0"),
                )
            })?;
        let video = existing(library, &id).await?;
        let path = library.keyframe_file(&video.id, index);
        match tokio::fs::read(&path).await {
            Ok(jpeg) => Ok(([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::NotFound {
                what: "keyframe",
                id: format!("{id}/{index}"),
            }),
            Err(e) => Err(storage(e.into())),
        }
    })
    .await
}

pub async fn delete(
    State(state): State<AppState>,
    incoming: Incoming,
    Path(id): Path<String>,
) -> Response {
    respond(&incoming, "delete", async {
        incoming.admit()?;
        if library(&state)?.delete(&id).await.map_err(storage)? {
            Ok(Json(json!({"id": id, "object": "video.deleted", "deleted": true})).into_response())
        } else {
            Err(not_found(&id))
        }
    })
    .await
}

/// Runs a handler, renders its error in OpenAI's envelope, and writes the request's log line.
async fn respond(
    incoming: &Incoming,
    route: &'static str,
    handler: impl std::future::Future<Output = Result<Response, ApiError>>,
) -> Response {
    let started = std::time::Instant::now();
    let (response, outcome) = match handler.await {
        Ok(response) => (response, "ok".to_string()),
        Err(error) => (error_response(&error), error.code().to_string()),
    };
    tracing::info!(
        request_id = %incoming.request_id,
        route,
        status = response.status().as_u16(),
        duration_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        %outcome,
        "videos"
    );
    response
}

fn library(state: &AppState) -> Result<&Library, ApiError> {
    state.videos().map(|l| &**l).ok_or(ApiError::VideosDisabled)
}

/// The video `id`, or the 404 that names it.
async fn existing(library: &Library, id: &str) -> Result<crate::videos::model::Video, ApiError> {
    library
        .get(id)
        .await
        .map_err(storage)?
        .ok_or_else(|| not_found(id))
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound {
        what: "video",
        id: id.chars().take(100).collect(),
    }
}

fn storage(error: LibraryError) -> ApiError {
    tracing::error!(%error, "video library");
    ApiError::Storage
}
