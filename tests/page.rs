//! The page at `/` in a real browser (Debian's chromium through its chromium-driver, driven by
//! `tests/clients/page_browser.py`: upload, watch, seek, search, chat, keyboard only, a phone's
//! width, delete), what it is served with, and the signed media links a browser plays video by.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::videos::{self, made, settled, upload};
use common::{client, client_script, FakeUpstream, Reply, Server};
use serde_json::Value;

const KEY: &str = "sk-page";
const OTHER_TENANT: &str = "k-acme";

async fn server(upstream: &FakeUpstream) -> Server {
    let toml = format!(
        "[auth]\nkeys = [\"{KEY}\", {{ key = \"{OTHER_TENANT}\", tenant = \"acme\" }}]\n\
         [storage]\ndir = \"{}\"\n[videos]\nenabled = true\nworkers = 2\nspeech_binary = \"\"\nspeech_model = \"\"\n",
        videos::storage().display()
    );
    Server::start(&[upstream], &toml).await
}

/// Two hours of a small picture and a tone, its index first so a player can seek into it by
/// Range requests at once (as any video prepared for the web is).
fn two_hour_video() -> PathBuf {
    let file = made().dir.join("two-hours.mp4");
    if !file.exists() {
        common::known::run(
            std::process::Command::new("ffmpeg")
                .args(["-y", "-loglevel", "error"])
                .args(["-f", "lavfi", "-i", "testsrc2=s=160x90:r=1"])
                .args(["-f", "lavfi", "-i", "sine=frequency=300:sample_rate=8000"])
                .args(["-t", "7200", "-c:v", "libx264", "-preset", "ultrafast"])
                .args(["-crf", "40", "-g", "10", "-pix_fmt", "yuv420p"])
                .args(["-c:a", "aac", "-b:a", "16k", "-movflags", "+faststart"])
                .arg(&file),
        );
    }
    file
}

/// 20 seconds in AVI (MPEG-4 part 2), which browsers do not play, with a word on screen.
fn unplayable_video() -> PathBuf {
    let file = made().dir.join("second.avi");
    if !file.exists() {
        common::known::run(
            std::process::Command::new("ffmpeg")
                .args(["-y", "-loglevel", "error", "-f", "lavfi", "-i"])
                .arg(format!(
                    "color=c=purple:s=320x180:d=20:r=10,drawtext=fontfile={}:text='SECOND VIDEO':fontsize=28:fontcolor=white:x=20:y=70",
                    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
                ))
                .args(["-c:v", "mpeg4", "-q:v", "5"])
                .arg(&file),
        );
    }
    file
}

/// A name a careless page would run as markup.
const HOSTILE_NAME: &str = "<img src=x onerror=alert(1)> second.avi";

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/page-screenshots")
}

#[tokio::test]
async fn a_person_uploads_watches_searches_and_chats_in_the_browser() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::text(&[
        "They plant tomatoes ",
        "at [00:04], after the welcome.",
    ]));
    // Asked about both videos: a moment only the second one has.
    upstream.push(Reply::text(&["The second video says so at [00:15]."]));
    let s = server(&upstream).await;
    let r = client()
        .post(format!("{}/v1/videos", s.url))
        .bearer_auth(KEY)
        .multipart(videos::form(
            &unplayable_video(),
            vec![("name", reqwest::multipart::Part::text(HOSTILE_NAME))],
        ))
        .send()
        .await
        .unwrap();
    let second: Value = r.json().await.unwrap();
    let second = settled(&s.url, second["id"].as_str().unwrap(), Some(KEY)).await;
    assert_eq!(second["status"], "ready", "{second}");
    let (status, long) = upload(&s.url, KEY, &two_hour_video()).await;
    assert_eq!(status, 202, "{long}");
    let video = made().with_track();
    let measured = client_script(
        ".venv-clients",
        "page_browser.py",
        &[
            &s.url,
            KEY,
            video.to_str().unwrap(),
            screenshots().to_str().unwrap(),
            long["id"].as_str().unwrap(),
            second["id"].as_str().unwrap(),
            HOSTILE_NAME,
        ],
    )
    .await;
    eprintln!("page, measured in the browser: {measured}");
    assert!(
        measured["page_weight_gzip_bytes"].as_u64().unwrap() <= 150 * 1024,
        "{measured}"
    );
    assert!(
        measured["answer"].as_str().unwrap().contains("[00:04]"),
        "{measured}"
    );
    assert_eq!(measured["citation_s"], 4.0, "{measured}");
    assert_eq!(measured["other_video_citation_s"], 15, "{measured}");
    // The chat went upstream grounded in the video, with the persona's prompt.
    let asked = upstream.received();
    assert!(!asked.is_empty());
    let grounding = asked[0].body["messages"].to_string();
    assert!(grounding.contains("tomatoes"), "{grounding}");
}

