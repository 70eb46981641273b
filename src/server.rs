//! The accept loop: one hyper connection per TCP connection, and the phased graceful shutdown.
//! Each connection has a write deadline: a caller that stops reading cannot hold its stream
//! (and its upstream request, and its stream slot) forever. The relay's own timers run only when
//! the body is polled, and hyper polls it only while the socket takes bytes.
//!
//! Ours rather than `axum::serve` for one reason: `axum::serve` always sniffs for HTTP/2, and the
//! 24 bytes that sniffing reads first make hyper grow every connection's read buffer from 8 to
//! 16 KB. Serving HTTP/1.1 only (the default) skips the sniffing; `server.http2` turns it back on.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use crate::state::AppState;

/// How long a connection may take to send a request's headers, counted from when it is idle
/// and waiting for one: a guard against connections that never send a request, before our own
/// body timeout. Longer than the 90 s a Go client (FaceTo-AI's server) keeps an idle connection
/// for reuse: closing one under it could race a request it is sending, and a POST is not retried.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// What a connection's read buffer and response-head buffer start at (hyper's own are 8 KB each,
/// `vendor/README.md`). An open stream holds both for as long as it lasts, and a request's head
/// is a few hundred bytes: nginx's `client_header_buffer_size` is 1 KB too. A larger request (a
/// long call's whole conversation) is read with reads that double while they come back full, up
/// to hyper's limit as before, and the buffer it grew is let go once it has been read.
const CONNECTION_BUF: usize = 1024;

/// After the grace period, how long streams get to write their `[DONE]` before `serve`
/// returns regardless: a caller that stopped reading must not hold the shutdown up.
const DRAIN_AFTER_STOP: Duration = Duration::from_secs(2);

/// Serves on `listener` until `shutdown` resolves, then shuts down in phases:
/// 1. stop accepting connections (idle keep-alive connections close);
/// 2. let open streams run for `server.shutdown_grace`;
/// 3. end every stream still open with `data: [DONE]`;
/// 4. return once the last response is written, or `DRAIN_AFTER_STOP` later at the latest.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::metrics::install();
    let config = state.runtime().config.server.clone();
    let hard_stop = state.hard_stop().clone();
    let housekeeping = tokio::spawn({
        let state = state.clone();
        async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                state.runtime().rate_limits.shrink();
            }
        }
    });
    let runtime_state = state.clone();
    let videos = state.videos().cloned();
    let router = crate::routes::router(state);
    // HTTP/1.1 alone goes through hyper's own builder: its connections are smaller than the
    // auto builder's, which carry an HTTP/2 state and a copy of the builder each.
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .initial_buf_size(CONNECTION_BUF);
    let mut both = auto::Builder::new(TokioExecutor::new());
    both.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let admin = match config.admin_addr() {
        Some(addr) => Some(serve_admin(addr, runtime_state.clone()).await?),
        None => None,
    };
    let connections = GracefulShutdown::new();
    // Past `server.max_connections`, accepting waits: new callers queue in the kernel's backlog
    // rather than each taking a descriptor and a task.
    let open = Arc::new(Semaphore::new(config.max_connections));
    let mut shutdown = pin!(shutdown);
    loop {
        let (tcp, peer, permit) = tokio::select! {
            accepted = async {
                let permit = open.clone().acquire_owned().await;
                (listener.accept().await, permit)
            } => match accepted {
                (Ok((tcp, peer)), Ok(permit)) => (tcp, peer, permit),
                (Err(error), _) => {
                    accept_failed(error).await;
                    continue;
                }
                (Ok(_), Err(_)) => continue,
            },
            () = &mut shutdown => break,
        };
        // Without TCP_NODELAY each small event waits on the client's delayed ACK (~40 ms).
        let _ = tcp.set_nodelay(true);
        // No write progress for `timeouts.idle` (the caller stopped reading): the connection
        // closes, which drops its stream and the upstream request with it.
        let mut tcp = tokio_io_timeout::TimeoutStream::new(tcp);
        tcp.set_write_timeout(Some(state_idle(&runtime_state)));
        let tcp = Box::pin(tcp);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let io = TokioIo::new(tcp);
        if config.http2 {
            let connection = both.serve_connection(io, service).into_owned();
            spawn_connection(connections.watch(connection), peer, permit);
        } else {
            let connection = http1.serve_connection(io, service);
            spawn_connection(connections.watch(connection), peer, permit);
        }
    }
    drop(listener);
    if let Some(admin) = admin {
        admin.abort();
    }
    // Video jobs stop now (their programs are killed) and go back to the queue; the next start
    // resumes them. They do not get the grace period: a job can take far longer than it.
    let videos_stopped = tokio::spawn(async move {
        if let Some(videos) = videos {
            videos.shutdown().await;
        }
    });
    tracing::info!(grace = ?config.shutdown_grace, "shutting down: no new connections; open streams get the grace period");
    let stopped = hard_stop.clone();
    let grace = tokio::spawn(async move {
        tokio::time::sleep(config.shutdown_grace).await;
        tracing::info!("grace period over: ending open streams");
        hard_stop.cancel();
    });
    tokio::select! {
        () = connections.shutdown() => {}
        () = async {
            stopped.cancelled().await;
            tokio::time::sleep(DRAIN_AFTER_STOP).await;
        } => tracing::warn!("connections still open after the grace period (callers not reading); leaving them"),
    }
    grace.abort();
    housekeeping.abort();
    let _ = videos_stopped.await;
    Ok(())
}

/// The write deadline for a new connection: the running config's idle limit.
fn state_idle(state: &AppState) -> Duration {
    state.runtime().config.timeouts.idle
}

fn spawn_connection<E: std::fmt::Display>(
    connection: impl Future<Output = Result<(), E>> + Send + 'static,
    peer: std::net::SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
        drop(permit);
    });
}

/// `/metrics`, `/readyz` and `/healthz` on their own address (`server.admin_listen`), so the
/// public one tells nothing about the server. Stops when `serve` does.
async fn serve_admin(
    addr: std::net::SocketAddr,
    state: AppState,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(admin = %listener.local_addr().unwrap_or(addr), "admin endpoints listening");
    let router = crate::routes::admin_router(state);
    Ok(tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "admin endpoints stopped");
        }
    }))
}

/// Errors that concern one connection (the caller gave up during the handshake) are skipped;
/// anything else (out of file descriptors, say) is logged and retried after a pause, rather than
/// spinning or stopping the server.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
