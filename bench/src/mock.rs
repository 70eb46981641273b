//! The mock OpenAI-compatible upstream: fast, configurable through the request's `model` field
//! (`mock:chunks=50,gap=20,ttft=0,hold=1`), HTTP/1 and h2c. It runs as its own process so its
//! sockets and CPU are not the load generator's, and prints `H` on stdout the moment a caller
//! hangs up on an unfinished stream, which is how the benchmark times cancellation.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    pub chunks: usize,
    pub gap: Duration,
    pub ttft: Duration,
    /// After the first chunk, hold the stream open until the caller leaves.
    pub hold: bool,
}

impl Spec {
    /// A 20-chunk answer sent as fast as it goes: the stream every latency scenario times.
    pub const FAST: Spec = Spec {
        chunks: 20,
        gap: Duration::ZERO,
        ttft: Duration::ZERO,
        hold: false,
    };

    pub fn model(&self) -> String {
        format!(
            "mock:chunks={},gap={},ttft={},hold={}",
            self.chunks,
            self.gap.as_millis(),
            self.ttft.as_millis(),
            u8::from(self.hold)
        )
    }

    fn parse(model: &str) -> Self {
        let mut spec = Spec {
            chunks: 20,
            gap: Duration::ZERO,
            ttft: Duration::ZERO,
            hold: false,
        };
        for kv in model.trim_start_matches("mock:").split(',') {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let n: u64 = v.parse().unwrap_or(0);
            match k {
                "chunks" => spec.chunks = n as usize,
                "gap" => spec.gap = Duration::from_millis(n),
                "ttft" => spec.ttft = Duration::from_millis(n),
                "hold" => spec.hold = n != 0,
                _ => {}
            }
        }
        spec
    }
}

fn chunk(content: &str) -> Bytes {
    Bytes::from(format!(
        "data: {{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"mock\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\"finish_reason\":null}}]}}\n\n"
    ))
}

/// Reports the caller leaving before the stream finished.
struct HangupGuard {
    finished: bool,
    hangups: mpsc::UnboundedSender<()>,
}

impl Drop for HangupGuard {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.hangups.send(());
        }
    }
}

async fn completions(State(hangups): State<mpsc::UnboundedSender<()>>, body: Bytes) -> Response {
    let model = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["model"].as_str().map(str::to_string))
        .unwrap_or_default();
    let spec = Spec::parse(&model);
    let stream = async_stream::stream! {
        let mut guard = HangupGuard { finished: false, hangups };
        yield Ok::<_, Infallible>(Bytes::from_static(b"data: {\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"mock\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"));
        if !spec.ttft.is_zero() {
            tokio::time::sleep(spec.ttft).await;
        }
        for i in 0..spec.chunks {
            if i > 0 && !spec.gap.is_zero() {
                tokio::time::sleep(spec.gap).await;
            }
            yield Ok(chunk(if i % 2 == 0 { "Hello" } else { " world." }));
            if spec.hold {
                std::future::pending::<()>().await;
            }
        }
        yield Ok(Bytes::from_static(b"data: {\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"mock\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"));
        guard.finished = true;
    };
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/event-stream"),
    );
    response
}

/// `chatapi-bench mock`: serves until killed. HTTP/1.1 and h2c; over h2c it allows far more
/// concurrent streams per connection than real providers do, so that one connection can carry
/// the memory scenario's 10,000 streams.
pub async fn serve() -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut out = tokio::io::stdout();
    out.write_all(format!("LISTEN {addr}\n").as_bytes()).await?;
    out.flush().await?;
    tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while rx.recv().await.is_some() {
            let _ = out.write_all(b"H\n").await;
            let _ = out.flush().await;
        }
    });
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http2().max_concurrent_streams(100_000);
            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
        });
    }
}
