//! Grounding a chat in videos: the part of each video's timeline a question needs, written as
//! lines stamped `[MM:SS]` (`[H:MM:SS]` past an hour) that the model is asked to cite. Every
//! video dialect goes through here.
//!
//! The whole timeline goes in when it fits the token budget. Otherwise the segments most
//! relevant to the question do (BM25 over what was said, what was on screen and what was seen),
//! each with its neighbours, plus the start of each video, in time order, with `…` where a
//! stretch was left out. A caller's time range (Reka's `start`/`end`) narrows a video first.
//!
//! Lines are sized by the token count each segment was given when its timeline was made
//! (`videos::timeline::count_tokens`), plus a fixed allowance for the stamp and labels, so a
//! chat never tokenizes a two-hour timeline on its way upstream; a segment without a stored
//! count (a timeline made before they were) is counted here.

use std::collections::{HashMap, HashSet};

use crate::videos::model::{stamp, Segment, Video};

/// What the model is told about the timeline that follows.
const INSTRUCTIONS: &str =
    "You answer questions about the video(s) below, using only their timeline. \
Each timeline line starts with the moment it happens, like [01:05]. Whenever your answer refers to \
a moment, cite its stamp exactly as written, e.g. [01:05]. If the timeline does not tell, say so \
instead of guessing.";
/// What a small embedded model is told instead: one task, and the shape of a cited answer. A
/// 135M model given the long instructions and a whole timeline cited no stamp and looped; given
/// an example answer (a red car at [02:15]), it answered with the example, word for word, so the
/// example is a shape with no content. It still seldom writes the stamp: `answer::citations`
/// gives its answer the stamp its words come from.
const SMALL_INSTRUCTIONS: &str = "Answer the question in one short sentence, using only the \
timeline below, and end the sentence with the stamp of the line it comes from, in this shape: \
<what the timeline says> [MM:SS].";
/// A small model reads at most this much timeline (about eight lines)...
const SMALL_BUDGET: usize = 400;
/// ...each cut to this many words.
const SMALL_LINE_WORDS: usize = 30;
const PARTIAL: &str = "Only the parts of the timeline most relevant to the question are shown; \
… marks a stretch left out.";

/// Who reads the timeline: it is written for the model that answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// An upstream model: every line that fits the budget, the full instructions.
    Large,
    /// The small embedded model: fewer, shorter lines, one task and an example.
    Small,
}

/// A video to ground in: its record, its timeline, and the part of it the caller asked about.
pub struct Material<'a> {
    pub video: &'a Video,
    pub segments: &'a [Segment],
    pub range: Range,
}

/// Seconds from the start; either end open.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Range {
    pub start: Option<f64>,
    pub end: Option<f64>,
}

/// The furthest into a video a caller may name, a week: past any video's length, short of what
/// a float's rounding would blur.
pub const MAX_SECONDS: f64 = 7.0 * 86_400.0;

impl Range {
    /// The part of a video a caller asked about: each end, when given, a number of seconds from
    /// the start (at most `MAX_SECONDS`), the end after the start. Else which end is wrong
    /// (`"start"` or `"end"`) and how.
    pub fn checked(
        start: Option<f64>,
        end: Option<f64>,
    ) -> Result<Self, (&'static str, &'static str)> {
        const NOT_SECONDS: &str = "must be a number of seconds from the video's start";
        let fits = |s: Option<f64>| s.is_none_or(|s| (0.0..=MAX_SECONDS).contains(&s));
        if !fits(start) {
            return Err(("start", NOT_SECONDS));
        }
        if !fits(end) {
            return Err(("end", NOT_SECONDS));
        }
        if let (Some(start), Some(end)) = (start, end) {
            if end <= start {
                return Err(("end", "must be after `start`"));
            }
        }
        Ok(Self { start, end })
    }

    /// Whether a moment `[start_s, end_s)` is in the range.
    pub fn holds(&self, start_s: f64, end_s: f64) -> bool {
        self.start.is_none_or(|start| end_s > start) && self.end.is_none_or(|end| start_s < end)
    }

    fn overlaps(&self, s: &Segment) -> bool {
        self.holds(s.start_s, s.end_s)
    }
}

