//! Search across the library, natively (`POST /v1/search`) and what every dialect's search
//! route shares: checking the query, the limit and the videos named (each must be the caller's
//! and ready; one still processing is not searchable yet, said so), and running the search.

use std::collections::HashMap;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::incoming::Incoming;
use super::media::Links;
use super::openai::error_response;
use super::respond::respond;
use crate::error::ApiError;
use crate::videos::model::{stamp, Video};
use crate::videos::search::{Clip, Mode, Query};
use crate::videos::Library;

pub const MAX_QUERY_CHARS: usize = 1000;
pub const MAX_VIDEOS: usize = 100;

/// The query text, trimmed: present and not too long. `field` names it as the dialect does.
pub fn query_text(text: &str, field: &str) -> Result<String, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::bad_request(
            field.to_string(),
            "must not be empty",
        ));
    }
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::bad_request(
            field.to_string(),
            format!("is longer than {MAX_QUERY_CHARS} characters"),
        ));
    }
    Ok(text.to_string())
}

/// `limit` within 1..=`max`, `default` when absent.
pub fn limit(
    value: Option<i64>,
    field: &str,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match value {
        None => Ok(default),
        Some(n) if n >= 1 && n as usize <= max => Ok(n as usize),
        Some(_) => Err(ApiError::bad_request(
            field.to_string(),
            format!("must be between 1 and {max}"),
        )),
    }
}

/// The deepest a search pages: a `page_token` past this many results is refused, so no
/// caller's number sizes a search (a token of 10^13 once had the vector scan reserve room for
/// that many hits, and the allocation failure took the process down).
pub const MAX_SEARCH_DEPTH: usize = 500;

/// Where a page starts, from a `page_token` this server gave (the index of the page's first
/// item): 0 when absent, at most `max`.
pub fn page_start(token: Option<&str>, field: &str, max: usize) -> Result<usize, ApiError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    match token.parse::<usize>() {
        Ok(n) if n <= max => Ok(n),
        Ok(_) => Err(ApiError::bad_request(
            field.to_string(),
            format!("is past the last page this server gives ({max} results)"),
        )),
        Err(_) => Err(ApiError::bad_request(
            field.to_string(),
            "is not a token this server gave",
        )),
    }
}

/// The videos a search is limited to: each the caller's and ready.
pub async fn searchable(
    library: &Library,
    tenant: &str,
    ids: &[String],
    field: &str,
) -> Result<Vec<Video>, ApiError> {
    if ids.is_empty() || ids.len() > MAX_VIDEOS {
        return Err(ApiError::bad_request(
            field.to_string(),
            format!("must name between 1 and {MAX_VIDEOS} videos"),
        ));
    }
    let mut videos = Vec::with_capacity(ids.len());
    for id in ids {
        let video = library.ready(tenant, id).await?;
        videos.push(video);
    }
    Ok(videos)
}

/// Runs a checked query; each clip comes with its video.
pub async fn run(library: &Library, query: Query<'_>) -> Result<Vec<(Clip, Video)>, ApiError> {
    let tenant = query.tenant;
    let clips = library.search(query).await?;
    with_videos(library, tenant, clips).await
}

/// Each clip with its video (one that went meanwhile is dropped).
pub async fn with_videos(
    library: &Library,
    tenant: &str,
    clips: Vec<Clip>,
) -> Result<Vec<(Clip, Video)>, ApiError> {
    let mut out = Vec::with_capacity(clips.len());
    let mut known: Vec<Video> = Vec::new();
    for clip in clips {
        let video = match known.iter().find(|v| v.id == clip.video_id) {
            Some(v) => v.clone(),
            None => match library.get(tenant, &clip.video_id).await? {
                Some(v) => {
                    known.push(v.clone());
                    v
                }
                None => continue,
            },
        };
        out.push((clip, video));
    }
    Ok(out)
}

/// A search across the library (`POST /v1/search`; MCP's `search_videos`).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    /// What to look for: words said or shown, or what happens.
    query: String,
    /// Only these videos (ids `vid_…`, each ready); by default every ready video.
    #[serde(default)]
    video_ids: Option<Vec<String>>,
    /// How many moments: 1 to 100 (default 10).
    #[serde(default)]
    limit: Option<i64>,
    /// The least score a moment needs, 0 to 1.
    #[serde(default)]
    threshold: Option<f32>,
    /// `hybrid` (meaning and words, the default), `semantic` (meaning) or `text` (exact words).
    #[serde(default)]
    mode: Option<String>,
}

/// `POST /v1/search` `{query, video_ids?, limit?, threshold?, mode?}` →
/// `{"object":"list","data":[{video_id, name, start_s, end_s, stamp, score, text, keyframe_url}]}`.
pub async fn search(incoming: Incoming, request: Request) -> Response {
    respond(&incoming, "search", error_response, async {
        let (caller, library, body) = incoming.admit_with_json::<SearchBody>(request, "{\"query\": \"...\", \"video_ids\": [...], \"limit\": 10, \"threshold\": 0.3, \"mode\": \"hybrid\"}").await?;
        Ok(Json(found(&incoming, library, &caller.tenant, body).await?).into_response())
    })
    .await
}

/// The moments a checked search finds in `tenant`'s videos, each with its video and keyframe
/// link, as `POST /v1/search` answers.
pub async fn found(
    incoming: &Incoming,
    library: &Library,
    tenant: &str,
    body: SearchBody,
) -> Result<Value, ApiError> {
    let mode = match body.mode.as_deref() {
        None | Some("hybrid") => Mode::Hybrid,
        Some("semantic") => Mode::Semantic,
        Some("text") => Mode::Text,
        Some(other) => {
            return Err(ApiError::bad_request(
                "mode",
                format!("`{other}` is not one of hybrid, semantic, text"),
            ))
        }
    };
    if body.threshold.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
        return Err(ApiError::bad_request(
            "threshold",
            "must be between 0 and 1",
        ));
    }
    let videos = match &body.video_ids {
        Some(ids) => Some(
            searchable(library, tenant, ids, "video_ids")
                .await?
                .into_iter()
                .map(|v| v.id)
                .collect(),
        ),
        None => None,
    };
    let text = query_text(&body.query, "query")?;
    let query = Query {
        tenant,
        text: &text,
        videos,
        limit: limit(body.limit, "limit", 10, 100)?,
        threshold: body.threshold,
        mode,
    };
    let found = run(library, query).await?;
    // Each video's links signed once, however many of its clips were found.
    let mut links: HashMap<&str, Links<'_>> = HashMap::new();
    let data: Vec<Value> = found
        .iter()
        .map(|(clip, video)| {
            let links = links
                .entry(video.id.as_str())
                .or_insert_with(|| Links::of(incoming, video));
            json!({
                "video_id": video.id,
                "name": video.name,
                "start_s": clip.start_s,
                "end_s": clip.end_s,
                "stamp": stamp(clip.start_s),
                "score": clip.score,
                "text": clip.text,
                "keyframe_url": clip.keyframe.map(|k| links.keyframe(k)),
            })
        })
        .collect();
    Ok(json!({"object": "list", "data": data}))
}
