//! The scenarios, each a function from targets to raw samples: time to first token, gaps
//! between chunks, throughput, streams held, and how fast a hang-up reaches the upstream.
//! `main` turns the samples into the report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::load::{self, Target};
use crate::procs::{client, Mock};

/// Time to first content event for each target, interleaved: every client sends one request to
/// each target in turn (rotating which goes first), so drift in machine load hits all alike.
pub async fn ttft(targets: &[Target], clients: usize, rounds: usize) -> Vec<Vec<Duration>> {
    let c = client();
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let (c, targets) = (c.clone(), targets.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut out = vec![Vec::new(); targets.len()];
            for round in 0..rounds {
                for k in 0..targets.len() {
                    let i = (round + worker + k) % targets.len();
                    if let Some(t) = load::stream(&c, &targets[i], false).await.ttft {
                        out[i].push(t);
                    }
                }
            }
            out
        }));
    }
    let mut all = vec![Vec::new(); targets.len()];
    for t in tasks {
        for (i, v) in t.await.unwrap().into_iter().enumerate() {
            all[i].extend(v);
        }
    }
    all
}

/// Gaps between content events over `streams` concurrent streams.
pub async fn gaps(target: &Target, streams: usize) -> (Vec<Duration>, usize) {
    let c = client();
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let (c, t) = (c.clone(), target.clone());
        tasks.push(tokio::spawn(
            async move { load::stream(&c, &t, true).await },
        ));
    }
    let mut all = Vec::new();
    let mut complete = 0;
    for t in tasks {
        let timing = t.await.unwrap();
        complete += usize::from(timing.ok);
        all.extend(timing.gaps);
    }
    (all, complete)
}

/// Content events and requests per second with `clients` clients looping for `secs`.
pub async fn throughput(target: &Target, clients: usize, secs: u64) -> (f64, f64) {
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (c, t) = (c.clone(), target.clone());
        tasks.push(tokio::spawn(async move {
            let (mut events, mut requests) = (0usize, 0usize);
            while Instant::now() < deadline {
                let timing = load::stream(&c, &t, false).await;
                events += timing.events;
                requests += usize::from(timing.ok);
            }
            (events, requests)
        }));
    }
    let started = Instant::now();
    let (mut events, mut requests) = (0, 0);
    for t in tasks {
        let (e, r) = t.await.unwrap();
        events += e;
        requests += r;
    }
    let secs = started.elapsed().as_secs_f64().max(secs as f64);
    (events as f64 / secs, requests as f64 / secs)
}

/// Holds `n` streams open at once, opening `at_once` at a time; returns how many opened, then
/// closes them.
pub async fn hold(
    target: &Target,
    n: usize,
    at_once: usize,
    during: impl FnOnce() -> u64,
) -> (usize, u64) {
    let c = client();
    let gate = Arc::new(Semaphore::new(at_once));
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (c, t, gate) = (c.clone(), target.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await;
            load::open(&c, &t).await
        }));
    }
    let mut open = Vec::with_capacity(n);
    for t in tasks {
        if let Some(s) = t.await.unwrap() {
            open.push(s);
        }
    }
    let measured = during();
    let count = open.len();
    drop(open);
    (count, measured)
}

/// Time from dropping a stream to the mock seeing its upstream request closed.
pub async fn cancellation(mock: &Mock, target: &Target, n: usize) -> Vec<Duration> {
    let c = client();
    let mut out = Vec::new();
    for _ in 0..n {
        let Some(stream) = load::open(&c, target).await else {
            continue;
        };
        let left = Instant::now();
        drop(stream);
        if let Some(seen) = mock.next_hangup().await {
            out.push(seen.saturating_duration_since(left));
        }
    }
    out
}
