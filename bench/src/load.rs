//! The load generator's client side: one streaming request, timed the way a voice client feels
//! it — time to the first content event, and the gaps between content events.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;

/// A request the benchmark sends: either straight to the mock (OpenAI dialect) or through a
/// ChatAPI endpoint (chatapi or the FastAPI peer).
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub body: Bytes,
}

#[derive(Debug, Default, Clone)]
pub struct Timing {
    pub ttft: Option<Duration>,
    pub gaps: Vec<Duration>,
    pub events: usize,
    pub total: Duration,
    pub ok: bool,
}

/// Counts the content events in complete lines, across reads.
#[derive(Default)]
pub struct EventCounter {
    partial: Vec<u8>,
}

impl EventCounter {
    /// Content events completed by `bytes`: `data: ` lines whose `content` (a chat chunk,
    /// ChatAPI's event) or `delta` (a Responses text event) is text that is not empty (the
    /// mock's role chunk and `[DONE]` do not count).
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
        self.partial.extend_from_slice(bytes);
        let mut count = 0;
        let mut start = 0;
        while let Some(end) = self.partial[start..].iter().position(|b| *b == b'\n') {
            let line = &self.partial[start..start + end];
            if line.starts_with(b"data:")
                && (carries(line, b"\"content\":") || carries(line, b"\"delta\":"))
            {
                count += 1;
            }
            start += end + 1;
        }
        self.partial.drain(..start);
        count
    }
}

/// Whether `key` in `line` holds a string that is not empty.
fn carries(line: &[u8], key: &[u8]) -> bool {
    line.windows(key.len())
        .position(|w| w == key)
        .map(|i| &line[i + key.len()..])
        .is_some_and(|rest| {
            let rest = rest.strip_prefix(b" ").unwrap_or(rest);
            rest.starts_with(b"\"") && !rest.starts_with(b"\"\"")
        })
}

pub async fn stream(client: &reqwest::Client, target: &Target, keep_gaps: bool) -> Timing {
    let started = Instant::now();
    let mut timing = Timing::default();
    let Ok(response) = client
        .post(&target.url)
        .header("content-type", "application/json")
        .header("accept", "*/*")
        .body(target.body.clone())
        .send()
        .await
    else {
        return timing;
    };
    if !response.status().is_success() {
        return timing;
    }
    let mut body = response.bytes_stream();
    let mut counter = EventCounter::default();
    let mut last = None::<Instant>;
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else { return timing };
        let now = Instant::now();
        let n = counter.feed(&chunk);
        if n == 0 {
            continue;
        }
        if timing.ttft.is_none() {
            timing.ttft = Some(now - started);
        }
        if keep_gaps {
            if let Some(prev) = last {
                timing.gaps.push(now - prev);
            }
            timing
                .gaps
                .extend(std::iter::repeat_n(Duration::ZERO, n - 1));
        }
        last = Some(now);
        timing.events += n;
    }
    timing.total = started.elapsed();
    timing.ok = timing.events > 0;
    timing
}

/// Opens a stream and returns it once its first content event arrived, still open.
pub async fn open(
    client: &reqwest::Client,
    target: &Target,
) -> Option<impl futures_util::Stream<Item = reqwest::Result<Bytes>>> {
    let response = client
        .post(&target.url)
        .header("content-type", "application/json")
        .body(target.body.clone())
        .send()
        .await
        .ok()?;
    let mut body = Box::pin(response.bytes_stream());
    let mut counter = EventCounter::default();
    while let Some(chunk) = body.next().await {
        if counter.feed(&chunk.ok()?) > 0 {
            return Some(body);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_content_events_across_reads() {
        let mut c = EventCounter::default();
        assert_eq!(c.feed(b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\ndata: {\"cont"), 0);
        assert_eq!(c.feed(b"ent\":\"Hi\"}\n\ndata: [DONE]\n\n"), 1);
    }
}
