//! Mavera under `/api/v1/`: video analyses. `POST /video-analyses` (JSON with `video_url`, or a
//! multipart upload with a `file`), `GET /video-analyses` (`limit`, `offset`, `status`),
//! `GET`/`DELETE /video-analyses/{id}`, and `POST /video-analyses/{id}/chat` (1–50 `messages`,
//! `stream`), which answers as OpenAI's Responses API does: a `response` object, or the event
//! stream the official SDK's `responses.stream` helper reads (the OpenAI front door's encoder);
//! and `POST /responses`, the Responses API itself, an analysis named in its input.
//! An analysis is a library video: `pending` (queued), `generating`, `completed`, `failed`; its
//! `chunks` are the timeline's segments. Errors: `{"error":{"message","type","code","param"}}`.

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
use super::openai::responses::{serve, whole_response, Door, ResponsesEncoder};
use super::reply::{self, Decoded, Reply};
use super::respond::respond;
use crate::access_log::Record;
use crate::answer::video_chat::VideoAsk;
use crate::error::ApiError;
use crate::persona::CallerOptions;
use crate::state::AppState;
use crate::videos::excerpt::Range;
use crate::videos::model::{Status, Video};
use crate::videos::{Library, Owner, Page};

const DIALECT: &str = "mavera";
const MAX_MESSAGES: usize = 50;
/// The fields an analysis takes besides the video, kept and given back as they came.
const LABELS: &[&str] = &[
    "title",
    "brand",
    "product",
    "primary_intent",
    "goal",
    "asset_id",
];

/// Mavera's video-analysis routes, under its own paths.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/video-analyses",
            post(create).get(list).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/v1/video-analyses/{id}",
            routing::get(self::get).delete(delete),
        )
        .route("/api/v1/video-analyses/{id}/chat", post(chat))
        .route("/api/v1/responses", post(responses))
}

/// Mavera's error envelope, with its codes.
pub fn error_response(error: &ApiError) -> Response {
    let (kind, code) = match error {
        ApiError::Unauthorized => ("authentication_error", "invalid_api_key"),
        ApiError::NotFound { .. } => ("invalid_request_error", "resource_not_found"),
        ApiError::NotReady { .. } => ("invalid_request_error", "analysis_not_completed"),
        ApiError::BadRequest { problem, .. } if problem.starts_with("is required") => {
            ("invalid_request_error", "missing_field")
        }
        ApiError::BadRequest { .. } => ("invalid_request_error", "invalid_field"),
        ApiError::RateLimited { .. } => ("rate_limit_error", "rate_limit_exceeded"),
        other => other.openai_type_and_code(),
    };
    let message = match error {
        ApiError::NotReady { id, status } => format!(
            "analysis {id} is {} (status {}); chat needs it completed",
            if *status == "failed" {
                "failed"
            } else {
                "not completed yet"
            },
            analysis_status(Status::parse(status).unwrap_or(Status::Queued))
        ),
        other => other.to_string(),
    };
    let body =
        json!({"error": {"message": message, "type": kind, "code": code, "param": error.param()}});
    error.respond(error.status(), body.to_string())
}

fn analysis_status(status: Status) -> &'static str {
    match status {
        Status::Queued => "pending",
        Status::Processing => "generating",
        Status::Ready => "completed",
        Status::Failed => "failed",
    }
}

