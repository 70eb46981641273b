//! The server against hostile callers: one test per thing a caller with a key could once do to
//! crash it, exhaust it or see past it, and a suite that makes every one of those attacks on one
//! server process and then checks that it is still up, that its memory is within 100 MB of where
//! it started, that no timeline shows a file that was not uploaded, and that it stops on SIGTERM.
//! The attacks themselves are in `common::hostile`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::hostile::{self, Target};
use common::process::{self, Running};
use common::videos;
use common::{client, faceto_body, FakeUpstream, Reply, Server, TempFile};
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

const KEY: &str = "sk-hostile";

/// The library's settings for these tests: no speech-to-text and no embedding model (the attacks
/// are on what is read, not on what is heard; and a model loaded mid-suite would be counted as
/// memory the attacks took).
fn library(store: &std::path::Path, extra: &str) -> String {
    format!(
        "[auth]\nkeys = [\"{KEY}\", {{ key = \"k-other\", tenant = \"other\" }}]\n[storage]\ndir = \"{}\"\n\
         [videos]\nenabled = true\njob_lease = \"2s\"\nspeech_binary = \"\"\nspeech_model = \"\"\n\
         embedding_model = \"\"\n{extra}",
        store.display()
    )
}

/// The attacks' view of a server started by `server`.
fn target<'a>(s: &'a Server, store: &'a std::path::Path) -> Target<'a> {
    Target {
        url: &s.url,
        key: KEY,
        storage: store,
    }
}

async fn server(extra: &str) -> (Server, std::path::PathBuf) {
    let store = videos::storage();
    (Server::start(&[], &library(&store, extra)).await, store)
}

