//! The upstream's Server-Sent Events: its bytes, checked once as they arrive (UTF-8, line
//! length), split into each event's `data` (`DataEvents`), the part of the WHATWG event-stream
//! rules an OpenAI-compatible stream uses. Written here rather than taken from
//! eventsource-stream, whose nom parser and per-field strings were 15 % of a streamed answer's
//! CPU on `chatapi-bench floor`.

/// The longest an upstream's event may grow without a line break: a chunk is a few hundred
/// bytes, so this is an upstream gone wrong, not a long answer.
const MAX_LINE_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// The connection failed; the sentence says how.
    #[error("{0}")]
    Transport(String),
    #[error("the stream is not valid UTF-8")]
    InvalidUtf8,
    #[error("a line of over {MAX_LINE_BYTES} bytes")]
    LineTooLong,
    #[error("an event of over {MAX_LINE_BYTES} bytes")]
    EventTooLong,
}

/// The whole characters at the start of `bytes`, and how many bytes at its end begin one not
/// complete yet; an error if `bytes` holds a sequence that can never be valid UTF-8.
fn utf8_split(bytes: &[u8]) -> Result<(&str, usize), ChunkError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok((text, 0)),
        Err(e) if e.error_len().is_none() => {
            let (whole, tail) = bytes.split_at(e.valid_up_to());
            // Checked again only when a character is split across chunks.
            let whole = std::str::from_utf8(whole).map_err(|_| ChunkError::InvalidUtf8)?;
            Ok((whole, tail.len()))
        }
        Err(_) => Err(ChunkError::InvalidUtf8),
    }
}

pin_project_lite::pin_project! {
    /// Each event's `data` lines, joined by `\n`. Lines end in `\n`, `\r\n` or `\r`;
    /// comments, `event:`, `id:` and `retry:` are read and ignored; an event the stream ends in
    /// the middle of is dropped, as the rules say. Invalid UTF-8 and a line past
    /// `MAX_LINE_BYTES` fail as soon as their bytes arrive, not when a line end that may never
    /// come does (the answer would stall until the idle timeout).
    pub struct DataEvents<S> {
        #[pin]
        bytes: S,
        // What has arrived, as text; lines are taken from its start.
        text: String,
        // How much of `text` is already split into lines.
        read: usize,
        // The start of a character split across chunks (at most 3 bytes).
        partial: Vec<u8>,
        // The event so far: each data line and a `\n`.
        data: String,
        // The last line ended in `\r`: a `\n` right after it is that line's end, not a line.
        after_cr: bool,
        started: bool,
        ended: bool,
    }
}

impl<S> DataEvents<S> {
    pub fn new(bytes: S) -> Self {
        Self {
            bytes,
            text: String::new(),
            read: 0,
            partial: Vec::new(),
            data: String::new(),
            after_cr: false,
            started: false,
            ended: false,
        }
    }
}

/// A stream that failed ends: nothing after the error is read.
fn failed(text: &mut String, read: &mut usize, ended: &mut bool, e: ChunkError) -> ChunkError {
    text.clear();
    *read = 0;
    *ended = true;
    e
}

/// Appends `chunk` to `text` (with the `partial` character before it), checked as UTF-8 once.
fn append(text: &mut String, partial: &mut Vec<u8>, chunk: &[u8]) -> Result<(), ChunkError> {
    let joined;
    let bytes = if partial.is_empty() {
        chunk
    } else {
        joined = [std::mem::take(partial).as_slice(), chunk].concat();
        &joined
    };
    let (whole, tail) = utf8_split(bytes)?;
    text.push_str(whole);
    partial.extend_from_slice(&bytes[bytes.len() - tail..]);
    Ok(())
}

/// One line (without its end) into `data`; true when the line ends an event with data.
fn take_line(line: &str, data: &mut String) -> Result<bool, ChunkError> {
    if line.is_empty() {
        return Ok(!data.is_empty());
    }
    if line.starts_with(':') {
        return Ok(false);
    }
    // The field name is a few bytes: a plain scan finds its `:` in a fraction of what the
    // general `split_once` costs (it was 1 % of a streamed answer's instructions).
    let (field, value) = match line.bytes().position(|b| b == b':') {
        Some(at) => {
            let value = &line[at + 1..];
            (&line[..at], value.strip_prefix(' ').unwrap_or(value))
        }
        None => (line, ""),
    };
    if field == "data" {
        if data.len() + value.len() > MAX_LINE_BYTES {
            return Err(ChunkError::EventTooLong);
        }
        data.push_str(value);
        data.push('\n');
    }
    Ok(false)
}

