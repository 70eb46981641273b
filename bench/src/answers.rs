//! `chatapi-bench answers`: are the embedded model's offline answers right? A release chatapi
//! serves each model with each sampling setting (`[local]`, as an operator would set it) and is
//! asked (a) 30 short factual questions, each 5 times, through the OpenAI route, and (b) 20
//! questions about videos made here with facts spoken and shown at known moments (`known.rs`),
//! asked in other words through Reka's `/v2/chat`; a video answer counts when it says the fact
//! and cites a stamp within `STAMP_TOLERANCE_S` of the moment. Beside the scores: decode rate,
//! first token on a grounded prompt of about 2,000 tokens (served with a 3,072-token context, one
//! conversation at a time, so it fits), and the server's memory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::known;
use crate::procs::{rss_of, spawn_chatapi};

/// A question and the words of which one must be in a right answer (lower case).
const FACTS: [(&str, &[&str]); 30] = [
    ("What is the capital of France?", &["paris"]),
    ("What is the capital of Japan?", &["tokyo"]),
    ("What is the capital of Italy?", &["rome"]),
    (
        "What is the largest planet in our solar system?",
        &["jupiter"],
    ),
    ("Which planet is known as the Red Planet?", &["mars"]),
    ("What is the chemical symbol for water?", &["h2o", "h₂o"]),
    ("How many days are in a week?", &["seven", "7"]),
    ("How many legs does a spider have?", &["eight", "8"]),
    ("What color is the sky on a clear day?", &["blue"]),
    (
        "What is the freezing point of water in degrees Celsius?",
        &["zero", "0"],
    ),
    ("Who wrote Romeo and Juliet?", &["shakespeare"]),
    ("What is the opposite of hot?", &["cold"]),
    ("What do bees make?", &["honey"]),
    ("What is the largest ocean on Earth?", &["pacific"]),
    (
        "Which animal is known as the king of the jungle?",
        &["lion"],
    ),
    (
        "What gas do plants take in from the air?",
        &["carbon dioxide", "co2"],
    ),
    ("What is two plus two?", &["four", "4"]),
    ("How many continents are there?", &["seven", "7"]),
    ("What is the main language spoken in Spain?", &["spanish"]),
    ("What star is at the center of our solar system?", &["sun"]),
    ("What is frozen water called?", &["ice"]),
    ("Which month comes after January?", &["february"]),
    ("What is the tallest animal in the world?", &["giraffe"]),
    ("What do cows drink?", &["water"]),
    ("Which organ pumps blood through the body?", &["heart"]),
    ("What is the capital of Germany?", &["berlin"]),
    (
        "How many hours are in a day?",
        &["24", "twenty-four", "twenty four"],
    ),
    ("What is the currency of the United States?", &["dollar"]),
    (
        "Which ocean lies between Europe and America?",
        &["atlantic"],
    ),
    ("What shape has three sides?", &["triangle"]),
];
/// Times each factual question is asked, by default.
pub const ASKED: u32 = 5;
/// The longest factual answer, in tokens: a right one takes a sentence, and a model that rambles
/// (a base model) would otherwise take minutes a question.
const FACT_TOKENS: u32 = 64;

/// Which video, the question (in other words than the video's), the words of which one must be
/// in the answer, and the moment a right stamp cites.
const ABOUT_VIDEOS: [(Video, &str, &[&str], f64); 20] = [
    (Video::Said, "What kind of tour is this?", &["garden"], 1.0),
    (
        Video::Said,
        "What are they putting in the ground today?",
        &["tomato"],
        6.0,
    ),
    (
        Video::Said,
        "Which vegetable is mentioned?",
        &["tomato"],
        6.0,
    ),
    (
        Video::Said,
        "Where in the garden does the planting happen?",
        &["sunny", "corner"],
        6.0,
    ),
    (Video::Said, "Where is the bike left?", &["barn"], 15.0),
    (
        Video::Said,
        "What colour is the building next to the bike?",
        &["red"],
        15.0,
    ),
    (
        Video::Said,
        "What vehicle is mentioned?",
        &["bicycle", "bike"],
        15.0,
    ),
    (
        Video::Said,
        "What is done with the flowers at the end?",
        &["water"],
        40.0,
    ),
    (
        Video::Said,
        "By what time of day are the flowers watered?",
        &["sunset"],
        40.0,
    ),
    (
        Video::Said,
        "What is the last thing they do?",
        &["water", "flower"],
        40.0,
    ),
    (
        Video::Scenes,
        "Which musical instrument is shown?",
        &["piano"],
        0.0,
    ),
    (
        Video::Scenes,
        "What two-wheeled vehicle appears?",
        &["bicycle"],
        4.0,
    ),
    (
        Video::Scenes,
        "Which mountain that erupts is shown?",
        &["volcano"],
        8.0,
    ),
    (
        Video::Scenes,
        "Where could you borrow books?",
        &["library"],
        12.0,
    ),
    (
        Video::Scenes,
        "What goes to space in this video?",
        &["rocket"],
        16.0,
    ),
    (
        Video::Scenes,
        "Where do plants grow in this video?",
        &["garden"],
        22.0,
    ),
    (
        Video::Slides,
        "What number is on the first slide?",
        &["one"],
        0.0,
    ),
    (
        Video::Slides,
        "Which word follows ONE on the slides?",
        &["two"],
        13.0,
    ),
    (
        Video::Slides,
        "What does the third slide say?",
        &["three"],
        20.2,
    ),
    (
        Video::Slides,
        "What is written on the last slide?",
        &["four"],
        71.0,
    ),
];
/// A cited stamp this close to the fact's moment is the right one (a segment starts at a voice
/// onset or a cut, stamps are whole seconds).
const STAMP_TOLERANCE_S: f64 = 2.0;

