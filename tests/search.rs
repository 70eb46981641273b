//! Search by meaning and by keyword, natively and in each dialect (pymavi, reka-mcp's client,
//! Memories.ai v1.2 by raw HTTP), on a test video whose subtitles say three different things:
//! queries that share no word with a scene still find it; a rare name finds its segment by
//! keyword; a long video's chat is given the moment that answers it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::videos::{self, made, settled};
use common::{client, FakeUpstream, Server};
use reqwest::multipart::Part;
use serde_json::{json, Value};

const KEY: &str = "sk-search";

/// One line per 4-second scene of `made().silent()` (whose scenes also show HELLO WORLD,
/// CHATAPI VIDEO, THIRD SCENE).
const SCENES_SRT: &str = "1\n00:00:00,500 --> 00:00:03,500\nI cycled along the coast on my bike while the waves crashed on the beach.\n\n\
2\n00:00:04,500 --> 00:00:07,500\nThe old steam train puffed slowly up through the mountains and green valleys.\n\n\
3\n00:00:08,500 --> 00:00:11,500\nMy aunt Zenobia baked fresh bread in the kitchen this morning.\n\n";

async fn server(upstream: &FakeUpstream, extra: &str) -> Server {
    let toml = format!(
        "[auth]\nkeys = [\"{KEY}\"]\n[storage]\ndir = \"{}\"\n[videos]\nenabled = true\n\
         speech_binary = \"\"\nspeech_model = \"\"\n{extra}",
        videos::storage().display()
    );
    Server::start(&[upstream], &toml).await
}

/// The scenes video with its subtitles, processed; its id.
async fn scenes(s: &Server) -> String {
    let form = videos::form(
        &made().silent(),
        vec![(
            "subtitles",
            Part::bytes(SCENES_SRT.as_bytes().to_vec()).file_name("scenes.srt"),
        )],
    );
    let r = client()
        .post(format!("{}/v1/videos", s.url))
        .bearer_auth(KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let video: Value = r.json().await.unwrap();
    let id = video["id"].as_str().unwrap().to_string();
    let ready = settled(&s.url, &id, Some(KEY)).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["steps"]["embeddings"]["count"], 3, "{ready}");
    id
}

