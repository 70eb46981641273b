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
        + tokens(bpe, &m.content)
        + m.name.as_deref().map_or(0, |n| PER_NAME + tokens(bpe, n))
        + m.tool_calls
            .iter()
            .map(|c| tokens(bpe, &c.name) + tokens(bpe, &c.arguments))
            .sum::<usize>()
}

/// The most tokens `m` can cost: a token stands for at least one byte.
fn most_tokens(m: &Message) -> usize {
    PER_MESSAGE
        + m.content.len()
        + m.name.as_deref().map_or(0, |n| PER_NAME + n.len())
        + m.tool_calls
            .iter()
            .map(|c| c.name.len() + c.arguments.len())
            .sum::<usize>()
}

/// Text is counted in pieces of at most this many bytes, cut at whitespace where there is some.
const PIECE_BYTES: usize = 2048;

/// Tokens of `text`, in bounded time. tiktoken merges each word's bytes pairwise, which is
/// super-linear in the word's length: one 1 MiB word (a body `limits.max_body_bytes` allows)
/// would hold an async worker for a long time. Counting in pieces bounds the work by the piece
/// size; a cut inside a word may count a token more or less, which an estimate can afford.
fn tokens(bpe: &CoreBPE, text: &str) -> usize {
    let mut total = 0;
    let mut rest = text;
    while rest.len() > PIECE_BYTES {
        let mut cut = PIECE_BYTES;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        // Cut after the last whitespace in the piece, so words stay whole where possible.
        if let Some(space) = rest[..cut].rfind(char::is_whitespace) {
            if space > 0 {
                cut = space;
            }
        }
        total += bpe.encode_ordinary(&rest[..cut]).len();
        rest = &rest[cut..];
    }
    total + bpe.encode_ordinary(rest).len()
}

/// Tokens of `text` as `model`'s tokenizer counts them (an estimate for non-OpenAI models).
pub fn count_text(model: Option<&str>, text: &str) -> usize {
    tokens(encoding(model), text)
}

/// The prompt's tokens as OpenAI counts them, reply priming included: the usage to report when
/// the upstream reported none.
pub fn count_prompt(model: Option<&str>, messages: &[Message]) -> usize {
    let bpe = encoding(model);
    messages.iter().map(|m| count(bpe, m)).sum::<usize>() + REPLY_PRIMING
}

/// Drops the oldest droppable turns until the prompt plus `max_tokens` fits in `context_tokens`,
/// counting as OpenAI does. Returns how many turns were dropped.
pub fn fit(
    messages: &mut Vec<Message>,
    model: Option<&str>,
    context_tokens: u32,
    max_tokens: u32,
) -> usize {
    let budget = (context_tokens.saturating_sub(max_tokens) as usize).saturating_sub(REPLY_PRIMING);
    // Most calls are far inside the window: when even a token per byte fits, nothing is
    // counted (tiktoken's regex and merges were 3 % of a streamed answer's CPU).
    if messages.iter().map(most_tokens).sum::<usize>() <= budget {
        return 0;
    }
    let bpe = encoding(model);
    fit_by(messages, budget, |m| count(bpe, m))
}

/// The turns the rule may drop: every system message stays (the persona's prompt is one), and so
/// does the latest user turn.
fn droppable(messages: &[Message]) -> impl Fn(usize, &Message) -> bool {
    let latest_user = messages.iter().rposition(|m| m.role == Role::User);
    move |i, m| m.role != Role::System && Some(i) != latest_user
}

/// Removes the droppable turns before index `cut`; returns how many went.
fn drop_before(
    messages: &mut Vec<Message>,
    cut: usize,
    droppable: impl Fn(usize, &Message) -> bool,
) -> usize {
    let before = messages.len();
    let mut i = 0;
    messages.retain(|m| {
        let keep = i >= cut || !droppable(i, m);
        i += 1;
        keep
    });
    if before != messages.len() {
        drop_orphaned_tool_results(messages);
    }
    before - messages.len()
}

/// The rule itself, for any way of counting: keeps what is not droppable, then the newest other
/// turns whose costs still fit in `budget`; everything older goes. (The same as dropping the
/// oldest turns one by one until it fits, but it counts only what it keeps and one more, so a
/// 2,000-turn call costs what its last few turns cost.) Returns how many turns were dropped.
pub fn fit_by(
    messages: &mut Vec<Message>,
    budget: usize,
    cost: impl Fn(&Message) -> usize,
) -> usize {
    let droppable = droppable(messages);
    let kept_cost: usize = messages
        .iter()
        .enumerate()
        .filter(|(i, m)| !droppable(*i, m))
        .map(|(_, m)| cost(m))
        .sum();
    let mut room = budget.saturating_sub(kept_cost);
    let mut cut = 0;
    for (i, m) in messages.iter().enumerate().rev() {
        if !droppable(i, m) {
            continue;
        }
        let c = cost(m);
        if c > room {
            cut = i + 1;
            break;
        }
        room -= c;
    }
    drop_before(messages, cut, droppable)
}