#[derive(Clone, Copy, PartialEq)]
enum Video {
    Said,
    Scenes,
    Slides,
}

/// `[local]` sampling: (name, temperature, top_p, repeat_penalty), and whether the model is
/// shown its example exchange (`local.example_question`).
#[derive(Clone)]
pub struct Setting {
    pub name: String,
    pub temperature: f32,
    pub top_p: f32,
    pub repeat_penalty: f32,
    pub example: bool,
}

impl Setting {
    /// `name=temperature/top_p/repeat_penalty`, e.g. `card=0.2/0.9/1.1`; with `/no-example` at
    /// the end, the model is shown no example exchange.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, knobs) = text
            .split_once('=')
            .ok_or("a setting is name=temperature/top_p/repeat_penalty[/no-example]")?;
        let (knobs, example) = match knobs.strip_suffix("/no-example") {
            Some(knobs) => (knobs, false),
            None => (knobs, true),
        };
        let knobs: Vec<f32> = knobs
            .split('/')
            .map(|k| k.parse::<f32>().map_err(|e| format!("{k}: {e}")))
            .collect::<Result<_, _>>()?;
        let [temperature, top_p, repeat_penalty] = knobs[..] else {
            return Err("three numbers: temperature/top_p/repeat_penalty".into());
        };
        Ok(Self {
            name: name.to_string(),
            temperature,
            top_p,
            repeat_penalty,
            example,
        })
    }

    /// Its name, saying when the model was shown no example.
    fn label(&self) -> String {
        if self.example {
            self.name.clone()
        } else {
            format!("{}, no example", self.name)
        }
    }
}

struct Scores {
    facts_right: usize,
    facts_asked: usize,
    /// Of the video questions: the fact said, a right stamp cited, both.
    video_fact: usize,
    video_stamp: usize,
    video_both: usize,
    decode_tps: f64,
    grounded_ttft_ms: f64,
    grounded_prompt_tokens: u64,
    rss_mib: f64,
    misses: Vec<String>,
}

/// A model to serve: `PATH`, or `PATH@TEMPLATE` for one that needs `local.chat_template`.
#[derive(Clone)]
pub struct Model {
    pub path: PathBuf,
    pub template: String,
}

impl Model {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (path, template) = text.rsplit_once('@').unwrap_or((text, ""));
        if !Path::new(path).is_file() {
            return Err(format!(
                "{path} is not a file (scripts/fetch-model.sh fetches models)"
            ));
        }
        Ok(Self {
            path: path.into(),
            template: template.to_string(),
        })
    }
}

