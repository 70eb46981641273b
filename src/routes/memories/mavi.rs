//! MAVI / Memories.ai v1.0 under `/api/serve/video/`, as `pymavi` 0.1.7 speaks it: `upload`
//! (multipart `file`, query `callBackUri`), `uploadUrl` (JSON `{"url"}`), `searchDB`, `delete`
//! (a JSON array of videoNos) and `chat`. The key comes raw in `Authorization`.
//!
//! The chat stream is what pymavi can read: `data:{json}` events with no space, ONE event per
//! HTTP chunk and each under 1 KiB (it reads 1,024-byte pieces and only strips `data:` at the
//! start of its buffer; two events in one chunk lose every later one), no end marker (it reads
//! to EOF). A whole answer is framed the same way, as one event.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{error_response, ok, seconds, status_name, uploaded, MAX_CHAT_VIDEOS, OK};
use crate::access_log::Record;
use crate::answer::video_chat::VideoAsk;
use crate::conversation::{Message, Role};
use crate::error::ApiError;
use crate::relay::{Encoder, Failure};
use crate::routes::incoming::Incoming;
use crate::routes::ingest::{add_link, checked_callback, receive, Parts};
use crate::routes::reply::{self, Decoded, Reply};
use crate::routes::respond::respond;
use crate::routes::search;
use crate::upstream::Event;
use crate::videos::excerpt::Range;
use crate::videos::model::Video;
use crate::videos::search::{self as core_search, Mode};
use crate::videos::{LibraryError, Owner, Page};

const DIALECT: &str = "mavi";
/// pymavi reads 1,024 bytes at a time; an event must fit, `data:` and framing included.
const MAX_EVENT_BYTES: usize = 1000;
const MAX_DELETE: usize = 500;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackQuery {
    #[serde(default)]
    call_back_uri: Option<String>,
}

pub async fn upload(
    incoming: Incoming,
    Query(query): Query<CallbackQuery>,
    request: Request,
) -> Response {
    respond(&incoming, "mavi.upload", error_response, async {
        let (caller, library) = incoming.admit_to_library().await?;
        let owner = Owner {
            tenant: caller.tenant,
            callback: checked_callback(library, query.call_back_uri, "callBackUri").await?,
            ..Owner::default()
        };
        let parts = Parts {
            text: &[],
            file_optional: false,
        };
        let received = receive(library, &incoming, request, &parts, &owner.tenant).await?;
        let video = received.add(library, None, &owner).await?;
        Ok(ok(uploaded(&video)))
    })
    .await
}

#[derive(Deserialize)]
pub struct UrlBody {
    url: String,
}

