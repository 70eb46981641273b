//! Context budget. FaceTo-AI sends the whole call history every turn and never trims it, so a long
//! call would eventually overflow the model's window and every later turn would fail. Before that
//! happens, drop the oldest turns, keeping the persona's prompt, every system message and the
//! latest user turn.

use tiktoken_rs::tokenizer::{get_tokenizer, Tokenizer};
use tiktoken_rs::CoreBPE;

use crate::conversation::{Message, Role};

/// OpenAI's accounting (the tiktoken cookbook): each message costs its text plus a few tokens of
/// framing, a name one more, and the reply is primed with three.
const PER_MESSAGE: usize = 3;
const PER_NAME: usize = 1;
const REPLY_PRIMING: usize = 3;

fn encoding(model: Option<&str>) -> &'static CoreBPE {
    match model.and_then(get_tokenizer) {
        Some(Tokenizer::Cl100kBase) => tiktoken_rs::cl100k_base_singleton(),
        // o200k for today's OpenAI models, and a fair estimate for the open models behind other
        // OpenAI-compatible servers, whose own tokenizers tiktoken does not know.
        _ => tiktoken_rs::o200k_base_singleton(),
    }
}

pub fn count(bpe: &CoreBPE, m: &Message) -> usize {
    PER_MESSAGE
        + bpe.encode_ordinary(&m.content).len()
        + m.name
            .as_deref()
            .map_or(0, |n| PER_NAME + bpe.encode_ordinary(n).len())
}

/// Drops the oldest droppable turns until the prompt plus `max_tokens` fits in `context_tokens`.
/// `messages[..pinned]` (the persona's prompt) always stays. Returns how many turns were dropped.
pub fn fit(
    messages: &mut Vec<Message>,
    pinned: usize,
    model: Option<&str>,
    context_tokens: u32,
    max_tokens: u32,
) -> usize {
    let budget = context_tokens.saturating_sub(max_tokens) as usize;
    let bpe = encoding(model);
    let costs: Vec<usize> = messages.iter().map(|m| count(bpe, m)).collect();
    let mut total = REPLY_PRIMING + costs.iter().sum::<usize>();
    if total <= budget {
        return 0;
    }
    let latest_user = messages.iter().rposition(|m| m.role == Role::User);
    let mut keep = vec![true; messages.len()];
    for (i, m) in messages.iter().enumerate().skip(pinned) {
        if total <= budget {
            break;
        }
        if m.role == Role::System || Some(i) == latest_user {
            continue;
        }
        keep[i] = false;
        total -= costs[i];
    }
    let mut flags = keep.iter();
    messages.retain(|_| flags.next().copied().unwrap_or(true));
    keep.iter().filter(|k| !**k).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(i: usize) -> Message {
        let role = if i % 2 == 0 {
            Role::User
        } else {
            Role::Assistant
        };
        Message::new(role, format!("turn number {i} with a few more words in it"))
    }

    #[test]
    fn short_conversations_are_untouched() {
        let mut m = vec![Message::new(Role::System, "be brief"), turn(0)];
        assert_eq!(fit(&mut m, 1, Some("gpt-4o-mini"), 4096, 256), 0);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn oldest_turns_go_first_and_pinned_ones_stay() {
        let mut m = vec![Message::new(Role::System, "persona prompt")];
        m.extend((0..400).map(turn));
        m.insert(200, Message::new(Role::System, "talking to ann"));
        m.push(Message::new(Role::User, "the latest question"));
        let dropped = fit(&mut m, 1, Some("gpt-4o-mini"), 1000, 200);
        assert!(dropped > 0);
        let bpe = encoding(Some("gpt-4o-mini"));
        let total: usize = REPLY_PRIMING + m.iter().map(|x| count(bpe, x)).sum::<usize>();
        assert!(total <= 800, "{total}");
        assert_eq!(m[0].content, "persona prompt");
        assert!(m.iter().any(|x| x.content == "talking to ann"));
        assert_eq!(m.last().unwrap().content, "the latest question");
        // What survives is the most recent stretch of the conversation.
        assert!(m.iter().any(|x| x.content.starts_with("turn number 399 ")));
        assert!(!m.iter().any(|x| x.content.starts_with("turn number 0 ")));
    }
}
