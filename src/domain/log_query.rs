//! The search query of `GET /api/v2/logs` (`q`, or `search` as the SDKs send it): the
//! subset of Auth0's Lucene query syntax that covers the fields Clavis's events have.
//!
//! - `field:value` — exact match; `field:"a value"` — exact match of a quoted value;
//!   `field:val*` — starts with (a trailing `*` only); `field:*` — the field is present.
//! - `date:[A TO B]` (inclusive), `date:{A TO B}` (exclusive), mixed brackets, `*` for an
//!   open end; `A`/`B` are `YYYY-MM-DD` or RFC 3339 times. An inclusive date-only upper
//!   bound takes in that whole day; `date:YYYY-MM-DD` is that day.
//! - `AND`, `OR`, `NOT` (and a leading `-`), parentheses; terms side by side are joined by
//!   `AND` (as Auth0's description of the parameter says).
//! - A value without a field is looked for in `client_name`, `type`, `ip` and `description`.
//!
//! Fields Auth0 documents that Clavis's events never carry (`connection`, `user_id`, ...)
//! match nothing; any other field, a leading wildcard or a syntax error is refused.

/// A searchable field and its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// A text column of the `logs` table.
    Column(&'static str),
    /// `log_id` (the row's sequence number).
    LogId,
    /// `date` (Unix milliseconds).
    Date,
    /// A field Auth0 documents that no Clavis event has.
    Absent,
}

/// Text fields with a column, by name.
const COLUMNS: &[&str] = &[
    "type",
    "client_id",
    "client_name",
    "description",
    "ip",
    "hostname",
    "user_agent",
    "audience",
    "scope",
];

/// Auth0's searchable fields that Clavis's events do not have.
const ABSENT: &[&str] = &[
    "connection",
    "connection_id",
    "user_id",
    "user_name",
    "strategy",
    "strategy_type",
    "organization_id",
    "isMobile",
];

/// Fields searched by a value without a field.
const DEFAULT_FIELDS: &[&str] = &["client_name", "type", "ip", "description"];

/// How a field is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Equal to the text.
    Exact(String),
    /// Starts with the text.
    Prefix(String),
    /// The field has a value.
    Present,
    /// A log_id's sequence number (`None`: not a Clavis log_id, matches nothing).
    Seq(Option<i64>),
    /// Unix milliseconds within `[from, to]` (inclusive; `None` is open).
    Range {
        /// Lowest.
        from: Option<i64>,
        /// Highest.
        to: Option<i64>,
    },
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// Every one.
    And(Vec<Expr>),
    /// Any one.
    Or(Vec<Expr>),
    /// Not this.
    Not(Box<Expr>),
    /// One field.
    Term(Field, Match),
    /// Nothing matches.
    Never,
}

/// Longest accepted query, in bytes.
pub const MAX_QUERY_LEN: usize = 2_000;
/// Deepest nesting of parentheses and `NOT`.
const MAX_DEPTH: usize = 16;

/// Why a query was refused (the text of the 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub String);

fn err<T>(text: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError(text.into()))
}

