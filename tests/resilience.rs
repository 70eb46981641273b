//! Every way a stream can go wrong, injected with the fake upstream: each one still ends well
//! (the text so far and `[DONE]`, or the right status before the first byte), in time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

const SORRY: &str = "[personas.default]\non_error_text = \"Sorry, I lost my train of thought.\"\n";

async fn answer_of(server: &Server) -> (u16, Answer, Duration) {
    let started = Instant::now();
    let (status, answer) = chat(&server.chat_url(), &faceto_body("hi")).await;
    (status.as_u16(), answer, started.elapsed())
}

#[tokio::test]
async fn error_after_first_token_ends_with_text_so_far_and_done() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], SORRY).await;
    up.push(Reply::Stream(vec![
        Step::Text("I think".into()),
        Step::Raw(
            "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n".into(),
        ),
    ]));
    let (status, answer, _) = answer_of(&server).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer.deltas,
        ["I think", "Sorry, I lost my train of thought."]
    );
    assert!(answer.done);
}

#[tokio::test]
async fn cut_connection_mid_stream_ends_with_done() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], "").await;
    up.push(Reply::Stream(vec![Step::Text("Partial".into()), Step::Cut]));
    let (status, answer, _) = answer_of(&server).await;
    assert_eq!(status, 200);
    assert_eq!(answer.text(), "Partial");
    assert!(answer.done);
}

#[tokio::test]
async fn malformed_chunk_ends_with_done() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], SORRY).await;
    up.push(Reply::Stream(vec![
        Step::Text("Fine so far".into()),
        Step::Raw("data: {\"choices\":[{\"delta\":\n\n".into()),
        Step::Text("never seen".into()),
    ]));
    let (_, answer, _) = answer_of(&server).await;
    assert_eq!(
        answer.deltas,
        ["Fine so far", "Sorry, I lost my train of thought."]
    );
    assert!(answer.done);
}

#[tokio::test]
async fn stall_before_first_token_is_504_when_status_not_yet_sent() {
    let up = FakeUpstream::start().await;
    // first_token (400 ms) shorter than keepalive (2 s): the status is still ours to choose.
    let server = Server::start(
        &[&up],
        "[personas.default.timeouts]\nfirst_token = \"400ms\"\n",
    )
    .await;
    up.push(Reply::Hang);
    let started = Instant::now();
    let (status, json) = chat_error(&server.chat_url(), faceto_body("hi").to_string(), "").await;
    assert_eq!(status, 504);
    assert_eq!(json["error"]["code"], "upstream_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn stall_before_first_token_after_status_pings_then_done() {
    let up = FakeUpstream::start().await;
    // keepalive (200 ms) before first_token (1.5 s): the status goes out, pings keep the line
    // open (about six; the margin absorbs late timers on a busy machine), and the timeout still
    // ends the answer well.
    let server = Server::start_env(
        &[&up],
        "[personas.default]\non_error_text = \"Sorry.\"\n",
        &[
            ("CHATAPI__SERVER__KEEPALIVE", "200ms"),
            ("CHATAPI__TIMEOUTS__FIRST_TOKEN", "1500ms"),
        ],
    )
    .await;
    up.push(Reply::Hang);
    let (status, answer, took) = answer_of(&server).await;
    assert_eq!(status, 200);
    assert!(answer.pings >= 2, "{answer:?}");
    assert_eq!(answer.deltas, ["Sorry."]);
    assert!(answer.done);
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn stall_mid_stream_ends_after_idle_timeout() {
    let up = FakeUpstream::start().await;
    let server = Server::start_env(&[&up], SORRY, &[("CHATAPI__TIMEOUTS__IDLE", "500ms")]).await;
    up.push(Reply::Stream(vec![
        Step::Text("Let me see".into()),
        Step::Hang,
    ]));
    let (status, answer, took) = answer_of(&server).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer.deltas,
        ["Let me see", "Sorry, I lost my train of thought."]
    );
    assert!(answer.done);
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test]
async fn total_deadline_ends_a_trickling_answer() {
    let up = FakeUpstream::start().await;
    let server = Server::start_env(&[&up], "", &[("CHATAPI__TIMEOUTS__TOTAL", "800ms")]).await;
    let mut steps = Vec::new();
    for i in 0..100 {
        steps.push(Step::Text(format!("w{i} ")));
        steps.push(Step::Delay(Duration::from_millis(50)));
    }
    up.push(Reply::Stream(steps));
    let (status, answer, took) = answer_of(&server).await;
    assert_eq!(status, 200);
    assert!(answer.done);
    assert!(!answer.deltas.is_empty() && answer.deltas.len() < 100);
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

/// Opens a stream, waits for `ready`, hangs up, and returns how long the upstream took to see it.
async fn hangup_latency(server: &Server, up: &FakeUpstream, mid_stream: bool) -> Duration {
    let response = faceto_request(&client(), &server.chat_url(), &faceto_body("hi"), "").send();
    if mid_stream {
        let response = response.await.unwrap();
        let mut body = response.bytes_stream();
        let first = body.next().await.unwrap().unwrap();
        assert!(first.starts_with(b"data: "));
        up.wait_received(1).await;
        let left = Instant::now();
        drop(body);
        let seen = up
            .next_hangup(Duration::from_secs(2))
            .await
            .expect("upstream never saw the hang-up");
        seen.saturating_duration_since(left)
    } else {
        let pending = tokio::spawn(response);
        up.wait_received(1).await;
        let left = Instant::now();
        pending.abort();
        let seen = up
            .next_hangup(Duration::from_secs(2))
            .await
            .expect("upstream never saw the hang-up");
        seen.saturating_duration_since(left)
    }
}

#[tokio::test]
async fn hang_up_while_waiting_for_first_token_cancels_upstream_within_100ms() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], "").await;
    up.push(Reply::Hang);
    let took = hangup_latency(&server, &up, false).await;
    assert!(took < Duration::from_millis(100), "{took:?}");
}

