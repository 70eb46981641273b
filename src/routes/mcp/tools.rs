//! The tools: each one's arguments (their JSON schema derived from the type, their doc comments
//! its descriptions), its one-line description and hints, and its body, which calls what the
//! native route calls (`routes::videos`, `routes::search`, `routes::ingest`, `reply::video`)
//! and answers with the same JSON, plus a text for a model to read.

use futures_util::StreamExt;
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::progress::{Broke, Pieces, Reporter, Seen};
use super::Admitted;
use crate::answer::admission;
use crate::answer::citations;
use crate::answer::video_chat::VideoAsk;
use crate::conversation::{Message, Role};
use crate::error::ApiError;
use crate::routes::reply::{self, Decoded, Reply};
use crate::routes::search::{self, SearchBody};
use crate::routes::videos::{self, ListQuery};
use crate::routes::{ingest, media};
use crate::videos::excerpt::Range;
use crate::videos::model::{stamp, Status};
use crate::videos::Owner;

/// What a tool answers: the text a model reads, and the same as JSON.
pub struct Output {
    pub text: String,
    pub structured: Value,
}

impl Output {
    /// JSON a model reads as it is.
    fn json(value: Value) -> Self {
        Self {
            text: serde_json::to_string_pretty(&value).unwrap_or_default(),
            structured: value,
        }
    }
}

/// Most videos one question may stand on (each is a timeline to fit into the prompt), as a chat
/// through the OpenAI routes.
const MAX_ASK_VIDEOS: usize = crate::routes::openai::MAX_VIDEOS;
/// The longest question, in characters.
const MAX_QUESTION_CHARS: usize = 8_000;
/// The most of a transcript one call returns; the rest is asked for from where it stopped.
const MAX_TRANSCRIPT_CHARS: usize = 60_000;

/// Every tool, as `tools/list` gives them.
pub fn catalogue() -> Vec<Tool> {
    let read_only = || ToolAnnotations::new().read_only(true).open_world(false);
    vec![
        Tool::new(
            "list_videos",
            "List the videos in your library, newest first, with their state (queued, processing, ready, failed) and ids.",
            schema_for_type::<ListQuery>(),
        )
        .annotate(read_only()),
        Tool::new(
            "add_video_from_url",
            "Add a video to your library from an http(s) link; it is processed (transcript, keyframes, on-screen text) before it can be searched or asked about. With wait=true, waits for that and reports each step.",
            schema_for_type::<AddVideo>(),
        )
        .annotate(ToolAnnotations::new().read_only(false).destructive(false).open_world(true)),
        Tool::new(
            "video_status",
            "Tell one video's state and processing steps; with wait=true, wait until it is ready or failed, reporting each step.",
            schema_for_type::<VideoId>(),
        )
        .annotate(read_only()),
        Tool::new(
            "search_videos",
            "Find the moments in your ready videos that match a query (by meaning, by exact words, or both): each with its video, [MM:SS] stamp, text and keyframe URL.",
            schema_for_type::<SearchBody>(),
        )
        .annotate(read_only()),
        Tool::new(
            "ask_about_videos",
            "Ask a question about one or more ready videos (optionally a part of them): the answer is grounded in their transcripts, on-screen text and scenes, and cites moments as [MM:SS].",
            schema_for_type::<Ask>(),
        )
        .annotate(read_only()),
        Tool::new(
            "get_transcript",
            "Get what is said in a ready video, line by line with [MM:SS] stamps, optionally only between two moments.",
            schema_for_type::<TranscriptArgs>(),
        )
        .annotate(read_only()),
        Tool::new(
            "delete_video",
            "Delete a video from your library, with its timeline and files. This cannot be undone.",
            schema_for_type::<DeleteVideo>(),
        )
        .annotate(
            ToolAnnotations::new()
                .read_only(false)
                .destructive(true)
                .idempotent(true)
                .open_world(false),
        ),
    ]
}