/// The grounding text, and which segments of which video (indexes into `materials` and their
/// `segments`) it carried, in time order.
#[derive(Debug, Default)]
pub struct Grounding {
    pub text: String,
    pub cited: Vec<(usize, Vec<usize>)>,
    /// Every segment in range went in.
    pub whole: bool,
    /// For the small reader: the line that best answers the question, whether or not it was
    /// shown (`answer::citations` gives it instead of an answer not grounded in the timeline).
    pub evidence: Option<Evidence>,
}

/// The line that best answers a question.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// (material, segment index).
    pub line: (usize, usize),
    /// It is the line at the position the question names ("the third slide", "the last thing
    /// they do"): an answer about another line is not an answer to it.
    pub by_position: bool,
}

/// Tokens a line takes beyond its segment's text: the stamp, the labels, quotes and newline,
/// rounded up (`[1:02:05] said: "" · on screen: "" · seen: ` is 17 with o200k).
const LINE_OVERHEAD: usize = 20;

/// Tokens a sentence's own stamp takes inside a line (`[01:05] `, rounded up).
const CUE_STAMP_TOKENS: usize = 6;

/// A segment's line and its size in tokens.
struct Line {
    index: usize,
    text: String,
    tokens: usize,
}

/// `budget`: tokens the grounding may take. `count`: the model's tokenizer. `meaning`: the
/// segments (material, segment index) closest in meaning to the question, best first, when
/// search by meaning is on; fused with the keyword ranking when the timeline must be cut.
pub fn ground(
    materials: &[Material<'_>],
    question: &str,
    meaning: &[(usize, usize)],
    budget: usize,
    count: &dyn Fn(&str) -> usize,
    reader: Reader,
) -> Grounding {
    let named = materials.len() > 1;
    let (instructions, budget) = reader.instructions_and_budget(budget);
    let lines: Vec<Vec<Line>> = materials
        .iter()
        .map(|m| {
            let name = if named { count(&m.video.name) } else { 0 };
            m.segments
                .iter()
                .enumerate()
                .filter(|(_, s)| m.range.overlaps(s))
                .filter_map(|(index, s)| {
                    let (text, tokens) = costed(reader, s, line(m.video, s, named)?, name, count);
                    Some(Line {
                        index,
                        text,
                        tokens,
                    })
                })
                .collect()
        })
        .collect();
    let fixed = count(instructions)
        + count(PARTIAL)
        + materials
            .iter()
            .map(|m| count(&header(m)) + 2)
            .sum::<usize>();
    let all: usize = lines.iter().flatten().map(|l| l.tokens).sum();
    let cut = fixed + all > budget;
    // Ranked once, for the lines of a timeline that must be cut and for the small reader's
    // evidence.
    let by_words = if cut || reader == Reader::Small {
        rank(materials, &lines, question)
    } else {
        Vec::new()
    };
    let evidence = match reader {
        Reader::Small => {
            // A position counts only when no line has the question's words: "when is the
            // bicycle first mentioned" is about the bicycle.
            match at_position(materials, &lines, question).filter(|_| by_words.is_empty()) {
                Some(line) => Some(Evidence {
                    line,
                    by_position: true,
                }),
                None => best_line(&lines, &by_words, meaning).map(|line| Evidence {
                    line,
                    by_position: false,
                }),
            }
        }
        Reader::Large => None,
    };
    let chosen: Vec<HashSet<usize>> = if !cut {
        lines
            .iter()
            .map(|v| v.iter().map(|l| l.index).collect())
            .collect()
    } else {
        select(
            materials,
            &lines,
            &by_words,
            meaning,
            budget.saturating_sub(fixed),
        )
    };
    let mut grounding = render(materials, &lines, &chosen, instructions);
    grounding.evidence = evidence;
    grounding
}

/// The line at the position a question about one video names ("first", "third", "last"...),
/// counting a run of lines with the same words (a slide held across a cut) as one.
fn at_position(
    materials: &[Material<'_>],
    lines: &[Vec<Line>],
    question: &str,
) -> Option<(usize, usize)> {
    const ORDINALS: [&str; 10] = [
        "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
        "tenth",
    ];
    let [material] = materials else {
        return None;
    };
    let position = words(question).find_map(|w| {
        let w = w.to_lowercase();
        if matches!(w.as_str(), "last" | "final") {
            return Some(None);
        }
        ORDINALS.iter().position(|o| *o == w).map(Some)
    })?;
    let mut runs: Vec<usize> = Vec::new();
    let mut previous = String::new();
    for line in &lines[0] {
        let text = material.segments[line.index].text().to_lowercase();
        if text != previous {
            runs.push(line.index);
            previous = text;
        }
    }
    let index = match position {
        Some(n) => *runs.get(n)?,
        None => *runs.last()?,
    };
    Some((0, index))
}

/// The line that best answers the question: its keyword (`by_words`) and meaning rankings
/// fused, over the lines in range.
fn best_line(
    lines: &[Vec<Line>],
    by_words: &[(usize, usize)],
    meaning: &[(usize, usize)],
) -> Option<(usize, usize)> {
    let in_range: Vec<(usize, usize)> = meaning
        .iter()
        .filter(|(v, i)| {
            lines
                .get(*v)
                .is_some_and(|ls| ls.iter().any(|l| l.index == *i))
        })
        .copied()
        .collect();
    fuse(by_words, &in_range).into_iter().next()
}

impl Reader {
    /// What a reader is told, and the timeline it can take of `budget`.
    fn instructions_and_budget(self, budget: usize) -> (&'static str, usize) {
        match self {
            Reader::Large => (INSTRUCTIONS, budget),
            Reader::Small => (SMALL_INSTRUCTIONS, budget.min(SMALL_BUDGET)),
        }
    }
}

/// A segment's line as `reader` is shown it, and what it costs: the count made when the
/// timeline was (plus the line's stamps), or counted now.
fn costed(
    reader: Reader,
    s: &Segment,
    text: String,
    name: usize,
    count: &dyn Fn(&str) -> usize,
) -> (String, usize) {
    match (reader, s.tokens) {
        (Reader::Small, _) => {
            let text = shortened(&text, SMALL_LINE_WORDS);
            let tokens = count(&text) + 1;
            (text, tokens)
        }
        (Reader::Large, Some(n)) => {
            let stamps = CUE_STAMP_TOKENS * s.cues.len().saturating_sub(1);
            (text, n as usize + LINE_OVERHEAD + name + stamps)
        }
        (Reader::Large, None) => {
            let tokens = count(&text) + 1;
            (text, tokens)
        }
    }
}

/// Consecutive runs of `segments` that `ground` carries whole within `budget`, each asked about
/// as its own range (a digest's map steps over a timeline too long for one prompt).
pub fn stretches(
    video: &Video,
    segments: &[Segment],
    budget: usize,
    count: &dyn Fn(&str) -> usize,
    reader: Reader,
) -> Vec<std::ops::Range<usize>> {
    let (instructions, budget) = reader.instructions_and_budget(budget);
    // The header with the longest range it can carry.
    let material = Material {
        video,
        segments,
        range: Range {
            start: Some(86_400.0),
            end: Some(86_400.0),
        },
    };
    let room = budget.saturating_sub(count(instructions) + count(&header(&material)) + 2);
    let mut out = Vec::new();
    let (mut from, mut used) = (0, 0);
    for (i, s) in segments.iter().enumerate() {
        let tokens = line(video, s, false).map_or(0, |text| costed(reader, s, text, 0, count).1);
        if i > from && used + tokens > room {
            out.push(from..i);
            (from, used) = (i, 0);
        }
        used += tokens;
    }
    if from < segments.len() {
        out.push(from..segments.len());
    }
    out
}

/// `text`'s first `words` words, with `…` where it was cut.
pub(crate) fn shortened(text: &str, words: usize) -> String {
    let mut out: Vec<&str> = text.split_whitespace().take(words + 1).collect();
    if out.len() > words {
        out.truncate(words);
        return out.join(" ") + " …";
    }
    out.join(" ")
}

/// One segment as a line: `[01:05] said: "…" · on screen: "…" · seen: …`. None when it has
/// nothing to say.
fn line(video: &Video, s: &Segment, named: bool) -> Option<String> {
    let mut parts = Vec::new();
    if !s.transcript.trim().is_empty() {
        parts.push(format!("said: \"{}\"", said(s)));
    }
    if !s.on_screen_text.trim().is_empty() {
        parts.push(format!("on screen: \"{}\"", one_line(&s.on_screen_text)));
    }
    if !s.caption.trim().is_empty() {
        parts.push(format!("seen: {}", one_line(&s.caption)));
    }
    if parts.is_empty() {
        return None;
    }
    let who = if named {
        format!("{} ", video.name)
    } else {
        String::new()
    };
    Some(format!("{who}{} {}", stamp(s.start_s), parts.join(" · ")))
}

/// What a segment says, each sentence after the first stamped at its own moment: a model cites
/// the stamp nearest the words it uses, and a segment's first stamp is not when its later
/// sentences were said.
fn said(s: &Segment) -> String {
    let cues = s.cues();
    let mut text = String::new();
    let mut last = stamp(s.start_s);
    for cue in &cues {
        let at = stamp(cue.start_s);
        if !text.is_empty() {
            text.push(' ');
            if at != last {
                text.push_str(&at);
                text.push(' ');
            }
        }
        last = at;
        text.push_str(&one_line(&cue.text));
    }
    text
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn header(m: &Material<'_>) -> String {
    let length = m
        .video
        .duration_s
        .map(|d| format!(", {} long", stamp(d).trim_matches(['[', ']'])))
        .unwrap_or_default();
    let range = match (m.range.start, m.range.end) {
        (None, None) => String::new(),
        (start, end) => format!(
            "; asked about {} to {}",
            stamp(start.unwrap_or(0.0)),
            end.map_or("the end".to_string(), stamp)
        ),
    };
    format!(
        "Video \"{}\" (id {}{length}{range}):",
        m.video.name, m.video.id
    )
}

fn render(
    materials: &[Material<'_>],
    lines: &[Vec<Line>],
    chosen: &[HashSet<usize>],
    instructions: &str,
) -> Grounding {
    let whole = lines
        .iter()
        .zip(chosen)
        .all(|(all, chosen)| all.len() == chosen.len());
    let mut text = String::from(instructions);
    if !whole {
        text.push(' ');
        text.push_str(PARTIAL);
    }
    let mut cited = Vec::new();
    for (v, m) in materials.iter().enumerate() {
        text.push_str("\n\n");
        text.push_str(&header(m));
        let mut used = Vec::new();
        let mut gap = false;
        for line in &lines[v] {
            if chosen[v].contains(&line.index) {
                if gap {
                    text.push_str("\n…");
                }
                text.push('\n');
                text.push_str(&line.text);
                used.push(line.index);
                gap = false;
            } else {
                gap = true;
            }
        }
        if gap && !used.is_empty() {
            text.push_str("\n…");
        }
        if lines[v].is_empty() {
            text.push_str("\n(nothing was said, shown or seen in this part of the video)");
        }
        cited.push((v, used));
    }
    Grounding {
        text,
        cited,
        whole,
        evidence: None,
    }
}

/// The most relevant lines within `budget` tokens: each video's first line, then each BM25
/// hit (`by_words`, fused with `meaning`) with its neighbours, best first.
fn select(
    materials: &[Material<'_>],
    lines: &[Vec<Line>],
    by_words: &[(usize, usize)],
    meaning: &[(usize, usize)],
    budget: usize,
) -> Vec<HashSet<usize>> {
    let mut chosen: Vec<HashSet<usize>> = vec![HashSet::new(); materials.len()];
    let size: HashMap<(usize, usize), usize> = lines
        .iter()
        .enumerate()
        .flat_map(|(v, ls)| ls.iter().map(move |l| ((v, l.index), l.tokens)))
        .collect();
    let mut spent = 0;
    let mut take = |v: usize, i: usize, chosen: &mut Vec<HashSet<usize>>| -> bool {
        let Some(cost) = size.get(&(v, i)) else {
            return true;
        };
        if chosen[v].contains(&i) {
            return true;
        }
        if spent + cost > budget {
            return false;
        }
        spent += cost;
        chosen[v].insert(i);
        true
    };
    for (v, ls) in lines.iter().enumerate() {
        if let Some(first) = ls.first() {
            take(v, first.index, &mut chosen);
        }
    }
    for (v, i) in fuse(by_words, meaning) {
        // The hit first, then what leads into it and what follows.
        if !take(v, i, &mut chosen) {
            break;
        }
        if i > 0 {
            take(v, i - 1, &mut chosen);
        }
        take(v, i + 1, &mut chosen);
    }
    chosen
}

/// Reciprocal-rank fusion of the keyword and meaning rankings (k = 60), best first.
fn fuse(words: &[(usize, usize)], meaning: &[(usize, usize)]) -> Vec<(usize, usize)> {
    if meaning.is_empty() {
        return words.to_vec();
    }
    let mut score: HashMap<(usize, usize), f64> = HashMap::new();
    for list in [words, meaning] {
        for (rank, at) in list.iter().enumerate() {
            *score.entry(*at).or_default() += 1.0 / (61.0 + rank as f64);
        }
    }
    let mut fused: Vec<((usize, usize), f64)> = score.into_iter().collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused.into_iter().map(|(at, _)| at).collect()
}

const K1: f64 = 1.2;
const B: f64 = 0.75;

/// Segments by BM25 score against the question, best first; segments sharing no term with it
/// are left out. One pass over the words, comparing each with the question's few terms, with
/// no allocation per word: this runs on the request path.
fn rank(materials: &[Material<'_>], lines: &[Vec<Line>], question: &str) -> Vec<(usize, usize)> {
    let mut query: Vec<String> = terms(question).collect();
    query.sort();
    query.dedup();
    if query.is_empty() {
        return Vec::new();
    }
    // Per segment: its length in words, and how often each query term occurs.
    let mut docs: Vec<((usize, usize), usize, Vec<u32>)> = Vec::new();
    for (v, ls) in lines.iter().enumerate() {
        for l in ls {
            let s = &materials[v].segments[l.index];
            let mut tf = vec![0u32; query.len()];
            let mut length = 0;
            for text in [&s.transcript, &s.on_screen_text, &s.caption] {
                for word in words(text) {
                    length += 1;
                    if let Some(q) = query.iter().position(|q| same_word(q, word)) {
                        tf[q] += 1;
                    }
                }
            }
            docs.push(((v, l.index), length, tf));
        }
    }
    let n = docs.len() as f64;
    let average = docs.iter().map(|d| d.1).sum::<usize>() as f64 / n.max(1.0);
    let idf: Vec<f64> = (0..query.len())
        .map(|q| {
            let df = docs.iter().filter(|d| d.2[q] > 0).count() as f64;
            ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
        })
        .collect();
    let mut scored: Vec<((usize, usize), f64)> = docs
        .iter()
        .filter_map(|(at, length, tf)| {
            let norm = K1 * (1.0 - B + B * *length as f64 / average.max(1.0));
            let score: f64 = tf
                .iter()
                .zip(&idf)
                .filter(|(f, _)| **f > 0)
                .map(|(&f, idf)| idf * f64::from(f) * (K1 + 1.0) / (f64::from(f) + norm))
                .sum();
            (score > 0.0).then_some((*at, score))
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.into_iter().map(|(at, _)| at).collect()
}

/// Words of two characters or more.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 2)
}

/// `word` is `term` (lower-case already) whatever its case.
fn same_word(term: &str, word: &str) -> bool {
    if word.is_ascii() {
        term.len() == word.len() && term.eq_ignore_ascii_case(word)
    } else {
        word.to_lowercase() == term
    }
}

/// The question's terms: lower-case words, without the commonest English words.
pub(crate) fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    const STOP: &[&str] = &[
        "the", "and", "for", "are", "was", "were", "what", "when", "where", "who", "how", "why",
        "this", "that", "with", "from", "you", "your", "about", "does", "did", "is", "it", "of",
        "to", "in", "on", "at", "an", "be", "as", "by", "or", "do", "video", "say", "said", "says",
        "tell", "me", "there", "which", "has", "have",
    ];
    words(text)
        .map(str::to_lowercase)
        .filter(|w| !STOP.contains(&w.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::videos::model::{Source, Status, Steps};

    fn video(name: &str) -> Video {
        Video {
            id: format!("vid_{name}"),
            object: "video",
            name: name.into(),
            status: Status::Ready,
            error: None,
            source: Source {
                kind: "upload",
                url: None,
                bytes: None,
                subtitles_file: false,
            },
            duration_s: Some(3600.0),
            width: None,
            height: None,
            has_audio: Some(true),
            created_at: 0,
            ready_at: None,
            steps: Steps::default(),
            labels: Default::default(),
            tenant: String::new(),
            callback: None,
            created_ms: 0,
        }
    }

    fn segment(at: f64, said: &str) -> Segment {
        Segment {
            start_s: at,
            end_s: at + 30.0,
            transcript: said.into(),
            on_screen_text: String::new(),
            caption: String::new(),
            keyframe: None,
            tokens: None,
            cues: Vec::new(),
        }
    }

    fn talk() -> Vec<Segment> {
        (0..120)
            .map(|i| {
                let said = match i {
                    70 => "now the giraffe walks to the river".to_string(),
                    _ => format!("filler sentence number {i} about nothing in particular at all"),
                };
                segment(f64::from(i) * 30.0, &said)
            })
            .collect()
    }

    fn words(text: &str) -> usize {
        text.split_whitespace().count()
    }

    /// `ground` over one video's whole timeline, counting words as tokens.
    fn ground_one(
        segments: &[Segment],
        question: &str,
        meaning: &[(usize, usize)],
        budget: usize,
        reader: Reader,
    ) -> Grounding {
        let v = video("talk.mp4");
        let m = [Material {
            video: &v,
            segments,
            range: Range::default(),
        }];
        ground(&m, question, meaning, budget, &words, reader)
    }

    #[test]
    fn a_timeline_that_fits_goes_in_whole_with_stamps() {
        let segments = vec![segment(0.0, "hello"), segment(65.0, "the giraffe")];
        let g = ground_one(&segments, "giraffe?", &[], 10_000, Reader::Large);
        assert!(g.whole);
        assert!(g.text.contains("[00:00] said: \"hello\""), "{}", g.text);
        assert!(g.text.contains("[01:05] said: \"the giraffe\""));
        assert!(g.text.contains("cite its stamp"));
        assert_eq!(g.cited, vec![(0, vec![0, 1])]);
    }

    #[test]
    fn a_small_model_reads_a_few_short_lines_and_the_shape_of_an_answer() {
        let mut segments = talk();
        segments[70].transcript = format!("now the giraffe {}", "walks on and on ".repeat(20));
        let g = ground_one(
            &segments,
            "Where does the giraffe go?",
            &[],
            10_000,
            Reader::Small,
        );
        assert!(g
            .text
            .starts_with("Answer the question in one short sentence"));
        assert!(g
            .text
            .contains("in this shape: <what the timeline says> [MM:SS]."));
        let lines: Vec<&str> = g.text.lines().filter(|l| l.starts_with('[')).collect();
        assert!((2..=10).contains(&lines.len()), "{}", g.text);
        assert!(
            lines.iter().all(|l| l.split_whitespace().count() <= 31),
            "{}",
            g.text
        );
        assert!(
            g.text.contains("[35:00] said: \"now the giraffe"),
            "{}",
            g.text
        );
        assert!(g.cited[0].1.contains(&70));
    }

    #[test]
    fn a_long_timeline_keeps_the_start_and_the_hit_with_its_neighbours() {
        let segments = talk();
        let g = ground_one(
            &segments,
            "Where does the giraffe go?",
            &[],
            300,
            Reader::Large,
        );
        assert!(!g.whole);
        assert_eq!(g.cited[0].1[0], 0, "the start of the video");
        for i in [69, 70, 71] {
            assert!(g.cited[0].1.contains(&i), "{:?}", g.cited);
        }
        assert!(
            g.text.contains("[35:00] said: \"now the giraffe"),
            "{}",
            g.text
        );
        assert!(g.text.contains('…'));
        assert!(words(&g.text) <= 300);
    }

    #[test]
    fn stored_counts_size_the_lines_without_tokenizing_them() {
        let v = video("talk.mp4");
        let mut segments = talk();
        for s in &mut segments {
            s.tokens = Some(100);
        }
        let m = [Material {
            video: &v,
            segments: &segments,
            range: Range::default(),
        }];
        let counted = std::cell::Cell::new(0);
        let count = |t: &str| {
            counted.set(counted.get() + t.len());
            words(t)
        };
        let g = ground(&m, "giraffe", &[], 1000, &count, Reader::Large);
        // Fixed parts aside, 1000 tokens hold 7 lines of 100 + 20.
        let sent: usize = g.cited[0].1.len();
        assert!((4..=7).contains(&sent), "{:?}", g.cited);
        assert!(g.cited[0].1.contains(&70) && g.cited[0].1.contains(&0));
        assert!(
            counted.get() < 1000,
            "only the instructions and header were tokenized, not the lines: {}",
            counted.get()
        );
    }

    #[test]
    fn a_range_narrows_first_and_several_videos_are_named() {
        let (a, b) = (video("a.mp4"), video("b.mp4"));
        let sa = talk();
        let sb = vec![segment(0.0, "other video")];
        let m = [
            Material {
                video: &a,
                segments: &sa,
                range: Range {
                    start: Some(60.0),
                    end: Some(120.0),
                },
            },
            Material {
                video: &b,
                segments: &sb,
                range: Range::default(),
            },
        ];
        let g = ground(&m, "anything", &[], 10_000, &words, Reader::Large);
        assert_eq!(g.cited, vec![(0, vec![2, 3]), (1, vec![0])]);
        assert!(g.text.contains("a.mp4 [01:00] said"), "{}", g.text);
        assert!(g.text.contains("b.mp4 [00:00] said: \"other video\""));
        assert!(g.text.contains("asked about [01:00] to [02:00]"));
    }

    #[test]
    fn a_hit_by_meaning_alone_is_given_when_the_timeline_is_cut() {
        let segments = talk();
        // No word of the question is in segment 40; search by meaning found it.
        let g = ground_one(
            &segments,
            "a long-necked animal",
            &[(0, 40)],
            300,
            Reader::Large,
        );
        assert!(g.cited[0].1.contains(&40), "{:?}", g.cited);
    }

    #[test]
    fn the_small_reader_is_given_the_line_that_best_answers() {
        let segments = talk();
        let small = |question: &str, meaning: &[(usize, usize)]| {
            ground_one(&segments, question, meaning, 4_000, Reader::Small)
                .evidence
                .map(|e| e.line)
        };
        // By keyword, then by meaning when no word matches; nothing when neither finds it.
        assert_eq!(small("where does the giraffe walk?", &[]), Some((0, 70)));
        assert_eq!(small("a long-necked animal", &[(0, 40)]), Some((0, 40)));
        assert_eq!(small("a long-necked animal", &[]), None);
        // A hit by meaning outside the range asked about is not an answer.
        let v = video("talk.mp4");
        let m = [Material {
            video: &v,
            segments: &segments,
            range: Range {
                start: Some(0.0),
                end: Some(600.0),
            },
        }];
        let g = ground(
            &m,
            "a long-necked animal",
            &[(0, 40)],
            4_000,
            &words,
            Reader::Small,
        );
        assert_eq!(g.evidence, None);
        // A position the question names, when no line has its words; runs of one text count once.
        let mut slides: Vec<Segment> = ["ONE", "TWO", "THREE", "THREE", "FOUR"]
            .iter()
            .enumerate()
            .map(|(i, _)| segment(i as f64 * 10.0, ""))
            .collect();
        for (s, shown) in slides
            .iter_mut()
            .zip(["ONE", "TWO", "THREE", "THREE", "FOUR"])
        {
            s.on_screen_text = shown.to_string();
        }
        let on = |question: &str| {
            let g = ground_one(&slides, question, &[], 4_000, Reader::Small);
            (
                g.evidence.map(|e| e.line),
                g.evidence.is_some_and(|e| e.by_position),
            )
        };
        assert_eq!(on("What does the third slide say?"), (Some((0, 2)), true));
        assert_eq!(on("What is on the last slide?"), (Some((0, 4)), true));
        assert_eq!(on("What is on the sixth slide?"), (None, false));
        assert_eq!(on("Where is FOUR first shown?"), (Some((0, 4)), false));
        // A large model is given none.
        assert_eq!(
            ground_one(&segments, "giraffe", &[], 4_000, Reader::Large).evidence,
            None
        );
    }

    #[test]
    fn each_sentence_of_a_segment_is_stamped_at_its_own_moment() {
        let mut s = segment(0.0, "Welcome. We plant tomatoes. The barn is red.");
        s.cues = [
            (1.0, "Welcome."),
            (6.0, "We plant tomatoes."),
            (15.4, "The barn is red."),
        ]
        .iter()
        .map(|&(start_s, text)| crate::videos::model::Cue {
            start_s,
            end_s: start_s + 2.0,
            text: text.into(),
        })
        .collect();
        let g = ground_one(&[s], "tomatoes", &[], 1000, Reader::Large);
        assert!(
            g.text.contains(
                "[00:00] said: \"Welcome. [00:06] We plant tomatoes. [00:15] The barn is red.\""
            ),
            "{}",
            g.text
        );
    }

    #[test]
    fn stamps_past_an_hour_carry_the_hour() {
        let segments = vec![segment(3725.0, "late")];
        assert!(ground_one(&segments, "", &[], 1000, Reader::Large)
            .text
            .contains("[1:02:05] said: \"late\""));
    }
}
