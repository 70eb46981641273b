//! The embedded model, loaded from the real GGUF file (`scripts/fetch-model.sh` puts it in place;
//! these tests fail, naming that command, when it is missing).
#![cfg(feature = "local")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatapi::conversation::{Message, Role};
use chatapi::upstream::local::text::Defaults;
use chatapi::upstream::local::{Local, LocalSettings};
use chatapi::upstream::{ChatRequest, Event, Sampling};
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
        // A cold prompt on a busy 2-core machine can take seconds: the limit is for hangs, the
        // benchmark owns the timings.
        TEST_BASE
            .replace("[local]\nenabled = false\n", "")
            .replace("first_token = \"3s\"", "first_token = \"30s\"")
    )
}

/// Model tests run one at a time: each loads its own engine, and two cores shared by several
/// decoding engines make every first token late. Held for the whole test.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

#[tokio::test]
async fn answers_the_capital_of_france_offline() {
    let _serial = one_at_a_time().await;
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
    let metrics = server.metrics().await;
    for family in [
        "chatapi_local_prompt_tokens_total{upstream=\"local\"}",
        "chatapi_local_reused_tokens_total{upstream=\"local\"}",
    ] {
        assert!(
            metrics.contains(family),
            "{family} missing from:\n{metrics}"
        );
    }
}

/// A newcomer's first question, on the defaults alone (the default persona, no temperature or
/// top_p): the model card's sampling answers it right time after time, where llama.cpp's generic
/// 0.8 / 0.95 did 2 times in 5.
#[tokio::test]
async fn the_default_sampling_answers_right_time_after_time() {
    let _serial = one_at_a_time().await;
    // The default persona, as a newcomer gets it.
    let server = Server::start_toml(&model_config("")).await;
    let body = json!({"messages": [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]});
    let mut answers = Vec::new();
    for _ in 0..10 {
        let (status, answer) = chat(&server.chat_url(), &body).await;
        assert_eq!(status, 200);
        answers.push(answer.text());
    }
    let right = answers.iter().filter(|a| a.contains("Paris")).count();
    eprintln!("default sampling: {right} of 10 right");
    assert!(right >= 8, "{right} of 10 right: {answers:?}");
}

