//! What every streamed answer shares, whatever its dialect: its headers, and the buffer its
//! events are written into.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;

pub fn response(
    stream: impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
) -> Response {
    let mut response = Body::from_stream(stream).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx and friends buffer responses unless told not to; a buffered stream is a silent avatar.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The least an event's buffer is grown by: a text event is a few dozen bytes (an OpenAI chunk
/// about 200), so growing by this much serves several before the buffer is grown again.
const EVENT_BUF_GROWTH: usize = 256;

/// Past this, the buffer an event was written in is let go rather than kept for the next: one
/// long event must not pin its size for the rest of a stream that may last minutes.
const EVENT_BUF_KEPT: usize = 4096;

/// One buffer a stream's events are written into and split off from. Once what was sent is
/// written out, the next event reuses the space: an event costs no allocation of its own, where
/// a buffer per event cost two (the buffer, and `Bytes`' shared header when frozen).
#[derive(Default)]
pub struct EventBuf {
    buf: BytesMut,
}

impl EventBuf {
    /// An event of about `size` bytes, as `write` writes it.
    pub fn event(&mut self, size: usize, write: impl FnOnce(&mut BytesMut)) -> Bytes {
        if self.buf.capacity() < size {
            self.buf.reserve(size.max(EVENT_BUF_GROWTH));
        }
        write(&mut self.buf);
        let event = self.buf.split().freeze();
        if event.len() > EVENT_BUF_KEPT {
            self.buf = BytesMut::new();
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    #[test]
    fn events_are_split_off_whole_and_the_space_is_reused() {
        let mut buf = EventBuf::default();
        let first = buf.event(4, |b| b.put_slice(b"one\n"));
        let second = buf.event(4, |b| b.put_slice(b"two\n"));
        assert_eq!((&first[..], &second[..]), (&b"one\n"[..], &b"two\n"[..]));
        let start = first.as_ptr();
        drop((first, second));
        // A hundred events later, with each one dropped as a writer would, still one buffer.
        for i in 0..100 {
            let event = buf.event(8, |b| b.put_slice(format!("event {i}").as_bytes()));
            assert_eq!(event, format!("event {i}").as_bytes());
            assert!(
                event.as_ptr() >= start && event.as_ptr() < start.wrapping_add(EVENT_BUF_GROWTH)
            );
        }
        // One larger than the buffer still comes out whole, and its space is not kept.
        let long = "x".repeat(10_000);
        assert_eq!(
            buf.event(10, |b| b.put_slice(long.as_bytes())),
            long.as_bytes()
        );
        assert_eq!(buf.buf.capacity(), 0);
        assert_eq!(buf.event(4, |b| b.put_slice(b"next")), &b"next"[..]);
    }
}
