//! What is made from one whole video on request, as Twelve Labs' `/summarize`, `/gist` and
//! `/analyze` make it: a summary, chapters, highlights, a gist (title, topics, hashtags) and a
//! free analysis (optionally JSON that must satisfy a schema). No HTTP here; `routes::digests`
//! decodes and encodes.
//!
//! A long video does not fit one prompt: its timeline is cut into stretches that fit the
//! persona's budget (the same one a chat about videos gets), each is asked about (map), and the
//! answers are combined in one more call (reduce). Chapters are cut at segment edges (which are
//! the picture's cuts), so every time in a result is one the timeline has; highlights are the
//! segments the answer's stamps point to, after the same check every chat's stamps get (with
//! only the embedded model, the fullest segment of each chapter, in its own words). Each
//! result is kept with the video, by what was asked, and given back at once the second time.

use std::collections::HashMap;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::citations::{first_stamp, Citations, Small};
use super::video_chat::{self, VideoAsk};
use super::{collect, Ask, Caller, UsageBasis};
use crate::access_log::Record;
use crate::context_budget;
use crate::conversation::{Message, Role};
use crate::error::ApiError;
use crate::persona::CallerOptions;
use crate::state::AppState;
use crate::upstream::Usage;
use crate::videos::excerpt::{self, Range, Reader};
use crate::videos::model::{stamp, Segment, Video};

/// What to make.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Summary,
    Chapters,
    Highlights,
    /// The parts of a gist asked for.
    Gist {
        title: bool,
        topics: bool,
        hashtags: bool,
    },
    /// A free prompt's answer; JSON satisfying `schema` when one is given.
    Analysis {
        schema: Option<Value>,
    },
}

pub struct DigestAsk {
    pub video: String,
    pub kind: Kind,
    /// The caller's own words, added to what each call asks.
    pub prompt: Option<String>,
    pub persona: String,
    /// Made again even when a result is kept.
    pub regenerate: bool,
}

/// Most chapters and highlights one video gets.
const MAX_CHAPTERS: usize = 20;
const MAX_HIGHLIGHTS: usize = 10;
/// A chapter per two minutes, at least three where the video has the scenes for them.
const SECONDS_PER_CHAPTER: f64 = 120.0;

/// The result for `ask` (kept, or made and kept), as the route gives it back.
pub async fn make(
    state: &AppState,
    caller: &Caller,
    ask: DigestAsk,
    record: &mut Record,
) -> Result<Value, ApiError> {
    let library = state.videos().ok_or(ApiError::VideosDisabled)?;
    let video = library.ready(&caller.tenant, &ask.video).await?;
    if !caller.runtime.config.personas.contains_key(&ask.persona) {
        return Err(ApiError::UnknownPersona(ask.persona));
    }
    let key = key(&ask);
    if !ask.regenerate {
        if let Some(body) = library.digest(&video.id, &key).await? {
            if let Ok(kept) = serde_json::from_str(&body) {
                return Ok(kept);
            }
        }
    }
    let segments = library.timeline(&video.id).await?;
    let mut asker = Asker {
        state,
        caller,
        persona: &ask.persona,
        local: caller.runtime.upstreams.all_local(),
        record,
        usage: Usage::default(),
    };
    let prompt = ask.prompt.as_deref();
    let mut body = match &ask.kind {
        Kind::Summary => json!({"summary": summary(&mut asker, &video, &segments, prompt).await?}),
        Kind::Chapters => {
            json!({"chapters": chapters(&mut asker, &video, &segments, prompt).await?})
        }
        Kind::Highlights => {
            json!({"highlights": highlights(&mut asker, &video, &segments, prompt).await?})
        }
        Kind::Gist {
            title,
            topics,
            hashtags,
        } => {
            let summary = summary(&mut asker, &video, &segments, None).await?;
            let gist = if asker.local {
                said_gist(&summary, &segments)
            } else {
                gist(&mut asker, &summary, prompt).await?
            };
            let mut body = json!({});
            if *title {
                body["title"] = json!(gist.title);
            }
            if *topics {
                body["topics"] = json!(gist.topics);
            }
            if *hashtags {
                body["hashtags"] = json!(gist.hashtags);
            }
            body
        }
        Kind::Analysis { schema } => {
            let text = analysis(&mut asker, &video, &segments, prompt, schema.as_ref()).await?;
            json!({"data": text})
        }
    };
    body["id"] = json!(format!("gen_{}", &key[..24]));
    body["video_id"] = json!(video.id);
    body["usage"] = json!({
        "prompt_tokens": asker.usage.prompt_tokens,
        "completion_tokens": asker.usage.completion_tokens,
    });
    library
        .save_digest(&video.id, &key, &body.to_string())
        .await?;
    Ok(body)
}

