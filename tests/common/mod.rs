//! Shared test harness: the real chatapi server on a loopback port, a fake upstream, and a client
//! that reads answers exactly the way the FaceTo-AI client does.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod fake_upstream;
pub mod hostile;
pub mod known;
pub mod postgres_server;
pub mod process;
pub mod redis_server;
pub mod videos;

use std::path::PathBuf;
use std::time::Duration;

use chatapi::config::OpenAiEnv;
use chatapi::{AppState, Config};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[allow(unused_imports)] // not every test file scripts the fake
pub use fake_upstream::{FakeUpstream, Reply, Step};

/// Short timeouts so failure tests finish quickly; each test layers its own TOML on top.
pub const TEST_BASE: &str = r#"
[server]
listen = "127.0.0.1:0"
keepalive = "2s"
shutdown_grace = "2s"
[timeouts]
connect = "1s"
first_token = "3s"
idle = "3s"
total = "20s"
[local]
enabled = false
[retry]
attempts = 0
backoff = "10ms"
max_backoff = "1s"
"#;

pub struct Server {
    pub url: String,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    pub handle: tokio::task::JoinHandle<std::io::Result<()>>,
    config: TempFile,
}

impl Server {
    /// Starts chatapi with `TEST_BASE`, one upstream per fake (in order), then `extra` TOML.
    pub async fn start(upstreams: &[&FakeUpstream], extra: &str) -> Self {
        Self::start_env(upstreams, extra, &[]).await
    }

    /// As `start`, plus `CHATAPI__...` environment overrides (the top config layer).
    pub async fn start_env(upstreams: &[&FakeUpstream], extra: &str, env: &[(&str, &str)]) -> Self {
        let mut toml = TEST_BASE.to_string();
        for (i, u) in upstreams.iter().enumerate() {
            toml.push_str(&format!(
                "[[upstreams]]\nname = \"up{i}\"\nbase_url = \"{}\"\napi_key = \"sk-up{i}\"\nmodel = \"fake-model\"\n",
                u.base_url
            ));
        }
        toml.push_str(extra);
        Self::start_toml_env(&toml, env).await
    }

    pub async fn start_toml(toml: &str) -> Self {
        Self::start_toml_env(toml, &[]).await
    }

    async fn start_toml_env(toml: &str, env: &[(&str, &str)]) -> Self {
        // Only the tests that set up `[videos]` get a library (and a store on disk).
        let toml = if toml.contains("[videos]") {
            toml.to_string()
        } else {
            format!("{toml}\n[videos]\nenabled = false\n")
        };
        let file = TempFile::with(&toml);
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config = Config::load_from(Some(&file.0), &env, &OpenAiEnv::default())
            .unwrap_or_else(|e| panic!("test config: {e}"));
        let state = AppState::new(config, Some(file.0.clone())).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(chatapi::serve(listener, state.clone(), async {
            let _ = stopped.await;
        }));
        Self {
            url,
            state,
            stop: Some(stop),
            handle,
            config: file,
        }
    }

    /// Starts the graceful shutdown (as SIGTERM would).
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Rewrites the config file with `edit` and reloads it, as SIGHUP would.
    pub fn reload_with(&self, edit: impl FnOnce(&str) -> String) {
        let text = std::fs::read_to_string(&self.config.0).unwrap();
        self.config.rewrite(&edit(&text));
        self.state.reload().unwrap();
    }

