//! Reka Vision under `/v2/`, as the official `reka-mcp` client speaks it: `POST /v2/videos`
//! (multipart `file`, or a form with `video_url`; `video_name`, `description`, `group_id`),
//! `GET /v2/videos` (repeated `ids=`), `GET`/`DELETE /v2/videos/{id}`, the feature plan and
//! triggers, the `transcript` and `captions` listings (`start`/`end`, `page_limit`,
//! `page_token`), and `POST /v2/chat` (`messages` ending with a user turn, `context` of 1–5
//! `{video_id, start?, end?}`) → `{"response","model"}`; no streaming, as at Reka.
//!
//! Features map onto the library's processing: `transcript` and `captions` follow the video
//! (`pending`, `processing`, `ready`, `failed`). Without a vision upstream, captions are made of
//! the on-screen text and what was said, so they still become `ready` and reka-mcp's pipelines
//! finish. `embeddings` are the segment vectors of search by meaning (`POST /v2/search`).
//!
//! Errors: `{"error":{"type","message","param"}}` with `X-Request-ID`. reka-mcp retries any
//! status ≥ 500 three times, `/v2/chat` included, so an upstream failure (already retried and
//! failed over here) is answered 424, not 502: one model call is not made into four.

use axum::extract::rejection::QueryRejection;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, Query, RawQuery, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{self, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::incoming::Incoming;
use super::ingest::{add_link, receive_form, Parts};
use super::reply::{self, Decoded, Reply, Unstreamed};
use super::respond::respond;
use super::search;
use crate::access_log::Record;
use crate::answer::video_chat::VideoAsk;
use crate::error::{ApiError, ErrorKind};
use crate::state::AppState;
use crate::videos::excerpt::Range;
use crate::videos::model::{Segment, Status, Video};
use crate::videos::search::{self as core_search, Mode};
use crate::videos::Owner;

const DIALECT: &str = "reka";
const MAX_CONTEXT: usize = 5;
const FEATURES: &[&str] = &["transcript", "captions", "embeddings"];

/// Reka Vision's v2 routes, under its own paths.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v2/videos",
            post(create).get(list).layer(DefaultBodyLimit::disable()),
        )
        .route("/v2/videos/{id}", routing::get(self::get).delete(delete))
        .route("/v2/videos/{id}/features/plan", post(plan))
        .route("/v2/videos/{id}/features/{feature}", post(trigger))
        .route("/v2/videos/{id}/transcript", routing::get(transcript))
        .route("/v2/videos/{id}/captions", routing::get(captions))
        .route("/v2/chat", post(chat))
        .route("/v2/search", post(search))
}

pub fn error_response(error: &ApiError) -> Response {
    let kind = match (error.kind(), error) {
        (ErrorKind::Unauthorized, _) => "authentication_error",
        (ErrorKind::NotFound, _) => "not_found_error",
        (ErrorKind::RateLimited, _) => "rate_limit_error",
        // Whatever the upstream said, it is the upstream's failure (Reka's 424).
        (_, ApiError::Upstream(_)) => "upstream_error",
        (ErrorKind::Unavailable | ErrorKind::Internal | ErrorKind::Timeout, _) => "server_error",
        (ErrorKind::InvalidRequest | ErrorKind::Upstream, _) => "validation_error",
    };
    let status = match error {
        ApiError::Upstream(_) => StatusCode::FAILED_DEPENDENCY,
        other => other.status(),
    };
    let message =
        match error {
            // Reka names the features a chat still waits for.
            ApiError::NotReady { id, status } if *status != "failed" => {
                format!(
            "video {id} is not ready for chat: features transcript and captions are still {}",
            if *status == "queued" { "pending" } else { "processing" }
        )
            }
            other => other.to_string(),
        };
    let body = json!({"error": {"type": kind, "message": message, "param": error.param()}});
    error.respond(status, body.to_string())
}

fn video_status(video: &Video) -> &'static str {
    match video.status {
        Status::Failed => "failed",
        Status::Queued if video.source.kind == "url" => "uploading",
        _ => "uploaded",
    }
}

