//! The ChatAPI endpoint end to end: the real server on a loopback port, a fake upstream behind it,
//! and answers read the way the FaceTo-AI client reads them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn faceto_request_streams_exact_framing() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], "").await;
    let response = faceto_request(
        &client(),
        &server.chat_url(),
        &faceto_body("how are you?"),
        "",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let h = response.headers();
    assert_eq!(h["content-type"], "text/event-stream");
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["x-accel-buffering"], "no");
    assert_eq!(h["x-request-id"], "3f2a7a9e-7d1c-4e59-9a2f-0d6c7d1a0b11");
    assert!(
        h.get("content-encoding").is_none(),
        "the stream must never be compressed"
    );
    let body = response.bytes().await.unwrap();
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        "data: {\"content\":\"Hello\"}\n\ndata: {\"content\":\" there\"}\n\ndata: {\"content\":\".\"}\n\ndata: [DONE]\n\n"
    );
    let answer = faceto_parse(&body);
    assert_eq!(answer.text(), "Hello there.");
    assert!(answer.done);
}

/// An upstream that sends its whole answer at once (a cache, a fast model) gets it relayed in a
/// few writes, not one per event: nginx writes what it read too. The first event still goes
/// out alone, as soon as it is there.
#[tokio::test]
async fn a_burst_from_the_upstream_goes_out_in_few_writes() {
    let up = FakeUpstream::start().await;
    let words = burst_of_forty(&up);
    let server = Server::start(&[&up], "").await;
    let chunks = raw_chat_chunks(&server.url, &faceto_body("say forty words")).await;
    let answer = faceto_parse(chunks.concat().as_bytes());
    assert_eq!(answer.text(), words, "every event, in order");
    assert!(answer.done);
    assert_eq!(
        chunks[0], "data: {\"content\":\"w0 \"}\n\n",
        "the first event is not held for the rest"
    );
    assert!(
        chunks.len() <= 10,
        "41 events in {} writes: a burst goes out together",
        chunks.len()
    );
}

#[tokio::test]
async fn the_documents_curl_test_works_verbatim() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], "").await;
    let url = server.chat_url();
    let output = tokio::process::Command::new("curl")
        .args([
            "--silent",
            "--location",
            "--request",
            "POST",
            &url,
            "--header",
            "Content-Type: application/json",
            "--header",
            "Accept: */*",
            "--header",
            "Connection: keep-alive",
            "--data-raw",
            "{\n    \"messages\": [\n        {\n            \"role\": \"user\",\n            \"content\": \"who are you?\"\n        }\n    ]\n}",
        ])
        .output()
        .await
        .expect("curl runs");
    assert!(output.status.success());
    let answer = faceto_parse(&output.stdout);
    assert_eq!(answer.text(), "Hello there.");
    assert!(answer.done);
    assert_eq!(
        up.received()[0].body["messages"][1]["content"],
        "who are you?"
    );
}

#[tokio::test]
async fn persona_reaches_the_upstream() {
    let up = FakeUpstream::start().await;
    let server = Server::start(
        &[&up],
        r##"
[personas.default]
system_prompt = "You are Ava, a concise guide."
model = "gpt-persona"
temperature = 0.3
top_p = 0.9
n = 2
max_tokens = 77
presence_penalty = 0.5
frequency_penalty = -0.25
stop = ["\nUser:", "<END>"]
seed = 42

[personas.strict]
system_prompt = "Strict."
system_messages = "drop"
"##,
    )
    .await;
    let (status, _) = chat(&server.chat_url(), &faceto_body("hi")).await;
    assert_eq!(status, 200);
    let got = &up.received()[0];
    assert_eq!(got.path, "/v1/chat/completions");
    assert_eq!(got.header("authorization"), Some("Bearer sk-up0"));
    let b = &got.body;
    assert_eq!(b["model"], "gpt-persona");
    assert_eq!(b["stream"], true);
    assert!((b["temperature"].as_f64().unwrap() - 0.3).abs() < 1e-6);
    assert!((b["top_p"].as_f64().unwrap() - 0.9).abs() < 1e-6);
    assert_eq!(b["n"], 2);
    assert_eq!(b["max_tokens"], 77);
    assert_eq!(b["presence_penalty"], 0.5);
    assert_eq!(b["frequency_penalty"], -0.25);
    assert_eq!(b["stop"], json!(["\nUser:", "<END>"]));
    assert_eq!(b["seed"], 42);
    let m = b["messages"].as_array().unwrap();
    assert_eq!(
        m[0],
        json!({"role": "system", "content": "You are Ava, a concise guide."})
    );
    assert_eq!(m[1]["name"], "Ava");
    assert_eq!(m[2]["name"], "Ann_Lee", "names are made valid for OpenAI");
    assert_eq!(m[3], json!({"role": "assistant", "content": ""}));
    assert_eq!(
        m[4]["role"], "system",
        "the caller's system message is kept by default"
    );
    assert_eq!(m.len(), 6);

    let (status, _) = chat(&format!("{}/chat/strict", server.url), &faceto_body("hi")).await;
    assert_eq!(status, 200);
    let b = &up.received()[1].body;
    let m = b["messages"].as_array().unwrap();
    assert_eq!(m[0]["content"], "Strict.");
    assert_eq!(
        m.iter().filter(|m| m["role"] == "system").count(),
        1,
        "drop policy"
    );
    assert_eq!(b["model"], "fake-model", "no persona model: the upstream's");
    assert!(b.get("temperature").is_none(), "unset knobs are not sent");
}

