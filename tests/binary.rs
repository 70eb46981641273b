//! The `chatapi` binary itself: start-up errors, `check-config`, signals, and what it takes
//! from its environment.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::process::*;
use common::*;
use futures_util::StreamExt;

/// Watching the file is off here, so a reload can only come from SIGHUP.
fn config_for(up: &FakeUpstream, prompt: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"300ms\"\nwatch_config = \"0s\"\n[[upstreams]]\nname = \"fake\"\nbase_url = \"{}\"\napi_key = \"sk-secret-value\"\nmodel = \"m\"\n[personas.default]\nsystem_prompt = \"{prompt}\"\n",
        up.base_url
    )
}

#[tokio::test]
async fn bad_config_stops_startup_naming_file_and_key() {
    let file = TempFile::with("[server]\nlisten = \"127.0.0.1:0\"\nlisen = 1\n");
    let out = command(&file).output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&file.0.display().to_string()) && err.contains("lisen"),
        "{err}"
    );

    let file = TempFile::with("[personas.default]\ntop_p = 7\n");
    let out = command(&file).output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("personas.default.top_p"));
}

#[tokio::test]
async fn check_config_prints_effective_config_with_secrets_redacted() {
    let up = FakeUpstream::start().await;
    let file = TempFile::with(&format!(
        "{}[auth]\nkeys = [\"room-secret\"]\n",
        config_for(&up, "Hi")
    ));
    let out = command(&file)
        .arg("check-config")
        .env("CHATAPI__WIRE__COMPACT", "true")
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("compact = true"),
        "the environment layer applies: {text}"
    );
    assert!(text.contains("<redacted>"));
    assert!(
        !text.contains("sk-secret-value") && !text.contains("room-secret"),
        "{text}"
    );
    assert!(
        text.starts_with("# state: rate limits, the stream cap, request-id repeats, Memories.ai sessions: this replica's own"),
        "{text}"
    );

    // With Redis and Postgres named: which state is shared, and no password shown.
    let out = command(&file)
        .arg("check-config")
        .env(
            "CHATAPI__CLUSTER__REDIS_URL",
            "redis://:cache-pw@cache:6379/0",
        )
        .env(
            "CHATAPI__CLUSTER__DATABASE_URL",
            "postgres://u:db-pw@db/chatapi",
        )
        .env("CHATAPI__VIDEOS__ENABLED", "true")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("shared through Redis"), "{text}");
    assert!(text.contains("shared in Postgres"), "{text}");
    assert!(
        !text.contains("cache-pw") && !text.contains("db-pw"),
        "{text}"
    );
}

/// An upstream the environment sends through a proxy (`HTTP_PROXY`) is reached through it, key
/// and all; with `NO_PROXY` naming the upstream's host, the same upstream is reached straight.
#[tokio::test]
async fn upstreams_go_through_the_environments_proxy_unless_no_proxy_names_them() {
    let proxy = FakeUpstream::start().await;
    let proxy_url = proxy.base_url.trim_end_matches("/v1").to_string();
    let config = |base_url: &str| {
        TempFile::with(&format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[[upstreams]]\nname = \"behind\"\nbase_url = \"{base_url}\"\napi_key = \"sk-behind\"\nmodel = \"m\"\n"
        ))
    };
    let with_proxy = |file: &TempFile, no_proxy: &str| {
        let mut cmd = command(file);
        for name in ["HTTP_PROXY", "http_proxy", "ALL_PROXY"] {
            cmd.env(name, &proxy_url);
        }
        cmd.env("NO_PROXY", no_proxy).env("no_proxy", no_proxy);
        cmd
    };

    let answered = |base_url: &str, no_proxy: &str| {
        let file = config(base_url);
        let command = with_proxy(&file, no_proxy);
        async move {
            let server = Running::start_command(command).await;
            let (status, answer) = chat(&format!("{}/chat", server.url), &faceto_body("hi")).await;
            assert_eq!(
                (status.as_u16(), answer.text().as_str()),
                (200, "Hello there.")
            );
            drop(file);
        }
    };

    // A host only the proxy knows: reached at all means reached through it.
    answered("http://upstream.invalid/v1", "").await;
    let got = proxy.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "http://upstream.invalid/v1/chat/completions");
    assert_eq!(got[0].header("authorization"), Some("Bearer sk-behind"));

    // The proxy's own address as the upstream, exempted: the request arrives in origin form.
    answered(&proxy.base_url, "127.0.0.1").await;
    let got = proxy.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].path, "/v1/chat/completions");
}

/// `server.threads` reaches the runtime, and on several worker threads a burst from the upstream
/// still goes out in a few writes (the relay's turns take tokio's `yield_now` there).
#[tokio::test]
async fn on_two_serving_threads_a_burst_still_goes_out_in_few_writes() {
    let up = FakeUpstream::start().await;
    let words = burst_of_forty(&up);
    let file = TempFile::with(&config_for(&up, "Hi"));
    let mut command = command(&file);
    command.env("CHATAPI__SERVER__THREADS", "2");
    let server = Running::start_command(command).await;
    assert!(
        server.listening.contains("threads=2"),
        "{}",
        server.listening
    );
    let chunks = raw_chat_chunks(&server.url, &faceto_body("say forty words")).await;
    assert_eq!(faceto_parse(chunks.concat().as_bytes()).text(), words);
    assert!(chunks.len() <= 10, "41 events in {} writes", chunks.len());
}

