//! What a hostile caller, a careless upstream or a careless config could do, each pinned by a
//! test that fails without its fix.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{chat, chat_error, client, faceto_body, FakeUpstream, Reply, Server, Step};
use serde_json::json;
use tokio::io::AsyncWriteExt;

/// Persona names from the path never become metric series: a caller could mint them forever.
#[tokio::test]
async fn invented_personas_do_not_become_metric_series() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], "[auth]\nkeys = [\"k\"]\n").await;
    for i in 0..50 {
        let url = format!("{}/chat/rnd{i}", server.url);
        let (status, _) = chat_error(&url, faceto_body("hi").to_string(), "wrong").await;
        assert_eq!(status, 401);
    }
    let metrics = server.metrics().await;
    assert!(!metrics.contains("rnd"), "{metrics}");
    assert!(metrics.contains("persona=\"unknown\""), "{metrics}");
}

/// The caller gets a stable code and a sentence; the upstream's name, its own words and its
/// address stay in the log line.
#[tokio::test]
async fn upstream_internals_stay_out_of_error_bodies() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], "").await;
    up.push(Reply::status(
        500,
        "db_down",
        "primary db at 10.1.2.3 exploded",
    ));
    let (status, body) = chat_error(&server.chat_url(), faceto_body("hi").to_string(), "").await;
    assert_eq!(status, 502);
    let text = body.to_string();
    let host = up
        .base_url
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .to_string();
    for leak in ["10.1.2.3", "exploded", "up0", host.as_str()] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
    assert_eq!(body["error"]["code"], "upstream_error");

    let dead = Server::start_toml(&format!(
        "{}[[upstreams]]\nname = \"secret-name\"\nbase_url = \"{}\"\nmodel = \"m\"\n",
        common::TEST_BASE,
        common::dead_base_url()
    ))
    .await;
    let (status, body) = chat_error(&dead.chat_url(), faceto_body("hi").to_string(), "").await;
    assert_eq!(status, 502);
    let text = body.to_string();
    assert!(
        !text.contains("secret-name") && !text.contains("127.0.0.1"),
        "{text}"
    );
    assert_eq!(body["error"]["code"], "upstream_unreachable");
}

/// A flood of bad keys is rate limited by IP, not answered 401 forever at full speed.
#[tokio::test]
async fn the_ip_limit_applies_before_the_key_check() {
    let up = FakeUpstream::start().await;
    let server = Server::start(
        &[&up],
        "[auth]\nkeys = [\"k\"]\n[limits]\nper_ip_per_minute = 1\nper_ip_burst = 2\n",
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, _) =
            chat_error(&server.chat_url(), faceto_body("hi").to_string(), "bad").await;
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 429]);
}

/// A body that trickles in holds no stream slot: with a cap of one, others are still served.
#[tokio::test]
async fn a_slow_body_holds_no_stream_slot() {
    let up = FakeUpstream::start().await;
    let server = Server::start(
        &[&up],
        "[limits]\nmax_concurrent_streams = 1\nbody_timeout = \"5s\"\n",
    )
    .await;
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"POST /chat HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"mess")
        .await
        .unwrap();
    // The slow request is in its body read: the server has its headers and waits for the rest.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, answer) = chat(&server.chat_url(), &faceto_body("hi")).await;
    assert_eq!(status, 200, "the slow body must not hold the only slot");
    assert!(answer.done);
    drop(slow);
}

/// An upstream that finished (a `finish_reason`) and closed without `[DONE]` completed its
/// answer: no apology is spoken after it.
#[tokio::test]
async fn a_finished_answer_without_done_gets_no_error_text() {
    let up = FakeUpstream::start().await;
    let server = Server::start(
        &[&up],
        "[personas.default]\non_error_text = \"Sorry, I lost my train of thought.\"\n",
    )
    .await;
    up.push(Reply::Stream(vec![
        Step::Text("All".into()),
        Step::Text(" done.".into()),
        Step::Finish("stop".into()),
        Step::EndWithoutDone,
    ]));
    let (status, answer) = chat(&server.chat_url(), &faceto_body("hi")).await;
    assert_eq!(status, 200);
    assert_eq!(answer.deltas, ["All", " done."]);
    assert!(answer.done);
}

/// An absurd `Retry-After` from an upstream is survived, and capped on the way out.
#[tokio::test]
async fn absurd_retry_after_from_an_upstream_is_survived() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], "").await;
    for value in ["1e300", "-1", "NaN", "99999999999999999999999", "tomorrow"] {
        up.push(Reply::Status {
            code: 429,
            body: json!({"error": {"message": "slow down", "code": "rate_limit_exceeded"}})
                .to_string(),
            headers: vec![("retry-after".into(), value.into())],
        });
        let response = client()
            .post(server.chat_url())
            .body(faceto_body("hi").to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 429, "Retry-After: {value}");
        if let Some(after) = response.headers().get("retry-after") {
            let secs: u64 = after.to_str().unwrap().parse().unwrap();
            assert!(secs <= 3600, "Retry-After: {value} -> {secs}");
        }
    }
}

