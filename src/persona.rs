//! A persona turns the caller's conversation into the request the upstream sees: the owner's
//! system prompt first, the caller's system messages kept or dropped, speaker names made valid
//! for OpenAI, every sampling knob, and the context budget (see `context`).

use crate::config::{CallerParam, Persona, SystemMessages};
use crate::context_budget;
use crate::conversation::{Message, Role};
use crate::upstream::{ChatRequest, Extras, Sampling};

/// What a caller asked for beyond the conversation (OpenAI's request fields). The persona decides
/// which of them count (`caller_may_set`), and its own values win where it sets them.
#[derive(Debug, Clone, Default)]
pub struct CallerOptions {
    pub sampling: Sampling,
    pub extras: Extras,
    /// The caller reads token usage: ask the upstream for it.
    pub include_usage: bool,
}

/// What applying a persona did, for the request's log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Applied {
    pub dropped_turns: usize,
}

/// `reference`: material the core adds after the persona's prompt (a video's timeline), kept
/// whatever the persona does with the caller's system messages.
pub fn apply(
    persona: &Persona,
    caller: Vec<Message>,
    reference: Option<String>,
    options: CallerOptions,
) -> (ChatRequest, Applied) {
    let mut messages = Vec::with_capacity(caller.len() + 2);
    if let Some(prompt) = persona.system_prompt.as_deref().filter(|p| !p.is_empty()) {
        messages.push(Message::new(Role::System, prompt));
    }
    if let Some(reference) = reference {
        messages.push(Message::new(Role::System, reference));
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
    let CallerOptions {
        sampling: asked,
        extras,
        include_usage,
    } = options;
    // The persona's value if it sets one, else the caller's if the persona leaves it to them.
    let may = |param| persona.caller_may_set(param);
    let sampling = Sampling {
        temperature: persona
            .temperature
            .or(asked.temperature.filter(|_| may(CallerParam::Temperature))),
        top_p: persona
            .top_p
            .or(asked.top_p.filter(|_| may(CallerParam::TopP))),
        n: persona.n.or(asked.n.filter(|_| may(CallerParam::N))),
        max_tokens: persona
            .max_tokens
            .or(asked.max_tokens.filter(|_| may(CallerParam::MaxTokens))),
        presence_penalty: persona.presence_penalty.or(asked
            .presence_penalty
            .filter(|_| may(CallerParam::PresencePenalty))),
        frequency_penalty: persona.frequency_penalty.or(asked
            .frequency_penalty
            .filter(|_| may(CallerParam::FrequencyPenalty))),
        stop: persona
            .stop
            .clone()
            .or(asked.stop.filter(|_| may(CallerParam::Stop))),
        seed: persona
            .seed
            .or(asked.seed.filter(|_| may(CallerParam::Seed))),
    };
    let tools = may(CallerParam::Tools);
    let extras = Extras {
        tools: extras.tools.filter(|_| tools),
        tool_choice: extras.tool_choice.filter(|_| tools),
        parallel_tool_calls: extras.parallel_tool_calls.filter(|_| tools),
        response_format: extras
            .response_format
            .filter(|_| may(CallerParam::ResponseFormat)),
        user: extras.user.filter(|_| may(CallerParam::User)),
        logprobs: extras.logprobs.filter(|_| may(CallerParam::Logprobs)),
        top_logprobs: extras.top_logprobs.filter(|_| may(CallerParam::Logprobs)),
    };
    let dropped_turns = if persona.context_tokens > 0 {
        context_budget::fit(
            &mut messages,
            model.as_deref(),
            persona.context_tokens,
            sampling.max_tokens.unwrap_or(0),
        )
    } else {
        0
    };
    let request = ChatRequest {
        messages,
        model,
        sampling,
        extras,
        include_usage,
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

    #[test]
    fn the_persona_decides_what_a_caller_may_set() {
        let caller = vec![msg(Role::User, "hi", None)];
        let asked = CallerOptions {
            sampling: Sampling {
                temperature: Some(1.5),
                top_p: Some(0.5),
                seed: Some(7),
                ..Sampling::default()
            },
            extras: Extras {
                user: Some("u1".into()),
                ..Extras::default()
            },
            include_usage: true,
        };
        let p = Persona {
            temperature: Some(0.2),
            caller_may_set: Some(vec![CallerParam::TopP, CallerParam::Temperature]),
            ..Persona::default()
        };
        let (req, _) = apply(&p, caller, None, asked);
        assert_eq!(
            req.sampling.temperature,
            Some(0.2),
            "the persona's own value wins"
        );
        assert_eq!(
            req.sampling.top_p,
            Some(0.5),
            "allowed and unset: the caller's"
        );
        assert_eq!(req.sampling.seed, None, "not allowed");
        assert_eq!(req.extras.user, None, "not allowed");
        assert!(req.include_usage);
    }

    fn msg(role: Role, content: &str, name: Option<&str>) -> Message {
        Message {
            role,
            content: content.into(),
            name: name.map(Into::into),
            ..Message::default()
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
        let (req, _) = apply(&p, caller.clone(), None, CallerOptions::default());
        assert_eq!(req.messages.len(), 4);
        assert_eq!(req.messages[0], msg(Role::System, "Be brief.", None));
        assert_eq!(req.messages[1].name.as_deref(), Some("Ann_Lee"));
        assert_eq!(req.sampling.temperature, Some(0.2));

        p.system_messages = SystemMessages::Drop;
        let (req, _) = apply(&p, caller, None, CallerOptions::default());
        assert_eq!(req.messages.len(), 3);
        assert!(req.messages[1..].iter().all(|m| m.role != Role::System));
    }
}
