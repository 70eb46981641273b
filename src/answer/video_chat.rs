//! A chat about videos, for every video dialect: the caller's videos are looked up (its
//! tenant's only; missing or not ready is the caller's error, and nothing goes upstream), their
//! timelines are fitted to the token budget by `videos::excerpt`, and the answer starts like any
//! other with the timeline as its reference material.
//!
//! The budget for the timeline: `video_chat.timeline_tokens`, lowered to what the persona's
//! `context_tokens` leaves after its prompt, the conversation and the answer's room; when every
//! upstream is the embedded model, its context bounds it the same way.

use crate::access_log::Record;
use crate::context_budget;
use crate::conversation::{Message, Role};
use crate::error::ApiError;
use crate::persona::CallerOptions;
use crate::state::AppState;
use crate::videos::excerpt::{self, Material, Range, Reader};
use crate::videos::model::{Segment, Video};

use super::citations::{self, Citations, Small};
use super::{Ask, Caller, Started};

/// A question about videos, as a dialect decoded it.
pub struct VideoAsk {
    pub persona: String,
    /// The videos, in the caller's order, each with the part of it asked about.
    pub videos: Vec<(String, Range)>,
    /// The conversation, ending with the caller's question.
    pub messages: Vec<Message>,
    pub options: CallerOptions,
}

/// A video the answer stands on, and the timeline segments it was shown.
pub struct Cited {
    pub video: Video,
    pub segments: Vec<Segment>,
}

/// What an answer about videos stands on, and the check its stamps go through.
pub struct Grounded {
    pub cited: Vec<Cited>,
    pub check: Citations,
}

/// Looks the videos up and grounds the answer in them; then as `answer::start`.
pub async fn start(
    state: &AppState,
    caller: &Caller,
    ask: VideoAsk,
    record: &mut Record,
) -> Result<(Started, Grounded), ApiError> {
    let library = state.videos().ok_or(ApiError::VideosDisabled)?;
    let mut found: Vec<(Video, Vec<Segment>, Range)> = Vec::with_capacity(ask.videos.len());
    for (id, range) in &ask.videos {
        if found.iter().any(|(v, _, _)| &v.id == id) {
            continue;
        }
        let video = library.ready(&caller.tenant, id).await?;
        let segments = library.timeline(id).await?;
        found.push((video, segments, *range));
    }
    let config = &caller.runtime.config;
    let persona = config
        .personas
        .get(&ask.persona)
        .ok_or_else(|| ApiError::UnknownPersona(ask.persona.clone()))?;
    let model = persona.model.as_deref();
    let budget = budget(caller, &ask, model);
    let question = ask
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map_or("", |m| m.content.as_str());
    let materials: Vec<Material<'_>> = found
        .iter()
        .map(|(video, segments, range)| Material {
            video,
            segments,
            range: *range,
        })
        .collect();
    // The embedded model is small: it reads a shorter timeline, shaped for it, and the moment
    // that best answers the question is looked for by meaning too, however short the timeline.
    let reader = if caller.runtime.upstreams.all_local() {
        Reader::Small
    } else {
        Reader::Large
    };
    let (meaning, asked) = by_meaning(library, caller, &found, question, budget, reader).await;
    let grounding = excerpt::ground(
        &materials,
        question,
        &meaning,
        budget,
        &|text| context_budget::count_text(model, text),
        reader,
    );
    let cited: Vec<Cited> = grounding
        .cited
        .iter()
        .map(|(v, used)| {
            let (video, segments, _) = &found[*v];
            Cited {
                video: video.clone(),
                segments: used.iter().map(|i| segments[*i].clone()).collect(),
            }
        })
        .collect();
    // The embedded model's answer is checked whole: one not grounded in the timeline is
    // replaced with the moment that best answers the question.
    let small = match reader {
        Reader::Large => None,
        Reader::Small => Some(small_check(library, &found, &grounding, question, asked).await),
    };
    let check = Citations::new(cited.iter().flat_map(|c| &c.segments), small);
    let started = super::start(
        state,
        caller,
        Ask {
            persona: ask.persona,
            messages: ask.messages,
            reference: Some(grounding.text),
            options: ask.options,
        },
        record,
    )
    .await?;
    Ok((started, Grounded { cited, check }))
}

