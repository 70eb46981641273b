//! Memories.ai v1.2 under `/serve/api/v1/`: `upload` (multipart `file`, `unique_id`,
//! `callback`), `upload_url` (form `url`, `unique_id`, `callback`), `list_videos`,
//! `delete_videos`, `chat` and `chat_stream`. A `session_id` names a conversation the server
//! keeps in the library's store (numeric, as the vendor's are): a chat without one starts a new
//! session, and every answer says which.
//!
//! `chat_stream` sends `data:<json>` events: a `ref` event first (the timeline segments the
//! answer was given, with `startTime`/`endTime` in seconds), `content` events with the text,
//! and `data:"Done"`, the line the vendor's sample client and community clients stop on.

use std::sync::Arc;

use axum::extract::{Query, Request};
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::mavi::delete_all;
use super::{error_response_v1_2 as error_response, ok_v1_2 as ok, seconds, status_name, uploaded};
use crate::access_log::Record;
use crate::answer::video_chat::{Cited, VideoAsk};
use crate::cluster::{sessions, Cluster};
use crate::conversation::{Message, Role};
use crate::error::ApiError;
use crate::relay::{Encoder, Failure, Settle};
use crate::routes::incoming::Incoming;
use crate::routes::ingest::{add_link, checked_callback, receive, receive_form, Parts};
use crate::routes::reply::{self, Decoded, Reply};
use crate::routes::respond::respond;
use crate::routes::search;
use crate::upstream::Event;
use crate::videos::excerpt::Range;
use crate::videos::search::{self as core_search, Mode};
use crate::videos::{Library, Owner, Page};

const DIALECT: &str = "memories";
const MAX_DELETE: usize = 100;
/// Turns a session keeps (a turn is a question or an answer); older ones are forgotten.
const SESSION_TURNS: usize = 40;

fn owner(tenant: String, fields: &std::collections::BTreeMap<String, String>) -> Owner {
    let mut labels = serde_json::Map::new();
    if let Some(unique) = fields.get("unique_id").filter(|u| !u.is_empty()) {
        labels.insert("unique_id".into(), json!(unique));
    }
    Owner {
        tenant,
        callback: None,
        labels,
    }
}

pub async fn upload(incoming: Incoming, request: Request) -> Response {
    respond(&incoming, "memories.upload", error_response, async {
        let (caller, library) = incoming.admit_to_library().await?;
        let parts = Parts {
            text: &["unique_id", "callback"],
            file_optional: false,
        };
        let received = receive(library, &incoming, request, &parts, &caller.tenant).await?;
        let mut owner = owner(caller.tenant, &received.text);
        owner.callback =
            checked_callback(library, received.text.get("callback").cloned(), "callback").await?;
        let video = received.add(library, None, &owner).await?;
        Ok(ok(uploaded(&video)))
    })
    .await
}

pub async fn upload_url(incoming: Incoming, request: Request) -> Response {
    respond(&incoming, "memories.upload_url", error_response, async {
        let (caller, library) = incoming.admit_to_library().await?;
        let parts = Parts {
            text: &["url", "unique_id", "callback"],
            file_optional: true,
        };
        let form = receive_form(library, &incoming, request, &parts, &caller.tenant).await?;
        let url = form
            .text
            .get("url")
            .filter(|u| !u.is_empty())
            .ok_or_else(|| ApiError::bad_request("url", "is required"))?;
        let mut owner = owner(caller.tenant, &form.text);
        owner.callback =
            checked_callback(library, form.text.get("callback").cloned(), "callback").await?;
        let video = add_link(library, url, "url", None, &owner).await?;
        Ok(ok(uploaded(&video)))
    })
    .await
}

