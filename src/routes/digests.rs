//! What is made from a whole video on request, in Twelve Labs' shapes:
//! `POST /v1/videos/{id}/summaries` `{type: summary|chapter|highlight, prompt?, persona?}` →
//! `{id, summary}`, `{id, chapters: [{chapter_number, start_sec, end_sec, chapter_title,
//! chapter_summary}]}` or `{id, highlights: [{start_sec, end_sec, highlight,
//! highlight_summary}]}`; `POST /v1/videos/{id}/gist` `{types: [title|topic|hashtag]}` →
//! `{id, title, topics, hashtags}`; `POST /v1/videos/{id}/analyze` `{prompt, response_format?}`
//! → `{id, data}` (JSON satisfying the schema when one is given). Each also carries `video_id`
//! and the upstream `usage`; `regenerate: true` makes it again instead of giving back the kept
//! one. The work is the core's (`answer::digest`); errors in OpenAI's envelope.

use axum::extract::{Path, Request};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::incoming::Incoming;
use super::openai::error_response;
use crate::answer::digest::{self, DigestAsk, Kind};
use crate::config::Config;
use crate::error::ApiError;

const DIALECT: &str = "digests";
const MAX_PROMPT_CHARS: usize = 2000;

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum SummaryType {
    Summary,
    Chapter,
    Highlight,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryBody {
    #[serde(rename = "type")]
    kind: SummaryType,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    persona: Option<String>,
    #[serde(default)]
    regenerate: bool,
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum GistType {
    Title,
    Topic,
    Hashtag,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GistBody {
    types: Vec<GistType>,
    #[serde(default)]
    persona: Option<String>,
    #[serde(default)]
    regenerate: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeBody {
    prompt: String,
    #[serde(default)]
    response_format: Option<ResponseFormat>,
    #[serde(default)]
    persona: Option<String>,
    #[serde(default)]
    regenerate: bool,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ResponseFormat {
    Text,
    JsonSchema { json_schema: JsonSchema },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSchema {
    #[serde(default, rename = "name")]
    _name: Option<String>,
    schema: Value,
    #[serde(default, rename = "strict")]
    _strict: Option<bool>,
}

pub async fn summaries(incoming: Incoming, Path(id): Path<String>, request: Request) -> Response {
    let shape = "{\"type\": \"summary|chapter|highlight\", \"prompt\": \"...\"}";
    run(incoming, request, shape, |body: SummaryBody, config| {
        let kind = match body.kind {
            SummaryType::Summary => Kind::Summary,
            SummaryType::Chapter => Kind::Chapters,
            SummaryType::Highlight => Kind::Highlights,
        };
        ask(config, id, kind, body.prompt, body.persona, body.regenerate)
    })
    .await
}

pub async fn gist(incoming: Incoming, Path(id): Path<String>, request: Request) -> Response {
    let shape = "{\"types\": [\"title\", \"topic\", \"hashtag\"]}";
    run(incoming, request, shape, |body: GistBody, config| {
        if body.types.is_empty() {
            return Err(ApiError::bad_request(
                "types",
                "must name at least one of title, topic, hashtag",
            ));
        }
        let kind = Kind::Gist {
            title: body.types.contains(&GistType::Title),
            topics: body.types.contains(&GistType::Topic),
            hashtags: body.types.contains(&GistType::Hashtag),
        };
        ask(config, id, kind, None, body.persona, body.regenerate)
    })
    .await
}

pub async fn analyze(incoming: Incoming, Path(id): Path<String>, request: Request) -> Response {
    let shape = "{\"prompt\": \"...\", \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"schema\": {...}}}}";
    run(incoming, request, shape, |body: AnalyzeBody, config| {
        let schema = match body.response_format {
            None | Some(ResponseFormat::Text) => None,
            Some(ResponseFormat::JsonSchema { json_schema }) => {
                if let Err(e) = jsonschema::validator_for(&json_schema.schema) {
                    return Err(ApiError::bad_request(
                        "response_format.json_schema.schema",
                        format!("is not a JSON schema: {e}"),
                    ));
                }
                Some(json_schema.schema)
            }
        };
        if body.prompt.trim().is_empty() {
            return Err(ApiError::bad_request("prompt", "is required"));
        }
        let kind = Kind::Analysis { schema };
        ask(
            config,
            id,
            kind,
            Some(body.prompt),
            body.persona,
            body.regenerate,
        )
    })
    .await
}

fn ask(
    config: &Config,
    video: String,
    kind: Kind,
    prompt: Option<String>,
    persona: Option<String>,
    regenerate: bool,
) -> Result<DigestAsk, ApiError> {
    if prompt
        .as_ref()
        .is_some_and(|p| p.chars().count() > MAX_PROMPT_CHARS)
    {
        return Err(ApiError::bad_request(
            "prompt",
            format!("is longer than {MAX_PROMPT_CHARS} characters"),
        ));
    }
    // Whether the persona exists is the core's check.
    Ok(DigestAsk {
        video,
        kind,
        prompt: prompt.filter(|p| !p.trim().is_empty()),
        persona: persona.unwrap_or_else(|| config.video_chat.digests.clone()),
        regenerate,
    })
}

/// Admits the caller (to be answered: this asks the upstream), decodes the body, makes or gives
/// back the result; the request's one log line either way.
async fn run<T: DeserializeOwned>(
    incoming: Incoming,
    request: Request,
    shape: &str,
    into: impl FnOnce(T, &Config) -> Result<DigestAsk, ApiError>,
) -> Response {
    let mut record = incoming.record(DIALECT, "");
    let made = async {
        let (caller, bytes) = super::body::admitted_to_answer(&incoming, request).await?;
        let body: T = super::body::json(&bytes, shape)?;
        let ask = into(body, &caller.runtime.config)?;
        record.label_persona(&caller.runtime.config, &ask.persona);
        digest::make(incoming.state(), &caller, ask, &mut record).await
    }
    .await;
    match made {
        Ok(body) => Json(body).into_response(),
        Err(error) => {
            record.fail(&error);
            error_response(&error)
        }
    }
}
