//! OpenAI request bodies into the core's conversation and options. Every problem is a 400 that
//! names the field (`messages[2].content`, `temperature`), found by `serde_path_to_error`. Fields
//! chatapi knows but does not relay (`logit_bias`, `audio`...) are refused by name rather than
//! dropped; `metadata`, `store` and `service_tier` are accepted and have no effect (chatapi stores
//! nothing and has one tier); anything else is an unrecognized argument, as OpenAI answers.

use async_openai::types::chat::{
    ChatCompletionToolChoiceOption, ChatCompletionTools, ResponseFormat,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::conversation::{Message, Role, ToolCall};
use crate::error::ApiError;
use crate::persona::CallerOptions;
use crate::upstream::{Extras, Sampling};
use crate::videos::excerpt::Range;

/// Parses `body` as `T`, naming the path of whatever is wrong.
pub fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::bad_request("body", format!("is not valid JSON: {inner}"));
        }
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        // serde's own words, without its "at line 1 column 40" tail.
        let text = inner.to_string();
        let text = text.split(" at line ").next().unwrap_or(&text).to_string();
        ApiError::bad_request(field, text)
    })
}

/// `stop`: one string or up to four.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn into_vec(self, field: &str) -> Result<Vec<String>, ApiError> {
        let all = match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        };
        if all.len() > 4 || all.iter().any(String::is_empty) {
            return Err(ApiError::bad_request(
                field,
                "takes at most 4 sequences, none empty",
            ));
        }
        Ok(all)
    }
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatCompletionBody {
    pub model: String,
    pub messages: Vec<InMessage>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub n: Option<u8>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub presence_penalty: Option<f32>,
    #[serde(default)]
    pub frequency_penalty: Option<f32>,
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
    #[serde(default)]
    pub tools: Option<Vec<ChatCompletionTools>>,
    #[serde(default)]
    pub tool_choice: Option<ChatCompletionToolChoiceOption>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub user: Option<String>,
    // Accepted, without effect.
    #[serde(default, rename = "metadata")]
    pub _metadata: Option<Value>,
    #[serde(default, rename = "store")]
    pub _store: Option<bool>,
    #[serde(default, rename = "service_tier")]
    pub _service_tier: Option<Value>,
    // Known, not relayed: refused by name.
    #[serde(default)]
    pub logprobs: Option<bool>,
    #[serde(default)]
    pub top_logprobs: Option<u8>,
    #[serde(default)]
    pub logit_bias: Option<Value>,
    #[serde(default)]
    pub audio: Option<Value>,
    #[serde(default)]
    pub modalities: Option<Value>,
    #[serde(default)]
    pub prediction: Option<Value>,
    #[serde(default)]
    pub functions: Option<Value>,
    #[serde(default)]
    pub function_call: Option<Value>,
    #[serde(default)]
    pub web_search_options: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// One message of OpenAI's `messages`, any role.
#[derive(Debug, Deserialize)]
pub struct InMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<InToolCall>>,
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// A string, or an array of content parts of which only text is relayed.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Value>),
}

#[derive(Debug, Deserialize)]
pub struct InToolCall {
    pub id: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    pub function: InFunction,
}

#[derive(Debug, Deserialize)]
pub struct InFunction {
    pub name: String,
    #[serde(default)]
    pub arguments: String,
}

/// A video a user message names: `{"type": "video_url", "video_url": {"url": …}}` in chat (as
/// vLLM and the Qwen-VL servers take it), `{"type": "input_video", "video_url": …}` in Responses;
/// the URL a library id (`vid_…`), this server's URL of one, or an `http(s)` link to add. An
/// optional `start` and `end` (seconds) bound the part asked about.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoPart {
    pub url: String,
    pub start: Option<f64>,
    pub end: Option<f64>,
    /// Where it stands in the request, for errors (`messages[1].content[0]`).
    pub field: String,
}

