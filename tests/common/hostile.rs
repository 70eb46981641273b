//! Hostile inputs, each an attack a caller with a key once could make, with what the server must
//! do about it. Each is a function over a running server's address, so the one-per-item tests
//! (`tests/hostile.rs`) and the suite that runs them all against one server process share them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::client;
use super::known::run;
use super::videos::{made, settled, SCENES};

/// Media made once per test process: files that lie.
pub struct Media {
    pub dir: PathBuf,
}

impl Media {
    /// An HLS playlist under a video's name, whose one segment is a video elsewhere on the disk.
    pub fn playlist(&self) -> PathBuf {
        self.dir.join("clip.mp4")
    }
    /// Matroska whose header says 10 s, with three frames 20,000 s apart.
    pub fn long_gaps(&self) -> PathBuf {
        self.dir.join("ten-seconds.mkv")
    }
    /// Matroska with a zlib-compressed subtitle track that unpacks to 100 MB of SRT.
    pub fn subtitle_bomb(&self) -> PathBuf {
        self.dir.join("subtitles.mkv")
    }
}

pub fn media() -> &'static Media {
    static MEDIA: std::sync::OnceLock<Media> = std::sync::OnceLock::new();
    MEDIA.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("chatapi-hostile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let media = Media { dir };
        make(&media);
        media
    })
}

