//! HTTP/1.1 to a remote upstream, spoken on the answer's own task: one POST at a time on a
//! connection, the response's body read as it arrives, and the connection kept for the next
//! request when its body ended cleanly.
//!
//! Why not hyper's client, which served HTTP/1.1 upstreams before: it runs each connection on a
//! task of its own behind a dispatch channel, and keeps two 8 KB buffers per connection whose
//! size hyper fixes (`INIT_BUFFER_SIZE`). An open stream held 34 KB over HTTP/1.1 against 17 KB
//! over h2c, and every chunk crossed from the connection's task to the answer's. Here a waiting
//! stream holds its socket and little else (reads go through the stack), and the task that
//! relays a chunk is the one that reads it: 17 KB a stream, and 30 % fewer instructions an
//! answer (README, "The floor"). What is not written here: connecting (TCP, TLS and the connect
//! timeout are `transport`'s connector), parsing the response head and chunk sizes (httparse,
//! the parser inside hyper), and HTTP/2 (hyper's client, in `transport`).

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::header::TRANSFER_ENCODING;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, HOST};
use http::uri::{Authority, Scheme};
use http::{StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tower::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The most one read takes. An SSE chunk is a few hundred bytes; a burst of them that does not
/// fit is read by the next read.
const READ_SIZE: usize = 8192;
/// The most a response head may take, status line to blank line.
const MAX_HEAD: usize = 64 * 1024;
/// The most header fields a response head may have (hyper's default).
const MAX_HEADERS: usize = 100;
/// The most a chunk's size line may take, extensions included.
const MAX_CHUNK_LINE: usize = 4096;
/// The most the trailer fields after the last chunk may take; they are read and dropped.
const MAX_TRAILERS: usize = 16 * 1024;
/// What a body that is dropped unfinished may still read of what has already arrived, to find
/// its end and keep its connection (the last chunk's terminator usually trails `[DONE]`).
const MAX_DRAIN: usize = 64 * 1024;
/// Idle connections kept per upstream host; past it a finished connection is closed.
const MAX_IDLE_PER_HOST: usize = 1024;
/// How often idle connections are checked for age and for a close by the upstream.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Where a connection goes: the same scheme and authority share a pool.
type Host = (Scheme, Authority);

/// One connection and what has been read from it but not consumed.
struct Conn<T> {
    io: TokioIo<T>,
    buf: BytesMut,
}

/// The pool of one connector: its idle connections, by host. Cloning shares it.
pub struct Pool<C>
where
    C: Service<Uri>,
{
    connector: C,
    idle: Arc<Idle<C::Response>>,
}

impl<C: Service<Uri> + Clone> Clone for Pool<C> {
    fn clone(&self) -> Self {
        Self {
            connector: self.connector.clone(),
            idle: self.idle.clone(),
        }
    }
}

struct Idle<T> {
    /// Kept this long unused, then closed.
    keep: Duration,
    parked: Mutex<Parked<T>>,
}

struct Parked<T> {
    by_host: HashMap<Host, Vec<(Conn<T>, Instant)>>,
    sweeping: bool,
}

/// What a connector connects: a byte stream both ways (TCP, or TLS over it).
pub trait Wire: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static {}
impl<T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static> Wire for T {}

impl<C> Pool<C>
where
    C: Service<Uri> + Clone + Send + Sync + 'static,
    C::Response: Wire,
    C::Error: Into<BoxError>,
    C::Future: Send,
{
    /// `keep`: how long an unused connection is kept.
    pub fn new(connector: C, keep: Duration) -> Self {
        Self {
            connector,
            idle: Arc::new(Idle {
                keep,
                parked: Mutex::new(Parked {
                    by_host: HashMap::new(),
                    sweeping: false,
                }),
            }),
        }
    }

    /// POSTs `body` to `uri` with `headers` (plus `Host` unless given, and `Content-Length`),
    /// and returns the response once its head has arrived. Errors are sentences without the
    /// URL.
    pub async fn post(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<http::Response<Body<C::Response>>, String> {
        let host = host_of(uri)?;
        let request = encode_request(uri, &host.1, headers, body);
        let mut conn = match self.idle.take(&host) {
            Some(mut conn) => match send(&mut conn.io, &request).await {
                Ok(()) => conn,
                // An idle connection the upstream closed as it was taken: nothing was sent on
                // it, so the request goes once more on a new one.
                Err(_) => self.connect_and_send(uri, &request).await?,
            },
            None => self.connect_and_send(uri, &request).await?,
        };
        let head = read_head(&mut conn).await?;
        let mut response = http::Response::new(Body {
            conn: Some(conn),
            framing: head.framing,
            keep_alive: head.keep_alive,
            host,
            idle: self.idle.clone(),
        });
        *response.status_mut() = head.status;
        *response.version_mut() = head.version;
        *response.headers_mut() = head.headers;
        Ok(response)
    }

    async fn connect_and_send(
        &self,
        uri: &Uri,
        request: &[u8],
    ) -> Result<Conn<C::Response>, String> {
        let io = self
            .connector
            .clone()
            .call(uri.clone())
            .await
            .map_err(|e| super::transport::error_chain(&*e.into()))?;
        let mut conn = Conn {
            io: TokioIo::new(io),
            buf: BytesMut::new(),
        };
        send(&mut conn.io, request)
            .await
            .map_err(|e| format!("sending the request failed: {e}"))?;
        Ok(conn)
    }
}

async fn send(io: &mut (impl AsyncWrite + Unpin), request: &[u8]) -> std::io::Result<()> {
    io.write_all(request).await?;
    io.flush().await
}

fn host_of(uri: &Uri) -> Result<Host, String> {
    match (uri.scheme(), uri.authority()) {
        (Some(scheme), Some(authority)) => Ok((scheme.clone(), authority.clone())),
        _ => Err("the upstream's URL has no scheme or host".into()),
    }
}

/// The request, head and body, in one buffer: one write, one segment for a small body.
fn encode_request(uri: &Uri, authority: &Authority, headers: &HeaderMap, body: &[u8]) -> Vec<u8> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !headers.contains_key(HOST) {
        line(&mut out, b"host", authority.as_str().as_bytes());
    }
    for (name, value) in headers {
        // The body's framing is this function's to say.
        if name != CONTENT_LENGTH && name != TRANSFER_ENCODING {
            line(&mut out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    line(
        &mut out,
        b"content-length",
        body.len().to_string().as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

struct Head {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    framing: Framing,
    keep_alive: bool,
}

/// Reads until a final (not 1xx) response head has arrived, and consumes it from `conn.buf`.
async fn read_head<T: Wire>(conn: &mut Conn<T>) -> Result<Head, String> {
    loop {
        if let Some(head) = parse_head(&mut conn.buf)? {
            return Ok(head);
        }
        if conn.buf.len() >= MAX_HEAD {
            return Err(format!(
                "the upstream's response head is over {} KB",
                MAX_HEAD / 1024
            ));
        }
        let read = std::future::poll_fn(|cx| poll_fill(conn, cx))
            .await
            .map_err(|e| format!("reading the upstream's response failed: {e}"))?;
        if read == 0 {
            return Err(if conn.buf.is_empty() {
                "the upstream closed the connection without answering".into()
            } else {
                "the upstream closed the connection in the middle of its response head".into()
            });
        }
    }
}

/// The final response head at the start of `buf`, consumed; `None` until it has all arrived.
/// An interim (1xx) response before it is consumed and skipped.
fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, String> {
    loop {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut fields);
        let length = match response.parse(buf) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(format!("the upstream's response head is malformed: {e}")),
        };
        let code = response.code.unwrap_or_default();
        let status = StatusCode::from_u16(code)
            .map_err(|_| format!("the upstream answered with status {code}, which is not one"))?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err("the upstream switched protocols, which was not asked of it".into());
        }
        if status.is_informational() {
            buf.advance(length);
            continue;
        }
        let version = match response.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        let mut headers = HeaderMap::with_capacity(response.headers.len());
        for field in response.headers.iter() {
            let name = HeaderName::from_bytes(field.name.as_bytes());
            let value = HeaderValue::from_bytes(field.value);
            match (name, value) {
                (Ok(name), Ok(value)) => {
                    headers.append(name, value);
                }
                _ => {
                    return Err(format!(
                        "the upstream's response head has an invalid field `{}`",
                        field.name.escape_debug()
                    ))
                }
            }
        }
        let framing = framing(status, version, &headers)?;
        // Framed both ways, a response is read by its chunks, and what follows it on the
        // connection cannot be trusted to start where they end (RFC 9112 §6.3): not kept.
        let framed_twice =
            headers.contains_key(TRANSFER_ENCODING) && headers.contains_key(CONTENT_LENGTH);
        let keep_alive =
            keeps_alive(version, &headers) && framing.ends_by_itself() && !framed_twice;
        buf.advance(length);
        return Ok(Some(Head {
            status,
            version,
            headers,
            framing,
            keep_alive,
        }));
    }
}

/// How the response's body ends, by RFC 9112 §6.3 for a response to a POST.
fn framing(status: StatusCode, version: Version, headers: &HeaderMap) -> Result<Framing, String> {
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(Framing::Length(0));
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        if version == Version::HTTP_10 {
            return Err("the upstream sent Transfer-Encoding over HTTP/1.0".into());
        }
        return Ok(if is_chunked(headers) {
            Framing::Chunked(Chunk::Size)
        } else {
            Framing::UntilClose
        });
    }
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        // A list of equal lengths is one length; anything else is not a length at all.
        for part in value.as_bytes().split(|&b| b == b',') {
            let part = std::str::from_utf8(part).unwrap_or_default().trim();
            let parsed = (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse::<u64>().ok())
                .flatten();
            match (parsed, length) {
                (Some(n), None) => length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => return Err("the upstream sent an invalid Content-Length".into()),
            }
        }
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

/// Whether the last transfer coding is `chunked`.
fn is_chunked(headers: &HeaderMap) -> bool {
    headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
}

/// HTTP/1.1 stays open unless it says `close`; HTTP/1.0 only when it says `keep-alive`.
fn keeps_alive(version: Version, headers: &HeaderMap) -> bool {
    let says = |token: &str| {
        headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if version == Version::HTTP_10 {
        says("keep-alive")
    } else {
        !says("close")
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Framing {
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunk),
    /// The body ends when the connection does.
    UntilClose,
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Chunk {
    /// A chunk's size line is next.
    Size,
    /// This many bytes of a chunk's data are left.
    Data(u64),
    /// The CRLF after a chunk's data is next.
    DataEnd,
    /// Trailer fields (this many bytes of them so far), up to a blank line.
    Trailers(usize),
}

impl Framing {
    /// Whether the body's end can be told without the connection closing.
    fn ends_by_itself(&self) -> bool {
        !matches!(self, Framing::UntilClose)
    }
}

/// What `step` found in the buffer.
#[derive(Debug, PartialEq)]
enum Step {
    Data(Bytes),
    /// The buffer holds nothing more to decode.
    NeedMore,
    End,
}

/// Decodes the body's next piece from the start of `buf`, consuming it (framing included).
fn step(framing: &mut Framing, buf: &mut BytesMut) -> Result<Step, String> {
    loop {
        match framing {
            Framing::Done => return Ok(Step::End),
            Framing::Length(0) => *framing = Framing::Done,
            Framing::Length(left) | Framing::Chunked(Chunk::Data(left)) => {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let take = usize::try_from(*left).map_or(buf.len(), |left| left.min(buf.len()));
                *left -= take as u64;
                if *framing == Framing::Chunked(Chunk::Data(0)) {
                    *framing = Framing::Chunked(Chunk::DataEnd);
                }
                return Ok(Step::Data(buf.split_to(take).freeze()));
            }
            Framing::UntilClose => {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                return Ok(Step::Data(buf.split().freeze()));
            }
            Framing::Chunked(Chunk::Size) => match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete((used, size))) if used <= MAX_CHUNK_LINE => {
                    buf.advance(used);
                    *framing = Framing::Chunked(if size == 0 {
                        Chunk::Trailers(0)
                    } else {
                        Chunk::Data(size)
                    });
                }
                Ok(httparse::Status::Partial) if buf.len() <= MAX_CHUNK_LINE => {
                    return Ok(Step::NeedMore)
                }
                _ => return Err("the upstream sent a malformed chunk size".into()),
            },
            Framing::Chunked(Chunk::DataEnd) => {
                if buf.len() < 2 {
                    return Ok(Step::NeedMore);
                }
                if &buf[..2] != b"\r\n" {
                    return Err("the upstream sent a chunk longer than its size".into());
                }
                buf.advance(2);
                *framing = Framing::Chunked(Chunk::Size);
            }
            Framing::Chunked(Chunk::Trailers(seen)) => {
                let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
                    if *seen + buf.len() > MAX_TRAILERS {
                        return Err(trailers_too_long());
                    }
                    return Ok(Step::NeedMore);
                };
                buf.advance(end + 2);
                if end == 0 {
                    *framing = Framing::Done;
                } else {
                    *seen += end + 2;
                    if *seen > MAX_TRAILERS {
                        return Err(trailers_too_long());
                    }
                }
            }
        }
    }
}

fn trailers_too_long() -> String {
    format!(
        "the upstream's trailer fields are over {} KB",
        MAX_TRAILERS / 1024
    )
}

/// A response's body, read on the task that polls it. Dropping it unfinished closes the
/// connection, which is how the upstream learns the caller has gone.
pub struct Body<T: Wire> {
    /// `None` once the body has ended or failed.
    conn: Option<Conn<T>>,
    framing: Framing,
    keep_alive: bool,
    host: Host,
    idle: Arc<Idle<T>>,
}

impl<T: Wire> Body<T> {
    /// The connection goes back to the pool if nothing follows the body on it.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.keep_alive && conn.buf.is_empty() {
                self.idle.put(self.host.clone(), conn);
            }
        }
    }

    /// Reads on, without waiting, until the body ends (and its connection is kept) or would
    /// wait; anything unfinished then closes its connection.
    fn drain_arrived(&mut self) {
        let mut cx = Context::from_waker(Waker::noop());
        let mut drained = 0;
        while drained <= MAX_DRAIN {
            match futures_util::Stream::poll_next(Pin::new(&mut *self), &mut cx) {
                Poll::Ready(Some(Ok(data))) => drained += data.len(),
                _ => break,
            }
        }
        self.conn = None;
    }
}