/// Runs the tool `name`; `None` when there is none by that name.
pub async fn call(
    name: &str,
    arguments: JsonObject,
    admitted: &Admitted,
    reporter: &mut Reporter,
) -> Option<Result<Output, ApiError>> {
    let arguments = Value::Object(arguments);
    Some(match name {
        "list_videos" => with(arguments, async |query| list(admitted, query).await).await,
        "add_video_from_url" => {
            with(arguments, async |args| add(admitted, args, reporter).await).await
        }
        "video_status" => {
            with(arguments, async |args| {
                status(admitted, args, reporter).await
            })
            .await
        }
        "search_videos" => with(arguments, async |body| find(admitted, body).await).await,
        "ask_about_videos" => {
            with(arguments, async |args| ask(admitted, args, reporter).await).await
        }
        "get_transcript" => with(arguments, async |args| transcript(admitted, args).await).await,
        "delete_video" => with(arguments, async |args| delete(admitted, args).await).await,
        _ => return None,
    })
}

/// Runs `tool` on its arguments, decoded.
async fn with<T: DeserializeOwned>(
    arguments: Value,
    tool: impl AsyncFnOnce(T) -> Result<Output, ApiError>,
) -> Result<Output, ApiError> {
    tool(decode(arguments)?).await
}

/// A tool's arguments, or the sentence naming the one that is wrong.
fn decode<T: DeserializeOwned>(arguments: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(arguments).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "arguments".to_string()
        } else {
            path
        };
        ApiError::bad_request(field, e.into_inner().to_string())
    })
}

