//! The OpenAI front door, driven by real clients: the official openai Python SDK (each scenario
//! in `tests/clients/openai_sdk.py`, against a fake upstream scripted here) and async-openai as a
//! Rust client; plus the wire details and persona rules the SDKs cannot see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessage, CreateChatCompletionRequestArgs,
};
use common::fake_upstream::FAKE_PROMPT_TOKENS;
use common::{client, FakeUpstream, Reply, Server, Step};
use futures_util::StreamExt;
use serde_json::{json, Value};

const KEY: &str = "sk-room";

fn config() -> String {
    format!("[auth]\nkeys = [\"{KEY}\"]\n[personas.tutor]\nsystem_prompt = \"You teach.\"\n")
}

/// Runs one scenario of `tests/clients/openai_sdk.py` against `server`; fails with its output.
async fn sdk(scenario: &str, server: &Server) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv-clients/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-test-clients.sh",
        python.display()
    );
    let out = tokio::process::Command::new(python)
        .arg(root.join("tests/clients/openai_sdk.py"))
        .args([scenario, &format!("{}/v1", server.url), KEY])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "openai SDK scenario {scenario} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tool_call_reply() -> Reply {
    let piece = |id: Option<&str>, name: Option<&str>, args: &str| Step::ToolCall {
        index: 0,
        id: id.map(Into::into),
        name: name.map(Into::into),
        arguments: args.into(),
    };
    Reply::Stream(vec![
        piece(Some("call_1"), Some("get_weather"), ""),
        piece(None, None, "{\"city\":"),
        piece(None, None, "\"Oslo\"}"),
        Step::Finish("tool_calls".into()),
    ])
}

#[tokio::test]
async fn sdk_streams_chat_completions_with_role_finish_and_usage() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], &config()).await;
    sdk("chat_stream", &server).await;
    let sent = &up.received()[0].body;
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert_eq!(sent["messages"][0]["content"], "You are a friendly assistant speaking in a live video call. Answer in short, natural spoken sentences without markdown, lists or emoji.");
}

#[tokio::test]
async fn sdk_reads_a_whole_completion_and_sampling_passes_through() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], &config()).await;
    sdk("chat_whole", &server).await;
    let sent = &up.received()[0].body;
    assert_eq!(sent["seed"], 7);
    assert_eq!(sent["logprobs"], true);
    assert_eq!(sent["top_logprobs"], 2);
    assert!((sent["temperature"].as_f64().unwrap() - 0.3).abs() < 1e-6);
    assert_eq!(sent["messages"][0]["content"], "You teach.");
    assert_eq!(sent["stream"], true, "upstreams are always streamed");
    let _ = FAKE_PROMPT_TOKENS;
}

#[tokio::test]
async fn sdk_tool_calls_are_relayed_whole_and_streamed() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], &config()).await;
    up.push(tool_call_reply());
    up.push(tool_call_reply());
    sdk("chat_tools", &server).await;
    let received = up.received();
    assert_eq!(received.len(), 3);
    assert_eq!(
        received[0].body["tools"][0]["function"]["name"],
        "get_weather"
    );
    let follow = &received[2].body["messages"];
    let n = follow.as_array().unwrap().len();
    assert_eq!(follow[n - 2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(follow[n - 1]["role"], "tool");
    assert_eq!(follow[n - 1]["tool_call_id"], "call_1");
}

#[tokio::test]
async fn sdk_raises_its_own_exceptions() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], &config()).await;
    up.push(Reply::Stream(vec![Step::Text("Hello".into()), Step::Cut]));
    sdk("errors", &server).await;
    assert_eq!(
        up.received().len(),
        1,
        "refused requests never reach the upstream"
    );
}

#[tokio::test]
async fn sdk_responses_whole_and_streamed() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], &config()).await;
    sdk("responses_whole", &server).await;
    sdk("responses_stream", &server).await;
    let sent = &up.received()[0].body["messages"];
    // The persona's prompt, then the caller's instructions, then the input.
    assert_eq!(sent[1]["role"], "system");
    assert_eq!(sent[1]["content"], "Be brief.");
    assert_eq!(sent[2]["content"], "Say hello.");
}