/// Reads what has arrived onto the end of `conn.buf`, through a buffer on the stack: a stream
/// waits far more than it reads, and while it waits with nothing left over it holds no read
/// buffer at all (hyper's client kept 8 KB per connection).
fn poll_fill<T: Wire>(conn: &mut Conn<T>, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
    let mut stack = [MaybeUninit::<u8>::uninit(); READ_SIZE];
    let mut read = ReadBuf::uninit(&mut stack);
    match Pin::new(&mut conn.io).poll_read(cx, &mut read) {
        Poll::Ready(Ok(())) => {
            conn.buf.extend_from_slice(read.filled());
            Poll::Ready(Ok(read.filled().len()))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => {
            if conn.buf.is_empty() {
                conn.buf = BytesMut::new();
            }
            Poll::Pending
        }
    }
}

impl<T: Wire> futures_util::Stream for Body<T> {
    /// The error is a sentence.
    type Item = Result<Bytes, String>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match step(&mut this.framing, &mut conn.buf) {
                Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(data))),
                Ok(Step::End) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Ok(Step::NeedMore) => {}
            }
            match futures_util::ready!(poll_fill(conn, cx)) {
                Ok(0) if this.framing == Framing::UntilClose => {
                    this.framing = Framing::Done;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(
                        "the upstream closed the connection before the body's end".into(),
                    )));
                }
                Ok(_) => {}
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(format!(
                        "reading the upstream's response failed: {e}"
                    ))));
                }
            }
        }
    }
}

