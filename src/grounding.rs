//! Grounding a chat in videos: the part of each video's timeline a question needs, written as
//! lines stamped `[MM:SS]` (`[H:MM:SS]` past an hour) that the model is asked to cite. Every
//! video dialect goes through here.
//!
//! The whole timeline goes in when it fits the token budget. Otherwise the segments most
//! relevant to the question do (BM25 over what was said, what was on screen and what was seen),
//! each with its neighbours, plus the start of each video, in time order, with `…` where a
//! stretch was left out. A caller's time range (Reka's `start`/`end`) narrows a video first.
//!
//! Lines are sized by a cheap estimate while choosing; the chosen text is then counted once
//! with the model's tokenizer and trimmed if the estimate was short, so the budget holds
//! without tokenizing a two-hour timeline per question.

use std::collections::{HashMap, HashSet};

use crate::videos::model::{stamp, Segment, Video};

/// What the model is told about the timeline that follows.
const INSTRUCTIONS: &str =
    "You answer questions about the video(s) below, using only their timeline. \
Each timeline line starts with the moment it happens, like [01:05]. Whenever your answer refers to \
a moment, cite its stamp exactly as written, e.g. [01:05]. If the timeline does not tell, say so \
instead of guessing.";
const PARTIAL: &str = "Only the parts of the timeline most relevant to the question are shown; \
… marks a stretch left out.";

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

