//! `chatapi-bench busy`: calls while a video is processed. One chatapi answers calls from the
//! mock upstream and processes the 10-minute talk (`videos::make_talk`); a second one answers
//! with the embedded model. The same steady load runs idle and while the talk is processed — a
//! call every 20 ms to the first (its time to first token) and the embedded model answering
//! a 128-token answer every 5 s (its tokens a second) — once with processing at the lowest
//! priority (`videos.low_priority`, the default: `SCHED_IDLE`) and once at the server's own, so
//! the report says what the priority buys the calls and what it costs the processing. Writes
//! `busy.md` / `busy.json`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::load::{self, Target};
use crate::procs::{chatapi_body, client, spawn_chatapi, Mock};
use crate::report::pct;
use crate::videos::{get_json, make_talk, upload};

/// What the load measured over one stretch of time.
#[derive(Default)]
struct Seen {
    first_tokens: Vec<Duration>,
    tokens_per_s: Vec<Duration>,
}

/// The steady load until `stop`: a call every 20 ms to `calls`, and the embedded model answering
/// `local` as in a conversation, a 128-token answer every 5 s (each answer's decode rate, kept as
/// the time per token). Answers back to back leave processing at the lowest priority almost
/// nothing of one of the two cores, which no conversation does.
async fn load(calls: Target, local: String, stop: Arc<AtomicBool>) -> Seen {
    let c = client();
    let calling = {
        let (c, stop) = (c.clone(), stop.clone());
        tokio::spawn(async move {
            let mut firsts = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                if let Some(t) = load::stream(&c, &calls, false).await.ttft {
                    firsts.push(t);
                }
            }
            firsts
        })
    };
    let answering = tokio::spawn(async move {
        let mut per_token = Vec::new();
        let mut turn = tokio::time::interval(Duration::from_secs(5));
        while !stop.load(Ordering::Relaxed) {
            turn.tick().await;
            if let Some(t) = decode(&c, &local).await {
                per_token.push(t);
            }
        }
        per_token
    });
    Seen {
        first_tokens: calling.await.unwrap(),
        tokens_per_s: answering.await.unwrap(),
    }
}

/// One 128-token answer from the embedded model; the time per token after the first.
async fn decode(c: &reqwest::Client, url: &str) -> Option<Duration> {
    let body = json!({"model": "default", "stream": true, "max_tokens": 128, "temperature": 0,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]});
    let response = c
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .ok()?;
    let mut stream = response.bytes_stream();
    let (mut first, mut last, mut tokens) = (None, None, 0u64);
    let mut text = String::new();
    while let Some(Ok(bytes)) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(end) = text.find('\n') {
            let line: String = text.drain(..=end).collect();
            let Some(data) = line.strip_prefix("data: ") else {
                continue;
            };
            let Ok(chunk) = serde_json::from_str::<Value>(data.trim()) else {
                continue;
            };
            if chunk["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
            {
                first.get_or_insert_with(Instant::now);
                last = Some(Instant::now());
            }
            if let Some(n) = chunk["usage"]["completion_tokens"].as_u64() {
                tokens = n;
            }
        }
    }
    let span = last? - first?;
    (tokens > 1).then(|| span / u32::try_from(tokens - 1).unwrap_or(1))
}

/// One run: idle for `idle`, then the talk uploaded and processed under the same load.
async fn run_once(bin: &Path, out: &Path, talk: &Path, low_priority: bool) -> (Seen, Seen, f64) {
    let mock = Mock::start().await;
    let store = std::env::temp_dir().join(format!(
        "chatapi-bench-busy-{}-{low_priority}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&store);
    let release = bin.parent().unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[local]\nenabled = false\n[storage]\ndir = \"{}\"\n\
         [videos]\nlow_priority = {low_priority}\nspeech_binary = \"{}\"\n\
         speech_model = \"models/ggml-tiny.en-q8_0.bin\"\n\
         [[upstreams]]\nname = \"mock\"\nbase_url = \"http://{}/v1\"\nmodel = \"mock:chunks=20,gap=0,ttft=0,hold=0\"\n",
        store.display(),
        release.join("chatapi-whisper").display(),
        mock.addr
    );
    let path = store.with_extension("toml");
    std::fs::write(&path, config).unwrap();
    let (mut serving, addr) = spawn_chatapi(bin, &path, true).await;
    let local_path = out.join("busy-local.toml");
    std::fs::write(&local_path, "[server]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let (mut local, local_addr) = spawn_chatapi(bin, &local_path, false).await;
    let calls = Target {
        url: format!("http://{addr}/chat"),
        body: chatapi_body(),
    };
    let local_url = format!("http://{local_addr}/v1/chat/completions");
    // Warm both before anything counts.
    let _ = decode(&client(), &local_url).await;

    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(calls.clone(), local_url.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(30)).await;
    stop.store(true, Ordering::Relaxed);
    let idle = running.await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(calls, local_url, stop.clone()));
    let base = format!("http://{addr}");
    let started = Instant::now();
    let id = tokio::task::block_in_place(|| upload(&base, talk));
    let c = client();
    let video = loop {
        let v = get_json(&c, &format!("{base}/v1/videos/{id}")).await;
        if v["status"] == "ready" || v["status"] == "failed" {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let processing = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let busy = running.await.unwrap();
    assert_eq!(video["status"], "ready", "{video}");
    let _ = serving.kill().await;
    let _ = local.kill().await;
    let _ = std::fs::remove_dir_all(&store);
    (idle, busy, processing)
}

pub async fn run(bin: &Path, out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    let (talk, _) = make_talk(out, 600);
    let mut md = String::from(
        "| processing at | calls' first token p50 / p99 (ms), idle | while processing | embedded tokens/s, idle | while processing | processing time (s) |\n|---|---|---|---|---|---|\n",
    );
    let mut rows = Vec::new();
    for low in [true, false] {
        let (idle, busy, processing) = run_once(bin, out, &talk, low).await;
        println!("low_priority = {low}: processing took {processing:.1} s");
        let rate = |v: &[Duration]| 1000.0 / pct(v, 50.0);
        let label = if low {
            "the lowest: SCHED_IDLE, nice 19 (low_priority = true)"
        } else {
            "the server's priority"
        };
        md.push_str(&format!(
            "| {label} | {:.3} / {:.3} | {:.3} / {:.3} | {:.1} | {:.1} | {processing:.1} |\n",
            pct(&idle.first_tokens, 50.0),
            pct(&idle.first_tokens, 99.0),
            pct(&busy.first_tokens, 50.0),
            pct(&busy.first_tokens, 99.0),
            rate(&idle.tokens_per_s),
            rate(&busy.tokens_per_s),
        ));
        rows.push(json!({
            "low_priority": low,
            "idle": {"first_token_p50_ms": pct(&idle.first_tokens, 50.0), "first_token_p99_ms": pct(&idle.first_tokens, 99.0),
                     "calls": idle.first_tokens.len(), "tokens_per_s": rate(&idle.tokens_per_s), "answers": idle.tokens_per_s.len()},
            "processing": {"first_token_p50_ms": pct(&busy.first_tokens, 50.0), "first_token_p99_ms": pct(&busy.first_tokens, 99.0),
                     "calls": busy.first_tokens.len(), "tokens_per_s": rate(&busy.tokens_per_s), "answers": busy.tokens_per_s.len()},
            "processing_s": processing,
        }));
        println!("{md}");
    }
    std::fs::write(out.join("busy.md"), &md).unwrap();
    std::fs::write(
        out.join("busy.json"),
        serde_json::to_string_pretty(&json!({ "runs": rows })).unwrap(),
    )
    .unwrap();
}
