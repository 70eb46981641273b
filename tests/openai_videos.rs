//! A video in an OpenAI request: `video_url` parts in `/v1/chat/completions`, `input_video` in
//! `/v1/responses` and Mavera's `/api/v1/responses`, driven by the real clients (the openai SDK,
//! LiteLLM's SDK; `tests/clients/openai_videos.py`), grounded and cited as in the video
//! dialects; a link added to the library and waited for; and every refusal, with nothing sent
//! upstream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::videos::{self, file_server, get_json, made, settled, upload};
use common::{client_script, FakeUpstream, Reply, Server, Unanswering};
use serde_json::Value;

const KEY: &str = "sk-door";
const ACME: &str = "k-acme";
const ANSWER: &str = "They plant tomatoes at [00:04], after the welcome.";

async fn server(upstream: &FakeUpstream, extra: &str) -> Server {
    let toml = format!(
        "[auth]\nkeys = [\"{KEY}\", {{ key = \"{ACME}\", tenant = \"acme\" }}]\n\
         [storage]\ndir = \"{}\"\n[video_chat]\n{extra}\n[videos]\nenabled = true\n\
         allow_private_urls = true\nspeech_binary = \"\"\nspeech_model = \"\"\n",
        videos::storage().display()
    );
    Server::start(&[upstream], &toml).await
}

async fn scenario(s: &Server, name: &str, video: &str, arg: Option<&str>) -> Value {
    let mut args = vec![name, s.url.as_str(), KEY, video];
    args.extend(arg);
    client_script(".venv-clients", "openai_videos.py", &args).await
}

/// The grounding the upstream was given for its `nth` request: its system messages.
fn grounding(upstream: &FakeUpstream, nth: usize) -> String {
    upstream.received()[nth].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "system")
        .map(|m| m["content"].as_str().unwrap().to_string() + "\n")
        .collect()
}

async fn ready_video(s: &Server, key: &str) -> String {
    let (status, video) = upload(&s.url, key, &made().with_track()).await;
    assert_eq!(status, 202, "{video}");
    let id = video["id"].as_str().unwrap().to_string();
    assert_eq!(settled(&s.url, &id, Some(key)).await["status"], "ready");
    id
}

#[tokio::test]
async fn the_sdks_ask_about_a_video_streamed_and_whole_and_get_its_stamps() {
    let upstream = FakeUpstream::start().await;
    upstream.set_default(Reply::text(&[
        "They plant tomatoes ",
        "at [00:04], after the welcome.",
    ]));
    let s = server(&upstream, "").await;
    let id = ready_video(&s, KEY).await;
    let media = get_json(&s.url, &format!("/v1/videos/{id}"), KEY).await;
    let own_url = format!("{}{}", s.url, media["media_url"].as_str().unwrap());
    for (name, arg) in [
        ("chat_whole", None),
        ("chat_stream", None),
        ("chat_by_url", Some(own_url.as_str())),
        ("responses_whole", None),
        ("responses_stream", None),
        ("mavera_responses", None),
        ("litellm_chat", None),
    ] {
        let before = upstream.received().len();
        let out = scenario(&s, name, &id, arg).await;
        assert_eq!(out["text"], ANSWER, "{name}: {out}");
        if name == "litellm_chat" {
            assert_eq!(out["streamed"], ANSWER, "{name}: {out}");
        }
        // Grounded in the video's timeline, stamped, through the core.
        let grounding = grounding(&upstream, before);
        assert!(
            grounding.contains("[00:04]") && grounding.contains("tomatoes"),
            "{name}: {grounding}"
        );
        if name == "chat_stream" {
            // Asked about 5 s to 7 s: only the scene from 4 s to 8 s, not the welcome before it.
            assert!(
                !grounding.contains("Welcome to the garden tour"),
                "{grounding}"
            );
            assert!(
                grounding.contains("asked about [00:05] to [00:07]"),
                "{grounding}"
            );
        }
    }
    // A stamp the timeline does not have is corrected on its way back, as in the dialects.
    upstream.push(Reply::text(&["The tomatoes come at [07:59]."]));
    let out = scenario(&s, "chat_whole", &id, None).await;
    assert!(!out["text"].as_str().unwrap().contains("[07:59]"), "{out}");
}