/// FaceTo-AI resends the whole call every turn. With no `context_tokens` set, the embedded model
/// still answers a call far longer than its context: the oldest turns give way, the question
/// stays.
#[tokio::test]
async fn a_two_thousand_turn_call_still_gets_answered() {
    let _serial = one_at_a_time().await;
    let server = Server::start_toml(&model_config(
        "[personas.default]\nsystem_prompt = \"You are Ava.\"\ntemperature = 0.0\nmax_tokens = 32\n",
    )
    // A small context keeps the prefill (about 140 tokens/s on one core) short.
    .replace("context_tokens = 1024", "context_tokens = 256"))
    .await;
    let mut messages: Vec<_> = (0..2000)
        .map(|i| {
            if i % 2 == 0 {
                json!({"role": "user", "content": format!("Ann said this is remark number {i} in a long call"), "name": "Ann"})
            } else {
                json!({"role": "assistant", "content": format!("And this is my answer number {i}."), "name": "Ava"})
            }
        })
        .collect();
    messages.push(json!({"role": "user", "content": "What is the capital of France? Answer in one sentence.", "name": "Ann"}));
    let (status, answer) = chat(&server.chat_url(), &json!({"messages": messages})).await;
    assert_eq!(status, 200, "{:?}", answer.text());
    assert!(answer.done);
    assert!(answer.text().contains("Paris"), "{:?}", answer.text());

    // What cannot be dropped (the latest question) and still does not fit is the caller's error.
    let huge = "word ".repeat(2000);
    let response = client()
        .post(server.chat_url())
        .body(json!({"messages": [{"role": "user", "content": huge}]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "context_length_exceeded");
}

#[tokio::test]
async fn hanging_up_stops_generation() {
    let _serial = one_at_a_time().await;
    // A long answer, and a queue of one: the second request only fits once the first one's
    // sequence is free again, which proves the hang-up stopped generation.
    // One sequence over HTTP too, and a first-token limit shorter than the long answer takes:
    // the next caller is answered only if the hang-up freed the sequence.
    let server = Server::start_toml(
        &model_config(
            "[personas.default]\nsystem_prompt = \"\"\ntemperature = 0.0\nmax_tokens = 1000\ntimeouts = { first_token = \"6s\" }\n",
        )
        .replace("parallel = 2", "parallel = 1"),
    )
    .await;
    // One sequence and a queue of one: while the first answer generates, a second request waits
    // in the queue and a third is refused. Once the first caller hangs up, the engine must drop
    // that sequence and take the second, which frees the queue for the third.
    let local = load_local("probe", 1, 1);
    let request = greedy(
        &[Message::new(
            Role::User,
            "Write a very long story about a dragon.",
        )],
        1000,
    );
    let mut first = local.start(&request).await.unwrap();
    first.next().await.unwrap().unwrap();
    let _second = local.start(&request).await.unwrap();
    assert!(
        local.start(&request).await.is_err(),
        "queue full while the first generates"
    );
    drop(first);
    let started = Instant::now();
    let mut third = loop {
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
    drop(_second);
    assert!(third.next().await.unwrap().is_ok());

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
    // Past the keep-alives the server sends while the model is slow to its first token, as it is
    // when the rest of the suite (or a build) shares the two cores (`keepalive` is 2 s here).
    const PING: &[u8] = b": ping\n\n";
    let mut first = body.next().await.unwrap().unwrap();
    while first.starts_with(PING) {
        first = if first.len() > PING.len() {
            first.slice(PING.len()..)
        } else {
            body.next().await.unwrap().unwrap()
        };
    }
    assert!(first.starts_with(b"data: "), "{first:?}");
    drop(body);
    let (status, answer) = chat(
        &server.chat_url(),
        &json!({"messages":[{"role":"user","content":"Say hi."}]}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(answer.done);
    assert!(!answer.text().is_empty(), "the freed sequence answered");
}

/// The model at `MODEL` on one thread, `parallel` sequences, `queue` waiting places.
fn load_local(name: &str, parallel: u32, queue: usize) -> Arc<Local> {
    load_local_with_context(name, parallel, queue, 1024)
}

fn load_local_with_context(
    name: &str,
    parallel: u32,
    queue: usize,
    context_tokens: u32,
) -> Arc<Local> {
    Arc::new(
        Local::load(
            name,
            LocalSettings {
                model_path: MODEL.into(),
                threads: 1,
                batch_threads: 1,
                context_tokens,
                parallel,
                queue,
                reuse_cache: true,
                sampling: Defaults::LLAMA_CPP,
                chat_template: None,
            },
        )
        .unwrap(),
    )
}

fn greedy(messages: &[Message], max_tokens: u32) -> ChatRequest {
    ChatRequest {
        messages: messages.to_vec(),
        model: None,
        sampling: Sampling {
            temperature: Some(0.0),
            max_tokens: Some(max_tokens),
            ..Sampling::default()
        },
        ..ChatRequest::default()
    }
}

async fn answer(local: &Arc<Local>, messages: &[Message]) -> String {
    answer_within(local, messages, 24).await
}

async fn answer_within(local: &Arc<Local>, messages: &[Message], max_tokens: u32) -> String {
    let mut stream = local.start(&greedy(messages, max_tokens)).await.unwrap();
    let mut text = String::new();
    while let Some(event) = stream.next().await {
        if let Event::Text(delta) = event.unwrap() {
            text.push_str(&delta);
        }
    }
    text
}

/// FaceTo-AI resends the whole call every turn: the engine keeps each sequence's cache after an
/// answer, so the next turn decodes only what is new.
#[tokio::test]
async fn the_next_turn_of_a_call_reuses_the_cached_prompt() {
    let _serial = one_at_a_time().await;
    let local = load_local("reuse-probe", 2, 2);
    let mut call = vec![
        Message::new(Role::System, "You are a helpful assistant."),
        Message::new(Role::User, "Hi! My name is Ann."),
    ];
    let first = answer(&local, &call).await;
    let first_prompt = local.stats().prompt_tokens();
    assert_eq!(local.stats().reused_tokens(), 0, "nothing cached yet");

    call.push(Message::new(Role::Assistant, first));
    call.push(Message::new(
        Role::User,
        "What is the capital of France? Answer in one sentence.",
    ));
    let second = answer(&local, &call).await;
    assert!(second.contains("Paris"), "{second:?}");
    let reused = local.stats().reused_tokens();
    assert!(
        reused + 1 >= first_prompt,
        "the first turn's prompt was not decoded again: {reused} of {first_prompt} reused"
    );

    // Another call shares at most the system prompt's opening: it starts on the empty sequence
    // and still answers correctly.
    let other = [Message::new(
        Role::User,
        "What is the capital of France? Answer in one sentence.",
    )];
    assert!(answer(&local, &other).await.contains("Paris"));
}

/// A call longer than the context is trimmed on every turn. The oldest turns go in blocks, so the
/// start of the kept history stays the same for several turns and most turns still find their
/// prompt's start in the cache (dropping exactly what is needed would move it every turn).
#[tokio::test]
async fn a_trimmed_long_call_still_reuses_its_cache() {
    let _serial = one_at_a_time().await;
    let local = load_local_with_context("trim-probe", 1, 1, 512);
    let mut call: Vec<Message> = (0..40)
        .flat_map(|i| {
            [
                Message::new(Role::User, format!("Tell me about topic number {i}.")),
                Message::new(
                    Role::Assistant,
                    format!("Topic {i} is interesting for many reasons."),
                ),
            ]
        })
        .collect();
    // A turn adds about 26 tokens (8-token answers) and the cut moves in blocks of about 126, so
    // at most 2 of the 6 turns after the first can move it.
    let mut mostly_reused = 0;
    for turn in 0..7 {
        call.push(Message::new(Role::User, format!("And subject {turn}?")));
        let (prompt_before, reused_before) =
            (local.stats().prompt_tokens(), local.stats().reused_tokens());
        let text = answer_within(&local, &call, 8).await;
        let prompt = local.stats().prompt_tokens() - prompt_before;
        let reused = local.stats().reused_tokens() - reused_before;
        assert!(prompt < 512, "trimmed to fit: {prompt} tokens");
        if turn > 0 && reused * 2 >= prompt {
            mostly_reused += 1;
        }
        call.push(Message::new(Role::Assistant, text));
    }
    assert!(
        mostly_reused >= 3,
        "only {mostly_reused} of the 6 turns after the first found most of their prompt cached"
    );
}

/// Any edit to the config file reloads it. A reload that leaves `[local]` alone keeps the engine,
/// and with it the calls it has cached; one that changes `[local]` loads a fresh one.
#[tokio::test]
async fn a_reload_keeps_an_unchanged_engine_and_its_cache() {
    let _serial = one_at_a_time().await;
    let server = Server::start_toml(&model_config(
        "[[upstreams]]\nname = \"reload-probe\"\nkind = \"local\"\n[personas.default]\nsystem_prompt = \"You are Ava.\"\ntemperature = 0.0\nmax_tokens = 8\n",
    ))
    .await;
    let reused = || async {
        server
            .metrics()
            .await
            .lines()
            .find_map(|l| {
                l.strip_prefix("chatapi_local_reused_tokens_total{upstream=\"reload-probe\"} ")
            })
            .map_or(0, |v| v.parse::<u64>().unwrap())
    };
    let mut call = vec![json!({"role": "user", "content": "Hi! My name is Ann."})];
    let mut next_turn = |answer: String, question: &str| {
        call.push(json!({"role": "assistant", "content": answer}));
        call.push(json!({"role": "user", "content": question}));
        json!({ "messages": call.clone() })
    };
    let (status, first) = chat(
        &server.chat_url(),
        &json!({ "messages": [{"role": "user", "content": "Hi! My name is Ann."}] }),
    )
    .await;
    assert_eq!(status, 200);

    server.reload_with(|t| t.replace("max_tokens = 8", "max_tokens = 9"));
    let before = reused().await;
    let (status, second) = chat(&server.chat_url(), &next_turn(first.text(), "How are you?")).await;
    assert_eq!(status, 200);
    assert!(
        reused().await > before,
        "the engine and its cache survived a reload that left [local] alone"
    );

    server.reload_with(|t| t.replace("queue = 1", "queue = 2"));
    let before = reused().await;
    let (status, _) = chat(&server.chat_url(), &next_turn(second.text(), "And today?")).await;
    assert_eq!(status, 200);
    assert_eq!(
        reused().await,
        before,
        "a changed [local] loads a fresh engine"
    );
}

#[tokio::test]
async fn a_full_queue_is_503_with_retry_after() {
    let _serial = one_at_a_time().await;
    let server = Server::start_toml(&model_config(
        "[personas.default]\nsystem_prompt = \"\"\ntemperature = 0.0\nmax_tokens = 1000\n",
    ))
    .await;
    let long =
        json!({"messages":[{"role":"user","content":"Write a very long story about a dragon."}]});
    // parallel = 2 sequences + queue = 1 waiting: a fourth caller is turned away. The first two
    // are awaited (their status comes with their first token), so both sequences are busy.
    let mut open = Vec::new();
    for _ in 0..2 {
        let r = client()
            .post(server.chat_url())
            .body(long.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        open.push(r);
    }
    let queued = tokio::spawn(
        client()
            .post(server.chat_url())
            .body(long.to_string())
            .send(),
    );
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
        // This one got the queue's place before the spawned request: dropping it frees it again.
        assert!(Instant::now() < deadline, "never saw 503");
    }
    queued.abort();
    drop(open);
}

#[tokio::test]
async fn missing_or_corrupt_model_is_a_clear_startup_error() {
    let _serial = one_at_a_time().await;
    let settings = |path: &str| LocalSettings {
        model_path: path.into(),
        threads: 1,
        batch_threads: 1,
        context_tokens: 256,
        parallel: 1,
        queue: 1,
        reuse_cache: true,
        sampling: Defaults::LLAMA_CPP,
        chat_template: None,
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
    // A template llama.cpp does not know is refused at start, with the setting named.
    let unknown = LocalSettings {
        chat_template: Some("no-such-template".into()),
        ..settings(MODEL)
    };
    let err = Local::load("x", unknown).err().unwrap().to_string();
    assert!(err.contains("cannot write a conversation"), "{err}");
    // One it knows serves in place of the model's own.
    let chatml = LocalSettings {
        chat_template: Some("chatml".into()),
        ..settings(MODEL)
    };
    assert!(Local::load("x", chatml).is_ok());
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

/// llama.cpp's static destructors run when the process exits; an engine thread still decoding
/// then crashes the process. SIGTERM in the middle of two answers must still exit 0.
#[tokio::test]
async fn sigterm_while_generating_exits_zero() {
    let _serial = one_at_a_time().await;
    let config = TempFile::with(
        &model_config(
            "[personas.default]\nsystem_prompt = \"\"\ntemperature = 0.0\nmax_tokens = 1000\n",
        )
        .replace("shutdown_grace = \"2s\"", "shutdown_grace = \"50ms\""),
    );
    let mut server = common::process::Running::start(&config).await;
    let url = format!("{}/chat", server.url);
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let response = faceto_request(
            &client(),
            &url,
            &faceto_body("Write a very long story about a dragon."),
            "",
        )
        .send()
        .await
        .unwrap();
        let mut body = response.bytes_stream();
        let first = body.next().await.unwrap().unwrap().to_vec();
        bodies.push((first, body));
    }
    server.signal("-TERM");
    for (mut got, mut body) in bodies {
        while let Some(chunk) = body.next().await {
            got.extend_from_slice(&chunk.unwrap());
        }
        assert!(faceto_parse(&got).done, "ended with [DONE]");
    }
    let status = server.exit_status().await;
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// A reload that changes `[local]` loads a new engine; an answer already streaming finishes on
/// the old one (it is not cut: no `on_error_text`), and the next call gets the new one.
#[tokio::test]
async fn a_reload_that_replaces_the_engine_lets_answers_in_flight_finish() {
    let _serial = one_at_a_time().await;
    let server = Server::start_toml(&model_config(
        "[personas.default]\nsystem_prompt = \"\"\ntemperature = 0.0\nmax_tokens = 300\non_error_text = \"CUT SHORT\"\n",
    ))
    .await;
    let long =
        json!({"messages":[{"role":"user","content":"Write a very long story about a dragon."}]});
    let response = faceto_request(&client(), &server.chat_url(), &long, "")
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut all = body.next().await.unwrap().unwrap().to_vec();
    server.reload_with(|t| t.replace("queue = 1", "queue = 2"));
    while let Some(chunk) = body.next().await {
        all.extend_from_slice(&chunk.unwrap());
    }
    let answer = common::faceto_parse(&all);
    assert!(answer.done);
    assert!(
        !answer.text().contains("CUT SHORT"),
        "the answer in flight was cut by the reload: {:?}",
        answer.text()
    );
    assert!(answer.deltas.len() > 20, "{:?}", answer.text());
    let (status, next) = chat(
        &server.chat_url(),
        &json!({"messages":[{"role":"user","content":"Say hi."}]}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(next.done && !next.text().is_empty());
}

/// A video chat end to end on the embedded model, no key and no network: a MAVI chat about a
/// test video, whose timeline must be cut to fit the model's 1,024-token context.
#[tokio::test]
async fn a_mavi_chat_about_a_video_is_answered_by_the_embedded_model() {
    let _serial = one_at_a_time().await;
    let store = common::videos::storage();
    let server = Server::start_toml(&model_config(&format!(
        "[storage]\ndir = \"{}\"\n[videos]\nenabled = true\nspeech_binary = \"\"\nspeech_model = \"\"\n\
         [personas.video]\ntemperature = 0.0\nmax_tokens = 48\n",
        store.display()
    )))
    .await;
    let form = common::videos::form(&common::videos::made().with_track(), vec![]);
    let up: serde_json::Value = client()
        .post(format!("{}/api/serve/video/upload", server.url))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let no = up["data"]["videoNo"].as_str().unwrap().to_string();
    let video = common::videos::settled(&server.url, &no, None).await;
    assert_eq!(video["status"], "ready", "{video}");
    let r = client()
        .post(format!("{}/api/serve/video/chat", server.url))
        .json(&json!({"videoNos": [no], "message": "What do they plant?", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let pieces: Vec<serde_json::Value> = body
        .split("\n\n")
        .filter_map(|e| e.trim().strip_prefix("data:"))
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(!pieces.is_empty(), "{body}");
    assert!(
        pieces.iter().all(|p| p["code"] == "0000"),
        "every event a success, none an error (a prompt over the model's context would be): {body}"
    );
    let text: String = pieces
        .iter()
        .map(|p| p["data"]["msg"].as_str().unwrap().to_string())
        .collect();
    assert!(!text.trim().is_empty(), "{body}");
    // The small model's prompt (a short timeline, one task, an example of a cited answer) has it
    // say the fact and cite the moment; any stamp it makes up is checked away.
    assert!(text.to_lowercase().contains("tomato"), "{text}");
    assert!(text.contains("[00:04]"), "{text}");
    // Held whole while it is checked (it could have been replaced): it arrives in one piece.
    let said = pieces
        .iter()
        .filter(|p| p["data"]["msg"].as_str().is_some_and(|m| !m.is_empty()))
        .count();
    assert_eq!(said, 1, "{body}");
}