async fn search(s: &Server, body: Value) -> (u16, Value) {
    let r = client()
        .post(format!("{}/v1/search", s.url))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn first_start(found: &Value) -> f64 {
    found["data"][0]["start_s"].as_f64().unwrap_or(-1.0)
}

#[tokio::test]
async fn meaning_finds_a_scene_that_shares_no_word_with_the_query() {
    let upstream = FakeUpstream::start().await;
    let s = server(&upstream, "").await;
    let id = scenes(&s).await;
    for mode in ["semantic", "hybrid"] {
        let (status, found) = search(
            &s,
            json!({"query": "a two-wheeled ride by the sea", "mode": mode}),
        )
        .await;
        assert_eq!(status, 200, "{found}");
        assert_eq!(first_start(&found), 0.0, "{mode}: {found}");
        let (_, found) = search(
            &s,
            json!({"query": "a locomotive in the hills", "mode": mode, "video_ids": [id]}),
        )
        .await;
        assert_eq!(first_start(&found), 4.0, "{mode}: {found}");
        let hit = &found["data"][0];
        assert_eq!(hit["video_id"], id.as_str());
        assert_eq!(hit["name"], "silent.mp4");
        let score = hit["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score), "{hit}");
        assert!(hit["text"].as_str().unwrap().contains("steam train"));
        // A link a browser shows without the key (signed for this video).
        let keyframe = hit["keyframe_url"].as_str().unwrap();
        assert!(keyframe.contains(".jpg?expires="), "{keyframe}");
        let jpeg = client()
            .get(format!("{}{keyframe}", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(jpeg.status(), 200, "{keyframe}");
    }
    // By keyword there is no such word: nothing.
    let (_, found) = search(
        &s,
        json!({"query": "a locomotive in the hills", "mode": "text"}),
    )
    .await;
    assert_eq!(found["data"], json!([]), "{found}");
}

#[tokio::test]
async fn a_rare_name_is_found_by_keyword_and_deleting_the_video_forgets_it() {
    let upstream = FakeUpstream::start().await;
    let s = server(&upstream, "").await;
    let id = scenes(&s).await;
    for mode in ["text", "hybrid"] {
        let (status, found) = search(&s, json!({"query": "Zenobia", "mode": mode})).await;
        assert_eq!(status, 200, "{found}");
        assert_eq!(first_start(&found), 8.0, "{mode}: {found}");
    }
    let r = client()
        .delete(format!("{}/v1/videos/{id}", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for (query, mode) in [
        ("Zenobia", "text"),
        ("a two-wheeled ride by the sea", "semantic"),
    ] {
        let (_, found) = search(&s, json!({"query": query, "mode": mode})).await;
        assert_eq!(found["data"], json!([]), "{mode} after delete: {found}");
    }
}

#[tokio::test]
async fn bad_searches_are_refused_naming_the_problem_in_each_dialect() {
    let upstream = FakeUpstream::start().await;
    let dir = videos::storage().join("recogniser");
    let slow = videos::SlowRecogniser::new(&dir);
    let toml = format!(
        "[auth]\nkeys = [\"{KEY}\"]\n[storage]\ndir = \"{}\"\n[videos]\nenabled = true\n{}",
        videos::storage().display(),
        slow.toml()
    );
    let s = Server::start(&[&upstream], &toml).await;
    let r = client()
        .post(format!("{}/v1/videos", s.url))
        .bearer_auth(KEY)
        .multipart(videos::form(&made().speech(), vec![]))
        .send()
        .await
        .unwrap();
    let busy: Value = r.json().await.unwrap();
    let busy = busy["id"].as_str().unwrap().to_string();
    videos::appears(&slow.pid).await;

    let post = |path: &str, body: Value| {
        let base = s.url.clone();
        let path = path.to_string();
        async move { videos::post_json(&base, &path, KEY, &body).await }
    };
    let native = [
        (json!({"query": "  "}), 400, "query"),
        (json!({"query": "x", "limit": 0}), 400, "limit"),
        (json!({"query": "x", "limit": 100000}), 400, "limit"),
        (json!({"query": "x", "mode": "fuzzy"}), 400, "mode"),
        (json!({"query": "x", "threshold": 2}), 400, "threshold"),
        (
            json!({"query": "x", "video_ids": ["vid_nope"]}),
            404,
            "vid_nope",
        ),
        (
            json!({"query": "x", "video_ids": [busy]}),
            409,
            "processing",
        ),
    ];
    for (body, status, named) in native {
        let (got, answer) = post("/v1/search", body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(answer.to_string().contains(named), "{body}: {answer}");
    }
    let (got, answer) = post(
        "/api/serve/video/searchAI",
        json!({"searchValue": "", "limit": null}),
    )
    .await;
    assert_eq!(
        (got, answer["code"].as_str()),
        (400, Some("0001")),
        "{answer}"
    );
    let (got, answer) = post(
        "/api/serve/video/searchVideoFragment",
        json!({"searchValue": "x", "videoNos": [busy]}),
    )
    .await;
    assert_eq!(got, 409, "{answer}");
    assert!(answer["msg"].as_str().unwrap().contains("processing"));
    let (got, answer) = post("/v2/search", json!({"query": "x", "threshold": 0.5})).await;
    assert_eq!(got, 400, "{answer}");
    assert_eq!(
        answer["error"]["param"], "body",
        "a number is not a threshold word: {answer}"
    );
    let (got, answer) = post("/v2/search", json!({"query": "x", "page_limit": 51})).await;
    assert_eq!(
        (got, answer["error"]["param"].as_str()),
        (400, Some("page_limit")),
        "{answer}"
    );
    let (got, answer) = post(
        "/v2/search",
        json!({"query": "x", "video_ids": ["vid_nope"]}),
    )
    .await;
    assert_eq!(
        (got, answer["error"]["type"].as_str()),
        (404, Some("not_found_error")),
        "{answer}"
    );
    let (got, answer) = post(
        "/serve/api/v1/search",
        json!({"search_param": "x", "top_k": 0}),
    )
    .await;
    assert_eq!(
        (got, answer["failed"].as_bool()),
        (400, Some(true)),
        "{answer}"
    );
    std::fs::remove_file(&slow.hold).unwrap();
}

async fn client_script(args: &[&str]) -> Value {
    common::client_script(".venv-video-clients", "video_dialects.py", args).await
}

#[tokio::test]
async fn pymavi_reka_mcp_and_memories_search_by_meaning() {
    let upstream = FakeUpstream::start().await;
    let s = server(&upstream, "").await;
    let id = scenes(&s).await;

    let mavi = client_script(&["mavi_search", &s.url, KEY, &id]).await;
    let clip = &mavi["clips"][0];
    assert_eq!(clip["videoNo"], id.as_str(), "{mavi}");
    // Seconds, as strings (pymavi's docstring says epoch milliseconds; the vendor sends seconds).
    assert_eq!(clip["fragmentStartTime"], "4", "{mavi}");
    assert_eq!(clip["fragmentEndTime"], "8", "{mavi}");
    assert_eq!(clip["duration"], "12");

    let reka = client_script(&["reka_search", &s.url, KEY, &id]).await;
    let first = &reka["hits"][0];
    assert_eq!(first["video_id"], id.as_str(), "{reka}");
    assert_eq!(first["start"], 0.0, "{reka}");
    assert_eq!(first["rank"], 1);
    assert!(first["transcript"].as_str().unwrap().contains("bike"));
    assert_eq!(reka["in_one"][0]["start"], 4.0, "{reka}");

    let r: Value = client()
        .post(format!("{}/serve/api/v1/search", s.url))
        .header("Authorization", KEY)
        .json(&json!({"search_param": "baking at home", "search_type": "BY_VIDEO", "top_k": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["code"], "0000", "{r}");
    assert_eq!(r["data"][0]["startTime"], "8", "{r}");
    assert_eq!(r["data"][0]["videoNo"], id.as_str());

    // reka-mcp's pipelines wait for embeddings: they are ready.
    let video: Value = client()
        .get(format!("{}/v2/videos/{id}", s.url))
        .header("X-Api-Key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(video["features"]["embeddings"], "ready", "{video}");
}

/// A 30-minute video: black to 21:40, white after (a cut the scene detection sees), subtitles every 20 s saying nothing
/// much, except at 21:40.
fn long_talk(dir: &Path) -> (PathBuf, String) {
    let video = dir.join("long-talk.mp4");
    if !video.exists() {
        let out = Command::new("ffmpeg")
            .args(["-y", "-loglevel", "error"])
            .args(["-f", "lavfi", "-i", "color=c=black:s=160x90:d=1300:r=1"])
            .args(["-f", "lavfi", "-i", "color=c=white:s=160x90:d=500:r=1"])
            .args([
                "-filter_complex",
                "[0:v][1:v]concat=n=2:v=1:a=0[v]",
                "-map",
                "[v]",
            ])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
            ])
            .arg(&video)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut srt = String::new();
    for (n, start) in (0..1800).step_by(20).enumerate() {
        let text = if start == 1300 {
            "The treasure is buried under the old oak tree by the lighthouse.".to_string()
        } else {
            format!("Here we go over routine item number {n} of the quarterly agenda once more.")
        };
        let stamp = |s: u32| format!("{:02}:{:02}:{:02},000", s / 3600, s / 60 % 60, s % 60);
        srt += &format!(
            "{}\n{} --> {}\n{text}\n\n",
            n + 1,
            stamp(start),
            stamp(start + 15)
        );
    }
    (video, srt)
}

#[tokio::test]
async fn a_long_videos_chat_is_given_the_moment_that_answers_it() {
    let upstream = FakeUpstream::start().await;
    let s = server(
        &upstream,
        "ocr = false\n[video_chat]\ntimeline_tokens = 600\n",
    )
    .await;
    let (file, srt) = long_talk(&made().dir);
    let form = videos::form(
        &file,
        vec![(
            "subtitles",
            Part::bytes(srt.into_bytes()).file_name("talk.srt"),
        )],
    );
    let r = client()
        .post(format!("{}/v1/videos", s.url))
        .bearer_auth(KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let video: Value = r.json().await.unwrap();
    let id = video["id"].as_str().unwrap().to_string();
    let ready = settled(&s.url, &id, Some(KEY)).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    // Asked in other words than the subtitle's.
    let r = client()
        .post(format!("{}/v2/chat", s.url))
        .header("X-Api-Key", KEY)
        .json(&json!({
            "messages": [{"role": "user", "content": "Where is the hidden gold?"}],
            "context": [{"video_id": id}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let given: String = upstream.received()[0].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "system")
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect();
    assert!(
        given.contains("[21:40] said: \"The treasure is buried"),
        "{given}"
    );
    assert!(given.contains('…'), "cut to the budget: {given}");
    assert!(given.len() < 6000, "{}", given.len());
}