#[tokio::test]
async fn only_the_first_choice_is_streamed() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], "").await;
    let both = |a: &str, b: &str| {
        Step::Raw(format!(
            "data: {}\n\n",
            json!({"object":"chat.completion.chunk","choices":[
                {"index":1,"delta":{"content":b}},{"index":0,"delta":{"content":a}}]})
        ))
    };
    up.push(Reply::Stream(vec![
        both("One", "Uno"),
        both(" two", " dos"),
    ]));
    let (_, answer) = chat(&server.chat_url(), &faceto_body("count")).await;
    assert_eq!(answer.text(), "One two");
}

#[tokio::test]
async fn unknown_persona_is_404_naming_it() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], "").await;
    let (status, body) = chat_error(
        &format!("{}/chat/nobody", server.url),
        faceto_body("hi").to_string(),
        "",
    )
    .await;
    assert_eq!(status, 404);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nobody"));
    assert!(up.received().is_empty());
}

#[tokio::test]
async fn bad_input_is_rejected_naming_the_field_and_nothing_is_forwarded() {
    let up = FakeUpstream::start().await;
    let server = Server::start(
        &[&up],
        "[limits]\nmax_body_bytes = 2000\nmax_messages = 3\n",
    )
    .await;
    let user = r#"{"role":"user","content":"x"}"#;
    let cases: Vec<(String, u16, &str)> = vec![
        ("{not json".into(), 400, "body"),
        ("[1,2]".into(), 400, "body"),
        ("{}".into(), 400, "messages"),
        (r#"{"messages":[]}"#.into(), 400, "messages"),
        (r#"{"messages":{}}"#.into(), 400, "messages"),
        (r#"{"messages":["hi"]}"#.into(), 400, "messages[0]"),
        (
            r#"{"messages":[{"role":"wizard","content":"x"}]}"#.into(),
            400,
            "messages[0].role",
        ),
        (
            r#"{"messages":[{"content":"x"}]}"#.into(),
            400,
            "messages[0].role",
        ),
        (
            r#"{"messages":[{"role":"user","content":{"a":1}}]}"#.into(),
            400,
            "messages[0].content",
        ),
        (
            r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]}"#
                .into(),
            400,
            "messages[0].content[0].type",
        ),
        (
            r#"{"messages":[{"role":"user","content":"x","name":7}]}"#.into(),
            400,
            "messages[0].name",
        ),
        (
            format!(r#"{{"messages":[{user},{user},{user},{user}]}}"#),
            400,
            "messages",
        ),
        (
            format!(
                r#"{{"messages":[{{"role":"user","content":"{}"}}]}}"#,
                "x".repeat(3000)
            ),
            413,
            "",
        ),
    ];
    for (body, want, field) in cases {
        let (status, json) = chat_error(&server.chat_url(), body.clone(), "").await;
        assert_eq!(status.as_u16(), want, "{body}");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{body} -> {message}");
        if want == 400 {
            assert_eq!(json["error"]["param"], field);
        }
    }
    assert!(up.received().is_empty(), "nothing may reach the upstream");
}

#[tokio::test]
async fn api_keys_are_enforced() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], "[auth]\nkeys = [\"room-key-1\", \"room-key-2\"]\n").await;
    let body = faceto_body("hi").to_string();
    for key in ["", "wrong"] {
        let (status, json) = chat_error(&server.chat_url(), body.clone(), key).await;
        assert_eq!(status, 401);
        assert_eq!(json["error"]["type"], "authentication_error");
    }
    assert!(up.received().is_empty());
    let response = faceto_request(
        &client(),
        &server.chat_url(),
        &faceto_body("hi"),
        "room-key-2",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert!(faceto_parse(&response.bytes().await.unwrap()).done);
}

