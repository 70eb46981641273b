//! The video library's own API, which the video dialects map onto: `POST /v1/videos` (a
//! multipart upload, or JSON `{"url","name"}`), `GET /v1/videos` (newest first, paged, by
//! status), `GET /v1/videos/{id}`, `/timeline`, `DELETE /v1/videos/{id}`; each video with the
//! links a browser fetches its media by (`routes::media`: `/media`, `/keyframes/{n}.jpg`).
//! Errors in OpenAI's envelope, keys as on every route.

use axum::extract::rejection::QueryRejection;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, Query, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{self, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::incoming::Incoming;
use super::ingest::{add_link, is_multipart, receive, Parts};
use super::media::{keyframes_with_links, with_links, Links};
use super::openai::error_response;
use super::respond::respond;
use crate::error::ApiError;
use crate::state::AppState;
use crate::videos::model::{stamp, Status};
use crate::videos::{Library, Owner, Page};

/// The library's own API, `/v1/videos` (and search across it, `/v1/search`).
pub fn router() -> Router<AppState> {
    Router::new()
        // Uploads stream to disk under `videos.max_bytes`, not axum's in-memory body limit.
        .route(
            "/v1/videos",
            post(create).get(list).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/videos/{id}", routing::get(self::get).delete(delete))
        .route("/v1/videos/{id}/timeline", routing::get(timeline))
        .route("/v1/videos/{id}/media", routing::get(super::media::source))
        .route(
            "/v1/videos/{id}/keyframes/{file}",
            routing::get(super::media::keyframe),
        )
        .route("/v1/videos/{id}/summaries", post(super::digests::summaries))
        .route("/v1/videos/{id}/gist", post(super::digests::gist))
        .route("/v1/videos/{id}/analyze", post(super::digests::analyze))
        .route("/v1/search", post(super::search::search))
}

pub async fn create(incoming: Incoming, request: Request) -> Response {
    respond(&incoming, "create", error_response, async {
        let (caller, library) = incoming.admit_to_library().await?;
        let owner = Owner {
            tenant: caller.tenant,
            ..Owner::default()
        };
        let video = if is_multipart(&request) {
            let parts = Parts {
                text: &["name"],
                file_optional: false,
            };
            let received = receive(library, &incoming, request, &parts, &owner.tenant).await?;
            let name = received.text.get("name").cloned();
            received.add(library, name, &owner).await?
        } else {
            let link = link(&incoming, request).await?;
            add_link(library, &link.url, "url", link.name, &owner).await?
        };
        Ok((StatusCode::ACCEPTED, Json(video)).into_response())
    })
    .await
}

/// A video to fetch from a link (`POST /v1/videos` with JSON; MCP's `add_video_from_url`).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// The video file's http(s) URL.
    pub url: String,
    /// What to call it; by default the URL's last path segment.
    #[serde(default)]
    pub name: Option<String>,
}

async fn link(incoming: &Incoming, request: Request) -> Result<Link, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes =
        super::body::within_limits(body, &parts.headers, &incoming.runtime.config.limits).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(
            "body",
            format!("must be multipart/form-data with a `file` part, or JSON {{\"url\": ..., \"name\": ...}}: {e}"),
        )
    })
}

/// Which videos to list (`GET /v1/videos`'s query; MCP's `list_videos`).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only videos in this state: queued, processing, ready or failed.
    #[serde(default)]
    status: Option<String>,
    /// How many, newest first: 1 to 100 (default 20).
    #[serde(default)]
    limit: Option<u32>,
    /// How many of the newest to skip, for the next page.
    #[serde(default)]
    offset: Option<u32>,
}

pub async fn list(incoming: Incoming, query: Result<Query<ListQuery>, QueryRejection>) -> Response {
    respond(&incoming, "list", error_response, async {
        let (caller, library) = incoming.admit_to_library().await?;
        let Query(query) = query?;
        Ok(Json(listing(&incoming, library, &caller.tenant, query).await?).into_response())
    })
    .await
}

/// A page of `tenant`'s videos, each with its links, as `GET /v1/videos` answers.
pub async fn listing(
    incoming: &Incoming,
    library: &Library,
    tenant: &str,
    query: ListQuery,
) -> Result<Value, ApiError> {
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
        tenant: tenant.to_string(),
        statuses: status.into_iter().collect(),
        limit,
        offset: query.offset.unwrap_or(0),
        ..Page::default()
    };
    let (videos, has_more) = library.list(&page).await?;
    let data: Vec<Value> = videos.iter().map(|v| with_links(incoming, v)).collect();
    Ok(json!({"object": "list", "data": data, "has_more": has_more}))
}

pub async fn get(incoming: Incoming, Path(id): Path<String>) -> Response {
    respond(&incoming, "get", error_response, async {
        let caller = incoming.admit().await?;
        let video = incoming.library()?.owned(&caller.tenant, &id).await?;
        Ok(Json(with_links(&incoming, &video)).into_response())
    })
    .await
}

pub async fn timeline(incoming: Incoming, Path(id): Path<String>) -> Response {
    respond(&incoming, "timeline", error_response, async {
        let (caller, library) = incoming.admit_to_library().await?;
        Ok(Json(timeline_of(&incoming, library, &caller.tenant, &id).await?).into_response())
    })
    .await
}

/// A ready video's timeline (segments, their cues, keyframes with links), as
/// `GET /v1/videos/{id}/timeline` answers.
pub async fn timeline_of(
    incoming: &Incoming,
    library: &Library,
    tenant: &str,
    id: &str,
) -> Result<Value, ApiError> {
    let video = library.ready(tenant, id).await?;
    let segments = library.timeline(id).await?;
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
                "cues": s.cues(),
            })
        })
        .collect();
    let keyframes = library.keyframes(id).await?;
    let links = Links::of(incoming, &video);
    let keyframes = keyframes_with_links(&links, &keyframes);
    Ok(json!({
        "object": "video.timeline",
        "video_id": video.id,
        "media_url": links.media(),
        "duration_s": video.duration_s,
        "steps": video.steps,
        "keyframes": keyframes,
        "segments": segments,
    }))
}

pub async fn delete(incoming: Incoming, Path(id): Path<String>) -> Response {
    respond(&incoming, "delete", error_response, async {
        let caller = incoming.admit().await?;
        incoming.library()?.delete(&caller.tenant, &id).await?;
        Ok(Json(deleted(&id)).into_response())
    })
    .await
}

/// What a deletion answers.
pub fn deleted(id: &str) -> Value {
    json!({"id": id, "object": "video.deleted", "deleted": true})
}