/// What identifies a result: everything asked but `regenerate`.
fn key(ask: &DigestAsk) -> String {
    let asked = json!({
        "kind": format!("{:?}", ask.kind),
        "prompt": ask.prompt,
        "persona": ask.persona,
    });
    super::repeats::hex(&Sha256::digest(asked.to_string().as_bytes()))
}

/// One request's calls upstream, their usage added up.
struct Asker<'a> {
    state: &'a AppState,
    caller: &'a Caller,
    persona: &'a str,
    /// Only the embedded model answers: it reads a shorter timeline, and what it cannot write
    /// in a format (titles, gists, highlights) is taken from the video instead.
    local: bool,
    record: &'a mut Record,
    usage: Usage,
}

impl Asker<'_> {
    /// An answer about `range` of `video`, grounded in its timeline like any chat about it;
    /// with the segments it was shown.
    async fn about(
        &mut self,
        video: &Video,
        range: Range,
        instruction: String,
    ) -> Result<(String, Vec<Segment>), ApiError> {
        self.caller.reserve_again();
        let ask = VideoAsk {
            persona: self.persona.to_string(),
            videos: vec![(video.id.clone(), range)],
            messages: vec![Message::new(Role::User, instruction)],
            options: options(),
        };
        let (started, grounded) =
            video_chat::start(self.state, self.caller, ask, self.record).await?;
        let text = self.read(started).await?;
        Ok((
            text,
            grounded
                .cited
                .into_iter()
                .flat_map(|c| c.segments)
                .collect(),
        ))
    }

    /// An answer standing on `reference` alone (what earlier calls answered).
    async fn over(&mut self, reference: String, instruction: String) -> Result<String, ApiError> {
        self.caller.reserve_again();
        let ask = Ask {
            persona: self.persona.to_string(),
            messages: vec![Message::new(Role::User, instruction)],
            reference: Some(reference),
            options: options(),
        };
        let started = super::start(self.state, self.caller, ask, self.record).await?;
        self.read(started).await
    }

    async fn read(&mut self, mut started: super::Started) -> Result<String, ApiError> {
        let basis: Option<UsageBasis> = started.usage.take();
        let whole = collect::whole(started, self.record, self.state.hard_stop()).await?;
        if let Some(used) = UsageBasis::or_estimate(basis.as_ref(), whole.usage, &whole.text) {
            self.usage.prompt_tokens = self.usage.prompt_tokens.saturating_add(used.prompt_tokens);
            self.usage.completion_tokens = self
                .usage
                .completion_tokens
                .saturating_add(used.completion_tokens);
        }
        Ok(whole.text.trim().to_string())
    }

    /// Consecutive stretches of `segments` that each fit one prompt whole, as index ranges.
    fn stretches(&self, video: &Video, segments: &[Segment]) -> Vec<std::ops::Range<usize>> {
        // Room for the instruction each call adds to the conversation.
        let budget = video_chat::timeline_budget(self.caller, self.persona, &[]).saturating_sub(64);
        let model = self
            .caller
            .runtime
            .config
            .personas
            .get(self.persona)
            .and_then(|p| p.model.clone());
        let reader = if self.local {
            Reader::Small
        } else {
            Reader::Large
        };
        let count = |text: &str| context_budget::count_text(model.as_deref(), text);
        excerpt::stretches(video, segments, budget, &count, reader)
    }
}