/// The analysis object; `chunks` (and the aggregated transcript) when the timeline is given.
fn analysis(video: &Video, timeline: Option<&[crate::videos::model::Segment]>) -> Value {
    let mut a = json!({
        "id": video.id,
        "object": "video_analysis",
        "status": analysis_status(video.status),
        "title": video.labels.get("title").cloned().unwrap_or_else(|| json!(video.name)),
        "created_at": video.created_at,
        "updated_at": video.ready_at.unwrap_or(video.created_at),
        "duration": video.duration_s,
        "error": video.error,
        "progress": {
            "total_chunks": timeline.map_or(0, <[_]>::len),
            "processed_chunks": if video.status == Status::Ready { timeline.map_or(0, <[_]>::len) } else { 0 },
        },
    });
    for key in LABELS.iter().filter(|k| **k != "title") {
        if let Some(value) = video.labels.get(*key) {
            a[*key] = value.clone();
        }
    }
    if let Some(segments) = timeline {
        a["chunks"] = json!(segments
            .iter()
            .enumerate()
            .map(|(i, s)| json!({
                "index": i,
                "start_time": s.start_s,
                "end_time": s.end_s,
                "transcript": s.transcript,
                "image_description": image_description(s),
            }))
            .collect::<Vec<_>>());
        let transcript: Vec<&str> = segments
            .iter()
            .map(|s| s.transcript.as_str())
            .filter(|t| !t.is_empty())
            .collect();
        a["results"] = json!({"aggregated_transcript": transcript.join(" ")});
    }
    a
}

/// What was seen, and the text on screen, as one description.
fn image_description(s: &crate::videos::model::Segment) -> String {
    [s.caption.as_str(), s.on_screen_text.as_str()]
        .iter()
        .filter(|t| !t.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" — ")
}

pub async fn create(incoming: Incoming, request: Request) -> Response {
    respond(&incoming, "mavera.create", error_response, async {
        let (caller, library) = incoming.admit_to_library().await?;
        let mut owner = Owner {
            tenant: caller.tenant,
            ..Owner::default()
        };
        let video = if is_multipart(&request) {
            let parts = Parts {
                text: LABELS,
                file_optional: false,
            };
            let received = receive(library, &incoming, request, &parts, &owner.tenant).await?;
            for (k, v) in &received.text {
                owner.labels.insert(k.clone(), json!(v));
            }
            let title = received.text.get("title").cloned();
            received.add(library, title, &owner).await?
        } else {
            let limits = &incoming.runtime.config.limits;
            let (head, body) = request.into_parts();
            let bytes = super::body::read(body, &head.headers, limits.max_body_bytes, limits.body_timeout).await?;
            let mut fields: serde_json::Map<String, Value> = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::bad_request("body", format!("must be a JSON object with `video_url`: {e}")))?;
            let url = match fields.remove("video_url") {
                Some(Value::String(url)) if !url.is_empty() => url,
                Some(_) => return Err(ApiError::bad_request("video_url", "must be a URL")),
                None if fields.contains_key("asset_id") => {
                    return Err(ApiError::bad_request(
                        "asset_id",
                        "is not supported by chatapi (it has no Files API): send `video_url`, or upload the video as multipart `file`",
                    ))
                }
                None => return Err(ApiError::bad_request("video_url", "is required")),
            };
            for (k, v) in fields {
                if !LABELS.contains(&k.as_str()) {
                    return Err(ApiError::bad_request(k, format!("is not a field this endpoint takes (video_url, {})", LABELS.join(", "))));
                }
                owner.labels.insert(k, v);
            }
            let title = owner.labels.get("title").and_then(Value::as_str).map(str::to_string);
            add_link(library, &url, "video_url", title, &owner).await?
        };
        Ok((StatusCode::CREATED, Json(analysis(&video, None))).into_response())
    })
    .await
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    offset: Option<u32>,
    #[serde(default)]
    status: Option<String>,
}

pub async fn list(incoming: Incoming, query: Result<Query<ListQuery>, QueryRejection>) -> Response {
    respond(&incoming, "mavera.list", error_response, async {
        let (caller, library) = incoming.admit_to_library().await?;
        let Query(q) = query?;
        let statuses = match q.status.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("") => vec![],
            Some("pending") => vec![Status::Queued],
            Some("generating") => vec![Status::Processing],
            Some("completed") => vec![Status::Ready],
            Some("failed") => vec![Status::Failed],
            Some(other) => {
                return Err(ApiError::bad_request(
                    "status",
                    format!("`{other}` is not one of pending, generating, completed, failed"),
                ))
            }
        };
        let limit = q.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::bad_request("limit", "must be between 1 and 100"));
        }
        let page = Page {
            tenant: caller.tenant,
            statuses,
            limit,
            offset: q.offset.unwrap_or(0),
            ..Page::default()
        };
        let (videos, has_more) = library.list(&page).await?;
        let total = library.count(&page).await?;
        let data: Vec<Value> = videos.iter().map(|v| analysis(v, None)).collect();
        Ok(
            Json(json!({"object": "list", "data": data, "has_more": has_more, "total": total}))
                .into_response(),
        )
    })
    .await
}

