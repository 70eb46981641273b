//! Memories.ai's dialects (its first API was MAVI): `mavi` is v1.0 under `/api/serve/video/`,
//! as the `pymavi` client speaks it; `v1_2` is v1.2 under `/serve/api/v1/`. Shared here: the
//! `{"code","msg","data"}` envelope with its string codes (sent with the real HTTP status:
//! pymavi raises its authentication error only on a 401), the video statuses
//! `UNPARSE`/`PARSE`/`FAIL`, and the video record both versions return from an upload.

pub mod mavi;
pub mod v1_2;

use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::error::{ApiError, ErrorKind};
use crate::state::AppState;
use crate::videos::model::{Status, Video};

pub const OK: &str = "0000";

/// Both versions' routes, under the vendor's own paths.
pub fn router() -> Router<AppState> {
    let v1_0 = "/api/serve/video";
    let v12 = "/serve/api/v1";
    Router::new()
        .route(
            &format!("{v1_0}/upload"),
            post(mavi::upload).layer(DefaultBodyLimit::disable()),
        )
        .route(&format!("{v1_0}/uploadUrl"), post(mavi::upload_url))
        .route(&format!("{v1_0}/searchDB"), get(mavi::search_db))
        .route(&format!("{v1_0}/delete"), delete(mavi::delete))
        .route(&format!("{v1_0}/chat"), post(mavi::chat))
        .route(&format!("{v1_0}/searchAI"), post(mavi::search_ai))
        .route(
            &format!("{v1_0}/searchVideoFragment"),
            post(mavi::search_video_fragment),
        )
        .route(
            &format!("{v12}/upload"),
            post(v1_2::upload).layer(DefaultBodyLimit::disable()),
        )
        .route(&format!("{v12}/upload_url"), post(v1_2::upload_url))
        .route(&format!("{v12}/list_videos"), post(v1_2::list_videos))
        .route(&format!("{v12}/delete_videos"), post(v1_2::delete_videos))
        .route(&format!("{v12}/chat"), post(v1_2::chat))
        .route(&format!("{v12}/chat_stream"), post(v1_2::chat_stream))
        .route(&format!("{v12}/search"), post(v1_2::search))
}
/// Videos one chat may be about.
pub const MAX_CHAT_VIDEOS: usize = 50;

/// A chat's videos (1 to `MAX_CHAT_VIDEOS`) and its question (not blank), with each field
/// named as the version calls it.
pub fn check_chat(
    (videos, videos_field): (&[String], &str),
    (question, question_field): (&str, &str),
) -> Result<(), ApiError> {
    if videos.is_empty() || videos.len() > MAX_CHAT_VIDEOS {
        return Err(ApiError::bad_request(
            videos_field.to_string(),
            format!("must list between 1 and {MAX_CHAT_VIDEOS} videos"),
        ));
    }
    if question.trim().is_empty() {
        return Err(ApiError::bad_request(
            question_field.to_string(),
            "must not be empty",
        ));
    }
    Ok(())
}

/// Memories.ai's string code for an error.
fn code(error: &ApiError) -> &'static str {
    if matches!(error, ApiError::NotReady { .. }) {
        // 0409 is the vendor's "duplicate"; a video not parsed yet is a bad parameter.
        return "0001";
    }
    match error.kind() {
        ErrorKind::Unauthorized => "0401",
        ErrorKind::RateLimited => "0429",
        ErrorKind::InvalidRequest | ErrorKind::NotFound => "0001",
        ErrorKind::Unavailable | ErrorKind::Upstream | ErrorKind::Timeout | ErrorKind::Internal => {
            "0500"
        }
    }
}

/// An error in the v1.0 envelope, with its real status.
pub fn error_response(error: &ApiError) -> Response {
    let body = json!({"code": code(error), "msg": error.to_string(), "data": null});
    error.respond(error.status(), body.to_string())
}

/// An error in the v1.2 envelope, which adds `success`/`failed`.
pub fn error_response_v1_2(error: &ApiError) -> Response {
    let body = json!({
        "code": code(error), "msg": error.to_string(), "data": null,
        "success": false, "failed": true,
    });
    error.respond(error.status(), body.to_string())
}

pub fn ok(data: Value) -> Response {
    Json(json!({"code": OK, "msg": "success", "data": data})).into_response()
}

pub fn ok_v1_2(data: Value) -> Response {
    Json(json!({"code": OK, "msg": "success", "data": data, "success": true, "failed": false}))
        .into_response()
}

pub fn status_name(status: Status) -> &'static str {
    match status {
        Status::Queued | Status::Processing => "UNPARSE",
        Status::Ready => "PARSE",
        Status::Failed => "FAIL",
    }
}

/// The statuses a status filter (`field`) names, all when it names none; `PARSE_ERROR` is
/// accepted for `FAIL` (the vendor's own pages use both).
pub fn statuses(field: &str, name: Option<&str>) -> Result<Vec<Status>, ApiError> {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Ok(Vec::new());
    };
    Ok(match name.to_ascii_uppercase().as_str() {
        "UNPARSE" => vec![Status::Queued, Status::Processing],
        "PARSE" => vec![Status::Ready],
        "FAIL" | "PARSE_ERROR" => vec![Status::Failed],
        _ => {
            return Err(ApiError::bad_request(
                field.to_string(),
                format!("`{name}` is not one of PARSE, UNPARSE, FAIL"),
            ))
        }
    })
}

/// What an upload answers: `{videoNo, videoName, videoStatus, uploadTime}` (ms, as a string).
pub fn uploaded(video: &Video) -> Value {
    json!({
        "videoNo": video.id,
        "videoName": video.name,
        "videoStatus": status_name(video.status),
        "uploadTime": video.created_ms.to_string(),
    })
}

/// Whole seconds, as a string (the vendors' `duration`).
pub fn seconds(video: &Video) -> String {
    video
        .duration_s
        .map_or("0".to_string(), |d| (d.round() as i64).to_string())
}
