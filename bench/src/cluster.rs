//! `chatapi-bench cluster`: what sharing state through Redis costs a request. One chatapi with
//! its limits in-process and one whose limits, stream cap and repeats live in a real
//! `redis-server` on loopback, the same requests to each, interleaved: the added time to first
//! token. Then requests per second through one replica and through two sharing one Redis, on the
//! same two cores as everything else. Then, with the library in a real Postgres, how long a
//! video job whose replica is killed takes to be finished by another.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::mock::Spec;
use crate::procs::{spawn_chatapi, Mock};
use crate::report::pct;
use crate::scenarios::{throughput, ttft};

struct Redis(std::process::Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The least any shared check can cost: a PING through the same client library, from this
/// process's multi-threaded runtime (as chatapi's is), one at a time.
async fn round_trip(url: &str, n: usize) -> f64 {
    let Ok(client) = redis::Client::open(url) else {
        return f64::NAN;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return f64::NAN;
    };
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        if pong.is_err() {
            return f64::NAN;
        }
        samples.push(started.elapsed());
    }
    pct(&samples, 50.0)
}

fn config(mock: &Mock, redis_url: &str) -> String {
    let spec = Spec {
        chunks: 20,
        gap: Duration::ZERO,
        ttft: Duration::ZERO,
        hold: false,
    };
    // Limits high enough never to refuse, so every request pays for the check and nothing else.
    format!(
        r#"[server]
listen = "127.0.0.1:0"
[local]
enabled = false
[limits]
max_concurrent_streams = 50000
per_ip_per_minute = 100000000
per_ip_burst = 100000
[cluster]
redis_url = "{redis_url}"
[[upstreams]]
name = "mock"
base_url = "http://{addr}/v1"
model = "{model}"
[personas.default]
system_prompt = "You are a benchmark."
"#,
        addr = mock.addr,
        model = spec.model(),
    )
}

pub async fn run(bin: &Path, out: &Path, smoke: bool) -> bool {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(16390);
    let redis = match std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
    {
        Ok(child) => Redis(child),
        Err(e) => {
            eprintln!("cluster: redis-server: {e} (scripts/install-build-deps.sh installs it)");
            return false;
        }
    };
    let mock = Mock::start().await;
    let url = format!("redis://127.0.0.1:{port}/0");
    let dir = std::env::temp_dir();
    let mut started = Vec::new();
    for (name, redis_url) in [
        ("local", ""),
        ("shared-a", url.as_str()),
        ("shared-b", url.as_str()),
    ] {
        let path = dir.join(format!(
            "chatapi-bench-cluster-{}-{name}.toml",
            std::process::id()
        ));
        std::fs::write(&path, config(&mock, redis_url)).unwrap();
        started.push((spawn_chatapi(bin, &path, false).await, path));
    }
    let target = |i: usize| crate::load::Target {
        url: format!("http://{}/chat", started[i].0 .1),
        body: crate::procs::chatapi_body(),
    };
    // The shared replicas connect in the background; a few requests make sure they have.
    let _ = ttft(&[target(1), target(2)], 1, 20).await;

    let rounds = if smoke { 30 } else { 2000 };
    let samples = ttft(&[target(0), target(1)], 1, rounds).await;
    let (local, shared) = (pct(&samples[0], 50.0), pct(&samples[1], 50.0));
    let (local99, shared99) = (pct(&samples[0], 99.0), pct(&samples[1], 99.0));
    let floor = round_trip(&url, if smoke { 100 } else { 5000 }).await;
    let secs = if smoke { 1 } else { 10 };
    let (_, one) = throughput(&target(1), 50, secs).await;
    let (ta, tb) = (target(1), target(2));
    let (a, b) = tokio::join!(throughput(&ta, 25, secs), throughput(&tb, 25, secs));
    let two = a.1 + b.1;
    drop(redis);
    let lease = if smoke { 2 } else { 10 };
    let takeover = crate::takeover::run(bin, &mock, lease).await;
    let takeover_row = match &takeover {
        Ok(t) => format!(
            "| a killed replica's video job finished by another (`job_lease` {lease} s; 4 s video) | {:.1} s from the kill to `ready` |\n",
            t.as_secs_f64()
        ),
        Err(why) => format!("| a killed replica's video job finished by another | not measured: {why} |\n"),
    };

    let added = shared - local;
    let md = format!(
        "# Replicas sharing state through Redis (`chatapi-bench cluster`)\n\n\
         Release build; chatapi, redis-server, the mock and the load generator share 2 cores, loopback.\n\
         {rounds} requests to each, interleaved, one at a time; per-IP limit on (never reached).\n\n\
         | measure | value |\n|---|---|\n\
         | time to first token, limits in-process, p50 / p99 | {local:.3} ms / {local99:.3} ms |\n\
         | time to first token, limits and stream cap in Redis, p50 / p99 | {shared:.3} ms / {shared99:.3} ms |\n\
         | added by sharing, p50 (goal ≤ 0.2 ms) | **{added:.3} ms** |\n\
         | for scale: one bare Redis round trip (PING) from a tokio runtime like chatapi's, p50 | {floor:.3} ms |\n\
         | requests/s, one replica, 50 clients | {one:.0} |\n\
         | requests/s, two replicas sharing Redis, 25 clients each | {two:.0} ({ratio:.2}× one) |\n\
         {takeover_row}",
        ratio = two / one
    );
    println!("{md}");
    let _ = std::fs::create_dir_all(out);
    let _ = std::fs::write(out.join("cluster.md"), &md);
    let _ = std::fs::write(
        out.join("cluster.json"),
        json!({"ttft_p50_local_ms": local, "ttft_p50_shared_ms": shared, "ttft_p99_local_ms": local99,
               "ttft_p99_shared_ms": shared99, "added_p50_ms": added, "redis_ping_p50_ms": floor, "rps_one": one, "rps_two": two,
               "takeover_s": takeover.as_ref().ok().map(Duration::as_secs_f64), "job_lease_s": lease})
        .to_string(),
    );
    for ((_, _), path) in &started {
        let _ = std::fs::remove_file(path);
    }
    added.is_finite()
}