#[tokio::test]
async fn text_round_trips_byte_for_byte() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], "").await;
    let deltas = [
        "Grüße, ",
        "😀👍🏽 ",
        "\"quoted\" ",
        "back\\slash ",
        "new\nline\r\n",
        "\ttab ",
        "中文。",
        "</script>&amp;",
        "\u{1}\u{7f}\u{2028}",
    ];
    up.push(Reply::text(&deltas));
    let (_, answer) = chat(&server.chat_url(), &faceto_body("say odd things")).await;
    assert_eq!(answer.deltas, deltas);
    assert!(answer.done);
}

#[tokio::test]
async fn upstream_errors_before_the_first_token_get_their_status() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], "").await;
    let body = faceto_body("hi").to_string();

    up.push(Reply::status(500, "server_error", "boom"));
    let (status, json) = chat_error(&server.chat_url(), body.clone(), "").await;
    assert_eq!(status, 502);
    assert_eq!(json["error"]["type"], "upstream_error");

    up.push(Reply::Status {
        code: 429,
        body:
            json!({"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}})
                .to_string(),
        headers: vec![("retry-after".into(), "7".into())],
    });
    let response = client()
        .post(server.chat_url())
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");

    up.push(Reply::status(
        400,
        "context_length_exceeded",
        "This model's maximum context length is 8192 tokens.",
    ));
    let (status, json) = chat_error(&server.chat_url(), body.clone(), "").await;
    assert_eq!(status, 400);
    assert_eq!(json["error"]["code"], "context_length_exceeded");
    assert!(json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("maximum context length"));

    up.push(Reply::Close);
    let (status, _) = chat_error(&server.chat_url(), body.clone(), "").await;
    assert_eq!(status, 502);
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    let dead = dead_base_url();
    let server = Server::start_toml(&format!(
        "{TEST_BASE}[[upstreams]]\nname = \"dead\"\nbase_url = \"{dead}\"\nmodel = \"m\"\n"
    ))
    .await;
    let (status, json) = chat_error(&server.chat_url(), faceto_body("hi").to_string(), "").await;
    assert_eq!(status, 502);
    assert_eq!(json["error"]["code"], "upstream_unreachable");
}

#[tokio::test]
async fn compact_framing_matches_the_document() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], "[wire]\ncompact = true\n").await;
    let response = client()
        .post(server.chat_url())
        .body(faceto_body("hi").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.text().await.unwrap(),
        "data:{\"content\":\"Hello\"}\n\ndata:{\"content\":\" there\"}\n\ndata:{\"content\":\".\"}\n\ndata:[DONE]\n\n"
    );
}

#[tokio::test]
async fn two_hundred_concurrent_streams_complete_correctly() {
    let up = FakeUpstream::start().await;
    let words: Vec<String> = (0..20).map(|i| format!("w{i} ")).collect();
    let mut steps = Vec::new();
    for w in &words {
        steps.push(Step::Text(w.clone()));
        steps.push(Step::Delay(std::time::Duration::from_millis(5)));
    }
    up.set_default(Reply::Stream(steps));
    let server = Server::start(&[&up], "").await;
    let expected = words.concat();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let url = server.chat_url();
        tasks.push(tokio::spawn(async move {
            chat(&url, &faceto_body(&format!("caller {i}"))).await
        }));
    }
    for task in tasks {
        let (status, answer) = task.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(answer.text(), expected);
        assert!(answer.done);
    }
    assert_eq!(up.received().len(), 200);
}

#[tokio::test]
async fn request_id_is_generated_when_absent_and_health_endpoints_answer() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], "").await;
    let response = client()
        .post(server.chat_url())
        .body(faceto_body("hi").to_string())
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let health = client()
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = client()
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .unwrap();
    let ready: Value = serde_json::from_str(&ready.text().await.unwrap()).unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["upstreams"][0]["name"], "up0");
}

#[tokio::test]
async fn no_upstream_is_503_and_not_ready() {
    let server = Server::start_toml(TEST_BASE).await;
    let (status, json) = chat_error(&server.chat_url(), faceto_body("hi").to_string(), "").await;
    assert_eq!(status, 503);
    assert_eq!(json["error"]["code"], "no_upstream");
    let ready = client()
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
}