#[tokio::test]
async fn an_unbounded_page_token_is_refused() {
    let (s, store) = server("").await;
    let t = target(&s, &store);
    hostile::huge_page_tokens(&t).await;
    let alive = client()
        .get(format!("{}/healthz", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(alive.status(), 200);
}

#[tokio::test]
async fn a_huge_text_part_is_refused_as_it_arrives() {
    let (s, store) = server("").await;
    let t = target(&s, &store);
    hostile::huge_text_part(&t, 64).await;
}

#[tokio::test]
async fn a_subtitle_track_that_unpacks_to_100_mb_fails_its_video() {
    let (s, store) = server("ocr = false\n").await;
    let t = target(&s, &store);
    hostile::subtitle_bomb(&t).await;
}

#[tokio::test]
async fn a_playlist_never_reads_another_file() {
    let (s, store) = server("").await;
    let t = target(&s, &store);
    hostile::playlist(&t).await;
    hostile::no_foreign_text(&t, &[]).await;
}

#[tokio::test]
async fn a_duration_that_lies_bounds_the_keyframes() {
    let (s, store) = server("ocr = false\n").await;
    let t = target(&s, &store);
    hostile::long_gaps(&t).await;
}

#[tokio::test]
async fn addresses_inside_ipv6_ones_are_refused() {
    let (s, store) = server("").await;
    let t = target(&s, &store);
    hostile::inner_addresses(&t).await;
}

#[tokio::test]
async fn an_oversized_body_gets_a_readable_413() {
    let up = FakeUpstream::start().await;
    let s = Server::start(&[&up], "").await;
    hostile::refused_body(&s.url, None, 32, "413").await;
    assert!(up.received().is_empty());
}

/// Quotas per tenant, refused before the body is read, with a sentence; another tenant is not
/// held to them.
#[tokio::test]
async fn a_tenant_over_its_quota_is_refused_up_front() {
    let (s, _) = server("ocr = false\ntenant_max_videos = 1\ntenant_max_bytes = 5000000\n").await;
    let upload = |key: &'static str, file: std::path::PathBuf| {
        let url = s.url.clone();
        async move { videos::upload(&url, key, &file).await }
    };
    // Bytes: a declared length past the quota is refused before a byte of it is stored.
    let big =
        common::TempFile(std::env::temp_dir().join(format!("big-{}.mp4", std::process::id())));
    std::fs::write(&big.0, vec![0u8; 6_000_000]).unwrap();
    let (status, refused) = upload(KEY, big.0.clone()).await;
    assert_eq!(status, 429, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tenant_max_bytes"),
        "{refused}"
    );

    let (status, first) = upload(KEY, videos::made().silent()).await;
    assert_eq!(status, 202, "{first}");
    let (status, second) = upload(KEY, videos::made().silent()).await;
    assert_eq!(status, 429, "{second}");
    assert_eq!(second["error"]["code"], "quota_exceeded");
    assert!(second["error"]["message"]
        .as_str()
        .unwrap()
        .contains("tenant_max_videos"));
    let (status, other) = upload("k-other", videos::made().silent()).await;
    assert_eq!(status, 202, "another tenant has its own quota: {other}");
}

#[tokio::test]
async fn a_nearly_full_disk_refuses_uploads_with_507() {
    let (s, _) = server("min_free_disk = 1000000000000000000\n").await;
    let (status, body) = videos::upload(&s.url, KEY, &videos::made().silent()).await;
    assert_eq!(status, 507);
    assert_eq!(body["error"]["code"], "insufficient_storage", "{body}");
    let r = client()
        .post(format!("{}/v1/videos", s.url))
        .bearer_auth(KEY)
        .json(&json!({"url": "http://example.com/v.mp4"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 507, "a link is refused too");
}

/// An upload that dribbles in (a byte every half second) is cut off with 408, and holds one of
/// the upload places until then: a second upload meanwhile is told to come back.
#[tokio::test]
async fn a_slow_upload_is_cut_off_and_uploads_at_once_are_capped() {
    let (s, _) = server(
        "max_concurrent_uploads = 1\nmin_upload_rate = 1000\n[limits]\nbody_timeout = \"2s\"\n",
    )
    .await;
    let dribble = futures_util::stream::unfold(0u32, |n| async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        (n < 120).then(|| {
            (
                Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"x")),
                n + 1,
            )
        })
    });
    let form = Form::new().part(
        "file",
        Part::stream(reqwest::Body::wrap_stream(dribble)).file_name("slow.mp4"),
    );
    let started = std::time::Instant::now();
    let slow = tokio::spawn(
        client()
            .post(format!("{}/v1/videos", s.url))
            .bearer_auth(KEY)
            .multipart(form)
            .send(),
    );
    // The slow upload holds the one place once its headers are in; wait for that.
    let mut busy = None;
    for _ in 0..50 {
        let r = client()
            .post(format!("{}/v1/videos", s.url))
            .bearer_auth(KEY)
            .multipart(videos::form(&videos::made().silent(), vec![]))
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            busy = Some(r);
            break;
        }
        assert_eq!(r.status(), 202);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let busy = busy.expect("a second upload was never refused while the first held the place");
    assert!(busy.headers().contains_key("retry-after"));
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.status(), 408);
    let body: Value = slow.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("min_upload_rate"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// Jobs are taken in turn across tenants: one tenant's queue of uploads does not hold another's
/// one until it is through.
#[tokio::test]
async fn jobs_are_taken_in_turn_across_tenants() {
    let (s, _) = server("ocr = false\nworkers = 1\n").await;
    let mut ids = Vec::new();
    for key in [KEY, KEY, KEY, "k-other"] {
        let (_, r) = videos::upload(&s.url, key, &videos::made().silent()).await;
        ids.push((key, r["id"].as_str().unwrap().to_string()));
    }
    // When the other tenant's video is ready, the first tenant's last is not yet: it was
    // queued before it, but its tenant had had its turn.
    let status = |key: &'static str, id: String| {
        let url = format!("{}/v1/videos/{id}", s.url);
        async move {
            let v: Value = client()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["status"].as_str().unwrap().to_string()
        }
    };
    let (other_key, other_id) = ids[3].clone();
    let (last_key, last_id) = ids[2].clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let last = status(last_key, last_id.clone()).await;
        let other = status(other_key, other_id.clone()).await;
        if other == "ready" {
            assert_ne!(
                last, "ready",
                "the first tenant's third video went before the other's one"
            );
            break;
        }
        assert_ne!(
            last, "ready",
            "the first tenant's third video went before the other's one"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the other tenant's video never got ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (key, id) in &ids {
        assert_eq!(
            videos::settled(&s.url, id, Some(key)).await["status"],
            "ready"
        );
    }
}