pub async fn get(incoming: Incoming, Path(id): Path<String>) -> Response {
    respond(&incoming, "mavera.get", error_response, async {
        let (caller, library) = incoming.admit_to_library().await?;
        let video = library.owned(&caller.tenant, &id).await?;
        let timeline = timeline_if_ready(library, &video).await?;
        Ok(Json(analysis(&video, timeline.as_deref())).into_response())
    })
    .await
}

async fn timeline_if_ready(
    library: &Library,
    video: &Video,
) -> Result<Option<Vec<crate::videos::model::Segment>>, ApiError> {
    if video.status != Status::Ready {
        return Ok(None);
    }
    Ok(Some(library.timeline(&video.id).await?))
}

pub async fn delete(incoming: Incoming, Path(id): Path<String>) -> Response {
    respond(&incoming, "mavera.delete", error_response, async {
        let caller = incoming.admit().await?;
        incoming.library()?.delete(&caller.tenant, &id).await?;
        let deleted = json!({"id": id, "object": "video_analysis.deleted", "deleted": true});
        Ok(Json(deleted).into_response())
    })
    .await
}

#[derive(Deserialize)]
struct ChatBody {
    messages: Vec<reply::TextMessage>,
    #[serde(default)]
    stream: bool,
}

/// `POST /api/v1/responses`: OpenAI's Responses API as Mavera serves it, so the openai SDK's
/// `client.responses.create` (and `.stream`) works unchanged; an analysis named in the input
/// (`{"type": "input_video", "video_url": "<analysis id>"}`) grounds the answer. Mavera's
/// persona answers whatever `model` says.
pub async fn responses(incoming: Incoming, request: Request) -> Response {
    const MAVERA: Door = Door {
        dialect: DIALECT,
        persona: |config| Some(&config.video_chat.mavera),
        error: error_response,
    };
    serve(incoming, request, &MAVERA).await
}

pub async fn chat(incoming: Incoming, Path(id): Path<String>, request: Request) -> Response {
    let decode = async |_: &mut Record| {
        let (caller, bytes) = super::body::admitted_to_answer(&incoming, request).await?;
        let body: ChatBody = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(
                "body",
                format!(
                    "must be {{\"messages\": [{{\"role\", \"content\"}}], \"stream\": bool}}: {e}"
                ),
            )
        })?;
        if body.messages.is_empty() || body.messages.len() > MAX_MESSAGES {
            return Err(ApiError::bad_request(
                "messages",
                format!("must hold between 1 and {MAX_MESSAGES} messages"),
            ));
        }
        let messages = reply::conversation(body.messages)?;
        let persona = caller.runtime.config.video_chat.mavera.clone();
        let ask = VideoAsk {
            persona: persona.clone(),
            videos: vec![(id, Range::default())],
            messages,
            // A response always carries its usage.
            options: CallerOptions {
                include_usage: true,
                ..CallerOptions::default()
            },
        };
        Ok(Decoded {
            caller,
            ask,
            stream: body.stream,
            kept: persona,
        })
    };
    let reply = reply::video(&incoming, DIALECT, decode, |_, basis, persona| {
        ResponsesEncoder::new(persona, basis)
    });
    match reply.await {
        Ok(Reply::Streaming(response)) => response,
        Ok(Reply::Whole {
            whole,
            basis,
            asked: (_, persona),
        }) => whole_response(&persona, &whole, basis.as_ref()),
        Err(failed) => error_response(&failed.error),
    }
}