/// The answer's options: usage is always wanted (it is reported).
fn options() -> CallerOptions {
    CallerOptions {
        include_usage: true,
        ..CallerOptions::default()
    }
}

fn range_of(segments: &[Segment]) -> Range {
    Range {
        start: segments.first().map(|s| s.start_s),
        end: segments.last().map(|s| s.end_s),
    }
}

fn with_prompt(instruction: &str, prompt: Option<&str>) -> String {
    match prompt {
        Some(p) => format!("{instruction}\n{p}"),
        None => instruction.to_string(),
    }
}

async fn summary(
    asker: &mut Asker<'_>,
    video: &Video,
    segments: &[Segment],
    prompt: Option<&str>,
) -> Result<String, ApiError> {
    whole_video(
        asker,
        video,
        segments,
        with_prompt("Summarize the whole video in one paragraph.", prompt),
        "Summarize this part of the video in two or three sentences.",
        "Summaries of consecutive parts of one video, in order:",
        with_prompt(
            "Write one summary of the whole video from these summaries of its parts, in one paragraph.",
            prompt,
        ),
    )
    .await
}

/// An answer about the whole video: asked `at_once` when its timeline fits one prompt; else
/// `each` stretch is asked in turn (map), and `combine` is asked over their answers, listed
/// under `heading` with each stretch's times (reduce).
async fn whole_video(
    asker: &mut Asker<'_>,
    video: &Video,
    segments: &[Segment],
    at_once: String,
    each: &str,
    heading: &str,
    combine: String,
) -> Result<String, ApiError> {
    let stretches = asker.stretches(video, segments);
    if stretches.len() <= 1 {
        return Ok(asker.about(video, Range::default(), at_once).await?.0);
    }
    let mut parts = format!("{heading}\n");
    for stretch in stretches {
        let range = range_of(&segments[stretch]);
        let (text, _) = asker.about(video, range, each.to_string()).await?;
        parts.push_str(&format!(
            "{} to {}: {}\n",
            stamp(range.start.unwrap_or(0.0)),
            stamp(range.end.unwrap_or(0.0)),
            one_line(&text)
        ));
    }
    asker.over(parts, combine).await
}

/// Where each chapter begins and ends: at segment edges (the picture's cuts), about evenly over
/// the video's length.
fn chapter_bounds(segments: &[Segment]) -> Vec<std::ops::Range<usize>> {
    let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
        return Vec::new();
    };
    let (start, end) = (first.start_s, last.end_s);
    let wanted = ((end - start) / SECONDS_PER_CHAPTER).ceil() as usize;
    let count = wanted.clamp(3, MAX_CHAPTERS).min(segments.len()).max(1);
    let mut cuts = vec![0];
    for k in 1..count {
        let at = start + (end - start) * k as f64 / count as f64;
        let previous = *cuts.last().unwrap_or(&0);
        // The segment edge nearest the even cut, after the last chapter's start.
        let nearest = (previous + 1..segments.len()).min_by(|&a, &b| {
            (segments[a].start_s - at)
                .abs()
                .total_cmp(&(segments[b].start_s - at).abs())
        });
        if let Some(cut) = nearest {
            cuts.push(cut);
        }
    }
    cuts.dedup();
    cuts.push(segments.len());
    cuts.windows(2)
        .filter(|w| w[0] < w[1])
        .map(|w| w[0]..w[1])
        .collect()
}

