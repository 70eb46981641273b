//! `chatapi-bench timeline`: how true the timeline is. Videos made here with known facts —
//! sentences at known moments with silences between them, every kind of cut under film grain,
//! and the `videos` benchmark's talk (a slide every 20 s) — go through a release chatapi; the
//! report gives each sentence's onset error and the cuts' recall and precision (a cut found
//! within 0.4 s of a real one counts). With `--peers PYTHON`, the same videos through
//! PySceneDetect's ContentDetector and the talk's speech through faster-whisper, beside
//! `chatapi-whisper` on the same WAV, in the same run (`bench/peer/timeline_peers.py`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

use crate::procs::spawn_chatapi;

use crate::known::{self, SAID, SCENES, SLIDES};

/// A cut found this close to a real one is that cut.
const CUT_TOLERANCE_S: f64 = 0.4;

pub async fn run(chatapi: &Path, out: &Path, peers: Option<PathBuf>) -> bool {
    std::fs::create_dir_all(out).unwrap();
    let sentences = known::sentences(out);
    let cuts_video = known::cuts(out);
    let cuts: Vec<f64> = SCENES[1..].iter().map(|(at, _)| *at).collect();
    let slides_video = known::slides(out);
    let slides: Vec<f64> = SLIDES[1..].iter().map(|(at, _)| *at).collect();
    let (talk, spoken) = crate::videos::make_talk(out, 600);
    let talk_cuts: Vec<f64> = (1..30).map(|i| f64::from(i) * 20.0).collect();

    let store = std::env::temp_dir().join(format!("chatapi-bench-timeline-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let release = chatapi.parent().unwrap();
    let whisper = release.join("chatapi-whisper");
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[local]\nenabled = false\n[storage]\ndir = \"{}\"\n\
         [videos]\nspeech_binary = \"{}\"\nspeech_model = \"models/ggml-tiny.en-q8_0.bin\"\n",
        store.display(),
        whisper.display()
    );
    let config_path = store.with_extension("toml");
    std::fs::write(&config_path, config).unwrap();
    let (mut child, addr) = spawn_chatapi(chatapi, &config_path, true).await;
    let base = format!("http://{addr}");

    let (said, _) = timeline(&base, &sentences).await;
    let onsets: Vec<f64> = SAID
        .iter()
        .map(|(at, _, word)| {
            cues(&said)
                .iter()
                .find(|(_, text)| text.to_lowercase().contains(word))
                .map_or(f64::INFINITY, |(start, _)| (start - at).abs())
        })
        .collect();
    let found_cuts = keyframe_cuts(&timeline(&base, &cuts_video).await.0);
    let (slides_timeline, _) = timeline(&base, &slides_video).await;
    let found_slides = keyframe_cuts(&slides_timeline);
    // The floor's pictures (a long slide's, 30 s after the last pick) are no cuts.
    let found_slides: Vec<f64> = found_slides
        .iter()
        .enumerate()
        .filter(|(i, t)| *i == 0 || (**t - found_slides[i - 1] - 30.0).abs() > 1e-6)
        .map(|(_, t)| *t)
        .collect();
    let (talk_timeline, talk_s) = timeline(&base, &talk).await;
    let found_talk = keyframe_cuts(&talk_timeline);
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&store);
    let _ = std::fs::remove_file(&config_path);

    let mut sorted = onsets.clone();
    sorted.sort_by(f64::total_cmp);
    let mut md = format!(
        "# Timeline, {}\n\n| measure | chatapi |\n|---|---|\n\
         | sentence onset error, median / max (4 sentences, silences of 3, 6 and 20 s) | {:.2} s / {:.2} s |\n\
         | cuts video (colour, words, brightness, pattern, fade; grain): recall / precision | {} |\n\
         | slides video (keyframes every 10 s, none at a cut): recall / precision | {} |\n\
         | the talk (a slide every 20 s): recall / precision | {} |\n\
         | the talk, the whole pipeline (speech, cuts, keyframes, OCR, embeddings) | {talk_s:.1} s |\n",
        super::machine(),
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1],
        scored(&found_cuts, &cuts),
        scored(&found_slides, &slides),
        scored(&found_talk, &talk_cuts),
    );
    let mut record = json!({
        "onsets": onsets, "talk_pipeline_s": talk_s, "cuts_video": found_cuts, "slides_cuts": found_slides, "talk_cuts": found_talk,
    });
    if let Some(python) = peers {
        let wav = out.join("talk-16k.wav");
        known::run(
            Command::new("ffmpeg")
                .args(["-y", "-loglevel", "error", "-i"])
                .arg(&talk)
                .args(["-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le"])
                .arg(&wav),
        );
        let started = Instant::now();
        let srt = out.join("talk.srt");
        known::run(
            Command::new(&whisper)
                .args([
                    "--model",
                    "models/ggml-tiny.en-q8_0.bin",
                    "--threads",
                    "2",
                    "--output-srt",
                ])
                .arg(&srt)
                .arg(&wav),
        );
        let ours_s = started.elapsed().as_secs_f64();
        let ours_text: String = std::fs::read_to_string(&srt)
            .unwrap()
            .lines()
            .filter(|l| !l.contains("-->") && l.parse::<u32>().is_err())
            .map(|l| l.to_string() + " ")
            .collect();
        let asked = json!({
            "videos": [
                cuts_video.display().to_string(),
                slides_video.display().to_string(),
                talk.display().to_string(),
            ],
            "wav": wav.display().to_string(),
        });
        // GNU time reports the peers' peak RSS (one process, the detector then the recogniser).
        let peer = Command::new("/usr/bin/time")
            .args(["-f", "peak_kb=%M"])
            .arg(&python)
            .arg("bench/peer/timeline_peers.py")
            .arg(asked.to_string())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&peer.stderr);
        assert!(peer.status.success(), "{stderr}");
        let peer_peak_kb: f64 = stderr
            .lines()
            .find_map(|l| l.strip_prefix("peak_kb="))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(f64::NAN);
        let peer: Value = serde_json::from_slice(&peer.stdout).unwrap();
        let peer_cuts = |video: &Path| -> Vec<f64> {
            peer["cuts"][video.display().to_string()]["cuts"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_f64)
                .collect()
        };
        let greedy = &peer["speech"]["greedy"];
        let peer_talk_s = peer["speech"]["default"]["seconds"]
            .as_f64()
            .unwrap_or(f64::NAN)
            + peer["cuts"][talk.display().to_string()]["seconds"]
                .as_f64()
                .unwrap_or(f64::NAN);
        let default = &peer["speech"]["default"];
        let wer = |text: &str| crate::videos::word_error_rate(&spoken, text) * 100.0;
        md.push_str(&format!(
            "\n| beside it | PySceneDetect ContentDetector / faster-whisper |\n|---|---|\n\
             | cuts video: recall / precision | {} |\n| slides video: recall / precision | {} |\n\
             | the talk: recall / precision | {} |\n\n\
             | speech, the talk's 16 kHz WAV, tiny.en, 2 threads | seconds | word error rate |\n|---|---|---|\n\
             | chatapi-whisper (whisper.cpp Q8_0, greedy, voice-activity pass) | {ours_s:.1} | {:.1} % |\n\
             | faster-whisper greedy (CTranslate2 float32) | {:.1} | {:.1} % |\n\
             | faster-whisper default (beam 5) | {:.1} | {:.1} % |\n\n\
             The peers' peak RSS (ContentDetector, then faster-whisper, one process): {:.0} MiB.\n\n\
             The talk through chatapi's whole pipeline, {talk_s:.1} s, against faster-whisper's defaults \
             and then ContentDetector on it, {peer_talk_s:.1} s: {:.2}× faster.\n",
            scored(&peer_cuts(&cuts_video), &cuts),
            scored(&peer_cuts(&slides_video), &slides),
            scored(&peer_cuts(&talk), &talk_cuts),
            wer(&ours_text),
            greedy["seconds"].as_f64().unwrap_or(f64::NAN),
            wer(greedy["text"].as_str().unwrap_or("")),
            default["seconds"].as_f64().unwrap_or(f64::NAN),
            wer(default["text"].as_str().unwrap_or("")),
            peer_peak_kb / 1024.0,
            peer_talk_s / talk_s,
        ));
        record["peers_peak_rss_kb"] = json!(peer_peak_kb);
        record["peers"] = peer;
        record["chatapi_whisper_s"] = json!(ours_s);
    }
    println!("{md}");
    std::fs::write(out.join("timeline.md"), &md).unwrap();
    std::fs::write(
        out.join("timeline.json"),
        serde_json::to_string_pretty(&record).unwrap(),
    )
    .unwrap();
    true
}