#[tokio::test]
async fn hang_up_mid_stream_cancels_upstream_within_100ms() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], "").await;
    up.push(Reply::Stream(vec![
        Step::Text("Once upon a time".into()),
        Step::Hang,
    ]));
    let took = hangup_latency(&server, &up, true).await;
    assert!(took < Duration::from_millis(100), "{took:?}");
}

#[tokio::test]
async fn fails_over_to_the_second_upstream() {
    let (a, b) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let server = Server::start(&[&a, &b], "").await;
    a.push(Reply::status(503, "overloaded", "try later"));
    b.push(Reply::text(&["From", " b"]));
    let (status, answer, _) = answer_of(&server).await;
    assert_eq!(status, 200);
    assert_eq!(answer.text(), "From b");
    assert_eq!((a.received().len(), b.received().len()), (1, 1));

    // A request the upstream rejects as the caller's fault is not tried elsewhere.
    a.push(Reply::status(400, "context_length_exceeded", "too long"));
    let (status, _, _) = answer_of(&server).await;
    assert_eq!(status, 400);
    assert_eq!(b.received().len(), 1);
}

/// Response headers of about `bytes` in all, as a CDN in front of an upstream adds them
/// (cookies, rate limits, trace ids).
fn cdn_headers(bytes: usize) -> Vec<(String, String)> {
    (0..bytes / 100)
        .map(|i| (format!("x-cdn-trace-{i:04}"), "c".repeat(80)))
        .collect()
}

/// A response head of 3.5 KB (several cookies and rate-limit headers) is read like any other.
#[tokio::test]
async fn a_long_response_head_is_read() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], "").await;
    up.push(Reply::Headed(
        cdn_headers(3500),
        vec![Step::Text("Fine".into())],
    ));
    let (status, answer, _) = answer_of(&server).await;
    assert_eq!((status, answer.text().as_str()), (200, "Fine"));
}

/// A response head past hyper's bounds is refused rather than buffered, and the next upstream
/// answers: one header of 1 MiB (over the ~400 KB a head may take) or 200 headers (over 100).
#[tokio::test]
async fn a_response_head_past_the_bounds_fails_over() {
    let (a, b) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let server = Server::start(&[&a, &b], "").await;
    let huge = vec![("x-huge".to_string(), "h".repeat(1 << 20))];
    a.push(Reply::Headed(huge, vec![Step::Text("Never".into())]));
    b.push(Reply::text(&["From", " b"]));
    let (status, answer, _) = answer_of(&server).await;
    assert_eq!((status, answer.text().as_str()), (200, "From b"));
    assert_eq!((a.received().len(), b.received().len()), (1, 1));

    a.push(Reply::Headed(
        cdn_headers(200 * 100),
        vec![Step::Text("Never".into())],
    ));
    b.push(Reply::text(&["From", " b"]));
    let (status, answer, _) = answer_of(&server).await;
    assert_eq!((status, answer.text().as_str()), (200, "From b"));
    assert_eq!((a.received().len(), b.received().len()), (2, 2));
}

