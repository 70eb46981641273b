//! Replicas sharing their state through a real Redis on a loopback port: limits, the stream cap,
//! request-id repeats and sessions hold across replicas as on one server; a replica that dies
//! frees its places; Redis frozen or gone never makes a request wait, and is used again when it
//! returns. Replicas are in-process servers (each with its own state, as separate processes
//! have), and the real binary where a replica must be killed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::process::Running;
use common::redis_server::RedisServer;
use common::videos::{self, made, settled};
use common::{
    client, faceto_body, faceto_request, FakeUpstream, Reply, Server, Step, TempFile, TEST_BASE,
};
use serde_json::{json, Value};

const KEY: &str = "sk-cluster";

fn shared(redis: &RedisServer, extra: &str) -> String {
    format!(
        "[auth]\nkeys = [\"{KEY}\"]\n[cluster]\nredis_url = \"{}\"\nstream_lease = \"1s\"\n{extra}",
        redis.url()
    )
}

/// Until the replica has connected to Redis (it connects in the background, and serves with its
/// own state until then).
async fn connected(s: &Server) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.state.cluster().redis_up() != Some(true) {
        assert!(Instant::now() < deadline, "the replica never reached Redis");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One FaceTo-AI request with its own request id (`-`: none): its status and `Retry-After`.
async fn ask(base: &str, key: &str, request_id: &str) -> (u16, Option<String>) {
    let c = client();
    let mut request = faceto_request(&c, &format!("{base}/chat"), &faceto_body("hi"), key)
        .build()
        .unwrap();
    request
        .headers_mut()
        .insert("x-request-id", request_id.parse().unwrap());
    let r = c.execute(request).await.unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    r.bytes().await.unwrap();
    (status, retry)
}

async fn statuses(order: &[&Server], key: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for s in order {
        out.push(ask(&s.url, key, "-").await.0);
    }
    out
}

#[tokio::test]
async fn limits_hold_across_replicas_as_on_one() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::text(&["ok"]));
    // One request every 10 s, bursts of 3.
    let per_key = "[limits]\nper_key_per_minute = 6\nper_key_burst = 3\n";

    let alone = Server::start(&[&up], &format!("[auth]\nkeys = [\"{KEY}\"]\n{per_key}")).await;
    let one = statuses(&[&alone; 6], KEY).await;
    assert_eq!(one, [200, 200, 200, 429, 429, 429]);

    let redis = RedisServer::start().await;
    let a = Server::start(&[&up], &shared(&redis, per_key)).await;
    let b = Server::start(&[&up], &shared(&redis, per_key)).await;
    connected(&a).await;
    connected(&b).await;
    let mut ok = 0;
    for i in 0..6 {
        let s = if i % 2 == 0 { &a } else { &b };
        match ask(&s.url, KEY, "-").await {
            (200, _) => ok += 1,
            (429, retry) => {
                let secs: u64 = retry.expect("Retry-After on a 429").parse().unwrap();
                assert!((1..=10).contains(&secs), "{secs}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(ok, 3, "two replicas allow what one does, not twice that");
    // Routes that do not answer share the buckets too (their admission asks for no stream
    // place, only the rate): the key has none left.
    let models = client()
        .get(format!("{}/v1/models", a.url))
        .header("authorization", format!("Bearer {KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 429);

    // The IP's limit too, counted before the key is checked: wrong keys use it up.
    let per_ip = "[limits]\nper_ip_per_minute = 6\nper_ip_burst = 2\n";
    let c = Server::start(&[&up], &shared(&redis, per_ip)).await;
    let d = Server::start(&[&up], &shared(&redis, per_ip)).await;
    connected(&c).await;
    connected(&d).await;
    let mut seen = Vec::new();
    for (s, key) in [(&c, "wrong"), (&d, "wrong"), (&c, KEY), (&d, KEY)] {
        seen.push(ask(&s.url, key, "-").await.0);
    }
    assert_eq!(seen, [401, 401, 429, 429]);
}

#[tokio::test]
async fn a_retried_request_id_on_another_replica_does_not_go_upstream_again() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::status(500, "server_error", "the model fell over"));
    let redis = RedisServer::start().await;
    let a = Server::start(&[&up], &shared(&redis, "")).await;
    let b = Server::start(&[&up], &shared(&redis, "")).await;
    connected(&a).await;
    connected(&b).await;

    let first = ask(&a.url, KEY, "req-7f3a").await.0;
    assert!(first >= 500, "{first}");
    assert_eq!(up.received().len(), 1);
    // FaceTo-AI's retry, with the same id, reaches the other replica: the same answer, at once.
    let again = ask(&b.url, KEY, "req-7f3a").await.0;
    assert_eq!(again, first);
    assert_eq!(up.received().len(), 1, "the retry went upstream again");
    // Another request is a new round.
    ask(&b.url, KEY, "req-other").await;
    assert_eq!(up.received().len(), 2);
}

#[tokio::test]
async fn a_memories_session_continues_on_another_replica() {
    let up = FakeUpstream::start().await;
    let redis = RedisServer::start().await;
    let replica = || {
        shared(
            &redis,
            &format!(
                "[storage]\ndir = \"{}\"\n[videos]\nenabled = true\nspeech_binary = \"\"\nspeech_model = \"\"\n",
                videos::storage().display()
            ),
        )
    };
    // Each replica keeps its own library here (the shared library is Postgres's, not Redis's):
    // the same video is uploaded to both.
    let a = Server::start(&[&up], &replica()).await;
    let b = Server::start(&[&up], &replica()).await;
    connected(&a).await;
    connected(&b).await;
    let mut nos = Vec::new();
    for s in [&a, &b] {
        let up: Value = client()
            .post(format!("{}/serve/api/v1/upload", s.url))
            .header("Authorization", KEY)
            .multipart(videos::form(&made().with_track(), vec![]))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let no = up["data"]["videoNo"].as_str().unwrap().to_string();
        assert_eq!(settled(&s.url, &no, Some(KEY)).await["status"], "ready");
        nos.push(no);
    }

    let chat = |base: String, body: Value| async move {
        client()
            .post(format!("{base}/serve/api/v1/chat"))
            .header("Authorization", KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let first = chat(
        a.url.clone(),
        json!({"video_nos": [nos[0]], "prompt": "What do they plant?"}),
    )
    .await;
    let session = first["data"]["session_id"].as_str().unwrap().to_string();
    let second = chat(
        b.url.clone(),
        json!({"video_nos": [nos[1]], "prompt": "And then?", "session_id": session}),
    )
    .await;
    assert_eq!(second["data"]["session_id"], session.as_str(), "{second}");
    let said = videos::turns(&up.received()[1].body);
    let said: Vec<(&str, &str)> = said.iter().map(|(r, c)| (r.as_str(), c.as_str())).collect();
    assert_eq!(
        said,
        [
            ("user", "What do they plant?"),
            ("assistant", "Hello there."),
            ("user", "And then?")
        ],
        "the second replica did not continue the first one's session"
    );
}

#[tokio::test]
async fn a_killed_replicas_stream_place_comes_back_after_its_lease() {
    let up = FakeUpstream::start().await;
    let redis = RedisServer::start().await;
    let cap = "[limits]\nmax_concurrent_streams = 1\n";
    // The replica that dies is the real binary, killed with SIGKILL: nothing of it says goodbye.
    let config = TempFile::with(&format!(
        "{TEST_BASE}[[upstreams]]\nname = \"up0\"\nbase_url = \"{}\"\napi_key = \"sk-up0\"\nmodel = \"fake-model\"\n{}",
        up.base_url,
        shared(&redis, cap)
    ));
    let mut doomed = Running::start(&config).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready: Value = client()
            .get(format!("{}/readyz", doomed.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["redis"] == "up" {
            break;
        }
        assert!(Instant::now() < deadline, "{ready}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    up.push(Reply::Stream(vec![Step::Text("held".into()), Step::Hang]));
    up.set_default(Reply::text(&["ok"]));
    let mut held = faceto_request(
        &client(),
        &format!("{}/chat", doomed.url),
        &faceto_body("stay"),
        KEY,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(held.status(), 200);
    assert!(held.chunk().await.unwrap().is_some(), "the stream is open");

    let other = Server::start(&[&up], &shared(&redis, cap)).await;
    connected(&other).await;
    assert_eq!(
        ask(&other.url, KEY, "-").await.0,
        503,
        "the one place is held on the other replica"
    );

    doomed.child.start_kill().unwrap();
    doomed.child.wait().await.unwrap();
    let killed = Instant::now();
    assert_eq!(
        ask(&other.url, KEY, "-").await.0,
        503,
        "the lease outlives its replica until it runs out"
    );
    loop {
        if ask(&other.url, KEY, "-").await.0 == 200 {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "the dead replica's place never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A request that will be answered takes its shared place at admission, before its body is
/// read; one refused after that (here: its body is not JSON) gives the place straight back.
#[tokio::test]
async fn a_request_refused_after_admission_gives_its_shared_place_back() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::text(&["ok"]));
    let redis = RedisServer::start().await;
    let cap = "[limits]\nmax_concurrent_streams = 1\n";
    let a = Server::start(&[&up], &shared(&redis, cap)).await;
    let b = Server::start(&[&up], &shared(&redis, cap)).await;
    connected(&a).await;
    connected(&b).await;

    let refused = client()
        .post(format!("{}/chat", a.url))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {KEY}"))
        .body("{\"messages\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);

    let redis_client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = redis_client
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let open: i64 = ::redis::cmd("ZCARD")
            .arg("chatapi:streams")
            .query_async(&mut conn)
            .await
            .unwrap();
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the refused request kept its place"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ask(&b.url, KEY, "-").await.0, 200, "the one place is free");
}

#[tokio::test]
async fn redis_frozen_or_gone_never_holds_a_request_and_sharing_resumes_when_it_returns() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::text(&["ok"]));
    let mut redis = RedisServer::start().await;
    let per_key = "[limits]\nper_key_per_minute = 6\nper_key_burst = 2\n";
    let a = Server::start(&[&up], &shared(&redis, per_key)).await;
    let b = Server::start(&[&up], &shared(&redis, per_key)).await;
    let strict = Server::start(
        &[&up],
        &shared(&redis, &format!("fail_closed = true\n{per_key}")),
    )
    .await;
    for s in [&a, &b, &strict] {
        connected(s).await;
    }
    assert_eq!(statuses(&[&a, &b, &a], KEY).await, [200, 200, 429]);

    // Frozen: it accepts connections and answers nothing.
    redis.pause();
    let started = Instant::now();
    assert_eq!(
        ask(&a.url, KEY, "-").await.0,
        200,
        "served on a's own limits"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a request waited on a frozen Redis for {:?}",
        started.elapsed()
    );
    let refused = faceto_request(
        &client(),
        &format!("{}/chat", strict.url),
        &faceto_body("hi"),
        KEY,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "shared_state_unavailable", "{body}");
    let ready = client()
        .get(format!("{}/readyz", strict.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "a replica that refuses is not ready");
    // Each replica falls back to its own buckets: a has one left, b two.
    assert_eq!(
        statuses(&[&a, &a, &b, &b, &b], KEY).await,
        [200, 429, 200, 200, 429]
    );

    // Gone: killed while frozen (so no replica reconnects in between), its data lost.
    redis.stop();
    let started = Instant::now();
    assert_eq!(
        ask(&b.url, KEY, "-").await.0,
        429,
        "b's own bucket, still empty"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // Back (empty): every replica shares again, strict serves again.
    redis.restart().await;
    for s in [&a, &b, &strict] {
        connected(s).await;
    }
    assert_eq!(statuses(&[&a, &strict, &b], KEY).await, [200, 200, 429]);
    let metrics = a.metrics().await;
    assert!(
        metrics.contains("chatapi_cluster_redis_failures_total"),
        "{metrics}"
    );
}