fn feature_status(video: &Video, feature: &str) -> &'static str {
    if feature == "embeddings" && video.status == Status::Ready {
        // Made by the last step; a video ready before search existed gets them at start.
        return match &video.steps.embeddings {
            Some(step) if step.note.is_none() => "ready",
            Some(_) => "failed",
            None => "processing",
        };
    }
    match video.status {
        Status::Queued => "pending",
        Status::Processing => "processing",
        Status::Ready => "ready",
        Status::Failed => "failed",
    }
}

fn features(video: &Video) -> Value {
    let map: serde_json::Map<String, Value> = FEATURES
        .iter()
        .map(|f| (f.to_string(), json!(feature_status(video, f))))
        .collect();
    Value::Object(map)
}

fn metadata(video: &Video) -> Value {
    json!({
        "width": video.width,
        "height": video.height,
        "avg_fps": null,
        "video_name": video.name,
        "title": null,
        "duration": video.duration_s,
        "thumbnail": null,
        "description": video.labels.get("description"),
        "source": video.source.url,
    })
}

fn video_json(video: &Video) -> Value {
    json!({
        "video_id": video.id,
        "url": null,
        "status": video_status(video),
        "metadata": metadata(video),
        "features": features(video),
        "group_id": video.labels.get("group_id"),
        "error": video.error,
    })
}

pub async fn create(incoming: Incoming, request: Request) -> Response {
    respond(&incoming, "reka.create", error_response, async {
        let (caller, library) = incoming.admit_to_library().await?;
        let parts = Parts {
            text: &["video_url", "video_name", "description", "group_id"],
            file_optional: true,
        };
        let form = receive_form(library, &incoming, request, &parts, &caller.tenant).await?;
        let mut owner = Owner {
            tenant: caller.tenant,
            ..Owner::default()
        };
        for key in ["description", "group_id"] {
            if let Some(value) = form.text.get(key).filter(|v| !v.is_empty()) {
                owner.labels.insert(key.into(), json!(value));
            }
        }
        let name = form.text.get("video_name").cloned().filter(|n| !n.is_empty());
        let url = form.text.get("video_url").cloned().filter(|u| !u.is_empty());
        let video = match (form.has_file(), url) {
            (true, Some(_)) => {
                return Err(ApiError::bad_request(
                    "video_url",
                    "send either a `file` or a `video_url`, not both",
                ))
            }
            (true, None) => form.add(library, name, &owner).await?,
            (false, Some(url)) => add_link(library, &url, "video_url", name, &owner).await?,
            (false, None) => {
                return Err(ApiError::bad_request(
                    "file",
                    "is required: send the video as a `file` part, or a `video_url`",
                ))
            }
        };
        Ok(Json(json!({"video_id": video.id, "status": video_status(&video), "metadata": metadata(&video)})).into_response())
    })
    .await
}

pub async fn list(incoming: Incoming, RawQuery(query): RawQuery) -> Response {
    respond(&incoming, "reka.list", error_response, async {
        let (caller, library) = incoming.admit_to_library().await?;
        let ids: Vec<String> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .filter(|(k, _)| k == "ids")
            .map(|(_, v)| v.into_owned())
            .collect();
        let videos = if ids.is_empty() {
            let page = crate::videos::Page {
                tenant: caller.tenant,
                limit: 200,
                ..Default::default()
            };
            library.list(&page).await?.0
        } else {
            let mut found = Vec::new();
            for id in &ids {
                if let Some(v) = library.get(&caller.tenant, id).await? {
                    found.push(v);
                }
            }
            found
        };
        let results: Vec<Value> = videos.iter().map(video_json).collect();
        Ok(Json(json!({"results": results})).into_response())
    })
    .await
}

pub async fn get(incoming: Incoming, Path(id): Path<String>) -> Response {
    respond(&incoming, "reka.get", error_response, async {
        let caller = incoming.admit().await?;
        let video = incoming.library()?.owned(&caller.tenant, &id).await?;
        Ok(Json(video_json(&video)).into_response())
    })
    .await
}

pub async fn delete(incoming: Incoming, Path(id): Path<String>) -> Response {
    respond(&incoming, "reka.delete", error_response, async {
        let caller = incoming.admit().await?;
        incoming.library()?.delete(&caller.tenant, &id).await?;
        let deleted = json!({"status": "deleted", "message": format!("video {id} deleted")});
        Ok(Json(deleted).into_response())
    })
    .await
}

