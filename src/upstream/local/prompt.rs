//! What the model is given: the conversation rendered with the model's own chat template,
//! tokenized, fitted to the context (the oldest turns go first, in blocks), and matched against
//! what a free sequence's KV cache still holds, so a call's next turn decodes only what is new.
//! The engine thread (`engine`) schedules; this module decides what it decodes.

use std::sync::Arc;

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::token::LlamaToken;

use crate::conversation::{Message, Role};
use crate::upstream::UpstreamError;

/// The roles and contents the model's chat template receives.
pub fn template_messages(messages: &[Message]) -> Vec<(&'static str, String)> {
    messages
        .iter()
        .map(|m| (m.role.as_str(), m.content.replace('\0', "")))
        .collect()
}

/// The exact prompt text the model sees for `messages`: its own chat template, applied by
/// llama.cpp, ending with the opening of the assistant's turn.
pub fn apply_template(
    model: &LlamaModel,
    template: &LlamaChatTemplate,
    messages: &[Message],
) -> Result<String, String> {
    let messages = template_messages(messages)
        .into_iter()
        .map(|(role, content)| LlamaChatMessage::new(role.to_string(), content))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    model
        .apply_chat_template(template, &messages, true)
        .map_err(|e| e.to_string())
}

/// Renders, tokenizes and fits prompts for one loaded model.
pub struct Prompter<'m> {
    model: &'m LlamaModel,
    template: LlamaChatTemplate,
    /// Tokens the chat template adds around one message's text (measured from the template).
    framing: usize,
    context_tokens: u32,
    name: Arc<str>,
}

impl<'m> Prompter<'m> {
    pub fn new(
        name: Arc<str>,
        model: &'m LlamaModel,
        template: LlamaChatTemplate,
        context_tokens: u32,
    ) -> Self {
        Self {
            framing: message_framing(model, &template),
            model,
            template,
            context_tokens,
            name,
        }
    }

    pub fn tokens(&self, messages: &[Message]) -> Result<Vec<LlamaToken>, UpstreamError> {
        let prompt = apply_template(self.model, &self.template, messages).map_err(|e| {
            UpstreamError::Transport {
                upstream: self.name.clone(),
                detail: format!("chat template failed: {e}"),
            }
        })?;
        Ok(self.model.vocab().tokenize(prompt.as_bytes(), true, true))
    }

    /// The prompt's tokens, at most `budget` of them: the oldest turns are dropped, in blocks
    /// (`context::fit_in_blocks`) so that the cached start of the prompt stays valid for several
    /// turns, counted with the model's own tokenizer. Each turn is costed as its text plus the
    /// template's framing, then the real prompt is checked, and the budget tightened by any
    /// shortfall, a few times at most.
    pub fn fit(
        &self,
        messages: &[Message],
        budget: usize,
    ) -> Result<(Vec<LlamaToken>, usize), UpstreamError> {
        let vocab = self.model.vocab();
        let text_tokens = |m: &Message| vocab.tokenize(m.content.as_bytes(), false, false).len();
        let mut kept = messages.to_vec();
        let mut dropped = 0;
        let mut target = budget;
        let mut shortest = 0;
        for _ in 0..4 {
            // Blocks of a quarter of the budget: the cut, and so the cached prompt start, stays
            // put for several turns of a long call.
            dropped += crate::context_budget::fit_in_blocks(&mut kept, target, budget / 4, |m| {
                text_tokens(m) + self.framing
            });
            let tokens = self.tokens(&kept)?;
            if tokens.len() <= budget {
                return Ok((tokens, dropped));
            }
            shortest = tokens.len();
            target = target.saturating_sub(tokens.len() - budget);
        }
        Err(UpstreamError::Status {
            upstream: self.name.clone(),
            status: 400,
            message: format!(
                "the prompt is {shortest} tokens even without its older turns; the local model's context is {} per conversation",
                self.context_tokens
            ),
            code: Some("context_length_exceeded".into()),
            retry_after: None,
        })
    }
}

/// How many of `tokens` a sequence whose cache holds `cached` need not decode again: their shared
/// start, less the last prompt token, which is always decoded again (sampling needs its logits).
pub fn reusable(cached: &[LlamaToken], tokens: &[LlamaToken]) -> usize {
    cached
        .iter()
        .zip(tokens)
        .take_while(|(a, b)| a == b)
        .count()
        .min(tokens.len().saturating_sub(1))
}

/// Tokens the template adds around one message: the difference one more message makes to the
/// rendered prompt, less that message's own text. 8 (ChatML's size) if the template cannot say.
fn message_framing(model: &LlamaModel, template: &LlamaChatTemplate) -> usize {
    let tokens = |messages: &[Message]| {
        apply_template(model, template, messages)
            .map(|p| model.vocab().tokenize(p.as_bytes(), true, true).len())
    };
    let one = [Message::new(Role::User, "hello")];
    let two = [
        Message::new(Role::User, "hello"),
        Message::new(Role::Assistant, "hello"),
    ];
    let text = model.vocab().tokenize(b"hello", false, false).len();
    match (tokens(&one), tokens(&two)) {
        (Ok(a), Ok(b)) if b > a + text => b - a - text,
        _ => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_roles() {
        let m = vec![
            Message::new(Role::System, "be brief"),
            Message::new(Role::User, "hi\0"),
            Message::new(Role::Assistant, "hello"),
        ];
        let t = template_messages(&m);
        assert_eq!(
            t,
            vec![
                ("system", "be brief".to_string()),
                ("user", "hi".to_string()),
                ("assistant", "hello".to_string())
            ]
        );
    }

    #[test]
    fn the_last_prompt_token_is_always_decoded_again() {
        let t = |v: &[i32]| v.iter().map(|&i| LlamaToken::new(i)).collect::<Vec<_>>();
        assert_eq!(reusable(&t(&[1, 2, 3, 9]), &t(&[1, 2, 3, 4, 5])), 3);
        assert_eq!(reusable(&t(&[1, 2, 3]), &t(&[1, 2, 3])), 2);
        assert_eq!(reusable(&t(&[7]), &t(&[1, 2])), 0);
        assert_eq!(reusable(&[], &[]), 0);
    }
}