pub async fn upload_url(
    incoming: Incoming,
    Query(query): Query<CallbackQuery>,
    request: Request,
) -> Response {
    respond(&incoming, "mavi.uploadUrl", error_response, async {
        let (caller, library, link) = incoming
            .admit_with_json::<UrlBody>(request, "{\"url\": \"https://...\"}")
            .await?;
        let owner = Owner {
            tenant: caller.tenant,
            callback: checked_callback(library, query.call_back_uri, "callBackUri").await?,
            ..Owner::default()
        };
        let video = add_link(library, &link.url, "url", None, &owner).await?;
        Ok(ok(uploaded(&video)))
    })
    .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchQuery {
    #[serde(default)]
    start_time: Option<i64>,
    #[serde(default)]
    end_time: Option<i64>,
    #[serde(default)]
    video_status: Option<String>,
    #[serde(default)]
    video_name: Option<String>,
    #[serde(default)]
    page: Option<u32>,
    #[serde(default)]
    page_size: Option<u32>,
}

/// `GET searchDB`: the caller's videos added between `startTime` and `endTime` (ms), by status
/// and a piece of the name, newest first, `pageSize` (≤ 200) to a `page` (from 1).
pub async fn search_db(
    incoming: Incoming,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Response {
    respond(&incoming, "mavi.searchDB", error_response, async {
        let (caller, library) = incoming.admit_to_library().await?;
        let Query(q) = query?;
        let statuses = super::statuses("videoStatus", q.video_status.as_deref())?;
        let size = q.page_size.unwrap_or(20);
        if !(1..=200).contains(&size) {
            return Err(ApiError::bad_request(
                "pageSize",
                "must be between 1 and 200",
            ));
        }
        let page_no = q.page.unwrap_or(1).max(1);
        let page = Page {
            tenant: caller.tenant,
            statuses,
            name_contains: q.video_name.filter(|n| !n.is_empty()),
            since_ms: q.start_time,
            until_ms: q.end_time,
            limit: size,
            offset: (page_no - 1).saturating_mul(size),
        };
        let (videos, _) = library.list(&page).await?;
        let total = library.count(&page).await?;
        let rows: Vec<Value> = videos.iter().map(video_row).collect();
        Ok(ok(json!({
            "page": page_no,
            "current": page_no,
            "total": total,
            "pageSize": size,
            "videoData": rows,
        })))
    })
    .await
}

/// `DELETE delete` with a JSON array of videoNos (up to 500). Every one must be the caller's:
/// one that is not fails the request before anything is deleted.
pub async fn delete(incoming: Incoming, request: Request) -> Response {
    respond(&incoming, "mavi.delete", error_response, async {
        let (caller, library, ids) = incoming
            .admit_with_json::<Vec<String>>(request, "a JSON array of videoNos")
            .await?;
        delete_all(library, &caller.tenant, &ids, MAX_DELETE).await?;
        Ok(ok(Value::Null))
    })
    .await
}

/// Deletes every id, after checking that each is the tenant's (nothing is half-applied when
/// one is not).
pub async fn delete_all(
    library: &crate::videos::Library,
    tenant: &str,
    ids: &[String],
    max: usize,
) -> Result<(), ApiError> {
    if ids.is_empty() || ids.len() > max {
        return Err(ApiError::bad_request(
            "body",
            format!("must list between 1 and {max} videoNos"),
        ));
    }
    for id in ids {
        library.owned(tenant, id).await?;
    }
    for id in ids {
        // One deleted meanwhile by another request is as deleted.
        match library.delete(tenant, id).await {
            Ok(()) | Err(LibraryError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchBody {
    search_value: String,
    #[serde(default)]
    video_nos: Option<Vec<String>>,
    /// pymavi always sends it, `null` when its caller gave none.
    #[serde(default)]
    limit: Option<i64>,
}

/// `POST searchAI` `{searchValue, limit}`: the caller's videos that match, best first.
pub async fn search_ai(incoming: Incoming, request: Request) -> Response {
    respond(&incoming, "mavi.searchAI", error_response, async {
        let (caller, library, body) = incoming
            .admit_with_json::<SearchBody>(request, "{\"searchValue\": \"...\", \"limit\": 10}")
            .await?;
        let want = search::limit(body.limit, "limit", 20, 200)?;
        let text = search::query_text(&body.search_value, "searchValue")?;
        let query = core_search::Query {
            tenant: &caller.tenant,
            text: &text,
            videos: None,
            // Clips, then videos: ask for enough clips to fill the videos asked for.
            limit: want * 5,
            threshold: None,
            mode: Mode::Hybrid,
        };
        let found = search::run(library, query).await?;
        let mut seen = std::collections::HashSet::new();
        let videos: Vec<Value> = found
            .iter()
            .filter(|(_, v)| seen.insert(v.id.clone()))
            .take(want)
            .map(|(_, v)| video_row(v))
            .collect();
        Ok(ok(json!({"videos": videos})))
    })
    .await
}

/// `POST searchVideoFragment` `{videoNos (≤ 50), searchValue, limit}`: the moments that match,
/// best first, `fragmentStartTime`/`fragmentEndTime` in seconds (as strings).
pub async fn search_video_fragment(incoming: Incoming, request: Request) -> Response {
    respond(
        &incoming,
        "mavi.searchVideoFragment",
        error_response,
        async {
            let (caller, library, body) = incoming
                .admit_with_json::<SearchBody>(
                    request,
                    "{\"videoNos\": [...], \"searchValue\": \"...\", \"limit\": 10}",
                )
                .await?;
            let text = search::query_text(&body.search_value, "searchValue")?;
            let ids = body.video_nos.unwrap_or_default();
            if ids.len() > MAX_CHAT_VIDEOS {
                return Err(ApiError::bad_request(
                    "videoNos",
                    format!("must list between 1 and {MAX_CHAT_VIDEOS} videos"),
                ));
            }
            let videos = search::searchable(library, &caller.tenant, &ids, "videoNos").await?;
            let query = core_search::Query {
                tenant: &caller.tenant,
                text: &text,
                videos: Some(videos.into_iter().map(|v| v.id).collect()),
                limit: search::limit(body.limit, "limit", 20, 200)?,
                threshold: None,
                mode: Mode::Hybrid,
            };
            let found = search::run(library, query).await?;
            let clips: Vec<Value> = found
                .iter()
                .map(|(clip, v)| {
                    let mut row = video_row(v);
                    row["fragmentStartTime"] = json!((clip.start_s.floor() as i64).to_string());
                    row["fragmentEndTime"] = json!((clip.end_s.ceil() as i64).to_string());
                    row["score"] = json!(clip.score);
                    row
                })
                .collect();
            Ok(ok(json!({"videos": clips})))
        },
    )
    .await
}

/// A video as MAVI's listing and search answers show it.
fn video_row(v: &Video) -> Value {
    json!({
        "videoNo": v.id,
        "videoName": v.name,
        "videoStatus": status_name(v.status),
        "uploadTime": v.created_ms.to_string(),
        "duration": seconds(v),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatBody {
    video_nos: Vec<String>,
    message: String,
    #[serde(default)]
    history: Vec<Turn>,
    #[serde(default)]
    stream: bool,
}

#[derive(Deserialize)]
struct Turn {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    robot: Option<String>,
}

pub async fn chat(incoming: Incoming, request: Request) -> Response {
    let decode = async |_: &mut Record| {
        let (caller, bytes) = crate::routes::body::admitted_to_answer(&incoming, request).await?;
        let body: ChatBody = crate::routes::body::json(
            &bytes,
            "{\"videoNos\": [...], \"message\": \"...\", \"history\": [...], \"stream\": true}",
        )?;
        super::check_chat((&body.video_nos, "videoNos"), (&body.message, "message"))?;
        let mut messages = Vec::with_capacity(body.history.len() * 2 + 1);
        for turn in body.history {
            if let Some(user) = turn.user.filter(|u| !u.is_empty()) {
                messages.push(Message::new(Role::User, user));
            }
            if let Some(robot) = turn.robot.filter(|r| !r.is_empty()) {
                messages.push(Message::new(Role::Assistant, robot));
            }
        }
        messages.push(Message::new(Role::User, body.message));
        let ask = VideoAsk {
            persona: caller.runtime.config.video_chat.mavi.clone(),
            videos: body
                .video_nos
                .into_iter()
                .map(|id| (id, Range::default()))
                .collect(),
            messages,
            options: Default::default(),
        };
        Ok(Decoded {
            caller,
            ask,
            stream: body.stream,
            kept: (),
        })
    };
    match reply::video(&incoming, DIALECT, decode, |_, _, _| MaviEncoder).await {
        Ok(Reply::Streaming(response)) => one_event_per_chunk(response),
        Ok(Reply::Whole { whole, .. }) => {
            let event = format!("data:{}\n\n", piece(&whole.text));
            // The charset matters: pymavi reads this body as `response.text`, which
            // requests decodes as ISO-8859-1 when a text type names none.
            let kind = "text/event-stream; charset=utf-8";
            ([(axum::http::header::CONTENT_TYPE, kind)], event).into_response()
        }
        Err(failed) => error_response(&failed.error),
    }
}

fn piece(text: &str) -> Value {
    json!({"code": OK, "msg": "success", "data": {"msg": text}})
}

/// MAVI's stream: one small event per piece of text.
struct MaviEncoder;

impl Encoder for MaviEncoder {
    fn event(&mut self, event: Event) -> Option<Bytes> {
        let Event::Text(text) = event else {
            return None;
        };
        let mut out = String::new();
        for part in pieces(&text) {
            out.push_str(&format!("data:{}\n\n", piece(part)));
        }
        Some(Bytes::from(out))
    }

    /// A bare newline: pymavi strips it to nothing, where an SSE comment would stick to the
    /// front of its buffer and hide every later event.
    fn ping(&self) -> Bytes {
        Bytes::from_static(b"\n")
    }

    fn failed(&mut self, failure: Failure<'_>) -> Option<Bytes> {
        let event = json!({"code": "0500", "msg": failure.message, "data": null});
        Some(Bytes::from(format!("data:{event}\n\n")))
    }

    fn end(&mut self) -> Bytes {
        Bytes::new()
    }
}

/// `text` cut at character boundaries into pieces whose events fit in `MAX_EVENT_BYTES`.
fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len();
        loop {
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let size = piece(&rest[..cut]).to_string().len() + "data:\n\n".len();
            if size <= MAX_EVENT_BYTES || cut <= 1 {
                break;
            }
            cut = cut * MAX_EVENT_BYTES / size;
            cut = cut.min(rest.len() - 1).max(1);
        }
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out
}

/// Re-frames a streamed body so every event (`…\n\n`) is its own HTTP chunk: hyper writes each
/// body frame as one chunk, and pymavi needs exactly one event per chunk.
fn one_event_per_chunk(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let events = body.into_data_stream().flat_map(|item| {
        let frames: Vec<Result<Bytes, axum::Error>> = match item {
            Ok(bytes) => split_events(bytes).into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e)],
        };
        futures_util::stream::iter(frames)
    });
    Response::from_parts(parts, Body::from_stream(events))
}

fn split_events(bytes: Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'\n' && bytes[i + 1] == b'\n' {
            out.push(bytes.slice(start..i + 2));
            start = i + 2;
            i += 2;
        } else {
            i += 1;
        }
    }
    if start < bytes.len() {
        out.push(bytes.slice(start..));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_fits_in_what_pymavi_reads_at_once() {
        let long = "é".repeat(3000) + &"a\u{1}".repeat(500);
        let mut e = MaviEncoder;
        let bytes = e.event(Event::Text(long.clone())).unwrap();
        let events = split_events(bytes);
        assert!(events.len() > 5);
        let mut text = String::new();
        for event in &events {
            assert!(event.len() <= 1024, "{}", event.len());
            let s = std::str::from_utf8(event).unwrap();
            let json: Value =
                serde_json::from_str(s.strip_prefix("data:").unwrap().trim_end()).unwrap();
            text.push_str(json["data"]["msg"].as_str().unwrap());
        }
        assert_eq!(text, long);
    }
}