/// Most videos one request may name (each is a timeline to fit into the prompt).
pub const MAX_VIDEOS: usize = 10;
const VIDEO_PART_TYPES: [&str; 2] = ["video_url", "input_video"];
const MAX_URL_CHARS: usize = 2048;

fn video_part(part: &Value, at: &str) -> Result<VideoPart, ApiError> {
    let (url, holder) = match part.get("video_url") {
        Some(Value::String(url)) => (url.as_str(), part),
        Some(object @ Value::Object(_)) => match object.get("url").and_then(Value::as_str) {
            Some(url) => (url, object),
            None => {
                return Err(ApiError::bad_request(
                    format!("{at}.video_url.url"),
                    "is required: a video id (vid_…) or a URL",
                ))
            }
        },
        _ => {
            return Err(ApiError::bad_request(
                format!("{at}.video_url"),
                "must be a video id (vid_…), a URL, or {\"url\": …, \"start\": …, \"end\": …}",
            ))
        }
    };
    if url.trim().is_empty() || url.len() > MAX_URL_CHARS {
        return Err(ApiError::bad_request(
            format!("{at}.video_url"),
            format!("must be a video id (vid_…) or a URL of at most {MAX_URL_CHARS} characters"),
        ));
    }
    let seconds = |name: &str| match holder.get(name).or_else(|| part.get(name)) {
        None | Some(Value::Null) => None,
        // Not a number, or out of bounds: `Range::checked` says so, in one sentence.
        Some(value) => Some(value.as_f64().unwrap_or(f64::NAN)),
    };
    let range = Range::checked(seconds("start"), seconds("end")).map_err(|(end, problem)| {
        ApiError::bad_request(format!("{at}.video_url.{end}"), problem)
    })?;
    Ok(VideoPart {
        url: url.trim().to_string(),
        start: range.start,
        end: range.end,
        field: at.to_string(),
    })
}

/// Text of a content value; `field` names it in errors. `text_types`: the part types that carry
/// text in this API (`text` for chat, `input_text`/`output_text` for Responses). `videos`: where
/// a user message's video parts go; `None` where a message may name none.
pub fn content_text(
    content: Content,
    field: &str,
    text_types: &[&str],
    mut videos: Option<&mut Vec<VideoPart>>,
) -> Result<String, ApiError> {
    match content {
        Content::Text(s) => Ok(s),
        Content::Parts(parts) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                let at = format!("{field}[{j}]");
                let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
                if VIDEO_PART_TYPES.contains(&kind) {
                    let Some(videos) = videos.as_deref_mut() else {
                        return Err(ApiError::bad_request(
                            format!("{at}.type"),
                            "video parts belong on user messages",
                        ));
                    };
                    videos.push(video_part(part, &at)?);
                    continue;
                }
                match part.get("text").and_then(Value::as_str) {
                    Some(t) if text_types.contains(&kind) => text.push_str(t),
                    _ if !text_types.contains(&kind) => {
                        return Err(ApiError::bad_request(
                            format!("{at}.type"),
                            format!(
                                "`{kind}` parts are not supported: only {} and {}",
                                text_types.join(", "),
                                VIDEO_PART_TYPES.join(", ")
                            ),
                        ))
                    }
                    _ => return Err(ApiError::bad_request(at, "must carry a string `text`")),
                }
            }
            Ok(text)
        }
    }
}

/// The videos a request names, at most `MAX_VIDEOS`.
pub fn check_video_count(videos: &[VideoPart], field: &str) -> Result<(), ApiError> {
    if videos.len() > MAX_VIDEOS {
        return Err(ApiError::bad_request(
            field,
            format!(
                "names {} videos, more than the limit of {MAX_VIDEOS}",
                videos.len()
            ),
        ));
    }
    Ok(())
}