impl<T: Wire> Drop for Body<T> {
    /// A body dropped at its end (the answer saw `[DONE]`) usually has the last chunk's
    /// terminator already read or waiting in the socket: finishing it keeps the connection.
    /// Anything that would wait closes it instead.
    fn drop(&mut self) {
        if self.conn.is_some() && self.framing != Framing::UntilClose {
            self.drain_arrived();
        }
    }
}

impl<T: Wire> Idle<T> {
    /// The most recently parked connection to `host` that is still open.
    fn take(&self, host: &Host) -> Option<Conn<T>> {
        loop {
            let (mut conn, since) = self.lock().by_host.get_mut(host)?.pop()?;
            if since.elapsed() < self.keep && is_open(&mut conn) {
                return Some(conn);
            }
        }
    }

    fn put(self: &Arc<Self>, host: Host, conn: Conn<T>) {
        let mut parked = self.lock();
        let conns = parked.by_host.entry(host).or_default();
        if conns.len() < MAX_IDLE_PER_HOST {
            conns.push((conn, Instant::now()));
        }
        if !parked.sweeping {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                parked.sweeping = true;
                runtime.spawn(sweep(Arc::downgrade(self)));
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Parked<T>> {
        // A panic elsewhere while it was held leaves a list of connections, still coherent.
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Closes idle connections past their time or closed by the upstream, until the pool is gone.
async fn sweep<T: Wire>(idle: std::sync::Weak<Idle<T>>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.tick().await;
    loop {
        every.tick().await;
        let Some(idle) = idle.upgrade() else { return };
        let mut parked = idle.lock();
        for conns in parked.by_host.values_mut() {
            conns.retain_mut(|(conn, since)| since.elapsed() < idle.keep && is_open(conn));
        }
        parked.by_host.retain(|_, conns| !conns.is_empty());
    }
}

/// An idle connection is open while reading it would wait: data or an end on it means the
/// upstream closed it or broke the protocol.
fn is_open<T: Wire>(conn: &mut Conn<T>) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    let mut probe = [0u8; 1];
    let mut probe = ReadBuf::new(&mut probe);
    Pin::new(&mut conn.io)
        .poll_read(&mut cx, &mut probe)
        .is_pending()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use hyper_util::client::legacy::connect::HttpConnector;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A fail guard, not a wait: every exchange here completes at once or never.
    const GUARD: Duration = Duration::from_secs(10);

    fn pool() -> Pool<HttpConnector> {
        Pool::new(HttpConnector::new(), Duration::from_secs(90))
    }

    async fn listener() -> (TcpListener, Uri) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!(
            "http://{}/v1/chat/completions",
            listener.local_addr().unwrap()
        );
        (listener, uri.parse().unwrap())
    }

    /// One request off `socket`: its head, and its body by its Content-Length.
    async fn read_request(socket: &mut (impl AsyncRead + Unpin)) -> (String, Vec<u8>) {
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut more = [0u8; 1024];
            let n = socket.read(&mut more).await.unwrap();
            assert!(n > 0, "the client closed in the middle of a request");
            buf.extend_from_slice(&more[..n]);
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        let mut body = buf[head_end..].to_vec();
        while body.len() < length {
            let mut more = [0u8; 1024];
            let n = socket.read(&mut more).await.unwrap();
            body.extend_from_slice(&more[..n]);
        }
        (head, body)
    }

    /// Reads one request off `socket` and answers it with `answer`.
    async fn answer(socket: &mut (impl AsyncRead + AsyncWrite + Unpin), answer: &[u8]) {
        read_request(socket).await;
        socket.write_all(answer).await.unwrap();
    }

    async fn post<C>(pool: &Pool<C>, uri: &Uri) -> Result<http::Response<Body<C::Response>>, String>
    where
        C: Service<Uri> + Clone + Send + Sync + 'static,
        C::Response: Wire,
        C::Error: Into<BoxError>,
        C::Future: Send,
    {
        tokio::time::timeout(GUARD, pool.post(uri, &HeaderMap::new(), b"{}"))
            .await
            .unwrap()
    }

    /// The whole body of a request that must succeed.
    async fn fetched<C>(pool: &Pool<C>, uri: &Uri) -> Vec<u8>
    where
        C: Service<Uri> + Clone + Send + Sync + 'static,
        C::Response: Wire,
        C::Error: Into<BoxError>,
        C::Future: Send,
    {
        let response = post(pool, uri).await.unwrap();
        collect(&mut response.into_body()).await.unwrap()
    }

    /// What the fake upstream's task returned, once it has ended.
    async fn finished<T>(upstream: tokio::task::JoinHandle<T>) -> T {
        tokio::time::timeout(GUARD, upstream)
            .await
            .unwrap()
            .unwrap()
    }

    async fn collect<T: Wire>(body: &mut Body<T>) -> Result<Vec<u8>, String> {
        let mut all = Vec::new();
        while let Some(chunk) = tokio::time::timeout(GUARD, body.next()).await.unwrap() {
            all.extend_from_slice(&chunk?);
        }
        Ok(all)
    }

    /// The result of one request answered with `answer`, after which the upstream closes.
    async fn answered_with(answer: Vec<u8>) -> Result<(StatusCode, Vec<u8>), String> {
        let (listener, uri) = listener().await;
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            read_request(&mut socket).await;
            // The client may have given up on a bad head already.
            let _ = socket.write_all(&answer).await;
        });
        let response = post(&pool(), &uri).await?;
        let status = response.status();
        let body = collect(&mut response.into_body()).await?;
        Ok((status, body))
    }

