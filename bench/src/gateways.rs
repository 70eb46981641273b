//! `chatapi-bench gateways`: chatapi's OpenAI route beside its ChatAPI route, LiteLLM's proxy
//! (one worker) and the FastAPI peer, all against the same mock upstream, requests interleaved
//! in one run: time to first token at 1 client (what each adds over the mock), requests/s at 50
//! clients, RSS idle and the highest RSS under that load. Writes `gateways.md` / `.json`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::load::Target;
use crate::mock::Spec;
use crate::procs::{rss_of, start_peer, Chatapi, Mock};
use crate::report::pct;
use crate::scenarios::{throughput, ttft};
use crate::Sizes;

pub(crate) fn openai_body(model: &str) -> Bytes {
    Bytes::from(
        json!({"model": model, "stream": true, "messages": [
            {"role": "system", "content": "You are a benchmark."},
            {"role": "user", "content": "Say something."}]})
        .to_string(),
    )
}

struct Litellm {
    child: Child,
    target: Target,
    _config: PathBuf,
}

/// LiteLLM's proxy with one worker, routing model `default` to the mock (as an OpenAI-compatible
/// API). Its cost map is read from the package, not fetched.
async fn start_litellm(exe: &Path, mock: &Mock, model: &str) -> Option<Litellm> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let config =
        std::env::temp_dir().join(format!("chatapi-bench-litellm-{}.yaml", std::process::id()));
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: default\n    litellm_params:\n      model: openai/{model}\n      api_base: http://{}/v1\n      api_key: sk-bench\n",
            mock.addr
        ),
    )
    .ok()?;
    let child = Command::new(exe)
        .args(["--config"])
        .arg(&config)
        .args(["--port", &port.to_string(), "--num_workers", "1"])
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        // Loopback only, and the load client sends no key: its local-development switch.
        .env(
            "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY",
            "true",
        )
        .env("LITELLM_LOG", "ERROR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let target = Target {
        url: format!("http://127.0.0.1:{port}/v1/chat/completions"),
        body: openai_body("default"),
    };
    // Up when it answers a chat, not merely when its port opens.
    let c = crate::procs::client();
    loop {
        if crate::load::stream(&c, &target, false).await.ok {
            break;
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Some(Litellm {
        child,
        target,
        _config: config,
    })
}

/// The highest RSS of `pid` while `work` runs, polled every 50 ms.
async fn peak_rss<T>(pid: u32, work: impl std::future::Future<Output = T>) -> (T, u64) {
    let peak = Arc::new(AtomicU64::new(rss_of(pid)));
    let (p, stop) = (peak.clone(), tokio_util::sync::CancellationToken::new());
    let poll_stop = stop.clone();
    let poller = tokio::spawn(async move {
        while !poll_stop.is_cancelled() {
            p.fetch_max(rss_of(pid), Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let out = work.await;
    stop.cancel();
    let _ = poller.await;
    (out, peak.load(Ordering::Relaxed))
}

pub async fn run(
    chatapi_bin: &Path,
    litellm: Option<PathBuf>,
    peer_cmd: Option<String>,
    out: &Path,
    smoke: bool,
) -> bool {
    let sizes = Sizes::new(smoke, None);
    let (rounds, clients, secs) = if smoke { (20, 10, 1) } else { (300, 50, 5) };
    let mock = Mock::start().await;
    let spec = Spec::FAST;
    let chatapi = Chatapi::start(chatapi_bin, &mock, &sizes, false).await;
    let mut names = vec!["mock", "chatapi /v1/chat/completions", "chatapi /chat"];
    let mut targets = vec![
        mock.target(spec),
        Target {
            url: format!("http://{}/v1/chat/completions", chatapi.addr),
            body: openai_body("default"),
        },
        chatapi.target("default"),
    ];
    let litellm = match &litellm {
        Some(exe) => {
            let l = start_litellm(exe, &mock, &spec.model()).await;
            if l.is_none() {
                println!("LiteLLM did not start: {}", exe.display());
            }
            l
        }
        None => None,
    };
    if let Some(l) = &litellm {
        names.push("LiteLLM proxy");
        targets.push(l.target.clone());
    }
    let peer = match &peer_cmd {
        Some(cmd) => start_peer(cmd, &mock).await,
        None => None,
    };
    if let Some(p) = &peer {
        names.push("FastAPI peer /chat");
        targets.push(p.target.clone());
    }
    // Warm-up: connections, caches, Python's first requests.
    ttft(&targets, 2, 5).await;
    let chatapi_pid = chatapi.child.id().unwrap_or(0);
    let litellm_pid = litellm.as_ref().and_then(|l| l.child.id());
    let idle = (rss_of(chatapi_pid), litellm_pid.map(rss_of));

    println!("gateways 1/2: time to first token, 1 client, {rounds} rounds");
    let t1 = ttft(&targets, 1, rounds).await;
    println!("gateways 2/2: requests/s, {clients} clients, {secs} s each");
    let mut rps = Vec::new();
    let mut peaks = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        let pid = match names[i] {
            "LiteLLM proxy" => litellm_pid.unwrap_or(0),
            n if n.starts_with("chatapi") => chatapi_pid,
            _ => 0,
        };
        let ((_, r), peak) = peak_rss(pid, throughput(target, clients, secs)).await;
        rps.push(r);
        peaks.push(peak);
    }

    let mb = |b: u64| b as f64 / 1e6;
    let mock_p50 = pct(&t1[0], 50.0);
    let mut md = String::from("| path | first token p50 (added) | p99 (added) | requests/s, 50 clients | RSS idle | RSS peak under load |\n|---|---|---|---|---|---|\n");
    let mut rows = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (p50, p99) = (pct(&t1[i], 50.0), pct(&t1[i], 99.0));
        let (idle_rss, peak) = match *name {
            "LiteLLM proxy" => (idle.1.map(mb), Some(mb(peaks[i]))),
            n if n.starts_with("chatapi") => (Some(mb(idle.0)), Some(mb(peaks[i]))),
            _ => (None, None),
        };
        let show = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.1} MB"));
        md.push_str(&format!(
            "| {name} | {p50:.3} ms ({:+.3}) | {p99:.3} ms ({:+.3}) | {:.0} | {} | {} |\n",
            p50 - mock_p50,
            p99 - pct(&t1[0], 99.0),
            rps[i],
            show(idle_rss),
            show(peak)
        ));
        rows.push(json!({"path": name, "ttft_p50_ms": p50, "ttft_p99_ms": p99,
            "added_p50_ms": p50 - mock_p50, "requests_per_s": rps[i], "rss_idle_mb": idle_rss, "rss_peak_mb": peak}));
    }
    if let Some(l) = names.iter().position(|n| *n == "LiteLLM proxy") {
        let o = 1;
        md.push_str(&format!(
            "\nchatapi's OpenAI route against LiteLLM: {:.1}× the requests/s, {:.1}× lower added first-token p50, {:.2}× the peak RSS.\n",
            rps[o] / rps[l],
            (pct(&t1[l], 50.0) - mock_p50) / (pct(&t1[o], 50.0) - mock_p50),
            peaks[o] as f64 / peaks[l].max(1) as f64,
        ));
    }
    println!("{md}");
    std::fs::create_dir_all(out).ok();
    let _ = std::fs::write(out.join("gateways.md"), &md);
    let _ = std::fs::write(
        out.join("gateways.json"),
        serde_json::to_string_pretty(&json!({"rows": rows})).unwrap_or_default(),
    );
    rps.iter().all(|r| *r > 0.0)
}
