//! How a remote upstream is reached over HTTP. Connecting is one connector for all: TCP with
//! the settings reqwest gave it before (TCP_NODELAY, 15 s TCP keep-alive), rustls with webpki's
//! roots, and the connect timeout over TCP and TLS together. Over it, HTTP/1.1 is spoken by
//! `http1` on the answer's own task, and HTTP/2 (h2c, opt-in) by hyper-util's pooled client;
//! both keep idle connections 90 s. reqwest itself carries an upstream the environment sends
//! through a proxy (`HTTPS_PROXY`, `NO_PROXY`...).
//!
//! Why not reqwest for everything: every request through it went through a redirect layer and a
//! retry layer that the upstream path never uses, and turned its URL into a string and back
//! three times; that was 8 % of a streamed answer's instructions (callgrind, README "The
//! floor"). Proxies stay with reqwest because its handling of them (CONNECT tunnels, proxy
//! credentials, `NO_PROXY`) is the part worth not writing again, and a proxied upstream pays a
//! proxy's hop anyway.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use http::Uri;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tower::Service;

use super::http1;

/// Idle upstream connections are closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(90);
/// TCP keep-alive probes on upstream connections: a peer that vanished without a FIN is noticed.
const KEEPALIVE: Duration = Duration::from_secs(15);
const KEEPALIVE_RETRIES: u32 = 3;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{0}")]
    Proxied(#[from] reqwest::Error),
}

/// One connect timeout's two ways out: straight, and through the environment's proxy.
#[derive(Clone)]
struct Ways {
    direct: Direct,
    proxied: reqwest::Client,
}

/// Straight to the upstream: HTTP/1.1 spoken by `http1` on the answer's task, or HTTP/2 by
/// hyper's client, which multiplexes a connection's streams on a task of its own.
#[derive(Clone)]
enum Direct {
    Http1(http1::Pool<Http1Connector>),
    Http2(Box<Client<Connector, Full<Bytes>>>),
}

/// The connection pools remote upstreams share, one per connect timeout in use: the timeout is
/// fixed per pool, and a persona may set its own.
///
/// HTTP/1.1 unless asked otherwise: over HTTP/2 the client multiplexes every stream onto one
/// connection per host and, past the server's `MAX_CONCURRENT_STREAMS` (100–250 at most
/// providers), queues new requests instead of opening another connection — a silent first-token
/// stall under load. `http2_prior_knowledge` opts in (h2c) for upstreams known to allow enough
/// streams.
#[derive(Clone)]
pub struct Clients(Arc<[(Duration, Ways)]>);

impl Clients {
    /// `connects` is never empty: it holds at least the global connect timeout.
    pub fn build(connects: &[Duration], http2_prior_knowledge: bool) -> Result<Self, ClientError> {
        let tls = tls_config()?;
        let clients = connects
            .iter()
            .map(|&connect| {
                let ways = Ways {
                    direct: direct(connect, http2_prior_knowledge, tls.clone()),
                    proxied: proxied(connect, http2_prior_knowledge)?,
                };
                Ok((connect, ways))
            })
            .collect::<Result<Vec<_>, ClientError>>()?;
        Ok(Self(clients.into()))
    }

    fn for_connect(&self, connect: Duration) -> Option<&Ways> {
        self.0
            .iter()
            .find(|(c, _)| *c == connect)
            .or_else(|| self.0.first())
            .map(|(_, ways)| ways)
    }

    /// POSTs `body` to `endpoint` with `headers`; `connect` picks the pool whose connect timeout
    /// applies. The error is a sentence without the URL (a base_url may carry a secret).
    pub async fn post(
        &self,
        connect: Duration,
        endpoint: &Endpoint,
        headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<http::Response<ResponseBody>, String> {
        let ways = self
            .for_connect(connect)
            .ok_or_else(|| "no HTTP client was built".to_string())?;
        if endpoint.proxied {
            let response = ways
                .proxied
                .post(endpoint.url.clone())
                .headers(headers.clone())
                .body(body)
                .send()
                .await
                .map_err(|e| error_chain(&e.without_url()))?;
            let response: http::Response<reqwest::Body> = response.into();
            return Ok(response.map(|body| ResponseBody::Proxied { body }));
        }
        let client = match &ways.direct {
            Direct::Http1(pool) => {
                let response = pool.post(&endpoint.uri, headers, &body).await?;
                return Ok(response.map(|body| ResponseBody::Http1 { body }));
            }
            Direct::Http2(client) => client,
        };
        let mut request = http::Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = endpoint.uri.clone();
        *request.headers_mut() = headers.clone();
        let response = client.request(request).await.map_err(|e| error_chain(&e))?;
        Ok(response.map(|body| ResponseBody::Http2 { body }))
    }
}

/// Where one upstream's requests go, decided once: its URI without credentials, and whether the
/// environment names a proxy for it. The environment is read when the upstreams are built, as
/// reqwest read it when it built its client.
pub struct Endpoint {
    uri: Uri,
    url: reqwest::Url,
    proxied: bool,
}

impl Endpoint {
    /// `url`'s `user:password@`, if any, comes out of it and into `headers` as Basic credentials,
    /// unless `headers` already authorise (an API key wins).
    pub fn new(mut url: reqwest::Url, headers: &mut HeaderMap) -> Result<Self, String> {
        if let Some(credentials) = take_credentials(&mut url) {
            headers.entry(AUTHORIZATION).or_insert(credentials);
        }
        let uri: Uri = url
            .as_str()
            .parse()
            .map_err(|e: http::uri::InvalidUri| e.to_string())?;
        let proxied = Matcher::from_system().intercept(&uri).is_some();
        Ok(Self { uri, url, proxied })
    }
}

/// `user:password@` taken out of `url`, as a Basic `Authorization` value (marked sensitive, so
/// it is never logged).
fn take_credentials(url: &mut reqwest::Url) -> Option<HeaderValue> {
    use base64::Engine;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let user = decode(url.username());
    let password = url.password().map(decode);
    if user.is_empty() && password.is_none() {
        return None;
    }
    url.set_username("").ok()?;
    url.set_password(None).ok()?;
    let pair = format!("{user}:{}", password.unwrap_or_default());
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// rustls with ring (the provider already in the binary) and webpki's roots. ALPN is left to
/// the connector, which offers `h2` to an HTTP/2 pool and nothing (HTTP/1.1) otherwise.
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn direct(connect: Duration, http2: bool, tls: rustls::ClientConfig) -> Direct {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    // Without it Linux holds back each small SSE chunk for the delayed ACK (~40 ms).
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect));
    http.set_keepalive(Some(KEEPALIVE));
    http.set_keepalive_interval(Some(KEEPALIVE));
    http.set_keepalive_retries(Some(KEEPALIVE_RETRIES));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if !http2 {
        let connector = Http1Connector(Connector {
            https: https.enable_http1().wrap_connector(http),
            timeout: connect,
        });
        return Direct::Http1(http1::Pool::new(connector, POOL_IDLE));
    }
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_only(true)
        .build(Connector {
            https: https.enable_http2().wrap_connector(http),
            timeout: connect,
        });
    Direct::Http2(Box::new(client))
}