fn make(m: &Media) {
    // The segment is a real video of the test set, by its absolute path.
    let elsewhere = made().silent();
    std::fs::write(
        m.playlist(),
        format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:12\n#EXTINF:12,\n{}\n#EXT-X-ENDLIST\n",
            elsewhere.display()
        ),
    )
    .unwrap();

    let gaps = m.dir.join("gaps.mkv");
    run(std::process::Command::new("ffmpeg")
        .args(["-y", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("color=c=red:s=64x64:r=1")
        .args([
            "-frames:v",
            "3",
            "-vf",
            "setpts=N*20000/TB",
            "-c:v",
            "libx264",
        ])
        .args(["-preset", "ultrafast"])
        .arg(&gaps));
    // The Segment Info's Duration (ID 0x4489, an 8-byte float in milliseconds): 10 s.
    let mut bytes = std::fs::read(&gaps).unwrap();
    let at = bytes
        .windows(3)
        .position(|w| w == [0x44, 0x89, 0x88])
        .expect("a Duration element");
    bytes[at + 3..at + 11].copy_from_slice(&10_000f64.to_be_bytes());
    std::fs::write(m.long_gaps(), bytes).unwrap();

    let picture = m.dir.join("picture.mkv");
    run(std::process::Command::new("ffmpeg")
        .args(["-y", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("color=c=blue:s=64x64:d=2")
        .args(["-c:v", "libx264", "-preset", "ultrafast"])
        .arg(&picture));
    let srt = m.dir.join("bomb.srt");
    let line = "A".repeat(50_000);
    let mut text = String::with_capacity(2_000 * 50_100);
    let stamp = |ms: u64| {
        format!(
            "00:{:02}:{:02},{:03}",
            ms / 60_000,
            ms / 1000 % 60,
            ms % 1000
        )
    };
    for i in 0..2_000u64 {
        text.push_str(&format!(
            "{}\n{} --> {}\n{line}\n\n",
            i + 1,
            stamp(i * 500),
            stamp(i * 500 + 400)
        ));
    }
    std::fs::write(&srt, text).unwrap();
    run(std::process::Command::new("mkvmerge")
        .args(["-q", "-o"])
        .arg(m.subtitle_bomb())
        .arg(&picture)
        .args(["--compression", "0:zlib"])
        .arg(&srt));
    let _ = std::fs::remove_file(&srt);
}

/// A server under attack: its address, a key, and its storage folder (which must never show up in
/// what a caller reads).
pub struct Target<'a> {
    pub url: &'a str,
    pub key: &'a str,
    pub storage: &'a Path,
}

impl Target<'_> {
    async fn upload(&self, file: &Path) -> Value {
        let (status, video) = super::videos::upload(self.url, self.key, file).await;
        assert_eq!(status, 202, "upload of {}: {video}", file.display());
        video
    }

    async fn settled(&self, video: &Value) -> Value {
        settled(self.url, video["id"].as_str().unwrap(), Some(self.key)).await
    }

    /// Uploads `file`, which must end `failed` with an error that says `says` and names no
    /// file of the server's.
    async fn fails(&self, file: &Path, says: &str) {
        let video = self.upload(file).await;
        let video = self.settled(&video).await;
        assert_eq!(video["status"], "failed", "{video}");
        let error = video["error"].as_str().unwrap();
        assert!(error.contains(says), "{error}");
        self.tells_no_paths(error);
    }

    /// What a caller reads must never name the server's own files.
    fn tells_no_paths(&self, said: &str) {
        let storage = self.storage.display().to_string();
        assert!(!said.contains(&storage), "a storage path told: {said}");
        assert!(!said.contains("/tmp/"), "a path told: {said}");
    }
}

/// A page token of 10^13 once made the vector search reserve room for that many hits, and the
/// failed allocation aborted the process. Now: a 400 that names the token.
pub async fn huge_page_tokens(t: &Target<'_>) {
    for token in ["10000000000000", "99999999999999999999999", "-1", "501"] {
        let r = client()
            .post(format!("{}/v2/search", t.url))
            .header("X-Api-Key", t.key)
            .json(&json!({"query": "x", "page_token": token}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_eq!(status, 400, "page_token {token}: {body}");
        assert!(body.contains("page_token"), "{body}");
    }
}

/// A text part of hundreds of MiB, sent chunked (no Content-Length stops it): refused at 64 KiB,
/// read chunk by chunk, never held whole.
pub async fn huge_text_part(t: &Target<'_>, mib: usize) {
    let chunk = bytes::Bytes::from(vec![b'n'; 1 << 20]);
    let stream =
        futures_util::stream::iter((0..mib).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let form = Form::new()
        .part("name", Part::stream(reqwest::Body::wrap_stream(stream)))
        .part("file", Part::bytes(vec![0u8; 16]).file_name("v.mp4"));
    let r = client()
        .post(format!("{}/v1/videos", t.url))
        .bearer_auth(t.key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("name") && body.contains("65536 bytes"),
        "{body}"
    );
}

/// A 226 KB Matroska file whose compressed subtitle track unpacks to 100 MB of SRT: ffmpeg is
/// stopped at 8 MiB, and the video fails with a sentence.
pub async fn subtitle_bomb(t: &Target<'_>) {
    t.fails(&media().subtitle_bomb(), "more than 8 MiB").await;
}

/// An HLS playlist named `clip.mp4` whose segment is another file on the server: never demuxed,
/// so no keyframe or on-screen text of that file reaches a timeline.
pub async fn playlist(t: &Target<'_>) {
    t.fails(&media().playlist(), "not a video").await;
}

/// A header that says 10 s over frames 20,000 s apart: nothing past the stated length is read,
/// and the keyframes are those of 10 s.
pub async fn long_gaps(t: &Target<'_>) {
    let video = t.upload(&media().long_gaps()).await;
    let video = t.settled(&video).await;
    assert_eq!(video["status"], "ready", "{video}");
    let id = video["id"].as_str().unwrap();
    let timeline: Value = client()
        .get(format!("{}/v1/videos/{id}/timeline", t.url))
        .bearer_auth(t.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keyframes = timeline["keyframes"].as_array().unwrap();
    assert!(
        (1..=2).contains(&keyframes.len()),
        "{} keyframes for a 10-second video",
        keyframes.len()
    );
    for s in timeline["segments"].as_array().unwrap() {
        assert!(s["end_s"].as_f64().unwrap() <= 11.0, "{s}");
    }
}

/// Addresses that carry a private IPv4 address inside an IPv6 one (6to4, local-use NAT64) are
/// refused like the address itself, and the refusal does not say what a name resolves to.
pub async fn inner_addresses(t: &Target<'_>) {
    for url in [
        "http://[2002:7f00:1::1]/v.mp4",
        "http://[2002:a9fe:a9fe::]/latest/meta-data",
        "http://[64:ff9b:1::a00:1]/v.mp4",
        "http://localhost:9/v.mp4",
    ] {
        let r = client()
            .post(format!("{}/v1/videos", t.url))
            .bearer_auth(t.key)
            .json(&json!({"url": url}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_eq!(status, 400, "{url}: {body}");
        assert!(body.contains("inside its own network"), "{url}: {body}");
        assert!(
            !body.contains("127.0.0.1"),
            "what the name resolves to is told: {body}"
        );
    }
}

/// A body refused while the caller is still sending it (over the limit, or a wrong key): the
/// status (`expect`, e.g. "413") is readable, not a connection reset under the caller's writes.
pub async fn refused_body(url: &str, key: Option<&str>, mib: usize, expect: &str) {
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST /chat HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        mib << 20
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 64 << 10];
    for i in 0..(mib * 16) {
        s.write_all(&chunk).await.unwrap_or_else(|e| {
            panic!("the connection broke after {} KiB of the body: {e}", i * 64)
        });
    }
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {expect}")),
        "{answer}"
    );
}

/// No timeline shows what is on screen in the test set's videos, but those of `uploaded` (the
/// ids of videos that are such a file).
pub async fn no_foreign_text(t: &Target<'_>, uploaded: &[&str]) {
    let list: Value = client()
        .get(format!("{}/v1/videos?limit=100", t.url))
        .bearer_auth(t.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for video in list["data"].as_array().unwrap() {
        let id = video["id"].as_str().unwrap();
        if video["status"] != "ready" || uploaded.contains(&id) {
            continue;
        }
        let timeline = client()
            .get(format!("{}/v1/videos/{id}/timeline", t.url))
            .bearer_auth(t.key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for (_, words) in SCENES {
            assert!(!timeline.contains(words), "{id} shows {words}: {timeline}");
        }
    }
}
