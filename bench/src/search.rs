//! `chatapi-bench search`: what search by meaning costs. The embedding model's load and memory,
//! its throughput on timeline segments (the processing step) and on a query, and a search over
//! 100,000 segments: the exact vector scan (`videos::vectors`) and the keyword side (FTS5 in the
//! library's SQLite store).

use std::time::{Duration, Instant};

use chatapi::videos::embed::{Embedder, DIMENSIONS};
use chatapi::videos::model::{Segment, Steps};
use chatapi::videos::store::{NewVideo, Store};
use chatapi::videos::vectors::VectorIndex;
use chatapi::videos::Owner;

const WORDS: &[&str] = &[
    "garden", "tomato", "water", "season", "soil", "planting", "harvest", "weather", "compost",
    "seeds", "morning", "sunlight", "leaves", "roots", "careful", "simple", "because", "then",
    "train", "mountain", "coast", "bicycle", "kitchen", "bread", "meeting", "agenda", "budget",
];

fn sentence(seed: usize, words: usize) -> String {
    (0..words)
        .map(|w| WORDS[(seed * 7 + w * 13 + w * w) % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Words of a Zipf-like vocabulary of 5,000 (log-uniform ranks), as natural text has: a few
/// words everywhere, most words rare. Deterministic.
fn zipf_text(seed: u64, words: usize) -> String {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..words)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            let rank = 5000f64.powf(u) as u64;
            format!("w{rank}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn percentile(times: &mut [Duration], p: usize) -> f64 {
    times.sort();
    let i = (times.len() * p / 100).min(times.len() - 1);
    times[i].as_secs_f64() * 1e3
}

pub async fn run(model: &std::path::Path, segments: usize) {
    let before = rss_kb();
    let started = Instant::now();
    let embedder = Embedder::load(model).expect("the embedding model (scripts/fetch-model.sh)");
    let load = started.elapsed();
    let loaded = rss_kb();

    // Processing: 240 segments of 75 words, a two-hour talk's timeline.
    let timeline: Vec<String> = (0..240).map(|i| sentence(i, 75)).collect();
    let started = Instant::now();
    let vectors = embedder.embed(&timeline).expect("embedding");
    let took = started.elapsed();
    let per_second = timeline.len() as f64 / took.as_secs_f64();
    let after = rss_kb();

    let mut queries = Vec::new();
    for i in 0..21 {
        let q = vec![sentence(1000 + i, 8)];
        let started = Instant::now();
        let _ = embedder.embed(&q).expect("embedding");
        queries.push(started.elapsed());
    }

    // 100,000 segments in memory: the timeline's vectors, over and over, each nudged.
    let index = VectorIndex::default();
    let per_video = 240;
    for v in 0..segments.div_ceil(per_video) {
        let batch: Vec<(u32, Vec<f32>)> = (0..per_video)
            .map(|i| {
                let mut x = vectors[i].clone();
                x[(v + i) % DIMENSIONS] += 0.05;
                let norm = x.iter().map(|a| a * a).sum::<f32>().sqrt();
                (i as u32, x.into_iter().map(|a| a / norm).collect())
            })
            .collect();
        index.add(&format!("vid_{v}"), "", &batch);
    }
    let mut scans = Vec::new();
    for i in 0..101 {
        let started = Instant::now();
        let hits = index.search(&vectors[i % vectors.len()], "", None, 50);
        scans.push(started.elapsed());
        assert_eq!(hits.len(), 50);
    }

    // The keyword side over the same number of segments, in a real store.
    let dir = std::env::temp_dir().join(format!("chatapi-bench-search-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let store = Store::open(&dir.join("chatapi.db"))
        .await
        .expect("the store");
    let owner = Owner::default();
    let rows: Vec<Segment> = (0..per_video)
        .map(|i| Segment {
            start_s: i as f64 * 30.0,
            end_s: (i + 1) as f64 * 30.0,
            transcript: zipf_text(i as u64, 75),
            on_screen_text: String::new(),
            caption: String::new(),
            keyframe: None,
            tokens: Some(100),
            cues: Vec::new(),
        })
        .collect();
    for v in 0..segments.div_ceil(per_video) {
        let id = format!("vid_{v}");
        let rows: Vec<Segment> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| Segment {
                transcript: zipf_text((v * per_video + i) as u64, 75),
                ..r.clone()
            })
            .collect();
        let new = NewVideo {
            id: &id,
            owner: &owner,
            name: "talk",
            source_kind: "upload",
            source_url: None,
            bytes: None,
            subtitles_file: false,
        };
        store.insert(&new).await.expect("a row");
        store
            .claim("bench", Duration::from_secs(600))
            .await
            .expect("its job");
        store
            .finish_ready(&id, "bench", &Steps::default(), &[], &rows, &[])
            .await
            .expect("its timeline");
    }
    // Two words of middling frequency, as a question's content words are; and, for the worst
    // case, two of the ten commonest (in nearly every segment).
    let mut fts = Vec::new();
    let mut common = Vec::new();
    for i in 0..101u64 {
        let q = [format!("w{}", 100 + i * 7), format!("w{}", 300 + i * 11)];
        let started = Instant::now();
        let _ = store.text_hits("", None, &q, 50).await.expect("fts");
        fts.push(started.elapsed());
        let q = [format!("w{}", 1 + i % 5), format!("w{}", 6 + i % 5)];
        let started = Instant::now();
        let hits = store.text_hits("", None, &q, 50).await.expect("fts");
        common.push(started.elapsed());
        assert!(!hits.is_empty());
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!("| measure | value |\n|---|---|");
    println!("| model load | {:.0} ms |", load.as_secs_f64() * 1e3);
    println!(
        "| RSS added by the model (loaded / after embedding 240 segments) | {:.0} MB / {:.0} MB |",
        (loaded - before) as f64 / 1024.0,
        (after - before) as f64 / 1024.0
    );
    println!(
        "| embedding, 240 segments of 75 words | {:.1} s, {per_second:.1} segments/s |",
        took.as_secs_f64()
    );
    println!(
        "| embedding a query of 8 words, p50 | {:.1} ms |",
        percentile(&mut queries, 50)
    );
    println!(
        "| scan of {} vectors, top 50, p50 / p99 | {:.1} ms / {:.1} ms |",
        index.len(),
        percentile(&mut scans.clone(), 50),
        percentile(&mut scans, 99)
    );
    println!(
        "| FTS5 BM25 over {} segments, top 50, two mid-frequency words, p50 / p99 | {:.1} ms / {:.1} ms |",
        segments.div_ceil(per_video) * per_video,
        percentile(&mut fts.clone(), 50),
        percentile(&mut fts, 99)
    );
    println!(
        "| FTS5 BM25, two of the commonest words (worst case), p50 / p99 | {:.1} ms / {:.1} ms |",
        percentile(&mut common.clone(), 50),
        percentile(&mut common, 99)
    );
}
