//! Lingering close, as nginx does it: a request whose body is refused before it is all read (too
//! large, a wrong key, a quota, a bad part) is answered at once, and what keeps arriving of the
//! body is read and thrown away for a while. Closing instead, with bytes still coming, makes the
//! kernel answer the caller's writes with a reset, and the caller sees a broken pipe, never the
//! status already written for it.
//!
//! Every request body is wrapped: when a handler drops a body it has not read to its end, the
//! rest is drained in a task of its own, for at most `LINGER_TIME` and `LINGER_BYTES`.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use http_body_util::BodyExt;
use hyper::body::{Body as _, Frame, SizeHint};

/// The time is what bounds the draining (nginx's `lingering_time` is 30 s); a caller that
/// sends nothing for `LINGER_IDLE` is done with (nginx's `lingering_timeout`), so a slow-loris
/// caller is not held longer for it; the bytes only stop a sender faster than any real upload.
const LINGER_TIME: Duration = Duration::from_secs(10);
const LINGER_IDLE: Duration = Duration::from_secs(1);
const LINGER_BYTES: u64 = 1 << 30;

/// The middleware: every request's body, wrapped.
pub async fn wrap(request: Request) -> Request {
    request.map(|body| Body::new(Lingering(Some(body))))
}

struct Lingering(Option<Body>);

impl hyper::body::Body for Lingering {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.0.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.0.as_ref().map(Body::size_hint).unwrap_or_default()
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(mut body) = self.0.take().filter(|b| !b.is_end_stream()) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let mut drained = 0u64;
            let drain = async {
                while let Ok(Some(Ok(frame))) =
                    tokio::time::timeout(LINGER_IDLE, body.frame()).await
                {
                    drained += frame.data_ref().map_or(0, |d| d.len() as u64);
                    if drained > LINGER_BYTES {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(LINGER_TIME, drain).await;
        });
    }
}