async fn chapters(
    asker: &mut Asker<'_>,
    video: &Video,
    segments: &[Segment],
    prompt: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for (n, bounds) in chapter_bounds(segments).into_iter().enumerate() {
        let part = &segments[bounds];
        let range = range_of(part);
        let instruction = with_prompt(
            "Give this part of the video a title of at most eight words on the first line, then say in one or two sentences what happens in it.",
            prompt,
        );
        let (text, _) = asker.about(video, range, instruction).await?;
        let (mut title, summary) = title_and_rest(&text, part);
        // The embedded model's first line is seldom a title (measured: it repeats timeline
        // lines); the chapter's own first words are.
        if asker.local {
            title = said_title(part).unwrap_or(title);
        }
        out.push(json!({
            "chapter_number": n + 1,
            "start_sec": range.start,
            "end_sec": range.end,
            "chapter_title": title,
            "chapter_summary": summary,
        }));
    }
    Ok(out)
}

async fn highlights(
    asker: &mut Asker<'_>,
    video: &Video,
    segments: &[Segment],
    prompt: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    if asker.local {
        return Ok(said_highlights(segments));
    }
    let stretches = asker.stretches(video, segments);
    let per_stretch = MAX_HIGHLIGHTS.div_ceil(stretches.len().max(1)).max(1);
    let mut found: Vec<(usize, String, String)> = Vec::new();
    for stretch in stretches {
        let part = &segments[stretch.clone()];
        let instruction = with_prompt(
            "Name the two most notable moments in this part of the video, one per line: the moment's stamp as written, a title of a few words, then \" - \" and one sentence about it.",
            prompt,
        );
        let (text, shown) = asker.about(video, range_of(part), instruction).await?;
        // Every stamp checked, and a line without one given the moment its words are from.
        let checked = Citations::new(&shown, Some(Small::new("", None))).whole(&text);
        let mut taken = 0;
        for line in checked.lines() {
            let Some((at, seconds)) = first_stamp(line) else {
                continue;
            };
            let Some(index) = stretch.clone().find(|&i| {
                let s = &segments[i];
                seconds >= s.start_s.floor() && seconds < s.end_s.max(s.start_s + 1.0)
            }) else {
                continue;
            };
            if taken == per_stretch || found.iter().any(|(i, ..)| *i == index) {
                continue;
            }
            let rest = format!("{} {}", &line[..at.start], &line[at.end..]);
            let (title, summary) = title_and_rest(&rest, &segments[index..=index]);
            found.push((index, title, summary));
            taken += 1;
        }
    }
    found.sort_by_key(|(i, ..)| *i);
    found.truncate(MAX_HIGHLIGHTS);
    Ok(found
        .into_iter()
        .map(|(i, title, summary)| {
            json!({
                "start_sec": segments[i].start_s,
                "end_sec": segments[i].end_s,
                "highlight": title,
                "highlight_summary": summary,
            })
        })
        .collect())
}

/// Highlights without a model: in each chapter, the segment with the most said and shown, in
/// its own words. The embedded model does not follow a line format it is asked for (measured:
/// it echoes the instruction), so offline highlights are taken, not written.
fn said_highlights(segments: &[Segment]) -> Vec<Value> {
    chapter_bounds(segments)
        .into_iter()
        .filter_map(|bounds| {
            let best = segments[bounds]
                .iter()
                .max_by_key(|s| s.text().split_whitespace().count())?;
            let text = one_line(&best.text());
            (!text.is_empty()).then(|| {
                json!({
                    "start_sec": best.start_s,
                    "end_sec": best.end_s,
                    "highlight": first_words(&text, 8),
                    "highlight_summary": text,
                })
            })
        })
        .take(MAX_HIGHLIGHTS)
        .collect()
}

/// A chapter's title in its own words: the first said or shown in it.
fn said_title(part: &[Segment]) -> Option<String> {
    part.iter()
        .map(Segment::text)
        .find(|t| !t.trim().is_empty())
        .map(|t| first_words(&t, 8))
}