#[tokio::test]
async fn the_page_is_served_whole_from_the_binary_under_a_strict_policy() {
    let upstream = FakeUpstream::start().await;
    let s = server(&upstream).await;
    let http = client();
    let mut total = 0;
    for (path, kind) in [
        ("/", "text/html"),
        ("/page/app.js", "text/javascript"),
        ("/page/app.css", "text/css"),
        ("/page/icon.svg", "image/svg+xml"),
    ] {
        // No key: the page itself is public; what it shows is not.
        let r = http.get(format!("{}{path}", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let headers = r.headers().clone();
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind));
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let body = r.text().await.unwrap();
        total += body.len();
        // Nothing is fetched from elsewhere: no absolute URL (but the example in the URL box's
        // placeholder, and SVG's namespace, which names and fetches nothing), no inline script
        // or style.
        let elsewhere = body
            .replace("https://…/", "")
            .replace("http://www.w3.org/2000/svg", "");
        assert!(!elsewhere.contains("://"), "{path}");
        if path == "/" {
            assert!(
                !body.contains("<script>") && !body.contains("style="),
                "{body}"
            );
        }
    }
    assert!(total > 10_000, "{total} bytes: the page is missing pieces");
    let r = http
        .get(format!("{}/v1/videos", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

async fn get(url: &str, key: Option<&str>, range: Option<&str>) -> reqwest::Response {
    let mut request = client().get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(range) = range {
        request = request.header("range", range);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn media_links_serve_ranges_to_their_video_only_and_refuse_forgeries() {
    let upstream = FakeUpstream::start().await;
    let s = server(&upstream).await;
    let file = made().with_track();
    let size = std::fs::metadata(&file).unwrap().len();
    let (_, video) = upload(&s.url, KEY, &file).await;
    let id = video["id"].as_str().unwrap();
    let video = settled(&s.url, id, Some(KEY)).await;
    assert_eq!(video["status"], "ready", "{video}");
    let media = format!("{}{}", s.url, video["media_url"].as_str().unwrap());
    assert!(media.contains("sig="), "{media}");

    // A player's Range requests, with no key: the link is enough.
    let r = get(&media, None, Some("bytes=100-199")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 100-199/{size}").as_str()
    );
    assert_eq!(r.headers()["content-type"], "video/mp4");
    assert_eq!(r.bytes().await.unwrap().len(), 100);
    let whole = get(&media, None, None).await;
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert_eq!(whole.bytes().await.unwrap().len() as u64, size);
    // The key works too, without a link (for curl and scripts).
    let plain = format!("{}/v1/videos/{id}/media", s.url);
    assert_eq!(
        get(&plain, Some(KEY), Some("bytes=0-9")).await.status(),
        206
    );

    // Keyframes by the links the timeline hands out.
    let timeline: Value = get(
        &format!("{}/v1/videos/{id}/timeline", s.url),
        Some(KEY),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let keyframe = timeline["keyframes"][0]["url"].as_str().unwrap();
    let r = get(&format!("{}{keyframe}", s.url), None, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert_eq!(
        timeline["media_url"], video["media_url"],
        "one link per video and hour"
    );

    // Hostile: no key and no link; a changed signature; a link moved to another video; a
    // link past its time; a link with a made-up time; the other tenant's key.
    assert_eq!(get(&plain, None, None).await.status(), 401);
    let (base, query) = media.split_once('?').unwrap();
    let sig = query.split("sig=").nth(1).unwrap();
    let expires: i64 = query
        .split('&')
        .find_map(|p| p.strip_prefix("expires="))
        .unwrap()
        .parse()
        .unwrap();
    let flipped: String = sig
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 {
                if c == 'a' {
                    'b'
                } else {
                    'a'
                }
            } else {
                c
            }
        })
        .collect();
    let forged = [
        format!("{base}?expires={expires}&sig={flipped}"),
        format!("{}/v1/videos/vid_other/media?{query}", s.url),
        format!("{base}?expires={}&sig={sig}", expires + 3600),
        format!("{base}?expires=1&sig={sig}"),
        format!("{base}?expires={expires}&sig="),
        format!("{base}?expires={expires}&sig={}", "f".repeat(4096)),
    ];
    for url in &forged {
        let r = get(url, None, None).await;
        assert_eq!(r.status(), 403, "{url}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "media_link_invalid", "{body}");
    }
    for url in [
        format!("{base}?expires=99999999999999999999999&sig={sig}"),
        format!("{base}?expires=soon&sig={sig}"),
        format!("{base}?expires={expires}&sig={sig}&tenant=acme"),
    ] {
        let r = get(&url, None, None).await;
        assert_eq!(r.status(), 400, "{url}");
    }
    assert_eq!(get(&plain, Some(OTHER_TENANT), None).await.status(), 404);
    let theirs = get(
        &format!("{}/v1/videos/{id}", s.url),
        Some(OTHER_TENANT),
        None,
    )
    .await;
    assert_eq!(theirs.status(), 404, "another tenant gets no links");

    // Deleted, its links play nothing.
    let r = client()
        .delete(format!("{}/v1/videos/{id}", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(get(&media, None, None).await.status(), 403);
}