#[tokio::test]
async fn retry_honours_retry_after() {
    let up = FakeUpstream::start().await;
    let server = Server::start_env(&[&up], "", &[("CHATAPI__RETRY__ATTEMPTS", "2")]).await;
    up.push(Reply::Status {
        code: 429,
        body: json!({"error":{"message":"slow down","code":"rate_limit_exceeded"}}).to_string(),
        headers: vec![("retry-after".into(), "0.6".into())],
    });
    let (status, answer, took) = answer_of(&server).await;
    assert_eq!(status, 200);
    assert_eq!(answer.text(), "Hello there.");
    assert_eq!(up.received().len(), 2);
    assert!(took >= Duration::from_millis(600), "waited only {took:?}");
}

#[tokio::test]
async fn connect_errors_retry_with_backoff_then_fail_over() {
    let dead = dead_base_url();
    let (a, b) = (FakeUpstream::start().await, FakeUpstream::start().await);
    a.set_default(Reply::status(500, "server_error", "down"));
    // Two retries per upstream (the shared test config has none): each is tried three times.
    let server = Server::start_toml(&format!(
        "{}[[upstreams]]\nname = \"dead\"\nbase_url = \"{dead}\"\nmodel = \"m\"\n[[upstreams]]\nname = \"a\"\nbase_url = \"{}\"\nmodel = \"m\"\n[[upstreams]]\nname = \"b\"\nbase_url = \"{}\"\nmodel = \"m\"\n",
        TEST_BASE.replace("attempts = 0", "attempts = 2"),
        a.base_url,
        b.base_url
    ))
    .await;
    let (status, answer, _) = answer_of(&server).await;
    assert_eq!(status, 200);
    assert_eq!(answer.text(), "Hello there.");
    assert_eq!(
        a.received().len(),
        3,
        "a 5xx is retried with back-off, then failed over"
    );
    assert_eq!(b.received().len(), 1);
}

/// A reload that leaves an upstream and the limits alone keeps its open circuit and every
/// caller's rate-limit bucket: reloading is not a way to reset them.
#[tokio::test]
async fn a_reload_keeps_breakers_and_rate_buckets_of_what_did_not_change() {
    let (a, b) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let server = Server::start(
        &[&a, &b],
        "[breaker]\nfailures = 1\ncooldown = \"60s\"\n[auth]\nkeys = [\"k1\"]\n[limits]\nper_key_per_minute = 1\nper_key_burst = 2\n",
    )
    .await;
    a.push(Reply::status(500, "server_error", "down"));
    let send =
        || common::faceto_request(&client(), &server.chat_url(), &faceto_body("hi"), "k1").send();
    assert_eq!(send().await.unwrap().status(), 200, "failed over to b");
    assert_eq!(server.readyz().await["upstreams"][0]["available"], false);
    // A reload that changes only a persona's prompt, and adds a key.
    server.reload_with(|t| {
        t.replace("[auth]\nkeys = [\"k1\"]", "[auth]\nkeys = [\"k0\", \"k1\"]")
            + "[personas.default]\nsystem_prompt = \"New.\"\n"
    });
    assert_eq!(
        server.readyz().await["upstreams"][0]["available"],
        false,
        "the circuit stays open"
    );
    assert_eq!(
        send().await.unwrap().status(),
        200,
        "the second of the burst"
    );
    assert_eq!(
        send().await.unwrap().status(),
        429,
        "the bucket was not refilled by the reload"
    );
    assert_eq!(a.received().len(), 1, "a stays skipped");
}