fn proxied(connect: Duration, http2: bool) -> Result<reqwest::Client, reqwest::Error> {
    let builder = reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(connect)
        .pool_idle_timeout(POOL_IDLE);
    if http2 {
        builder.http2_prior_knowledge().build()
    } else {
        builder.http1_only().build()
    }
}

/// The TLS connector with the connect timeout over the whole of connecting, TLS included:
/// hyper's own applies to the TCP connect only, and a server that accepts and then says nothing
/// would hold the request until the first-token timeout.
#[derive(Clone)]
struct Connector {
    https: HttpsConnector<HttpConnector>,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("connecting timed out")]
struct ConnectTimedOut;

impl Service<Uri> for Connector {
    type Response = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.https.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.https.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            tokio::time::timeout(timeout, connecting)
                .await
                .map_err(|_| Box::new(ConnectTimedOut) as BoxError)?
        })
    }
}

/// The connector for `http1`'s pools: the same connection, as a [`Socket`].
#[derive(Clone)]
struct Http1Connector(Connector);

impl Service<Uri> for Http1Connector {
    type Response = Socket;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Socket, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move {
            Ok(match connecting.await? {
                MaybeHttpsStream::Http(tcp) => Socket::Plain(tcp),
                tls => Socket::Tls(Box::new(tls)),
            })
        })
    }
}

/// An HTTP/1.1 upstream's connection, held for as long as its answer streams. TLS's state (over
/// a kilobyte) is boxed, so that a plain connection holds its socket alone (40 bytes).
pub enum Socket {
    Plain(TokioIo<tokio::net::TcpStream>),
    Tls(Box<MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>>),
}

impl hyper::rt::Read for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_flush(cx),
            Socket::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

pin_project_lite::pin_project! {
    /// An upstream response's body, as the chunks that arrive.
    #[project = ResponseBodyProjection]
    pub enum ResponseBody {
        Http1 { body: http1::Body<Socket> },
        Http2 { #[pin] body: hyper::body::Incoming },
        Proxied { #[pin] body: reqwest::Body },
    }
}

impl futures_util::Stream for ResponseBody {
    /// The error is a sentence, made only when the body fails.
    type Item = Result<Bytes, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        use futures_util::StreamExt;
        use hyper::body::Body;
        loop {
            let frame = match self.as_mut().project() {
                ResponseBodyProjection::Http1 { body } => return body.poll_next_unpin(cx),
                ResponseBodyProjection::Http2 { body } => futures_util::ready!(body.poll_frame(cx))
                    .map(|f| f.map_err(|e| error_chain(&e))),
                ResponseBodyProjection::Proxied { body } => {
                    futures_util::ready!(body.poll_frame(cx))
                        .map(|f| f.map_err(|e| error_chain(&e.without_url())))
                }
            };
            match frame {
                None => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                Some(Ok(frame)) => {
                    // Trailers carry nothing an answer needs.
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
            }
        }
    }
}

/// An error and its causes, one sentence: "client error (Connect): tcp connect error: ...".
pub(super) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_url_become_basic_auth_and_leave_the_url() {
        let mut headers = HeaderMap::new();
        let url = reqwest::Url::parse("http://bob:p%40ss+w@example.com/v1/chat?k=1").unwrap();
        let endpoint = Endpoint::new(url, &mut headers).unwrap();
        assert_eq!(endpoint.uri.to_string(), "http://example.com/v1/chat?k=1");
        let auth = headers.get(AUTHORIZATION).unwrap();
        assert!(auth.is_sensitive());
        use base64::Engine;
        let expected = base64::engine::general_purpose::STANDARD.encode("bob:p@ss+w");
        assert_eq!(auth.to_str().unwrap(), format!("Basic {expected}"));
    }

    #[test]
    fn an_api_key_wins_over_credentials_in_the_url() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer sk-1"));
        let url = reqwest::Url::parse("http://bob:pw@example.com/v1").unwrap();
        let endpoint = Endpoint::new(url, &mut headers).unwrap();
        assert_eq!(headers.get(AUTHORIZATION).unwrap(), "Bearer sk-1");
        assert_eq!(endpoint.uri.to_string(), "http://example.com/v1");
    }
}