#[derive(Deserialize, Default)]
pub struct ListBody {
    #[serde(default)]
    page: Option<u32>,
    #[serde(default)]
    size: Option<u32>,
    #[serde(default)]
    video_name: Option<String>,
    #[serde(default)]
    video_no: Option<String>,
    #[serde(default, rename = "unique_id")]
    _unique_id: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

pub async fn list_videos(incoming: Incoming, request: Request) -> Response {
    respond(&incoming, "memories.list_videos", error_response, async {
        let (caller, bytes) = crate::routes::body::admitted(&incoming, request).await?;
        let library = incoming.library()?;
        let q: ListBody = if bytes.is_empty() {
            ListBody::default()
        } else {
            crate::routes::body::json(&bytes, "JSON {page, size, video_name, video_no, status}")?
        };
        let size = q.size.unwrap_or(20);
        if !(1..=200).contains(&size) {
            return Err(ApiError::bad_request("size", "must be between 1 and 200"));
        }
        let page_no = q.page.unwrap_or(1).max(1);
        let statuses = super::statuses("status", q.status.as_deref())?;
        let (videos, total) = if let Some(id) = q.video_no.filter(|v| !v.is_empty()) {
            let found = library.get(&caller.tenant, &id).await?;
            let found: Vec<_> = found
                .into_iter()
                .filter(|v| statuses.is_empty() || statuses.contains(&v.status))
                .collect();
            let n = found.len() as u64;
            (found, n)
        } else {
            let page = Page {
                tenant: caller.tenant,
                statuses,
                name_contains: q.video_name.filter(|n| !n.is_empty()),
                limit: size,
                offset: (page_no - 1).saturating_mul(size),
                ..Page::default()
            };
            let (videos, _) = library.list(&page).await?;
            (videos, library.count(&page).await?)
        };
        let rows: Vec<Value> = videos
            .iter()
            .map(|v| {
                json!({
                    "duration": seconds(v),
                    "size": v.source.bytes.unwrap_or(0).to_string(),
                    "status": status_name(v.status),
                    "cause": v.error.clone().unwrap_or_else(|| "null".into()),
                    "video_no": v.id,
                    "video_name": v.name,
                    "create_time": v.created_ms.to_string(),
                })
            })
            .collect();
        Ok(ok(json!({
            "videos": rows,
            "current_page": page_no,
            "page_size": size,
            "total_count": total.to_string(),
        })))
    })
    .await
}

pub async fn delete_videos(
    incoming: Incoming,
    _query: Query<std::collections::HashMap<String, String>>,
    request: Request,
) -> Response {
    respond(&incoming, "memories.delete_videos", error_response, async {
        let (caller, library, ids) = incoming
            .admit_with_json::<Vec<String>>(request, "a JSON array of video_nos")
            .await?;
        delete_all(library, &caller.tenant, &ids, MAX_DELETE).await?;
        Ok(ok(Value::Null))
    })
    .await
}

#[derive(Deserialize)]
struct ChatBody {
    video_nos: Vec<String>,
    prompt: String,
    #[serde(default)]
    session_id: Option<SessionId>,
    #[serde(default, rename = "unique_id")]
    _unique_id: Option<String>,
}

/// Numeric, sent as a number or a string of digits.
#[derive(Deserialize)]
#[serde(untagged)]
enum SessionId {
    Number(u64),
    Text(String),
}

#[derive(serde::Serialize, Deserialize)]
struct Turn {
    role: String,
    content: String,
}

pub async fn chat(incoming: Incoming, request: Request) -> Response {
    run_chat(&incoming, request, false).await
}

pub async fn chat_stream(incoming: Incoming, request: Request) -> Response {
    run_chat(&incoming, request, true).await
}

async fn run_chat(incoming: &Incoming, request: Request, stream: bool) -> Response {
    let decode = async |_: &mut Record| {
        let (caller, bytes) = crate::routes::body::admitted_to_answer(incoming, request).await?;
        let library = incoming
            .state()
            .videos()
            .cloned()
            .ok_or(ApiError::VideosDisabled)?;
        let body: ChatBody = crate::routes::body::json(
            &bytes,
            "{\"video_nos\": [...], \"prompt\": \"...\", \"session_id\": 123}",
        )?;
        super::check_chat((&body.video_nos, "video_nos"), (&body.prompt, "prompt"))?;
        let session_id = match body.session_id {
            None => new_session_id(),
            Some(SessionId::Number(n)) => n.to_string(),
            Some(SessionId::Text(t)) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => t,
            Some(SessionId::Text(t)) => {
                return Err(ApiError::bad_request(
                    "session_id",
                    format!("`{t}` is not a number; leave it out to start a new session"),
                ))
            }
        };
        let cluster = incoming.state().cluster().clone();
        let mut turns: Vec<Turn> =
            match sessions::load(&cluster, &library, &caller.tenant, &session_id).await? {
                Some(json) => serde_json::from_str(&json).unwrap_or_default(),
                None => Vec::new(),
            };
        let mut messages: Vec<Message> = turns
            .iter()
            .map(|t| {
                let role = if t.role == "assistant" {
                    Role::Assistant
                } else {
                    Role::User
                };
                Message::new(role, t.content.clone())
            })
            .collect();
        messages.push(Message::new(Role::User, body.prompt.clone()));
        turns.push(Turn {
            role: "user".into(),
            content: body.prompt,
        });
        let ask = VideoAsk {
            persona: caller.runtime.config.video_chat.memories.clone(),
            videos: body
                .video_nos
                .into_iter()
                .map(|id| (id, Range::default()))
                .collect(),
            messages,
            options: Default::default(),
        };
        let session = Some(Session {
            library,
            cluster,
            tenant: caller.tenant.clone(),
            id: session_id.clone(),
            turns,
        });
        Ok(Decoded {
            caller,
            ask,
            stream,
            kept: (session, session_id),
        })
    };
    let reply = reply::video(incoming, DIALECT, decode, |cited, _, (session, _)| {
        StreamEncoder {
            refs: Some(refs(cited)),
            session: session.take(),
            text: String::new(),
            failed: false,
        }
    });
    match reply.await {
        Ok(Reply::Streaming(response)) => response,
        Ok(Reply::Whole {
            whole,
            asked: (_, (session, session_id)),
            ..
        }) => {
            if let Some(session) = session {
                session.save_now(whole.text.clone()).await;
            }
            ok(json!({
                "role": "ASSISTANT",
                "content": whole.text,
                "thinkings": [],
                "session_id": session_id,
            }))
        }
        Err(failed) => error_response(&failed.error),
    }
}

/// A fresh numeric session id (positive, 63 bits, as the vendor's are).
fn new_session_id() -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random_range(1u64 << 40..i64::MAX as u64);
    n.to_string()
}

