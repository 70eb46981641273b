//! The processes a run measures: the mock upstream (this binary's own `mock` subcommand),
//! chatapi against it, and the optional FastAPI peer; with their addresses, RSS and limits.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, Mutex};

use crate::load::Target;
use crate::mock::Spec;
use crate::Sizes;

pub const GAP: Duration = Duration::from_millis(20);

pub struct Mock {
    pub _child: Child,
    pub addr: String,
    pub hangups: Mutex<mpsc::UnboundedReceiver<Instant>>,
}

impl Mock {
    pub async fn start() -> Mock {
        let exe = std::env::current_exe().expect("own path");
        let mut child = Command::new(exe)
            .arg("mock")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("mock starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines
            .next_line()
            .await
            .unwrap()
            .expect("mock says where it listens");
        let addr = first.trim_start_matches("LISTEN ").to_string();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(_)) = lines.next_line().await {
                let _ = tx.send(Instant::now());
            }
        });
        Mock {
            _child: child,
            addr,
            hangups: Mutex::new(rx),
        }
    }

    pub fn target(&self, spec: Spec) -> Target {
        Target {
            url: format!("http://{}/v1/chat/completions", self.addr),
            body: Bytes::from(
                json!({"model": spec.model(), "stream": true, "messages": [
                    {"role": "system", "content": "You are a benchmark."},
                    {"role": "user", "content": "Say something."}]})
                .to_string(),
            ),
        }
    }

    pub async fn next_hangup(&self) -> Option<Instant> {
        let mut rx = self.hangups.lock().await;
        tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits for `n` hang-ups already on their way (streams just closed), so the next one timed
    /// is the one we cause.
    pub async fn absorb_hangups(&self, n: usize) {
        let mut rx = self.hangups.lock().await;
        for _ in 0..n {
            if tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .is_err()
            {
                break;
            }
        }
    }
}

pub fn chatapi_body() -> Bytes {
    Bytes::from(
        json!({"messages": [
            {"role": "assistant", "content": "Hi, how can I help?", "name": "Ava"},
            {"role": "system", "content": "You are currently talking to ann"},
            {"role": "user", "content": "Say something.", "name": "Ann Lee"}], "steam": true})
        .to_string(),
    )
}

/// A long call as FaceTo-AI sends it, the whole conversation every turn: 200 turns, about 32 KB.
pub fn long_call_body() -> Bytes {
    let mut messages: Vec<_> = (0..200)
        .map(|i| {
            let (role, name) = if i % 2 == 0 {
                ("assistant", "Ava")
            } else {
                ("user", "Ann Lee")
            };
            json!({"role": role, "content": format!("Turn {i}: ").repeat(15), "name": name})
        })
        .collect();
    messages.push(json!({"role": "user", "content": "Say something.", "name": "Ann Lee"}));
    Bytes::from(json!({"messages": messages, "steam": true}).to_string())
}

pub struct Chatapi {
    pub child: Child,
    pub addr: String,
    pub _config: PathBuf,
}

impl Chatapi {
    pub async fn start(bin: &Path, mock: &Mock, sizes: &Sizes, h2c: bool) -> Chatapi {
        let spec = |chunks, gap, hold| Spec {
            chunks,
            gap,
            ttft: Duration::ZERO,
            hold,
        };
        let config = format!(
            r#"[server]
listen = "127.0.0.1:0"
keepalive = "30s"
max_connections = 60000
[local]
enabled = false
[limits]
max_concurrent_streams = 50000
[timeouts]
total = "300s"
idle = "300s"
first_token = "60s"
[[upstreams]]
name = "mock"
base_url = "http://{addr}/v1"
model = "{default}"
http2_prior_knowledge = {h2c}
[personas.default]
system_prompt = "You are a benchmark."
[personas.gap]
system_prompt = "You are a benchmark."
model = "{gap}"
[personas.hold]
system_prompt = "You are a benchmark."
model = "{hold}"
"#,
            addr = mock.addr,
            default = spec(20, Duration::ZERO, false).model(),
            gap = spec(sizes.gap_chunks, GAP, false).model(),
            hold = spec(1, Duration::ZERO, true).model(),
        );
        let path = std::env::temp_dir().join(format!(
            "chatapi-bench-{}-{}.toml",
            std::process::id(),
            if h2c { "h2c" } else { "h1" }
        ));
        std::fs::write(&path, config).unwrap();
        let (child, addr) = spawn_chatapi(bin, &path, false).await;
        Chatapi {
            child,
            addr,
            _config: path,
        }
    }

    pub fn target(&self, persona: &str) -> Target {
        let path = if persona == "default" {
            "/chat".to_string()
        } else {
            format!("/chat/{persona}")
        };
        Target {
            url: format!("http://{}{}", self.addr, path),
            body: chatapi_body(),
        }
    }

    pub fn rss_bytes(&self) -> u64 {
        let pid = self.child.id().unwrap_or(0);
        rss_of(pid)
    }
}

/// Starts a chatapi binary with `config` and waits for its "listening" line; returns the child
/// and the address it bound. Its log is drained so the pipe never blocks it. Without `videos`,
/// the video library stays off: the streaming runs measure the chat path alone.
pub async fn spawn_chatapi(bin: &Path, config: &Path, videos: bool) -> (Child, String) {
    let mut command = Command::new(bin);
    command
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    if !videos {
        command.env("CHATAPI__VIDEOS__ENABLED", "false");
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("chatapi exited during start-up");
        if let Some(rest) = line.split("listen=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// This process's open-file limit (children inherit it).
pub fn nofile_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(1024)
}

pub fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

pub struct Peer {
    pub child: Child,
    pub target: Target,
}

pub async fn start_peer(cmd: &str, mock: &Mock) -> Option<Peer> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let cmd = cmd
        .replace("{port}", &port.to_string())
        .replace("{upstream}", &format!("http://{}/v1", mock.addr));
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {cmd}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(Peer {
        child,
        target: Target {
            url: format!("http://127.0.0.1:{port}/chat"),
            body: chatapi_body(),
        },
    })
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .build()
        .unwrap()
}
