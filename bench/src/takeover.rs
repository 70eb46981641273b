//! A video job whose replica dies: two chatapi replicas share a real Postgres (a fresh `initdb`
//! on a port of its own) and one `storage.dir`. The first takes a video's job; its speech-to-text
//! program holds until told to go on. The first replica is killed (SIGKILL), the second started:
//! the time from the kill until the video is `ready` through the second.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::procs::{client, spawn_chatapi, Mock};

struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

fn as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Postgres {
    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(program);
        let mut command = if as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let status = command
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("{program}: {e}"))?;
        status
            .success()
            .then_some(())
            .ok_or_else(|| format!("{program} failed"))
    }

    fn start(work: &Path) -> Result<Self, String> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|_| "no Postgres server binaries (scripts/install-build-deps.sh)".to_string())?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|b| b.join("initdb").exists())
            .ok_or("no initdb")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let dir = work.join("pg");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        if as_root() {
            let _ = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status();
        }
        let pg = Self { bin, dir, port };
        let data = pg.dir.join("data").display().to_string();
        pg.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "chatapi", "--no-sync"],
        )?;
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            pg.dir.display()
        );
        let log = pg.dir.join("log").display().to_string();
        pg.run(
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
        )?;
        Ok(pg)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "stop"]);
    }
}

/// A multipart body with one `file` part (the benchmark's client has no multipart builder).
fn multipart(file: &[u8], boundary: &str) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"talk.mp4\"\r\n\
         Content-Type: video/mp4\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

pub async fn run(bin: &Path, mock: &Mock, lease_s: u64) -> Result<Duration, String> {
    let work = std::env::temp_dir().join(format!("chatapi-bench-takeover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let result = measure(bin, mock, lease_s, &work).await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

async fn measure(bin: &Path, mock: &Mock, lease_s: u64, work: &Path) -> Result<Duration, String> {
    let pg = Postgres::start(work)?;
    let video = work.join("talk.mp4");
    let made = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=10",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440",
            "-t",
            "4",
            "-shortest",
        ])
        .args(["-c:v", "libx264", "-c:a", "aac", "-y"])
        .arg(&video)
        .status()
        .map_err(|e| format!("ffmpeg: {e}"))?;
    if !made.success() {
        return Err("ffmpeg could not make the video".into());
    }
    // Speech-to-text that waits while `hold` exists: the job is mid-way when its replica dies.
    let (script, pid, hold, model) = (
        work.join("recognise.sh"),
        work.join("recogniser.pid"),
        work.join("hold"),
        work.join("model.bin"),
    );
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho $$ > {pid}\nwhile [ -e {hold} ]; do sleep 0.05; done\n\
             while [ $# -gt 1 ]; do [ \"$1\" = --output-srt ] && out=$2; shift; done\n\
             printf '1\\n00:00:01,000 --> 00:00:02,000\\nwords\\n\\n' > \"$out\"\n",
            pid = pid.display(),
            hold = hold.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let _ = Command::new("chmod").arg("+x").arg(&script).status();
    std::fs::write(&model, "").map_err(|e| e.to_string())?;
    std::fs::write(&hold, "").map_err(|e| e.to_string())?;
    let config = work.join("replica.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[local]\nenabled = false\n\
             [[upstreams]]\nname = \"mock\"\nbase_url = \"http://{}/v1\"\nmodel = \"m\"\n\
             [cluster]\ndatabase_url = \"postgres://chatapi@127.0.0.1:{}/postgres\"\n\
             [storage]\ndir = \"{}\"\n[videos]\njob_lease = \"{lease_s}s\"\n\
             speech_binary = \"{}\"\nspeech_model = \"{}\"\nembedding_model = \"\"\n",
            mock.addr,
            pg.port,
            work.join("store").display(),
            script.display(),
            model.display()
        ),
    )
    .map_err(|e| e.to_string())?;

    let (mut doomed, addr) = spawn_chatapi(bin, &config, true).await;
    let boundary = "chatapi-bench-boundary";
    let bytes = std::fs::read(&video).map_err(|e| e.to_string())?;
    let created = json_of(
        client()
            .post(format!("http://{addr}/v1/videos"))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(multipart(&bytes, boundary)),
    )
    .await?;
    let id = created["id"]
        .as_str()
        .ok_or_else(|| format!("upload refused: {created}"))?
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pid.exists() {
        if Instant::now() > deadline {
            return Err("the job never started".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = doomed.start_kill();
    let _ = doomed.wait().await;
    let killed = Instant::now();
    if let Ok(orphan) = std::fs::read_to_string(&pid) {
        let _ = Command::new("kill").args(["-KILL", orphan.trim()]).status();
    }
    let _ = std::fs::remove_file(&hold);

    let (_other, addr) = spawn_chatapi(bin, &config, true).await;
    let deadline = killed + Duration::from_secs(lease_s * 3 + 60);
    loop {
        let video = json_of(client().get(format!("http://{addr}/v1/videos/{id}"))).await?;
        match video["status"].as_str() {
            Some("ready") => return Ok(killed.elapsed()),
            Some("failed") => return Err(format!("the video failed: {}", video["error"])),
            _ if Instant::now() > deadline => return Err("never finished elsewhere".into()),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The JSON `request` is answered with; what went wrong, as a sentence, otherwise.
async fn json_of(request: reqwest::RequestBuilder) -> Result<serde_json::Value, String> {
    let text = request
        .send()
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
}
