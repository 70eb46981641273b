//! The library as tools for agents: `/mcp` (Streamable HTTP) and `chatapi mcp --stdio`, driven
//! by the official MCP Python SDK (`tests/clients/mcp_client.py`): every tool, progress while an
//! answer streams and while a video processes, cancellation stopping the upstream as a hang-up
//! does, the timelines as resources, and each refusal (bad arguments per tool, another
//! tenant's video, a wrong key) with the sentence the HTTP API gives.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::videos::{self, file_server, made, settled, upload};
use common::{client_script, FakeUpstream, Reply, Server, Step};
use serde_json::{json, Value};

const KEY: &str = "sk-agent";
const ACME: &str = "k-acme";
const PIECES: [&str; 3] = ["They plant tomatoes ", "at [00:04], ", "after the welcome."];

async fn server(upstream: &FakeUpstream) -> Server {
    server_with(upstream, "").await
}

async fn server_with(upstream: &FakeUpstream, extra: &str) -> Server {
    let toml = format!(
        "[auth]\nkeys = [\"{KEY}\", {{ key = \"{ACME}\", tenant = \"acme\" }}]\n\
         [storage]\ndir = \"{}\"\n[videos]\nenabled = true\n\
         allow_private_urls = true\nspeech_binary = \"\"\nspeech_model = \"\"\n{extra}",
        videos::storage().display()
    );
    Server::start(&[upstream], &toml).await
}

/// A raw POST to `/mcp`, as a client that is not the SDK sends it.
async fn post_mcp(s: &Server, headers: &[(&str, &str)], body: String) -> (u16, String) {
    let mut request = common::client()
        .post(format!("{}/mcp", s.url))
        .bearer_auth(KEY)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn initialize() -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}})
    .to_string()
}

/// The answer in pieces, a beat apart, so each arrives as its own progress notification.
fn streamed_answer() -> Reply {
    let mut steps = Vec::new();
    for piece in PIECES {
        steps.push(Step::Text(piece.to_string()));
        steps.push(Step::Delay(Duration::from_millis(30)));
    }
    Reply::Stream(steps)
}

async fn ready_video(s: &Server, key: &str) -> String {
    let (status, video) = upload(&s.url, key, &made().with_track()).await;
    assert_eq!(status, 202, "{video}");
    let id = video["id"].as_str().unwrap().to_string();
    assert_eq!(settled(&s.url, &id, Some(key)).await["status"], "ready");
    id
}

/// The progress notifications an answer came in: one per piece the upstream sent (the stamp
/// check holds a piece's trailing space for the next), together the answer.
fn assert_streamed(progress: &Value, answer: &str) {
    let pieces: Vec<&str> = progress
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["message"].as_str().unwrap())
        .collect();
    assert_eq!(pieces.len(), PIECES.len(), "{progress}");
    assert_eq!(pieces.concat(), answer, "{progress}");
}

async fn scenario(name: &str, mode: &str, target: &str, key: &str, args: &[&str]) -> Value {
    let mut all = vec![name, mode, target, key];
    all.extend_from_slice(args);
    client_script(".venv-clients", "mcp_client.py", &all).await
}