/// Parses a query; `Ok(None)` for an empty one.
pub fn parse(text: &str) -> Result<Option<Expr>, QueryError> {
    if text.len() > MAX_QUERY_LEN {
        return err(format!(
            "The query is longer than {MAX_QUERY_LEN} characters"
        ));
    }
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Ok(None);
    }
    let mut parser = Parser { tokens, pos: 0 };
    let expr = parser.or(0)?;
    if let Some(token) = parser.tokens.get(parser.pos) {
        return err(format!("Unexpected {}", token.describe()));
    }
    Ok(Some(expr))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    /// `field:value` or a bare value; `quoted` when the value was in quotes.
    Term {
        field: Option<String>,
        value: String,
        quoted: bool,
    },
    /// `field:[a TO b]`; the flags say whether each end is inclusive.
    Range {
        field: String,
        from: String,
        to: String,
        from_inclusive: bool,
        to_inclusive: bool,
    },
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
            Token::And => "AND".into(),
            Token::Or => "OR".into(),
            Token::Not => "NOT".into(),
            Token::Term { field, value, .. } => match field {
                Some(f) => format!("'{f}:{value}'"),
                None => format!("'{value}'"),
            },
            Token::Range { field, .. } => format!("range on '{field}'"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, QueryError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '(' {
            tokens.push(Token::Open);
            i += 1;
            continue;
        }
        if c == ')' {
            tokens.push(Token::Close);
            i += 1;
            continue;
        }
        if c == '-' && i + 1 < chars.len() && !chars[i + 1].is_whitespace() {
            tokens.push(Token::Not);
            i += 1;
            continue;
        }
        if c == '"' {
            let (value, next) = quoted(&chars, i)?;
            tokens.push(Token::Term {
                field: None,
                value,
                quoted: true,
            });
            i = next;
            continue;
        }
        // A word: up to whitespace, a parenthesis, or (after `field:`) a quoted value or a
        // range.
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && !matches!(chars[i], '(' | ')' | ':') {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        if i < chars.len() && chars[i] == ':' {
            let field = word;
            if field.is_empty() {
                return err("A term has an empty field name");
            }
            i += 1;
            match chars.get(i) {
                Some('"') => {
                    let (value, next) = quoted(&chars, i)?;
                    tokens.push(Token::Term {
                        field: Some(field),
                        value,
                        quoted: true,
                    });
                    i = next;
                }
                Some(open @ ('[' | '{')) => {
                    let from_inclusive = *open == '[';
                    let close = chars[i..]
                        .iter()
                        .position(|c| matches!(c, ']' | '}'))
                        .map(|p| p + i);
                    let Some(close) = close else {
                        return err(format!("The range on '{field}' is not closed"));
                    };
                    let inner: String = chars[i + 1..close].iter().collect();
                    let parts: Vec<&str> = inner.split_whitespace().collect();
                    let [from, "TO", to] = parts.as_slice() else {
                        return err(format!("The range on '{field}' must be written [A TO B]"));
                    };
                    tokens.push(Token::Range {
                        field,
                        from: (*from).to_string(),
                        to: (*to).to_string(),
                        from_inclusive,
                        to_inclusive: chars[close] == ']',
                    });
                    i = close + 1;
                }
                _ => {
                    let start = i;
                    while i < chars.len()
                        && !chars[i].is_whitespace()
                        && !matches!(chars[i], '(' | ')')
                    {
                        i += 1;
                    }
                    let value: String = chars[start..i].iter().collect();
                    if value.is_empty() {
                        return err(format!("The term '{field}:' has no value"));
                    }
                    tokens.push(Token::Term {
                        field: Some(field),
                        value,
                        quoted: false,
                    });
                }
            }
            continue;
        }
        tokens.push(match word.as_str() {
            "AND" | "&&" => Token::And,
            "OR" | "||" => Token::Or,
            "NOT" => Token::Not,
            _ => Token::Term {
                field: None,
                value: word,
                quoted: false,
            },
        });
    }
    Ok(tokens)
}