/// Errors give sentences, not the server's paths or what a name resolves to.
#[tokio::test]
async fn failures_tell_no_paths() {
    let (s, store) = server("").await;
    let (_, r) = videos::upload(&s.url, KEY, &videos::made().text()).await;
    let v = videos::settled(&s.url, r["id"].as_str().unwrap(), Some(KEY)).await;
    assert_eq!(v["status"], "failed");
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("not a video"), "{error}");
    assert!(
        !error.contains(&store.display().to_string()) && !error.contains('/'),
        "{error}"
    );
}

/// A repeat is the same key, the same request id and the same body: another conversation, or
/// another caller, with that id is a new request and goes upstream.
#[tokio::test]
async fn a_request_id_repeats_only_the_same_request() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::status(500, "server_error", "down"));
    let s = Server::start(&[&up], "[auth]\nkeys = [\"sk-a\", \"sk-b\"]\n").await;
    let send = |key: &'static str, said: &'static str| {
        client()
            .post(s.chat_url())
            .bearer_auth(key)
            .header("x-request-id", "same-id")
            .body(faceto_body(said).to_string())
            .send()
    };
    assert_eq!(send("sk-a", "hi").await.unwrap().status(), 502);
    assert_eq!(send("sk-a", "hi").await.unwrap().status(), 502);
    assert_eq!(up.received().len(), 1, "the retry is answered from memory");
    for n in 0..5 {
        let said: &'static str = ["one", "two", "three", "four", "five"][n];
        send("sk-a", said).await.unwrap();
    }
    assert_eq!(
        up.received().len(),
        6,
        "other conversations with that id went upstream"
    );
    send("sk-b", "hi").await.unwrap();
    assert_eq!(
        up.received().len(),
        7,
        "another key's request with that id went upstream"
    );
}

