//! A timeline true to the second: sentences spoken at known moments, with silences of different
//! lengths between them (one of twenty seconds), recognised by the real speech-to-text program;
//! each cue must start within half a second of its sentence, nothing may be heard in the
//! silence, and a time range must give exactly the words said inside it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use common::known::{self, SAID, SCENES, SLIDES};
use common::videos::{self, settled};
use common::{client, Server};
use serde_json::Value;

const KEY: &str = "sk-timeline";

/// The test videos, made once per test process (one at a time: tests run side by side).
fn made(video: fn(&std::path::Path) -> PathBuf) -> PathBuf {
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = MAKING.lock().unwrap();
    let dir = std::env::temp_dir().join(format!("chatapi-timeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    video(&dir)
}

async fn processed() -> (Server, String) {
    let store = videos::storage();
    let toml = format!(
        "[auth]\nkeys = [\"{KEY}\"]\n[storage]\ndir = \"{}\"\n[videos]\nenabled = true\n\
         ocr = false\nembedding_model = \"\"\n{}",
        store.display(),
        videos::whisper_config()
    );
    let s = Server::start(&[], &toml).await;
    let (_, r) = videos::upload(&s.url, KEY, &made(known::sentences)).await;
    let id = r["id"].as_str().unwrap().to_string();
    let v = settled(&s.url, &id, Some(KEY)).await;
    assert_eq!(v["status"], "ready", "{v}");
    (s, id)
}

async fn get(s: &Server, path: &str) -> Value {
    client()
        .get(format!("{}{path}", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn each_sentence_is_placed_where_it_is_said() {
    let (s, id) = processed().await;
    let timeline = get(&s, &format!("/v1/videos/{id}/timeline")).await;
    let segments = timeline["segments"].as_array().unwrap();
    let cues: Vec<(f64, f64, String)> = segments
        .iter()
        .flat_map(|seg| seg["cues"].as_array().unwrap().clone())
        .map(|c| {
            (
                c["start_s"].as_f64().unwrap(),
                c["end_s"].as_f64().unwrap(),
                c["text"].as_str().unwrap().to_lowercase(),
            )
        })
        .collect();
    for (at, _, word) in SAID {
        let cue = cues
            .iter()
            .find(|(_, _, text)| text.contains(word))
            .unwrap_or_else(|| panic!("no cue says {word:?}: {cues:?}"));
        assert!(
            (cue.0 - at).abs() <= 0.5,
            "{word:?} said at {at} s, its cue starts at {} s: {cues:?}",
            cue.0
        );
        // The segment that holds the moment holds the sentence.
        let holder = segments
            .iter()
            .find(|seg| {
                seg["start_s"].as_f64().unwrap() <= at + 0.5
                    && at + 0.5 < seg["end_s"].as_f64().unwrap()
            })
            .unwrap();
        let said = holder["transcript"].as_str().unwrap().to_lowercase();
        assert!(
            said.contains(word),
            "{word:?} not in the segment of {at} s: {holder}"
        );
    }
    // Nothing is heard in the twenty silent seconds.
    for (start, end, text) in &cues {
        assert!(
            *end <= 19.5 || *start >= 39.5,
            "heard {text:?} at {start}-{end} s, in the silence"
        );
    }
    assert_eq!(cues.len(), SAID.len(), "{cues:?}");
}

#[tokio::test]
async fn a_range_gives_the_words_said_inside_it() {
    let (s, id) = processed().await;
    let listed = get(&s, &format!("/v2/videos/{id}/transcript?start=5&end=20")).await;
    let text: String = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["text"].as_str().unwrap().to_lowercase() + " ")
        .collect();
    assert!(
        text.contains("tomatoes") && text.contains("parked"),
        "{listed}"
    );
    assert!(
        !text.contains("garden") && !text.contains("sunset"),
        "{listed}"
    );
}

#[tokio::test]
async fn every_kind_of_cut_is_seen_and_each_scene_read_in_its_own_segment() {
    let store = videos::storage();
    let toml = format!(
        "[auth]\nkeys = [\"{KEY}\"]\n[storage]\ndir = \"{}\"\n[videos]\nenabled = true\n\
         speech_binary = \"\"\nspeech_model = \"\"\n",
        store.display()
    );
    let s = Server::start(&[], &toml).await;
    let (_, r) = videos::upload(&s.url, KEY, &made(known::cuts)).await;
    let id = r["id"].as_str().unwrap().to_string();
    let v = settled(&s.url, &id, Some(KEY)).await;
    assert_eq!(v["status"], "ready", "{v}");
    let timeline = get(&s, &format!("/v1/videos/{id}/timeline")).await;
    let found: Vec<f64> = timeline["keyframes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["time_s"].as_f64().unwrap())
        .collect();
    assert_eq!(found.len(), SCENES.len(), "cuts at {found:?}");
    for ((at, word), time) in SCENES.iter().zip(&found) {
        assert!(
            (time - at).abs() <= 0.4,
            "the cut to {word} at {at} s found at {time} s: {found:?}"
        );
        let segment = timeline["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|seg| (seg["start_s"].as_f64().unwrap() - time).abs() < 1e-6)
            .unwrap();
        let read = segment["on_screen_text"].as_str().unwrap();
        assert!(
            read.contains(word),
            "{word} not read in its scene's segment: {segment}"
        );
    }
    // Search by meaning lands on the scene that shows the thing, in words it does not use.
    for (query, word) in [
        ("a musical instrument with black and white keys", "PIANO"),
        ("lava pouring from an erupting mountain", "VOLCANO"),
        ("shelves of books to borrow and read", "LIBRARY"),
        ("a spacecraft launching into orbit", "ROCKET"),
    ] {
        let found: Value = client()
            .post(format!("{}/v1/search", s.url))
            .bearer_auth(KEY)
            .json(&serde_json::json!({"query": query, "mode": "semantic"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let at = SCENES.iter().find(|(_, w)| *w == word).unwrap().0;
        let hit = &found["data"][0];
        let start = hit["start_s"].as_f64().unwrap_or(-1.0);
        assert!(
            (start - at).abs() <= 0.4 && hit["text"].as_str().unwrap_or("").contains(word),
            "{query:?} should find {word} at {at} s: {found}"
        );
    }
}

#[tokio::test]
async fn cuts_between_far_keyframes_are_placed_decoding_only_what_changed() {
    let store = videos::storage();
    let toml = format!(
        "[auth]\nkeys = [\"{KEY}\"]\n[storage]\ndir = \"{}\"\n[videos]\nenabled = true\n\
         speech_binary = \"\"\nspeech_model = \"\"\nembedding_model = \"\"\n",
        store.display()
    );
    let s = Server::start(&[], &toml).await;
    let (_, r) = videos::upload(&s.url, KEY, &made(known::slides)).await;
    let id = r["id"].as_str().unwrap().to_string();
    let v = settled(&s.url, &id, Some(KEY)).await;
    assert_eq!(v["status"], "ready", "{v}");
    let timeline = get(&s, &format!("/v1/videos/{id}/timeline")).await;
    // The floor adds a picture every 30 s of a long scene; the cuts are the slides' starts.
    let segments = timeline["segments"].as_array().unwrap();
    for (at, word) in SLIDES {
        let segment = segments
            .iter()
            .find(|seg| (seg["start_s"].as_f64().unwrap() - at).abs() <= 0.4)
            .unwrap_or_else(|| panic!("no cut to {word} at {at} s: {timeline}"));
        let read = segment["on_screen_text"].as_str().unwrap();
        assert!(read.contains(word), "{word} not read at its cut: {segment}");
    }
    // Any other start is the floor's: 30 s after the one before.
    let starts: Vec<f64> = segments
        .iter()
        .map(|g| g["start_s"].as_f64().unwrap())
        .collect();
    for pair in starts.windows(2) {
        let slide = SLIDES.iter().any(|(at, _)| (pair[1] - at).abs() <= 0.4);
        let floor = (pair[1] - pair[0] - 30.0).abs() < 1e-6;
        assert!(slide || floor, "a cut where there is none: {starts:?}");
    }
    let note = v["steps"]["keyframes"]["note"].as_str().unwrap();
    let share: f64 = note
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap();
    assert!(share < 60.0, "{note}");
}