async fn list(admitted: &Admitted, query: ListQuery) -> Result<Output, ApiError> {
    let library = admitted.incoming.library()?;
    let mut listed = videos::listing(&admitted.incoming, library, admitted.tenant(), query).await?;
    admitted.absolute_links(&mut listed);
    Ok(Output::json(listed))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddVideo {
    /// The video file's http(s) URL.
    url: String,
    /// What to call it; by default the URL's last path segment.
    #[serde(default)]
    name: Option<String>,
    /// Wait until it is processed (at most the server's `video_chat.link_wait`), reporting each
    /// step; by default answer at once with its id, to check on with `video_status`.
    #[serde(default)]
    wait: bool,
}

async fn add(
    admitted: &Admitted,
    args: AddVideo,
    reporter: &mut Reporter,
) -> Result<Output, ApiError> {
    let library = admitted.incoming.library()?;
    let owner = Owner {
        tenant: admitted.tenant().to_string(),
        ..Owner::default()
    };
    let video = ingest::add_link(library, &args.url, "url", args.name, &owner).await?;
    if args.wait {
        return watched(admitted, &video.id, reporter).await;
    }
    let mut value = media::with_links(&admitted.incoming, &video);
    admitted.absolute_links(&mut value);
    Ok(Output::json(value))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VideoId {
    /// The video's id (`vid_…`).
    video_id: String,
    /// Wait until it is ready or failed (at most the server's `video_chat.link_wait`),
    /// reporting each processing step.
    #[serde(default)]
    wait: bool,
}

async fn status(
    admitted: &Admitted,
    args: VideoId,
    reporter: &mut Reporter,
) -> Result<Output, ApiError> {
    if args.wait {
        return watched(admitted, &args.video_id, reporter).await;
    }
    let video = admitted
        .incoming
        .library()?
        .owned(admitted.tenant(), &args.video_id)
        .await?;
    let mut value = media::with_links(&admitted.incoming, &video);
    admitted.absolute_links(&mut value);
    Ok(Output::json(value))
}

/// How often a wait reports on a video being processed.
const REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The video once processing ends (or as it stands when `video_chat.link_wait` is over), its
/// state and each step reported as they change.
async fn watched(
    admitted: &Admitted,
    id: &str,
    reporter: &mut Reporter,
) -> Result<Output, ApiError> {
    let library = admitted.incoming.library()?;
    let deadline =
        tokio::time::Instant::now() + admitted.incoming.runtime.config.video_chat.link_wait;
    let mut seen = Seen::default();
    let video = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let video = library
            .settled(admitted.tenant(), id, left.min(REPORT_EVERY))
            .await?;
        reporter.processing(&mut seen, &video).await;
        let busy = matches!(video.status, Status::Queued | Status::Processing);
        if !busy || left <= REPORT_EVERY {
            break video;
        }
    };
    let mut value = media::with_links(&admitted.incoming, &video);
    admitted.absolute_links(&mut value);
    Ok(Output::json(value))
}

async fn find(admitted: &Admitted, body: SearchBody) -> Result<Output, ApiError> {
    let library = admitted.incoming.library()?;
    let mut found = search::found(&admitted.incoming, library, admitted.tenant(), body).await?;
    admitted.absolute_links(&mut found);
    Ok(Output::json(found))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ask {
    /// The question.
    question: String,
    /// The videos to answer from (ids `vid_…`, each ready), 1 to 10.
    video_ids: Vec<String>,
    /// Only the part of the videos from this many seconds.
    #[serde(default)]
    start_s: Option<f64>,
    /// Only the part of the videos up to this many seconds.
    #[serde(default)]
    end_s: Option<f64>,
}

/// A grounded answer, streamed through the relay as every chat is (each piece a progress
/// notification), with the moments it cites.
async fn ask(admitted: &Admitted, args: Ask, reporter: &mut Reporter) -> Result<Output, ApiError> {
    let question = args.question.trim();
    if question.is_empty() || question.chars().count() > MAX_QUESTION_CHARS {
        return Err(ApiError::bad_request(
            "question",
            format!("must be between 1 and {MAX_QUESTION_CHARS} characters"),
        ));
    }
    if args.video_ids.is_empty() || args.video_ids.len() > MAX_ASK_VIDEOS {
        return Err(ApiError::bad_request(
            "video_ids",
            format!("must name between 1 and {MAX_ASK_VIDEOS} videos"),
        ));
    }
    let range = checked_range(args.start_s, args.end_s)?;
    let caller = admitted.take_caller()?;
    admission::reserve_to_answer(&caller, admitted.incoming.state().cluster()).await?;
    let ask = VideoAsk {
        persona: caller.runtime.config.video_chat.mcp.clone(),
        videos: args.video_ids.into_iter().map(|id| (id, range)).collect(),
        messages: vec![Message::new(Role::User, question.to_string())],
        options: Default::default(),
    };
    let broke = Broke::default();
    let mut grounded: Vec<Grounded> = Vec::new();
    let decode = async |_: &mut crate::access_log::Record| {
        Ok(Decoded {
            caller,
            ask,
            stream: true,
            kept: (),
        })
    };
    let encoder = |cited: &[crate::answer::video_chat::Cited], _, _: &mut ()| {
        grounded = cited
            .iter()
            .map(|c| Grounded {
                id: c.video.id.clone(),
                name: c.video.name.clone(),
                moments: c.segments.iter().map(|s| (s.start_s, s.end_s)).collect(),
            })
            .collect();
        Pieces {
            broke: broke.clone(),
        }
    };
    let response = match reply::video(&admitted.incoming, "mcp", decode, encoder).await {
        Ok(Reply::Streaming(response)) => response,
        // Asked to stream, it does; a whole answer would come only from a dialect that asks.
        Ok(Reply::Whole { .. }) => return Err(ApiError::Storage),
        Err(failed) => return Err(failed.error),
    };
    let mut pieces = response.into_body().into_data_stream();
    let mut answer = String::new();
    while let Some(piece) = pieces.next().await {
        let Ok(piece) = piece else { break };
        if piece.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(&piece);
        answer.push_str(&text);
        reporter.step(text, None).await;
    }
    let broke_off = broke
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(message) = broke_off {
        return Err(ApiError::AnswerBroke(message));
    }
    let cited: Vec<Value> = citations::stamps(&answer)
        .into_iter()
        .map(|at| {
            let video = grounded
                .iter()
                .find(|g| g.moments.iter().any(|&(s, e)| at >= s && at <= e + 1.0))
                .or_else(|| (grounded.len() == 1).then(|| &grounded[0]));
            json!({
                "stamp": stamp(at),
                "start_s": at,
                "video_id": video.map(|g| g.id.as_str()),
            })
        })
        .collect();
    let videos: Vec<Value> = grounded
        .iter()
        .map(|g| json!({"video_id": g.id, "name": g.name}))
        .collect();
    Ok(Output {
        structured: json!({"answer": answer, "citations": cited, "videos": videos}),
        text: answer,
    })
}

/// A video an answer stood on, and the moments it was shown.
struct Grounded {
    id: String,
    name: String,
    moments: Vec<(f64, f64)>,
}

/// `start_s`/`end_s` as a `Range`, or the sentence naming the one that is wrong.
fn checked_range(start: Option<f64>, end: Option<f64>) -> Result<Range, ApiError> {
    Range::checked(start, end)
        .map_err(|(end, problem)| ApiError::bad_request(format!("{end}_s"), problem))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TranscriptArgs {
    /// The video's id (`vid_…`), ready.
    video_id: String,
    /// Only what is said from this many seconds.
    #[serde(default)]
    start_s: Option<f64>,
    /// Only what is said up to this many seconds.
    #[serde(default)]
    end_s: Option<f64>,
}

/// What is said, cue by cue (`said`).
async fn transcript(admitted: &Admitted, args: TranscriptArgs) -> Result<Output, ApiError> {
    let range = checked_range(args.start_s, args.end_s)?;
    let library = admitted.incoming.library()?;
    let video = library.ready(admitted.tenant(), &args.video_id).await?;
    let segments = library.timeline(&video.id).await?;
    let said = said(&segments, range, MAX_TRANSCRIPT_CHARS);
    Ok(Output {
        text: said.text,
        structured: json!({
            "video_id": video.id,
            "name": video.name,
            "duration_s": video.duration_s,
            "cues": said.cues,
            "truncated": said.next_start_s.is_some(),
            "next_start_s": said.next_start_s,
        }),
    })
}

/// A transcript as a tool gives it: a line per cue, and the cues as JSON.
struct Said {
    text: String,
    cues: Vec<Value>,
    /// Where the rest starts, when it was cut.
    next_start_s: Option<f64>,
}

/// The cues said in `range`, a stamped line each; past `cap` characters, cut before a cue, with
/// where to ask from for the rest.
fn said(segments: &[crate::videos::model::Segment], range: Range, cap: usize) -> Said {
    let mut text = String::new();
    let mut cues = Vec::new();
    let mut next_start_s = None;
    for cue in segments.iter().flat_map(|s| s.cues()) {
        if !range.holds(cue.start_s, cue.end_s) {
            continue;
        }
        let mut line = format!("{} {}\n", stamp(cue.start_s), cue.text.trim());
        if text.len() + line.len() > cap {
            if !cues.is_empty() {
                next_start_s = Some(cue.start_s);
                break;
            }
            // One cue longer than the whole allowance goes in cut, or the next call, asked
            // from the same moment, would stop at the same place.
            let end = (0..=cap.min(line.len()))
                .rev()
                .find(|&i| line.is_char_boundary(i))
                .unwrap_or(0);
            line.truncate(end);
            line.push('\n');
        }
        text.push_str(&line);
        cues.push(json!({
            "stamp": stamp(cue.start_s),
            "start_s": cue.start_s,
            "end_s": cue.end_s,
            "text": cue.text,
        }));
    }
    if let Some(at) = next_start_s {
        text.push_str(&format!(
            "(cut here: ask again with start_s = {at} for the rest)\n"
        ));
    } else if cues.is_empty() {
        text.push_str("(nothing is said in this part of the video)\n");
    }
    Said {
        text,
        cues,
        next_start_s,
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteVideo {
    /// The video's id (`vid_…`).
    video_id: String,
}

async fn delete(admitted: &Admitted, args: DeleteVideo) -> Result<Output, ApiError> {
    admitted
        .incoming
        .library()?
        .delete(admitted.tenant(), &args.video_id)
        .await?;
    Ok(Output::json(videos::deleted(&args.video_id)))
}

/// The ready videos a tenant can read timelines of, a page at a time (`resources/list`).
pub async fn timelines(
    admitted: &Admitted,
    offset: u32,
    limit: u32,
) -> Result<(Vec<crate::videos::model::Video>, bool), ApiError> {
    let page = crate::videos::Page {
        tenant: admitted.tenant().to_string(),
        statuses: vec![Status::Ready],
        limit,
        offset,
        ..Default::default()
    };
    Ok(admitted.incoming.library()?.list(&page).await?)
}

/// Keys whose values are this server's links.
const LINK_KEYS: [&str; 4] = ["media_url", "thumbnail_url", "url", "keyframe_url"];

/// Each link in `value` made absolute against `base` (an agent fetches them from elsewhere).
pub fn absolute_links(value: &mut Value, base: &str) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                match inner {
                    Value::String(link)
                        if LINK_KEYS.contains(&key.as_str()) && link.starts_with('/') =>
                    {
                        *link = format!("{base}{link}");
                    }
                    other => absolute_links(other, base),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| absolute_links(v, base)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::videos::model::{Cue, Segment};

    fn segment(start_s: f64, said: &[(f64, &str)]) -> Segment {
        Segment {
            start_s,
            end_s: start_s + 10.0,
            cues: said
                .iter()
                .map(|&(at, text)| Cue {
                    start_s: at,
                    end_s: at + 2.0,
                    text: text.to_string(),
                })
                .collect(),
            ..Segment::default()
        }
    }

    #[test]
    fn a_long_transcript_is_cut_before_a_cue_with_where_the_rest_starts() {
        let segments = [
            segment(0.0, &[(1.0, "one"), (4.0, "two")]),
            segment(10.0, &[(12.0, "three"), (3700.0, "four")]),
        ];
        let whole = said(&segments, Range::default(), 1000);
        assert_eq!(
            whole.text,
            "[00:01] one\n[00:04] two\n[00:12] three\n[1:01:40] four\n"
        );
        assert_eq!(whole.next_start_s, None);
        // Room for two lines of 12 characters and no more.
        let cut = said(&segments, Range::default(), 25);
        assert_eq!(
            cut.text,
            "[00:01] one\n[00:04] two\n(cut here: ask again with start_s = 12 for the rest)\n"
        );
        assert_eq!(cut.cues.len(), 2);
        assert_eq!(cut.next_start_s, Some(12.0));
        // From where it stopped, the rest.
        let rest = said(&segments, Range::checked(Some(12.0), None).unwrap(), 30);
        assert_eq!(rest.text, "[00:12] three\n[1:01:40] four\n");
        // A cue longer than the allowance is cut, not put off for ever.
        let long = [segment(
            0.0,
            &[(1.0, "é".repeat(40).as_str()), (5.0, "after")],
        )];
        let first = said(&long, Range::default(), 20);
        assert!(
            first
                .text
                .starts_with("[00:01] éééééé\n(cut here: ask again with start_s = 5"),
            "{}",
            first.text
        );
        let silent = said(
            &segments,
            Range::checked(Some(20.0), Some(30.0)).unwrap(),
            25,
        );
        assert_eq!(silent.text, "(nothing is said in this part of the video)\n");
    }

    #[test]
    fn links_become_absolute_and_nothing_else_changes() {
        let mut value = json!({
            "media_url": "/v1/videos/v/media?sig=1",
            "name": "/not/a/link",
            "data": [{"keyframe_url": "/v1/videos/v/keyframes/0.jpg", "url": "https://elsewhere/x"}],
        });
        absolute_links(&mut value, "http://h:1");
        assert_eq!(
            value,
            json!({
                "media_url": "http://h:1/v1/videos/v/media?sig=1",
                "name": "/not/a/link",
                "data": [{"keyframe_url": "http://h:1/v1/videos/v/keyframes/0.jpg", "url": "https://elsewhere/x"}],
            })
        );
    }
}
