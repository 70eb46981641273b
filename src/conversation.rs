//! The conversation as every dialect hands it to the core: plain roles, text content, optional
//! speaker names, and OpenAI's tool calls (an assistant turn that called tools, a `tool` turn
//! with a result). Dialect quirks (FaceTo-AI's `steam`, OpenAI's content parts) end in the
//! routes that decode them.

use std::fmt;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Role {
    System,
    #[default]
    User,
    Assistant,
    /// A tool's result, answering an assistant turn's tool call.
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub content: String,
    pub name: Option<String>,
    /// Tools an assistant turn called.
    pub tool_calls: Vec<ToolCall>,
    /// Which call a `tool` turn answers.
    pub tool_call_id: Option<String>,
    /// Pictures a user turn shows, as `data:` URLs, sent at low detail. Only chatapi's own
    /// requests carry them (a keyframe to caption); no dialect decodes a caller's images.
    pub images: Vec<String>,
}

/// One function call made by the model: its id, the function's name, the JSON arguments as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            ..Self::default()
        }
    }
}
