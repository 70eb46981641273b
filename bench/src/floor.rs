//! `chatapi-bench floor`: what chatapi adds between a caller and the model, beside the floor —
//! a bare TCP relay and nginx as a streaming reverse proxy (buffering off, keep-alive to the
//! upstream) — all in front of the same mock, in one run. Every path is timed by the same raw
//! HTTP/1.1 client (a kept-alive connection per client and path, the request written whole, the
//! clock stopped at the first byte of the first content event, the rest read to the end), the
//! paths interleaved request by request in an order shuffled every round, never two paths of
//! one process back to back, so what differs is only the layer (see `visiting_order`). Per
//! path: the time it adds to the first token over the mock itself (p50, p99) at 1 client, and
//! the CPU time its process spends per request (each thread's run time, `cpu_of`) at 50
//! clients. Writes `floor.md` / `floor.json`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::gateways::openai_body;
use crate::load::EventCounter;
use crate::mock::Spec;
use crate::procs::{Chatapi, Mock};
use crate::report::pct;
use crate::Sizes;

/// One path a request can take: where it goes, what it sends, whose CPU it costs.
#[derive(Clone)]
struct Way {
    name: &'static str,
    addr: String,
    request: Arc<Vec<u8>>,
    /// The process that does this path's work (none: the mock alone).
    pid: Option<u32>,
}

fn request(addr: &str, path: &str, body: &[u8]) -> Arc<Vec<u8>> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\naccept: text/event-stream\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    Arc::new(request)
}

/// `chatapi-bench relay`: a bare TCP relay, each connection copied both ways to `to` with
/// TCP_NODELAY on both sides; prints `LISTEN addr`.
pub async fn relay(to: String) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("LISTEN {}", listener.local_addr()?);
    loop {
        let (mut inbound, _) = listener.accept().await?;
        let to = to.clone();
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(&to).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        });
    }
}

/// A child that says where it listens on its first stdout line, `LISTEN addr`.
async fn listening(mut command: Command) -> (Child, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines
        .next_line()
        .await
        .unwrap()
        .expect("says where it listens");
    (child, first.trim_start_matches("LISTEN ").to_string())
}

struct Nginx {
    child: Child,
    addr: String,
    _dir: PathBuf,
}

/// Debian's nginx, one process (no master), proxying to the mock with buffering off and
/// keep-alive connections upstream, its access log on as chatapi's is.
async fn start_nginx(mock: &Mock) -> Option<Nginx> {
    let exe = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let dir = std::env::temp_dir().join(format!("chatapi-bench-nginx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           upstream mock {{ server {mock}; keepalive 64; }}\n\
           server {{\n    listen 127.0.0.1:{port};\n    keepalive_requests 1000000;\n    location / {{\n\
               proxy_pass http://mock;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n\
               proxy_buffering off;\n    }}\n  }}\n}}\n",
        mock = mock.addr
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).ok()?;
    let child = Command::new(exe)
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if TcpStream::connect(&addr).await.is_ok() {
            return Some(Nginx {
                child,
                addr,
                _dir: dir,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// A kept-alive HTTP/1.1 connection that times one request at a time.
struct Conn {
    stream: BufReader<TcpStream>,
}

impl Conn {
    async fn open(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connects");
        stream.set_nodelay(true).unwrap();
        Conn {
            stream: BufReader::with_capacity(64 << 10, stream),
        }
    }

    /// Sends `request`, reads the whole response; the time to the first content event.
    async fn time(&mut self, request: &[u8]) -> Option<Duration> {
        let started = Instant::now();
        self.stream.get_mut().write_all(request).await.ok()?;
        let mut line = String::new();
        let mut chunked = false;
        let mut length = None;
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("http/1.1 ") && !lower.starts_with("http/1.1 200") {
                return None;
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut first = None;
        let mut events = EventCounter::default();
        if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line).await.ok()?;
                let size = usize::from_str_radix(line.trim(), 16).ok()?;
                let mut data = vec![0u8; size + 2];
                self.stream.read_exact(&mut data).await.ok()?;
                if size == 0 {
                    break;
                }
                if events.feed(&data[..size]) > 0 && first.is_none() {
                    first = Some(started.elapsed());
                }
            }
        } else {
            let mut data = vec![0u8; length?];
            self.stream.read_exact(&mut data).await.ok()?;
            if events.feed(&data) > 0 {
                first = Some(started.elapsed());
            }
        }
        first
    }
}

/// CPU time of each of `pid`'s threads so far, in nanoseconds, by thread id: the first field of
/// `/proc/<pid>/task/<tid>/schedstat`, what the scheduler ran the thread for (user and system
/// alike). `/proc/<pid>/stat`'s utime and stime may be sampled at the timer tick instead, 10 ms:
/// a round's 0.3 s of CPU is some thirty samples. (Exact counts did not narrow the spread
/// between runs, 0.09–0.16 ms a request for one build: that is the machine's.)
fn cpu_of(pid: u32) -> HashMap<u32, u64> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return HashMap::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let tid = task.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            Some((tid, run_ns(&stat)?))
        })
        .collect()
}