/// The quoted string starting at `chars[start] == '"'`; `\"` and `\\` are escapes.
fn quoted(chars: &[char], start: usize) -> Result<(String, usize), QueryError> {
    let mut value = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                value.push(chars[i + 1]);
                i += 2;
            }
            '"' => return Ok((value, i + 1)),
            c => {
                value.push(c);
                i += 1;
            }
        }
    }
    err("A quoted value is not closed")
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn or(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let mut any = vec![self.and(depth)?];
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            any.push(self.and(depth)?);
        }
        Ok(if any.len() == 1 {
            any.remove(0)
        } else {
            Expr::Or(any)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let mut all = vec![self.unary(depth)?];
        loop {
            match self.peek() {
                Some(Token::And) => {
                    self.pos += 1;
                    all.push(self.unary(depth)?);
                }
                Some(Token::Or | Token::Close) | None => break,
                Some(_) => all.push(self.unary(depth)?),
            }
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Expr::And(all)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, QueryError> {
        if depth > MAX_DEPTH {
            return err("The query is nested too deeply");
        }
        let Some(token) = self.tokens.get(self.pos).cloned() else {
            return err("The query ends where a term was expected");
        };
        self.pos += 1;
        match token {
            Token::Not => Ok(Expr::Not(Box::new(self.unary(depth + 1)?))),
            Token::Open => {
                let inner = self.or(depth + 1)?;
                if self.peek() != Some(&Token::Close) {
                    return err("A parenthesis is not closed");
                }
                self.pos += 1;
                Ok(inner)
            }
            Token::Term {
                field,
                value,
                quoted,
            } => term(field.as_deref(), &value, quoted),
            Token::Range {
                field,
                from,
                to,
                from_inclusive,
                to_inclusive,
            } => range(&field, &from, &to, from_inclusive, to_inclusive),
            other => err(format!("Unexpected {}", other.describe())),
        }
    }
}

fn field(name: &str) -> Result<Field, QueryError> {
    if let Some(column) = COLUMNS.iter().find(|c| **c == name) {
        return Ok(Field::Column(column));
    }
    match name {
        "log_id" => Ok(Field::LogId),
        "date" => Ok(Field::Date),
        _ if ABSENT.contains(&name) => Ok(Field::Absent),
        _ => err(format!("'{name}' is not a searchable field")),
    }
}

fn term(name: Option<&str>, value: &str, quoted: bool) -> Result<Expr, QueryError> {
    let Some(name) = name else {
        let any = DEFAULT_FIELDS
            .iter()
            .map(|f| term(Some(f), value, quoted))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Expr::Or(any));
    };
    let field = field(name)?;
    if !quoted {
        let body = value.strip_suffix('*').unwrap_or(value);
        if body.contains(['*', '?']) {
            return err(format!(
                "Only a trailing wildcard is supported: '{name}:{value}'"
            ));
        }
    }
    match field {
        Field::Absent => Ok(Expr::Never),
        Field::Date => {
            if !quoted && value == "*" {
                return Ok(Expr::Term(Field::Date, Match::Present));
            }
            let (from, to) = day_or_instant(value)?;
            Ok(Expr::Term(
                Field::Date,
                Match::Range {
                    from: Some(from),
                    to: Some(to),
                },
            ))
        }
        Field::LogId => {
            if !quoted && value == "*" {
                return Ok(Expr::Term(Field::LogId, Match::Present));
            }
            Ok(Expr::Term(Field::LogId, Match::Seq(log_id_seq(value))))
        }
        Field::Column(_) => Ok(Expr::Term(
            field,
            if quoted {
                Match::Exact(value.to_string())
            } else if value == "*" {
                Match::Present
            } else if let Some(prefix) = value.strip_suffix('*') {
                Match::Prefix(prefix.to_string())
            } else {
                Match::Exact(value.to_string())
            },
        )),
    }
}

fn range(
    name: &str,
    from: &str,
    to: &str,
    from_inclusive: bool,
    to_inclusive: bool,
) -> Result<Expr, QueryError> {
    match field(name)? {
        Field::Date => {
            let from = match from {
                "*" => None,
                day => {
                    let (start, end) = day_or_instant(day)?;
                    Some(if from_inclusive { start } else { end + 1 })
                }
            };
            let to = match to {
                "*" => None,
                day => {
                    let (start, end) = day_or_instant(day)?;
                    Some(if to_inclusive { end } else { start - 1 })
                }
            };
            Ok(Expr::Term(Field::Date, Match::Range { from, to }))
        }
        Field::Absent => Ok(Expr::Never),
        _ => err(format!("Ranges are supported on 'date' only, not '{name}'")),
    }
}

/// A date (`YYYY-MM-DD`: the whole day) or an instant (RFC 3339: that millisecond), as the
/// first and last Unix millisecond it covers.
fn day_or_instant(text: &str) -> Result<(i64, i64), QueryError> {
    use ::time::format_description::well_known::Rfc3339;
    if let Ok(at) = ::time::OffsetDateTime::parse(text, &Rfc3339) {
        let ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
        return Ok((ms, ms));
    }
    let format = ::time::macros::format_description!("[year]-[month]-[day]");
    match ::time::Date::parse(text, &format) {
        Ok(day) => {
            let start = day.midnight().assume_utc().unix_timestamp() * 1000;
            Ok((start, start + 86_400_000 - 1))
        }
        Err(_) => err(format!(
            "'{text}' is not a date (YYYY-MM-DD) or a time (RFC 3339)"
        )),
    }
}

/// The width of the sequence number in a log_id.
const LOG_ID_DIGITS: usize = 20;
/// What every Clavis log_id starts with.
const LOG_ID_PREFIX: &str = "900";

/// The log_id of a stored event: digits only and of one length, so that ids compare as
/// strings in the order they compare as numbers (`900` then the sequence number, zero-padded
/// to 20 digits).
pub fn log_id(seq: i64) -> String {
    format!(
        "{LOG_ID_PREFIX}{:0width$}",
        seq.max(0),
        width = LOG_ID_DIGITS
    )
}

/// The sequence number of a log_id; `None` when it is not one of Clavis's.
pub fn log_id_seq(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(LOG_ID_PREFIX)?;
    if digits.len() != LOG_ID_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn q(text: &str) -> Expr {
        parse(text).unwrap().unwrap()
    }

    #[test]
    fn terms_wildcards_and_implicit_and() {
        assert_eq!(
            q("type:seccft"),
            Expr::Term(Field::Column("type"), Match::Exact("seccft".into()))
        );
        assert_eq!(
            q("type:s*"),
            Expr::Term(Field::Column("type"), Match::Prefix("s".into()))
        );
        assert_eq!(
            q("client_name:\"My app*\""),
            Expr::Term(Field::Column("client_name"), Match::Exact("My app*".into()))
        );
        assert!(matches!(q("type:sapi client_id:abc"), Expr::And(v) if v.len() == 2));
        assert!(matches!(
            q("(type:seccft OR type:feccft) AND client_id:x"),
            Expr::And(v) if matches!(&v[0], Expr::Or(o) if o.len() == 2)
        ));
        assert!(matches!(q("NOT type:sapi"), Expr::Not(_)));
        assert!(matches!(q("-type:sapi"), Expr::Not(_)));
        assert_eq!(q("user_id:abc"), Expr::Never);
    }

    #[test]
    fn dates() {
        assert_eq!(
            q("date:[2026-01-01 TO 2026-01-02]"),
            Expr::Term(
                Field::Date,
                Match::Range {
                    from: Some(1_767_225_600_000),
                    to: Some(1_767_225_600_000 + 2 * 86_400_000 - 1)
                }
            )
        );
        assert_eq!(
            q("date:[2026-01-01T00:00:00Z TO *]"),
            Expr::Term(
                Field::Date,
                Match::Range {
                    from: Some(1_767_225_600_000),
                    to: None
                }
            )
        );
        assert_eq!(
            q("date:{* TO 2026-01-01}"),
            Expr::Term(
                Field::Date,
                Match::Range {
                    from: None,
                    to: Some(1_767_225_600_000 - 1)
                }
            )
        );
    }

    #[test]
    fn malformed_queries_are_refused() {
        for bad in [
            "type:",
            "nosuchfield:x",
            "type:*cft",
            "(type:sapi",
            "type:sapi)",
            "date:[2026-01-01 2026-02-01]",
            "date:[yesterday TO *]",
            "client_id:[a TO b]",
            "AND",
            "type:\"open",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse("   ").unwrap(), None);
        let deep = format!("{}type:x{}", "(".repeat(40), ")".repeat(40));
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn log_ids_sort_as_strings_in_sequence_order() {
        assert_eq!(log_id(7), "90000000000000000000007");
        assert_eq!(log_id_seq(&log_id(123_456)), Some(123_456));
        assert!(log_id(9) < log_id(10));
        assert_eq!(log_id_seq("12"), None);
        assert_eq!(log_id_seq("900abc"), None);
    }
}
