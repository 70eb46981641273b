//! The video library over HTTP: uploads and links, processing into a timeline (scenes, on-screen
//! text, transcripts from every source), bad files, the URL guard, deletion mid-job. Videos are
//! made by the tests (`common::videos`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::videos::{self, file_server, made, settled, SCENES, SCENE_S};
use common::{client, Server};
use reqwest::multipart::Part;
use serde_json::Value;

const KEY: &str = "sk-video-test";

/// A server with its own store; no speech-to-text unless `extra` sets it up.
async fn server(extra: &str) -> (Server, std::path::PathBuf) {
    server_with(&[], extra).await
}

async fn server_with(
    upstreams: &[&common::FakeUpstream],
    extra: &str,
) -> (Server, std::path::PathBuf) {
    let store = videos::storage();
    let speech = if extra.contains("speech_binary") {
        ""
    } else {
        "speech_binary = \"\"\nspeech_model = \"\"\n"
    };
    let toml = format!(
        "[auth]\nkeys = [\"{KEY}\"]\n[storage]\ndir = \"{}\"\n[videos]\nenabled = true\njob_lease = \"2s\"\n{speech}{extra}",
        store.display()
    );
    (Server::start(upstreams, &toml).await, store)
}

async fn upload(s: &Server, form: reqwest::multipart::Form) -> (u16, Value) {
    let r = client()
        .post(format!("{}/v1/videos", s.url))
        .bearer_auth(KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn get(s: &Server, path: &str) -> (u16, Value) {
    let r = client()
        .get(format!("{}{path}", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Every segment's transcript of a ready video, joined, lower-cased.
async fn transcript(s: &Server, id: &str) -> String {
    let (status, timeline) = get(s, &format!("/v1/videos/{id}/timeline")).await;
    assert_eq!(status, 200, "{timeline}");
    timeline["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["transcript"].as_str().unwrap().to_lowercase() + " ")
        .collect()
}

async fn delete(s: &Server, id: &str) -> u16 {
    let r = client()
        .delete(format!("{}/v1/videos/{id}", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

fn words(text: &str) -> String {
    text.to_lowercase()
}

#[tokio::test]
async fn a_video_with_a_subtitle_track_becomes_a_timeline_of_scenes_text_and_words() {
    let (s, store) = server("").await;
    let (status, video) = upload(&s, videos::form(&made().with_track(), vec![])).await;
    assert_eq!(status, 202, "{video}");
    assert_eq!(video["name"], "with-track.mp4");
    assert!(
        matches!(video["status"].as_str(), Some("queued" | "processing")),
        "{video}"
    );
    let id = video["id"].as_str().unwrap().to_string();

    let video = settled(&s.url, &id, Some(KEY)).await;
    assert_eq!(video["status"], "ready", "{video}");
    assert!(
        (video["duration_s"].as_f64().unwrap() - 12.0).abs() < 0.5,
        "{video}"
    );
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert_eq!(video["has_audio"], true);
    assert!(video["ready_at"].as_i64().unwrap() >= video["created_at"].as_i64().unwrap());
    assert_eq!(
        video["steps"]["transcript"]["source"], "embedded_subtitles",
        "{video}"
    );
    assert_eq!(video["steps"]["transcript"]["cues"], 3);
    assert_eq!(video["steps"]["keyframes"]["count"], 3, "{video}");
    assert_eq!(video["steps"]["ocr"]["count"], 3, "{video}");
    assert!(video["steps"]["captions"]["note"].is_string());

    let (status, timeline) = get(&s, &format!("/v1/videos/{id}/timeline")).await;
    assert_eq!(status, 200, "{timeline}");
    let segments = timeline["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 3, "{timeline}");
    for (i, (segment, (_, text))) in segments.iter().zip(SCENES).enumerate() {
        let start = segment["start_s"].as_f64().unwrap();
        assert!(
            (start - SCENE_S * i as f64).abs() <= 0.5,
            "scene {i} starts at {start}: {timeline}"
        );
        let seen = segment["on_screen_text"].as_str().unwrap();
        for word in text.split(' ') {
            assert!(
                seen.contains(word),
                "scene {i}: `{word}` not read in `{seen}`"
            );
        }
    }
    assert_eq!(segments[1]["stamp"], "[00:04]");
    assert!(
        words(segments[0]["transcript"].as_str().unwrap()).contains("garden tour"),
        "{timeline}"
    );
    assert!(
        words(segments[1]["transcript"].as_str().unwrap()).contains("tomatoes"),
        "{timeline}"
    );
    assert!(
        words(segments[2]["transcript"].as_str().unwrap()).contains("flowers"),
        "{timeline}"
    );

    let jpeg = client()
        .get(format!("{}/v1/videos/{id}/keyframes/1.jpg", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(jpeg.status(), 200);
    assert_eq!(jpeg.headers()["content-type"], "image/jpeg");
    assert_eq!(&jpeg.bytes().await.unwrap()[..2], &[0xFF, 0xD8]);
    assert_eq!(
        get(&s, &format!("/v1/videos/{id}/keyframes/9.jpg")).await.0,
        404
    );

    let (_, list) = get(&s, "/v1/videos?status=ready").await;
    assert_eq!(list["data"][0]["id"], id.as_str());
    let (_, list) = get(&s, "/v1/videos?status=failed").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    let (status, bad) = get(&s, "/v1/videos?status=done").await;
    assert_eq!(status, 400);
    assert_eq!(bad["error"]["param"], "status");

    assert_eq!(delete(&s, &id).await, 200);
    assert_eq!(get(&s, &format!("/v1/videos/{id}")).await.0, 404);
    assert!(
        !store.join("videos").join(&id).exists(),
        "the video's files are gone"
    );
    assert_eq!(delete(&s, &id).await, 404);
}

#[tokio::test]
async fn an_uploaded_subtitles_file_wins_and_no_source_says_why() {
    let (s, _store) = server("").await;
    let vtt = Part::bytes(videos::SUBTITLES_VTT.as_bytes().to_vec()).file_name("talk.vtt");
    let name = Part::text("My talk");
    let (status, with_vtt) = upload(
        &s,
        videos::form(
            &made().with_track(),
            vec![("subtitles", vtt), ("name", name)],
        ),
    )
    .await;
    assert_eq!(status, 202, "{with_vtt}");
    assert_eq!(with_vtt["name"], "My talk");
    assert_eq!(with_vtt["source"]["subtitles_file"], true);
    let (_, silent) = upload(&s, videos::form(&made().silent(), vec![])).await;
    let (_, speech) = upload(&s, videos::form(&made().speech(), vec![])).await;

    let with_vtt = settled(&s.url, with_vtt["id"].as_str().unwrap(), Some(KEY)).await;
    assert_eq!(
        with_vtt["steps"]["transcript"]["source"], "subtitles_file",
        "{with_vtt}"
    );
    let all = transcript(&s, with_vtt["id"].as_str().unwrap()).await;
    assert!(
        all.contains("bicycles") && all.contains("mountains") && !all.contains("garden"),
        "{all}"
    );

    let silent = settled(&s.url, silent["id"].as_str().unwrap(), Some(KEY)).await;
    assert_eq!(silent["status"], "ready");
    assert_eq!(silent["has_audio"], false);
    assert_eq!(silent["steps"]["transcript"]["source"], "none");
    assert!(
        silent["steps"]["transcript"]["note"]
            .as_str()
            .unwrap()
            .contains("no sound"),
        "{silent}"
    );

    let speech = settled(&s.url, speech["id"].as_str().unwrap(), Some(KEY)).await;
    assert_eq!(speech["steps"]["transcript"]["source"], "none");
    assert!(
        speech["steps"]["transcript"]["note"]
            .as_str()
            .unwrap()
            .contains("videos.speech_binary"),
        "{speech}"
    );
}

#[tokio::test]
async fn files_that_are_not_usable_videos_fail_with_a_reason_and_leave_nothing() {
    let (s, store) = server("max_bytes = 200000\n").await;
    let mut failed = Vec::new();
    for (file, reason) in [
        (made().text(), "not a video"),
        (made().truncated(), "not a video"),
        (made().audio_only(), "audio only"),
    ] {
        let (status, video) = upload(&s, videos::form(&file, vec![])).await;
        assert_eq!(status, 202, "{video}");
        failed.push((video["id"].as_str().unwrap().to_string(), reason));
    }
    for (id, reason) in failed {
        let video = settled(&s.url, &id, Some(KEY)).await;
        assert_eq!(video["status"], "failed", "{video}");
        assert!(video["error"].as_str().unwrap().contains(reason), "{video}");
        assert!(
            !store.join("videos").join(&id).exists(),
            "files of a failed video are removed"
        );
    }

    let empty = reqwest::multipart::Form::new()
        .part("file", Part::bytes(Vec::new()).file_name("empty.mp4"));
    let (status, error) = upload(&s, empty).await;
    assert_eq!(
        (status, error["error"]["param"].as_str()),
        (400, Some("file")),
        "{error}"
    );
    let (status, error) = upload(&s, reqwest::multipart::Form::new().text("name", "x")).await;
    assert_eq!(
        (status, error["error"]["param"].as_str()),
        (400, Some("file")),
        "{error}"
    );
    let srt = Part::bytes(b"x".to_vec()).file_name("subs.txt");
    let (status, error) =
        upload(&s, videos::form(&made().silent(), vec![("subtitles", srt)])).await;
    assert_eq!(
        (status, error["error"]["param"].as_str()),
        (400, Some("subtitles")),
        "{error}"
    );

    // Over videos.max_bytes while arriving (chunked, so no Content-Length tells in advance).
    let big = vec![0u8; 300_000];
    let stream = futures_util::stream::iter(
        big.chunks(16_384)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let part = Part::stream(reqwest::Body::wrap_stream(stream)).file_name("big.mp4");
    let (status, error) = upload(&s, reqwest::multipart::Form::new().part("file", part)).await;
    assert_eq!(status, 413, "{error}");
    let (_, list) = get(&s, "/v1/videos").await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        3,
        "only the three that failed: {list}"
    );
    assert_eq!(
        std::fs::read_dir(store.join("incoming")).unwrap().count(),
        0,
        "no upload is left half-made"
    );

    let no_key = client()
        .get(format!("{}/v1/videos", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
}

async fn link(s: &Server, url: &str) -> (u16, Value) {
    let r = client()
        .post(format!("{}/v1/videos", s.url))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"url": url}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn url_ingest_refuses_the_servers_own_network_unless_allowed() {
    let origin = file_server(made().silent()).await;
    let (guarded, _) = server("").await;
    for url in [
        format!("{origin}/video.mp4"),
        "http://169.254.169.254/latest/meta-data".into(),
        "http://[::1]:9/x".into(),
    ] {
        let (status, error) = link(&guarded, &url).await;
        assert_eq!(status, 400, "{url}: {error}");
        assert_eq!(error["error"]["param"], "url");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("videos.allow_private_urls"),
            "{error}"
        );
    }
    let (status, error) = link(&guarded, "file:///etc/passwd").await;
    assert_eq!(status, 400, "{error}");

    let (open, _) = server("allow_private_urls = true\nurl_max_redirects = 2\n").await;
    let (status, video) = link(&open, &format!("{origin}/hop/1")).await;
    assert_eq!(status, 202, "{video}");
    assert_eq!(video["source"]["kind"], "url");
    let video = settled(&open.url, video["id"].as_str().unwrap(), Some(KEY)).await;
    assert_eq!(video["status"], "ready", "{video}");
    assert!(video["source"]["bytes"].as_u64().unwrap() > 1000);

    let (_, too_far) = link(&open, &format!("{origin}/hop/5")).await;
    let too_far = settled(&open.url, too_far["id"].as_str().unwrap(), Some(KEY)).await;
    assert_eq!(too_far["status"], "failed");
    assert!(
        too_far["error"]
            .as_str()
            .unwrap()
            .contains("redirected more than 2"),
        "{too_far}"
    );
    let (_, missing) = link(&open, &format!("{origin}/nothing.mp4")).await;
    let missing = settled(&open.url, missing["id"].as_str().unwrap(), Some(KEY)).await;
    assert!(
        missing["error"].as_str().unwrap().contains("404"),
        "{missing}"
    );
}

#[tokio::test]
async fn deleting_a_video_mid_processing_stops_its_job_and_removes_it() {
    let work = videos::storage();
    let recogniser = videos::SlowRecogniser::new(&work);
    let (s, store) = server(&recogniser.toml()).await;
    let (_, video) = upload(&s, videos::form(&made().speech(), vec![])).await;
    let id = video["id"].as_str().unwrap();
    videos::appears(&recogniser.pid).await;
    let (_, during) = get(&s, &format!("/v1/videos/{id}")).await;
    assert_eq!(during["status"], "processing");
    let (status, _) = get(&s, &format!("/v1/videos/{id}/timeline")).await;
    assert_eq!(status, 409);
    let pid = std::fs::read_to_string(&recogniser.pid)
        .unwrap()
        .trim()
        .to_string();
    // Processing runs below serving: the program at the lowest priority (`videos.low_priority`).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command's name, from the third (`proc_pid_stat(5)`).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    assert_eq!(fields[19 - 3], "19", "nice 19: {stat}");
    assert_eq!(fields[41 - 3], "5", "SCHED_IDLE (5): {stat}");
    // And told to use half the cores, so its threads do not spin waiting for each other.
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let half = (std::thread::available_parallelism().unwrap().get() / 2).max(1);
    let threads = format!("CHATAPI_WHISPER_THREADS={half}");
    assert!(
        environ
            .split(|b| *b == 0)
            .any(|var| var == threads.as_bytes()),
        "{threads} not in the recogniser's environment"
    );

    assert_eq!(delete(&s, id).await, 200);
    assert_eq!(get(&s, &format!("/v1/videos/{id}")).await.0, 404);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() && !videos::is_zombie(&pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the recogniser ({pid}) was not stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!store.join("videos").join(id).exists());
}

/// A crash (SIGKILL) mid-upload and mid-processing: the next start has no trace of the upload
/// and finishes the job.
#[tokio::test]
async fn a_crash_mid_upload_and_mid_job_leaves_a_consistent_library() {
    use common::process::Running;
    let work = videos::storage();
    let recogniser = videos::SlowRecogniser::new(&work);
    let store = work.join("store");
    let config = common::TempFile::with(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[local]\nenabled = false\n[auth]\nkeys = [\"{KEY}\"]\n\
         [storage]\ndir = \"{}\"\n[videos]\njob_lease = \"2s\"\n{}",
        store.display(),
        recogniser.toml()
    ));
    let mut first = Running::start(&config).await;
    let form = videos::form(&made().speech(), vec![]);
    let r = client()
        .post(format!("{}/v1/videos", first.url))
        .bearer_auth(KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    videos::appears(&recogniser.pid).await;

    // An upload that stops halfway: its first bytes reach the staging folder, the rest never come.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    tx.send(Ok(vec![7u8; 100_000])).await.unwrap();
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let part = Part::stream(body).file_name("half.mp4");
    let url = format!("{}/v1/videos", first.url);
    let pending = tokio::spawn(async move {
        client()
            .post(url)
            .bearer_auth(KEY)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
    });
    let incoming = store.join("incoming");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read_dir(&incoming)
        .unwrap()
        .flatten()
        .any(|d| d.path().join("source").exists())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upload never reached the disk"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    first.signal("-KILL");
    first.exit_status().await;
    let _ = pending.await;
    drop(tx);
    // The dead server's recogniser is an orphan now; the next one must run on its own.
    let orphan = std::fs::read_to_string(&recogniser.pid).unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-KILL", orphan.trim()])
        .status();
    std::fs::remove_file(&recogniser.hold).unwrap();

    let second = Running::start(&config).await;
    assert_eq!(
        std::fs::read_dir(&incoming).unwrap().count(),
        0,
        "the half upload is gone"
    );
    let video = settled(&second.url, &id, Some(KEY)).await;
    assert_eq!(video["status"], "ready", "{video}");
    assert_eq!(video["steps"]["transcript"]["source"], "speech_to_text");
    let list: Value = client()
        .get(format!("{}/v1/videos", second.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The real recogniser: `chatapi-whisper` (built beside the tests by `scripts/test.sh`) with
/// whisper tiny.en, on espeak-ng's speech. Recognition is not exact: most of the keywords, any case.
#[tokio::test]
async fn speech_becomes_a_transcript_offline_with_whisper() {
    let (s, _) = server(&videos::whisper_config()).await;
    let (_, video) = upload(&s, videos::form(&made().speech(), vec![])).await;
    let video = settled(&s.url, video["id"].as_str().unwrap(), Some(KEY)).await;
    assert_eq!(video["status"], "ready", "{video}");
    assert_eq!(
        video["steps"]["transcript"]["source"], "speech_to_text",
        "{video}"
    );
    let heard = transcript(&s, video["id"].as_str().unwrap()).await;
    let keywords = [
        "welcome", "garden", "tour", "today", "plant", "tomatoes", "water", "flowers",
    ];
    let found = keywords.iter().filter(|k| heard.contains(*k)).count();
    assert!(
        found >= 6,
        "only {found} of {keywords:?} heard in `{heard}`"
    );
}

/// Captions from a vision upstream (the fake, standing in for a paid vision model): each keyframe
/// goes as a base64 JPEG image part; when the upstream fails, the video is still ready and the
/// step's note says why.
#[tokio::test]
async fn keyframes_are_captioned_by_a_vision_upstream_and_its_failure_is_noted() {
    use common::{FakeUpstream, Reply};
    let vision = FakeUpstream::start().await;
    vision.set_default(Reply::text(&["A ", "red ", "slide."]));
    let (s, _) = server_with(&[&vision], "vision_upstreams = [\"up0\"]\n").await;
    let (_, video) = upload(&s, videos::form(&made().silent(), vec![])).await;
    let video = settled(&s.url, video["id"].as_str().unwrap(), Some(KEY)).await;
    assert_eq!(video["steps"]["captions"]["count"], 3, "{video}");
    let (_, timeline) = get(
        &s,
        &format!("/v1/videos/{}/timeline", video["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(
        timeline["segments"][0]["caption"], "A red slide.",
        "{timeline}"
    );
    let asked = vision.received();
    assert_eq!(asked.len(), 3);
    let content = &asked[0].body["messages"][0]["content"];
    assert_eq!(asked[0].body["model"], "fake-model");
    assert!(
        content[1]["image_url"]["url"]
            .as_str()
            .unwrap()
            .starts_with("data:image/jpeg;base64,/9j/"),
        "{content}"
    );

    vision.set_default(Reply::status(
        500,
        "server_error",
        "the vision model is down",
    ));
    let (_, video) = upload(&s, videos::form(&made().silent(), vec![])).await;
    let video = settled(&s.url, video["id"].as_str().unwrap(), Some(KEY)).await;
    assert_eq!(video["status"], "ready", "{video}");
    assert_eq!(video["steps"]["captions"]["count"], 0);
    let note = video["steps"]["captions"]["note"].as_str().unwrap();
    assert!(note.contains("up0") && note.contains("500"), "{note}");
}

#[tokio::test]
async fn a_video_longer_than_the_limit_fails_saying_so() {
    let (s, _) = server("max_duration = \"5s\"\n").await;
    let (_, video) = upload(&s, videos::form(&made().silent(), vec![])).await;
    let video = settled(&s.url, video["id"].as_str().unwrap(), Some(KEY)).await;
    assert_eq!(video["status"], "failed");
    let error = video["error"].as_str().unwrap();
    assert!(
        error.contains("12s long") && error.contains("videos.max_duration"),
        "{error}"
    );
}

/// A clean stop hands the job back at once: the next start takes it up without waiting for the
/// (here, five-minute) lease to run out.
#[tokio::test]
async fn a_clean_stop_hands_unfinished_jobs_to_the_next_start() {
    let work = videos::storage();
    let recogniser = videos::SlowRecogniser::new(&work);
    let store = work.join("store");
    let toml = format!(
        "[auth]\nkeys = [\"{KEY}\"]\n[storage]\ndir = \"{}\"\n[videos]\njob_lease = \"5m\"\n{}",
        store.display(),
        recogniser.toml()
    );
    let mut first = Server::start(&[], &toml).await;
    let (_, video) = upload(&first, videos::form(&made().speech(), vec![])).await;
    let id = video["id"].as_str().unwrap().to_string();
    videos::appears(&recogniser.pid).await;
    first.shutdown();
    (&mut first.handle).await.unwrap().unwrap();
    std::fs::remove_file(&recogniser.hold).unwrap();

    let second = Server::start(&[], &toml).await;
    let video = settled(&second.url, &id, Some(KEY)).await;
    assert_eq!(video["status"], "ready", "{video}");
    assert_eq!(video["steps"]["transcript"]["source"], "speech_to_text");
}
