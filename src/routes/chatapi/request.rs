//! Decodes a ChatAPI request body into a [`Message`] list, or an error that names the field and
//! the problem. Nothing reaches an upstream unless this accepts the whole request.
//!
//! Accepted on purpose, because the real FaceTo-AI client sends them: unknown top-level keys
//! (`steam`, `stream`), a `system` message anywhere, empty assistant content, repeated roles,
//! `name` values with spaces (made valid later by `persona`), and OpenAI's array of text parts.
//!
//! The body is read into [`Json`], a `serde_json::Value` cut down to what the checks look at:
//! the six keys this format has, strings, lists and, for the rest, only their kind. Building a
//! whole `Value` (a map and a string for every key, a node for every number) was 4 % of a
//! streamed answer's instructions, all of it before the first token.

use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::conversation::{Message, Role};
use crate::error::ApiError;

/// A JSON value as far as a ChatAPI body matters. Duplicate keys: the last one counts, as with
/// `serde_json::Value`.
#[derive(Debug)]
enum Json {
    Str(String),
    Null,
    List(Vec<Json>),
    Object(Vec<(Key, Json)>),
    /// A number or a boolean: wrong wherever it is, and named only by its place.
    Other,
}

/// The keys read; any other is `Unread`, its value skipped without being kept.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Key {
    Messages,
    Role,
    Content,
    Name,
    Type,
    Text,
    Unread,
}

impl Json {
    /// What `key` holds, taken out (the last of duplicates).
    fn take(&mut self, key: Key) -> Option<Json> {
        let Json::Object(fields) = self else {
            return None;
        };
        let at = fields.iter().rposition(|(k, _)| *k == key)?;
        // `remove`, not `swap_remove`: the order of what is left decides which duplicate is last.
        Some(fields.remove(at).1)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(json: D) -> Result<Self, D::Error> {
        json.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Json, E> {
        Ok(Json::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Json, E> {
        Ok(Json::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Json, E> {
        Ok(Json::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Json, E> {
        Ok(Json::Other)
    }
    fn visit_str<E>(self, s: &str) -> Result<Json, E> {
        Ok(Json::Str(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Json, E> {
        Ok(Json::Str(s))
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut fields = Vec::new();
        while let Some(key) = map.next_key::<Key>()? {
            if key == Key::Unread {
                map.next_value::<IgnoredAny>()?;
            } else {
                fields.push((key, map.next_value()?));
            }
        }
        Ok(Json::Object(fields))
    }
}

/// A key, compared where it lies in the body, never copied.
impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(key: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "messages" => Key::Messages,
                    "role" => Key::Role,
                    "content" => Key::Content,
                    "name" => Key::Name,
                    "type" => Key::Type,
                    "text" => Key::Text,
                    _ => Key::Unread,
                })
            }
        }
        key.deserialize_str(KeyVisitor)
    }
}

pub fn messages(body: &[u8], max_messages: usize) -> Result<Vec<Message>, ApiError> {
    let mut root: Json = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("body", format!("is not valid JSON: {e}")))?;
    if !matches!(root, Json::Object(_)) {
        return Err(ApiError::bad_request("body", "must be a JSON object"));
    }
    let list = match root.take(Key::Messages) {
        None | Some(Json::Null) => return Err(ApiError::bad_request("messages", "is required")),
        Some(Json::List(list)) => list,
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

fn message(i: usize, mut m: Json) -> Result<Message, ApiError> {
    let field = |f: &str| format!("messages[{i}].{f}");
    if !matches!(m, Json::Object(_)) {
        return Err(ApiError::bad_request(
            format!("messages[{i}]"),
            "must be an object",
        ));
    }
    let role = match m.take(Key::Role) {
        Some(Json::Str(r)) => match r.as_str() {
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
    let content = match m.take(Key::Content) {
        Some(Json::Str(s)) => s,
        // An assistant turn that said nothing (FaceTo-AI stores failed turns that way).
        None | Some(Json::Null) if role == Role::Assistant => String::new(),
        None | Some(Json::Null) => {
            return Err(ApiError::bad_request(field("content"), "is required"))
        }
        Some(Json::List(parts)) => text_parts(i, parts)?,
        Some(_) => {
            return Err(ApiError::bad_request(
                field("content"),
                "must be a string or an array of text parts",
            ))
        }
    };
    let name = match m.take(Key::Name) {
        None | Some(Json::Null) => None,
        Some(Json::Str(s)) if s.is_empty() => None,
        Some(Json::Str(s)) => Some(s),
        Some(_) => return Err(ApiError::bad_request(field("name"), "must be a string")),
    };
    Ok(Message {
        role,
        content,
        name,
        ..Message::default()
    })
}

fn text_parts(i: usize, parts: Vec<Json>) -> Result<String, ApiError> {
    let mut text = String::new();
    for (j, mut part) in parts.into_iter().enumerate() {
        let field = format!("messages[{i}].content[{j}]");
        if !matches!(part, Json::Object(_)) {
            return Err(ApiError::bad_request(field, "must be an object"));
        }
        match (part.take(Key::Type), part.take(Key::Text)) {
            (Some(Json::Str(t)), Some(Json::Str(s))) if t == "text" => text.push_str(&s),
            (Some(Json::Str(t)), _) if t != "text" => {
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
    fn other_keys_are_skipped_and_the_last_of_duplicates_counts() {
        let body = r#"{"x":{"messages":1},"messages":[{"role":"user","content":"a",
            "extra":[1,{"role":2}],"content":"b","name":null}],"stream":true,"n":-1.5e3}"#;
        let m = messages(body.as_bytes(), 10).unwrap();
        assert_eq!((m[0].content.as_str(), m[0].name.as_deref()), ("b", None));
        let body = r#"{"messages":[{"role":"user","content":"a","content":"b"}]}"#;
        assert_eq!(messages(body.as_bytes(), 10).unwrap()[0].content, "b");
        assert!(err(r#"{"messages":[{"role":true,"content":"x"}]}"#).contains("messages[0].role"));
        assert!(err(r#"{"messages":[{"role":null,"content":"x"}]}"#).contains("must be a string"));
        assert!(
            err(r#"{"messages":[{"role":"user","content":"x","name":7}]}"#)
                .contains("messages[0].name")
        );
        assert!(
            err(r#"{"messages":[{"role":"user","content":{"text":"x"}}]}"#)
                .contains("a string or an array of text parts")
        );
        assert!(err(r#"{"messages":[{"role":"user","content":"x"}] "#).contains("not valid JSON"));
    }

    #[test]
    fn a_body_nested_past_serde_jsons_depth_limit_is_refused_not_recursed_into() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        // Under a key that is kept, its lists would be built: refused at serde_json's limit.
        let e = err(&format!(
            r#"{{"messages":[{{"role":"user","content":{deep}}}]}}"#
        ));
        assert!(e.contains("recursion limit exceeded"), "{e}");
        // Under one that is skipped, nothing is built and the skip does not recurse.
        let body = format!(r#"{{"messages":[{{"role":"user","content":"hi","extra":{deep}}}]}}"#);
        assert_eq!(messages(body.as_bytes(), 10).unwrap()[0].content, "hi");
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