#[tokio::test]
async fn no_retry_after_the_first_token() {
    let (a, b) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let server = Server::start_env(&[&a, &b], "", &[("CHATAPI__RETRY__ATTEMPTS", "3")]).await;
    a.push(Reply::Stream(vec![Step::Text("Spoken".into()), Step::Cut]));
    let (status, answer, _) = answer_of(&server).await;
    assert_eq!(status, 200);
    assert_eq!(answer.text(), "Spoken");
    assert!(answer.done);
    assert_eq!(a.received().len(), 1);
    assert!(
        b.received().is_empty(),
        "words already spoken are never asked for again"
    );
}

#[tokio::test]
async fn a_reload_changes_the_concurrency_cap_at_once() {
    let up = FakeUpstream::start().await;
    let server = Server::start(&[&up], "[limits]\nmax_concurrent_streams = 1\n").await;
    up.set_default(Reply::Stream(vec![Step::Text("held".into()), Step::Hang]));
    let open_one = || async {
        faceto_request(&client(), &server.chat_url(), &faceto_body("hi"), "")
            .send()
            .await
            .unwrap()
    };
    let cap = |n: usize| {
        move |t: &str| {
            let at = t.find("max_concurrent_streams = ").unwrap();
            let end = at + t[at..].find('\n').unwrap();
            format!("{}max_concurrent_streams = {n}{}", &t[..at], &t[end..])
        }
    };
    // Waits until the server counts `n` open streams (a hang-up is seen by the server a moment
    // after the client drops its end).
    let server = &server;
    let open_streams_become = |n: u64| async move {
        let deadline = Instant::now() + Duration::from_secs(2);
        while server.readyz().await["open_streams"] != n {
            assert!(Instant::now() < deadline, "open streams never became {n}");
        }
    };

    let first = open_one().await;
    assert_eq!(first.status(), 200);
    assert_eq!(open_one().await.status(), 503);

    server.reload_with(cap(2));
    let second = open_one().await;
    assert_eq!(second.status(), 200, "a raised cap applies at once");
    assert_eq!(server.readyz().await["open_streams"], 2);

    server.reload_with(cap(1));
    assert_eq!(
        server.readyz().await["open_streams"],
        2,
        "streams over a lowered cap keep going"
    );
    assert_eq!(open_one().await.status(), 503);
    drop(second);
    open_streams_become(1).await;
    assert_eq!(open_one().await.status(), 503, "still at the lowered cap");
    drop(first);
    open_streams_become(0).await;
    assert_eq!(open_one().await.status(), 200);
    assert_eq!(
        up.received().len(),
        3,
        "refused requests never went upstream"
    );
}