/// The time on the CPU in a `schedstat` line (`run_ns wait_ns slices`).
fn run_ns(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().next()?.parse().ok()
}

/// The CPU time spent between two readings: each thread's own difference, a thread started in
/// between counted whole. A thread that ended in between is missing from both the sum and
/// the process's: tokio's workers and the log writer live as long as the server.
fn cpu_between(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> Duration {
    let ns = after
        .iter()
        .map(|(tid, ran)| ran.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum();
    Duration::from_nanos(ns)
}

/// The order one client visits every path in, for one round: shuffled, and never two paths of
/// one process back to back (nor the last of the round before and the first of this one), so
/// each request finds its process as a lone caller would, after another process's work, never
/// warm from its own request a moment before. A fixed order (each round rotated) had put
/// `/v1/chat/completions` right after `/chat` every time, and measured it 0.08–0.10 ms faster
/// than `/chat`, which came after nginx; an interleaving client of chatapi's paths alone found
/// the two within 0.01 ms.
fn visiting_order(paths: &[Way], before: Option<usize>, rng: &mut impl rand::Rng) -> Vec<usize> {
    use rand::seq::SliceRandom;
    let mut order: Vec<usize> = (0..paths.len()).collect();
    let apart = |a: usize, b: usize| paths[a].pid != paths[b].pid;
    let spread = |order: &[usize], across: bool| {
        order.windows(2).all(|w| apart(w[0], w[1]))
            && !(across && before.is_some_and(|b| !apart(b, order[0])))
    };
    // Across rounds when it can be had; within the round when not (too few other processes).
    for across in [true, false] {
        for _ in 0..1000 {
            order.shuffle(rng);
            if spread(&order, across) {
                return order;
            }
        }
    }
    order
}

/// Time to first content event per path, `clients` at once, each sending one request to every
/// path (in `visiting_order`) for `rounds` rounds.
async fn first_tokens(paths: &[Way], clients: usize, rounds: usize) -> Vec<Vec<Duration>> {
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let paths = paths.to_vec();
        tasks.push(tokio::spawn(async move {
            use rand::SeedableRng;
            let mut rng = rand::rngs::StdRng::seed_from_u64(worker as u64);
            let mut conns = Vec::new();
            for p in &paths {
                conns.push(Conn::open(&p.addr).await);
            }
            let mut out = vec![Vec::new(); paths.len()];
            let mut last = None;
            for _ in 0..rounds {
                for i in visiting_order(&paths, last, &mut rng) {
                    if let Some(t) = conns[i].time(&paths[i].request).await {
                        out[i].push(t);
                    }
                    last = Some(i);
                }
            }
            out
        }));
    }
    let mut all = vec![Vec::new(); paths.len()];
    for t in tasks {
        for (i, v) in t.await.unwrap().into_iter().enumerate() {
            all[i].extend(v);
        }
    }
    all
}

/// CPU per request of one path's process: `clients` at once, `each` requests apiece.
async fn cpu_per_request(path: &Way, clients: usize, each: usize) -> Option<Duration> {
    let pid = path.pid?;
    let before = cpu_of(pid);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&path.addr).await;
            let mut done = 0u32;
            for _ in 0..each {
                done += u32::from(conn.time(&path.request).await.is_some());
            }
            done
        }));
    }
    let mut done = 0;
    for t in tasks {
        done += t.await.unwrap();
    }
    let spent = cpu_between(&before, &cpu_of(pid));
    (done > 0).then(|| spent / done)
}

