//! Finding the moment: a query against a tenant's timelines, by meaning (the segment vectors,
//! `vectors`), by keyword (FTS5, BM25) or both (reciprocal-rank fusion), as clips: a best
//! matching segment with the neighbours that match almost as well, with a score in 0..1.
//!
//! Scores: `semantic`, the cosine (a paraphrase sharing no word with its scene scores about
//! 0.45–0.65 with this model, unrelated text under about 0.2); `text`, BM25 relative to the best
//! hit; `hybrid`, the fused rank, 1.0 for a segment first on both lists, 0.5 for first on one.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::model::Segment;
use super::{Library, LibraryError};

/// RRF's constant: the usual 60, so a list's top few dominate without drowning the other list.
const RRF_K: f32 = 60.0;
/// Below this cosine a segment is no hit by meaning at all, in hybrid mode.
const SEMANTIC_FLOOR: f32 = 0.2;
/// The default cut in semantic mode.
const SEMANTIC_THRESHOLD: f32 = 0.25;
/// A hit beside a clip's best joins the clip when it scores at least this share of the best.
const NEIGHBOUR: f32 = 0.8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Hybrid,
    Semantic,
    Text,
}

pub struct Query<'a> {
    pub tenant: &'a str,
    pub text: &'a str,
    /// Only these videos (already checked to be the tenant's and ready).
    pub videos: Option<Vec<String>>,
    pub limit: usize,
    pub threshold: Option<f32>,
    pub mode: Mode,
}

/// A stretch of a video that matches.
#[derive(Debug, Clone)]
pub struct Clip {
    pub video_id: String,
    pub start_s: f64,
    pub end_s: f64,
    pub score: f32,
    pub text: String,
    pub keyframe: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search by meaning is not available on this server: its embedding model (videos.embedding_model) is not installed")]
    NoModel,
    #[error(transparent)]
    Library(#[from] LibraryError),
    #[error("{0}")]
    Embed(String),
}

/// The most clips one search gives, whatever a caller asked: every dialect bounds its own limit
/// and page far below this; this bound is the core's own, so nothing is sized from a number
/// that slipped past a route.
pub const MAX_CLIPS: usize = 1000;

impl Library {
    pub async fn search(&self, q: Query<'_>) -> Result<Vec<Clip>, SearchError> {
        let limit = q.limit.min(MAX_CLIPS);
        let candidates = (limit * 4).max(50);
        let only: Option<HashSet<String>> = q.videos.as_ref().map(|v| v.iter().cloned().collect());
        let mut by_meaning: Vec<((String, u32), f32)> = Vec::new();
        if q.mode != Mode::Text {
            match self.embed_query(q.text).await? {
                Some(vector) => {
                    let floor = if q.mode == Mode::Hybrid {
                        SEMANTIC_FLOOR
                    } else {
                        f32::MIN
                    };
                    by_meaning = self
                        .vectors
                        .search(&vector, q.tenant, only.as_ref(), candidates)
                        .into_iter()
                        .filter(|h| h.score >= floor)
                        .map(|h| ((h.key.video.to_string(), h.key.idx), h.score))
                        .collect();
                }
                None if q.mode == Mode::Semantic => return Err(SearchError::NoModel),
                None => {}
            }
        }
        let mut by_words: Vec<((String, u32), f64)> = Vec::new();
        if q.mode != Mode::Semantic {
            let terms = query_terms(q.text);
            if !terms.is_empty() {
                by_words = self
                    .store
                    .text_hits(q.tenant, q.videos.as_deref(), &terms, candidates as u32)
                    .await
                    .map_err(LibraryError::from)?
                    .into_iter()
                    .map(|h| ((h.video_id, h.idx), h.rank))
                    .collect();
            }
        }
        let scores: HashMap<(String, u32), f32> = match q.mode {
            Mode::Semantic => by_meaning
                .into_iter()
                .map(|(k, s)| (k, s.max(0.0)))
                .collect(),
            Mode::Text => {
                let best = by_words.first().map_or(1.0, |(_, r)| *r);
                by_words
                    .into_iter()
                    .map(|(k, r)| (k, if best == 0.0 { 1.0 } else { (r / best) as f32 }))
                    .collect()
            }
            Mode::Hybrid => {
                let mut fused: HashMap<(String, u32), f32> = HashMap::new();
                let keys = by_meaning
                    .into_iter()
                    .map(|(k, _)| k)
                    .enumerate()
                    .chain(by_words.into_iter().map(|(k, _)| k).enumerate());
                for (rank, key) in keys {
                    *fused.entry(key).or_default() += 1.0 / (RRF_K + 1.0 + rank as f32);
                }
                let top = 2.0 / (RRF_K + 1.0);
                fused.into_iter().map(|(k, s)| (k, s / top)).collect()
            }
        };
        let threshold = q.threshold.unwrap_or(match q.mode {
            Mode::Semantic => SEMANTIC_THRESHOLD,
            _ => 0.0,
        });
        let hits: HashMap<(String, u32), f32> = scores
            .into_iter()
            .filter(|(_, s)| *s >= threshold)
            .collect();
        self.clips(hits, limit).await
    }

