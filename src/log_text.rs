//! The text log's field formatter. Values in log lines are often what a caller sent (a
//! `client_id`, an assertion header's `alg`, a path): written raw, a newline forges a whole
//! log line and an escape sequence drives the reader's terminal. Here every field is written
//! as `name=value` with control characters escaped, and a value that is not a plain token is
//! quoted, so a line always parses back into the fields it was given. (The JSON format
//! escapes by itself.)

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// Formats an event's fields safely (see the module documentation).
#[derive(Debug, Default, Clone, Copy)]
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = Visitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Visitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    fn write(&mut self, field: &Field, text: &str, raw_str: bool) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        self.result = if field.name() == "message" {
            write!(self.writer, "{separator}{}", Escaped(text))
        } else {
            write!(self.writer, "{separator}{}=", field.name())
                .and_then(|()| write_value(&mut self.writer, text, raw_str))
        };
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, value, true);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        self.write(field, &text, false);
    }
}

/// A value: bare when it is a plain token; as it is when it is already one well-formed
/// quoted string (what `?` gives for a string — it parses back as one value); else quoted.
/// `raw_str`: the text is a string's own content, never to be taken as already quoted.
fn write_value(w: &mut impl Write, text: &str, raw_str: bool) -> fmt::Result {
    if is_bare(text) || (!raw_str && is_quoted(text)) {
        write!(w, "{}", Escaped(text))
    } else {
        w.write_char('"')?;
        for c in text.chars() {
            match c {
                '"' => w.write_str("\\\"")?,
                '\\' => w.write_str("\\\\")?,
                c => write_char_escaped(w, c)?,
            }
        }
        w.write_char('"')
    }
}

fn is_bare(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| !c.is_whitespace() && !matches!(c, '"' | '=' | '\\') && !needs_escape(c))
}

/// One `"…"` whose inner quotes are all escaped.
fn is_quoted(text: &str) -> bool {
    let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
        return false;
    };
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        let escaped_char = c == '\\' && chars.next().is_some();
        if !escaped_char && matches!(c, '\\' | '"') {
            return false;
        }
    }
    true
}

/// Characters never written as they are: control characters (C0, DEL, C1), the line and
/// paragraph separators, and the bidirectional overrides that reorder what a reader sees.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

fn write_char_escaped(w: &mut impl Write, c: char) -> fmt::Result {
    match c {
        '\n' => w.write_str("\\n"),
        '\r' => w.write_str("\\r"),
        '\t' => w.write_str("\\t"),
        c if needs_escape(c) => write!(w, "\\u{{{:x}}}", c as u32),
        c => w.write_char(c),
    }
}

/// Text with its control characters escaped.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            write_char_escaped(f, c)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, raw_str: bool) -> String {
        let mut out = String::new();
        let _ = write_value(&mut out, text, raw_str);
        out
    }

    #[test]
    fn plain_tokens_stay_bare() {
        assert_eq!(value("abc123_-.:/", true), "abc123_-.:/");
        assert_eq!(
            value("2026-12-04T19:00:00.000Z", false),
            "2026-12-04T19:00:00.000Z"
        );
    }

    #[test]
    fn a_newline_cannot_forge_a_line_nor_a_field() {
        let forged = "x\n2026-12-04T00:00:00Z  INFO FORGED token issued client_id=admin";
        let out = value(forged, false);
        assert!(!out.contains('\n'));
        assert_eq!(
            out,
            "\"x\\n2026-12-04T00:00:00Z  INFO FORGED token issued client_id=admin\""
        );
        // A value shaped like two fields is one quoted value.
        assert_eq!(value("a reason=ok", true), "\"a reason=ok\"");
        assert_eq!(
            value("\"a\" reason=\"ok\"", false),
            "\"\\\"a\\\" reason=\\\"ok\\\"\""
        );
        assert_eq!(value("", true), "\"\"");
    }

    #[test]
    fn terminal_controls_and_bidi_overrides_are_escaped() {
        assert_eq!(value("\u{1b}[31mred", true), "\"\\u{1b}[31mred\"");
        assert_eq!(value("a\u{202e}b", true), "\"a\\u{202e}b\"");
        assert_eq!(value("\u{9b}2J", true), "\"\\u{9b}2J\"");
        assert_eq!(value("tab\there", true), "\"tab\\there\"");
    }

    #[test]
    fn a_debug_string_is_kept_as_it_is() {
        let debug = format!("{:?}", "with \"quotes\" and\nnewline");
        assert_eq!(value(&debug, false), debug);
        // But the same text as a raw string is quoted again.
        assert_ne!(value(&debug, true), debug);
    }
}