    #[tokio::test]
    async fn a_chunked_answer_streams_and_its_connection_is_kept() {
        let (listener, uri) = listener().await;
        let upstream = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut heads = Vec::new();
            for _ in 0..2 {
                let (head, body) = read_request(&mut socket).await;
                assert_eq!(body, b"{\"q\":1}");
                heads.push(head);
                socket
                    .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                    .await
                    .unwrap();
                socket.write_all(b"5;ext=1\r\nhello\r\n").await.unwrap();
                socket
                    .write_all(b"6\r\n world\r\n0\r\nx-usage: 1\r\n\r\n")
                    .await
                    .unwrap();
            }
            heads
        });
        let pool = pool();
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer k"));
        // Framing is the client's to say, whatever the configured headers hold.
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("999"));
        for _ in 0..2 {
            let response = tokio::time::timeout(GUARD, pool.post(&uri, &headers, b"{\"q\":1}"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                collect(&mut response.into_body()).await.unwrap(),
                b"hello world"
            );
        }
        // Both requests came over the one connection the upstream accepted.
        let heads = finished(upstream).await;
        let authority = uri.authority().unwrap();
        assert_eq!(
            heads[1],
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nhost: {authority}\r\n\
                 authorization: Bearer k\r\ncontent-length: 7\r\n\r\n"
            )
        );
    }

    #[tokio::test]
    async fn a_host_in_the_headers_is_the_one_sent() {
        let uri: Uri = "http://10.0.0.1:8080/v1/x?api-version=2".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("api.example.com"));
        let request = encode_request(&uri, uri.authority().unwrap(), &headers, b"ab");
        assert_eq!(
            request,
            b"POST /v1/x?api-version=2 HTTP/1.1\r\nhost: api.example.com\r\n\
              content-length: 2\r\n\r\nab"
        );
    }

    #[tokio::test]
    async fn bodies_by_length_and_until_close() {
        let got =
            answered_with(b"HTTP/1.1 201 Created\r\ncontent-length: 3, 3\r\n\r\nabc".to_vec());
        assert_eq!(got.await.unwrap(), (StatusCode::CREATED, b"abc".to_vec()));
        let got = answered_with(b"HTTP/1.1 200 OK\r\n\r\nuntil the end".to_vec());
        assert_eq!(
            got.await.unwrap(),
            (StatusCode::OK, b"until the end".to_vec())
        );
        let got = answered_with(b"HTTP/1.0 200 OK\r\n\r\nold".to_vec());
        assert_eq!(got.await.unwrap(), (StatusCode::OK, b"old".to_vec()));
        let got = answered_with(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec());
        assert_eq!(got.await.unwrap(), (StatusCode::NO_CONTENT, Vec::new()));
    }

    #[tokio::test]
    async fn interim_responses_are_skipped() {
        let got = answered_with(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n\
              HTTP/1.1 429 Too Many Requests\r\nretry-after: 2\r\ncontent-length: 2\r\n\r\n{}"
                .to_vec(),
        );
        assert_eq!(
            got.await.unwrap(),
            (StatusCode::TOO_MANY_REQUESTS, b"{}".to_vec())
        );
    }

    /// Each hostile or broken answer fails with a sentence that names what is wrong, and nothing
    /// is sized from a number in it.
    #[tokio::test]
    async fn broken_answers_fail_with_a_sentence() {
        let long_head = format!("HTTP/1.1 200 OK\r\nx: {}\r\n\r\n", "a".repeat(70_000));
        let many_fields = format!("HTTP/1.1 200 OK\r\n{}\r\n", "x: 1\r\n".repeat(101));
        let long_trailers = format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n{}\r\n",
            "x: 1\r\n".repeat(3000)
        );
        let long_size_line = format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1;{}\r\na\r\n0\r\n\r\n",
            "e".repeat(5000)
        );
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "closed the connection without answering"),
            (
                b"HTTP/1.1 200 OK\r\ncontent-".to_vec(),
                "in the middle of its response head",
            ),
            (b"SMTP ready\r\n\r\n".to_vec(), "response head is malformed"),
            (long_head.into_bytes(), "response head is over 64 KB"),
            (
                many_fields.into_bytes(),
                "response head is malformed: too many headers",
            ),
            (b"HTTP/1.1 099 Odd\r\n\r\n".to_vec(), "status 99"),
            (
                b"HTTP/1.1 101 Switching\r\n\r\n".to_vec(),
                "switched protocols",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 3, 4\r\n\r\nabc".to_vec(),
                "invalid Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n".to_vec(),
                "invalid Content-Length",
            ),
            (
                b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec(),
                "Transfer-Encoding over HTTP/1.0",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc".to_vec(),
                "before the body's end",
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n".to_vec(),
                "malformed chunk size",
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcdef\r\n".to_vec(),
                "chunk longer than its size",
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffff\r\nab"
                    .to_vec(),
                "before the body's end",
            ),
            (long_trailers.into_bytes(), "trailer fields are over 16 KB"),
            (long_size_line.into_bytes(), "malformed chunk size"),
        ];
        for (answer, expected) in cases {
            let shown = String::from_utf8_lossy(&answer[..answer.len().min(60)]).into_owned();
            let error = answered_with(answer).await.unwrap_err();
            assert!(error.contains(expected), "{shown:?}: {error}");
        }
    }

    #[tokio::test]
    async fn connections_that_cannot_be_kept_are_not() {
        for reply in [
            &b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"[..],
            b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 9\r\n\r\n\
              2\r\nok\r\n0\r\n\r\n",
        ] {
            let (listener, uri) = listener().await;
            let upstream = tokio::spawn(async move {
                // Each connection stays open and unread after its answer: one used again
                // would leave its request unanswered.
                let mut open = Vec::new();
                for _ in 0..2 {
                    let (mut socket, _) = listener.accept().await.unwrap();
                    answer(&mut socket, reply).await;
                    open.push(socket);
                }
                open
            });
            let pool = pool();
            for _ in 0..2 {
                assert_eq!(fetched(&pool, &uri).await, b"ok");
            }
            // Two connections accepted, one per request.
            finished(upstream).await;
        }
    }

    #[tokio::test]
    async fn a_kept_connection_the_upstream_closed_is_not_used() {
        let (listener, uri) = listener().await;
        let (closed, was_closed) = tokio::sync::oneshot::channel();
        let upstream = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            answer(
                &mut socket,
                b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\na",
            )
            .await;
            // Closed once answered, as a server's keep-alive timeout does.
            drop(socket);
            closed.send(()).unwrap();
            let (mut socket, _) = listener.accept().await.unwrap();
            answer(
                &mut socket,
                b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nb",
            )
            .await;
        });
        let pool = pool();
        assert_eq!(fetched(&pool, &uri).await, b"a");
        was_closed.await.unwrap();
        assert_eq!(fetched(&pool, &uri).await, b"b");
        finished(upstream).await;
    }

    #[tokio::test]
    async fn a_body_dropped_midway_closes_its_connection() {
        let (listener, uri) = listener().await;
        let upstream = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\none\r\n";
            answer(&mut socket, head).await;
            // The caller's hang-up, as the upstream sees it: the connection ends.
            let mut rest = [0u8; 16];
            socket.read(&mut rest).await.unwrap_or(0)
        });
        let response = post(&pool(), &uri).await.unwrap();
        let mut body = response.into_body();
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b"one");
        drop(body);
        let read = finished(upstream).await;
        assert_eq!(read, 0);
    }

    #[tokio::test]
    async fn a_body_dropped_at_its_end_keeps_its_connection() {
        let (listener, uri) = listener().await;
        let upstream = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            for _ in 0..2 {
                let done = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                             e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n";
                answer(&mut socket, done).await;
            }
        });
        let pool = pool();
        for _ in 0..2 {
            let response = post(&pool, &uri).await.unwrap();
            let mut body = response.into_body();
            // The answer stops reading at `[DONE]`, before the last chunk.
            let first = tokio::time::timeout(GUARD, body.next()).await.unwrap();
            assert_eq!(&first.unwrap().unwrap()[..], b"data: [DONE]\n\n");
        }
        // The second request was answered on the first connection.
        finished(upstream).await;
    }

    /// The same exchange over TLS: the request flushed through rustls, the body read through
    /// it, the connection kept, and a `close_notify` on an idle one noticed before it is used.
    #[tokio::test]
    async fn over_tls_a_connection_is_kept_until_the_upstream_closes_it() {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let leaf = CertificateDer::from(&include_bytes!("../../tests/data/tls/leaf.der")[..]);
        let key = PrivateKeyDer::try_from(&include_bytes!("../../tests/data/tls/leaf-key.der")[..])
            .unwrap()
            .clone_key();
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(
                &include_bytes!("../../tests/data/tls/ca.der")[..],
            ))
            .unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();

        let (listener, uri) = listener().await;
        let uri: Uri = uri
            .to_string()
            .replacen("http:", "https:", 1)
            .parse()
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let (closed, was_closed) = tokio::sync::oneshot::channel();
        async fn accept(
            listener: &TcpListener,
            acceptor: &tokio_rustls::TlsAcceptor,
        ) -> tokio_rustls::server::TlsStream<TcpStream> {
            let (socket, _) = listener.accept().await.unwrap();
            acceptor.accept(socket).await.unwrap()
        }
        const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                                2\r\nok\r\n0\r\n\r\n";
        let upstream = tokio::spawn(async move {
            let mut tls = accept(&listener, &acceptor).await;
            for _ in 0..2 {
                answer(&mut tls, ANSWER).await;
            }
            // Closed while idle, as a keep-alive timeout does: `close_notify`, then FIN.
            tls.shutdown().await.unwrap();
            drop(tls);
            closed.send(()).unwrap();
            answer(&mut accept(&listener, &acceptor).await, ANSWER).await;
        });
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(client)
            .https_only()
            .enable_http1()
            .build();
        let pool = Pool::new(https, Duration::from_secs(90));
        for _ in 0..2 {
            assert_eq!(fetched(&pool, &uri).await, b"ok");
        }
        was_closed.await.unwrap();
        assert_eq!(fetched(&pool, &uri).await, b"ok");
        finished(upstream).await;
    }

    #[test]
    fn a_chunked_body_decodes_the_same_however_it_arrives() {
        let wire = b"4;name=\"v\"\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n\
                     0\r\nExpires: never\r\n\r\n";
        for size in 1..wire.len() {
            let mut framing = Framing::Chunked(Chunk::Size);
            let mut buf = BytesMut::new();
            let mut data = Vec::new();
            let mut ended = false;
            for piece in wire.chunks(size) {
                buf.extend_from_slice(piece);
                loop {
                    match step(&mut framing, &mut buf).unwrap() {
                        Step::Data(d) => data.extend_from_slice(&d),
                        Step::NeedMore => break,
                        Step::End => {
                            ended = true;
                            break;
                        }
                    }
                }
            }
            assert!(ended, "pieces of {size}");
            assert!(buf.is_empty());
            assert_eq!(data, b"Wikipedia in\r\n\r\nchunks.", "pieces of {size}");
        }
    }
}
