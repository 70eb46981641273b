//! `chatapi-bench local`: the embedded model against llama.cpp's own runtime (llama-cpp-python,
//! built with the same CPU features; `bench/reference/llama_cpp_reference.py`), on the same GGUF,
//! prompts, greedy sampling and thread count. Measured in-process through the same `Local` upstream that serves
//! HTTP, so what is timed is chatapi's engine: template, tokenizing, batching, sampling,
//! incremental detokenizing and the channel to the caller.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chatapi::conversation::{Message, Role};
use chatapi::upstream::local::{Local, LocalSettings};
use chatapi::upstream::{ChatRequest, Sampling};
use futures_util::StreamExt;
use serde_json::{json, Value};

fn request(prompt: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::new(Role::User, prompt)],
        model: None,
        sampling: Sampling {
            temperature: Some(0.0),
            max_tokens: Some(max_tokens),
            ..Sampling::default()
        },
        ..ChatRequest::default()
    }
}

/// (time to first delta, deltas, time from first to last delta)
async fn generate(local: &std::sync::Arc<Local>, req: &ChatRequest) -> (Duration, usize, Duration) {
    let started = Instant::now();
    let mut stream = local.start(req).await.expect("local engine accepts");
    let mut first = None;
    let mut last = started;
    let mut n = 0;
    while let Some(item) = stream.next().await {
        if item.is_ok_and(|event| event.is_content()) {
            n += 1;
            last = Instant::now();
            first.get_or_insert(last);
        }
    }
    let first = first.unwrap_or(last);
    (first - started, n, last - first)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs the reference script with `python`; returns (decode tokens/s, first-token times in ms).
fn reference(python: &Path, model: &Path, threads: usize, tokens: u32) -> Option<(f64, Vec<f64>)> {
    let out = std::process::Command::new(python)
        .arg("bench/reference/llama_cpp_reference.py")
        .arg(model)
        .arg(threads.to_string())
        .arg(tokens.to_string())
        .output()
        .ok()?;
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    let ttft = v["ttft_ms"]
        .as_array()?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    Some((v["decode_tps"].as_f64()?, ttft))
}

pub async fn run(
    model: PathBuf,
    threads: usize,
    batch_threads: usize,
    tokens: u32,
    chat_template: Option<String>,
    python: Option<PathBuf>,
    out: PathBuf,
) {
    let batch_threads = match batch_threads {
        0 => chatapi::config::cores(),
        n => n,
    };
    let local = std::sync::Arc::new(
        Local::load(
            "bench",
            LocalSettings {
                model_path: model.clone(),
                threads,
                batch_threads,
                context_tokens: 1024,
                parallel: 4,
                queue: 8,
                // Every prompt cold, like the reference with its cache reset: the same short prompt
                // would otherwise come from the cache (bench/long_call.py times the cache itself).
                reuse_cache: false,
                // llama.cpp's own sampling, as the reference it is timed against uses.
                sampling: chatapi::upstream::local::text::Defaults::LLAMA_CPP,
                chat_template,
            },
        )
        .expect("model loads"),
    );
    let short = request("What is the capital of France?", 1);
    let long = request(
        "Write a long story about a dragon who learns to sing.",
        tokens,
    );
    generate(&local, &request("Hi", 8)).await;

    let mut ttft = Vec::new();
    for _ in 0..10 {
        ttft.push(generate(&local, &short).await.0.as_secs_f64() * 1e3);
    }
    let mut rates = Vec::new();
    for _ in 0..3 {
        let (_, n, span) = generate(&local, &long).await;
        rates.push((n.saturating_sub(1)) as f64 / span.as_secs_f64());
    }
    let one = median(rates);
    let started = Instant::now();
    let four: Vec<_> =
        futures_util::future::join_all((0..4).map(|_| generate(&local, &long))).await;
    let total: usize = four.iter().map(|(_, n, _)| n).sum();
    let four_rate = total as f64 / started.elapsed().as_secs_f64();
    let four_first_ms = four
        .iter()
        .map(|(first, _, _)| first.as_secs_f64() * 1e3)
        .fold(0.0, f64::max);
    // Our engine is done with the machine before the reference starts: one at a time.
    drop(local);
    let reference = python.and_then(|py| reference(&py, &model, threads, tokens));
    let ref_tg = reference.as_ref().map(|r| r.0);
    let ref_ttft = reference.map(|r| median(r.1));
    let ttft_p50 = median(ttft.clone());
    let ttft_max = ttft.iter().copied().fold(0.0, f64::max);
    let mut md = format!(
        "Model {}, {threads} thread(s), {batch_threads} for batches, greedy, {tokens}-token answers.\n\n| measure | chatapi (embedded) | llama.cpp (llama-cpp-python) | ratio | target |\n|---|---|---|---|---|\n",
        model.display()
    );
    md.push_str(&format!(
        "| decode, 1 caller (tokens/s, median of 3) | {one:.1} | {} | {} | ≥ 0.95× |\n",
        ref_tg.map_or("—".into(), |r| format!("{r:.1}")),
        ref_tg.map_or("—".into(), |r| format!("{:.2}×", one / r)),
    ));
    md.push_str(&format!(
        "| decode, 4 callers at once (total tokens/s) | {four_rate:.1} | | {:.2}× one caller | ≥ 1.3× |\n",
        four_rate / one
    ));
    md.push_str(&format!(
        "| first token of the slowest of the 4 callers | {four_first_ms:.0} ms | | | ≤ 1 s |\n"
    ));
    md.push_str(&format!(
        "| first token, short prompt, p50 / max of 10 | {ttft_p50:.0} ms / {ttft_max:.0} ms | {} | | ≤ 200 ms |\n",
        ref_ttft.map_or("—".into(), |t| format!("{t:.0} ms (p50)")),
    ));
    let raw = json!({
        "model": model, "threads": threads, "batch_threads": batch_threads, "tokens": tokens,
        "decode_one_tps": one, "decode_four_total_tps": four_rate, "four_first_token_ms_max": four_first_ms,
        "ttft_ms_p50": ttft_p50, "ttft_ms_max": ttft_max, "ttft_ms": ttft,
        "reference_decode_tps": ref_tg, "reference_ttft_ms_p50": ref_ttft,
    });
    std::fs::create_dir_all(&out).expect("out dir");
    std::fs::write(out.join("local.md"), &md).expect("write");
    std::fs::write(
        out.join("local.json"),
        serde_json::to_string_pretty(&raw).unwrap_or_default(),
    )
    .expect("write");
    println!("{md}");
}