pub async fn run(bin: &Path, out: &Path, sizes: &Sizes, smoke: bool) {
    let mock = Mock::start().await;
    let spec = Spec::FAST;
    let chat_body = openai_body(&spec.model());
    let chatapi = Chatapi::start(bin, &mock, sizes, false).await;
    let exe = std::env::current_exe().expect("own path");
    let mut relay_cmd = Command::new(&exe);
    relay_cmd.args(["relay", "--to", &mock.addr]);
    let (relay_child, relay_addr) = listening(relay_cmd).await;
    let nginx = start_nginx(&mock).await;
    if nginx.is_none() {
        println!("nginx not found (apt-get install nginx): measured without it");
    }
    let mut paths = vec![
        Way {
            name: "mock itself",
            addr: mock.addr.clone(),
            request: request(&mock.addr, "/v1/chat/completions", &chat_body),
            pid: None,
        },
        Way {
            name: "TCP relay",
            addr: relay_addr.clone(),
            request: request(&relay_addr, "/v1/chat/completions", &chat_body),
            pid: relay_child.id(),
        },
    ];
    if let Some(nginx) = &nginx {
        paths.push(Way {
            name: "nginx",
            addr: nginx.addr.clone(),
            request: request(&nginx.addr, "/v1/chat/completions", &chat_body),
            pid: nginx.child.id(),
        });
    }
    let openai = openai_body("default");
    let responses = json!({"model": "default", "stream": true, "input": "Say something."})
        .to_string()
        .into_bytes();
    let chatapi_body = crate::procs::chatapi_body();
    for (name, path, body) in [
        ("chatapi /chat", "/chat", &chatapi_body[..]),
        (
            "chatapi /v1/chat/completions",
            "/v1/chat/completions",
            &openai[..],
        ),
        ("chatapi /v1/responses", "/v1/responses", &responses[..]),
    ] {
        paths.push(Way {
            name,
            addr: chatapi.addr.clone(),
            request: request(&chatapi.addr, path, body),
            pid: chatapi.child.id(),
        });
    }
    let (rounds, per_round, each) = if smoke { (1, 20, 10) } else { (3, 300, 60) };
    // Warm every path (connections, caches, the upstream pool) before anything is timed.
    first_tokens(&paths, 4, 20).await;
    let mut one: Vec<Vec<Duration>> = vec![Vec::new(); paths.len()];
    let mut cpu: Vec<Vec<Duration>> = vec![Vec::new(); paths.len()];
    for round in 0..rounds {
        for (i, v) in first_tokens(&paths, 1, per_round)
            .await
            .into_iter()
            .enumerate()
        {
            one[i].extend(v);
        }
        // CPU at 50 clients, each path in turn, the order rotating by round.
        for k in 0..paths.len() {
            let i = (round + k) % paths.len();
            if let Some(per) = cpu_per_request(&paths[i], 50, each).await {
                cpu[i].push(per);
            }
        }
    }
    let fifty = first_tokens(&paths, 50, if smoke { 2 } else { 20 }).await;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut rows = Vec::new();
    let mut md = String::from(
        "| path | first token p50 (ms) | p99 | added p50 | added p99 | added p50, 50 clients | CPU per request, 50 clients (ms) |\n|---|---|---|---|---|---|---|\n",
    );
    let added =
        |samples: &[Vec<Duration>], i: usize, p: f64| pct(&samples[i], p) - pct(&samples[0], p);
    for (i, way) in paths.iter().enumerate() {
        let mut per = cpu[i].clone();
        per.sort();
        let cpu_ms = per.get(per.len() / 2).map(|d| ms(*d));
        md.push_str(&format!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} |\n",
            way.name,
            pct(&one[i], 50.0),
            pct(&one[i], 99.0),
            added(&one, i, 50.0),
            added(&one, i, 99.0),
            added(&fifty, i, 50.0),
            cpu_ms.map_or("—".into(), |c| format!("{c:.3}"))
        ));
        rows.push(json!({
            "path": way.name, "samples": one[i].len(), "p50_ms": pct(&one[i], 50.0),
            "p99_ms": pct(&one[i], 99.0), "added_p50_ms": added(&one, i, 50.0),
            "added_p99_ms": added(&one, i, 99.0), "added_p50_ms_50_clients": added(&fifty, i, 50.0),
            "cpu_ms_per_request": cpu_ms,
        }));
    }
    let at = |name: &str| paths.iter().position(|p| p.name == name);
    if let (Some(n), Some(c)) = (at("nginx"), at("chatapi /chat")) {
        md.push_str(&format!(
            "\n/chat adds {:.1}× what nginx adds to the first token (p50); /v1/chat/completions adds {:.3} ms more than /chat.\n",
            added(&one, c, 50.0) / added(&one, n, 50.0),
            added(&one, c + 1, 50.0) - added(&one, c, 50.0),
        ));
    }
    println!("{md}");
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(out.join("floor.md"), &md).unwrap();
    std::fs::write(
        out.join("floor.json"),
        serde_json::to_string_pretty(
            &json!({"rows": rows, "rounds": rounds, "per_round": per_round}),
        )
        .unwrap(),
    )
    .unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn way(pid: Option<u32>) -> Way {
        Way {
            name: "path",
            addr: String::new(),
            request: Arc::new(Vec::new()),
            pid,
        }
    }

    #[test]
    fn cpu_time_is_each_threads_own_difference() {
        assert_eq!(run_ns("676731292 170140687 1652\n"), Some(676_731_292));
        assert_eq!(run_ns(""), None);
        let before = HashMap::from([(1, 1_000), (2, 5_000), (3, 7_000)]);
        // Thread 3 ended, thread 4 began in between.
        let after = HashMap::from([(1, 4_000), (2, 5_500), (4, 2_000)]);
        assert_eq!(cpu_between(&before, &after), Duration::from_nanos(5_500));
    }

    #[test]
    fn a_busy_thread_of_this_process_is_counted() {
        let me = std::process::id();
        let before = cpu_of(me);
        assert!(
            before.contains_key(&me),
            "the main thread is one of the tasks"
        );
        // 30 ms on the CPU: a running thread's count is brought up to date at every tick.
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        let spent = cpu_between(&before, &cpu_of(me));
        assert!(
            spent >= Duration::from_millis(10) && spent < Duration::from_secs(10),
            "{spent:?} ({x})"
        );
    }

    #[test]
    fn no_process_is_visited_twice_in_a_row_even_across_rounds() {
        // The floor's own paths: the mock, the relay, nginx, and chatapi's three routes.
        let paths: Vec<Way> = [None, Some(1), Some(2), Some(3), Some(3), Some(3)]
            .into_iter()
            .map(way)
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut last = None;
        let mut firsts = std::collections::HashSet::new();
        for _ in 0..200 {
            let order = visiting_order(&paths, last, &mut rng);
            let mut seen = order.clone();
            seen.sort_unstable();
            assert_eq!(seen, [0, 1, 2, 3, 4, 5], "every path once a round");
            let with_last: Vec<usize> = last.into_iter().chain(order.iter().copied()).collect();
            for w in with_last.windows(2) {
                assert_ne!(paths[w[0]].pid, paths[w[1]].pid, "{with_last:?}");
            }
            firsts.insert(order[0]);
            last = order.last().copied();
        }
        assert!(firsts.len() > 2, "the order is shuffled, not fixed");
    }

    #[test]
    fn an_order_that_cannot_be_spread_still_visits_every_path() {
        let paths: Vec<Way> = [Some(3), Some(3), None].into_iter().map(way).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut order = visiting_order(&paths, Some(0), &mut rng);
        order.sort_unstable();
        assert_eq!(order, [0, 1, 2]);
    }
}