#[tokio::test]
async fn every_tool_through_the_sdk_with_progress_and_the_timelines_as_resources() {
    let upstream = FakeUpstream::start().await;
    upstream.set_default(streamed_answer());
    let s = server(&upstream).await;
    let video = ready_video(&s, KEY).await;
    let link = format!("{}/video.mp4", file_server(made().with_track()).await);
    for mode in ["auto", "legacy"] {
        let before = upstream.received().len();
        let out = scenario("tour", mode, &s.url, KEY, &[&video, &link]).await;
        let tools = out["tools"].as_object().unwrap();
        let mut names: Vec<&str> = tools.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "add_video_from_url",
                "ask_about_videos",
                "delete_video",
                "get_transcript",
                "list_videos",
                "search_videos",
                "video_status"
            ],
            "{mode}"
        );
        for (name, tool) in tools {
            assert!(
                tool["description"].as_str().unwrap().len() > 40,
                "{name}: {tool}"
            );
            assert_eq!(tool["schema"]["type"], "object", "{name}: {tool}");
        }
        assert!(tools["delete_video"]["destructive"].as_bool().unwrap());
        assert!(tools["search_videos"]["read_only"].as_bool().unwrap());
        assert_eq!(
            tools["ask_about_videos"]["schema"]["required"],
            json!(["question", "video_ids"])
        );

        // The library as the native API gives it, links made absolute.
        let listed = &out["list"]["json"]["data"];
        assert!(
            listed
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["id"] == video.as_str()),
            "{out}"
        );
        let status = &out["status"]["json"];
        assert_eq!(status["status"], "ready");
        assert!(
            status["media_url"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{}/v1/videos/{video}/media", s.url)),
            "{status}"
        );
        let moment = &out["search"]["json"]["data"][0];
        assert_eq!(moment["video_id"], video.as_str(), "{out}");
        assert_eq!(moment["stamp"], "[00:04]", "{moment}");
        assert!(
            moment["text"].as_str().unwrap().contains("tomatoes"),
            "{moment}"
        );
        assert!(
            moment["keyframe_url"]
                .as_str()
                .unwrap()
                .starts_with("http://"),
            "{moment}"
        );

        // The answer streamed: one progress notification per piece, in order, then the whole
        // answer with the moment it cites, in the video it stood on.
        let answer = PIECES.concat();
        assert_eq!(out["ask"]["text"], answer.as_str(), "{mode}: {out}");
        assert!(!out["ask"]["error"].as_bool().unwrap());
        assert_eq!(
            out["ask"]["json"]["citations"],
            json!([{"stamp": "[00:04]", "start_s": 4.0, "video_id": video}])
        );
        assert_streamed(&out["ask_progress"], &answer);
        let steps: Vec<f64> = out["ask_progress"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["progress"].as_f64().unwrap())
            .collect();
        assert!(steps.windows(2).all(|w| w[1] > w[0]), "{steps:?}");
        // Grounded in the video's timeline, through the core: the question and the stamps.
        let asked = &upstream.received()[before].body;
        let prompt = asked["messages"].to_string();
        assert!(prompt.contains("Today we plant tomatoes"), "{prompt}");
        assert!(
            prompt.contains("When are the tomatoes planted?"),
            "{prompt}"
        );
        // The range left the welcome out.
        let ranged = upstream.received()[before + 1].body["messages"].to_string();
        assert!(ranged.contains("Today we plant tomatoes"), "{ranged}");
        assert!(!ranged.contains("Welcome to the garden tour"), "{ranged}");

        // The transcript, cue by cue, whole and between two moments.
        let transcript = out["transcript"]["text"].as_str().unwrap();
        assert_eq!(
            transcript,
            "[00:00] Welcome to the garden tour\n[00:04] Today we plant tomatoes\n[00:08] and water the flowers\n"
        );
        assert_eq!(
            out["transcript_range"]["text"],
            "[00:04] Today we plant tomatoes\n"
        );
        assert_eq!(out["transcript_range"]["json"]["truncated"], false);

        // Every ready video's timeline is a resource; reading one gives the native timeline.
        let uri = format!("chatapi://videos/{video}/timeline");
        assert!(
            out["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["uri"] == uri.as_str() && r["mime"] == "application/json"),
            "{out}"
        );
        assert_eq!(
            out["templates"],
            json!(["chatapi://videos/{video_id}/timeline"])
        );
        assert_eq!(out["timeline"]["video_id"], video.as_str());
        assert!(out["timeline"]["segments"].as_array().unwrap().len() >= 2);

        // A link added and waited for, its steps reported; then deleted, and gone.
        let added = &out["add"]["json"];
        assert_eq!(added["status"], "ready", "{mode}: {out}");
        let reported: Vec<&str> = out["add_progress"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["message"].as_str().unwrap())
            .collect();
        assert!(
            reported.iter().any(|m| m.ends_with(": ready")),
            "{reported:?}"
        );
        assert!(
            reported.iter().any(|m| m.contains("keyframes done in")),
            "{reported:?}"
        );
        assert_eq!(out["delete"]["json"]["deleted"], true);
        assert!(out["after_delete"]["error"].as_bool().unwrap());
        assert_eq!(
            out["after_delete"]["text"],
            format!("no video with id `{}`", added["id"].as_str().unwrap()).as_str()
        );
    }
}

#[tokio::test]
async fn refusals_are_tool_errors_with_the_apis_sentences_and_nothing_goes_upstream() {
    let upstream = FakeUpstream::start().await;
    upstream.set_default(streamed_answer());
    let s = server(&upstream).await;
    let video = ready_video(&s, KEY).await;
    let out = scenario("refusals", "auto", &s.url, ACME, &[&video]).await;
    let said = |tool: &str| out["bad"][tool]["text"].as_str().unwrap().to_string();
    for tool in out["bad"].as_object().unwrap().keys() {
        assert!(
            out["bad"][tool]["error"].as_bool().unwrap(),
            "{tool}: {out}"
        );
    }
    assert_eq!(said("list_videos"), "limit must be between 1 and 100");
    assert_eq!(
        said("add_video_from_url"),
        "url only http and https URLs can be fetched, not `ftp:`"
    );
    assert_eq!(
        said("video_status"),
        "video_id invalid type: integer `7`, expected a string"
    );
    assert_eq!(
        said("search_videos"),
        "mode `psychic` is not one of hybrid, semantic, text"
    );
    assert_eq!(
        said("ask_about_videos"),
        "video_ids must name between 1 and 10 videos"
    );
    assert_eq!(said("get_transcript"), "end_s must be after `start`");
    assert_eq!(
        said("delete_video"),
        "video unknown field `video`, expected `video_id`"
    );
    // Another tenant's video is no video at all, in every tool and as a resource.
    let missing = format!("no video with id `{video}`");
    for (tool, outcome) in out["other_tenant"].as_object().unwrap() {
        assert!(outcome["error"].as_bool().unwrap(), "{tool}: {outcome}");
        assert_eq!(outcome["text"], missing.as_str(), "{tool}");
    }
    assert!(
        out["other_resource"].as_str().unwrap().contains(&missing),
        "{out}"
    );
    assert_eq!(out["listed"]["json"]["data"], json!([]));
    assert!(
        out["unknown"]
            .as_str()
            .unwrap()
            .contains("no tool named `summon_dragon`"),
        "{out}"
    );
    assert!(
        upstream.received().is_empty(),
        "nothing reaches the upstream"
    );
    // The video is still there for its owner.
    assert_eq!(settled(&s.url, &video, Some(KEY)).await["status"], "ready");

    // A wrong key is refused before the protocol begins (the SDK gives up), with the API's
    // status and sentence.
    let out = scenario("wrong_key", "auto", &s.url, "sk-wrong", &[]).await;
    assert_eq!(out["connected"], false, "{out}");
    let refused = common::client()
        .post(format!("{}/mcp", s.url))
        .bearer_auth("sk-wrong")
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["message"], "invalid or missing API key");
}

