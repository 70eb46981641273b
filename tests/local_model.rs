//! The embedded model, loaded from the real GGUF file (`scripts/fetch-model.sh` puts it in place;
//! these tests fail, naming that command, when it is missing).
#![cfg(feature = "local")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use chatapi::conversation::{Message, Role};
use chatapi::upstream::local::{Local, LocalSettings};
use chatapi::upstream::{ChatRequest, Sampling};
use common::*;
use futures_util::StreamExt;
use serde_json::json;

const MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

fn model_config(extra: &str) -> String {
    assert!(
        Path::new(MODEL).exists(),
        "{MODEL} is missing: run scripts/fetch-model.sh"
    );
    format!(
        "{}\n[local]\nenabled = true\nmodel_path = \"{MODEL}\"\nthreads = 1\ncontext_tokens = 1024\nparallel = 2\nqueue = 1\n{extra}",
        TEST_BASE.replace("[local]\nenabled = false\n", "")
    )
}

#[tokio::test]
async fn answers_the_capital_of_france_offline() {
    let server = Server::start_toml(&model_config(
        "[personas.default]\nsystem_prompt = \"\"\ntemperature = 0.0\nmax_tokens = 48\n",
    ))
    .await;
    let body = json!({"messages": [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]});
    let (status, answer) = chat(&server.chat_url(), &body).await;
    assert_eq!(status, 200);
    assert!(answer.done, "ends with [DONE]");
    assert!(answer.text().contains("Paris"), "{:?}", answer.text());
    assert!(answer.deltas.len() > 1, "streamed token by token");
}

#[tokio::test]
async fn hanging_up_stops_generation() {
    // A long answer, and a queue of one: the second request only fits once the first one's
    // sequence is free again, which proves the hang-up stopped generation.
    let server = Server::start_toml(&model_config(
        "[personas.default]\nsystem_prompt = \"\"\ntemperature = 0.0\nmax_tokens = 1000\n",
    ))
    .await;
    let local = chatapi::upstream::local::Local::load(
        "probe",
        LocalSettings {
            model_path: MODEL.into(),
            threads: 1,
            context_tokens: 1024,
            parallel: 1,
            queue: 0,
        },
    )
    .unwrap();
    let request = ChatRequest {
        messages: vec![Message::new(
            Role::User,
            "Write a very long story about a dragon.",
        )],
        model: None,
        sampling: Sampling {
            temperature: Some(0.0),
            max_tokens: Some(1000),
            ..Sampling::default()
        },
    };
    let mut stream = local.start(&request).await.unwrap();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    // With one sequence and no queue, a new request is accepted as soon as the engine has
    // dropped the old one; generation of 1000 tokens would take many seconds.
    let started = Instant::now();
    let second = loop {
        match local.start(&request).await {
            Ok(s) => break s,
            // Nothing to await here: the engine frees the sequence on its own thread.
            Err(_) => {
                assert!(
                    started.elapsed() < Duration::from_secs(3),
                    "generation did not stop"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let mut second = second;
    assert!(second.next().await.unwrap().is_ok());

    // And through HTTP: hang up mid-answer, then the server still answers the next caller.
    let response = faceto_request(
        &client(),
        &server.chat_url(),
        &faceto_body("Tell me a long story."),
        "",
    )
    .send()
    .await
    .unwrap();
    let mut body = response.bytes_stream();
    assert!(body.next().await.unwrap().unwrap().starts_with(b"data: "));
    drop(body);
    let (status, answer) = chat(
        &server.chat_url(),
        &json!({"messages":[{"role":"user","content":"Say hi."}]}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(answer.done);
}

#[tokio::test]
async fn a_full_queue_is_503_with_retry_after() {
    let server = Server::start_toml(&model_config(
        "[personas.default]\nsystem_prompt = \"\"\ntemperature = 0.0\nmax_tokens = 1000\n",
    ))
    .await;
    let long =
        json!({"messages":[{"role":"user","content":"Write a very long story about a dragon."}]});
    // parallel = 2 sequences + queue = 1 waiting: the fourth caller is turned away.
    let mut open = Vec::new();
    for _ in 0..3 {
        let r = client()
            .post(server.chat_url())
            .body(long.to_string())
            .send();
        open.push(tokio::spawn(r));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = client()
            .post(server.chat_url())
            .body(long.to_string())
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            assert!(r.headers().contains_key("retry-after"));
            let text = r.text().await.unwrap();
            assert!(text.contains("overloaded"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "never saw 503");
    }
    for o in open {
        o.abort();
    }
}

#[tokio::test]
async fn missing_or_corrupt_model_is_a_clear_startup_error() {
    let settings = |path: &str| LocalSettings {
        model_path: path.into(),
        threads: 1,
        context_tokens: 256,
        parallel: 1,
        queue: 1,
    };
    let err = Local::load("x", settings("models/nope.gguf"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("models/nope.gguf") && err.contains("scripts/fetch-model.sh"),
        "{err}"
    );
    let junk = TempFile::with("this is not a model");
    let err = Local::load("x", settings(junk.0.to_str().unwrap()))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("not a GGUF model") && err.contains("scripts/fetch-model.sh"),
        "{err}"
    );
}

#[test]
fn chat_template_comes_from_the_gguf() {
    // SmolLM2's template is ChatML; the prompt ends by opening the assistant's turn.
    let prompt = chatapi::upstream::local::render_prompt(
        Path::new(MODEL),
        &[
            Message::new(Role::System, "Be brief."),
            Message::new(Role::User, "hi"),
        ],
    )
    .unwrap();
    assert_eq!(
        prompt,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );
}