#[tokio::test]
async fn two_videos_in_one_request_are_both_grounded() {
    let upstream = FakeUpstream::start().await;
    upstream.set_default(Reply::text(&[ANSWER]));
    let s = server(&upstream, "").await;
    let first = ready_video(&s, KEY).await;
    let (_, second) = upload(&s.url, KEY, &made().silent()).await;
    let second = second["id"].as_str().unwrap().to_string();
    settled(&s.url, &second, Some(KEY)).await;
    let out = scenario(&s, "chat_two", &first, Some(&second)).await;
    assert_eq!(out["text"], ANSWER, "{out}");
    let grounding = grounding(&upstream, 0);
    assert!(
        grounding.contains("with-track.mp4") && grounding.contains("silent.mp4"),
        "{grounding}"
    );
}

#[tokio::test]
async fn a_link_is_added_once_and_answered_when_ready() {
    let upstream = FakeUpstream::start().await;
    upstream.set_default(Reply::text(&[ANSWER]));
    let s = server(&upstream, "").await;
    let link = format!("{}/video.mp4", file_server(made().with_track()).await);
    for _ in 0..2 {
        let out = scenario(&s, "chat_whole", &link, None).await;
        assert_eq!(out["text"], ANSWER, "{out}");
    }
    let listed = get_json(&s.url, "/v1/videos", KEY).await;
    let data = listed["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "asked twice, added once: {listed}");
    assert_eq!(data[0]["source"]["url"], link.as_str());
}

#[tokio::test]
async fn a_link_still_processing_past_the_wait_names_the_new_video() {
    let upstream = FakeUpstream::start().await;
    let s = server(&upstream, "link_wait = \"1s\"").await;
    let never = Unanswering::start();
    let link = never.base_url.replace("/v1", "/talk.mp4");
    let out = scenario(&s, "refused_link", &link, None).await;
    assert_eq!(out["status"], 409, "{out}");
    assert_eq!(out["code"], "video_not_ready", "{out}");
    let message = out["message"].as_str().unwrap();
    assert!(message.contains("vid_"), "{message}");
    assert!(upstream.received().is_empty(), "nothing went upstream");
}

#[tokio::test]
async fn refusals_name_the_problem_and_send_nothing_upstream() {
    let upstream = FakeUpstream::start().await;
    upstream.set_default(Reply::text(&[ANSWER]));
    let s = server(&upstream, "").await;
    let mine = ready_video(&s, KEY).await;
    let theirs = ready_video(&s, ACME).await;
    let out = scenario(&s, "refused", &mine, Some(&theirs)).await;
    let expect = [
        ("missing", 404, "not_found", None),
        ("other_tenant", 404, "not_found", None),
        (
            "image",
            400,
            "invalid_request",
            Some("messages[0].content[2].type"),
        ),
        (
            "audio",
            400,
            "invalid_request",
            Some("messages[0].content[1].type"),
        ),
        (
            "backwards",
            400,
            "invalid_request",
            Some("messages[0].content[1].video_url.end"),
        ),
        (
            "negative",
            400,
            "invalid_request",
            Some("messages[0].content[1].video_url.start"),
        ),
        (
            "not_a_video",
            400,
            "invalid_request",
            Some("messages[0].content[1].video_url"),
        ),
        ("too_many", 400, "invalid_request", Some("messages")),
        (
            "on_system",
            400,
            "invalid_request",
            Some("messages[0].content[0].type"),
        ),
        (
            "huge_url",
            400,
            "invalid_request",
            Some("messages[0].content[1].video_url"),
        ),
    ];
    for (name, status, code, param) in expect {
        let got = &out[name];
        assert_eq!(got["status"], status, "{name}: {got}");
        assert_eq!(got["code"], code, "{name}: {got}");
        if let Some(param) = param {
            assert_eq!(got["param"], param, "{name}: {got}");
        }
        assert!(
            !got["message"].as_str().unwrap().is_empty(),
            "{name}: {got}"
        );
    }
    assert!(upstream.received().is_empty(), "nothing went upstream");
}
