//! Test videos, made here with ffmpeg's `lavfi` sources and espeak-ng: scenes of one colour each
//! with a caption drawn on (real cuts, so scene detection has something to find), speech muxed
//! in, an SRT track in some. Made once per test process, in seconds, never downloaded.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use super::known::run;

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf";

/// Three 4-second scenes; the words drawn on each.
pub const SCENES: [(&str, &str); 3] = [
    ("red", "HELLO WORLD"),
    ("blue", "CHATAPI VIDEO"),
    ("green", "THIRD SCENE"),
];
pub const SCENE_S: f64 = 4.0;
pub const SPOKEN: &str =
    "Welcome to the garden tour. Today we plant tomatoes and water the flowers.";
pub const SUBTITLES_SRT: &str = "1\n00:00:00,500 --> 00:00:03,000\nWelcome to the garden tour\n\n\
2\n00:00:04,500 --> 00:00:07,000\nToday we plant tomatoes\n\n3\n00:00:08,500 --> 00:00:11,000\nand water the flowers\n\n";
pub const SUBTITLES_VTT: &str =
    "WEBVTT\n\n00:00:01.000 --> 00:00:03.000\nSeparate subtitles about bicycles\n\n\
00:00:05.000 --> 00:00:07.000\nand mountains\n";

pub struct Made {
    pub dir: PathBuf,
}

impl Made {
    /// Scenes + speech + an SRT track.
    pub fn with_track(&self) -> PathBuf {
        self.dir.join("with-track.mp4")
    }
    /// Scenes + speech, no subtitles.
    pub fn speech(&self) -> PathBuf {
        self.dir.join("speech.mp4")
    }
    /// Scenes, no sound.
    pub fn silent(&self) -> PathBuf {
        self.dir.join("silent.mp4")
    }
    pub fn audio_only(&self) -> PathBuf {
        self.dir.join("audio-only.mp4")
    }
    pub fn truncated(&self) -> PathBuf {
        self.dir.join("truncated.mp4")
    }
    pub fn text(&self) -> PathBuf {
        self.dir.join("notes.mp4")
    }
}

/// The test videos, made on first use.
pub fn made() -> &'static Made {
    static MADE: OnceLock<Made> = OnceLock::new();
    MADE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("chatapi-videos-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let made = Made { dir };
        make(&made);
        made
    })
}

fn make(m: &Made) {
    let speech = m.dir.join("speech.wav");
    run(Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&speech)
        .arg(SPOKEN));
    let srt = m.dir.join("track.srt");
    std::fs::write(&srt, SUBTITLES_SRT).unwrap();
    let total = SCENE_S * SCENES.len() as f64;
    let scenes = |cmd: &mut Command| {
        for (color, text) in SCENES {
            cmd.args(["-f", "lavfi", "-i"]).arg(format!(
                "color=c={color}:s=640x360:d={SCENE_S}:r=25,drawtext=fontfile={FONT}:text='{text}':fontsize=56:fontcolor=white:x=(w-text_w)/2:y=(h-text_h)/2"
            ));
        }
    };
    let concat = "[0:v][1:v][2:v]concat=n=3:v=1:a=0[v]";
    let video_out = [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
    ];
    // With speech (padded with silence to the video's length) and, for one, an SRT track.
    for (file, track) in [(m.with_track(), true), (m.speech(), false)] {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-y", "-loglevel", "error"]);
        scenes(&mut cmd);
        cmd.arg("-i").arg(&speech);
        if track {
            cmd.arg("-i").arg(&srt);
        }
        cmd.args([
            "-filter_complex",
            &format!("{concat};[3:a]apad[a]"),
            "-map",
            "[v]",
            "-map",
            "[a]",
        ]);
        if track {
            cmd.args(["-map", "4:s", "-c:s", "mov_text"]);
        }
        cmd.args(video_out)
            .args(["-c:a", "aac", "-t", &total.to_string()])
            .arg(&file);
        run(&mut cmd);
    }
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-y", "-loglevel", "error"]);
    scenes(&mut cmd);
    cmd.args(["-filter_complex", concat, "-map", "[v]"])
        .args(video_out)
        .arg(m.silent());
    run(&mut cmd);
    run(Command::new("ffmpeg")
        .args([
            "-y",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=3",
            "-c:a",
            "aac",
        ])
        .arg(m.audio_only()));
    // The index (moov) of an mp4 that ffmpeg writes is at the end: half the file has none.
    let whole = std::fs::read(m.with_track()).unwrap();
    std::fs::write(m.truncated(), &whole[..whole.len() / 2]).unwrap();
    std::fs::write(
        m.text(),
        "These are my meeting notes, not a video.\n".repeat(20),
    )
    .unwrap();
}

/// Polls a video until it leaves `queued`/`processing` (the server offers no event to wait on
/// over HTTP), for at most a minute.
pub async fn settled(base: &str, id: &str, key: Option<&str>) -> Value {
    settled_within(base, id, key, Duration::from_secs(60)).await
}

