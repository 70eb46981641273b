//! The video dialects, driven by their real clients where one exists (pymavi for MAVI v1.0,
//! reka-mcp's RekaClient for Reka, the openai SDK for Mavera; `tests/clients/`), and by raw HTTP
//! for Memories.ai v1.2. Each asks about a test video (`common::videos`: subtitles at known
//! times, text drawn on each scene) and checks what the fake upstream was given (the right
//! segments, stamped) and what the client read back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::videos::{self, made, settled};
use common::{client, client_script, FakeUpstream, Server};
use serde_json::{json, Value};

const KEY: &str = "sk-dialects";

async fn server(upstream: &FakeUpstream, extra: &str) -> Server {
    let toml = format!(
        "[auth]\nkeys = [\"{KEY}\", {{ key = \"k-acme\", tenant = \"acme\" }}]\n[storage]\ndir = \"{}\"\n\
         [videos]\nenabled = true\nallow_private_urls = true\n{extra}",
        videos::storage().display()
    );
    let extra = if extra.contains("speech_binary") {
        toml
    } else {
        toml + "speech_binary = \"\"\nspeech_model = \"\"\n"
    };
    Server::start(&[upstream], &extra).await
}

async fn dialect(s: &Server, scenario: &str, args: &[&str]) -> Value {
    let mut all = vec![scenario, s.url.as_str(), KEY];
    all.extend(args);
    client_script(".venv-video-clients", "video_dialects.py", &all).await
}

/// The grounding the upstream was given: its system messages, joined.
fn grounding(upstream: &FakeUpstream, nth: usize) -> String {
    let received = upstream.received();
    received[nth].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "system")
        .map(|m| m["content"].as_str().unwrap().to_string() + "\n")
        .collect()
}

/// A receiver for processing callbacks: the bodies, as they arrive.
async fn callback_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/done",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                tx.send(body).unwrap();
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/done", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test]
async fn mavi_v1_0_with_pymavi() {
    let upstream = FakeUpstream::start().await;
    let s = server(&upstream, "").await;
    let (callback, mut callbacks) = callback_receiver().await;
    let up = dialect(&s, "mavi_upload", &[path(&made().with_track()), &callback]).await;
    let no = up["videoNo"].as_str().unwrap().to_string();
    // Processing ends with the callback, the vendor's body.
    let called = tokio::time::timeout(std::time::Duration::from_secs(60), callbacks.recv())
        .await
        .expect("no callback within a minute")
        .unwrap();
    assert_eq!(called["videoNo"], no.as_str());
    assert_eq!(called["status"], "PARSE", "{called}");

    let chat = dialect(&s, "mavi_chat", &[&no, "What do they plant?"]).await;
    assert_eq!(
        chat["pieces"].as_array().unwrap().concat_text(),
        "Hello there."
    );
    assert_eq!(chat["whole"], "Hello there.");
    let given = grounding(&upstream, 0);
    assert!(
        given.contains("[00:04] said: \"Today we plant tomatoes\""),
        "{given}"
    );
    assert!(given.contains("CHATAPI VIDEO"), "on-screen text: {given}");
    assert!(given.contains("cite its stamp"), "{given}");
    // The history pymavi sent came through as turns.
    let turns = upstream.received()[1].body["messages"].clone();
    let roles: Vec<&str> = turns
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "system", "user", "assistant", "user"]);

    let listed = dialect(&s, "mavi_list", &[]).await;
    assert_eq!(listed[&no]["videoStatus"], "PARSE", "{listed}");
    assert_eq!(listed[&no]["videoName"], "with-track.mp4");
    dialect(&s, "mavi_errors", &[&no]).await;
    assert_eq!(
        upstream.received().len(),
        2,
        "no upstream call for a missing video"
    );
}

trait ConcatText {
    fn concat_text(&self) -> String;
}

impl ConcatText for Vec<Value> {
    fn concat_text(&self) -> String {
        self.iter().map(|v| v.as_str().unwrap()).collect()
    }
}

/// A long answer reaches pymavi whole: every event is its own chunk under 1 KiB.
#[tokio::test]
async fn mavi_streams_a_long_answer_in_small_events() {
    let upstream = FakeUpstream::start().await;
    let long = "Ünïcödé words, ".repeat(200);
    upstream.set_default(common::fake_upstream::Reply::text(&[&long, "end."]));
    let s = server(&upstream, "").await;
    let (status, video) = upload(&s, KEY, &made().with_track()).await;
    assert_eq!(status, 202);
    let id = video["id"].as_str().unwrap();
    settled(&s.url, id, Some(KEY)).await;
    let chat = dialect(&s, "mavi_chat", &[id, "Talk."]).await;
    assert_eq!(
        chat["pieces"].as_array().unwrap().concat_text(),
        format!("{long}end.")
    );
    assert_eq!(chat["whole"].as_str().unwrap(), format!("{long}end."));
}