/// Azure OpenAI's `?api-version=` stays a query, after the path.
#[tokio::test]
async fn a_base_url_with_a_query_keeps_it() {
    let up = FakeUpstream::start().await;
    let toml = format!(
        "{}[[upstreams]]\nname = \"azure\"\nbase_url = \"{}?api-version=2024-10-21\"\nmodel = \"m\"\nheaders = {{ \"api-key\" = \"azure-secret\" }}\n",
        common::TEST_BASE,
        up.base_url
    );
    let server = Server::start_toml(&toml).await;
    let (status, _) = chat(&server.chat_url(), &faceto_body("hi")).await;
    assert_eq!(status, 200);
    let received = &up.received()[0];
    assert_eq!(received.path, "/v1/chat/completions?api-version=2024-10-21");
    assert_eq!(received.header("api-key"), Some("azure-secret"));
}

/// Bytes that can never become text, or a line that never ends, fail the answer at once rather
/// than stalling it until the idle timeout.
#[tokio::test]
async fn garbage_from_an_upstream_fails_fast() {
    let up = FakeUpstream::start().await;
    // An idle limit far above what the assertions allow: only failing fast passes.
    let server = Server::start(
        &[&up],
        "[personas.default]\ntimeouts = { idle = \"30s\" }\n",
    )
    .await;
    let huge = format!("data: {{\"x\":\"{}", "a".repeat(1_100_000));
    for step in [
        Step::Bytes(b"data: {\"choices\":[{\"delta\":{\"content\":\"\xff\xfe\"}}]}\n\n".to_vec()),
        Step::Raw(huge),
    ] {
        up.push(Reply::Stream(vec![
            Step::Text("Hi".into()),
            step,
            Step::Hang,
        ]));
        let started = std::time::Instant::now();
        let (status, answer) = chat(&server.chat_url(), &faceto_body("hi")).await;
        assert_eq!(status, 200);
        assert_eq!(answer.text(), "Hi");
        assert!(answer.done);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
    }
}

/// Open to the world with no key: said at start-up and in `/readyz`.
#[tokio::test]
async fn readyz_warns_about_an_open_public_server() {
    let up = FakeUpstream::start().await;
    let server = Server::start_env(&[&up], "", &[("CHATAPI__SERVER__LISTEN", "0.0.0.0:0")]).await;
    let ready = server.readyz().await;
    assert!(
        ready["warnings"][0].as_str().unwrap().contains("auth.keys"),
        "{ready}"
    );
}

/// FaceTo-AI retries a failed answer with the same request id: the retry gets the same answer
/// at once, and the upstream is not asked again.
#[tokio::test]
async fn a_retried_request_id_does_not_go_upstream_again() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::status(500, "server_error", "down"));
    let server = Server::start(&[&up], "").await;
    let send_asking = |id: &'static str, question: &'static str| {
        client()
            .post(server.chat_url())
            .header("x-request-id", id)
            .body(faceto_body(question).to_string())
            .send()
    };
    let send = |id| send_asking(id, "hi");
    for _ in 0..4 {
        assert_eq!(send("3f2a7a9e-retry").await.unwrap().status(), 502);
    }
    assert_eq!(
        up.received().len(),
        1,
        "one round upstream for four client attempts"
    );
    assert_eq!(send("another-id").await.unwrap().status(), 502);
    assert_eq!(up.received().len(), 2, "a new id is a new request");
    assert_eq!(
        send_asking("3f2a7a9e-retry", "something else")
            .await
            .unwrap()
            .status(),
        502
    );
    assert_eq!(
        up.received().len(),
        3,
        "another question under a failed id is a new request"
    );
}

/// `speak_errors`: the avatar apologises in the persona's voice instead of an error status.
#[tokio::test]
async fn speak_errors_answers_a_failure_in_the_personas_voice() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::status(500, "server_error", "down"));
    let server = Server::start(
        &[&up],
        "[personas.default]\non_error_text = \"Sorry, give me a moment.\"\nspeak_errors = true\n",
    )
    .await;
    let (status, answer) = chat(&server.chat_url(), &faceto_body("hi")).await;
    assert_eq!(status, 200);
    assert_eq!(answer.text(), "Sorry, give me a moment.");
    assert!(answer.done);
    // The caller's own mistakes are still errors.
    let (status, _) = chat_error(&server.chat_url(), "{".into(), "").await;
    assert_eq!(status, 400);
}

/// Callers that send a request and never read: each stream (and its upstream request, and its
/// slot) ends once nothing could be written for `timeouts.idle`, instead of living forever.
#[tokio::test]
async fn callers_that_stop_reading_do_not_hold_their_streams() {
    let up = FakeUpstream::start().await;
    // Far more than the socket buffers hold, so the writes block.
    let words: Vec<String> = (0..5000)
        .map(|i| format!("{i:04} {}", "x".repeat(2000)))
        .collect();
    // Then the upstream keeps the request open: only chatapi dropping it ends it.
    let steps = words
        .into_iter()
        .map(Step::Text)
        .chain([Step::Hang])
        .collect();
    up.set_default(Reply::Stream(steps));
    let server = Server::start(&[&up], "").await;
    let addr: std::net::SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    let body = faceto_body("hi").to_string();
    let mut stuck = Vec::new();
    for _ in 0..5 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut conn = socket.connect(addr).await.unwrap();
        conn.write_all(
            format!("POST /chat HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len())
                .as_bytes(),
        )
        .await
        .unwrap();
        stuck.push(conn);
    }
    up.wait_received(5).await;
    for _ in 0..5 {
        assert!(
            up.next_hangup(Duration::from_secs(20)).await.is_some(),
            "a stream whose caller stopped reading was never ended"
        );
    }
    // The slots come back as the streams drop (no event to await on that).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.readyz().await["open_streams"] != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "stream slots still held"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(stuck);
}