/// `settled`, for a video whose processing may take longer than a minute on a busy machine.
pub async fn settled_within(base: &str, id: &str, key: Option<&str>, limit: Duration) -> Value {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let mut req = client.get(format!("{base}/v1/videos/{id}"));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        let video: Value = req.send().await.unwrap().json().await.unwrap();
        let status = video["status"].as_str().unwrap_or_default().to_string();
        if status == "ready" || status == "failed" {
            return video;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "video {id} still {status} after {limit:?}: {video}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GETs `base` + `path` with `key` as a bearer token: the JSON answer.
pub async fn get_json(base: &str, path: &str, key: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// POSTs `body` as JSON to `base` + `path` with `key` raw in `Authorization` (every dialect reads
/// it there): the status, and the JSON answer.
pub async fn post_json(base: &str, path: &str, key: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("Authorization", key)
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json::<Value>().await.unwrap())
}

/// A multipart upload of `file` (with its own name), plus `extra` parts.
pub fn form(
    file: &Path,
    extra: Vec<(&'static str, reqwest::multipart::Part)>,
) -> reqwest::multipart::Form {
    let bytes = std::fs::read(file).unwrap();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let mut form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name),
    );
    for (name, part) in extra {
        form = form.part(name, part);
    }
    form
}

/// A fresh storage dir for one test's server.
pub fn storage() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "chatapi-store-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A speech-to-text program honouring chatapi's contract, standing in for whisper in tests that
/// are about the job, not the recognition: it writes its pid to `pid` (renamed into place, so a
/// test that sees the file never reads it half-written), waits while `hold`
/// exists, then writes one cue. `model` is an empty file for `videos.speech_model`.
pub struct SlowRecogniser {
    pub script: PathBuf,
    pub model: PathBuf,
    pub pid: PathBuf,
    pub hold: PathBuf,
}

impl SlowRecogniser {
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let r = Self {
            script: dir.join("recognise.sh"),
            model: dir.join("model.bin"),
            pid: dir.join("recogniser.pid"),
            hold: dir.join("hold"),
        };
        std::fs::write(
            &r.script,
            format!(
                "#!/bin/sh\necho $$ > {pid}.part && mv {pid}.part {pid}\nwhile [ -e {hold} ]; do sleep 0.05; done\n\
                 while [ $# -gt 1 ]; do [ \"$1\" = --output-srt ] && out=$2; shift; done\n\
                 printf '1\\n00:00:01,000 --> 00:00:02,000\\nrecognised words\\n\\n' > \"$out\"\n",
                pid = r.pid.display(),
                hold = r.hold.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&r.script, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(&r.model, "").unwrap();
        std::fs::write(&r.hold, "").unwrap();
        r
    }

    /// The `[videos]` lines that make chatapi run it.
    pub fn toml(&self) -> String {
        format!(
            "speech_binary = \"{}\"\nspeech_model = \"{}\"\n",
            self.script.display(),
            self.model.display()
        )
    }
}

/// Waits for a file to appear (a child process reporting in).
pub async fn appears(path: &Path) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether process `pid` has exited and waits only to be reaped (a job's program, stopped).
pub fn is_zombie(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
}

/// The turns of a chat request an upstream received, system messages left out: (role, content).
pub fn turns(request: &serde_json::Value) -> Vec<(String, String)> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] != "system")
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The `[videos]` lines for the real recogniser: `chatapi-whisper` (built beside the tests by
/// `scripts/test.sh`) with whisper tiny.en.
pub fn whisper_config() -> String {
    let target = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let program = target.join("chatapi-whisper");
    assert!(
        program.is_file(),
        "{} is missing: `cargo build -p chatapi-whisper` (scripts/test.sh does)",
        program.display()
    );
    let model =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ggml-tiny.en-q8_0.bin");
    assert!(
        model.is_file(),
        "{} is missing: scripts/fetch-model.sh",
        model.display()
    );
    format!(
        "speech_binary = \"{}\"\nspeech_model = \"{}\"\n",
        program.display(),
        model.display()
    )
}

/// Uploads `file` to `base`'s `POST /v1/videos` with `key`: the status and the JSON answer.
pub async fn upload(base: &str, key: &str, file: &Path) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/videos"))
        .bearer_auth(key)
        .multipart(form(file, vec![]))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Serves `file` at `/video.mp4`, and `/hop/N` redirects N times before reaching it.
pub async fn file_server(file: std::path::PathBuf) -> String {
    use axum::extract::Path;
    use axum::response::{IntoResponse, Redirect};
    let app = axum::Router::new()
        .route(
            "/video.mp4",
            axum::routing::get(move || async move { std::fs::read(&file).unwrap() }),
        )
        .route(
            "/hop/{n}",
            axum::routing::get(|Path(n): Path<u32>| async move {
                if n == 0 {
                    Redirect::temporary("/video.mp4").into_response()
                } else {
                    Redirect::temporary(&format!("/hop/{}", n - 1)).into_response()
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}