/// The conversation, and the videos its user messages name.
pub fn messages(
    list: Vec<InMessage>,
    max: usize,
) -> Result<(Vec<Message>, Vec<VideoPart>), ApiError> {
    if list.is_empty() {
        return Err(ApiError::bad_request("messages", "must not be empty"));
    }
    if list.len() > max {
        return Err(ApiError::bad_request(
            "messages",
            format!("has {} messages, more than the limit of {max}", list.len()),
        ));
    }
    let mut videos = Vec::new();
    let messages = list
        .into_iter()
        .enumerate()
        .map(|(i, m)| message(i, m, &mut videos))
        .collect::<Result<_, _>>()?;
    check_video_count(&videos, "messages")?;
    Ok((messages, videos))
}

fn message(i: usize, m: InMessage, videos: &mut Vec<VideoPart>) -> Result<Message, ApiError> {
    let field = |f: &str| format!("messages[{i}].{f}");
    let role = match m.role.as_str() {
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        other => {
            return Err(ApiError::bad_request(
                field("role"),
                format!("`{other}` is not one of system, developer, user, assistant, tool"),
            ))
        }
    };
    let content = match m.content {
        Some(c) => content_text(
            c,
            &field("content"),
            &["text"],
            (role == Role::User).then_some(&mut *videos),
        )?,
        // An assistant turn may only call tools.
        None if role == Role::Assistant => String::new(),
        None => return Err(ApiError::bad_request(field("content"), "is required")),
    };
    let tool_calls = match (role, m.tool_calls) {
        (_, None) => Vec::new(),
        (Role::Assistant, Some(calls)) => calls
            .into_iter()
            .enumerate()
            .map(|(j, c)| match c.kind.as_deref() {
                None | Some("function") => Ok(ToolCall {
                    id: c.id,
                    name: c.function.name,
                    arguments: c.function.arguments,
                }),
                Some(other) => Err(ApiError::bad_request(
                    field(&format!("tool_calls[{j}].type")),
                    format!("`{other}` tool calls are not supported, only function"),
                )),
            })
            .collect::<Result<_, _>>()?,
        (_, Some(_)) => {
            return Err(ApiError::bad_request(
                field("tool_calls"),
                "belongs on assistant messages only",
            ))
        }
    };
    if role == Role::Tool && m.tool_call_id.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            field("tool_call_id"),
            "is required on tool messages",
        ));
    }
    Ok(Message {
        role,
        content,
        name: m.name.filter(|n| !n.is_empty()),
        tool_calls,
        tool_call_id: m.tool_call_id.filter(|_| role == Role::Tool),
        images: Vec::new(),
    })
}

/// Sampling fields checked as OpenAI checks them.
pub fn check_ranges(s: &Sampling) -> Result<(), ApiError> {
    s.check()
        .map_err(|(field, problem)| ApiError::bad_request(field, problem))
}

/// What a chat completions request decodes to.
pub struct ChatAsk {
    pub persona: String,
    pub messages: Vec<Message>,
    /// The videos the user messages name: the answer is grounded in them.
    pub videos: Vec<VideoPart>,
    pub options: CallerOptions,
    pub stream: bool,
    /// The caller asked for the usage chunk at the end of the stream.
    pub stream_usage: bool,
}

