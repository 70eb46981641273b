//! Replicas sharing one video library: the store in a real Postgres on a loopback port, the
//! video files in one `storage.dir` they all use. A video added through one replica is listed,
//! searched, chatted about and deleted through another; a job whose replica is killed is finished
//! by another once its lease runs out; a Postgres crash loses no video and leaves no job stuck.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::postgres_server::PostgresServer;
use common::process::Running;
use common::videos::{self, made, settled};
use common::{client, FakeUpstream, Server, TempFile};
use serde_json::{json, Value};

const KEY: &str = "sk-shared";

fn replica_toml(pg: &PostgresServer, dir: &Path, extra: &str) -> String {
    format!(
        "[auth]\nkeys = [\"{KEY}\"]\n[cluster]\ndatabase_url = \"{}\"\n[storage]\ndir = \"{}\"\n\
         [videos]\nenabled = true\nallow_private_urls = true\n{extra}",
        pg.url(),
        dir.display()
    )
}

fn no_speech() -> &'static str {
    "speech_binary = \"\"\nspeech_model = \"\"\n"
}

async fn upload(base: &str, file: &Path) -> String {
    let r: Value = client()
        .post(format!("{base}/v1/videos"))
        .bearer_auth(KEY)
        .multipart(videos::form(file, vec![]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_string()
}

async fn get(base: &str, path: &str) -> (u16, Value) {
    let r = client()
        .get(format!("{base}{path}"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_video_added_through_one_replica_is_served_by_any() {
    let pg = PostgresServer::start().await;
    let up = FakeUpstream::start().await;
    let dir = videos::storage();
    let a = Server::start(&[&up], &replica_toml(&pg, &dir, no_speech())).await;
    let b = Server::start(&[&up], &replica_toml(&pg, &dir, no_speech())).await;

    let id = upload(&a.url, &made().with_track()).await;
    let video = settled(&b.url, &id, Some(KEY)).await;
    assert_eq!(video["status"], "ready", "{video}");
    let (_, listed) = get(&b.url, "/v1/videos").await;
    assert_eq!(listed["data"][0]["id"], id.as_str(), "{listed}");
    let (status, timeline) = get(&b.url, &format!("/v1/videos/{id}/timeline")).await;
    assert_eq!(status, 200);
    assert!(
        timeline.to_string().contains("tomatoes"),
        "the track's words: {timeline}"
    );

    // Keyword search in Postgres (English stemming: "planting" finds "plant").
    let (status, found) = videos::post_json(
        &b.url,
        "/v1/search",
        KEY,
        &json!({"query": "tomatoes", "mode": "text"}),
    )
    .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["data"][0]["video_id"], id.as_str(), "{found}");

    // A chat through the other replica is grounded in the video.
    let (status, answer) = videos::post_json(
        &b.url,
        "/serve/api/v1/chat",
        KEY,
        &json!({"video_nos": [id], "prompt": "What do they plant?"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let prompt = up.received()[0].body["messages"].to_string();
    assert!(prompt.contains("tomatoes"), "{prompt}");

    // By meaning too, on both replicas, whichever processed it: the other picks up its vectors.
    for s in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, found) = videos::post_json(
                &s.url,
                "/v1/search",
                KEY,
                &json!({"query": "growing vegetables", "mode": "semantic", "threshold": 0.0}),
            )
            .await;
            assert_eq!(status, 200, "{found}");
            if found["data"][0]["video_id"] == id.as_str() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} never found it by meaning: {found}",
                s.url
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // Deleted through b: gone for a, files and all.
    let r = client()
        .delete(format!("{}/v1/videos/{id}", b.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(get(&a.url, &format!("/v1/videos/{id}")).await.0, 404);
    assert!(!dir.join("videos").join(&id).exists());
}

#[tokio::test]
async fn deleting_a_video_through_one_replica_stops_its_job_on_another() {
    let pg = PostgresServer::start().await;
    let work = videos::storage();
    let recogniser = videos::SlowRecogniser::new(&work);
    let dir = work.join("store");
    let up = FakeUpstream::start().await;
    let worker = Server::start(
        &[&up],
        &replica_toml(
            &pg,
            &dir,
            &format!("job_lease = \"1s\"\n{}", recogniser.toml()),
        ),
    )
    .await;
    let id = upload(&worker.url, &made().speech()).await;
    videos::appears(&recogniser.pid).await;
    let pid = std::fs::read_to_string(&recogniser.pid)
        .unwrap()
        .trim()
        .to_string();
    // The other replica only serves: its workers find no job (the one job is held).
    let other = Server::start(&[&up], &replica_toml(&pg, &dir, no_speech())).await;
    let r = client()
        .delete(format!("{}/v1/videos/{id}", other.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() && !videos::is_zombie(&pid) {
        assert!(
            Instant::now() < deadline,
            "the job kept running on the other replica ({pid})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(&worker.url, &format!("/v1/videos/{id}")).await.0, 404);
}

#[tokio::test]
async fn a_job_whose_replica_is_killed_is_finished_by_another() {
    let pg = PostgresServer::start().await;
    let work = videos::storage();
    let recogniser = videos::SlowRecogniser::new(&work);
    let dir = work.join("store");
    let lease = "job_lease = \"2s\"\n";
    let config = TempFile::with(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[local]\nenabled = false\n{}",
        replica_toml(&pg, &dir, &format!("{lease}{}", recogniser.toml()))
    ));
    let mut doomed = Running::start(&config).await;
    let id = upload(&doomed.url, &made().speech()).await;
    videos::appears(&recogniser.pid).await;

    doomed.signal("-KILL");
    doomed.exit_status().await;
    let killed = Instant::now();
    let orphan = std::fs::read_to_string(&recogniser.pid).unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-KILL", orphan.trim()])
        .status();
    std::fs::remove_file(&recogniser.hold).unwrap();

    let up = FakeUpstream::start().await;
    let other = Server::start(
        &[&up],
        &replica_toml(&pg, &dir, &format!("{lease}{}", recogniser.toml())),
    )
    .await;
    let video = settled(&other.url, &id, Some(KEY)).await;
    assert_eq!(video["status"], "ready", "{video}");
    assert_eq!(video["steps"]["transcript"]["source"], "speech_to_text");
    let taken_over = killed.elapsed();
    assert!(
        taken_over < Duration::from_secs(30),
        "took {taken_over:?} to finish elsewhere"
    );
}

#[tokio::test]
async fn a_postgres_crash_loses_no_video_and_leaves_no_job_stuck() {
    let pg = PostgresServer::start().await;
    let up = FakeUpstream::start().await;
    let dir = videos::storage();
    let s = Server::start(
        &[&up],
        &replica_toml(&pg, &dir, &format!("job_lease = \"2s\"\n{}", no_speech())),
    )
    .await;
    let before = upload(&s.url, &made().with_track()).await;
    assert_eq!(settled(&s.url, &before, Some(KEY)).await["status"], "ready");

    pg.crash();
    // While it is down: an error at once, not a hang.
    let started = Instant::now();
    let (status, _) = get(&s.url, "/v1/videos").await;
    assert!(status >= 500, "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    pg.up().await;

    let after = upload(&s.url, &made().with_track()).await;
    assert_eq!(settled(&s.url, &after, Some(KEY)).await["status"], "ready");
    let (_, listed) = get(&s.url, "/v1/videos").await;
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [after.as_str(), before.as_str()]);
}