/// What the embedded model's answer is held to: the moment `grounding` found to answer the
/// question, quoted, and the moment it must be about when the question named its position.
async fn small_check(
    library: &crate::videos::Library,
    found: &[(Video, Vec<Segment>, Range)],
    grounding: &excerpt::Grounding,
    question: &str,
    asked: Option<Vec<f32>>,
) -> Small {
    let Some((evidence, video, segment)) = grounding.evidence.and_then(|e| {
        let (video, segments, _) = found.get(e.line.0)?;
        Some((e, video, segments.get(e.line.1)?))
    }) else {
        return Small::new(question, None);
    };
    let cue = nearest_cue(library, segment, asked.as_deref()).await;
    let named = (found.len() > 1).then_some(video.name.as_str());
    let small = Small::new(
        question,
        Some(citations::evidence(segment, question, cue, named)),
    );
    if evidence.by_position {
        small.about(&segment.text())
    } else {
        small
    }
}

/// Of a segment's sentences, the one nearest in meaning to the question (its vector `asked`),
/// when it has several and search by meaning is on.
async fn nearest_cue(
    library: &crate::videos::Library,
    segment: &Segment,
    asked: Option<&[f32]>,
) -> Option<usize> {
    /// Sentences embedded at most: a segment is cut at cues long before this.
    const MOST: usize = 32;
    let asked = asked?;
    let cues: Vec<String> = segment
        .cues()
        .into_iter()
        .take(MOST)
        .map(|c| c.text)
        .collect();
    if cues.len() < 2 {
        return None;
    }
    let vectors = match library.embed_texts(cues).await {
        Ok(vectors) => vectors?,
        Err(error) => {
            tracing::warn!(%error, "evidence: the sentences could not be embedded; by words");
            return None;
        }
    };
    vectors
        .iter()
        .map(|v| crate::videos::embed::cosine(asked, v))
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// The segments closest in meaning to the question, when search by meaning is on and the
/// timelines will not fit whole (their stored sizes say so without tokenizing) or the small
/// reader's answer may need the best of them; else none. With them, the question's vector.
async fn by_meaning(
    library: &crate::videos::Library,
    caller: &Caller,
    found: &[(Video, Vec<Segment>, Range)],
    question: &str,
    budget: usize,
    reader: Reader,
) -> (Vec<(usize, usize)>, Option<Vec<f32>>) {
    // A segment without a stored count (an old timeline) counts as too big: rank by meaning.
    let size = found
        .iter()
        .flat_map(|(_, segments, _)| segments)
        .map(|s| s.tokens.map_or(usize::MAX, |t| t as usize))
        .fold(0usize, usize::saturating_add);
    if (size <= budget && reader == Reader::Large) || question.trim().is_empty() {
        return (Vec::new(), None);
    }
    let vector = match library.embed_query(question).await {
        Ok(Some(vector)) => vector,
        Ok(None) => return (Vec::new(), None),
        Err(error) => {
            tracing::warn!(%error, "grounding: the question could not be embedded; keywords only");
            return (Vec::new(), None);
        }
    };
    let ids: std::collections::HashSet<String> =
        found.iter().map(|(v, _, _)| v.id.clone()).collect();
    let hits = library
        .nearest(&vector, &caller.tenant, &ids, 200)
        .into_iter()
        .filter_map(|(video, idx)| {
            let v = found.iter().position(|(f, _, _)| f.id == video)?;
            Some((v, idx as usize))
        })
        .collect();
    (hits, Some(vector))
}

/// Tokens a timeline may take in a chat with `persona` about `messages` (a digest's stretches
/// are cut to it).
pub fn timeline_budget(caller: &Caller, persona: &str, messages: &[Message]) -> usize {
    let model = caller
        .runtime
        .config
        .personas
        .get(persona)
        .and_then(|p| p.model.as_deref());
    let ask = VideoAsk {
        persona: persona.to_string(),
        videos: Vec::new(),
        messages: messages.to_vec(),
        options: CallerOptions::default(),
    };
    budget(caller, &ask, model)
}

/// Tokens the timeline may take.
fn budget(caller: &Caller, ask: &VideoAsk, model: Option<&str>) -> usize {
    let config = &caller.runtime.config;
    let cap = config.video_chat.timeline_tokens as usize;
    let Some(persona) = config.personas.get(&ask.persona) else {
        return cap;
    };
    let local = persona.context_tokens == 0 && caller.runtime.upstreams.all_local();
    let window = if persona.context_tokens > 0 {
        persona.context_tokens
    } else if local {
        config.local.context_tokens
    } else {
        return cap;
    };
    let mut prompt = ask.messages.clone();
    if let Some(p) = persona.system_prompt.as_deref() {
        prompt.push(Message::new(Role::System, p));
    }
    let used = context_budget::count_prompt(model, &prompt);
    let mut room = persona
        .max_tokens
        .or(ask.options.sampling.max_tokens)
        .unwrap_or(config.video_chat.answer_tokens);
    if local {
        // The embedded model keeps at most a quarter of its context for the answer.
        room = room.min(window / 4);
    }
    let room = room as usize;
    cap.min((window as usize).saturating_sub(used + room))
}