#[tokio::test]
async fn sigterm_drains_open_streams_and_exits_zero() {
    let up = FakeUpstream::start().await;
    let file = TempFile::with(&config_for(&up, "Hi"));
    let mut server = Running::start(&file).await;
    up.push(Reply::Stream(vec![Step::Text("Mid".into()), Step::Hang]));
    let response = faceto_request(
        &client(),
        &format!("{}/chat", server.url),
        &faceto_body("hi"),
        "",
    )
    .send()
    .await
    .unwrap();
    let mut body = response.bytes_stream();
    let mut got = body.next().await.unwrap().unwrap().to_vec();
    server.signal("-TERM");
    while let Some(chunk) = body.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    let answer = faceto_parse(&got);
    assert_eq!(answer.text(), "Mid");
    assert!(answer.done, "ended with [DONE] after the grace period");
    assert_eq!(server.exit_status().await.code(), Some(0));
}

#[tokio::test]
async fn sighup_reloads_without_dropping_open_streams_and_rejects_bad_config() {
    let up = FakeUpstream::start().await;
    let file = TempFile::with(&config_for(&up, "Old prompt."));
    let mut server = Running::start(&file).await;
    let chat_url = format!("{}/chat", server.url);

    up.push(Reply::Stream(vec![
        Step::Text("Before".into()),
        Step::Delay(Duration::from_millis(300)),
        Step::Text(" and after".into()),
    ]));
    let response = faceto_request(&client(), &chat_url, &faceto_body("hi"), "")
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut got = body.next().await.unwrap().unwrap().to_vec();

    file.rewrite(&config_for(&up, "New prompt."));
    server.signal("-HUP");
    wait_for(&mut server.logs, "config reloaded").await;
    while let Some(chunk) = body.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    let answer = faceto_parse(&got);
    assert_eq!(
        answer.text(),
        "Before and after",
        "the open stream was not disturbed"
    );
    assert!(answer.done);

    let (status, _) = chat(&chat_url, &faceto_body("hi")).await;
    assert_eq!(status, 200);
    assert_eq!(
        up.received()[1].body["messages"][0]["content"],
        "New prompt."
    );

    file.rewrite("[personas.default]\ntemprature = 1\n");
    server.signal("-HUP");
    wait_for(&mut server.logs, "config reload rejected").await;
    let (status, _) = chat(&chat_url, &faceto_body("hi")).await;
    assert_eq!(status, 200);
    assert_eq!(
        up.received()[2].body["messages"][0]["content"],
        "New prompt.",
        "the running config stayed"
    );
}

#[tokio::test]
async fn a_changed_config_file_is_reloaded_and_a_bad_one_rejected() {
    let up = FakeUpstream::start().await;
    let watched = |prompt: &str| {
        config_for(&up, prompt).replace("watch_config = \"0s\"", "watch_config = \"20ms\"")
    };
    let file = TempFile::with(&watched("Old prompt."));
    let mut server = Running::start(&file).await;
    let chat_url = format!("{}/chat", server.url);

    file.rewrite(&watched("New prompt, a longer one."));
    let line = wait_for(&mut server.logs, "config reloaded").await;
    assert!(line.contains("config file changed"), "{line}");
    let (status, _) = chat(&chat_url, &faceto_body("hi")).await;
    assert_eq!(status, 200);
    assert_eq!(
        up.received()[0].body["messages"][0]["content"],
        "New prompt, a longer one."
    );

    file.rewrite("[personas.default]\ntemprature = 1\n");
    let line = wait_for(&mut server.logs, "config reload rejected").await;
    assert!(
        line.contains("temprature"),
        "the log names the bad key: {line}"
    );
    let (status, _) = chat(&chat_url, &faceto_body("hi")).await;
    assert_eq!(status, 200);
    assert_eq!(
        up.received()[1].body["messages"][0]["content"],
        "New prompt, a longer one.",
        "the running config stayed"
    );
}

/// A chat about a video writes the request's one log line, as every chat does (a Reka chat once
/// wrote two: the video routes' line and the chat's).
#[tokio::test]
async fn a_video_chat_writes_one_log_line() {
    let up = FakeUpstream::start().await;
    let file = TempFile::with(&format!(
        "{}[storage]\ndir = \"{}\"\n[videos]\nenabled = true\nspeech_binary = \"\"\n\
         speech_model = \"\"\nocr = false\nembedding_model = \"\"\n",
        config_for(&up, "Hi"),
        common::videos::storage().display()
    ));
    let mut server = Running::start(&file).await;
    let (_, video) =
        common::videos::upload(&server.url, "k", &common::videos::made().with_track()).await;
    let id = video["id"].as_str().unwrap().to_string();
    common::videos::settled(&server.url, &id, Some("k")).await;
    let post = |path: &str, request_id: &str| {
        client()
            .post(format!("{}{path}", server.url))
            .header("x-request-id", request_id)
    };
    let chat = post("/v2/chat", "one-line-chat")
        .json(
            &serde_json::json!({"messages": [{"role": "user", "content": "hi"}],
                                  "context": [{"video_id": id}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    // A later request's line marks where the chat's lines end.
    let marker = client()
        .get(format!("{}/v1/videos", server.url))
        .header("x-request-id", "one-line-marker")
        .send()
        .await
        .unwrap();
    assert_eq!(marker.status(), 200);
    let mut lines = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = server.logs.next_line().await.unwrap() {
            if line.contains("one-line-marker") {
                break;
            }
            if line.contains("one-line-chat") {
                lines.push(line);
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(lines.len(), 1, "{lines:#?}");
}
