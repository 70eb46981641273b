//! A timeline true to the second: sentences spoken at known moments, with silences of different
//! lengths between them (one of twenty seconds), recognised by the real speech-to-text program;
//! each cue must start within half a second of its sentence, nothing may be heard in the
//! silence, and a time range must give exactly the words said inside it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::videos::{self, settled};
use common::{client, Server};
use serde_json::Value;

const KEY: &str = "sk-timeline";

/// When each sentence starts, and a word of it the recogniser reliably hears.
const SAID: [(f64, &str, &str); 4] = [
    (1.0, "Welcome to the garden tour.", "garden"),
    (
        6.0,
        "Today we plant tomatoes in the sunny corner.",
        "tomatoes",
    ),
    (15.0, "The bicycle is parked beside the red barn.", "parked"),
    (
        40.0,
        "Finally we water the flowers before sunset.",
        "sunset",
    ),
];
const LENGTH_S: f64 = 48.0;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The sentences at their moments over a plain picture, made once per test process.
fn talk() -> PathBuf {
    static MADE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    MADE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("chatapi-timeline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut mix = Command::new("ffmpeg");
        mix.args(["-y", "-loglevel", "error", "-f", "lavfi", "-i"])
            .arg(format!("color=c=0x204060:s=320x180:r=10:d={LENGTH_S}"));
        let mut filters = Vec::new();
        for (i, (at, sentence, _)) in SAID.iter().enumerate() {
            let wav = dir.join(format!("s{i}.wav"));
            run(Command::new("espeak-ng")
                .args(["-v", "en-us", "-s", "150", "-w"])
                .arg(&wav)
                .arg(sentence));
            mix.arg("-i").arg(&wav);
            let ms = (at * 1000.0) as u64;
            filters.push(format!("[{}:a]adelay={ms}|{ms}[a{i}]", i + 1));
        }
        let inputs: String = (0..SAID.len()).map(|i| format!("[a{i}]")).collect();
        filters.push(format!(
            "{inputs}amix=inputs={}:normalize=0,apad=whole_dur={LENGTH_S}[a]",
            SAID.len()
        ));
        let file = dir.join("talk.mp4");
        mix.args([
            "-filter_complex",
            &filters.join(";"),
            "-map",
            "0:v",
            "-map",
            "[a]",
        ])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"])
        .args(["-t", &LENGTH_S.to_string()])
        .arg(&file);
        run(&mut mix);
        file
    })
    .clone()
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
    let (_, r) = videos::upload(&s.url, KEY, &talk()).await;
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

/// Scenes and the words on each; where each starts. Between them every kind of cut: colour only
/// (red to a green of about the same brightness), words only (the same green), brightness and
/// hue, a pattern, and a fade through black; film grain over all of it.
const SCENES: [(f64, &str); 6] = [
    (0.0, "ALPHA"),
    (4.0, "BRAVO"),
    (8.0, "CHARLIE"),
    (12.0, "DELTA"),
    (16.0, "ECHO"),
    (22.0, "FOXTROT"),
];

fn cuts_video() -> PathBuf {
    static MADE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    MADE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("chatapi-cuts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let font = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf";
        let text = |t: &str| {
            format!(
                "drawtext=fontfile={font}:text='{t}':fontsize=56:fontcolor=white:x=(w-text_w)/2:y=(h-text_h)/2"
            )
        };
        let size = "s=640x360:r=25";
        let inputs = [
            format!("color=c=0xC03030:{size}:d=4,{}", text("ALPHA")),
            format!("color=c=0x309630:{size}:d=4,{}", text("BRAVO")),
            format!("color=c=0x309630:{size}:d=4,{}", text("CHARLIE")),
            format!("color=c=0x404080:{size}:d=4,{}", text("DELTA")),
            // Colour bars above, the words on a plain band below (tesseract reads no words
            // laid over a pattern).
            format!(
                "smptebars=s=640x200:r=25:d=5,pad=640:360:0:0:color=0x303030,drawtext=fontfile={font}:text='ECHO':fontsize=56:fontcolor=white:x=(w-text_w)/2:y=260,fade=t=out:st=4:d=1"
            ),
            format!("color=c=black:{size}:d=1"),
            format!("color=c=0x2050C0:{size}:d=5,{},fade=t=in:st=0:d=1", text("FOXTROT")),
        ];
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-y", "-loglevel", "error"]);
        for input in &inputs {
            cmd.args(["-f", "lavfi", "-i", input]);
        }
        let streams: String = (0..inputs.len()).map(|i| format!("[{i}:v]")).collect();
        let file = dir.join("cuts.mp4");
        cmd.args([
            "-filter_complex",
            &format!(
                "{streams}concat=n={}:v=1:a=0,format=yuv420p,noise=alls=10:allf=t+u[v]",
                inputs.len()
            ),
            "-map",
            "[v]",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .arg(&file);
        run(&mut cmd);
        file
    })
    .clone()
}

#[tokio::test]
async fn every_kind_of_cut_is_seen_and_each_scene_read_in_its_own_segment() {
    let store = videos::storage();
    let toml = format!(
        "[auth]\nkeys = [\"{KEY}\"]\n[storage]\ndir = \"{}\"\n[videos]\nenabled = true\n\
         speech_binary = \"\"\nspeech_model = \"\"\nembedding_model = \"\"\n",
        store.display()
    );
    let s = Server::start(&[], &toml).await;
    let (_, r) = videos::upload(&s.url, KEY, &cuts_video()).await;
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
}