#[tokio::test]
async fn sdk_lists_personas_as_models() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], &config()).await;
    sdk("models", &server).await;
}

#[tokio::test]
async fn async_openai_client_streams_and_reads_whole_answers() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], &config()).await;
    let openai = async_openai::Client::with_config(
        OpenAIConfig::new()
            .with_api_base(format!("{}/v1", server.url))
            .with_api_key(KEY),
    );
    let request = CreateChatCompletionRequestArgs::default()
        .model("tutor")
        .messages([ChatCompletionRequestUserMessage::from("Say hello.").into()])
        .build()
        .unwrap();
    let whole = openai.chat().create(request.clone()).await.unwrap();
    assert_eq!(
        whole.choices[0].message.content.as_deref(),
        Some("Hello there.")
    );
    assert_eq!(whole.usage.unwrap().prompt_tokens, FAKE_PROMPT_TOKENS);

    let mut stream = openai.chat().create_stream(request).await.unwrap();
    let mut text = String::new();
    let mut finish = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        for choice in chunk.choices {
            text.push_str(choice.delta.content.as_deref().unwrap_or(""));
            finish = choice.finish_reason.or(finish);
        }
    }
    assert_eq!(text, "Hello there.");
    assert!(finish.is_some());
}

/// Every event is one `data: ` line and a blank line; the stream ends with `data: [DONE]`.
#[tokio::test]
async fn stream_framing_is_plain_sse() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], &config()).await;
    let body = client()
        .post(format!("{}/v1/chat/completions", server.url))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(json!({"model": "default", "stream": true, "messages": [{"role": "user", "content": "hi"}]}).to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    let events: Vec<&str> = body.trim_end().split("\n\n").collect();
    for event in &events[..events.len() - 1] {
        let data = event
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("{event}"));
        assert!(!data.contains('\n'));
        let chunk: Value = serde_json::from_str(data).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
    }
    assert_eq!(
        up.received()[0].body.get("stream_options"),
        None,
        "no usage asked, none requested"
    );
}

/// The persona's own values win; a field it does not leave to callers is not sent.
#[tokio::test]
async fn the_persona_decides_what_callers_may_set() {
    let up = FakeUpstream::start().await;
    let extra = format!(
        "{}[personas.strict]\ntemperature = 0.1\ncaller_may_set = [\"seed\", \"temperature\"]\n",
        config()
    );
    let server = Server::start(&[&up], &extra).await;
    let response = client()
        .post(format!("{}/v1/chat/completions", server.url))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(
            json!({"model": "strict", "temperature": 1.5, "top_p": 0.5, "seed": 3,
            "messages": [{"role": "user", "content": "hi"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let sent = &up.received()[0].body;
    assert!((sent["temperature"].as_f64().unwrap() - 0.1).abs() < 1e-6);
    assert_eq!(sent.get("top_p"), None);
    assert_eq!(sent["seed"], 3);
}

/// An upstream that finishes with a reason and closes without `[DONE]` has finished.
#[tokio::test]
async fn a_clean_end_without_done_is_not_an_error() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], &config()).await;
    up.push(Reply::Stream(vec![
        Step::Text("All".into()),
        Step::Finish("stop".into()),
        Step::EndWithoutDone,
    ]));
    let body: Value = serde_json::from_str(
        &client()
            .post(format!("{}/v1/chat/completions", server.url))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(
                json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]})
                    .to_string(),
            )
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "All");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
}

/// Logprobs the caller asked for stream back as the upstream sent them.
#[tokio::test]
async fn logprobs_stream_back_unchanged() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], &config()).await;
    let body = client()
        .post(format!("{}/v1/chat/completions", server.url))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(
            json!({"model": "default", "stream": true, "logprobs": true,
                "messages": [{"role": "user", "content": "hi"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let tokens: Vec<String> = body
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .flat_map(|c| {
            c["choices"][0]["logprobs"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|t| t["token"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tokens, ["Hello", " there", "."]);
}
