//! The ChatAPI framing that FaceTo-AI parses: for each text delta exactly
//! `data: {"content":"..."}` followed by one empty line, then `data: [DONE]`. Its reader keeps one
//! line, discards the next, and wants `data: ` WITH the space; anything else on the wire shifts
//! its line pairing and loses text. `compact` drops the space, matching the ChatAPI document's own
//! example for clients written from it. Tool calls, finish reasons and usage have no place here.

use bytes::{BufMut, Bytes};

use crate::relay::{Encoder, Failure};
use crate::routes::sse::EventBuf;
use crate::upstream::Event;

pub struct Framing {
    prefix: &'static [u8],
    buf: EventBuf,
}

impl Framing {
    pub fn new(compact: bool) -> Self {
        Self {
            prefix: if compact { b"data:" } else { b"data: " },
            buf: EventBuf::default(),
        }
    }

    /// One content event. The text is JSON-escaped by serde_json, so quotes, backslashes,
    /// newlines and control characters cannot break the one-line framing, and UTF-8 is kept as is.
    pub fn content(&mut self, text: &str) -> Bytes {
        const OPEN: &[u8] = b"{\"content\":";
        const CLOSE: &[u8] = b"}\n\n";
        let prefix = self.prefix;
        let size = prefix.len() + OPEN.len() + text.len() + 2 + CLOSE.len();
        self.buf.event(size, |buf| {
            buf.put_slice(prefix);
            buf.put_slice(OPEN);
            let mut writer = buf.writer();
            // Writing a &str into memory cannot fail.
            let _ = serde_json::to_writer(&mut writer, text);
            writer.into_inner().put_slice(CLOSE);
        })
    }

    pub fn done(&mut self) -> Bytes {
        let prefix = self.prefix;
        self.buf.event(prefix.len() + 8, |buf| {
            buf.put_slice(prefix);
            buf.put_slice(b"[DONE]\n\n");
        })
    }
}

impl Encoder for Framing {
    fn event(&mut self, event: Event) -> Option<Bytes> {
        match event {
            Event::Text(text) => Some(self.content(&text)),
            Event::ToolCall(_) | Event::Finish(_) | Event::Usage(_) | Event::Logprobs(_) => None,
        }
    }

    /// The persona's `on_error_text`, spoken as the last sentence, so the avatar does not stop
    /// mid-air; nothing at shutdown.
    fn failed(&mut self, failure: Failure<'_>) -> Option<Bytes> {
        match failure.on_error_text {
            Some(text) if !failure.shutdown => Some(self.content(text)),
            _ => None,
        }
    }

    fn end(&mut self) -> Bytes {
        self.done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaced_framing() {
        let mut f = Framing::new(false);
        assert_eq!(&f.content("Hi")[..], b"data: {\"content\":\"Hi\"}\n\n");
        assert_eq!(&f.done()[..], b"data: [DONE]\n\n");
    }

    #[test]
    fn compact_framing() {
        let mut f = Framing::new(true);
        assert_eq!(&f.content("Hi")[..], b"data:{\"content\":\"Hi\"}\n\n");
        assert_eq!(&f.done()[..], b"data:[DONE]\n\n");
    }

    #[test]
    fn escaping_keeps_one_line() {
        let mut f = Framing::new(false);
        let text = "a \"q\" \\ \n\r\t \u{1} é 😀 </script>";
        let event = f.content(text);
        let line = std::str::from_utf8(&event).unwrap();
        assert_eq!(line.matches('\n').count(), 2);
        let json = line.strip_prefix("data: ").unwrap().trim_end();
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["content"], text);
    }
}