#[tokio::test]
async fn a_cancelled_question_stops_the_upstream_as_a_hang_up_does() {
    for mode in ["auto", "legacy"] {
        let upstream = FakeUpstream::start().await;
        upstream.set_default(Reply::Stream(vec![
            Step::Text("They plant ".into()),
            Step::Hang,
        ]));
        let s = server(&upstream).await;
        let video = ready_video(&s, KEY).await;
        let out = scenario("cancel", mode, &s.url, KEY, &[&video]).await;
        assert_eq!(out["seen"], json!(["They plant"]), "{mode}: {out}");
        assert!(out.get("finished").is_none(), "{mode}: {out}");
        assert!(
            upstream
                .next_hangup(Duration::from_secs(10))
                .await
                .is_some(),
            "{mode}: the upstream was not stopped"
        );
        assert_eq!(out["after"]["json"]["status"], "ready", "{mode}: {out}");
    }
}

#[tokio::test]
async fn the_stdio_bridge_speaks_for_a_running_server() {
    let upstream = FakeUpstream::start().await;
    upstream.set_default(streamed_answer());
    let s = server(&upstream).await;
    let video = ready_video(&s, KEY).await;
    let target = format!("{}@{}/mcp", env!("CARGO_BIN_EXE_chatapi"), s.url);
    let out = scenario("stdio_tour", "stdio", &target, KEY, &[&video]).await;
    assert_eq!(out["tools"].as_array().unwrap().len(), 7, "{out}");
    assert_eq!(out["ask"]["text"], PIECES.concat().as_str(), "{out}");
    assert_streamed(&out["ask_progress"], &PIECES.concat());
    assert_eq!(
        out["resources"],
        json!([format!("chatapi://videos/{video}/timeline")])
    );

    // The bridge with a wrong key: the client hears the server's refusal.
    let out = scenario("wrong_key", "stdio", &target, "sk-wrong", &[]).await;
    assert_eq!(out["connected"], false, "{out}");
    assert!(
        out["error"]
            .as_str()
            .unwrap()
            .contains("invalid or missing API key"),
        "{out}"
    );
}

#[tokio::test]
async fn sessions_past_the_cap_bodies_past_the_limit_and_browser_origins_are_refused() {
    let upstream = FakeUpstream::start().await;
    let s = server_with(
        &upstream,
        "[mcp]\nmax_sessions = 1\n[limits]\nmax_body_bytes = 4096\n",
    )
    .await;
    let (status, first) = post_mcp(&s, &[], initialize()).await;
    assert_eq!(status, 200, "{first}");
    let (status, second) = post_mcp(&s, &[], initialize()).await;
    assert_eq!(status, 503, "{second}");
    let second: Value = serde_json::from_str(&second).unwrap();
    assert_eq!(second["error"]["code"], "too_many_sessions");
    assert!(second["error"]["message"]
        .as_str()
        .unwrap()
        .contains("too many MCP sessions"));

    // A body past `limits.max_body_bytes` is refused before the SDK parses it.
    let big = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "search_videos", "arguments": {"query": "x".repeat(8000)}}});
    let (status, refused) = post_mcp(&s, &[], big.to_string()).await;
    assert_eq!(status, 413, "{refused}");
    assert!(
        refused.contains("larger than the limit of 4096 bytes"),
        "{refused}"
    );

    // A web page's script is not an MCP client: its Origin is refused (DNS rebinding).
    let list = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}).to_string();
    let (status, refused) = post_mcp(&s, &[("origin", "http://evil.example")], list).await;
    assert_eq!(status, 403, "{refused}");
    // And a body that is not JSON-RPC at all is the SDK's to refuse, not a crash.
    let (status, _) = post_mcp(&s, &[("mcp-session-id", "nope")], "{not json".into()).await;
    assert!((400..500).contains(&status), "{status}");
    assert!(upstream.received().is_empty());
}