/// `/metrics` and `/readyz` on the admin address only, when one is set.
#[tokio::test]
async fn the_admin_endpoints_live_on_their_own_address() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = free.local_addr().unwrap();
    drop(free);
    let up = FakeUpstream::start().await;
    let admin_listen = admin.to_string();
    let s = Server::start_env(
        &[&up],
        "",
        &[("CHATAPI__SERVER__ADMIN_LISTEN", &admin_listen)],
    )
    .await;
    for path in ["/metrics", "/readyz"] {
        let public = client()
            .get(format!("{}{path}", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(public.status(), 404, "{path} on the public address");
    }
    assert_eq!(
        client()
            .get(format!("{}/healthz", s.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let mut ready = None;
    for _ in 0..50 {
        if let Ok(r) = client().get(format!("http://{admin}/readyz")).send().await {
            ready = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ready.expect("the admin address answers").status(), 200);
    let metrics = client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
}

/// Guarded fetches (URL ingest) never go through `HTTP_PROXY`, which would resolve the name
/// again behind the guard's back.
#[tokio::test]
async fn guarded_fetches_use_no_proxy() {
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let proxied = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn({
        let proxied = proxied.clone();
        async move {
            while let Ok((_conn, _)) = proxy.accept().await {
                proxied.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    let video = std::fs::read(videos::made().silent()).unwrap();
    let origin = axum::Router::new().route(
        "/v.mp4",
        axum::routing::get(move || {
            let video = video.clone();
            async move { video }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let link = format!("http://{}/v.mp4", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, origin).await });

    let store = videos::storage();
    let config = TempFile::with(&library(&store, "allow_private_urls = true\nocr = false\n"));
    let mut cmd = process::command(&config);
    cmd.env("HTTP_PROXY", &proxy_url)
        .env("http_proxy", &proxy_url)
        .env("ALL_PROXY", &proxy_url)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    let running = Running::start_command(cmd).await;
    let r: Value = client()
        .post(format!("{}/v1/videos", running.url))
        .bearer_auth(KEY)
        .json(&json!({"url": link}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let v = videos::settled(&running.url, r["id"].as_str().unwrap(), Some(KEY)).await;
    assert_eq!(v["status"], "ready", "{v}");
    assert_eq!(
        proxied.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "went through the proxy"
    );
}

/// A secret in an upstream's base_url (a password, a key in the query) is in no log line and not
/// in `check-config`'s output.
#[tokio::test]
async fn a_base_urls_secrets_are_not_logged_or_shown() {
    let dead = common::dead_base_url();
    let secret_url = dead.replace("http://", "http://bob:pw-hunter2@") + "?key=sk-query-secret";
    let config = TempFile::with(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[local]\nenabled = false\n[retry]\nattempts = 0\n\
         [[upstreams]]\nname = \"u\"\nbase_url = \"{secret_url}\"\nmodel = \"m\"\n"
    ));
    let shown = std::process::Command::new(process::BIN)
        .arg("--config")
        .arg(&config.0)
        .arg("check-config")
        .env("CHATAPI__VIDEOS__ENABLED", "false")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("bob:<redacted>@"), "{shown}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("sk-query-secret"),
        "{shown}"
    );

    let mut running = Running::start(&config).await;
    let r = client()
        .post(format!("{}/chat", running.url))
        .body(faceto_body("hi").to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_server_error());
    let body = r.text().await.unwrap();
    assert!(
        !body.contains("hunter2") && !body.contains("sk-query-secret"),
        "{body}"
    );
    let line = process::wait_for(&mut running.logs, "upstream").await;
    running.signal("-TERM");
    let mut rest = vec![line];
    while let Ok(Ok(Some(l))) =
        tokio::time::timeout(Duration::from_secs(5), running.logs.next_line()).await
    {
        rest.push(l);
    }
    let logged = rest.join("\n");
    assert!(
        !logged.contains("hunter2") && !logged.contains("sk-query-secret"),
        "{logged}"
    );
}

/// Every attack on one server process, one after another; then it is still up, its memory is
/// within 100 MB of where it started, no timeline shows a file that was not uploaded, and it
/// stops on SIGTERM in seconds.
#[tokio::test]
async fn the_hostile_suite_leaves_the_server_up_and_small() {
    let up = FakeUpstream::start().await;
    let store = videos::storage();
    let config = TempFile::with(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[local]\nenabled = false\n\
         [[upstreams]]\nname = \"u\"\nbase_url = \"{}\"\nmodel = \"m\"\n{}",
        up.base_url,
        library(&store, "")
    ));
    let mut running = Running::start(&config).await;
    let pid = running.child.id().unwrap();
    let t = Target {
        url: &running.url,
        key: KEY,
        storage: &store,
    };
    // A first ordinary video, so what processing itself takes is in the baseline.
    let (_, first) = videos::upload(t.url, KEY, &videos::made().silent()).await;
    videos::settled(t.url, first["id"].as_str().unwrap(), Some(KEY)).await;
    let before = rss_kb(pid);

    hostile::huge_page_tokens(&t).await;
    hostile::huge_text_part(&t, 600).await;
    hostile::refused_body(t.url, Some(KEY), 32, "413").await;
    hostile::refused_body(t.url, None, 32, "401").await;
    hostile::inner_addresses(&t).await;
    hostile::playlist(&t).await;
    hostile::long_gaps(&t).await;
    hostile::subtitle_bomb(&t).await;

    let health = client()
        .get(format!("{}/healthz", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let after = rss_kb(pid);
    eprintln!("hostile suite: server RSS {before} KiB before the attacks, {after} KiB after");
    assert!(
        after < before + 100 * 1024,
        "memory grew from {before} KiB to {after} KiB"
    );
    hostile::no_foreign_text(&t, &[first["id"].as_str().unwrap()]).await;
    running.signal("-TERM");
    let status = running.exit_status().await;
    assert!(status.success(), "{status}");
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// An upload of thousands of small parts is refused by its count, not read to its end.
#[tokio::test]
async fn an_upload_of_many_parts_is_refused() {
    let (s, _) = server("").await;
    let mut form = Form::new();
    for _ in 0..1000 {
        form = form.text("name", "x");
    }
    let r = client()
        .post(format!("{}/v1/videos", s.url))
        .bearer_auth(KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(body.contains("more than 32 parts"), "{body}");
}
