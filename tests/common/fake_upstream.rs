//! A fake OpenAI-compatible upstream on a loopback port, speaking raw HTTP/1.1 so a test controls
//! every byte and every moment: real `chat.completion.chunk` events, delays, error statuses,
//! malformed chunks, cut connections, hangs. It records each request it receives and reports the
//! moment a caller closes a connection before the answer was complete.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub enum Step {
    /// One content delta, as a real `chat.completion.chunk` event.
    Text(String),
    /// Bytes written as they are (a malformed chunk, an `error` event...).
    Raw(String),
    /// Bytes that need not be text at all (invalid UTF-8).
    Bytes(Vec<u8>),
    Delay(Duration),
    /// Stop answering but keep the connection open.
    Hang,
    /// Close the connection abruptly, without `[DONE]` or the chunked terminator.
    Cut,
    /// One piece of a tool call, as OpenAI streams them.
    ToolCall {
        index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    },
    /// The finish chunk with this reason (instead of the usual `stop` at the end).
    Finish(String),
    /// End the stream here, cleanly (the chunked terminator), without `data: [DONE]`.
    EndWithoutDone,
}

#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 and an SSE stream: the role chunk, `steps`, and (unless a step cut or hung) the
    /// finish chunk and `data: [DONE]`.
    Stream(Vec<Step>),
    /// An error status with a JSON body and extra headers (`Retry-After`...).
    Status {
        code: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
    /// As `Stream`, with these headers after the usual ones (a CDN's cookies, rate limits...).
    Headed(Vec<(String, String)>, Vec<Step>),
    /// Waits before sending even the status line.
    Delayed(Duration, Box<Reply>),
    /// Never answers.
    Hang,
    /// Accepts, reads the request, closes without a word.
    Close,
}

impl Reply {
    pub fn text(words: &[&str]) -> Self {
        Reply::Stream(words.iter().map(|w| Step::Text(w.to_string())).collect())
    }

    pub fn status(code: u16, code_str: &str, message: &str) -> Self {
        Reply::Status {
            code,
            body: json!({"error": {"message": message, "type": "error", "code": code_str}})
                .to_string(),
            headers: vec![],
        }
    }
}

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Shared {
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
    received: Mutex<Vec<Received>>,
}

pub struct FakeUpstream {
    pub base_url: String,
    shared: Arc<Shared>,
    hangups: tokio::sync::Mutex<mpsc::UnboundedReceiver<Instant>>,
    received_tx: tokio::sync::watch::Receiver<usize>,
}

impl FakeUpstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(Reply::text(&["Hello", " there", "."])),
            received: Mutex::new(Vec::new()),
        });
        let (hangup_tx, hangup_rx) = mpsc::unbounded_channel();
        let (count_tx, count_rx) = tokio::sync::watch::channel(0usize);
        let count_tx = Arc::new(count_tx);
        let s = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let _ = socket.set_nodelay(true);
                tokio::spawn(serve(
                    socket,
                    s.clone(),
                    hangup_tx.clone(),
                    count_tx.clone(),
                ));
            }
        });
        Self {
            base_url: format!("http://{addr}/v1"),
            shared,
            hangups: tokio::sync::Mutex::new(hangup_rx),
            received_tx: count_rx,
        }
    }

    /// The next request gets this reply (replies queue up in order).
    pub fn push(&self, reply: Reply) {
        self.shared.script.lock().unwrap().push_back(reply);
    }

    /// What every request gets once the queue is empty.
    pub fn set_default(&self, reply: Reply) {
        *self.shared.default.lock().unwrap() = reply;
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until `n` requests have arrived.
    pub async fn wait_received(&self, n: usize) {
        let mut rx = self.received_tx.clone();
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|c| *c >= n))
            .await
            .expect("upstream request never arrived")
            .unwrap();
    }

    /// The moment the next connection was closed by its caller before its answer was complete.
    pub async fn next_hangup(&self, within: Duration) -> Option<Instant> {
        let mut rx = self.hangups.lock().await;
        tokio::time::timeout(within, rx.recv()).await.ok().flatten()
    }
}

async fn read_request(socket: &mut TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(Value::Null);
    Some(Received {
        path,
        headers,
        body,
    })
}

pub fn chunk_event(delta: Value, finish: Option<&str>) -> String {
    let chunk = json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "fake-model",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    });
    format!("data: {chunk}\n\n")
}

async fn write_chunk(w: &mut OwnedWriteHalf, data: &str) -> std::io::Result<()> {
    let framed = format!("{:x}\r\n{data}\r\n", data.len());
    w.write_all(framed.as_bytes()).await
}

/// The usage an OpenAI upstream reports when asked (`stream_options.include_usage`): a fixed
/// prompt count and one token per text step.
pub const FAKE_PROMPT_TOKENS: u32 = 11;

/// A response head: the status line and usual headers in `first`, then `extra`, then the blank
/// line.
fn head(mut first: String, extra: Vec<(String, String)>) -> String {
    for (k, v) in extra {
        first.push_str(&format!("{k}: {v}\r\n"));
    }
    first.push_str("\r\n");
    first
}