    /// Segments whose transcript and/or captions contain `needle` literally, as clips scored 1.
    pub async fn find_literal(
        &self,
        tenant: &str,
        videos: Option<&[String]>,
        needle: &str,
        (transcript, captions): (bool, bool),
        limit: usize,
    ) -> Result<Vec<Clip>, SearchError> {
        let limit = limit.min(MAX_CLIPS);
        let hits = self
            .store
            .substring_hits(
                tenant,
                videos,
                needle,
                transcript,
                captions,
                (limit * 4) as u32,
            )
            .await
            .map_err(LibraryError::from)?;
        let hits = hits
            .into_iter()
            .map(|h| ((h.video_id, h.idx), 1.0))
            .collect();
        self.clips(hits, limit).await
    }

    /// Hits of one video grown into clips, best first: each clip is the best hit not yet in
    /// one, with the adjacent hits that match almost as well (`NEIGHBOUR`): a scene that answers
    /// is not merged with the weaker scenes around it, but an answer spoken across two is whole.
    async fn clips(
        &self,
        hits: HashMap<(String, u32), f32>,
        limit: usize,
    ) -> Result<Vec<Clip>, SearchError> {
        let mut per_video: BTreeMap<String, BTreeMap<u32, f32>> = BTreeMap::new();
        for ((video, idx), score) in hits {
            per_video.entry(video).or_default().insert(idx, score);
        }
        let mut clips = Vec::new();
        for (video, mut hits) in per_video {
            let segments = self.timeline(&video).await?;
            hits.retain(|idx, _| (*idx as usize) < segments.len());
            let mut best: Vec<(u32, f32)> = hits.iter().map(|(i, s)| (*i, *s)).collect();
            best.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            for (peak, score) in best {
                if !hits.contains_key(&peak) {
                    continue;
                }
                let near = |hits: &BTreeMap<u32, f32>, idx: u32| {
                    hits.get(&idx).is_some_and(|s| *s >= NEIGHBOUR * score)
                };
                let (mut first, mut last) = (peak, peak);
                while first > 0 && near(&hits, first - 1) {
                    first -= 1;
                }
                while near(&hits, last + 1) {
                    last += 1;
                }
                let mut text = String::new();
                for idx in first..=last {
                    hits.remove(&idx);
                    append(&mut text, &segments[idx as usize]);
                }
                let (start, end) = (&segments[first as usize], &segments[last as usize]);
                clips.push(Clip {
                    video_id: video.clone(),
                    start_s: start.start_s,
                    end_s: end.end_s,
                    score,
                    text,
                    keyframe: start.keyframe,
                });
            }
        }
        clips.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.video_id.cmp(&b.video_id))
                .then(a.start_s.total_cmp(&b.start_s))
        });
        clips.truncate(limit);
        Ok(clips)
    }

    /// The `k` segments of `videos` nearest to `vector`, best first, with no floor: for ranking
    /// within videos already chosen (a chat's grounding).
    pub fn nearest(
        &self,
        vector: &[f32],
        tenant: &str,
        videos: &HashSet<String>,
        k: usize,
    ) -> Vec<(String, u32)> {
        self.vectors
            .search(vector, tenant, Some(videos), k)
            .into_iter()
            .map(|h| (h.key.video.to_string(), h.key.idx))
            .collect()
    }

    /// The query's vector, or `None` without an embedding model.
    pub async fn embed_query(&self, text: &str) -> Result<Option<Vec<f32>>, SearchError> {
        let vectors = self.embed_texts(vec![text.to_string()]).await?;
        Ok(vectors.and_then(|v| v.into_iter().next()))
    }

    /// `texts` embedded off the runtime, in order; None when search by meaning is off.
    pub async fn embed_texts(
        &self,
        texts: Vec<String>,
    ) -> Result<Option<Vec<Vec<f32>>>, SearchError> {
        let Some(embedder) = self.embedder().await else {
            return Ok(None);
        };
        let vectors = tokio::task::spawn_blocking(move || embedder.embed(&texts))
            .await
            .map_err(|e| SearchError::Embed(e.to_string()))?
            .map_err(|e| SearchError::Embed(e.to_string()))?;
        Ok(Some(vectors))
    }
}

fn append(text: &mut String, s: &Segment) {
    let more = s.text();
    if !more.is_empty() {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&more);
    }
}

/// The query as FTS5 syntax: its words, each quoted (so none is read as an operator), any of
/// them; `None` when it has none.
fn query_terms(text: &str) -> Vec<String> {
    super::excerpt::terms(text).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_query_becomes_its_content_words() {
        assert_eq!(
            super::query_terms("Where's the NEAR \"bike\"?"),
            ["near", "bike"]
        );
        assert!(super::query_terms("the a ?").is_empty());
    }
}