/// The `ref` array: per video, the segments its answer was given.
fn refs(cited: &[Cited]) -> Value {
    json!(cited
        .iter()
        .map(|c| json!({
            "video": {
                "duration": super::seconds(&c.video),
                "video_no": c.video.id,
                "video_name": c.video.name,
            },
            "refItems": c.segments.iter().map(|s| json!({
                "videoNo": c.video.id,
                "startTime": s.start_s.floor() as i64,
                "endTime": s.end_s.ceil() as i64,
                "type": "visual_ts",
                "text": short(&s.transcript),
            })).collect::<Vec<_>>(),
        }))
        .collect::<Vec<_>>())
}

fn short(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// A kept conversation, saved when its answer is complete.
struct Session {
    library: Arc<Library>,
    cluster: Cluster,
    tenant: String,
    id: String,
    turns: Vec<Turn>,
}

impl Session {
    /// The session gains the question and `answer`.
    async fn save_now(mut self, answer: String) {
        self.turns.push(Turn {
            role: "assistant".into(),
            content: answer,
        });
        let excess = self.turns.len().saturating_sub(SESSION_TURNS);
        self.turns.drain(..excess);
        let saved = match serde_json::to_string(&self.turns) {
            Ok(json) => sessions::save(&self.cluster, &self.library, &self.tenant, &self.id, &json)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = saved {
            tracing::error!(%error, session = %self.id, "memories session not saved");
        }
    }
}

struct StreamEncoder {
    refs: Option<Value>,
    session: Option<Session>,
    text: String,
    failed: bool,
}

impl StreamEncoder {
    fn session_id(&self) -> &str {
        self.session.as_ref().map_or("", |s| s.id.as_str())
    }
}

impl Encoder for StreamEncoder {
    fn begin(&mut self) -> Option<Bytes> {
        let refs = self.refs.take()?;
        let event = json!({"type": "ref", "sessionId": self.session_id(), "ref": refs});
        Some(Bytes::from(format!("data:{event}\n\n")))
    }

    fn event(&mut self, event: Event) -> Option<Bytes> {
        let Event::Text(text) = event else {
            return None;
        };
        self.text.push_str(&text);
        let event = json!({"type": "content", "role": "assistant", "content": text, "sessionId": self.session_id()});
        Some(Bytes::from(format!("data:{event}\n\n")))
    }

    fn failed(&mut self, failure: Failure<'_>) -> Option<Bytes> {
        self.failed = true;
        let event = json!({"code": "0500", "msg": failure.message, "data": failure.message});
        Some(Bytes::from(format!("data:{event}\n\n")))
    }

    /// The session is saved before `Done` leaves, so a client's next turn finds it.
    fn settle(&mut self) -> Option<Settle> {
        let session = self.session.take().filter(|_| !self.failed)?;
        Some(Box::pin(session.save_now(std::mem::take(&mut self.text))))
    }

    fn end(&mut self) -> Bytes {
        Bytes::from_static(b"data:\"Done\"\n\n")
    }
}

#[derive(Deserialize)]
pub struct SearchBody {
    search_param: String,
    #[serde(default, rename = "search_type")]
    _search_type: Option<String>,
    #[serde(default, rename = "unique_id")]
    _unique_id: Option<String>,
    #[serde(default)]
    top_k: Option<i64>,
    #[serde(default)]
    filtering_level: Option<String>,
    #[serde(default)]
    video_nos: Option<Vec<String>>,
}

/// `POST search` `{search_param, top_k, filtering_level, video_nos}`: the moments that match,
/// `data[{videoNo, videoName, startTime, endTime, score}]`, seconds as strings.
pub async fn search(incoming: Incoming, request: Request) -> Response {
    respond(&incoming, "memories.search", error_response, async {
        let (caller, library, body) = incoming
            .admit_with_json::<SearchBody>(request, "{\"search_param\": \"...\", \"top_k\": 10}")
            .await?;
        let threshold = match body
            .filtering_level
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("") | Some("low") => None,
            Some("medium") => Some(0.35),
            Some("high") => Some(0.5),
            Some(other) => {
                return Err(ApiError::bad_request(
                    "filtering_level",
                    format!("`{other}` is not one of low, medium, high"),
                ))
            }
        };
        let videos = match body.video_nos.filter(|v| !v.is_empty()) {
            Some(ids) => Some(
                search::searchable(library, &caller.tenant, &ids, "video_nos")
                    .await?
                    .into_iter()
                    .map(|v| v.id)
                    .collect(),
            ),
            None => None,
        };
        let text = search::query_text(&body.search_param, "search_param")?;
        let query = core_search::Query {
            tenant: &caller.tenant,
            text: &text,
            videos,
            limit: search::limit(body.top_k, "top_k", 10, 100)?,
            threshold,
            mode: Mode::Hybrid,
        };
        let found = search::run(library, query).await?;
        let data: Vec<Value> = found
            .iter()
            .map(|(clip, v)| {
                json!({
                    "videoNo": v.id,
                    "videoName": v.name,
                    "startTime": (clip.start_s.floor() as i64).to_string(),
                    "endTime": (clip.end_s.ceil() as i64).to_string(),
                    "score": clip.score,
                })
            })
            .collect();
        Ok(ok(json!(data)))
    })
    .await
}