#[tokio::test]
async fn upstream_over_http2_prior_knowledge() {
    // An h2c upstream (axum serves HTTP/2 in the clear to clients that start with its preface).
    use axum::body::Body;
    use axum::routing::post;
    let events = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"over h2\"}}]}\n\ndata: [DONE]\n\n";
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |req: axum::extract::Request| async move {
            assert_eq!(req.version(), axum::http::Version::HTTP_2);
            axum::response::Response::new(Body::from(events))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let server = Server::start_toml(&format!(
        "{TEST_BASE}[[upstreams]]\nname = \"h2\"\nbase_url = \"http://{addr}/v1\"\nmodel = \"m\"\nhttp2_prior_knowledge = true\n"
    ))
    .await;
    let (status, answer) = chat(&server.chat_url(), &faceto_body("hi")).await;
    assert_eq!(status, 200);
    assert_eq!(answer.text(), "over h2");
}

#[tokio::test]
async fn metrics_are_exported_in_prometheus_format() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], "").await;
    let (status, _) = chat(&server.chat_url(), &faceto_body("hi")).await;
    assert_eq!(status, 200);
    let response = client()
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    for name in [
        "chatapi_requests_total{",
        "chatapi_time_to_first_token_seconds_bucket",
        "chatapi_overhead_seconds_bucket",
        "chatapi_stream_duration_seconds_bucket",
        "chatapi_deltas_total",
        "chatapi_open_streams",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(text.contains("persona=\"default\"") && text.contains("outcome=\"ok\""));
}

/// HTTP/1.1 only by default (what FaceTo-AI and TLS proxies speak); `server.http2` also accepts
/// h2c from a proxy configured to use it.
#[tokio::test]
async fn inbound_h2c_only_when_enabled() {
    let h2c = || {
        reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap()
    };
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], "").await;
    assert!(
        h2c()
            .post(server.chat_url())
            .body(faceto_body("hi").to_string())
            .send()
            .await
            .is_err(),
        "an HTTP/1.1-only server does not speak h2c"
    );
    let (status, answer) = chat(&server.chat_url(), &faceto_body("hi")).await;
    assert_eq!((status.as_u16(), answer.done), (200, true));

    let server = Server::start_env(&[&up], "", &[("CHATAPI__SERVER__HTTP2", "true")]).await;
    let response = h2c()
        .post(server.chat_url())
        .body(faceto_body("hi").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let answer = faceto_parse(&response.bytes().await.unwrap());
    assert_eq!(answer.text(), "Hello there.");
    assert!(answer.done);
    let (status, _) = chat(&server.chat_url(), &faceto_body("hi")).await;
    assert_eq!(status, 200, "HTTP/1.1 still works beside it");
}

/// A connection starts with small buffers (`server::CONNECTION_BUF`, 1 KB): a request whose head
/// and body are far larger still arrives whole, and a second request sent in the same write right
/// behind it (pipelined, its bytes already read with the first's) is answered after it.
#[tokio::test]
async fn requests_larger_than_a_connections_first_buffer_arrive_whole() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], "").await;
    let long: String = (0..6000).map(|i| format!("w{i} ")).collect();
    let request = |body: &Value, padding: usize| {
        let body = body.to_string();
        format!(
            "POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Padding: {}\r\nContent-Length: {}\r\n\r\n{body}",
            "p".repeat(padding),
            body.len()
        )
    };
    let both = request(&faceto_body(&long), 6000) + &request(&faceto_body("and now?"), 0);
    assert!(both.len() > 32 * 1024, "{}", both.len());
    let mut socket = tokio::net::TcpStream::connect(server.url.trim_start_matches("http://"))
        .await
        .unwrap();
    socket.write_all(both.as_bytes()).await.unwrap();

    // Both responses, read until the second one's last chunk.
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while raw.windows(5).filter(|w| w == b"0\r\n\r\n").count() < 2 {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
    }
    let raw = String::from_utf8(raw).unwrap();
    assert_eq!(raw.matches("HTTP/1.1 200 OK").count(), 2, "{raw}");
    assert_eq!(raw.matches("data: [DONE]").count(), 2, "{raw}");
    let received = up.received();
    assert_eq!(received.len(), 2);
    let last = |r: &common::fake_upstream::Received| {
        let messages = r.body["messages"].as_array().unwrap().clone();
        messages.last().unwrap()["content"].clone()
    };
    assert_eq!(last(&received[0]), long.as_str());
    assert_eq!(last(&received[1]), "and now?");
}