/// "recall / precision" of `found` against `truth`, each match within `CUT_TOLERANCE_S`.
fn scored(found: &[f64], truth: &[f64]) -> String {
    let near = |t: f64, among: &[f64]| among.iter().any(|f| (f - t).abs() <= CUT_TOLERANCE_S);
    let recalled = truth.iter().filter(|t| near(**t, found)).count();
    let right = found.iter().filter(|f| near(**f, truth)).count();
    format!(
        "{:.0} % ({recalled}/{}) / {:.0} % ({right}/{})",
        100.0 * recalled as f64 / truth.len().max(1) as f64,
        truth.len(),
        100.0 * right as f64 / found.len().max(1) as f64,
        found.len()
    )
}

/// Uploads `video`, waits for it, and gives its timeline and the seconds from its upload's
/// answer to `ready` (the whole pipeline).
async fn timeline(base: &str, video: &Path) -> (Value, f64) {
    let id = crate::videos::upload(base, video);
    let uploaded = Instant::now();
    let client = reqwest::Client::new();
    crate::videos::ready(&client, base, &id).await;
    let took = uploaded.elapsed().as_secs_f64();
    let timeline =
        crate::videos::get_json(&client, &format!("{base}/v1/videos/{id}/timeline")).await;
    (timeline, took)
}

fn cues(timeline: &Value) -> Vec<(f64, String)> {
    timeline["segments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["cues"].as_array().cloned().unwrap_or_default())
        .map(|c| {
            (
                c["start_s"].as_f64().unwrap_or(f64::NAN),
                c["text"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The keyframes' times but the first (the start is no cut).
fn keyframe_cuts(timeline: &Value) -> Vec<f64> {
    timeline["keyframes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["time_s"].as_f64())
        .filter(|t| *t > 0.0)
        .collect()
}