#[derive(Deserialize)]
struct PlanBody {
    desired: Vec<String>,
}

fn known_feature(name: &str, field: &str) -> Result<(), ApiError> {
    if FEATURES.contains(&name) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            field.to_string(),
            format!("`{name}` is not one of {}", FEATURES.join(", ")),
        ))
    }
}

/// What it takes to have the `desired` features: processing makes them all, so nothing is for
/// the caller to start; a feature that failed (embeddings without the model) is blocked.
pub async fn plan(incoming: Incoming, Path(id): Path<String>, request: Request) -> Response {
    respond(&incoming, "reka.plan", error_response, async {
        let (caller, library, body) = incoming
            .admit_with_json::<PlanBody>(request, "{\"desired\": [...]}")
            .await?;
        for f in &body.desired {
            known_feature(f, "desired")?;
        }
        let video = library.owned(&caller.tenant, &id).await?;
        let statuses: serde_json::Map<String, Value> = body
            .desired
            .iter()
            .map(|f| (f.clone(), json!(feature_status(&video, f))))
            .collect();
        let blocked: Vec<&String> = body
            .desired
            .iter()
            .filter(|f| feature_status(&video, f) == "failed")
            .collect();
        let done = body
            .desired
            .iter()
            .all(|f| feature_status(&video, f) == "ready");
        Ok(Json(json!({
            "video_id": video.id,
            "all_required": body.desired,
            "statuses": statuses,
            "actionable": [],
            "blocked": blocked,
            "done": done,
        }))
        .into_response())
    })
    .await
}

/// Starting a feature: every feature is made by the video's processing, already under way, so
/// this reports where it stands.
pub async fn trigger(incoming: Incoming, Path((id, feature)): Path<(String, String)>) -> Response {
    respond(&incoming, "reka.trigger", error_response, async {
        let caller = incoming.admit().await?;
        known_feature(&feature, "feature")?;
        let video = incoming.library()?.owned(&caller.tenant, &id).await?;
        Ok(Json(json!({"video_id": video.id, "feature": feature, "status": feature_status(&video, &feature)})).into_response())
    })
    .await
}

#[derive(Deserialize)]
pub struct ListingQuery {
    #[serde(default)]
    start: Option<f64>,
    #[serde(default)]
    end: Option<f64>,
    #[serde(default)]
    page_limit: Option<usize>,
    #[serde(default)]
    page_token: Option<String>,
    #[serde(default)]
    format: Option<String>,
}

pub async fn transcript(
    incoming: Incoming,
    Path(id): Path<String>,
    query: Result<Query<ListingQuery>, QueryRejection>,
) -> Response {
    respond(&incoming, "reka.transcript", error_response, async {
        listing(&incoming, &id, query, Listing::Transcript).await
    })
    .await
}

pub async fn captions(
    incoming: Incoming,
    Path(id): Path<String>,
    query: Result<Query<ListingQuery>, QueryRejection>,
) -> Response {
    respond(&incoming, "reka.captions", error_response, async {
        listing(&incoming, &id, query, Listing::Captions).await
    })
    .await
}

#[derive(Clone, Copy, PartialEq)]
enum Listing {
    Transcript,
    Captions,
}