pub async fn run(chatapi: &Path, out: &Path, models: &[Model], settings: &[Setting], asked: usize) {
    std::fs::create_dir_all(out).unwrap();
    let videos = [
        (Video::Said, known::sentences(out)),
        (Video::Scenes, known::cuts(out)),
        (Video::Slides, known::slides(out)),
    ];
    let mut md = format!(
        "# Offline answers, {}\n\n{} factual questions × {asked} (OpenAI route, answers up to {FACT_TOKENS} tokens), {} questions about \
         three made videos (Reka `/v2/chat`; right = the fact said and a stamp within {STAMP_TOLERANCE_S} s).\n\n\
         | model | setting (temp / top_p / repeat) | facts right | video: fact / stamp / both | decode tokens/s | first token, ~2,000-token grounded prompt | RSS |\n\
         |---|---|---|---|---|---|---|\n",
        super::machine(),
        FACTS.len(),
        ABOUT_VIDEOS.len(),
    );
    let mut record = Vec::new();
    for model in models {
        for setting in settings {
            let s = measure(chatapi, model, setting, &videos, asked).await;
            let name = model
                .path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().to_string());
            md.push_str(&format!(
                "| {name} | {} ({} / {} / {}) | {}/{} ({:.0} %) | {} / {} / {} of {} | {:.1} | {:.0} ms ({} tokens) | {:.0} MiB |\n",
                setting.label(),
                setting.temperature,
                setting.top_p,
                setting.repeat_penalty,
                s.facts_right,
                s.facts_asked,
                100.0 * s.facts_right as f64 / s.facts_asked as f64,
                s.video_fact,
                s.video_stamp,
                s.video_both,
                ABOUT_VIDEOS.len(),
                s.decode_tps,
                s.grounded_ttft_ms,
                s.grounded_prompt_tokens,
                s.rss_mib,
            ));
            record.push(json!({
                "model": name, "setting": setting.label(), "temperature": setting.temperature,
                "top_p": setting.top_p, "repeat_penalty": setting.repeat_penalty,
                "facts_right": s.facts_right, "facts_asked": s.facts_asked,
                "video_fact": s.video_fact, "video_stamp": s.video_stamp, "video_both": s.video_both,
                "decode_tps": s.decode_tps, "grounded_ttft_ms": s.grounded_ttft_ms,
                "grounded_prompt_tokens": s.grounded_prompt_tokens, "rss_mib": s.rss_mib,
                "misses": s.misses,
            }));
        }
    }
    std::fs::write(out.join("answers.md"), &md).unwrap();
    std::fs::write(
        out.join("answers.json"),
        serde_json::to_string_pretty(&record).unwrap(),
    )
    .unwrap();
    println!("{md}");
}

