//! The text log's fields, `name=value` apart by spaces: byte for byte what tracing-subscriber's
//! default writes, without its styling where there are no colours. The default paints every
//! field's name and `=` through nu-ansi-term even with colours off, three formatter calls a
//! field: 3 % of a streamed answer's instructions, for its one log line (callgrind).
//! The fields it treats apart (the message, which it escapes; errors and their sources; `r#`
//! names) and everything in colour are still written by the default itself.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// The fields' formatter (`fmt().fmt_fields(PlainFields)`).
pub struct PlainFields;

impl<'a> MakeVisitor<Writer<'a>> for PlainFields {
    type Visitor = PlainVisitor<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> Self::Visitor {
        PlainVisitor {
            writer: target,
            is_empty: true,
            result: Ok(()),
        }
    }
}

pub struct PlainVisitor<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// Whether the default skips this field: the `log` crate's metadata, already in the line's
    /// head.
    fn skipped(field: &Field) -> bool {
        field.name().starts_with("log.")
    }

    /// The default visitor writes this field, padded as it would be.
    fn by_default(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let mut default = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut default);
        self.result = default.finish();
        self.is_empty = false;
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            if self.result.is_ok() {
                self.by_default(|d| d.record_str(field, value));
            }
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_ok() && !Self::skipped(field) {
            self.by_default(|d| d.record_error(field, value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() || Self::skipped(field) {
            return;
        }
        let name = field.name();
        if self.writer.has_ansi_escapes() || name == "message" || name.starts_with("r#") {
            return self.by_default(|d| d.record_debug(field, value));
        }
        let pad = if std::mem::replace(&mut self.is_empty, false) {
            ""
        } else {
            " "
        };
        self.result = write!(self.writer, "{pad}{name}={value:?}");
    }
}

impl VisitOutput<fmt::Result> for PlainVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for PlainVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("the upstream \u{1b}[31mfailed")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("connection reset")]
    struct Inner;

    /// Every kind of field this server logs, and those the default treats apart.
    fn events() {
        let span = tracing::info_span!("request", request_id = "r-1", n = 3, r#type = "chat");
        let _entered = span.enter();
        span.record("n", 4);
        let persona = "default";
        tracing::info!(
            request_id = %"7f3c",
            dialect = "chatapi",
            persona = %persona,
            upstream = "mock",
            status = 200u16,
            ttft_ms = Some(0.213),
            missing = None::<f64>,
            deltas = 20u32,
            duration_ms = 1.5,
            repeated = false,
            signed = -3i64,
            big = u128::MAX,
            quoted = "a \"b\"\n\u{1b}[2J",
            "chat"
        );
        tracing::warn!(
            error = &Outer(Inner) as &(dyn std::error::Error + 'static),
            "upstream failed: {}",
            "\u{1b}[1mbold"
        );
        tracing::info!(message = "a message given as a field", other = 1);
        tracing::error!(r#type = "raw", "log.target" = "ignored", plain = ?vec![1, 2]);
        tracing::info!("");
    }

    fn lines(ansi: bool, plain: bool) -> String {
        let out = Captured::default();
        let builder = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .with_ansi(ansi)
            .without_time();
        if plain {
            tracing::subscriber::with_default(builder.fmt_fields(PlainFields).finish(), events);
        } else {
            tracing::subscriber::with_default(builder.finish(), events);
        }
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn lines_are_the_defaults_byte_for_byte() {
        let plain = lines(false, true);
        assert_eq!(plain, lines(false, false));
        assert!(plain.contains(" dialect=\"chatapi\" persona=default upstream=\"mock\" status=200"));
        assert_eq!(plain.lines().count(), 5, "{plain}");
    }

    #[test]
    fn lines_in_colour_are_the_defaults() {
        let coloured = lines(true, true);
        assert_eq!(coloured, lines(true, false));
        assert!(coloured.contains('\u{1b}'));
    }
}