async fn listing(
    incoming: &Incoming,
    id: &str,
    query: Result<Query<ListingQuery>, QueryRejection>,
    kind: Listing,
) -> Result<Response, ApiError> {
    let (caller, library) = incoming.admit_to_library().await?;
    let Query(q) = query?;
    library.ready(&caller.tenant, id).await?;
    let range = Range {
        start: q.start,
        end: q.end,
    };
    let segments = library.timeline(id).await?;
    let items: Vec<Value> = match kind {
        // Cut at cue times: a cue is in the range when the middle of it is, so a range gives
        // the words said inside it, not its segments' whole transcript.
        Listing::Transcript => segments
            .iter()
            .flat_map(|s| s.cues())
            .filter(|c| {
                let middle = (c.start_s + c.end_s) / 2.0;
                range.start.is_none_or(|a| middle >= a) && range.end.is_none_or(|b| middle < b)
            })
            .map(|c| json!({"start": c.start_s, "end": c.end_s, "text": c.text}))
            .collect(),
        Listing::Captions => segments
            .iter()
            .filter(|s| {
                range.start.is_none_or(|a| s.end_s > a) && range.end.is_none_or(|b| s.start_s < b)
            })
            .filter_map(caption)
            .collect(),
    };
    if kind == Listing::Transcript && q.format.as_deref() == Some("text") {
        let text: Vec<&str> = items.iter().filter_map(|i| i["text"].as_str()).collect();
        return Ok(Json(json!({"text": text.join(" ")})).into_response());
    }
    let limit = q.page_limit.unwrap_or(50).clamp(1, 500);
    let from = search::page_start(q.page_token.as_deref(), "page_token", items.len())?;
    let page: Vec<&Value> = items.iter().skip(from).take(limit).collect();
    let next = (from + limit < items.len()).then(|| (from + limit).to_string());
    Ok(Json(json!({"data": page, "next_page_token": next})).into_response())
}

/// A segment's caption: what was seen, else (no vision upstream) what was on screen and said,
/// with its `source` saying which.
fn caption(s: &Segment) -> Option<Value> {
    let (text, source) = if !s.caption.is_empty() {
        (s.caption.clone(), "vision")
    } else if !s.on_screen_text.is_empty() {
        (format!("On screen: {}", s.on_screen_text), "on_screen_text")
    } else if !s.transcript.is_empty() {
        (format!("Said: {}", s.transcript), "transcript")
    } else {
        return None;
    };
    Some(json!({"start": s.start_s, "end": s.end_s, "caption": text, "source": source}))
}

#[derive(Deserialize)]
struct ChatBody {
    messages: Vec<reply::TextMessage>,
    context: Vec<Context>,
}

#[derive(Deserialize)]
struct Context {
    video_id: String,
    #[serde(default)]
    start: Option<f64>,
    #[serde(default)]
    end: Option<f64>,
}

pub async fn chat(incoming: Incoming, request: Request) -> Response {
    let decode = async |_: &mut Record| {
        let (caller, bytes) = super::body::admitted_to_answer(&incoming, request).await?;
        let body: ChatBody = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(
                "body",
                format!("must be {{\"messages\": [...], \"context\": [{{\"video_id\"}}]}}: {e}"),
            )
        })?;
        if body.context.is_empty() || body.context.len() > MAX_CONTEXT {
            return Err(ApiError::bad_request(
                "context",
                format!("must name between 1 and {MAX_CONTEXT} videos"),
            ));
        }
        let messages = reply::conversation(body.messages)?;
        let mut videos = Vec::with_capacity(body.context.len());
        for (i, c) in body.context.into_iter().enumerate() {
            if let (Some(start), Some(end)) = (c.start, c.end) {
                if start >= end || start < 0.0 {
                    return Err(ApiError::bad_request(
                        format!("context[{i}].start"),
                        "must be at least 0 and before `end`",
                    ));
                }
            }
            videos.push((
                c.video_id,
                Range {
                    start: c.start,
                    end: c.end,
                },
            ));
        }
        let persona = caller.runtime.config.video_chat.reka.clone();
        let model = caller
            .runtime
            .config
            .personas
            .get(&persona)
            .and_then(|p| p.model.clone())
            .unwrap_or_else(|| persona.clone());
        let ask = VideoAsk {
            persona,
            videos,
            messages,
            options: Default::default(),
        };
        Ok(Decoded {
            caller,
            ask,
            stream: false,
            kept: model,
        })
    };
    let reply = reply::video(&incoming, DIALECT, decode, |_, _, _| Unstreamed).await;
    match reply {
        Ok(Reply::Whole {
            whole,
            asked: (_, model),
            ..
        }) => Json(json!({"response": whole.text, "model": model})).into_response(),
        Ok(Reply::Streaming(response)) => response,
        Err(failed) => error_response(&failed.error),
    }
}

#[derive(Deserialize)]
pub struct SearchBody {
    query: String,
    #[serde(default)]
    strategy: Option<String>,
    #[serde(default)]
    fields: Option<Vec<String>>,
    #[serde(default)]
    video_ids: Option<Vec<String>>,
    #[serde(default)]
    group_ids: Option<Vec<String>>,
    #[serde(default)]
    threshold: Option<String>,
    #[serde(default)]
    page_limit: Option<i64>,
    #[serde(default)]
    page_token: Option<String>,
}