impl ChatCompletionBody {
    pub fn into_ask(self, max_messages: usize) -> Result<ChatAsk, ApiError> {
        let refused = [
            ("logit_bias", self.logit_bias.is_some()),
            ("audio", self.audio.is_some()),
            ("modalities", self.modalities.is_some()),
            ("prediction", self.prediction.is_some()),
            (
                "functions",
                self.functions.is_some() || self.function_call.is_some(),
            ),
            ("web_search_options", self.web_search_options.is_some()),
        ];
        if let Some((field, _)) = refused.iter().find(|(_, set)| *set) {
            return Err(ApiError::bad_request(
                *field,
                "is not relayed by chatapi; leave it out",
            ));
        }
        if self.model.is_empty() {
            return Err(ApiError::bad_request("model", "must name a persona"));
        }
        let stop = self.stop.map(|s| s.into_vec("stop")).transpose()?;
        let sampling = Sampling {
            temperature: self.temperature,
            top_p: self.top_p,
            n: self.n,
            max_tokens: self.max_completion_tokens.or(self.max_tokens),
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            stop,
            seed: self.seed,
        };
        check_ranges(&sampling)?;
        let stream = self.stream.unwrap_or(false);
        let stream_usage = stream
            && self
                .stream_options
                .and_then(|o| o.include_usage)
                .unwrap_or(false);
        let (messages, videos) = messages(self.messages, max_messages)?;
        Ok(ChatAsk {
            persona: self.model,
            messages,
            videos,
            options: CallerOptions {
                sampling,
                extras: Extras {
                    tools: self.tools,
                    tool_choice: self.tool_choice,
                    parallel_tool_calls: self.parallel_tool_calls,
                    response_format: self.response_format,
                    user: self.user,
                    logprobs: self.logprobs,
                    top_logprobs: self.top_logprobs,
                },
                // A whole answer always reports usage; a stream when asked to.
                include_usage: !stream || stream_usage,
            },
            stream,
            stream_usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &str) -> Result<ChatAsk, ApiError> {
        json::<ChatCompletionBody>(body.as_bytes())?.into_ask(100)
    }

    fn field_of(body: &str) -> String {
        match decode(body) {
            Err(ApiError::BadRequest { field, .. }) => field,
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted: {body}"),
        }
    }

    #[test]
    fn every_problem_names_its_field() {
        assert_eq!(
            field_of(r#"{"model":"m","messages":[{"role":"user","content":5}]}"#),
            "messages[0].content"
        );
        assert_eq!(
            field_of(r#"{"model":"m","messages":[{"role":"bot","content":"x"}]}"#),
            "messages[0].role"
        );
        assert_eq!(
            field_of(r#"{"model":"m","messages":[],"temperature":"hot"}"#),
            "temperature"
        );
        assert_eq!(
            field_of(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3}"#),
            "temperature"
        );
        assert_eq!(
            field_of(
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"logit_bias":{"1":2}}"#
            ),
            "logit_bias"
        );
        assert_eq!(
            field_of(r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#),
            "messages[0].tool_call_id"
        );
        assert_eq!(
            field_of(
                r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]}"#
            ),
            "messages[0].content[0].type"
        );
        assert_eq!(
            field_of(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temprature":1}"#),
            "temprature"
        );
        assert_eq!(
            field_of(r#"{"messages":[{"role":"user","content":"x"}]}"#),
            "body"
        );
    }

    #[test]
    fn options_and_tool_turns_are_decoded() {
        let ask = decode(r#"{"model":"tutor","stream":true,"stream_options":{"include_usage":true},
            "max_completion_tokens":9,"stop":"END","seed":3,"metadata":{"a":"b"},
            "tools":[{"type":"function","function":{"name":"weather","parameters":{"type":"object"}}}],
            "messages":[{"role":"developer","content":"be brief"},
              {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"weather","arguments":"{}"}}]},
              {"role":"tool","tool_call_id":"c1","content":"sunny"},
              {"role":"user","content":[{"type":"text","text":"and "},{"type":"text","text":"now?"}]}]}"#).unwrap();
        assert_eq!(ask.persona, "tutor");
        assert!(ask.stream && ask.stream_usage && ask.options.include_usage);
        assert_eq!(ask.options.sampling.max_tokens, Some(9));
        assert_eq!(ask.options.sampling.stop, Some(vec!["END".to_string()]));
        assert_eq!(ask.options.extras.tools.as_ref().map(Vec::len), Some(1));
        assert_eq!(ask.messages[0].role, Role::System);
        assert_eq!(ask.messages[1].tool_calls[0].name, "weather");
        assert_eq!(ask.messages[2].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(ask.messages[3].content, "and now?");
    }
}