async fn measure(
    chatapi: &Path,
    model: &Model,
    setting: &Setting,
    videos: &[(Video, PathBuf)],
    asked: usize,
) -> Scores {
    let store = std::env::temp_dir().join(format!("chatapi-bench-answers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let whisper = chatapi.parent().unwrap().join("chatapi-whisper");
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\ndir = \"{}\"\n\
         [local]\ncontext_tokens = 3072\nparallel = 1\nmodel_path = \"{}\"\nchat_template = \"{}\"\ntemperature = {}\ntop_p = {}\nrepeat_penalty = {}\n\
         {}[videos]\nspeech_binary = \"{}\"\nspeech_model = \"models/ggml-tiny.en-q8_0.bin\"\n",
        store.display(),
        model.path.display(),
        model.template,
        setting.temperature,
        setting.top_p,
        setting.repeat_penalty,
        if setting.example {
            ""
        } else {
            "example_question = \"\"\nexample_answer = \"\"\n"
        },
        whisper.display()
    );
    let config_path = store.with_extension("toml");
    std::fs::write(&config_path, config).unwrap();
    let (mut child, addr) = spawn_chatapi(chatapi, &config_path, true).await;
    let base = format!("http://{addr}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let mut misses = Vec::new();

    let (mut facts_right, mut tokens, mut decoding) = (0, 0u64, 0f64);
    for (question, right) in FACTS {
        for _ in 0..asked {
            let started = Instant::now();
            let asked =
                json!({"model": "default", "messages": [{"role": "user", "content": question}]});
            let answer = post(&client, &format!("{base}/v1/chat/completions"), &asked).await;
            decoding += started.elapsed().as_secs_f64();
            tokens += answer["usage"]["completion_tokens"].as_u64().unwrap_or(0);
            let text = answer["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if says(&text, right) {
                facts_right += 1;
            } else if misses.len() < 40 {
                misses.push(format!("{question} → {text}"));
            }
        }
    }

    let mut ids = Vec::new();
    for (kind, file) in videos {
        ids.push((*kind, crate::videos::upload(&base, file)));
    }
    for (_, id) in &ids {
        crate::videos::ready(&client, &base, id).await;
    }
    let (mut video_fact, mut video_stamp, mut video_both) = (0, 0, 0);
    for (kind, question, right, at) in ABOUT_VIDEOS {
        let id = &ids.iter().find(|(k, _)| *k == kind).unwrap().1;
        let asked = json!({
            "messages": [{"role": "user", "content": question}],
            "context": [{"video_id": id}],
        });
        let answer = post(&client, &format!("{base}/v2/chat"), &asked).await;
        let text = answer["response"].as_str().unwrap_or("").to_string();
        let fact = says(&text, right);
        let stamp = stamps(&text)
            .iter()
            .any(|s| (s - at).abs() <= STAMP_TOLERANCE_S);
        video_fact += usize::from(fact);
        video_stamp += usize::from(stamp);
        video_both += usize::from(fact && stamp);
        if !(fact && stamp) && misses.len() < 80 {
            misses.push(format!("[video, {at} s] {question} → {text}"));
        }
    }

    let (grounded_ttft_ms, grounded_prompt_tokens) = grounded_first_token(&client, &base).await;
    let rss_mib = child
        .id()
        .map_or(0.0, |pid| rss_of(pid) as f64 / (1 << 20) as f64);
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&store);
    let _ = std::fs::remove_file(&config_path);
    Scores {
        facts_right,
        facts_asked: FACTS.len() * asked,
        video_fact,
        video_stamp,
        video_both,
        decode_tps: tokens as f64 / decoding.max(1e-9),
        grounded_ttft_ms,
        grounded_prompt_tokens,
        rss_mib,
        misses,
    }
}

/// Time to the first streamed word of an answer over a made timeline of about 2,000 tokens (a
/// fresh prompt each run, so nothing comes from the cache): median of 3.
async fn grounded_first_token(client: &reqwest::Client, base: &str) -> (f64, u64) {
    let mut times = Vec::new();
    let mut prompt_tokens = 0;
    for run in 0..3 {
        let timeline: String = (0..62)
            .map(|i| {
                format!(
                    "[{:02}:{:02}] said: \"in part {i} of run {run} the guide shows the {} and explains how it works\"\n",
                    i * 8 / 60,
                    i * 8 % 60,
                    ["garden", "barn", "tractor", "orchard", "pond"][i % 5]
                )
            })
            .collect();
        let started = Instant::now();
        let asked = json!({
            "model": "default",
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": 16,
            "messages": [
                {"role": "system", "content": format!("Answer from this timeline and cite its stamps.\n{timeline}")},
                {"role": "user", "content": "What does the guide show near the pond?"},
            ],
        });
        let response = sent(client, &format!("{base}/v1/chat/completions"), &asked).await;
        let mut body = response.bytes_stream();
        let (mut first, mut pending) = (None, String::new());
        while let Some(chunk) = body.next().await {
            pending.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            while let Some(end) = pending.find("\n\n") {
                let event: String = pending.drain(..end + 2).collect();
                let Some(data) = event.trim().strip_prefix("data: ") else {
                    continue;
                };
                let Ok(chunk) = serde_json::from_str::<Value>(data) else {
                    continue;
                };
                let said = chunk["choices"][0]["delta"]["content"].as_str();
                if first.is_none() && said.is_some_and(|t| !t.is_empty()) {
                    first = Some(started.elapsed());
                }
                if let Some(n) = chunk["usage"]["prompt_tokens"].as_u64() {
                    prompt_tokens = n;
                }
            }
        }
        // Refused or empty (a model that could not take it): no figure rather than a wrong one.
        times.push(first.map_or(f64::NAN, |f| f.as_secs_f64() * 1e3));
    }
    times.sort_by(f64::total_cmp);
    (times[1], prompt_tokens)
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Value {
    let response = sent(client, url, body).await;
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

async fn sent(client: &reqwest::Client, url: &str, body: &Value) -> reqwest::Response {
    client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

fn says(text: &str, right: &[&str]) -> bool {
    let text = text.to_lowercase();
    right.iter().any(|r| text.contains(r))
}

/// Every `[MM:SS]` or `[H:MM:SS]` in an answer, in seconds.
fn stamps(text: &str) -> Vec<f64> {
    text.split('[')
        .skip(1)
        .filter_map(|s| s.split_once(']').map(|(inside, _)| inside))
        .filter_map(|inside| {
            let parts: Vec<f64> = inside
                .split(':')
                .map(|p| p.trim().parse::<f64>().ok())
                .collect::<Option<_>>()?;
            match parts[..] {
                [m, s] => Some(m * 60.0 + s),
                [h, m, s] => Some(h * 3600.0 + m * 60.0 + s),
                _ => None,
            }
        })
        .collect()
}
