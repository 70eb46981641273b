//! Decodes a ChatAPI request body into a [`Message`] list, or an error that names the field and
//! the problem. Nothing reaches an upstream unless this accepts the whole request.
//!
//! Accepted on purpose, because the real FaceTo-AI client sends them: unknown top-level keys
//! (`steam`, `stream`), a `system` message anywhere, empty assistant content, repeated roles,
//! `name` values with spaces (made valid later by `persona`), and OpenAI's array of text parts.

use serde_json::Value;

use crate::conversation::{Message, Role};
use crate::error::ApiError;

pub fn messages(body: &[u8], max_messages: usize) -> Result<Vec<Message>, ApiError> {
    let root: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("body", format!("is not valid JSON: {e}")))?;
    let Value::Object(mut root) = root else {
        return Err(ApiError::bad_request("body", "must be a JSON object"));
    };
    let list = match root.remove("messages") {
        None | Some(Value::Null) => return Err(ApiError::bad_request("messages", "is required")),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(ApiError::bad_request("messages", "must be an array")),
    };
    if list.is_empty() {
        return Err(ApiError::bad_request("messages", "must not be empty"));
    }
    if list.len() > max_messages {
        return Err(ApiError::bad_request(
            "messages",
            format!(
                "has {} messages, more than the limit of {max_messages}",
                list.len()
            ),
        ));
    }
    list.into_iter()
        .enumerate()
        .map(|(i, m)| message(i, m))
        .collect()
}

fn message(i: usize, value: Value) -> Result<Message, ApiError> {
    let field = |f: &str| format!("messages[{i}].{f}");
    let Value::Object(mut m) = value else {
        return Err(ApiError::bad_request(
            format!("messages[{i}]"),
            "must be an object",
        ));
    };
    let role = match m.get("role") {
        Some(Value::String(r)) => match r.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(ApiError::bad_request(
                    field("role"),
                    format!("`{other}` is not one of system, user, assistant"),
                ))
            }
        },
        Some(_) => return Err(ApiError::bad_request(field("role"), "must be a string")),
        None => return Err(ApiError::bad_request(field("role"), "is required")),
    };
    let content = match m.remove("content") {
        Some(Value::String(s)) => s,
        // An assistant turn that said nothing (FaceTo-AI stores failed turns that way).
        None | Some(Value::Null) if role == Role::Assistant => String::new(),
        None | Some(Value::Null) => {
            return Err(ApiError::bad_request(field("content"), "is required"))
        }
        Some(Value::Array(parts)) => text_parts(i, parts)?,
        Some(_) => {
            return Err(ApiError::bad_request(
                field("content"),
                "must be a string or an array of text parts",
            ))
        }
    };
    let name = match m.remove("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(ApiError::bad_request(field("name"), "must be a string")),
    };
    Ok(Message {
        role,
        content,
        name,
        ..Message::default()
    })
}

fn text_parts(i: usize, parts: Vec<Value>) -> Result<String, ApiError> {
    let mut text = String::new();
    for (j, part) in parts.into_iter().enumerate() {
        let field = format!("messages[{i}].content[{j}]");
        let Value::Object(part) = part else {
            return Err(ApiError::bad_request(field, "must be an object"));
        };
        match (part.get("type"), part.get("text")) {
            (Some(Value::String(t)), Some(Value::String(s))) if t == "text" => text.push_str(s),
            (Some(Value::String(t)), _) if t != "text" => {
                return Err(ApiError::bad_request(
                    format!("{field}.type"),
                    format!("`{t}` parts are not supported, only `text`"),
                ))
            }
            _ => {
                return Err(ApiError::bad_request(
                    field,
                    "must be {\"type\":\"text\",\"text\":\"...\"}",
                ))
            }
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        messages(body.as_bytes(), 10).unwrap_err().to_string()
    }

    #[test]
    fn faceto_quirks_are_accepted() {
        let body = r#"{"messages":[
            {"role":"assistant","content":"Hi there!","name":"Bot"},
            {"role":"user","content":"Ann Lee said hello","name":"Ann Lee"},
            {"role":"assistant","content":""},
            {"role":"system","content":"You are currently talking to ann"},
            {"role":"user","content":"one"},
            {"role":"user","content":"two","name":""}
        ],"steam":true}"#;
        let m = messages(body.as_bytes(), 10).unwrap();
        assert_eq!(m.len(), 6);
        assert_eq!(m[1].name.as_deref(), Some("Ann Lee"));
        assert_eq!(m[2].content, "");
        assert_eq!(m[3].role, Role::System);
        assert_eq!(m[5].name, None);
    }

    #[test]
    fn text_parts_are_joined() {
        let body = r#"{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}"#;
        assert_eq!(messages(body.as_bytes(), 10).unwrap()[0].content, "ab");
    }

    #[test]
    fn errors_name_the_field() {
        assert!(err("{").contains("body"));
        assert!(err("[]").contains("JSON object"));
        assert!(err("{}").contains("messages"));
        assert!(err(r#"{"messages":[]}"#).contains("must not be empty"));
        assert!(err(r#"{"messages":"hi"}"#).contains("must be an array"));
        assert!(err(r#"{"messages":[1]}"#).contains("messages[0]"));
        assert!(err(r#"{"messages":[{"role":"bot","content":"x"}]}"#).contains("messages[0].role"));
        assert!(
            err(r#"{"messages":[{"role":"user","content":5}]}"#).contains("messages[0].content")
        );
        assert!(err(r#"{"messages":[{"role":"user"}]}"#).contains("messages[0].content"));
        assert!(
            err(r#"{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#)
                .contains("messages[0].content[0].type")
        );
        let many = format!(
            r#"{{"messages":[{}]}}"#,
            [r#"{"role":"user","content":"x"}"#; 11].join(",")
        );
        assert!(err(&many).contains("limit of 10"));
    }
}