async fn upload(s: &Server, key: &str, file: &Path) -> (u16, Value) {
    let r = client()
        .post(format!("{}/v1/videos", s.url))
        .bearer_auth(key)
        .multipart(videos::form(file, vec![]))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Server-sent `data:` payloads of a body, in order.
fn data_lines(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|e| e.strip_prefix("data:"))
        .map(str::to_string)
        .collect()
}

/// Two tenants that use the same session id have two conversations: neither's turns are lost,
/// nor heard by the other.
#[tokio::test]
async fn memories_v1_2_sessions_are_per_tenant() {
    let upstream = FakeUpstream::start().await;
    let s = server(&upstream, "ocr = false\n").await;
    let base = format!("{}/serve/api/v1", s.url);
    let mut nos = Vec::new();
    for key in [KEY, "k-acme"] {
        let form = videos::form(&made().with_track(), vec![]);
        let up: Value = client()
            .post(format!("{base}/upload"))
            .header("Authorization", key)
            .multipart(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let no = up["data"]["videoNo"].as_str().unwrap().to_string();
        settled(&s.url, &no, Some(key)).await;
        nos.push(no);
    }
    let ask = |key: &'static str, no: String, prompt: &'static str| {
        let url = format!("{base}/chat");
        async move {
            let r: Value = client()
                .post(url)
                .header("Authorization", key)
                .json(&json!({"video_nos": [no], "prompt": prompt, "session_id": 4242}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(r["success"], true, "{r}");
        }
    };
    ask(KEY, nos[0].clone(), "first of the shared tenant").await;
    ask("k-acme", nos[1].clone(), "first of acme").await;
    ask("k-acme", nos[1].clone(), "second of acme").await;
    ask(KEY, nos[0].clone(), "second of the shared tenant").await;
    let users = |n: usize| -> Vec<String> {
        videos::turns(&upstream.received()[n].body)
            .into_iter()
            .filter(|(role, _)| role == "user")
            .map(|(_, c)| c)
            .collect()
    };
    assert_eq!(users(2), ["first of acme", "second of acme"]);
    assert_eq!(
        users(3),
        ["first of the shared tenant", "second of the shared tenant"]
    );
}

#[tokio::test]
async fn memories_v1_2_keeps_sessions_and_sends_refs() {
    let upstream = FakeUpstream::start().await;
    let s = server(&upstream, "").await;
    let base = format!("{}/serve/api/v1", s.url);
    let form = videos::form(&made().with_track(), vec![]).text("unique_id", "user-7");
    let up: Value = client()
        .post(format!("{base}/upload"))
        .header("Authorization", KEY)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(up["code"], "0000", "{up}");
    assert_eq!(up["data"]["videoStatus"], "UNPARSE");
    let no = up["data"]["videoNo"].as_str().unwrap().to_string();
    settled(&s.url, &no, Some(KEY)).await;

    let r = client()
        .post(format!("{base}/chat_stream"))
        .header("Authorization", KEY)
        .header("Accept", "text/event-stream")
        .json(&json!({"video_nos": [no], "prompt": "What do they plant?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let events = data_lines(&r.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "\"Done\"", "{events:?}");
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["type"], "ref", "{first}");
    let items = first["ref"][0]["refItems"].as_array().unwrap();
    assert!(items
        .iter()
        .any(|i| i["startTime"] == 4 && i["endTime"] == 8 && i["videoNo"] == no.as_str()));
    let session = first["sessionId"].as_str().unwrap().to_string();
    assert!(session.parse::<u64>().is_ok(), "{session}");
    let text: String = events[1..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .inspect(|e| assert_eq!(e["type"], "content"))
        .map(|e| e["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(text, "Hello there.");

    // The next turn of the session, from the server's memory.
    let whole: Value = client()
        .post(format!("{base}/chat"))
        .header("Authorization", format!("Bearer {KEY}"))
        .json(&json!({"video_nos": [no], "prompt": "And then?", "session_id": session.parse::<u64>().unwrap()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whole["data"]["content"], "Hello there.", "{whole}");
    assert_eq!(whole["data"]["session_id"], session.as_str());
    assert_eq!(whole["success"], true);
    let said = videos::turns(&upstream.received()[1].body);
    let said: Vec<(&str, &str)> = said.iter().map(|(r, c)| (r.as_str(), c.as_str())).collect();
    assert_eq!(
        said,
        [
            ("user", "What do they plant?"),
            ("assistant", "Hello there."),
            ("user", "And then?")
        ]
    );

    let listed: Value = client()
        .post(format!("{base}/list_videos"))
        .header("Authorization", KEY)
        .json(&json!({"page": 1, "size": 10, "status": "PARSE"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"]["total_count"], "1", "{listed}");
    assert_eq!(listed["data"]["videos"][0]["video_no"], no.as_str());
    assert_eq!(listed["data"]["videos"][0]["duration"], "12");

    let deleted: Value = client()
        .post(format!("{base}/delete_videos?unique_id=user-7"))
        .header("Authorization", KEY)
        .json(&json!([no]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deleted["code"], "0000", "{deleted}");
    let r = client()
        .post(format!("{base}/chat"))
        .header("Authorization", KEY)
        .json(&json!({"video_nos": [no], "prompt": "Still there?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "0001");
    assert_eq!(body["failed"], true);
    assert_eq!(
        upstream.received().len(),
        2,
        "no upstream call for a deleted video"
    );
}

#[tokio::test]
async fn mavera_with_the_openai_sdk() {
    let upstream = FakeUpstream::start().await;
    let s = server(&upstream, "").await;
    let base = format!("{}/api/v1", s.url);
    let form = videos::form(&made().with_track(), vec![])
        .text("title", "Garden tour")
        .text("brand", "Acme");
    let r = client()
        .post(format!("{base}/video-analyses"))
        .bearer_auth(KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["object"], "video_analysis");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["title"], "Garden tour");
    assert_eq!(created["brand"], "Acme");
    let id = created["id"].as_str().unwrap().to_string();

    settled(&s.url, &id, Some(KEY)).await;
    let before = upstream.received().len();

    client_script(
        ".venv-clients",
        "openai_sdk.py",
        &["mavera_chat", &base, KEY, &id],
    )
    .await;
    assert_eq!(upstream.received().len(), before + 2);
    let given = grounding(&upstream, before);
    assert!(
        given.contains("[00:08] said: \"and water the flowers\""),
        "{given}"
    );

    let listed: Value = client()
        .get(format!("{base}/video-analyses?status=COMPLETED&limit=5"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["object"], "list");
    assert_eq!(listed["total"], 1, "{listed}");
    let bad = client()
        .post(format!("{base}/video-analyses/{id}/chat"))
        .bearer_auth(KEY)
        .json(&json!({"messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["error"]["param"], "messages", "{bad}");
}

#[tokio::test]
async fn reka_with_reka_mcp() {
    let upstream = FakeUpstream::start().await;
    let s = server(&upstream, "").await;
    let up = dialect(&s, "reka_upload", &[path(&made().with_track())]).await;
    let id = up["video_id"].as_str().unwrap().to_string();
    settled(&s.url, &id, Some(KEY)).await;

    let read = dialect(&s, "reka_read", &[&id]).await;
    assert_eq!(read["video"]["status"], "uploaded");
    assert_eq!(read["video"]["metadata"]["video_name"], "garden tour");
    let features = &read["video"]["features"];
    assert_eq!(features["transcript"], "ready");
    assert_eq!(features["captions"], "ready");
    assert_eq!(features["embeddings"], "ready");
    let transcript = read["transcript"].as_array().unwrap();
    assert_eq!(transcript.len(), 1, "{transcript:?}");
    assert_eq!(transcript[0]["text"], "Today we plant tomatoes");
    let captions = read["captions"].as_array().unwrap();
    assert!(captions.iter().any(|c| c["source"] == "on_screen_text"
        && c["caption"].as_str().unwrap().contains("HELLO WORLD")));

    let answer = dialect(&s, "reka_chat", &[&id, "4", "8"]).await;
    assert_eq!(answer["response"], "Hello there.");
    assert_eq!(answer["model"], "video");
    let given = grounding(&upstream, 0);
    assert!(
        given.contains("[00:04] said: \"Today we plant tomatoes\""),
        "{given}"
    );
    assert!(
        !given.contains("Welcome to the garden tour"),
        "outside the range: {given}"
    );
    assert!(given.contains("asked about [00:04] to [00:08]"), "{given}");

    dialect(&s, "reka_errors", &[&id]).await;
    assert_eq!(
        upstream.received().len(),
        1,
        "no upstream call for the errors"
    );
}

#[tokio::test]
async fn a_scoped_key_sees_only_its_tenants_videos() {
    let upstream = FakeUpstream::start().await;
    let s = server(&upstream, "").await;
    let (status, video) = upload(&s, "k-acme", &made().silent()).await;
    assert_eq!(status, 202);
    let id = video["id"].as_str().unwrap();
    settled(&s.url, id, Some("k-acme")).await;
    let get = |key: &'static str| {
        let url = format!("{}/v2/videos/{id}", s.url);
        async move {
            client()
                .get(url)
                .header("X-Api-Key", key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(get("k-acme").await, 200);
    assert_eq!(get(KEY).await, 404, "another tenant's video is not there");
    let chat = client()
        .post(format!("{}/v2/chat", s.url))
        .header("X-Api-Key", KEY)
        .json(&json!({"messages": [{"role": "user", "content": "hi"}], "context": [{"video_id": id}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 404);
    let listed: Value = client()
        .get(format!("{}/v1/videos", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 0, "{listed}");
    let r = client()
        .delete(format!("{}/v1/videos/{id}", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "nor can it be deleted by another tenant");
    assert_eq!(get("k-acme").await, 200);
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn a_chat_about_a_video_still_processing_is_refused_in_each_dialect() {
    let upstream = FakeUpstream::start().await;
    let dir = videos::storage().join("recogniser");
    let slow = videos::SlowRecogniser::new(&dir);
    let s = server(&upstream, &slow.toml()).await;
    let (status, video) = upload(&s, KEY, &made().speech()).await;
    assert_eq!(status, 202);
    let id = video["id"].as_str().unwrap().to_string();
    videos::appears(&slow.pid).await;
    let post = |path: &str, body: Value| {
        let base = s.url.clone();
        let path = path.to_string();
        async move { videos::post_json(&base, &path, KEY, &body).await }
    };
    let (status, body) = post(
        "/api/serve/video/chat",
        json!({"videoNos": [id], "message": "hi", "stream": true}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("0001")),
        "{body}"
    );
    assert!(
        body["msg"].as_str().unwrap().contains("processing"),
        "{body}"
    );
    let (status, body) = post(
        "/v2/chat",
        json!({"messages": [{"role": "user", "content": "hi"}], "context": [{"video_id": id}]}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["type"], "validation_error");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("transcript and captions"), "{message}");
    let (status, body) = post(
        &format!("/api/v1/video-analyses/{id}/chat"),
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "analysis_not_completed");
    std::fs::remove_file(&slow.hold).unwrap();
    assert!(upstream.received().is_empty());
}

/// A model that makes stamps up: each `[MM:SS]` is checked against the segments the answer was
/// grounded in, streamed (a stamp split across chunks included) or whole. A real one stands, one
/// between the segments moves to the segment its words come from, one that no segment's words
/// back is dropped.
#[tokio::test]
async fn made_up_stamps_are_corrected_or_dropped_streamed_and_whole() {
    let upstream = FakeUpstream::start().await;
    let s = server(&upstream, "ocr = false\n").await;
    let (_, video) = upload(&s, KEY, &made().with_track()).await;
    let id = video["id"].as_str().unwrap().to_string();
    assert_eq!(settled(&s.url, &id, Some(KEY)).await["status"], "ready");
    // The subtitles say "Today we plant tomatoes" at 4.5 s and "and water the flowers" at 8.5 s.
    let made_up = [
        "They plant tomatoes [00:",
        "05]. They water the flowers [",
        "07:30]. The moon is cheese [59:59].",
    ];
    let expected =
        "They plant tomatoes [00:05]. They water the flowers [00:08]. The moon is cheese.";
    upstream.set_default(common::Reply::text(&made_up));

    let r = client()
        .post(format!("{}/serve/api/v1/chat_stream", s.url))
        .header("Authorization", KEY)
        .header("Accept", "text/event-stream")
        .json(&json!({"video_nos": [id], "prompt": "What do they do?"}))
        .send()
        .await
        .unwrap();
    let events = data_lines(&r.text().await.unwrap());
    let streamed: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter(|e| e["type"] == "content")
        .map(|e| e["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(streamed, expected, "{events:?}");

    let (status, whole) = videos::post_json(
        &s.url,
        "/v2/chat",
        KEY,
        &json!({"messages": [{"role": "user", "content": "What do they do?"}],
                "context": [{"video_id": id}]}),
    )
    .await;
    assert_eq!(status, 200, "{whole}");
    assert_eq!(whole["response"], expected, "{whole}");
}