impl Range {
    fn overlaps(&self, s: &Segment) -> bool {
        self.start.is_none_or(|start| s.end_s > start) && self.end.is_none_or(|end| s.start_s < end)
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
}

/// `budget`: tokens the grounding may take. `count`: the model's tokenizer.
pub fn ground(
    materials: &[Material<'_>],
    question: &str,
    budget: usize,
    count: &dyn Fn(&str) -> usize,
) -> Grounding {
    let named = materials.len() > 1;
    let lines: Vec<Vec<(usize, String)>> = materials
        .iter()
        .map(|m| {
            m.segments
                .iter()
                .enumerate()
                .filter(|(_, s)| m.range.overlaps(s))
                .filter_map(|(i, s)| line(m.video, s, named).map(|l| (i, l)))
                .collect()
        })
        .collect();
    let fixed = estimate(INSTRUCTIONS)
        + estimate(PARTIAL)
        + materials
            .iter()
            .map(|m| estimate(&header(m)))
            .sum::<usize>();
    let all: usize = lines.iter().flatten().map(|(_, l)| estimate(l)).sum();
    let mut chosen: Vec<HashSet<usize>> = if fixed + all <= budget {
        lines
            .iter()
            .map(|v| v.iter().map(|(i, _)| *i).collect())
            .collect()
    } else {
        select(materials, &lines, question, budget.saturating_sub(fixed))
    };
    // The estimate is a guess; the tokenizer has the last word. Trim the latest-chosen lines'
    // share until it fits (rarely more than once).
    loop {
        let grounding = render(materials, &lines, &chosen);
        let total = count(&grounding.text);
        let size: usize = chosen.iter().map(HashSet::len).sum();
        if total <= budget || size == 0 {
            return grounding;
        }
        let keep = size * budget / total.max(1);
        let drop = (size - keep).max(1);
        trim(&mut chosen, drop);
    }
}

/// One segment as a line: `[01:05] said: "…" · on screen: "…" · seen: …`. None when it has
/// nothing to say.
fn line(video: &Video, s: &Segment, named: bool) -> Option<String> {
    let mut parts = Vec::new();
    if !s.transcript.trim().is_empty() {
        parts.push(format!("said: \"{}\"", one_line(&s.transcript)));
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

/// Tokens a line will take, roughly: English runs about four bytes a token; the stamp and
/// punctuation cost a few more.
fn estimate(text: &str) -> usize {
    text.len() / 4 + 4
}

fn render(
    materials: &[Material<'_>],
    lines: &[Vec<(usize, String)>],
    chosen: &[HashSet<usize>],
) -> Grounding {
    let whole = lines
        .iter()
        .zip(chosen)
        .all(|(all, chosen)| all.len() == chosen.len());
    let mut text = String::from(INSTRUCTIONS);
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
        for (i, line) in &lines[v] {
            if chosen[v].contains(i) {
                if gap {
                    text.push_str("\n…");
                }
                text.push('\n');
                text.push_str(line);
                used.push(*i);
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
    Grounding { text, cited, whole }
}

/// The most relevant lines within `budget` estimated tokens: each video's first line, then
/// each BM25 hit with its neighbours, best first.
fn select(
    materials: &[Material<'_>],
    lines: &[Vec<(usize, String)>],
    question: &str,
    budget: usize,
) -> Vec<HashSet<usize>> {
    let mut chosen: Vec<HashSet<usize>> = vec![HashSet::new(); materials.len()];
    let size: HashMap<(usize, usize), usize> = lines
        .iter()
        .enumerate()
        .flat_map(|(v, ls)| ls.iter().map(move |(i, l)| ((v, *i), estimate(l))))
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
        if let Some((first, _)) = ls.first() {
            take(v, *first, &mut chosen);
        }
    }
    for (v, i) in rank(materials, lines, question) {
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

const K1: f64 = 1.2;
const B: f64 = 0.75;

/// Segments by BM25 score against the question, best first; segments sharing no term with it
/// are left out.
fn rank(
    materials: &[Material<'_>],
    lines: &[Vec<(usize, String)>],
    question: &str,
) -> Vec<(usize, usize)> {
    let query: HashSet<String> = terms(question).collect();
    if query.is_empty() {
        return Vec::new();
    }
    let docs: Vec<((usize, usize), Vec<String>)> = lines
        .iter()
        .enumerate()
        .flat_map(|(v, ls)| {
            ls.iter().map(move |(i, _)| {
                let s = &materials[v].segments[*i];
                let text = [&s.transcript, &s.on_screen_text, &s.caption];
                ((v, *i), text.iter().flat_map(|t| terms(t)).collect())
            })
        })
        .collect();
    let n = docs.len() as f64;
    let average = docs.iter().map(|(_, t)| t.len()).sum::<usize>() as f64 / n.max(1.0);
    let mut df: HashMap<&str, usize> = HashMap::new();
    for (_, doc) in &docs {
        let unique: HashSet<&str> = doc.iter().map(String::as_str).collect();
        for term in unique.into_iter().filter(|t| query.contains(*t)) {
            *df.entry(term).or_default() += 1;
        }
    }
    let mut scored: Vec<((usize, usize), f64)> = docs
        .iter()
        .filter_map(|(at, doc)| {
            let mut tf: HashMap<&str, usize> = HashMap::new();
            for term in doc.iter().filter(|t| query.contains(t.as_str())) {
                *tf.entry(term).or_default() += 1;
            }
            let length = doc.len() as f64;
            let score: f64 = tf
                .iter()
                .map(|(term, &f)| {
                    let d = df.get(term).copied().unwrap_or(0) as f64;
                    let idf = ((n - d + 0.5) / (d + 0.5) + 1.0).ln();
                    let f = f as f64;
                    idf * f * (K1 + 1.0) / (f + K1 * (1.0 - B + B * length / average.max(1.0)))
                })
                .sum();
            (score > 0.0).then_some((*at, score))
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.into_iter().map(|(at, _)| at).collect()
}

/// Lower-case words of two characters or more, without the commonest English words.
fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    const STOP: &[&str] = &[
        "the", "and", "for", "are", "was", "were", "what", "when", "where", "who", "how", "why",
        "this", "that", "with", "from", "you", "your", "about", "does", "did", "is", "it", "of",
        "to", "in", "on", "at", "an", "be", "as", "by", "or", "do", "video", "say", "said", "says",
        "tell", "me", "there", "which", "has", "have",
    ];
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2)
        .map(str::to_lowercase)
        .filter(|w| !STOP.contains(&w.as_str()))
}

/// Drops `n` chosen lines, from the end of the longest selection: the start of each video and
/// the earliest hits stay longest.
fn trim(chosen: &mut [HashSet<usize>], n: usize) {
    for _ in 0..n {
        let Some(longest) = chosen.iter_mut().max_by_key(|c| c.len()) else {
            return;
        };
        let Some(&last) = longest.iter().max() else {
            return;
        };
        longest.remove(&last);
    }
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

    #[test]
    fn a_timeline_that_fits_goes_in_whole_with_stamps() {
        let v = video("a.mp4");
        let segments = vec![segment(0.0, "hello"), segment(65.0, "the giraffe")];
        let m = [Material {
            video: &v,
            segments: &segments,
            range: Range::default(),
        }];
        let g = ground(&m, "giraffe?", 10_000, &words);
        assert!(g.whole);
        assert!(g.text.contains("[00:00] said: \"hello\""), "{}", g.text);
        assert!(g.text.contains("[01:05] said: \"the giraffe\""));
        assert!(g.text.contains("cite its stamp"));
        assert_eq!(g.cited, vec![(0, vec![0, 1])]);
    }

    #[test]
    fn a_long_timeline_keeps_the_start_and_the_hit_with_its_neighbours() {
        let v = video("talk.mp4");
        let segments = talk();
        let m = [Material {
            video: &v,
            segments: &segments,
            range: Range::default(),
        }];
        let g = ground(&m, "Where does the giraffe go?", 300, &words);
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
    fn the_tokenizer_has_the_last_word_on_the_budget() {
        let v = video("talk.mp4");
        let segments = talk();
        let m = [Material {
            video: &v,
            segments: &segments,
            range: Range::default(),
        }];
        // A tokenizer far more expensive than the estimate: still within budget.
        let dear = |t: &str| t.len();
        let g = ground(&m, "giraffe", 2000, &dear);
        assert!(g.text.len() <= 2000, "{}", g.text.len());
        assert!(g.cited[0].1.contains(&0));
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
        let g = ground(&m, "anything", 10_000, &words);
        assert_eq!(g.cited, vec![(0, vec![2, 3]), (1, vec![0])]);
        assert!(g.text.contains("a.mp4 [01:00] said"), "{}", g.text);
        assert!(g.text.contains("b.mp4 [00:00] said: \"other video\""));
        assert!(g.text.contains("asked about [01:00] to [02:00]"));
    }

    #[test]
    fn stamps_past_an_hour_carry_the_hour() {
        let v = video("long.mp4");
        let segments = vec![segment(3725.0, "late")];
        let m = [Material {
            video: &v,
            segments: &segments,
            range: Range::default(),
        }];
        assert!(ground(&m, "", 1000, &words)
            .text
            .contains("[1:02:05] said: \"late\""));
    }
}