    /// `/readyz`, parsed.
    pub async fn readyz(&self) -> Value {
        let text = client()
            .get(format!("{}/readyz", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// The Prometheus text at `/metrics`.
    pub async fn metrics(&self) -> String {
        client()
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn chat_url(&self) -> String {
        format!("{}/chat", self.url)
    }
}

pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn with(text: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "chatapi-test-{}-{}.toml",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }

    /// Replaces the file atomically (write beside it, then rename), as editors and Kubernetes
    /// do: a watcher never sees it truncated and half-written.
    pub fn rewrite(&self, text: &str) {
        let next = self.0.with_extension("next");
        std::fs::write(&next, text).unwrap();
        std::fs::rename(&next, &self.0).unwrap();
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A base URL where nothing listens: the port was just free, so connecting is refused.
pub fn dead_base_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/v1", listener.local_addr().unwrap())
}

/// A host that never answers a connection attempt, the way a firewalled or overloaded one
/// behaves: its accept queue is full, so the kernel drops every further SYN and the caller's
/// connect hangs until its own timeout.
pub struct Unanswering {
    pub base_url: String,
    _listener: tokio::net::TcpListener,
    _queued: Vec<std::net::TcpStream>,
}

impl Unanswering {
    pub fn start() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        // Connections the listener never accepts fill its queue; the first attempt that gets no
        // answer shows it is full.
        let mut queued = Vec::new();
        while let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            queued.push(s);
            assert!(queued.len() < 64, "the accept queue never filled");
        }
        Self {
            base_url: format!("http://{addr}/v1"),
            _listener: listener,
            _queued: queued,
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// The body the real client sends: the history, then a mid-conversation system message, then
/// the current utterance; `steam` (sic) set.
pub fn faceto_body(utterance: &str) -> Value {
    json!({
        "messages": [
            {"role": "assistant", "content": "Hi, I am Ava. How can I help?", "name": "Ava"},
            {"role": "user", "content": "Ann Lee said hello", "name": "Ann Lee"},
            {"role": "assistant", "content": ""},
            {"role": "system", "content": "You are currently talking to ann-lee"},
            {"role": "user", "content": utterance, "name": "Ann Lee"}
        ],
        "steam": true
    })
}

/// Sends a request with the real client's headers.
pub fn faceto_request(
    c: &reqwest::Client,
    url: &str,
    body: &Value,
    key: &str,
) -> reqwest::RequestBuilder {
    c.post(url)
        .header("content-type", "application/json")
        .header("accept", "*/*")
        .header(
            "user-agent",
            "go-resty/2.7.0 (https://github.com/go-resty/resty)",
        )
        .header("accept-encoding", "gzip")
        .header("x-request-id", "3f2a7a9e-7d1c-4e59-9a2f-0d6c7d1a0b11")
        .header(
            "authorization",
            format!("Bearer {key}").trim_end().to_string(),
        )
        .body(body.to_string())
}

/// What the FaceTo-AI reader made of an answer.
#[derive(Debug, Default)]
pub struct Answer {
    pub deltas: Vec<String>,
    pub done: bool,
    pub pings: usize,
}

impl Answer {
    pub fn text(&self) -> String {
        self.deltas.concat()
    }
}

/// Parses a whole body the way FaceTo-AI's Reader/Recv does (faceto-client.md), but strictly: any
/// line the real client would set aside or lose, and anything after `[DONE]`, fails the test.
pub fn faceto_parse(body: &[u8]) -> Answer {
    let text = std::str::from_utf8(body).expect("answer is not UTF-8");
    let mut answer = Answer::default();
    let mut rest = text;
    while !rest.is_empty() {
        assert!(!answer.done, "bytes after [DONE]: {rest:?}");
        let Some((kept, after)) = rest.split_once('\n') else {
            panic!("last line has no trailing newline and would be lost: {rest:?}");
        };
        let Some((discarded, after)) = after.split_once('\n') else {
            panic!("event {kept:?} is not followed by an empty line");
        };
        assert!(
            discarded.is_empty(),
            "the line after {kept:?} is discarded by the client but held {discarded:?}"
        );
        rest = after;
        let kept = kept.trim();
        if kept.starts_with(':') {
            answer.pings += 1;
            continue;
        }
        let Some(data) = kept.strip_prefix("data: ") else {
            panic!("line set aside by the client (no `data: ` prefix): {kept:?}");
        };
        if data == "[DONE]" {
            answer.done = true;
            continue;
        }
        let v: Value =
            serde_json::from_str(data).unwrap_or_else(|e| panic!("bad JSON {data:?}: {e}"));
        let content = v["content"]
            .as_str()
            .unwrap_or_else(|| panic!("no string content: {data:?}"));
        assert!(!content.is_empty(), "empty delta");
        answer.deltas.push(content.to_string());
    }
    answer
}

/// Posts and reads the whole answer with the FaceTo-AI parser; returns status and answer.
pub async fn chat(url: &str, body: &Value) -> (reqwest::StatusCode, Answer) {
    let response = faceto_request(&client(), url, body, "")
        .send()
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    if status.is_success() {
        (status, faceto_parse(&bytes))
    } else {
        (status, Answer::default())
    }
}

/// Posts and returns the status and the JSON error body of a failed request.
pub async fn chat_error(url: &str, body: String, key: &str) -> (reqwest::StatusCode, Value) {
    let response = client()
        .post(url)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(
        text.ends_with('\n') && text.trim().lines().count() == 1,
        "error body must be one line: {text:?}"
    );
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub const SECOND: Duration = Duration::from_secs(1);

/// Runs a scenario of a client script with `python` (a venv of `scripts/install-test-clients.sh`);
/// its last stdout line is JSON.
pub async fn client_script(venv: &str, script: &str, args: &[&str]) -> Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(venv).join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-test-clients.sh",
        python.display()
    );
    let out = tokio::process::Command::new(python)
        .arg(root.join("tests/clients").join(script))
        .args(args)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or(Value::String(last.to_string()))
}

/// POSTs `body` to `{url}/chat` over a raw connection and returns the response body's HTTP
/// chunks as sent: each is one write of the server's, which a higher-level client would join.
pub async fn raw_chat_chunks(url: &str, body: &Value) -> Vec<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let mut socket = tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    socket
        .write_all(
            format!(
                "POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut raw = Vec::new();
    socket.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, mut rest) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let mut chunks = Vec::new();
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size, 16).unwrap();
        if size == 0 {
            return chunks;
        }
        chunks.push(after[..size].to_string());
        rest = &after[size + 2..];
    }
}

/// Has `up` answer 40 words at once, each its own event; returns the answer's text.
pub fn burst_of_forty(up: &FakeUpstream) -> String {
    let words: Vec<String> = (0..40).map(|i| format!("w{i} ")).collect();
    up.set_default(Reply::text(
        &words.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    words.concat()
}