/// `POST /v2/search`: by meaning unless `strategy` is `text` (a literal, any-case match over
/// `fields`). `threshold` is a word: `high`, `medium`, `low` (the default), `none`.
pub async fn search(incoming: Incoming, request: Request) -> Response {
    respond(&incoming, "reka.search", error_response, async {
        let (caller, library, body) = incoming.admit_with_json::<SearchBody>(request, "{\"query\": \"...\"}").await?;
        let text = search::query_text(&body.query, "query")?;
        let page = search::limit(body.page_limit, "page_limit", 10, 50)?;
        let from = search::page_start(
            body.page_token.as_deref(),
            "page_token",
            search::MAX_SEARCH_DEPTH,
        )?;
        if body.group_ids.as_ref().is_some_and(|g| !g.is_empty()) {
            return Err(ApiError::bad_request(
                "group_ids",
                "video groups are not supported by chatapi; name video_ids instead",
            ));
        }
        let videos = match &body.video_ids {
            Some(ids) => Some(
                search::searchable(library, &caller.tenant, ids, "video_ids")
                    .await?
                    .into_iter()
                    .map(|v| v.id)
                    .collect::<Vec<_>>(),
            ),
            None => None,
        };
        let threshold = match body.threshold.as_deref() {
            Some("high") => 0.5,
            Some("medium") => 0.35,
            None | Some("low") => 0.25,
            Some("none") => 0.0,
            Some(other) => {
                return Err(ApiError::bad_request(
                    "threshold",
                    format!("`{other}` is not one of high, medium, low, none"),
                ))
            }
        };
        let wanted = from + page + 1;
        let clips = match body.strategy.as_deref() {
            None | Some("semantic") => {
                let query = core_search::Query {
                    tenant: &caller.tenant,
                    text: &text,
                    videos,
                    limit: wanted,
                    threshold: Some(threshold),
                    mode: Mode::Semantic,
                };
                search::run(library, query).await?
            }
            Some("text") => {
                let fields = body
                    .fields
                    .unwrap_or_else(|| vec!["transcript".into(), "captions".into()]);
                for f in &fields {
                    if f != "transcript" && f != "captions" {
                        return Err(ApiError::bad_request(
                            "fields",
                            format!("`{f}` is not one of transcript, captions"),
                        ));
                    }
                }
                let which = (
                    fields.iter().any(|f| f == "transcript"),
                    fields.iter().any(|f| f == "captions"),
                );
                let clips = library
                    .find_literal(&caller.tenant, videos.as_deref(), &text, which, wanted)
                    .await
                    ?;
                search::with_videos(library, &caller.tenant, clips).await?
            }
            Some(other) => {
                return Err(ApiError::bad_request(
                    "strategy",
                    format!("`{other}` is not one of semantic, text"),
                ))
            }
        };
        let more = clips.len() > from + page && from + page <= search::MAX_SEARCH_DEPTH;
        let data: Vec<Value> = clips
            .iter()
            .enumerate()
            .skip(from)
            .take(page)
            .map(|(rank, (clip, video))| {
                json!({
                    "video_id": video.id,
                    "video_name": video.name,
                    "start": clip.start_s,
                    "end": clip.end_s,
                    "score": clip.score,
                    "rank": rank + 1,
                    "caption": clip.text,
                    "transcript": clip.text,
                    "video_url": null,
                })
            })
            .collect();
        let searched = match &body.video_ids {
            Some(ids) => ids.len() as u64,
            None => {
                let everything = crate::videos::Page {
                    tenant: caller.tenant.clone(),
                    statuses: vec![Status::Ready],
                    ..Default::default()
                };
                library.count(&everything).await?
            }
        };
        Ok(Json(json!({
            "data": data,
            "search_pool": {"videos": searched},
            "next_page_token": more.then(|| (from + page).to_string()),
            "report": {"strategy": body.strategy.unwrap_or_else(|| "semantic".into()), "threshold": threshold},
        }))
        .into_response())
    })
    .await
}
