//! The `chatapi` binary as a child process: for start-up errors, signals and exit codes, which an
//! in-process server cannot show.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};

use super::TempFile;

pub const BIN: &str = env!("CARGO_BIN_EXE_chatapi");

pub fn command(config: &TempFile) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--config")
        .arg(&config.0)
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // A config that does not place the video library gets none, rather than a `data/` in the
    // working tree.
    let text = std::fs::read_to_string(&config.0).unwrap_or_default();
    if !text.contains("[storage]") {
        c.env("CHATAPI__VIDEOS__ENABLED", "false");
    }
    c
}

pub struct Running {
    pub child: Child,
    pub logs: Lines<BufReader<ChildStderr>>,
    pub url: String,
    /// The "chatapi listening" line.
    pub listening: String,
}

impl Running {
    /// Starts the binary and waits for its "listening" line, which carries the bound address.
    pub async fn start(config: &TempFile) -> Self {
        Self::start_command(command(config)).await
    }

    /// As `start`, with a command `command` made and the caller changed (its environment).
    pub async fn start_command(mut command: Command) -> Self {
        let mut child = command.spawn().unwrap();
        let mut logs = BufReader::new(child.stderr.take().unwrap()).lines();
        let line = wait_for(&mut logs, "chatapi listening").await;
        let addr = line
            .split("listen=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        let url = format!("http://{addr}");
        Self {
            child,
            logs,
            url,
            listening: line,
        }
    }

    pub fn signal(&self, name: &str) {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The exit status, within five seconds.
    pub async fn exit_status(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .expect("the process did not exit within 5 s")
            .unwrap()
    }
}

pub async fn wait_for(logs: &mut Lines<BufReader<ChildStderr>>, needle: &str) -> String {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = logs.next_line().await.unwrap() {
            if line.contains(needle) {
                return line;
            }
        }
        panic!("process ended before logging {needle:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} in the log"))
}