/// A gist without asking the embedded model for a format it does not keep (measured: it echoes
/// the three labelled lines it is asked for): the summary's first sentence as the title, and
/// the words the video says and shows most as its topics.
fn said_gist(summary: &str, segments: &[Segment]) -> Gist {
    let sentence = summary.split(['.', '!', '?']).next().unwrap_or(summary);
    // Each word's count, and where it was first said (the tie-break).
    let mut counts: HashMap<String, (usize, usize)> = HashMap::new();
    let words = segments.iter().flat_map(|s| {
        s.text()
            .split(|c: char| !c.is_alphabetic())
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
    });
    for (at, word) in words
        .filter(|w| w.chars().count() >= 5 && !COMMON.contains(&w.as_str()))
        .enumerate()
    {
        counts.entry(word).or_insert((0, at)).0 += 1;
    }
    let mut counts: Vec<(String, (usize, usize))> = counts.into_iter().collect();
    counts.sort_by(|(_, a), (_, b)| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let topics: Vec<String> = counts.into_iter().take(5).map(|(w, ..)| w).collect();
    let hashtags = topics.iter().map(|t| format!("#{t}")).collect();
    Gist {
        title: first_words(sentence, 8),
        topics,
        hashtags,
    }
}

/// Words too common to be a topic.
const COMMON: &[&str] = &[
    "about", "after", "again", "their", "there", "these", "thing", "things", "those", "today",
    "where", "which", "while", "would", "could", "should", "other", "every", "being", "because",
    "before", "video", "scene", "right", "little", "going", "really",
];

struct Gist {
    title: String,
    topics: Vec<String>,
    hashtags: Vec<String>,
}

async fn gist(
    asker: &mut Asker<'_>,
    summary: &str,
    prompt: Option<&str>,
) -> Result<Gist, ApiError> {
    let instruction = with_prompt(
        "From this summary of a video, reply with exactly three lines:\nTitle: a title of at most eight words\nTopics: three to five topics, separated by commas\nHashtags: three to five hashtags",
        prompt,
    );
    let text = asker
        .over(format!("Summary of the video: {summary}"), instruction)
        .await?;
    Ok(parse_gist(&text, summary))
}

/// The gist's three lines, however loosely written; what is missing is made from the rest.
fn parse_gist(text: &str, summary: &str) -> Gist {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let l = l.trim().trim_start_matches(['*', '-', '#', ' ']);
            let (label, value) = l.split_once(':')?;
            label
                .trim_matches(['*', ' '])
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().trim_matches('*').trim().to_string())
        })
    };
    let title = field("title")
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| first_words(summary, 8));
    let mut topics: Vec<String> = field("topics")
        .map(|t| {
            t.split([',', ';'])
                .map(|s| s.trim().trim_matches('.').to_string())
                .filter(|s| !s.is_empty())
                .take(5)
                .collect()
        })
        .unwrap_or_default();
    let mut hashtags: Vec<String> = field("hashtags")
        .map(|h| {
            h.split([' ', ','])
                .map(|s| s.trim().trim_start_matches('#'))
                .filter(|s| !s.is_empty())
                .map(|s| format!("#{}", s.trim_matches('.')))
                .take(5)
                .collect()
        })
        .unwrap_or_default();
    if topics.is_empty() {
        topics = hashtags
            .iter()
            .map(|h| h.trim_start_matches('#').to_string())
            .collect();
    }
    if topics.is_empty() {
        topics = vec![title.clone()];
    }
    if hashtags.is_empty() {
        hashtags = topics
            .iter()
            .map(|t| {
                let tag: String = t
                    .split_whitespace()
                    .map(|w| {
                        let mut c = w.chars();
                        c.next()
                            .map(|f| f.to_uppercase().chain(c).collect::<String>())
                            .unwrap_or_default()
                    })
                    .collect::<String>()
                    .chars()
                    .filter(|c| c.is_alphanumeric())
                    .collect();
                format!("#{tag}")
            })
            .filter(|t| t.len() > 1)
            .collect();
    }
    Gist {
        title: title.trim_matches('"').to_string(),
        topics,
        hashtags,
    }
}

