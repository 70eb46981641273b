//! `chatapi-bench grounding`: the time grounding adds before the upstream call, for a two-hour
//! talk's timeline (240 segments of 30 s, about 18,000 words), at the default budget
//! (`video_chat.timeline_tokens` = 8000) so the timeline must be cut to the question. Times
//! reading the timeline from the library's SQLite store and `chatapi::videos::excerpt::ground` with
//! the tokenizer chatapi counts with, apart and together.

use chatapi::videos::excerpt::{ground, Material, Range, Reader};
use chatapi::videos::model::{Segment, Source, Status, Steps, Video};
use chatapi::videos::store::{NewVideo, Store};
use chatapi::videos::Owner;

const WORDS: &[&str] = &[
    "garden", "tomato", "water", "season", "soil", "planting", "harvest", "weather", "compost",
    "seeds", "morning", "sunlight", "leaves", "roots", "careful", "simple", "because", "then",
];

pub async fn run() {
    let segments: Vec<Segment> = (0..240u32)
        .map(|i| {
            let said: Vec<&str> = (0..75)
                .map(|w| WORDS[(i as usize * 7 + w * 3) % WORDS.len()])
                .collect();
            Segment {
                start_s: f64::from(i) * 30.0,
                end_s: f64::from(i + 1) * 30.0,
                transcript: said.join(" "),
                on_screen_text: if i % 4 == 0 {
                    format!("SLIDE {i}: THE PLAN")
                } else {
                    String::new()
                },
                caption: String::new(),
                keyframe: None,
                tokens: None,
                cues: Vec::new(),
            }
        })
        .collect();
    // As processing leaves them: each segment's tokens counted once.
    let segments = chatapi::videos::timeline::count_tokens(segments, || false).unwrap_or_default();
    let video = Video {
        id: "vid_bench".into(),
        object: "video",
        name: "two-hour-talk.mp4".into(),
        status: Status::Ready,
        error: None,
        source: Source {
            kind: "upload",
            url: None,
            bytes: None,
            subtitles_file: false,
        },
        duration_s: Some(7200.0),
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
    };
    let store_dir =
        std::env::temp_dir().join(format!("chatapi-bench-grounding-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store_dir);
    std::fs::create_dir_all(&store_dir).expect("a temporary folder");
    let store = Store::open(&store_dir.join("chatapi.db"))
        .await
        .expect("the store");
    let owner = Owner::default();
    let new = NewVideo {
        id: &video.id,
        owner: &owner,
        name: &video.name,
        source_kind: "upload",
        source_url: None,
        bytes: None,
        subtitles_file: false,
    };
    store.insert(&new).await.expect("a video row");
    store
        .claim("bench", std::time::Duration::from_secs(60))
        .await
        .expect("its job");
    store
        .finish_ready(&video.id, "bench", &Steps::default(), &[], &segments, &[])
        .await
        .expect("its timeline");
    let count = |t: &str| chatapi::context_budget::count_text(None, t);
    let question = "When do they talk about compost and the harvest weather?";
    let (mut reads, mut times, mut total) = (Vec::new(), Vec::new(), Vec::new());
    let mut chosen = 0;
    let mut tokens = 0;
    for _ in 0..101 {
        // What a chat does before its upstream call: read the timeline, then ground in it.
        let started = std::time::Instant::now();
        let read = store.segments(&video.id).await.expect("the timeline");
        let was_read = started.elapsed();
        let materials = [Material {
            video: &video,
            segments: &read,
            range: Range::default(),
        }];
        let g = ground(&materials, question, &[], 8000, &count, Reader::Large);
        let done = started.elapsed();
        reads.push(was_read);
        times.push(done - was_read);
        total.push(done);
        chosen = g.cited[0].1.len();
        tokens = count(&g.text);
    }
    reads.sort();
    times.sort();
    total.sort();
    let _ = std::fs::remove_dir_all(&store_dir);
    let ms = |d: &[std::time::Duration], i: usize| d[i].as_secs_f64() * 1e3;
    println!(
        "2 h talk: 240 segments, {} words; sent {chosen} segments, {tokens} tokens (budget 8000)\n",
        240 * 75
    );
    println!("| step | p50 | p95 |\n|---|---|---|");
    println!(
        "| read the timeline (SQLite) | {:.2} ms | {:.2} ms |",
        ms(&reads, 50),
        ms(&reads, 95)
    );
    println!(
        "| ground (BM25, pick, render) | {:.2} ms | {:.2} ms |",
        ms(&times, 50),
        ms(&times, 95)
    );
    println!(
        "| both, as a chat does them | {:.2} ms | {:.2} ms |",
        ms(&total, 50),
        ms(&total, 95)
    );
}