/// Like [`fit_by`], but drops whole blocks of about `block` tokens counted from the start of
/// the call, so the cut stays where it is for several turns while the call grows. A model that
/// keeps the prompt's start cached (the embedded one) then reuses it across those turns instead
/// of decoding the whole kept history again every turn. Counts every turn, not only the kept
/// ones. Returns how many turns were dropped.
pub fn fit_in_blocks(
    messages: &mut Vec<Message>,
    budget: usize,
    block: usize,
    cost: impl Fn(&Message) -> usize,
) -> usize {
    let droppable = droppable(messages);
    let costs: Vec<usize> = messages.iter().map(cost).collect();
    let total: usize = costs.iter().sum();
    if total <= budget {
        return 0;
    }
    let to_drop = (total - budget).div_ceil(block.max(1)) * block.max(1);
    let mut dropped_cost = 0;
    let mut cut = 0;
    for (i, m) in messages.iter().enumerate() {
        if dropped_cost >= to_drop {
            break;
        }
        if droppable(i, m) {
            dropped_cost += costs[i];
            cut = i + 1;
        }
    }
    drop_before(messages, cut, droppable)
}

/// A tool result whose calling assistant turn was dropped: an OpenAI upstream refuses the whole
/// request over one, so it goes with its call.
fn drop_orphaned_tool_results(messages: &mut Vec<Message>) {
    if !messages.iter().any(|m| m.role == Role::Tool) {
        return;
    }
    let called: std::collections::HashSet<String> = messages
        .iter()
        .flat_map(|m| m.tool_calls.iter().map(|c| c.id.clone()))
        .collect();
    messages.retain(|m| {
        m.role != Role::Tool
            || m.tool_call_id
                .as_ref()
                .is_some_and(|id| called.contains(id))
    });
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
    fn long_text_is_counted_in_pieces_without_changing_normal_counts() {
        let bpe = encoding(None);
        let prose = "The quick brown fox jumps over the lazy dog. ".repeat(200);
        let whole = bpe.encode_ordinary(&prose).len();
        let pieces = tokens(bpe, &prose);
        // Cut at whitespace: the same words, at most a token per piece apart.
        assert!(
            whole.abs_diff(pieces) <= prose.len() / PIECE_BYTES + 1,
            "{whole} vs {pieces}"
        );
        // One 64 KiB word with no spaces, the super-linear case: counted, and close.
        let word = "ab1".repeat(64 * 1024 / 3);
        assert!(tokens(bpe, &word) > word.len() / 8);
        // Multi-byte characters are never cut in half.
        assert!(tokens(bpe, &"é".repeat(5000)) > 0);
    }

    #[test]
    fn counts_only_what_it_keeps() {
        let mut m: Vec<Message> = (0..2000).map(turn).collect();
        m.push(Message::new(Role::User, "latest"));
        let counted = std::cell::Cell::new(0);
        let dropped = fit_by(&mut m, 100, |_| {
            counted.set(counted.get() + 1);
            10
        });
        assert_eq!(
            m.len(),
            10,
            "the latest question and the nine turns before it"
        );
        assert_eq!(dropped, 1991);
        assert_eq!(m[0].content, turn(1991).content);
        assert!(counted.get() <= 12, "counted {} messages", counted.get());
    }

    #[test]
    fn block_cuts_stay_put_while_the_call_grows() {
        let call = |turns: usize| {
            let mut m: Vec<Message> = (0..turns).map(turn).collect();
            m.push(Message::new(Role::User, "latest"));
            m
        };
        let first_kept = |turns: usize| {
            let mut m = call(turns);
            fit_in_blocks(&mut m, 100, 40, |_| 10);
            assert!(m.len() * 10 <= 100, "fits: {} turns kept", m.len());
            m[0].content.clone()
        };
        // Each turn adds 10 tokens; a 40-token block moves the cut once every four turns.
        let cuts: Vec<String> = (20..28).map(first_kept).collect();
        let moves = cuts.windows(2).filter(|w| w[0] != w[1]).count();
        assert_eq!(moves, 2, "{cuts:?}");
        assert_eq!(fit_in_blocks(&mut call(5), 100, 40, |_| 10), 0);
    }

    #[test]
    fn the_byte_bound_is_never_below_the_count() {
        let bpe = encoding(None);
        for text in [
            "",
            "a",
            "Hello, world!",
            "日本語のテキスト",
            "🦀🦀🦀",
            "   \n\t  ",
            "x".repeat(5000).as_str(),
        ] {
            let m = Message {
                name: Some("Ünïcode".into()),
                ..Message::new(Role::User, text)
            };
            assert!(count(bpe, &m) <= most_tokens(&m), "{text:?}");
        }
    }

    #[test]
    fn short_conversations_are_untouched() {
        let mut m = vec![Message::new(Role::System, "be brief"), turn(0)];
        assert_eq!(fit(&mut m, Some("gpt-4o-mini"), 4096, 256), 0);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn oldest_turns_go_first_and_pinned_ones_stay() {
        let mut m = vec![Message::new(Role::System, "persona prompt")];
        m.extend((0..400).map(turn));
        m.insert(200, Message::new(Role::System, "talking to ann"));
        m.push(Message::new(Role::User, "the latest question"));
        let dropped = fit(&mut m, Some("gpt-4o-mini"), 1000, 200);
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
