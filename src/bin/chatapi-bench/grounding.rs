//! `chatapi-bench grounding`: the time grounding adds before the upstream call, for a two-hour
//! talk's timeline (240 segments of 30 s, about 18,000 words), at the default budget
//! (`video_chat.timeline_tokens` = 8000) so the timeline must be cut to the question. Times
//! `chatapi::grounding::ground` with the tokenizer chatapi counts with; reading the timeline from
//! SQLite is not included.

use chatapi::grounding::{ground, Material, Range};
use chatapi::videos::model::{Segment, Source, Status, Steps, Video};

const WORDS: &[&str] = &[
    "garden", "tomato", "water", "season", "soil", "planting", "harvest", "weather", "compost",
    "seeds", "morning", "sunlight", "leaves", "roots", "careful", "simple", "because", "then",
];

pub fn run() {
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
            }
        })
        .collect();
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
    let materials = [Material {
        video: &video,
        segments: &segments,
        range: Range::default(),
    }];
    let count = |t: &str| chatapi::context::count_text(None, t);
    let question = "When do they talk about compost and the harvest weather?";
    let mut times = Vec::new();
    let mut chosen = 0;
    let mut tokens = 0;
    for _ in 0..101 {
        let started = std::time::Instant::now();
        let g = ground(&materials, question, 8000, &count);
        times.push(started.elapsed());
        chosen = g.cited[0].1.len();
        tokens = count(&g.text);
    }
    times.sort();
    let ms = |i: usize| times[i].as_secs_f64() * 1e3;
    println!("| timeline | segments sent | tokens sent | p50 | p95 |\n|---|---|---|---|---|");
    println!(
        "| 2 h, 240 segments, {} words | {chosen} | {tokens} | {:.2} ms | {:.2} ms |",
        240 * 75,
        ms(50),
        ms(95)
    );
}