#[tokio::test]
async fn circuit_breaker_opens_and_closes() {
    let (a, b) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let server = Server::start_env(
        &[&a, &b],
        "",
        &[
            ("CHATAPI__BREAKER__FAILURES", "2"),
            ("CHATAPI__BREAKER__COOLDOWN", "400ms"),
        ],
    )
    .await;
    a.set_default(Reply::status(500, "server_error", "down"));
    for _ in 0..2 {
        assert_eq!(answer_of(&server).await.1.text(), "Hello there.");
    }
    assert_eq!(a.received().len(), 2);
    let ready = server.readyz().await;
    assert_eq!(ready["upstreams"][0]["available"], false, "{ready}");
    assert_eq!(ready["status"], "ready", "b is still there");

    // Open: a is not even tried.
    answer_of(&server).await;
    assert_eq!(a.received().len(), 2);

    // After the cool-down, a gets a trial request; it now works and closes the breaker.
    a.set_default(Reply::text(&["a is back"]));
    let deadline = Instant::now() + Duration::from_secs(3);
    while server.readyz().await["upstreams"][0]["available"] == false {
        assert!(Instant::now() < deadline, "breaker never closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answer_of(&server).await.1.text(), "a is back");
    assert_eq!(server.readyz().await["upstreams"][0]["available"], true);
}

#[tokio::test]
async fn concurrency_cap_answers_503_before_anything_goes_upstream() {
    let up = FakeUpstream::start().await;
    let server = Server::start_env(
        &[&up],
        "",
        &[("CHATAPI__LIMITS__MAX_CONCURRENT_STREAMS", "2")],
    )
    .await;
    up.set_default(Reply::Stream(vec![Step::Text("held".into()), Step::Hang]));
    let mut open = Vec::new();
    for _ in 0..2 {
        let r = faceto_request(&client(), &server.chat_url(), &faceto_body("hi"), "")
            .send()
            .await
            .unwrap();
        open.push(r);
    }
    up.wait_received(2).await;
    let response = client()
        .post(server.chat_url())
        .body(faceto_body("hi").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let json: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(json["error"]["code"], "overloaded");
    assert_eq!(up.received().len(), 2);
    // Closing one frees its slot.
    drop(open.pop());
    up.next_hangup(Duration::from_secs(2)).await.unwrap();
    up.set_default(Reply::text(&["ok"]));
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (status, answer) = chat(&server.chat_url(), &faceto_body("hi")).await;
        if status == 200 {
            assert_eq!(answer.text(), "ok");
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn per_ip_and_per_key_rate_limits() {
    let up = FakeUpstream::start().await;
    let server = Server::start_env(
        &[&up],
        "[auth]\nkeys = [\"k1\", \"k2\"]\n",
        &[
            ("CHATAPI__LIMITS__PER_KEY_PER_MINUTE", "1"),
            ("CHATAPI__LIMITS__PER_KEY_BURST", "1"),
        ],
    )
    .await;
    let send = |key: &'static str| {
        let url = server.chat_url();
        async move {
            faceto_request(&client(), &url, &faceto_body("hi"), key)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(send("k1").await.status(), 200);
    let limited = send("k1").await;
    assert_eq!(limited.status(), 429);
    let after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&after));
    assert_eq!(
        send("k2").await.status(),
        200,
        "another key has its own budget"
    );
    assert_eq!(up.received().len(), 2);

    let up2 = FakeUpstream::start().await;
    let server = Server::start_env(
        &[&up2],
        "",
        &[
            ("CHATAPI__LIMITS__PER_IP_PER_MINUTE", "1"),
            ("CHATAPI__LIMITS__PER_IP_BURST", "2"),
        ],
    )
    .await;
    for want in [200, 200, 429] {
        let (status, _) = chat(&server.chat_url(), &faceto_body("hi")).await;
        assert_eq!(status, want);
    }
    assert_eq!(up2.received().len(), 2);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_caller_has_its_own_ip_limit() {
    let up = FakeUpstream::start().await;
    let send = |server: &Server, forwarded_for: &'static str| {
        let url = server.chat_url();
        async move {
            client()
                .post(url)
                .header("x-forwarded-for", forwarded_for)
                .body(faceto_body("hi").to_string())
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let limits = "[limits]\nper_ip_per_minute = 1\nper_ip_burst = 1\n";

    // The test client connects from 127.0.0.1, here a trusted proxy.
    let server = Server::start(
        &[&up],
        &format!("{limits}trusted_proxies = [\"127.0.0.1\"]\n"),
    )
    .await;
    assert_eq!(send(&server, "203.0.113.5").await, 200);
    assert_eq!(send(&server, "203.0.113.5").await, 429);
    assert_eq!(
        send(&server, "203.0.113.6").await,
        200,
        "another caller behind the proxy"
    );
    assert_eq!(
        send(&server, "203.0.113.6, 203.0.113.5").await,
        429,
        "a forged entry on the left does not change who the proxy saw"
    );

    // Not trusted: the header is ignored, so it cannot be used to dodge the limit.
    let server = Server::start(&[&up], limits).await;
    assert_eq!(send(&server, "203.0.113.5").await, 200);
    assert_eq!(send(&server, "203.0.113.6").await, 429);
    assert_eq!(up.received().len(), 3);
}

#[tokio::test]
async fn slow_loris_body_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = FakeUpstream::start().await;
    let server = Server::start_env(&[&up], "", &[("CHATAPI__LIMITS__BODY_TIMEOUT", "300ms")]).await;
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"POST /chat HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"messages\"")
        .await
        .unwrap();
    let started = Instant::now();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), socket.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(up.received().is_empty());
}

#[tokio::test]
async fn graceful_shutdown_lets_streams_finish_then_ends_them_with_done() {
    let up = FakeUpstream::start().await;
    let mut server =
        Server::start_env(&[&up], "", &[("CHATAPI__SERVER__SHUTDOWN_GRACE", "400ms")]).await;
    up.push(Reply::Stream(vec![
        Step::Text("Still".into()),
        Step::Delay(Duration::from_millis(100)),
        Step::Text(" talking".into()),
        Step::Hang,
    ]));
    let response = faceto_request(&client(), &server.chat_url(), &faceto_body("hi"), "")
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut got = body.next().await.unwrap().unwrap().to_vec();
    server.shutdown();
    let started = Instant::now();
    while let Some(chunk) = body.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    let answer = faceto_parse(&got);
    assert_eq!(
        answer.text(),
        "Still talking",
        "the stream kept going during the grace period"
    );
    assert!(answer.done);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
    let served = tokio::time::timeout(Duration::from_secs(2), &mut server.handle).await;
    assert!(matches!(served, Ok(Ok(Ok(())))), "serve returns cleanly");
    assert!(
        client()
            .post(server.chat_url())
            .body("{}")
            .send()
            .await
            .is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn a_two_thousand_turn_conversation_keeps_working() {
    let up = FakeUpstream::start().await;
    let server = Server::start(
        &[&up],
        "[personas.default]\nsystem_prompt = \"You are Ava.\"\nmax_tokens = 256\ncontext_tokens = 4096\n",
    )
    .await;
    let mut messages = Vec::new();
    for i in 0..2000 {
        if i % 2 == 0 {
            messages.push(json!({"role": "user", "content": format!("Ann said this is remark number {i} in a long call"), "name": "Ann"}));
        } else {
            messages.push(json!({"role": "assistant", "content": format!("And this is my answer number {i}, also quite long."), "name": "Ava"}));
        }
    }
    messages.push(json!({"role": "system", "content": "You are currently talking to ann"}));
    messages.push(json!({"role": "user", "content": "So what did we decide?", "name": "Ann"}));
    let (status, answer) = chat(
        &server.chat_url(),
        &json!({"messages": messages, "steam": true}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(answer.done);
    let sent = up.received()[0].body["messages"]
        .as_array()
        .unwrap()
        .clone();
    assert!(sent.len() < 400, "trimmed to fit: {} messages", sent.len());
    assert_eq!(sent[0]["content"], "You are Ava.");
    assert_eq!(sent.last().unwrap()["content"], "So what did we decide?");
    assert!(sent
        .iter()
        .any(|m| m["content"] == "You are currently talking to ann"));
    assert!(
        sent.iter()
            .any(|m| m["content"].as_str().unwrap().contains("number 1999,")),
        "the most recent turns stay"
    );
    let chars: usize = sent
        .iter()
        .map(|m| m["content"].as_str().unwrap().len())
        .sum();
    assert!(chars < 4096 * 4, "about 4k tokens at most: {chars} chars");
}

#[tokio::test]
async fn connect_timeout_is_global_and_per_persona() {
    let silent = Unanswering::start();
    let b = FakeUpstream::start().await;
    // TEST_BASE sets `timeouts.connect = "1s"`; the persona `quick` gives up after 100 ms.
    let server = Server::start_toml(&format!(
        "{TEST_BASE}[[upstreams]]\nname = \"silent\"\nbase_url = \"{}\"\nmodel = \"m\"\n[[upstreams]]\nname = \"b\"\nbase_url = \"{}\"\nmodel = \"m\"\n[personas.quick]\ntimeouts = {{ connect = \"100ms\" }}\n",
        silent.base_url, b.base_url
    ))
    .await;
    let started = Instant::now();
    let (status, answer) = chat(&server.chat_url(), &faceto_body("hi")).await;
    let global = started.elapsed();
    assert_eq!(
        (status.as_u16(), answer.text().as_str()),
        (200, "Hello there.")
    );
    assert!(
        global >= Duration::from_secs(1),
        "failed over after {global:?}"
    );

    let started = Instant::now();
    let (status, answer) = chat(&format!("{}/quick", server.chat_url()), &faceto_body("hi")).await;
    let quick = started.elapsed();
    assert_eq!(
        (status.as_u16(), answer.text().as_str()),
        (200, "Hello there.")
    );
    assert!(
        quick < Duration::from_millis(900),
        "the persona's 100 ms connect timeout applied, not the global 1 s: {quick:?}"
    );
    assert_eq!(b.received().len(), 2);
}