/// Past this, the buffer an event was gathered in is let go rather than kept for the next: one
/// long event must not pin its size for the rest of the answer, and a held stream keeps at most
/// this much (a chunk of text is a few hundred bytes; one with logprobs may be more).
const KEPT_EVENT_BYTES: usize = 1024;

/// Hands the event gathered in `data` (without its last `\n`) to `read`, and empties `data` for
/// the next one.
fn lend<T>(data: &mut String, read: impl FnOnce(&str) -> T) -> T {
    data.pop();
    let item = read(data);
    if data.capacity() > KEPT_EVENT_BYTES {
        *data = String::new();
    } else {
        data.clear();
    }
    item
}

impl<S, E> DataEvents<S>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>>,
    E: Into<String>,
{
    /// The next event's data, lent to `read` rather than handed over: the buffer it was gathered
    /// in serves the next event too, so an event costs no allocation of its own (each was a
    /// `malloc`, a `realloc` and a `free` before, on every chunk of every answer).
    pub fn poll_read<T>(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        read: impl FnOnce(&str) -> T,
    ) -> std::task::Poll<Option<Result<T, ChunkError>>> {
        use std::task::Poll;
        let mut this = self.project();
        loop {
            while let Some(end) = memchr::memchr2(b'\n', b'\r', &this.text.as_bytes()[*this.read..])
            {
                let start = *this.read;
                let at = start + end;
                *this.read = at + 1;
                let ending = this.text.as_bytes()[at];
                if *this.after_cr && at == start && ending == b'\n' {
                    *this.after_cr = false;
                    continue;
                }
                *this.after_cr = ending == b'\r';
                match take_line(&this.text[start..at], this.data) {
                    Ok(true) => return Poll::Ready(Some(Ok(lend(this.data, read)))),
                    Ok(false) => {}
                    Err(e) => {
                        return Poll::Ready(Some(Err(failed(this.text, this.read, this.ended, e))))
                    }
                }
            }
            this.text.drain(..*this.read);
            *this.read = 0;
            if *this.ended {
                return Poll::Ready(None);
            }
            let appended = match futures_util::ready!(this.bytes.as_mut().poll_next(cx)) {
                // What is left after the lines taken is one line without its end yet.
                Some(Ok(chunk)) => append(this.text, this.partial, &chunk).and_then(|()| {
                    if this.text.len() + this.partial.len() > MAX_LINE_BYTES {
                        Err(ChunkError::LineTooLong)
                    } else {
                        Ok(())
                    }
                }),
                Some(Err(e)) => Err(ChunkError::Transport(e.into())),
                None => {
                    *this.ended = true;
                    continue;
                }
            };
            if let Err(e) = appended {
                return Poll::Ready(Some(Err(failed(this.text, this.read, this.ended, e))));
            }
            if !*this.started && !this.text.is_empty() {
                *this.started = true;
                if this.text.starts_with('\u{feff}') {
                    this.text.drain(..'\u{feff}'.len_utf8());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::{Context, Poll, Waker};

    /// The data of each event `pieces` make, as they would arrive from the network.
    fn events(pieces: &[&[u8]]) -> Vec<Result<String, String>> {
        let chunks: Vec<Result<bytes::Bytes, String>> = pieces
            .iter()
            .map(|p| Ok(bytes::Bytes::copy_from_slice(p)))
            .collect();
        let mut stream = std::pin::pin!(DataEvents::new(futures_util::stream::iter(chunks)));
        let mut cx = Context::from_waker(Waker::noop());
        let mut got = Vec::new();
        loop {
            match stream.as_mut().poll_read(&mut cx, str::to_owned) {
                Poll::Ready(Some(item)) => got.push(item.map_err(|e| e.to_string())),
                Poll::Ready(None) => return got,
                Poll::Pending => panic!("every chunk is there already: the stream never waits"),
            }
        }
    }

    fn ok(items: &[&str]) -> Vec<Result<String, String>> {
        items.iter().map(|s| Ok(s.to_string())).collect()
    }

    #[test]
    fn each_events_data_is_read_whatever_the_line_ends() {
        assert_eq!(events(&[b"data: a\n\ndata: b\n\n"]), ok(&["a", "b"]));
        assert_eq!(events(&[b"data: a\r\n\r\ndata: b\r\r"]), ok(&["a", "b"]));
        assert_eq!(
            events(&[b"data:a\n\n"]),
            ok(&["a"]),
            "the space is optional"
        );
        assert_eq!(
            events(&[b"data:  a\n\n"]),
            ok(&[" a"]),
            "only one space goes"
        );
        assert_eq!(events(&[b"data: a\ndata: b\n\n"]), ok(&["a\nb"]));
        assert_eq!(
            events(&[b"data\n\n"]),
            ok(&[""]),
            "an empty data line is an event"
        );
    }

    #[test]
    fn events_split_anywhere_across_chunks_are_whole() {
        let text = b"data: {\"x\":\"h\xc3\xa9\"}\r\n\r\ndata: [DONE]\r\n\r\n";
        for cut in 0..text.len() {
            assert_eq!(
                events(&[&text[..cut], &text[cut..]]),
                ok(&["{\"x\":\"h\u{e9}\"}", "[DONE]"]),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn comments_other_fields_a_bom_and_a_cut_off_event_are_left_out() {
        assert_eq!(
            events(&[b"\xef\xbb\xbf: ping\n\nevent: message\nid: 7\nretry: 10\ndata: a\n\n"]),
            ok(&["a"])
        );
        assert_eq!(events(&[b"data: a\n\ndata: cut off"]), ok(&["a"]));
        assert_eq!(events(&[b": only a comment\n\n"]), ok(&[]));
    }

    #[test]
    fn garbage_and_an_endless_line_fail_as_they_arrive_not_at_a_line_end() {
        let got = events(&[b"data: a\n\n", b"data: \xff"]);
        assert_eq!(got[0], Ok("a".to_string()));
        assert!(
            got[1].as_ref().unwrap_err().contains("not valid UTF-8"),
            "{got:?}"
        );
        let long = vec![b'x'; MAX_LINE_BYTES / 2 + 1];
        let got = events(&[b"data: ", &long, &long]);
        assert_eq!(got.len(), 1);
        assert!(
            got[0].as_ref().unwrap_err().contains("a line of over"),
            "{got:?}"
        );
    }

    #[test]
    fn an_endless_event_fails_instead_of_growing() {
        let line = format!("data: {}\n", "x".repeat(1000));
        let many: Vec<&[u8]> =
            std::iter::repeat_n(line.as_bytes(), MAX_LINE_BYTES / 1000 + 2).collect();
        let got = events(&many);
        assert_eq!(got.len(), 1);
        assert!(
            got[0].as_ref().unwrap_err().contains("an event of over"),
            "{got:?}"
        );
    }

    #[test]
    fn a_long_events_buffer_is_let_go_and_a_short_ones_kept() {
        let mut data = format!("{}\n", "x".repeat(KEPT_EVENT_BYTES * 2));
        assert_eq!(lend(&mut data, str::len), KEPT_EVENT_BYTES * 2);
        assert_eq!(data.capacity(), 0);
        data.push_str("ab\n");
        assert_eq!(lend(&mut data, str::to_owned), "ab");
        assert!(data.is_empty() && data.capacity() > 0);
    }

    #[test]
    fn utf8_split_across_chunks_is_fine_and_garbage_is_not() {
        let utf8_tail = |bytes: &[u8]| utf8_split(bytes).map(|(_, tail)| tail);
        assert_eq!(utf8_tail("héllo".as_bytes()).unwrap(), 0);
        let e = "é".as_bytes();
        assert_eq!(
            utf8_tail(&[b'a', e[0]]).unwrap(),
            1,
            "the start of a split character"
        );
        assert!(utf8_tail(&[b'a', 0xff, b'b']).is_err());
        assert!(
            utf8_tail(&[0xc3, b'a']).is_err(),
            "a broken sequence, not a split one"
        );
    }
}
