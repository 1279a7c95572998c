//! JSON lines for this service's own `tracing` events (the one line per
//! request, chiefly), written without tracing-subscriber's JSON machinery:
//! its request lines cost about 18,000 instructions each (callgrind),
//! mostly serde's map serializer over a `fmt::Write` adaptor and a
//! timestamp formatted from scratch every time. Here the fields are escaped
//! straight into the line and the timestamp's date and time of day are
//! formatted once a second. The object is the one tracing-subscriber
//! writes, member for member (tests/api/logs.rs reads it). Records bridged
//! from `log` (Rocket's, and the `log::` lines: their `log.*` members come
//! from tracing-log's normalization) and events inside a span (a `spans`
//! member) go to tracing-subscriber's formatter, which knows those shapes.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The target of every record bridged from `log` (tracing-log's call sites).
const BRIDGED: &str = "log";

/// tracing-subscriber's JSON format, with a fast path for plain events.
pub struct JsonLines(pub Format<Json>);

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        if metadata.target() == BRIDGED || ctx.lookup_current().is_some() {
            return self.0.format_event(ctx, writer, event);
        }
        writer.write_str("{\"timestamp\":\"")?;
        timestamp(&mut writer)?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(metadata.level().as_str())?;
        writer.write_char('"')?;
        let mut fields = Fields { writer: &mut writer, result: Ok(()) };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        string(&mut writer, metadata.target())?;
        writer.write_str("}\n")
    }
}

/// Writes each field as `,"name":value`.
struct Fields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self
                .writer
                .write_str(",\"")
                .and_then(|()| Escaped(self.writer).write_str(field.name()))
                .and_then(|()| self.writer.write_str("\":"))
                .and_then(|()| value(self.writer));
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |writer| string(writer, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |writer| writer.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |writer| writer.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |writer| writer.write_str(if value { "true" } else { "false" }));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // As serde_json writes it (ryu's shortest form; null for what JSON
        // cannot hold).
        self.member(field, |writer| match value.is_finite() {
            true => writer.write_str(ryu::Buffer::new().format_finite(value)),
            false => writer.write_str("null"),
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // The message (`format_args!`) comes here: written through the
        // escape as it is formatted, never held in a `String`.
        self.member(field, |writer| {
            writer.write_char('"')?;
            write!(Escaped(writer), "{value:?}")?;
            writer.write_char('"')
        });
    }
}

/// `text` as a JSON string, escaped as serde_json escapes it.
fn string(writer: &mut Writer<'_>, text: &str) -> fmt::Result {
    writer.write_char('"')?;
    Escaped(writer).write_str(text)?;
    writer.write_char('"')
}

/// Writes what it is given escaped for the inside of a JSON string, so a
/// `Debug` value goes into the line with no `String` of its own.
struct Escaped<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Escaped<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // Almost every text (names, ids, routes) needs no escape: one test
        // of the whole text, without a branch per byte, then one write.
        let special = |byte: u8| byte < 0x20 || byte == b'"' || byte == b'\\';
        if !text.bytes().fold(false, |found, byte| found | special(byte)) {
            return self.0.write_str(text);
        }
        let mut plain = 0;
        for (at, byte) in text.bytes().enumerate().filter(|&(_, byte)| special(byte)) {
            self.0.write_str(&text[plain..at])?;
            match byte {
                b'"' => self.0.write_str("\\\""),
                b'\\' => self.0.write_str("\\\\"),
                b'\n' => self.0.write_str("\\n"),
                b'\r' => self.0.write_str("\\r"),
                b'\t' => self.0.write_str("\\t"),
                0x08 => self.0.write_str("\\b"),
                0x0c => self.0.write_str("\\f"),
                _ => write!(self.0, "\\u{byte:04x}"),
            }?;
            plain = at + 1;
        }
        self.0.write_str(&text[plain..])
    }
}

thread_local! {
    /// The second last formatted on this thread, and its text.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Now, in UTC as tracing-subscriber writes it: `2026-12-05T18:53:14.266060Z`.
fn timestamp(writer: &mut Writer<'_>) -> fmt::Result {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != since.as_secs() {
            let at = chrono::DateTime::from_timestamp(since.as_secs() as i64, 0).unwrap_or_default();
            *cached = (since.as_secs(), at.format("%Y-%m-%dT%H:%M:%S").to_string());
        }
        writer.write_str(&cached.1)?;
        let mut fraction = *b".000000Z";
        let mut micros = since.subsec_micros();
        for digit in fraction[1..7].iter_mut().rev() {
            *digit = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        writer.write_str(std::str::from_utf8(&fraction).map_err(|_| fmt::Error)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for text in [
            "plain",
            "a\"b\\c",
            "line\nbreak\ttab\r",
            "\u{1}\u{1f}\u{8}\u{c}\u{7f}",
            "ünïcode ✓",
            "",
            "\"",
            "end\\",
        ] {
            let mut line = String::new();
            string(&mut Writer::new(&mut line), text).expect("written");
            assert_eq!(line, serde_json::to_string(text).expect("serialized"), "{text:?}");
            // In pieces, as `format_args!` hands a message over.
            let mut pieces = String::new();
            write!(Escaped(&mut Writer::new(&mut pieces)), "{text}{}{text}", 7).expect("written");
            let whole = serde_json::to_string(&format!("{text}7{text}")).expect("serialized");
            assert_eq!(pieces, whole[1..whole.len() - 1], "{text:?}");
        }
    }

    #[test]
    fn the_timestamp_reads_as_rfc3339_in_utc_to_the_microsecond() {
        let mut line = String::new();
        timestamp(&mut Writer::new(&mut line)).expect("written");
        let parsed = chrono::DateTime::parse_from_rfc3339(&line).expect("RFC 3339");
        assert!((chrono::Utc::now() - parsed.to_utc()).num_seconds().abs() < 5);
        assert_eq!(line.len(), "2026-12-05T18:53:14.266060Z".len(), "{line}");
    }
}
