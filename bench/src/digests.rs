//! `chatapi-bench digests`: what a two-hour video's chapters and summary cost, and how fast a
//! kept result comes back. A release chatapi with the mock upstream (40 chunks an answer, no
//! delay, so the time is chatapi's and the number of calls, not a model's) processes two hours
//! of picture with a subtitle every 30 s (240 segments), then is asked for chapters and a
//! summary (each made anew), and the kept chapters 200 times.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::mock::Spec;
use crate::procs::{spawn_chatapi, Mock};
use crate::report::pct;

pub async fn run(chatapi: &Path, out: &Path) -> bool {
    std::fs::create_dir_all(out).unwrap();
    let (video, srt) = crate::known::two_hours_with_subtitles(out);
    let mock = Mock::start().await;
    let store = std::env::temp_dir().join(format!("chatapi-bench-digests-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let spec = Spec {
        chunks: 40,
        gap: Duration::ZERO,
        ttft: Duration::ZERO,
        hold: false,
    };
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[local]\nenabled = false\n[storage]\ndir = \"{}\"\n\
         [[upstreams]]\nname = \"mock\"\nbase_url = \"http://{}/v1\"\nmodel = \"{}\"\n\
         [videos]\nspeech_binary = \"\"\nspeech_model = \"\"\nocr = false\nkeyframes_min_per_minute = 0.1\n",
        store.display(),
        mock.addr,
        spec.model()
    );
    let config_path = store.with_extension("toml");
    std::fs::write(&config_path, config).unwrap();
    let (_child, addr) = spawn_chatapi(chatapi, &config_path, true).await;
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let id = crate::videos::upload_with(&base, &video, &[("subtitles", &srt)]);
    crate::videos::ready(&client, &base, &id).await;

    let ask = |kind: &str| json!({"type": kind, "regenerate": true});
    let mut rows = Vec::new();
    for kind in ["chapter", "summary"] {
        let started = Instant::now();
        let made = post(&client, &base, &id, &ask(kind)).await;
        let took = started.elapsed();
        let usage = &made["usage"];
        let count = made["chapters"].as_array().map_or(1, Vec::len);
        rows.push(format!(
            "| {kind} | {count} | {:.2} s | {} | {} |",
            took.as_secs_f64(),
            usage["prompt_tokens"],
            usage["completion_tokens"]
        ));
    }
    let mut kept = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let body = post(&client, &base, &id, &json!({"type": "chapter"})).await;
        kept.push(started.elapsed());
        assert!(body["chapters"].is_array(), "{body}");
    }
    println!("\n## digests of a two-hour video (240 segments), mock upstream\n");
    println!("| made | items | time | upstream prompt tokens | completion tokens |");
    println!("|---|---|---|---|---|");
    for row in &rows {
        println!("{row}");
    }
    println!(
        "\nkept chapters, 200 requests: p50 {:.2} ms, p99 {:.2} ms",
        pct(&kept, 50.0),
        pct(&kept, 99.0)
    );
    let _ = std::fs::remove_dir_all(&store);
    true
}

async fn post(client: &reqwest::Client, base: &str, id: &str, body: &Value) -> Value {
    let r = client
        .post(format!("{base}/v1/videos/{id}/summaries"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert!(status.is_success(), "{status}: {body}");
    body
}