async fn analysis(
    asker: &mut Asker<'_>,
    video: &Video,
    segments: &[Segment],
    prompt: Option<&str>,
    schema: Option<&Value>,
) -> Result<Value, ApiError> {
    let prompt = prompt.unwrap_or("Describe the video.");
    let asked = match schema {
        Some(schema) => format!(
            "{prompt}\nReply with only JSON, no other words, that satisfies this JSON schema: {schema}"
        ),
        None => prompt.to_string(),
    };
    let combine = format!("Combine these into one answer for the whole video. {asked}");
    let text = whole_video(
        asker,
        video,
        segments,
        asked,
        prompt,
        "Answers about consecutive parts of one video, in order:",
        combine,
    )
    .await?;
    let Some(schema) = schema else {
        return Ok(json!(text));
    };
    let validator = jsonschema::validator_for(schema).map_err(|e| {
        ApiError::bad_request(
            "response_format.json_schema.schema",
            format!("is not a JSON schema: {e}"),
        )
    })?;
    let problem = match unmet(&validator, &text) {
        Ok(value) => return Ok(value),
        Err(problem) => problem,
    };
    // One repair: the answer and what is wrong with it, back to the model.
    let repaired = asker
        .over(
            format!("An earlier answer:\n{text}\nIt does not satisfy the JSON schema {schema}: {problem}"),
            "Reply with only the corrected JSON, no other words.".to_string(),
        )
        .await?;
    unmet(&validator, &repaired).map_err(ApiError::SchemaUnmet)
}

/// The JSON in `text` if it satisfies the schema, else what is wrong.
fn unmet(validator: &jsonschema::Validator, text: &str) -> Result<Value, String> {
    let json = json_in(text).ok_or_else(|| "the answer holds no JSON".to_string())?;
    let problem = validator
        .iter_errors(&json)
        .next()
        .map(|error| format!("at `{}`: {error}", error.instance_path()));
    match problem {
        None => Ok(json),
        Some(problem) => Err(problem),
    }
}

/// The JSON value in an answer, with or without a code fence or words around it.
fn json_in(text: &str) -> Option<Value> {
    let text = text.trim();
    if let Ok(value) = serde_json::from_str(text) {
        return Some(value);
    }
    let (open, close) = match (text.find('{'), text.find('[')) {
        (Some(o), Some(a)) if a < o => ('[', ']'),
        (Some(_), _) => ('{', '}'),
        (None, Some(_)) => ('[', ']'),
        (None, None) => return None,
    };
    let start = text.find(open)?;
    let end = text.rfind(close)?;
    serde_json::from_str(text.get(start..=end)?).ok()
}

/// A title (the first line, cleaned) and the rest; when the model wrote one line, the title is
/// made from the segments' own words.
fn title_and_rest(text: &str, part: &[Segment]) -> (String, String) {
    let clean = |s: &str| {
        s.trim()
            .trim_start_matches(['#', '*', '-', ' '])
            .trim_start_matches("Title:")
            .trim_start_matches("title:")
            .trim_matches(['*', '"', ' '])
            .to_string()
    };
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().map(clean).unwrap_or_default();
    let rest: Vec<&str> = lines.collect();
    if !rest.is_empty() && !first.is_empty() {
        return (first_words(&first, 12), rest.join(" "));
    }
    // One line: "Title - sentence", else the line is the summary.
    if let Some((title, summary)) = first.split_once(" - ").or_else(|| first.split_once(" — ")) {
        return (first_words(&clean(title), 12), summary.trim().to_string());
    }
    let said: String = part
        .iter()
        .map(Segment::text)
        .find(|t| !t.trim().is_empty())
        .unwrap_or_default();
    let title = if said.is_empty() {
        first_words(&first, 8)
    } else {
        first_words(&said, 8)
    };
    (title, first)
}

