//! A persona turns the caller's conversation into the request the upstream sees: the owner's
//! system prompt first, the caller's system messages kept or dropped, speaker names made valid
//! for OpenAI, every sampling knob, and the context budget (see `context`).

use crate::config::{Persona, SystemMessages};
use crate::context;
use crate::conversation::{Message, Role};
use crate::upstream::{ChatRequest, Sampling};

/// What applying a persona did, for the request's log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Applied {
    pub dropped_turns: usize,
}

pub fn apply(persona: &Persona, caller: Vec<Message>) -> (ChatRequest, Applied) {
    let mut messages = Vec::with_capacity(caller.len() + 1);
    if let Some(prompt) = persona.system_prompt.as_deref().filter(|p| !p.is_empty()) {
        messages.push(Message::new(Role::System, prompt));
    }
    messages.extend(
        caller
            .into_iter()
            .filter(|m| m.role != Role::System || persona.system_messages == SystemMessages::Keep)
            .map(|mut m| {
                m.name = m.name.as_deref().and_then(openai_name);
                m
            }),
    );
    let model = persona.model.clone();
    let dropped_turns = if persona.context_tokens > 0 {
        context::fit(
            &mut messages,
            model.as_deref(),
            persona.context_tokens,
            persona.max_tokens.unwrap_or(0),
        )
    } else {
        0
    };
    let request = ChatRequest {
        messages,
        model,
        sampling: Sampling {
            temperature: persona.temperature,
            top_p: persona.top_p,
            n: persona.n,
            max_tokens: persona.max_tokens,
            presence_penalty: persona.presence_penalty,
            frequency_penalty: persona.frequency_penalty,
            stop: persona.stop.clone(),
            seed: persona.seed,
        },
    };
    (request, Applied { dropped_turns })
}

/// OpenAI rejects a whole request whose `name` is outside `^[a-zA-Z0-9_-]{1,64}$`; FaceTo-AI sends
/// display names ("Ann Lee"). Map every other character to `_` rather than fail the turn.
pub fn openai_name(name: &str) -> Option<String> {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    (!cleaned.is_empty()).then_some(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: Role, content: &str, name: Option<&str>) -> Message {
        Message {
            role,
            content: content.into(),
            name: name.map(Into::into),
        }
    }

    #[test]
    fn names_become_valid() {
        assert_eq!(openai_name("Ann Lee").as_deref(), Some("Ann_Lee"));
        assert_eq!(openai_name("José-1").as_deref(), Some("Jos_-1"));
        assert_eq!(openai_name(&"x".repeat(100)).unwrap().len(), 64);
        assert_eq!(openai_name(""), None);
    }

    #[test]
    fn system_prompt_first_and_drop_policy() {
        let caller = vec![
            msg(Role::User, "hi", Some("Ann Lee")),
            msg(Role::System, "You are currently talking to ann", None),
            msg(Role::User, "there", None),
        ];
        let mut p = Persona {
            system_prompt: Some("Be brief.".into()),
            temperature: Some(0.2),
            ..Persona::default()
        };
        let (req, _) = apply(&p, caller.clone());
        assert_eq!(req.messages.len(), 4);
        assert_eq!(req.messages[0], msg(Role::System, "Be brief.", None));
        assert_eq!(req.messages[1].name.as_deref(), Some("Ann_Lee"));
        assert_eq!(req.sampling.temperature, Some(0.2));

        p.system_messages = SystemMessages::Drop;
        let (req, _) = apply(&p, caller);
        assert_eq!(req.messages.len(), 3);
        assert!(req.messages[1..].iter().all(|m| m.role != Role::System));
    }
}