/// Plays `reply`; `true` when it ran to its natural end. `include_usage`: the request asked for
/// a usage chunk, which then comes before `[DONE]`, as OpenAI sends it.
async fn play(
    w: &mut OwnedWriteHalf,
    reply: Reply,
    include_usage: bool,
    logprobs: bool,
) -> std::io::Result<bool> {
    match reply {
        Reply::Hang => {
            std::future::pending::<()>().await;
            Ok(false)
        }
        Reply::Close => Ok(true),
        Reply::Delayed(d, inner) => {
            tokio::time::sleep(d).await;
            Box::pin(play(w, *inner, include_usage, logprobs)).await
        }
        Reply::Status {
            code,
            body,
            headers,
        } => {
            let first = format!(
                "HTTP/1.1 {code} Error\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            w.write_all(head(first, headers).as_bytes()).await?;
            w.write_all(body.as_bytes()).await?;
            Ok(true)
        }
        Reply::Stream(steps) => play_stream(w, vec![], steps, include_usage, logprobs).await,
        Reply::Headed(headers, steps) => {
            play_stream(w, headers, steps, include_usage, logprobs).await
        }
    }
}

/// A 200 event stream: the usual head with `headers` after it, a role chunk, `steps`, then the
/// finish, usage and `[DONE]` chunks that did not come in `steps`.
async fn play_stream(
    w: &mut OwnedWriteHalf,
    headers: Vec<(String, String)>,
    steps: Vec<Step>,
    include_usage: bool,
    logprobs: bool,
) -> std::io::Result<bool> {
    let first = String::from("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\nconnection: close\r\n");
    w.write_all(head(first, headers).as_bytes()).await?;
    write_chunk(
        w,
        &chunk_event(json!({"role": "assistant", "content": ""}), None),
    )
    .await?;
    let mut finished = false;
    let mut texts = 0u32;
    for step in steps {
        match step {
            Step::Text(t) if logprobs => {
                texts += 1;
                let mut chunk: Value = serde_json::from_str(
                    chunk_event(json!({"content": t}), None)
                        .trim_start_matches("data: ")
                        .trim_end(),
                )
                .unwrap();
                chunk["choices"][0]["logprobs"] = json!({"content": [{"token": t, "logprob": -0.25,
                        "bytes": t.as_bytes(), "top_logprobs": []}], "refusal": null});
                write_chunk(w, &format!("data: {chunk}\n\n")).await?
            }
            Step::Text(t) => {
                texts += 1;
                write_chunk(w, &chunk_event(json!({"content": t}), None)).await?
            }
            Step::ToolCall {
                index,
                id,
                name,
                arguments,
            } => {
                let mut call = json!({"index": index, "function": {"arguments": arguments}});
                if let Some(id) = id {
                    call["id"] = json!(id);
                    call["type"] = json!("function");
                }
                if let Some(name) = name {
                    call["function"]["name"] = json!(name);
                }
                write_chunk(w, &chunk_event(json!({"tool_calls": [call]}), None)).await?
            }
            Step::Finish(reason) => {
                finished = true;
                write_chunk(w, &chunk_event(json!({}), Some(&reason))).await?
            }
            Step::EndWithoutDone => {
                w.write_all(b"0\r\n\r\n").await?;
                return Ok(true);
            }
            Step::Raw(r) => write_chunk(w, &r).await?,
            Step::Bytes(b) => {
                w.write_all(format!("{:x}\r\n", b.len()).as_bytes()).await?;
                w.write_all(&b).await?;
                w.write_all(b"\r\n").await?;
            }
            Step::Delay(d) => tokio::time::sleep(d).await,
            Step::Hang => {
                std::future::pending::<()>().await;
            }
            Step::Cut => return Ok(true),
        }
    }
    if !finished {
        write_chunk(w, &chunk_event(json!({}), Some("stop"))).await?;
    }
    if include_usage {
        let usage = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000,
                "model": "fake-model", "choices": [], "usage": {"prompt_tokens": FAKE_PROMPT_TOKENS,
                "completion_tokens": texts, "total_tokens": FAKE_PROMPT_TOKENS + texts}});
        write_chunk(w, &format!("data: {usage}\n\n")).await?;
    }
    write_chunk(w, "data: [DONE]\n\n").await?;
    w.write_all(b"0\r\n\r\n").await?;
    Ok(true)
}

async fn serve(
    mut socket: TcpStream,
    shared: Arc<Shared>,
    hangups: mpsc::UnboundedSender<Instant>,
    count: Arc<tokio::sync::watch::Sender<usize>>,
) {
    let Some(request) = read_request(&mut socket).await else {
        return;
    };
    let include_usage = request.body["stream_options"]["include_usage"] == json!(true);
    let logprobs = request.body["logprobs"] == json!(true);
    shared.received.lock().unwrap().push(request);
    count.send_modify(|c| *c += 1);
    let reply = shared
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| shared.default.lock().unwrap().clone());
    let (mut r, mut w) = socket.into_split();
    // Watch the read side while the reply plays: EOF there is the caller hanging up.
    let mut byte = [0u8; 1];
    tokio::select! {
        done = play(&mut w, reply, include_usage, logprobs) => match done {
            Ok(true) => {
                let _ = w.shutdown().await;
            }
            // A write failed: the caller closed the connection while the reply was blocked on
            // a full socket. That is a hang-up too.
            Err(_) => {
                let _ = hangups.send(Instant::now());
            }
            Ok(false) => {}
        },
        _ = r.read(&mut byte) => {
            let _ = hangups.send(Instant::now());
        }
    }
}