fn first_words(text: &str, n: usize) -> String {
    text.split_whitespace()
        .take(n)
        .collect::<Vec<_>>()
        .join(" ")
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(edges: &[f64]) -> Vec<Segment> {
        edges
            .windows(2)
            .map(|w| Segment {
                start_s: w[0],
                end_s: w[1],
                transcript: format!("said at {}", w[0]),
                ..Segment::default()
            })
            .collect()
    }

    #[test]
    fn chapters_begin_and_end_at_segment_edges() {
        // Two hours of uneven scenes.
        let mut edges = vec![0.0];
        let mut t: f64 = 0.0;
        while t < 7200.0 {
            t += if edges.len() % 3 == 0 { 47.0 } else { 13.0 };
            edges.push(t.min(7200.0));
        }
        let s = segments(&edges);
        let bounds = chapter_bounds(&s);
        assert_eq!(bounds.len(), MAX_CHAPTERS);
        assert_eq!(bounds[0].start, 0);
        assert_eq!(bounds.last().unwrap().end, s.len());
        for pair in bounds.windows(2) {
            assert_eq!(pair[0].end, pair[1].start, "no gap, no overlap");
        }
        // About evenly: no chapter under half or over twice the average.
        let average = 7200.0 / MAX_CHAPTERS as f64;
        for b in &bounds {
            let length = s[b.end - 1].end_s - s[b.start].start_s;
            assert!(length > average / 2.0 && length < average * 2.0, "{length}");
        }
        // A short video: a chapter a scene.
        assert_eq!(
            chapter_bounds(&segments(&[0.0, 4.0, 8.0, 12.0])),
            vec![0..1, 1..2, 2..3]
        );
        assert_eq!(chapter_bounds(&segments(&[0.0, 4.0])), vec![0..1]);
        assert!(chapter_bounds(&[]).is_empty());
    }

    #[test]
    fn json_is_found_in_an_answer_however_wrapped() {
        assert_eq!(json_in("{\"a\": 1}"), Some(json!({"a": 1})));
        assert_eq!(
            json_in("Here you go:\n```json\n{\"a\": [1, 2]}\n```"),
            Some(json!({"a": [1, 2]}))
        );
        assert_eq!(json_in("[1, 2] done"), Some(json!([1, 2])));
        assert_eq!(json_in("no json here"), None);
    }

    #[test]
    fn a_gist_is_read_however_loosely_written() {
        let g = parse_gist(
            "**Title:** A Garden Tour\nTopics: gardening, tomatoes, flowers\nHashtags: #garden #tomatoes",
            "x",
        );
        assert_eq!(g.title, "A Garden Tour");
        assert_eq!(g.topics, vec!["gardening", "tomatoes", "flowers"]);
        assert_eq!(g.hashtags, vec!["#garden", "#tomatoes"]);
        let g = parse_gist("A garden tour", "We plant tomatoes in the garden today.");
        assert_eq!(g.title, "We plant tomatoes in the garden today.");
        assert_eq!(g.hashtags, vec!["#WePlantTomatoesInTheGardenToday"]);
    }

    #[test]
    fn an_offline_gist_takes_the_words_said_most() {
        let mut s = segments(&[0.0, 4.0, 8.0]);
        s[0].transcript = "Welcome to the garden. Today we plant tomatoes.".into();
        s[1].transcript = "The tomatoes need water; the garden needs sun.".into();
        let g = said_gist("A garden tour. Then more.", &s);
        assert_eq!(g.title, "A garden tour");
        assert_eq!(
            g.topics[..2],
            ["garden".to_string(), "tomatoes".to_string()]
        );
        assert_eq!(g.hashtags[0], "#garden");
    }

    #[test]
    fn titles_come_from_the_first_line_or_the_words_said() {
        let part = segments(&[0.0, 4.0]);
        assert_eq!(
            title_and_rest("## Planting\nThey plant tomatoes.", &part),
            ("Planting".to_string(), "They plant tomatoes.".to_string())
        );
        assert_eq!(
            title_and_rest("Planting - They plant tomatoes.", &part),
            ("Planting".to_string(), "They plant tomatoes.".to_string())
        );
        assert_eq!(
            title_and_rest("They plant tomatoes.", &part),
            ("said at 0".to_string(), "They plant tomatoes.".to_string())
        );
    }
}
